"""Records of a network program: conv descriptors, gate records, head records (torch-free).

A program is `layer_count` records of DESCRIPTOR_WORDS little-endian u32 words. Word 0 of
every record carries the magic (7:0), FORMAT_VERSION (15:8) and the op (19:16):

- `OP_CONV`: the layer descriptor (`dgfpga.contract.formats.DESCRIPTOR_FIELDS`); with the
  `from_gate` flag it takes its per-image counts from the last gate record of the start
  (`effective_descriptor`).
- `OP_GATE`: evaluate one block's spatial and channel gates in integer arithmetic from the
  per-tile sums of its input (`GATE_FIELDS`), write the masks and the block's work lists.
- `OP_HEAD`: global sum pool of the last block's sums, int8 fc + int32 bias -> int64
  logits, then the per-record cycle log (`HEAD_FIELDS`); the last record of a start.
- `OP_GATE2`: a Bottleneck block's second channel gate (mask_c2) from conv1's masked
  output: its compact per-tile sums over the active tiles (`GATE2_FIELDS`); it writes
  conv2's out-channel and conv3's in-channel lists and sets the count `nc2` that the
  following `from_gate` layers use (`effective_descriptor`).

Everything here is the one definition: the interpreter (`dgfpga.runtime.interpreter`), the
packer, the generated C header / SV include (`dgfpga gen`) and docs/formats.md use it.
Every unpacker validates and raises `FormatError` carrying `.code` (the STATUS code name,
`regmap.ERROR_CODES`) and `.entry` (the STATUS ENTRY: the record word of the faulty field,
or the index of a bad entry within its parameter section).
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dgfpga.contract import formats
from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.contract.formats import (DESC_MAGIC, DESCRIPTOR_BYTES, DESCRIPTOR_WORDS,
                                     FORMAT_VERSION, OP_CONV, OP_DWCONV, DescField,
                                     LayerDescriptor)
from dgfpga.errors import FormatError

__all__ = [
    "OP_CONV", "OP_DWCONV", "OP_GATE", "OP_HEAD", "OP_GATE2", "RECORD_OPS", "RUN_DENSE", "MAX_CLASSES",
    "GATE_FRAC_BITS", "GATE_RECIP_BITS", "GATE_WEIGHT_MAX", "GATE_HIDDEN_MAX",
    "GATE_BIAS_LIMIT", "GATE_SHIFT_MAX", "GATE_RECIP_MAX",
    "GATE_FIELDS", "HEAD_FIELDS", "GATE_FIELD_ERROR", "HEAD_FIELD_ERROR",
    "GateRecord", "HeadRecord", "record_op", "pack_gate_record", "unpack_gate_record",
    "pack_head_record", "unpack_head_record", "gate_record_sections", "head_record_sections",
    "GateParamLayout", "gate_param_layout", "pack_gate_params", "unpack_gate_params",
    "GateParams", "check_gate_params", "HeadParamLayout", "head_param_layout",
    "pack_head_params", "unpack_head_params",
    "mask_bytes", "encode_masks", "decode_masks", "effective_descriptor", "record_error",
    "GATE_PARAM_SECTIONS", "cycle_log_bytes", "gate_work_writes", "validate_gate_record",
    "validate_head_record",
    "GATE2_FIELDS", "GATE2_FIELD_ERROR", "Gate2Record", "pack_gate2_record",
    "unpack_gate2_record", "validate_gate2_record", "gate2_record_sections",
    "GATE2_PARAM_SECTIONS", "Gate2Params", "gate2_param_layout", "pack_gate2_params",
    "unpack_gate2_params", "check_gate2_params", "gate2_work_writes", "read_gate2_inputs",
    "GATE2_IN_MASK_WORD",
]

# ---- ops, run flags ----------------------------------------------------------------------
OP_GATE = 2
OP_HEAD = 3
OP_GATE2 = 4                        # a Bottleneck block's second channel gate (mask_c2)
# OP_DWCONV (formats): a depthwise conv descriptor (MobileNetV2), pending in the engines
# (formats.PENDING_OPS: they report BAD_OP, ENTRY 0)
RECORD_OPS = {OP_CONV: "conv", OP_GATE: "gate", OP_HEAD: "head", OP_GATE2: "gate2",
              OP_DWCONV: "dwconv"}
RUN_DENSE = 1                       # RUN_FLAGS bit 0: every gate on, no gate evaluation
MAX_CLASSES = 1024                  # head classes limit

# ---- integer gates (docs/quantization.md; dgfpga.numerics.gates computes them) ----------
GATE_FRAC_BITS = 8                  # F: fractional bits of pooled values
GATE_RECIP_BITS = 24                # RB: R(n) = (2^RB + n//2) // n
GATE_RECIP_MAX = 1 << GATE_RECIP_BITS   # largest valid reciprocal (n = 1)
GATE_WEIGHT_MAX = 32767             # gate weights: int16 in [-32767, 32767]
GATE_HIDDEN_MAX = 32767             # channel-gate hidden units after the ReLU clamp
GATE_BIAS_LIMIT = 1 << 46           # |bias|, |o1|, |b2| < this
GATE_SHIFT_MAX = 62                 # channel-gate hidden requant shift: 1..62


def _f(name, word, lsb, width, meaning):
    return DescField(name, word, lsb, width, meaning)


_HEADER_FIELDS = (
    _f("magic", 0, 0, 8, f"0x{DESC_MAGIC:02X}"),
    _f("version", 0, 8, 8, "FORMAT_VERSION"),
    _f("op", 0, 16, 4, "op kind"),
)

GATE_FIELDS = _HEADER_FIELDS + (
    _f("in_c", 1, 0, 16, "C_in of the block input (spatial and channel gate inputs)"),
    _f("out_c", 1, 16, 16, "conv1's output channels (channel gate outputs)"),
    _f("hidden", 2, 0, 16, "channel gate hidden units, 1..in_c"),
    _f("h_shift", 2, 16, 6, f"channel gate hidden requant shift, 1..{GATE_SHIFT_MAX}"),
    _f("st_h", 3, 0, 8, "sum-tile rows of the input's SUMS buffer"),
    _f("st_w", 3, 8, 8, "sum-tile columns"),
    _f("gh", 3, 16, 8, "the block's tile rows (spatial mask grid = conv1/conv2 grid)"),
    _f("gw", 3, 24, 8, "the block's tile columns"),
    _f("res_list", 4, 0, 1, "conv2 has a residual-only list (downsample blocks)"),
    _f("sums_offset", 5, 0, 32, "SUMS: int32 [st_h][st_w][in_c], the block input's tile sums"),
    _f("param_offset", 6, 0, 32, "WEIGHT: the gate parameter blob"),
    _f("mask_offset", 7, 0, 32, "WORK: masks (tile bitmap, then channel bitmap)"),
    _f("c1_tiles_offset", 8, 0, 32, "WORK: conv1's tile list"),
    _f("c1_out_ch_offset", 9, 0, 32, "WORK: conv1's out-channel list"),
    _f("c2_tiles_offset", 10, 0, 32, "WORK: conv2's tile list"),
    _f("c2_res_tiles_offset", 11, 0, 32, "WORK: conv2's residual-only tile list (0 unless res_list)"),
    _f("c2_in_ch_offset", 12, 0, 32, "WORK: conv2's in-channel list"),
    _f("c2_bitmap_offset", 13, 0, 32, "WORK: conv2's tile bitmap"),
)
GATE_RESERVED_WORDS = tuple(range(14, DESCRIPTOR_WORDS))

HEAD_FIELDS = _HEADER_FIELDS + (
    _f("in_c", 1, 0, 16, "channels of the last block output"),
    _f("classes", 1, 16, 16, f"classes, 1..MAX_CLASSES ({MAX_CLASSES})"),
    _f("st_h", 2, 0, 8, "sum-tile rows of the last block output's SUMS buffer"),
    _f("st_w", 2, 8, 8, "sum-tile columns"),
    _f("sums_offset", 3, 0, 32, "SUMS: int32 [st_h][st_w][in_c] of the last block output"),
    _f("param_offset", 4, 0, 32, "WEIGHT: int8 W [classes][in_c], then (AXI-aligned) int32 bias [classes]"),
    _f("logits_offset", 5, 0, 32, "WORK: int64 logits [classes]"),
    _f("log_offset", 6, 0, 32, "WORK: u32 [layer_count] per-record cycle log"),
)
HEAD_RESERVED_WORDS = tuple(range(7, DESCRIPTOR_WORDS))

# The second channel gate of a Bottleneck block (official DGNet: mask_c2 is computed from
# conv1's *masked* output, so it is evaluated inside the block, after conv1). It reads the
# gate record's masks (which tiles and conv1 channels are on) and conv1's compact per-tile
# sums, and writes conv2's out-channel list and conv3's in-channel list.
GATE2_FIELDS = _HEADER_FIELDS + (
    _f("in_c", 1, 0, 16, "conv1's output channels (the gate's inputs; the gate record's out_c)"),
    _f("out_c", 1, 16, 16, "conv2's output channels (the gate's decisions)"),
    _f("hidden", 2, 0, 16, "hidden units, 1..in_c"),
    _f("h_shift", 2, 16, 6, f"hidden requant shift, 1..{GATE_SHIFT_MAX}"),
    _f("st_h", 3, 0, 8, "tile rows of conv1's grid (= the gate record's gh)"),
    _f("st_w", 3, 8, 8, "tile columns of conv1's grid (= the gate record's gw)"),
    _f("sums_offset", 4, 0, 32, "SUMS: conv1's compact int32 sums [st_h*st_w][n_active] (active channels in list order)"),
    _f("param_offset", 5, 0, 32, "WEIGHT: the gate-2 parameter blob"),
    _f("in_mask_offset", 6, 0, 32, "WORK: the gate record's masks (tile bitmap, then conv1's channel bitmap)"),
    _f("mask_offset", 7, 0, 32, "WORK: the mask_c2 channel bitmap it writes"),
    _f("c2_out_ch_offset", 8, 0, 32, "WORK: conv2's out-channel list"),
    _f("c3_in_ch_offset", 9, 0, 32, "WORK: conv3's in-channel list"),
)
GATE2_RESERVED_WORDS = tuple(range(10, DESCRIPTOR_WORDS))
GATE2_IN_MASK_WORD = 6             # padding bits set in the masks it reads: BAD_GATE here

_OFFSETS_GATE = tuple(f.name for f in GATE_FIELDS if f.name.endswith("_offset"))
_OFFSETS_HEAD = tuple(f.name for f in HEAD_FIELDS if f.name.endswith("_offset"))
_OFFSETS_GATE2 = tuple(f.name for f in GATE2_FIELDS if f.name.endswith("_offset"))

# STATUS code name of a fault in each field; ENTRY = the field's word. Reserved bits/words of
# a gate or head record: BAD_GATE at the word (word 4 of a gate record: BAD_FLAGS).
GATE_FIELD_ERROR = {
    "magic": "BAD_MAGIC", "version": "BAD_MAGIC", "op": "BAD_OP",
    "in_c": "BAD_SHAPE", "out_c": "BAD_SHAPE", "hidden": "BAD_SHAPE", "h_shift": "BAD_GATE",
    "st_h": "BAD_TILE", "st_w": "BAD_TILE", "gh": "BAD_TILE", "gw": "BAD_TILE",
    "res_list": "BAD_FLAGS", **{n: "BAD_OFFSET" for n in _OFFSETS_GATE},
}
HEAD_FIELD_ERROR = {
    "magic": "BAD_MAGIC", "version": "BAD_MAGIC", "op": "BAD_OP",
    "in_c": "BAD_SHAPE", "classes": "BAD_SHAPE", "st_h": "BAD_TILE", "st_w": "BAD_TILE",
    **{n: "BAD_OFFSET" for n in _OFFSETS_HEAD},
}
GATE2_FIELD_ERROR = {
    "magic": "BAD_MAGIC", "version": "BAD_MAGIC", "op": "BAD_OP",
    "in_c": "BAD_SHAPE", "out_c": "BAD_SHAPE", "hidden": "BAD_SHAPE", "h_shift": "BAD_GATE",
    "st_h": "BAD_TILE", "st_w": "BAD_TILE", **{n: "BAD_OFFSET" for n in _OFFSETS_GATE2},
}
GATE_FLAGS_WORD = 4                 # reserved bits of this gate word are BAD_FLAGS


def _check_table(fields, errors) -> None:
    used: dict = {}
    for f in fields:
        assert 0 <= f.word < DESCRIPTOR_WORDS and f.lsb + f.width <= 32, f.name
        for bit in range(f.lsb, f.lsb + f.width):
            assert (f.word, bit) not in used, f"record fields {used[(f.word, bit)]} and {f.name} overlap"
            used[(f.word, bit)] = f.name
    assert set(errors) == {f.name for f in fields}


_check_table(GATE_FIELDS, GATE_FIELD_ERROR)
_check_table(HEAD_FIELDS, HEAD_FIELD_ERROR)
_check_table(GATE2_FIELDS, GATE2_FIELD_ERROR)


def record_error(msg: str, code: str, entry: int, field: Optional[str] = None) -> FormatError:
    """A FormatError carrying the engine's STATUS: `.code` (ERROR_CODES name), `.entry`."""
    exc = FormatError(msg)
    exc.code, exc.entry, exc.field, exc.no_fit = code, int(entry), field, False
    return exc


