"""`dgfpga-host bench` and `info` on the numpy device."""
import json

import numpy as np

from dgfpga_host.cli import main


def test_bench_numpy_device(bundle_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images", "2",
               "--json", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "bit-exact vs golden (logits + masks, gated and dense): PASS" in text
    data = json.loads(out.read_text())
    assert data["images"] == 2 and data["bit_exact"] is True
    assert data["gated"]["engine_cycles"]["median"] <= data["dense"]["engine_cycles"]["median"]
    assert 0 < data["gated"]["host_overhead_share"] < 1
    assert data["mac_reduction"] >= 1


def test_bench_detects_a_mismatch(bundle_dir, tmp_path, capsys):
    import shutil
    bad = tmp_path / "b"
    shutil.copytree(bundle_dir, bad)
    with np.load(bad / "selfcheck.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["logits_int"][0, 0] += 1
    np.savez(bad / "selfcheck.npz", **arrays)
    rc = main(["bench", "--bundle", str(bad), "--device", "numpy", "--images", "1", "--no-progress"])
    assert rc == 1
    assert "FAIL: image 0 gated: logits differ" in capsys.readouterr().out


def test_folder_of_images(bundle_dir, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(folder / f"{i}.npy", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--folder", str(folder),
               "--images", "2", "--no-progress"])
    assert rc == 0
    assert "bit-exact check: not run" in capsys.readouterr().out


def test_errors_are_clear(tmp_path, capsys):
    assert main(["bench", "--bundle", str(tmp_path), "--device", "numpy"]) == 2
    assert "not a dgfpga bundle" in capsys.readouterr().err


def test_info(bundle_dir, capsys):
    assert main(["info", "--bundle", str(bundle_dir)]) == 0
    assert "self-check images: 4" in capsys.readouterr().out
