"""`dgfpga build-hls`: a complete, deterministic project + bundle from a checkpoint."""
import hashlib

import numpy as np
import pytest

from dgfpga.cli.main import main


@pytest.fixture(scope="module")
def checkpoint(calib_images, tmp_path_factory):
    pytest.importorskip("torch")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga_models.checkpoint import save_checkpoint
    d = tmp_path_factory.mktemp("ckpt")
    model = make_test_model("resdg20_cifar10", calib_images)
    path = d / "resdg20.pth.tar"
    save_checkpoint(path, model, arch="resdg20_cifar10")
    calib = d / "calib.npy"
    np.save(calib, calib_images)
    sc = d / "sc.npy"
    np.save(sc, calib_images[:3])
    return path, calib, sc


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_hls_project_and_bundle(checkpoint, tmp_path, capsys):
    ckpt, calib, sc = checkpoint
    args = ["build-hls", "--checkpoint", str(ckpt), "--calib", str(calib), "--images", str(sc),
            "--config", "small"]
    assert main(args + ["-o", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "resource ESTIMATE" in out and "make all" in out
    assert main(args + ["-o", str(tmp_path / "b")]) == 0
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b, "build-hls is not deterministic"
    for f in ("run_hls.tcl", "build_bd.tcl", "Makefile", "bundle/manifest.json",
              "bundle/model.qnpz", "bundle/selfcheck.npz"):
        assert f in a, f
    assert any(k.startswith("src/") and k.endswith(".cpp") for k in a)
    # the bundle runs bit-exact through the runtime
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    bnd = load_bundle(tmp_path / "a" / "bundle")
    r = NetworkRunner(bnd, NumpyDevice(bnd.cfg)).run_image(bnd.selfcheck.images[0])
    np.testing.assert_array_equal(r.logits_int, bnd.selfcheck.logits_int[0])


def test_impossible_configuration_is_refused(checkpoint, tmp_path, capsys):
    ckpt, calib, sc = checkpoint
    from dgfpga.contract.engine_config import CONFIG_DIR
    text = (CONFIG_DIR / "ultra96.toml").read_text()
    text = text.replace("tm = 16", "tm = 64").replace("tn = 16", "tn = 64")
    text = text.replace("weight_buffer_bytes = 147456", "weight_buffer_bytes = 589824")
    text = text.replace("ofm_buffer_bytes = 32768", "ofm_buffer_bytes = 73984")
    bad = tmp_path / "huge.toml"
    bad.write_text(text)
    rc = main(["build-hls", "--checkpoint", str(ckpt), "--calib", str(calib), "--images",
               str(sc), "--config", str(bad), "-o", str(tmp_path / "x")])
    assert rc == 2
    assert "DSP" in capsys.readouterr().err


def test_wrong_checkpoint_is_a_clear_error(tmp_path, capsys):
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"not a checkpoint")
    rc = main(["build-hls", "--checkpoint", str(junk), "--calib", "embedded:4", "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "junk.pth.tar" in capsys.readouterr().err
