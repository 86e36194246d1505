"""The resource estimate against open synthesis of the reference RTL: the shipped results
(sim/results/synth/*.json, `dgfpga synth --by-module --ship`), the fitted allowances and the
error per config and unit. No Yosys here: the tests read the shipped data."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError
from dgfpga.perf import resources as R

# Tolerances of the estimate per unit (|estimate - synth|), on the configs the allowances are
# fitted to AND on the check configs the fit never sees: (absolute, relative) -- an error is
# accepted when it is within either. DSP and BRAM36 are counted terms plus small fitted
# allowances; LUT/FF are mostly fitted.
TOLERANCE = dict(dsp=(2, 0.05), bram36=(1.0, 0.10), lut=(300, 0.10), ff=(300, 0.15))


@pytest.fixture(scope="module")
def results():
    return R.synth_results()


def test_shipped_results_cover_the_fit_and_check_configs(results):
    assert set(R.FIT_CONFIGS) <= set(results) and set(R.CHECK_CONFIGS) <= set(results)
    assert not set(R.FIT_CONFIGS) & set(R.CHECK_CONFIGS), "a check config must not be fitted"
    for name, r in results.items():
        assert r.cfg.name == name
        assert r.snapshot.get("git_rev"), f"{name}: the synthesised RTL revision is not recorded"
        # every config has at least the units that do not need hours of Yosys
        assert {"compute", "loader", "write-back", "AXI"} <= set(r.units), (name, sorted(r.units))


def test_shipped_configs_are_the_test_configs(results, repo_root):
    """The fields in a shipped result are those of its config file (small is shipped, the
    others are tests/backends/configs/<name>.toml)."""
    for name, r in results.items():
        src = name if name == "small" else str(repo_root / "tests" / "backends" / "configs" / f"{name}.toml")
        assert dataclasses.asdict(load_config(src)) == dataclasses.asdict(r.cfg), name


def test_fit_rounding_does_not_follow_the_last_bits():
    """An exact fit lands on ties (1292.5, -176.75): the coefficient's rounding to 4
    significant digits is the same a few ulps either side, ties to even."""
    for c, want in ((1292.5, 1292.0), (1293.5, 1294.0), (-176.75, -176.8), (53.125, 53.12),
                    (358.25, 358.2), (0.00012345, 0.0001234), (4.0, 4.0), (1e-7, 0.0)):
        for x in (c, c * (1 + 4e-16), c * (1 - 4e-16)):
            assert R._sig4(x) == want, (x, want)


def test_allowances_are_the_fit_of_the_shipped_results(results):
    """ALLOWANCES is what fit_allowances gives on the fit configs: no hand-tuned constant."""
    assert R.fit_allowances(results) == R.ALLOWANCES


@pytest.mark.parametrize("role", ["fit", "check"])
def test_estimate_within_tolerance_per_unit(results, role):
    rows = [r for r in R.compare(results) if r["role"] == role]
    assert rows
    bad = []
    for r in rows:
        ab, rel = TOLERANCE[r["resource"]]
        if abs(r["error"]) > ab and abs(r["error"]) > rel * abs(r["synth"]):
            bad.append(f"{r['config']}/{r['unit']}/{r['resource']}: estimate {r['estimate']} "
                       f"vs synth {r['synth']}")
    assert not bad, "; ".join(bad)


def test_units_cover_every_synthesised_unit(results):
    """Every by-module unit of a shipped report belongs to exactly one estimate unit."""
    names = [n for ns in R.SYNTH_UNITS.values() for n in ns]
    assert len(names) == len(set(names))
    for r in results.values():
        data = json.loads(open(r.source).read())
        got = {u["unit"]["name"] for u in data["units"]}
        assert got <= set(names), got - set(names)


def test_mac_dsps_are_counted_not_fitted(results):
    """The compute unit's DSPs beyond the MAC array (patch and im2col address products) grow
    with TN only: the fitted TM*TN coefficient is ~0 and the counted MAC term carries the
    array (4x4 -> 8x4 adds exactly the 8 DSPs of the 16 extra MACs)."""
    assert abs(R.ALLOWANCES["compute"]["dsp"][2]) < 0.05
    d = {n: results[n].units["compute"]["dsp"] for n in ("small", "syn_8x4")}
    assert d["syn_8x4"] - d["small"] == 8


def test_fit_needs_configs_that_separate_the_features(results):
    with pytest.raises(ConfigError, match="do not separate its features"):
        R.fit_allowances(results, ["small"])
    with pytest.raises(ConfigError, match="no synthesis results for nosuch"):
        R.fit_allowances(results, ["small", "nosuch"])


def test_missing_results_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no open-synthesis results"):
        R.synth_results(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"units": []}))
    with pytest.raises(ConfigError, match="no 'engine_config'"):
        R.synth_results(tmp_path)


def test_cli_compare_prints_every_config_and_unit(results, capsys, tmp_path):
    from dgfpga.cli.main import main
    assert main(["synth", "--compare", "-o", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    for name, r in results.items():
        for unit in r.units:
            assert any(line.split()[:1] == [name] and unit in line for line in out.splitlines()), \
                (name, unit)
    assert "NOTE" not in out          # the shipped allowances are the fit of the shipped data
    rows = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert rows == json.loads(json.dumps(R.compare(results)))
    assert (tmp_path / "c" / "compare.txt").read_text().strip() in out


def test_calibrated_range_is_the_largest_synthesised_array(results):
    assert R.CALIBRATED_MACS == max(r.cfg.tm * r.cfg.tn for r in results.values())


def test_lut_excess_is_enforced_inside_the_calibrated_range():
    """check_fits refuses a LUT excess for an array it has synthesised the like of, and
    only warns beyond (an extrapolation)."""
    small = load_config("small")
    tight = dataclasses.replace(small, name="tight")
    est = R.estimate(tight)
    R.PART_BUDGETS["xtest"] = dict(dsp=360, bram36=216, lut=est.lut - 1, ff=10 ** 6)
    try:
        cfg = dataclasses.replace(tight, part="xtest-1")
        with pytest.raises(ConfigError, match=r"LUT \d+ > \d+"):
            R.check_fits(cfg)
        big = dataclasses.replace(cfg, tm=16, tn=16)
        e = R.check_fits(big)
        assert e.lut > e.budget["lut"] and any("LUT" in w for w in e.warnings)
        assert "WARNING: LUT" in e.table()
    finally:
        del R.PART_BUDGETS["xtest"]


def test_estimate_differs_from_as_built_only_where_a_deviation_is_named(results):
    """The estimate prices the design; it may differ from the fitted model of the RTL as
    built only in the units DEVIATIONS names, each with its reason, and in the units whose
    memories are newer than the shipped synthesis (NEWER_THAN_SYNTHESIS, counted in the
    estimate and not in the as-built model)."""
    for unit, d in R.DEVIATIONS.items():
        assert unit in R.UNITS and len(d["reason"]) > 40
    newer = {i.unit for i in R._structural(load_config("ultra96"))
             if i.component in R.NEWER_THAN_SYNTHESIS}
    assert newer == {"loader", "gate unit"}
    assert not {i.component for i in R._structural(load_config("ultra96"), shipped=True)} \
        & set(R.NEWER_THAN_SYNTHESIS)
    differ = {r["unit"] for r in R.compare(results)
              if r["unit"] != "total" and r["estimate"] != r["as_built"]}
    assert differ and differ <= set(R.DEVIATIONS) | newer
    # the gate unit as designed is its fixed part plus ONE lane of what the RTL replicates
    # TN times (FEATURES "1", "tn")
    assert R.FEATURES["gate unit"] == ("1", "tn")
    small = load_config("small")
    fixed, lane = R.ALLOWANCES["gate unit"]["dsp"]
    built = {i.unit: i for i in R._items(small, as_built=True) if i.component.endswith("(fitted)")}
    design = {i.unit: i for i in R._items(small) if i.component.endswith("(fitted)")}
    assert built["gate unit"].dsp == round(fixed + lane * small.tn) \
        == results["small"].units["gate unit"]["dsp"]
    assert design["gate unit"].dsp == round(fixed + lane)
