"""The shipped DGNet on real test images through every engine level, bit-exact.

resdg20_cifar10_d50 (models/checkpoints) quantized with the embedded calibration set,
20 embedded test images: the numpy interpreter, the HLS C-sim (ctypes bridge) and, with
Verilator, the RTL, all driven by the board runtime, gated and dense, against the golden
model's logits and masks.
"""
import numpy as np
import pytest

from conftest import ROOT, require_verilator

CKPT = ROOT / "models" / "checkpoints" / "resdg20_cifar10_d50.pth.tar"
N_IMAGES = 20


@pytest.fixture(scope="module")
def shipped_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    from dgfpga.data import embedded as data
    from dgfpga.workflows.build import build_hls
    from dgfpga.contract.engine_config import load_config
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga_host.bundle import load_bundle
    model, _ = load_float_model(CKPT)
    qm = quantize_model(model, data.load_split("train", 256).images)
    test = data.load_split("test", N_IMAGES)
    out = tmp_path_factory.mktemp("shipped")
    r = build_hls(qm, load_config("small"), out, test.images, test.labels)
    return load_bundle(r.bundle_dir)


def _check(bundle, device, n):
    from dgfpga_host.runner import NetworkRunner
    runner = NetworkRunner(bundle, device)
    sc = bundle.selfcheck
    gated_cycles, dense_cycles = [], []
    for i in range(n):
        r = runner.run_image(sc.images[i])
        np.testing.assert_array_equal(r.logits_int, sc.logits_int[i], err_msg=f"image {i}")
        for b in range(len(sc.spatial)):
            np.testing.assert_array_equal(r.spatial[b], sc.spatial[b][i])
            np.testing.assert_array_equal(r.channel[b], sc.channel[b][i])
        d = runner.run_image(sc.images[i], dense=True)
        np.testing.assert_array_equal(d.logits_int, sc.logits_int_dense[i], err_msg=f"image {i}")
        gated_cycles.append(r.cycles)
        dense_cycles.append(d.cycles)
    return np.median(gated_cycles), np.median(dense_cycles)


def test_shipped_model_numpy_interpreter(shipped_bundle):
    from dgfpga_host.sim_devices import NumpyDevice
    g, d = _check(shipped_bundle, NumpyDevice(shipped_bundle.cfg), 5)
    assert g < d


def test_shipped_model_hls_csim_20_images(shipped_bundle):
    from dgfpga.backends.hls_csim import CsimError
    from dgfpga_host.sim_devices import CsimDevice
    try:
        dev = CsimDevice(shipped_bundle.cfg)
    except CsimError as exc:
        pytest.skip(f"C-sim engine cannot be built here: {exc}")
    g, d = _check(shipped_bundle, dev, N_IMAGES)
    assert d / g > 1.5          # the d50 model skips about half the MACs


@pytest.mark.verilator
def test_shipped_model_rtl_one_image(shipped_bundle):
    require_verilator()
    from dgfpga_host.sim_devices import RtlDevice
    g, d = _check(shipped_bundle, RtlDevice(shipped_bundle.cfg), 1)
    assert d / g > 1.5