# ---- records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GateRecord:
    """One block's gate evaluation (fields = GATE_FIELDS after word 0)."""
    in_c: int
    out_c: int
    hidden: int
    h_shift: int
    st_h: int
    st_w: int
    gh: int
    gw: int
    res_list: bool = False
    sums_offset: int = 0
    param_offset: int = 0
    mask_offset: int = 0
    c1_tiles_offset: int = 0
    c1_out_ch_offset: int = 0
    c2_tiles_offset: int = 0
    c2_res_tiles_offset: int = 0
    c2_in_ch_offset: int = 0
    c2_bitmap_offset: int = 0
    op: int = OP_GATE

    @property
    def n_tiles(self) -> int:
        return self.gh * self.gw

    def replace(self, **changes) -> "GateRecord":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class HeadRecord:
    """The classifier (fields = HEAD_FIELDS after word 0)."""
    in_c: int
    classes: int
    st_h: int
    st_w: int
    sums_offset: int = 0
    param_offset: int = 0
    logits_offset: int = 0
    log_offset: int = 0
    op: int = OP_HEAD

    def replace(self, **changes) -> "HeadRecord":
        return dataclasses.replace(self, **changes)


def _words(data) -> tuple:
    data = formats._bytes_like(data, "program record")
    if len(data) != DESCRIPTOR_BYTES:
        raise FormatError(f"program record: length {len(data)} bytes, expected {DESCRIPTOR_BYTES}")
    return struct.unpack(f"<{DESCRIPTOR_WORDS}I", data)


