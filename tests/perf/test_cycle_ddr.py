"""The cycle model's memory terms: DDR read latency, stalls, bursts in flight (the RTL's
read master and simulation memory), and the calibration against RTL runs with ideal memory
AND with latency/stalls. Expected numbers are worked out by hand in the docstrings."""
from __future__ import annotations


import numpy as np
import pytest

from dgfpga.contract import formats as F
from dgfpga.contract.engine_config import load_config
from dgfpga.perf import calibration
from dgfpga.perf.cycle_model import CycleParams, layer_cycles, read_time

SMALL = load_config("small")                 # tm = tn = 4, 8-byte beats
# B = 8 bytes/cycle; overheads: layer 200, m-group 20, tile 12, pipeline 10, prefetch 5
EXACT = CycleParams(axi_efficiency=1.0, dram_bytes_per_s=1e15)


def test_read_time_by_hand():
    """Bursts issued back to back, 8 in flight, latency L from AR to the first beat."""
    p = EXACT.with_memory(40)
    assert read_time(4, 1, p) == 44                 # all in flight: 40 + 4 beats
    # 16 one-beat bursts: the 9th waits for the 1st's slot (40 + 1 cycles later), so the
    # second round pays the latency again: 40 + 8 + (16/8 - 1) * 41 = 89
    assert read_time(16, 1, p) == 89
    # long bursts: the data, not the slots, is the limit: 40 + 16 * 16
    assert read_time(16, 16, p) == 40 + 256
    assert read_time(0, 5, p) == 0
    assert read_time(10, 3, EXACT) == 30            # ideal memory: just the beats
    stalled = EXACT.with_memory(0, 20)              # 20 % refused beats: 1.25 cycles a beat
    assert read_time(8, 2, stalled) == pytest.approx(20)


def test_read_time_from_an_empty_port_by_hand():
    """A tile's prefetch starts from an empty port (dg_loader.sv's PF_WAIT lets the previous
    tile's last beat arrive first), so each further round of 8 bursts waits the whole
    latency. 9 bursts of 16 beats at L = 150: the 9th issues when the 1st is done (166) and
    ends 150 + 16 later: 332, not the stream's 150 + 144 = 294 nor the averaged rounds'
    150 + 128 + 166/8 = 298.75; 18 bursts: 2 * 166 + 150 + 2 * 16 = 514. While the data of
    the bursts in flight outlasts the latency (L = 40), the stream's L + n*b."""
    p = EXACT.with_memory(150)
    assert read_time(9, 16, p, restart=True) == pytest.approx(332)
    assert read_time(9, 16, p) == pytest.approx(298.75)
    assert read_time(18, 16, p, restart=True) == pytest.approx(514)
    assert read_time(9, 16, EXACT.with_memory(40), restart=True) == pytest.approx(184)
    assert read_time(8, 16, p, restart=True) == pytest.approx(150 + 128)   # one round
    assert read_time(9, 16, EXACT, restart=True) == pytest.approx(144)     # ideal: beats


def test_next_group_weights_fill_the_latency_gap_by_hand():
    """The 1x1 layer below with 8 output channels: two m-groups of 4 on `small`, two 4x4
    tiles each. While group 0 runs, the loader reads group 1's params and weights (4 param
    spans of 1 beat + 4 lane spans of 16 B = 2 beats: 8 commands, 12 beats; per tile 4
    commands, 6 beats) in the prefetcher's idle port cycles. At L = 100 a tile's prefetch
    is 5 + read_time'(4 patch rows of 8 beats) = 5 + 100 + 32 = 137; with the weights
    read_time'(8 bursts, 38 beats) = 138, but their 6 beats arrive in the 100 cycles the
    next patch waits for anyway: the tile stays at 137 (compute 86). Four prefetch-bound
    steps: 4 * 137 = 548 (had the weights added, 2 * 143 + 2 * 137 = 560)."""
    d = F.make_descriptor(k=1, stride=1, in_h=4, in_w=8, in_c=16, out_c=8, tile=4)
    lc = layer_cycles(d, SMALL, EXACT.with_memory(100))
    assert lc.bounds["prefetch"] == pytest.approx(548)


