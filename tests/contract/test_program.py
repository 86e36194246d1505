"""Records of a network program (dgfpga.contract.program): pack/unpack round trips, every
record fault with the STATUS code and ENTRY the engine reports, the gate parameter blob and
its content checks, the masks, and the effective descriptor of a from_gate layer."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from dgfpga.contract import formats
from dgfpga.contract import program as P
from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import FormatError

SMALL = load_config("small")
A = SMALL.axi_bytes
BIG = {"fmap": 1 << 20, "weight": 1 << 20, "work": 1 << 20, "sums": 1 << 20}


def _gate(**kw) -> P.GateRecord:
    base = dict(in_c=16, out_c=16, hidden=4, h_shift=20, st_h=8, st_w=8, gh=4, gw=4,
                res_list=True, sums_offset=0, param_offset=A, mask_offset=0,
                c1_tiles_offset=64, c1_out_ch_offset=128, c2_tiles_offset=192,
                c2_res_tiles_offset=256, c2_in_ch_offset=320, c2_bitmap_offset=384)
    base.update(kw)
    return P.GateRecord(**base)


def _head(**kw) -> P.HeadRecord:
    base = dict(in_c=64, classes=10, st_h=4, st_w=4, sums_offset=A, param_offset=0,
                logits_offset=0, log_offset=2 * A)
    base.update(kw)
    return P.HeadRecord(**base)


def _words(raw: bytes) -> list:
    return list(struct.unpack("<24I", raw))


def _raw(words) -> bytes:
    return struct.pack("<24I", *words)


def _status(fn, *a, **kw):
    with pytest.raises(FormatError) as ei:
        fn(*a, **kw)
    return ei.value.code, ei.value.entry


# ---- round trips -------------------------------------------------------------------------
def test_gate_record_round_trip_and_word_layout():
    r = _gate()
    raw = P.pack_gate_record(r, SMALL)
    assert len(raw) == formats.DESCRIPTOR_BYTES
    w = _words(raw)
    assert w[0] == formats.DESC_MAGIC | (formats.FORMAT_VERSION << 8) | (P.OP_GATE << 16)
    assert w[1] == 16 | (16 << 16) and w[2] == 4 | (20 << 16)
    assert w[3] == 8 | (8 << 8) | (4 << 16) | (4 << 24) and w[4] == 1
    assert w[5:14] == [0, A, 0, 64, 128, 192, 256, 320, 384] and w[14:] == [0] * 10
    assert P.record_op(raw) == P.OP_GATE
    assert P.unpack_gate_record(raw, SMALL, BIG) == r


def test_head_record_round_trip_and_word_layout():
    r = _head()
    raw = P.pack_head_record(r, SMALL)
    w = _words(raw)
    assert (w[0] >> 16) & 0xF == P.OP_HEAD
    assert w[1] == 64 | (10 << 16) and w[2] == 4 | (4 << 8)
    assert w[3:7] == [A, 0, 0, 2 * A] and w[7:] == [0] * 17
    assert P.unpack_head_record(raw, SMALL, BIG, layer_count=5) == r


# ---- record faults: (code, entry) ------------------------------------------------------
GATE_FAULTS = [
    # (what, edit of the words, code, entry)
    ("magic", lambda w: w.__setitem__(0, w[0] ^ 0x01), "BAD_MAGIC", 0),
    ("version", lambda w: w.__setitem__(0, w[0] ^ 0x0300), "BAD_MAGIC", 0),
    ("reserved word 14", lambda w: w.__setitem__(14, 1), "BAD_GATE", 14),
    ("reserved word 23", lambda w: w.__setitem__(23, 1 << 31), "BAD_GATE", 23),
    ("reserved bits of word 0", lambda w: w.__setitem__(0, w[0] | (1 << 20)), "BAD_GATE", 0),
    ("reserved bits of word 2", lambda w: w.__setitem__(2, w[2] | (1 << 22)), "BAD_GATE", 2),
    ("flags other than bit 0", lambda w: w.__setitem__(4, w[4] | 2), "BAD_FLAGS", 4),
    ("in_c 0", lambda w: w.__setitem__(1, w[1] & 0xFFFF0000), "BAD_SHAPE", 1),
    ("in_c over max", lambda w: w.__setitem__(1, (w[1] & 0xFFFF0000) | (SMALL.max_in_channels + 1)),
     "BAD_SHAPE", 1),
    ("out_c over max", lambda w: w.__setitem__(1, (w[1] & 0xFFFF) | ((SMALL.max_out_channels + 1) << 16)),
     "BAD_SHAPE", 1),
    ("hidden 0", lambda w: w.__setitem__(2, w[2] & 0xFFFF0000), "BAD_SHAPE", 2),
    ("hidden > in_c", lambda w: w.__setitem__(2, (w[2] & 0xFFFF0000) | 17), "BAD_SHAPE", 2),
    ("h_shift 0", lambda w: w.__setitem__(2, w[2] & 0xFFFF), "BAD_GATE", 2),
    ("h_shift 63", lambda w: w.__setitem__(2, (w[2] & 0xFFFF) | (63 << 16)), "BAD_GATE", 2),
    ("st_h 0", lambda w: w.__setitem__(3, w[3] & 0xFFFFFF00), "BAD_TILE", 3),
    ("gw over max_grid", lambda w: w.__setitem__(3, (w[3] & 0x00FFFFFF) | ((SMALL.max_grid + 1) << 24)),
     "BAD_TILE", 3),
    ("sums misaligned", lambda w: w.__setitem__(5, 4), "BAD_OFFSET", 5),
    ("sums outside SUMS", lambda w: w.__setitem__(5, BIG["sums"] - A), "BAD_OFFSET", 5),
    ("params outside WEIGHT", lambda w: w.__setitem__(6, BIG["weight"] - A), "BAD_OFFSET", 6),
    ("mask outside WORK", lambda w: w.__setitem__(7, BIG["work"]), "BAD_OFFSET", 7),
    ("c1 tiles misaligned", lambda w: w.__setitem__(8, 65), "BAD_OFFSET", 8),
    ("c2 bitmap outside WORK", lambda w: w.__setitem__(13, 0xFFFFFFF0), "BAD_OFFSET", 13),
    ("res offset without res_list", lambda w: w.__setitem__(4, 0), "BAD_OFFSET", 11),
]


@pytest.mark.parametrize("what, edit, code, entry", GATE_FAULTS, ids=[f[0] for f in GATE_FAULTS])
def test_gate_record_faults(what, edit, code, entry):
    w = _words(P.pack_gate_record(_gate(), SMALL))
    edit(w)
    assert _status(P.unpack_gate_record, _raw(w), SMALL, BIG) == (code, entry)


HEAD_FAULTS = [
    ("reserved word 7", lambda w: w.__setitem__(7, 1), "BAD_GATE", 7),
    ("reserved bits of word 2", lambda w: w.__setitem__(2, w[2] | (1 << 16)), "BAD_GATE", 2),
    ("classes 0", lambda w: w.__setitem__(1, w[1] & 0xFFFF), "BAD_SHAPE", 1),
    ("classes over MAX_CLASSES", lambda w: w.__setitem__(1, (w[1] & 0xFFFF) | ((P.MAX_CLASSES + 1) << 16)),
     "BAD_SHAPE", 1),
    ("in_c 0", lambda w: w.__setitem__(1, w[1] & 0xFFFF0000), "BAD_SHAPE", 1),
    ("st_w 0", lambda w: w.__setitem__(2, w[2] & 0xFF), "BAD_TILE", 2),
    ("sums outside SUMS", lambda w: w.__setitem__(3, BIG["sums"] - A), "BAD_OFFSET", 3),
    ("params misaligned", lambda w: w.__setitem__(4, A // 2), "BAD_OFFSET", 4),
    ("logits outside WORK", lambda w: w.__setitem__(5, BIG["work"] - A), "BAD_OFFSET", 5),
    ("log outside WORK", lambda w: w.__setitem__(6, BIG["work"] - A), "BAD_OFFSET", 6),
]


@pytest.mark.parametrize("what, edit, code, entry", HEAD_FAULTS, ids=[f[0] for f in HEAD_FAULTS])
def test_head_record_faults(what, edit, code, entry):
    w = _words(P.pack_head_record(_head(), SMALL))
    edit(w)
    assert _status(P.unpack_head_record, _raw(w), SMALL, BIG, 5) == (code, entry)


def test_cycle_log_is_sized_by_layer_count():
    r = _head(log_offset=BIG["work"] - 16)
    raw = P.pack_head_record(r, SMALL)
    assert P.unpack_head_record(raw, SMALL, BIG, layer_count=4) == r
    assert _status(P.unpack_head_record, raw, SMALL, BIG, 5) == ("BAD_OFFSET", 6)


def test_wrong_op_for_the_unpacker_is_bad_op():
    raw = P.pack_head_record(_head(), SMALL)
    assert _status(P.unpack_gate_record, raw, SMALL) == ("BAD_OP", 0)


def test_packers_refuse_what_the_engine_refuses():
    with pytest.raises(FormatError):
        P.pack_gate_record(_gate(h_shift=0), SMALL)
    with pytest.raises(FormatError):
        P.pack_gate_record(_gate(in_c=1 << 16), SMALL)      # would truncate
    with pytest.raises(FormatError):
        P.pack_head_record(_head(classes=P.MAX_CLASSES + 1), SMALL)


# ---- gate parameters -------------------------------------------------------------------
class _Table:
    def __init__(self, rows, cols, recip, recip_total):
        self.rows, self.cols, self.recip, self.recip_total = rows, cols, recip, recip_total


class _NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _params(rng, in_c=5, out_c=7, hidden=3, gh=3, gw=2):
    table = _Table([(0, 1), (1, 3), (3, 4)], [(0, 2), (2, 3)],
                   rng.integers(1, 1 << 24, (gh, gw)), 1 << 20)
    sg = _NS(weight=rng.integers(-32767, 32768, (in_c, 3, 3)).astype(np.int16),
             bias=-(1 << 45) + 3)
    cg = _NS(w1=rng.integers(-32767, 32768, (hidden, in_c)).astype(np.int16),
             m1=rng.integers(-(1 << 31) + 1, 1 << 31, hidden).astype(np.int32),
             o1=rng.integers(-(1 << 45), 1 << 45, hidden), shift=30,
             w2=rng.integers(-32767, 32768, (out_c, hidden)).astype(np.int16),
             b2=rng.integers(-(1 << 45), 1 << 45, out_c))
    return table, sg, cg


def test_gate_param_layout_sections_are_aligned_and_in_order():
    lay = P.gate_param_layout(5, 7, 3, 3, 2, A)
    offs = [lay.offsets[n] for n in P.GATE_PARAM_NAMES]
    assert offs == sorted(offs) and all(o % A == 0 for o in offs)
    assert lay.counts == {"bins": 10, "recip": 7, "ws": 45, "bs": 1, "w1": 15, "m1": 3,
                          "o1": 3, "w2": 21, "b2": 7}
    # each section starts at the first aligned byte after the previous one
    sizes = {"bins": 1, "recip": 4, "ws": 2, "bs": 8, "w1": 2, "m1": 4, "o1": 8, "w2": 2, "b2": 8}
    pos = 0
    for n in P.GATE_PARAM_NAMES:
        assert lay.offsets[n] == -(-pos // A) * A
        pos = lay.offsets[n] + lay.counts[n] * sizes[n]
    assert lay.nbytes == pos


def test_gate_params_round_trip():
    rng = np.random.default_rng(1)
    table, sg, cg = _params(rng)
    blob = P.pack_gate_params(table, sg, cg, A)
    p = P.unpack_gate_params(blob, 5, 7, 3, 3, 2, A)
    assert p.rows.tolist() == [[0, 1], [1, 3], [3, 4]] and p.cols.tolist() == [[0, 2], [2, 3]]
    assert np.array_equal(p.recip, table.recip) and p.recip_total == 1 << 20
    assert np.array_equal(p.ws, sg.weight) and p.bs == sg.bias
    for n in ("w1", "m1", "o1", "w2", "b2"):
        assert np.array_equal(getattr(p, n), getattr(cg, n)), n
    # the ws section is tap-major: [ky*3+kx][c]
    lay = P.gate_param_layout(5, 7, 3, 3, 2, A)
    ws = np.frombuffer(blob[lay.offsets["ws"]:lay.offsets["ws"] + 90], "<i2")
    assert ws[1 * 5 + 4] == sg.weight[4, 0, 1]


def _bad_blob(section: str, index: int, value: int):
    rng = np.random.default_rng(2)
    table, sg, cg = _params(rng)
    blob = bytearray(P.pack_gate_params(table, sg, cg, A))
    lay = P.gate_param_layout(5, 7, 3, 3, 2, A)
    dt = {"bins": "u1", "recip": "<u4", "bs": "<i8", "o1": "<i8", "b2": "<i8"}[section]
    size = np.dtype(dt).itemsize
    o = lay.offsets[section] + index * size
    blob[o:o + size] = np.array([value], dtype=dt).tobytes()
    return P.unpack_gate_params(bytes(blob), 5, 7, 3, 3, 2, A)


PARAM_FAULTS = [
    ("row start past st_h", "bins", 4, 4, 4),        # row bin 2 start = st_h
    ("row end past st_h", "bins", 5, 5, 5),
    ("row end = start", "bins", 1, 0, 1),
    ("col start after end", "bins", 6, 2, 7),        # col bin 0 = (2, 2): the end fails
    ("col end past st_w", "bins", 9, 4, 9),
    ("recip 0", "recip", 3, 0, 3),
    ("recip over 2^RB", "recip", 0, (1 << 24) + 1, 0),
    ("recip_total 0", "recip", 6, 0, 6),
    ("bs at the limit", "bs", 0, 1 << 46, 0),
    ("o1 below -limit", "o1", 2, -(1 << 46), 2),
    ("b2 at the limit", "b2", 6, 1 << 46, 6),
]


@pytest.mark.parametrize("what, section, index, value, entry", PARAM_FAULTS,
                         ids=[f[0] for f in PARAM_FAULTS])
def test_gate_param_faults(what, section, index, value, entry):
    p = _bad_blob(section, index, value)
    with pytest.raises(FormatError) as ei:
        P.check_gate_params(p, 4, 3)
    assert (ei.value.code, ei.value.entry) == ("BAD_GATE", entry)


def test_gate_param_limits_are_valid():
    for section, index, value in (("recip", 0, 1 << 24), ("recip", 1, 1), ("bs", 0, (1 << 46) - 1),
                                  ("o1", 0, -(1 << 46) + 1), ("bins", 5, 4)):
        P.check_gate_params(_bad_blob(section, index, value), 4, 3)


# ---- masks -----------------------------------------------------------------------------
@pytest.mark.parametrize("n, c", [(1, 1), (31, 33), (32, 32), (64, 7), (100, 512)])
def test_masks_round_trip_and_bit_order(n, c):
    rng = np.random.default_rng(n * 1000 + c)
    sp, ch = rng.random(n) < 0.5, rng.random(c) < 0.5
    data = P.encode_masks(sp, ch)
    assert len(data) == P.mask_bytes(n, c) == 4 * (-(-n // 32) + -(-c // 32))
    words = np.frombuffer(data, "<u4")
    for i in range(n):
        assert bool((words[i // 32] >> (i % 32)) & 1) == sp[i]
    nt = -(-n // 32)
    for i in range(c):
        assert bool((words[nt + i // 32] >> (i % 32)) & 1) == ch[i]
    got_sp, got_ch = P.decode_masks(data, n, c)
    assert np.array_equal(got_sp, sp) and np.array_equal(got_ch, ch)


def test_mask_padding_bits_are_refused():
    data = bytearray(P.encode_masks(np.ones(3, bool), np.ones(2, bool)))
    data[0] |= 0x80
    with pytest.raises(FormatError):
        P.decode_masks(bytes(data), 3, 2)


# ---- head params -----------------------------------------------------------------------
def test_head_params_layout_round_trip():
    rng = np.random.default_rng(3)
    w = rng.integers(-128, 128, (10, 9)).astype(np.int8)
    b = rng.integers(-(1 << 31), 1 << 31, 10).astype(np.int32)
    blob = P.pack_head_params(w, b, A)
    lay = P.head_param_layout(9, 10, A)
    assert lay.bias == -(-90 // A) * A and len(blob) == lay.nbytes == lay.bias + 40
    w2, b2 = P.unpack_head_params(blob, 9, 10, A)
    assert np.array_equal(w, w2) and np.array_equal(b, b2)


# ---- from_gate and the effective descriptor ---------------------------------------------
def _conv2_template(**kw):
    d = formats.make_descriptor(k=3, stride=1, in_h=8, in_w=8, in_c=16, out_c=16, tile=2,
                                tile_gated=True, in_ch_gated=True, zero_halo=True,
                                residual=True, res_signed=True, res_mult=1 << 15,
                                in_offset=0, out_offset=4096, res_offset=8192, from_gate=True,
                                tile_list_offset=A, res_tile_list_offset=3 * A,
                                in_ch_list_offset=5 * A, bitmap_offset=7 * A, **kw)
    return d


def test_from_gate_descriptor_flag():
    f = formats.FIELD_BY_NAME["from_gate"]
    assert (f.word, f.lsb, f.width) == (1, 12, 1) and formats.FIELD_ERROR["from_gate"] == "BAD_FLAGS"
    d = _conv2_template()
    assert formats.unpack_descriptor(formats.pack_descriptor(d, SMALL), SMALL) == d
    with pytest.raises(FormatError) as ei:                   # needs tile_gated
        formats.validate_descriptor(d.replace(tile_gated=False, zero_halo=False,
                                              n_active_tiles=16, tile_list_offset=0,
                                              bitmap_offset=0, res_tile_list_offset=0), SMALL)
    assert ei.value.field == "from_gate"
    with pytest.raises(FormatError) as ei:                   # n_res_tiles set by the gate
        formats.validate_descriptor(d.replace(n_res_tiles=1, n_active_tiles=15), SMALL)
    assert ei.value.field == "n_res_tiles"


def test_effective_descriptor_rules():
    d = _conv2_template()
    e = P.effective_descriptor(d, 5, 3)
    assert (e.n_active_tiles, e.n_active_in, e.n_res_tiles, e.res_tile_list_offset,
            e.from_gate) == (5, 3, 11, 3 * A, False)
    e = P.effective_descriptor(d, 16, 0)               # every tile: no residual-only list
    assert (e.n_res_tiles, e.res_tile_list_offset, e.n_active_in) == (0, 0, 0)
    e = P.effective_descriptor(d, 0, 4)                # downsample conv2 runs with no tile
    assert (e.n_active_tiles, e.n_res_tiles) == (0, 16)
    ip = d.replace(in_place=True, out_offset=8192, res_tile_list_offset=0, res_signed=False)
    assert P.effective_descriptor(ip, 0, 4) is None     # identity conv2: skipped
    assert P.effective_descriptor(ip, 3, 0).n_res_tiles == 0
    c1 = formats.make_descriptor(k=3, stride=1, in_h=8, in_w=8, in_c=16, out_c=16, tile=2,
                                 tile_gated=True, out_ch_gated=True, from_gate=True)
    assert P.effective_descriptor(c1, 0, 5) is None and P.effective_descriptor(c1, 5, 0) is None
    e = P.effective_descriptor(c1, 5, 6)
    assert (e.n_active_tiles, e.n_active_out, e.n_active_in) == (5, 6, 16)


# ---- registers -------------------------------------------------------------------------
def test_run_flags_and_bad_gate_in_the_register_map():
    assert R.ARGUMENTS[-1].name == "run_flags" and R.ARGUMENTS[-1].direction == "in"
    assert R.field("RUN_FLAGS", "DENSE").lsb == 0 and P.RUN_DENSE == 1
    assert R.ERR["BAD_GATE"] == 15
    # the existing registers keep their offsets
    assert R.BY_NAME["STATUS"].offset == 0x74 and R.BY_NAME["ENGINE_ID_LO"].offset == 0x88
    assert R.BY_NAME["RUN_FLAGS"].offset == 0x94
    assert SMALL.max_layers == load_config("ultra96").max_layers == 255


# ---- gate-2 record (Bottleneck mask_c2) -------------------------------------------------
def _gate2(**kw) -> P.Gate2Record:
    base = dict(in_c=16, out_c=24, hidden=4, h_shift=20, st_h=4, st_w=4, sums_offset=A,
                param_offset=2 * A, in_mask_offset=0, mask_offset=A, c2_out_ch_offset=2 * A,
                c3_in_ch_offset=6 * A)
    base.update(kw)
    return P.Gate2Record(**base)


def test_gate2_record_round_trip_and_word_layout():
    r = _gate2()
    raw = P.pack_gate2_record(r, SMALL)
    w = _words(raw)
    assert w[0] == formats.DESC_MAGIC | (formats.FORMAT_VERSION << 8) | (P.OP_GATE2 << 16)
    assert w[1] == 16 | (24 << 16) and w[2] == 4 | (20 << 16) and w[3] == 4 | (4 << 8)
    assert w[4:10] == [A, 2 * A, 0, A, 2 * A, 6 * A] and w[10:] == [0] * 14
    assert P.record_op(raw) == P.OP_GATE2 and P.RECORD_OPS[P.OP_GATE2] == "gate2"
    assert P.unpack_gate2_record(raw, SMALL, BIG) == r
    # a gate record's unpacker refuses it (and the other way round): BAD_OP, entry 0
    assert _status(P.unpack_gate_record, raw, SMALL) == ("BAD_OP", 0)
    assert _status(P.unpack_gate2_record, P.pack_gate_record(_gate(), SMALL), SMALL) == ("BAD_OP", 0)


@pytest.mark.parametrize("what, edit, code, entry", [
    ("reserved word", lambda w: w.__setitem__(10, 1), "BAD_GATE", 10),
    ("reserved bits", lambda w: w.__setitem__(3, w[3] | (1 << 20)), "BAD_GATE", 3),
    ("in_c 0", lambda w: w.__setitem__(1, w[1] & ~0xFFFF), "BAD_SHAPE", 1),
    ("hidden > in_c", lambda w: w.__setitem__(2, (w[2] & ~0xFFFF) | 17), "BAD_SHAPE", 2),
    ("h_shift 0", lambda w: w.__setitem__(2, w[2] & 0xFFFF), "BAD_GATE", 2),
    ("st_w 0", lambda w: w.__setitem__(3, w[3] & 0xFF), "BAD_TILE", 3),
    ("unaligned sums", lambda w: w.__setitem__(4, 4), "BAD_OFFSET", 4),
    ("list past WORK", lambda w: w.__setitem__(9, (1 << 20) - A), "BAD_OFFSET", 9),
])
def test_gate2_record_faults(what, edit, code, entry):
    w = _words(P.pack_gate2_record(_gate2(), SMALL))
    edit(w)
    assert _status(P.unpack_gate2_record, _raw(w), SMALL, BIG) == (code, entry), what


def test_gate2_sections_are_sized_for_the_densest_case():
    """sums N x in_c int32, the blob, the masks it reads (tile + channel bitmaps), its
    mask_c2 bitmap, two lists of out_c u16."""
    r = _gate2()
    lay = P.gate2_param_layout(16, 24, 4, A)
    assert P.gate2_record_sections(r, SMALL) == [
        ("sums_offset", "sums", 16 * 16 * 4), ("param_offset", "weight", lay.nbytes),
        ("in_mask_offset", "work", 4 + 4), ("mask_offset", "work", 4),
        ("c2_out_ch_offset", "work", 48), ("c3_in_ch_offset", "work", 48)]


def test_gate2_params_round_trip_and_faults():
    """recip u32, fc1 int16 [hidden][in_c], m1 int32, o1 int64, fc2 int16 [out_c][hidden],
    b2 int64, each section at the next multiple of the AXI width; the engine's checks
    (BAD_GATE at the index within the section)."""
    import types
    rng = np.random.default_rng(3)
    cg = types.SimpleNamespace(w1=rng.integers(-300, 300, (4, 16)), m1=rng.integers(1, 1 << 20, 4),
                               o1=rng.integers(-1000, 1000, 4), shift=12,
                               w2=rng.integers(-300, 300, (24, 4)), b2=rng.integers(-5, 5, 24))
    blob = P.pack_gate2_params(900, cg, A)
    lay = P.gate2_param_layout(16, 24, 4, A)
    assert len(blob) == lay.nbytes
    assert all(o % A == 0 for o in lay.offsets.values())
    assert list(lay.offsets) == ["recip", "w1", "m1", "o1", "w2", "b2"]
    p = P.unpack_gate2_params(blob, 16, 24, 4, A)
    assert p.recip_total == 900
    for name in ("w1", "m1", "o1", "w2", "b2"):
        np.testing.assert_array_equal(getattr(p, name), getattr(cg, name))
    assert np.frombuffer(blob[lay.offsets["w2"]:lay.offsets["w2"] + 8], "<i2").tolist() == \
        cg.w2[0].tolist()
    import dataclasses
    for section, index, value in (("recip", 0, 0), ("b2", 7, 1 << 46), ("o1", 2, -(1 << 46))):
        if section == "recip":
            q = dataclasses.replace(p, recip_total=value)
        else:
            arr = getattr(p, section).copy()
            arr[index] = value
            q = dataclasses.replace(p, **{section: arr})
        with pytest.raises(FormatError) as ei:
            P.check_gate2_params(q)
        assert (ei.value.code, ei.value.entry, ei.value.field) == ("BAD_GATE", index, section)
    with pytest.raises(FormatError, match="shift"):
        P.pack_gate2_params(900, types.SimpleNamespace(**{**vars(cg), "shift": 0}), A)


def test_gate2_reads_the_gate_masks_and_compact_sums():
    """Totals of conv1's masked output: per active channel (in list order, compact columns)
    the sum over the active tiles only; inactive channels 0. Hand-built: 4 tiles (1 and 3
    on), 16 channels (2, 5, 9 on), sums of the stale tiles 0 and 2 set to garbage."""
    r = _gate2(st_h=2, st_w=2)
    work = np.zeros(1 << 12, np.uint8)
    sums = np.zeros(1 << 12, np.uint8)
    sp = np.array([0, 1, 0, 1], bool)
    ch = np.zeros(16, bool)
    ch[[2, 5, 9]] = True
    work[:8] = np.frombuffer(P.encode_masks(sp, ch), np.uint8)
    s = np.arange(12, dtype="<i4").reshape(4, 3) * 10 + 1
    s[[0, 2]] = 99999                                   # not written this image
    sums[A:A + s.nbytes] = s.view(np.uint8).reshape(-1)
    tiles, chans, totals = P.read_gate2_inputs(r, work, sums)
    assert tiles.tolist() == sp.tolist() and chans.tolist() == ch.tolist()
    want = np.zeros(16, np.int64)
    want[[2, 5, 9]] = s[1] + s[3]
    np.testing.assert_array_equal(totals, want)
    work[1] |= 0x01                                     # tile bit 8 of a 4-tile grid
    with pytest.raises(FormatError) as ei:
        P.read_gate2_inputs(r, work, sums)
    assert (ei.value.code, ei.value.entry) == ("BAD_GATE", P.GATE2_IN_MASK_WORD)


def test_effective_descriptor_after_a_gate2_record():
    """conv2 (gated on both sides): out = nc2, in = nc; conv3 (input-gated): in = nc2;
    conv1 (before gate 2, nc2 None): out = nc; skipped when its output count is 0."""
    c2 = formats.make_descriptor(k=3, stride=2, in_h=8, in_w=8, in_c=16, out_c=16, tile=2,
                                 tile_gated=True, in_ch_gated=True, out_ch_gated=True,
                                 zero_halo=True, from_gate=True)
    e = P.effective_descriptor(c2, 3, 5, 7)
    assert (e.n_active_tiles, e.n_active_in, e.n_active_out) == (3, 5, 7)
    assert P.effective_descriptor(c2, 3, 5, 0) is None
    assert P.effective_descriptor(c2, 3, 0, 7).n_active_in == 0
    c3 = formats.make_descriptor(k=1, stride=1, in_h=4, in_w=4, in_c=16, out_c=64, tile=2,
                                 tile_gated=True, in_ch_gated=True, from_gate=True)
    assert P.effective_descriptor(c3, 3, 5, 7).n_active_in == 7
    assert P.effective_descriptor(c3, 3, 5).n_active_in == 5        # no gate-2 record
