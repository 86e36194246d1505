"""Installed use: `pip install <checkout>` (a real, non-editable build) into a fresh venv
outside the checkout, then, from a folder that is not the checkout, `dgfpga build-hls` on the
shipped checkpoint and one image through the HLS C-sim, bit-exact against the golden model.

This proves the wheel ships the engine sources (hls/, sim/ as `dgfpga/hw/`), the configs,
templates and shipped checkpoints, and that nothing looks for the checkout. The fresh venv
gets dgfpga itself with `--no-deps`; its dependencies (torch, hls4ml, ...) come from this
test's own environment through a path entry appended *after* the venv's site-packages, so the
installed copy - not this checkout's editable install - is the one imported (asserted).
"""
from __future__ import annotations

import os
import site
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from install_helpers import clean_env, copy_checkout, fail, run  # noqa: E402



def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("installed")
    src = copy_checkout(base / "src")
    venv = base / "venv"
    r = run([sys.executable, "-m", "venv", venv], timeout=180)
    if r.returncode != 0:
        fail("python -m venv", r)
    py = venv / "bin" / "python"
    r = run([py, "-m", "pip", "install", "--no-deps", "--no-cache-dir", src], timeout=600)
    if r.returncode != 0:
        fail("pip install --no-deps <checkout copy>", r)
    # dependencies from this environment, searched after the venv's own site-packages
    deps = [p for p in site.getsitepackages() if p != str(_site_packages(venv))]
    (_site_packages(venv) / "zz_dgfpga_test_deps.pth").write_text("\n".join(deps) + "\n")
    return venv, base


def test_installed_copy_is_used_and_finds_its_engine_sources(installed):
    venv, base = installed
    r = run([venv / "bin" / "python", "-c",
             "import dgfpga, dgfpga.paths as p; print(dgfpga.__file__); print(p.engine_root()); "
             "print(p.in_checkout())"], cwd=base)
    assert r.returncode == 0, r.stderr
    mod, root, in_checkout = r.stdout.split()
    assert "site-packages" in mod, mod
    assert root.endswith("site-packages/dgfpga/hw"), root
    assert in_checkout == "False"


def test_build_hls_and_csim_from_an_installed_dgfpga(installed):
    venv, base = installed
    work = base / "work"
    work.mkdir()
    env = clean_env(DGFPGA_CACHE=str(base / "cache"), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    ckpt = next((_site_packages(venv) / "dgfpga_models" / "checkpoints").glob("resdg20_cifar10_d50*"))
    r = run([venv / "bin" / "dgfpga", "build-hls", "--checkpoint", ckpt, "--config", "small",
             "--calib", "embedded:64", "--images", "embedded:1", "-o", work / "build"],
            cwd=work, env=env, timeout=900)
    if r.returncode != 0:
        fail("dgfpga build-hls (installed)", r)
    assert (work / "build" / "src" / "dg_engine.cpp").is_file()
    r = run([venv / "bin" / "dgfpga-host", "bench", "--bundle", work / "build" / "bundle",
             "--device", "csim", "--images", "selfcheck:1", "--no-progress"], cwd=work, env=env, timeout=900)
    if r.returncode != 0:
        fail("dgfpga-host bench --device csim (installed)", r)
    assert "PASS" in r.stdout, r.stdout
    # nothing was written into the installed package or a checkout
    assert not (_site_packages(venv) / "dgfpga" / "hw" / "sim" / "build").exists()
