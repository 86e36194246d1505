"""Integer arithmetic of one layer: fold an eval-mode BatchNorm into its conv, quantize
the weights int8 per output channel, and derive the int32 bias, the integer multipliers
and the shift of the requantization (`dgfpga.numerics.qmodel` defines what they mean).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from dgfpga.numerics.qmodel import MAX_SHIFT, MULT_LIMIT, QConv, round_half_away
from dgfpga.quant import QuantizationError

__all__ = ["fold_bn", "quantize_weights", "choose_shift", "make_conv", "conv_weight"]


def fold_bn(weight: np.ndarray, bn) -> tuple[np.ndarray, np.ndarray]:
    """Fold an eval-mode BatchNorm into the preceding bias-free conv (float64):
    `W' = W * gamma/sigma`, `b' = beta - mu * gamma/sigma`, sigma = sqrt(var + eps)."""
    g = bn.weight.detach().double().cpu().numpy()
    beta = bn.bias.detach().double().cpu().numpy()
    mu = bn.running_mean.detach().double().cpu().numpy()
    var = bn.running_var.detach().double().cpu().numpy()
    a = g / np.sqrt(var + bn.eps)
    return weight.astype(np.float64) * a.reshape(-1, *([1] * (weight.ndim - 1))), beta - mu * a


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: `s[m] = max|W[m]| / 127`, `q = round_half_away(W/s)`.
    All-zero channels get s = 1/127 (their weights stay 0)."""
    w = np.asarray(w, dtype=np.float64)
    amax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0 / 127.0)
    q = round_half_away(w / scale.reshape(-1, *([1] * (w.ndim - 1))))
    return np.clip(q, -127, 127).astype(np.int8), scale


def choose_shift(ratios: np.ndarray, res_ratio: float = 0.0) -> int:
    """The largest shift <= 31 keeping every `round(ratio * 2^shift)` (and the residual's)
    below 2^31."""
    top = max(float(np.max(ratios, initial=0.0)), float(res_ratio))
    if not math.isfinite(top) or top <= 0:
        raise QuantizationError(f"requantization ratio {top} is not positive and finite")
    for shift in range(MAX_SHIFT, 0, -1):
        if round_half_away(top * 2.0 ** shift) < MULT_LIMIT:
            return shift
    raise QuantizationError(f"requantization ratio {top:.3g} is too large for a multiplier "
                            f"below 2^31 with shift >= 1 (output scale far too small?)")


def make_conv(name: str, w: np.ndarray, b: np.ndarray, s_in: float, s_out: float,
              out_signed: bool, stride: int, pad: int, in_tensor: str, out_tensor: str,
              res_tensor: Optional[str] = None, s_res: Optional[float] = None,
              tied: bool = False) -> QConv:
    """Quantize one folded conv (float64 W [M, C, k, k], b [M]) with its requantization."""
    wq, sw = quantize_weights(w)
    acc_scale = sw * s_in
    bias = round_half_away(b / acc_scale)
    if np.any(np.abs(bias) >= 2 ** 30):
        raise QuantizationError(f"{name}: bias does not fit the int32 accumulator "
                                f"(max |bias| = {np.abs(bias).max():.3g} LSB)")
    ratios = acc_scale / s_out
    res_ratio = 0.0 if res_tensor is None else float(s_res) / s_out
    shift = choose_shift(ratios, res_ratio)
    mult = round_half_away(ratios * 2.0 ** shift).astype(np.int64)
    res_mult = 0
    if res_tensor is not None:
        res_mult = 2 ** shift if tied else int(round_half_away(res_ratio * 2.0 ** shift))
    lo, hi = (-128, 127) if out_signed else (0, 255)
    return QConv(name=name, weight=wq, bias=bias.astype(np.int32), mult=mult.astype(np.int32),
                 shift=int(shift), res_mult=int(res_mult), lo=lo, hi=hi, stride=int(stride),
                 pad=int(pad), in_tensor=in_tensor, out_tensor=out_tensor, res_tensor=res_tensor,
                 weight_scale=sw.astype(np.float64))


def conv_weight(conv) -> np.ndarray:
    """A torch conv's weight as float64 numpy."""
    return conv.weight.detach().double().cpu().numpy()