def record_op(data) -> int:
    """The op of a record (word 0, bits 19:16) after its magic and version check.

    FormatError (code BAD_MAGIC, entry 0) for a wrong magic or version; the op is returned
    as is (the caller reports an unknown op as BAD_OP, entry 0)."""
    w0 = _words(data)[0]
    if w0 & 0xFF != DESC_MAGIC:
        raise record_error(f"program record: magic 0x{w0 & 0xFF:02X}, expected 0x{DESC_MAGIC:02X}",
                           "BAD_MAGIC", 0, "magic")
    if (w0 >> 8) & 0xFF != FORMAT_VERSION:
        raise record_error(f"program record: version {(w0 >> 8) & 0xFF}, this dgfpga reads "
                           f"{FORMAT_VERSION}", "BAD_MAGIC", 0, "version")
    return (w0 >> 16) & 0xF


def _pack(fields, values: dict) -> bytes:
    words = [0] * DESCRIPTOR_WORDS
    values = dict(values, magic=DESC_MAGIC, version=FORMAT_VERSION)
    for f in fields:
        words[f.word] |= (int(values[f.name]) & f.mask) << f.lsb
    return struct.pack(f"<{DESCRIPTOR_WORDS}I", *words)


def _unpack_fields(data, fields, errors, op: int, what: str) -> dict:
    """Word 0 (magic, version, op), then reserved words and bits, as the engine checks."""
    words = _words(data)
    got = record_op(data)
    if got != op:
        raise record_error(f"{what}: op {got}, expected {op}", "BAD_OP", 0, "op")
    values, stray = formats.field_values(words, fields)
    if stray:
        w, bits = stray
        code = "BAD_FLAGS" if (op == OP_GATE and w == GATE_FLAGS_WORD) else "BAD_GATE"
        raise record_error(f"{what}: reserved bits 0x{bits:08X} set in word {w}", code, w)
    for n in ("magic", "version"):
        values.pop(n)
    return values


def _check_fields(r, fields, errors, what: str, checks) -> None:
    """Raw field ranges (no silent truncation), then `checks`: (field, ok, message)."""
    by = {f.name: f for f in fields}
    for f in fields:
        if f.name in ("magic", "version"):
            continue
        v = getattr(r, f.name)
        if isinstance(v, bool) and f.width != 1:
            raise record_error(f"{what} field {f.name}={v!r}: must be an integer",
                               errors[f.name], f.word, f.name)
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) <= f.mask:
            raise record_error(f"{what} field {f.name}={v!r}: out of range 0..{f.mask}",
                               errors[f.name], f.word, f.name)
    for name, ok, msg in checks:
        if not ok:
            raise record_error(f"{what} field {name}={getattr(r, name)!r}: {msg}",
                               errors[name], by[name].word, name)


def _region_checks(r, fields, errors, sections, cfg: EngineConfig,
                   region_bytes: Optional[dict], what: str) -> None:
    by = {f.name: f for f in fields}
    for name, region, nbytes in sections:
        off = int(getattr(r, name))
        if off % cfg.axi_bytes:
            raise record_error(f"{what} field {name}={off}: not aligned to {cfg.axi_bytes} bytes",
                               errors[name], by[name].word, name)
        if region_bytes is not None and region in region_bytes and \
                off + nbytes > region_bytes[region]:
            raise record_error(f"{what} field {name}={off}: section [{off}, {off + nbytes}) "
                               f"outside the {region} region of {region_bytes[region]} bytes",
                               errors[name], by[name].word, name)


# ---- gate record -------------------------------------------------------------------------
def gate_record_sections(r: GateRecord, cfg: EngineConfig) -> list[tuple[str, str, int]]:
    """(offset field, region, bytes) of every section a gate record reads or writes, sized
    for the densest case (all tiles, all channels), in word order. c2_res_tiles only with
    res_list."""
    n = r.gh * r.gw
    e = formats.LIST_ENTRY_BYTES
    out = [
        ("sums_offset", "sums", r.st_h * r.st_w * r.in_c * formats.SUM_BYTES),
        ("param_offset", "weight",
         gate_param_layout(r.in_c, r.out_c, r.hidden, r.gh, r.gw, cfg.axi_bytes).nbytes),
        ("mask_offset", "work", mask_bytes(n, r.out_c)),
        ("c1_tiles_offset", "work", e * n),
        ("c1_out_ch_offset", "work", e * r.out_c),
        ("c2_tiles_offset", "work", e * n),
    ]
    if r.res_list:
        out.append(("c2_res_tiles_offset", "work", e * n))
    out += [("c2_in_ch_offset", "work", e * r.out_c),
            ("c2_bitmap_offset", "work", formats.bitmap_bytes(n))]
    return out


