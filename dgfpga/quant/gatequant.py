"""Integer gates from float gate parameters (numpy only): how the quantizer derives
`IntSpatialGate` / `IntChannelGate` (docs/quantization.md, "Integer gates").

With `s_in` the block input's scale (real = s_in * q) and F = GATE_FRAC_BITS, a pooled
value P carries F fractional bits of the input code: `p_real = s_in * P / 2^F`.

spatial gate (3x3 conv weight fc_s [C, 3, 3], bias b_s)
    `ws = fc_s * s_in`; `sigma_s = max|ws| / GATE_WEIGHT_MAX` (1 if all zero);
    `weight = round(ws / sigma_s)`; `bias = round(b_s * 2^F / sigma_s)`, clamped to
    +-(GATE_BIAS_LIMIT - 1) (sign kept: such a bias outweighs every sum). Then
    `real logit = L * sigma_s / 2^F`.
channel gate (fc1 [hid, C], folded BN bn_scale/bn_shift [hid], fc2 [C_out, hid], fc2_bias)
    row j of w1: `fc1[j] * s_in`, `sigma1[j] = max|row| / GATE_WEIGHT_MAX`, `w1 = round(row /
    sigma1[j])`; hidden scale `s_h = hidden_range / GATE_HIDDEN_MAX` (hidden_range: the
    calibrated max of relu(bn(fc1 . p)) times a margin, or the analytic bound when that is
    0); `m1[j] = round(sigma1[j] * bn_scale[j] / (2^F * s_h) * 2^shift)`, `o1[j] =
    round(bn_shift[j] / s_h * 2^shift)` with the largest shift in 1..62 keeping |m1| < 2^31,
    |o1| < GATE_BIAS_LIMIT and the overflow bound `channel_gate_bound` < 2^62;
    `sigma2[m] = max|fc2[m]| / GATE_WEIGHT_MAX`, `w2 = round(fc2 / sigma2)`,
    `b2 = round(fc2_bias / (sigma2 * s_h))` clamped. Then `real logit = logit * sigma2 * s_h`.

Rounding is `round_half_away`. Anything that cannot be represented raises QuantizationError.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgfpga.contract import program
from dgfpga.numerics import gates
from dgfpga.numerics.gates import IntChannelGate, IntSpatialGate
from dgfpga.numerics.qmodel import round_half_away
from dgfpga.quant import QuantizationError

__all__ = ["FloatGates", "quantize_spatial_gate", "quantize_channel_gate", "hidden_range",
           "hidden_values", "DEFAULT_HIDDEN_MARGIN"]

#: The calibrated hidden maximum is multiplied by this before it maps to GATE_HIDDEN_MAX:
#: test images whose hidden units exceed the calibration maximum by up to 2x are not
#: clamped, at the cost of one of the 15 bits of the hidden code.
DEFAULT_HIDDEN_MARGIN = 2.0


@dataclass
class FloatGates:
    """A block's float gate parameters (float64; channel gate BN folded):
    ws [C, 3, 3], bs, fc1 [hid, C], bn_scale/bn_shift [hid], fc2 [C_out, hid], fc2_bias [C_out]."""
    ws: np.ndarray
    bs: float
    fc1: np.ndarray
    bn_scale: np.ndarray
    bn_shift: np.ndarray
    fc2: np.ndarray
    fc2_bias: np.ndarray

    def __post_init__(self):
        for n in ("ws", "fc1", "bn_scale", "bn_shift", "fc2", "fc2_bias"):
            setattr(self, n, np.asarray(getattr(self, n), dtype=np.float64))
        self.bs = float(self.bs)
        vals = np.concatenate([getattr(self, n).ravel() for n in
                               ("ws", "fc1", "bn_scale", "bn_shift", "fc2", "fc2_bias")] +
                              [np.array([self.bs])])
        if not np.all(np.isfinite(vals)):
            raise QuantizationError("gate parameters contain NaN or infinity")


def _scale(a: np.ndarray, axis=None) -> np.ndarray:
    """max|a| / GATE_WEIGHT_MAX (over `axis`), 1.0 where everything is zero."""
    m = np.abs(a).max(axis=axis) / program.GATE_WEIGHT_MAX
    return np.where(m > 0, m, 1.0)


def _clamp_bias(v: np.ndarray) -> np.ndarray:
    lim = float(program.GATE_BIAS_LIMIT - 1)
    return np.clip(round_half_away(v), -lim, lim).astype(np.int64)


def quantize_spatial_gate(ws, bs: float, s_in: float) -> IntSpatialGate:
    """The integer spatial gate of float weight ws [C, 3, 3] and bias bs on an input of
    scale s_in."""
    ws = np.asarray(ws, dtype=np.float64) * float(s_in)
    sigma = float(_scale(ws))
    w = round_half_away(ws / sigma).astype(np.int16)
    bias = int(_clamp_bias(np.array(float(bs) * 2 ** program.GATE_FRAC_BITS / sigma)))
    g = IntSpatialGate(w, bias)
    if gates.spatial_gate_bound(g) >= gates.Z_LIMIT:
        raise QuantizationError(f"spatial gate: worst-case logit {gates.spatial_gate_bound(g)} "
                                ">= 2^62 (too many input channels)")
    return g


def hidden_values(pooled: np.ndarray, fg: FloatGates) -> np.ndarray:
    """relu(bn(fc1 . p)) of float pooled block inputs p [N, C] (real units): [N, hid]."""
    return np.maximum(np.asarray(pooled, np.float64) @ fg.fc1.T * fg.bn_scale + fg.bn_shift, 0.0)


def hidden_range(fg: FloatGates, s_in: float, calibrated_max: float,
                 margin: float = DEFAULT_HIDDEN_MARGIN, in_max: int = 255) -> float:
    """The real value the hidden code GATE_HIDDEN_MAX stands for: calibrated_max * margin,
    or (if that is 0) the analytic bound max_j relu(|bn_scale| sum|fc1[j]| s_in in_max +
    bn_shift), or 1.0 if even that is 0 (every hidden unit is always 0)."""
    if not (np.isfinite(calibrated_max) and calibrated_max >= 0 and margin >= 1):
        raise QuantizationError(f"hidden range: calibrated max {calibrated_max} and margin "
                                f"{margin} must be finite, >= 0 and >= 1")
    r = float(calibrated_max) * float(margin)
    if r > 0:
        return r
    bound = np.abs(fg.bn_scale) * np.abs(fg.fc1).sum(axis=1) * float(s_in) * in_max + fg.bn_shift
    r = float(np.maximum(bound, 0).max(initial=0.0))
    return r if r > 0 else 1.0


def quantize_channel_gate(fg: FloatGates, s_in: float, h_range: float) -> IntChannelGate:
    """The integer channel gate of `fg` on an input of scale s_in, hidden code
    GATE_HIDDEN_MAX = h_range (real). Chooses the largest shift that keeps every bound."""
    if not (np.isfinite(h_range) and h_range > 0):
        raise QuantizationError(f"channel gate: hidden range {h_range} must be positive")
    f = program.GATE_FRAC_BITS
    s_h = float(h_range) / program.GATE_HIDDEN_MAX
    rows = fg.fc1 * float(s_in)
    sigma1 = _scale(rows, axis=1)
    w1 = round_half_away(rows / sigma1[:, None]).astype(np.int16)
    mreal = sigma1 * fg.bn_scale / (2 ** f * s_h)          # h = A * mreal + oreal
    oreal = fg.bn_shift / s_h
    sigma2 = _scale(fg.fc2, axis=1)
    w2 = round_half_away(fg.fc2 / sigma2[:, None]).astype(np.int16)
    b2 = _clamp_bias(fg.fc2_bias / (sigma2 * s_h))
    a_max = [int(v) for v in np.abs(w1.astype(np.int64)).sum(axis=1) * (gates.POOLED_LIMIT - 1)]
    for shift in range(gates.MAX_SHIFT, 0, -1):
        m1 = round_half_away(mreal * 2.0 ** shift)
        o1 = round_half_away(oreal * 2.0 ** shift)
        if np.abs(m1).max(initial=0) >= 2 ** 31 or np.abs(o1).max(initial=0) >= program.GATE_BIAS_LIMIT:
            continue
        m1i, o1i = [int(v) for v in m1], [int(v) for v in o1]
        bound = max((a * abs(m) + abs(o) for a, m, o in zip(a_max, m1i, o1i)), default=0)
        if bound + 2 ** (shift - 1) < gates.Z_LIMIT:
            return IntChannelGate(w1, np.array(m1i, np.int32), np.array(o1i, np.int64), shift,
                                  w2, b2)
    raise QuantizationError(
        "channel gate: no requantization shift in 1..62 keeps |m1| < 2^31, |o1| < 2^46 and "
        "|A*m1| + |o1| < 2^62 (BatchNorm scale/shift too large for the hidden range "
        f"{h_range:g})")
