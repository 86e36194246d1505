"""The quantized-model file (`.qnpz`): dataclasses, writer and validating loader.

numpy only, torch-free, pickle-free: one `.npz` written with `allow_pickle=False` whose
entry `__header__` is the UTF-8 JSON header (uint8 array) and whose other entries are the
numeric arrays the header lists (dtype, shape and SHA-256 of each). The schema is
documented in `docs/qmodel.md`; the numerics in `docs/quantization.md`.

Every `QModel` is validated (`validate`) when written and when loaded; anything wrong
(version, missing or extra arrays, dtypes, shapes, digests, layer chaining, value ranges,
the requantization overflow bound) raises `dgfpga.errors.FormatError` naming the entry.
Loading is bounded (`load_qmodel`, docs/qmodel.md "Bounded parsing"): the zip directory and
the JSON header (size, nesting, integer length) are checked against limits, and every member
against the header's array table, before any array is decompressed.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.errors import FormatError
from dgfpga.contract import program as _program
from dgfpga.numerics import gates as _gates
from dgfpga.numerics.gates import IntChannelGate, IntSpatialGate

__all__ = [
    "SCHEMA_VERSION", "FORMAT_NAME", "INPUT_TENSOR", "TensorInfo", "QConv", "QBlock",
    "QStem", "QHead", "QModel", "save_qmodel", "load_qmodel", "validate",
    "quantize_input", "round_half_away", "conv_bounds", "validate_gates", "GATE_ARRAYS",
    "BLOCK_KINDS", "validate_channel_gate",
]

FORMAT_NAME = "dgfpga-qmodel"
SCHEMA_VERSION = 4           # 4: MobileNetV2 (inverted residuals, conv groups, tail conv);
                             # 3: block kinds (Bottleneck); 2: integer gates; 1: float32 gates
READ_VERSIONS = (2, 3, 4)    # version 2 files (BasicBlock models) read unchanged
BLOCK_KINDS = ("basic", "bottleneck", "inverted_residual")
INPUT_TENSOR = "input"
HEADER_KEY = "__header__"
INPUT_ROUNDING = "half_away_from_zero"

ACC_LIMIT = 2 ** 31          # |acc| < ACC_LIMIT (int32 accumulator)
Z_LIMIT = 2 ** 62            # |z| < Z_LIMIT (int64 requantization, with margin)
MULT_LIMIT = 2 ** 31         # 0 <= mult, res_mult < MULT_LIMIT
MAX_SHIFT = 31

# Parsing limits of `load_qmodel` (docs/qmodel.md, "Bounded parsing"). Everything is
# checked against the zip directory and the JSON header before any array is decompressed.
MAX_ARRAY_BYTES = 256 * 2 ** 20     # default cap on the header's total declared array bytes
MAX_BYTES_ENV = "DGFPGA_QMODEL_MAX_BYTES"   # override of MAX_ARRAY_BYTES (bytes)
MAX_HEADER_BYTES = 8 * 2 ** 20      # the JSON header
MAX_JSON_DEPTH = 32                 # nesting of the JSON header
MAX_INT_DIGITS = 24                 # digits of one JSON integer
MAX_MEMBERS = 65535                 # zip members (arrays + header)
MAX_NDIM = 8
ARRAY_DTYPES = frozenset(("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                          "uint64", "float16", "float32", "float64"))
_NPY_PREAMBLE_MAX = 10 + 10000      # magic, version, length, header (numpy's header limit)
_READ_CHUNK = 2 ** 20


# ----------------------------------------------------------------------------- dataclasses

@dataclass
class TensorInfo:
    """An 8-bit activation tensor: shape [C, H, W] (per image), scale (real = scale * q),
    signed (s8, -128..127) or unsigned (u8, 0..255)."""
    shape: tuple[int, int, int]
    scale: float
    signed: bool

    @property
    def lo(self) -> int:
        return -128 if self.signed else 0

    @property
    def hi(self) -> int:
        return 127 if self.signed else 255

    @property
    def max_abs(self) -> int:
        return 128 if self.signed else 255


@dataclass
class QConv:
    """One quantized conv with its requantization (see docs/quantization.md).

    weight int8 [C_out, C_in, k, k] (logical order), bias int32 [C_out] in the accumulator
    scale, mult int32 [C_out], shift (1..31), res_mult (0 without residual), output clamp
    [lo, hi], stride, pad, tensor names, weight_scale float64 [C_out] (informational).
    """
    name: str
    weight: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: int
    res_mult: int
    lo: int
    hi: int
    stride: int
    pad: int
    in_tensor: str
    out_tensor: str
    res_tensor: Optional[str] = None
    weight_scale: Optional[np.ndarray] = None
    groups: int = 1

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[2])

    @property
    def in_channels(self) -> int:
        """Input channels of the conv (weight C_in per group x groups)."""
        return int(self.weight.shape[1]) * int(self.groups)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        k, s, p = self.kernel, self.stride, self.pad
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


@dataclass
class QBlock:
    """A gated residual block, integer gates (`dgfpga.numerics.gates`), geometry.

    kind "basic" (BasicBlock): conv1 (3x3, u8 out, output-gated by `channel_gate`), conv2
    (3x3, u8 out, input-gated, with the residual).
    kind "bottleneck" (official DGNet Bottleneck, docs/quantization.md): conv1 (1x1 at the
    block *input* resolution, u8 out, gated by `channel_gate` (mask_c1) and the spatial mask
    upsampled to the input), `channel_gate2` (mask_c2) evaluated on conv1's masked output,
    conv2 (3x3, stride, u8 out, in-channels mask_c1, out-channels mask_c2), conv3 (1x1,
    u8 out, input-gated by mask_c2, with the residual).
    Both: optional downsample (s8 out, dense); outputs at inactive tiles = the residual.
    kind "inverted_residual" (MobileNetV2, docs/quantization.md "MobileNetV2 blocks"): conv1
    = the optional 1x1 expansion (None when the expand ratio is 1; u8 out, ReLU6), conv2 =
    the depthwise 3x3 (groups = channels, stride, u8 out, ReLU6), conv3 = the linear 1x1
    projection (s8 out; with the residual when the block has one). Only residual blocks
    (stride 1, in == out channels) are gated: `channel_gate` (mask_c) decides the expanded
    channels and the spatial mask (stride 1: input = output resolution) masks all three
    convs. Ungated blocks have no gates (spatial_gate = channel_gate = None, tile 0, grid
    (0, 0)) and run dense.

    identity: no downsample and tied scales (out scale == in scale, res_mult == 2^shift),
    so `y == x` exactly at inactive tiles and the engine may write in place.
    """
    name: str
    conv1: QConv
    conv2: QConv
    downsample: Optional[QConv]
    identity: bool
    tile: int
    grid: tuple[int, int]
    spatial_gate: IntSpatialGate
    channel_gate: IntChannelGate
    in_tensor: str
    out_tensor: str
    kind: str = "basic"
    conv3: Optional[QConv] = None
    channel_gate2: Optional[IntChannelGate] = None

    @property
    def last(self) -> QConv:
        """The conv that writes the block output (with the residual): conv2 or conv3."""
        return self.conv3 if self.kind != "basic" else self.conv2

    @property
    def main_convs(self) -> tuple:
        """The main-path convs in order ([conv1,] conv2[, conv3]; an inverted residual
        without expansion has no conv1)."""
        return tuple(c for c in (self.conv1, self.conv2, self.conv3) if c is not None)

    @property
    def gated(self) -> bool:
        """Whether the block has gates (every basic/bottleneck block; MobileNetV2's residual
        blocks)."""
        return self.spatial_gate is not None


@dataclass
class QStem:
    """The stem conv (+ BN + ReLU, u8 out) and, for ImageNet, the 3x3/s2/pad-1 max-pool
    (applied on the u8 conv output, same scale)."""
    conv: QConv
    maxpool: bool
    out_tensor: str


@dataclass
class QHead:
    """Global sum pool (int) -> int8 fc [K, C] + int32 bias [K] -> int64 logits;
    float logit[k] = logit_int[k] * logit_scale[k] (= s_w[k] * s_x / pool_count)."""
    name: str
    weight: np.ndarray
    bias: np.ndarray
    logit_scale: np.ndarray
    in_tensor: str
    pool_count: int


@dataclass
class QModel:
    """A whole quantized network (DGNet ResNets, MobileNetV2). `tail`: MobileNetV2's
    final 1x1 conv (features.18, u8 out, ReLU6) between the last block and the head;
    None for the ResNets."""
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tensors: dict[str, TensorInfo]
    stem: QStem
    blocks: list[QBlock]
    head: QHead
    meta: dict = field(default_factory=dict)
    tail: Optional[QConv] = None

    @property
    def input_scale(self) -> float:
        return self.tensors[INPUT_TENSOR].scale

    def convs(self) -> list[QConv]:
        """Every conv in execution order (stem, then per block conv1, downsample, conv2
        [, conv3], then the tail conv if any)."""
        out = [self.stem.conv]
        for b in self.blocks:
            main = b.main_convs
            out.append(main[0])
            if b.downsample is not None:
                out.append(b.downsample)
            out.extend(main[1:])
        if self.tail is not None:
            out.append(self.tail)
        return out


# ----------------------------------------------------------------------------- numerics

def round_half_away(v: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero, exactly (no `floor(x + 0.5)` double rounding)."""
    v = np.asarray(v, dtype=np.float64)
    t = np.trunc(v)
    frac = v - t                       # exact in IEEE arithmetic
    return t + np.where(np.abs(frac) >= 0.5, np.sign(v), 0.0)


