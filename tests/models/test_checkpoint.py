"""Checkpoint I/O: official layout, bare state dicts, module. prefix, round trip, and a
clear CheckpointError for every kind of bad input (never a raw torch traceback, never
code execution)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from dgfpga.errors import CheckpointError
from dgfpga_models import build_model
from dgfpga_models.checkpoint import infer_arch, load_checkpoint, save_checkpoint

ARCH = "resdg20_cifar10"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(ARCH)
    with torch.no_grad():          # non-default BN statistics so a wrong load shows
        for k, v in m.state_dict().items():
            if k.endswith("running_mean"):
                v.normal_()
    return m.eval()


def official_layout(model, **extra):
    """What the official main.py saves (epoch, state_dict, acc, best_acc, optimizer)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return {"epoch": 12, "state_dict": model.state_dict(), "acc": 91.5, "best_acc": 92.25,
            "optimizer": opt.state_dict(), **extra}


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("protocol", [2, 4])
def test_official_layout_loads_and_infers_arch(tmp_path, model, protocol):
    path = tmp_path / "model_best.pth.tar"
    torch.save(official_layout(model), path, pickle_protocol=protocol)
    loaded, meta = load_checkpoint(path)            # no arch: inferred from the keys
    assert loaded.arch == ARCH and not loaded.training
    assert same_weights(loaded, model)
    assert meta["epoch"] == 12 and meta["best_acc"] == 92.25 and "optimizer" in meta
    assert "state_dict" not in meta


@pytest.mark.parametrize("layout", ["bare", "wrapped"])
def test_module_prefix_is_stripped(tmp_path, model, layout):
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    obj = sd if layout == "bare" else {"state_dict": sd, "epoch": 1}
    torch.save(obj, tmp_path / "dp.pth", pickle_protocol=4)
    loaded, meta = load_checkpoint(tmp_path / "dp.pth", arch=ARCH)
    assert same_weights(loaded, model)
    assert meta == ({} if layout == "bare" else {"epoch": 1})


def test_round_trip(tmp_path, model):
    path = save_checkpoint(tmp_path / "sub" / "ck.pth.tar", model, epoch=3, best_acc=88.5,
                           note="trained here", history=[1.0, 2.0])
    assert os.listdir(path.parent) == ["ck.pth.tar"]           # no temp file left behind
    loaded, meta = load_checkpoint(path)
    assert same_weights(loaded, model)
    assert meta == {"arch": ARCH, "num_classes": 10, "input_size": [32, 32], "epoch": 3,
                    "best_acc": 88.5, "note": "trained here", "history": [1.0, 2.0]}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    # overwrite in place, the official loader's fields are plain
    save_checkpoint(path, model, epoch=4)
    assert load_checkpoint(path)[1]["epoch"] == 4
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"arch", "num_classes", "input_size", "epoch", "state_dict"}


def test_round_trip_keeps_classes_and_input_size(tmp_path):
    m = build_model(ARCH, num_classes=100, input_size=(30, 30))
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "c100.pth", m))
    assert loaded.num_classes == 100 and loaded.input_size == (30, 30)
    # classes are read from the classifier even without metadata
    torch.save({"state_dict": m.state_dict()}, tmp_path / "bare100.pth")
    assert load_checkpoint(tmp_path / "bare100.pth", arch=ARCH)[0].num_classes == 100


def test_load_into_given_model(tmp_path, model):
    torch.save(official_layout(model), tmp_path / "a.pth")
    target = build_model(ARCH, dense=True)
    loaded, _ = load_checkpoint(tmp_path / "a.pth", model=target)
    assert loaded is target and loaded.dense and same_weights(loaded, model)
    with pytest.raises(CheckpointError, match="arch='resdg18' but the given model is resdg20"):
        load_checkpoint(tmp_path / "a.pth", arch="resdg18", model=target)