def _one_by_one():
    # 1x1 conv, 4x8 map of 16 channels -> 4 channels, two 4x4 tiles, one m-group
    return F.make_descriptor(k=1, stride=1, in_h=4, in_w=8, in_c=16, out_c=4, tile=4)


def test_latency_bound_layer_by_hand():
    """The 1x1 layer above, with and without 100 cycles of read latency.

    Per tile: compute C = 12 + 10 + 16 px * 4 n-groups = 86; port reads 16*16/8 = 32;
    prefetch = 5 + read_time(4 rows of 64 B = 8 beats each):
        L = 0:   5 + 32 = 37            -> step = 86 (compute-bound)
        L = 100: 5 + 100 + 32 = 137     -> step = 137 (latency-bound)
    Weights + params of the group: 4 param spans (1 beat) + 4 lane spans of 16 B (2 beats),
    96 bytes: max(port 96/8, loader 4*8 + 4*16/4 = 48, read_time(8 bursts, 12 beats))
    = 48 (L = 0) / 100 + 12 = 112 (L = 100).
    Record fetch: 96/8 = 12 plus one read latency. Fill (once per layer, the pipeline's
    unoverlapped end): min(C, prefetch) = 37 (L = 0) / 86 (L = 100).
        L = 0:   200 + 48 + 20 + 2*86 + 37 + 12 = 489
        L = 100: 200 + 112 + 20 + 2*137 + 86 + (12 + 100) = 804
    """
    d = _one_by_one()
    assert layer_cycles(d, SMALL, EXACT).total_cycles == pytest.approx(489)
    assert layer_cycles(d, SMALL, EXACT.with_memory(100)).total_cycles == pytest.approx(804)


def test_stalls_slow_a_port_bound_layer():
    """Bandwidth-bound steps take 1/(1 - stall) as long: a 1x1 layer with 64 channels in
    and a port derated to 1 byte/cycle (efficiency 1/8): per tile 16*64 = 1024 read bytes
    = 1024 cycles >> compute; 25 % stalls make every port term 4/3 as long. Not the
    prefetch overhead (5) of the fill: 5 + 4 rows x 32 beats = 133 -> 5 + 128 * 4/3."""
    d = F.make_descriptor(k=1, stride=1, in_h=4, in_w=8, in_c=64, out_c=4, tile=4)
    slow = CycleParams(axi_efficiency=0.125, dram_bytes_per_s=1e15, layer_overhead_cycles=0,
                       mgroup_overhead_cycles=0)
    a = layer_cycles(d, SMALL, slow).total_cycles
    b = layer_cycles(d, SMALL, slow.with_memory(0, 25)).total_cycles
    assert b - (5 + 128 * 4 / 3) == pytest.approx((a - 133) * 4 / 3)


def test_memory_fields_round_trip(tmp_path):
    p = CycleParams(prefetch_overhead_cycles=3).with_memory(40, 20)
    p.save(tmp_path / "p.json")
    q = CycleParams.load(tmp_path / "p.json")
    assert q == p and q.read_latency_cycles == 40 and q.stall_pct == 20
    assert q.with_memory() == CycleParams(prefetch_overhead_cycles=3)


def _shipped(tag: str) -> list:
    stem = "cycles_small_resdg20_cifar10" + ("" if tag == "ideal" else "_" + tag)
    return calibration.load_measurements(calibration.RESULTS / f"{stem}.json")


def _shipped_ultra96(tag: str) -> list:
    return calibration.load_measurements(calibration.RESULTS / f"cycles_ultra96_resdg18_{tag}.json")


