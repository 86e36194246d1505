"""dgfpga_models.variants: dgfpga's own small networks from the official blocks (not part of
the official zoo `ARCHS`, which test_models_zoo checks key for key)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dgfpga_models import ARCHS, VARIANTS, all_archs, build_model  # noqa: E402
from dgfpga_models.checkpoint import infer_arch, load_checkpoint, save_checkpoint  # noqa: E402
from dgfpga_models.imagenet import Bottleneck  # noqa: E402


def test_variants_are_not_in_the_official_zoo():
    assert set(VARIANTS).isdisjoint(ARCHS) and set(all_archs()) == set(ARCHS) | set(VARIANTS)


@pytest.mark.parametrize("arch, n", [("resdg29b_cifar10", 3), ("resdg11b_cifar10", 1)])
def test_cifar_bottleneck_structure_and_macs(arch, n):
    m = build_model(arch)
    assert m.arch == arch and len(m.blocks()) == 3 * n
    assert all(isinstance(b, Bottleneck) for b in m.blocks())
    shapes = [(b.in_channels, b.mid_channels, b.out_channels, b.stride, b.tile, b.out_h)
              for b in m.blocks()[::n]]
    assert shapes == [(16, 16, 64, 1, 4, 32), (64, 32, 128, 2, 2, 16), (128, 64, 256, 2, 2, 8)]
    # dense MACs by hand: stem 9*32*32*16*3; per block 1x1 + 3x3 + 1x1 (+ projection); fc
    want = 9 * 32 * 32 * 16 * 3 + 256 * 10
    cin, hw = 16, 32
    for planes, stride in ((16, 1), (32, 2), (64, 2)):
        for j in range(n):
            s = stride if j == 0 else 1
            ho = hw // s
            want += hw * hw * planes * cin + 9 * ho * ho * planes * planes + ho * ho * planes * 4 * planes
            if s != 1 or cin != planes * 4:
                want += ho * ho * planes * 4 * cin
            cin, hw = planes * 4, ho
    assert m.dense_macs == want
    m.eval()
    with torch.no_grad():
        out = m.forward_gated(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, 10) and all(mk.channel2 is not None for mk in out.masks)


def test_checkpoint_round_trip_infers_the_variant(tmp_path):
    m = build_model("resdg29b_cifar10")
    assert infer_arch(build_model("resdg11b_cifar10").state_dict()) == "resdg11b_cifar10"
    p = save_checkpoint(tmp_path / "v.pth.tar", m)
    assert infer_arch(m.state_dict()) == "resdg29b_cifar10"
    back, _ = load_checkpoint(p)
    assert back.arch == "resdg29b_cifar10"
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])


def test_quantized_variant_matches_fakequant():
    """The variant quantizes like resdg50 and its golden model equals the fake-quant path."""
    from dgfpga.numerics import golden
    from dgfpga.quant.fakequant import compare_layers, run_fakequant
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    x = np.random.default_rng(0).normal(0, 1, (8, 3, 32, 32)).astype(np.float32).clip(-1.9, 2.0)
    qm = quantize_model(make_test_model("resdg29b_cifar10", x), x)
    assert {b.kind for b in qm.blocks} == {"bottleneck"}
    g, fq = golden.run_golden(qm, x), run_fakequant(qm, x)
    assert sum(d for d, _ in compare_layers(g.layers, fq.layers).values()) == 0
    np.testing.assert_array_equal(g.logits_int, fq.logits_int)
