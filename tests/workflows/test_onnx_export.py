"""ONNX export: checker passes; onnxruntime agrees with PyTorch on logits and every mask,
with gates mixed, all on and all off, on edge-tile sizes and MobileNetV2's 7x7 maps."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dgfpga.cli.main import main
from dgfpga.workflows.onnx_export import export_onnx, mask_output_names, verify_onnx
from dgfpga_models import build_model, save_checkpoint

torch.set_num_threads(2)


def set_gate_biases(model, value=None, seed=0):
    """Gate biases to `value` (+-1e4 force on/off) or random N(0, 1) (mixed decisions)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "atten_s.bias" in name or "atten_c.3.bias" in name:
                t.copy_(torch.randn(t.shape, generator=g) if value is None else
                        torch.full(t.shape, float(value)))
    return model


def run_both(model, path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})
    model.eval()
    with torch.no_grad():
        out = model.forward_gated(x)
    want = [out.logits]
    for m in out.masks:
        if m is not None:
            want += [m.spatial, m.channel] + ([m.channel2] if m.channel2 is not None else [])
    return got, want


@pytest.mark.parametrize("arch,size,gates", [
    ("resdg20_cifar10", (32, 32), "mixed"),
    ("resdg20_cifar10", (32, 32), "on"),
    ("resdg20_cifar10", (32, 32), "off"),
    ("resdg20_cifar10", (30, 30), "mixed"),          # edge tiles, nearest cells != tiles
    ("resdg50", (64, 64), "mixed"),
    ("mobilenet_v2_dg", (224, 224), "mixed"),        # 7x7 maps: overlapping bins
])
def test_onnxruntime_matches_torch(tmp_path, arch, size, gates):
    model = build_model(arch, input_size=size)
    set_gate_biases(model, {"mixed": None, "on": 1e4, "off": -1e4}[gates])
    model.train()                                     # export must switch to eval itself
    path = tmp_path / f"{arch}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)   # no data-dependent trace
        names = export_onnx(model, path)
    assert model.training                             # mode restored
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == names == ["logits"] + mask_output_names(model)
    x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(5))
    got, want = run_both(model, path, x)
    assert len(got) == len(want) == len(names)
    np.testing.assert_allclose(got[0], want[0].numpy(), rtol=1e-4, atol=1e-4)
    for name, g, w in zip(names[1:], got[1:], want[1:]):
        assert g.shape == tuple(w.shape), name
        np.testing.assert_array_equal(g, w.numpy(), err_msg=name)
    values = np.concatenate([g.ravel() for g in got[1:]])
    if gates == "mixed":
        assert 0.05 < values.mean() < 0.95
    else:
        assert set(np.unique(values)) == {1.0 if gates == "on" else 0.0}


def test_dynamic_batch_and_verify_report(tmp_path):
    model = set_gate_biases(build_model("resdg20_cifar10"))
    path = tmp_path / "r20.onnx"
    export_onnx(model, path)
    for n in (1, 5):
        report = verify_onnx(model, path, np.random.default_rng(n).standard_normal((n, 3, 32, 32)))
        assert report.ok and report.images == n and report.max_logit_diff < 1e-4
        # per image: 3 x (8x8 grid + 16 ch) + 3 x (8x8 + 32) + 3 x (4x4 + 64)
        assert report.mask_entries == n * (3 * 80 + 3 * 96 + 3 * 80)


def test_dense_export_has_all_ones_masks(tmp_path):
    model = set_gate_biases(build_model("resdg20_cifar10", dense=True), -1e4)
    export_onnx(model, tmp_path / "dense.onnx")
    got, want = run_both(model, tmp_path / "dense.onnx", torch.randn(2, 3, 32, 32))
    assert all(bool((g == 1).all()) for g in got[1:])
    np.testing.assert_allclose(got[0], want[0].numpy(), rtol=1e-4, atol=1e-4)


def test_mask_output_names():
    assert mask_output_names(build_model("resdg20_cifar10"))[:3] == [
        "layer1.0.mask_s", "layer1.0.mask_c", "layer1.1.mask_s"]
    assert mask_output_names(build_model("resdg50"))[:3] == [
        "layer1.0.mask_s", "layer1.0.mask_c1", "layer1.0.mask_c2"]
    names = mask_output_names(build_model("mobilenet_v2_dg"))
    assert len(names) == 20 and names[0] == "features.3.mask_s"


def test_cli_export_onnx(tmp_path, capsys):
    ck = save_checkpoint(tmp_path / "r20.pth.tar", set_gate_biases(build_model("resdg20_cifar10")))
    out = tmp_path / "out" / "r20.onnx"
    assert main(["export-onnx", "--checkpoint", str(ck), "-o", str(out)]) == 2   # no out/:
    assert "does not exist" in capsys.readouterr().err         # refused, not created
    out.parent.mkdir()
    assert main(["export-onnx", "--checkpoint", str(ck), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "19 outputs (logits + 18 masks)" in text
    assert "mask mismatches 0/" in text
    assert main(["export-onnx", "-o", str(out)]) == 2
    assert "give --checkpoint" in capsys.readouterr().err
    assert main(["export-onnx", "--arch", "resnet18", "-o", str(out)]) == 2
    assert "unknown architecture" in capsys.readouterr().err
