"""dgfpga.numerics.golden: integer kernels against plain-loop references (hypothesis), requantization
rounding and saturation, masked-execution semantics, MAC accounting, batch independence,
and the whole network against the float model."""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dgfpga.errors import FormatError
from dgfpga.numerics import gates, golden
from dgfpga.numerics.qmodel import quantize_input


# ----------------------------------------------------------------------------- references

def loop_conv(x, w, stride, pad, pixels=None, out_ch=None, in_ch=None):
    """Plain loops over one image: x [C, H, W], w [M, C, k, k] -> (acc [M, Ho, Wo], macs)."""
    c, h, wd = x.shape
    m, _, k, _ = w.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    acc = np.zeros((m, ho, wo), dtype=np.int64)
    macs = 0
    for oy in range(ho):
        for ox in range(wo):
            if pixels is not None and not pixels[oy, ox]:
                continue
            for mo in range(m):
                if out_ch is not None and not out_ch[mo]:
                    continue
                s = 0
                for ci in range(c):
                    if in_ch is not None and not in_ch[ci]:
                        continue
                    for ky in range(k):
                        for kx in range(k):
                            macs += 1
                            iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                            if 0 <= iy < h and 0 <= ix < wd:
                                s += int(w[mo, ci, ky, kx]) * int(x[ci, iy, ix])
                acc[mo, oy, ox] = s
    return acc, macs


def exact_requant(acc, mult, shift, lo, hi, res=0, res_mult=0):
    """Round half up of the exact rational (acc*mult + res*res_mult) / 2^shift, clamped."""
    q = Fraction(int(acc) * int(mult) + int(res) * int(res_mult), 2 ** int(shift))
    y = (q + Fraction(1, 2)).__floor__()
    return min(max(y, lo), hi)


conv_case = st.tuples(
    st.integers(1, 2),          # N
    st.integers(1, 4),          # C
    st.integers(1, 4),          # M
    st.integers(1, 9),          # H
    st.integers(1, 9),          # W
    st.sampled_from([1, 3, 5, 7]),
    st.integers(1, 3),          # stride
    st.integers(0, 3),          # pad
    st.integers(0, 2**31),      # seed
    st.sampled_from(["random", "extreme"]),
)


def make_conv_inputs(case):
    n, c, m, h, w, k, stride, pad, seed, kind = case
    pad = min(pad, k - 1)
    h, w = max(h, k - 2 * pad), max(w, k - 2 * pad)
    rng = np.random.default_rng(seed)
    if kind == "extreme":   # saturation edges: all-extreme operands
        x = rng.choice([0, 255], size=(n, c, h, w)).astype(np.int64)
        wt = rng.choice([-128, 127, -127], size=(m, c, k, k)).astype(np.int8)
    else:
        x = rng.integers(-128, 128, size=(n, c, h, w)).astype(np.int64)
        wt = rng.integers(-128, 128, size=(m, c, k, k)).astype(np.int8)
    return x, wt, stride, pad, rng


@settings(max_examples=80, deadline=None)
@given(conv_case)
def test_conv2d_int_matches_loop_reference(case):
    x, w, stride, pad, _ = make_conv_inputs(case)
    got = golden.conv2d_int(x, w, stride, pad)
    for i in range(x.shape[0]):
        ref, _ = loop_conv(x[i], w, stride, pad)
        np.testing.assert_array_equal(got[i], ref)


