"""dgfpga.numerics.gates: pooling bins, upsampling map and the integer gates (torch-free module;
torch is used here only as the reference for PyTorch's own index arithmetic). The integer
gates are checked against hand-computed values and against a plain Python-int loop
reference written from docs/quantization.md."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dgfpga.numerics import gates
from dgfpga.contract import program
from dgfpga.errors import FormatError
from dgfpga.numerics.gates import BinTable, IntChannelGate, IntSpatialGate


def loop_bin_sums(x, grid):
    """Plain-loop reference: x int [C, H, W] -> sums [C, gh, gw]."""
    c, h, w = x.shape
    out = np.zeros((c, *grid), dtype=np.int64)
    for i in range(grid[0]):
        r0, r1 = (i * h) // grid[0], -((-(i + 1) * h) // grid[0])
        for j in range(grid[1]):
            c0, c1 = (j * w) // grid[1], -((-(j + 1) * w) // grid[1])
            for ch in range(c):
                out[ch, i, j] = int(x[ch, r0:r1, c0:c1].astype(np.int64).sum())
    return out


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 5), h=st.integers(1, 17), w=st.integers(1, 17),
       gh=st.integers(1, 9), gw=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_bin_sums_match_loop_reference_both_layouts(c, h, w, gh, gw, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(c, h, w)).astype(np.uint8)
    ref = loop_bin_sums(x, (gh, gw))
    np.testing.assert_array_equal(gates.bin_sums(x, (gh, gw)), ref)
    np.testing.assert_array_equal(gates.bin_sums(np.moveaxis(x, 0, -1), (gh, gw), layout="hwc"), ref)
    counts = gates.bin_counts(h, w, (gh, gw))
    np.testing.assert_array_equal(loop_bin_sums(np.ones((1, h, w), np.int64), (gh, gw))[0], counts)


def test_bin_sums_rejects_floats_and_bad_layout():
    with pytest.raises(TypeError):
        gates.bin_sums(np.zeros((1, 4, 4), np.float32), (2, 2))
    with pytest.raises(ValueError):
        gates.bin_sums(np.zeros((1, 4, 4), np.int8), (2, 2), layout="nchw")


@pytest.mark.parametrize("size,grid", [(32, 8), (16, 8), (8, 4), (7, 4), (14, 4), (56, 14),
                                       (28, 7), (7, 7), (5, 3), (3, 1), (4, 8)])
def test_nearest_source_index_is_pytorch_nearest(size, grid):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    cells = torch.arange(grid, dtype=torch.float32).view(1, 1, grid)
    want = f.interpolate(cells, size=size, mode="nearest").view(-1).long().numpy()
    np.testing.assert_array_equal(gates.nearest_source_index(size, grid), want)


# ----------------------------------------------------------------------------- references
# Written from the formulas in docs/quantization.md with Python ints (unbounded, floor
# division = arithmetic shift), loops only: independent of the numpy vectorisation.

F, RB = 8, 24
HMAX = 32767


def ref_recip(n: int) -> int:
    return (2 ** RB + n // 2) // n


def ref_pool(s: int, n: int) -> int:
    return (s * ref_recip(n) + 2 ** (RB - F - 1)) // 2 ** (RB - F)


def ref_spatial(pooled, weight, bias):
    """pooled: nested lists / array [C][gh][gw] of ints."""
    c, gh, gw = np.shape(pooled)
    out = [[0] * gw for _ in range(gh)]
    for y in range(gh):
        for x in range(gw):
            acc = int(bias)
            for ch in range(c):
                for ky in range(3):
                    for kx in range(3):
                        yy, xx = y + ky - 1, x + kx - 1
                        if 0 <= yy < gh and 0 <= xx < gw:
                            acc += int(weight[ch][ky][kx]) * int(pooled[ch][yy][xx])
            out[y][x] = acc
    return out


def ref_channel(pt, g):
    hid = []
    for j in range(g.hidden):
        a = sum(int(g.w1[j, c]) * int(pt[c]) for c in range(g.in_channels))
        z = a * int(g.m1[j]) + int(g.o1[j]) + 2 ** (g.shift - 1)
        hid.append(min(max(z // 2 ** g.shift, 0), HMAX))
    return [int(g.b2[m]) + sum(int(g.w2[m, j]) * hid[j] for j in range(g.hidden))
            for m in range(g.out_channels)]


def random_spatial(rng, c, bias_bits=30):
    return IntSpatialGate(rng.integers(-32767, 32768, (c, 3, 3)),
                          int(rng.integers(-2 ** bias_bits, 2 ** bias_bits)))


def random_channel(rng, c, c_out, shift=40):
    hid = max(c // 4, 1)
    return IntChannelGate(rng.integers(-32767, 32768, (hid, c)), rng.integers(-2 ** 14, 2 ** 14, hid),
                          rng.integers(-2 ** 45, 2 ** 45, hid), shift,
                          rng.integers(-32767, 32768, (c_out, hid)),
                          rng.integers(-2 ** 40, 2 ** 40, c_out))


def test_constants_are_the_contracts():
    assert (program.GATE_FRAC_BITS, program.GATE_RECIP_BITS) == (F, RB)
    assert program.GATE_HIDDEN_MAX == HMAX == program.GATE_WEIGHT_MAX
    assert program.GATE_BIAS_LIMIT == 2 ** 46


# ----------------------------------------------------------------------------- hand-computed

def test_reciprocal_hand_computed():
    # 2^24 = 16777216: /1 exact, /3 = 5592405.33 -> 5592405, /6 = 2796202.67 -> 2796203,
    # /9 = 1864135.11 -> 1864135, /1024 exact, /3 rounds half up? 2^24/n never ends in .5 for
    # odd n; for n = 2^25 it would: R(2^25) = (2^24 + 2^24) // 2^25 = 1 (half up, not 0).
    for n, r in [(1, 16777216), (2, 8388608), (3, 5592405), (6, 2796203), (9, 1864135),
                 (1024, 16384), (12544, 1337), (2 ** 25, 1), (2 ** 25 + 1, 0)]:
        assert gates.gate_reciprocal(n) == r, n
    np.testing.assert_array_equal(gates.gate_reciprocal(np.array([[1, 3], [6, 9]])),
                                  [[16777216, 5592405], [2796203, 1864135]])
    with pytest.raises(ValueError):
        gates.gate_reciprocal(0)
    with pytest.raises(ValueError):
        gates.gate_reciprocal(np.array([1, 0]))


def test_pooling_with_uneven_edge_bins_hand_computed():
    """A 5x5 map pooled to 2x2: PyTorch's bins are rows/cols [0,3) and [2,5) (overlapping,
    3 px each, so 9 px per bin); a 7-px row into 3 bins: [0,3), [2,5), [4,7)."""
    assert gates.pool_bins(5, 2) == [(0, 3), (2, 5)]
    assert gates.pool_bins(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert gates.pool_bins(6, 4) == [(0, 2), (1, 3), (3, 5), (4, 6)]
    x = np.arange(25, dtype=np.uint8).reshape(1, 5, 5)         # x[r, c] = 5r + c
    s = gates.bin_sums(x, (2, 2))
    # bin (0,0): rows 0..2, cols 0..2: sum 5r+c = 5*3*3 + 3*3 = 54; (0,1): cols 2..4: 45+27 = 72;
    # (1,0): rows 2..4: 5*9*3 + 9 = 144; (1,1): 135 + 27 = 162.
    np.testing.assert_array_equal(s[0], [[54, 72], [144, 162]])
    np.testing.assert_array_equal(gates.bin_counts(5, 5, (2, 2)), [[9, 9], [9, 9]])
    # P = (S * 1864135 + 2^15) >> 16: 54/9*256 = 1536 exactly? 54*1864135 = 100663290;
    # + 32768 = 100696058; >> 16 = 1536 (1536.5 - 0.0x): rounding of R shows in the last bit.
    p = gates.gate_pool(s, gates.gate_reciprocal(9))
    assert [int(v) for v in p.ravel()] == [ref_pool(int(v), 9) for v in s.ravel()]
    assert int(p[0, 0, 0]) == (54 * 1864135 + 32768) >> 16 == 1536
    assert int(p[0, 1, 1]) == (162 * 1864135 + 32768) >> 16 == 4608
    # An uneven 7x4 map into 3x2: bins of 3 rows x 2 cols = 6 px everywhere.
    np.testing.assert_array_equal(gates.bin_counts(7, 4, (3, 2)), np.full((3, 2), 6))
    np.testing.assert_array_equal(gates.bin_counts(6, 5, (4, 2)), [[6, 6]] * 4)
    # 2^-F steps: a sum of 1 over 3 px is 256/3 = 85.33 -> 85; 2 over 3 px: 170.67 -> 171.
    np.testing.assert_array_equal(gates.gate_pool(np.array([1, 2, -1, -2]), 5592405),
                                  [85, 171, -85, -171])


def test_pool_rounds_half_up_with_an_arithmetic_shift():
    # recip 2^14 with RB-F = 16: P = (S * 2^14 + 2^15) >> 16 = floor(S/4 + 1/2):
    # S = 2 -> 1 (0.5 up), -2 -> 0 (-0.5 up), 6 -> 2, -6 -> -1, -3 -> -1 (floor(-0.25): an
    # arithmetic shift, not C's truncating division, which gives 0), -1 -> 0, 1 -> 0 (0.25),
    # 3 -> 1 (0.75)
    np.testing.assert_array_equal(gates.gate_pool(np.array([2, -2, 6, -6, -3, -1, 1, 3]), 2 ** 14),
                                  [1, 0, 2, -1, -1, 0, 0, 1])


def test_spatial_gate_hand_computed():
    """2 channels on a 2x2 grid; only the centre tap and one corner tap are non-zero."""
    w = np.zeros((2, 3, 3), np.int16)
    w[0, 1, 1] = 3            # centre of channel 0
    w[1, 0, 0] = -2           # top-left tap of channel 1: reads cell (y-1, x-1)
    g = IntSpatialGate(w, -10)
    p = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], np.int64)
    # L[y,x] = -10 + 3*p0[y,x] - 2*p1[y-1,x-1] (0 outside): [[-7, -4], [-1, 12-10-10]]
    got = gates.spatial_gate_logits_int(p, g)
    np.testing.assert_array_equal(got, [[-7, -4], [-1, -8]])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref_spatial(p, w, -10))


def test_channel_gate_hand_computed():
    """C=2, hidden=2, C_out=3; shift 4: h = clamp((A*m1 + o1 + 8) >> 4, 0, 32767)."""
    g = IntChannelGate(w1=[[1, 2], [-3, 1]], m1=[16, 8], o1=[-8, 100], shift=4,
                       w2=[[1, 0], [0, 1], [-1, -1]], b2=[0, -10, 5])
    pt = np.array([10, 20])
    # A = [50, -10]; z = [50*16 - 8 + 8, -80 + 100 + 8] = [800, 28]; h = [50, 1]
    # logits = [0 + 50, -10 + 1, 5 - 51] = [50, -9, -46]
    np.testing.assert_array_equal(gates.channel_gate_logits_int(pt, g), [50, -9, -46])
    # The ReLU clamp at 0 and at GATE_HIDDEN_MAX:
    g2 = IntChannelGate([[1], [-1]], [2 ** 20, 2 ** 20], [0, 0], 4, [[1, 1]], [0])
    assert gates.channel_gate_logits_int(np.array([100]), g2)[0] == 32767     # 100*2^16 -> clamp
    assert g.in_channels == 2 and g.hidden == 2 and g.out_channels == 3


def test_ties_are_on():
    g = IntSpatialGate(np.zeros((1, 3, 3), np.int16), 0)
    assert gates.spatial_gate_logits_int(np.zeros((1, 2, 2), np.int64), g).tolist() == [[0, 0], [0, 0]]
    sp, ch = gates.gates_from_tile_sums(
        np.zeros((2, 2, 1), np.int64), gates.bin_table(2, 2, 1, (2, 2)), g,
        IntChannelGate([[1]], [1], [0], 1, [[1], [1], [1]], [-1, 0, 1]))
    assert sp.all()
    np.testing.assert_array_equal(ch, [False, True, True])        # logit -1, 0, 1
    g1 = IntSpatialGate(np.zeros((1, 3, 3), np.int16), -1)
    assert not (gates.spatial_gate_logits_int(np.zeros((1, 1, 1), np.int64), g1) >= 0).any()


# ----------------------------------------------------------------------------- vs the loop reference

@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 6), h=st.integers(1, 12), w=st.integers(1, 12), gh=st.integers(1, 5),
       gw=st.integers(1, 5), seed=st.integers(0, 2 ** 31))
def test_spatial_gate_matches_python_int_reference(c, h, w, gh, gw, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(c, h, w)).astype(np.uint8)
    g = random_spatial(rng, c)
    sums = loop_bin_sums(x, (gh, gw))
    counts = gates.bin_counts(h, w, (gh, gw))
    pooled = [[[ref_pool(int(sums[ch, i, j]), int(counts[i, j])) for j in range(gw)]
               for i in range(gh)] for ch in range(c)]
    want = ref_spatial(pooled, g.weight, g.bias)
    p = gates.gate_pool(gates.bin_sums(x, (gh, gw)), gates.gate_reciprocal(counts))
    np.testing.assert_array_equal(p, pooled)
    np.testing.assert_array_equal(gates.spatial_gate_logits_int(p, g), want)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 24), c_out=st.integers(1, 9), n=st.integers(1, 300),
       shift=st.integers(30, 48), signed=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_channel_gate_matches_python_int_reference(c, c_out, n, shift, signed, seed):
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if signed else (0, 256)
    x = rng.integers(lo, hi, size=(3, c, n))
    g = random_channel(rng, c, c_out, shift)
    assert gates.channel_gate_bound(g) < 2 ** 62
    pt = gates.gate_pool(x.sum(axis=2), gates.gate_reciprocal(n))
    assert [int(v) for v in pt[0]] == [ref_pool(int(v), n) for v in x[0].sum(axis=1)]
    got = gates.channel_gate_logits_int(pt, g)
    for i in range(3):
        assert got[i].tolist() == ref_channel(pt[i], g)


def test_extreme_values_stay_exact():
    """Largest weights, inputs and biases: still exact (int64, no wrap-around)."""
    c = 512
    g = IntSpatialGate(np.full((c, 3, 3), -32767, np.int16), -(2 ** 46 - 1))
    p = np.full((c, 3, 3), 2 ** 17 - 1, np.int64)
    assert gates.spatial_gate_logits_int(p, g).tolist() == ref_spatial(p, g.weight, g.bias)
    assert gates.spatial_gate_bound(g) < 2 ** 63
    # channel gate at its overflow bound: m1 as large as the bound allows for shift 62
    hid = 4
    w1 = np.full((hid, c), 32767, np.int16)
    a_max = c * 32767 * (2 ** 17 - 1)
    m = (2 ** 62 - 2 ** 61 - 2 ** 45) // a_max
    cg = IntChannelGate(w1, [m, -m, 1, 0], [2 ** 45, -2 ** 45, 0, 1], 62,
                        np.full((3, hid), 32767, np.int16), [2 ** 46 - 1, 0, -(2 ** 46 - 1)])
    assert gates.channel_gate_bound(cg) < 2 ** 62
    pt = np.array([np.full(c, 2 ** 17 - 1), np.full(c, -(2 ** 17 - 1))], np.int64)
    got = gates.channel_gate_logits_int(pt, cg)
    for i in range(2):
        assert got[i].tolist() == ref_channel(pt[i], cg)


def test_inputs_outside_the_proven_range_are_refused():
    g = random_spatial(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="2\\^17"):
        gates.spatial_gate_logits_int(np.full((1, 1, 1), 2 ** 17, np.int64), g)
    with pytest.raises(ValueError, match="2\\^17"):
        gates.channel_gate_logits_int(np.full(4, -(2 ** 17)), random_channel(np.random.default_rng(0), 4, 2))
    with pytest.raises(ValueError, match="2\\^38"):
        gates.gate_pool(np.array([2 ** 38]), 1)
    with pytest.raises(ValueError, match="2\\^38"):
        gates.gate_pool(np.array([-2 ** 63]), 1)                 # no abs() overflow
    with pytest.raises(ValueError, match="2\\^17"):
        gates.spatial_gate_logits_int(np.full((1, 1, 1), -2 ** 63, np.int64), g)
    with pytest.raises(ValueError, match="reciprocals"):
        gates.gate_pool(np.array([1]), 2 ** 24 + 1)
    with pytest.raises(TypeError):
        gates.gate_pool(np.array([1.0]), 1)


def test_parameter_ranges_are_checked():
    w = np.zeros((2, 3, 3), np.int64)
    IntSpatialGate(w, 2 ** 46 - 1)
    for bad_w, bad_b in ((w - 32768, 0), (w + 32768, 0), (w, 2 ** 46), (w, -(2 ** 46)), (w, 1.0),
                         (w.astype(float), 0), (np.zeros((2, 3, 2)), 0)):
        with pytest.raises(ValueError):
            IntSpatialGate(bad_w, bad_b)
    ok = dict(w1=np.zeros((1, 4), int), m1=[0], o1=[0], shift=1, w2=np.zeros((3, 1), int), b2=[0, 0, 0])
    IntChannelGate(**ok)
    for k, v in [("m1", [2 ** 31]), ("m1", [-(2 ** 31)]), ("o1", [2 ** 46]), ("shift", 0),
                 ("shift", 63), ("shift", True), ("b2", [0, 0, -(2 ** 46)]), ("w2", np.zeros((3, 2), int)),
                 ("m1", [0, 0]), ("w1", np.full((1, 4), 32768)), ("b2", np.full(3, -2 ** 63))]:
        with pytest.raises(ValueError):
            IntChannelGate(**{**ok, k: v})
    g = IntChannelGate(**ok)
    assert g.w1.dtype == np.int16 and g.m1.dtype == np.int32 and g.o1.dtype == np.int64


def test_batch_dimensions_change_nothing():
    """The golden model runs a batch, the engine one image: identical logits."""
    rng = np.random.default_rng(2)
    c = 16
    sg, cg = random_spatial(rng, c), random_channel(rng, c, 16)
    p = rng.integers(-2 ** 16, 2 ** 16, size=(2, 3, c, 4, 5))
    pt = rng.integers(0, 2 ** 16, size=(2, 3, c))
    bs, bc = gates.spatial_gate_logits_int(p, sg), gates.channel_gate_logits_int(pt, cg)
    assert bs.shape == (2, 3, 4, 5) and bc.shape == (2, 3, 16)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(gates.spatial_gate_logits_int(p[i, j], sg), bs[i, j])
            np.testing.assert_array_equal(gates.channel_gate_logits_int(pt[i, j], cg), bc[i, j])


# ----------------------------------------------------------------------------- tile-sum route

def engine_tile_sums(x, tile):
    """x [..., C, H, W] -> per-tile sums [..., th, tw, C] (SUMS layout; edge tiles smaller)."""
    h, w = x.shape[-2:]
    th, tw = -(-h // tile), -(-w // tile)
    out = np.zeros(x.shape[:-3] + (th, tw, x.shape[-3]), np.int64)
    for i in range(th):
        for j in range(tw):
            out[..., i, j, :] = x[..., i * tile:(i + 1) * tile, j * tile:(j + 1) * tile].sum(axis=(-2, -1))
    return out


def golden_route(x, grid, sg, cg, logits=False):
    """The golden model's route: whole-map bin sums and each bin's pixel count."""
    h, w = x.shape[-2:]
    p = gates.gate_pool(gates.bin_sums(x, grid), gates.gate_reciprocal(gates.bin_counts(h, w, grid)))
    pt = gates.gate_pool(x.astype(np.int64).sum(axis=(-2, -1)), gates.gate_reciprocal(h * w))
    ls, lc = gates.spatial_gate_logits_int(p, sg), gates.channel_gate_logits_int(pt, cg)
    return (ls, lc) if logits else (ls >= 0, lc >= 0)


@pytest.mark.parametrize("h,w,tile,grid", [
    (32, 32, 4, (8, 8)),     # CIFAR stage 1 / stage-2 first block: 32 px pooled to 8x8
    (16, 16, 2, (4, 4)),     # stage-3 first block: 16 px input, tile-2 sums, 4x4 grid
    (16, 16, 2, (8, 8)),
    (8, 8, 2, (4, 4)),
    (56, 56, 8, (7, 7)),     # ImageNet stage 1
    (7, 7, 1, (7, 7)),
    (7, 7, 1, (4, 4)),       # uneven, overlapping bins: 7 px into 4 cells, 1-px sums
    (14, 10, 2, (7, 5)),     # rectangular; edge tile... 10 px, tile 2
    (10, 9, 3, (4, 3)),      # tile-3 sums, 9 px into 3 cells; 10 px into 4: [0,3) [2,5).. needs 1 px
])
def test_tile_sum_route_equals_the_golden_route(h, w, tile, grid):
    rng = np.random.default_rng(h * 100 + tile)
    c = 16
    x = rng.integers(0, 256, size=(6, c, h, w))
    try:
        table = gates.bin_table(h, w, tile, grid)
    except FormatError:
        # only where a bin edge is not a tile edge; then the whole-map route is the only one
        with pytest.raises(ValueError):
            gates.bin_sums_from_tile_sums(np.zeros((c, -(-h // tile), -(-w // tile))), tile, h, w, grid)
        return
    assert table.recip.shape == grid and table.recip_total == gates.gate_reciprocal(h * w)
    np.testing.assert_array_equal(table.recip, gates.gate_reciprocal(gates.bin_counts(h, w, grid)))
    # Gates whose logits are near 0 for this data, so the decisions are mixed.
    sg = random_spatial(rng, c, bias_bits=2)
    sg.bias = -int(np.median(gates.spatial_gate_logits_int(
        gates.gate_pool(gates.bin_sums(x, grid), table.recip), sg)))
    cg = random_channel(rng, c, 12)
    ts = engine_tile_sums(x, tile)
    sp, ch = gates.gates_from_tile_sums(ts, table, sg, cg)
    want_s, want_c = golden_route(x, grid, sg, cg)
    # the logits too, not only the decisions (an off-by-one bin sum rarely flips a decision)
    ls, lc = gates.gate_logits_from_tile_sums(ts, table, sg, cg)
    np.testing.assert_array_equal(ls, golden_route(x, grid, sg, cg, logits=True)[0])
    np.testing.assert_array_equal(lc, golden_route(x, grid, sg, cg, logits=True)[1])
    assert 0 < want_s.mean() < 1
    np.testing.assert_array_equal(sp, want_s)
    np.testing.assert_array_equal(ch, want_c)
    for i in range(2):                            # one image at a time, as the engine
        s1, c1 = gates.gates_from_tile_sums(ts[i], table, sg, cg)
        np.testing.assert_array_equal(s1, want_s[i])
        np.testing.assert_array_equal(c1, want_c[i])


def test_bin_table_hand_computed():
    t = gates.bin_table(10, 7, 2, (5, 1))
    assert t.rows == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)] and t.cols == [(0, 4)]
    np.testing.assert_array_equal(t.recip, [[gates.gate_reciprocal(14)]] * 5)
    assert t.recip_total == gates.gate_reciprocal(70) and t.sum_grid == (5, 4) and t.grid == (5, 1)
    # 7 px, 1-px sums, 4 cells: [0,2) [1,4) [3,6) [5,7): overlapping, uneven.
    t = gates.bin_table(7, 7, 1, (4, 4))
    assert t.rows == [(0, 2), (1, 4), (3, 6), (5, 7)]
    assert t.recip[0, 1] == gates.gate_reciprocal(6) and t.recip[1, 1] == gates.gate_reciprocal(9)


@pytest.mark.parametrize("h,w,tile,grid", [(14, 14, 4, (4, 4)), (7, 7, 2, (4, 4)), (8, 8, 3, (2, 2))])
def test_bins_that_cut_a_sum_tile_are_refused(h, w, tile, grid):
    with pytest.raises(FormatError, match="sum tiles"):
        gates.bin_table(h, w, tile, grid)


def test_tile_sums_of_the_wrong_grid_are_refused():
    t = gates.bin_table(8, 8, 2, (2, 2))
    sg, cg = random_spatial(np.random.default_rng(0), 3), random_channel(np.random.default_rng(0), 3, 2)
    with pytest.raises(ValueError, match="sum-tile grid"):
        gates.gates_from_tile_sums(np.zeros((4, 3, 3), np.int64), t, sg, cg)
    with pytest.raises(TypeError):
        gates.gates_from_tile_sums(np.zeros((4, 4, 3)), t, sg, cg)
    with pytest.raises(ValueError, match="int32"):
        gates.gates_from_tile_sums(np.full((4, 4, 3), 2 ** 31), t, sg, cg)
    with pytest.raises(ValueError, match="bins"):
        BinTable([(0, 2), (2, 2)], [(0, 4)], np.ones((2, 1)), 1)


def test_channel_totals_add_every_sum_tile():
    """A sum-tile grid larger than the bins reach (allowed by the gate record: end <= st_h):
    the spatial bins read only their tiles, the channel gate's totals read all of them."""
    t = BinTable([(0, 1)], [(0, 1)], [[gates.gate_reciprocal(1)]], gates.gate_reciprocal(4))
    sg = IntSpatialGate(np.ones((1, 3, 3), np.int16), -100)
    cg = IntChannelGate([[1]], [1], [0], 8, [[1]], [-100])
    ts = np.zeros((2, 2, 1), np.int64)
    ts[1, 1, 0] = 200                       # outside the one bin, inside the totals
    sp, ch = gates.gates_from_tile_sums(ts, t, sg, cg)
    assert not sp.any()                     # bin sum 0 -> L = -100
    # Pt = 200/4 * 256 = 12800; A = 12800; h = (12800 + 128) >> 8 = 50; logit = -50
    assert not ch.any()
    ts[1, 1, 0] = 400                       # Pt = 25600 -> h = 100 -> logit 0: on (tie)
    assert gates.gates_from_tile_sums(ts, t, sg, cg)[1].all()


