"""The DGNet zoo: official state_dict layout, masked-execution semantics (DESIGN.md §3)
against an independent loop-based re-implementation, dense mode, geometry, API."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgfpga_models import ARCHS, GatedOutput, build_model
from official_keys import OFFICIAL_ARCHS, official_keys

torch.set_num_threads(2)


# --------------------------------------------------------------------------------------
# Independent reference: works on the state dict only, with explicit loops over tiles and
# channels. Geometry comes from the official stage tables, not from the model.
# --------------------------------------------------------------------------------------

def ref_bn(x, sd, p, eps=1e-5):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = sd[f"{p}.running_mean"].view(shape), sd[f"{p}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + eps) * sd[f"{p}.weight"].view(shape) + sd[f"{p}.bias"].view(shape)


def ref_conv(x, w, stride=1, groups=1):
    return F.conv2d(x, w, stride=stride, padding=(w.shape[-1] - 1) // 2, groups=groups)


def out_len(n, stride):
    return (n + 2 - 3) // stride + 1


def cell_of(pixel, out, grid):
    """Nearest upsampling (PyTorch arithmetic): pixel -> grid cell."""
    scale = np.float32(grid) / np.float32(out)
    return min(int(np.floor(np.float32(pixel) * scale)), grid - 1)


def ref_spatial_gate(x, sd, p, out_h, out_w, tile):
    """Grid decision [N, gh, gw] (bool): adaptive-average bins, 3x3 conv, logit >= 0."""
    n, c, h, w = x.shape
    gh, gw = math.ceil(out_h / tile), math.ceil(out_w / tile)
    pooled = torch.zeros(n, c, gh, gw)
    for i in range(gh):
        r0, r1 = (i * h) // gh, -((-(i + 1) * h) // gh)
        for j in range(gw):
            c0, c1 = (j * w) // gw, -((-(j + 1) * w) // gw)
            pooled[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(dim=(2, 3))
    logits = F.conv2d(pooled, sd[f"{p}.atten_s.weight"], sd[f"{p}.atten_s.bias"], padding=1)
    return logits[:, 0] >= 0


def ref_channel_gate(x, sd, p):
    """Channel decision [N, C_out] (bool)."""
    ctx = x.mean(dim=(2, 3))
    h = ctx @ sd[f"{p}.atten_c.0.weight"][:, :, 0, 0].T
    h = torch.relu(ref_bn(h, sd, f"{p}.atten_c.1"))
    logits = h @ sd[f"{p}.atten_c.3.weight"][:, :, 0, 0].T + sd[f"{p}.atten_c.3.bias"]
    return logits >= 0


def zero_off_tiles(t, grid):
    """Zero every pixel whose grid cell is off (loop over images and cells)."""
    t = t.clone()
    n, _, h, w = t.shape
    gh, gw = grid.shape[1:]
    rows = [[r for r in range(h) if cell_of(r, h, gh) == i] for i in range(gh)]
    cols = [[c for c in range(w) if cell_of(c, w, gw) == j] for j in range(gw)]
    for b in range(n):
        for i in range(gh):
            for j in range(gw):
                if not grid[b, i, j]:
                    for r in rows[i]:
                        t[b, :, r, cols[j]] = 0
    return t


def zero_off_channels(t, chan):
    t = t.clone()
    for b in range(t.shape[0]):
        for c in range(t.shape[1]):
            if not chan[b, c]:
                t[b, c] = 0
    return t


def ref_basic(x, sd, p, stride, tile):
    out_h, out_w = out_len(x.shape[2], stride), out_len(x.shape[3], stride)
    grid = ref_spatial_gate(x, sd, f"{p}.mask_s", out_h, out_w, tile)
    chan = ref_channel_gate(x, sd, f"{p}.mask_c")
    o = torch.relu(ref_bn(ref_conv(x, sd[f"{p}.conv1.weight"], stride), sd, f"{p}.bn1"))
    o = zero_off_tiles(zero_off_channels(o, chan), grid)
    o = zero_off_tiles(ref_bn(ref_conv(o, sd[f"{p}.conv2.weight"]), sd, f"{p}.bn2"), grid)
    sc = x
    if f"{p}.downsample.0.weight" in sd:
        sc = ref_bn(ref_conv(x, sd[f"{p}.downsample.0.weight"], stride), sd, f"{p}.downsample.1")
    return torch.relu(o + sc), dict(spatial=grid, channel=chan)


def ref_bottleneck(x, sd, p, stride, tile):
    out_h, out_w = out_len(x.shape[2], stride), out_len(x.shape[3], stride)
    grid = ref_spatial_gate(x, sd, f"{p}.mask_s", out_h, out_w, tile)
    c1 = ref_channel_gate(x, sd, f"{p}.mask_c1")
    o = torch.relu(ref_bn(ref_conv(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
    o = zero_off_tiles(zero_off_channels(o, c1), grid)       # tiles at input resolution
    c2 = ref_channel_gate(o, sd, f"{p}.mask_c2")
    o = torch.relu(ref_bn(ref_conv(o, sd[f"{p}.conv2.weight"], stride), sd, f"{p}.bn2"))
    o = zero_off_tiles(zero_off_channels(o, c2), grid)
    o = zero_off_tiles(ref_bn(ref_conv(o, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3"), grid)
    sc = x
    if f"{p}.downsample.0.weight" in sd:
        sc = ref_bn(ref_conv(x, sd[f"{p}.downsample.0.weight"], stride), sd, f"{p}.downsample.1")
    return torch.relu(o + sc), dict(spatial=grid, channel=c1, channel2=c2)


def ref_conv_bn(x, sd, p, stride=1, groups=1, act=torch.relu):
    return act(ref_bn(ref_conv(x, sd[f"{p}.0.weight"], stride, groups), sd, f"{p}.1"))


def relu6(x):
    return x.clamp(0, 6)


def ref_inverted(x, sd, p, stride, tile, expand):
    gated = f"{p}.mask_s.atten_s.weight" in sd
    j = 1 if expand else 0
    hidden = sd[f"{p}.conv.{j}.0.weight"].shape[0]
    e = ref_conv_bn(x, sd, f"{p}.conv.0", act=relu6) if expand else x
    if not gated:
        d = ref_conv_bn(e, sd, f"{p}.conv.{j}", stride, hidden, relu6)
        return ref_bn(ref_conv(d, sd[f"{p}.conv.{j + 1}.weight"]), sd, f"{p}.conv.{j + 2}"), None
    grid = ref_spatial_gate(x, sd, f"{p}.mask_s", x.shape[2], x.shape[3], tile)
    chan = ref_channel_gate(x, sd, f"{p}.mask_c")
    e = zero_off_tiles(e, grid)
    d = ref_conv_bn(e, sd, f"{p}.conv.{j}", stride, hidden, relu6)
    d = zero_off_tiles(zero_off_channels(d, chan), grid)
    y = zero_off_tiles(ref_bn(ref_conv(d, sd[f"{p}.conv.{j + 1}.weight"]), sd, f"{p}.conv.{j + 2}"), grid)
    return y + x, dict(spatial=grid, channel=chan)


def reference_forward(arch, sd, x):
    """(logits, per-block mask dicts or None) of the official eval-mode network."""
    masks = []
    if arch.endswith("_cifar10"):
        h = torch.relu(ref_bn(ref_conv(x, sd["conv1.weight"]), sd, "bn1"))
        stages = [(1, 1, 4), (2, 2, 2), (3, 2, 2)]
        block = ref_basic
    elif arch.startswith("resdg"):
        h = torch.relu(ref_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1"))
        h = F.max_pool2d(h, 3, 2, 1)
        stages = [(1, 1, 8), (2, 2, 4), (3, 2, 2), (4, 2, 1)]
        block = ref_bottleneck if arch == "resdg50" else ref_basic
    else:
        return _reference_mobilenet(sd, x)
    for i, stride, tile in stages:
        j = 0
        while f"layer{i}.{j}.conv1.weight" in sd:
            h, m = block(h, sd, f"layer{i}.{j}", stride if j == 0 else 1, tile)
            masks.append(m)
            j += 1
    logits = h.mean(dim=(2, 3)) @ sd["fc.weight"].T + sd["fc.bias"]
    return logits, masks


def _reference_mobilenet(sd, x):
    setting = [(1, 1, 1, 16), (6, 2, 2, 8), (6, 3, 2, 4), (6, 4, 2, 2), (6, 3, 1, 2),
               (6, 3, 2, 2), (6, 1, 1, 2)]
    h = ref_conv_bn(x, sd, "features.0", stride=2, act=relu6)
    masks, idx = [], 1
    for t, n, s, tile in setting:
        for i in range(n):
            h, m = ref_inverted(h, sd, f"features.{idx}", s if i == 0 else 1, tile, t != 1)
            masks.append(m)
            idx += 1
    h = ref_conv_bn(h, sd, f"features.{idx}", act=relu6)
    logits = h.mean(dim=(2, 3)) @ sd["classifier.1.weight"].T + sd["classifier.1.bias"]
    return logits, masks


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def randomize(model, seed, gate_bias=None):
    """Random BN statistics / affine and gate weights so that decisions are mixed; with
    gate_bias set, every gate bias gets that value (+-1e4 forces all on / all off)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("running_mean") or (name.endswith(".bias") and t.dim() == 1):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif ".bn" in name or "downsample.1" in name or ".1.weight" in name:
                if t.dim() == 1:
                    t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
            if "atten_s.bias" in name or "atten_c.3.bias" in name:
                t.fill_(0.0 if gate_bias is None else gate_bias)
        for name, t in model.state_dict().items():
            if ("atten_s.weight" in name or "atten_c.0.weight" in name
                    or "atten_c.3.weight" in name):
                t.copy_(torch.randn(t.shape, generator=g) * 2.0 / math.sqrt(t[0].numel()))
    return model


