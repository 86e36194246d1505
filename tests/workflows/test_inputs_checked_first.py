"""Inputs are checked before any work or any file is written (issue 12, item 7), and
ImageNet-sized networks get defaults that fit them (embedded photos, not 32x32 digits)."""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.cli.main import main

torch = pytest.importorskip("torch")
pytest.importorskip("dgfpga_models")


class Worked(Exception):
    """Raised by the patched quantizer: the command got past its input checks."""


@pytest.fixture
def no_work(monkeypatch):
    """Patch quantize_model to record its images and stop: any call is 'work'."""
    seen = {}

    def fake(model, calib_images, *a, **kw):
        seen["calib"] = np.asarray(calib_images).shape
        raise Worked()
    import dgfpga.quant.quantizer as qz
    monkeypatch.setattr(qz, "quantize_model", fake)
    return seen


@pytest.fixture(scope="module")
def ck20(tmp_path_factory):
    from dgfpga_models import build_model
    from dgfpga_models.checkpoint import save_checkpoint
    return save_checkpoint(tmp_path_factory.mktemp("c") / "resdg20_cifar10.pth.tar",
                           build_model("resdg20_cifar10"))


@pytest.fixture(scope="module")
def ck18(tmp_path_factory):
    from dgfpga_models import build_model
    from dgfpga_models.checkpoint import save_checkpoint
    return save_checkpoint(tmp_path_factory.mktemp("c") / "resdg18.pth.tar",
                           build_model("resdg18"))


def _rejected(argv, capsys, *needles):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"dgfpga {argv[0]}: error: ")
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("bad,needle", [
    (["--calib", "embedded:4"], "--calib embedded:4: the embedded images are 32x32 but the "
                                "network takes 224x224: use photos"),
    (["--images", "embedded:2"], "--images embedded:2: the embedded images are 32x32"),
    (["--images", "embedded:x"], "'x' is neither an image count"),
])
def test_build_hls_imagenet_net_with_cifar_images_fails_before_work(ck18, tmp_path, capsys,
                                                                   no_work, bad, needle):
    out = tmp_path / "o"
    _rejected(["build-hls", "--checkpoint", str(ck18), "-o", str(out)] + bad, capsys, needle)
    assert "calib" not in no_work and not out.exists()


def test_build_hls_bad_selfcheck_writes_nothing(ck20, tmp_path, capsys, no_work):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 16, 16), np.float32))
    out = tmp_path / "o"
    _rejected(["build-hls", "--checkpoint", str(ck20), "--images", str(bad), "-o", str(out)],
              capsys, f"--images {bad}", "[N, 3, 32, 32]")
    assert "calib" not in no_work and not out.exists()


def test_build_hls_workflow_checks_selfcheck_images_before_writing(test_qmodel, tmp_path):
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data.images import ImageSpecError
    from dgfpga.workflows.build import build_hls
    out = tmp_path / "proj"
    with pytest.raises(ImageSpecError, match=r"self-check images: float32 \[2, 3, 16, 16\]"):
        build_hls(test_qmodel, load_config("small"), out, np.zeros((2, 3, 16, 16), np.float32))
    assert not out.exists()


@pytest.mark.parametrize("cmd,ck", [("build-hls", "ck18"), ("quantize", "ck18"),
                                    ("build-hls", "ck20"), ("quantize", "ck20")])
def test_default_images_follow_the_input_size(cmd, ck, request, tmp_path, no_work):
    path = request.getfixturevalue(ck)
    out = tmp_path / "o"
    with pytest.raises(Worked):
        main(["--debug", cmd, "--checkpoint", str(path), "-o", str(out)])
    want = (64, 3, 224, 224) if ck == "ck18" else (256, 3, 32, 32)
    assert no_work["calib"] == want
    assert not out.exists()


def test_quantize_bad_calib_writes_nothing(ck20, tmp_path, capsys, no_work):
    out = tmp_path / "m.qnpz"
    _rejected(["quantize", "--checkpoint", str(ck20), "--calib", "photos:2", "-o", str(out)],
              capsys, "--calib photos:2", "use embedded")
    assert not out.exists()


def test_demo_bad_images_write_nothing(ck20, tmp_path, capsys, no_work):
    out = tmp_path / "demo"
    _rejected(["demo", "--checkpoint", str(ck20), "--images", "embedded:0", "-o", str(out)],
              capsys, "--images embedded:0: N must be a positive")
    _rejected(["demo", "--checkpoint", str(ck20), "--calib", "photos", "-o", str(out)],
              capsys, "--calib photos")
    assert "calib" not in no_work and not out.exists()


def test_debug_reraises(ck20, tmp_path):
    from dgfpga.data.images import ImageSpecError
    with pytest.raises(ImageSpecError):
        main(["--debug", "quantize", "--checkpoint", str(ck20), "--calib", "embedded:0",
              "-o", str(tmp_path / "m.qnpz")])
