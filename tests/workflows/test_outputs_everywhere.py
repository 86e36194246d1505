"""Every `dgfpga` command checks its output before any work and writes it transactionally
(docs/outputs.md, issue 17): a missing parent folder, a parent that is a file, an output
of the wrong kind (a folder for a file, a file for a folder) or a read-only location is
refused with a one-line error before the command's first heavy step (patched here to fail
the test if it is reached); an interrupted or failed write leaves the previous output byte
for byte and no temporary file behind. `dgfpga-host bench -o`: tests/host/test_host_outputs.py.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dgfpga.cli.main import main

torch = pytest.importorskip("torch")
pytest.importorskip("dgfpga_models")

ROOT = Path(__file__).resolve().parents[2]
MEASUREMENTS = ROOT / "sim" / "results" / "cycles_small_resdg20_cifar10.json"


class Worked(Exception):
    """Raised by a patched heavy step: the command started its work."""


def _boom(*a, **kw):
    raise Worked("the command started its work before checking its output")


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """A small trained-format checkpoint (untrained weights; enough for every command)."""
    from dgfpga_models import build_model
    from dgfpga_models.checkpoint import save_checkpoint
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "resdg20_cifar10.pth.tar",
                           build_model("resdg20_cifar10"), target_density=0.5)


@pytest.fixture(scope="module")
def qnpz(ck, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "m.qnpz"
    assert main(["quantize", "--checkpoint", str(ck), "--calib", "embedded:8:train",
                 "-o", str(out)]) == 0
    return out


# command -> (argv without -o, output kind, heavy steps that must not run before the check)
def _commands(ck, qnpz):
    return {
        "demo": (["demo", "--checkpoint", str(ck)], "folder",
                 [("dgfpga.quant.float_model", "load_float_model")]),
        "calibrate": (["calibrate", "--from", str(MEASUREMENTS)], "folder",
                      [("dgfpga.perf.calibration", n) for n in
                       ("load_measurements", "measure", "calibrate")]),
        "predict": (["predict"], "file", [("dgfpga.perf.prediction", "paper_configurations")]),
        "quantize": (["quantize", "--checkpoint", str(ck)], "file",
                     [("dgfpga.quant.float_model", "load_float_model")]),
        "train": (["train", "--dense", "--epochs", "1"], "file",
                  [("dgfpga.data.embedded", "load_split")]),
        "export-onnx": (["export-onnx", "--arch", "resdg20_cifar10"], "file",
                        [("dgfpga_models", "build_model")]),
        "gate-figure": (["gate-figure", "--checkpoint", str(ck)], "file",
                        [("dgfpga.workflows.train", "load_trained")]),
        "evaluate": (["evaluate", "--checkpoint", str(ck)], "file",
                     [("dgfpga.workflows.train", "load_trained")]),
        "flops": (["flops", "--arch", "resdg20_cifar10"], "file",
                  [("dgfpga_models", "build_model")]),
        "qreport": (["qreport", "--checkpoint", str(ck), "--qmodel", str(qnpz)], "file",
                    [("dgfpga.numerics.qmodel", "load_qmodel")]),
        "bench-scheduler": (["bench-scheduler"], "file",
                            [("dgfpga.perf.netshapes", "shape_plan")]),
        "gen": (["gen", "--config", "small"], "folder",
                [("dgfpga.contract.codegen", "outputs")]),
        "build-hls": (["build-hls", "--checkpoint", str(ck)], "folder",
                      [("dgfpga.quant.float_model", "load_float_model")]),
        "synth": (["synth", "--config", "small"], "folder",
                  [("dgfpga.backends.synth", "synthesise")]),
    }


COMMANDS = ["demo", "calibrate", "predict", "quantize", "train", "export-onnx", "gate-figure",
            "evaluate", "flops", "qreport", "bench-scheduler", "gen", "build-hls", "synth"]
BAD = ["missing-parent", "parent-is-a-file", "wrong-kind", "read-only"]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_output_refused_before_work(command, bad, ck, qnpz, tmp_path, monkeypatch, capsys):
    import importlib
    argv, kind, heavy = _commands(ck, qnpz)[command]
    for mod, attr in heavy:
        monkeypatch.setattr(importlib.import_module(mod), attr, _boom)
    if bad == "missing-parent":
        out = tmp_path / "no-such-folder" / "out"
        want = "does not exist"
    elif bad == "parent-is-a-file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "out"
        want = "is not a folder"
    elif bad == "wrong-kind":
        out = tmp_path / "out"
        if kind == "file":
            out.mkdir()
            want = "is a folder"
        else:
            out.write_text("a user's file\n")
            want = "not a folder"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        if os.geteuid() == 0:           # root writes anyway: the file system refuses instead
            _read_only(monkeypatch, ro)
        out = ro / "out"
        want = "cannot write"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = main([*argv, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"dgfpga {command}: error: " in err and str(out) in err and want in err, err
    assert len(err.strip().splitlines()) == 1, err               # one line, no traceback
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created


def _read_only(monkeypatch, folder: Path) -> None:
    """Creating anything in `folder` fails with EROFS (a read-only mount, as root sees it)."""
    import errno
    import tempfile
    real = tempfile.mkdtemp

    def mkdtemp(*a, dir=None, **kw):
        if dir is not None and Path(dir) == folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))
        return real(*a, dir=dir, **kw)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)


# ----------------------------------------------------------------- interrupted writes
def _interrupt_replace(monkeypatch):
    """The final rename of an atomic write is interrupted (Ctrl-C at the worst moment)."""
    import dgfpga.outdir as od

    def ctrl_c(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(od.os, "replace", ctrl_c)


def _leftovers(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob("*") if ".tmp-" in p.name)


JSON_REPORTS = {
    "predict": lambda ck, q: ["predict"],
    "bench-scheduler": lambda ck, q: ["bench-scheduler", "--arch", "resdg20_cifar10",
                                      "--config", "small", "--masks", "2"],
    "flops": lambda ck, q: ["flops", "--arch", "resdg20_cifar10"],
    "evaluate": lambda ck, q: ["evaluate", "--checkpoint", str(ck), "--images",
                               "embedded:8:test"],
    "qreport": lambda ck, q: ["qreport", "--checkpoint", str(ck), "--qmodel", str(q),
                              "--images", "embedded:8:test"],
}


@pytest.mark.parametrize("command", sorted(JSON_REPORTS))
def test_json_report_complete_or_previous(command, ck, qnpz, tmp_path, monkeypatch, capsys):
    out = tmp_path / "figures.json"
    argv = [*JSON_REPORTS[command](ck, qnpz), "-o", str(out)]
    assert main(argv) == 0
    json.loads(out.read_text())                                   # complete, valid JSON
    out.write_text("OLD")
    with monkeypatch.context() as m:
        _interrupt_replace(m)
        rc = main(argv)
    assert rc == 130 and "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert out.read_text() == "OLD"
    assert _leftovers(tmp_path) == []


def test_quantize_interrupted_while_saving(ck, tmp_path, monkeypatch, capsys):
    import dgfpga.numerics.qmodel as qmod
    out = tmp_path / "m.qnpz"
    out.write_bytes(b"OLD")

    def half_then_ctrl_c(qm, path):
        Path(path).write_bytes(b"PK\x03\x04 half a model")
        raise KeyboardInterrupt
    monkeypatch.setattr(qmod, "save_qmodel", half_then_ctrl_c)
    rc = main(["quantize", "--checkpoint", str(ck), "--calib", "embedded:8:train", "-o", str(out)])
    assert rc == 130
    assert out.read_bytes() == b"OLD" and _leftovers(tmp_path) == []


def test_quantize_writes_a_loadable_model(qnpz):
    from dgfpga.numerics.qmodel import load_qmodel
    assert load_qmodel(qnpz).arch == "resdg20_cifar10"
    assert oct(qnpz.stat().st_mode & 0o777) == oct(0o666 & ~_umask())   # not mkstemp's 0600


def _umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


def test_export_onnx_interrupted_or_unverified_keeps_previous(tmp_path, monkeypatch, capsys):
    import dgfpga.workflows.onnx_export as ox
    out = tmp_path / "m.onnx"
    out.write_bytes(b"OLD")
    seen = []

    def fake_export(model, path, opset=17):
        seen.append(Path(path))
        Path(path).write_bytes(b"NEW half-written graph")
        raise KeyboardInterrupt
    monkeypatch.setattr(ox, "export_onnx", fake_export)
    assert main(["export-onnx", "--arch", "resdg20_cifar10", "-o", str(out)]) == 130
    assert out.read_bytes() == b"OLD" and _leftovers(tmp_path) == []
    assert seen[0] != out and seen[0].suffix == ".onnx"           # a temporary sibling

    # an export that fails the onnxruntime check is not put in place either
    class Bad:
        ok, images, max_logit_diff, mask_mismatches, mask_entries = False, 4, 1.0, 3, 10

    def fake_ok_export(model, path, opset=17):
        Path(path).write_bytes(b"NEW graph")
        return ["logits"]
    monkeypatch.setattr(ox, "export_onnx", fake_ok_export)
    monkeypatch.setattr(ox, "verify_onnx", lambda model, path, images: Bad())
    assert main(["export-onnx", "--arch", "resdg20_cifar10", "-o", str(out)]) == 2
    assert "not written" in capsys.readouterr().err
    assert out.read_bytes() == b"OLD" and _leftovers(tmp_path) == []
    # and a verified one is
    monkeypatch.setattr(ox, "verify_onnx", lambda model, path, images: type(
        "Good", (Bad,), {"ok": True, "max_logit_diff": 0.0, "mask_mismatches": 0})())
    assert main(["export-onnx", "--arch", "resdg20_cifar10", "-o", str(out)]) == 0
    assert out.read_bytes() == b"NEW graph"


def test_gate_figure_interrupted_keeps_previous(ck, tmp_path, monkeypatch):
    import dgfpga.workflows.gate_figure as gf
    out = tmp_path / "gates.png"
    out.write_bytes(b"OLD")
    seen = []

    def fake(images, spatial, channel, path, *a, **kw):
        seen.append(Path(path))
        Path(path).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt
    monkeypatch.setattr(gf, "gate_figure", fake)
    rc = main(["gate-figure", "--checkpoint", str(ck), "--images", "embedded:4:test",
               "--count", "1", "-o", str(out)])
    assert rc == 130
    assert out.read_bytes() == b"OLD" and _leftovers(tmp_path) == []
    assert seen[0].suffix == ".png"                  # matplotlib picks the format from it


def test_train_interrupted_while_saving_stays_resumable(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ck.pth.tar"
    argv = ["train", "--dense", "--n-train", "8", "--n-val", "8", "--batch-size", "8",
            "--threads", "1", "--no-progress", "-o", str(out)]
    assert main([*argv, "--epochs", "1"]) == 0
    files = {p: p.read_bytes() for p in (out, Path(f"{out}.last"), Path(f"{out}.resume"))}
    real_save = torch.save

    def half_resume_then_ctrl_c(obj, f, *a, **kw):
        if ".resume" in str(f):                      # the optimizer state of epoch 2
            Path(f).write_bytes(b"PK half a resume file")
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **kw)
    monkeypatch.setattr(torch, "save", half_resume_then_ctrl_c)
    assert main([*argv, "--epochs", "2"]) == 130
    monkeypatch.setattr(torch, "save", real_save)
    assert Path(f"{out}.resume").read_bytes() == files[Path(f"{out}.resume")]
    assert torch.load(f"{out}.resume", weights_only=True)["epoch"] == 1
    assert _leftovers(tmp_path) == []
    capsys.readouterr()
    assert main([*argv, "--epochs", "2"]) == 0                 # resumes at epoch 1
    cap = capsys.readouterr()
    assert "resuming ck.pth.tar at epoch 1" in cap.out + cap.err
    assert torch.load(f"{out}.resume", weights_only=True)["epoch"] == 2


@pytest.mark.slow          # two calibration fits; gen / synth / build interrupts run by default
def test_calibrate_interrupted_keeps_previous_and_user_files(tmp_path, monkeypatch):
    from dgfpga.perf.cycle_model import CycleParams
    out = tmp_path / "cal"
    argv = ["calibrate", "--from", str(MEASUREMENTS), "-o", str(out)]
    assert main(argv) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["calibration_small_resdg20_cifar10.json", "cycle_params_small.json"]
    report = out / written[0]
    report.write_text("OLD")
    (out / "notes.txt").write_text("mine")

    def ctrl_c(self, path):
        raise KeyboardInterrupt
    monkeypatch.setattr(CycleParams, "save", ctrl_c)     # after the report was written
    assert main(argv) == 130
    assert report.read_text() == "OLD" and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted(written + ["notes.txt"])


def test_gen_interrupted_keeps_previous(tmp_path, monkeypatch):
    out = tmp_path / "gen"
    assert main(["gen", "--config", "small", "-o", str(out)]) == 0
    header = next(out.rglob("dg_config.h"))
    header.write_text("OLD")                                     # stale: regenerated
    with monkeypatch.context() as m:
        _interrupt_replace(m)
        assert main(["gen", "--config", "small", "-o", str(out)]) == 130
    assert header.read_text() == "OLD" and _leftovers(tmp_path) == []
    assert main(["gen", "--config", "small", "-o", str(out)]) == 0
    assert header.read_text() != "OLD"


def test_synth_report_complete_or_previous(tmp_path, monkeypatch, capsys):
    import dgfpga.backends.synth as sy

    class Report:                        # Yosys itself is tests/backends/test_synth.py's
        def table(self):
            return "NEW table"

        def as_dict(self):
            return {"new": True}
    monkeypatch.setattr(sy, "synthesise", lambda cfg, **kw: Report())
    out = tmp_path / "synth"
    assert main(["synth", "--config", "small", "-o", str(out)]) == 0
    assert json.loads((out / "report.json").read_text()) == {"new": True}
    (out / "report.txt").write_text("OLD")
    (out / "report.json").write_text("OLD")
    with monkeypatch.context() as m:
        _interrupt_replace(m)
        assert main(["synth", "--config", "small", "-o", str(out)]) == 130
    assert (out / "report.txt").read_text() == "OLD" == (out / "report.json").read_text()
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------- the demo's folder
def test_demo_checks_its_project_folders_before_work(ck, tmp_path, monkeypatch, capsys):
    import dgfpga.quant.float_model as fm
    monkeypatch.setattr(fm, "load_float_model", _boom)
    out = tmp_path / "demo"
    (out / "project_ultra96").mkdir(parents=True)
    (out / "project_ultra96" / "notes.txt").write_text("mine")  # not dgfpga's folder
    assert main(["demo", "--checkpoint", str(ck), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "project_ultra96" in err and "--force" in err, err
    with pytest.raises(Worked):                                  # --force: past the checks
        main(["demo", "--checkpoint", str(ck), "-o", str(out), "--force"])


def test_demo_interrupted_report_keeps_previous(ck, tmp_path, monkeypatch):
    from dgfpga.outdir import output_dir
    from dgfpga.workflows import report as R
    out = tmp_path / "demo"
    out.mkdir()
    with output_dir(out / "report", "demo") as tmp:              # a previous demo's report
        (tmp / "index.html").write_text("OLD")

    def half_then_ctrl_c(self, summary=None):
        (self.out / "index.html").write_text("<html>half")
        raise KeyboardInterrupt
    monkeypatch.setattr(R.Report, "write", half_then_ctrl_c)
    rc = main(["demo", "--checkpoint", str(ck), "-o", str(out), "--images", "embedded:2:test",
               "--calib", "embedded:8:train", "--n-sim", "1"])
    assert rc == 130
    assert (out / "report" / "index.html").read_text() == "OLD"
    assert sorted(p.name for p in (out / "report").iterdir()) == [".dgfpga-output", "index.html"]
    assert _leftovers(out) == []
    for p in ("project_small", "project_ultra96"):               # complete, with the marker
        assert (out / p / ".dgfpga-output").is_file() and (out / p / "bundle").is_dir()