def compare(arch, model, x):
    model.eval()
    with torch.no_grad():
        out = model.forward_gated(x)
        ref_logits, ref_masks = reference_forward(arch, model.state_dict(), x)
    assert len(out.masks) == len(ref_masks)
    for k, (got, want) in enumerate(zip(out.masks, ref_masks)):
        if want is None:
            assert got is None
            continue
        assert torch.equal(got.spatial[:, 0].bool(), want["spatial"]), f"block {k} spatial"
        assert torch.equal(got.channel[:, :, 0, 0].bool(), want["channel"]), f"block {k} channel"
        if "channel2" in want:
            assert torch.equal(got.channel2[:, :, 0, 0].bool(), want["channel2"]), f"block {k} c2"
    scale = ref_logits.abs().max().item() + 1e-3
    torch.testing.assert_close(out.logits, ref_logits, rtol=1e-4, atol=1e-4 * scale)
    return out


CASES = [
    ("resdg20_cifar10", (32, 32), 3),
    ("resdg20_cifar10", (30, 30), 2),     # 30 / 4: edge tiles and nearest cells != tiles
    ("resdg32_cifar10", (27, 35), 2),
    ("resdg18", (224, 224), 1),
    ("resdg18", (100, 76), 2),
    ("resdg50", (96, 96), 2),
    ("mobilenet_v2_dg", (224, 224), 1),   # 7x7 maps with tile 2: bins and cells disagree
]


