"""A tiny training run: dense baseline, then a DGNet from it; losses move as they should."""

import pytest

torch = pytest.importorskip("torch")

from dgfpga.workflows.train import TrainConfig, evaluate, train  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    dense = train(TrainConfig(epochs=2, n_train=384, n_val=128, lr=0.05), d / "dense.pth.tar",
                  progress=False, log=lambda *_: None)
    gated = train(TrainConfig(epochs=2, n_train=384, n_val=128, lr=0.05, target_density=0.3,
                              lbda=20.0, init=str(d / "dense.pth.tar")),
                  d / "d30.pth.tar", progress=False, log=lambda *_: None)
    return d, dense, gated


def test_dense_run_learns(runs):
    _, dense, _ = runs
    h = dense["history"]
    assert len(h) == 2
    assert h[1]["closs"] < h[0]["closs"]             # classification loss decreases
    assert all(r["rloss"] == 0 and r["bloss"] == 0 for r in h)


def test_sparsity_loss_drives_density_to_target(runs):
    _, _, gated = runs
    h = gated["history"]
    assert h[0]["rloss"] > 0
    assert h[-1]["density"] < h[0]["density"] or h[-1]["density"] < 0.45
    assert h[-1]["rloss"] <= h[0]["rloss"] + 1e-6


def test_checkpoints_have_metadata_and_load_strictly(runs):
    from dgfpga_models.checkpoint import load_checkpoint
    d, _, _ = runs
    model, meta = load_checkpoint(d / "d30.pth.tar")
    assert meta["target_density"] == 0.3 and meta["seed"] == 0
    assert "val_top1" in meta and "val_density" in meta and "dataset" in meta
    assert meta["train_config"]["init"].endswith("dense.pth.tar")
    assert meta["dense"] is False and "command" in meta and meta["wall_s"] > 0


def test_dense_checkpoint_loads_in_dense_mode(runs):
    from dgfpga.workflows.train import load_trained
    d, _, _ = runs
    dense, meta = load_trained(d / "dense.pth.tar")
    gated, _ = load_trained(d / "d30.pth.tar")
    assert meta["dense"] is True and dense.dense and not gated.dense


def test_resume_continues(runs):
    d, _, _ = runs
    cfg = TrainConfig(epochs=3, n_train=384, n_val=128, lr=0.05)
    logs = []
    res = train(cfg, d / "dense.pth.tar", progress=False, log=logs.append)
    assert any("resuming" in m and "epoch 2" in m for m in logs)
    assert [r["epoch"] for r in res["history"]] == [1, 2, 3]


def test_resume_of_another_run_is_refused(runs, tmp_path):
    """A stale .resume sidecar written by a run with other settings (here another learning
    rate) is refused with a message naming the difference, before any training; the
    sidecar and the checkpoint are left as they were."""
    import shutil
    from dgfpga.errors import DgfpgaError
    d, _, _ = runs
    for suffix in ("", ".resume"):
        shutil.copy(d / f"dense.pth.tar{suffix}", tmp_path / f"dense.pth.tar{suffix}")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cfg = TrainConfig(epochs=4, n_train=384, n_val=128, lr=0.02)
    with pytest.raises(DgfpgaError, match=r"another training run \(lr: 0.05 there, 0.02 now\)"):
        train(cfg, tmp_path / "dense.pth.tar", progress=False, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_evaluate_is_deterministic(runs):
    from dgfpga.data import embedded as data
    from dgfpga_models.checkpoint import load_checkpoint
    d, _, _ = runs
    model, _ = load_checkpoint(d / "d30.pth.tar")
    s = data.load_split("test", 100)
    a, b = evaluate(model, s), evaluate(model, s)
    assert a == b and 0 <= a["top1"] <= 100 and 0 < a["density"] <= 1.05


#: every shipped checkpoint; one in the default suite (each evaluates the whole test split)
SHIPPED = ["resdg20_cifar10_d50"] + [
    pytest.param(n, marks=pytest.mark.slow) for n in (
        "resdg20_cifar10_dense", "resdg20_cifar10_d30", "resdg11b_cifar10_dense",
        "resdg11b_cifar10_d55", "mobilenet_v2dg9_cifar10_dense",
        "mobilenet_v2dg9_cifar10_d75")]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reproduces_model_card(name):
    """Eval is deterministic: the test split gives exactly the recorded accuracy/density."""
    from pathlib import Path
    from dgfpga.data import embedded as data
    from dgfpga.workflows.train import load_trained
    root = Path(__file__).resolve().parents[2] / "models"
    path = root / "checkpoints" / f"{name}.pth.tar"
    if not path.exists():
        pytest.skip(f"{path} not shipped yet")
    model, meta = load_trained(path)
    r = evaluate(model, data.load_split("test"))
    assert r["top1"] == meta["test_top1"]
    assert r["density"] == pytest.approx(meta["test_density"], abs=1e-9)
    card = (root / "MODEL_CARD.md").read_text()
    assert f"{r['top1']:.2f}" in card and f"{r['density']:.4f}" in card


def test_channel_group_training_keeps_multiples_of_the_group(runs):
    """--channel-group 4: the checkpoint has the official keys with fc2 rows tied in groups
    of 4, records the group, loads into the plain model whose masks count multiples of 4;
    an interrupted run resumes into the tied model (the .resume sidecar round trip)."""
    from dgfpga.data import embedded as data
    from dgfpga_models import channel_group_of
    from dgfpga_models.checkpoint import load_checkpoint
    d, _, _ = runs
    out = d / "g4.pth.tar"
    cfg = dict(n_train=256, n_val=64, lr=0.05, target_density=0.3, lbda=20.0,
               init=str(d / "dense.pth.tar"), channel_group=4)
    train(TrainConfig(epochs=1, **cfg), out, progress=False, log=lambda *_: None)
    logs = []
    res = train(TrainConfig(epochs=2, **cfg), out, progress=False, log=logs.append)
    assert any("resuming" in m for m in logs) and len(res["history"]) == 2
    model, meta = load_checkpoint(out)
    assert meta["channel_group"] == 4 and meta["train_config"]["channel_group"] == 4
    assert channel_group_of(model.state_dict()) == 4
    model.eval()
    outg = model.forward_gated(torch.from_numpy(data.load_split("test", 64).images))
    counts = torch.cat([m.channel.sum((1, 2, 3)) for m in outg.masks])
    assert bool((counts % 4 == 0).all())


def test_channel_group_errors_are_clear(tmp_path):
    from dgfpga.errors import DgfpgaError
    with pytest.raises(DgfpgaError, match="applies to DGNet training"):
        train(TrainConfig(epochs=1, channel_group=4), tmp_path / "x.pth.tar", progress=False)
    with pytest.raises(DgfpgaError, match=r"does not divide the 16 channels of layer1\.0\.mask_c"):
        train(TrainConfig(epochs=1, target_density=0.5, channel_group=32),
              tmp_path / "y.pth.tar", progress=False)
    assert not list(tmp_path.iterdir())                 # refused before any work
