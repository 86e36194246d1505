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


def test_independent_torch_gates_equal_the_integer_gates(setup):
    """fakequant's torch re-implementation (bin slicing, F.conv2d, torch int64) gives the
    same integer logits as dgfpga.numerics.gates on the golden model's block inputs, and so
    the same decisions."""
    from dgfpga.numerics import gates
    qm, images = setup
    g = golden.run_golden(qm, images)
    fq = run_fakequant(qm, images)            # its own integer gates
    mixed = 0
    for b, gm, (sp, ch), (ls, lc) in zip(qm.blocks, g.masks, fq.masks, fq.gate_logits):
        x = g.layers[b.in_tensor]
        h, w = x.shape[2:]
        p = gates.gate_pool(gates.bin_sums(x, b.grid), gates.gate_reciprocal(gates.bin_counts(h, w, b.grid)))
        pt = gates.gate_pool(x.astype(np.int64).sum((2, 3)), gates.gate_reciprocal(h * w))
        np.testing.assert_array_equal(ls, gates.spatial_gate_logits_int(p, b.spatial_gate))
        np.testing.assert_array_equal(lc, gates.channel_gate_logits_int(pt, b.channel_gate))
        np.testing.assert_array_equal(sp, gm.spatial)
        np.testing.assert_array_equal(ch, gm.channel)
        mixed += 0 < gm.spatial.mean() < 1
    assert mixed >= 3


def test_torch_gates_on_uneven_bins():
    """Odd map sizes (11x11 into a 3x3 grid: overlapping bins of 16, 20 and 25 px; totals of
    121 px), where R(n) rounds up: fakequant's gates = dgfpga.numerics.gates, logit for logit."""
    from types import SimpleNamespace
    import torch
    from dgfpga.numerics import gates
    from dgfpga.quant.fakequant import _gates
    rng = np.random.default_rng(5)
    c = 8
    block = SimpleNamespace(
        grid=(3, 3), spatial_gate=gates.IntSpatialGate(rng.integers(-32767, 32768, (c, 3, 3)), 12345),
        channel_gate=gates.IntChannelGate(rng.integers(-32767, 32768, (2, c)), rng.integers(-2 ** 14, 2 ** 14, 2),
                                          rng.integers(-2 ** 40, 2 ** 40, 2), 36,
                                          rng.integers(-32767, 32768, (5, 2)), rng.integers(-2 ** 30, 2 ** 30, 5)))
    x = rng.integers(0, 256, (6, c, 11, 11))
    ls, lc = _gates(None, block, torch.from_numpy(x.astype(np.float64)))
    p = gates.gate_pool(gates.bin_sums(x, (3, 3)), gates.gate_reciprocal(gates.bin_counts(11, 11, (3, 3))))
    pt = gates.gate_pool(x.sum((2, 3)), gates.gate_reciprocal(121))
    np.testing.assert_array_equal(ls.numpy(), gates.spatial_gate_logits_int(p, block.spatial_gate))
    np.testing.assert_array_equal(lc.numpy(), gates.channel_gate_logits_int(pt, block.channel_gate))


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
