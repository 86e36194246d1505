"""The RTL gate unit at 2048-channel limits (issue 15; sim/rtl/dg_gate.sv, docs/rtl.md "The
gate unit at the channel limits"): the spatial 3x3 runs bin by bin after the bin's pool, so
the unit keeps one bin's pooled vector, the 3x3 taps and the cell logits instead of every
bin's pooled vector for every channel (the memory that scaled with max_in_channels x grid^2).

A small array (Tm = Tn = 4) with max_in/out_channels 2048 runs gate and gate-2 records of
1024-2048 channels (a gate record alone; a gate record and the gate-2 record over its masks),
gated and dense: STATUS and every region bit for bit
against the interpreter (`runtime.interpreter.run_program`), and the masks mixed (a test
whose gates are all on or all off would not see a wrong logit)."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import require_verilator, wide_channel_config

from dgfpga.contract import formats
from dgfpga.contract import program as prog
from dgfpga.numerics import gates
from dgfpga.runtime.interpreter import run_program

DENSE = prog.RUN_DENSE


class _Alloc:
    def __init__(self, a: int):
        self.a, self.pos = a, a                       # a guard beat at 0

    def take(self, n: int) -> int:
        off = self.pos
        self.pos += -(-max(n, 1) // self.a) * self.a
        return off


def _centre(logits) -> int:
    """A spatial bias that puts the median logit at 0 (mixed tiles)."""
    return int(np.clip(-np.median(logits), -(1 << 45), 1 << 45))


def _mixed_biases(rng, logits, on: float = 0.5, margin: int = 1000) -> np.ndarray:
    """Channel biases b2 that turn each logit into +margin (probability `on`) or -margin
    (margin 0: 0 or -1, so any change of a logit flips about half of the decisions)."""
    lg = np.asarray(logits, np.int64).reshape(-1)
    return np.clip(-lg + np.where(rng.random(lg.size) < on, margin, -max(margin, 1)),
                   -(1 << 45), 1 << 45)


def _channel_gate(rng, cin: int, cout: int, hid: int) -> gates.IntChannelGate:
    return gates.IntChannelGate(rng.integers(-3000, 3001, (hid, cin)).astype(np.int16),
                                rng.integers(1, 64, hid).astype(np.int32),
                                rng.integers(-(1 << 20), 1 << 20, hid).astype(np.int64), 24,
                                rng.integers(-3000, 3001, (cout, hid)).astype(np.int16),
                                np.zeros(cout, np.int64))


class _Program:
    """Records and their memory, laid out as they are added (regions grown on demand)."""

    def __init__(self, cfg, rng):
        self.cfg, self.rng, self.a = cfg, rng, cfg.axi_bytes
        self.alloc = {r: _Alloc(self.a) for r in ("weight", "work", "sums")}
        self.data: list = []                          # (region, offset, uint8 bytes)
        self.records: list = []

    def take(self, region: str, n: int) -> int:
        return self.alloc[region].take(n)

    def put(self, region: str, n_or_bytes, data=None) -> int:
        raw = np.frombuffer(bytes(n_or_bytes), np.uint8) if data is None else data
        off = self.take(region, raw.size)
        self.data.append((region, off, raw))
        return off

    def memory(self) -> dict:
        a = self.a
        mem = {"fmap": np.zeros(4 * a, np.uint8)}
        for r, al in self.alloc.items():              # WORK and SUMS start as noise
            mem[r] = (np.zeros(al.pos + a, np.uint8) if r == "weight"
                      else self.rng.integers(0, 256, al.pos + a).astype(np.uint8))
        for r, off, raw in self.data:
            mem[r][off:off + raw.size] = raw
        return mem

    def program(self) -> bytes:
        return b"".join(self.records)


def _saturate_high(cg: gates.IntChannelGate, pooled_total, rng) -> np.ndarray:
    """m1, o1 of `cg` re-chosen so that every hidden unit's z = A*m1 + o1 + 2^(s-1) is
    2^(s+22) + r * 2^s, r < 2^15: z >> s is above the clamp only through a bit above the 22
    that the gate unit's byte-shifted operand keeps (dg_gate.sv h_hi), and its low bits alone
    are a small in-range value. Returns z >> s (all of them >= 2^22)."""
    a = (pooled_total.astype(np.float64) @ cg.w1.astype(np.float64).T).astype(np.int64)
    assert (np.abs(a) >= 1 << 16).all(), "fc1 sums too small to reach 2^(s+22) with an int32 m1"
    top = np.int64(1) << (cg.shift + 22)
    m1 = np.sign(a) * -(-top // np.abs(a))                            # A*m1 in [2^(s+22), +|A|)
    r = rng.integers(0, 1 << 15, a.size)
    o1 = top + (r << cg.shift) - a * m1 - (np.int64(1) << (cg.shift - 1))
    assert (np.abs(m1) < 1 << 31).all() and (np.abs(o1) < 1 << 46).all()
    cg.m1, cg.o1 = m1.astype(np.int32), o1.astype(np.int64)
    return (a * m1 + o1 + (np.int64(1) << (cg.shift - 1))) >> cg.shift


def add_gate(p: _Program, in_c: int, out_c: int, hw: tuple, tile: int, grid: tuple,
             on: float = 0.5, saturate_high: bool = False, tiles_on: bool = False):
    """A gate record over an 8-bit h x w x in_c map (its tile sums in SUMS), pooled to
    `grid`; its spatial bias centred and its channel biases mixed on this map's logits
    (a fraction `on` of the channels on); `saturate_high`: every hidden unit above the
    clamp only through its high bits (`_saturate_high`); `tiles_on`: the spatial bias at its
    limit (every spatial logit >= 0, every tile on)."""
    rng, cfg, a = p.rng, p.cfg, p.a
    h, w = hw
    hid = min(6, in_c)
    x = rng.integers(0, 256, (h, w, in_c)).astype(np.uint8)
    ts = formats.tile_pixel_sums(x, tile)
    st_h, st_w = ts.shape[:2]
    table = gates.bin_table(h, w, tile, grid)
    sg = gates.IntSpatialGate(rng.integers(-3000, 3001, (in_c, 3, 3)).astype(np.int16), 0)
    cg = _channel_gate(rng, in_c, out_c, hid)
    if saturate_high:
        pt = gates.gate_pool(ts.astype(np.int64).sum(axis=(0, 1)), table.recip_total)
        assert (_saturate_high(cg, pt, rng) >= 1 << 22).all()
    ls, lc = gates.gate_logits_from_tile_sums(ts, table, sg, cg)
    sg = gates.IntSpatialGate(sg.weight, prog.GATE_BIAS_LIMIT - 1 if tiles_on
                              else _centre(np.asarray(ls).reshape(-1)))
    cg.b2 = _mixed_biases(rng, lc, on)
    n = grid[0] * grid[1]
    rec = prog.GateRecord(
        in_c=in_c, out_c=out_c, hidden=hid, h_shift=cg.shift, st_h=st_h, st_w=st_w,
        gh=grid[0], gw=grid[1], res_list=True,
        sums_offset=p.put("sums", b"", ts.astype("<i4").view(np.uint8).reshape(-1)),
        param_offset=p.put("weight", prog.pack_gate_params(table, sg, cg, a)),
        mask_offset=p.take("work", prog.mask_bytes(n, out_c)),
        c1_tiles_offset=p.take("work", 2 * n), c1_out_ch_offset=p.take("work", 2 * out_c),
        c2_tiles_offset=p.take("work", 2 * n), c2_res_tiles_offset=p.take("work", 2 * n),
        c2_in_ch_offset=p.take("work", 2 * out_c), c2_bitmap_offset=p.take("work", 4 * n))
    p.records.append(prog.pack_gate_record(rec, cfg))
    return rec


def add_gate2(p: _Program, gate: prog.GateRecord, out_c: int, margin: int = 1000):
    """A gate-2 record after `gate` (its in_c = the gate's out_c, its tile grid the gate's):
    the gate's masks (found by running the gate on the interpreter) select conv1's compact
    per-tile sums of an 8-bit map (2x2-px tiles), b2 mixed on the interpreter's logits."""
    rng, cfg, a = p.rng, p.cfg, p.a
    in_c, n, hid = gate.out_c, gate.gh * gate.gw, 5
    mem = p.memory()
    res = run_program(p.program(), len(p.records), mem, cfg)
    assert res.status == 0, res.message
    tiles, chans = (np.asarray(m, bool).reshape(-1) for m in res.gate_masks[-1])
    nc = int(chans.sum())
    sums = rng.integers(0, 4 * 255 + 1, (n, nc)).astype(np.int64)
    recip = int(gates.gate_reciprocal(4 * n))
    cg = _channel_gate(rng, in_c, out_c, hid)
    tot = np.zeros(in_c, np.int64)
    tot[np.flatnonzero(chans)] = sums[tiles].sum(axis=0)
    cg.b2 = _mixed_biases(rng, gates.channel_gate_logits_int(gates.gate_pool(tot, recip), cg),
                          margin=margin)
    raw = np.zeros(n * in_c * 4, np.uint8)
    raw[:sums.size * 4] = sums.astype("<i4").view(np.uint8).reshape(-1)
    rec = prog.Gate2Record(
        in_c=in_c, out_c=out_c, hidden=hid, h_shift=cg.shift, st_h=gate.gh, st_w=gate.gw,
        sums_offset=p.put("sums", b"", raw),             # (the record's section: n x in_c)
        param_offset=p.put("weight", prog.pack_gate2_params(recip, cg, a)),
        in_mask_offset=gate.mask_offset, mask_offset=p.take("work", 4 * out_c),
        c2_out_ch_offset=p.take("work", 2 * out_c), c3_in_ch_offset=p.take("work", 2 * out_c))
    p.records.append(prog.pack_gate2_record(rec, cfg))
    return rec


