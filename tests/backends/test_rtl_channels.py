"""The RTL at 2048-channel limits: channel lists longer than 512 entries (issue 15).

The engine keeps the out- and in-channel lists in block RAM (dg_loader g_oclist / g_iclist,
written entry by entry by dg_sequencer, read through registered ports addressed by the
next value of the counter they serve), not as `max_out_channels` + `max_in_channels`
registers. These tests run gated conv layers with in_c / out_c >= 1024 and lists of 600 to
1200 entries on a small array (Tm = Tn = 4) built for 2048-channel limits, every list path
of the loader:

- both sides gated (oc weight layout): the out-channel list row per m-group (bk_ch) and the
  compact-input merge (port B, one listed in-channel per kept byte);
- input gated, output dense (ic_g_k_k_m layout): the in-channel of every span row (port A);
- output gated 3x3 over a dense input;
- depthwise, gated: its one channel list read per span (port A).

Reference: each case's golden model (dgfpga.backends.vectors.build_layer_case: a direct
loop over pixels, channels and taps) and the interpreter (`run_program(..., pending="rtl")`),
which must agree; the RTL must equal both bit for bit (FMAP, SUMS, WORK) with STATUS 0.
"""
from __future__ import annotations


import numpy as np
import pytest

from conftest import require_verilator, wide_channel_config
from dgfpga.contract import regmap as R
from dgfpga.runtime.interpreter import run_program

pytestmark = pytest.mark.verilator

LIMIT = 2048


def _cases():
    from dgfpga.backends.vectors import LayerCase
    return {
        # both channel sides gated: out list of ~1229, in list of ~614 (oc layout: merge)
        "pw_1024_to_2048_both_gated": LayerCase(
            "pw_1024_to_2048_both_gated", 1, 1, 4, 1024, 2048, 2, tile_density=0.75,
            in_density=0.6, out_density=0.6),
        # input gated only (ic layout): in list of ~717 over 2048 inputs, dense output
        "pw_2048_in_gated": LayerCase(
            "pw_2048_in_gated", 1, 1, 4, 2048, 24, 2, tile_density=0.5, in_density=0.35),
        # 3x3, output gated: out list of ~563 of 1024
        "conv3x3_200_to_1024_out_gated": LayerCase(
            "conv3x3_200_to_1024_out_gated", 3, 1, 4, 200, 1024, 2, tile_density=0.75,
            out_density=0.55),
        # depthwise 3x3 over 1024 channels, one list of ~666 (compact in and out)
        "dw_1024_gated": LayerCase(
            "dw_1024_gated", 3, 1, 4, 1024, 1024, 2, tile_density=0.75, out_density=0.65,
            depthwise=True),
    }


CASES = list(_cases())


@pytest.fixture(scope="module")
def sim():
    require_verilator()
    from dgfpga.backends.rtl_sim import FastSim
    with FastSim(wide_channel_config()) as s:
        yield s


@pytest.mark.parametrize("name", CASES)
def test_long_channel_lists_bit_exact(sim, name):
    from dgfpga.backends.vectors import build_layer_case
    from dgfpga.contract import formats
    cfg = wide_channel_config()
    case = _cases()[name]
    vs = build_layer_case(case, cfg, seed=1)
    d = formats.unpack_descriptor(vs.program, cfg)
    # the lists this case is about: longer than 512 entries, over >= 1024 channels
    longest = max(d.n_active_out if d.out_ch_gated else 0, d.n_active_in if d.in_ch_gated else 0)
    assert longest > 512 and max(d.in_c, d.out_c) >= 1024, (d.n_active_out, d.n_active_in)
    ref = {r: a.copy() for r, a in vs.before.items()}
    res = run_program(vs.program, vs.layer_count, ref, cfg, pending="rtl")
    assert res.ok, res.message
    for r in ("fmap", "sums"):        # the interpreter = the golden loop
        np.testing.assert_array_equal(ref[r], vs.expected[r], err_msg=f"interpreter {r}")
    run = sim.run(vs.program, vs.layer_count, {r: a.copy() for r, a in vs.before.items()})
    assert not run.timeout
    assert run.status == 0, R.unpack_status(run.status)
    for r in ("fmap", "sums", "work"):
        np.testing.assert_array_equal(run.regions[r], ref[r], err_msg=f"RTL {r} ({name})")


# ---- input-gated 3x3 weights: one read per active in-channel and m-group (issue 14) -------
@pytest.fixture(scope="module")
def sim_u96():
    require_verilator()
    from dgfpga.backends.rtl_sim import FastSim
    with FastSim("ultra96") as s:
        yield s


def test_ic_layout_reads_an_in_channel_once_per_group(sim_u96):
    """ultra96 (Tm = 16 = the AXI beat): an input-gated 3x3 layer's weights (ic_g_k_k_m) are
    read as ONE 9-beat command per active in-channel and m-group (formats.ic_weight_run_beats),
    not one 1-beat command per kernel position. Against a 40-cycle read latency (8 reads in
    flight) the layer then costs at most 1.3x its zero-latency cycles: with one command per
    position (the loader before the run merge) the weights alone took one latency per 8
    positions, and the same layer took 2.5x (39,343 against 15,750 cycles, measured). Bit-exact
    with the interpreter at both latencies; the cycle model prices the merged reads."""
    from dgfpga.backends.vectors import LayerCase, build_layer_case
    from dgfpga.contract import formats
    from dgfpga.contract.engine_config import load_config
    cfg = load_config("ultra96")
    case = LayerCase("c3x3_256_in_gated_7x7_t1", 3, 1, 7, 256, 64, 1, tile_density=0.6,
                     in_density=0.6, residual="u8")
    vs = build_layer_case(case, cfg, seed=1)
    d = formats.unpack_descriptor(vs.program, cfg)
    assert d.weight_layout == "ic_g_k_k_m" and d.n_active_in > 100
    assert formats.ic_weight_run_beats(cfg.tm, 9, d.out_c, cfg) == 9
    ref = {r: a.copy() for r, a in vs.before.items()}
    assert run_program(vs.program, vs.layer_count, ref, cfg, pending="rtl").ok
    cycles = {}
    for lat in (0, 40):
        run = sim_u96.run(vs.program, vs.layer_count, {r: a.copy() for r, a in vs.before.items()},
                          latency=lat)
        assert not run.timeout and run.status == 0, R.unpack_status(run.status)
        for r in ("fmap", "sums", "work"):
            np.testing.assert_array_equal(run.regions[r], ref[r], err_msg=f"RTL {r} latency {lat}")
        cycles[lat] = run.cycles
    assert cycles[40] < 1.3 * cycles[0], cycles
