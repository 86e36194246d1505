"""Gate evaluation from integer activations: the one implementation the golden model and
the board runtime both call (numpy only, torch-free).

A block's gates see its input feature map only through **integer channel sums** over
pooling bins (int64, exact) and the tensor's scale `s` (real = s * q). Everything after
that is float32 numpy in a fixed operation order, written out as elementwise operations
(no BLAS, no `np.sum`/`np.dot`, whose summation order is unspecified), so the decision
is bit-identical on any machine that has IEEE float32:

pooled value (both gates)
    `p = float32(sum) * float32(s / count)`  (`s / count` in float64, then rounded once)

spatial gate (`atten_s`: 3x3 conv, padding 1, C -> 1, bias)
    `acc = 0`; for c in 0..C-1, for ky in 0..2, for kx in 0..2:
    `acc = acc + w[c, ky, kx] * p_padded[c, i+ky, j+kx]` (a float32 product, then a
    float32 add; out-of-grid cells are 0); `logit = acc + bias`; on = `logit >= 0`.

channel gate (`atten_c`: fc1 C -> C/4, BN folded into scale/shift, ReLU, fc2 C/4 -> C_out
with bias)
    `h = 0`; for c in 0..C-1: `h = h + fc1[:, c] * p[c]`;
    `h = h * bn_scale + bn_shift` (product rounded, then sum rounded); `h = max(h, 0)`;
    `acc = 0`; for j in 0..C/4-1: `acc = acc + fc2[:, j] * h[j]`;
    `logit = acc + fc2_bias`; on = `logit >= 0`.

Ties (logit exactly 0) are on, as in the float model. Leading batch dimensions are
allowed everywhere; the loops run over channels, the vector dimension is batch x grid.

Pooling bins are PyTorch's adaptive average pooling bins, `[floor(i*H/g),
ceil((i+1)*H/g))`; the grid-to-pixel map is PyTorch's nearest upsampling
(`floor(j * float32(g / H))` in float32), see `nearest_source_index`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgfpga.contract import formats
from dgfpga.errors import FormatError

__all__ = [
    "SpatialGateParams", "ChannelGateParams", "pool_bins", "bin_counts", "bin_sums",
    "bin_sums_from_tile_sums", "nearest_source_index", "upsample_grid",
    "eval_spatial_gate", "eval_channel_gate", "spatial_gate_macs", "channel_gate_macs",
]


@dataclass
class SpatialGateParams:
    """Spatial gate `atten_s`: weight float32 [C_in, 3, 3] (the single output channel
    squeezed), bias float32 scalar."""
    weight: np.ndarray
    bias: np.float32

    def __post_init__(self):
        self.weight = np.asarray(self.weight, dtype=np.float32)
        self.bias = np.float32(self.bias)
        if self.weight.ndim != 3 or self.weight.shape[1:] != (3, 3):
            raise ValueError(f"spatial gate weight must be [C_in, 3, 3], got {self.weight.shape}")


@dataclass
class ChannelGateParams:
    """Channel gate `atten_c` with its BatchNorm folded (all float32):
    fc1 [hidden, C_in], bn_scale/bn_shift [hidden], fc2 [C_out, hidden], fc2_bias [C_out]."""
    fc1: np.ndarray
    bn_scale: np.ndarray
    bn_shift: np.ndarray
    fc2: np.ndarray
    fc2_bias: np.ndarray

    def __post_init__(self):
        for name in ("fc1", "bn_scale", "bn_shift", "fc2", "fc2_bias"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
        hidden, c_in = self.fc1.shape
        c_out = self.fc2.shape[0]
        if (self.bn_scale.shape != (hidden,) or self.bn_shift.shape != (hidden,)
                or self.fc2.shape != (c_out, hidden) or self.fc2_bias.shape != (c_out,)):
            raise ValueError(
                f"channel gate shapes inconsistent: fc1 {self.fc1.shape}, bn_scale "
                f"{self.bn_scale.shape}, bn_shift {self.bn_shift.shape}, fc2 {self.fc2.shape}, "
                f"fc2_bias {self.fc2_bias.shape}")

    @property
    def in_channels(self) -> int:
        return int(self.fc1.shape[1])

    @property
    def out_channels(self) -> int:
        return int(self.fc2.shape[0])


# ----------------------------------------------------------------------------- geometry

def pool_bins(size: int, grid: int) -> list[tuple[int, int]]:
    """Adaptive-average-pool bins `[start, end)` of `size` pixels into `grid` cells
    (`dgfpga.contract.formats.pool_bins`; ValueError for non-positive sizes)."""
    try:
        return formats.pool_bins(size, grid)
    except FormatError as exc:
        raise ValueError(str(exc)) from None


def bin_counts(h: int, w: int, grid: tuple[int, int]) -> np.ndarray:
    """Pixels per bin, int64 [gh, gw]."""
    rows = np.array([b - a for a, b in pool_bins(h, grid[0])], dtype=np.int64)
    cols = np.array([b - a for a, b in pool_bins(w, grid[1])], dtype=np.int64)
    return rows[:, None] * cols[None, :]


def _bin_matrix(size: int, grid: int) -> np.ndarray:
    m = np.zeros((grid, size), dtype=np.int64)
    for i, (a, b) in enumerate(pool_bins(size, grid)):
        m[i, a:b] = 1
    return m


def bin_sums(x: np.ndarray, grid: tuple[int, int], layout: str = "chw") -> np.ndarray:
    """Integer channel sums of a feature map over the pooling bins of `grid`.

    x: integer array `[..., C, H, W]` (layout "chw") or `[..., H, W, C]` (layout "hwc").
    Returns int64 `[..., C, gh, gw]` in both cases (bins may overlap when H/g is not
    an integer, exactly as PyTorch's adaptive pooling).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"bin_sums needs integer activations, got {x.dtype}")
    if layout == "hwc":
        x = np.moveaxis(x, -1, -3)
    elif layout != "chw":
        raise ValueError(f"layout must be 'chw' or 'hwc', got {layout!r}")
    h, w = x.shape[-2:]
    x64 = x.astype(np.int64)
    if h % grid[0] == 0 and w % grid[1] == 0:
        # Equal, disjoint bins: a reshape-sum (same integers, faster).
        bh, bw = h // grid[0], w // grid[1]
        return x64.reshape(*x.shape[:-2], grid[0], bh, grid[1], bw).sum(axis=(-3, -1))
    rows, cols = _bin_matrix(h, grid[0]), _bin_matrix(w, grid[1])
    # Integer matmuls are exact (no BLAS for integer dtypes).
    return np.matmul(np.matmul(rows, x64), cols.T)


def bin_sums_from_tile_sums(tile_sums: np.ndarray, tile: int, h: int, w: int,
                            grid: tuple[int, int]) -> np.ndarray:
    """Bin sums built from per-tile channel sums (what the engine's writer emits).

    tile_sums: int `[..., C, th, tw]`, the sums of `tile`x`tile` tiles (edge tiles
    smaller) of an `h`x`w` map. Every pooling bin of `grid` must be a union of whole
    tiles; otherwise ValueError (the runtime then needs a pass over the map).
    Returns int64 `[..., C, gh, gw]`, equal to `bin_sums` of the full map.
    """
    ts = np.asarray(tile_sums).astype(np.int64)

    def select(size: int, g: int) -> np.ndarray:
        n_tiles = -(-size // tile)
        m = np.zeros((g, n_tiles), dtype=np.int64)
        for i, (a, b) in enumerate(pool_bins(size, g)):
            if a % tile or (b % tile and b != size):
                raise ValueError(f"pooling bin [{a},{b}) of {size} px into {g} cells does "
                                 f"not align with {tile}-px tiles")
            m[i, a // tile: -(-b // tile)] = 1
        return m

    rows, cols = select(h, grid[0]), select(w, grid[1])
    if ts.shape[-2:] != (rows.shape[1], cols.shape[1]):
        raise ValueError(f"tile sums have {ts.shape[-2:]} tiles, expected "
                         f"{(rows.shape[1], cols.shape[1])} for {h}x{w} px, tile {tile}")
    return np.matmul(np.matmul(rows, ts), cols.T)


def sums_region_bins(sums: np.ndarray, tile: int, h: int, w: int,
                     bins_h: int, bins_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Add the engine's per-tile channel sums into the adaptive-pool bins of an h x w map.

    `sums` is [ceil(h/tile)][ceil(w/tile)][C] (the SUMS region layout). Returns (int64
    [bins_h][bins_w][C] sums, int64 [bins_h][bins_w] pixel counts). The arithmetic is
    `bin_sums_from_tile_sums`; a bin edge that does not fall on a tile edge
    (the per-tile sums cannot make that bin exactly) is a FormatError.
    """
    s = np.asarray(sums, dtype=np.int64)
    if s.ndim != 3 or tile < 1:
        raise FormatError(f"tile sums: need [gh][gw][C] and tile >= 1, got {s.shape}, tile={tile}")
    try:
        out = bin_sums_from_tile_sums(np.moveaxis(s, -1, 0), tile, h, w, (bins_h, bins_w))
    except ValueError as exc:
        raise FormatError(f"tile sums: {exc}: the engine's per-tile sums cannot make these "
                          "pooling bins") from None
    return np.moveaxis(out, 0, -1), bin_counts(h, w, (bins_h, bins_w))


def nearest_source_index(out_size: int, grid: int) -> np.ndarray:
    """Grid cell read by each of `out_size` pixels under PyTorch's nearest upsampling
    (`nn.Upsample(size=..., mode="nearest")`): `min(floor(j * float32(g/out)), g-1)`
    computed in float32, with PyTorch's exact shortcuts for equal and doubled sizes."""
    if out_size < 1 or grid < 1:
        raise ValueError(f"upsampling sizes must be positive, got out={out_size}, grid={grid}")
    j = np.arange(out_size)
    if out_size == grid:
        return j
    if out_size == 2 * grid:
        return j >> 1
    scale = np.float32(grid) / np.float32(out_size)
    src = np.floor(j.astype(np.float32) * scale).astype(np.int64)
    return np.minimum(src, grid - 1)


def upsample_grid(grid_mask: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-upsample a grid mask `[..., gh, gw]` to pixels `[..., H, W]`."""
    gh, gw = grid_mask.shape[-2:]
    rows = nearest_source_index(out_hw[0], gh)
    cols = nearest_source_index(out_hw[1], gw)
    return grid_mask[..., rows[:, None], cols[None, :]]


# ----------------------------------------------------------------------------- evaluation

def _pooled(sums: np.ndarray, counts, scale: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if np.any(counts <= 0):
        raise ValueError("pooling counts must be positive")
    factor = (float(scale) / counts).astype(np.float32)
    return np.asarray(sums, dtype=np.int64).astype(np.float32) * factor


def spatial_gate_logits(sums: np.ndarray, counts, scale: float,
                        params: SpatialGateParams) -> np.ndarray:
    """Spatial gate logits, float32 `[..., gh, gw]` (see the module doc for the order).

    sums: int64 `[..., C, gh, gw]` bin sums of the block input; counts: `[gh, gw]` pixels
    per bin; scale: the block input's tensor scale.
    """
    sums = np.asarray(sums)
    c, gh, gw = sums.shape[-3:]
    if params.weight.shape[0] != c:
        raise ValueError(f"spatial gate expects {params.weight.shape[0]} channels, got {c}")
    p = _pooled(sums, counts, scale)
    pad = np.zeros(p.shape[:-2] + (gh + 2, gw + 2), dtype=np.float32)
    pad[..., 1:-1, 1:-1] = p
    # products in the loop order (c, ky, kx), each one float32 multiply ...
    win = np.stack([pad[..., ky:ky + gh, kx:kx + gw] for ky in range(3) for kx in range(3)],
                   axis=-3)                                    # [..., C, 9, gh, gw]
    prod = (params.weight.reshape(c, 9, 1, 1) * win).reshape(p.shape[:-3] + (c * 9, gh, gw))
    return _sequential_sum(prod, axis=-3) + params.bias


def _sequential_sum(prod: np.ndarray, axis: int) -> np.ndarray:
    """`acc = 0; for t: acc = acc + prod[t]` along `axis`, in float32, vectorised.

    np.add.accumulate adds strictly in order (no pairwise or SIMD reassociation), so this
    equals the written-out loop bit for bit on every IEEE machine; the leading zero makes
    even the sign of a zero sum identical.
    """
    prod = np.moveaxis(prod, axis, -1)            # reduce along a contiguous axis
    buf = np.zeros(prod.shape[:-1] + (prod.shape[-1] + 1,), dtype=np.float32)
    buf[..., 1:] = prod
    return np.add.accumulate(buf, axis=-1, dtype=np.float32)[..., -1]


def eval_spatial_gate(sums: np.ndarray, counts, scale: float,
                      params: SpatialGateParams) -> np.ndarray:
    """Spatial gate decision, bool `[..., gh, gw]` (True = tile computed)."""
    return spatial_gate_logits(sums, counts, scale, params) >= np.float32(0)


def channel_gate_logits(total_sums: np.ndarray, count: int, scale: float,
                        params: ChannelGateParams) -> np.ndarray:
    """Channel gate logits, float32 `[..., C_out]`.

    total_sums: int64 `[..., C_in]` channel sums over the whole block input; count: its
    pixels (H*W); scale: the block input's tensor scale.
    """
    total_sums = np.asarray(total_sums)
    c = total_sums.shape[-1]
    if c != params.in_channels:
        raise ValueError(f"channel gate expects {params.in_channels} channels, got {c}")
    p = _pooled(total_sums, count, scale)
    h = _sequential_sum(p[..., :, None] * params.fc1.T, axis=-2)          # over C_in
    h = h * params.bn_scale + params.bn_shift
    h = np.maximum(h, np.float32(0))
    acc = _sequential_sum(h[..., :, None] * params.fc2.T, axis=-2)        # over hidden
    return acc + params.fc2_bias


def eval_channel_gate(total_sums: np.ndarray, count: int, scale: float,
                      params: ChannelGateParams) -> np.ndarray:
    """Channel gate decision, bool `[..., C_out]` (True = channel computed)."""
    return channel_gate_logits(total_sums, count, scale, params) >= np.float32(0)


def spatial_gate_macs(grid: tuple[int, int], in_channels: int) -> int:
    """Official gate MAC count: cells x C_in x 9 (pooling not counted)."""
    return grid[0] * grid[1] * in_channels * 9


def channel_gate_macs(in_channels: int, hidden: int, out_channels: int) -> int:
    """Official gate MAC count: C_in x hidden + hidden x C_out."""
    return in_channels * hidden + hidden * out_channels
