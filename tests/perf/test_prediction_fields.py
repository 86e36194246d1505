"""Every field of a Prediction against its definition: milliseconds and images per second
from the priced cycles and the clock, the paper's columns in their own fields, and the
density of real masks (all on: 1, all off: 0, one tile of one block: worked out by hand).
"""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.contract.engine_config import load_config
from dgfpga.perf.cycle_model import compare
from dgfpga.perf.netshapes import shape_plan
from dgfpga.perf.prediction import PAPER_TABLE3, paper_configurations, predict_masks

U96 = load_config("ultra96")


@pytest.fixture(scope="module")
def preds():
    return paper_configurations(U96)


def test_paper_columns_land_in_their_fields(preds):
    for p, (network, _sparsity, reduction, speedup) in zip(preds, PAPER_TABLE3):
        assert p.network == network and p.config == "ultra96"
        assert p.paper_mac_reduction == reduction and p.paper_speedup == speedup


def test_times_and_rates_follow_from_the_cycles(preds):
    for p in preds:
        assert p.dense_ms * p.dense_images_per_s == pytest.approx(1e3)
        assert p.gated_ms * p.gated_images_per_s == pytest.approx(1e3)
        assert p.dense_ms / p.gated_ms == pytest.approx(p.speedup)
        assert p.dense_ms > p.gated_ms > 0


def _grids(plan):
    return [bp.conv1.template.grid_h * bp.conv1.template.grid_w for bp in plan.blocks], \
           [bp.conv1.template.out_c for bp in plan.blocks]


def test_predict_masks_all_on_costs_more_than_dense():
    plan = shape_plan("resdg20_cifar10", U96)
    tiles, chans = _grids(plan)
    p = predict_masks("resdg20_cifar10", [np.ones(t, bool) for t in tiles],
                      [np.ones(c, bool) for c in chans], U96)
    assert p.block_density == 1.0
    assert p.mac_reduction < 1 and p.speedup < 1       # all on: the gates are pure overhead
    cmp = compare(plan, None)
    assert p.dense_ms == pytest.approx(1e3 * cmp.dense.total_cycles / U96.clock_hz)


def test_predict_masks_density_by_hand():
    """One tile of block 0 with one of its channels on, everything else off: the mean block
    density is (1/tiles0 * 1/chans0) / blocks."""
    plan = shape_plan("resdg20_cifar10", U96)
    tiles, chans = _grids(plan)
    sp = [np.zeros(t, bool) for t in tiles]
    ch = [np.zeros(c, bool) for c in chans]
    sp[0][0] = ch[0][0] = True
    p = predict_masks("resdg20_cifar10", sp, ch, U96)
    assert p.block_density == pytest.approx(1 / tiles[0] / chans[0] / len(tiles))
    off = predict_masks("resdg20_cifar10", [np.zeros(t, bool) for t in tiles],
                        [np.zeros(c, bool) for c in chans], U96)
    assert off.block_density == 0.0 and off.gated_ms < p.gated_ms < p.dense_ms


def test_default_engine_is_the_shipped_default(preds):
    """No config given: the default engine (ultra96), the same predictions."""
    assert paper_configurations() == preds


# --------------------------------------------------------------- channel-group alignment

def test_align_channels_rounds_each_count_to_a_neighbouring_multiple():
    from dgfpga.perf.cycle_model import random_block_masks
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.perf.prediction import align_channels
    net = net_shape("resdg34")
    for d in (0.05, 0.3, 0.55, 0.8):
        raw = random_block_masks(net, [d] * len(net.blocks), seed=1)
        al = align_channels(net, raw, 16, seed=1)
        for b, r, a in zip(net.blocks, raw, al):
            n, k = len(r.channels), len(a.channels)
            assert k % 16 == 0 and k in (16 * (n // 16), 16 * (n // 16 + 1)) or k == 16
            assert len(np.unique(a.channels)) == k and a.channels.max() < b.out_c
            assert np.array_equal(a.tiles, r.tiles)
            if k <= n:                                   # dropped from the end of the list
                assert np.array_equal(a.channels, r.channels[:k])
            else:                                        # the old ones kept
                assert set(r.channels) <= set(a.channels)
    raw = random_block_masks(net, [0.5] * len(net.blocks), seed=0)
    assert align_channels(net, raw, 1) == raw
    # the rounding keeps the expected count: over the blocks, the mean drift is small
    drift = [len(a.channels) - len(r.channels)
             for s in range(20) for r, a in zip(raw, align_channels(net, raw, 16, seed=s))]
    assert abs(np.mean(drift)) < 1.5 and max(map(abs, drift)) < 16


def test_align_channels_narrow_blocks_are_all_or_nothing_and_errors():
    from dgfpga.errors import ConfigError
    from dgfpga.perf.cycle_model import BlockMask
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.perf.prediction import align_channels
    net = net_shape("resdg20_cifar10")                   # 16/32/64 channels
    masks = [BlockMask(np.arange(3, dtype=np.uint16), np.arange(n, dtype=np.uint16))
             for n in (1, 0, 15, 17, 31, 2, 63, 64, 40)]
    al = align_channels(net, masks, 32, seed=0)
    counts = [len(m.channels) for m in al]
    assert counts[0] == 16 and counts[1] == 0 and counts[2] == 16   # 16 wide: all or none
    assert counts[3] == 32 and counts[4] == 32 and counts[5] == 32 and counts[7] == 64
    assert counts[6] == 64 and counts[8] in (32, 64)
    with pytest.raises(ConfigError, match="integer >= 1"):
        align_channels(net, masks, 0)
    with pytest.raises(ConfigError, match="8 masks for 9 blocks"):
        align_channels(net, masks[:8], 4)


def test_aligned_operating_points_hit_the_paper_and_waste_no_lanes(preds):
    """channel_group = Tm: the same MAC reductions (within 2% of the unaligned point),
    every active channel count a multiple of Tm, fewer gated cycles for the same MACs."""
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.perf.prediction import _masks, block_density_for_reduction
    aligned = paper_configurations(U96, channel_group=U96.tm)
    assert paper_configurations(U96, channel_group=1) == preds
    for a, u in zip(aligned, preds):
        assert a.channel_group == 16 and u.channel_group == 1
        assert a.mac_reduction == pytest.approx(u.mac_reduction, rel=0.02)
        assert a.gated_ms < u.gated_ms and a.efficiency > u.efficiency
        assert a.dense_ms == u.dense_ms
        d = block_density_for_reduction(a.network, a.paper_mac_reduction, 0, U96, 16)
        assert d == a.block_density
        assert all(len(m.channels) % 16 == 0 for m in _masks(net_shape(a.network), d, 0, 16))
