"""C-simulation of the HLS engine (hls/src, hls/tb) through dgfpga.backends.hls_csim.

Expected memory comes from the shared vector sets (`dgfpga.backends.vectors`, expectations from the
golden model's integer kernels); STATUS codes of faulty programs are also cross-checked
against `dgfpga.runtime.interpreter`, the executable reference of the engine's checks. The whole
FMAP and SUMS regions are compared, so a write outside a layer's buffers fails too.
"""
from __future__ import annotations

import shutil
import struct
import time

import numpy as np
import pytest

from dgfpga.contract import formats
from dgfpga.backends import hls_csim
from dgfpga.runtime import interpreter
from dgfpga.contract import regmap
from dgfpga.backends import vectors
from dgfpga.contract.engine_config import load_config
from dgfpga.contract.formats import FIELD_BY_NAME
from dgfpga.backends.vectors import LayerCase
from conftest import require_csim

ERR = regmap.ERR
SMALL = load_config("small")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hls_csim_cache")


@pytest.fixture(scope="session")
def engine(cache_dir):
    require_csim()
    t0 = time.monotonic()
    eng = hls_csim.CsimEngine(SMALL, cache_dir)
    print(f"libdg_csim.so for 'small' built in {time.monotonic() - t0:.1f} s")
    return eng


@pytest.fixture(scope="session")
def shared_sweep():
    return list(vectors.layer_sweep(SMALL))


def _check(vs, engine):
    chk = hls_csim.run_vector_set(vs, engine)
    assert chk.passed, f"{vs.name}: {chk.message}"
    return chk


# ----------------------------------------------------------------------------- tooling
def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(hls_csim.CsimError, match="C\\+\\+ compiler"):
        hls_csim.compiler()


def test_missing_ap_types_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DGFPGA_AP_TYPES", str(tmp_path))
    with pytest.raises(hls_csim.CsimError, match="ap_int.h"):
        hls_csim.ap_types_dir()


def test_build_folder_is_named_by_config_and_reused(engine, cache_dir):
    folder = hls_csim.build_dir(SMALL, cache_dir)
    assert folder.name == f"small-{SMALL.config_hash:08x}"
    lib = folder / hls_csim.LIB_NAME
    mtime = lib.stat().st_mtime_ns
    assert hls_csim.build(SMALL, "lib", cache_dir) == lib
    assert lib.stat().st_mtime_ns == mtime              # digest unchanged: not rebuilt
    header = (folder / "include" / "dg_config.h").read_text()
    assert f"0x{SMALL.config_hash:08X}" in header and "GENERATED FILE" in header


def test_identify_run(engine):
    regions = [np.zeros(16, np.uint8) for _ in range(4)]
    res = engine.run(b"", 0, *regions)
    assert res.status == 0 and res.engine_id == regmap.engine_id(SMALL)
    # CYCLES is a counter difference: the clockless C-sim reads 0; its estimate is apart
    assert res.cycles == 0 and res.cycles_estimate > 0
    regmap.check_engine_id(res.engine_id, SMALL)


