"""dgfpga.quant.gatequant: float gate parameters -> integer gates (torch-free). The derived
gates approximate the float gates within the bounds of docs/quantization.md, the chosen
shift is the largest that keeps every bound, and impossible cases raise QuantizationError."""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.contract import program
from dgfpga.numerics import gates
from dgfpga.quant import QuantizationError
from dgfpga.quant.gatequant import (FloatGates, hidden_range, hidden_values,
                                    quantize_channel_gate, quantize_spatial_gate)

F = 2 ** program.GATE_FRAC_BITS


def float_gates(rng, c=32, c_out=24, bn=(0.5, 1.5)):
    hid = c // 4
    return FloatGates(rng.normal(0, 0.3, (c, 3, 3)), rng.normal(0, 0.2), rng.normal(0, 0.3, (hid, c)),
                      rng.uniform(*bn, hid), rng.normal(0, 0.2, hid), rng.normal(0, 0.3, (c_out, hid)),
                      rng.normal(0, 0.2, c_out))


def test_spatial_gate_uses_the_full_int16_range_and_approximates_the_float_gate():
    rng = np.random.default_rng(0)
    fg, s_in = float_gates(rng), 0.02
    g = quantize_spatial_gate(fg.ws, fg.bs, s_in)
    assert g.weight.dtype == np.int16 and np.abs(g.weight).max() == 32767
    sigma = np.abs(fg.ws * s_in).max() / 32767
    np.testing.assert_allclose(g.weight * sigma, fg.ws * s_in, atol=sigma / 2 + 1e-18)
    assert abs(g.bias * sigma / F - fg.bs) <= sigma / F / 2 + 1e-15
    # logits on random u8 maps: real = L * sigma / 2^F, float64 reference from the same codes
    x = rng.integers(0, 256, (20, 32, 8, 8))
    p = gates.gate_pool(gates.bin_sums(x, (4, 4)), gates.gate_reciprocal(4))
    mean = gates.bin_sums(x, (4, 4)) / 4.0 * s_in
    pad = np.pad(mean, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.full((20, 4, 4), fg.bs)
    for ky in range(3):
        for kx in range(3):
            ref += np.einsum("nchw,c->nhw", pad[:, :, ky:ky + 4, kx:kx + 4], fg.ws[:, ky, kx])
    got = gates.spatial_gate_logits_int(p, g) * sigma / F
    tol = np.abs(fg.ws * s_in).sum() / F + sigma * (fg.ws.size * 255 / 2 + 1)
    assert np.abs(got - ref).max() <= tol
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max()


def test_spatial_bias_beyond_the_limit_is_clamped_with_its_sign():
    ws = np.zeros((4, 3, 3))
    ws[0, 1, 1] = 1e-9
    g = quantize_spatial_gate(ws, -5.0, 1e-3)                 # bias / sigma >> 2^46
    assert g.bias == -(2 ** 46 - 1)
    assert not (gates.spatial_gate_logits_int(np.full((4, 2, 2), 2 ** 17 - 1), g) >= 0).any()
    g = quantize_spatial_gate(np.zeros((4, 3, 3)), 0.25, 0.01)  # all-zero weights: sigma 1
    assert not g.weight.any() and g.bias == 64                 # 0.25 * 2^8


def _bounds_ok(g: gates.IntChannelGate) -> bool:
    return (np.abs(g.m1.astype(np.int64)).max() < 2 ** 31 and np.abs(g.o1).max() < 2 ** 46
            and gates.channel_gate_bound(g) < 2 ** 62)


@pytest.mark.parametrize("seed,c,bn_scale,h_range,no_shift,binding", [
    (1, 32, (0.5, 1.5), 4.0, False, "o1"), (2, 64, (-2, 2), 0.5, False, "o1"),
    (3, 16, (1e-3, 1e-2), 30.0, False, "o1"), (4, 512, (0.5, 1.5), 8.0, False, "o1"),
    (5, 8, (100, 200), 1e-3, False, "o1"),
    (6, 32, (1e-12, 2e-12), 100.0, True, "62"),         # nothing binds: the top shift
    (7, 512, (0.5, 1.5), 4.0, True, "bound"),           # |A*m1| < 2^62 binds before |m1| < 2^31
    (8, 4, (0.5, 1.5), 4.0, True, "bound"),             # (|m1| < 2^31 never binds: a row's
                                                        # max is 32767, so max|A| >= 2^32)
])
def test_channel_gate_shift_is_the_largest_that_keeps_every_bound(seed, c, bn_scale, h_range,
                                                                  no_shift, binding):
    rng = np.random.default_rng(seed)
    fg, s_in = float_gates(rng, c=c, bn=bn_scale), 0.03
    if no_shift:
        fg.bn_shift[:] = 0.0
    g = quantize_channel_gate(fg, s_in, h_range)
    assert _bounds_ok(g) and 1 <= g.shift <= 62
    a_max = np.abs(g.w1.astype(np.int64)).sum(1) * (2 ** 17 - 1)
    if binding == "62":
        assert g.shift == 62
    elif binding == "o1":
        assert np.abs(g.o1).max() >= 2 ** 45
    else:
        assert gates.channel_gate_bound(g) >= 2 ** 61 and np.abs(g.m1.astype(np.int64)).max() < 2 ** 30
    if g.shift < 62:
        # the same derivation one shift higher breaks a bound
        s_h = h_range / 32767
        sigma1 = np.abs(fg.fc1 * s_in).max(1) / 32767
        up = g.shift + 1
        m1 = np.round(sigma1 * fg.bn_scale / (F * s_h) * 2.0 ** up)
        o1 = np.round(fg.bn_shift / s_h * 2.0 ** up)
        broken = (np.abs(m1).max() >= 2 ** 31 or np.abs(o1).max() >= 2 ** 46 or
                  max(int(a) * abs(int(m)) + abs(int(o)) for a, m, o in zip(a_max, m1, o1))
                  + 2 ** up // 2 >= 2 ** 62)
        assert broken


def test_channel_gate_approximates_the_float_gate():
    rng = np.random.default_rng(7)
    fg, s_in = float_gates(rng, c=64, c_out=64), 0.04
    x = rng.integers(0, 256, (200, 64, 16, 16))
    pooled = x.mean(axis=(2, 3)) * s_in                     # real pooled values
    hmax = hidden_values(pooled, fg).max()
    h_range = hidden_range(fg, s_in, hmax)
    g = quantize_channel_gate(fg, s_in, h_range)
    ref = hidden_values(pooled, fg) @ fg.fc2.T + fg.fc2_bias
    pt = gates.gate_pool(x.sum(axis=(2, 3)), gates.gate_reciprocal(256))
    sigma2 = np.abs(fg.fc2).max(1) / 32767
    got = gates.channel_gate_logits_int(pt, g) * sigma2 * (h_range / 32767)
    assert np.abs(got - ref).max() < 2e-3 * np.abs(ref).max()
    clear = np.abs(ref) > 5e-3 * np.abs(ref).max()
    np.testing.assert_array_equal((got >= 0)[clear], (ref >= 0)[clear])


def test_hidden_range_margin_and_analytic_fallback():
    rng = np.random.default_rng(3)
    fg = float_gates(rng)
    assert hidden_range(fg, 0.02, 3.0, margin=2.0) == 6.0
    bound = hidden_range(fg, 0.02, 0.0)                      # nothing calibrated: analytic
    want = (np.abs(fg.bn_scale) * np.abs(fg.fc1).sum(1) * 0.02 * 255 + fg.bn_shift).max()
    assert bound == pytest.approx(want)
    x = rng.integers(0, 256, (500, fg.fc1.shape[1])) * 0.02
    assert hidden_values(x, fg).max() <= bound
    dead = FloatGates(fg.ws, fg.bs, np.zeros_like(fg.fc1), fg.bn_scale, -np.ones_like(fg.bn_shift),
                      fg.fc2, fg.fc2_bias)
    assert hidden_range(dead, 0.02, 0.0) == 1.0
    with pytest.raises(QuantizationError, match="margin"):
        hidden_range(fg, 0.02, 1.0, margin=0.5)


def test_impossible_channel_gates_raise_quantization_error():
    rng = np.random.default_rng(4)
    fg = float_gates(rng)
    huge = FloatGates(fg.ws, fg.bs, fg.fc1, fg.bn_scale, np.full_like(fg.bn_shift, 1e30),
                      fg.fc2, fg.fc2_bias)                   # |o1| >= 2^46 even at shift 1
    with pytest.raises(QuantizationError, match="no requantization shift"):
        quantize_channel_gate(huge, 0.02, 1.0)
    with pytest.raises(QuantizationError, match="hidden range"):
        quantize_channel_gate(fg, 0.02, 0.0)
    with pytest.raises(QuantizationError, match="NaN"):
        FloatGates(fg.ws, np.nan, fg.fc1, fg.bn_scale, fg.bn_shift, fg.fc2, fg.fc2_bias)
