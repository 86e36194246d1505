"""Fake-quant PyTorch path: an independent re-implementation of the golden arithmetic
(needs torch), used to check `dgfpga.numerics.golden` layer by layer.

What is independent of the golden model: the convolutions (`F.conv2d` in float64 on
integer-valued tensors, exact because every partial sum is an integer below 2^53), the
masking (the float model's way: dense convs, then multiply by `mask_c` and by the mask
upsampled with `F.interpolate(mode="nearest")`), the input quantization
(`torch.round` based), and the integer gates (bin sums by slicing, `F.conv2d` for the
spatial gate, torch int64 for the requantized hidden layer).

The requantization is done in torch int64 (`z = acc*mult + res*res_mult`,
`(z + 2^(shift-1)) >> shift`, clamp): `z` reaches 2^58, beyond float64's 53-bit
mantissa, so a float64 requantization can differ from the integer one by one LSB
whenever `z / 2^shift` lies within float64 rounding error of a .5 boundary;
`requant="float64"` computes `floor(acc * (mult/2^shift) + res * (res_mult/2^shift) + 0.5)`
in float64 so those cases can be counted (see docs/quantization.md).

The gate logits are exact integers (float64 only holds integer sums below 2^53), so the
decisions must equal the golden model's; `masks=golden.masks` still runs the layers with
given decisions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgfpga.numerics.qmodel import INPUT_TENSOR, QConv, QModel

__all__ = ["FakeQuantResult", "run_fakequant", "compare_layers"]


@dataclass
class FakeQuantResult:
    """logits_int int64 [N, K]; logits float64 [N, K]; layers: tensor name -> int64 numpy
    [N, C, H, W]; masks: per block (spatial bool [N, gh, gw], channel bool [N, C]
    [, channel2 bool [N, C2] for a Bottleneck]; None for an ungated MobileNetV2 block);
    gate_logits: per block (spatial int64 [N, gh, gw], channel int64 [N, C][, channel2
    int64 [N, C2]]; None for an ungated block)."""
    logits_int: np.ndarray
    logits: np.ndarray
    layers: dict
    masks: list
    gate_logits: list


def _t(a, dtype=None):
    import torch
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(dtype) if dtype is not None else t


def _quantize_input(images, scale: float):
    import torch
    v = _t(np.asarray(images), torch.float64) / scale
    # round half away from zero: torch.round is half-to-even, so round |v| by hand.
    r = torch.sign(v) * torch.floor(torch.abs(v) + 0.5)
    # floor(|v| + 0.5) can round up a value just below .5 (|v| + 0.5 inexact): correct it.
    r = torch.where(torch.abs(r - v) > 0.5, r - torch.sign(v), r)
    return torch.clamp(r, -128, 127)


def _acc(x, conv: QConv):
    """acc + bias as float64 (exact integers), [N, M, Ho, Wo]."""
    import torch.nn.functional as F
    import torch
    w = _t(conv.weight, torch.float64)
    return F.conv2d(x, w, stride=conv.stride, padding=conv.pad, groups=conv.groups) \
        + _t(conv.bias, torch.float64).view(1, -1, 1, 1)


def _requant(acc, conv: QConv, res=None, mode: str = "int64"):
    import torch
    if mode == "int64":
        z = acc.round().to(torch.int64) * _t(conv.mult, torch.int64).view(1, -1, 1, 1)
        if res is not None:
            z = z + res.to(torch.int64) * conv.res_mult
        y = torch.bitwise_right_shift(z + (1 << (conv.shift - 1)), conv.shift)
        return torch.clamp(y, conv.lo, conv.hi).to(torch.float64)
    m = _t(conv.mult, torch.float64).view(1, -1, 1, 1) * 2.0 ** -conv.shift
    v = acc * m
    if res is not None:
        v = v + res * (conv.res_mult * 2.0 ** -conv.shift)
    return torch.clamp(torch.floor(v + 0.5), conv.lo, conv.hi)


def _gates(qm: QModel, block, x):
    """The integer gate logits, re-implemented with torch (int64 for the requantization,
    float64 for the sums, which are exact integers below 2^53): bin sums by slicing each
    bin (not dgfpga.numerics.gates' 0/1 matrices), `F.conv2d` for the spatial gate's 3x3
    conv. Returns (spatial int64 [N, gh, gw], channel int64 [N, C_out])."""
    import torch
    import torch.nn.functional as F
    from dgfpga.contract import program
    rb, f = program.GATE_RECIP_BITS, program.GATE_FRAC_BITS

    def pool(s, n):                                  # s: exact integer sums (float64)
        r = ((1 << rb) + n // 2) // n
        return torch.bitwise_right_shift(s.round().to(torch.int64) * r + (1 << (rb - f - 1)),
                                         rb - f)

    n, c, h, w = x.shape
    gh, gw = block.grid
    rows = [((i * h) // gh, -((-(i + 1) * h) // gh)) for i in range(gh)]
    cols = [((j * w) // gw, -((-(j + 1) * w) // gw)) for j in range(gw)]
    p = torch.zeros((n, c, gh, gw), dtype=torch.int64)
    for i, (a, b) in enumerate(rows):
        for j, (cc, d) in enumerate(cols):
            p[:, :, i, j] = pool(x[:, :, a:b, cc:d].sum(dim=(2, 3)), (b - a) * (d - cc))
    sg = block.spatial_gate
    ls = F.conv2d(p.to(torch.float64), _t(sg.weight, torch.float64)[None], padding=1)[:, 0]
    ls = ls.round().to(torch.int64) + sg.bias
    return ls, _channel_logits(block.channel_gate, x)


def _channel_logits(cg, x):
    """An integer channel gate's logits on x [N, C, H, W] (whole-map integer mean, int64
    hidden layer), int64 [N, C_out]."""
    import torch
    from dgfpga.contract import program
    rb, f = program.GATE_RECIP_BITS, program.GATE_FRAC_BITS
    n_pix = x.shape[2] * x.shape[3]
    r = ((1 << rb) + n_pix // 2) // n_pix
    pt = torch.bitwise_right_shift(x.sum(dim=(2, 3)).round().to(torch.int64) * r
                                   + (1 << (rb - f - 1)), rb - f)
    a = (pt.to(torch.float64) @ _t(cg.w1, torch.float64).T).round().to(torch.int64)
    z = a * _t(cg.m1, torch.int64) + _t(cg.o1, torch.int64) + (1 << (cg.shift - 1))
    hid = torch.clamp(torch.bitwise_right_shift(z, cg.shift), 0, program.GATE_HIDDEN_MAX)
    return (hid.to(torch.float64) @ _t(cg.w2, torch.float64).T).round().to(torch.int64) \
        + _t(cg.b2, torch.int64)


def run_fakequant(qm: QModel, images, masks=None, requant: str = "int64") -> FakeQuantResult:
    """Run the fake-quant network. images: normalised float [N, C, H, W] or int8.
    masks: None (its own integer gates), "dense", or per block (spatial [N, gh, gw],
    channel [N, C][, channel2 [N, C2]]) / objects with `.spatial`, `.channel` (and
    `.channel2` for Bottleneck blocks; e.g. GoldenResult.masks)."""
    import torch
    import torch.nn.functional as F

    if requant not in ("int64", "float64"):
        raise ValueError(f"requant must be 'int64' or 'float64', got {requant!r}")
    images = np.asarray(images)
    with torch.no_grad():
        if images.dtype == np.int8:
            x = _t(images, torch.float64)
        else:
            x = _quantize_input(images, qm.input_scale)
        layers = {INPUT_TENSOR: x}
        stem = qm.stem.conv
        x = _requant(_acc(x, stem), stem, mode=requant)
        layers[stem.out_tensor] = x
        if qm.stem.maxpool:
            x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
            layers[qm.stem.out_tensor] = x
        out_masks, out_logits = [], []
        for i, b in enumerate(qm.blocks):
            if b.kind == "inverted_residual":
                x = _inverted_residual(qm, b, x, None if masks is None else
                                       masks if isinstance(masks, str) else masks[i],
                                       layers, out_masks, out_logits, requant)
                continue
            ls, lc = _gates(qm, b, x)
            ch2 = None
            if masks is None:
                sp, ch = ls >= 0, lc >= 0
            elif isinstance(masks, str):
                sp = torch.ones(x.shape[0], *b.grid, dtype=torch.bool)
                ch = torch.ones(x.shape[0], b.conv1.out_channels, dtype=torch.bool)
                ch2 = torch.ones(x.shape[0], b.conv2.out_channels, dtype=torch.bool)
            else:
                m = masks[i]
                if hasattr(m, "spatial"):
                    sp, ch, ch2 = m.spatial, m.channel, getattr(m, "channel2", None)
                else:
                    sp, ch, ch2 = m[0], m[1], (m[2] if len(m) > 2 else None)
                sp = torch.as_tensor(np.asarray(sp)).reshape(x.shape[0], *b.grid) > 0
                ch = torch.as_tensor(np.asarray(ch)).reshape(x.shape[0], -1) > 0
                if ch2 is not None:
                    ch2 = torch.as_tensor(np.asarray(ch2)).reshape(x.shape[0], -1) > 0
            _, ho, wo = qm.tensors[b.out_tensor].shape
            up = F.interpolate(sp[:, None].to(torch.float64), size=(ho, wo), mode="nearest")
            chm = ch.to(torch.float64)[:, :, None, None]
            if b.downsample is not None:
                res = _requant(_acc(x, b.downsample), b.downsample, mode=requant)
                layers[b.downsample.out_tensor] = res
            else:
                res = x
            if b.kind == "bottleneck":
                # conv1 at the input resolution under the mask upsampled there (tile 2t
                # in stride-2 blocks); mask_c2 from its masked output; conv2, conv3.
                up_in = F.interpolate(sp[:, None].to(torch.float64), size=tuple(x.shape[2:]),
                                      mode="nearest")
                y1 = _requant(_acc(x, b.conv1), b.conv1, mode=requant) * chm * up_in
                layers[b.conv1.out_tensor] = y1
                lc2 = _channel_logits(b.channel_gate2, y1)
                if ch2 is None:
                    ch2 = lc2 >= 0
                out_logits.append((ls.numpy(), lc.numpy(), lc2.numpy()))
                y2 = _requant(_acc(y1, b.conv2), b.conv2, mode=requant) \
                    * ch2.to(torch.float64)[:, :, None, None] * up
                layers[b.conv2.out_tensor] = y2
                acc3 = _acc(y2, b.conv3) * up       # inactive pixels: acc = 0, no bias
                x = _requant(acc3, b.conv3, res, mode=requant)
                layers[b.conv3.out_tensor] = x
                out_masks.append((sp.numpy().copy(), ch.numpy().copy(), ch2.numpy().copy()))
                continue
            out_logits.append((ls.numpy(), lc.numpy()))
            out_masks.append((sp.numpy().copy(), ch.numpy().copy()))
            y1 = _requant(_acc(x, b.conv1), b.conv1, mode=requant) * chm * up
            layers[b.conv1.out_tensor] = y1
            acc2 = _acc(y1, b.conv2) * up          # inactive pixels: acc = 0, no bias
            x = _requant(acc2, b.conv2, res, mode=requant)
            layers[b.conv2.out_tensor] = x
        if qm.tail is not None:
            x = _requant(_acc(x, qm.tail), qm.tail, mode=requant)
            layers[qm.tail.out_tensor] = x
        h = qm.head
        pooled = x.sum(dim=(2, 3)).round().to(torch.int64)
        logits_int = pooled @ _t(h.weight, torch.int64).T + _t(h.bias, torch.int64)
        li = logits_int.numpy()
    return FakeQuantResult(
        logits_int=li, logits=li * h.logit_scale[None, :],
        layers={k: v.round().to(torch.int64).numpy() for k, v in layers.items()},
        masks=out_masks, gate_logits=out_logits)


def _inverted_residual(qm: QModel, b, x, given, layers: dict, out_masks: list,
                       out_logits: list, requant: str):
    """A MobileNetV2 block the official way (models/mobilenet_v2.py, eval): ungated blocks
    dense; gated: e = expand(x) * up(mask_s) (every channel), d = dw(e) * mask_c *
    up(mask_s), y = pw(d) * up(mask_s) + x (inactive pixels: acc 0, so y = requant(x)).
    The masks are upsampled with the float model's own `NearestUpsample` (the official
    mapping; `F.interpolate(mode="nearest")` equals it, tests/quant/test_quantize_mobilenet.py).
    `layers` records the expansion output masked by mask_c too (the golden model computes
    only the active channels; the inactive ones never reach an active output). `given`:
    None (own gates), "dense", or this block's masks. Appends None to out_masks /
    out_logits for an ungated block."""
    import torch
    from dgfpga_models.mask import NearestUpsample

    c1, dw, pw = b.conv1, b.conv2, b.conv3
    if not b.gated:
        out_masks.append(None)
        out_logits.append(None)
        e = x
        if c1 is not None:
            e = _requant(_acc(x, c1), c1, mode=requant)
            layers[c1.out_tensor] = e
        d = _requant(_acc(e, dw), dw, mode=requant)
        layers[dw.out_tensor] = d
        y = _requant(_acc(d, pw), pw, mode=requant)
        layers[pw.out_tensor] = y
        return y
    ls, lc = _gates(qm, b, x)
    n = x.shape[0]
    if given is None:
        sp, ch = ls >= 0, lc >= 0
    elif isinstance(given, str):
        sp = torch.ones(n, *b.grid, dtype=torch.bool)
        ch = torch.ones(n, dw.out_channels, dtype=torch.bool)
    else:
        sp, ch = (given.spatial, given.channel) if hasattr(given, "spatial") else given[:2]
        sp = torch.as_tensor(np.asarray(sp)).reshape(n, *b.grid) > 0
        ch = torch.as_tensor(np.asarray(ch)).reshape(n, -1) > 0
    out_logits.append((ls.numpy(), lc.numpy()))
    out_masks.append((sp.numpy().copy(), ch.numpy().copy()))
    _, ho, wo = qm.tensors[b.out_tensor].shape
    grid = sp[:, None].to(torch.float64)
    up = NearestUpsample(*b.grid, ho, wo)(grid)
    up_in = NearestUpsample(*b.grid, *x.shape[2:])(grid)
    chm = ch.to(torch.float64)[:, :, None, None]
    e = x * up_in
    if c1 is not None:
        e = _requant(_acc(x, c1), c1, mode=requant) * up_in
        layers[c1.out_tensor] = e * chm
    d = _requant(_acc(e, dw), dw, mode=requant) * chm * up
    layers[dw.out_tensor] = d
    acc3 = _acc(d, pw) * up                  # inactive pixels: acc = 0, no bias
    y = _requant(acc3, pw, x, mode=requant)
    layers[pw.out_tensor] = y
    return y


def compare_layers(golden_layers: dict, fq_layers: dict) -> dict[str, tuple[int, int]]:
    """Per tensor: (elements that differ, elements). Tensors present in both."""
    out = {}
    for k, g in golden_layers.items():
        if k in fq_layers:
            f = fq_layers[k]
            out[k] = (int(np.count_nonzero(g.astype(np.int64) != f)), int(g.size))
    return out