@settings(max_examples=80, deadline=None)
@given(conv_case, st.sampled_from(["off", "on", "random"]), st.booleans(), st.booleans())
def test_masked_conv_matches_loop_reference(case, mask_kind, gate_out, gate_in):
    x, w, stride, pad, rng = make_conv_inputs(case)
    n, c = x.shape[:2]
    m = w.shape[0]
    ho = (x.shape[2] + 2 * pad - w.shape[2]) // stride + 1
    wo = (x.shape[3] + 2 * pad - w.shape[2]) // stride + 1
    pick = {"off": lambda s: np.zeros(s, bool), "on": lambda s: np.ones(s, bool),
            "random": lambda s: rng.random(s) < 0.5}[mask_kind]
    pixels = pick((n, ho, wo))
    out_ch = pick((n, m)) if gate_out else None
    in_ch = pick((n, c)) if gate_in else None
    acc, macs = golden.masked_conv2d_int(x, w, stride, pad, pixels, out_ch, in_ch)
    for i in range(n):
        ref, ref_macs = loop_conv(x[i], w, stride, pad, pixels[i],
                                  None if out_ch is None else out_ch[i],
                                  None if in_ch is None else in_ch[i])
        np.testing.assert_array_equal(acc[i], ref)
        assert macs[i] == ref_macs


@settings(max_examples=200, deadline=None)
@given(acc=st.integers(-2**31 + 1, 2**31 - 1), mult=st.integers(0, 2**31 - 1),
       shift=st.integers(1, 31), res=st.integers(-128, 255), res_mult=st.integers(0, 2**31 - 1),
       signed=st.booleans())
def test_requant_matches_exact_rounding(acc, mult, shift, res, res_mult, signed):
    lo, hi = (-128, 127) if signed else (0, 255)
    y = golden.requant(np.array([[[[acc]]]]), np.array([mult]), shift, lo, hi,
                       np.array([[[[res]]]]), res_mult)
    assert int(y[0, 0, 0, 0]) == exact_requant(acc, mult, shift, lo, hi, res, res_mult)


@pytest.mark.parametrize("z,shift,want", [
    (2 ** 9 * 3 + 2 ** 8, 9, 4),       # +3.5 -> 4 (half up)
    (-(2 ** 9 * 3) - 2 ** 8, 9, -3),   # -3.5 -> -3 (half up, toward +inf)
    (-(2 ** 8), 9, 0),                 # -0.5 -> 0
    (2 ** 8, 9, 1),                    # +0.5 -> 1
    (2 ** 8 - 1, 9, 0),                # just below +0.5
    (1, 1, 1),                         # shift 1: 0.5 -> 1
])
def test_requant_ties_round_half_up(z, shift, want):
    y = golden.requant(np.array([[[[z]]]]), np.array([1]), shift, -128, 127)
    assert int(y[0, 0, 0, 0]) == want


def test_requant_saturates_at_both_ends():
    acc = np.array([-(2 ** 31 - 1), -1000, 1000, 2 ** 31 - 1]).reshape(1, 1, 1, 4)
    mult = np.array([2 ** 31 - 1])
    np.testing.assert_array_equal(golden.requant(acc, mult, 20, 0, 255)[0, 0, 0], [0, 0, 255, 255])
    np.testing.assert_array_equal(golden.requant(acc, mult, 20, -128, 127)[0, 0, 0], [-128, -128, 127, 127])


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 11), w=st.integers(1, 11), seed=st.integers(0, 2**31))
def test_maxpool_matches_loop_reference(h, w, seed):
    x = np.random.default_rng(seed).integers(0, 256, size=(2, 3, h, w))
    got = golden.maxpool3x3s2(x)
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    for oy in range(ho):
        for ox in range(wo):
            win = x[:, :, max(0, 2 * oy - 1):2 * oy + 2, max(0, 2 * ox - 1):2 * ox + 2]
            np.testing.assert_array_equal(got[:, :, oy, ox], win.max(axis=(2, 3)))


def test_input_quantization_rounds_half_away_from_zero():
    s = 2.0 ** -5                                   # exact divisions
    x = np.array([0.5, -0.5, 2.5, -2.5, 2.49, -2.49, 200.0, -200.0, 127.5, -128.5]) * s
    np.testing.assert_array_equal(quantize_input(x, s), [1, -1, 3, -3, 2, -2, 127, -128, 127, -128])


# ----------------------------------------------------------------------------- network

