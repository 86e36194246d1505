"""`dgfpga simulate` (issue 18) on the shipped model: bit-exact check against the golden
model with the first difference named, cycles.json / junit.xml (read back with junitparser)
/ summary.md, baseline regressions and budgets with their exit codes, --update-baseline,
the Perfetto trace, Dask LocalCluster == serial, input checks; the RTL level with Verilator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_verilator
from dgfpga.cli.main import main

CKPT = ROOT / "models" / "checkpoints" / "resdg20_cifar10_d50.pth.tar"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The shipped resdg20_cifar10_d50 quantized (64 embedded calibration images: the
    bit-exactness does not depend on the calibration) in a bundle for the small engine."""
    pytest.importorskip("torch")
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data import embedded as data
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.workflows.build import build_hls
    model, _ = load_float_model(CKPT)
    qm = quantize_model(model, data.load_split("train", 64).images)
    test = data.load_split("test", 2)
    r = build_hls(qm, load_config("small"), tmp_path_factory.mktemp("sim"), test.images,
                  test.labels)
    return Path(r.bundle_dir)


@pytest.fixture(scope="module")
def first(bundle, tmp_path_factory):
    """One numpy-level run of 3 embedded test images with a trace: (rc, out folder)."""
    out = tmp_path_factory.mktemp("first") / "rep"
    rc = main(["simulate", "--bundle", str(bundle), "--level", "numpy", "--images",
               "embedded:3", "-o", str(out), "--trace", "trace.json", "--no-progress"])
    return rc, out


def _sim(bundle, out, *extra):
    return main(["simulate", "--bundle", str(bundle), "--level", "numpy", "--images",
                 "embedded:3", "-o", str(out), "--no-progress", *extra])


def test_numpy_level_reports_match_an_independent_run(bundle, first):
    """cycles.json holds what the board runtime + numpy device give for these images
    (run here directly), and every image is bit-exact with the golden model."""
    from dgfpga.data.images import load_images
    from dgfpga.numerics.golden import run_golden
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    rc, out = first
    assert rc == 0
    doc = json.loads((out / "cycles.json").read_text())
    assert doc["format"] == "dgfpga-cycles" and doc["version"] == 1
    assert doc["level"] == "numpy" and doc["config"] == "small" and doc["dense"] is False
    assert doc["cycles_source"] == "analytical cycle model"
    b = load_bundle(bundle)
    assert doc["bundle_sha256"] == b.manifest["model_sha256"]
    x = load_images("embedded:3", b.qmodel.input_shape, b.qmodel.mean, b.qmodel.std).images
    from dgfpga.perf.calibration import shipped_params
    params, path = shipped_params(b.cfg)          # the RTL calibration, not the defaults
    assert path is not None and path.name == "cycle_params_small.json"
    runner = NetworkRunner(b, NumpyDevice(b.cfg, cycle_params=params))
    g = run_golden(b.qmodel, x, keep_layers=False)
    assert [i["name"] for i in doc["images"]] == [f"embedded-{i:04d}" for i in range(3)]
    totals = []
    for n, img in enumerate(doc["images"]):
        r = runner.run_image(x[n])
        assert img["pass"] is True
        np.testing.assert_array_equal(r.logits_int, g.logits_int[n])
        assert img["cycles"] == r.cycles and img["macs"] == r.macs
        assert [(e["name"], e["cycles"]) for e in img["records"]] == list(r.layer_cycles.items())
        assert {e["kind"] for e in img["records"]} == {"conv", "gate", "head"}
        assert sum(e["cycles"] for e in img["records"]) == img["cycles"]
        totals.append(r.cycles)
    assert doc["total"] == float(np.median(totals))
    stem = doc["images"][0]["records"][0]["name"]
    assert doc["layers"][stem] == float(np.median(
        [i["records"][0]["cycles"] for i in doc["images"]]))
    summary = (out / "summary.md").read_text()
    assert summary.startswith("## dgfpga simulate: PASS") and "| embedded-0002 | pass |" in summary


def test_dense_run(bundle, first, tmp_path):
    """--dense: every gate on; checked against the golden model's dense run; more MACs and
    cycles than the gated run of the same image; a gated baseline is refused."""
    _, out = first
    assert _sim(bundle, tmp_path / "d", "--dense") == 0
    d = json.loads((tmp_path / "d" / "cycles.json").read_text())
    g = json.loads((out / "cycles.json").read_text())
    assert d["dense"] is True and all(i["pass"] for i in d["images"])
    for a, b in zip(d["images"], g["images"]):
        assert a["macs"] > b["macs"] and a["cycles"] > b["cycles"]
    assert _sim(bundle, tmp_path / "e", "--dense", "--baseline", str(out / "cycles.json")) == 2


