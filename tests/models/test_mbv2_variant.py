"""dgfpga_models.variants `mobilenet_v2dg9_cifar10`: the reduced MobileNetV2 DGNet for the
embedded 32x32 data (official blocks, gates on identity blocks only).

References, independent of the code under test: the block table and the MACs written out
by hand from the official formulas (docs/models.md "MAC accounting"), and the integer golden
model for the engine program (packer + numpy interpreter, `pending=True`: the HLS engine
and the RTL implement the depthwise op separately) on the `ultra96` engine, gated and
dense; a narrower member of the family on `small`."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dgfpga_models import ARCHS, VARIANTS, build_model  # noqa: E402
from dgfpga_models.checkpoint import infer_arch, load_checkpoint, save_checkpoint  # noqa: E402
from dgfpga_models.mobilenet_v2 import InvertedResidual  # noqa: E402

ARCH = "mobilenet_v2dg9_cifar10"

#: by hand: (C_in, hidden, C_out, stride, in side, out side, gated, tile, grid side) per block
BLOCKS = [
    (16, 16, 8, 1, 32, 32, False, 0, 0),       # t = 1: no expansion
    (8, 48, 16, 2, 32, 16, False, 0, 0),
    (16, 96, 16, 1, 16, 16, True, 2, 8),
    (16, 96, 24, 2, 16, 8, False, 0, 0),
    (24, 144, 24, 1, 8, 8, True, 2, 4),
    (24, 144, 24, 1, 8, 8, True, 2, 4),
    (24, 144, 32, 2, 8, 4, False, 0, 0),
    (32, 192, 32, 1, 4, 4, True, 2, 2),
    (32, 192, 48, 1, 4, 4, False, 0, 0),
]


def _hand_macs(blocks, stem=16, last=256, classes=10, side=32):
    """Official counting: stem 3*h*w*3*C (a third of the real MACs, as mobilenet_v2_dg),
    per block 9*HW*hid + HW*hid*C_out (+ H_inW_in*hid*C_in with an expansion), fc = the
    tail 1x1 over the last map + the classifier."""
    total = 3 * side * side * 3 * stem
    for cin, hid, cout, _, hi, ho, *_ in blocks:
        total += 9 * ho * ho * hid + ho * ho * hid * cout
        if hid != cin:
            total += hi * hi * hid * cin
    return total + blocks[-1][2] * last * blocks[-1][5] ** 2 + classes * last


def test_structure_and_macs_by_hand():
    m = build_model(ARCH)
    assert ARCH in VARIANTS and ARCH not in ARCHS and m.arch == ARCH
    assert VARIANTS[ARCH].input_size == (32, 32) and VARIANTS[ARCH].num_classes == 10
    assert all(isinstance(b, InvertedResidual) for b in m.blocks())
    got = [(b.in_channels, b.mid_channels, b.out_channels, b.stride, b.in_h, b.out_h, b.gated,
            b.tile, b.grid_h) for b in m.blocks()]
    assert got == BLOCKS
    assert all(b.grid_h == b.grid_w and b.grid_h * b.tile == b.out_h for b in m.blocks() if b.gated)
    assert m.features[0][0].stride == (1, 1) and m.features[-1][0].out_channels == 256
    # every channel count within ultra96's 512
    assert max(max(r[:3]) for r in BLOCKS) <= 512 and m.classifier[1].in_features == 256
    assert m.dense_macs == _hand_macs(BLOCKS) == 4_793_088
    # gate MACs (official): spatial cells*C_in*9, channel C_in*C_in/4 + C_in/4*hidden
    for b, (cin, hid, *_r, gated, _t, g) in zip(m.blocks(), BLOCKS):
        assert b.gate_flops == ((g * g * cin * 9 + cin * (cin // 4) + (cin // 4) * hid)
                                if gated else 0)
    m.eval()
    with torch.no_grad():
        out = m.forward_gated(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, 10)
    assert [mk is not None for mk in out.masks] == [r[6] for r in BLOCKS]


def test_gated_block_without_expansion_is_refused():
    """The official InvertedResidual gates through its expansion layer: a table whose
    identity block has t = 1 is an error naming the stage."""
    with pytest.raises(ValueError, match=r"stage \(1, 16, 1, 1, 4\): block 1 .*needs t > 1"):
        build_model(ARCH, stages=((1, 16, 1, 1, 4),))


def test_checkpoint_round_trip_infers_the_variant(tmp_path):
    m = build_model(ARCH)
    assert infer_arch(m.state_dict()) == ARCH
    back, _ = load_checkpoint(save_checkpoint(tmp_path / "v.pth.tar", m))
    assert back.arch == ARCH
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k


#: a narrower member of the family that fits `small` (64 channels, 8x8 grids, 32 px maps)
SMALL_STAGES = ((1, 8, 1, 1, 4), (4, 16, 2, 2, 2), (2, 24, 2, 2, 2))


def _program_equals_golden(cfg_name, build_kwargs, records, dw_records, gated_dw):
    from dgfpga.contract import formats, program as P
    from dgfpga.contract.engine_config import load_config
    from dgfpga.numerics.golden import run_golden
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.runtime.interpreter import run_program
    from dgfpga.runtime.packer import plan_network, start_regions
    torch.set_num_threads(1)
    x = np.random.default_rng(0).normal(0, 1, (8, 3, 32, 32)).astype(np.float32).clip(-1.75, 2.0)
    qm = quantize_model(make_test_model(ARCH, x, **build_kwargs), x)
    cfg = load_config(cfg_name)
    plan = plan_network(qm, cfg)
    assert plan.record_count == records
    layers = {lp.name: lp.program_template for lp in plan.layers}
    dw = [i for i, r in enumerate(plan.records)
          if r.name in layers and layers[r.name].op == formats.OP_DWCONV]
    assert dw == dw_records
    assert [i for i in dw if layers[plan.records[i].name].tile_gated] == gated_dw
    assert not any(t.pixel_sums for t in layers.values())     # every grid tiles its map
    lo = plan.logits
    for dense in (False, True):
        g = run_golden(qm, x[:2], masks="dense" if dense else None)
        if not dense:       # mixed decisions in every gated block
            for m in g.masks:
                if m is not None:
                    assert 0 < m.spatial[:2].mean() < 1 and 0 < m.channel[:2].mean() < 1
        for n in range(2):
            mem = start_regions(plan, g.layers["input"][n])
            r = run_program(plan.program, plan.record_count, mem, cfg,
                            P.RUN_DENSE if dense else 0, pending=True)
            assert r.ok, r.message
            np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                          g.logits_int[n], err_msg=f"dense={dense} image {n}")
            gm = [m for m in g.masks if m is not None]
            assert len(r.gate_masks) == len(gm)
            for (sp, ch), m in zip(r.gate_masks, gm):
                np.testing.assert_array_equal(sp.reshape(-1), m.spatial[n].reshape(-1))
                np.testing.assert_array_equal(ch, m.channel[n])
            conv = sum(int(v[n]) for k, v in g.macs.items()
                       if ".mask_" not in k and k != qm.head.name)
            assert sum(r.macs) == conv


def test_ultra96_program_equals_golden():
    """The network program on ultra96 (33 records: 9 depthwise, 4 of them gated on both
    sides), one start per image == the golden model: logits, masks, MACs; gated (random
    weights, mixed decisions) and dense."""
    _program_equals_golden("ultra96", {}, 33, [1, 4, 8, 11, 15, 19, 22, 26, 29], [8, 15, 19, 26])


def test_small_member_on_the_small_engine():
    """The narrower member (2 gated blocks, <= 64 channels) on `small` == golden."""
    _program_equals_golden("small", dict(stages=SMALL_STAGES, last_channels=64), 19,
                           [1, 4, 8, 11, 15], [8, 15])
