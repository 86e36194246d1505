"""Formats: round trips, validation messages, and fuzzing (FormatError only, never another error)."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dgfpga.contract import formats as F
from dgfpga.numerics import gates
from dgfpga.perf.cycle_model import random_block_masks
from dgfpga.contract.engine_config import default_config, load_config
from dgfpga.errors import FormatError
from dgfpga.perf.netshapes import net_shape

U96 = default_config()
SMALL = load_config("small")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def place(d: F.LayerDescriptor, cfg=U96) -> F.LayerDescriptor:
    """Give a descriptor non-overlapping, aligned offsets (and work-list offsets)."""
    a = cfg.axi_bytes
    pos = {"fmap": 0, "weight": 0, "work": 0, "sums": 0}
    ch = {}
    for region, name, _, nbytes in F.descriptor_buffers(d):
        if name == "res_offset" and d.in_place:
            continue
        ch[name] = pos[region]
        pos[region] = _align(pos[region] + nbytes, a) + a
    if d.in_place:
        ch["res_offset"] = ch["out_offset"]
    return d.replace(**ch)


def _conv(c, tile, **kw) -> F.LayerDescriptor:
    return F.make_descriptor(k=c.k, stride=c.stride, in_h=c.in_h, in_w=c.in_w, in_c=c.in_c,
                             out_c=c.out_c, tile=tile, maxpool=c.maxpool, **kw)


def block_descriptors(b, mask) -> list[F.LayerDescriptor]:
    """conv1, shortcut, conv2 of one block (mask None = dense), with the flags the
    scheduler gives them: test data covering every flag combination the networks use."""
    if mask is None:
        nc, gated = b.out_c, dict(tile_gated=False)
    else:
        nc, gated = len(mask.channels), dict(tile_gated=True, n_active_tiles=len(mask.tiles))
    out = [_conv(b.conv1, b.tile, out_ch_gated=mask is not None, n_active_out=nc, **gated)]
    if b.shortcut is not None:
        out.append(_conv(b.shortcut, b.tile, out_signed=True, in_signed=False))
    kw2 = dict(gated, residual=True, res_mult=1 << 16, emit_sums=True,
               in_ch_gated=mask is not None, n_active_in=nc)
    if mask is not None:
        kw2["zero_halo"] = True
        if b.identity:
            kw2["in_place"] = True
        else:
            kw2.update(n_res_tiles=b.n_tiles - len(mask.tiles), res_signed=True)
    elif b.shortcut is not None:
        kw2["res_signed"] = True
    out.append(_conv(b.conv2, b.tile, **kw2))
    return out


def example_descriptors(cfg=U96):
    """Every layer kind the networks use: stem, conv1, shortcut, conv2 (identity/downsample)."""
    net = net_shape("resdg18" if cfg is U96 else "resdg20_cifar10")
    stem = F.make_descriptor(k=net.stem.k, stride=net.stem.stride, in_h=net.stem.in_h,
                             in_w=net.stem.in_w, in_c=3, out_c=net.stem.out_c,
                             tile=net.blocks[0].tile, maxpool=net.stem.maxpool,
                             in_signed=True, emit_sums=True)
    out = [place(stem, cfg)]
    masks = random_block_masks(net, [0.4] * len(net.blocks), seed=3)
    for b, m in zip(net.blocks, masks):
        for d in block_descriptors(b, m) + block_descriptors(b, None):
            out.append(place(d, cfg))
    return out


def test_descriptor_size_and_table():
    assert F.DESCRIPTOR_BYTES == 96 and F.DESCRIPTOR_WORDS == 24
    names = [f.name for f in F.DESCRIPTOR_FIELDS]
    assert len(set(names)) == len(names)
    # every field of the brief is present
    for n in ("op", "k", "stride", "pad", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c",
              "tile", "grid_h", "grid_w", "in_signed", "out_signed", "relu", "residual",
              "res_signed", "shift", "res_mult", "maxpool", "emit_sums", "n_active_tiles",
              "n_res_tiles", "n_active_out", "n_active_in", "in_offset", "out_offset",
              "res_offset", "weight_offset", "param_offset", "tile_list_offset",
              "res_tile_list_offset", "out_ch_list_offset", "in_ch_list_offset",
              "bitmap_offset", "sums_offset"):
        assert n in F.FIELD_BY_NAME, n


@pytest.mark.parametrize("cfg", [U96, SMALL], ids=["ultra96", "small"])
def test_descriptor_round_trip_network_layers(cfg):
    ds = example_descriptors(cfg)
    assert len(ds) > 10
    for d in ds:
        b = F.pack_descriptor(d, cfg)
        assert len(b) == F.DESCRIPTOR_BYTES
        assert F.unpack_descriptor(b, cfg) == d


def test_descriptor_words_are_little_endian_bit_fields():
    d = example_descriptors()[1]
    words = struct.unpack("<24I", F.pack_descriptor(d))
    for f in F.DESCRIPTOR_FIELDS:
        v = (words[f.word] >> f.lsb) & f.mask
        want = {"magic": F.DESC_MAGIC, "version": F.FORMAT_VERSION}.get(f.name)
        assert v == (want if want is not None else int(getattr(d, f.name))), f.name


def _base():
    return place(F.make_descriptor(k=3, stride=1, in_h=16, in_w=16, in_c=32, out_c=32, tile=4,
                                   tile_gated=True, n_active_tiles=5, out_ch_gated=True,
                                   n_active_out=7))


@pytest.mark.parametrize("change, field", [
    (dict(k=5), "k"),
    (dict(stride=3), "stride"),
    (dict(op=0), "op"),
    (dict(pad=2), "pad"),
    (dict(shift=0), "shift"),
    (dict(tile=9), "tile"),
    (dict(grid_h=5), "grid_h"),
    (dict(out_h=15), "out_h"),
    (dict(in_c=3000), "in_c"),
    (dict(relu=False), "relu"),
    (dict(res_signed=True), "res_signed"),
    (dict(res_mult=5), "res_mult"),
    (dict(zero_halo=False, tile_gated=False), "n_active_tiles"),
    (dict(n_active_tiles=17), "n_active_tiles"),
    (dict(n_active_out=33), "n_active_out"),
    (dict(n_active_in=3), "n_active_in"),
    (dict(n_res_tiles=2), "n_res_tiles"),
    (dict(res_offset=16), "res_offset"),
    (dict(in_offset=8), "in_offset"),
    (dict(in_place=True), "in_place"),
    (dict(maxpool=True), "out_h"),
    (dict(zero_halo=True, tile_gated=False, n_active_tiles=16), "zero_halo"),
    (dict(k=-1), "k"),
    (dict(in_h=1 << 16), "in_h"),
])
def test_descriptor_errors_name_the_field(change, field):
    d = _base().replace(**change)
    with pytest.raises(FormatError, match=rf"field {field}="):
        F.pack_descriptor(d)


def test_errors_carry_field_and_entry():
    with pytest.raises(FormatError) as ei:
        F.pack_descriptor(_base().replace(grid_w=9))
    assert ei.value.field == "grid_w" and ei.value.entry is None and not ei.value.no_fit
    with pytest.raises(FormatError) as ei:
        F.unpack_u16_list(struct.pack("<3H", 1, 5, 5), 3, 16, "tile list")
    assert ei.value.field == "tile list" and ei.value.entry == 2
    big = place(F.make_descriptor(k=3, stride=1, in_h=32, in_w=32, in_c=512, out_c=64, tile=8))
    with pytest.raises(FormatError) as ei:
        F.validate_descriptor(big)
    assert ei.value.no_fit and ei.value.field == "tile"


def test_descriptor_overlap_fit_and_region_errors():
    d = _base()
    with pytest.raises(FormatError, match="overlaps the input"):
        F.validate_descriptor(d.replace(out_offset=d.in_offset))
    with pytest.raises(FormatError, match="outside the fmap region"):
        F.validate_descriptor(d, U96, {"fmap": 100, "weight": 1 << 20, "work": 1 << 20,
                                       "sums": 1 << 20})
    big = place(F.make_descriptor(k=3, stride=1, in_h=32, in_w=32, in_c=512, out_c=64, tile=8))
    with pytest.raises(FormatError, match="does not fit engine 'ultra96'.*input patch"):
        F.validate_descriptor(big)
    with pytest.raises(FormatError, match="field in_h=.*max_height|in_h=300"):
        F.validate_descriptor(place(F.make_descriptor(k=3, stride=1, in_h=300, in_w=8, in_c=8,
                                                      out_c=8, tile=8)))


def test_unpack_descriptor_header_checks():
    good = bytearray(F.pack_descriptor(_base()))
    with pytest.raises(FormatError, match="length 95"):
        F.unpack_descriptor(bytes(good[:95]))
    bad = bytearray(good); bad[0] = 0
    with pytest.raises(FormatError, match="magic"):
        F.unpack_descriptor(bytes(bad))
    bad = bytearray(good); bad[1] = 9
    with pytest.raises(FormatError, match="version 9"):
        F.unpack_descriptor(bytes(bad))
    bad = bytearray(good); bad[4 * 21] = 1
    with pytest.raises(FormatError, match="reserved word 21"):
        F.unpack_descriptor(bytes(bad))
    bad = bytearray(good); bad[3] |= 0x80
    with pytest.raises(FormatError, match="reserved bits"):
        F.unpack_descriptor(bytes(bad))
    with pytest.raises(FormatError, match="expected bytes"):
        F.unpack_descriptor("not bytes")


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_descriptor_random_bytes(data):
    try:
        F.unpack_descriptor(data)
    except FormatError:
        pass


_EXAMPLES = [F.pack_descriptor(d) for d in example_descriptors()]


@FUZZ
@given(st.sampled_from(_EXAMPLES), st.lists(st.tuples(st.integers(0, 23),
                                                      st.integers(0, 2 ** 32 - 1)),
                                            min_size=1, max_size=3),
       st.booleans())
def test_fuzz_descriptor_field_mutations(packed, edits, small_values):
    words = list(struct.unpack("<24I", packed))
    for w, v in edits:
        words[w] = v % 70 if small_values else v        # small values hit plausible ranges
    data = struct.pack("<24I", *words)
    try:
        d = F.unpack_descriptor(data, U96, {"fmap": 1 << 24, "weight": 1 << 24,
                                            "work": 1 << 16, "sums": 1 << 20})
    except FormatError:
        return
    assert F.pack_descriptor(d) == data                 # anything accepted round-trips


@FUZZ
@given(st.sampled_from(_EXAMPLES), st.integers(0, 96 * 8 - 1))
def test_fuzz_descriptor_bit_flips(packed, bit):
    data = bytearray(packed)
    data[bit // 8] ^= 1 << (bit % 8)
    try:
        d = F.unpack_descriptor(bytes(data))
    except FormatError:
        return
    assert F.pack_descriptor(d) == bytes(data)


# ---- work lists --------------------------------------------------------------------------
def _gated_conv2(n_tiles_active=5, n_in=7):
    d = F.make_descriptor(k=3, stride=1, in_h=16, in_w=16, in_c=32, out_c=64, tile=4,
                          tile_gated=True, in_ch_gated=True, zero_halo=True, residual=True,
                          res_signed=True, res_mult=1 << 15, emit_sums=True)
    return d


def test_work_list_round_trip():
    d = _gated_conv2()
    tiles = np.array([0, 3, 4, 9, 15], np.uint16)
    res = np.setdiff1d(np.arange(16), tiles).astype(np.uint16)
    wl = F.WorkList(tiles, res_tiles=res, in_channels=np.array([1, 2, 8, 30], np.uint16))
    blob, d2 = F.pack_work_list(d, wl, base_offset=32)
    assert (d2.n_active_tiles, d2.n_res_tiles, d2.n_active_in) == (5, 11, 4)
    d2 = place(d2.replace(tile_list_offset=0, res_tile_list_offset=0, in_ch_list_offset=0,
                          bitmap_offset=0))
    # place() moved the work offsets; lay the list out again at the new offsets
    blob, d3 = F.pack_work_list(d2, wl, base_offset=0)
    F.validate_descriptor(d3)
    back = F.read_work_list(d3, blob)
    assert back.tiles.tolist() == tiles.tolist() and back.res_tiles.tolist() == res.tolist()
    assert back.in_channels.tolist() == [1, 2, 8, 30]
    assert back.bitmap.tolist() == [i in set(tiles.tolist()) for i in range(16)]


def _wl_desc():
    d = _gated_conv2()
    wl = F.WorkList(np.array([1, 2, 5], np.uint16), res_tiles=np.array([0, 7], np.uint16),
                    in_channels=np.array([0, 4, 31], np.uint16))
    blob, d = F.pack_work_list(d.replace(n_active_in=3), wl, base_offset=0)
    return d, bytearray(blob)


def _put_u16(blob, off, i, v):
    struct.pack_into("<H", blob, off + 2 * i, v)


@pytest.mark.parametrize("edit, words", [
    (lambda d, b: _put_u16(b, d.tile_list_offset, 1, 16), r"tile list\[1\] = 16 out of range"),
    (lambda d, b: _put_u16(b, d.tile_list_offset, 1, 1), r"tile list\[1\] = 1 after 1"),
    (lambda d, b: _put_u16(b, d.tile_list_offset, 2, 0), r"tile list\[2\] = 0 after 2"),
    (lambda d, b: _put_u16(b, d.res_tile_list_offset, 1, 5), "also active"),
    (lambda d, b: _put_u16(b, d.in_ch_list_offset, 2, 32), r"in-channel list\[2\] = 32"),
    (lambda d, b: b.__setitem__(d.bitmap_offset, 0x2E), "bit 3 is 1"),
    (lambda d, b: b.__setitem__(d.bitmap_offset + 2, 0x01), "bit 16 set past"),
])
def test_work_list_errors(edit, words):
    d, blob = _wl_desc()
    F.read_work_list(d, bytes(blob))
    edit(d, blob)
    with pytest.raises(FormatError, match=words):
        F.read_work_list(d, bytes(blob))


def test_work_list_truncated():
    d, blob = _wl_desc()
    with pytest.raises(FormatError, match="outside the work region"):
        F.read_work_list(d, bytes(blob[:d.in_ch_list_offset + 2]))


@FUZZ
@given(st.binary(max_size=120))
def test_fuzz_work_list_random_region(data):
    d, _ = _wl_desc()
    try:
        wl = F.read_work_list(d, data)
    except FormatError:
        return
    assert int(wl.tiles.max(initial=0)) < d.n_tiles
    assert int(wl.in_channels.max(initial=0)) < d.in_c


@FUZZ
@given(st.binary(max_size=64), st.integers(-2, 40), st.integers(0, 70000))
def test_fuzz_u16_list(data, count, limit):
    try:
        a = F.unpack_u16_list(data, count, limit, "list")
    except FormatError:
        return
    assert len(a) == count and np.all(a < limit) and np.all(np.diff(a.astype(int)) > 0)


@FUZZ
@given(st.binary(max_size=40), st.integers(0, 300))
def test_fuzz_bitmap(data, n):
    try:
        bits = F.unpack_bitmap(data, n)
    except FormatError:
        return
    assert bits.shape == (n,)
    assert F.pack_bitmap(np.nonzero(bits)[0], n) == data[:F.bitmap_bytes(n)]


# ---- feature maps, weights, params, sums ---------------------------------------------------
def test_fmap_round_trip_and_compact():
    rng = np.random.default_rng(0)
    fm = rng.integers(0, 256, (5, 7, 6), dtype=np.uint8)
    b = F.pack_fmap(fm)
    assert b[(2 * 7 + 3) * 6 + 4] == fm[2, 3, 4]           # HWC address rule
    assert np.array_equal(F.unpack_fmap(b, 5, 7, 6, signed=False), fm)
    s = fm.view(np.int8)
    assert np.array_equal(F.unpack_fmap(F.pack_fmap(s), 5, 7, 6, signed=True), s)
    ch = [1, 4, 5]
    c = F.compact_channels(fm, ch)
    assert c.shape == (5, 7, 3) and np.array_equal(c[..., 1], fm[..., 4])
    e = F.expand_channels(c, ch, 6)
    assert np.array_equal(e[..., ch], fm[..., ch]) and not e[..., [0, 2, 3]].any()
    with pytest.raises(FormatError, match="expected 5x7x6"):
        F.unpack_fmap(b[:-1], 5, 7, 6, signed=False)
    with pytest.raises(FormatError):
        F.pack_fmap(fm.astype(np.int32))


@pytest.mark.parametrize("layout", F.WEIGHT_LAYOUTS)
def test_weights_round_trip(layout):
    rng = np.random.default_rng(1)
    cin = 1 if layout == "dw" else 5          # depthwise: one input channel per output
    w = rng.integers(-128, 128, (8, cin, 3, 3), dtype=np.int8)
    b = F.pack_weights(w, layout, tn=16, tm=3)
    assert np.array_equal(F.unpack_weights(b, 8, cin, 3, layout, tn=16, tm=3), w)
    if layout == "dw":          # a channel: its 9 taps (ky, kx), zero-padded to tn
        assert len(b) == 8 * 16
        assert b[3 * 16:4 * 16] == w[3, 0].tobytes() + bytes(7)
        with pytest.raises(FormatError, match=r"takes \[C\]\[1\]"):
            F.pack_weights(rng.integers(-128, 128, (8, 2, 3, 3), dtype=np.int8), layout, tn=16)
    elif layout == "oc_k_k_ic":   # an output channel is one contiguous burst
        assert b[2 * 45:3 * 45] == np.ascontiguousarray(w[2].transpose(1, 2, 0)).tobytes()
    elif layout == "im2col":    # an output channel: its (ky, kx, c) taps, zero-padded to tn
        assert len(b) == 8 * 48
        assert b[2 * 48:3 * 48] == np.ascontiguousarray(w[2].transpose(1, 2, 0)).tobytes() + bytes(3)
        with pytest.raises(FormatError, match="needs tn"):
            F.pack_weights(w, layout)
    else:   # ic_g_k_k_m: an input channel's k*k x m_g bytes of one m-group are contiguous
        # (tm = 3: groups of 3, 3, 2 output channels; input channel 4's 72 bytes at 4 * 72)
        row = b[4 * 72:5 * 72]
        assert row[:27] == np.ascontiguousarray(w[0:3, 4].transpose(1, 2, 0)).tobytes()
        assert row[27:54] == np.ascontiguousarray(w[3:6, 4].transpose(1, 2, 0)).tobytes()
        assert row[54:] == np.ascontiguousarray(w[6:8, 4].transpose(1, 2, 0)).tobytes()
        # the same bytes as [C_in][k][k][C_out], only in another order; a group of all
        # output channels (tm >= C_out) is exactly that order
        assert sorted(b) == sorted(np.ascontiguousarray(w.transpose(1, 2, 3, 0)).tobytes())
        assert (F.pack_weights(w, layout, tm=8)
                == np.ascontiguousarray(w.transpose(1, 2, 3, 0)).tobytes())
        with pytest.raises(FormatError, match="needs tm"):
            F.pack_weights(w, layout)
        with pytest.raises(FormatError, match="needs tm"):
            F.unpack_weights(b, 8, cin, 3, layout)
    with pytest.raises(FormatError, match="bytes, expected"):
        F.unpack_weights(b[:-1], 8, cin, 3, layout, tn=16, tm=3)
    with pytest.raises(FormatError, match="unknown layout"):
        F.pack_weights(w, "hwio")


@FUZZ
@given(st.binary(max_size=100), st.integers(0, 4), st.integers(0, 4), st.sampled_from([1, 3]),
       st.sampled_from(list(F.WEIGHT_LAYOUTS) + ["bad"]))
def test_fuzz_weights(data, co, ci, k, layout):
    try:
        w = F.unpack_weights(data, co, ci, k, layout, tn=4, tm=2)
    except FormatError:
        return
    assert w.shape == (co, ci, k, k)


def test_params_round_trip():
    bias = np.array([-5, 0, 2 ** 31 - 1, -2 ** 31], np.int64)
    mult = np.array([1, 2 ** 30, 0, 2 ** 31 - 1], np.int64)
    b = F.pack_params(bias, mult)
    assert len(b) == 4 * F.PARAM_BYTES
    bb, mm = F.unpack_params(b, 4)
    assert bb.tolist() == bias.tolist() and mm.tolist() == mult.tolist()
    with pytest.raises(FormatError, match="mult"):
        F.pack_params(bias, mult + 2 ** 31)                  # past int32


def test_param_words_are_signed_int32_everywhere():
    """One rule (docs/formats.md): every param word is valid, mult >= 2^31 is a negative
    multiplier (the engine multiplies signed), never a FormatError."""
    words = np.array([[7, 0x80000000], [-1, 0xFFFFFFFF], [0, 0x7FFFFFFF]], np.int64)
    raw = np.array(words & 0xFFFFFFFF, "<u4").tobytes()
    bias, mult = F.unpack_params(raw, 3)
    assert bias.tolist() == [7, -1, 0] and mult.tolist() == [-2 ** 31, -1, 2 ** 31 - 1]
    assert F.pack_params(bias, mult) == raw
    with pytest.raises(FormatError, match="bytes"):
        F.unpack_params(raw[:-1], 3)


def test_zero_halo_needs_the_input_on_the_output_grid():
    """zero_halo maps input pixel (y, x) to tile (y / (stride*tile), x / (stride*tile)):
    only layers whose output is ceil(input / stride) (pad k/2: stride 1 keeps the size, a
    Bottleneck's 3x3/s2 conv2 halves it) may set it; BAD_FLAGS at zero_halo otherwise."""
    for kw in (dict(), dict(stride=2), dict(k=1, pad=0, stride=2), dict(stride=2, in_h=15)):
        ok = place(F.make_descriptor(**{"k": 3, "stride": 1, "in_h": 16, "in_w": 12, "in_c": 8,
                                        "out_c": 8, "tile": 4, "tile_gated": True,
                                        "zero_halo": True, **kw}))
        assert (ok.out_h, ok.out_w) == (-(-ok.in_h // ok.stride), -(-ok.in_w // ok.stride))
        F.validate_descriptor(ok)
    for kw in (dict(pad=0), dict(stride=2, pad=0)):
        d = place(F.make_descriptor(in_h=16, in_w=12, in_c=8, out_c=8, tile=4,
                                    tile_gated=True, zero_halo=True, **{"k": 3, "stride": 1, **kw}))
        assert (d.out_h, d.out_w) != (-(-d.in_h // d.stride), -(-d.in_w // d.stride))
        with pytest.raises(FormatError, match="output's tile grid") as ei:
            F.validate_descriptor(d)
        assert ei.value.field == "zero_halo" and F.FIELD_ERROR["zero_halo"] == "BAD_FLAGS"


def test_fit_counts_all_tm_lanes_whatever_n_active_out():
    """NO_FIT: tm x k*k x n_active_in <= weight_buffer_bytes/2 even with fewer active
    outputs than tm (the engine's weight lanes have a fixed depth)."""
    lim = F.fit_limits(SMALL)
    assert lim == {"fit_weight_group_bytes": SMALL.weight_buffer_bytes // 2,
                   "fit_ifm_patch_bytes": SMALL.ifm_buffer_bytes // 2,
                   "fit_acc_bytes": SMALL.ofm_buffer_bytes}
    edge = lim["fit_weight_group_bytes"] // (SMALL.tm * 49)       # 7x7, tile 1
    for n_in, fits in ((edge, True), (edge + 1, False)):
        for n_out in (0, 1, SMALL.tm):
            d = F.make_descriptor(k=7, stride=1, in_h=8, in_w=8, in_c=n_in, out_c=8, tile=1,
                                  out_ch_gated=True, n_active_out=n_out)
            probs = F.layer_fit_problems(d, SMALL)
            assert (not probs) == fits, (n_in, n_out, probs)
            if not fits:
                assert f"tm={SMALL.tm} lanes" in probs[0]


@FUZZ
@given(st.binary(max_size=80), st.integers(0, 10))
def test_fuzz_params(data, c):
    try:
        bias, mult = F.unpack_params(data, c)
    except FormatError:
        return
    assert len(bias) == c == len(mult) and len(data) == c * F.PARAM_BYTES


def test_pool_bins_official_arithmetic():
    assert F.pool_bins(56, 7) == [(8 * i, 8 * i + 8) for i in range(7)]
    assert F.pool_bins(7, 2) == [(0, 4), (3, 7)]            # overlapping bins
    assert F.pool_bins(7, 7) == [(i, i + 1) for i in range(7)]
    assert F.pool_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]


@pytest.mark.parametrize("h, tile, bins", [(56, 8, 7), (28, 4, 7), (56, 8, 1), (32, 4, 8),
                                            (16, 2, 4), (7, 1, 7), (7, 1, 2), (14, 2, 7)])
def test_bin_sums_match_direct_pooling(h, tile, bins):
    rng = np.random.default_rng(h + tile + bins)
    fm = rng.integers(0, 256, (h, h, 5), dtype=np.uint8)
    sums = F.tile_pixel_sums(fm, tile)
    packed = F.pack_tile_sums(sums)
    gh = -(-h // tile)
    sums2 = F.unpack_tile_sums(packed, gh, gh, 5)
    got, counts = gates.sums_region_bins(sums2, tile, h, h, bins, bins)
    for i, (r0, r1) in enumerate(F.pool_bins(h, bins)):
        for j, (c0, c1) in enumerate(F.pool_bins(h, bins)):
            want = fm[r0:r1, c0:c1].astype(np.int64).sum(axis=(0, 1))
            assert np.array_equal(got[i, j], want)
            assert counts[i, j] == (r1 - r0) * (c1 - c0)


def test_bin_sums_refuse_misaligned_bins():
    sums = np.zeros((4, 4, 2), np.int32)
    with pytest.raises(FormatError, match="does not align with 4-px tiles"):
        gates.sums_region_bins(sums, 4, 14, 14, 7, 7)       # bins of 2 px, tiles of 4
    with pytest.raises(FormatError, match="tile sums have"):
        gates.sums_region_bins(sums, 2, 14, 14, 7, 7)


@FUZZ
@given(st.binary(max_size=100), st.integers(0, 4), st.integers(0, 4), st.integers(0, 4))
def test_fuzz_tile_sums(data, gh, gw, c):
    try:
        s = F.unpack_tile_sums(data, gh, gw, c)
    except FormatError:
        return
    assert s.shape == (gh, gw, c)


# ---- im2col (the few-channel stem: flattened (ky, kx, c) taps in the input lanes) ------
def _stem(cfg, **kw):
    base = dict(k=7, stride=2, in_h=224, in_w=224, in_c=3, out_c=64, tile=8, maxpool=True,
                in_signed=True, out_offset=1 << 20, param_offset=1 << 16)
    base.update(kw)
    return F.make_descriptor(**base)


def test_mac_steps_per_pixel():
    u96, small = load_config("ultra96"), load_config("small")
    d = _stem(u96)
    # counted independently: one step per (tap, tn channels), or per tn flattened taps
    assert F.mac_steps_per_pixel(d, u96) == 49 * 1
    assert F.mac_steps_per_pixel(d.replace(im2col=True), u96) == 10        # ceil(147/16)
    c = F.make_descriptor(k=3, stride=1, in_h=32, in_w=32, in_c=3, out_c=16, tile=4)
    assert F.mac_steps_per_pixel(c, small) == 9
    assert F.mac_steps_per_pixel(c.replace(im2col=True), small) == 7      # ceil(27/4)
    g = F.make_descriptor(k=3, stride=1, in_h=8, in_w=8, in_c=40, out_c=16, tile=4,
                          in_ch_gated=True, n_active_in=0)
    assert F.mac_steps_per_pixel(g, u96) == 0


def test_choose_im2col_is_the_stem_only():
    u96, small = load_config("ultra96"), load_config("small")
    assert F.choose_im2col(_stem(u96), u96)
    cifar = F.make_descriptor(k=3, stride=1, in_h=32, in_w=32, in_c=3, out_c=16, tile=4)
    assert F.choose_im2col(cifar, small) and F.choose_im2col(cifar, u96)
    wide = F.make_descriptor(k=3, stride=1, in_h=32, in_w=32, in_c=16, out_c=16, tile=4)
    assert not F.choose_im2col(wide, small) and not F.choose_im2col(wide, u96)  # no fewer steps
    one = F.make_descriptor(k=1, stride=2, in_h=32, in_w=32, in_c=3, out_c=16, tile=4)
    assert not F.choose_im2col(one, u96)
    gated = cifar.replace(in_ch_gated=True)
    assert not F.choose_im2col(gated, u96)


def test_im2col_weight_stream_and_buffers():
    u96 = load_config("ultra96")
    d = _stem(u96, im2col=True, weight_offset=0, param_offset=64 * 160)
    assert d.weight_layout == "im2col"
    assert F.im2col_row_bytes(d, u96) == 160 and F.weight_stream_bytes(d, u96) == 64 * 160
    assert ("weight", "weight_offset", 0, 64 * 160) in F.descriptor_buffers(d, u96)
    # pitch: >= a row of the 39-pixel patch + 2 beats, = k*C (mod 16) so the taps of one
    # step, however many patch rows they span, lie in 16 different banks
    p = F.im2col_row_pitch(d, u96)
    assert p >= 39 * 3 + 32 and p % 16 == 21 % 16 and p - (39 * 3 + 32) < 16
    for step in range(10):
        f = np.arange(16) + 16 * step
        addr = (f // 21) * p + f % 21
        assert len(set(addr % 16)) == 16


def test_im2col_flag_rules():
    u96, small = load_config("ultra96"), load_config("small")
    F.validate_descriptor(_stem(u96, im2col=True), u96)
    for kw, why in ((dict(k=1, stride=2, pad=0, maxpool=False), "1x1"),
                    (dict(k=3, stride=1, maxpool=False, tile_gated=True, zero_halo=True,
                          n_active_tiles=1, in_h=32, in_w=32), "zero_halo")):
        bad = _stem(u96, im2col=True, **kw)
        with pytest.raises(FormatError, match=why) as e:
            F.validate_descriptor(bad, u96)
        assert e.value.field == "im2col" and not e.value.no_fit
    # fits without the flag, not with it: BAD_FLAGS at im2col, not NO_FIT
    d = F.make_descriptor(k=3, stride=1, in_h=4, in_w=4, in_c=64, out_c=16, tile=4,
                          out_offset=1 << 12, param_offset=1 << 12)
    assert not F.layer_fit_problems(d, small)
    with pytest.raises(FormatError, match="im2col buffers do not fit") as e:
        F.validate_descriptor(d.replace(im2col=True), small)
    assert e.value.field == "im2col" and not e.value.no_fit
    assert F.FIELD_ERROR["im2col"] == "BAD_FLAGS"
    # round trip through the packed words
    raw = F.pack_descriptor(_stem(u96, im2col=True), u96)
    assert F.unpack_descriptor(raw, u96).im2col


# ---- depthwise layers and pixel_sums (MobileNetV2; pending in the engines) --------------
def _dw_desc(**kw):
    base = dict(k=3, stride=1, in_h=7, in_w=7, in_c=32, out_c=32, tile=2, op=F.OP_DWCONV,
                in_offset=0, out_offset=4096)
    base.update(kw)
    return F.make_descriptor(**base)


@pytest.mark.parametrize("change, field, code", [
    (dict(k=1, pad=0), "k", "BAD_OP"),
    (dict(out_c=16, n_active_out=16), "out_c", "BAD_SHAPE"),
    (dict(residual=True, res_offset=8192, res_mult=1), "residual", "BAD_FLAGS"),
    (dict(tile_gated=True, in_ch_gated=True, n_active_in=8, tile_list_offset=8192),
     "in_ch_gated", "BAD_FLAGS"),
    (dict(tile_gated=True, in_ch_gated=True, out_ch_gated=True, n_active_in=8,
          n_active_out=9, tile_list_offset=8192, out_ch_list_offset=8448), "n_active_in",
     "BAD_COUNT"),
    (dict(tile_gated=True, in_ch_gated=True, out_ch_gated=True, n_active_in=8,
          n_active_out=8, tile_list_offset=8192, out_ch_list_offset=8448,
          in_ch_list_offset=8704), "in_ch_list_offset", "BAD_OFFSET"),
    (dict(pixel_sums=True), "pixel_sums", "BAD_FLAGS"),
])
def test_depthwise_rules(change, field, code):
    """The depthwise record's rules (docs/formats.md): k 3, out_c = in_c, no residual,
    gated on both sides or neither by one list (its out-channel list; an in-channel list
    offset is an unused buffer), equal counts; pixel_sums needs emit_sums. Each fault
    names the field whose STATUS code the engine reports."""
    ok = _dw_desc()
    F.validate_descriptor(ok)
    assert F.mac_steps_per_pixel(ok, default_config()) == 2   # 9 taps, tn/2 = 8 per lane and step
    assert F.weight_stream_bytes(ok) == 32 * 16 and ok.weight_layout == "dw"
    with pytest.raises(FormatError) as e:
        F.validate_descriptor(_dw_desc(**change))
    assert e.value.field == field and F.FIELD_ERROR[field] == code


def test_a_config_without_depthwise_refuses_the_op():
    """[features] depthwise = false (ultra96_resnet): a depthwise record is BAD_OP at the op
    word, before its own rules (even a faulty one), and names the feature; a conv record is
    checked as on ultra96."""
    from dgfpga.contract.engine_config import load_config
    rn = load_config("ultra96_resnet")
    for d in (_dw_desc(), _dw_desc(out_c=16, n_active_out=16)):
        with pytest.raises(FormatError, match="no depthwise hardware") as e:
            F.validate_descriptor(d, rn)
        assert e.value.field == "op" and F.FIELD_ERROR["op"] == "BAD_OP"
        assert F.FIELD_BY_NAME["op"].word == 0
    conv = _dw_desc(op=F.OP_CONV, in_c=16)
    F.validate_descriptor(conv, rn)
    F.validate_descriptor(conv, default_config())


def test_depthwise_and_pixel_sums_round_trip_and_buffers():
    """A gated depthwise record packs and unpacks unchanged; its buffers have no in-channel
    list; pixel_sums sizes the sums per output pixel; the work-list writer gives the
    depthwise layer one channel list (n_active_in = n_active_out)."""
    d = _dw_desc(tile_gated=True, in_ch_gated=True, out_ch_gated=True, zero_halo=True,
                 n_active_in=5, n_active_out=5, tile_list_offset=8192,
                 out_ch_list_offset=8448, bitmap_offset=8704, emit_sums=True, pixel_sums=True,
                 sums_offset=0)
    assert F.unpack_descriptor(F.pack_descriptor(d)) == d
    names = {n: nb for _, n, _, nb in F.descriptor_buffers(d)}
    assert "in_ch_list_offset" not in names and names["sums_offset"] == 7 * 7 * 5 * 4
    slots = F.work_slots(d, 0, 16)
    fields, _ = F.encode_work_list(d, slots, [0, 3], out_channels=[1, 2, 4, 8, 9])
    assert fields["n_active_in"] == fields["n_active_out"] == 5
    assert "in_ch_list_offset" not in fields
    assert not F.choose_im2col(_dw_desc())


def test_ic_weight_run_beats_rules():
    """An ic_g_k_k_m in-channel's k*k rows of one m-group are read as one command exactly
    when they are whole beats (tm, m_g and an in-channel's k*k*out_c bytes multiples of the
    AXI width) and at most WEIGHT_RUN_MAX_BEATS (32) beats; the beats are then k*k*m_g / AB."""
    import dataclasses
    u96, small = load_config("ultra96"), load_config("small")      # AB 16 / tm 16, AB 8 / tm 4
    wide = dataclasses.replace(u96, tm=32)
    assert F.WEIGHT_RUN_MAX_BEATS == 32
    assert F.ic_weight_run_beats(16, 9, 64, u96) == 9
    assert F.ic_weight_run_beats(16, 1, 64, u96) == 1
    assert F.ic_weight_run_beats(8, 9, 24, u96) == 0       # a narrow last group: per position
    # a full group of a layer whose in-channels are not whole beats apart (24 x 1 bytes)
    assert F.ic_weight_run_beats(16, 1, 24, u96) == 0
    assert F.ic_weight_run_beats(16, 9, 24, u96) == 0       # 216 bytes per in-channel
    assert F.ic_weight_run_beats(4, 9, 64, small) == 0         # tm < AB: rows share beats
    assert F.ic_weight_run_beats(16, 49, 64, u96) == 0         # 49 beats > the limit
    assert F.ic_weight_run_beats(32, 9, 64, wide) == 18
    assert F.ic_weight_run_beats(16, 9, 48, wide) == 9         # m_g one beat: rows still aligned
    assert F.ic_weight_run_beats(32, 25, 64, wide) == 0        # 50 beats