def test_mismatch_names_missing_unexpected_and_shapes(tmp_path, model):
    sd = dict(model.state_dict())
    del sd["layer3.2.bn2.bias"]
    sd["layer9.0.extra"] = torch.zeros(3)
    sd["layer1.0.conv1.weight"] = torch.zeros(16, 16, 1, 1)
    torch.save({"state_dict": sd}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pth", arch=ARCH)
    msg = str(err.value)
    assert "does not match architecture resdg20_cifar10" in msg
    assert "missing keys (1): layer3.2.bn2.bias" in msg
    assert "unexpected keys (1): layer9.0.extra" in msg
    assert "layer1.0.conv1.weight: checkpoint (16, 16, 1, 1) vs model (16, 16, 3, 3)" in msg
    assert "strict=False" in msg


def test_non_strict_loads_matching_keys_and_reports(tmp_path, model):
    sd = dict(model.state_dict())
    del sd["fc.bias"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": sd, "epoch": 2}, tmp_path / "partial.pth")
    loaded, meta = load_checkpoint(tmp_path / "partial.pth", arch=ARCH, strict=False)
    assert meta["missing_keys"] == ["fc.bias"] and meta["unexpected_keys"] == ["extra.weight"]
    assert torch.equal(loaded.fc.weight, model.fc.weight)
    sd["fc.weight"] = torch.zeros(10, 3)          # wrong shapes are an error even non-strict
    torch.save({"state_dict": sd}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="wrongly-shaped keys"):
        load_checkpoint(tmp_path / "shape.pth", arch=ARCH, strict=False)


def test_wrong_arch_suggests_the_right_one(tmp_path, model):
    torch.save({"state_dict": model.state_dict()}, tmp_path / "r20.pth")
    with pytest.raises(CheckpointError, match="keys are those of resdg20_cifar10.*arch='resdg20"):
        load_checkpoint(tmp_path / "r20.pth", arch="resdg32_cifar10")
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet20'"):
        load_checkpoint(tmp_path / "r20.pth", arch="resnet20")


def test_unknown_keys_cannot_infer_arch(tmp_path):
    torch.save({"state_dict": {"a.weight": torch.ones(2)}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="cannot tell the architecture.*closest: none"):
        load_checkpoint(tmp_path / "x.pth")
    assert infer_arch({"a.weight": torch.ones(2)}) is None


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case,pattern", [
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("empty", r"is empty \(0 bytes\)"),
    ("garbage", "is not a PyTorch checkpoint"),
    ("json", "is not a PyTorch checkpoint"),
    ("truncated", "damaged PyTorch checkpoint"),
    ("tensor", "holds a Tensor, not a checkpoint dict"),
    ("no_state_dict", "has no 'state_dict' entry.*epoch"),
    ("state_dict_not_tensors", "not tensors: a"),
])
def test_bad_files_raise_checkpoint_error(tmp_path, model, case, pattern):
    path = tmp_path / "ck.pth.tar"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        _write(path, b"")
    elif case == "garbage":
        _write(path, bytes(range(256)) * 8)
    elif case == "json":
        path.write_text(json.dumps({"state_dict": {"conv1.weight": [1, 2]}}))
    elif case == "truncated":
        torch.save(official_layout(model), path)
        data = path.read_bytes()
        _write(path, data[: len(data) // 2])
    elif case == "tensor":
        torch.save(torch.ones(3), path)
    elif case == "no_state_dict":
        torch.save({"epoch": 3, "acc": 1.0}, path)
    elif case == "state_dict_not_tensors":
        torch.save({"state_dict": {"a": 1}}, path)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_checkpoint(path, arch=ARCH)
    assert str(path) in str(err.value) or case in ("state_dict_not_tensors",)


class _Payload:
    """Pickles to a call of exec(...) that would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_code_carrying_pickle_is_refused_and_not_run(tmp_path, model, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": model.state_dict(), "x": _Payload(marker)}, path,
               pickle_protocol=protocol)
    with pytest.raises(CheckpointError, match="refusing to load.*could run code"):
        load_checkpoint(path, arch=ARCH)
    assert not marker.exists()


def test_save_rejects_non_plain_metadata(tmp_path, model):
    with pytest.raises(CheckpointError, match=r"metadata cfg\['opt'\] is a object"):
        save_checkpoint(tmp_path / "x.pth", model, cfg={"opt": object()})
    with pytest.raises(CheckpointError, match="do not pass state_dict"):
        save_checkpoint(tmp_path / "x.pth", model, state_dict={})
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- hostile values

def _with(model, key, fill):
    """The model's state dict with tensor `key` changed by `fill(tensor)` (in a copy)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    fill(sd[key])
    return sd


@pytest.mark.parametrize("key,fill,pattern", [
    ("layer2.1.conv1.weight", lambda t: t.view(-1)[7].fill_(float("nan")),
     r"tensor layer2\.1\.conv1\.weight has 1 NaN value\(s\)"),
    ("fc.weight", lambda t: t.view(-1)[0].fill_(float("-inf")),
     r"tensor fc\.weight has 1 infinite value"),
    ("layer1.0.bn1.running_var", lambda t: t.view(-1)[3].fill_(float("inf")),
     r"tensor layer1\.0\.bn1\.running_var has 1 infinite"),
    ("layer3.0.conv2.weight", lambda t: t.mul_(1e30),
     r"tensor layer3\.0\.conv2\.weight has a value of magnitude .*limit 1e\+15"),
    ("bn1.running_mean", lambda t: t.view(-1)[0].fill_(2e15), r"tensor bn1\.running_mean .*magnitude"),
    ("layer1.1.bn2.running_var", lambda t: t.view(-1)[0].fill_(-1.0),
     r"tensor layer1\.1\.bn2\.running_var \(a BatchNorm variance\) has negative"),
])
def test_non_finite_or_absurd_values_are_refused_naming_the_tensor(tmp_path, model, key, fill,
                                                                  pattern):
    path = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": _with(model, key, fill)}, path)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_checkpoint(path, arch=ARCH)
    assert str(path) in str(err.value) and "checkpoint" in str(err.value)


def test_large_but_sane_values_still_load(tmp_path, model):
    """The limit is not a tight one: 1e6-scaled weights and a huge-but-finite variance load."""
    sd = _with(model, "layer1.0.conv1.weight", lambda t: t.mul_(1e6))
    sd["layer1.0.bn1.running_var"].fill_(1e12)
    torch.save({"state_dict": sd}, tmp_path / "big.pth")
    loaded, _ = load_checkpoint(tmp_path / "big.pth", arch=ARCH)
    assert torch.equal(loaded.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("keep", [0.001, 0.5, 0.99])
def test_truncated_checkpoint_says_truncated_or_corrupt(tmp_path, model, legacy, protocol, keep):
    path = tmp_path / "ck.pth.tar"
    torch.save(official_layout(model), path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_checkpoint(path, arch=ARCH)
    assert "not a PyTorch checkpoint" not in str(err.value) and str(path) in str(err.value)


def test_intact_legacy_format_still_loads(tmp_path, model):
    path = tmp_path / "legacy.pth.tar"
    torch.save(official_layout(model), path, pickle_protocol=4,
               _use_new_zipfile_serialization=False)
    assert same_weights(load_checkpoint(path)[0], model)


@pytest.mark.parametrize("arch", [ARCH, None])
def test_partly_prefixed_keys_get_a_hint_and_stay_refused(tmp_path, model, arch):
    sd = {(f"module.{k}" if i % 3 == 0 else k): v
          for i, (k, v) in enumerate(model.state_dict().items())}
    torch.save({"state_dict": sd}, tmp_path / "mixed.pth")
    n = sum(k.startswith("module.") for k in sd)
    with pytest.raises(CheckpointError,
                       match=rf"{n} of {len(sd)} keys start with 'module\.'.*strip") as err:
        load_checkpoint(tmp_path / "mixed.pth", arch=arch)
    assert "missing keys" in str(err.value)      # strict matching is kept


def test_fully_prefixed_or_plain_keys_get_no_prefix_hint(tmp_path, model):
    sd = dict(model.state_dict())
    del sd["fc.bias"]
    torch.save({"state_dict": sd}, tmp_path / "m.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "m.pth", arch=ARCH)
    assert "module." not in str(err.value)
