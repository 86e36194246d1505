"""Word formats shared by the golden model, the HLS engine, the RTL and the host (torch-free).

Everything the engine reads from or writes to DDR is defined here, once:

- the **layer descriptor** (`DESCRIPTOR_FIELDS`, 24 little-endian 32-bit words),
- the **work list** sections (u16 tile and channel index lists, the u32 tile bitmap),
- the **feature-map layout** (HWC bytes; compact channel buffers; in-place outputs),
- the **weight streams** and per-channel **params** (bias int32, mult int32),
- the per-tile **channel sums** side output and its pooling-bin helper.

Every unpacker validates what it reads and raises `dgfpga.errors.FormatError` naming the
field and the bad value; none returns an out-of-range index. `docs/formats.md` is
generated from these tables (`dgfpga gen`).
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.errors import FormatError

FORMAT_VERSION = 3                          # 2: network programs (gate/head records, from_gate);
                                            # 3: conv2 weights in m-group blocks (ic_g_k_k_m)
DESC_MAGIC = 0xD6
DESCRIPTOR_WORDS = 24
DESCRIPTOR_BYTES = 4 * DESCRIPTOR_WORDS

OP_CONV = 1
#: a depthwise conv (MobileNetV2): the conv descriptor with one input channel per output
#: channel (groups = channels); docs/formats.md "Depthwise layers"
OP_DWCONV = 5
OP_KINDS = {OP_CONV: "conv", OP_DWCONV: "dwconv"}
DW_KERNELS = (3,)                           # depthwise kernel sides (MobileNetV2's 3x3)
KERNELS = (1, 3, 7)                         # kernel sides the engine supports
MAX_KERNEL = max(KERNELS)                   # the ImageNet stem's 7x7
MAX_KERNEL_TAPS = MAX_KERNEL * MAX_KERNEL   # weights per (out, in) channel pair of it
#: output lanes per requantizer: the write-back's Tm lanes share Tm / REQUANT_SHARE
#: requantizers (int64 products, ~6 DSP48E2 each), so it takes one output pixel per
#: `requant_cycles_per_pixel(cfg)` cycles (HLS REQUANT_LANES, RTL dg_pkg::RQ_SHARE)
REQUANT_SHARE = 4


def requant_cycles_per_pixel(cfg) -> int:
    """Cycles the write-back's requantizers take per output pixel: min(REQUANT_SHARE, tm)."""
    return min(REQUANT_SHARE, cfg.tm)
STRIDES = (1, 2)
POOL_K, POOL_STRIDE, POOL_PAD = 3, 2, 1     # the fused max-pool (torchvision ResNet stem)
PARAM_BYTES = 8                             # per output channel: bias int32, mult int32
SUM_BYTES = 4                               # one int32 channel sum
LIST_ENTRY_BYTES = 2                        # a work-list entry (tile or channel index): u16
BITMAP_WORD_BYTES = 4                       # a tile-bitmap word: u32 (tile i: word i//32, bit i%32)
REGIONS = ("fmap", "weight", "work", "sums")


# --------------------------------------------------------------------------------------
# Layer descriptor
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DescField:
    name: str
    word: int
    lsb: int
    width: int
    meaning: str

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


def _f(name, word, lsb, width, meaning):
    return DescField(name, word, lsb, width, meaning)


DESCRIPTOR_FIELDS = (
    _f("magic", 0, 0, 8, f"0x{DESC_MAGIC:02X}; catches descriptors read from the wrong address"),
    _f("version", 0, 8, 8, "FORMAT_VERSION"),
    _f("op", 0, 16, 4, "record op: 1 = conv, 5 = depthwise conv (this descriptor; 2 = gate, "
       "3 = head, 4 = gate-2 are other records of a network program, dgfpga.contract.program; "
       "0 is invalid so zeroed memory fails)"),
    _f("k", 0, 20, 4, f"kernel side: one of KERNELS {KERNELS}"),
    _f("stride", 0, 24, 2, f"conv stride: one of STRIDES {STRIDES}"),
    _f("pad", 0, 26, 3, "zero padding on each side, 0..k/2"),
    _f("in_signed", 1, 0, 1, "input feature map is s8 (else u8)"),
    _f("out_signed", 1, 1, 1, "output is s8, clamp -128..127 (else u8, clamp 0..255)"),
    _f("relu", 1, 2, 1, "ReLU; must equal NOT out_signed (the u8 clamp is the ReLU)"),
    _f("residual", 1, 3, 1, "add res * res_mult before the shift (residual fm at res_offset)"),
    _f("res_signed", 1, 4, 1, "residual fm is s8 (else u8); 0 without residual"),
    _f("maxpool", 1, 5, 1, "fused 3x3/s2/pad1 max-pool after requantization (dense layers only)"),
    _f("emit_sums", 1, 6, 1, "write per-tile int32 channel sums of the output to sums_offset"),
    _f("tile_gated", 1, 7, 1, "compute only the tiles in the tile list (else every tile)"),
    _f("in_ch_gated", 1, 8, 1, "input fm is compact: n_active_in channels, ids in the in-channel list"),
    _f("out_ch_gated", 1, 9, 1, "output fm is compact: n_active_out channels, ids in the out-channel list"),
    _f("zero_halo", 1, 10, 1, "input pixels in tiles whose bitmap bit is 0 read as zero "
       "(needs tile_gated and out_h, out_w = ceil(in_h, in_w / stride); input pixel (y, x) "
       "lies in tile (y / (stride*tile), x / (stride*tile)))"),
    _f("in_place", 1, 11, 1, "output aliases the residual (identity block): tiles not listed are left as they are"),
    _f("from_gate", 1, 12, 1, "counts from the last gate record of this start (program.effective_descriptor; "
       "needs tile_gated)"),
    _f("im2col", 1, 13, 1, "reduce over the flattened (ky, kx, c) taps, tn per array step "
       "(mac_steps_per_pixel; weights [C_out][k*k*C_in padded to tn]); needs k > 1, no "
       "in_ch_gated, no zero_halo and the im2col buffer bounds (im2col_fit_problems)"),
    _f("shift", 1, 16, 5, "requantization right shift, 0..31"),
    _f("in_h", 2, 0, 16, "input height, pixels"),
    _f("in_w", 2, 16, 16, "input width, pixels"),
    _f("out_h", 3, 0, 16, "output height (after the max-pool, if fused)"),
    _f("out_w", 3, 16, 16, "output width"),
    _f("in_c", 4, 0, 16, "input channels of the layer (full, as in the weights)"),
    _f("out_c", 4, 16, 16, "output channels of the layer (full)"),
    _f("tile", 5, 0, 8, "output tile side, 1..max_tile; edge tiles are clipped"),
    _f("grid_h", 5, 8, 8, "tile rows = ceil(out_h / tile)"),
    _f("grid_w", 5, 16, 8, "tile columns = ceil(out_w / tile)"),
    _f("n_active_tiles", 6, 0, 16, "tiles in the tile list (= grid_h*grid_w if not tile_gated)"),
    _f("n_res_tiles", 6, 16, 16, "residual-only tiles: y = clamp(requant(res)), no MACs"),
    _f("n_active_out", 7, 0, 16, "active output channels (= out_c if not out_ch_gated)"),
    _f("n_active_in", 7, 16, 16, "active input channels (= in_c if not in_ch_gated)"),
    _f("res_mult", 8, 0, 32, "residual multiplier, 0 <= res_mult < 2^31 (0 without residual)"),
    _f("in_offset", 9, 0, 32, "FMAP: input feature map"),
    _f("out_offset", 10, 0, 32, "FMAP: output feature map"),
    _f("res_offset", 11, 0, 32, "FMAP: residual feature map (0 without residual)"),
    _f("weight_offset", 12, 0, 32, "WEIGHT: weight stream of the layer"),
    _f("param_offset", 13, 0, 32, "WEIGHT: params, out_c x (bias int32, mult int32)"),
    _f("tile_list_offset", 14, 0, 32, "WORK: u16 active tile indices (0 if not tile_gated)"),
    _f("res_tile_list_offset", 15, 0, 32, "WORK: u16 residual-only tile indices (0 if none)"),
    _f("out_ch_list_offset", 16, 0, 32, "WORK: u16 active output channel ids (0 if not gated)"),
    _f("in_ch_list_offset", 17, 0, 32, "WORK: u16 active input channel ids (0 if not gated)"),
    _f("bitmap_offset", 18, 0, 32, "WORK: u32 tile bitmap (0 if not zero_halo)"),
    _f("sums_offset", 19, 0, 32, "SUMS: [grid_h*grid_w][C] int32 (0 if not emit_sums)"),
    _f("pixel_sums", 1, 14, 1, "with emit_sums: one sum tile per output pixel, SUMS "
       "[out_h*out_w][C] (pooling bins that are not unions of tiles, e.g. 7x7 maps)"),
)
#: What the contract defines but an engine does not implement yet (docs/formats.md
#: "Depthwise layers"), per engine: that engine's generated field table (the C header for
#: "hls", the SV include for "rtl") leaves these fields out, so it sees their bits as
#: reserved (BAD_MAGIC, ENTRY 0) and refuses the op (BAD_OP, ENTRY 0) instead of silently
#: ignoring them; the interpreter refuses what a named engine refuses
#: (`run_program(..., pending="rtl")`), by default what any engine refuses, and runs all of
#: it with `pending=True`. An engine that implements a feature removes it from its entry
#: here (then `dgfpga gen`).
PENDING_BY_ENGINE = {
    "hls": {"ops": (), "fields": ()},
    "rtl": {"ops": (), "fields": ()},
}
ENGINES = tuple(PENDING_BY_ENGINE)
#: each engine as messages and docs name it, and where its sources are
ENGINE_NAMES = {"hls": "the HLS engine", "rtl": "the RTL"}
ENGINE_SOURCES = {"hls": "hls/src", "rtl": "sim/rtl"}
#: pending on at least one engine (what a program for both must not use)
PENDING_OPS = tuple(sorted({o for e in PENDING_BY_ENGINE.values() for o in e["ops"]}))
PENDING_FIELDS = tuple(f.name for f in DESCRIPTOR_FIELDS
                       if any(f.name in e["fields"] for e in PENDING_BY_ENGINE.values()))
