"""The board runtime with a MobileNetV2 bundle (ungated blocks, depthwise layers, a tail
conv): the bundle round trip, the runner in one start per image on the numpy device
bit-exact against the golden model (both engines implement the depthwise op and pixel
sums, so the default device runs them), a device that refuses a feature an engine does not
implement (formats.PENDING_BY_ENGINE) failing cleanly, and build-hls refusing to generate a
project an engine it packages would refuse."""

import numpy as np
import pytest

from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError

CFG = load_config("ultra96")    # 2048-channel limits


@pytest.fixture(scope="module")
def mbv2(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.workflows.build import selfcheck_for
    from dgfpga_host.bundle import write_bundle
    torch.set_num_threads(1)
    x = np.random.default_rng(1).normal(0, 1, (3, 3, 96, 96)).astype(np.float32).clip(-1.75, 2)
    model = make_test_model("mobilenet_v2_dg", x, input_size=(96, 96), num_classes=10)
    qm = quantize_model(model, x)
    sc = selfcheck_for(qm, x[:2])
    out = write_bundle(tmp_path_factory.mktemp("b") / "bundle", qm, CFG, sc)
    return qm, x, out


def test_selfcheck_holds_the_gated_blocks_only(mbv2):
    from dgfpga_host.bundle import load_bundle
    qm, _, out = mbv2
    b = load_bundle(out)
    gated = [blk for blk in qm.blocks if blk.gated]
    assert 0 < len(gated) < len(qm.blocks)           # MobileNetV2 has ungated blocks
    assert len(b.selfcheck.spatial) == len(b.selfcheck.channel) == len(gated)
    for s, c, blk in zip(b.selfcheck.spatial, b.selfcheck.channel, gated):
        assert s.shape == (2, *blk.grid) and c.shape == (2, blk.conv1.out_channels)


def test_runner_one_start_equals_golden_on_the_numpy_device(mbv2):
    from dgfpga.numerics.golden import run_golden
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    qm, x, out = mbv2
    b = load_bundle(out)
    assert not b.plan.pending and b.plan.tail is not None
    runner = NetworkRunner(b, NumpyDevice(CFG), validate=True)
    gated = [i for i, blk in enumerate(qm.blocks) if blk.gated]
    assert runner.gated == gated
    g = run_golden(qm, b.selfcheck.images)
    for n in range(len(b.selfcheck.images)):
        r = runner.run_image(b.selfcheck.images[n])
        np.testing.assert_array_equal(r.logits_int, b.selfcheck.logits_int[n])
        for k, i in enumerate(gated):
            np.testing.assert_array_equal(r.spatial[k], b.selfcheck.spatial[k][n])
            np.testing.assert_array_equal(r.channel[k], b.selfcheck.channel[k][n])
            assert r.channel2[k] is None
        # the MACs of the engine's work = the golden model's conv MACs (tail included)
        conv = sum(int(v[n]) for key, v in g.macs.items()
                   if ".mask_" not in key and key != qm.head.name)
        assert r.macs == conv
        rd = runner.run_image(b.selfcheck.images[n], dense=True)
        np.testing.assert_array_equal(rd.logits_int, b.selfcheck.logits_int_dense[n])
        assert rd.macs > r.macs and rd.cycles > r.cycles > 0
        assert sum(r.layer_cycles.values()) == r.cycles


def _rtl_pending(monkeypatch):
    """The pending tables as they were while only the HLS engine ran depthwise layers."""
    from dgfpga.contract import formats
    monkeypatch.setattr(formats, "PENDING_BY_ENGINE", {
        "hls": {"ops": (), "fields": ()},
        "rtl": {"ops": (formats.OP_DWCONV,), "fields": ("pixel_sums",)}})
    monkeypatch.setattr(formats, "PENDING_OPS", (formats.OP_DWCONV,))
    monkeypatch.setattr(formats, "PENDING_FIELDS", ("pixel_sums",))


def test_a_device_that_refuses_the_depthwise_op_fails_cleanly(mbv2, monkeypatch):
    """An engine without the depthwise op stops at the first depthwise record with BAD_OP
    (a clean EngineFault naming it), nothing hangs; pending=True runs it."""
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.device import EngineFault
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    _rtl_pending(monkeypatch)
    b = load_bundle(mbv2[2])
    with pytest.raises(EngineFault, match="BAD_OP"):
        NetworkRunner(b, NumpyDevice(CFG)).run_image(b.selfcheck.images[0])
    r = NetworkRunner(b, NumpyDevice(CFG, pending=True)).run_image(b.selfcheck.images[0])
    np.testing.assert_array_equal(r.logits_int, b.selfcheck.logits_int[0])


def test_build_hls_refuses_a_program_an_engine_would_refuse(mbv2, tmp_path, monkeypatch):
    from dgfpga.workflows.build import build_hls
    qm, x, _ = mbv2
    _rtl_pending(monkeypatch)
    with pytest.raises(ConfigError, match="the RTL .*does not implement op 5 \\(dwconv\\)"):
        build_hls(qm, CFG, tmp_path / "proj", x[:1])
    assert not (tmp_path / "proj").exists()
