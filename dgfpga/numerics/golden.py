"""The integer golden model: the reference every engine level must match bit for bit.

numpy only (torch-free). Arithmetic (docs/quantization.md):

* conv: `acc = sum(w * x)` over the kernel window, exact integers. It is computed as one
  float64 GEMM per kernel position (rows = output pixels, columns = channels): every
  product and partial sum is an integer below 2^53 (the loader proves |acc| < 2^31), so
  the float64 result *is* the int32 accumulator, whatever the summation order.
* requant: `z = (acc + bias[m]) * mult[m] + res * res_mult` (int64),
  `y = clamp((z + 2^(shift-1)) >> shift, lo, hi)` (arithmetic shift: round half up).
* masked execution (DESIGN.md section 3, in integers): per block the gates decide a grid
  mask and an output-channel mask; conv1 is computed only at active pixels x active output
  channels (zeros elsewhere); conv2 only at active pixels, reading the active input
  channels (the rest of its input is zero), then residual + ReLU; at inactive pixels
  `acc = 0` (no bias), so `y = clamp(round(res * res_mult / 2^shift))` = ReLU(shortcut).
* input quantization: `clamp(round_half_away(x / s_in), -128, 127)`.

MobileNetV2 inverted residuals (docs/quantization.md "MobileNetV2 blocks"): expand 1x1 at
active pixels x active channels, depthwise 3x3 (groups = channels) at active pixels on the
active channels, linear projection (s8) at active pixels from the active channels + the
residual; ReLU6 is the u8 clamp (the scale puts code 255 at or below 6.0). Ungated blocks
(and the tail conv) run dense.

MACs are counted as the masked computation executes them (active pixels x active output
channels x input channels x k^2 for conv1; active pixels x output channels x active input
channels x k^2 for conv2; dense for stem/downsample/fc; gate MACs by the official formula
unless masks are "dense").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from dgfpga.numerics import gates
from dgfpga.errors import DgfpgaError
from dgfpga.numerics.qmodel import INPUT_TENSOR, QBlock, QConv, QModel, quantize_input

__all__ = ["GateMasks", "GoldenResult", "conv2d_int", "masked_conv2d_int", "requant",
           "maxpool3x3s2", "block_gates", "run_golden"]


@dataclass
class GateMasks:
    """One block's decisions: spatial bool [N, gh, gw] (grid), channel bool [N, C]
    (conv1's output channels); Bottleneck blocks also channel2 bool [N, C] (mask_c2:
    conv2's output channels, decided from conv1's masked output)."""
    spatial: np.ndarray
    channel: np.ndarray
    channel2: Optional[np.ndarray] = None

    def pixels(self, out_hw: tuple[int, int]) -> np.ndarray:
        """The grid mask upsampled to the block output, bool [N, H, W]."""
        return gates.upsample_grid(self.spatial, out_hw)


@dataclass
class GoldenResult:
    """What `run_golden` returns (N images, B blocks, K classes).

    logits float64 [N, K] (= logits_int * logit_scale); logits_int int64 [N, K];
    masks: B GateMasks (None for an ungated MobileNetV2 block); layers: tensor name -> int array [N, C, H, W] (uint8 for u8
    tensors, int8 for s8; empty when keep_layers=False); macs: layer name -> int64 [N]
    executed MACs; block_density float64 [N, B] (executed / dense conv MACs of each block,
    downsample included); total_macs int64 [N]; dense_macs (no gates); density [N].
    """
    logits: np.ndarray
    logits_int: np.ndarray
    masks: list[GateMasks]
    layers: dict[str, np.ndarray]
    macs: dict[str, np.ndarray]
    block_density: np.ndarray
    total_macs: np.ndarray
    dense_macs: int
    density: np.ndarray


# ----------------------------------------------------------------------------- kernels

def _check_exact(acc: np.ndarray) -> None:
    if acc.size and np.abs(acc).max() >= 2.0 ** 31:
        raise DgfpgaError("conv accumulator left the int32 range (inputs out of spec?)")


def _slab(xp: np.ndarray, ky: int, kx: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """Input pixels [N, Ho, Wo, C] read by kernel position (ky, kx) from padded NHWC `xp`."""
    return xp[:, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride, :]


def _pad_nhwc(x: np.ndarray, pad: int) -> np.ndarray:
    n, c, h, w = x.shape
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=np.float64)
    xp[:, pad:pad + h, pad:pad + w, :] = np.moveaxis(x, 1, -1)
    return xp


def _check_groups(c: int, m: int, cpg: int, groups: int) -> None:
    if groups < 1 or c != cpg * groups or m % groups:
        raise ValueError(f"conv: input has {c} channels, weight expects {cpg} x {groups} "
                         f"groups ({m} outputs)")


def _tap(slab: np.ndarray, wk: np.ndarray, groups: int) -> np.ndarray:
    """One kernel position's contribution: slab [..., C] (float64 integers), wk [C/groups, M]
    -> [..., M]. groups 1: one GEMM; depthwise (one channel in, one out per group): an
    elementwise product; other groups: one GEMM per group."""
    if groups == 1:
        return slab @ wk
    cpg, m = wk.shape
    if cpg == 1 and m == groups:
        return slab * wk[0]
    mpg = m // groups
    return np.concatenate([slab[..., g * cpg:(g + 1) * cpg] @ wk[:, g * mpg:(g + 1) * mpg]
                           for g in range(groups)], axis=-1)


def conv2d_int(x: np.ndarray, w: np.ndarray, stride: int, pad: int,
               groups: int = 1) -> np.ndarray:
    """Dense integer conv: x int [N, C, H, W], w int [M, C/groups, k, k] -> acc int64
    [N, M, Ho, Wo] (no bias). Zero padding; `groups` as torch's (C = groups: depthwise)."""
    n, c, h, wd = x.shape
    m, c2, k, _ = w.shape
    _check_groups(c, m, c2, groups)
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    xp = _pad_nhwc(x, pad)
    wk = np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype=np.float64)
    acc = np.zeros((n, ho, wo, m), dtype=np.float64)
    for ky in range(k):
        for kx in range(k):
            acc += _tap(_slab(xp, ky, kx, stride, ho, wo), wk[ky, kx], groups)
    _check_exact(acc)
    return np.moveaxis(acc.astype(np.int64), -1, 1)


