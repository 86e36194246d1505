"""One work-list writer (formats.encode_work_list) and one validator (formats.read_work_list),
used by the scheduler, the interpreter, the vectors and the host check; their boundaries
(index = count, count = max, layer_count = max_layers) tested at each of those levels.
(The C-sim and the RTL get the same boundaries from the shared vector sweep.)"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from dgfpga.contract import formats as F
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import FormatError
from dgfpga.perf.netshapes import shape_plan
from dgfpga.runtime.interpreter import run_program
from dgfpga.runtime.scheduler import Scheduler

SMALL = load_config("small")
ERR = regmap.ERR


def _conv2(**kw):
    """A downsample block's conv2: 16 tiles, residual-only tiles allowed, 16 in channels."""
    base = dict(k=3, stride=1, in_h=8, in_w=8, in_c=16, out_c=16, tile=2, tile_gated=True,
                in_ch_gated=True, zero_halo=True, residual=True, res_signed=True,
                res_mult=1 << 16, emit_sums=True)
    base.update(kw)
    return F.make_descriptor(**base)


def _packed(tiles, res, inc, out=None, **kw):
    d = _conv2(**kw)
    wl = F.WorkList(np.asarray(tiles, np.uint16), np.asarray(res, np.uint16),
                    np.asarray(out if out is not None else [], np.uint16),
                    np.asarray(inc, np.uint16))
    blob, d = F.pack_work_list(d, wl, 0, SMALL)
    return d, bytearray(blob)


def _put(blob, off, i, v):
    struct.pack_into("<H", blob, off + 2 * i, v)


def _fault(d, blob):
    with pytest.raises(FormatError) as ei:
        F.read_work_list(d, bytes(blob))
    return ei.value.code, ei.value.entry, str(ei.value)


# ---- the validator directly
def test_residual_only_index_equal_to_the_count_is_rejected():
    d, blob = _packed([0, 5], [1, 2, 3], [0, 4])
    F.read_work_list(d, bytes(blob))
    _put(blob, d.res_tile_list_offset, 2, d.n_tiles)          # index = count
    code, entry, msg = _fault(d, blob)
    assert (code, entry) == ("TILE_RANGE", 2) and "= 16 out of range 0..15" in msg
    _put(blob, d.res_tile_list_offset, 2, d.n_tiles - 1)      # the last valid index
    assert F.read_work_list(d, bytes(blob)).res_tiles.tolist() == [1, 2, 15]


@pytest.mark.parametrize("section, what, limit, code", [
    ("tile_list_offset", "tiles", 16, "TILE_RANGE"),
    ("in_ch_list_offset", "in", 16, "CHANNEL_RANGE"),
])
def test_index_equal_to_the_count_is_rejected(section, what, limit, code):
    d, blob = _packed([0, 5], [], [0, 4])
    _put(blob, getattr(d, section), 1, limit)
    assert _fault(d, blob)[:2] == (code, 1)
    _put(blob, getattr(d, section), 1, limit - 1)
    if what == "tiles":        # keep the bitmap in step with the tile list
        blob[d.bitmap_offset:d.bitmap_offset + 4] = F.pack_bitmap([0, 15], 16)
    F.read_work_list(d, bytes(blob))


def test_counts_at_their_maximum_are_valid():
    every = list(range(16))
    d, blob = _packed(every, [], every)                        # all tiles, all channels
    wl = F.read_work_list(d, bytes(blob))
    assert wl.tiles.tolist() == every and wl.in_channels.tolist() == every
    d, blob = _packed([3, 9], sorted(set(every) - {3, 9}), [2])  # active + res = tiles
    assert len(F.read_work_list(d, bytes(blob)).res_tiles) == 14


def test_earliest_entry_is_reported_like_the_engine():
    """[1, 0, 99]: the order fault at entry 1 comes before the range fault at entry 2."""
    d, blob = _packed([1, 2, 3], [], [0])
    for i, v in enumerate((1, 0, 99)):
        _put(blob, d.tile_list_offset, i, v)
    assert _fault(d, blob)[:2] == ("TILE_ORDER", 1)
    _put(blob, d.tile_list_offset, 1, 70)                      # now [1, 70, 99]: range at 1
    assert _fault(d, blob)[:2] == ("TILE_RANGE", 1)


def test_bitmap_padding_bit_is_a_mismatch_at_that_bit():
    d, blob = _packed([0, 5], [], [0])
    blob[d.bitmap_offset + 2] |= 0x01                          # bit 16: past the 16 tiles
    code, entry, msg = _fault(d, blob)
    assert (code, entry) == ("BITMAP_MISMATCH", 16) and "set past" in msg


