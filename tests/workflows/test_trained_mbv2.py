"""The shipped trained MobileNetV2 variant (`models/checkpoints/mobilenet_v2dg9_cifar10_d75.pth.tar`,
`mobilenet_v2dg9_cifar10`, models/MODEL_CARD.md "Trained MobileNetV2 variant"): it loads as
a trained DGNet; its ultra96 network program (ungated blocks: dense [expand,] depthwise,
projection; gated identity blocks: gate record, expand, depthwise gated on both sides,
projection + residual in place; tail; head) through the numpy interpreter (`pending=True`)
on real test images == the integer golden model (logits, every decision, MACs), gated and
dense; and (slow: the whole test split through the float and the int8 model, 1-2 min under
load) issue 15's targets float vs int8 — top-1 within 0.5 pt, gate agreement >= 98 % over
all spatial and over all channel decisions, on gates that really decide — and the float
figures the card records.

Per block the channel agreement of the two deepest gated blocks is below 98 % (measured
97.84 % features.6, 97.53 % features.8; the integer gate arithmetic alone flips 18 of
1,152,000 channel decisions, so this is the activation quantization of the ~25 layers
before them acting on channel logits near 0: the gates decide 70 % on after 10 epochs);
the per-block floor checked is 97 %, the measured figures are in the model card."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import ROOT  # noqa: E402

CKPT = ROOT / "models" / "checkpoints" / "mobilenet_v2dg9_cifar10_d75.pth.tar"
ARCH = "mobilenet_v2dg9_cifar10"
#: issue 15 / `dgfpga qreport` targets
MAX_TOP1_GAP = 0.5
MIN_GATE_AGREEMENT = 0.98
MIN_BLOCK_AGREEMENT = 0.97      # per gated block (module docstring)


def _load():
    from dgfpga.quant.float_model import load_float_model
    if not CKPT.is_file():
        pytest.fail(f"{CKPT} is not shipped (models/MODEL_CARD.md says how to train it)")
    return load_float_model(CKPT)


@pytest.fixture(scope="module")
def trained():
    """(float model, meta, quantized model): what `dgfpga quantize --calib
    embedded:256:train` does for a gated checkpoint."""
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.quantizer import QuantConfig, quantize_model
    torch.set_num_threads(1)
    model, meta = _load()
    qm = quantize_model(model, load_split("train", 256).images,
                        QuantConfig(calibration_mode="gated"))
    return model, meta, qm


def test_it_is_a_trained_mobilenet_dgnet(trained):
    model, meta, qm = trained
    assert model.arch == ARCH == qm.arch and meta["arch"] == ARCH
    assert {b.kind for b in model.blocks()} == {"inverted_residual"}
    assert sum(b.gated for b in model.blocks()) == 4
    assert meta["dense"] is False and meta["target_density"] is not None
    # well above chance (10 classes), and the test figures `dgfpga evaluate --record` wrote
    assert meta["test_top1"] >= 50.0 and 0.5 < meta["test_density"] < 0.95


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_engine_program_equals_golden_on_real_images(trained, dense):
    """One start of the ultra96 program per test image == the golden model: logits,
    mask_s, mask_c of the 4 gated blocks, conv MACs (trained weights: the network's own
    decisions, some tiles and channels off on these images)."""
    from dgfpga.contract import program as P
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data.embedded import load_split
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.interpreter import run_program
    from dgfpga.runtime.packer import plan_network, start_regions
    qm = trained[2]
    plan = plan_network(qm, load_config("ultra96"))
    x = load_split("test").images[:3]
    g = run_golden(qm, x, masks="dense" if dense else None)
    gated = [m for m in g.masks if m is not None]
    assert len(gated) == 4
    if not dense:       # the gates decide on these images (not all on)
        assert any(not m.spatial[n].all() for m in gated for n in range(len(x)))
    lo = plan.logits
    for n in range(len(x)):
        mem = start_regions(plan, g.layers["input"][n])
        r = run_program(plan.program, plan.record_count, mem, plan.cfg,
                        P.RUN_DENSE if dense else 0, pending=True)
        assert r.ok, r.message
        np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                      g.logits_int[n], err_msg=f"image {n}")
        for (sp, ch), m in zip(r.gate_masks, gated):
            np.testing.assert_array_equal(sp.reshape(-1), m.spatial[n].reshape(-1))
            np.testing.assert_array_equal(ch, m.channel[n])
        conv = sum(int(v[n]) for k, v in g.macs.items()
                   if ".mask_" not in k and k != qm.head.name)
        assert sum(r.macs) == conv


@pytest.fixture(scope="module")
def report(trained):
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.evaluate import evaluate_quantized
    model, _, qm = trained
    te = load_split("test")
    return evaluate_quantized(model, qm, te.images, te.labels)


@pytest.mark.slow
def test_recorded_float_figures_reproduce(trained, report):
    """The float top-1 and the official MAC density `dgfpga evaluate --record` wrote."""
    from dgfpga.data.embedded import load_split
    from dgfpga.workflows.train import evaluate
    model, meta, _ = trained
    assert report["top1_float"] == pytest.approx(meta["test_top1"], abs=1e-9)
    ev = evaluate(model, load_split("test"))
    assert ev["density"] == pytest.approx(meta["test_density"], abs=1e-6)


@pytest.mark.slow
def test_gates_are_mixed(report):
    """Every gated block's int8 density strictly between all off and all on (else the
    agreement below would be trivial); ungated blocks dense."""
    gated = [b for b in report["blocks"] if "spatial_agreement" in b]
    assert len(gated) == 4
    for b in gated:
        assert 0.05 <= b["density_int8"] <= 0.98, b
    for b in report["blocks"]:
        if "spatial_agreement" not in b:
            assert b["density_int8"] == 1.0, b


@pytest.mark.slow
def test_float_and_int8_top1_within_half_a_point(report):
    assert abs(report["top1_float"] - report["top1_int8"]) <= MAX_TOP1_GAP, report


@pytest.mark.slow
def test_gate_agreement_at_least_98_percent(report):
    assert report["spatial_agreement"] >= MIN_GATE_AGREEMENT, report
    assert report["channel_agreement"] >= MIN_GATE_AGREEMENT, report
    for b in report["blocks"]:
        for k in ("spatial_agreement", "channel_agreement"):
            if k in b:      # the module docstring: two blocks' channel gates at 97.5-97.9 %
                assert b[k] >= MIN_BLOCK_AGREEMENT, b


@pytest.mark.slow
def test_float_and_int8_density_in_one_accounting(report):
    """qreport's density line compares like with like: the float model's official MACs
    plus the stem's mask-independent difference, over the executed dense MACs, against the
    int8 golden model's executed density (model card: 0.7621 vs 0.7624)."""
    assert report["density_float"] == pytest.approx(0.7621, abs=5e-5)
    assert abs(report["density_float"] - report["density_int8"]) < 0.001, report
