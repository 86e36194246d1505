"""dgfpga.quant.fakequant vs dgfpga.numerics.golden: two independent implementations of the integer
network must agree on every element of every layer."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")

from dgfpga.numerics import golden
from dgfpga.quant.fakequant import compare_layers, run_fakequant  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    calib = load_split("train", 64).images
    model = make_test_model("resdg20_cifar10", calib, seed=7)
    return quantize_model(model, calib), load_split("test", 24).images


def _total(diff):
    return sum(d for d, _ in diff.values()), sum(n for _, n in diff.values())


@pytest.mark.parametrize("mode", ["gated", "dense", "random"])
def test_every_layer_is_identical(setup, mode):
    qm, images = setup
    n = len(images)
    if mode == "random":
        rng = np.random.default_rng(0)
        masks = [(rng.random((n, *b.grid)) < 0.5, rng.random((n, b.conv1.out_channels)) < 0.5)
                 for b in qm.blocks]
    else:
        masks = "dense" if mode == "dense" else None
    g = golden.run_golden(qm, images, masks=masks)
    fq = run_fakequant(qm, images, masks="dense" if mode == "dense" else g.masks)
    diff = compare_layers(g.layers, fq.layers)
    assert set(diff) == set(g.layers)          # every tensor compared
    wrong, total = _total(diff)
    assert wrong == 0, {k: v for k, v in diff.items() if v[0]}
    assert total > 1_000_000
    np.testing.assert_array_equal(g.logits_int, fq.logits_int)


def test_float64_requantization_agrees_here(setup):
    """A float64 requantization can only differ from the integer one when z/2^shift lies
    within float64 rounding error of a .5 boundary; on real data that is (so far) never."""
    qm, images = setup
    g = golden.run_golden(qm, images)
    fq = run_fakequant(qm, images, masks=g.masks, requant="float64")
    wrong, total = _total(compare_layers(g.layers, fq.layers))
    assert wrong <= total * 1e-6


def test_independent_float64_gates_agree_with_float32_gates(setup):
    qm, images = setup
    g = golden.run_golden(qm, images)
    fq = run_fakequant(qm, images)            # own gates (float64 torch)
    for gm, (sp, ch), (ls, lc) in zip(g.masks, fq.masks, fq.gate_logits):
        # Decisions may differ only where the logit is within float32 error of 0.
        assert not np.any((gm.spatial != sp) & (np.abs(ls) > 1e-4))
        assert not np.any((gm.channel != ch) & (np.abs(lc) > 1e-4))


def test_imagenet_stem_and_maxpool_path():
    """resdg18 (7x7/s2 stem + 3x3/s2 max-pool, four stages) at a small input size:
    golden == fake-quant on every layer, and the MACs equal the float model's accounting."""
    import torch

    from dgfpga.quant.float_model import IMAGENET_MEAN, IMAGENET_STD, make_test_model
    from dgfpga.quant.quantizer import quantize_model
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (8, 3, 64, 64))
    x = ((u - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[:, None, None])
    x = x.astype(np.float32)
    model = make_test_model("resdg18", x, input_size=(64, 64), num_classes=10)
    qm = quantize_model(model, x)
    assert qm.stem.maxpool and qm.stem.conv.kernel == 7 and len(qm.blocks) == 8
    g = golden.run_golden(qm, x)
    fq = run_fakequant(qm, x, masks=g.masks)
    wrong, total = _total(compare_layers(g.layers, fq.layers))
    assert wrong == 0 and total > 100_000
    with torch.no_grad():
        out = model.forward_gated(torch.from_numpy(x))
    gf = golden.run_golden(qm, x, masks=out.masks)
    np.testing.assert_array_equal(gf.total_macs, out.macs.numpy())