def test_junit_reads_back_with_junitparser(first):
    from junitparser import JUnitXml
    rc, out = first
    doc = json.loads((out / "cycles.json").read_text())
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].name == "dgfpga.simulate.numpy"
    cases = list(suites[0])
    assert [c.name for c in cases] == [f"{i['name']} [numpy]" for i in doc["images"]]
    for c, img in zip(cases, doc["images"]):
        assert c.classname == "dgfpga.simulate.numpy" and c.is_passed
        props = {p.name: p.value for p in c.child(__import__("junitparser").Properties)}
        assert props == {"cycles": str(img["cycles"]), "macs": str(img["macs"])}


def test_a_wrong_engine_result_fails_naming_the_first_difference(bundle, tmp_path,
                                                                 monkeypatch, capsys):
    """A runner whose logit 7 is off by 256 (byte 1 of that int64): exit 1, the failure
    names logit 7 and the byte, in the output and in the JUnit failure."""
    from junitparser import Failure, JUnitXml
    from dgfpga_host.runner import NetworkRunner
    real = NetworkRunner.run_image

    def wrong(self, image, dense=False):
        r = real(self, image, dense)
        r.logits_int = r.logits_int.copy()
        r.logits_int[7] += 256
        return r

    monkeypatch.setattr(NetworkRunner, "run_image", wrong)
    assert _sim(bundle, tmp_path / "rep", "--images", "embedded:1") == 1
    msg = "logit 7:"
    assert msg in capsys.readouterr().out
    case = next(iter(next(iter(JUnitXml.fromfile(str(tmp_path / "rep" / "junit.xml"))))))
    assert isinstance(case.result[0], Failure) and msg in case.result[0].message
    assert "offset 57 of the int64 logits" in case.result[0].message


def test_first_difference_names_block_gate_and_index():
    from dgfpga.workflows.simulate import first_difference
    sp = [np.ones((2, 2), bool), np.array([[True, False], [False, True]])]
    ch = [np.ones(8, bool), np.ones(16, bool)]
    lg = np.arange(10, dtype=np.int64)
    copy = lambda xs: [x.copy() for x in xs]  # noqa: E731
    assert first_difference(lg, sp, ch, lg, copy(sp), copy(ch)) is None
    s2 = copy(sp)
    s2[1][1, 0] = True
    assert first_difference(lg, s2, ch, lg, sp, ch).startswith("block 1 spatial gate: tile 2 ")
    c2 = copy(ch)
    c2[0][5] = False
    assert first_difference(lg, sp, c2, lg, sp, ch).startswith("block 0 channel gate: channel 5 ")
    c2[0][6] = False                          # two differ: the first is named, both counted
    assert first_difference(lg, sp, c2, lg, sp, ch) == (
        "block 0 channel gate: channel 5 is off, golden on (2 channels differ)")
    s2[1][0, 1] = True                        # block 1 spatial: tiles 1 and 2 now differ
    assert first_difference(lg, s2, ch, lg, sp, ch).startswith("block 1 spatial gate: tile 1 ")
    assert first_difference(lg, s2, c2, lg, sp, ch).startswith("block 0 channel")  # network order
    l2 = lg.copy()
    l2[4] = -1
    assert first_difference(l2, sp, ch, lg, sp, ch).startswith("logit 4: -1, golden 4 ")


def test_regression_check_fails_a_slowed_result_and_passes_the_unchanged(bundle, first,
                                                                         tmp_path, capsys):
    from dgfpga.workflows.simulate import MIN_SLACK_CYCLES
    _, out = first
    doc = json.loads((out / "cycles.json").read_text())
    base = tmp_path / "base.json"
    base.write_text(json.dumps(doc))
    assert _sim(bundle, tmp_path / "a", "--baseline", str(base), "--max-regression", "2%") == 0
    # a layer whose accepted cycles were 5% lower: this run is "5% slower" there
    conv = max(doc["layers"], key=doc["layers"].get)
    slow = dict(doc, layers=dict(doc["layers"], **{conv: doc["layers"][conv] / 1.05}))
    base.write_text(json.dumps(slow))
    capsys.readouterr()
    assert _sim(bundle, tmp_path / "b", "--baseline", str(base), "--max-regression", "2%") == 1
    text = capsys.readouterr().out
    assert "regressions against the baseline" in text and f"| {conv} |" in text
    assert "REGRESSED" in (tmp_path / "b" / "summary.md").read_text()
    # ... but within 6%: passes (also spelled as a fraction)
    assert _sim(bundle, tmp_path / "c", "--baseline", str(base), "--max-regression",
                "0.06") == 0
    # the total alone
    base.write_text(json.dumps(dict(doc, total=doc["total"] * 0.97)))
    assert _sim(bundle, tmp_path / "d", "--baseline", str(base), "--max-regression", "2%") == 1
    # a small record: the absolute slack (MIN_SLACK_CYCLES), not 2%, decides
    gate = next(n for n in doc["layers"] if n.endswith(".gate"))
    now = doc["layers"][gate]
    assert 0.02 * now < MIN_SLACK_CYCLES
    for delta, rc in ((MIN_SLACK_CYCLES - 1, 0), (MIN_SLACK_CYCLES + 1, 1)):
        base.write_text(json.dumps(dict(doc, layers=dict(doc["layers"], **{gate: now - delta}))))
        assert _sim(bundle, tmp_path / "e", "--baseline", str(base), "--max-regression",
                    "2%") == rc, delta