def _check(sim, program: bytes, count: int, mem: dict, flags: int):
    """Run on the RTL and the interpreter; return (mismatches, interpreter result, RTL run)."""
    ref = {k: v.copy() for k, v in mem.items()}
    res = run_program(program, count, ref, sim.cfg, run_flags=flags)
    run = sim.run(program, count, {k: v.copy() for k, v in mem.items()}, run_flags=flags)
    bad = []
    if run.status != res.status:
        bad.append(f"status {run.status:#x} != {res.status:#x}")
    for r in ("fmap", "work", "sums"):
        if not np.array_equal(run.regions[r], ref[r]):
            bad.append(f"{r}: {int(np.count_nonzero(run.regions[r] != ref[r]))} bytes differ")
    return bad, res, run


# (in_c, out_c, map h x w, sum tile, grid): 1024+ channels, channel counts that are not
# multiples of Tn (partial lane groups), grids whose columns are not a multiple of 3 (the
# cell logits' column banks), a one-column grid, and fewer inputs than Tn
GATE_CASES = {
    "c1030_o1100_grid3x5": (1030, 1100, (12, 20), 4, (3, 5)),
    "c2048_o1024_grid4x4": (2048, 1024, (16, 16), 2, (4, 4)),
    "c1027_o2048_grid5x1": (1027, 2048, (10, 2), 2, (5, 1)),
    # in_c <= Tn: one channel group, the spatial pass reads P_b in the cycle its last (only)
    # group is written (the write-first read port)
    "c3_o1030_grid4x4": (3, 1030, (8, 8), 2, (4, 4)),
    # two inputs: a SUMS row is one beat, so consecutive segments add onto the same channel
    # sums (block RAM read a cycle ahead: the write of the segment before is forwarded)
    "c2_o1030_grid4x4": (2, 1030, (8, 8), 2, (4, 4)),
}
# gate-2 (in_c = the gate's out_c, out_c; the gate's grid): conv1 channel lists > 512
GATE2_CASES = {"c1030_o1024_grid3x4": (1030, 1024, (3, 4)), "c2047_o2048_grid2x2": (2047, 2048, (2, 2))}