def quantize_input(images: np.ndarray, scale: float) -> np.ndarray:
    """Normalised float images -> int8: `clamp(round_half_away(float64(x) / scale), -128, 127)`."""
    q = round_half_away(np.asarray(images, dtype=np.float64) / float(scale))
    return np.clip(q, -128, 127).astype(np.int8)


# ----------------------------------------------------------------------------- validation

def _fail(msg: str):
    raise FormatError(msg)


def _check_array(where: str, a, dtype, shape) -> None:
    if not isinstance(a, np.ndarray):
        _fail(f"{where}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        _fail(f"{where}: dtype {a.dtype}, expected {np.dtype(dtype)}")
    if tuple(a.shape) != tuple(shape):
        _fail(f"{where}: shape {tuple(a.shape)}, expected {tuple(shape)}")


def _check_int(where: str, v, lo: int, hi: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
        _fail(f"{where}: {v!r} is not an integer in [{lo}, {hi}]")


def _check_finite(where: str, a) -> None:
    if not np.all(np.isfinite(a)):
        _fail(f"{where}: contains NaN or infinity")


def _tensor(qm: QModel, name, where: str) -> TensorInfo:
    if name not in qm.tensors:
        _fail(f"{where}: unknown tensor {name!r}")
    return qm.tensors[name]


def _validate_conv(qm: QModel, c: QConv) -> None:
    w = c.weight
    if not isinstance(w, np.ndarray) or w.ndim != 4 or w.shape[2] != w.shape[3]:
        _fail(f"{c.name}.weight: expected int8 [C_out, C_in, k, k], got "
              f"{getattr(w, 'shape', None)}")
    co, ci, k, _ = w.shape
    _check_array(f"{c.name}.weight", w, np.int8, (co, ci, k, k))
    _check_int(f"{c.name}.groups", c.groups, 1, 1 << 16)
    if co % c.groups:
        _fail(f"{c.name}: {co} output channels are not a multiple of groups={c.groups}")
    ci *= c.groups
    _check_array(f"{c.name}.bias", c.bias, np.int32, (co,))
    _check_array(f"{c.name}.mult", c.mult, np.int32, (co,))
    if c.weight_scale is not None:
        _check_array(f"{c.name}.weight_scale", c.weight_scale, np.float64, (co,))
        _check_finite(f"{c.name}.weight_scale", c.weight_scale)
    if np.any(c.mult < 0):
        _fail(f"{c.name}.mult: negative multiplier")
    _check_int(f"{c.name}.shift", c.shift, 1, MAX_SHIFT)
    _check_int(f"{c.name}.res_mult", c.res_mult, 0, MULT_LIMIT - 1)
    _check_int(f"{c.name}.stride", c.stride, 1, 8)
    _check_int(f"{c.name}.pad", c.pad, 0, k)
    tin = _tensor(qm, c.in_tensor, f"{c.name}.in_tensor")
    tout = _tensor(qm, c.out_tensor, f"{c.name}.out_tensor")
    if tin.shape[0] != ci:
        _fail(f"{c.name}: weight has {ci} input channels, tensor {c.in_tensor!r} has {tin.shape[0]}")
    if tout.shape[0] != co:
        _fail(f"{c.name}: weight has {co} output channels, tensor {c.out_tensor!r} has {tout.shape[0]}")
    if c.out_hw(*tin.shape[1:]) != tuple(tout.shape[1:]):
        _fail(f"{c.name}: {tin.shape[1:]} input with k={k}, stride={c.stride}, pad={c.pad} gives "
              f"{c.out_hw(*tin.shape[1:])}, but tensor {c.out_tensor!r} is {tout.shape[1:]}")
    if (c.lo, c.hi) != (tout.lo, tout.hi):
        _fail(f"{c.name}: clamp [{c.lo}, {c.hi}] does not match the "
              f"{'s8' if tout.signed else 'u8'} output tensor {c.out_tensor!r}")
    if c.res_tensor is None:
        if c.res_mult != 0:
            _fail(f"{c.name}: res_mult {c.res_mult} without a residual tensor")
    else:
        tres = _tensor(qm, c.res_tensor, f"{c.name}.res_tensor")
        if tuple(tres.shape) != tuple(tout.shape):
            _fail(f"{c.name}: residual {c.res_tensor!r} {tres.shape} does not match output "
                  f"{tout.shape}")
    acc_bound, z_bound = conv_bounds(qm, c)
    if acc_bound >= ACC_LIMIT:
        _fail(f"{c.name}: worst-case accumulator {acc_bound} does not fit int32")
    if z_bound >= Z_LIMIT:
        _fail(f"{c.name}: worst-case requantization sum {z_bound} >= 2^62")


def conv_bounds(qm: QModel, c: QConv) -> tuple[int, int]:
    """The overflow proof of one conv: worst-case `|acc|` (= max_m sum|w[m]| * max|x| +
    max|bias|) and worst-case `|z|` (= |acc| * max mult + max|res| * res_mult +
    2^(shift-1)), as Python ints."""
    co = c.weight.shape[0]
    x_max = qm.tensors[c.in_tensor].max_abs
    res_max = qm.tensors[c.res_tensor].max_abs if c.res_tensor is not None else 0
    acc_bound = int(np.abs(c.weight.astype(np.int64)).reshape(co, -1).sum(axis=1).max(initial=0)) \
        * x_max + int(np.abs(c.bias.astype(np.int64)).max(initial=0))
    z_bound = acc_bound * int(c.mult.astype(np.int64).max(initial=0)) \
        + res_max * int(c.res_mult) + 2 ** (int(c.shift) - 1)
    return acc_bound, z_bound


def validate(qm: QModel) -> None:
    """Check a QModel for internal consistency; raise FormatError naming what is wrong."""
    if not isinstance(qm.arch, str) or not qm.arch:
        _fail("arch: missing")
    if len(qm.input_shape) != 3 or min(qm.input_shape) < 1:
        _fail(f"input_shape: {qm.input_shape} is not [C, H, W]")
    if len(qm.mean) != qm.input_shape[0] or len(qm.std) != qm.input_shape[0]:
        _fail(f"normalization: mean/std need {qm.input_shape[0]} values")
    if not all(math.isfinite(s) and s > 0 for s in qm.std) or \
            not all(math.isfinite(m) for m in qm.mean):
        _fail("normalization: std must be positive and finite, mean finite")
    for name, t in qm.tensors.items():
        if len(t.shape) != 3 or min(t.shape) < 1:
            _fail(f"tensor {name!r}: shape {t.shape} is not [C, H, W]")
        if not (isinstance(t.scale, float) and math.isfinite(t.scale) and t.scale > 0):
            _fail(f"tensor {name!r}: scale {t.scale!r} must be a positive finite float")
    tin = _tensor(qm, INPUT_TENSOR, "input")
    if tuple(tin.shape) != tuple(qm.input_shape) or not tin.signed:
        _fail(f"tensor 'input' must be signed with shape {qm.input_shape}")
    # Stem.
    stem = qm.stem
    if stem.conv.in_tensor != INPUT_TENSOR:
        _fail(f"stem reads {stem.conv.in_tensor!r}, expected 'input'")
    _validate_conv(qm, stem.conv)
    if qm.tensors[stem.conv.out_tensor].signed or stem.conv.res_tensor is not None:
        _fail("stem conv must have an unsigned output and no residual")
    if stem.maxpool:
        c, h, w = qm.tensors[stem.conv.out_tensor].shape
        want = (c, (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1)
        tout = _tensor(qm, stem.out_tensor, "stem.out_tensor")
        if tuple(tout.shape) != want or tout.signed or tout.scale != qm.tensors[stem.conv.out_tensor].scale:
            _fail(f"stem max-pool output {stem.out_tensor!r} must be u8 {want} with the conv's scale")
    elif stem.out_tensor != stem.conv.out_tensor:
        _fail("stem without max-pool: out_tensor must be the conv's output")
    prev = stem.out_tensor
    if not qm.blocks:
        _fail("blocks: the model has no blocks")
    for b in qm.blocks:
        if b.in_tensor != prev:
            _fail(f"{b.name}: reads {b.in_tensor!r}, but the previous layer writes {prev!r}")
        _validate_block(qm, b)
        prev = b.out_tensor
    if qm.tail is not None:
        t = qm.tail
        if t.in_tensor != prev:
            _fail(f"{t.name}: reads {t.in_tensor!r}, but the last block writes {prev!r}")
        _validate_conv(qm, t)
        if qm.tensors[t.out_tensor].signed or t.res_tensor is not None:
            _fail(f"{t.name}: the tail conv must have an unsigned output and no residual")
        prev = t.out_tensor
    # Head.
    h = qm.head
    if h.in_tensor != prev:
        _fail(f"{h.name}: reads {h.in_tensor!r}, but the last layer writes {prev!r}")
    tx = qm.tensors[h.in_tensor]
    k = qm.num_classes
    _check_int("num_classes", k, 1, 1 << 20)
    _check_array(f"{h.name}.weight", h.weight, np.int8, (k, tx.shape[0]))
    _check_array(f"{h.name}.bias", h.bias, np.int32, (k,))
    _check_array(f"{h.name}.logit_scale", h.logit_scale, np.float64, (k,))
    if not np.all(np.isfinite(h.logit_scale)) or np.any(h.logit_scale <= 0):
        _fail(f"{h.name}.logit_scale: must be positive and finite")
    if h.pool_count != tx.shape[1] * tx.shape[2]:
        _fail(f"{h.name}.pool_count {h.pool_count} != {tx.shape[1]}x{tx.shape[2]}")


def _validate_block(qm: QModel, b: QBlock) -> None:
    if b.kind not in BLOCK_KINDS:
        _fail(f"{b.name}: block kind {b.kind!r} is not one of {', '.join(BLOCK_KINDS)}")
    if b.kind == "inverted_residual":
        return _validate_inverted_residual(qm, b)
    bottleneck = b.kind == "bottleneck"
    if b.conv1 is None or b.spatial_gate is None or b.channel_gate is None:
        _fail(f"{b.name}: a {b.kind} block needs conv1 and its gates")
    if bottleneck != (b.conv3 is not None) or bottleneck != (b.channel_gate2 is not None):
        _fail(f"{b.name}: a {b.kind} block {'needs' if bottleneck else 'has no'} conv3 and "
              f"second channel gate")
    main, ds, last = b.main_convs, b.downsample, b.last
    for c in main + ((ds,) if ds is not None else ()):
        _validate_conv(qm, c)
    chain = [b.in_tensor] + [c.out_tensor for c in main]
    if any(c.in_tensor != t for c, t in zip(main, chain)) or last.out_tensor != b.out_tensor:
        _fail(f"{b.name}: convs are not chained in -> "
              f"{' -> '.join(c.name.rsplit('.', 1)[-1] for c in main)} -> out")
    if any(qm.tensors[c.out_tensor].signed for c in main):
        _fail(f"{b.name}: {', '.join(c.name.rsplit('.', 1)[-1] for c in main)} outputs must be "
              f"unsigned (ReLU)")
    for c in main[:-1]:
        if c.res_tensor is not None:
            _fail(f"{b.name}.{c.name.rsplit('.', 1)[-1]}: must not have a residual")
    lname = last.name.rsplit(".", 1)[-1]
    if ds is not None:
        if ds.in_tensor != b.in_tensor or ds.res_tensor is not None or \
                not qm.tensors[ds.out_tensor].signed:
            _fail(f"{b.name}.downsample: must read the block input and write a signed tensor")
        if last.res_tensor != ds.out_tensor:
            _fail(f"{b.name}.{lname}: residual must be the downsample output {ds.out_tensor!r}")
    elif last.res_tensor != b.in_tensor:
        _fail(f"{b.name}.{lname}: residual must be the block input {b.in_tensor!r}")
    if b.identity:
        tied = (ds is None and qm.tensors[b.in_tensor].scale == qm.tensors[b.out_tensor].scale
                and last.res_mult == 2 ** last.shift)
        if not tied:
            _fail(f"{b.name}: identity (in-place) flag needs no downsample, equal input/output "
                  f"scales and res_mult == 2^shift")
    _check_int(f"{b.name}.tile", b.tile, 1, 1 << 16)
    _, ho, wo = qm.tensors[b.out_tensor].shape
    want = (-(-ho // b.tile), -(-wo // b.tile))
    if tuple(b.grid) != want:
        _fail(f"{b.name}: grid {tuple(b.grid)} != ceil(output {ho}x{wo} / tile {b.tile}) = {want}")
    cin, hin, win = qm.tensors[b.in_tensor].shape
    if bottleneck:
        if b.conv1.kernel != 1 or b.conv1.stride != 1 or b.conv3.kernel != 1 or b.conv3.stride != 1:
            _fail(f"{b.name}: Bottleneck conv1 and conv3 must be 1x1 with stride 1")
        if tuple(qm.tensors[b.conv1.out_tensor].shape[1:]) != (hin, win):
            _fail(f"{b.name}.conv1: output must be at the block input resolution {hin}x{win}")
        validate_gates(b.name, b.spatial_gate, b.channel_gate, cin, b.conv1.out_channels)
        validate_channel_gate(f"{b.name}.mask_c2", b.channel_gate2, b.conv1.out_channels,
                              b.conv2.out_channels)
    else:
        validate_gates(b.name, b.spatial_gate, b.channel_gate, cin, b.conv1.out_channels)


def _validate_inverted_residual(qm: QModel, b: QBlock) -> None:
    """A MobileNetV2 block: [expand 1x1 (u8)] -> depthwise 3x3 (u8, groups = channels) ->
    project 1x1 (s8, residual only when gated); gates exactly on the residual blocks."""
    dw, pw = b.conv2, b.conv3
    if pw is None or b.downsample is not None or b.channel_gate2 is not None:
        _fail(f"{b.name}: an inverted residual block needs conv3 (the projection) and has no "
              f"downsample and no second channel gate")
    main = b.main_convs
    for c in main:
        _validate_conv(qm, c)
    chain = [b.in_tensor] + [c.out_tensor for c in main]
    if any(c.in_tensor != t for c, t in zip(main, chain)) or pw.out_tensor != b.out_tensor:
        _fail(f"{b.name}: convs are not chained in -> "
              f"{' -> '.join(c.name.rsplit('.', 1)[-1] for c in main)} -> out")
    if b.conv1 is not None and (b.conv1.kernel != 1 or b.conv1.stride != 1
                                or qm.tensors[b.conv1.out_tensor].signed):
        _fail(f"{b.name}.conv1: the expansion must be a 1x1, stride-1 conv with a u8 output")
    hidden = dw.out_channels
    if dw.kernel != 3 or dw.groups != hidden or dw.in_channels != hidden or             qm.tensors[dw.out_tensor].signed:
        _fail(f"{b.name}.conv2: must be a depthwise 3x3 (groups = {hidden} channels) with a "
              f"u8 output")
    if pw.kernel != 1 or pw.stride != 1 or not qm.tensors[pw.out_tensor].signed:
        _fail(f"{b.name}.conv3: the projection must be a 1x1, stride-1 conv with an s8 "
              f"output (linear)")
    cin, hin, win = qm.tensors[b.in_tensor].shape
    cout, ho, wo = qm.tensors[b.out_tensor].shape
    residual = dw.stride == 1 and cin == cout
    if b.gated != residual:
        _fail(f"{b.name}: an inverted residual block is gated exactly when it has a residual "
              f"(stride 1, in == out channels)")
    for c in main[:-1]:
        if c.res_tensor is not None:
            _fail(f"{b.name}.{c.name.rsplit('.', 1)[-1]}: must not have a residual")
    if not residual:
        if pw.res_tensor is not None:
            _fail(f"{b.name}.conv3: a block without residual connection has no res_tensor")
        if b.channel_gate is not None or b.identity or b.tile != 0 or tuple(b.grid) != (0, 0):
            _fail(f"{b.name}: an ungated block has no gates, tile 0, grid (0, 0), identity "
                  f"false")
        return
    if pw.res_tensor != b.in_tensor:
        _fail(f"{b.name}.conv3: residual must be the block input {b.in_tensor!r}")
    if b.identity and not (qm.tensors[b.in_tensor].scale == qm.tensors[b.out_tensor].scale
                           and pw.res_mult == 2 ** pw.shift):
        _fail(f"{b.name}: identity (in-place) flag needs equal input/output scales and "
              f"res_mult == 2^shift")
    _check_int(f"{b.name}.tile", b.tile, 1, 1 << 16)
    want = (-(-ho // b.tile), -(-wo // b.tile))
    if tuple(b.grid) != want:
        _fail(f"{b.name}: grid {tuple(b.grid)} != ceil(output {ho}x{wo} / tile {b.tile}) = {want}")
    validate_gates(b.name, b.spatial_gate, b.channel_gate, cin, hidden)


def validate_gates(name: str, sg, cg, cin: int, cout: int) -> None:
    """The integer gates of block `name` (docs/qmodel.md): types, dtypes, shapes, ranges
    (int16 weights in +-GATE_WEIGHT_MAX, |bias|, |o1|, |b2| < GATE_BIAS_LIMIT, |m1| < 2^31,
    shift 1..62, 1 <= hidden <= C_in) and the channel gate's overflow bound (< 2^62)."""
    wmax, blim = _program.GATE_WEIGHT_MAX, _program.GATE_BIAS_LIMIT
    if not isinstance(sg, IntSpatialGate) or not isinstance(cg, IntChannelGate):
        _fail(f"{name}: gates must be IntSpatialGate / IntChannelGate, got "
              f"{type(sg).__name__} / {type(cg).__name__}")
    _check_array(f"{name}.mask_s.weight", sg.weight, np.int16, (cin, 3, 3))
    _check_range(f"{name}.mask_s.weight", sg.weight, wmax)
    _check_int(f"{name}.mask_s.bias", sg.bias, -blim + 1, blim - 1)
    validate_channel_gate(f"{name}.mask_c", cg, cin, cout)


def validate_channel_gate(where: str, cg, cin: int, cout: int) -> None:
    """One integer channel gate `where` (e.g. "layer1.0.mask_c"): the checks of
    `validate_gates` for its arrays, shift and overflow bound."""
    wmax, blim = _program.GATE_WEIGHT_MAX, _program.GATE_BIAS_LIMIT
    if not isinstance(cg, IntChannelGate):
        _fail(f"{where}: must be an IntChannelGate, got {type(cg).__name__}")
    w1 = cg.w1
    if not isinstance(w1, np.ndarray) or w1.ndim != 2 or not 1 <= w1.shape[0] <= cin:
        _fail(f"{where}.w1: expected int16 [hidden, {cin}] with 1 <= hidden <= {cin}, "
              f"got {getattr(w1, 'shape', None)}")
    hidden = w1.shape[0]
    _check_array(f"{where}.w1", w1, np.int16, (hidden, cin))
    _check_range(f"{where}.w1", w1, wmax)
    _check_array(f"{where}.m1", cg.m1, np.int32, (hidden,))
    _check_range(f"{where}.m1", cg.m1, 2 ** 31 - 1)
    _check_array(f"{where}.o1", cg.o1, np.int64, (hidden,))
    _check_range(f"{where}.o1", cg.o1, blim - 1)
    _check_int(f"{where}.shift", cg.shift, 1, _gates.MAX_SHIFT)
    _check_array(f"{where}.w2", cg.w2, np.int16, (cout, hidden))
    _check_range(f"{where}.w2", cg.w2, wmax)
    _check_array(f"{where}.b2", cg.b2, np.int64, (cout,))
    _check_range(f"{where}.b2", cg.b2, blim - 1)
    bound = _gates.channel_gate_bound(cg)
    if bound >= _gates.Z_LIMIT:
        _fail(f"{where}: worst-case |A*m1| + |o1| = {bound} >= 2^62 (m1/o1 too large "
              f"for shift {cg.shift})")


def _check_range(where: str, a: np.ndarray, limit: int) -> None:
    if a.size and (int(a.min()) < -limit or int(a.max()) > limit):   # no abs(): int64 min
        _fail(f"{where}: values must lie in [-{limit}, {limit}]")


# ----------------------------------------------------------------------------- (de)serialisation

_CONV_FIELDS = ("shift", "res_mult", "lo", "hi", "stride", "pad", "in_tensor", "out_tensor",
                "res_tensor")


def _conv_header(c: QConv) -> dict:
    d = {"name": c.name, "kernel": c.kernel}
    d.update({k: (int(getattr(c, k)) if isinstance(getattr(c, k), (int, np.integer))
                  else getattr(c, k)) for k in _CONV_FIELDS})
    if c.groups != 1:                   # schema 4; absent means 1
        d["groups"] = int(c.groups)
    return d


def _conv_arrays(c: QConv) -> dict:
    a = {f"{c.name}.weight": c.weight, f"{c.name}.bias": c.bias, f"{c.name}.mult": c.mult}
    if c.weight_scale is not None:
        a[f"{c.name}.weight_scale"] = c.weight_scale
    return a


def _block_arrays(b: QBlock) -> dict:
    a = {}
    for c in b.main_convs + ((b.downsample,) if b.downsample else ()):
        a.update(_conv_arrays(c))
    if not b.gated:
        return a
    a[f"{b.name}.mask_s.weight"] = b.spatial_gate.weight
    a[f"{b.name}.mask_s.bias"] = np.array([b.spatial_gate.bias], dtype=np.int64)
    for n in GATE_ARRAYS:
        a[f"{b.name}.mask_c.{n}"] = getattr(b.channel_gate, n)
    if b.channel_gate2 is not None:
        for n in GATE_ARRAYS:
            a[f"{b.name}.mask_c2.{n}"] = getattr(b.channel_gate2, n)
    return a


# The channel gate's arrays in a .qnpz (`<block>.mask_c.<name>`) and their dtypes; its
# shift is the header field `blocks[i].mask_c_shift`.
GATE_ARRAYS = {"w1": np.int16, "m1": np.int32, "o1": np.int64, "w2": np.int16, "b2": np.int64}


def _digest(a: np.ndarray) -> str:
    """SHA-256 of the C-order bytes (hashed in place: no copy of a contiguous array)."""
    a = np.ascontiguousarray(a)
    return hashlib.sha256(memoryview(a.reshape(-1).view(np.uint8))).hexdigest()


def _model_arrays(qm: QModel) -> dict[str, np.ndarray]:
    arrays = _conv_arrays(qm.stem.conv)
    for b in qm.blocks:
        arrays.update(_block_arrays(b))
    if qm.tail is not None:
        arrays.update(_conv_arrays(qm.tail))
    h = qm.head
    arrays.update({f"{h.name}.weight": h.weight, f"{h.name}.bias": h.bias,
                   f"{h.name}.logit_scale": h.logit_scale})
    return arrays


def file_version(qm: QModel) -> int:
    """The schema version a model is written with: 4 (SCHEMA_VERSION) when it needs
    version-4 fields (inverted residual blocks, conv groups, a tail conv), else 3, so the
    files of BasicBlock and Bottleneck models stay byte-identical to version-3 writers'."""
    if qm.tail is not None or any(b.kind == "inverted_residual" for b in qm.blocks) \
            or any(c.groups != 1 for c in qm.convs()):
        return SCHEMA_VERSION
    return 3


def _block_header(b: QBlock) -> dict:
    d = {"name": b.name, "identity": bool(b.identity), "tile": int(b.tile),
         "grid": [int(g) for g in b.grid], "in_tensor": b.in_tensor,
         "out_tensor": b.out_tensor,
         "conv1": _conv_header(b.conv1) if b.conv1 is not None else None,
         "conv2": _conv_header(b.conv2),
         "downsample": _conv_header(b.downsample) if b.downsample else None,
         "kind": b.kind}
    if b.gated:
        d["mask_c_shift"] = int(b.channel_gate.shift)
    if b.kind != "basic":
        d["conv3"] = _conv_header(b.conv3)
    if b.kind == "bottleneck":
        d["mask_c2_shift"] = int(b.channel_gate2.shift)
    return d


def to_arrays(qm: QModel) -> dict[str, np.ndarray]:
    """Header (as a uint8 array under `__header__`) and all arrays, ready for `np.savez`."""
    validate(qm)
    arrays = _model_arrays(qm)
    h = qm.head
    header = {
        "format": FORMAT_NAME,
        "schema_version": file_version(qm),
        "arch": qm.arch,
        "input_shape": list(qm.input_shape),
        "num_classes": int(qm.num_classes),
        "normalization": {"mean": [float(m) for m in qm.mean], "std": [float(s) for s in qm.std]},
        "input_rounding": INPUT_ROUNDING,
        "tensors": {n: {"shape": [int(v) for v in t.shape], "scale": float(t.scale),
                        "signed": bool(t.signed)} for n, t in qm.tensors.items()},
        "stem": {"conv": _conv_header(qm.stem.conv), "maxpool": bool(qm.stem.maxpool),
                 "out_tensor": qm.stem.out_tensor},
        "blocks": [_block_header(b) for b in qm.blocks],
        **({"tail": _conv_header(qm.tail)} if qm.tail is not None else {}),
        "head": {"name": h.name, "in_tensor": h.in_tensor, "pool_count": int(h.pool_count)},
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _digest(v)}
                   for k, v in arrays.items()},
        "meta": qm.meta,
    }
    try:
        raw = json.dumps(header, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
    except ValueError as exc:
        _fail(f"header: {exc} (a value in meta or the normalization is NaN or infinite)")
    if len(raw) > MAX_HEADER_BYTES:
        _fail(f"header: {len(raw)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit (meta too large?)")
    arrays[HEADER_KEY] = np.frombuffer(raw, dtype=np.uint8)
    return arrays


def save_qmodel(qm: QModel, path) -> Path:
    """Validate and write `qm` to `path` (a `.npz`, conventionally named `*.qnpz`)."""
    arrays = to_arrays(qm)
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def _get(d: dict, key: str, typ, where: str):
    if not isinstance(d, dict) or key not in d:
        _fail(f"header: {where}: missing field {key!r}")
    v = d[key]
    if typ is not None and not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        _fail(f"header: {where}.{key}: expected {getattr(typ, '__name__', typ)}, got {v!r}")
    return v


def _conv_from(h: dict, arrays: dict, where: str) -> QConv:
    name = _get(h, "name", str, where)
    ints = {k: _get(h, k, int, f"{where}") for k in ("shift", "res_mult", "lo", "hi", "stride", "pad")}
    res = h.get("res_tensor")
    if res is not None and not isinstance(res, str):
        _fail(f"header: {where}.res_tensor: expected a tensor name or null")
    groups = h.get("groups", 1)
    if isinstance(groups, bool) or not isinstance(groups, int):
        _fail(f"header: {where}.groups: expected int, got {groups!r}")
    c = QConv(name=name, weight=arrays.get(f"{name}.weight"), bias=arrays.get(f"{name}.bias"),
              mult=arrays.get(f"{name}.mult"), in_tensor=_get(h, "in_tensor", str, where),
              out_tensor=_get(h, "out_tensor", str, where), res_tensor=res,
              weight_scale=arrays.get(f"{name}.weight_scale"), groups=groups, **ints)
    if c.weight is None:
        _fail(f"array {name}.weight missing")
    if _get(h, "kernel", int, where) != c.weight.shape[-1]:
        _fail(f"{name}: header kernel {h['kernel']} != weight kernel {c.weight.shape[-1]}")
    return c


def _gates_from(name: str, arrays: dict, shift: int) -> tuple[IntSpatialGate, IntChannelGate]:
    """A block's integer gates from its arrays: each array's dtype and rank checked before
    construction (which would convert), ranges by the constructors, everything again (shapes
    against the tensors, the overflow bound) by `validate`."""
    want = {"mask_s.weight": (np.int16, 3), "mask_s.bias": (np.int64, 1)}
    for k, (dt, nd) in want.items():
        a = arrays.get(f"{name}.{k}")
        if a is None:
            _fail(f"array {name}.{k} missing")
        if a.dtype != np.dtype(dt) or a.ndim != nd:
            _fail(f"{name}.{k}: expected {np.dtype(dt)} with {nd} dimension(s), got {a.dtype} "
                  f"{list(a.shape)}")
    sb = arrays[f"{name}.mask_s.bias"]
    if sb.shape != (1,):
        _fail(f"{name}.mask_s.bias: expected int64 [1], got {list(sb.shape)}")
    try:
        sg = IntSpatialGate(arrays[f"{name}.mask_s.weight"], int(sb[0]))
    except ValueError as exc:
        _fail(f"{name}.mask_s: {exc}")
    return sg, _channel_gate_from(f"{name}.mask_c", arrays, shift)


def _channel_gate_from(prefix: str, arrays: dict, shift: int) -> IntChannelGate:
    """The channel gate stored under `<prefix>.<w1|m1|o1|w2|b2>`: dtype and rank checked
    before construction."""
    for k, dt in GATE_ARRAYS.items():
        a = arrays.get(f"{prefix}.{k}")
        nd = 2 if k in ("w1", "w2") else 1
        if a is None:
            _fail(f"array {prefix}.{k} missing")
        if a.dtype != np.dtype(dt) or a.ndim != nd:
            _fail(f"{prefix}.{k}: expected {np.dtype(dt)} with {nd} dimension(s), got {a.dtype} "
                  f"{list(a.shape)}")
    try:
        return IntChannelGate(*(arrays[f"{prefix}.{k}"] for k in ("w1", "m1", "o1")), shift,
                              *(arrays[f"{prefix}.{k}"] for k in ("w2", "b2")))
    except ValueError as exc:
        _fail(f"{prefix}: {exc}")


def parse_header(raw: bytes, what: str = HEADER_KEY) -> dict:
    """The JSON header, parsed within limits: at most MAX_HEADER_BYTES, nesting at most
    MAX_JSON_DEPTH, integers of at most MAX_INT_DIGITS digits, no NaN/Infinity (all are
    refused before or while parsing, never after building a huge object). `what` names the
    document in messages (also used for bundle manifests and output markers)."""
    if len(raw) > MAX_HEADER_BYTES:
        _fail(f"{what}: {len(raw)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    depth = 0
    in_str = escaped = False
    for ch in raw:                                   # bytes: ints; JSON structure is ASCII
        if in_str:
            if escaped:
                escaped = False
            elif ch == 0x5C:                         # backslash
                escaped = True
            elif ch == 0x22:                         # quote
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):                     # [ {
            depth += 1
            if depth > MAX_JSON_DEPTH:
                _fail(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in (0x5D, 0x7D):
            depth -= 1

    def _int(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            _fail(f"{what}: integer with {len(text.lstrip('-'))} digits (limit "
                  f"{MAX_INT_DIGITS})")
        return int(text)

    def _const(name: str):
        _fail(f"{what}: {name} is not allowed (every number must be finite)")

    try:
        return json.loads(raw.decode("utf-8"), parse_int=_int, parse_constant=_const)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _fail(f"{what} is not valid UTF-8 JSON ({exc})")


def from_arrays(arrays: dict[str, np.ndarray]) -> QModel:
    """Parse and validate the arrays of a `.qnpz` (inverse of `to_arrays`)."""
    if HEADER_KEY not in arrays:
        _fail("not a dgfpga quantized model: no __header__ entry")
    raw = arrays.pop(HEADER_KEY)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        _fail("__header__ must be a 1-D uint8 array (UTF-8 JSON)")
    return _from_header(parse_header(raw.tobytes()), arrays)


def _check_format(hdr) -> None:
    if not isinstance(hdr, dict) or hdr.get("format") != FORMAT_NAME:
        _fail(f"header: format is {hdr.get('format') if isinstance(hdr, dict) else None!r}, "
              f"expected {FORMAT_NAME!r}")
    ver = hdr.get("schema_version")
    if ver not in READ_VERSIONS:
        why = (" (version 1 files carry float32 gates; version 2 carries the integer gates "
               "the engine evaluates)" if ver == 1 else "")
        _fail(f"header: schema version {ver!r} is not supported (this dgfpga reads versions "
              f"{', '.join(map(str, READ_VERSIONS))}){why}; re-run `dgfpga quantize` on the checkpoint to write a "
              f"current file")
    if hdr.get("input_rounding") != INPUT_ROUNDING:
        _fail(f"header: input_rounding {hdr.get('input_rounding')!r} unsupported")


def array_table(hdr: dict) -> dict[str, tuple[np.dtype, tuple[int, ...], int]]:
    """The header's array list as {name: (dtype, shape, data bytes)}: names, dtypes (numeric,
    from ARRAY_DTYPES), shapes (at most MAX_NDIM non-negative integers) checked, byte sizes
    computed exactly (Python integers, no overflow)."""
    listed = _get(hdr, "arrays", dict, "header")
    if len(listed) >= MAX_MEMBERS:
        _fail(f"header: lists {len(listed)} arrays (limit {MAX_MEMBERS - 1})")
    table = {}
    for k, spec in listed.items():
        if not k or k == HEADER_KEY or "/" in k or "\\" in k:
            _fail(f"header: array name {k!r} is not allowed")
        if not isinstance(spec, dict) or spec.get("dtype") not in ARRAY_DTYPES:
            _fail(f"header: array {k}: dtype "
                  f"{spec.get('dtype') if isinstance(spec, dict) else spec!r} is not one of "
                  f"{', '.join(sorted(ARRAY_DTYPES))}")
        shape = spec.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 40 for v in shape):
            _fail(f"header: array {k}: shape {shape!r} is not a list of at most {MAX_NDIM} "
                  "non-negative integers")
        dt = np.dtype(spec["dtype"])
        table[k] = (dt, tuple(shape), math.prod(shape) * dt.itemsize)
    return table


def _from_header(hdr, arrays: dict[str, np.ndarray]) -> QModel:
    """Build and validate the QModel of a parsed header and its arrays."""
    _check_format(hdr)
    # Arrays: exactly the listed ones, with the listed dtype, shape and digest.
    array_table(hdr)
    listed = _get(hdr, "arrays", dict, "header")
    missing = sorted(set(listed) - set(arrays))
    extra = sorted(set(arrays) - set(listed))
    if missing:
        _fail(f"arrays missing from the file: {', '.join(missing[:5])}")
    if extra:
        _fail(f"arrays not listed in the header: {', '.join(extra[:5])}")
    for k, spec in listed.items():
        a = arrays[k]
        if not isinstance(spec, dict) or str(a.dtype) != spec.get("dtype") \
                or list(a.shape) != spec.get("shape"):
            _fail(f"array {k}: {a.dtype} {list(a.shape)} does not match the header "
                  f"({spec.get('dtype') if isinstance(spec, dict) else spec})")
        if _digest(a) != spec.get("sha256"):
            _fail(f"array {k}: SHA-256 mismatch (the file was modified or corrupted)")
    try:
        tensors = {}
        for n, t in _get(hdr, "tensors", dict, "header").items():
            shape = _get(t, "shape", list, f"tensors.{n}")
            if len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
                _fail(f"header: tensors.{n}.shape must be 3 integers")
            scale = _get(t, "scale", (int, float), f"tensors.{n}")
            tensors[n] = TensorInfo(shape=tuple(shape), scale=float(scale),
                                    signed=_get(t, "signed", bool, f"tensors.{n}"))
        st = _get(hdr, "stem", dict, "header")
        stem = QStem(conv=_conv_from(_get(st, "conv", dict, "stem"), arrays, "stem.conv"),
                     maxpool=_get(st, "maxpool", bool, "stem"),
                     out_tensor=_get(st, "out_tensor", str, "stem"))
        blocks = []
        for i, bh in enumerate(_get(hdr, "blocks", list, "header")):
            where = f"blocks[{i}]"
            name = _get(bh, "name", str, where)
            ds = bh.get("downsample")
            grid = _get(bh, "grid", list, where)
            if len(grid) != 2 or not all(isinstance(g, int) for g in grid):
                _fail(f"header: {where}.grid must be 2 integers")
            kind = bh.get("kind", "basic") if hdr["schema_version"] >= 3 else "basic"
            kinds = BLOCK_KINDS if hdr["schema_version"] >= 4 else BLOCK_KINDS[:2]
            if kind not in kinds:
                _fail(f"header: {where}.kind {kind!r} is not one of {', '.join(kinds)} "
                      f"(schema version {hdr['schema_version']})")
            gated = kind != "inverted_residual" or "mask_c_shift" in bh
            sg, cg = (_gates_from(name, arrays, _get(bh, "mask_c_shift", int, where))
                      if gated else (None, None))
            extra = {}
            if kind != "basic":
                extra["conv3"] = _conv_from(_get(bh, "conv3", dict, where), arrays,
                                            f"{where}.conv3")
            if kind == "bottleneck":
                extra["channel_gate2"] = _channel_gate_from(
                    f"{name}.mask_c2", arrays, _get(bh, "mask_c2_shift", int, where))
            c1h = bh.get("conv1") if kind == "inverted_residual" else _get(bh, "conv1", dict,
                                                                               where)
            if c1h is not None and not isinstance(c1h, dict):
                _fail(f"header: {where}.conv1: expected a conv or null")
            blocks.append(QBlock(kind=kind, **extra,
                name=name,
                conv1=_conv_from(c1h, arrays, f"{where}.conv1") if c1h is not None else None,
                conv2=_conv_from(_get(bh, "conv2", dict, where), arrays, f"{where}.conv2"),
                downsample=_conv_from(ds, arrays, f"{where}.downsample") if ds is not None else None,
                identity=_get(bh, "identity", bool, where), tile=_get(bh, "tile", int, where),
                grid=tuple(grid), spatial_gate=sg, channel_gate=cg,
                in_tensor=_get(bh, "in_tensor", str, where),
                out_tensor=_get(bh, "out_tensor", str, where)))
        tail = None
        if hdr["schema_version"] >= 4 and hdr.get("tail") is not None:
            tail = _conv_from(_get(hdr, "tail", dict, "header"), arrays, "tail")
        hh = _get(hdr, "head", dict, "header")
        hname = _get(hh, "name", str, "head")
        for k in ("weight", "bias", "logit_scale"):
            if f"{hname}.{k}" not in arrays:
                _fail(f"array {hname}.{k} missing")
        head = QHead(name=hname, weight=arrays[f"{hname}.weight"], bias=arrays[f"{hname}.bias"],
                     logit_scale=arrays[f"{hname}.logit_scale"],
                     in_tensor=_get(hh, "in_tensor", str, "head"),
                     pool_count=_get(hh, "pool_count", int, "head"))
        norm = _get(hdr, "normalization", dict, "header")
        ishape = _get(hdr, "input_shape", list, "header")
        qm = QModel(arch=_get(hdr, "arch", str, "header"), input_shape=tuple(ishape),
                    num_classes=_get(hdr, "num_classes", int, "header"),
                    mean=tuple(float(v) for v in _get(norm, "mean", list, "normalization")),
                    std=tuple(float(v) for v in _get(norm, "std", list, "normalization")),
                    tensors=tensors, stem=stem, blocks=blocks, head=head,
                    meta=hdr.get("meta", {}), tail=tail)
    except FormatError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        _fail(f"header is malformed ({type(exc).__name__}: {exc})")
    validate(qm)
    unused = sorted(set(listed) - set(_model_arrays(qm)))
    if unused:
        _fail(f"arrays not used by the model: {', '.join(unused[:5])}")
    return qm


def max_array_bytes() -> int:
    """The cap on a `.qnpz`'s total declared array bytes: MAX_ARRAY_BYTES, or the value of
    the environment variable DGFPGA_QMODEL_MAX_BYTES (a positive integer)."""
    env = os.environ.get(MAX_BYTES_ENV)
    if env is None:
        return MAX_ARRAY_BYTES
    try:
        v = int(env)
        if v <= 0:
            raise ValueError
    except ValueError:
        _fail(f"{MAX_BYTES_ENV}={env!r} is not a positive integer (bytes)")
    return v


def _eocd(f, size: int) -> tuple[int, int]:
    """(entries, central directory size) from the zip's end-of-central-directory record,
    read before `zipfile` builds one object per entry."""
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) - i < 22:
        _fail("not a readable zip archive: no end-of-central-directory record (truncated, or "
              "not a .qnpz/.npz at all)")
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[i:i + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        _fail("ZIP64 archive (more than 65535 members or 4 GiB): larger than any quantized model")
    return entries, cd_size


def _npy_preamble(f, member: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, fortran_order, preamble bytes) of the `.npy` member open in `f`."""
    from numpy.lib import format as npy
    major, minor = npy.read_magic(f)
    if (major, minor) == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f)
    elif (major, minor) in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(f)
    else:
        _fail(f"{member}: unsupported .npy version {major}.{minor}")
    return dtype, tuple(shape), bool(fortran), f.tell()


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dtype: np.dtype,
                 shape: tuple[int, ...], nbytes: int) -> np.ndarray:
    """Decompress one member, reading at most its declared size (zipfile stops there and
    checks the CRC, so a stream holding more than its directory entry says is refused)."""
    with zf.open(info) as f:
        got_dtype, got_shape, fortran, pre = _npy_preamble(f, info.filename)
        if got_dtype != dtype or got_shape != shape:
            _fail(f"array {info.filename[:-4]}: the file holds {got_dtype} {list(got_shape)}, "
                  f"the header lists {dtype} {list(shape)}")
        if info.file_size != pre + nbytes:
            _fail(f"array {info.filename[:-4]}: member size {info.file_size} != "
                  f"{pre} + {nbytes} data bytes")
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:                  # 1 MiB reads: no second full-size copy
            chunk = f.read(min(nbytes - got, _READ_CHUNK))
            if not chunk:
                _fail(f"array {info.filename[:-4]}: truncated ({got} of {nbytes} bytes)")
            view[got:got + len(chunk)] = chunk
            got += len(chunk)
    a = np.frombuffer(buf, dtype=dtype)
    if fortran:
        return a.reshape(shape[::-1]).transpose()
    return a.reshape(shape)


def _load_bounded(path: Path, cap: int) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a `.qnpz`, every limit checked before the bytes it guards are
    read: file size, member count, the header member, then every member against the
    header's array table (names, dtypes, shapes -> exact sizes, compression), then the
    arrays one by one with reads bounded by their declared sizes."""
    size = path.stat().st_size
    file_cap = cap + MAX_HEADER_BYTES + 16 * 2 ** 20
    if size > file_cap:
        _fail(f"file is {size} bytes, more than the {file_cap}-byte limit (arrays are capped "
              f"at {cap} bytes; raise {MAX_BYTES_ENV} if this model is really that large)")
    with open(path, "rb") as f:
        entries, cd_size = _eocd(f, size)
        if entries > MAX_MEMBERS:
            _fail(f"the zip lists {entries} members (limit {MAX_MEMBERS})")
        if cd_size > min(size, entries * 4096 + 22):
            _fail(f"the zip directory of {entries} members is {cd_size} bytes: corrupt")
        f.seek(0)
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            _fail("the zip holds two members with the same name")
        by_name = {i.filename: i for i in infos}
        for i in infos:
            if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                _fail(f"member {i.filename}: compression method {i.compress_type} is not "
                      "allowed (stored or deflated only)")
            if i.flag_bits & 0x1:
                _fail(f"member {i.filename}: encrypted")
        hinfo = by_name.get(HEADER_KEY + ".npy")
        if hinfo is None:
            _fail("not a dgfpga quantized model: no __header__ entry")
        if hinfo.file_size > MAX_HEADER_BYTES + _NPY_PREAMBLE_MAX:
            _fail(f"__header__: {hinfo.file_size} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
        with zf.open(hinfo) as hf:
            dt, shape, _, pre = _npy_preamble(hf, hinfo.filename)
            if dt != np.uint8 or len(shape) != 1:
                _fail("__header__ must be a 1-D uint8 array (UTF-8 JSON)")
        raw = _read_member(zf, hinfo, np.dtype(np.uint8), shape, hinfo.file_size - pre)
        hdr = parse_header(raw.tobytes())
        _check_format(hdr)
        table = array_table(hdr)
        total = sum(n for _, _, n in table.values())
        if total > cap:
            _fail(f"header declares {total} bytes of arrays, more than the {cap}-byte limit "
                  f"(raise {MAX_BYTES_ENV} if this model is really that large)")
        members = set(by_name) - {hinfo.filename}
        wanted = {k + ".npy" for k in table}
        missing = sorted(k[:-4] for k in wanted - members)
        extra = sorted(m[:-4] if m.endswith(".npy") else m for m in members - wanted)
        if missing:
            _fail(f"arrays missing from the file: {', '.join(missing[:5])}")
        if extra:
            _fail(f"arrays not listed in the header: {', '.join(extra[:5])}")
        for k, (dt, shape, nbytes) in table.items():      # sizes, before decompressing any
            fs = by_name[k + ".npy"].file_size
            if not nbytes + 10 <= fs <= nbytes + _NPY_PREAMBLE_MAX:
                _fail(f"array {k}: the zip directory says {fs} bytes, but {dt} {list(shape)} "
                      f"needs {nbytes} + a .npy header (the file was modified or corrupted)")
        arrays = {k: _read_member(zf, by_name[k + ".npy"], dt, shape, nbytes)
                  for k, (dt, shape, nbytes) in table.items()}
    return hdr, arrays


# What reading a hostile or damaged file can raise, turned into FormatError by load_qmodel:
# zipfile raises NotImplementedError for an unsupported compression method and RuntimeError
# for an encrypted member; numpy's header parser raises SyntaxError/ValueError/TypeError on a
# forged .npy header; struct/zlib/EOF errors come from truncated data.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, ValueError, OSError,
                EOFError, KeyError, struct.error, NotImplementedError, RuntimeError,
                UnicodeDecodeError, SyntaxError, TypeError, MemoryError)


def load_qmodel(path, max_bytes: Optional[int] = None) -> QModel:
    """Read and validate a `.qnpz`; FormatError (naming the file and the problem) for
    anything unreadable, inconsistent or over the limits (docs/qmodel.md). `max_bytes`
    caps the total declared array bytes (default: `max_array_bytes()`)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such quantized-model file")
    try:
        cap = max_array_bytes() if max_bytes is None else int(max_bytes)
        hdr, arrays = _load_bounded(path, cap)
        return _from_header(hdr, arrays)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except _READ_ERRORS as exc:
        raise FormatError(f"{path}: not a readable .qnpz (truncated or corrupt?): "
                          f"{type(exc).__name__}: {exc}") from None
