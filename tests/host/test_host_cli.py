"""`dgfpga-host bench` and `info` on the numpy device."""
import json

import numpy as np

from dgfpga_host.cli import main


def test_bench_numpy_device(bundle_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images", "selfcheck:2",
               "-o", str(out), "--no-progress"])
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
    # the manifest hashes selfcheck.npz (an edited file is refused, tests/host/
    # test_bundle_trust.py); re-record it so the bench itself sees the wrong logits
    import hashlib
    m = json.loads((bad / "manifest.json").read_text())
    m["selfcheck_sha256"] = hashlib.sha256((bad / "selfcheck.npz").read_bytes()).hexdigest()
    (bad / "manifest.json").write_text(json.dumps(m))
    rc = main(["bench", "--bundle", str(bad), "--device", "numpy", "--images", "selfcheck:1", "--no-progress"])
    assert rc == 1
    assert "FAIL: image 0 gated: logits differ" in capsys.readouterr().out


def test_folder_of_images(bundle_dir, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(folder / f"{i}.npy", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images", str(folder),
               "--no-progress"])
    assert rc == 0
    assert "bit-exact check: not run" in capsys.readouterr().out


def test_errors_are_clear(tmp_path, capsys):
    assert main(["bench", "--bundle", str(tmp_path), "--device", "numpy"]) == 2
    assert "not a dgfpga bundle" in capsys.readouterr().err


def test_info(bundle_dir, capsys):
    assert main(["info", "--bundle", str(bundle_dir)]) == 0
    assert "self-check images: 4" in capsys.readouterr().out


def test_images_spec_kinds_and_errors(bundle_dir, tmp_path, capsys):
    # an embedded spec runs (no recorded outputs: no bit-exact check)
    rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images",
               "embedded:1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "1 images" in out and "bit-exact check: not run" in out
    # every bad spec is a one-line error before anything runs
    for spec, msg in [("selfcheck:x", "'x' is neither an image count"),
                      ("selfcheck:0", "N must be a positive"),
                      ("selfcheck:2:test", "expected selfcheck[:N]"),
                      ("photos:2", "224x224 but the network takes 32x32"),
                      (str(tmp_path / "none"), "no such file or folder")]:
        rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images", spec])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("dgfpga-host bench: error: --images ") and msg in err, err


def test_selfcheck_count(bundle_dir, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images",
                 "selfcheck:3", "-o", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["images"] == 3


def test_debug_shows_the_traceback_of_an_expected_error(tmp_path, capsys):
    """`dgfpga-host --debug` re-raises what is otherwise one `error:` line (exit 2)."""
    import pytest
    from dgfpga.errors import DgfpgaError
    from dgfpga_host.cli import main
    assert main(["info", "--bundle", str(tmp_path / "missing")]) == 2
    assert "dgfpga-host info: error:" in capsys.readouterr().err
    with pytest.raises(DgfpgaError):
        main(["--debug", "info", "--bundle", str(tmp_path / "missing")])
