"""Shared by the tests that install dgfpga into a fresh virtual environment (the board's
Python in tests/host/test_board_python.py, a plain `pip install <checkout>` in
tests/workflows/test_installed.py)."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra) -> dict:
    """This process's environment minus anything that would leak the 3.11 env into the venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
                        "VIRTUAL_ENV", "__PYVENV_LAUNCHER__", "PYTHONEXECUTABLE")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(cmd, timeout=300, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", clean_env())
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kw)


@contextlib.contextmanager
def locked(path: Path):
    """Serialise concurrent test runs sharing one cached venv (POSIX advisory lock)."""
    import fcntl
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fail(what: str, r: subprocess.CompletedProcess):
    pytest.fail(f"{what} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


def copy_checkout(dest: Path) -> Path:
    """The files a commit of this checkout would hold (what `git archive` ships to the
    board), so the build neither writes build/ into the checkout nor sees stale files."""
    try:
        r = run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                  "--exclude-standard"], timeout=60)
        files = [f for f in r.stdout.split("\0") if f] if r.returncode == 0 else []
    except OSError:
        files = []
    if files:
        for f in files:
            src = ROOT / f
            if src.is_file():
                (dest / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / f)
    else:   # not a git checkout (e.g. an unpacked archive): copy without build products
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache",
            ".hypothesis", "sim_build", "out", ".cache"))
    return dest
