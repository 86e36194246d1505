"""dgfpga.numerics.gates: pooling bins, upsampling map, integer-input gate evaluation (torch-free
module; torch is used here only as the reference for PyTorch's own index arithmetic)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dgfpga.numerics import gates
from dgfpga.numerics.gates import ChannelGateParams, SpatialGateParams


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


def random_spatial(rng, c):
    return SpatialGateParams(rng.normal(0, 0.3, (c, 3, 3)), rng.normal(0, 0.2))


def random_channel(rng, c, c_out):
    hid = c // 4
    return ChannelGateParams(rng.normal(0, 0.3, (hid, c)), rng.uniform(0.5, 1.5, hid),
                             rng.normal(0, 0.2, hid), rng.normal(0, 0.3, (c_out, hid)),
                             rng.normal(0, 0.2, c_out))


def float64_spatial_logits(x_int, grid, scale, p: SpatialGateParams):
    xr = x_int.astype(np.float64) * scale
    c, h, w = xr.shape
    pooled = loop_bin_sums(x_int, grid) * scale / gates.bin_counts(h, w, grid)
    pad = np.pad(pooled, ((0, 0), (1, 1), (1, 1)))
    out = np.full(grid, float(p.bias))
    for i in range(grid[0]):
        for j in range(grid[1]):
            out[i, j] += (pad[:, i:i + 3, j:j + 3] * p.weight.astype(np.float64)).sum()
    return out


@settings(max_examples=30, deadline=None)
@given(c=st.sampled_from([4, 8, 16]), h=st.integers(2, 16), t=st.integers(1, 4),
       seed=st.integers(0, 2**31))
def test_spatial_gate_matches_float64_reference(c, h, t, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(c, h, h))
    grid = (-(-h // t), -(-h // t))
    p = random_spatial(rng, c)
    scale = 0.02
    got = gates.spatial_gate_logits(gates.bin_sums(x, grid), gates.bin_counts(h, h, grid), scale, p)
    ref = float64_spatial_logits(x, grid, scale, p)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    dec = gates.eval_spatial_gate(gates.bin_sums(x, grid), gates.bin_counts(h, h, grid), scale, p)
    clear = np.abs(ref) > 1e-3
    np.testing.assert_array_equal(dec[clear], (ref >= 0)[clear])


def test_channel_gate_matches_float64_reference():
    rng = np.random.default_rng(1)
    c, c_out, n = 32, 48, 20
    p = random_channel(rng, c, c_out)
    x = rng.integers(0, 256, size=(n, c, 8, 8))
    scale = 0.03
    total = x.sum(axis=(2, 3))
    got = gates.channel_gate_logits(total, 64, scale, p)
    pooled = total * scale / 64
    h = np.maximum(pooled @ p.fc1.T.astype(np.float64) * p.bn_scale + p.bn_shift, 0)
    ref = h @ p.fc2.T.astype(np.float64) + p.fc2_bias
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert gates.eval_channel_gate(total, 64, scale, p).shape == (n, c_out)


def test_gate_decisions_do_not_depend_on_the_batch():
    """The board evaluates one image at a time, the golden model a batch: bit-identical."""
    rng = np.random.default_rng(2)
    c, grid = 16, (4, 4)
    sp, ch = random_spatial(rng, c), random_channel(rng, c, 16)
    x = rng.integers(0, 256, size=(7, c, 8, 8))
    sums, counts = gates.bin_sums(x, grid), gates.bin_counts(8, 8, grid)
    batch_s = gates.spatial_gate_logits(sums, counts, 0.05, sp)
    batch_c = gates.channel_gate_logits(x.sum(axis=(2, 3)), 64, 0.05, ch)
    for i in range(7):
        one_s = gates.spatial_gate_logits(sums[i], counts, 0.05, sp)
        one_c = gates.channel_gate_logits(x[i].sum(axis=(1, 2)), 64, 0.05, ch)
        assert one_s.tobytes() == batch_s[i].tobytes()
        assert one_c.tobytes() == batch_c[i].tobytes()


@pytest.mark.parametrize("h,tile,grid", [
    (32, 4, (8, 8)),     # CIFAR stage 1 / stage-2 first block: 32 px pooled to 8x8
    (16, 2, (4, 4)),     # stage-3 first block: 16 px input, tile-2 sums, 4x4 grid
    (16, 2, (8, 8)),
    (8, 2, (4, 4)),
    (56, 8, (7, 7)),     # ImageNet stage 1
    (7, 1, (7, 7)),
])
def test_gates_bit_identical_from_tile_sums(h, tile, grid):
    rng = np.random.default_rng(h * 100 + tile)
    c = 16
    x = rng.integers(0, 256, size=(3, c, h, h))
    n_t = -(-h // tile)
    # Per-tile sums as the engine writer emits them (edge tiles at their real size).
    tile_sums = np.zeros((3, c, n_t, n_t), np.int64)
    for i in range(n_t):
        for j in range(n_t):
            tile_sums[:, :, i, j] = x[:, :, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile].sum(axis=(2, 3))
    full = gates.bin_sums(x, grid)
    from_tiles = gates.bin_sums_from_tile_sums(tile_sums, tile, h, h, grid)
    np.testing.assert_array_equal(from_tiles, full)
    counts = gates.bin_counts(h, h, grid)
    sp = random_spatial(rng, c)
    a = gates.spatial_gate_logits(full, counts, 0.04, sp)
    b = gates.spatial_gate_logits(from_tiles, counts, 0.04, sp)
    assert a.tobytes() == b.tobytes()
    ch = random_channel(rng, c, 8)
    tot_full = x.sum(axis=(2, 3))
    tot_tiles = tile_sums.sum(axis=(2, 3))
    assert gates.channel_gate_logits(tot_full, h * h, 0.04, ch).tobytes() == \
        gates.channel_gate_logits(tot_tiles, h * h, 0.04, ch).tobytes()


def test_tile_sums_that_do_not_align_are_refused():
    with pytest.raises(ValueError, match="align"):
        gates.bin_sums_from_tile_sums(np.zeros((1, 4, 4), np.int64), 4, 14, 14, (4, 4))


def test_ties_are_on():
    c = 4
    p = SpatialGateParams(np.zeros((c, 3, 3)), 0.0)
    assert gates.eval_spatial_gate(np.zeros((c, 2, 2), np.int64), np.ones((2, 2)), 1.0, p).all()
    q = ChannelGateParams(np.zeros((1, c)), np.ones(1), np.zeros(1), np.zeros((3, 1)), np.zeros(3))
    assert gates.eval_channel_gate(np.zeros(c, np.int64), 1, 1.0, q).all()
    q2 = ChannelGateParams(np.zeros((1, c)), np.ones(1), np.zeros(1), np.zeros((3, 1)),
                           np.array([-1e-30, 0.0, 1e-30]))
    np.testing.assert_array_equal(gates.eval_channel_gate(np.zeros(c, np.int64), 1, 1.0, q2),
                                  [False, True, True])


def test_shape_errors_are_clear():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="channels"):
        gates.eval_spatial_gate(np.zeros((5, 2, 2), np.int64), np.ones((2, 2)), 1.0, random_spatial(rng, 4))
    with pytest.raises(ValueError, match="channels"):
        gates.eval_channel_gate(np.zeros(5, np.int64), 4, 1.0, random_channel(rng, 4, 4))
    with pytest.raises(ValueError):
        ChannelGateParams(np.zeros((1, 4)), np.ones(2), np.zeros(1), np.zeros((3, 1)), np.zeros(3))