@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.quantizer import QuantConfig, quantize_model
    from dgfpga.quant.float_model import make_test_model
    calib = load_split("train", 64).images
    model = make_test_model("resdg20_cifar10", calib, seed=3)
    qm = quantize_model(model, calib)
    qm_dense = quantize_model(model, calib, QuantConfig(calibration_mode="dense"))
    images = load_split("test", 40).images
    return model, qm, qm_dense, images


def test_dense_golden_is_close_to_the_float_model(setup):
    import torch
    model, _, qm_dense, images = setup
    g = golden.run_golden(qm_dense, images, masks="dense")
    model.dense = True
    try:
        with torch.no_grad():
            fl = model(torch.from_numpy(images)).double().numpy()
    finally:
        model.dense = False
    rel = np.linalg.norm(g.logits - fl) / np.linalg.norm(fl - fl.mean(1, keepdims=True))
    assert rel < 0.25, rel
    assert (g.logits.argmax(1) == fl.argmax(1)).mean() >= 0.85
    assert g.density.tolist() == [1.0] * len(images) and (g.total_macs == g.dense_macs).all()


def test_gated_golden_mac_accounting_equals_the_float_models(setup):
    """Given the float model's masks, the executed MACs equal the official accounting."""
    import torch
    model, qm, _, images = setup
    with torch.no_grad():
        out = model.forward_gated(torch.from_numpy(images))
    g = golden.run_golden(qm, images, masks=out.masks)
    np.testing.assert_array_equal(g.total_macs, out.macs.numpy())
    np.testing.assert_allclose(g.block_density, (out.flops_real / out.flops_full).numpy())
    for gm, bm in zip(g.masks, out.masks):
        np.testing.assert_array_equal(gm.spatial, bm.spatial[:, 0].numpy() > 0)
        np.testing.assert_array_equal(gm.pixels(tuple(bm.spatial_up.shape[2:])),
                                      bm.spatial_up[:, 0].numpy() > 0)


def test_masked_semantics_in_integers(setup):
    _, qm, _, images = setup
    rng = np.random.default_rng(5)
    n = len(images)
    masks = [golden.GateMasks(rng.random((n, *b.grid)) < 0.5,
                              rng.random((n, b.conv1.out_channels)) < 0.5) for b in qm.blocks]
    g = golden.run_golden(qm, images, masks=masks)
    for b, m in zip(qm.blocks, masks):
        _, ho, wo = qm.tensors[b.out_tensor].shape
        pix = m.pixels((ho, wo))
        out1 = g.layers[b.conv1.out_tensor]
        live = pix[:, None] & m.channel[:, :, None, None]
        assert not out1[~live].any(), "conv1 wrote outside active tiles x channels"
        cin = b.conv1.in_channels
        assert (g.macs[b.conv1.name] == pix.sum((1, 2)) * m.channel.sum(1) * cin * 9).all()
        assert (g.macs[b.conv2.name] == pix.sum((1, 2)) * b.conv2.out_channels * m.channel.sum(1) * 9).all()
        y = g.layers[b.out_tensor]
        if b.identity:                        # tied scales: y == x exactly at inactive tiles
            x = g.layers[b.in_tensor]
            off = np.broadcast_to(~pix[:, None], y.shape)
            np.testing.assert_array_equal(y[off], x[off])
        else:                                 # y = ReLU(requant(shortcut)) at inactive tiles
            res = g.layers[b.conv2.res_tensor].astype(np.int64)
            want = golden.requant(np.zeros_like(res), b.conv2.mult, b.conv2.shift, 0, 255,
                                  res, b.conv2.res_mult)
            off = np.broadcast_to(~pix[:, None], y.shape)
            np.testing.assert_array_equal(y[off], want[off])


def test_all_off_masks_pass_the_residual_stream_through(setup):
    _, qm, _, images = setup
    n = len(images)
    off = [(np.zeros((n, *b.grid), bool), np.zeros((n, b.conv1.out_channels), bool)) for b in qm.blocks]
    g = golden.run_golden(qm, images, masks=off)
    for b in qm.blocks:
        assert not g.macs[b.conv1.name].any() and not g.macs[b.conv2.name].any()
        if b.identity:
            np.testing.assert_array_equal(g.layers[b.out_tensor], g.layers[b.in_tensor])