def test_tile_sums_that_do_not_align_are_refused():
    with pytest.raises(ValueError, match="align"):
        gates.bin_sums_from_tile_sums(np.zeros((1, 4, 4), np.int64), 4, 14, 14, (4, 4))


def test_shape_errors_are_clear():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="channels"):
        gates.spatial_gate_logits_int(np.zeros((5, 2, 2), np.int64), random_spatial(rng, 4))
    with pytest.raises(ValueError, match="channels"):
        gates.channel_gate_logits_int(np.zeros(5, np.int64), random_channel(rng, 4, 4))


# ----------------------------------------------------------------------------- signed inputs
# MobileNetV2's gates read the signed (s8) residual stream: negative bin sums.

def test_pooling_of_negative_sums_by_hand():
    """P = (S*R(n) + 2^15) >> 16 (RB 24, F 8) floors: round half up, for negative sums too.
    R(3) = (2^24 + 1) // 3 = 5592405. S = -1: (-5592405 + 32768) >> 16 = floor(-84.83) = -85
    (float -85.33); S = -2: floor(-170.17) = -171 (float -170.67); S = 1: 85 (symmetric);
    S = -384 (three pixels of -128): floor(-32767.998 + 0.5) = -32768 = -128 * 2^8 exactly.
    A tie (S = -1, n = 512: -0.5) goes up to 0, and S = +1 to +1."""
    assert gates.gate_reciprocal(3) == 5592405
    got = gates.gate_pool(np.array([-1, -2, 1, -384]), gates.gate_reciprocal(3))
    np.testing.assert_array_equal(got, [-85, -171, 85, -32768])
    np.testing.assert_array_equal(gates.gate_pool(np.array([-1, 1]), gates.gate_reciprocal(512)),
                                  [0, 1])


