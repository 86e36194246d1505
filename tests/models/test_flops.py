"""MAC accounting: dense figures, the official per-block formulas (recomputed here from the
official definitions), gate costs, the density definition, dense mode, MAC tables and the
`dgfpga flops` command."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dgfpga.cli.main import main
from dgfpga_models import build_model, save_checkpoint
from dgfpga_models.flops import dense_table, format_table, gated_table, table_from_outputs

torch.set_num_threads(2)

# Dense MACs of the official counting (blocks + stem + fc), input 32x32 / 224x224.
DENSE_MACS = {
    "resdg20_cifar10": 40_813_184,
    "resdg32_cifar10": 69_124_736,
    "resdg56_cifar10": 125_747_840,
    "resdg110_cifar10": 253_149_824,
    "resdg18": 1_814_073_344,
    "resdg34": 3_663_761_408,
    "resdg50": 4_089_184_256,
    "mobilenet_v2_dg": 293_548_928,   # official stem count is 1/3 of the real one
}


def official_dense(arch: str) -> tuple[list[int], list[int], int, int]:
    """(full MACs per block, gate MACs per block, stem, fc) from the official formulas."""
    full, gate = [], []

    def mask_s(h, w, cin, t):
        return math.ceil(h / t) * math.ceil(w / t) * cin * 9

    def mask_c(cin, cout):
        return cin * (cin // 4) + (cin // 4) * cout

    if arch.endswith("_cifar10"):
        n, cin, h = (int(arch[5:-8]) - 2) // 6, 16, 32
        stem, fc = 9 * 32 * 32 * 16 * 3, 64 * 10
        for planes, stride, tile in ((16, 1, 4), (32, 2, 2), (64, 2, 2)):
            for j in range(n):
                s = stride if j == 0 else 1
                ho = (h - 1) // s + 1
                ds = ho * ho * planes * cin if (s != 1 or cin != planes) else 0
                full.append(9 * ho * ho * planes * cin + 9 * ho * ho * planes * planes + ds)
                gate.append(mask_s(ho, ho, cin, tile) + mask_c(cin, planes))
                cin, h = planes, ho
        return full, gate, stem, fc
    if arch.startswith("resdg"):
        layers = {"resdg18": (2, 2, 2, 2), "resdg34": (3, 4, 6, 3), "resdg50": (3, 4, 6, 3)}[arch]
        exp = 4 if arch == "resdg50" else 1
        stem, fc, cin, h = 49 * 112 * 112 * 64 * 3, 512 * exp * 1000, 64, 56
        for planes, stride, tile, count in zip((64, 128, 256, 512), (1, 2, 2, 2), (8, 4, 2, 1), layers):
            for j in range(count):
                s = stride if j == 0 else 1
                ho, out = (h - 1) // s + 1, planes * exp
                ds = ho * ho * out * cin if (s != 1 or cin != out) else 0
                if exp == 1:
                    full.append(9 * ho * ho * planes * cin + 9 * ho * ho * planes * planes + ds)
                    gate.append(mask_s(ho, ho, cin, tile) + mask_c(cin, planes))
                else:
                    full.append(h * h * planes * cin + 9 * ho * ho * planes * planes
                                + ho * ho * planes * out + ds)
                    gate.append(mask_s(ho, ho, cin, tile) + mask_c(cin, planes) + mask_c(planes, planes))
                cin, h = out, ho
        return full, gate, stem, fc
    setting = [(1, 16, 1, 1, 16), (6, 24, 2, 2, 8), (6, 32, 3, 2, 4), (6, 64, 4, 2, 2),
               (6, 96, 3, 1, 2), (6, 160, 3, 2, 2), (6, 320, 1, 1, 2)]
    cin, h = 32, 112
    stem = 3 * h * h * 3 * 32       # sic: the official count (real MACs: 27*h*h*32)
    for t, c, n, s0, tile in setting:
        for i in range(n):
            s = s0 if i == 0 else 1
            ho, hid = (h - 1) // s + 1, cin * t
            f = 9 * ho * ho * hid + ho * ho * hid * c + (h * h * hid * cin if t != 1 else 0)
            full.append(f)
            gate.append(mask_s(ho, ho, cin, tile) + mask_c(cin, hid) if (s == 1 and cin == c) else 0)
            cin, h = c, ho
    fc = cin * 1280 * h * h + 1000 * 1280
    return full, gate, stem, fc


@pytest.mark.parametrize("arch", list(DENSE_MACS))
def test_dense_macs_match_official_formulas(arch):
    model = build_model(arch)
    full, gate, stem, fc = official_dense(arch)
    assert [b.flops_full for b in model.blocks()] == full
    assert [b.gate_flops for b in model.blocks()] == gate
    assert (model.flops_stem, model.flops_fc) == (stem, fc)
    assert model.dense_macs == sum(full) + stem + fc == DENSE_MACS[arch]
    table = dense_table(model)
    assert table.dense_macs == table.total_macs == DENSE_MACS[arch] and table.density == 1.0


def test_reference_ranges_of_the_design():
    assert 40e6 < DENSE_MACS["resdg20_cifar10"] < 42e6
    assert 1.8e9 <= DENSE_MACS["resdg18"] <= 1.9e9
    assert 3.6e9 <= DENSE_MACS["resdg34"] <= 3.7e9
    assert 4.05e9 <= DENSE_MACS["resdg50"] <= 4.15e9


def official_block_macs(block, m):
    """Official get_flops of one block from its masks (the test's own formulas)."""
    s_grid = m.spatial.sum((1, 2, 3)).double()
    s_up = m.spatial_up.sum((1, 2, 3)).double()
    c = m.channel.sum((1, 2, 3)).double()
    cin, cout = block.in_channels, block.out_channels
    ds = block.flops_downsample if getattr(block, "downsample", None) is not None else 0
    if block.kind == "basic":
        if type(block).__module__.endswith("cifar"):
            s = s_grid * block.tile ** 2
            return 9 * s * c * cin + 9 * s * cout * c + ds
        return 9 * s_up * c * cin + 9 * s_up * c * cout + ds
    if block.kind == "bottleneck":
        c2 = m.channel2.sum((1, 2, 3)).double()
        s_in = m.spatial_in.sum((1, 2, 3)).double()
        return s_in * c * cin + 9 * s_up * c2 * c + s_up * cout * c2 + ds
    return 9 * s_up * c + s_up * c * cout + m.spatial_in.sum((1, 2, 3)).double() * c * cin


def mixed(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "atten_s.bias" in name or "atten_c.3.bias" in name:
                t.copy_(torch.randn(t.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("arch,size", [("resdg20_cifar10", (32, 32)), ("resdg18", (112, 112)),
                                       ("resdg50", (64, 64)), ("mobilenet_v2_dg", (96, 96))])
def test_gated_macs_follow_official_get_flops(arch, size):
    model = mixed(build_model(arch, input_size=size))
    with torch.no_grad():
        out = model.forward_gated(torch.randn(3, 3, *size))
    for k, (block, m) in enumerate(zip(model.blocks(), out.masks)):
        if m is None:
            assert out.flops_real[:, k].tolist() == [float(block.flops_full)] * 3
            assert out.flops_mask[k] == 0
            continue
        torch.testing.assert_close(out.flops_real[:, k], official_block_macs(block, m))
        assert out.flops_mask[k] == block.gate_flops
        assert out.flops_full[k] == block.flops_full
    # density: (blocks + gates + stem + fc) / (dense blocks + stem + fc), per image
    extra = out.flops_stem + out.flops_fc
    macs = out.flops_real.sum(1) + out.flops_mask.sum() + extra
    torch.testing.assert_close(out.macs, macs)
    assert out.dense_macs == int(out.flops_full.sum()) + extra == model.dense_macs
    torch.testing.assert_close(out.density, macs / (out.flops_full.sum() + extra))
    assert 0 < out.density.min() and out.density.max() < 1.05


def force_gates(model, value):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "atten_s.bias" in name or "atten_c.3.bias" in name:
                t.fill_(value)
    return model.eval()


def test_all_on_and_all_off_counts():
    on = force_gates(build_model("resdg20_cifar10"), 1e4)
    with torch.no_grad():
        out = on.forward_gated(torch.randn(2, 3, 32, 32))
    gates = sum(b.gate_flops for b in on.blocks())
    assert out.flops_real.tolist() == [[float(b.flops_full) for b in on.blocks()]] * 2
    assert out.macs.tolist() == [DENSE_MACS["resdg20_cifar10"] + gates] * 2
    assert out.density[0].item() == pytest.approx(1 + gates / DENSE_MACS["resdg20_cifar10"])
    off = force_gates(build_model("resdg20_cifar10"), -1e4)
    with torch.no_grad():
        out = off.forward_gated(torch.randn(2, 3, 32, 32))
    ds = [float(getattr(b, "flops_downsample")) for b in off.blocks()]
    assert out.flops_real.tolist() == [ds] * 2
    assert out.macs.tolist() == [sum(ds) + gates + off.flops_stem + off.flops_fc] * 2


def test_edge_tiles_cifar_counts_whole_tiles_imagenet_counts_pixels():
    # 30x30 CIFAR input, tile 4: 8x8 cells cover 32x32 > 30x30; the official CIFAR formula
    # counts every active cell as tile^2 pixels, the ImageNet formula counts real pixels.
    cifar = force_gates(build_model("resdg20_cifar10", input_size=(30, 30)), 1e4)
    with torch.no_grad():
        out = cifar.forward_gated(torch.randn(1, 3, 30, 30))
    b = cifar.layer1[0]
    assert out.flops_real[0, 0].item() == 9 * 64 * 16 * 16 * 16 * 2 > b.flops_full
    r18 = force_gates(build_model("resdg18", input_size=(100, 100)), 1e4)
    with torch.no_grad():
        out = r18.forward_gated(torch.randn(1, 3, 100, 100))
    assert out.flops_real[0].tolist() == [float(b.flops_full) for b in r18.blocks()]


def test_dense_mode_reports_dense_counts_without_gates():
    model = mixed(build_model("resdg50", input_size=(64, 64), dense=True))
    with torch.no_grad():
        out = model.forward_gated(torch.randn(2, 3, 64, 64))
    assert out.flops_mask.tolist() == [0.0] * 16
    assert out.flops_real.tolist() == [out.flops_full.tolist()] * 2
    assert out.macs.tolist() == [float(model.dense_macs)] * 2


def test_tables():
    model = mixed(build_model("resdg20_cifar10"))
    images = torch.randn(5, 3, 32, 32)
    table = gated_table(model, images, batch_size=2)
    with torch.no_grad():
        out = model.forward_gated(images)
    assert table.images == 5 and table.mode == "gated"
    assert [r.name for r in table.blocks] == [f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)]
    np.testing.assert_allclose([r.conv_macs for r in table.blocks], out.flops_real.mean(0).numpy())
    assert table.total_macs == pytest.approx(out.macs.mean().item())
    assert table.density == pytest.approx(out.density.mean().item())
    assert table_from_outputs(model, [out]).total_macs == pytest.approx(table.total_macs)
    text = format_table(table, reference=dense_table(model))
    assert "layer3.2" in text and "reduction" in text and "density" in text
    json.dumps(table.to_dict())
    with pytest.raises(ValueError, match="non-empty"):
        gated_table(model, torch.zeros(0, 3, 32, 32))


def test_cli_dense(capsys):
    assert main(["flops", "--arch", "resdg18"]) == 0
    out = capsys.readouterr().out
    assert "layer4.1" in out and "total: 1814073344 MACs" in out


def test_cli_gated_npy_and_json(tmp_path, capsys):
    ck = save_checkpoint(tmp_path / "r20.pth.tar", mixed(build_model("resdg20_cifar10")))
    imgs = tmp_path / "imgs.npy"
    np.save(imgs, np.random.default_rng(0).standard_normal((6, 3, 32, 32)).clip(-2, 2).astype(np.float32))
    js = tmp_path / "f.json"
    assert main(["flops", "--arch", "resdg20_cifar10", "--checkpoint", str(ck), "--images", str(imgs),
                 "-o", str(js)]) == 0
    out = capsys.readouterr().out
    assert "gated MACs, mean over 6 images" in out
    data = json.loads(js.read_text())
    assert data["dense"]["total_macs"] == DENSE_MACS["resdg20_cifar10"]
    assert 0 < data["gated"]["density"] < 1.05 and len(data["gated"]["blocks"]) == 9


def test_cli_embedded_images(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dgfpga.data.embedded")
    monkeypatch.setenv("DGFPGA_CACHE", str(tmp_path / "cache"))
    ck = save_checkpoint(tmp_path / "r20.pth.tar", mixed(build_model("resdg20_cifar10")))
    assert main(["flops", "--arch", "resdg20_cifar10", "--checkpoint", str(ck),
                 "--images", "embedded:8"]) == 0
    assert "mean over 8 images" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["flops", "--arch", "resnet18"], "unknown architecture 'resnet18'"),
    (["flops", "--arch", "resdg20_cifar10", "--images", "x.npy"], "need both --checkpoint and --images"),
    (["flops", "--arch", "resdg20_cifar10", "--checkpoint", "CK", "--images", "missing.npy"], "no such .npy file"),
    (["flops", "--arch", "resdg20_cifar10", "--checkpoint", "CK", "--images", "BADSHAPE"], "float images of shape [2, 32, 32]"),
    (["flops", "--arch", "resdg20_cifar10", "--checkpoint", "CK", "--images", "WRONGSIZE"], "[N, 3, 32, 32]"),
    (["flops", "--arch", "resdg20_cifar10", "--checkpoint", "CK", "--images", "embedded:x"], "expected embedded[:N][:SPLIT]"),
    (["flops", "--arch", "resdg20_cifar10", "--checkpoint", "nothere.pth", "--images", "embedded:1"],
     "does not exist"),
])
def test_cli_errors(tmp_path, capsys, args, message):
    ck = save_checkpoint(tmp_path / "r20.pth.tar", build_model("resdg20_cifar10"))
    np.save(tmp_path / "bad.npy", np.zeros((2, 32, 32), np.float32))
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 28, 28), np.float32))
    subst = {"CK": str(ck), "BADSHAPE": str(tmp_path / "bad.npy"),
             "WRONGSIZE": str(tmp_path / "wrong.npy"), "missing.npy": str(tmp_path / "missing.npy")}
    assert main([subst.get(a, a) for a in args]) == 2
    assert message in capsys.readouterr().err
