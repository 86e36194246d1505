"""The integer gates: the one definition the golden model, the interpreter and the board
runtime call (numpy only, torch-free); the HLS and RTL engines implement the same
arithmetic. docs/quantization.md ("Integer gates") writes it down with its bounds.

A block's gates see their input feature map (int8/u8 codes) only through **integer channel
sums** over pooling bins (int64, exact) and each bin's pixel count `n`. Everything after
that is int64 integer arithmetic (constants in `dgfpga.contract.program`: F =
GATE_FRAC_BITS, RB = GATE_RECIP_BITS, GATE_HIDDEN_MAX):

reciprocal of a pixel count
    `R(n) = (2^RB + n // 2) // n`                                  (`gate_reciprocal`)
pooled value (F fractional bits, units of the input code)
    `P = (S * R(n) + 2^(RB-F-1)) >> (RB-F)`  (arithmetic shift)    (`gate_pool`)
spatial gate (`IntSpatialGate`: weight int16 [C, 3, 3], bias int)
    `L[y, x] = bias + sum_{c,ky,kx} weight[c,ky,kx] * Ppad[c, y+ky-1, x+kx-1]`
    (cells outside the grid are 0); on = `L >= 0`                  (`spatial_gate_logits_int`)
channel gate (`IntChannelGate`: w1 int16 [hid, C], m1 int32 [hid], o1 int64 [hid], shift,
w2 int16 [C_out, hid], b2 int64 [C_out]), from the whole-map pooled totals Pt
    `A[j] = sum_c w1[j,c] * Pt[c]`
    `h[j] = clamp((A[j]*m1[j] + o1[j] + 2^(shift-1)) >> shift, 0, GATE_HIDDEN_MAX)`
    `logit[m] = b2[m] + sum_j w2[m,j] * h[j]`; on = `logit >= 0`   (`channel_gate_logits_int`)

Ties (a logit exactly 0) are on, as in the float model. The sums of products are
computed as float64 GEMMs, which are exact here whatever the summation order: every
operand is an integer and every partial sum stays below 2^53 (C_in < 2^16, |w| < 2^15,
|P| < 2^17, 0 <= h < 2^15); the additions of biases and the hidden requantization are
int64. Leading batch dimensions are allowed everywhere.

Pooling bins are PyTorch's adaptive average pooling bins, `[floor(i*H/g),
ceil((i+1)*H/g))` (uneven edge bins included, each with its own `n`); the channel gate pools
the whole map (`n = H*W`). The grid-to-pixel map is PyTorch's nearest upsampling
(`floor(j * float32(g / H))` in float32), see `nearest_source_index`.

Two routes to the bin sums, equal whenever the bins align with the sum tiles: the golden
model sums the whole activation map (`bin_sums`, `bin_counts`); the engine (and
`gates_from_tile_sums`) adds its per-tile channel sums over a `BinTable` (`bin_table`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgfpga.contract import formats
from dgfpga.errors import FormatError

# The constants' one home (generated into the C header / SV include from there). A module
# import, not `from ... import NAME`: it works even while program.py, importing this
# module, is itself being imported.
from dgfpga.contract import program as _program

__all__ = [
    "IntSpatialGate", "IntChannelGate", "BinTable", "bin_table", "gate_reciprocal",
    "gate_pool", "spatial_gate_logits_int", "channel_gate_logits_int",
    "gates_from_tile_sums", "gate_logits_from_tile_sums", "channel_gate_bound",
    "spatial_gate_bound", "POOLED_LIMIT", "Z_LIMIT", "MAX_SHIFT", "MAX_CHANNELS", "pool_bins", "bin_counts", "bin_sums", "bin_sums_from_tile_sums",
    "sums_region_bins", "nearest_source_index", "upsample_grid", "spatial_gate_macs",
    "channel_gate_macs",
]

POOLED_LIMIT = 2 ** 17      # |P| < POOLED_LIMIT for every 8-bit map (docs/quantization.md)
Z_LIMIT = 2 ** 62           # |A*m1| + |o1| + 2^(shift-1) < Z_LIMIT (the quantizer proves it)
MAX_SHIFT = _program.GATE_SHIFT_MAX   # channel gate shift: 1..MAX_SHIFT
MAX_CHANNELS = 2 ** 16 - 1   # C_in, hidden (16-bit record fields; keeps float64 sums exact)
_TILE_SUM_LIMIT = 2 ** 31  # SUMS entries are int32
_SUM_LIMIT = 2 ** 38        # |S| below this keeps S * R(n) (R <= 2^24) inside int64


# ----------------------------------------------------------------------------- parameters

def _int_array(where: str, a, dtype, shape, limit: int) -> np.ndarray:
    """An integer array of `shape` with |values| <= limit, as `dtype` (ValueError else)."""
    a = np.asarray(a)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{where}: needs integers, got {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{where}: shape {tuple(a.shape)}, expected {tuple(shape)}")
    if a.size and (int(a.min()) < -limit or int(a.max()) > limit):   # no abs(): int64 min
        raise ValueError(f"{where}: values must lie in [-{limit}, {limit}]")
    return a.astype(dtype)


def _int_scalar(where: str, v, lo: int, hi: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) \
            or not lo <= int(v) <= hi:
        raise ValueError(f"{where}: {v!r} is not an integer in [{lo}, {hi}]")
    return int(v)


@dataclass
class IntSpatialGate:
    """Spatial gate `atten_s` in integers: weight int16 [C_in, 3, 3] (|w| <= GATE_WEIGHT_MAX),
    bias a Python int (|bias| < GATE_BIAS_LIMIT). ValueError for anything else."""
    weight: np.ndarray
    bias: int

    def __post_init__(self):
        w = np.asarray(self.weight)
        if w.ndim != 3 or w.shape[1:] != (3, 3) or not 1 <= w.shape[0] <= MAX_CHANNELS:
            raise ValueError(f"spatial gate weight must be [C_in, 3, 3] with 1 <= C_in <= "
                             f"{MAX_CHANNELS}, got {w.shape}")
        self.weight = _int_array("spatial gate weight", w, np.int16, w.shape,
                                 _program.GATE_WEIGHT_MAX)
        self.bias = _int_scalar("spatial gate bias", self.bias, -_program.GATE_BIAS_LIMIT + 1,
                                _program.GATE_BIAS_LIMIT - 1)

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class IntChannelGate:
    """Channel gate `atten_c` in integers (fc1 -> folded BN -> ReLU, requantized -> fc2):
    w1 int16 [hidden, C_in], m1 int32 [hidden] (|m1| < 2^31), o1 int64 [hidden]
    (|o1| < GATE_BIAS_LIMIT), shift int 1..62, w2 int16 [C_out, hidden], b2 int64 [C_out]
    (|b2| < GATE_BIAS_LIMIT); weights |w| <= GATE_WEIGHT_MAX. ValueError for anything else.
    The overflow bound (`channel_gate_bound` < 2^62) is the quantizer's and the loader's
    check, not the constructor's."""
    w1: np.ndarray
    m1: np.ndarray
    o1: np.ndarray
    shift: int
    w2: np.ndarray
    b2: np.ndarray

    def __post_init__(self):
        c = _program
        w1, w2 = np.asarray(self.w1), np.asarray(self.w2)
        if w1.ndim != 2 or w2.ndim != 2:
            raise ValueError(f"channel gate: w1 and w2 must be 2-D, got {w1.shape}, {w2.shape}")
        hid, c_in = w1.shape
        c_out = w2.shape[0]
        if not (1 <= hid <= MAX_CHANNELS and 1 <= c_in <= MAX_CHANNELS and 1 <= c_out):
            raise ValueError(f"channel gate: sizes must lie in 1..{MAX_CHANNELS}, got hidden "
                             f"{hid}, C_in {c_in}, C_out {c_out}")
        self.w1 = _int_array("channel gate w1", w1, np.int16, w1.shape, c.GATE_WEIGHT_MAX)
        self.m1 = _int_array("channel gate m1", self.m1, np.int32, (hid,), 2 ** 31 - 1)
        self.o1 = _int_array("channel gate o1", self.o1, np.int64, (hid,), c.GATE_BIAS_LIMIT - 1)
        self.shift = _int_scalar("channel gate shift", self.shift, 1, MAX_SHIFT)
        self.w2 = _int_array("channel gate w2", w2, np.int16, (c_out, hid), c.GATE_WEIGHT_MAX)
        self.b2 = _int_array("channel gate b2", self.b2, np.int64, (c_out,),
                             c.GATE_BIAS_LIMIT - 1)

    @property
    def in_channels(self) -> int:
        return int(self.w1.shape[1])

    @property
    def out_channels(self) -> int:
        return int(self.w2.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.w1.shape[0])


