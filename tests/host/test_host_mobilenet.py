"""The board runtime with a MobileNetV2 bundle (ungated blocks, depthwise layers, a tail
conv): the bundle round trip, the runner in one start per image on the numpy device
(which runs the depthwise/pixel-sum records only when asked: the engines do not implement
them yet, docs/formats.md "Depthwise layers") bit-exact against the golden model, and
build-hls refusing to generate a project its engine would refuse."""
from pathlib import Path

import numpy as np
import pytest

from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError

CFG = load_config(Path(__file__).resolve().parents[1] / "runtime" / "configs" / "zcu102_r50.toml")


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
    from dgfpga_host.device import EngineFault
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    qm, x, out = mbv2
    b = load_bundle(out)
    assert b.plan.pending and b.plan.tail is not None
    # as the engines do today: the first depthwise record is refused, nothing hangs
    with pytest.raises(EngineFault, match="BAD_OP"):
        NetworkRunner(b, NumpyDevice(CFG)).run_image(b.selfcheck.images[0])
    runner = NetworkRunner(b, NumpyDevice(CFG, pending=True), validate=True)
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


def test_build_hls_refuses_a_program_its_engine_would_refuse(mbv2, tmp_path):
    from dgfpga.workflows.build import build_hls
    qm, x, _ = mbv2
    with pytest.raises(ConfigError, match="depthwise.*not implemented by the HLS engine"):
        build_hls(qm, CFG, tmp_path / "proj", x[:1])
    assert not (tmp_path / "proj").exists()
