"""`dgfpga demo` end to end on a small run: bit-exact, report written, numbers consistent."""
import json

import numpy as np
import pytest

from dgfpga.cli.main import main


@pytest.fixture(scope="module")
def demo_run(calib_images, tmp_path_factory):
    pytest.importorskip("torch")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga_models.checkpoint import save_checkpoint
    d = tmp_path_factory.mktemp("demo")
    from dgfpga.data import embedded as data
    imgs = data.load_split("train", 64).images
    model = make_test_model("resdg20_cifar10", imgs)
    ckpt = save_checkpoint(d / "m.pth.tar", model)
    rc = main(["demo", "--checkpoint", str(ckpt), "--n-sim", "2", "--images", "embedded:40:test",
               "-o", str(d / "out")])
    return rc, d / "out"


def test_demo_is_bit_exact_and_writes_the_report(demo_run):
    rc, out = demo_run
    assert rc == 0
    rep = out / "report"
    s = json.loads((rep / "summary.json").read_text())
    assert s["bit_exact"] is True and s["csim"]["bit_exact"] is True
    html = (rep / "index.html").read_text()
    for png in ("density.png", "gates.png", "cycles.png", "speedup.png", "latency.png",
                "resources.png"):
        assert (rep / png).stat().st_size > 5000, png
        assert png in html
    # the summary's numbers are the report's numbers
    assert f"{s['csim']['gated_cycles']:,.0f}" in html
    assert f"{s['accuracy']['top1_int8']:.4g}" in html
    # one engine start per image; the host's CPU per image is measured and shown, and the
    # predictions carry that measured host term (no per-block constant)
    c = s["csim"]
    assert c["starts_per_image"] == 1 and 0 < c["host_cpu_s"] < 0.05
    assert f"One engine start per image ({c['starts_per_image']} measured)" in html
    assert f"{1e6 * c['host_cpu_s']:.0f} us" in html
    assert len(c["groups"]) == len(c["per_group_gated"]) == 9 + 2
    assert sum(c["per_group_gated"]) <= c["gated_cycles"]
    u = s["ultra96"]
    assert all(0 < v < 0.05 for v in u["host_cpu_s"].values())
    assert u["shipped_model"]["host_ms"] == pytest.approx(1e3 * u["host_cpu_s"][s["arch"]])
    assert (out / "project_ultra96" / "run_hls.tcl").is_file()
    assert (out / "project_small" / "bundle" / "manifest.json").is_file()


def test_demo_rejects_bad_images(demo_run, tmp_path, capsys):
    _, out = demo_run
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 16, 16), np.float32))
    ckpt = out.parent / "m.pth.tar"
    rc = main(["demo", "--checkpoint", str(ckpt), "--images", str(bad), "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "the network takes" in capsys.readouterr().err
    rc = main(["demo", "--checkpoint", str(tmp_path / "missing.pth.tar"), "-o", str(tmp_path / "o")])
    assert rc == 2