@pytest.mark.parametrize("arch,size,n", CASES, ids=[f"{a}-{s[0]}x{s[1]}" for a, s, _ in CASES])
@pytest.mark.parametrize("gates", ["mixed", "off", "on"])
def test_eval_matches_reference(arch, size, n, gates):
    bias = {"mixed": None, "off": -1e4, "on": 1e4}[gates]
    model = randomize(build_model(arch, input_size=size), seed=len(arch) + size[0], gate_bias=bias)
    x = torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(7))
    out = compare(arch, model, x)
    gated = [m for m in out.masks if m is not None]
    fraction = torch.cat([torch.cat([m.spatial.flatten(), m.channel.flatten()]) for m in gated]).mean()
    if gates == "mixed":
        assert 0.05 < fraction < 0.95, f"gates not mixed: {fraction}"
    else:
        assert fraction == (1.0 if gates == "on" else 0.0)


def test_all_off_block_is_relu_of_shortcut():
    model = randomize(build_model("resdg20_cifar10"), seed=1, gate_bias=-1e4).eval()
    x = torch.randn(2, 3, 32, 32)
    block = model.layer2[0]
    h = torch.relu(torch.randn(2, 16, 32, 32))
    with torch.no_grad():
        y, result = block(h)
        want = torch.relu(block.downsample(h))
    assert torch.equal(y, want)
    assert result.flops_real.tolist() == [block.flops_downsample] * 2
    with torch.no_grad():
        y2, _ = model.layer1[0](h)
    assert torch.equal(y2, h)           # identity block, gates off: y = relu(x) = x
    assert model.forward_gated(x).macs.tolist() == [
        sum(b.flops_downsample for b in model.blocks()) + sum(b.gate_flops for b in model.blocks())
        + model.flops_stem + model.flops_fc] * 2


@pytest.mark.parametrize("arch", ["resdg20_cifar10", "resdg50", "mobilenet_v2_dg"])
def test_dense_mode_equals_gates_forced_on(arch):
    size = (32, 32) if arch.endswith("cifar10") else (64, 64)
    gated = randomize(build_model(arch, input_size=size), seed=3, gate_bias=1e4).eval()
    dense = build_model(arch, input_size=size, dense=True).eval()
    assert dense.dense and not gated.dense
    dense.load_state_dict(gated.state_dict(), strict=True)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        a, b = gated.forward_gated(x), dense.forward_gated(x)
    torch.testing.assert_close(a.logits, b.logits)
    for m in b.masks:
        if m is not None:
            for t in (m.spatial, m.spatial_up, m.channel):
                assert bool((t == 1).all())
    assert b.flops_mask.sum().item() == 0
    assert b.macs.tolist() == [float(b.dense_macs)] * 2
    assert b.density.tolist() == [1.0, 1.0]
    # dense mode also holds in training mode and is a switch, not a different model
    dense.train()
    assert dense.forward_gated(x).density.tolist() == [1.0, 1.0]
    dense.dense = False
    assert not dense.dense