@pytest.mark.parametrize("tag", ["ideal", "lat40_st20"])
def test_shipped_calibration_within_5pct_per_layer(tag):
    """The shipped parameters (one engine) reproduce every RTL-measured layer within 5 %,
    with ideal memory and with 40 cycles of read latency and 20 % stalls (each record
    priced against its own memory)."""
    recs = _shipped(tag)
    assert len(recs) == 100 and all(r["bit_exact"] for r in recs)
    assert {(r["latency"], r["stall_pct"]) for r in recs} == (
        {(0, 0)} if tag == "ideal" else {(40, 20)})
    params = CycleParams.load(calibration.params_path(SMALL))
    assert params.read_latency_cycles == 0 and params.stall_pct == 0   # the engine alone
    err = calibration.errors(recs, SMALL, params)
    worst = int(np.argmax(np.abs(err)))
    assert abs(err[worst]) < 0.05, (recs[worst]["name"], err[worst])


@pytest.mark.parametrize("tag", ["lat0_st0", "lat40_st0"])
def test_shipped_calibration_ultra96_resdg18(tag):
    """The same parameters on the other engine: resdg18's 38 scheduled layers (dense and at
    block density 0.5, stem excluded) measured on the ultra96 RTL with ideal memory and with
    the 40 cycles of read latency `predict` prices the Ultra96 DDR at, each record priced on
    its own engine and memory: all 38 within 5 % in both (worst -1.7 % / +1.6 %). Before
    the weight read port the RTL's stage-4 residual conv2 layers waited for the next
    m-group's weights at every group start (one read port, the prefetcher first: 35/38,
    worst -8.1 % at 40 cycles) and the one-pixel 1x1/s2 projection was -8.8 % with ideal
    memory (36/38)."""
    within, worst = 38, 0.05
    recs = _shipped_ultra96(tag)
    assert len(recs) == 38 and all(r["bit_exact"] for r in recs)
    assert {r["config"] for r in recs} == {"ultra96"}
    params = CycleParams.load(calibration.params_path(SMALL))
    err = np.abs(calibration.errors(recs, SMALL, params))   # each record on its own config
    assert int(np.sum(err <= 0.05)) >= within and err.max() < worst, (
        recs[int(np.argmax(err))]["name"], err.max())


def test_ultra96_stage4_latency_sweep():
    """Stage-4 layers of resdg18 (one-pixel tiles) measured on the ultra96 RTL at read
    latencies from 0 to 150 cycles (shipped, bit-exact): every one within 5 % (worst -4.3 %,
    `layer4.1.conv1.d050` at 150). While weights and patches shared one read port the
    residual conv2 layers were -6 % .. -29 % off from 40 cycles on and tiles of 18 patch
    bursts to -32 % at 150 (the weight spans issued between tiles paid a latency round each;
    docs/explore.md)."""
    recs = _shipped_ultra96("stage4_latency_sweep")
    assert len(recs) == 38 and all(r["bit_exact"] for r in recs)
    params = CycleParams.load(calibration.params_path(SMALL))
    err = np.abs(calibration.errors(recs, SMALL, params))
    lat = np.array([r["latency"] for r in recs])
    assert sorted(set(lat)) == [0, 10, 20, 40, 60, 100, 150]
    assert err.max() < 0.05, (recs[int(np.argmax(err))]["name"], err.max())


@pytest.mark.parametrize("tag", ["lat20_st10", "lat0_st30", "lat100_st0"])
def test_memories_the_fit_never_saw(tag):
    """Out of sample: the same 100 layers measured on the RTL against three other memories
    (shipped, all bit-exact), priced with the shipped parameters: all within 5 % (worst
    +2.0 % / -2.1 % / -1.4 %). 100 cycles of latency was where the model was weakest while
    weights and patches shared one read port (96/100, to +7 %: gated conv2 layers with
    residual-only tiles)."""
    within, worst = 100, 0.05
    recs = _shipped(tag)
    assert len(recs) == 100 and all(r["bit_exact"] for r in recs)
    err = np.abs(calibration.errors(recs, SMALL,
                                    CycleParams.load(calibration.params_path(SMALL))))
    assert int(np.sum(err <= 0.05)) >= within and err.max() < worst, err.max()
