"""The shipped trained Bottleneck variant (`models/checkpoints/resdg11b_cifar10_d55.pth.tar`,
models/MODEL_CARD.md): float vs int8 on embedded test images, issue 15's targets —
top-1 within 0.5 pt and gate agreement >= 98 % (spatial, and channel counting both of a
Bottleneck's channel gates) — on gates that really decide (mixed on/off), and the float
accuracy the card records; and the trained network's engine program (gate, conv1, gate-2,
projection, both-gated conv2, conv3 + residual records) through the numpy interpreter on
real test images, bit-exact against the integer golden model.

The whole test split (2000 images, as the card's `dgfpga qreport` figures): on a subset the
top-1 comparison is noise — float and int8 predict differently on ~3 % of the images, so
the first 400 images alone give 67.25 % vs 68.25 % for the 68.00 % vs 67.85 % of the
whole split."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

# the whole test split through the float and the int8 model (~20 s); the trained network
# also runs bit-exact on the C-sim in the default suite (tests/backends/test_hls_csim.py)
pytestmark = pytest.mark.slow

from conftest import ROOT  # noqa: E402

CKPT = ROOT / "models" / "checkpoints" / "resdg11b_cifar10_d55.pth.tar"
#: issue 15 / `dgfpga qreport` targets
MAX_TOP1_GAP = 0.5
MIN_GATE_AGREEMENT = 0.98


@pytest.fixture(scope="module")
def report():
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.evaluate import evaluate_quantized
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import QuantConfig, quantize_model
    if not CKPT.is_file():
        pytest.fail(f"{CKPT} is not shipped (models/MODEL_CARD.md says how to train it)")
    model, meta = load_float_model(CKPT)
    # what `dgfpga quantize --calib embedded:train:256` does for a gated checkpoint
    qm = quantize_model(model, load_split("train", 256).images,
                        QuantConfig(calibration_mode="gated"))
    te = load_split("test")
    r = evaluate_quantized(model, qm, te.images, te.labels)
    return model, meta, r, qm


def test_it_is_a_trained_bottleneck_dgnet(report):
    model, meta, r, _ = report
    assert model.arch == "resdg11b_cifar10" and r["arch"] == "resdg11b_cifar10"
    assert {b.kind for b in model.blocks()} == {"bottleneck"}
    assert meta["dense"] is False and meta["target_density"] is not None
    # well above chance (10 classes): the recorded test top-1 and this run's
    assert meta["test_top1"] >= 60.0
    # the float figures are the ones `dgfpga evaluate --record` wrote into the file
    assert r["top1_float"] == pytest.approx(meta["test_top1"], abs=1e-9)
    assert r["density_float"] == pytest.approx(meta["test_density"], abs=1e-6)


def test_gates_are_mixed(report):
    """The gates decide: neither all on nor all off, in every block and gate (else the
    agreement below would be trivial)."""
    _, _, r, _ = report
    assert 0.2 <= r["density_int8"] <= 0.9
    for b in r["blocks"]:
        assert 0.05 <= b["density_int8"] <= 0.98, b


def test_float_and_int8_top1_within_half_a_point(report):
    _, _, r, _ = report
    assert abs(r["top1_float"] - r["top1_int8"]) <= MAX_TOP1_GAP, r


def test_gate_agreement_at_least_98_percent(report):
    _, _, r, _ = report
    assert r["spatial_agreement"] >= MIN_GATE_AGREEMENT, r
    assert r["channel_agreement"] >= MIN_GATE_AGREEMENT, r
    for b in r["blocks"]:
        for k in ("spatial_agreement", "channel_agreement", "channel2_agreement"):
            assert b[k] >= MIN_GATE_AGREEMENT, b


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_engine_program_equals_golden_on_real_images(report, dense):
    """One start of the ultra96 program per image == the golden model: logits, mask_s,
    mask_c1, mask_c2 (trained weights: the decisions are the network's own)."""
    import numpy as np
    from dgfpga.contract import program as P
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data.embedded import load_split
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.interpreter import run_program
    from dgfpga.runtime.packer import plan_network
    qm = report[3]
    plan = plan_network(qm, load_config("ultra96"))
    x = load_split("test").images[:3]
    g = run_golden(qm, x, masks="dense" if dense else None, keep_layers=True)
    if not dense:       # the gates decide on these images (not all on)
        assert any(not m.spatial[n].all() for m in g.masks for n in range(len(x)))
    ib, lo = plan.fmap[plan.input_tensor], plan.logits
    for n in range(len(x)):
        mem = {k: np.zeros(v, np.uint8) for k, v in plan.region_bytes.items()}
        mem["weight"][:] = plan.weight_image
        mem["fmap"][ib.offset:ib.offset + ib.nbytes] = \
            np.ascontiguousarray(np.moveaxis(g.layers["input"][n], 0, -1)).view(np.uint8).reshape(-1)
        r = run_program(plan.program, plan.record_count, mem, plan.cfg,
                        P.RUN_DENSE if dense else 0)
        assert r.ok, r.message
        assert r.records.count("gate2") == len(plan.blocks) == 3
        np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                      g.logits_int[n], err_msg=f"image {n}")
        for i, m in enumerate(g.masks):
            sp, ch = r.gate_masks[i]
            np.testing.assert_array_equal(sp.reshape(-1), m.spatial[n].reshape(-1))
            np.testing.assert_array_equal(ch, m.channel[n])
            np.testing.assert_array_equal(r.gate2_masks[i], m.channel2[n])