def test_layer_count_above_max_layers(engine, shared_sweep):
    vs = shared_sweep[0]
    n = SMALL.max_layers + 1
    mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
    res = engine.run(vs.program * n, n, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
    assert res.status == regmap.pack_status(ERR["BAD_COUNT"], 0, 0)
    assert np.array_equal(mem["fmap"], vs.before["fmap"])


def test_run_validates_its_arguments(engine):
    ok = np.zeros(64, np.uint8)
    with pytest.raises(hls_csim.CsimError, match="fmap region"):
        engine.run(b"", 0, np.zeros(64, np.int8), ok, ok, ok)
    with pytest.raises(hls_csim.CsimError, match="writable"):
        ro = np.zeros(64, np.uint8)
        ro.flags.writeable = False
        engine.run(b"", 0, ro, ok, ok, ok)
    with pytest.raises(hls_csim.CsimError, match="sums region"):
        engine.run(b"", 0, ok, ok, ok, np.zeros(6, np.uint8))
    with pytest.raises(hls_csim.CsimError, match="program"):
        engine.run(b"\0" * 95, 1, ok, ok, ok, ok)


# ----------------------------------------------------------------------------- the sweep
@pytest.mark.parametrize("case", [c.name for c in vectors.sweep_cases(SMALL)])
def test_shared_layer_sweep_bit_exact(engine, shared_sweep, case):
    vs = next(v for v in shared_sweep if v.name == case)
    chk = _check(vs, engine)
    if vs.expected_status == 0 and vs.macs:
        # the cycle estimate can never beat the array's peak
        assert chk.cycles_estimate >= vs.macs / (SMALL.tm * SMALL.tn)


# Cases the shared sweep does not cover (kernels 1/7 without pooling, odd pooled maps,
# signed max-pool, both channel dimensions gated, the full grid...), same builder.
EXTRA_CASES = [
    LayerCase("x_k1_s1_edge", 1, 1, 11, 20, 9, 4),
    LayerCase("x_k1_s2_gated", 1, 2, 16, 16, 24, 2, tile_density=0.5, out_density=0.5),
    LayerCase("x_k7_s1", 7, 1, 10, 5, 6, 3),
    LayerCase("x_k7_s2_no_pool", 7, 2, 20, 3, 8, 4, in_signed=True),
    LayerCase("x_stem_tile1_odd", 7, 2, 17, 3, 5, 1, in_signed=True, maxpool=True),
    LayerCase("x_stem_tile3_edge", 7, 2, 30, 3, 6, 3, in_signed=True, maxpool=True),
    LayerCase("x_pool_k3_s1", 3, 1, 16, 4, 12, 4, maxpool=True),
    LayerCase("x_both_ch_gated", 3, 1, 12, 20, 18, 4, tile_density=0.6, in_density=0.5,
              out_density=0.4),
    LayerCase("x_in_gated_only", 3, 1, 12, 20, 18, 4, in_density=0.3),
    LayerCase("x_halo_all_on", 3, 1, 8, 8, 8, 2, gated=True, in_density=0.5, residual="u8",
              in_place=True, zero_halo=True),
    LayerCase("x_full_grid", 3, 1, 32, 8, 8, 4, tile_density=0.8, out_density=0.75),
    LayerCase("x_res_s8_in_place", 3, 1, 12, 12, 12, 4, tile_density=0.4, in_density=0.7,
              residual="s8", in_place=True, zero_halo=True),
    LayerCase("x_res_only_all", 3, 1, 9, 8, 8, 3, tile_density=0.0, gated=True,
              in_density=0.5, residual="u8", res_only=True, zero_halo=True),
    LayerCase("x_k1_res_signed_out", 1, 1, 8, 16, 16, 2, residual="s8", out_signed=True),
]


@pytest.mark.parametrize("case", EXTRA_CASES, ids=lambda c: c.name)
def test_extra_layer_cases_bit_exact(engine, case):
    _check(vectors.build_layer_case(case, SMALL, seed=1), engine)


def test_signed_maxpool_pads_with_minus_infinity(engine):
    # dgfpga.numerics.golden.maxpool3x3s2 pads with 0 (exact for the u8 ReLU stem only); the engine
    # and dgfpga.runtime.interpreter pad with -inf (= the clamp minimum), PyTorch's semantics.
    case = LayerCase("x_pool_signed_out", 3, 1, 15, 6, 5, 2, maxpool=True, out_signed=True)
    vs = vectors.build_layer_case(case, SMALL, seed=1)
    ref = {r: vs.before[r].copy() for r in vectors.REGIONS}
    assert interpreter.run_program(vs.program, 1, ref, SMALL).status == 0
    res, mem = _run_mutant(engine, vs, vs.program, 1)
    assert res.status == 0
    assert np.array_equal(mem["fmap"], ref["fmap"]) and np.array_equal(mem["sums"], ref["sums"])
    out = np.frombuffer(vs.program[:formats.DESCRIPTOR_BYTES], "<u4")
    assert (out[1] >> 1) & 1                        # really a signed output


def _random_case(rng, i: int) -> LayerCase | None:
    k = int(rng.choice([1, 3, 3, 3, 7]))
    stride = int(rng.choice([1, 1, 2]))
    maxpool = k == 7 and rng.random() < 0.5
    hw = int(rng.integers(max(k, 4), SMALL.max_width + 1))
    in_c = int(rng.integers(1, 11 if k == 7 else SMALL.max_in_channels + 1))
    out_c = int(rng.integers(1, SMALL.max_out_channels + 1))
    tile = int(rng.integers(1, SMALL.max_tile + 1))
    if maxpool:
        return LayerCase(f"r{i}_stem", k, stride, hw, in_c, out_c, tile, in_signed=True,
                         maxpool=True)
    kind = rng.choice(["dense", "conv1", "conv2_id", "conv2_ds"])
    dens = lambda: float(rng.choice([0.0, 0.2, 0.5, 0.8, 1.0]))  # noqa: E731
    if kind == "dense":
        return LayerCase(f"r{i}_dense", k, stride, hw, in_c, out_c, tile,
                         in_signed=bool(rng.random() < 0.3), out_signed=bool(rng.random() < 0.3))
    if kind == "conv1":
        return LayerCase(f"r{i}_conv1", k, stride, hw, in_c, out_c, tile,
                         tile_density=dens(), out_density=max(dens(), 0.1), gated=True)
    if kind == "conv2_id":
        return LayerCase(f"r{i}_conv2_id", k, 1, hw, in_c, in_c, tile, tile_density=dens(),
                         in_density=dens(), residual="u8", in_place=True, zero_halo=True)
    return LayerCase(f"r{i}_conv2_ds", k, 1, hw, in_c, out_c, tile, tile_density=dens(),
                     in_density=dens(), residual="s8", res_only=True, zero_halo=True)


def _random_sweep(engine, n: int, seed: int):
    rng = np.random.default_rng(seed)
    done = 0
    tried = 0
    while done < n:
        tried += 1
        assert tried < 20 * n, "random case generator produces too few valid layers"
        case = _random_case(rng, tried)
        try:
            vs = vectors.build_layer_case(case, SMALL, seed=seed)
        except (formats.FormatError, ValueError):
            continue            # the shape does not fit 'small': draw another
        _check(vs, engine)
        done += 1


def test_random_layers_bit_exact(engine):
    _random_sweep(engine, 120, seed=6)


@pytest.mark.slow
def test_random_layers_bit_exact_long(engine):
    _random_sweep(engine, 1500, seed=66)


# ----------------------------------------------------------------------------- faults
def _desc_words(vs, layer: int = 0) -> np.ndarray:
    b = formats.DESCRIPTOR_BYTES
    return np.frombuffer(vs.program[layer * b:(layer + 1) * b], "<u4").copy()


def _set_field(words: np.ndarray, name: str, value: int) -> None:
    f = FIELD_BY_NAME[name]
    w = int(words[f.word]) & ~(f.mask << f.lsb) & 0xFFFFFFFF
    words[f.word] = w | ((value & f.mask) << f.lsb)


def _run_mutant(engine, vs, program: bytes, layer_count: int, work=None):
    mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
    if work is not None:
        mem["work"] = work
    res = engine.run(program, layer_count, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
    return res, mem


def _base(shared_sweep, name="conv2_identity_in_place"):
    return next(v for v in shared_sweep if v.name == name)


FAULTS = [
    # (description, field or None, value, expected code, expected entry)
    ("bad magic", "magic", 0x12, "BAD_MAGIC", 0),
    ("bad version", "version", 9, "BAD_MAGIC", 0),
    ("op 0", "op", 0, "BAD_OP", 0),
    ("kernel 5", "k", 5, "BAD_OP", 0),
    ("shift 0", "shift", 0, "BAD_OP", 1),
    ("in_c above the limit", "in_c", SMALL.max_in_channels + 1, "BAD_SHAPE", 4),
    ("out_w inconsistent", "out_w", 15, "BAD_SHAPE", 3),
    ("relu with signed out", "out_signed", 1, "BAD_FLAGS", 1),
    ("tile above max_tile", "tile", SMALL.max_tile + 1, "BAD_TILE", 5),
    ("grid_h wrong", "grid_h", 3, "BAD_TILE", 5),
    ("more active tiles than the grid", "n_active_tiles", 200, "BAD_COUNT", 6),
    ("too many input channels", "n_active_in", 17, "BAD_COUNT", 7),
    ("misaligned offset", "param_offset", 4, "BAD_OFFSET", 13),
    ("unused offset not zero", "out_ch_list_offset", 16, "BAD_OFFSET", 16),
    ("tile list outside WORK", "tile_list_offset", 1 << 20, "BAD_OFFSET", 14),
    ("bitmap outside WORK", "bitmap_offset", 1 << 20, "BAD_OFFSET", 18),
    ("weights outside WEIGHT", "weight_offset", 1 << 24, "BAD_OFFSET", 12),
]


@pytest.mark.parametrize("what,name,value,code,entry", FAULTS, ids=[f[0] for f in FAULTS])
def test_descriptor_faults(engine, shared_sweep, what, name, value, code, entry):
    vs = _base(shared_sweep)
    words = _desc_words(vs)
    _set_field(words, name, value)
    res, mem = _run_mutant(engine, vs, words.tobytes(), 1)
    assert res.status == regmap.pack_status(ERR[code], 0, entry), res.describe()
    assert np.array_equal(mem["fmap"], vs.before["fmap"])
    assert np.array_equal(mem["sums"], vs.before["sums"])


def test_reserved_bits_and_words(engine, shared_sweep):
    vs = _base(shared_sweep)
    for word, bit in ((1, 15), (20, 0), (23, 31), (5, 30)):
        words = _desc_words(vs)
        words[word] |= np.uint32(1 << bit)
        res, mem = _run_mutant(engine, vs, words.tobytes(), 1)
        assert res.status == regmap.pack_status(ERR["BAD_MAGIC"], 0, 0), (word, bit)
        assert np.array_equal(mem["fmap"], vs.before["fmap"])


def test_no_fit(engine, shared_sweep):
    # a 7x7 layer over 16 input channels: 4 x 49 x 16 weight bytes > weight_buffer_bytes/2
    vs = _base(shared_sweep, "dense_3x3_s1")
    words = _desc_words(vs)
    _set_field(words, "k", 7)
    _set_field(words, "pad", 3)
    res, mem = _run_mutant(engine, vs, words.tobytes(), 1)
    assert res.status == regmap.pack_status(ERR["NO_FIT"], 0, FIELD_BY_NAME["tile"].word)
    assert np.array_equal(mem["fmap"], vs.before["fmap"])


def _work_u16(work: np.ndarray, offset: int, index: int, value: int) -> None:
    work[offset + 2 * index:offset + 2 * index + 2] = np.frombuffer(struct.pack("<H", value), np.uint8)


def test_work_list_faults(engine, shared_sweep):
    vs = _base(shared_sweep, "conv2_downsample_res_only")
    d = formats.unpack_descriptor(vs.program[:formats.DESCRIPTOR_BYTES], SMALL)
    assert d.n_res_tiles >= 2 and d.n_active_tiles >= 2
    tiles = formats.read_work_list(d, vs.before["work"])
    cases = []
    w = vs.before["work"].copy()
    _work_u16(w, d.res_tile_list_offset, 0, int(tiles.tiles[0]))   # also active
    cases.append((w, "TILE_ORDER", 0))
    w = vs.before["work"].copy()
    _work_u16(w, d.res_tile_list_offset, 1, d.n_tiles)
    cases.append((w, "TILE_RANGE", 1))
    w = vs.before["work"].copy()
    _work_u16(w, d.tile_list_offset, 1, int(tiles.tiles[0]))       # duplicate
    _work_u16(w, d.tile_list_offset, 0, 0xFFFF)                     # and earlier: range
    cases.append((w, "TILE_RANGE", 0))
    w = vs.before["work"].copy()
    _work_u16(w, d.in_ch_list_offset, 1, 0)
    cases.append((w, "CHANNEL_ORDER", 1))
    w = vs.before["work"].copy()
    w[d.bitmap_offset + 4 * ((d.n_tiles + 31) // 32) - 1] |= 0x80   # a bit past the grid
    cases.append((w, "BITMAP_MISMATCH", 32 * ((d.n_tiles + 31) // 32) - 1))
    for work, code, entry in cases:
        res, mem = _run_mutant(engine, vs, vs.program, 1, work)
        assert res.status == regmap.pack_status(ERR[code], 0, entry), (code, res.describe())
        assert np.array_equal(mem["fmap"], vs.before["fmap"]), code
        assert np.array_equal(mem["sums"], vs.before["sums"]), code
        ref = interpreter.run_program(vs.program, 1, {r: (work if r == "work" else
                                                          vs.before[r].copy())
                                                      for r in vectors.REGIONS}, SMALL)
        assert ref.status == res.status, (code, ref.message)


# The mutation fuzzer of descriptors, work lists, regions and layer counts against the
# interpreter (and under AddressSanitizer + UBSan) is tests/backends/test_engine_fuzz.py.


def _corner_case(engine, vs, program: bytes, weight=None):
    """Run `program` over vs's regions on the engine and the interpreter: (statuses, same
    memory)."""
    ref = {r: vs.before[r].copy() for r in vectors.REGIONS}
    if weight is not None:
        ref["weight"] = weight.copy()
    r = interpreter.run_program(program, 1, ref, SMALL)
    mem = {r_: v.copy() for r_, v in ref.items()}
    mem["fmap"], mem["sums"] = vs.before["fmap"].copy(), vs.before["sums"].copy()
    res = engine.run(program, 1, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
    same = all(np.array_equal(mem[k], ref[k]) for k in ("fmap", "sums"))
    return res.status, r.status, same


def test_zero_halo_off_the_output_grid_is_bad_flags_everywhere(engine, shared_sweep):
    """zero_halo with an input larger than the output (pad 0 here) is refused by the
    validator, the interpreter and the engine alike (BAD_FLAGS at the zero_halo word)."""
    vs = _base(shared_sweep)
    words = _desc_words(vs)
    d = formats.unpack_descriptor(words.tobytes(), SMALL)
    _set_field(words, "pad", 0)
    _set_field(words, "out_h", d.in_h - 2)
    _set_field(words, "out_w", d.in_w - 2)
    _set_field(words, "grid_h", -(-(d.in_h - 2) // d.tile))
    _set_field(words, "grid_w", -(-(d.in_w - 2) // d.tile))
    got, want, same = _corner_case(engine, vs, words.tobytes())
    assert want == regmap.pack_status(ERR["BAD_FLAGS"], 0, FIELD_BY_NAME["zero_halo"].word)
    assert got == want and same


@pytest.mark.parametrize("side,tile", [(16, 2), (15, 3)])
def test_zero_halo_with_stride_two_bit_exact(engine, side, tile):
    """zero_halo on a stride-2 layer (a Bottleneck's strided conv2): out = ceil(in/2), input
    pixel (y, x) in tile (y // (2*tile), x // (2*tile)) (formats.validate_descriptor, the
    interpreter). A gated stride-2 layer built without it, then the flag set and the tile
    bitmap appended to WORK: the engine equals the interpreter, and the halo really zeroes
    input (the output differs from the same layer without the flag)."""
    case = LayerCase(f"x_s2_halo_{side}", 3, 2, side, 8, 8, tile, tile_density=0.5,
                     in_density=0.5, gated=True)
    vs = vectors.build_layer_case(case, SMALL, seed=3)
    words = _desc_words(vs)
    d = formats.unpack_descriptor(words.tobytes(), SMALL)
    assert d.stride == 2 and d.tile_gated and not d.zero_halo and 0 < d.n_active_tiles < d.grid_h * d.grid_w
    # the bitmap of the layer's active tiles, appended to WORK at an aligned offset
    tiles = np.frombuffer(vs.before["work"][d.tile_list_offset:d.tile_list_offset +
                                            2 * d.n_active_tiles].tobytes(), "<u2")
    bitmap = np.zeros(-(-d.grid_h * d.grid_w // 32), np.uint32)
    for t in tiles:
        bitmap[t >> 5] |= np.uint32(1 << (int(t) & 31))
    off = -(-vs.before["work"].size // SMALL.axi_bytes) * SMALL.axi_bytes
    work = np.zeros(off + bitmap.nbytes, np.uint8)
    work[:vs.before["work"].size] = vs.before["work"]
    work[off:] = bitmap.view(np.uint8)
    _set_field(words, "zero_halo", 1)
    _set_field(words, "bitmap_offset", off)
    formats.validate_descriptor(formats.unpack_descriptor(words.tobytes(), SMALL), SMALL)
    before = {**{r: vs.before[r] for r in vectors.REGIONS}, "work": work}
    runs = []
    for prog in (words.tobytes(), vs.program):
        ref = {r: v.copy() for r, v in before.items()}
        assert interpreter.run_program(prog, 1, ref, SMALL).status == 0
        mem = {r: v.copy() for r, v in before.items()}
        res = engine.run(prog, 1, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
        assert res.status == 0, res.describe()
        for r in ("fmap", "sums"):
            i = np.flatnonzero(mem[r] != ref[r])
            assert not i.size, f"{r} differs from the interpreter at byte {i[0]}"
        runs.append(mem["fmap"])
    assert not np.array_equal(runs[0], runs[1]), "the halo zeroed nothing: no test"


@pytest.mark.parametrize("base", ["conv2_identity_in_place", "dense_1x1_s2_signed_out"])
def test_im2col_where_not_allowed_is_bad_flags_everywhere(engine, shared_sweep, base):
    """The im2col flag on a layer with a compact input and zero_halo, or on a 1x1 conv:
    BAD_FLAGS at the im2col word on the validator, the interpreter and the engine."""
    vs = _base(shared_sweep, base)
    words = _desc_words(vs)
    _set_field(words, "im2col", 1)
    got, want, same = _corner_case(engine, vs, words.tobytes())
    assert want == regmap.pack_status(ERR["BAD_FLAGS"], 0, FIELD_BY_NAME["im2col"].word)
    assert got == want and same


def test_im2col_patch_too_big_is_bad_flags_everywhere(engine, shared_sweep):
    """A 3x3 layer over 64 channels fits the buffers (NO_FIT rules) but not with the
    im2col row pitch (formats.im2col_fit_problems): BAD_FLAGS at the im2col word, not NO_FIT."""
    vs = _base(shared_sweep, "dense_3x3_s1")
    words = _desc_words(vs)
    d = formats.unpack_descriptor(words.tobytes(), SMALL)
    c = SMALL.max_in_channels
    for name, v in (("in_h", 4), ("in_w", 4), ("out_h", 4), ("out_w", 4), ("grid_h", 1),
                    ("grid_w", 1), ("n_active_tiles", 1), ("in_c", c), ("n_active_in", c),
                    ("im2col", 1)):
        _set_field(words, name, v)
    e = formats.LayerDescriptor(**{**d.__dict__, "in_h": 4, "in_w": 4, "out_h": 4, "out_w": 4,
                                   "grid_h": 1, "grid_w": 1, "n_active_tiles": 1, "in_c": c,
                                   "n_active_in": c})
    assert not formats.layer_fit_problems(e, SMALL)
    assert formats.im2col_fit_problems(e.replace(im2col=True), SMALL)
    got, want, same = _corner_case(engine, vs, words.tobytes())
    assert want == regmap.pack_status(ERR["BAD_FLAGS"], 0, FIELD_BY_NAME["im2col"].word)
    assert got == want and same


def test_no_fit_counts_all_lanes_everywhere(engine, shared_sweep):
    """A 7x7 layer at tile 1 whose tm-lane m-group is one input channel too big: NO_FIT on
    both levels even with a single active output channel."""
    vs = _base(shared_sweep, "conv1_gated_all")
    words = _desc_words(vs)
    d = formats.unpack_descriptor(words.tobytes(), SMALL)
    assert d.out_h <= SMALL.max_grid and d.out_ch_gated
    n_in = formats.fit_limits(SMALL)["fit_weight_group_bytes"] // (SMALL.tm * 49) + 1
    assert n_in <= d.in_c and 49 * n_in <= formats.fit_limits(SMALL)["fit_ifm_patch_bytes"]
    for name, v in (("k", 7), ("pad", 3), ("tile", 1), ("grid_h", d.out_h),
                    ("grid_w", d.out_w), ("in_c", n_in), ("n_active_in", n_in),
                    ("n_active_out", 1)):
        _set_field(words, name, v)
    got, want, same = _corner_case(engine, vs, words.tobytes())
    assert want == regmap.pack_status(ERR["NO_FIT"], 0, FIELD_BY_NAME["tile"].word)
    assert got == want and same


def test_mult_with_the_top_bit_set_is_a_negative_multiplier_everywhere(engine, shared_sweep):
    """A param word mult >= 2^31 is a negative int32 multiplier on both levels: the layer
    runs and the outputs agree byte for byte (signed outputs, so the sign shows)."""
    vs = _base(shared_sweep, "dense_1x1_s2_signed_out")
    d = formats.unpack_descriptor(vs.program[:formats.DESCRIPTOR_BYTES], SMALL)
    assert d.out_signed
    weight = vs.before["weight"].copy()
    for ch in range(d.out_c):
        o = d.param_offset + ch * formats.PARAM_BYTES + 4
        weight[o:o + 4] = np.frombuffer(struct.pack("<I", 0x80000000 + 7 * ch), np.uint8)
    got, want, same = _corner_case(engine, vs, vs.program[:formats.DESCRIPTOR_BYTES], weight)
    assert got == want == 0 and same


# ----------------------------------------------------------------------------- testbench
def test_testbench_binary_on_vector_folders(engine, shared_sweep, cache_dir, tmp_path):
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in shared_sweep]
    code, lines = hls_csim.run_testbench(folders, SMALL, cache_dir)
    assert code == 0, "\n".join(lines)
    assert len(lines) == len(folders) and all(ln.startswith("PASS ") for ln in lines)
    # a corrupted expectation fails with exit code 1 and names the byte
    bad = tmp_path / "corrupt"
    shutil.copytree(folders[0], bad)
    exp = bytearray((bad / "expected_fmap.bin").read_bytes())
    exp[len(exp) // 2] ^= 0xFF
    (bad / "expected_fmap.bin").write_bytes(bytes(exp))
    code, lines = hls_csim.run_testbench([bad], SMALL, cache_dir)
    assert code == 1 and lines[0].startswith("FAIL ") and "fmap differs at byte" in lines[0]


@pytest.mark.slow          # ASan/UBSan build; the plain testbench binary runs by default
def test_sanitized_testbench_on_vector_folders_with_empty_regions(engine, shared_sweep,
                                                                  cache_dir, tmp_path):
    """The testbench under AddressSanitizer + UBSan: every shared vector set, plus sets whose
    SUMS (and WORK) region is empty, pass with no finding (exact region sizes, no null
    memcpy)."""
    sets = list(shared_sweep)
    dense = next(v for v in sets if v.name == "dense_1x1_s2_signed_out")
    assert formats.unpack_descriptor(dense.program[:formats.DESCRIPTOR_BYTES], SMALL).emit_sums \
        is False
    empty = vectors.VectorSet(
        "empty_sums_and_work", dense.config, dense.config_hash, dense.program,
        dense.layer_count, {**dense.before, "sums": np.zeros(0, np.uint8),
                            "work": np.zeros(0, np.uint8)},
        {**dense.expected, "sums": np.zeros(0, np.uint8)}, dense.expected_status, dense.macs)
    identify = vectors.VectorSet("identify_all_empty", dense.config, dense.config_hash, b"", 0,
                                 {r: np.zeros(0, np.uint8) for r in vectors.REGIONS},
                                 {r: np.zeros(0, np.uint8) for r in ("fmap", "sums")})
    sets += [empty, identify]
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in sets]
    code, lines = hls_csim.run_testbench(folders, SMALL, cache_dir, sanitize=True)
    assert code == 0, "\n".join(lines[-20:])
    assert len(lines) == len(folders) and all(ln.startswith("PASS ") for ln in lines)


@pytest.mark.slow          # ~20 s; the library path runs the same corners in the default suite
def test_testbench_on_network_program_corners(engine, cache_dir, tmp_path):
    """The C++ testbench (AddressSanitizer + UBSan build) on the contract corners written as
    folders: one-block network programs with run_flags, expected WORK and the cycle log as
    an `ignore` range; a corrupted WORK expectation fails and names the byte."""
    corners = vectors.contract_corners(SMALL)
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in corners]
    code, lines = hls_csim.run_testbench(folders, SMALL, cache_dir, sanitize=True)
    assert code == 0, "\n".join(lines[-20:])
    assert len(lines) == len(folders) and all(ln.startswith("PASS ") for ln in lines)
    gated = next(vs for vs in corners if vs.name == "corner_prog_gated")
    assert gated.ignore and "work" in gated.expected
    bad = tmp_path / "corrupt_work"
    shutil.copytree(tmp_path / gated.name, bad)
    exp = bytearray((bad / "expected_work.bin").read_bytes())
    reg, off, n = gated.ignore[0]
    i = next(j for j in range(len(exp)) if not off <= j < off + n)
    exp[i] ^= 0xFF
    (bad / "expected_work.bin").write_bytes(bytes(exp))
    code, lines = hls_csim.run_testbench([bad], SMALL, cache_dir)
    assert code == 1 and f"work differs at byte {i}" in lines[0]


# ----------------------------------------------------------------------------- ultra96
@pytest.fixture(scope="session")
def ultra96_engine(cache_dir):
    require_csim()
    cfg = load_config("ultra96")
    t0 = time.monotonic()
    eng = hls_csim.CsimEngine(cfg, cache_dir)
    print(f"libdg_csim.so for 'ultra96' built in {time.monotonic() - t0:.1f} s")
    return eng


def test_ultra96_shared_sweep_bit_exact(ultra96_engine):
    assert ultra96_engine.engine_id == regmap.engine_id(ultra96_engine.cfg)
    n = 0
    for vs in vectors.layer_sweep(ultra96_engine.cfg):
        _check(vs, ultra96_engine)
        n += 1
    assert n == len(vectors.sweep_cases(ultra96_engine.cfg))


def test_ultra96_imagenet_stem_im2col_bit_exact(ultra96_engine):
    """The ResNet-18 stem (7x7/s2 + max-pool over 224x224x3) with and without im2col."""
    for flag in (False, True):
        vs = vectors.build_layer_case(vectors.stem_case("imagenet", flag), ultra96_engine.cfg)
        assert formats.unpack_descriptor(vs.program, ultra96_engine.cfg).im2col == flag
        _check(vs, ultra96_engine)


@pytest.mark.slow
def test_ultra96_random_layers_bit_exact(ultra96_engine):
    rng = np.random.default_rng(96)
    cfg = ultra96_engine.cfg
    done = 0
    while done < 150:
        case = _random_case(rng, done)
        case = LayerCase(**{**case.__dict__, "in_hw": min(case.in_hw * 2, 56),
                            "tile": min(case.tile * 2, cfg.max_tile)})
        try:
            vs = vectors.build_layer_case(case, cfg, seed=3)
        except (formats.FormatError, ValueError):
            continue
        _check(vs, ultra96_engine)
        done += 1


def test_vector_set_for_another_config_is_refused(engine):
    cfg = load_config("ultra96")
    vs = next(iter(vectors.layer_sweep(cfg)))
    with pytest.raises(hls_csim.CsimError, match="config"):
        hls_csim.run_vector_set(vs, engine)


def test_two_layer_chain_conv1_then_conv2_in_place(engine, shared_sweep):
    """One start running conv1 (compact output) then conv2 reading it (compact input,
    zero halo, residual in place over conv1's input): C-sim equals dgfpga.runtime.interpreter."""
    vs = _base(shared_sweep, "conv1_gated_half")
    a = SMALL.axi_bytes
    up = lambda n: -(-n // a) * a  # noqa: E731
    d1 = formats.unpack_descriptor(vs.program, SMALL)
    wl1 = formats.read_work_list(d1, vs.before["work"])
    rng = np.random.default_rng(7)
    w2 = rng.integers(-128, 128, (d1.in_c, d1.out_c, 3, 3)).astype(np.int8)
    bias = rng.integers(-2000, 2000, d1.in_c).astype(np.int32)
    mult = rng.integers(20, 60, d1.in_c).astype(np.int32)
    d2 = formats.make_descriptor(k=3, stride=1, in_h=d1.out_h, in_w=d1.out_w, in_c=d1.out_c,
                                 out_c=d1.in_c, tile=d1.tile, tile_gated=True,
                                 in_ch_gated=True, zero_halo=True, residual=True,
                                 in_place=True, res_mult=1 << 16, shift=16, emit_sums=True,
                                 in_offset=d1.out_offset, out_offset=d1.in_offset,
                                 res_offset=d1.in_offset)
    weight = vs.before["weight"]
    wbytes = np.frombuffer(formats.pack_layer_weights(w2, d2, SMALL), np.uint8)
    pbytes = np.frombuffer(formats.pack_params(bias, mult), np.uint8)
    w_off = up(weight.size)
    p_off = up(w_off + wbytes.size)
    weight = np.concatenate([weight, np.zeros(p_off + up(pbytes.size) - weight.size, np.uint8)])
    weight[w_off:w_off + wbytes.size] = wbytes
    weight[p_off:p_off + pbytes.size] = pbytes
    work = vs.before["work"]
    blob, d2 = formats.pack_work_list(
        d2.replace(weight_offset=w_off, param_offset=p_off),
        formats.WorkList(wl1.tiles, in_channels=wl1.out_channels), up(work.size), SMALL)
    work = np.concatenate([work, np.zeros(up(work.size) - work.size, np.uint8),
                           np.frombuffer(blob, np.uint8)])
    sums_bytes = d2.n_tiles * d2.out_c * 4
    sums = np.zeros(up(max(vs.before["sums"].size, sums_bytes)), np.uint8)
    prog = vs.program + formats.pack_descriptor(d2, SMALL)
    regions = {"fmap": vs.before["fmap"], "weight": weight, "work": work, "sums": sums}
    ref = {k: v.copy() for k, v in regions.items()}
    r = interpreter.run_program(prog, 2, ref, SMALL)
    assert r.status == 0, r.message
    mem = {k: v.copy() for k, v in regions.items()}
    res = engine.run(prog, 2, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
    assert res.status == 0, res.describe()
    assert np.array_equal(mem["fmap"], ref["fmap"])
    assert np.array_equal(mem["sums"], ref["sums"])
    assert not np.array_equal(mem["fmap"], regions["fmap"])     # both layers wrote


def test_no_active_output_channel_writes_nothing(engine, shared_sweep):
    """Channel density 0 on the output side (the scheduler omits such a conv1, the engine
    must still accept it): status OK, nothing written, as the interpreter says."""
    vs = _base(shared_sweep, "conv1_gated_half")
    words = _desc_words(vs)
    _set_field(words, "n_active_out", 0)
    ref = {r: vs.before[r].copy() for r in vectors.REGIONS}
    assert interpreter.run_program(words.tobytes(), 1, ref, SMALL).status == 0
    res, mem = _run_mutant(engine, vs, words.tobytes(), 1)
    assert res.status == 0, res.describe()
    for r in ("fmap", "sums"):
        assert np.array_equal(mem[r], vs.before[r]) and np.array_equal(mem[r], ref[r])


def test_contract_corners_shared_vectors(engine):
    """The same corner vector sets the RTL runs (vectors.contract_corners: layer corners and
    one-block network programs, valid and with one malformed gate/head record, parameter or
    from_gate misuse each) on the C-sim: STATUS and every FMAP, WORK and SUMS byte as the
    set expects (the cycle log aside), the interpreter's STATUS too, and a malformed record
    writes nothing (the regions equal those of the start stopped just before it)."""
    corners = vectors.contract_corners(SMALL)
    faulty = [vs for vs in corners if vs.expected_status]
    assert len(corners) >= 3 and faulty
    for vs in corners:
        chk = hls_csim.run_vector_set(vs, engine)
        assert chk.passed, f"{vs.name}: {chk.message}"
        ref = {r: vs.before[r].copy() for r in vectors.REGIONS}
        r = interpreter.run_program(vs.program, vs.layer_count, ref, SMALL,
                                    run_flags=hls_csim.vector_run_flags(vs))
        assert r.status == vs.expected_status, vs.name
    for vs in faulty:
        at = regmap.unpack_status(vs.expected_status)[1]
        mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
        engine.run(vs.program, vs.layer_count, mem["fmap"], mem["weight"], mem["work"],
                   mem["sums"], run_flags=hls_csim.vector_run_flags(vs))
        before = {r: vs.before[r].copy() for r in vectors.REGIONS}
        res = engine.run(vs.program[:at * formats.DESCRIPTOR_BYTES], at, before["fmap"],
                         before["weight"], before["work"], before["sums"],
                         run_flags=hls_csim.vector_run_flags(vs))
        assert res.status == 0, vs.name
        for k in vectors.REGIONS:
            assert np.array_equal(mem[k], before[k]), f"{vs.name}: the faulty record wrote {k}"


# ----------------------------------------------------------------------------- network program
# One engine start per image (SPEC13): stem, per block a gate record + from_gate convs, the
# head. The C-sim must equal the interpreter on every region byte (the cycle log aside: the
# interpreter has no clock and writes zeros), and the golden model on logits and masks.
from conftest import ROOT  # noqa: E402

CKPT_DIR = ROOT / "models" / "checkpoints"
CYC_START = 4            # hls/src/dg_types.h: estimate = CYC_START + sum(log) + one per log entry
_PLANS: dict = {}


def _shipped_plan(name: str, cfg=SMALL):
    """(plan, test split) of a shipped checkpoint quantized with the embedded calibration
    images, for `cfg` (cached per session)."""
    key = (name, cfg.name)
    if key not in _PLANS:
        pytest.importorskip("torch", reason="quantizing a checkpoint needs torch")
        from dgfpga.data import embedded as data
        from dgfpga.quant.float_model import load_float_model
        from dgfpga.quant.quantizer import quantize_model
        from dgfpga.runtime.packer import plan_network
        model, _ = load_float_model(CKPT_DIR / f"resdg20_cifar10_{name}.pth.tar")
        qm = quantize_model(model, data.load_split("train", 256).images)
        _PLANS[key] = (plan_network(qm, cfg), data.load_split("test", 20).images)
    return _PLANS[key]


def _net_regions(plan, image) -> dict:
    """The four regions of one image: WEIGHT as packed, the quantized input in FMAP."""
    from dgfpga.backends.engine_fuzz import network_regions
    return network_regions(plan, image)


def _cycle_log(plan, mem) -> np.ndarray:
    lo = plan.cycle_log
    return mem["work"][lo.offset:lo.offset + lo.nbytes].view("<u4").copy()


def _net_image(engine, plan, image, run_flags: int):
    """One image in one start on the interpreter and the C-sim: every region equal (the
    cycle log excepted, checked for its sum); returns (C-sim memory, run, interpreter run)."""
    ref = _net_regions(plan, image)
    mem = {r: v.copy() for r, v in ref.items()}
    r = interpreter.run_program(plan.program, plan.record_count, ref, plan.cfg,
                                run_flags=run_flags)
    res = engine.run(plan.program, plan.record_count, mem["fmap"], mem["weight"], mem["work"],
                     mem["sums"], run_flags=run_flags)
    assert r.status == 0, r.message
    assert res.status == 0, res.describe()
    log = _cycle_log(plan, mem)
    assert log.size == plan.record_count and (log > 0).all()
    assert res.cycles_estimate == CYC_START + int(log.sum()) + plan.record_count
    assert res.cycles == 0                 # CYCLES: the counter difference (no clock in C-sim)
    assert not _cycle_log(plan, ref).any()
    lo = plan.cycle_log
    cmp = {k: v.copy() for k, v in mem.items()}
    cmp["work"][lo.offset:lo.offset + lo.nbytes] = 0
    for k in vectors.REGIONS:
        i = np.flatnonzero(cmp[k] != ref[k])
        assert not i.size, f"{k} differs from the interpreter at byte {i[0]} (flags {run_flags})"
    return mem, res, r


def _check_network(engine, plan, images, golden=True):
    """Gated and dense, image by image; logits and masks also against the golden model."""
    from dgfpga.contract import program as prog
    from dgfpga.numerics.golden import run_golden
    g = run_golden(plan.qmodel, images) if golden else None
    gd = run_golden(plan.qmodel, images, masks="dense") if golden else None
    lg = plan.logits
    cycles = {}
    for flags in (0, prog.RUN_DENSE):
        cycles[flags] = []
        for n, img in enumerate(images):
            mem, res, r = _net_image(engine, plan, img, flags)
            cycles[flags].append(res.cycles_estimate)
            logits = mem["work"][lg.offset:lg.offset + lg.nbytes].view("<i8")
            for b, bp in enumerate(plan.blocks):
                m = bp.mask
                sp, ch = prog.decode_masks(mem["work"][m.offset:m.offset + m.nbytes],
                                           bp.grid[0] * bp.grid[1], bp.conv1.template.out_c)
                if flags:
                    assert sp.all() and ch.all()
                elif golden:
                    np.testing.assert_array_equal(sp, g.masks[b].spatial[n].reshape(-1))
                    np.testing.assert_array_equal(ch, g.masks[b].channel[n])
            if golden:
                want = (gd if flags else g).logits_int[n]
                np.testing.assert_array_equal(logits, want, err_msg=f"image {n} flags {flags}")
    return cycles


def test_network_program_one_start_shipped_d50(engine):
    """resdg20 d50 (the shipped model), 3 images: the whole network in ONE start, gated and
    dense: C-sim == interpreter (every region byte) == golden (logits, masks)."""
    plan, images = _shipped_plan("d50")
    cyc = _check_network(engine, plan, images[:3])
    assert np.median(cyc[1]) / np.median(cyc[0]) > 1.5   # d50 skips about half the MACs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["d50", "d30", "dense"])
def test_network_program_one_start_shipped_20_images(engine, name):
    plan, images = _shipped_plan(name)
    assert len(images) == 20
    _check_network(engine, plan, images)


@pytest.mark.slow
def test_network_program_random_resdg18_ultra96(ultra96_engine):
    """A ResNet-18 (224x224, random weights, mixed gates) on the ultra96 config, 2 images."""
    pytest.importorskip("torch", reason="building the random model needs torch")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.runtime.packer import plan_network
    rng = np.random.default_rng(18)
    imgs = np.clip(rng.normal(0, 1, (8, 3, 224, 224)), -1.8, 2.2).astype(np.float32)
    qm = quantize_model(make_test_model("resdg18", imgs), imgs)
    plan = plan_network(qm, ultra96_engine.cfg)
    fractions = []
    for n in range(2):
        _, _, r = _net_image(ultra96_engine, plan, imgs[n], 0)
        fractions += [float(sp.mean()) for sp, _ in r.gate_masks]
        _net_image(ultra96_engine, plan, imgs[n], 1)
    assert 0.2 < np.mean(fractions) < 0.95           # mixed gates: some tiles on, some off


def test_network_dense_flag_and_skipped_layers(engine):
    """DENSE turns every gate on without evaluating it (the SUMS the gates would read may
    be garbage); a gate whose channel gate is all off skips conv1 (out-channel gated) and,
    in place, conv2 when no tile is on: those records log only their fetch."""
    from dgfpga.contract import program as prog
    plan, images = _shipped_plan("d50")
    mem, res, r = _net_image(engine, plan, images[0], prog.RUN_DENSE)
    assert r.records.count("skipped") == 0
    # every gate off: bs and b2 very negative -> no tile, no channel
    weight = plan.weight_image.copy()
    for bp in plan.blocks:
        rec = bp.gate_record
        lay = prog.gate_param_layout(rec.in_c, rec.out_c, rec.hidden, rec.gh, rec.gw,
                                     SMALL.axi_bytes)
        o = rec.param_offset
        weight[o + lay.bs:o + lay.bs + 8] = np.frombuffer(np.array([-(1 << 45)], "<i8").tobytes(), np.uint8)
        b2 = np.full(rec.out_c, -(1 << 45), "<i8")
        weight[o + lay.b2:o + lay.b2 + 8 * rec.out_c] = b2.view(np.uint8)
    ref = _net_regions(plan, images[0])
    ref["weight"] = weight
    mem = {k: v.copy() for k, v in ref.items()}
    rr = interpreter.run_program(plan.program, plan.record_count, ref, SMALL)
    res = engine.run(plan.program, plan.record_count, mem["fmap"], mem["weight"], mem["work"],
                     mem["sums"])
    assert rr.status == res.status == 0
    kinds = [rp.kind for rp in plan.records]
    skipped = [i for i, k in enumerate(rr.records) if k == "skipped"]
    assert skipped and all(kinds[i] in ("conv1", "conv2") for i in skipped)
    log = _cycle_log(plan, mem)
    fetch = 24 + formats.DESCRIPTOR_WORDS // 2 + 32      # CYC_AXI_LATENCY + beats + CYC_LAYER
    assert all(log[i] == fetch for i in skipped)
    mem["work"][plan.cycle_log.offset:plan.cycle_log.offset + plan.cycle_log.nbytes] = 0
    for k in vectors.REGIONS:
        assert np.array_equal(mem[k], ref[k]), k


def test_network_program_vectors_golden(engine, test_qmodel, calib_images, cache_dir, tmp_path):
    """vectors.network_program_vectors (expectations from the golden model, regions filled
    with patterns before the start) of the test resdg20 (random weights, mixed gates), gated
    and dense, 2 images: bit-exact through ctypes and through the C++ testbench binary."""
    from dgfpga.runtime.packer import plan_network
    plan = plan_network(test_qmodel, SMALL)
    sets = [vs for dense in (False, True) for vs in vectors.network_program_vectors(
        test_qmodel, calib_images[:2], SMALL, dense, plan=plan)]
    assert len(sets) == 4
    for vs in sets:
        chk = _check(vs, engine)
        assert chk.cycles_estimate >= vs.macs / (SMALL.tm * SMALL.tn)
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in sets]
    code, lines = hls_csim.run_testbench(folders, SMALL, cache_dir)
    assert code == 0 and all(ln.startswith("PASS ") for ln in lines), "\n".join(lines)


def _rec_field(fields, name):
    return next(f for f in fields if f.name == name)


def _patched(program: bytes, index: int, word: int, value: int, mask: int = 0xFFFFFFFF,
             lsb: int = 0) -> bytes:
    w = np.frombuffer(program, "<u4").copy().reshape(-1, formats.DESCRIPTOR_WORDS)
    w[index, word] = (int(w[index, word]) & ~(mask << lsb) & 0xFFFFFFFF) | ((value & mask) << lsb)
    return w.tobytes()


def _network_faults(plan):
    """(name, program, layer_count, weight or None, code, entry, record index): malformed
    gate/head/from_gate records and gate parameters of a network program."""
    from dgfpga.contract import program as prog
    P, n = plan.program, plan.record_count
    kinds = [rp.kind for rp in plan.records]
    gi = kinds.index("gate")                         # block 0's gate record
    ds = next(b for b in plan.blocks if not b.identity)
    gd = [i for i, rp in enumerate(plan.records) if rp.kind == "gate" and rp.block == ds.index][0]
    hi = n - 1
    rec = plan.blocks[0].gate_record
    lim = prog.GATE_BIAS_LIMIT

    def gf(prog_bytes, i, name, v, fields=prog.GATE_FIELDS):
        f = _rec_field(fields, name)
        return _patched(prog_bytes, i, f.word, v, f.mask, f.lsb)

    def hf(name, v):
        return gf(P, hi, name, v, prog.HEAD_FIELDS)

    out = [
        ("gate reserved word", _patched(P, gi, 14, 1), n, None, "BAD_GATE", 14, gi),
        ("gate reserved bits w2", _patched(P, gi, 2, 1, 1, 30), n, None, "BAD_GATE", 2, gi),
        ("gate reserved bits w0", _patched(P, gi, 0, 1, 1, 24), n, None, "BAD_GATE", 0, gi),
        ("gate flags bit 3", _patched(P, gi, 4, 1, 1, 3), n, None, "BAD_FLAGS", 4, gi),
        ("gate in_c 0", gf(P, gi, "in_c", 0), n, None, "BAD_SHAPE", 1, gi),
        ("gate out_c too big", gf(P, gi, "out_c", SMALL.max_out_channels + 1), n, None,
         "BAD_SHAPE", 1, gi),
        ("gate hidden > in_c", gf(P, gi, "hidden", rec.in_c + 1), n, None, "BAD_SHAPE", 2, gi),
        ("gate h_shift 0", gf(P, gi, "h_shift", 0), n, None, "BAD_GATE", 2, gi),
        ("gate h_shift 63", gf(P, gi, "h_shift", 63), n, None, "BAD_GATE", 2, gi),
        ("gate st_h 0", gf(P, gi, "st_h", 0), n, None, "BAD_TILE", 3, gi),
        ("gate gw too big", gf(P, gi, "gw", SMALL.max_grid + 1), n, None, "BAD_TILE", 3, gi),
        ("gate res tiles without res_list", gf(P, gd, "res_list", 0), n, None, "BAD_OFFSET", 11,
         gd),
        ("gate sums misaligned", gf(P, gi, "sums_offset", rec.sums_offset + 4), n, None,
         "BAD_OFFSET", 5, gi),
        ("gate params outside WEIGHT", gf(P, gi, "param_offset", plan.region_bytes["weight"]), n,
         None, "BAD_OFFSET", 6, gi),
        ("gate mask outside WORK", gf(P, gi, "mask_offset", plan.region_bytes["work"]), n, None,
         "BAD_OFFSET", 7, gi),
        ("gate bitmap outside WORK", gf(P, gi, "c2_bitmap_offset", plan.region_bytes["work"]), n,
         None, "BAD_OFFSET", 13, gi),
        ("head not last", P + P[hi * 96:], n + 1, None, "BAD_OP", 0, hi),
        ("head reserved word", _patched(P, hi, 7, 5), n, None, "BAD_GATE", 7, hi),
        ("head reserved bits w2", _patched(P, hi, 2, 1, 1, 20), n, None, "BAD_GATE", 2, hi),
        ("head classes 0", hf("classes", 0), n, None, "BAD_SHAPE", 1, hi),
        ("head classes too many", hf("classes", prog.MAX_CLASSES + 1), n, None, "BAD_SHAPE", 1,
         hi),
        ("head st_w 0", hf("st_w", 0), n, None, "BAD_TILE", 2, hi),
        ("head logits misaligned", hf("logits_offset", plan.logits.offset + 4), n, None,
         "BAD_OFFSET", 5, hi),
        ("head log outside WORK", hf("log_offset", plan.region_bytes["work"] - 8), n, None,
         "BAD_OFFSET", 6, hi),
        ("from_gate without a gate", P[:gi * 96] + P[(gi + 1) * 96:], n - 1, None, "BAD_FLAGS",
         1, gi),
        ("from_gate without tile_gated",
         _patched(P, gi + 1, 1, 0, 1, formats.FIELD_BY_NAME["tile_gated"].lsb), n, None,
         "BAD_FLAGS", 1, gi + 1),
        ("unknown op", gf(P, gi, "op", 4), n, None, "BAD_OP", 0, gi),
        ("old version", gf(P, gi, "version", 1), n, None, "BAD_MAGIC", 0, gi),
    ]
    # parameter contents (BAD_GATE, ENTRY = index within the section)
    lay = prog.gate_param_layout(rec.in_c, rec.out_c, rec.hidden, rec.gh, rec.gw, SMALL.axi_bytes)
    base = rec.param_offset

    def wp(section, index, value, dtype):
        w = plan.weight_image.copy()
        o = base + lay.offsets[section] + index * np.dtype(dtype).itemsize
        w[o:o + np.dtype(dtype).itemsize] = np.frombuffer(np.array([value], dtype).tobytes(), np.uint8)
        return w
    out += [
        ("bin row start = st_h", P, n, wp("bins", 2, rec.st_h, "u1"), "BAD_GATE", 2, gi),
        ("bin row end <= start", P, n, wp("bins", 1, 0, "u1"), "BAD_GATE", 1, gi),
        ("bin col end past st_w", P, n, wp("bins", 2 * rec.gh + 1, rec.st_w + 1, "u1"),
         "BAD_GATE", 2 * rec.gh + 1, gi),
        ("recip 0", P, n, wp("recip", 3, 0, "<u4"), "BAD_GATE", 3, gi),
        ("recip_total 2^24+1", P, n, wp("recip", rec.gh * rec.gw, (1 << 24) + 1, "<u4"),
         "BAD_GATE", rec.gh * rec.gw, gi),
        ("bs 2^46", P, n, wp("bs", 0, lim, "<i8"), "BAD_GATE", 0, gi),
        ("o1 -2^46", P, n, wp("o1", rec.hidden - 1, -lim, "<i8"), "BAD_GATE", rec.hidden - 1,
         gi),
        ("b2 2^46", P, n, wp("b2", 5, lim, "<i8"), "BAD_GATE", 5, gi),
    ]
    return out


def test_network_faults_flagged_before_anything_is_written(engine):
    """Every malformed gate/head record, gate parameter and from_gate misuse: the expected
    STATUS (code, record, entry) = the interpreter's, and the faulty record wrote nothing:
    the regions equal the interpreter's and those of the same start stopped just before it."""
    plan, images = _shipped_plan("d50")
    cases = _network_faults(plan)
    assert len(cases) >= 35
    for name, program, count, weight, code, entry, at in cases:
        mem0 = _net_regions(plan, images[1])
        if weight is not None:
            mem0["weight"] = weight
        ref = {k: v.copy() for k, v in mem0.items()}
        r = interpreter.run_program(program, count, ref, SMALL)
        mem = {k: v.copy() for k, v in mem0.items()}
        res = engine.run(program, count, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
        want = regmap.pack_status(ERR[code], at, entry)
        assert res.status == want, f"{name}: {res.describe()}, want {regmap.describe_status(want)}"
        assert r.status == want, f"{name}: interpreter {r.message}"
        before = {k: v.copy() for k, v in mem0.items()}
        ok = engine.run(program[:at * 96], at, before["fmap"], before["weight"], before["work"],
                        before["sums"])
        assert ok.status == 0, name
        for k in vectors.REGIONS:
            assert np.array_equal(mem[k], ref[k]), f"{name}: {k} differs from the interpreter"
            assert np.array_equal(mem[k], before[k]), f"{name}: the faulty record wrote {k}"


def test_gate_unit_logits_exact_at_the_decision_edge(engine):
    """The gate unit's integer logits, not only its decisions: with biases moved so that a
    logit (computed here from the sum tiles with dgfpga.numerics.gates) is exactly 0 (on)
    or -1 (off), the C-sim must decide exactly so. Any rounding or order difference in the
    pooling, the 3x3 taps, the hidden requantization or fc2 flips one of these."""
    from dgfpga.contract import program as prog
    from dgfpga.numerics import gates
    plan, images = _shipped_plan("d50")
    cfg = plan.cfg
    b0 = plan.blocks[0]
    rec = b0.gate_record
    stem_gate = plan.program[:2 * formats.DESCRIPTOR_BYTES]
    assert [rp.kind for rp in plan.records[:2]] == ["stem", "gate"]
    mem0 = _net_regions(plan, images[2])
    ref = {k: v.copy() for k, v in mem0.items()}
    assert interpreter.run_program(stem_gate[:formats.DESCRIPTOR_BYTES], 1, ref, cfg).status == 0
    ts = ref["sums"][rec.sums_offset:rec.sums_offset + 4 * rec.st_h * rec.st_w * rec.in_c] \
        .view("<i4").reshape(rec.st_h, rec.st_w, rec.in_c).astype(np.int64)
    lay = prog.gate_param_layout(rec.in_c, rec.out_c, rec.hidden, rec.gh, rec.gw, cfg.axi_bytes)
    p = prog.unpack_gate_params(plan.weight_image[rec.param_offset:rec.param_offset + lay.nbytes]
                                .tobytes(), rec.in_c, rec.out_c, rec.hidden, rec.gh, rec.gw,
                                cfg.axi_bytes)
    bins = np.array([[ts[r0:r1, c0:c1].sum(axis=(0, 1)) for c0, c1 in p.cols]
                     for r0, r1 in p.rows])                                     # [gh, gw, C]
    pooled = gates.gate_pool(np.moveaxis(bins, -1, 0), p.recip)
    sg = gates.IntSpatialGate(p.ws, p.bs)
    cg = gates.IntChannelGate(p.w1, p.m1, p.o1, rec.h_shift, p.w2, p.b2)
    ls = gates.spatial_gate_logits_int(pooled, sg).reshape(-1)
    lc = gates.channel_gate_logits_int(gates.gate_pool(ts.sum(axis=(0, 1)), p.recip_total), cg)
    assert (lc > 0).any() and (lc < 0).any()          # a real, mixed channel gate
    o = rec.param_offset
    rng = np.random.default_rng(5)
    runs = []
    for delta in (0, -1):                             # every channel at once
        w = plan.weight_image.copy()
        w[o + lay.b2:o + lay.b2 + 8 * rec.out_c] = (p.b2 - lc + delta).astype("<i8").view(np.uint8)
        runs.append((w, None, delta))
    for k in rng.choice(ls.size, 4, replace=False):   # one bin at a time (bs is shared)
        for delta in (0, -1):
            w = plan.weight_image.copy()
            w[o + lay.bs:o + lay.bs + 8] = np.array([p.bs - ls[k] + delta], "<i8").view(np.uint8)
            runs.append((w, int(k), delta))
    for w, k, delta in runs:
        mem = {r: v.copy() for r, v in mem0.items()}
        mem["weight"] = w
        res = engine.run(stem_gate, 2, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
        assert res.status == 0, res.describe()
        m = b0.mask
        sp, ch = prog.decode_masks(mem["work"][m.offset:m.offset + m.nbytes], rec.gh * rec.gw,
                                   rec.out_c)
        if k is None:
            assert ch.all() if delta == 0 else not ch.any(), f"channel logits off (delta {delta})"
        else:
            assert sp[k] == (delta == 0), f"spatial logit of bin {k} off (delta {delta})"


def test_two_engine_configs_in_one_process_share_no_buffers():
    """The C-sim library exports no process-wide unique symbols: the engine's static
    buffers of one config (small) are never bound into another config's library (ultra96)
    loaded into the same process, whose buffers are larger (found by the ResNet-18 run on
    ultra96 after the small engine had run in the same pytest process)."""
    import shutil
    import subprocess
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("binutils nm not installed: cannot list the library's dynamic symbols")
    from dgfpga.contract.engine_config import load_config
    for name in ("small", "ultra96"):
        lib = hls_csim.build(load_config(name), "lib")
        out = subprocess.run([nm, "-D", str(lib)], capture_output=True, text=True, check=True)
        unique = [ln for ln in out.stdout.splitlines() if " u " in ln]
        assert not unique, f"{name}: unique symbols {unique[:3]}"


# ----------------------------------------------------------------------------- Bottleneck
# The gate-2 record (docs/formats.md "Bottleneck blocks and the gate-2 record"): the shared
# Bottleneck vectors (vectors.bottleneck_program_vectors: expected memory from the
# interpreter, itself checked against the golden model when the vectors are built) and the
# gate-2 fault corners; then Bottleneck networks: golden = interpreter = C-sim.
@pytest.fixture(scope="session")
def bottleneck_sets():
    return vectors.bottleneck_program_vectors(SMALL), vectors.bottleneck_corners(SMALL)


def test_bottleneck_program_vectors_bit_exact(engine, bottleneck_sets):
    """Two Bottleneck blocks in one start (projection block with the stride-2 zero_halo
    conv2, identity block in place), gated and dense, 2 images: STATUS OK and every FMAP,
    WORK and SUMS byte as the vector expects (conv1's compact output and compact sums, the
    masks and lists of both gate records and both gate-2 records, conv2/conv3 with the
    counts after gate-2, the logits); the cycle log holds one non-zero entry per record."""
    progs, _ = bottleneck_sets
    assert {vs.run_flags for vs in progs} == {0, 1} and len(progs) == 4
    for vs in progs:
        assert "gate2" in vs.meta["records"] and "skipped" not in vs.meta["records"]
        _check(vs, engine)
        mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
        res = engine.run(vs.program, vs.layer_count, mem["fmap"], mem["weight"], mem["work"],
                         mem["sums"], run_flags=vs.run_flags)
        reg, off, nb = vs.ignore[0]
        log = mem[reg][off:off + nb].view("<u4")
        assert log.size == vs.layer_count and (log > 0).all()
        assert res.cycles_estimate == CYC_START + int(log.sum()) + vs.layer_count


def test_bottleneck_gate2_corners(engine, bottleneck_sets):
    """Every gate-2 check (record fields in word order, the sections, the parameters, the
    padding bits of the masks it reads, a gate-2 record with no gate record before it):
    the C-sim's STATUS (code, record, ENTRY) and memory equal the vector's (the
    interpreter's), and the faulty record wrote nothing (memory equals that of the start
    stopped just before it)."""
    _, corners = bottleneck_sets
    assert len(corners) >= 20 and all(vs.expected_status for vs in corners)
    for vs in corners:
        _check(vs, engine)
        at = regmap.unpack_status(vs.expected_status)[1]
        mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
        engine.run(vs.program, vs.layer_count, mem["fmap"], mem["weight"], mem["work"],
                   mem["sums"])
        before = {r: vs.before[r].copy() for r in vectors.REGIONS}
        res = engine.run(vs.program[:at * formats.DESCRIPTOR_BYTES], at, before["fmap"],
                         before["weight"], before["work"], before["sums"])
        assert res.status == 0, vs.name
        for k in vectors.REGIONS:
            assert np.array_equal(mem[k], before[k]), f"{vs.name}: the faulty record wrote {k}"


def test_bottleneck_vectors_in_the_sanitized_testbench(engine, bottleneck_sets, cache_dir,
                                                       tmp_path):
    """The C++ testbench under AddressSanitizer + UBSan on the Bottleneck vector folders
    (programs and gate-2 corners): every set passes with no finding."""
    sets = bottleneck_sets[0] + bottleneck_sets[1]
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in sets]
    code, lines = hls_csim.run_testbench(folders, SMALL, cache_dir, sanitize=True)
    assert code == 0, "\n".join(lines[-20:])
    assert len(lines) == len(folders) and all(ln.startswith("PASS ") for ln in lines)


def test_gate2_logits_exact_at_the_decision_edge(engine, bottleneck_sets):
    """The gate-2 record's integer logits, not only its decisions: with conv1's compact sums
    as the C-sim wrote them, the logits computed here (dgfpga.numerics.gates, totals summed
    from the sums of the active tiles) are moved to exactly 0 (every channel on) or -1
    (every channel off) through b2; any difference in the compact accumulation, the pooling,
    the hidden requantization or fc2 flips a decision."""
    from dgfpga.contract import program as prog
    from dgfpga.numerics import gates
    progs, _ = bottleneck_sets
    vs = next(v for v in progs if v.name == "bottleneck_gated_img0")
    RB = formats.DESCRIPTOR_BYTES
    kinds = vs.meta["records"]
    k = kinds.index("gate2")
    r2 = prog.unpack_gate2_record(vs.program[k * RB:(k + 1) * RB], SMALL)
    mem0 = {r: vs.before[r].copy() for r in vectors.REGIONS}
    assert engine.run(vs.program[:k * RB], k, mem0["fmap"], mem0["weight"], mem0["work"],
                      mem0["sums"]).status == 0
    n = r2.st_h * r2.st_w
    tiles, chans = prog.decode_masks(mem0["work"][r2.in_mask_offset:
                                                  r2.in_mask_offset + prog.mask_bytes(n, r2.in_c)],
                                     n, r2.in_c)
    nc = int(chans.sum())
    assert 0 < tiles.sum() < n and 0 < nc < r2.in_c       # gated on both: compact sums
    s = mem0["sums"][r2.sums_offset:r2.sums_offset + 4 * n * nc].view("<i4").reshape(n, nc)
    totals = np.zeros(r2.in_c, np.int64)
    totals[chans] = s[tiles].astype(np.int64).sum(axis=0)
    lay = prog.gate2_param_layout(r2.in_c, r2.out_c, r2.hidden, SMALL.axi_bytes)
    o = r2.param_offset
    p = prog.unpack_gate2_params(mem0["weight"][o:o + lay.nbytes].tobytes(), r2.in_c, r2.out_c,
                                 r2.hidden, SMALL.axi_bytes)
    cg = gates.IntChannelGate(p.w1, p.m1, p.o1, r2.h_shift, p.w2, p.b2)
    logits = gates.channel_gate_logits_int(gates.gate_pool(totals, p.recip_total), cg)
    assert (logits >= 0).any() and (logits < 0).any()     # a real, mixed gate
    for delta in (0, -1):
        b2 = o + lay.offsets["b2"]
        mem = {r: v.copy() for r, v in vs.before.items()}
        mem["weight"][b2:b2 + 8 * r2.out_c] = (p.b2 - logits + delta).astype("<i8").view(np.uint8)
        res = engine.run(vs.program[:(k + 1) * RB], k + 1, mem["fmap"], mem["weight"],
                         mem["work"], mem["sums"])
        assert res.status == 0, res.describe()
        ch2 = formats.unpack_bitmap(mem["work"][r2.mask_offset:r2.mask_offset + 4 *
                                                ((r2.out_c + 31) // 32)], r2.out_c)
        assert ch2.all() if delta == 0 else not ch2.any(), f"gate-2 logits off (delta {delta})"


def _bottleneck_net(arch: str, size: int, n: int = 4, seed: int = 0):
    """A random Bottleneck DGNet (mixed gates) quantized on its own random images."""
    pytest.importorskip("torch", reason="building the random model needs torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    torch.set_num_threads(1)
    lo = -1.9 if arch.endswith("cifar10") else -1.75
    x = np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)
    x = x.clip(lo, 2.0)
    kw = {} if arch.endswith("cifar10") else dict(input_size=(size, size), num_classes=10)
    return quantize_model(make_test_model(arch, x, **kw), x), x


def _check_bottleneck_network(eng, plan, images):
    """Gated and dense, image by image, one start each: C-sim == interpreter on every region
    byte (the cycle log aside) and == golden on logits and every block's mask_s, mask_c1 and
    mask_c2 (the WORK bytes the gate and gate-2 records wrote). Returns the per-record cycle
    logs {flags: [log per image]}."""
    from dgfpga.contract import program as prog
    from dgfpga.numerics.golden import run_golden
    logs = {}
    for flags in (0, prog.RUN_DENSE):
        g = run_golden(plan.qmodel, images, masks="dense" if flags else None)
        logs[flags] = []
        for n, img in enumerate(images):
            mem, res, r = _net_image(eng, plan, img, flags)
            logs[flags].append(_cycle_log(plan, mem))
            lg = plan.logits
            np.testing.assert_array_equal(mem["work"][lg.offset:lg.offset + lg.nbytes].view("<i8"),
                                          g.logits_int[n], err_msg=f"image {n} flags {flags}")
            for b, bp in enumerate(plan.blocks):
                m, r2 = bp.mask, bp.gate2_record
                sp, ch = prog.decode_masks(mem["work"][m.offset:m.offset + m.nbytes],
                                           bp.grid[0] * bp.grid[1], r2.in_c)
                ch2 = formats.unpack_bitmap(mem["work"][r2.mask_offset:r2.mask_offset +
                                                        4 * ((r2.out_c + 31) // 32)], r2.out_c)
                gm = g.masks[b]
                np.testing.assert_array_equal(sp, gm.spatial[n].reshape(-1))
                np.testing.assert_array_equal(ch, gm.channel[n])
                np.testing.assert_array_equal(ch2, gm.channel2[n], err_msg=f"block {b} mask_c2")
    return logs


def test_resdg29b_one_start_golden_interpreter_csim(ultra96_engine):
    """resdg29b_cifar10 (official Bottleneck blocks in the CIFAR layout, random weights,
    mixed gates) on ultra96, 2 images, gated and dense: golden = interpreter = C-sim; the
    gated images skip work (fewer estimated cycles than dense) and every gate mixes."""
    from dgfpga.runtime.packer import plan_network
    qm, x = _bottleneck_net("resdg29b_cifar10", 32, n=8)
    plan = plan_network(qm, ultra96_engine.cfg)
    assert [rp.kind for rp in plan.records].count("gate2") == len(plan.blocks) == 9
    logs = _check_bottleneck_network(ultra96_engine, plan, x[:2])
    for gated, dense in zip(logs[0], logs[1]):
        assert gated.sum() < dense.sum()
    from dgfpga.numerics.golden import run_golden
    g = run_golden(qm, x[:2])
    on = np.concatenate([m.channel2.ravel() for m in g.masks])
    assert 0.05 < on.mean() < 0.95


def test_shipped_trained_bottleneck_on_real_images(ultra96_engine):
    """The shipped trained Bottleneck DGNet (models/checkpoints/resdg11b_cifar10_d55.pth.tar,
    quantized as `dgfpga quantize --calib embedded:256:train` does) on 2 embedded test
    images, ultra96, gated and dense: golden = interpreter = C-sim, with the gates the
    training made (not random ones)."""
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    from dgfpga.contract import program as prog
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import QuantConfig, quantize_model
    from dgfpga.runtime.packer import plan_network
    model, _ = load_float_model(ROOT / "models" / "checkpoints" / "resdg11b_cifar10_d55.pth.tar")
    qm = quantize_model(model, load_split("train", 256).images,
                        QuantConfig(calibration_mode="gated"))
    plan = plan_network(qm, ultra96_engine.cfg)
    assert [rp.kind for rp in plan.records].count("gate2") == len(plan.blocks) == 3
    logs = _check_bottleneck_network(ultra96_engine, plan, load_split("test").images[:2])
    assert all(a.sum() < b.sum() for a, b in zip(logs[0], logs[prog.RUN_DENSE]))


# slow: ResNet-50 Bottleneck programs run on the C-sim by default as resdg29b_cifar10 and the
# shipped trained resdg11b (test_bottleneck_vectors_*, test_shipped_trained_bottleneck_*)
@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 224])
def test_resdg50_one_start_golden_interpreter_csim(cache_dir, size):
    """resdg50 (random weights, mixed gates) on ultra96
    (ultra96's engine and buffers with ResNet-50's 2048-channel limits: the gate unit's
    channel-group-outer arrays, the channel lists, 1x1 layers up to 2048 inputs in the
    147,456-byte weight buffer), 2 images, gated and dense: golden = interpreter = C-sim
    on every region byte; gated images take fewer estimated cycles than dense. 64x64 in
    the default suite, the official 224x224 slow (~5 s gated, ~12 s dense per image on the
    C-sim, plus the interpreter and golden runs)."""
    require_csim()
    from dgfpga.runtime.packer import plan_network
    cfg = load_config("ultra96")
    eng = hls_csim.CsimEngine(cfg, cache_dir)
    qm, x = _bottleneck_net("resdg50", size, n=4)
    plan = plan_network(qm, cfg)
    assert max(lp.template.in_c for lp in plan.layers) == 2048
    assert max(r.in_c for r in (bp.gate_record for bp in plan.blocks)) == 2048
    logs = _check_bottleneck_network(eng, plan, x[:2])
    for gated, dense in zip(logs[0], logs[1]):
        assert gated.sum() < dense.sum()


def test_gate2_all_off_skips_conv2_and_conv3_reads_no_channel(engine, bottleneck_sets):
    """Every mask_c2 channel off (b2 very negative in both blocks): conv2 (out-channel gated
    by mask_c2) is skipped, conv3 runs with no input channel (y = requant(bias + residual)
    at the active tiles); C-sim == interpreter on every region byte and == the golden model
    of the same network with those gates (logits)."""
    import copy
    from dgfpga.contract import program as prog
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import plan_network
    qm, images = vectors.bottleneck_qmodel()
    plan = plan_network(qm, SMALL)
    off = copy.deepcopy(qm)
    for b in off.blocks:
        b.channel_gate2.b2 = np.full(b.channel_gate2.b2.shape, -(1 << 45), np.int64)
    for vs in bottleneck_sets[0][:2]:
        mem = {r: v.copy() for r, v in vs.before.items()}
        for bp in plan.blocks:
            r2 = bp.gate2_record
            lay = prog.gate2_param_layout(r2.in_c, r2.out_c, r2.hidden, SMALL.axi_bytes)
            o = r2.param_offset + lay.offsets["b2"]
            mem["weight"][o:o + 8 * r2.out_c] = np.full(r2.out_c, -(1 << 45), "<i8").view(np.uint8)
        ref = {r: v.copy() for r, v in mem.items()}
        r = interpreter.run_program(vs.program, vs.layer_count, ref, SMALL)
        res = engine.run(vs.program, vs.layer_count, mem["fmap"], mem["weight"], mem["work"],
                         mem["sums"])
        assert r.ok and res.ok, res.describe()
        kinds = [rp.kind for rp in plan.records]
        assert [k for k, rec in zip(kinds, r.records) if rec == "skipped"] == ["conv2", "conv2"]
        reg, o, nb = vs.ignore[0]
        mem[reg][o:o + nb] = 0
        for k in vectors.REGIONS:
            assert np.array_equal(mem[k], ref[k]), f"{vs.name}: {k} differs from the interpreter"
        n = int(vs.name[-1])
        lg = plan.logits
        np.testing.assert_array_equal(mem["work"][lg.offset:lg.offset + lg.nbytes].view("<i8"),
                                      run_golden(off, images[n:n + 1]).logits_int[0])