RESERVED_WORDS = tuple(range(20, DESCRIPTOR_WORDS))   # must be zero
FIELD_BY_NAME = {f.name: f for f in DESCRIPTOR_FIELDS}


def pending_ops(engine: "str | None" = None) -> tuple:
    """The ops `engine` ("hls"/"rtl") refuses as not implemented; None: any engine."""
    return PENDING_OPS if engine is None else tuple(PENDING_BY_ENGINE[engine]["ops"])


def pending_fields(engine: "str | None" = None) -> tuple:
    """The descriptor fields `engine` sees as reserved bits; None: any engine."""
    return PENDING_FIELDS if engine is None else tuple(PENDING_BY_ENGINE[engine]["fields"])


def engine_fields(engine: str) -> tuple:
    """The descriptor fields `engine` implements (its generated C/SV table):
    DESCRIPTOR_FIELDS minus its pending fields, field numbers unchanged (pending fields are
    appended at the end)."""
    skip = pending_fields(engine)
    fields = tuple(f for f in DESCRIPTOR_FIELDS if f.name not in skip)
    assert fields == DESCRIPTOR_FIELDS[:len(fields)], "pending fields must come last"
    return fields


FLAG_FIELDS = tuple(f.name for f in DESCRIPTOR_FIELDS if f.word == 1 and f.width == 1)
OFFSET_FIELDS = tuple(f.name for f in DESCRIPTOR_FIELDS if f.name.endswith("_offset"))
# region each offset points into
OFFSET_REGION = {
    "in_offset": "fmap", "out_offset": "fmap", "res_offset": "fmap",
    "weight_offset": "weight", "param_offset": "weight",
    "tile_list_offset": "work", "res_tile_list_offset": "work", "out_ch_list_offset": "work",
    "in_ch_list_offset": "work", "bitmap_offset": "work", "sums_offset": "sums",
}
# STATUS code (a regmap.ERROR_CODES name) the engine reports when a field is at fault, with
# ENTRY = the field's word. Exception: a valid layer too big for the buffers is NO_FIT at
# the `tile` word (layer_fit_problems).
FIELD_ERROR = {
    **{n: "BAD_MAGIC" for n in ("magic", "version")},
    **{n: "BAD_OP" for n in ("op", "k", "stride", "pad", "shift")},
    **{n: "BAD_SHAPE" for n in ("in_h", "in_w", "out_h", "out_w", "in_c", "out_c")},
    **{n: "BAD_FLAGS" for n in FLAG_FIELDS + ("res_mult",)},
    **{n: "BAD_TILE" for n in ("tile", "grid_h", "grid_w")},
    **{n: "BAD_COUNT" for n in ("n_active_tiles", "n_res_tiles", "n_active_out", "n_active_in")},
    **{n: "BAD_OFFSET" for n in OFFSET_FIELDS},
}


def _check_field_table() -> None:
    used: dict = {}
    for f in DESCRIPTOR_FIELDS:
        assert 0 <= f.word < DESCRIPTOR_WORDS and f.lsb + f.width <= 32, f.name
        for bit in range(f.lsb, f.lsb + f.width):
            key = (f.word, bit)
            assert key not in used, f"descriptor fields {used.get(key)} and {f.name} overlap"
            used[key] = f.name
    assert set(FIELD_ERROR) == set(FIELD_BY_NAME), "FIELD_ERROR must name every field once"


_check_field_table()


