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
