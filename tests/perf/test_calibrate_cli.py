"""`dgfpga calibrate` writes to -o/--out (default out/calibrate/ under the current
directory), never into the checkout; the shipped calibration stays what predict reads."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dgfpga.cli.main import main
from dgfpga.perf import calibration

SHIPPED = calibration.RESULTS


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file()}              # (sim/results/synth/: the synthesis results)


@pytest.fixture
def few_records(tmp_path):
    """A dozen measured layers of the shipped RTL calibration (fits in a second)."""
    recs = calibration.load_measurements(SHIPPED / "cycles_small_resdg20_cifar10.json")
    path = tmp_path / "few.json"
    path.write_text(json.dumps(recs[::9]))
    return path


def test_default_output_is_out_calibrate_under_the_cwd(tmp_path, few_records, monkeypatch,
                                                      capsys):
    before = _digest(SHIPPED)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["calibrate", "--from", str(few_records)]) == 0
    out = work / "out" / "calibrate"
    assert (out / "cycle_params_small.json").is_file()
    assert (out / "calibration_small_resdg20_cifar10.json").is_file()
    assert _digest(SHIPPED) == before                       # the checkout is untouched
    assert "cycle_params_small.json" in capsys.readouterr().out


def test_out_option_and_the_shipped_params_stay_the_default(tmp_path, few_records):
    from dgfpga.contract.engine_config import load_config
    before = _digest(SHIPPED)
    assert main(["calibrate", "--from", str(few_records), "-o", str(tmp_path / "c")]) == 0
    params = calibration.CycleParams.load(tmp_path / "c" / "cycle_params_small.json")
    assert params.axi_efficiency > 0
    assert _digest(SHIPPED) == before
    assert calibration.params_path(load_config("small")) == SHIPPED / "cycle_params_small.json"


@pytest.mark.parametrize("argv, words", [
    (["--arch", "resdg99"], "unknown network"),
    (["--config", "nosuch"], "nosuch"),
    (["--from", "/nonexistent/cycles.json"], "cannot read measurements"),
])
def test_bad_inputs_are_errors_before_any_work(tmp_path, argv, words, capsys):
    out = tmp_path / "never"
    assert main(["calibrate", *argv, "-o", str(out)]) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("value, words", [
    ("dense,1.5", "block density in (0, 1]"), ("0.5,half", "'half' is not 'dense'"),
    ("nan", "block density in (0, 1]"), ("0", "block density in (0, 1]"),
    ("dense,dense", "give each density once")])
def test_bad_densities_are_usage_errors(tmp_path, value, words, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--densities", value, "-o", str(out)])
    assert exc.value.code == 2 and words in capsys.readouterr().err
    assert not out.exists()


def test_densities_option_parses_the_shipped_ultra96_set():
    """`--densities dense,0.5` is the set of the shipped ultra96 resdg18 measurements."""
    from dgfpga.cli.cmd_calibrate import densities
    assert densities("dense,0.5") == (None, 0.5)
    assert densities(" 1.0 , dense ") == (1.0, None)
    recs = calibration.load_measurements(SHIPPED / "cycles_ultra96_resdg18_lat40_st0.json")
    assert {r["density"] for r in recs} == set(densities("dense,0.5"))
