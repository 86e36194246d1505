"""Cycle-model predictions at the paper's operating points and the scheduler benchmark."""
import json

import pytest

from dgfpga.cli.main import main
from dgfpga.contract.engine_config import load_config
from dgfpga.perf.prediction import PAPER_TABLE3, block_density_for_reduction, paper_configurations


def test_paper_configurations_hit_the_paper_mac_reductions():
    preds = paper_configurations(load_config("ultra96"))
    assert [p.network for p in preds] == [t[0] for t in PAPER_TABLE3]
    for p, (_, _, reduction, speedup) in zip(preds, PAPER_TABLE3):
        # random masks are discrete: the solved density lands within a few percent
        assert abs(p.mac_reduction / reduction - 1) < 0.05
        assert 1.0 < p.speedup < p.mac_reduction
        assert 0 < p.efficiency <= 1
        assert p.paper_speedup == speedup
        assert abs(p.gated_images_per_s - 1e3 / p.gated_ms) < 1e-6


def test_density_solver_is_monotone():
    d2 = block_density_for_reduction("resdg18", 2.0)
    d3 = block_density_for_reduction("resdg18", 3.0)
    assert 0 < d3 < d2 < 1


def test_predict_command_writes_json(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "resdg34" in text and "paper speedup" in text
    data = json.loads(out.read_text())
    assert len(data) == 3 and {"speedup", "efficiency", "gated_ms"} <= set(data[0])
    # the host term is measured (and says so), the gate records are priced
    assert "measured on this machine" in text and "measured on this machine" in data[0]["host_source"]
    assert all(0 < r["host_ms"] < 5 and r["gate_ms"] > 0 for r in data)


def test_predict_host_term_is_the_given_measurement(tmp_path, capsys):
    """--host-us: that many microseconds per image are added to dense and gated latency."""
    from dgfpga.perf.cycle_model import CycleParams
    from dgfpga.perf.prediction import paper_configurations
    out = tmp_path / "p.json"
    assert main(["predict", "--host-us", "1000", "-o", str(out)]) == 0
    assert "1000 us (--host-us)" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    from dgfpga.perf.calibration import params_path
    cfg = load_config("ultra96")
    p = params_path(cfg) if params_path(cfg).is_file() else params_path(load_config("small"))
    from dgfpga.perf.prediction import ddr_params            # the board's DDR, as predict
    bare = paper_configurations(cfg, ddr_params(CycleParams.load(p) if p.is_file() else None,
                                                cfg))
    for r, b in zip(rows, bare):
        assert r["host_ms"] == 1.0
        assert r["gated_ms"] == pytest.approx(b.gated_ms + 1.0)
        assert r["dense_ms"] == pytest.approx(b.dense_ms + 1.0)


def test_bench_scheduler_command(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench-scheduler", "--arch", "resdg20_cifar10", "--config", "small",
                 "--masks", "5", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["blocks"] == 9 and data["schedule_us_median"] > 0


CKPT = "models/checkpoints/resdg20_cifar10_d50.pth.tar"


def test_predict_checkpoint_prices_its_own_plan(tmp_path, capsys):
    """--checkpoint: the golden masks of real images priced on the quantized model's own
    plan (that it equals the shape plan: tests/perf/test_one_schedule.py)."""
    import pytest
    pytest.importorskip("torch", reason="loading a checkpoint needs torch")
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "p.json"
    assert main(["predict", "--checkpoint", str(root / CKPT), "--images", "embedded:2",
                 "--calib", "embedded:16", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and rows[3]["network"] == "resdg20_cifar10"
    assert 1.0 < rows[3]["mac_reduction"] and 0 < rows[3]["speedup"]
    assert "real masks" in capsys.readouterr().out


def test_predict_checks_images_before_any_work(tmp_path, capsys):
    import pytest
    pytest.importorskip("torch", reason="loading a checkpoint needs torch")
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "p.json"
    assert main(["predict", "--checkpoint", str(root / CKPT), "--images", "photos:2",
                 "-o", str(out)]) == 2
    assert "224x224" in capsys.readouterr().err and not out.exists()


def test_predict_prices_the_board_ddr_latency(tmp_path, capsys):
    """Default: the board's DDR read latency (Ultra96-V2: 200 ns = 40 cycles at 200 MHz);
    --ddr-latency 0 is ideal memory and faster; the same latency given explicitly is the
    default."""
    from dgfpga.perf.prediction import ddr_latency_cycles
    assert ddr_latency_cycles(load_config("ultra96")) == 40
    runs = {}
    for name, extra in (("board", []), ("ideal", ["--ddr-latency", "0"]),
                        ("forty", ["--ddr-latency", "40"])):
        out = tmp_path / f"{name}.json"
        assert main(["predict", "--host-us", "0", "-o", str(out), *extra]) == 0
        runs[name] = json.loads(out.read_text())
    assert "read latency 40 cycles (200 ns)" in capsys.readouterr().out
    for b, i, f in zip(runs["board"], runs["ideal"], runs["forty"]):
        assert b == f
        assert b["gated_ms"] > i["gated_ms"] and b["dense_ms"] > i["dense_ms"]


def test_predict_channel_groups_prints_aligned_beside_unaligned(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", "--host-us", "0", "--channel-groups", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ASSUMES a model trained with `dgfpga train --channel-group 16`" in text
    assert "unaligned speedup" in text
    rows = json.loads(out.read_text())
    assert [r["channel_group"] for r in rows] == [1, 1, 1, 16, 16, 16]
    for u, a in zip(rows[:3], rows[3:]):
        assert a["network"] == u["network"] and a["gated_ms"] < u["gated_ms"]
        saved = f"{100 * (1 - a['gated_ms'] / u['gated_ms']):.1f}%"
        assert saved in text


R50_CONFIG = "ultra96"    # 2048-channel limits


def test_resnet50_operating_points_are_the_papers_macs():
    """ResNet-50's rows: the paper's DGNet MACs (Table 2: 1.65e9 at 60%, 1.31e9 at 70%)
    against the official dense count (4,089,184,256, models/flops), no FPGA speedup."""
    from dgfpga.perf.prediction import operating_points
    rows = operating_points("resdg50", load_config(str(R50_CONFIG)))
    assert [(r[0], r[1], r[3]) for r in rows] == [("resdg50", 0.6, None), ("resdg50", 0.7, None)]
    assert rows[0][2] == pytest.approx(4_089_184_256 / 1.65e9, rel=1e-12)
    assert rows[1][2] == pytest.approx(4_089_184_256 / 1.31e9, rel=1e-12)
    assert operating_points("resdg18") == [PAPER_TABLE3[0]]
    from dgfpga.errors import ConfigError
    with pytest.raises(ConfigError, match="no paper operating point for 'mobilenet'"):
        operating_points("mobilenet")


def test_predict_resnet50(tmp_path, capsys):
    """`predict --arch resdg50`: refused on ultra96's engine with 512-channel limits naming
    the channel limit; on ultra96 (2048-channel limits) two rows at the paper's MAC
    reductions (within the random masks' granularity), '-' where the paper published no
    speedup, aligned rows too."""
    from dgfpga.contract.engine_config import config_path
    c512 = tmp_path / "ultra96_c512.toml"
    c512.write_text(config_path("ultra96").read_text().replace(
        'name = "ultra96"', 'name = "ultra96_c512"').replace(
        "max_in_channels = 2048", "max_in_channels = 512").replace(
        "max_out_channels = 2048", "max_out_channels = 512"))
    assert load_config(str(c512)).max_out_channels == 512
    assert main(["predict", "--arch", "resdg50", "--config", str(c512), "--host-us", "0"]) == 2
    assert "max_out_channels" in capsys.readouterr().err
    out = tmp_path / "p.json"
    assert main(["predict", "--arch", "resdg50", "--host-us", "0",
                 "--channel-groups", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [r["network"] for r in data] == ["resdg50"] * 4
    for r, want in zip(data, [4.089184256 / 1.65, 4.089184256 / 1.31] * 2):
        assert abs(r["mac_reduction"] / want - 1) < 0.03
        assert r["paper_speedup"] is None and 1.0 < r["speedup"] < r["mac_reduction"]
    assert [r["channel_group"] for r in data] == [1, 1, 16, 16]
    rows = [ln for ln in text.splitlines() if ln.startswith("resdg50")]
    assert len(rows) == 4 and rows[0].split()[-2:] == ["-", "-"]


def test_align_channels_aligns_both_bottleneck_channel_gates():
    """A Bottleneck's mask_c1 and mask_c2 both end as multiples of the group, within the
    block's mid width (not conv3's output width)."""
    from dgfpga.perf.cycle_model import random_block_masks
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.perf.prediction import align_channels
    net = net_shape("resdg50")
    masks = align_channels(net, random_block_masks(net, [0.3] * len(net.blocks), seed=1), 16, 1)
    for b, m in zip(net.blocks, masks):
        for ch in (m.channels, m.channels2):
            assert len(ch) % 16 == 0 and len(set(ch.tolist())) == len(ch)
            assert ch.max() < b.gated_c < b.out_c


def test_efficiency_by_layer_type_is_the_layers_own_ratio(tmp_path, capsys):
    """`predict --arch resdg50` reports, per layer type and run, MACs / (cycles * tm * tn)
    summed over that type's layers (recomputed here from the cycle model's own per-layer
    figures) and its share of the engine cycles; the types are the stem's 7x7, 1x1, the
    strided 1x1 projections and 3x3; their shares plus the gate/head records make 100 %."""
    from dgfpga.perf.cycle_model import compare
    from dgfpga.perf.netshapes import shape_plan
    from dgfpga.perf.prediction import efficiency_by_type, layer_type
    cfg = load_config("ultra96")
    out, png = tmp_path / "p.json", tmp_path / "bounds.png"
    assert main(["predict", "--arch", "resdg50", "--host-us", "0", "-o", str(out),
                 "--plot", str(png)]) == 0
    assert "by layer type, resdg50 at 2.4" in capsys.readouterr().out
    from PIL import Image
    with Image.open(png) as im:                  # the bounds figure: a real image
        assert im.format == "PNG" and im.size[0] > 600
    r = json.loads(out.read_text())[0]
    # the per-layer splits saved with --out: every layer of the dense run, in order
    assert [n for n, _ in r["layer_bounds"]["dense"]] == [
        lp.name for lp in shape_plan("resdg50", cfg).layers]
    assert all(sum(b.values()) > 0 for _, b in r["layer_bounds"]["gated"])
    assert set(r["efficiency_by_type"]) == {"stem 7x7", "1x1", "1x1/s2", "3x3"}
    plan = shape_plan("resdg50", cfg)
    cmp = compare(plan, None, None)                       # dense both ways: a hand check
    eff, share = efficiency_by_type(plan, {"dense": cmp.dense}, cfg)
    stem = [lc for lc in cmp.dense.layers if lc.name == plan.layers[0].name]
    assert layer_type(plan.layers[0]) == "stem 7x7"
    assert eff["stem 7x7"]["dense"] == pytest.approx(
        stem[0].macs / (stem[0].total_cycles * cfg.tm * cfg.tn), rel=1e-12)
    records = cmp.dense.gate_cycles + cmp.dense.head_cycles
    assert sum(v["dense"] for v in share.values()) == pytest.approx(
        1 - records / cmp.dense.engine_cycles, rel=1e-9)
    for t in eff:
        assert 0 < r["efficiency_by_type"][t]["gated"] <= 1
    # what bounds each type: shares of its cycles that sum to 1, the layers' own splits
    from dgfpga.perf.prediction import bounds_by_type
    for t, modes in r["bounds_by_type"].items():
        for mode in ("dense", "gated"):
            assert sum(modes[mode].values()) == pytest.approx(1.0, rel=1e-9), (t, mode)
    b = bounds_by_type(plan, {"dense": cmp.dense})
    assert b["stem 7x7"]["dense"] == pytest.approx(
        {k: v / stem[0].total_cycles for k, v in stem[0].bounds.items() if v}, rel=1e-9)