@pytest.mark.parametrize("arch", OFFICIAL_ARCHS)
def test_state_dict_is_official(arch):
    model = build_model(arch)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = official_keys(arch)
    assert got == want
    assert list(got) == list(want)           # official registration order too
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.tensor(5) if not s else torch.randn(s, generator=g)) for k, s in want.items()}
    build_model(arch, dense=True).load_state_dict(sd, strict=True)
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.state_dict()[next(iter(want))], sd[next(iter(want))])


def test_archs_registry_and_errors():
    assert list(ARCHS) == list(OFFICIAL_ARCHS)
    assert ARCHS["resdg18"].num_classes == 1000 and ARCHS["resdg18"].input_size == (224, 224)
    assert build_model("resdg20_cifar10", num_classes=7).fc.out_features == 7
    with pytest.raises(ValueError, match="unknown architecture 'resnet18'.*resdg18"):
        build_model("resnet18")
    model = build_model("resdg20_cifar10")
    with pytest.raises(ValueError, match=r"built for inputs \[N, 3, 32, 32\]"):
        model(torch.zeros(1, 3, 28, 28))


def test_geometry_attributes():
    m = build_model("resdg20_cifar10")
    b = m.layer2[0]
    assert (b.kind, b.in_channels, b.mid_channels, b.out_channels, b.stride) == ("basic", 16, 32, 32, 2)
    assert (b.in_h, b.in_w, b.out_h, b.out_w, b.tile, b.grid_h, b.grid_w) == (32, 32, 16, 16, 2, 8, 8)
    assert [blk.tile for blk in m.blocks()] == [4] * 3 + [2] * 6
    r50 = build_model("resdg50")
    b = r50.layer2[0]
    assert (b.kind, b.in_channels, b.mid_channels, b.out_channels) == ("bottleneck", 256, 128, 512)
    assert (b.in_h, b.out_h, b.tile, b.grid_h) == (56, 28, 4, 7)
    assert [blk.grid_h for blk in build_model("resdg18").blocks()] == [7] * 8
    mb = build_model("mobilenet_v2_dg")
    gated = [blk for blk in mb.blocks() if blk.gated]
    assert len(gated) == 10 and len(mb.blocks()) == 17
    b = mb.features[15]     # stage 6, second block (7x7, gated)
    assert (b.out_h, b.tile, b.grid_h) == (7, 2, 4)
    assert b.mask_s.upsample.row_cell == [0, 0, 1, 1, 2, 2, 3]


def test_gated_output_shapes():
    model = build_model("resdg50", input_size=(64, 64)).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model(x), model.forward_gated(x)
    logits, g = out
    assert isinstance(g, GatedOutput)
    torch.testing.assert_close(logits, g.logits)
    assert g.norm_s.shape == (3, 16) and g.norm_s_t.shape == (16,)
    assert g.norm_c.shape == (3, 32) and g.norm_c_t.shape == (32,)
    assert g.flops_real.shape == (3, 16) and g.flops_real.dtype == torch.float64
    assert g.flops_mask.shape == (16,) and g.flops_full.shape == (16,)
    m = g.masks[3]  # layer2.0: stride 2, 16x16 -> 8x8, tile 4
    assert m.spatial.shape == (3, 1, 2, 2)
    assert m.spatial_up.shape == (3, 1, 8, 8) and m.spatial_in.shape == (3, 1, 16, 16)
    assert m.channel.shape == (3, 128, 1, 1) and m.channel2.shape == (3, 128, 1, 1)
    torch.testing.assert_close(g.norm_s[:, 3], m.spatial.sum((1, 2, 3)))


def test_training_mode_straight_through():
    torch.manual_seed(0)
    model = build_model("resdg20_cifar10").train()
    out = model.forward_gated(torch.randn(4, 3, 32, 32))
    for m in out.masks:
        for t in (m.spatial, m.channel):
            assert bool(((t == 0) | (t == 1)).all())
    # gradients reach the gates through the MAC count (sparsity loss) and the logits
    (out.macs.float().mean() / out.dense_macs + out.logits.sum()).backward()
    b = model.layer1[0]
    assert b.mask_s.atten_s.weight.grad.abs().sum() > 0
    assert b.mask_c.atten_c[3].bias.grad.abs().sum() > 0