def test_pooling_of_signed_maps_is_the_rounded_mean():
    """For s8 maps of many sizes the pooled value is the mean * 2^F rounded (within half an
    LSB plus the reciprocal's error), and the extreme maps (all -128 / all 127) stay
    inside |P| < 2^17, the bound validate_gates / channel_gate_bound assume."""
    for n in list(range(1, 200)) + [49, 196, 784, 3136, 4096]:
        r = gates.gate_reciprocal(n)
        s = np.arange(-128 * n, 127 * n + 1, max(1, n // 7), dtype=np.int64)
        p = gates.gate_pool(s, r)
        exact = s * 256 / n
        # |R(n) - 2^24/n| <= 1/2, times |S| <= 128 n, over 2^16: n / 1024 LSB at most
        assert np.abs(p - exact).max() <= 0.5 + n / 1024 + 1e-9, n
        lo, hi = gates.gate_pool(np.array([-128 * n, 127 * n]), r)
        assert abs(lo + 32768) <= 0.5 + n / 1024 and abs(hi - 127 * 256) <= 0.5 + n / 1024
        assert max(-lo, hi) < gates.POOLED_LIMIT


def test_gates_decide_on_negative_pooled_values():
    """Hand-computed: one channel of -2 everywhere (8x8 map, 2x2 grid): every bin pools to
    -512 (-2 * 2^8). Spatial gate, centre weight 3, bias 1535: L = 1535 - 1536 = -1 (off);
    bias 1536: L = 0 (on: ties are on). Channel gate w1 = [-1], m1 = 1, o1 = 0, shift 1:
    A = 512, h = (512 + 1) >> 1 = 256; w2 = [[2]], b2 = -512 -> logit 0 (on)."""
    x = np.full((1, 1, 8, 8), -2, np.int8)
    p = gates.gate_pool(gates.bin_sums(x, (2, 2)), gates.gate_reciprocal(gates.bin_counts(8, 8, (2, 2))))
    np.testing.assert_array_equal(p, np.full((1, 1, 2, 2), -512))
    w = np.zeros((1, 3, 3), np.int16)
    w[0, 1, 1] = 3
    assert (gates.spatial_gate_logits_int(p, gates.IntSpatialGate(w, 1535)) == -1).all()
    assert (gates.spatial_gate_logits_int(p, gates.IntSpatialGate(w, 1536)) == 0).all()
    pt = gates.gate_pool(x.astype(np.int64).sum(axis=(2, 3)), gates.gate_reciprocal(64))
    cg = gates.IntChannelGate(np.array([[-1]], np.int16), np.array([1], np.int32),
                              np.array([0], np.int64), 1, np.array([[2]], np.int16),
                              np.array([-512], np.int64))
    np.testing.assert_array_equal(gates.channel_gate_logits_int(pt, cg), [[0]])