@pytest.fixture(scope="module")
def wide_sim():
    require_verilator()
    from dgfpga.backends.rtl_sim import FastSim
    with FastSim(wide_channel_config(), mem_bytes=1 << 21) as sim:
        yield sim


@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
@pytest.mark.parametrize("case", list(GATE_CASES))
def test_gate_record_at_2048_channel_limits(wide_sim, case, flags):
    """A gate record of 1024-2048 channels alone: the masks and every work list bit for bit;
    gated, the masks mixed and the cycles at least the 3x3 over every bin."""
    in_c, out_c, hw, tile, grid = GATE_CASES[case]
    p = _Program(wide_sim.cfg, np.random.default_rng([1, in_c, out_c]))
    add_gate(p, in_c, out_c, hw, tile, grid)
    bad, res, run = _check(wide_sim, p.program(), 1, p.memory(), flags)
    assert not bad, bad
    assert res.status == 0, res.message
    if not flags:
        sp, ch = (np.asarray(m, bool).reshape(-1) for m in res.gate_masks[0])
        assert 0 < sp.sum() < sp.size and 0 < ch.sum() < ch.size, "masks not mixed"
        assert run.cycles > grid[0] * grid[1] * 3 * -(-in_c // wide_sim.cfg.tn)


@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
def test_gate_and_gate2_over_more_than_32_tiles(wide_sim, flags):
    """A gate record over the max_grid x max_grid grid (64 tiles) and a gate-2 record over its
    masks: the tile lists' scans and gate-2's tile scan cross the spatial bitmap's 32-bit
    words (dg_gate scans it through a 32-bit window reloaded word by word); every region bit
    for bit, the spatial mask mixed on both sides of tile 32."""
    g = wide_sim.cfg.max_grid
    assert g * g > 32
    p = _Program(wide_sim.cfg, np.random.default_rng([3, g]))
    gate = add_gate(p, 40, 70, (2 * g, 2 * g), 2, (g, g), on=0.6)
    add_gate2(p, gate, 36)
    bad, res, _ = _check(wide_sim, p.program(), 2, p.memory(), flags)
    assert not bad, bad
    assert res.status == 0, res.message
    if not flags:
        sp = np.asarray(res.gate_masks[0][0], bool).reshape(-1)
        assert 0 < sp[:32].sum() < 32 and 0 < sp[32:].sum() < sp[32:].size, "tile mask not mixed"


@pytest.mark.verilator
def test_gate2_decisions_on_the_edge_of_its_pooled_totals(wide_sim):
    """A gate-2 record whose b2 puts every channel logit at 0 (on) or -1 (off) on the
    interpreter's pooled totals: a pooled total at the wrong channel (the compact sums of
    the channels conv1 kept, spread over the lanes) moves logits and flips decisions; conv1's
    channel list not a multiple of the lanes' run (mask 0.7), mask_c2 bit for bit."""
    p = _Program(wide_sim.cfg, np.random.default_rng(11))
    gate = add_gate(p, 40, 300, (8, 8), 2, (4, 4), on=0.7)
    add_gate2(p, gate, 200, margin=0)
    bad, res, _ = _check(wide_sim, p.program(), 2, p.memory(), 0)
    assert not bad, bad
    assert res.status == 0, res.message
    ch2 = np.asarray(res.gate2_masks[0], bool).reshape(-1)
    assert 0 < ch2.sum() < ch2.size, "mask_c2 not mixed"


@pytest.mark.verilator
def test_hidden_units_saturating_through_their_high_bits(wide_sim):
    """Every hidden unit's (A*m1 + o1 + 2^(s-1)) >> s is 2^22 + r (r < 2^15): the clamp to
    GATE_HIDDEN_MAX must come from the bits above the 22 the gate unit keeps after its byte
    shift, since the low bits alone are in range; the channel decisions (mixed on the
    interpreter's logits) and every region bit for bit."""
    p = _Program(wide_sim.cfg, np.random.default_rng(7))
    add_gate(p, 40, 100, (8, 8), 2, (4, 4), saturate_high=True)
    bad, res, _ = _check(wide_sim, p.program(), 1, p.memory(), 0)
    assert not bad, bad
    assert res.status == 0, res.message
    ch = np.asarray(res.gate_masks[0][1], bool).reshape(-1)
    assert 0 < ch.sum() < ch.size, "channel mask not mixed"


@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
@pytest.mark.parametrize("case", list(GATE2_CASES))
def test_gate2_record_at_2048_channel_limits(wide_sim, case, flags):
    """A gate record (40 inputs, 1030-2047 outputs) and a gate-2 record of 1024-2048
    channels over its masks: mask_c2 and the two channel lists bit for bit, mixed."""
    in_c, out_c, grid = GATE2_CASES[case]
    p = _Program(wide_sim.cfg, np.random.default_rng([2, in_c, out_c]))
    gate = add_gate(p, 40, in_c, (2 * grid[0], 2 * grid[1]), 2, grid, on=0.8)
    add_gate2(p, gate, out_c)
    bad, res, _ = _check(wide_sim, p.program(), 2, p.memory(), flags)
    assert not bad, bad
    assert res.status == 0, res.message
    if not flags:
        assert 512 < int(np.asarray(res.gate_masks[0][1]).sum())      # conv1's channel list
        ch2 = np.asarray(res.gate2_masks[0], bool).reshape(-1)
        assert 0 < ch2.sum() < ch2.size, "mask_c2 not mixed"


@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
def test_channel_words_of_one_record_do_not_reach_the_next(wide_sim, flags):
    """Issue 16: the channel decisions and conv1's channel bitmap are word RAMs (written by
    the b2 stream a word at a time, read a beat / a word ahead), not cleared between records.
    A gate record of 2048 channels all on, then one of 1030 channels (mixed) and a gate-2
    record over the second one's masks: the second's partial last word (6 bits) and every
    list bit for bit against the interpreter, the all-on words of the first not leaking in."""
    p = _Program(wide_sim.cfg, np.random.default_rng([3, 2048, 1030]))
    add_gate(p, 40, 2048, (8, 8), 2, (4, 4), on=1.0)
    gate = add_gate(p, 40, 1030, (8, 8), 2, (4, 4), on=0.5)
    add_gate2(p, gate, 1000)
    bad, res, _ = _check(wide_sim, p.program(), 3, p.memory(), flags)
    assert not bad, bad
    assert res.status == 0, res.message
    if not flags:
        assert np.asarray(res.gate_masks[0][1], bool).all()
        ch = np.asarray(res.gate_masks[1][1], bool).reshape(-1)
        assert 0 < ch.sum() < ch.size and not ch[-6:].all(), "second record's channels not mixed"


# ----------------------------------------------------------------- round 9: edges no test had
# (issue 16 round 8's mutations of dg_gate.sv that every test above passed: the head's row sums
# at their exact width, the WORK-section checks two record kinds share, the residual-only list
# of a gate whose tiles are all on)

def _work_bytes_without(run, ref, skip: tuple) -> list:
    """The regions' mismatches, WORK's bytes [skip) excluded (the head's cycle log: the RTL
    writes its clock there, the interpreter zeros)."""
    bad = []
    for r in ("fmap", "work", "sums"):
        got, want = run.regions[r].copy(), ref[r].copy()
        if r == "work":
            got[skip[0]:skip[1]] = want[skip[0]:skip[1]]
        if not np.array_equal(got, want):
            bad.append(f"{r}: {int(np.count_nonzero(got != want))} bytes differ")
    return bad


def add_head(p: _Program, in_c: int, classes: int, st: tuple, sums, weight, bias):
    """A head record over int32 SUMS [st_h][st_w][in_c] with int8 W [classes][in_c] and
    int32 bias; its logits and its (one-entry) cycle log in WORK."""
    rec = prog.HeadRecord(
        in_c=in_c, classes=classes, st_h=st[0], st_w=st[1],
        sums_offset=p.put("sums", b"", np.asarray(sums, "<i4").view(np.uint8).reshape(-1)),
        param_offset=p.put("weight", np.frombuffer(
            prog.pack_head_params(np.asarray(weight, np.int8), np.asarray(bias), p.a), np.uint8)),
        logits_offset=p.take("work", 8 * classes), log_offset=p.take("work", 4))
    p.records.append(prog.pack_head_record(rec, p.cfg))
    return rec


@pytest.mark.verilator
def test_head_row_products_at_the_channel_sums_full_width(wide_sim):
    """The head's row products are an int8 weight times a channel sum of st_h x st_w int32
    tile sums (up to 2^31 * max_grid^2 in magnitude), far above 2^33: the sums at the int32
    limits over the whole max_grid x max_grid grid, weights at -128 / 127 / random, 37
    channels (a partial lane group), 9 classes. The logits (int64) bit for bit against a
    Python-integer evaluation of bias + W . sums (and the interpreter)."""
    cfg = wide_sim.cfg
    g = cfg.max_grid
    rng = np.random.default_rng(9)
    in_c, classes = 37, 9
    sums = rng.integers(-(1 << 31), 1 << 31, (g, g, in_c), dtype=np.int64)
    sums[:, :, 0] = -(1 << 31)                                   # the most negative channel sum
    sums[:, :, 1] = (1 << 31) - 1                                # the most positive
    sums[:, :, 2] = rng.choice([-(1 << 31), (1 << 31) - 1], (g, g))
    weight = rng.integers(-128, 128, (classes, in_c), dtype=np.int64)
    weight[0, :] = -128
    weight[1, :] = 127
    weight[2, :3] = [-128, 127, -128]
    bias = rng.integers(-(1 << 31), 1 << 31, classes, dtype=np.int64)
    bias[0], bias[1] = -(1 << 31), (1 << 31) - 1
    p = _Program(cfg, rng)
    rec = add_head(p, in_c, classes, (g, g), sums, weight, bias)
    tot = [sum(int(v) for v in sums[:, :, i].reshape(-1)) for i in range(in_c)]
    want = [int(bias[c]) + sum(int(weight[c, i]) * tot[i] for i in range(in_c)) for c in range(classes)]
    # the largest product there can be: -128 * -2^31 * max_grid^2
    assert max(abs(int(weight[c, i]) * tot[i]) for c in range(classes) for i in range(in_c)) \
        == 128 * (1 << 31) * g * g
    mem = p.memory()
    ref = {k: v.copy() for k, v in mem.items()}
    res = run_program(p.program(), 1, ref, cfg)
    run = wide_sim.run(p.program(), 1, {k: v.copy() for k, v in mem.items()})
    assert run.status == 0 == res.status, (hex(run.status), res.message)
    got = run.regions["work"][rec.logits_offset:rec.logits_offset + 8 * classes].view("<i8")
    assert [int(v) for v in got] == want
    assert not _work_bytes_without(run, ref, (rec.log_offset, rec.log_offset + 4))


def _word(fields, name: str) -> int:
    (f,) = [f for f in fields if f.name == name]
    return f.word


def _move_to_end(p: _Program, moves) -> tuple:
    """Put one section of one or more records at a new offset after every other section of
    its region (its data copied along, records re-packed): moves = [(record index, record,
    field, pack)]; returns the re-packed records and the section's offset."""
    off = None
    out = []
    for i, rec, field, pack in moves:
        if off is None:
            region, size = {f: (r, n) for f, r, n in _sections(rec, p.cfg)}[field]
            old = getattr(rec, field)
            data = [raw for r, o, raw in p.data if r == region and o == old]
            off = p.put(region, b"", data[0].copy()) if data else p.take(region, size)
        rec = rec.replace(**{field: off})
        p.records[i] = pack(rec, p.cfg)
        out.append(rec)
    return out, off


def _sections(rec, cfg):
    if isinstance(rec, prog.GateRecord):
        return prog.gate_record_sections(rec, cfg)
    if isinstance(rec, prog.Gate2Record):
        return prog.gate2_record_sections(rec, cfg)
    return prog.head_record_sections(rec, cfg, 1)


# the sections whose "inside its region" test dg_gate shares between record kinds (SUMS and
# the parameters of the three kinds; WORK sections the record layouts put in the same word,
# and head LOGITS with gate C2_TILES): (record kind, field)
SHARED_SECTIONS = [("gate", "sums_offset"), ("gate", "param_offset"), ("gate", "mask_offset"),
                   ("gate", "c1_tiles_offset"), ("gate", "c1_out_ch_offset"),
                   ("gate", "c2_tiles_offset"), ("gate2", "sums_offset"),
                   ("gate2", "param_offset"), ("gate2", "in_mask_offset"),
                   ("gate2", "mask_offset"), ("gate2", "c2_out_ch_offset"),
                   ("gate2", "c3_in_ch_offset"), ("head", "sums_offset"),
                   ("head", "param_offset"), ("head", "logits_offset"), ("head", "log_offset")]


@pytest.mark.verilator
@pytest.mark.parametrize("over", [0, 1], ids=["fits", "one_byte_over"])
@pytest.mark.parametrize("kind,field", SHARED_SECTIONS,
                         ids=[f"{k}_{f[:-7]}" for k, f in SHARED_SECTIONS])
def test_section_at_the_end_of_its_region(wide_sim, kind, field, over):
    """One section of a gate, gate-2 or head record laid out last in its region (SUMS,
    WEIGHT or WORK), the region exactly as long as the section's densest size (fits: runs,
    every region bit for bit) or one byte shorter (BAD_OFFSET with ENTRY = the field's word,
    the record's index in LAYER, nothing run): each of the checks dg_gate shares between
    record kinds, with the record's own kind's size (e.g. the tile bitmap and the channel
    bitmap for a gate record's masks, not gate-2's mask_c2 bitmap alone)."""
    cfg = wide_sim.cfg
    p = _Program(cfg, np.random.default_rng([4, len(kind), len(field)]))
    if kind == "head":
        g = 2
        rec = add_head(p, 20, 6, (g, g), p.rng.integers(-1000, 1000, (g, g, 20)),
                       p.rng.integers(-128, 128, (6, 20)), p.rng.integers(-1000, 1000, 6))
        (rec,), off = _move_to_end(p, [(0, rec, field, prog.pack_head_record)])
        idx, fields, log = 0, prog.HEAD_FIELDS, (rec.log_offset, rec.log_offset + 4)
    else:
        gate = add_gate(p, 12, 70, (8, 8), 2, (4, 4), on=0.7)
        if kind == "gate":
            (rec,), off = _move_to_end(p, [(0, gate, field, prog.pack_gate_record)])
            idx, fields = 0, prog.GATE_FIELDS
        else:
            g2 = add_gate2(p, gate, 45)
            if field == "in_mask_offset":
                # a copy of the gate's masks (the interpreter's) at the end, where gate-2 reads
                # them (the gate's own mask section cannot be last: the gate checks it too)
                m = p.memory()
                run_program(p.records[0], 1, m, cfg)
                size = prog.mask_bytes(gate.gh * gate.gw, gate.out_c)
                off = p.put("work", b"", m["work"][gate.mask_offset:gate.mask_offset + size].copy())
                rec = g2.replace(in_mask_offset=off)
                p.records[1] = prog.pack_gate2_record(rec, cfg)
            else:
                (rec,), off = _move_to_end(p, [(1, g2, field, prog.pack_gate2_record)])
            idx, fields = 1, prog.GATE2_FIELDS
        log = (0, 0)
    region, size = {f: (r, n) for f, r, n in _sections(rec, cfg)}[field]
    end = off + size
    assert p.alloc[region].pos - cfg.axi_bytes < end <= p.alloc[region].pos   # the last section
    mem = p.memory()
    mem[region] = mem[region][:end - over]
    count = len(p.records)
    ref = {k: v.copy() for k, v in mem.items()}
    res = run_program(p.program(), count, ref, cfg)
    run = wide_sim.run(p.program(), count, {k: v.copy() for k, v in mem.items()})
    from dgfpga.contract import regmap
    want = regmap.pack_status(regmap.ERR["BAD_OFFSET"], idx, _word(fields, field)) if over else 0
    assert res.status == want, (regmap.describe_status(res.status), res.message)
    assert run.status == want, regmap.describe_status(run.status)
    assert not _work_bytes_without(run, ref, log)


@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
def test_residual_list_of_a_gate_with_every_tile_on(wide_sim, flags):
    """A gate record with a residual-only list (res_list) whose spatial logits are all >= 0
    (gated; every tile on under DENSE too): conv2's residual-only list is empty, so nothing
    is written at its offset (WORK's noise stays), the tile lists hold every tile in order
    and the tile bitmap is all ones; the channels mixed. Every region bit for bit."""
    cfg = wide_sim.cfg
    p = _Program(cfg, np.random.default_rng(11))
    rec = add_gate(p, 24, 90, (12, 16), 2, (3, 4), on=0.5, tiles_on=True)
    n = rec.gh * rec.gw
    mem = p.memory()
    bad, res, run = _check(wide_sim, p.program(), 1, mem, flags)
    assert not bad, bad
    assert res.status == 0, res.message
    wk = run.regions["work"]
    sp = np.unpackbits(wk[rec.mask_offset:rec.mask_offset + 4 * -(-n // 32)], bitorder="little")
    assert sp[:n].all() and not sp[n:].any()
    want = np.arange(n, dtype="<u2").view(np.uint8)
    for off in (rec.c1_tiles_offset, rec.c2_tiles_offset):
        assert np.array_equal(wk[off:off + 2 * n], want)
    r = rec.c2_res_tiles_offset
    assert np.array_equal(wk[r:r + 2 * n], mem["work"][r:r + 2 * n])
    if not flags:
        ch = np.asarray(res.gate_masks[0][1], bool).reshape(-1)
        assert 0 < ch.sum() < ch.size, "channel mask not mixed"