@dataclass(frozen=True)
class LayerDescriptor:
    """One engine layer: what to compute and where its buffers are. Fields = DESCRIPTOR_FIELDS."""
    k: int
    stride: int
    pad: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    tile: int
    grid_h: int
    grid_w: int
    n_active_tiles: int
    n_active_out: int
    n_active_in: int
    op: int = OP_CONV
    in_signed: bool = False
    out_signed: bool = False
    relu: bool = True
    residual: bool = False
    res_signed: bool = False
    maxpool: bool = False
    emit_sums: bool = False
    tile_gated: bool = False
    in_ch_gated: bool = False
    out_ch_gated: bool = False
    zero_halo: bool = False
    in_place: bool = False
    from_gate: bool = False
    im2col: bool = False
    pixel_sums: bool = False
    shift: int = 16
    res_mult: int = 0
    n_res_tiles: int = 0
    in_offset: int = 0
    out_offset: int = 0
    res_offset: int = 0
    weight_offset: int = 0
    param_offset: int = 0
    tile_list_offset: int = 0
    res_tile_list_offset: int = 0
    out_ch_list_offset: int = 0
    in_ch_list_offset: int = 0
    bitmap_offset: int = 0
    sums_offset: int = 0

    # ---- derived sizes ----
    @property
    def n_tiles(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def in_c_stored(self) -> int:
        """Channels per pixel of the input fm in DDR (compact if in_ch_gated)."""
        return self.n_active_in if self.in_ch_gated else self.in_c

    @property
    def out_c_stored(self) -> int:
        """Channels per pixel of the output fm in DDR (compact if out_ch_gated)."""
        return self.n_active_out if self.out_ch_gated else self.out_c

    @property
    def depthwise(self) -> bool:
        """A depthwise layer (op OP_DWCONV): output channel m reads input channel m only."""
        return self.op == OP_DWCONV

    @property
    def sum_grid(self) -> tuple[int, int]:
        """(rows, cols) of the SUMS buffer's sum tiles: the tile grid, or every output pixel
        with pixel_sums."""
        return (self.out_h, self.out_w) if self.pixel_sums else (self.grid_h, self.grid_w)

    @property
    def n_sum_tiles(self) -> int:
        return self.sum_grid[0] * self.sum_grid[1]

    @property
    def conv_h(self) -> int:
        return conv_out_size(self.in_h, self.k, self.stride, self.pad)

    @property
    def conv_w(self) -> int:
        return conv_out_size(self.in_w, self.k, self.stride, self.pad)

    @property
    def weight_layout(self) -> str:
        """'im2col' for im2col layers, 'ic_g_k_k_m' for input-gated-only layers (conv2),
        else 'oc_k_k_ic' (`pack_weights`)."""
        if self.im2col:
            return "im2col"
        if self.depthwise:
            return "dw"
        return "ic_g_k_k_m" if (self.in_ch_gated and not self.out_ch_gated) else "oc_k_k_ic"

    def replace(self, **changes) -> "LayerDescriptor":
        return dataclasses.replace(self, **changes)


def conv_out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output size of a convolution (floor), as PyTorch computes it."""
    return (size + 2 * pad - k) // stride + 1


def pool_out_size(size: int) -> int:
    """Output size of the fused 3x3/s2/pad1 max-pool."""
    return conv_out_size(size, POOL_K, POOL_STRIDE, POOL_PAD)


def layer_out_size(size: int, k: int, stride: int, pad: int, maxpool: bool) -> int:
    c = conv_out_size(size, k, stride, pad)
    return pool_out_size(c) if maxpool else c


def make_descriptor(*, k: int, stride: int, in_h: int, in_w: int, in_c: int, out_c: int,
                    tile: int, pad: Optional[int] = None, maxpool: bool = False,
                    **kw) -> LayerDescriptor:
    """A descriptor with derived sizes filled in: out_h/out_w, grid, dense counts.

    Keyword arguments override any field (e.g. `tile_gated=True, n_active_tiles=3`).
    """
    pad = k // 2 if pad is None else pad
    out_h = layer_out_size(in_h, k, stride, pad, maxpool)
    out_w = layer_out_size(in_w, k, stride, pad, maxpool)
    base = dict(k=k, stride=stride, pad=pad, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h,
                out_w=out_w, out_c=out_c, tile=tile, grid_h=-(-out_h // tile),
                grid_w=-(-out_w // tile), maxpool=maxpool, n_active_out=out_c, n_active_in=in_c)
    base["n_active_tiles"] = base["grid_h"] * base["grid_w"]
    base.update(kw)
    if "out_signed" in kw and "relu" not in kw:
        base["relu"] = not kw["out_signed"]
    return LayerDescriptor(**base)


def pack_descriptor(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> bytes:
    """96 bytes (24 little-endian u32). Validates the descriptor against `cfg` first."""
    validate_descriptor(d, cfg)
    words = [0] * DESCRIPTOR_WORDS
    values = dict(dataclasses.asdict(d), magic=DESC_MAGIC, version=FORMAT_VERSION)
    for f in DESCRIPTOR_FIELDS:
        v = int(values[f.name])
        words[f.word] |= (v & f.mask) << f.lsb
    return struct.pack(f"<{DESCRIPTOR_WORDS}I", *words)


def _bytes_like(data, what: str) -> bytes:
    if isinstance(data, np.ndarray):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"{what}: expected bytes, got {type(data).__name__}")
    return bytes(data)


def field_values(words: Sequence[int], fields) -> tuple[dict, Optional[tuple[int, int]]]:
    """The values of `fields` (DescField-like: name, word, lsb, mask) in a record's 32-bit
    `words`, and the first (word, bits) set outside every field, or None: the one field
    extractor of descriptors and the network program's gate and head records."""
    covered = [0] * len(words)
    values = {}
    for f in fields:
        values[f.name] = (words[f.word] >> f.lsb) & f.mask
        covered[f.word] |= f.mask << f.lsb
    for w, word in enumerate(words):
        bits = word & ~covered[w] & 0xFFFFFFFF
        if bits:
            return values, (w, bits)
    return values, None


def unpack_descriptor(data, cfg: Optional[EngineConfig] = None,
                      region_bytes: Optional[dict] = None) -> LayerDescriptor:
    """Parse and validate one descriptor (exactly DESCRIPTOR_BYTES bytes).

    `region_bytes` ({'fmap': n, 'weight': n, 'work': n, 'sums': n}) also checks every
    buffer lies inside its region, as the engine does with the *_BYTES registers.
    """
    data = _bytes_like(data, "descriptor")
    if len(data) != DESCRIPTOR_BYTES:
        raise FormatError(f"descriptor: length {len(data)} bytes, expected {DESCRIPTOR_BYTES}")
    words = struct.unpack(f"<{DESCRIPTOR_WORDS}I", data)
    for w in RESERVED_WORDS:
        if words[w]:
            raise FormatError(f"descriptor: reserved word {w} is 0x{words[w]:08X}, must be 0")
    values, stray = field_values(words, DESCRIPTOR_FIELDS)
    if stray:
        raise FormatError(f"descriptor: reserved bits 0x{stray[1]:08X} set in word {stray[0]}")
    if values.pop("magic") != DESC_MAGIC:
        raise _error(f"descriptor: magic 0x{words[0] & 0xFF:02X}, expected 0x{DESC_MAGIC:02X}",
                     field="magic")
    version = values.pop("version")
    if version != FORMAT_VERSION:
        raise _error(f"descriptor: version {version}, this dgfpga reads {FORMAT_VERSION}",
                     field="version")
    for name in FLAG_FIELDS:
        values[name] = bool(values[name])
    d = LayerDescriptor(**values)
    validate_descriptor(d, cfg, region_bytes)
    return d


def descriptor_buffers(d: LayerDescriptor, cfg: Optional[EngineConfig] = None
                       ) -> list[tuple[str, str, int, int]]:
    """(region, offset field, offset, bytes) of every buffer the layer reads or writes
    (`cfg`: the engine, for the tn-padded weight stream of an im2col layer)."""
    bufs = [
        ("fmap", "in_offset", d.in_offset, d.in_h * d.in_w * d.in_c_stored),
        ("fmap", "out_offset", d.out_offset, d.out_h * d.out_w * d.out_c_stored),
        ("weight", "weight_offset", d.weight_offset, weight_stream_bytes(d, cfg)),
        ("weight", "param_offset", d.param_offset, d.out_c * PARAM_BYTES),
    ]
    if d.residual:
        bufs.append(("fmap", "res_offset", d.res_offset, d.out_h * d.out_w * d.out_c))
    if d.tile_gated:
        bufs.append(("work", "tile_list_offset", d.tile_list_offset, 2 * d.n_active_tiles))
    if d.n_res_tiles:
        bufs.append(("work", "res_tile_list_offset", d.res_tile_list_offset, 2 * d.n_res_tiles))
    elif d.from_gate and d.residual and not d.in_place and d.res_tile_list_offset:
        # a from_gate template carries the slot of its residual-only list (up to every tile)
        bufs.append(("work", "res_tile_list_offset", d.res_tile_list_offset, 2 * d.n_tiles))
    if d.out_ch_gated:
        bufs.append(("work", "out_ch_list_offset", d.out_ch_list_offset, 2 * d.n_active_out))
    if d.in_ch_gated and not d.depthwise:      # a depthwise layer's out list is its in list
        bufs.append(("work", "in_ch_list_offset", d.in_ch_list_offset, 2 * d.n_active_in))
    if d.zero_halo:
        bufs.append(("work", "bitmap_offset", d.bitmap_offset, bitmap_bytes(d.n_tiles)))
    if d.emit_sums:
        bufs.append(("sums", "sums_offset", d.sums_offset,
                     d.n_sum_tiles * d.out_c_stored * SUM_BYTES))
    return bufs


def im2col_taps(d: LayerDescriptor) -> int:
    """Length of the flattened (ky, kx, c) reduction of a layer: k*k*in_c."""
    return d.k * d.k * d.in_c


def im2col_row_bytes(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> int:
    """Bytes per output channel of an im2col weight stream: k*k*in_c padded to a multiple of
    tn (the padding is zero weights)."""
    cfg = cfg or default_config()
    return -(-im2col_taps(d) // cfg.tn) * cfg.tn


def dw_row_bytes(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> int:
    """Bytes per channel of a depthwise weight stream: the k*k taps padded to a multiple
    of tn (one word of tn taps: two array steps of tn/2)."""
    cfg = cfg or default_config()
    return -(-(d.k * d.k) // cfg.tn) * cfg.tn


def weight_stream_bytes(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> int:
    """Bytes of the layer's weight stream at weight_offset (`weight_layout`)."""
    if d.depthwise:
        return d.out_c * dw_row_bytes(d, cfg)
    if d.im2col:
        return d.out_c * im2col_row_bytes(d, cfg)
    return d.out_c * d.k * d.k * d.in_c


def dw_steps_per_pixel(kk: int, cfg: EngineConfig) -> int:
    """MAC-array steps per conv pixel and m-group of a depthwise layer with `kk` = k*k taps.

    The array's DSP48E2s multiply two int8 weights of lanes 2i, 2i+1 by ONE shared
    activation (a conv's packing); a depthwise lane pair shares none, so each DSP computes
    one product and a pair's tn multiplies give each of its two lanes tn/2 taps per step:
    ceil(kk / (tn/2)) steps (tm*tn/2 products per step). With tn = 1 the pair's one multiply
    takes its two lanes in turn: 2*kk steps (kk when tm = 1). The engines' depthwise loops
    (hls/src/dg_mac.h, sim/rtl/dg_compute.sv) run exactly this count."""
    if cfg.tn == 1:
        return kk * (2 if cfg.tm > 1 else 1)
    return -(-kk // (cfg.tn // 2))


def mac_steps_per_pixel(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> int:
    """MAC-array steps per conv pixel per m-group of layer `d` on engine `cfg`: THE one
    count (the engines' loops, the packer's im2col choice and the cycle model use it).

    Without im2col: one step per (kernel position, n-group of tn stored input channels),
    k*k*ceil(n_active_in/tn); with im2col: one per tn of the flattened (ky, kx, c) taps,
    ceil(k*k*in_c/tn); depthwise (one channel per lane, one product per DSP):
    `dw_steps_per_pixel`, ceil(k*k/(tn/2)). 0 when the layer has no active input channel
    (bias only).
    """
    cfg = cfg or default_config()
    if d.n_active_in == 0:
        return 0
    if d.depthwise:              # lane m: channel m's k*k taps, tn/2 per step
        return dw_steps_per_pixel(d.k * d.k, cfg)
    if d.im2col:
        return -(-im2col_taps(d) // cfg.tn)
    return d.k * d.k * -(-d.n_active_in // cfg.tn)


def im2col_bank_bytes(cfg: EngineConfig) -> int:
    """Byte banks of the engines' patch buffer: max(tn, AXI bytes) (a power of two)."""
    return max(cfg.tn, cfg.axi_bytes)


def im2col_row_pitch(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> int:
    """Buffer bytes between two patch rows of an im2col layer: at least a row
    (input_patch_side * in_c) plus two AXI beats of slack (rows are stored at any byte
    alignment), rounded up so that pitch = k*in_c (mod im2col_bank_bytes). Then the tn
    flattened taps of one array step, which run over up to ceil(tn/(k*in_c))+1 patch rows,
    sit in tn consecutive banks: one read per bank per step, as for a 1x1 conv."""
    cfg = cfg or default_config()
    nb = im2col_bank_bytes(cfg)
    p = input_patch_side(d) * d.in_c + 2 * cfg.axi_bytes
    return p + (d.k * d.in_c - p) % nb


def im2col_fit_problems(d: LayerDescriptor, cfg: EngineConfig) -> list[str]:
    """Reasons the im2col flag cannot be set on `d` for `cfg` (empty if it can): the
    structural rules (k > 1, no in_ch_gated, no zero_halo) and the im2col buffer bounds:
    tm x im2col_row_bytes <= fit_weight_group_bytes and
    input_patch_side x im2col_row_pitch + AXI bytes <= fit_ifm_patch_bytes."""
    problems = []
    if d.k == 1:
        problems.append("a 1x1 kernel has nothing to flatten")
    if d.in_ch_gated:
        problems.append("needs a dense input (not in_ch_gated)")
    if d.zero_halo:
        problems.append("cannot zero halo pixels (not zero_halo)")
    if problems:
        return problems
    lim = fit_limits(cfg)
    w = cfg.tm * im2col_row_bytes(d, cfg)
    if w > lim["fit_weight_group_bytes"]:
        problems.append(f"im2col weights tm x {im2col_row_bytes(d, cfg)} = {w} bytes > "
                        f"weight_buffer_bytes/2 = {lim['fit_weight_group_bytes']}")
    p = input_patch_side(d) * im2col_row_pitch(d, cfg) + cfg.axi_bytes
    if p > lim["fit_ifm_patch_bytes"]:
        problems.append(f"im2col patch {input_patch_side(d)} rows x pitch "
                        f"{im2col_row_pitch(d, cfg)} + {cfg.axi_bytes} = {p} bytes > "
                        f"ifm_buffer_bytes/2 = {lim['fit_ifm_patch_bytes']}")
    return problems


def choose_im2col(d: LayerDescriptor, cfg: Optional[EngineConfig] = None) -> bool:
    """THE packer's choice: im2col where it is allowed and takes fewer array steps."""
    if d.depthwise:
        return False
    cfg = cfg or default_config()
    on = d.replace(im2col=True)
    off = d.replace(im2col=False)
    return (not layer_fit_problems(off, cfg) and not im2col_fit_problems(on, cfg)
            and mac_steps_per_pixel(on, cfg) < mac_steps_per_pixel(off, cfg))


def conv_tile_side(d: LayerDescriptor) -> int:
    """Side of the conv-output patch computed per output tile (2t+1 under a fused pool)."""
    return 2 * d.tile + 1 if d.maxpool else d.tile


def input_patch_side(d: LayerDescriptor) -> int:
    """Side of the input patch (with halo) a full tile reads."""
    return (conv_tile_side(d) - 1) * d.stride + d.k


def fit_limits(cfg: EngineConfig) -> dict[str, int]:
    """The NO_FIT bounds of `cfg` (generated into dg_config.h as config::fit_*; one half of
    each ping-pong pair): bytes of one m-group of weights, of one input patch, of one
    m-group's accumulators."""
    return {"fit_weight_group_bytes": cfg.weight_buffer_bytes // 2,
            "fit_ifm_patch_bytes": cfg.ifm_buffer_bytes // 2,
            "fit_acc_bytes": cfg.ofm_buffer_bytes}


def dw_bank_bytes(patch_rows: int, patch_cols: int, channels: int) -> int:
    """Bytes a depthwise patch puts in each of the reference RTL's k*k tap banks (dg_loader:
    bank (r mod k, c mod k) holds ceil(rows/k) x ceil(cols/k) pixels of `channels` bytes)."""
    k = DW_KERNELS[0]
    return -(-patch_rows // k) * -(-patch_cols // k) * channels


def dw_bank_half_bytes(cfg: EngineConfig) -> int:
    """The most bytes any depthwise patch the fit rule admits puts in one tap bank: the max of
    dw_bank_bytes(p, p, C) over patch sides p <= the RTL's patch limit (4 max_tile + MAX_KERNEL)
    with p*p*C <= fit_ifm_patch_bytes (layer_fit_problems, NO_FIT) and C <= max_in_channels.
    Every layer that fits thus fits the dw banks: no separate refusal. Generated into
    dg_params.svh as DG_DW_BANK_HALF_BYTES (dg_pkg.sv DW_HALF). ultra96: p = 4, C = 2048 ->
    4 x 2048 = 8192."""
    pmax = 4 * cfg.max_tile + MAX_KERNEL
    fit = fit_limits(cfg)["fit_ifm_patch_bytes"]
    return max(dw_bank_bytes(p, p, min(cfg.max_in_channels, fit // (p * p)))
               for p in range(1, pmax + 1))


def layer_fit_problems(d: LayerDescriptor, cfg: EngineConfig) -> list[str]:
    """Reasons the layer does not fit the on-chip buffers of `cfg` (empty if it fits).

    THE fit rule (every level reports NO_FIT at the `tile` word for it):
    tm x k*k x n_active_in <= fit_weight_group_bytes (always all tm lanes, whatever
    n_active_out is: an m-group is sized for the array, not for the image's gates; a
    depthwise layer: out_c x dw_row_bytes, the whole layer's rows),
    input_patch_side^2 x in_c_stored <= fit_ifm_patch_bytes, and
    tm x conv_tile_side^2 x 4 <= fit_acc_bytes.
    """
    lim = fit_limits(cfg)
    problems = []
    # depthwise: the whole layer's weight rows (k*k taps padded to tn per channel) stay on
    # chip and every m-group of a tile reads the tile's one patch (docs/formats.md)
    if d.depthwise:
        w = d.out_c * dw_row_bytes(d, cfg)
        if w > lim["fit_weight_group_bytes"]:
            problems.append(f"the depthwise weights ({d.out_c} rows of {dw_row_bytes(d, cfg)} "
                            f"bytes) are {w} bytes > weight_buffer_bytes/2 = "
                            f"{lim['fit_weight_group_bytes']}")
    else:
        w = cfg.tm * d.k * d.k * d.n_active_in
        if w > lim["fit_weight_group_bytes"]:
            problems.append(f"one m-group of weights (tm={cfg.tm} lanes) is {w} bytes > "
                            f"weight_buffer_bytes/2 = {lim['fit_weight_group_bytes']}")
    p = input_patch_side(d) ** 2 * d.in_c_stored
    if p > lim["fit_ifm_patch_bytes"]:
        problems.append(f"input patch {input_patch_side(d)}^2 x {d.in_c_stored} ch = {p} bytes "
                        f"> ifm_buffer_bytes/2 = {lim['fit_ifm_patch_bytes']}; use a smaller tile")
    a = cfg.tm * conv_tile_side(d) ** 2 * (cfg.acc_bits // 8)
    if a > lim["fit_acc_bytes"]:
        problems.append(f"accumulators tm x {conv_tile_side(d)}^2 x 4 = {a} bytes > "
                        f"ofm_buffer_bytes = {lim['fit_acc_bytes']}")
    return problems


def validate_descriptor(d: LayerDescriptor, cfg: Optional[EngineConfig] = None,
                        region_bytes: Optional[dict] = None) -> None:
    """Check every field of `d` against the format and the engine config; FormatError if not."""
    cfg = cfg or default_config()

    def bad(fname: str, msg: str) -> FormatError:
        return _error(f"descriptor field {fname}={getattr(d, fname)!r}: {msg}", field=fname)

    # raw field ranges (also protects pack from silent truncation)
    for f in DESCRIPTOR_FIELDS:
        if f.name in ("magic", "version"):
            continue
        v = getattr(d, f.name)
        if isinstance(v, bool) and f.width != 1:
            raise bad(f.name, "must be an integer")
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) <= f.mask:
            raise bad(f.name, f"out of range 0..{f.mask} ({f.width}-bit field)")
    if d.op not in OP_KINDS:
        raise bad("op", f"unknown op kind (known: {OP_KINDS})")
    if d.depthwise and not cfg.depthwise:
        raise bad("op", f"engine config '{cfg.name}' has no depthwise hardware ([features] "
                        f"depthwise = false): use a config with it for depthwise layers")
    if d.k not in KERNELS:
        raise bad("k", f"kernel must be one of {KERNELS}")
    if d.stride not in STRIDES:
        raise bad("stride", f"stride must be one of {STRIDES}")
    if d.pad > d.k // 2:
        raise bad("pad", f"must be 0..{d.k // 2} for k={d.k}")
    if not 1 <= d.shift <= 31:
        raise bad("shift", "must be 1..31 (round half up adds 2^(shift-1))")
    limits = (("in_h", "max_height"), ("out_h", "max_height"), ("in_w", "max_width"),
              ("out_w", "max_width"), ("in_c", "max_in_channels"),
              ("out_c", "max_out_channels"))
    for name, limit in limits:
        lim = getattr(cfg, limit)
        if not 1 <= getattr(d, name) <= lim:
            raise bad(name, f"must be 1..{lim} (engine config '{cfg.name}', {limit})")
    if d.in_h + 2 * d.pad < d.k or d.in_w + 2 * d.pad < d.k:
        raise bad("in_h", f"input {d.in_h}x{d.in_w} smaller than the {d.k}x{d.k} kernel")
    for name, size in (("out_h", d.in_h), ("out_w", d.in_w)):
        want = layer_out_size(size, d.k, d.stride, d.pad, d.maxpool)
        if getattr(d, name) != want:
            raise bad(name, f"k={d.k}, stride={d.stride}, pad={d.pad}, maxpool={d.maxpool} "
                            f"give {want}")
    # flags
    if d.relu != (not d.out_signed):
        raise bad("relu", "must equal NOT out_signed (the u8 clamp is the ReLU)")
    if d.res_signed and not d.residual:
        raise bad("res_signed", "set without residual")
    if d.residual and d.maxpool:
        raise bad("maxpool", "a fused max-pool cannot take a residual")
    if d.maxpool and (d.tile_gated or d.in_ch_gated or d.out_ch_gated):
        raise bad("maxpool", "the fused max-pool is supported on dense layers only")
    if d.zero_halo and not d.tile_gated:
        raise bad("zero_halo", "needs tile_gated (the bitmap comes with the tile list)")
    if d.zero_halo and (d.maxpool or (-(-d.in_h // d.stride), -(-d.in_w // d.stride))
                        != (d.out_h, d.out_w)):
        raise bad("zero_halo", f"needs the input on the output's tile grid scaled by the "
                               f"stride (out = ceil(in / stride): in {d.in_h}x{d.in_w}, "
                               f"stride {d.stride}, out {d.out_h}x{d.out_w}; pad k//2)")
    if d.residual:
        if d.res_mult >= 1 << 31:
            raise bad("res_mult", "must be < 2^31")
    elif d.res_mult:
        raise bad("res_mult", "must be 0 without residual")
    if d.in_place:
        if not d.residual or not d.tile_gated:
            raise bad("in_place", "needs residual and tile_gated (identity block output)")
        if d.out_ch_gated or d.out_offset != d.res_offset:
            raise bad("in_place", "output must be the full residual buffer (out_offset == res_offset)")
        if d.n_res_tiles:
            raise bad("n_res_tiles", "must be 0 in place (inactive tiles already hold y = x)")
    if d.from_gate:
        if not d.tile_gated:
            raise bad("from_gate", "needs tile_gated (the gate's tile list)")
        if d.n_res_tiles:
            raise bad("n_res_tiles", "must be 0 with from_gate (the gate record sets it)")
    if d.im2col and (d.k == 1 or d.in_ch_gated or d.zero_halo):
        raise bad("im2col", "; ".join(im2col_fit_problems(d, cfg)))
    if d.pixel_sums and not d.emit_sums:
        raise bad("pixel_sums", "needs emit_sums (it says where the sums go)")
    if d.depthwise:
        _check_depthwise(d, bad)
    # tiles and counts
    if not 1 <= d.tile <= cfg.max_tile:
        raise bad("tile", f"must be 1..{cfg.max_tile}")
    for name, size in (("grid_h", d.out_h), ("grid_w", d.out_w)):
        want = -(-size // d.tile)
        if getattr(d, name) != want:
            raise bad(name, f"must be ceil({size}/{d.tile}) = {want}")
        if want > cfg.max_grid:
            raise bad(name, f"exceeds max_grid={cfg.max_grid}; use a larger tile")
    if d.tile_gated:
        if d.n_active_tiles > d.n_tiles:
            raise bad("n_active_tiles", f"more than the {d.n_tiles} tiles of the grid")
    elif d.n_active_tiles != d.n_tiles:
        raise bad("n_active_tiles", f"must be grid_h*grid_w = {d.n_tiles} when not tile_gated")
    if d.n_res_tiles:
        if not (d.residual and d.tile_gated):
            raise bad("n_res_tiles", "residual-only tiles need residual and tile_gated")
        if d.n_active_tiles + d.n_res_tiles > d.n_tiles:
            raise bad("n_res_tiles", f"active + residual-only tiles exceed {d.n_tiles}")
    for gated, name, full in (("out_ch_gated", "n_active_out", d.out_c),
                              ("in_ch_gated", "n_active_in", d.in_c)):
        n = getattr(d, name)
        if getattr(d, gated):
            if n > full:
                raise bad(name, f"more than the layer's {full} channels")
        elif n != full:
            raise bad(name, f"must be {full} when {gated} is 0")
    # offsets: unused ones are 0, used ones aligned and inside their region
    used = {name for _, name, _, _ in descriptor_buffers(d, cfg)}
    for name in OFFSET_FIELDS:
        v = getattr(d, name)
        if name not in used and v != 0:
            raise bad(name, "must be 0 (the buffer is not used by this layer)")
        if v % cfg.axi_bytes:
            raise bad(name, f"not aligned to {cfg.axi_bytes} bytes (axi_data_bits="
                            f"{cfg.axi_data_bits})")
    for region, name, off, nbytes in descriptor_buffers(d, cfg):
        if off + nbytes > 0xFFFFFFFF + 1:
            raise bad(name, f"buffer of {nbytes} bytes runs past 4 GiB")
        if region_bytes is not None and region in region_bytes:
            if off + nbytes > region_bytes[region]:
                raise bad(name, f"buffer [{off}, {off + nbytes}) outside the {region} region "
                                f"of {region_bytes[region]} bytes")
    ins, outs = (d.in_offset, d.in_h * d.in_w * d.in_c_stored), \
        (d.out_offset, d.out_h * d.out_w * d.out_c_stored)
    if _overlap(ins, outs):
        raise bad("out_offset", "output overlaps the input (halo reads would see new data)")
    if d.residual and not d.in_place:
        if _overlap((d.res_offset, d.out_h * d.out_w * d.out_c), outs):
            raise bad("out_offset", "output overlaps the residual without in_place")
    problems = layer_fit_problems(d, cfg)
    if problems:
        raise _error(f"descriptor field tile={d.tile}: layer does not fit engine '{cfg.name}': "
                     f"{'; '.join(problems)}", field="tile", no_fit=True)
    if d.im2col:
        problems = im2col_fit_problems(d, cfg)
        if problems:
            raise bad("im2col", "the im2col buffers do not fit engine "
                                f"'{cfg.name}': {'; '.join(problems)} (clear the flag)")


def _check_depthwise(d: LayerDescriptor, bad) -> None:
    """The depthwise rules (docs/formats.md "Depthwise layers"), after the flag rules."""
    if d.k not in DW_KERNELS:
        raise bad("k", f"a depthwise layer has k in {DW_KERNELS}")
    if d.out_c != d.in_c:
        raise bad("out_c", f"a depthwise layer has out_c = in_c ({d.in_c})")
    for flag in ("residual", "maxpool", "im2col"):
        if getattr(d, flag):
            raise bad(flag, "not supported on a depthwise layer")
    if d.in_ch_gated != d.out_ch_gated:
        raise bad("in_ch_gated", "a depthwise layer is gated on both sides or on neither "
                                 "(the out-channel list is its in-channel list)")
    if d.n_active_in != d.n_active_out:
        raise bad("n_active_in", f"must equal n_active_out ({d.n_active_out}) on a depthwise "
                                 "layer")


def _error(msg: str, field: Optional[str] = None, entry: Optional[int] = None,
           no_fit: bool = False) -> FormatError:
    """A FormatError that also carries what the engine's STATUS would name.

    `field`: the descriptor field (or work-list section) at fault; `entry`: the index of
    the faulty list entry; `no_fit`: the layer is valid but too big for the buffers.
    """
    exc = FormatError(msg)
    exc.field, exc.entry, exc.no_fit = field, entry, no_fit
    return exc


def _overlap(a: tuple, b: tuple) -> bool:
    (ao, an), (bo, bn) = a, b
    return an > 0 and bn > 0 and ao < bo + bn and bo < ao + an


# --------------------------------------------------------------------------------------
# Work lists
# --------------------------------------------------------------------------------------
def bitmap_bytes(n_tiles: int) -> int:
    """Bytes of a tile bitmap: u32 words, tile i at word i//32, bit i%32."""
    return 4 * ((n_tiles + 31) // 32)


def pack_u16_list(values: Sequence[int]) -> bytes:
    """u16 little-endian, in order. Callers pass strictly increasing indices."""
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() > 0xFFFF):
        raise FormatError(f"u16 list: value out of 0..65535 in {arr.tolist()[:8]}")
    return arr.astype("<u2").tobytes()


def _work_error(msg: str, code: str, entry: int, what: str) -> FormatError:
    """A work-list fault: `code` is the STATUS code name the engine reports
    (regmap.ERROR_CODES), `entry` its ENTRY (list index or bitmap bit)."""
    exc = _error(msg, field=what, entry=entry)
    exc.code = code
    return exc


def _check_u16(arr: np.ndarray, limit: int, what: str, range_code: str,
               order_code: str) -> None:
    """Every index < `limit` and strictly increasing. The engine walks the list once, so
    the earliest faulty entry is the one reported (range before order at the same entry)."""
    over = np.flatnonzero(arr >= limit)
    order = np.flatnonzero(np.diff(arr) <= 0) + 1
    i_over = int(over[0]) if over.size else None
    i_order = int(order[0]) if order.size else None
    if i_over is not None and (i_order is None or i_over <= i_order):
        raise _work_error(f"{what}[{i_over}] = {int(arr[i_over])} out of range "
                          f"0..{limit - 1}", range_code, i_over, what)
    if i_order is not None:
        i = i_order
        raise _work_error(f"{what}[{i}] = {int(arr[i])} after {int(arr[i - 1])}: indices "
                          "must be strictly increasing (no duplicates)", order_code, i, what)


def unpack_u16_list(data, count: int, limit: int, what: str) -> np.ndarray:
    """`count` u16 indices from the start of `data`; each < `limit`, strictly increasing."""
    data = _bytes_like(data, what)
    if count < 0 or len(data) < 2 * count:
        raise FormatError(f"{what}: needs {2 * count} bytes for {count} entries, have {len(data)}")
    arr = np.frombuffer(data[:2 * count], dtype="<u2").astype(np.int64)
    range_code, order_code = ("CHANNEL_RANGE", "CHANNEL_ORDER") if "channel" in what \
        else ("TILE_RANGE", "TILE_ORDER")
    _check_u16(arr, limit, what, range_code, order_code)
    return arr.astype(np.uint16)


def pack_bitmap(active_tiles: Sequence[int], n_tiles: int) -> bytes:
    """Bitmap with the listed tiles set."""
    bits = np.zeros(32 * ((n_tiles + 31) // 32), dtype=np.uint8)
    idx = np.asarray(active_tiles, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n_tiles):
        raise FormatError(f"tile bitmap: tile index out of range 0..{n_tiles - 1}")
    bits[idx] = 1
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_bitmap(data, n_tiles: int, what: str = "tile bitmap") -> np.ndarray:
    """Bool array [n_tiles]; bits past n_tiles must be zero."""
    data = _bytes_like(data, what)
    nb = bitmap_bytes(n_tiles)
    if len(data) < nb:
        raise FormatError(f"{what}: needs {nb} bytes for {n_tiles} tiles, have {len(data)}")
    bits = np.unpackbits(np.frombuffer(data[:nb], dtype=np.uint8), bitorder="little")
    pad = np.nonzero(bits[n_tiles:])[0]
    if pad.size:
        t = n_tiles + int(pad[0])
        raise _work_error(f"{what}: bit {t} set past the {n_tiles} tiles", "BITMAP_MISMATCH",
                          t, what)
    return bits[:n_tiles].astype(bool)


@dataclass(frozen=True)
class WorkList:
    """The per-image, per-layer work list (numpy arrays of indices, row-major tile ids)."""
    tiles: np.ndarray                      # active output tiles (u16)
    res_tiles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint16))
    out_channels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint16))
    in_channels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint16))
    bitmap: Optional[np.ndarray] = None    # bool [n_tiles], for zero_halo


@dataclass(frozen=True)
class WorkSlots:
    """Where one layer's work-list sections live in the WORK region: fixed offsets, each
    section sized for the densest list the layer can have, so a slot is laid out once per
    layer (packer) and only filled per image (scheduler)."""
    tiles: int
    res_tiles: int
    out_ch: int
    in_ch: int
    bitmap: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.tiles


def work_slots(d: LayerDescriptor, base_offset: int, align: int) -> WorkSlots:
    """The slot layout of layer `d` at `base_offset` (sections aligned to `align` bytes):
    active tiles, residual-only tiles (both always reserved), then the out-channel list,
    the in-channel list and the bitmap when the layer has them."""
    if base_offset % align:
        raise FormatError(f"work list base offset {base_offset} not aligned to {align}")

    def up(n: int) -> int:
        return -(-n // align) * align
    e = LIST_ENTRY_BYTES
    tiles = base_offset
    res = tiles + up(e * d.n_tiles)
    out_ch = res + up(e * d.n_tiles)
    in_ch = out_ch + (up(e * d.out_c) if d.out_ch_gated else 0)
    bitmap = in_ch + (up(e * d.in_c) if d.in_ch_gated and not getattr(d, "depthwise", False) else 0)
    end = bitmap + (up(bitmap_bytes(d.n_tiles)) if d.zero_halo else 0)
    return WorkSlots(tiles, res, out_ch, in_ch, bitmap, end)


_EMPTY_U16 = np.zeros(0, "<u2")


def encode_work_list(d: LayerDescriptor, slots: WorkSlots, tiles,
                     res_tiles=None, out_channels=None, in_channels=None
                     ) -> tuple[dict, list[tuple[int, np.ndarray]]]:
    """THE work-list writer (the scheduler, the vectors and the calibration all use it).

    Lays the lists of layer `d` into `slots`; returns (descriptor fields: counts and
    work-list offsets, [(WORK offset, uint8 bytes)] to write). Sections the layer does not
    have are left out (their offsets stay 0); an empty residual-only list has offset 0.
    Indices are written as given: `read_work_list` is the check.
    """
    fields: dict = {}
    writes: list = []

    def u16(values) -> np.ndarray:
        return np.ascontiguousarray(_EMPTY_U16 if values is None else values, dtype="<u2").reshape(-1)

    t = u16(tiles)
    if d.tile_gated:
        fields["n_active_tiles"] = int(t.size)
        fields["tile_list_offset"] = slots.tiles
        writes.append((slots.tiles, t.view(np.uint8)))
    r = u16(res_tiles)
    fields["n_res_tiles"] = int(r.size)
    fields["res_tile_list_offset"] = slots.res_tiles if r.size else 0
    if r.size:
        writes.append((slots.res_tiles, r.view(np.uint8)))
    if d.out_ch_gated:
        oc = u16(out_channels)
        fields["n_active_out"] = int(oc.size)
        fields["out_ch_list_offset"] = slots.out_ch
        writes.append((slots.out_ch, oc.view(np.uint8)))
    if d.in_ch_gated and getattr(d, "depthwise", False):       # a depthwise layer reads its out list
        fields["n_active_in"] = fields["n_active_out"]
    elif d.in_ch_gated:
        ic = u16(in_channels)
        fields["n_active_in"] = int(ic.size)
        fields["in_ch_list_offset"] = slots.in_ch
        writes.append((slots.in_ch, ic.view(np.uint8)))
    if d.zero_halo:
        bits = np.zeros(8 * bitmap_bytes(d.n_tiles), dtype=bool)
        bits[t.astype(np.int64)] = True
        fields["bitmap_offset"] = slots.bitmap
        writes.append((slots.bitmap, np.packbits(bits, bitorder="little")))
    return fields, writes


def _section(blob: bytes, off: int, nbytes: int, what: str) -> bytes:
    if off < 0 or off + nbytes > len(blob):
        raise _work_error(f"{what}: [{off}, {off + nbytes}) outside the work region of "
                          f"{len(blob)} bytes", "BAD_OFFSET", 0, what)
    return blob[off:off + nbytes]


def read_work_list(d: LayerDescriptor, work_region) -> WorkList:
    """THE work-list validator (the interpreter, the scheduler's and the host's checks, the
    vectors): read layer `d`'s lists from the WORK region bytes as the engine does.

    Raises FormatError with `.code` (the STATUS code name the engine reports) and `.entry`
    (the faulty list entry, or bitmap bit): an index >= its count (TILE_RANGE /
    CHANNEL_RANGE), not strictly increasing (TILE_ORDER / CHANNEL_ORDER; a tile both active
    and residual-only is TILE_ORDER at entry 0), a bitmap bit that disagrees with the tile
    list, padding bits included (BITMAP_MISMATCH), a section outside the region
    (BAD_OFFSET). Lists are checked in order: tiles, residual-only, out, in, bitmap.
    """
    blob = _bytes_like(work_region, "work region")
    n = d.n_tiles
    empty = np.zeros(0, np.uint16)
    if d.tile_gated:
        tiles = unpack_u16_list(_section(blob, d.tile_list_offset, 2 * d.n_active_tiles,
                                         "tile list"), d.n_active_tiles, n, "tile list")
    else:
        tiles = np.arange(n, dtype=np.uint16)
    res = empty
    if d.n_res_tiles:
        res = unpack_u16_list(_section(blob, d.res_tile_list_offset, 2 * d.n_res_tiles,
                                       "residual-only tile list"),
                              d.n_res_tiles, n, "residual-only tile list")
        common = np.intersect1d(tiles, res)
        if common.size:
            raise _work_error(f"residual-only tile list: tile {int(common[0])} is also active",
                              "TILE_ORDER", 0, "residual-only tile list")
    outc = empty
    if d.out_ch_gated:
        outc = unpack_u16_list(_section(blob, d.out_ch_list_offset, 2 * d.n_active_out,
                                        "out-channel list"), d.n_active_out, d.out_c,
                               "out-channel list")
    inc = empty
    if d.in_ch_gated and d.depthwise:       # one list for both sides
        inc = outc
    elif d.in_ch_gated:
        inc = unpack_u16_list(_section(blob, d.in_ch_list_offset, 2 * d.n_active_in,
                                       "in-channel list"), d.n_active_in, d.in_c,
                              "in-channel list")
    bitmap = None
    if d.zero_halo:
        nb = bitmap_bytes(n)
        raw = np.frombuffer(_section(blob, d.bitmap_offset, nb, "tile bitmap"), np.uint8)
        bits = np.unpackbits(raw, bitorder="little").astype(bool)
        want = np.zeros(bits.size, bool)
        want[tiles.astype(np.int64)] = True
        diff = np.flatnonzero(want != bits)
        if diff.size:           # the engine compares word by word: the first differing bit
            t = int(diff[0])
            msg = (f"tile bitmap: bit {t} set past the {n} tiles" if t >= n else
                   f"tile bitmap: bit {t} is {int(bits[t])} but tile {t} is "
                   f"{'' if want[t] else 'not '}in the tile list")
            raise _work_error(msg, "BITMAP_MISMATCH", t, "tile bitmap")
        bitmap = bits[:n]
    return WorkList(tiles, res, outc, inc, bitmap)


def pack_work_list(d: LayerDescriptor, wl: WorkList, base_offset: int,
                   cfg: Optional[EngineConfig] = None) -> tuple[bytes, LayerDescriptor]:
    """`encode_work_list` into a slot at `base_offset` (`work_slots`), as one blob.

    Returns the slot's bytes (to write at `base_offset`) and `d` with the counts and the
    work-list offsets filled in.
    """
    cfg = cfg or default_config()
    slots = work_slots(d, base_offset, cfg.axi_bytes)
    fields, writes = encode_work_list(d, slots, wl.tiles, wl.res_tiles, wl.out_channels,
                                      wl.in_channels)
    blob = np.zeros(slots.nbytes, np.uint8)
    for off, data in writes:
        blob[off - base_offset:off - base_offset + data.size] = data
    return blob.tobytes(), d.replace(**fields)


# --------------------------------------------------------------------------------------
# Feature maps, weights, params
# --------------------------------------------------------------------------------------
def fmap_bytes(h: int, w: int, c: int) -> int:
    """Bytes of an HWC feature map (one byte per element, channels innermost)."""
    return h * w * c


def pack_fmap(fm: np.ndarray) -> bytes:
    """HWC int8 or uint8 array -> bytes (row-major: pixel (y, x) channel c at (y*W+x)*C+c)."""
    fm = np.asarray(fm)
    if fm.ndim != 3 or fm.dtype not in (np.int8, np.uint8):
        raise FormatError(f"feature map: need an HWC int8/uint8 array, got {fm.dtype} {fm.shape}")
    return np.ascontiguousarray(fm).tobytes()


def unpack_fmap(data, h: int, w: int, c: int, signed: bool) -> np.ndarray:
    """Bytes -> HWC array (int8 if signed else uint8); length must be exactly h*w*c."""
    data = _bytes_like(data, "feature map")
    if len(data) != h * w * c:
        raise FormatError(f"feature map: {len(data)} bytes, expected {h}x{w}x{c} = {h * w * c}")
    return np.frombuffer(data, dtype=np.int8 if signed else np.uint8).reshape(h, w, c).copy()


def compact_channels(fm: np.ndarray, channels: Sequence[int]) -> np.ndarray:
    """Compact channel buffer: only the active channels, in list order (gated intermediates)."""
    return np.ascontiguousarray(np.asarray(fm)[..., np.asarray(channels, dtype=np.int64)])


def expand_channels(compact: np.ndarray, channels: Sequence[int], c: int) -> np.ndarray:
    """Inverse of compact_channels: inactive channels are zero."""
    compact = np.asarray(compact)
    out = np.zeros(compact.shape[:-1] + (c,), dtype=compact.dtype)
    out[..., np.asarray(channels, dtype=np.int64)] = compact
    return out


WEIGHT_LAYOUTS = ("oc_k_k_ic", "ic_g_k_k_m", "im2col", "dw")


def _im2col_row(c_in: int, k: int, tn: Optional[int]) -> int:
    if tn is None:
        raise FormatError("weights: the im2col layout needs tn (the engine's input lanes)")
    return -(-(k * k * c_in) // tn) * tn


#: The reference RTL's loader reads an ic_g_k_k_m input channel's k*k rows of one m-group
#: as ONE read command when the rows are whole beats and at most this many (its weight beat
#: FIFO holds two such reads); otherwise one command per kernel position (`ic_weight_run_beats`).
WEIGHT_RUN_MAX_BEATS = 32


def ic_weight_run_beats(m_g: int, kk: int, out_c: int, cfg: EngineConfig) -> int:
    """Beats of the one read command an ic_g_k_k_m layer's active input channel takes for an
    m-group of `m_g` lanes (its k*k rows of m_g bytes, contiguous), or 0 when the loader
    reads one command per kernel position instead: the rows must start and end on beats
    (tm, m_g and an in-channel's k*k*out_c bytes multiples of the AXI beat, so every run's
    offset is too) and fit WEIGHT_RUN_MAX_BEATS. (sim/rtl/dg_loader.sv's span issue; the
    cycle model's weights.)"""
    AB = cfg.axi_bytes
    if cfg.tm % AB or m_g % AB or (kk * out_c) % AB or m_g <= 0:
        return 0
    beats = kk * m_g // AB
    return beats if beats <= WEIGHT_RUN_MAX_BEATS else 0


def _ic_groups(c_out: int, tm: Optional[int]) -> list:
    """The ic_g_k_k_m layout's m-groups: (first output channel, lanes) per group of `tm`."""
    if tm is None:
        raise FormatError("weights: the ic_g_k_k_m layout needs tm (the engine's output lanes)")
    return [(m0, min(tm, c_out - m0)) for m0 in range(0, c_out, tm)]


def pack_weights(w_oihw: np.ndarray, layout: str, tn: Optional[int] = None,
                 tm: Optional[int] = None) -> bytes:
    """PyTorch-order int8 weights [C_out][C_in][k][k] -> the engine's weight stream.

    'oc_k_k_ic': [C_out][k][k][C_in] (conv1, dense layers: an active output channel is one
    burst); 'ic_g_k_k_m': [C_in][G][k][k][m_g] with G = ceil(C_out / tm) m-groups of
    m_g = min(tm, C_out - g*tm) output channels (conv2, input-gated only: an active input
    channel's weights for one m-group, all kernel positions, are one contiguous run of
    k*k*m_g bytes, one burst when m_g is whole beats; the same bytes as [C_in][k][k][C_out],
    only in that order); 'im2col': [C_out][k*k*C_in flattened (ky, kx, c), zero-padded to a
    multiple of `tn`] (im2col layers: one array step reads tn consecutive bytes of an output
    channel's row); 'dw': [C][k*k taps padded to tn].
    """
    w = np.asarray(w_oihw)
    if w.ndim != 4 or w.dtype != np.int8 or w.shape[2] != w.shape[3]:
        raise FormatError(f"weights: need int8 [C_out][C_in][k][k], got {w.dtype} {w.shape}")
    if layout == "dw":
        if w.shape[1] != 1:
            raise FormatError(f"weights: the dw layout takes [C][1][k][k], got {w.shape}")
    if layout in ("im2col", "dw"):
        co, ci, k, _ = w.shape
        row = _im2col_row(ci, k, tn)
        out = np.zeros((co, row), np.int8)
        out[:, :k * k * ci] = w.transpose(0, 2, 3, 1).reshape(co, -1)
        return out.tobytes()
    if layout == "oc_k_k_ic":
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).tobytes()
    if layout == "ic_g_k_k_m":
        ikko = w.transpose(1, 2, 3, 0)                      # [C_in][k][k][C_out]
        blocks = [ikko[..., m0:m0 + mg].reshape(w.shape[1], -1)
                  for m0, mg in _ic_groups(w.shape[0], tm)]
        return (np.ascontiguousarray(np.concatenate(blocks, axis=1)).tobytes()
                if blocks else b"")
    raise FormatError(f"weights: unknown layout {layout!r} (known: {WEIGHT_LAYOUTS})")


def unpack_weights(data, c_out: int, c_in: int, k: int, layout: str,
                   tn: Optional[int] = None, tm: Optional[int] = None) -> np.ndarray:
    """Weight stream -> int8 [C_out][C_in][k][k] (`tn` for the im2col and dw layouts, `tm`
    for ic_g_k_k_m)."""
    data = _bytes_like(data, "weights")
    if layout == "dw" and c_in != 1:   # [C][k*k taps padded to tn]
        raise FormatError(f"weights: the dw layout has one input channel per output channel "
                          f"(c_in 1), got c_in {c_in}")
    if layout in ("im2col", "dw"):
        row = _im2col_row(c_in, k, tn)
        if len(data) != c_out * row:
            raise FormatError(f"weights: {len(data)} bytes, expected {c_out} x {row} (im2col "
                              f"rows of {k}x{k}x{c_in} padded to {tn})")
        a = np.frombuffer(data, dtype=np.int8).reshape(c_out, row)
        return a[:, :k * k * c_in].reshape(c_out, k, k, c_in).transpose(0, 3, 1, 2).copy()
    if layout not in WEIGHT_LAYOUTS:
        raise FormatError(f"weights: unknown layout {layout!r} (known: {WEIGHT_LAYOUTS})")
    n = c_out * c_in * k * k
    if len(data) != n:
        raise FormatError(f"weights: {len(data)} bytes, expected {c_out}x{c_in}x{k}x{k} = {n}")
    a = np.frombuffer(data, dtype=np.int8)
    if layout == "oc_k_k_ic":
        return a.reshape(c_out, k, k, c_in).transpose(0, 3, 1, 2).copy()
    rows = a.reshape(c_in, k * k * c_out)                   # ic_g_k_k_m
    ikko = np.empty((c_in, k, k, c_out), np.int8)
    for m0, mg in _ic_groups(c_out, tm):
        ikko[..., m0:m0 + mg] = rows[:, k * k * m0:k * k * (m0 + mg)].reshape(c_in, k, k, mg)
    return ikko.transpose(3, 0, 1, 2).copy()


def pack_layer_weights(w_oihw: np.ndarray, d: "LayerDescriptor", cfg: EngineConfig) -> bytes:
    """`pack_weights` of a layer in its descriptor's layout (`d.weight_layout`) on `cfg`."""
    return pack_weights(w_oihw, d.weight_layout, tn=cfg.tn, tm=cfg.tm)


def read_layer_weights(region, d: "LayerDescriptor", cfg: EngineConfig) -> np.ndarray:
    """A layer's int8 weights [C_out][C_in][k][k] from the weight region (its stream at
    weight_offset, `weight_stream_bytes` long, in `d.weight_layout`)."""
    r = np.asarray(region, np.uint8)
    return unpack_weights(
        r[d.weight_offset:d.weight_offset + weight_stream_bytes(d, cfg)].tobytes(),
        d.out_c, 1 if d.depthwise else d.in_c, d.k, d.weight_layout, tn=cfg.tn, tm=cfg.tm)


def pack_params(bias: np.ndarray, mult: np.ndarray) -> bytes:
    """Per output channel: bias int32 then mult int32 (one 64-bit word per channel)."""
    bias, mult = np.asarray(bias, np.int64), np.asarray(mult, np.int64)
    if bias.shape != mult.shape or bias.ndim != 1:
        raise FormatError(f"params: bias {bias.shape} and mult {mult.shape} must be equal 1-D")
    if bias.size and (bias.min() < -(1 << 31) or bias.max() >= 1 << 31):
        raise FormatError("params: bias out of int32 range")
    if mult.size and (mult.min() < -(1 << 31) or mult.max() >= 1 << 31):
        raise FormatError("params: mult out of int32 range")
    return np.stack([bias, mult], axis=1).astype("<i4").tobytes()


def unpack_params(data, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Params bytes -> (bias int32 [c], mult int32 [c]).

    Every 32-bit pattern is a valid param: bias and mult are both signed int32 and every
    level multiplies signed (a word >= 2^31 is a negative multiplier, not a fault; the
    quantizer writes 0 <= mult < 2^31). Only the length is checked.
    """
    data = _bytes_like(data, "params")
    if len(data) != c * PARAM_BYTES:
        raise FormatError(f"params: {len(data)} bytes, expected {c} x {PARAM_BYTES}")
    a = np.frombuffer(data, dtype="<i4").reshape(c, 2)
    return a[:, 0].astype(np.int32), a[:, 1].astype(np.int32)


# --------------------------------------------------------------------------------------
# Per-tile channel sums and pooling bins
# --------------------------------------------------------------------------------------
def tile_sums_bytes(grid_h: int, grid_w: int, c: int) -> int:
    return grid_h * grid_w * c * SUM_BYTES


def pack_tile_sums(sums: np.ndarray) -> bytes:
    """int32 [grid_h][grid_w][C] -> bytes ([tile][C], tiles row-major)."""
    s = np.asarray(sums)
    if s.ndim != 3:
        raise FormatError(f"tile sums: need [grid_h][grid_w][C], got shape {s.shape}")
    return s.astype("<i4").tobytes()


def unpack_tile_sums(data, grid_h: int, grid_w: int, c: int) -> np.ndarray:
    """Bytes -> int32 [grid_h][grid_w][C]; length must match exactly."""
    data = _bytes_like(data, "tile sums")
    n = tile_sums_bytes(grid_h, grid_w, c)
    if len(data) != n:
        raise FormatError(f"tile sums: {len(data)} bytes, expected {grid_h}x{grid_w}x{c}x4 = {n}")
    return np.frombuffer(data, dtype="<i4").reshape(grid_h, grid_w, c).astype(np.int32)


def tile_pixel_sums(fm: np.ndarray, tile: int) -> np.ndarray:
    """Reference for the engine's side output: int32 [gh][gw][C] sums of each tile of fm."""
    fm = np.asarray(fm, dtype=np.int64)
    h, w, c = fm.shape
    gh, gw = -(-h // tile), -(-w // tile)
    out = np.zeros((gh, gw, c), dtype=np.int64)
    for ty in range(gh):
        for tx in range(gw):
            out[ty, tx] = fm[ty * tile:(ty + 1) * tile, tx * tile:(tx + 1) * tile].sum(axis=(0, 1))
    return out.astype(np.int32)


def pool_bins(size: int, bins: int) -> list[tuple[int, int]]:
    """Adaptive-average-pool bins (PyTorch / official code): [floor(i*H/g), ceil((i+1)*H/g)).
    The one definition: the gates (`dgfpga.numerics.gates`) and the docs tables use it."""
    if size < 1 or bins < 1:
        raise FormatError(f"pool bins: sizes must be positive, got size={size}, bins={bins}")
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]