# ---- the one writer
def test_the_scheduler_writes_what_pack_work_list_writes():
    """The scheduler's WORK bytes for a layer = pack_work_list of the same lists at the
    layer's slot (one writer), and they read back to the masks."""
    plan = shape_plan("resdg20_cifar10", SMALL)
    sch = Scheduler(plan)
    rng = np.random.default_rng(3)
    for i, bp in enumerate(plan.blocks):
        sp = rng.random(bp.conv1.template.n_tiles) < 0.5
        sp[0] = True
        ch = rng.random(bp.conv1.template.out_c) < 0.5
        ch[0] = True
        run = sch.block(i, sp, ch)
        work = np.zeros(plan.region_bytes["work"], np.uint8)
        for off, data in run.work_writes:
            work[off:off + data.size] = data
        for lp, d in zip([bp.conv1, bp.conv2], [run.descriptors(SMALL)[0], run.descriptors(SMALL)[-1]]):
            res = [] if (bp.identity or lp.kind == "conv1") else np.flatnonzero(~sp)
            wl = F.WorkList(np.flatnonzero(sp), np.asarray(res, np.uint16),
                            np.flatnonzero(ch) if lp.kind == "conv1" else np.zeros(0),
                            np.flatnonzero(ch) if lp.kind == "conv2" else np.zeros(0))
            blob, dp = F.pack_work_list(lp.template, wl, lp.work_slot.offset, SMALL)
            assert dp == d
            back = F.read_work_list(d, work)
            assert back.tiles.tolist() == np.flatnonzero(sp).tolist()
            for section in ("tile_list_offset", "out_ch_list_offset", "in_ch_list_offset",
                            "bitmap_offset", "res_tile_list_offset"):
                off = getattr(d, section)
                if off:
                    n = len(blob) - (off - lp.work_slot.offset)
                    used = {"tile_list_offset": 2 * d.n_active_tiles,
                            "res_tile_list_offset": 2 * d.n_res_tiles,
                            "out_ch_list_offset": 2 * d.n_active_out,
                            "in_ch_list_offset": 2 * d.n_active_in,
                            "bitmap_offset": F.bitmap_bytes(d.n_tiles)}[section]
                    rel = off - lp.work_slot.offset
                    assert bytes(work[off:off + used]) == blob[rel:rel + used], section
                    assert n >= used


# ---- the interpreter
def _one_layer_regions(d):
    need = {}
    for region, _, off, nbytes in F.descriptor_buffers(d):
        need[region] = max(need.get(region, 0), off + nbytes)
    return {r: np.zeros(-(-max(need.get(r, 8), 8) // 8) * 8 + 64, np.uint8)
            for r in ("fmap", "weight", "work", "sums")}


def _placed(tiles, res, inc):
    """The packed conv2 with its buffers placed apart, and its regions (work list at 0)."""
    d, blob = _packed(tiles, res, inc)
    d = d.replace(in_offset=0, res_offset=4096, out_offset=8192, weight_offset=0,
                  param_offset=4096, sums_offset=0)
    regions = _one_layer_regions(d)
    regions["work"][:len(blob)] = np.frombuffer(bytes(blob), np.uint8)
    return d, regions


def test_interpreter_rejects_residual_only_index_equal_to_the_count():
    d, regions = _placed([0, 5], [1, 2, 3], [0, 4])
    prog = F.pack_descriptor(d, SMALL)
    assert run_program(prog, 1, {k: v.copy() for k, v in regions.items()}, SMALL).ok
    struct.pack_into("<H", regions["work"], d.res_tile_list_offset + 4, d.n_tiles)
    before = regions["fmap"].copy()
    r = run_program(prog, 1, regions, SMALL)
    assert r.status == regmap.pack_status(ERR["TILE_RANGE"], 0, 2), r.message
    assert np.array_equal(regions["fmap"], before)          # nothing written


def test_interpreter_max_layers_bound():
    d, regions = _placed([0, 5], [1, 2, 3], [0, 4])
    prog = F.pack_descriptor(d, SMALL)
    n = SMALL.max_layers
    r = run_program(prog * n, n, {k: v.copy() for k, v in regions.items()}, SMALL)
    assert r.ok and len(r.macs) == n                         # exactly max_layers: runs
    before = regions["fmap"].copy()
    r = run_program(prog * (n + 1), n + 1, regions, SMALL)
    assert r.status == regmap.pack_status(ERR["BAD_COUNT"], 0, 0) and r.macs == []
    assert np.array_equal(regions["fmap"], before)


def test_interpreter_count_one_past_the_maximum():
    d, regions = _placed([3, 9], [0, 1], [0])
    words = np.frombuffer(F.pack_descriptor(d, SMALL), "<u4").copy()
    f = F.FIELD_BY_NAME["n_res_tiles"]
    words[f.word] = (words[f.word] & ~np.uint32(f.mask << f.lsb)) | np.uint32(15 << f.lsb)
    r = run_program(words.tobytes(), 1, regions, SMALL)     # 2 active + 15 res = 17 > 16
    assert r.status == regmap.pack_status(ERR["BAD_COUNT"], 0, f.word), r.message