def test_a_slowed_engine_config_fails_the_baseline(bundle, first, tmp_path, capsys):
    """The same model for an engine with half the output lanes (tm 4 -> 2): every conv
    slower; the baseline check fails naming them, with the config change noted."""
    from dgfpga.contract.engine_config import config_from_dict
    from dgfpga_host.bundle import load_bundle, write_bundle
    _, out = first
    b = load_bundle(bundle)
    cfg = config_from_dict(dict(b.cfg.to_dict(), name="small-narrow",
                                tm=b.cfg.tm // 2), source="test")
    slow = write_bundle(tmp_path / "slow", b.qmodel, cfg, None)
    base = str(out / "cycles.json")
    capsys.readouterr()
    assert main(["simulate", "--bundle", str(slow), "--level", "numpy", "--images",
                 "embedded:3", "-o", str(tmp_path / "r"), "--no-progress", "--baseline", base,
                 "--max-regression", "2%"]) == 1
    text = capsys.readouterr().out
    assert "| total |" in text and "| layer1.0.conv1 |" in text and "REGRESSED" in text
    assert "config differs from the baseline: small -> small-narrow" in text
    assert "figure(s) regressed" in text


def test_budget(bundle, first, tmp_path, capsys):
    _, out = first
    total = json.loads((out / "cycles.json").read_text())["total"]
    assert _sim(bundle, tmp_path / "a", "--budget-cycles", str(int(total))) == 0
    assert _sim(bundle, tmp_path / "b", "--budget-cycles", str(int(total) - 1)) == 1
    assert "exceeds the budget" in capsys.readouterr().out
    from junitparser import JUnitXml
    cases = list(next(iter(JUnitXml.fromfile(str(tmp_path / "b" / "junit.xml")))))
    assert cases[-1].name == "cycles vs baseline/budget" and not cases[-1].is_passed


def test_update_baseline(bundle, tmp_path, capsys, monkeypatch):
    base = tmp_path / "base.json"
    assert _sim(bundle, tmp_path / "a", "--update-baseline") == 2
    assert "give --baseline" in capsys.readouterr().err
    assert _sim(bundle, tmp_path / "a", "--baseline", str(base), "--update-baseline") == 0
    assert base.read_bytes() == (tmp_path / "a" / "cycles.json").read_bytes()
    # an accepted slower run is written over the old baseline; a run that is not
    # bit-exact is not
    doc = json.loads(base.read_text())
    base.write_text(json.dumps(dict(doc, total=1.0)))
    assert _sim(bundle, tmp_path / "b", "--baseline", str(base), "--update-baseline") == 0
    assert json.loads(base.read_text())["total"] == doc["total"]
    from dgfpga_host.runner import NetworkRunner
    real = NetworkRunner.run_image

    def wrong(self, image, dense=False):
        r = real(self, image, dense)
        r.logits_int = r.logits_int + 1
        return r

    monkeypatch.setattr(NetworkRunner, "run_image", wrong)
    base.write_text("{}")
    assert _sim(bundle, tmp_path / "c", "--baseline", str(base), "--update-baseline") == 2
    base.unlink()
    assert _sim(bundle, tmp_path / "c", "--baseline", str(base), "--update-baseline") == 1
    assert not base.exists()


def test_trace_is_a_valid_trace_event_file(bundle, first):
    from dgfpga_host.bundle import load_bundle
    import importlib.util
    spec = importlib.util.spec_from_file_location("_t", ROOT / "tests" / "perf" / "test_trace.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    validate = mod.validate
    _, out = first
    doc = json.loads((out / "cycles.json").read_text())
    trace = json.loads((out / "trace.json").read_text())
    validate(trace)
    clock = load_bundle(bundle).cfg.clock_hz
    procs = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert sorted(procs.values()) == sorted(f"image {i['name']}" for i in doc["images"])
    for pid, img in enumerate(doc["images"], start=1):
        recs = [e for e in trace["traceEvents"] if e["pid"] == pid and e["ph"] == "X"
                and "phase" not in e["cat"]]
        assert [(e["name"], e["args"]["cycles"]) for e in recs] == \
            [(r["name"], r["cycles"]) for r in img["records"]]
        end = recs[-1]["ts"] + recs[-1]["dur"]
        assert end == pytest.approx(img["cycles"] / clock * 1e6)
        assert "cycle model" in recs[0]["args"]["source"]


def test_dask_local_cluster_equals_serial(bundle, first, tmp_path):
    pytest.importorskip("dask.distributed")
    _, out = first
    assert _sim(bundle, tmp_path / "d", "--jobs", "2") == 0
    a = json.loads((out / "cycles.json").read_text())
    b = json.loads((tmp_path / "d" / "cycles.json").read_text())
    for d in (a, b):
        d.pop("wall_s"), d.pop("build_s")
    assert a == b


def test_scheduler_address(bundle, first, tmp_path):
    """--scheduler: the jobs go to an existing Dask scheduler (here a 1-worker LocalCluster
    started by the test); same results as serial."""
    pytest.importorskip("dask.distributed")
    import logging
    from dask.distributed import LocalCluster
    _, out = first
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        assert _sim(bundle, tmp_path / "d", "--scheduler", cluster.scheduler_address) == 0
    a = json.loads((out / "cycles.json").read_text())
    b = json.loads((tmp_path / "d" / "cycles.json").read_text())
    for d in (a, b):
        d.pop("wall_s"), d.pop("build_s")
    assert a == b


def test_csim_level_dask_equals_serial(bundle, tmp_path):
    """The HLS C-sim level: bit-exact, and the same cycles serial and on 2 Dask workers
    (the library is compiled once in the calling process, before the jobs go out)."""
    pytest.importorskip("dask.distributed")
    from dgfpga.backends import hls_csim
    try:
        hls_csim.compiler()
        hls_csim.ap_types_dir()
    except hls_csim.CsimError as exc:
        pytest.skip(f"C-sim toolchain missing: {exc}")
    docs = []
    for name, extra in (("s", []), ("d", ["--jobs", "2"])):
        assert main(["simulate", "--bundle", str(bundle), "--level", "csim", "--images",
                     "embedded:2", "-o", str(tmp_path / name), "--no-progress", *extra]) == 0
        d = json.loads((tmp_path / name / "cycles.json").read_text())
        d.pop("wall_s"), d.pop("build_s")
        docs.append(d)
    assert docs[0] == docs[1] and docs[0]["level"] == "csim"
    assert docs[0]["cycles_source"].startswith("C-sim estimate")    # not a counter (no clock)
    assert "C-sim estimate" in (tmp_path / "s" / "summary.md").read_text()
    assert all(i["pass"] and i["records"] for i in docs[0]["images"])


@pytest.mark.parametrize("extra,msg", [
    (["--wave", "w.fst"], "--wave dumps the RTL waveform: only with --level rtl"),
    (["--latency", "4"], "only with --level rtl"),
    (["--max-regression", "2%"], "give --baseline"),
])
def test_usage_errors_before_any_work(bundle, tmp_path, capsys, extra, msg):
    assert _sim(bundle, tmp_path / "o", *extra) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_inputs_are_one_line_errors(bundle, tmp_path, capsys):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((2, 28, 28, 3), np.uint8))
    assert _sim(bundle, tmp_path / "o", "--images", str(npy)) == 2
    err = capsys.readouterr().err
    assert "28" in err and "32" in err and "Traceback" not in err
    assert main(["simulate", "--bundle", str(bundle), "--level", "cocotb", "--images",
                 "embedded:1", "-o", str(tmp_path / "o")]) == 2
    assert "selfcheck" in capsys.readouterr().err
    base = tmp_path / "b.json"
    base.write_text(json.dumps({"format": "dgfpga-cycles", "version": 1, "level": "rtl",
                                "dense": False, "layers": {}, "total": 1}))
    assert _sim(bundle, tmp_path / "o", "--baseline", str(base)) == 2
    assert "recorded with level 'rtl'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _sim(bundle, tmp_path / "o", "--baseline", str(base), "--max-regression", "nan%")
    assert e.value.code == 2
    assert not (tmp_path / "o").exists()


def test_user_images_from_a_folder(bundle, tmp_path):
    """PNG files of the network's input size, named in the report by file name."""
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("b.png", "a.png"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / name)
    assert _sim(bundle, tmp_path / "o", "--images", str(folder)) == 0
    doc = json.loads((tmp_path / "o" / "cycles.json").read_text())
    assert [i["name"] for i in doc["images"]] == ["a.png", "b.png"]


def test_output_checked_before_work_and_kept_on_ctrl_c(bundle, first, tmp_path, monkeypatch,
                                                       capsys):
    """A bad -o is refused before any image runs; Ctrl-C during the run leaves the previous
    report byte for byte (dgfpga.outdir) and no scratch files; an external --trace path is
    written where it says."""
    from dgfpga.workflows import simulate as S
    _, out = first
    assert _sim(bundle, tmp_path / "missing" / "rep") == 2
    assert "does not exist" in capsys.readouterr().err
    ext = tmp_path / "elsewhere" / "t.json"
    ext.parent.mkdir()
    rep = tmp_path / "rep"
    assert _sim(bundle, rep, "--trace", str(ext), "--images", "embedded:1") == 0
    assert ext.is_file() and not (rep / "t.json").exists()
    # a path inside the report folder (as `dgfpga ci init` writes it) goes into the report
    assert _sim(bundle, rep, "--trace", str(rep / "t2.json"), "--images", "embedded:1") == 0
    assert json.loads((rep / "t2.json").read_text())["traceEvents"]
    before = {f.name: f.read_bytes() for f in rep.iterdir()}

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "run_jobs", interrupted)
    assert _sim(bundle, rep) == 130
    assert {f.name: f.read_bytes() for f in rep.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "rep"]


@pytest.mark.verilator
def test_rtl_level_one_image(bundle, tmp_path):
    require_verilator()
    out = tmp_path / "rep"
    assert main(["simulate", "--bundle", str(bundle), "--level", "rtl", "--images",
                 "embedded:1", "-o", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "cycles.json").read_text())
    assert doc["images"][0]["pass"] and doc["sim_cycles_per_s"] > 0
    # the cycle log covers every record; CYCLES (ap_start to ap_done) adds the start's own
    # few cycles (first fetch, done handshake)
    logged = sum(r["cycles"] for r in doc["images"][0]["records"])
    assert 0 <= doc["images"][0]["cycles"] - logged < 1000
    from junitparser import JUnitXml
    case = next(iter(next(iter(JUnitXml.fromfile(str(out / "junit.xml"))))))
    assert case.classname == "dgfpga.simulate.rtl" and case.is_passed


@pytest.mark.verilator
@pytest.mark.slow
def test_rtl_level_8_images_2_jobs(bundle, tmp_path):
    """What issue 18 asks to show: rtl, embedded:8, --jobs 2: bit-exact, JUnit valid."""
    require_verilator()
    from junitparser import JUnitXml
    out = tmp_path / "rep"
    assert main(["simulate", "--bundle", str(bundle), "--level", "rtl", "--images",
                 "embedded:8", "--jobs", "2", "-o", str(out), "--trace", "trace.json"]) == 0
    doc = json.loads((out / "cycles.json").read_text())
    assert len(doc["images"]) == 8 and all(i["pass"] for i in doc["images"])
    cases = list(next(iter(JUnitXml.fromfile(str(out / "junit.xml")))))
    assert len(cases) == 8 and all(c.is_passed for c in cases)


@pytest.mark.verilator
@pytest.mark.slow
def test_rtl_wave_of_the_first_image(bundle, tmp_path):
    """--wave: the FST of the first image lands in the report folder (bare name)."""
    require_verilator()
    out = tmp_path / "rep"
    assert main(["simulate", "--bundle", str(bundle), "--level", "rtl", "--images",
                 "embedded:1", "-o", str(out), "--wave", "w.fst", "--no-progress"]) == 0
    w = out / "w.fst"
    assert w.is_file() and w.stat().st_size > 0 and w.read_bytes()[:1] == b"\x00"


@pytest.mark.verilator
@pytest.mark.slow
def test_cocotb_level_selfcheck_image(bundle, tmp_path):
    """Level cocotb: the runner inside the cocotb RTL simulation, the bundle's first
    self-check image (about 5 minutes)."""
    require_verilator()
    out = tmp_path / "rep"
    assert main(["simulate", "--bundle", str(bundle), "--level", "cocotb", "--images",
                 "selfcheck:1", "-o", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "cycles.json").read_text())
    assert [i["pass"] for i in doc["images"]] == [True] and doc["images"][0]["cycles"] > 0
