"""MobileNetV2 DGNets (mobilenet_v2_dg) through the quantizer and the integer golden model.

References, each independent of `dgfpga.numerics.golden`: the fake-quant torch path
(`dgfpga.quant.fakequant`: F.conv2d with groups, the official masking order - expand on
every channel under the input mask, then dw * mask_c * mask - its own integer gates, the
float model's NearestUpsample), the float model's official MAC accounting
(`dgfpga_models`), and the float model's own gate modules on the same int8 inputs
(`gate_arithmetic_flips`). Input 112x112: the last gated stage has 7x7 maps with tile 2,
i.e. a 4x4 grid with uneven, overlapping pooling bins ([0,2) [1,4) [3,6) [5,7)) and an
upsampling that does not line up with the tiles - the 224x224 network's geometry there;
14x14 maps with a 4x4 grid (tile 4) and 4x4 maps with a 2x2 grid occur too.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from dgfpga.numerics import gates, golden  # noqa: E402
from dgfpga.numerics.qmodel import load_qmodel, save_qmodel  # noqa: E402
from dgfpga.quant.fakequant import compare_layers, run_fakequant  # noqa: E402


def _images(n, size, seed=0):
    from dgfpga.quant.float_model import IMAGENET_MEAN, IMAGENET_STD
    u = np.random.default_rng(seed).uniform(0, 1, (n, 3, size, size))
    x = (u - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[:, None, None]
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def net():
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    torch.set_num_threads(1)
    x = _images(6, 112)
    model = make_test_model("mobilenet_v2_dg", x, input_size=(112, 112), num_classes=10)
    return model, quantize_model(model, x), x


def test_structure(net):
    _, qm, _ = net
    assert len(qm.blocks) == 17 and {b.kind for b in qm.blocks} == {"inverted_residual"}
    gated = [b.name for b in qm.blocks if b.gated]
    assert gated == ["features.3", "features.5", "features.6", "features.8", "features.9",
                     "features.10", "features.12", "features.13", "features.15",
                     "features.16"]
    first = qm.blocks[0]                       # t = 1: no expansion, ungated, dense
    assert first.conv1 is None and first.spatial_gate is None and first.grid == (0, 0)
    b = qm.blocks[7]                           # features.8: 7x7 maps, tile 2 -> 4x4 grid
    assert b.name == "features.8" and b.identity and b.tile == 2 and b.grid == (4, 4)
    assert qm.tensors[b.in_tensor].shape == qm.tensors[b.out_tensor].shape == (64, 7, 7)
    dw = b.conv2
    assert dw.groups == 384 and dw.weight.shape == (384, 1, 3, 3) and dw.in_channels == 384
    assert qm.blocks[14].grid == (2, 2)        # features.15: 4x4 maps, 3 px bins [0,2) [1,4)
    assert qm.tensors[b.out_tensor].signed and b.conv3.res_tensor == b.in_tensor
    assert qm.tail is not None and qm.tail.out_channels == 1280
    assert qm.head.in_tensor == qm.tail.out_tensor
    # ReLU6: the u8 clamp at 255 is at or below 6.0 real for every ReLU6 tensor
    relu6 = ["stem", "tail"] + [t for t in qm.tensors if t.endswith((".out1", ".out2"))]
    for t in relu6:
        assert not qm.tensors[t].signed and qm.tensors[t].scale * 255 <= 6.0 + 1e-12, t


def test_uneven_grid_geometry():
    """7x7 maps: tile 2 gives 4 uneven, overlapping pooling bins; the golden model's
    upsampling (gates.upsample_grid) equals the official NearestUpsample and F.interpolate."""
    import torch
    import torch.nn.functional as F
    from dgfpga_models.mask import NearestUpsample
    assert gates.pool_bins(7, 4) == [(0, 2), (1, 4), (3, 6), (5, 7)]
    m = np.random.default_rng(1).uniform(size=(3, 4, 4)) > 0.5
    t = torch.from_numpy(m[:, None].astype(np.float64))
    official = NearestUpsample(4, 4, 7, 7)(t)[:, 0].numpy() > 0
    np.testing.assert_array_equal(gates.upsample_grid(m, (7, 7)), official)
    np.testing.assert_array_equal(F.interpolate(t, size=(7, 7), mode="nearest")[:, 0] > 0,
                                  official)


def test_golden_equals_fakequant_on_every_layer(net):
    """Every tensor (expand, depthwise, projection, tail), every gate decision and the logits
    agree with the independent torch implementation, the 7x7 / 4x4-grid blocks included."""
    _, qm, x = net
    g = golden.run_golden(qm, x)
    fq = run_fakequant(qm, x)
    diff = compare_layers(g.layers, fq.layers)
    assert sum(d for d, _ in diff.values()) == 0, {k: v for k, v in diff.items() if v[0]}
    assert sum(n for _, n in diff.values()) > 5_000_000
    assert {"features.8.out1", "features.8.out2", "features.8.out", "tail"} <= set(diff)
    np.testing.assert_array_equal(g.logits_int, fq.logits_int)
    for b, gm, fm in zip(qm.blocks, g.masks, fq.masks):
        if not b.gated:
            assert gm is None and fm is None
            continue
        np.testing.assert_array_equal(gm.spatial, fm[0])
        np.testing.assert_array_equal(gm.channel, fm[1])
    # mixed decisions everywhere, on the 7x7 blocks too, so the masks matter
    for i in (7, 8, 9, 14):
        assert 0.1 < g.masks[i].spatial.mean() < 0.9 and 0.1 < g.masks[i].channel.mean() < 0.9
    # inactive pixels of a residual block pass the input through exactly (tied scales)
    b, gm = qm.blocks[7], g.masks[7]
    off = ~gm.pixels((7, 7))
    xin, y = g.layers[b.in_tensor], g.layers[b.out_tensor]
    assert off.any()
    np.testing.assert_array_equal(np.moveaxis(y, 1, -1)[off], np.moveaxis(xin, 1, -1)[off])


def test_dense_run_matches_fakequant(net):
    _, qm, x = net
    g = golden.run_golden(qm, x[:2], masks="dense")
    fq = run_fakequant(qm, x[:2], masks="dense")
    np.testing.assert_array_equal(g.logits_int, fq.logits_int)
    assert g.density.min() == 1.0 and g.block_density.min() == 1.0


def test_macs_follow_the_official_accounting(net):
    """With the float model's own masks: every block's executed conv MACs equal the official
    formula (expand pix_in*ch*C_in, dw 9*pix*ch, project pix*ch*C_out; ungated blocks dense)
    and the gate MACs equal its flops_mask. The totals differ only by the official stem
    quirk (it counts 3*h*w*3*32, a third of the stem's 27*h*w*32 MACs); the final 1x1 conv
    and the classifier, which it counts in flops_fc, are counted by the golden model too."""
    import torch
    model, qm, x = net
    with torch.no_grad():
        out = model.forward_gated(torch.from_numpy(x))
    g = golden.run_golden(qm, x, masks=out.masks)
    real = out.flops_real.numpy()
    for i, b in enumerate(qm.blocks):
        np.testing.assert_array_equal(sum(g.macs[c.name] for c in b.main_convs),
                                      real[:, i].astype(np.int64), err_msg=b.name)
    gate = sum(v for k, v in g.macs.items() if k.endswith((".mask_s", ".mask_c")))
    np.testing.assert_array_equal(gate, np.full(len(x), int(out.flops_mask.sum())))
    np.testing.assert_array_equal(g.total_macs,
                                  out.macs.numpy().astype(np.int64) + 2 * model.flops_stem)
    # the given masks were used, not the integer gates' own
    for gm, m in zip(g.masks, out.masks):
        if m is not None:
            np.testing.assert_array_equal(gm.channel, m.channel[:, :, 0, 0].numpy() > 0)


def test_integer_gate_arithmetic_is_faithful(net):
    """On the same signed int8 block inputs the integer gates decide like the float gate
    modules: flips only where a logit is within rounding of 0."""
    from dgfpga.quant.evaluate import gate_arithmetic_flips
    model, qm, x = net
    r = gate_arithmetic_flips(model, qm, x)
    assert r["spatial_total"] > 500 and r["channel_total"] > 20_000
    assert r["spatial_flips"] <= 0.01 * r["spatial_total"]
    assert r["channel_flips"] <= 0.002 * r["channel_total"]


def test_evaluate_reports_gated_blocks_only(net):
    """Agreement over the gated blocks only; ungated blocks report density 1. (The test
    model's gate biases sit at percentiles of these very images, so many logits are near
    0 and agreement float vs int8 is far from a trained model's; only the bookkeeping is
    checked here.)"""
    from dgfpga.quant.evaluate import evaluate_quantized
    model, qm, x = net
    r = evaluate_quantized(model, qm, x, np.zeros(len(x), int))
    rows = {row["name"]: row for row in r["blocks"]}
    assert len(rows) == 17 and "spatial_agreement" not in rows["features.1"]
    assert rows["features.1"]["density_float"] == rows["features.1"]["density_int8"] == 1.0
    assert 0.5 < rows["features.8"]["spatial_agreement"] <= 1.0
    assert abs(r["density_float"] - r["density_int8"]) < 0.05


def test_round_trip(net, tmp_path):
    import json
    import zipfile
    _, qm, x = net
    p = save_qmodel(qm, tmp_path / "mb2.qnpz")
    with zipfile.ZipFile(p) as z:
        hdr = json.loads(np.load(z.open("__header__.npy")).tobytes())
    assert hdr["schema_version"] == 4 and hdr["tail"]["name"] == "features.18"
    assert hdr["blocks"][0]["conv1"] is None and "mask_c_shift" not in hdr["blocks"][0]
    assert hdr["blocks"][14]["conv2"]["groups"] == 960
    back = load_qmodel(p)
    assert [(b.kind, b.gated, b.conv2.groups) for b in back.blocks] == \
        [(b.kind, b.gated, b.conv2.groups) for b in qm.blocks]
    np.testing.assert_array_equal(golden.run_golden(back, x[:2]).logits_int,
                                  golden.run_golden(qm, x[:2]).logits_int)


def test_relu6_is_the_u8_clamp():
    """Hand-computed: a 1x1 conv (weight 1.0) from s_in = 0.05 into a ReLU6 tensor of scale
    6/255: inputs 0, 2.0, 2.4, 6.35 -> codes 0, 85, 102 and 255 (= 6.0, clamped)."""
    from dgfpga.quant.fold import make_conv
    c = make_conv("c", np.ones((1, 1, 1, 1)), np.zeros(1), 0.05, 6.0 / 255, False, 1, 0,
                  "a", "b")
    x = np.array([0, 40, 48, 127], np.int64).reshape(1, 1, 2, 2)
    y = golden._run_conv(x, c)
    np.testing.assert_array_equal(y.ravel(), [0, 85, 102, 255])
    assert y.max() * 6.0 / 255 == 6.0


def test_relu6_saturated_stem_quantizes_to_six():
    """A stem whose BN output is far above 6 on some channels: the float ReLU6 output is
    exactly 6 there, the calibrated stem scale puts code 255 at 6.0 (not at the BN output's
    range), and the golden stem writes 255 there."""
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    x = _images(2, 64, seed=3)
    model = make_test_model("mobilenet_v2_dg", x, input_size=(64, 64), num_classes=10)
    with torch.no_grad():
        model.features[0][1].bias[:4] += 50.0
    qm = quantize_model(model, x)
    assert abs(qm.tensors["stem"].scale * 255 - 6.0) < 1e-9
    g = golden.run_golden(qm, x)
    assert (g.layers["stem"][:, :4] == 255).all()


def test_checkpoint_round_trip_and_refusals(tmp_path):
    """load_float_model accepts a mobilenet_v2_dg checkpoint (quantizable); a ResNet
    checkpoint named as mobilenet_v2_dg is a CheckpointError."""
    from dgfpga.errors import CheckpointError
    from dgfpga.quant.float_model import load_float_model
    from dgfpga_models import build_model
    from dgfpga_models.checkpoint import save_checkpoint
    m = build_model("mobilenet_v2_dg", input_size=(32, 32), num_classes=10)
    path = save_checkpoint(tmp_path / "mb2.pth.tar", m)
    back, _ = load_float_model(path)
    assert back.arch == "mobilenet_v2_dg"
    r20 = save_checkpoint(tmp_path / "r20.pth.tar", build_model("resdg20_cifar10"))
    with pytest.raises(CheckpointError):
        load_float_model(r20, "mobilenet_v2_dg")


@pytest.mark.parametrize("cin,cout,groups", [(6, 4, 2), (8, 8, 8), (4, 8, 4), (5, 3, 1)])
def test_grouped_conv_equals_torch(cin, cout, groups):
    """conv2d_int / masked_conv2d_int with groups (depthwise, grouped, channel multiplier)
    against F.conv2d; masked MACs count only the (out, in) pairs that share a group."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(groups)
    x = rng.integers(-128, 128, (2, cin, 7, 7))
    w = rng.integers(-127, 128, (cout, cin // groups, 3, 3)).astype(np.int8)
    ref = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), stride=2,
                   padding=1, groups=groups).numpy().astype(np.int64)
    np.testing.assert_array_equal(golden.conv2d_int(x, w, 2, 1, groups), ref)
    pix = rng.uniform(size=(2, 4, 4)) > 0.5
    och, ich = rng.uniform(size=(2, cout)) > 0.3, rng.uniform(size=(2, cin)) > 0.3
    acc, macs = golden.masked_conv2d_int(x, w, 2, 1, pix, out_ch=och, in_ch=ich, groups=groups)
    xm = torch.from_numpy(x * ich[:, :, None, None]).double()
    ref = F.conv2d(xm, torch.from_numpy(w).double(), stride=2, padding=1, groups=groups).numpy()
    np.testing.assert_array_equal(acc, ref * pix[:, None] * och[:, :, None, None])
    share = (np.arange(cout)[:, None] // (cout // groups)) == (np.arange(cin)[None] // (cin // groups))
    pairs = np.einsum("no,ni,oi->n", och.astype(int), ich.astype(int), share.astype(int))
    np.testing.assert_array_equal(macs, pix.reshape(2, -1).sum(1) * pairs * 9)


@pytest.mark.parametrize("mutate,match", [
    (lambda h, qm: h.update(schema_version=3), "kind 'inverted_residual' is not one of basic, bottleneck"),
    (lambda h, qm: h["blocks"][7]["conv2"].pop("groups"), r"features\.8\.conv2: weight has 1 input channels"),
    (lambda h, qm: h["blocks"][7].pop("mask_c_shift"), "gated exactly when it has a residual"),
    (lambda h, qm: h["tail"].update(in_tensor="stem"), r"features\.18: reads 'stem'"),
])
def test_inconsistent_mobilenet_files_are_refused(net, tmp_path, mutate, match):
    import json
    from dgfpga.errors import FormatError
    from dgfpga.numerics.qmodel import HEADER_KEY, to_arrays
    _, qm, _ = net
    arrays = to_arrays(qm)
    hdr = json.loads(arrays.pop(HEADER_KEY).tobytes())
    mutate(hdr, qm)
    if "mask_c_shift" not in hdr["blocks"][7]:      # drop its gate arrays as a writer would
        for k in [k for k in arrays if k.startswith("features.8.mask_")]:
            arrays.pop(k)
            hdr["arrays"].pop(k)
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(hdr).encode(), np.uint8)
    p = tmp_path / "bad.qnpz"
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(FormatError, match=match):
        load_qmodel(p)