def test_results_do_not_depend_on_batching(setup):
    _, qm, _, images = setup
    a = golden.run_golden(qm, images, chunk=50)
    b = golden.run_golden(qm, images, chunk=7)
    c = golden.run_golden(qm, images[3:4])
    np.testing.assert_array_equal(a.logits_int, b.logits_int)
    np.testing.assert_array_equal(a.logits_int[3:4], c.logits_int)
    for k in a.layers:
        np.testing.assert_array_equal(a.layers[k], b.layers[k])
    for ma, mb in zip(a.masks, b.masks):
        np.testing.assert_array_equal(ma.spatial, mb.spatial)
        np.testing.assert_array_equal(ma.channel, mb.channel)
    # int8 input path: the same as quantizing the floats here.
    d = golden.run_golden(qm, a.layers["input"])
    np.testing.assert_array_equal(a.logits_int, d.logits_int)


def test_golden_is_fast_enough_for_sweeps(setup):
    _, qm, _, images = setup
    batch = np.concatenate([images] * 3)[:100]
    t0 = time.perf_counter()
    golden.run_golden(qm, batch, keep_layers=False)
    assert time.perf_counter() - t0 < 20.0      # ~1-2 s on one core; generous for shared CI


def test_bad_inputs_are_refused(setup):
    from dgfpga.errors import DgfpgaError
    _, qm, _, images = setup
    with pytest.raises(DgfpgaError, match="images must be"):
        golden.run_golden(qm, images[:, :, :16])
    with pytest.raises(DgfpgaError, match="masks"):
        golden.run_golden(qm, images, masks="sparse")
    with pytest.raises(DgfpgaError, match="blocks"):
        golden.run_golden(qm, images, masks=[])


@pytest.fixture(scope="module")
def shipped():
    """The shipped d50 checkpoint, quantized (64 calibration images), and 16 test images."""
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    from pathlib import Path
    from dgfpga.data.embedded import load_split
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import quantize_model
    ckpt = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "resdg20_cifar10_d50.pth.tar"
    model, _ = load_float_model(ckpt, "resdg20_cifar10")
    return quantize_model(model, load_split("train", 64).images), load_split("test", 16).images


def test_engine_tile_sum_route_equals_the_golden_gates_on_the_shipped_model(shipped):
    """The golden model's gates (whole-map bin sums, each bin's own count) equal
    `gates_from_tile_sums` on per-tile sums of the same block inputs, for every sum-tile
    size whose tiles the bins align with (the engine's tiles among them)."""
    qm, images = shipped
    g = golden.run_golden(qm, images)
    checked = 0
    for i, b in enumerate(qm.blocks):
        x = g.layers[b.in_tensor].astype(np.int64)            # [N, C, H, W]
        h, w = x.shape[2:]
        aligned = 0
        for tile in range(1, h + 1):
            try:
                table = gates.bin_table(h, w, tile, b.grid)
            except FormatError:
                continue
            th, tw = -(-h // tile), -(-w // tile)
            ts = np.zeros((x.shape[0], th, tw, x.shape[1]), np.int64)
            for r in range(th):
                for c in range(tw):
                    ts[:, r, c] = x[:, :, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile].sum((2, 3))
            sp, ch = gates.gates_from_tile_sums(ts, table, b.spatial_gate, b.channel_gate)
            np.testing.assert_array_equal(sp, g.masks[i].spatial)
            np.testing.assert_array_equal(ch, g.masks[i].channel)
            aligned += 1
        assert aligned >= 2, b.name                          # 1-px sums always align
        checked += 1
        m = g.masks[i]
        assert 0 < m.spatial.mean() < 1 or b.name.startswith("layer1")  # real, mixed decisions
    assert checked == len(qm.blocks)