def channel_gate_bound(g: IntChannelGate) -> int:
    """Worst case of `|A*m1| + |o1| + 2^(shift-1)` over every input with |P| < 2^17
    (Python int, exact): `max_j sum_c |w1[j,c]| * (2^17 - 1) * |m1[j]| + |o1[j]|` plus the
    rounding constant. Must be < Z_LIMIT (2^62)."""
    a_max = np.abs(g.w1.astype(np.int64)).sum(axis=1) * (POOLED_LIMIT - 1)
    terms = [int(a) * abs(int(m)) + abs(int(o)) for a, m, o in zip(a_max, g.m1, g.o1)]
    return max(terms, default=0) + 2 ** (g.shift - 1)


def spatial_gate_bound(g: IntSpatialGate) -> int:
    """Worst case of `|L|` (Python int): `sum |weight| * (2^17 - 1) + |bias|` (< 2^63 for any
    C_in below 2^15; used in the docs' bound table and the tests)."""
    return int(np.abs(g.weight.astype(np.int64)).sum()) * (POOLED_LIMIT - 1) + abs(g.bias)


# ----------------------------------------------------------------------------- arithmetic

def gate_reciprocal(n):
    """`R(n) = (2^RB + n // 2) // n` (round half up), for a pixel count n >= 1. An int for an
    int, an int64 array for an array."""
    rb = _program.GATE_RECIP_BITS
    if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)):
        if n < 1:
            raise ValueError(f"gate_reciprocal: pixel count {n} must be >= 1")
        return ((1 << rb) + int(n) // 2) // int(n)
    a = np.asarray(n, dtype=np.int64)
    if a.size and a.min() < 1:
        raise ValueError("gate_reciprocal: pixel counts must be >= 1")
    return ((np.int64(1) << rb) + a // 2) // a


def gate_pool(sums, recip) -> np.ndarray:
    """Pooled values `P = (S * R + 2^(RB-F-1)) >> (RB-F)`, int64, elementwise (recip: a
    scalar or an array broadcasting against `sums`)."""
    c = _program
    s = np.asarray(sums)
    if s.dtype == bool or not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"gate_pool needs integer sums, got {s.dtype}")
    s = s.astype(np.int64)
    r = np.asarray(recip, dtype=np.int64)
    if s.size and (int(s.min()) <= -_SUM_LIMIT or int(s.max()) >= _SUM_LIMIT):
        raise ValueError("gate_pool: a bin sum reaches 2^38 (not the sums of an 8-bit map)")
    if r.size and (r.min() < 1 or r.max() > (1 << c.GATE_RECIP_BITS)):
        raise ValueError(f"gate_pool: reciprocals must lie in [1, 2^{c.GATE_RECIP_BITS}]")
    sh = c.GATE_RECIP_BITS - c.GATE_FRAC_BITS
    return (s * r + (np.int64(1) << (sh - 1))) >> sh


def _check_pooled(p: np.ndarray, what: str) -> np.ndarray:
    if p.dtype == bool or not np.issubdtype(p.dtype, np.integer):
        raise TypeError(f"{what}: pooled values must be integers, got {p.dtype}")
    p = p.astype(np.int64)
    if p.size and (int(p.min()) <= -POOLED_LIMIT or int(p.max()) >= POOLED_LIMIT):
        raise ValueError(f"{what}: |pooled value| must be < 2^17 (not from an 8-bit map)")
    return p


def spatial_gate_logits_int(pooled, g: IntSpatialGate) -> np.ndarray:
    """Spatial gate logits, int64 `[..., gh, gw]`, from pooled values `[..., C, gh, gw]`."""
    p = _check_pooled(np.asarray(pooled), "spatial gate")
    if p.ndim < 3:
        raise ValueError(f"spatial gate: pooled values must be [..., C, gh, gw], got {p.shape}")
    c, gh, gw = p.shape[-3:]
    if c != g.in_channels:
        raise ValueError(f"spatial gate expects {g.in_channels} channels, got {c}")
    # float64 GEMVs are exact here: every product is an integer below 2^15 * 2^17 and every
    # partial sum below C * 9 * 2^32 < 2^53 (C < 2^16), whatever the summation order; the
    # bias is added in int64. (numpy's int64 matmul is exact too, but 10x slower.)
    pad = np.zeros(p.shape[:-3] + (gh + 2, gw + 2, c), dtype=np.float64)
    pad[..., 1:-1, 1:-1, :] = np.moveaxis(p, -3, -1)     # [..., gh+2, gw+2, C]
    w = g.weight.astype(np.float64)
    acc = np.zeros(p.shape[:-3] + (gh, gw), dtype=np.float64)
    for ky in range(3):
        for kx in range(3):
            acc += pad[..., ky:ky + gh, kx:kx + gw, :] @ w[:, ky, kx]
    return acc.astype(np.int64) + g.bias


def channel_gate_logits_int(pooled_totals, g: IntChannelGate) -> np.ndarray:
    """Channel gate logits, int64 `[..., C_out]`, from the pooled totals `[..., C_in]`."""
    pt = _check_pooled(np.asarray(pooled_totals), "channel gate")
    if pt.ndim < 1 or pt.shape[-1] != g.in_channels:
        raise ValueError(f"channel gate expects {g.in_channels} channels, got shape {pt.shape}")
    # float64 GEMMs, exact: |A| < C * 2^32 and |w2 . h| < hidden * 2^30 stay below 2^53.
    a = (pt.astype(np.float64) @ g.w1.astype(np.float64).T).astype(np.int64)   # [..., hidden]
    z = a * g.m1.astype(np.int64) + g.o1 + (np.int64(1) << (g.shift - 1))
    h = np.clip(z >> g.shift, 0, _program.GATE_HIDDEN_MAX)
    return (h.astype(np.float64) @ g.w2.astype(np.float64).T).astype(np.int64) + g.b2


# ----------------------------------------------------------------------------- bin table

@dataclass
class BinTable:
    """The pooling bins of a block's spatial gate in units of the input's sum tiles:
    rows/cols `[(start, end)]` (end exclusive), recip int64 [gh, gw] = R(pixels of each
    bin), recip_total = R(H*W) for the channel gate."""
    rows: list
    cols: list
    recip: np.ndarray
    recip_total: int

    def __post_init__(self):
        self.rows = [(int(a), int(b)) for a, b in self.rows]
        self.cols = [(int(a), int(b)) for a, b in self.cols]
        self.recip = np.asarray(self.recip, dtype=np.int64)
        self.recip_total = int(self.recip_total)
        if not self.rows or not self.cols or any(not 0 <= a < b for a, b in self.rows + self.cols):
            raise ValueError(f"bin table: bins must be non-empty [start, end) ranges, got rows "
                             f"{self.rows}, cols {self.cols}")
        if self.recip.shape != (len(self.rows), len(self.cols)):
            raise ValueError(f"bin table: recip {self.recip.shape} does not match "
                             f"{len(self.rows)}x{len(self.cols)} bins")

    @property
    def grid(self) -> tuple[int, int]:
        return len(self.rows), len(self.cols)

    def selection(self, st_h: int, st_w: int) -> tuple[np.ndarray, np.ndarray]:
        """0/1 float64 matrices [gh, st_h] and [gw, st_w]: row i selects bin i's sum tiles."""
        sel = []
        for bins, n in ((self.rows, st_h), (self.cols, st_w)):
            m = np.zeros((len(bins), n), dtype=np.float64)
            for i, (a, b) in enumerate(bins):
                m[i, a:b] = 1.0
            sel.append(m)
        return sel[0], sel[1]

    @property
    def sum_grid(self) -> tuple[int, int]:
        """The sum tiles the bins reach: (max row end, max col end); `bin_table` makes them
        cover the whole map, so this is the input's (st_h, st_w)."""
        return max(b for _, b in self.rows), max(b for _, b in self.cols)


def _tile_bins(size: int, tile: int, g: int, what: str) -> list[tuple[int, int]]:
    out = []
    for a, b in pool_bins(size, g):
        if a % tile or (b % tile and b != size):
            raise FormatError(f"{what}: pooling bin [{a},{b}) of {size} px into {g} cells does "
                              f"not fall on the edges of {tile}-px sum tiles (the engine's "
                              f"per-tile sums cannot make this bin)")
        out.append((a // tile, -(-b // tile)))
    return out


def bin_table(h: int, w: int, sums_tile: int, grid) -> BinTable:
    """The BinTable of an h x w block input whose channel sums come per `sums_tile`-px tile
    (edge tiles smaller), pooled to `grid` (gh, gw). FormatError if a bin edge is not a
    tile edge."""
    if sums_tile < 1:
        raise FormatError(f"bin table: sum tile {sums_tile} must be >= 1")
    try:
        rows = _tile_bins(h, sums_tile, grid[0], "rows")
        cols = _tile_bins(w, sums_tile, grid[1], "cols")
    except ValueError as exc:                      # non-positive sizes
        raise FormatError(f"bin table: {exc}") from None
    return BinTable(rows, cols, gate_reciprocal(bin_counts(h, w, grid)),
                    gate_reciprocal(h * w))


def gates_from_tile_sums(tile_sums, table: BinTable, sg: IntSpatialGate, cg: IntChannelGate):
    """Both gate decisions from the engine's per-tile channel sums (what the engine computes).

    tile_sums: int `[..., st_h, st_w, C]` (the SUMS layout, int32 values). Bin sums add the
    table's tile ranges; the channel gate's totals add ALL the sum tiles. Returns (spatial
    bool `[..., gh, gw]`, channel bool `[..., C_out]`): `gate_logits_from_tile_sums >= 0`.
    """
    spatial, channel = gate_logits_from_tile_sums(tile_sums, table, sg, cg)
    return spatial >= 0, channel >= 0


def gate_logits_from_tile_sums(tile_sums, table: BinTable, sg: IntSpatialGate,
                               cg: IntChannelGate):
    """The integer logits behind `gates_from_tile_sums`: (spatial int64 `[..., gh, gw]`,
    channel int64 `[..., C_out]`)."""
    ts = np.asarray(tile_sums)
    if ts.dtype == bool or not np.issubdtype(ts.dtype, np.integer):
        raise TypeError(f"tile sums must be integers, got {ts.dtype}")
    if ts.ndim < 3 or any(e > n for e, n in zip(table.sum_grid, ts.shape[-3:-1])):
        raise ValueError(f"tile sums {ts.shape} do not cover the bin table's sum-tile grid "
                         f"{table.sum_grid}")
    st_h, st_w = ts.shape[-3:-1]
    if st_h * st_w >= 2 ** 22:
        raise ValueError(f"tile sums: {st_h}x{st_w} sum tiles is more than the engine has")
    if ts.size and (int(ts.min()) < -_TILE_SUM_LIMIT or int(ts.max()) >= _TILE_SUM_LIMIT):
        raise ValueError("tile sums must be int32 values (the SUMS region)")
    # Bin sums as 0/1 selection GEMMs in float64: exact, every sum is an integer below
    # 2^31 * st_h * st_w < 2^53.
    rows, cols = table.selection(st_h, st_w)
    t = np.moveaxis(ts, -1, -3).astype(np.float64)                  # [..., C, st_h, st_w]
    bins = (rows @ t @ cols.T).astype(np.int64)                     # [..., C, gh, gw]
    total = ts.astype(np.int64).sum(axis=(-3, -2))
    pooled = gate_pool(bins, table.recip)
    return (spatial_gate_logits_int(pooled, sg),
            channel_gate_logits_int(gate_pool(total, table.recip_total), cg))


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


# ----------------------------------------------------------------------------- MAC counts

def spatial_gate_macs(grid: tuple[int, int], in_channels: int) -> int:
    """Official gate MAC count: cells x C_in x 9 (pooling not counted)."""
    return grid[0] * grid[1] * in_channels * 9


def channel_gate_macs(in_channels: int, hidden: int, out_channels: int) -> int:
    """Official gate MAC count: C_in x hidden + hidden x C_out."""
    return in_channels * hidden + hidden * out_channels