def validate_gate_record(r: GateRecord, cfg: Optional[EngineConfig] = None,
                         region_bytes: Optional[dict] = None) -> None:
    """The gate record checks, in the engine's order (fields in word order, then offsets)."""
    cfg = cfg or default_config()
    what = "gate record"
    _check_fields(r, GATE_FIELDS, GATE_FIELD_ERROR, what, (
        ("op", r.op == OP_GATE, f"must be OP_GATE ({OP_GATE})"),
        ("in_c", 1 <= r.in_c <= cfg.max_in_channels, f"must be 1..{cfg.max_in_channels}"),
        ("out_c", 1 <= r.out_c <= cfg.max_out_channels, f"must be 1..{cfg.max_out_channels}"),
        ("hidden", 1 <= r.hidden <= r.in_c, f"must be 1..in_c ({r.in_c})"),
        ("h_shift", 1 <= r.h_shift <= GATE_SHIFT_MAX, f"must be 1..{GATE_SHIFT_MAX}"),
        ("st_h", 1 <= r.st_h <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
        ("st_w", 1 <= r.st_w <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
        ("gh", 1 <= r.gh <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
        ("gw", 1 <= r.gw <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
        ("c2_res_tiles_offset", r.res_list or r.c2_res_tiles_offset == 0,
         "must be 0 without res_list"),
    ))
    _region_checks(r, GATE_FIELDS, GATE_FIELD_ERROR, gate_record_sections(r, cfg), cfg,
                   region_bytes, what)


def pack_gate_record(r: GateRecord, cfg: Optional[EngineConfig] = None) -> bytes:
    """96 bytes; validates the record against `cfg` first."""
    validate_gate_record(r, cfg)
    return _pack(GATE_FIELDS, dataclasses.asdict(r))


def unpack_gate_record(data, cfg: Optional[EngineConfig] = None,
                       region_bytes: Optional[dict] = None) -> GateRecord:
    """Parse and check one gate record (with `region_bytes`: every section inside its
    region). FormatError with `.code`/`.entry` as the engine's STATUS."""
    values = _unpack_fields(data, GATE_FIELDS, GATE_FIELD_ERROR, OP_GATE, "gate record")
    values["res_list"] = bool(values["res_list"])
    r = GateRecord(**values)
    validate_gate_record(r, cfg, region_bytes)
    return r


# ---- head record -------------------------------------------------------------------------
def cycle_log_bytes(layer_count: int) -> int:
    return 4 * layer_count


def head_record_sections(r: HeadRecord, cfg: EngineConfig,
                         layer_count: int) -> list[tuple[str, str, int]]:
    return [
        ("sums_offset", "sums", r.st_h * r.st_w * r.in_c * formats.SUM_BYTES),
        ("param_offset", "weight", head_param_layout(r.in_c, r.classes, cfg.axi_bytes).nbytes),
        ("logits_offset", "work", 8 * r.classes),
        ("log_offset", "work", cycle_log_bytes(layer_count)),
    ]


def validate_head_record(r: HeadRecord, cfg: Optional[EngineConfig] = None,
                         region_bytes: Optional[dict] = None, layer_count: int = 1) -> None:
    cfg = cfg or default_config()
    what = "head record"
    _check_fields(r, HEAD_FIELDS, HEAD_FIELD_ERROR, what, (
        ("op", r.op == OP_HEAD, f"must be OP_HEAD ({OP_HEAD})"),
        ("in_c", 1 <= r.in_c <= cfg.max_in_channels, f"must be 1..{cfg.max_in_channels}"),
        ("classes", 1 <= r.classes <= MAX_CLASSES, f"must be 1..{MAX_CLASSES}"),
        ("st_h", 1 <= r.st_h <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
        ("st_w", 1 <= r.st_w <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
    ))
    _region_checks(r, HEAD_FIELDS, HEAD_FIELD_ERROR, head_record_sections(r, cfg, layer_count),
                   cfg, region_bytes, what)


def pack_head_record(r: HeadRecord, cfg: Optional[EngineConfig] = None) -> bytes:
    validate_head_record(r, cfg)
    return _pack(HEAD_FIELDS, dataclasses.asdict(r))


def unpack_head_record(data, cfg: Optional[EngineConfig] = None,
                       region_bytes: Optional[dict] = None, layer_count: int = 1) -> HeadRecord:
    """Parse and check one head record; `layer_count` sizes the cycle log."""
    values = _unpack_fields(data, HEAD_FIELDS, HEAD_FIELD_ERROR, OP_HEAD, "head record")
    r = HeadRecord(**values)
    validate_head_record(r, cfg, region_bytes, layer_count)
    return r


# ---- gate parameter blob -----------------------------------------------------------------
GATE_PARAM_SECTIONS = (
    # name, element dtype (little endian), element count (an expression of in_c, out_c,
    # hidden, gh, gw: generated into the C header and the SV include), meaning
    ("bins", "u1", "2*gh + 2*gw", "rs0, re0, rs1, re1, ... (rows, in sum tiles), then cs0, ce0, ... (cols)"),
    ("recip", "<u4", "gh*gw + 1", "R(n) per bin [gh*gw] row-major, then R(H*W) of the channel gate"),
    ("ws", "<i2", "9*in_c", "spatial gate weights [9][in_c] (tap ky*3+kx outermost, channel innermost)"),
    ("bs", "<i8", "1", "spatial gate bias"),
    ("w1", "<i2", "hidden*in_c", "channel gate fc1 [hidden][in_c]"),
    ("m1", "<i4", "hidden", "hidden requant multipliers [hidden]"),
    ("o1", "<i8", "hidden", "hidden requant offsets [hidden]"),
    ("w2", "<i2", "out_c*hidden", "channel gate fc2 [out_c][hidden]"),
    ("b2", "<i8", "out_c", "channel gate biases [out_c]"),
)


@dataclass(frozen=True)
class GateParamLayout:
    """Byte offsets (from the blob start) and element counts of the gate parameter sections;
    each section starts at a multiple of the AXI width. nbytes = end of the last section."""
    offsets: dict
    counts: dict
    nbytes: int

    def __getattr__(self, name):
        if name in GATE_PARAM_NAMES:
            return self.offsets[name]
        raise AttributeError(name)


GATE_PARAM_NAMES = tuple(s[0] for s in GATE_PARAM_SECTIONS)
_GATE_DTYPE = {n: np.dtype(t) for n, t, _, _ in GATE_PARAM_SECTIONS}
_GATE_COUNT = {n: compile(c, f"<gate param count {n}>", "eval") for n, _, c, _ in GATE_PARAM_SECTIONS}


def _up(n: int, align: int) -> int:
    return -(-n // align) * align


def gate_param_layout(in_c: int, out_c: int, hidden: int, gh: int, gw: int,
                      align: int) -> GateParamLayout:
    """Section offsets: each section starts at the next multiple of `align`; element counts
    from GATE_PARAM_SECTIONS."""
    env = dict(in_c=in_c, out_c=out_c, hidden=hidden, gh=gh, gw=gw)
    counts = {n: int(eval(_GATE_COUNT[n], {"__builtins__": {}}, env)) for n in GATE_PARAM_NAMES}
    offsets, pos, end = {}, 0, 0
    for name in GATE_PARAM_NAMES:
        pos = _up(pos, align)
        offsets[name] = pos
        pos += counts[name] * _GATE_DTYPE[name].itemsize
        end = pos
    return GateParamLayout(offsets, counts, end)


@dataclass(frozen=True)
class GateParams:
    """A gate parameter blob, decoded (numpy arrays; what the engine reads)."""
    rows: np.ndarray        # int [gh, 2] (start, end) in sum tiles
    cols: np.ndarray        # int [gw, 2]
    recip: np.ndarray       # int64 [gh, gw]
    recip_total: int
    ws: np.ndarray          # int16 [in_c, 3, 3]  (weight of IntSpatialGate)
    bs: int
    w1: np.ndarray          # int16 [hidden, in_c]
    m1: np.ndarray          # int32 [hidden]
    o1: np.ndarray          # int64 [hidden]
    w2: np.ndarray          # int16 [out_c, hidden]
    b2: np.ndarray          # int64 [out_c]


def _as_int_array(v, what: str) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "iub":
        raise FormatError(f"gate params: {what} must be integers, got {a.dtype}")
    return a.astype(np.int64)


def pack_gate_params(table, sg, cg, align: int) -> bytes:
    """The gate parameter blob (section 2.1 of the network program) of one block.

    table: a BinTable (rows, cols [(start, end)] in sum tiles, recip [gh, gw], recip_total);
    sg: IntSpatialGate (weight int16 [C_in, 3, 3], bias); cg: IntChannelGate (w1, m1, o1,
    shift, w2, b2). The values are checked as the engine checks them (FormatError).
    """
    rows = _as_int_array(table.rows, "bin rows").reshape(-1, 2)
    cols = _as_int_array(table.cols, "bin cols").reshape(-1, 2)
    gh, gw = rows.shape[0], cols.shape[0]
    ws = _as_int_array(sg.weight, "spatial weight")
    if ws.ndim != 3 or ws.shape[1:] != (3, 3):
        raise FormatError(f"gate params: spatial weight must be [C_in, 3, 3], got {ws.shape}")
    in_c = ws.shape[0]
    w1 = _as_int_array(cg.w1, "w1")
    w2 = _as_int_array(cg.w2, "w2")
    if w1.ndim != 2 or w1.shape[1] != in_c or w2.ndim != 2 or w2.shape[1] != w1.shape[0]:
        raise FormatError(f"gate params: w1 {w1.shape} must be [hidden, {in_c}], w2 {w2.shape} "
                          "[out_c, hidden]")
    hidden, out_c = w1.shape[0], w2.shape[0]
    recip = _as_int_array(table.recip, "recip").reshape(-1)
    if recip.size != gh * gw:
        raise FormatError(f"gate params: recip has {recip.size} entries, the bin grid {gh}x{gw}")
    vals = {
        "bins": np.concatenate([rows.reshape(-1), cols.reshape(-1)]),
        "recip": np.concatenate([recip, [int(table.recip_total)]]),
        "ws": ws.transpose(1, 2, 0).reshape(-1),
        "bs": np.array([int(sg.bias)], dtype=object),
        "w1": w1.reshape(-1), "m1": _as_int_array(cg.m1, "m1").reshape(-1),
        "o1": np.array([int(v) for v in np.asarray(cg.o1).reshape(-1)], dtype=object),
        "w2": w2.reshape(-1),
        "b2": np.array([int(v) for v in np.asarray(cg.b2).reshape(-1)], dtype=object),
    }
    lay = gate_param_layout(in_c, out_c, hidden, gh, gw, align)
    blob = np.zeros(lay.nbytes, np.uint8)
    for name in GATE_PARAM_NAMES:
        dt, v = _GATE_DTYPE[name], vals[name]
        if len(v) != lay.counts[name]:
            raise FormatError(f"gate params: {name} has {len(v)} entries, expected {lay.counts[name]}")
        info = np.iinfo(dt)
        ints = [int(x) for x in v]
        if ints and (min(ints) < info.min or max(ints) > info.max):
            raise FormatError(f"gate params: {name} out of {dt} range")
        raw = np.array(ints, dtype=dt).view(np.uint8)
        blob[lay.offsets[name]:lay.offsets[name] + raw.size] = raw
    data = blob.tobytes()
    p = unpack_gate_params(data, in_c, out_c, hidden, gh, gw, align)
    check_gate_params(p, int(rows.max(initial=0)), int(cols.max(initial=0)))
    if int(cg.shift) < 1 or int(cg.shift) > GATE_SHIFT_MAX:
        raise FormatError(f"gate params: channel gate shift {cg.shift} not in 1..{GATE_SHIFT_MAX}")
    return data


def unpack_gate_params(data, in_c: int, out_c: int, hidden: int, gh: int, gw: int,
                       align: int) -> GateParams:
    """Decode a gate parameter blob (the first `layout.nbytes` bytes of `data`); no value
    checks (`check_gate_params`)."""
    data = formats._bytes_like(data, "gate params")
    lay = gate_param_layout(in_c, out_c, hidden, gh, gw, align)
    if len(data) < lay.nbytes:
        raise FormatError(f"gate params: {len(data)} bytes, the layout needs {lay.nbytes}")

    def sec(name):
        dt = _GATE_DTYPE[name]
        o = lay.offsets[name]
        return np.frombuffer(data[o:o + lay.counts[name] * dt.itemsize], dtype=dt)
    bins = sec("bins").astype(np.int64)
    recip = sec("recip").astype(np.int64)
    return GateParams(
        rows=bins[:2 * gh].reshape(gh, 2), cols=bins[2 * gh:].reshape(gw, 2),
        recip=recip[:gh * gw].reshape(gh, gw), recip_total=int(recip[-1]),
        ws=sec("ws").astype(np.int16).reshape(3, 3, in_c).transpose(2, 0, 1).copy(),
        bs=int(sec("bs")[0]), w1=sec("w1").astype(np.int16).reshape(hidden, in_c),
        m1=sec("m1").astype(np.int32).copy(), o1=sec("o1").astype(np.int64).copy(),
        w2=sec("w2").astype(np.int16).reshape(out_c, hidden),
        b2=sec("b2").astype(np.int64).copy())


def check_gate_params(p: GateParams, st_h: int, st_w: int) -> None:
    """The engine's parameter checks (BAD_GATE, ENTRY = index of the bad entry within its
    section), sections in blob order: bins (0 <= start < end <= st_h / st_w; entry 2i is a
    start, 2i+1 an end, columns after the 2*gh row entries), recip (1..2^RB; the last entry
    is recip_total), bs, o1, b2 (|v| < GATE_BIAS_LIMIT)."""
    gh = p.rows.shape[0]
    for base, pairs, lim, what in ((0, p.rows, st_h, "row"), (2 * gh, p.cols, st_w, "col")):
        for i, (s, e) in enumerate(pairs.tolist()):
            if not 0 <= s < lim:
                raise record_error(f"gate params: {what} bin {i} start {s} not in 0..{lim - 1}",
                                   "BAD_GATE", base + 2 * i, "bins")
            if not s < e <= lim:
                raise record_error(f"gate params: {what} bin {i} end {e} not in {s + 1}..{lim}",
                                   "BAD_GATE", base + 2 * i + 1, "bins")
    rec = np.concatenate([p.recip.reshape(-1), [p.recip_total]])
    bad = np.flatnonzero((rec < 1) | (rec > GATE_RECIP_MAX))
    if bad.size:
        i = int(bad[0])
        raise record_error(f"gate params: recip[{i}] = {int(rec[i])} not in 1..2^{GATE_RECIP_BITS}",
                           "BAD_GATE", i, "recip")
    for name, v in (("bs", np.array([p.bs], dtype=object)), ("o1", p.o1), ("b2", p.b2)):
        for i, x in enumerate(v.tolist()):
            if not -GATE_BIAS_LIMIT < int(x) < GATE_BIAS_LIMIT:
                raise record_error(f"gate params: {name}[{i}] = {int(x)}: |value| must be < 2^46",
                                   "BAD_GATE", i, name)


# ---- head parameters ---------------------------------------------------------------------
@dataclass(frozen=True)
class HeadParamLayout:
    weight: int     # offset of int8 W [classes][in_c] (0)
    bias: int       # offset of int32 bias [classes]
    nbytes: int


def head_param_layout(in_c: int, classes: int, align: int) -> HeadParamLayout:
    b = _up(in_c * classes, align)
    return HeadParamLayout(0, b, b + 4 * classes)


def pack_head_params(weight, bias, align: int) -> bytes:
    """int8 W [classes][in_c] row-major, then at the next aligned offset int32 bias [classes]."""
    w = np.asarray(weight)
    b = np.asarray(bias)
    if w.ndim != 2 or w.dtype != np.int8:
        raise FormatError(f"head params: need int8 [classes][in_c], got {w.dtype} {w.shape}")
    if b.shape != (w.shape[0],) or b.dtype.kind not in "iu" or \
            (b.size and (b.min() < -(1 << 31) or b.max() >= 1 << 31)):
        raise FormatError(f"head params: bias must be int32 [{w.shape[0]}], got {b.dtype} {b.shape}")
    lay = head_param_layout(w.shape[1], w.shape[0], align)
    blob = np.zeros(lay.nbytes, np.uint8)
    blob[:w.size] = np.ascontiguousarray(w).view(np.uint8).reshape(-1)
    blob[lay.bias:] = b.astype("<i4").view(np.uint8)
    return blob.tobytes()


def unpack_head_params(data, in_c: int, classes: int, align: int) -> tuple[np.ndarray, np.ndarray]:
    data = formats._bytes_like(data, "head params")
    lay = head_param_layout(in_c, classes, align)
    if len(data) < lay.nbytes:
        raise FormatError(f"head params: {len(data)} bytes, the layout needs {lay.nbytes}")
    w = np.frombuffer(data[:in_c * classes], np.int8).reshape(classes, in_c).copy()
    b = np.frombuffer(data[lay.bias:lay.bias + 4 * classes], "<i4").astype(np.int32)
    return w, b


# ---- masks -------------------------------------------------------------------------------
def mask_bytes(n_tiles: int, out_c: int) -> int:
    """Tile bitmap (ceil(N/32) u32 words) then channel bitmap (ceil(out_c/32) words)."""
    return formats.bitmap_bytes(n_tiles) + formats.bitmap_bytes(out_c)


def _bits(mask, n: int) -> np.ndarray:
    bits = np.zeros(32 * ((n + 31) // 32), dtype=bool)
    bits[:n] = np.asarray(mask, dtype=bool).reshape(-1)[:n]
    return np.packbits(bits, bitorder="little")


def encode_masks(spatial, channel) -> bytes:
    """The mask words a gate record writes: bit i%32 of word i/32, padding bits 0."""
    sp = np.asarray(spatial, dtype=bool).reshape(-1)
    ch = np.asarray(channel, dtype=bool).reshape(-1)
    return _bits(sp, sp.size).tobytes() + _bits(ch, ch.size).tobytes()


def decode_masks(data, n_tiles: int, out_c: int) -> tuple[np.ndarray, np.ndarray]:
    """(spatial bool [n_tiles], channel bool [out_c]); FormatError on set padding bits."""
    data = formats._bytes_like(data, "masks")
    nt = formats.bitmap_bytes(n_tiles)
    if len(data) < mask_bytes(n_tiles, out_c):
        raise FormatError(f"masks: {len(data)} bytes, need {mask_bytes(n_tiles, out_c)}")
    sp = formats.unpack_bitmap(data[:nt], n_tiles, "tile mask")
    ch = formats.unpack_bitmap(data[nt:nt + formats.bitmap_bytes(out_c)], out_c, "channel mask")
    return sp, ch


def gate_work_writes(r: GateRecord, spatial, channel) -> list[tuple[int, np.ndarray]]:
    """[(WORK offset, uint8 bytes)] a gate record writes for its decisions: the masks, then
    conv1's tile and out-channel lists, conv2's tile list, residual-only list (res_list: the
    inactive tiles), in-channel list and tile bitmap, laid out by the one work-list writer
    (`formats.encode_work_list`), so the bytes equal the scheduler's."""
    import types
    n = r.gh * r.gw
    sp = np.asarray(spatial, bool).reshape(-1)
    ch = np.asarray(channel, bool).reshape(-1)
    if sp.size != n or ch.size != r.out_c:
        raise FormatError(f"gate decisions: {sp.size} tiles / {ch.size} channels, the record "
                          f"has {n} / {r.out_c}")
    tiles = np.flatnonzero(sp).astype("<u2")
    chans = np.flatnonzero(ch).astype("<u2")
    writes = [(r.mask_offset, np.frombuffer(encode_masks(sp, ch), np.uint8))]
    c1 = types.SimpleNamespace(tile_gated=True, out_ch_gated=True, in_ch_gated=False,
                               zero_halo=False, n_tiles=n, depthwise=False)
    s1 = formats.WorkSlots(r.c1_tiles_offset, 0, r.c1_out_ch_offset, 0, 0, 0)
    writes += formats.encode_work_list(c1, s1, tiles, out_channels=chans)[1]
    c2 = types.SimpleNamespace(tile_gated=True, out_ch_gated=False, in_ch_gated=True,
                               zero_halo=True, n_tiles=n, depthwise=False)
    s2 = formats.WorkSlots(r.c2_tiles_offset, r.c2_res_tiles_offset, 0, r.c2_in_ch_offset,
                           r.c2_bitmap_offset, 0)
    res = np.flatnonzero(~sp).astype("<u2") if r.res_list else None
    writes += formats.encode_work_list(c2, s2, tiles, res_tiles=res, in_channels=chans)[1]
    return writes


# ---- from_gate: the effective descriptor -------------------------------------------------
def effective_descriptor(d: LayerDescriptor, nt: int, nc: int,
                         nc2: Optional[int] = None) -> Optional[LayerDescriptor]:
    """The descriptor a `from_gate` layer runs with under a gate's counts: nt active tiles,
    nc active channels (None: the layer is skipped). Equals `Scheduler.block`'s descriptor
    of the layer field for field (from_gate cleared). Not checked here: the engine checks E
    as any descriptor.

    nc2: the active channels of the last gate-2 record since that gate record (a Bottleneck
    block's mask_c2; None: no gate-2 record yet). After a gate-2 record, an out-channel-gated
    layer (conv2) outputs nc2 channels and reads nc (conv1's compact output); a layer gated
    on its input only (conv3) reads nc2 (conv2's compact output)."""
    n = d.grid_h * d.grid_w
    n_out = nc if nc2 is None else nc2
    if d.in_ch_gated and nc2 is not None and not d.out_ch_gated:
        n_in = nc2
    else:
        n_in = nc
    if (d.out_ch_gated and (nt == 0 or n_out == 0)) or (d.in_place and nt == 0):
        return None
    ch = dict(from_gate=False, n_active_tiles=int(nt))
    if d.out_ch_gated:
        ch["n_active_out"] = int(n_out)
    if d.in_ch_gated:
        ch["n_active_in"] = int(n_in)
    if d.residual and not d.in_place:
        ch["n_res_tiles"] = max(n - int(nt), 0)
        ch["res_tile_list_offset"] = d.res_tile_list_offset if n - nt > 0 else 0
    return d.replace(**ch)


# ---- gate-2 record (Bottleneck: mask_c2 from conv1's masked output) ----------------------
@dataclass(frozen=True)
class Gate2Record:
    """A Bottleneck block's second channel gate (fields = GATE2_FIELDS after word 0)."""
    in_c: int
    out_c: int
    hidden: int
    h_shift: int
    st_h: int
    st_w: int
    sums_offset: int = 0
    param_offset: int = 0
    in_mask_offset: int = 0
    mask_offset: int = 0
    c2_out_ch_offset: int = 0
    c3_in_ch_offset: int = 0
    op: int = OP_GATE2

    @property
    def n_tiles(self) -> int:
        return self.st_h * self.st_w

    def replace(self, **changes) -> "Gate2Record":
        return dataclasses.replace(self, **changes)


GATE2_PARAM_SECTIONS = (
    # name, element dtype, count (an expression of in_c, out_c, hidden), meaning
    ("recip", "<u4", "1", "R(H*W): the reciprocal of conv1's output pixel count (block input H x W)"),
    ("w1", "<i2", "hidden*in_c", "fc1 [hidden][in_c]"),
    ("m1", "<i4", "hidden", "hidden requant multipliers [hidden]"),
    ("o1", "<i8", "hidden", "hidden requant offsets [hidden]"),
    ("w2", "<i2", "out_c*hidden", "fc2 [out_c][hidden]"),
    ("b2", "<i8", "out_c", "biases [out_c]"),
)
GATE2_PARAM_NAMES = tuple(s[0] for s in GATE2_PARAM_SECTIONS)
_GATE2_DTYPE = {n: np.dtype(t) for n, t, _, _ in GATE2_PARAM_SECTIONS}
_GATE2_COUNT = {n: compile(c, f"<gate2 param count {n}>", "eval")
                for n, _, c, _ in GATE2_PARAM_SECTIONS}


def gate2_param_layout(in_c: int, out_c: int, hidden: int, align: int) -> GateParamLayout:
    """Section offsets of a gate-2 blob (each at the next multiple of `align`)."""
    env = dict(in_c=in_c, out_c=out_c, hidden=hidden)
    counts = {n: int(eval(_GATE2_COUNT[n], {"__builtins__": {}}, env)) for n in GATE2_PARAM_NAMES}
    offsets, pos = {}, 0
    for name in GATE2_PARAM_NAMES:
        pos = _up(pos, align)
        offsets[name] = pos
        pos += counts[name] * _GATE2_DTYPE[name].itemsize
    return GateParamLayout(offsets, counts, pos)


@dataclass(frozen=True)
class Gate2Params:
    """A gate-2 parameter blob, decoded."""
    recip_total: int
    w1: np.ndarray          # int16 [hidden, in_c]
    m1: np.ndarray          # int32 [hidden]
    o1: np.ndarray          # int64 [hidden]
    w2: np.ndarray          # int16 [out_c, hidden]
    b2: np.ndarray          # int64 [out_c]


def pack_gate2_params(recip_total: int, cg, align: int) -> bytes:
    """The gate-2 blob of one Bottleneck block: R(H*W) of conv1's output map and the
    IntChannelGate `cg` (mask_c2: w1, m1, o1, shift, w2, b2). Checked as the engine checks."""
    w1 = _as_int_array(cg.w1, "w1")
    w2 = _as_int_array(cg.w2, "w2")
    if w1.ndim != 2 or w2.ndim != 2 or w2.shape[1] != w1.shape[0]:
        raise FormatError(f"gate-2 params: w1 {w1.shape} must be [hidden, in_c], w2 {w2.shape} "
                          "[out_c, hidden]")
    hidden, in_c = w1.shape
    out_c = w2.shape[0]
    vals = {"recip": [int(recip_total)], "w1": w1.reshape(-1),
            "m1": _as_int_array(cg.m1, "m1").reshape(-1),
            "o1": [int(v) for v in np.asarray(cg.o1).reshape(-1)], "w2": w2.reshape(-1),
            "b2": [int(v) for v in np.asarray(cg.b2).reshape(-1)]}
    lay = gate2_param_layout(in_c, out_c, hidden, align)
    blob = np.zeros(lay.nbytes, np.uint8)
    for name in GATE2_PARAM_NAMES:
        dt = _GATE2_DTYPE[name]
        ints = [int(x) for x in vals[name]]
        if len(ints) != lay.counts[name]:
            raise FormatError(f"gate-2 params: {name} has {len(ints)} entries, expected "
                              f"{lay.counts[name]}")
        info = np.iinfo(dt)
        if ints and (min(ints) < info.min or max(ints) > info.max):
            raise FormatError(f"gate-2 params: {name} out of {dt} range")
        raw = np.array(ints, dtype=dt).view(np.uint8)
        blob[lay.offsets[name]:lay.offsets[name] + raw.size] = raw
    data = blob.tobytes()
    check_gate2_params(unpack_gate2_params(data, in_c, out_c, hidden, align))
    if not 1 <= int(cg.shift) <= GATE_SHIFT_MAX:
        raise FormatError(f"gate-2 params: shift {cg.shift} not in 1..{GATE_SHIFT_MAX}")
    return data


def unpack_gate2_params(data, in_c: int, out_c: int, hidden: int, align: int) -> Gate2Params:
    """Decode a gate-2 blob; no value checks (`check_gate2_params`)."""
    data = formats._bytes_like(data, "gate-2 params")
    lay = gate2_param_layout(in_c, out_c, hidden, align)
    if len(data) < lay.nbytes:
        raise FormatError(f"gate-2 params: {len(data)} bytes, the layout needs {lay.nbytes}")

    def sec(name):
        dt, o = _GATE2_DTYPE[name], lay.offsets[name]
        return np.frombuffer(data[o:o + lay.counts[name] * dt.itemsize], dtype=dt)
    return Gate2Params(recip_total=int(sec("recip")[0]),
                       w1=sec("w1").astype(np.int16).reshape(hidden, in_c),
                       m1=sec("m1").astype(np.int32).copy(), o1=sec("o1").astype(np.int64).copy(),
                       w2=sec("w2").astype(np.int16).reshape(out_c, hidden),
                       b2=sec("b2").astype(np.int64).copy())


def check_gate2_params(p: Gate2Params) -> None:
    """The engine's gate-2 parameter checks (BAD_GATE, ENTRY = index within the section), in
    blob order: recip (1..2^RB), o1, b2 (|v| < GATE_BIAS_LIMIT)."""
    if not 1 <= p.recip_total <= GATE_RECIP_MAX:
        raise record_error(f"gate-2 params: recip = {p.recip_total} not in 1..2^{GATE_RECIP_BITS}",
                           "BAD_GATE", 0, "recip")
    for name, v in (("o1", p.o1), ("b2", p.b2)):
        for i, x in enumerate(v.tolist()):
            if not -GATE_BIAS_LIMIT < int(x) < GATE_BIAS_LIMIT:
                raise record_error(f"gate-2 params: {name}[{i}] = {int(x)}: |value| must be < 2^46",
                                   "BAD_GATE", i, name)


def gate2_record_sections(r: Gate2Record, cfg: EngineConfig) -> list[tuple[str, str, int]]:
    """(offset field, region, bytes) of every section a gate-2 record reads or writes, sized
    for the densest case, in word order."""
    n = r.st_h * r.st_w
    e = formats.LIST_ENTRY_BYTES
    return [
        ("sums_offset", "sums", n * r.in_c * formats.SUM_BYTES),
        ("param_offset", "weight", gate2_param_layout(r.in_c, r.out_c, r.hidden, cfg.axi_bytes).nbytes),
        ("in_mask_offset", "work", mask_bytes(n, r.in_c)),
        ("mask_offset", "work", formats.bitmap_bytes(r.out_c)),
        ("c2_out_ch_offset", "work", e * r.out_c),
        ("c3_in_ch_offset", "work", e * r.out_c),
    ]


def validate_gate2_record(r: Gate2Record, cfg: Optional[EngineConfig] = None,
                          region_bytes: Optional[dict] = None) -> None:
    """The gate-2 record checks, in the engine's order (fields in word order, then sections)."""
    cfg = cfg or default_config()
    what = "gate-2 record"
    _check_fields(r, GATE2_FIELDS, GATE2_FIELD_ERROR, what, (
        ("op", r.op == OP_GATE2, f"must be OP_GATE2 ({OP_GATE2})"),
        ("in_c", 1 <= r.in_c <= cfg.max_in_channels, f"must be 1..{cfg.max_in_channels}"),
        ("out_c", 1 <= r.out_c <= cfg.max_out_channels, f"must be 1..{cfg.max_out_channels}"),
        ("hidden", 1 <= r.hidden <= r.in_c, f"must be 1..in_c ({r.in_c})"),
        ("h_shift", 1 <= r.h_shift <= GATE_SHIFT_MAX, f"must be 1..{GATE_SHIFT_MAX}"),
        ("st_h", 1 <= r.st_h <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
        ("st_w", 1 <= r.st_w <= cfg.max_grid, f"must be 1..{cfg.max_grid}"),
    ))
    _region_checks(r, GATE2_FIELDS, GATE2_FIELD_ERROR, gate2_record_sections(r, cfg), cfg,
                   region_bytes, what)


def pack_gate2_record(r: Gate2Record, cfg: Optional[EngineConfig] = None) -> bytes:
    """96 bytes; validates the record against `cfg` first."""
    validate_gate2_record(r, cfg)
    return _pack(GATE2_FIELDS, dataclasses.asdict(r))


def unpack_gate2_record(data, cfg: Optional[EngineConfig] = None,
                        region_bytes: Optional[dict] = None) -> Gate2Record:
    """Parse and check one gate-2 record (reserved words and bits: BAD_GATE at the word)."""
    values = _unpack_fields(data, GATE2_FIELDS, GATE2_FIELD_ERROR, OP_GATE2, "gate-2 record")
    r = Gate2Record(**values)
    validate_gate2_record(r, cfg, region_bytes)
    return r


def read_gate2_inputs(r: Gate2Record, work, sums) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a gate-2 record reads besides its parameters: the gate record's masks at
    `in_mask_offset` (padding bits set: BAD_GATE, ENTRY GATE2_IN_MASK_WORD) and conv1's
    compact sums of the active tiles. Returns (tiles bool [N], conv1 channels bool [in_c],
    totals int64 [in_c]: per conv1 channel the sum over the active tiles, 0 for inactive
    channels) - the sums of conv1's masked output over the whole map."""
    n = r.st_h * r.st_w
    work = np.asarray(work, np.uint8)
    raw = work[r.in_mask_offset:r.in_mask_offset + mask_bytes(n, r.in_c)].tobytes()
    try:
        tiles, chans = decode_masks(raw, n, r.in_c)
    except FormatError as exc:
        raise record_error(f"gate-2 record: the masks at in_mask_offset={r.in_mask_offset}: "
                           f"{exc}", "BAD_GATE", GATE2_IN_MASK_WORD, "in_mask_offset") from None
    nc = int(chans.sum())
    sm = np.asarray(sums, np.uint8)
    s = sm[r.sums_offset:r.sums_offset + n * nc * formats.SUM_BYTES].view("<i4") \
        .reshape(n, nc).astype(np.int64)
    totals = np.zeros(r.in_c, np.int64)
    totals[np.flatnonzero(chans)] = s[np.flatnonzero(tiles)].sum(axis=0)
    return tiles, chans, totals


def gate2_work_writes(r: Gate2Record, channel2) -> list[tuple[int, np.ndarray]]:
    """[(WORK offset, uint8 bytes)] a gate-2 record writes for its decisions (bool
    [out_c]): the mask_c2 bitmap, conv2's out-channel list and conv3's in-channel list (the
    active channels ascending, u16), the bytes `formats.encode_work_list` writes for them."""
    ch = np.asarray(channel2, bool).reshape(-1)
    if ch.size != r.out_c:
        raise FormatError(f"gate-2 decisions: {ch.size} channels, the record has {r.out_c}")
    ids = np.flatnonzero(ch).astype("<u2").view(np.uint8)
    return [(r.mask_offset, _bits(ch, ch.size)), (r.c2_out_ch_offset, ids),
            (r.c3_in_ch_offset, ids)]