def masked_conv2d_int(x: np.ndarray, w: np.ndarray, stride: int, pad: int,
                      pixels: np.ndarray, out_ch: Optional[np.ndarray] = None,
                      in_ch: Optional[np.ndarray] = None,
                      groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Integer conv computed only where the masks say, zeros elsewhere.

    pixels bool [N, Ho, Wo]: output pixels to compute; out_ch bool [N, M]: output channels
    to compute (None: all); in_ch bool [N, C]: input channels to read (None: all; the
    others are treated as zero, i.e. not read). groups: as `conv2d_int`. Returns (acc int64
    [N, M, Ho, Wo] without bias, macs int64 [N] = active pixels x k^2 x the active (out ch,
    in ch) pairs that share a group: active out x active in for groups 1, the channels
    active on both sides for a depthwise conv).
    """
    n, c, h, wd = x.shape
    m, cpg, k, _ = w.shape
    _check_groups(c, m, cpg, groups)
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    pixels = np.asarray(pixels, dtype=bool)
    if pixels.shape != (n, ho, wo):
        raise ValueError(f"pixel mask {pixels.shape} does not match the output {(n, ho, wo)}")
    if in_ch is not None:
        x = x * np.asarray(in_ch, dtype=bool)[:, :, None, None]
    xp = _pad_nhwc(x, pad)
    hp, wp = xp.shape[1:3]
    flat_in = xp.reshape(-1, c)
    idx_n, idx_y, idx_x = np.nonzero(pixels)
    # Row of flat_in holding the padded-input pixel read by each active output at (0, 0).
    base = (idx_n * hp + idx_y * stride) * wp + idx_x * stride
    # [k, k, C, M], contiguous per kernel position (BLAS needs contiguous operands).
    wk = np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype=np.float64)
    rows = np.zeros((idx_n.size, m), dtype=np.float64)
    for ky in range(k):
        for kx in range(k):
            rows += _tap(np.take(flat_in, base + (ky * wp + kx), axis=0), wk[ky, kx], groups)
    _check_exact(rows)
    acc = np.zeros((n * ho * wo, m), dtype=np.int64)
    acc[(idx_n * ho + idx_y) * wo + idx_x] = rows.astype(np.int64)
    acc = np.moveaxis(acc.reshape(n, ho, wo, m), -1, 1)
    o = np.ones((n, m), bool) if out_ch is None else np.asarray(out_ch, bool)
    i = np.ones((n, c), bool) if in_ch is None else np.asarray(in_ch, bool)
    pairs = (o.reshape(n, groups, -1).sum(2).astype(np.int64)
             * i.reshape(n, groups, -1).sum(2)).sum(1)
    if out_ch is not None:
        acc = acc * o[:, :, None, None]
    macs = pixels.reshape(n, -1).sum(1).astype(np.int64) * pairs * k * k
    return acc, macs


def requant(acc: np.ndarray, mult: np.ndarray, shift: int, lo: int, hi: int,
            res: Optional[np.ndarray] = None, res_mult: int = 0) -> np.ndarray:
    """`clamp((acc*mult[m] + res*res_mult + 2^(shift-1)) >> shift, lo, hi)` in int64.

    acc: int [N, M, H, W] (bias already added); mult: int [M]; res: int like acc or None.
    """
    z = acc.astype(np.int64) * np.asarray(mult, dtype=np.int64)[None, :, None, None]
    if res is not None and res_mult:
        z = z + res.astype(np.int64) * np.int64(res_mult)
    y = (z + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    return np.clip(y, lo, hi)


def maxpool3x3s2(x: np.ndarray) -> np.ndarray:
    """3x3 / stride 2 / pad 1 max-pool of an integer map [N, C, H, W]. The padding is the
    dtype's minimum, i.e. PyTorch's -inf padding (every window holds a real pixel), so u8
    and s8 maps both pool exactly."""
    n, c, h, w = x.shape
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    xp = np.full((n, c, h + 2, w + 2), np.iinfo(x.dtype).min, dtype=x.dtype)
    xp[:, :, 1:-1, 1:-1] = x
    out = None
    for ky in range(3):
        for kx in range(3):
            v = xp[:, :, ky:ky + 2 * (ho - 1) + 1:2, kx:kx + 2 * (wo - 1) + 1:2]
            out = v.copy() if out is None else np.maximum(out, v)
    return out


def _run_conv(x, conv: QConv, res=None) -> np.ndarray:
    acc = conv2d_int(x, conv.weight, conv.stride, conv.pad, conv.groups) + conv.bias.astype(np.int64)[None, :, None, None]
    return requant(acc, conv.mult, conv.shift, conv.lo, conv.hi, res, conv.res_mult)


def _as_dtype(y: np.ndarray, signed: bool) -> np.ndarray:
    return y.astype(np.int8 if signed else np.uint8)


# ----------------------------------------------------------------------------- network

def _basic(b: QBlock, x, res, gm: GateMasks, pix, record, macs, dense) -> np.ndarray:
    """BasicBlock: conv1 on active pixels x active output channels (zeros elsewhere);
    conv2 on active pixels from the active channels, + residual (inactive pixels: acc 0)."""
    c1, c2 = b.conv1, b.conv2
    ho, wo = pix.shape[1:]
    acc1, m1 = masked_conv2d_int(x, c1.weight, c1.stride, c1.pad, pix, out_ch=gm.channel)
    y1 = requant(acc1 + c1.bias.astype(np.int64)[None, :, None, None], c1.mult, c1.shift,
                 c1.lo, c1.hi)
    y1 = y1 * (pix[:, None] & gm.channel[:, :, None, None])
    record(c1.out_tensor, y1, False)
    acc2, m2 = masked_conv2d_int(y1, c2.weight, c2.stride, c2.pad, pix, in_ch=gm.channel)
    acc2 = acc2 + c2.bias.astype(np.int64)[None, :, None, None] * pix[:, None]
    y = requant(acc2, c2.mult, c2.shift, c2.lo, c2.hi, res, c2.res_mult)
    record(c2.out_tensor, y, False)
    macs[c1.name], macs[c2.name] = m1, m2
    dense[c1.name] = ho * wo * c1.weight.size
    dense[c2.name] = ho * wo * c2.weight.size
    return y


def _bottleneck(b: QBlock, x, res, gm: GateMasks, pix, decide: bool, record, macs, dense):
    """Bottleneck (official DGNet semantics, docs/quantization.md): conv1 (1x1) on the
    spatial mask upsampled to the block input x active mask_c1 channels; mask_c2 from conv1's
    masked output (when `decide`); conv2 (3x3, stride) on active output pixels from the
    mask_c1 channels into the mask_c2 channels; conv3 (1x1) on active pixels from the
    mask_c2 channels, + residual (inactive pixels: acc 0, so y = requant(residual))."""
    c1, c2, c3 = b.conv1, b.conv2, b.conv3
    hi, wi = x.shape[2:]
    ho, wo = pix.shape[1:]
    pin = gm.pixels((hi, wi))
    acc1, m1 = masked_conv2d_int(x, c1.weight, c1.stride, c1.pad, pin, out_ch=gm.channel)
    y1 = requant(acc1 + c1.bias.astype(np.int64)[None, :, None, None], c1.mult, c1.shift,
                 c1.lo, c1.hi)
    y1 = y1 * (pin[:, None] & gm.channel[:, :, None, None])
    record(c1.out_tensor, y1, False)
    if decide:
        gm = GateMasks(gm.spatial, gm.channel, channel_gate2(b, y1))
    acc2, m2 = masked_conv2d_int(y1, c2.weight, c2.stride, c2.pad, pix, out_ch=gm.channel2,
                                 in_ch=gm.channel)
    y2 = requant(acc2 + c2.bias.astype(np.int64)[None, :, None, None], c2.mult, c2.shift,
                 c2.lo, c2.hi)
    y2 = y2 * (pix[:, None] & gm.channel2[:, :, None, None])
    record(c2.out_tensor, y2, False)
    acc3, m3 = masked_conv2d_int(y2, c3.weight, c3.stride, c3.pad, pix, in_ch=gm.channel2)
    acc3 = acc3 + c3.bias.astype(np.int64)[None, :, None, None] * pix[:, None]
    y = requant(acc3, c3.mult, c3.shift, c3.lo, c3.hi, res, c3.res_mult)
    record(c3.out_tensor, y, False)
    macs[c1.name], macs[c2.name], macs[c3.name] = m1, m2, m3
    dense[c1.name] = hi * wi * c1.weight.size
    dense[c2.name] = ho * wo * c2.weight.size
    dense[c3.name] = ho * wo * c3.weight.size
    return y, gm


def _dense_conv(c: QConv, x, res, record, macs, dense) -> np.ndarray:
    """A conv run dense (ungated blocks, the tail): output, MACs = dense MACs."""
    y = _run_conv(x, c, res)
    record(c.out_tensor, y, c.lo < 0)
    ho, wo = y.shape[2:]
    dense[c.name] = ho * wo * c.weight.size
    macs[c.name] = np.full(x.shape[0], dense[c.name], np.int64)
    return y


def _inverted_residual(b: QBlock, x, gm: Optional[GateMasks], pix, record, macs, dense):
    """MobileNetV2 inverted residual (official DGNet semantics, docs/quantization.md):
    ungated (gm None): expand, depthwise, project, dense, no residual. Gated (stride 1):
    expand (1x1) at active pixels x active mask_c channels (the depthwise conv is per
    channel, so this equals the official expand-then-mask); depthwise 3x3 at active pixels
    on the active channels; projection (linear, s8) at active pixels from the active
    channels, + residual (inactive pixels: acc 0, so y = requant(residual))."""
    c1, dw, pw = b.conv1, b.conv2, b.conv3
    if gm is None:
        e = _dense_conv(c1, x, None, record, macs, dense) if c1 is not None else x
        d = _dense_conv(dw, e, None, record, macs, dense)
        return _dense_conv(pw, d, None, record, macs, dense)
    ho, wo = pix.shape[1:]
    on = pix[:, None] & gm.channel[:, :, None, None]
    if c1 is not None:
        acc1, m1 = masked_conv2d_int(x, c1.weight, c1.stride, c1.pad, pix, out_ch=gm.channel)
        e = requant(acc1 + c1.bias.astype(np.int64)[None, :, None, None], c1.mult, c1.shift,
                    c1.lo, c1.hi) * on
        record(c1.out_tensor, e, False)
        macs[c1.name] = m1
        dense[c1.name] = x.shape[2] * x.shape[3] * c1.weight.size
    else:
        e = x * on
    acc2, m2 = masked_conv2d_int(e, dw.weight, dw.stride, dw.pad, pix, out_ch=gm.channel,
                                 in_ch=gm.channel, groups=dw.groups)
    d = requant(acc2 + dw.bias.astype(np.int64)[None, :, None, None], dw.mult, dw.shift,
                dw.lo, dw.hi) * on
    record(dw.out_tensor, d, False)
    acc3, m3 = masked_conv2d_int(d, pw.weight, pw.stride, pw.pad, pix, in_ch=gm.channel)
    acc3 = acc3 + pw.bias.astype(np.int64)[None, :, None, None] * pix[:, None]
    y = requant(acc3, pw.mult, pw.shift, pw.lo, pw.hi, x, pw.res_mult)
    record(pw.out_tensor, y, True)
    macs[dw.name], macs[pw.name] = m2, m3
    dense[dw.name] = ho * wo * dw.weight.size
    dense[pw.name] = ho * wo * pw.weight.size
    return y


def block_gates(qm: QModel, block: QBlock, x: np.ndarray) -> GateMasks:
    """Evaluate a block's integer gates on its integer input x [N, C, H, W]
    (dgfpga.numerics.gates). The bin sums come from the whole activation map with each
    bin's own pixel count: an independent route from the engine's (per-tile sums over a
    BinTable, `gates.gates_from_tile_sums`), which must give the same decisions."""
    h, w = x.shape[-2:]
    pooled = gates.gate_pool(gates.bin_sums(x, block.grid),
                             gates.gate_reciprocal(gates.bin_counts(h, w, block.grid)))
    spatial = gates.spatial_gate_logits_int(pooled, block.spatial_gate) >= 0
    totals = gates.gate_pool(x.astype(np.int64).sum(axis=(2, 3)), gates.gate_reciprocal(h * w))
    channel = gates.channel_gate_logits_int(totals, block.channel_gate) >= 0
    return GateMasks(spatial=spatial, channel=channel)


MasksArg = Union[None, str, Sequence]


def _bool(a, shape) -> np.ndarray:
    a = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)
    return a.reshape(shape).astype(bool) if a.dtype == bool else (a.reshape(shape) > 0)


def _given_masks(masks, i: int, block: QBlock, n: int, c_out: int) -> Optional[GateMasks]:
    m = masks[i]
    if not block.gated:             # an ungated MobileNetV2 block: whatever is given, dense
        return None
    ch2 = None
    if isinstance(m, (tuple, list)) and len(m) in (2, 3):
        sp, ch = m[0], m[1]
        ch2 = m[2] if len(m) == 3 else None
    else:       # GateMasks, a dgfpga_models BlockMasks (torch tensors) or alike
        sp, ch, ch2 = m.spatial, m.channel, getattr(m, "channel2", None)
    if block.kind == "bottleneck":
        if ch2 is None:
            raise DgfpgaError(f"{block.name}: a Bottleneck block needs its second channel mask "
                              f"(channel2) among the given masks")
        ch2 = _bool(ch2, (n, block.conv2.out_channels))
    else:
        ch2 = None
    return GateMasks(spatial=_bool(sp, (n, *block.grid)), channel=_bool(ch, (n, c_out)),
                     channel2=ch2)


def channel_gate2(block: QBlock, y1: np.ndarray) -> np.ndarray:
    """A Bottleneck block's second channel gate (mask_c2) on conv1's masked integer output
    y1 [N, C, H, W] (the block input's resolution): the whole-map integer mean, then the
    integer channel gate; bool [N, C]."""
    h, w = y1.shape[-2:]
    totals = gates.gate_pool(y1.astype(np.int64).sum(axis=(2, 3)), gates.gate_reciprocal(h * w))
    return gates.channel_gate_logits_int(totals, block.channel_gate2) >= 0


def _prepare_input(qm: QModel, images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(qm.input_shape):
        raise DgfpgaError(f"images must be [N, {', '.join(map(str, qm.input_shape))}], "
                          f"got {list(images.shape)}")
    if images.dtype == np.int8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise DgfpgaError(f"images must be normalised floats or int8, got {images.dtype}")
    return quantize_input(images, qm.input_scale)


def run_golden(qm: QModel, images, masks: MasksArg = None, keep_layers: bool = True,
               chunk: int = 50) -> GoldenResult:
    """Run the integer network.

    images: float normalised [N, C, H, W] (quantized here) or int8 (already quantized).
    masks: None = decide with the integer gates (`block_gates`); "dense" = every tile and channel
    on, no gate MACs; or one entry per block: GateMasks, (spatial, channel) or an object
    with `.spatial`/`.channel` (e.g. the float model's BlockMasks; anything, e.g. None, for
    an ungated MobileNetV2 block, which runs dense); gate MACs are counted for None and
    given masks. Processes `chunk` images at a time (memory bound).
    """
    xq = _prepare_input(qm, images)
    if isinstance(masks, str) and masks != "dense":
        raise DgfpgaError(f"masks must be None, 'dense' or a list per block, got {masks!r}")
    if masks is not None and not isinstance(masks, str) and len(masks) != len(qm.blocks):
        raise DgfpgaError(f"{len(masks)} mask entries for {len(qm.blocks)} blocks")
    parts = []
    with _single_thread_blas():
        for s in range(0, xq.shape[0], chunk):
            sub = masks
            if masks is not None and not isinstance(masks, str):
                sub = [_slice_masks(m, s, s + chunk) for m in masks]
            parts.append(_run_chunk(qm, xq[s:s + chunk], sub, keep_layers))
    return _concat(parts)


def _single_thread_blas():
    """The golden GEMMs are skinny (K <= C_in, N <= C_out): a multi-threaded BLAS only
    loses on them, badly so on a loaded machine (6x measured). Limit BLAS to one thread
    when threadpoolctl is available (workstation); a no-op otherwise (board)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _slice_masks(m, a: int, b: int):
    if m is None:
        return None
    if isinstance(m, (tuple, list)):
        return tuple(v[a:b] for v in m)
    ch2 = getattr(m, "channel2", None)
    return GateMasks(m.spatial[a:b], m.channel[a:b], None if ch2 is None else ch2[a:b])


def _run_chunk(qm: QModel, xq: np.ndarray, masks: MasksArg, keep: bool) -> GoldenResult:
    n = xq.shape[0]
    layers: dict[str, np.ndarray] = {}
    macs: dict[str, np.ndarray] = {}
    dense: dict[str, int] = {}

    def record(name: str, y: np.ndarray, signed: bool):
        if keep:
            layers[name] = _as_dtype(y, signed)

    record(INPUT_TENSOR, xq, True)
    stem = qm.stem.conv
    x = _run_conv(xq.astype(np.int64), stem)
    record(stem.out_tensor, x, False)
    ho, wo = x.shape[2:]
    macs[stem.name] = np.full(n, ho * wo * stem.weight.size, np.int64)
    dense[stem.name] = ho * wo * stem.weight.size
    if qm.stem.maxpool:
        x = maxpool3x3s2(x)
        record(qm.stem.out_tensor, x, False)

    out_masks, bdens = [], []
    gate_on = not isinstance(masks, str)
    for i, b in enumerate(qm.blocks):
        c1, ds = b.conv1, b.downsample
        _, ho, wo = qm.tensors[b.out_tensor].shape
        if b.kind == "inverted_residual":
            gm = None
            if b.gated:
                if masks is None:
                    gm = block_gates(qm, b, x)
                elif isinstance(masks, str):
                    gm = GateMasks(np.ones((n, *b.grid), bool),
                                   np.ones((n, b.conv2.out_channels), bool))
                else:
                    gm = _given_masks(masks, i, b, n, b.conv2.out_channels)
            x = _inverted_residual(b, x, gm, None if gm is None else gm.pixels((ho, wo)),
                                   record, macs, dense)
            out_masks.append(gm)
            if b.gated:
                _gate_macs(macs, b, n, gate_on)
            convs = b.main_convs
            bdens.append(sum(macs[c.name] for c in convs) / sum(dense[c.name] for c in convs))
            continue
        if masks is None:
            gm = block_gates(qm, b, x)
        elif isinstance(masks, str):
            gm = GateMasks(np.ones((n, *b.grid), bool), np.ones((n, c1.out_channels), bool),
                           np.ones((n, b.conv2.out_channels), bool)
                           if b.kind == "bottleneck" else None)
        else:
            gm = _given_masks(masks, i, b, n, c1.out_channels)
        pix = gm.pixels((ho, wo))
        # shortcut: dense.
        if ds is not None:
            res = _run_conv(x, ds)
            record(ds.out_tensor, res, True)
            macs[ds.name] = np.full(n, ho * wo * ds.weight.size, np.int64)
            dense[ds.name] = ho * wo * ds.weight.size
        else:
            res = x
        if b.kind == "bottleneck":
            x, gm = _bottleneck(b, x, res, gm, pix, masks is None, record, macs, dense)
        else:
            x = _basic(b, x, res, gm, pix, record, macs, dense)
        out_masks.append(gm)
        _gate_macs(macs, b, n, gate_on)
        convs = b.main_convs + ((ds,) if ds is not None else ())
        bdens.append(sum(macs[c.name] for c in convs) / sum(dense[c.name] for c in convs))

    if qm.tail is not None:
        x = _dense_conv(qm.tail, x, None, record, macs, dense)
    h = qm.head
    pooled = x.astype(np.int64).sum(axis=(2, 3))
    logits_int = pooled @ h.weight.astype(np.int64).T + h.bias.astype(np.int64)
    macs[h.name] = np.full(n, h.weight.size, np.int64)
    dense[h.name] = h.weight.size
    total = sum(macs.values())
    dense_total = sum(dense.values())
    return GoldenResult(
        logits=logits_int * h.logit_scale[None, :], logits_int=logits_int, masks=out_masks,
        layers=layers, macs=macs, block_density=np.stack(bdens, axis=1), total_macs=total,
        dense_macs=int(dense_total), density=total / dense_total)


def _gate_macs(macs: dict, b: QBlock, n: int, gate_on: bool) -> None:
    """A gated block's gate MACs (official formula; 0 when the masks are "dense")."""
    cg = b.channel_gate
    macs[f"{b.name}.mask_s"] = np.full(
        n, gates.spatial_gate_macs(b.grid, cg.in_channels) if gate_on else 0, np.int64)
    macs[f"{b.name}.mask_c"] = np.full(
        n, gates.channel_gate_macs(cg.in_channels, cg.hidden, cg.out_channels)
        if gate_on else 0, np.int64)
    if b.channel_gate2 is not None:
        g2 = b.channel_gate2
        macs[f"{b.name}.mask_c2"] = np.full(
            n, gates.channel_gate_macs(g2.in_channels, g2.hidden, g2.out_channels)
            if gate_on else 0, np.int64)


def _cat_masks(ms: list) -> Optional[GateMasks]:
    if ms[0] is None:
        return None
    cat = np.concatenate
    return GateMasks(cat([m.spatial for m in ms]), cat([m.channel for m in ms]),
                     None if ms[0].channel2 is None else cat([m.channel2 for m in ms]))


def _concat(parts: list[GoldenResult]) -> GoldenResult:
    if len(parts) == 1:
        return parts[0]
    cat = np.concatenate
    return GoldenResult(
        logits=cat([p.logits for p in parts]), logits_int=cat([p.logits_int for p in parts]),
        masks=[_cat_masks([p.masks[i] for p in parts]) for i in range(len(parts[0].masks))],
        layers={k: cat([p.layers[k] for p in parts]) for k in parts[0].layers},
        macs={k: cat([p.macs[k] for p in parts]) for k in parts[0].macs},
        block_density=cat([p.block_density for p in parts]),
        total_macs=cat([p.total_macs for p in parts]), dense_macs=parts[0].dense_macs,
        density=cat([p.density for p in parts]))
