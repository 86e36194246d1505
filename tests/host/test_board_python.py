"""The board path under the board's Python: PYNQ 3.x images run Python 3.10 with numpy.

A venv with Python 3.10 and numpy only (no torch, no tomllib, no scikit-learn) gets dgfpga
installed from a copy of this checkout exactly as docs/board.md does it on the board
(`pip install --no-deps DIR`: a real, non-editable build, so this also proves the wheel
ships `dgfpga_host`, `dgfpga/contract/configs/*.toml` and `dgfpga/contract/templates/`). In that venv:
`import torch` fails, and `dgfpga-host bench --device numpy` on a bundle written by the
3.11 toolchain is bit-exact (PASS).

The venv (interpreter + numpy) is cached under $DGFPGA_TEST_CACHE (default: the temp
folder), keyed by the interpreter and the numpy version; dgfpga is reinstalled every run.
Environment: DGFPGA_BOARD_PYTHON picks the interpreter, DGFPGA_BOARD_NUMPY the numpy
requirement (default below).
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import sys
import subprocess
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from install_helpers import copy_checkout as _copy_checkout  # noqa: E402
from install_helpers import fail as _fail  # noqa: E402
from install_helpers import locked as _locked  # noqa: E402
from install_helpers import run as _run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BOARD_PYTHON = (3, 10)
# The oldest numpy pyproject.toml allows (numpy>=1.21), the series of Ubuntu 22.04 under
# PYNQ 3.x images. Binary wheels only: never a 10-minute numpy build from source.
NUMPY_SPEC = os.environ.get("DGFPGA_BOARD_NUMPY", "numpy==1.21.6")
READY = ".dgfpga-board-venv-ready"


def _probe(exe: str):
    """(real executable, 'X.Y.Z') of a Python 3.10 that can make venvs with pip, or None."""
    try:
        r = _run([exe, "-c", "import sys, venv, ensurepip; print(sys.executable); "
                             "print('%d.%d.%d' % sys.version_info[:3])"], timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    real, version = r.stdout.split()
    if tuple(int(x) for x in version.split(".")[:2]) != BOARD_PYTHON:
        return None
    return real, version


def find_board_python():
    want = "python%d.%d" % BOARD_PYTHON
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    cands = [os.environ.get("DGFPGA_BOARD_PYTHON"), shutil.which(want),
             *sorted(glob.glob(os.path.join(pyenv_root, "versions", "%d.%d*" % BOARD_PYTHON,
                                            "bin", want)), reverse=True),
             f"/usr/bin/{want}", f"/usr/local/bin/{want}"]
    for c in cands:
        if c and os.path.exists(c):
            found = _probe(c)
            if found:
                return found
    return None


def _ensure_venv(venv: Path, python: str, key: str) -> Path:
    py = venv / "bin" / "python"
    marker = venv / READY
    if marker.is_file() and marker.read_text() == key and py.exists():
        r = _run([py, "-c", "import numpy"], timeout=60)
        if r.returncode == 0:
            return py
    shutil.rmtree(venv, ignore_errors=True)
    r = _run([python, "-m", "venv", venv], timeout=120)
    if r.returncode != 0:
        _fail(f"{python} -m venv", r)
    r = _run([py, "-m", "pip", "install", "--only-binary=:all:", NUMPY_SPEC], timeout=300)
    if r.returncode != 0:
        _fail(f"pip install {NUMPY_SPEC} (Python 3.10 wheel from the configured index)", r)
    marker.write_text(key)
    return py


@pytest.fixture(scope="module")
def board_venv(tmp_path_factory):
    """Python of a 3.10 + numpy venv with dgfpga freshly installed from this checkout."""
    found = find_board_python()
    if found is None:
        pytest.skip("no Python %d.%d with venv/ensurepip found (PATH, pyenv, /usr/bin; or set "
                    "DGFPGA_BOARD_PYTHON): the board's PYNQ image runs Python 3.10, so the "
                    "board path is not checked under it here" % BOARD_PYTHON)
    python, version = found
    numpy_tag = re.sub(r"[^0-9A-Za-z.]+", "_", NUMPY_SPEC.replace("numpy", "")).strip("_") or "any"
    key = f"{os.path.realpath(python)} {version} {NUMPY_SPEC}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    cache = Path(os.environ.get("DGFPGA_TEST_CACHE")
                 or Path(tempfile.gettempdir()) / "dgfpga-test-cache")
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"board-py{version}-numpy{numpy_tag}-{digest}"
    src = _copy_checkout(tmp_path_factory.mktemp("dgfpga-src"))
    with _locked(cache / f"{venv.name}.lock"):
        py = _ensure_venv(venv, python, key)
        # As on the board: non-editable, no dependencies (numpy is already there).
        r = _run([py, "-m", "pip", "install", "--no-deps", "--force-reinstall",
                  "--no-cache-dir", src], timeout=300)
        if r.returncode != 0:
            _fail("pip install --no-deps <checkout> into the board venv", r)
        yield py


def test_venv_is_the_board_python_without_torch(board_venv, tmp_path):
    r = _run([board_venv, "-c", "import sys, numpy; print('%d.%d' % sys.version_info[:2]); "
                                "print(numpy.__version__)"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "%d.%d" % BOARD_PYTHON
    r = _run([board_venv, "-c", "import torch"], cwd=tmp_path)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr, (r.stdout, r.stderr)
    r = _run([board_venv, "-c", "import tomllib"], cwd=tmp_path)
    assert r.returncode != 0, "Python 3.10 has no tomllib: the venv is not the board's Python"
    r = _run([board_venv, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path)
    names = sorted(line.split("==")[0].lower() for line in r.stdout.split())
    assert not {"torch", "tomli", "scikit-learn"} & set(names), names


def test_install_ships_packages_and_data(board_venv, tmp_path):
    code = (
        "import sys, pathlib, dgfpga, dgfpga_host\n"
        "pkg = pathlib.Path(dgfpga.__file__).parent / 'contract'\n"
        "assert 'site-packages' in dgfpga.__file__, dgfpga.__file__\n"
        "assert 'site-packages' in dgfpga_host.__file__, dgfpga_host.__file__\n"
        "tomls = sorted(p.name for p in (pkg / 'configs').glob('*.toml'))\n"
        "tmpls = sorted(p.name for p in (pkg / 'templates').glob('*.tmpl'))\n"
        "assert 'ultra96.toml' in tomls and 'small.toml' in tomls, tomls\n"
        "assert tmpls, 'no templates installed'\n"
        "import dgfpga_host.cli, dgfpga_host.runner, dgfpga_host.bundle, dgfpga_host.sim_devices\n"
        "import dgfpga_host.pynq_device\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sklearn', 'tomli'))\n"
        "assert not bad, bad\n"
        "print('ok', len(tomls), len(tmpls))\n")
    r = _run([board_venv, "-c", code], cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-3000:]
    want = {p.name for p in (ROOT / "dgfpga" / "contract" / "templates").glob("*.tmpl")}
    assert int(r.stdout.split()[2]) == len(want)


def test_bench_numpy_device_under_board_python(board_venv, bundle_dir, tmp_path):
    exe = board_venv.parent / "dgfpga-host"
    assert exe.exists(), "the dgfpga-host console script was not installed"
    r = _run([exe, "bench", "--bundle", bundle_dir, "--device", "numpy", "--images", "selfcheck:2",
              "--no-progress"], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "bit-exact vs golden (logits + masks, gated and dense): PASS" in r.stdout, r.stdout
    assert "on device 'numpy'" in r.stdout
    r = _run([exe, "info", "--bundle", bundle_dir], cwd=tmp_path)
    assert r.returncode == 0 and "self-check images: 4" in r.stdout, (r.stdout, r.stderr)
