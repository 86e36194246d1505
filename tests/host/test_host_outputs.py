"""`dgfpga-host bench -o` is checked before the benchmark runs (its figures are never lost
to a missing folder) and written atomically; Ctrl-C is one line and exit 130, also while
the interpreter shuts down (`entry`, the console script). docs/outputs.md, issue 17."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from dgfpga_host.cli import main

ROOT = Path(__file__).resolve().parents[2]


class Worked(Exception):
    pass


def _boom(*a, **kw):
    raise Worked("the benchmark started before -o was checked")


@pytest.mark.parametrize("bad", ["missing-parent", "parent-is-a-file", "a-folder"])
def test_bad_out_refused_before_the_benchmark(bad, tmp_path, monkeypatch, capsys):
    import dgfpga_host.bundle as bundle
    monkeypatch.setattr(bundle, "load_bundle", _boom)
    if bad == "missing-parent":
        out, want = tmp_path / "no-such-folder" / "bench.json", "does not exist"
    elif bad == "parent-is-a-file":
        (tmp_path / "afile").write_text("x")
        out, want = tmp_path / "afile" / "bench.json", "is not a folder"
    else:
        out, want = tmp_path, "is a folder"
    rc = main(["bench", "--bundle", str(tmp_path), "--device", "numpy", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "dgfpga-host bench: error: " in err and want in err, err
    assert len(err.strip().splitlines()) == 1


def test_out_complete_or_previous(bundle_dir, tmp_path, monkeypatch, capsys):
    import dgfpga.outdir as od
    out = tmp_path / "bench.json"
    argv = ["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--images",
            "selfcheck:1", "--no-progress", "-o", str(out)]
    assert main(argv) == 0
    assert json.loads(out.read_text())["bit_exact"] is True
    out.write_text("OLD")

    def ctrl_c(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(od.os, "replace", ctrl_c)        # Ctrl-C at the final rename
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "dgfpga-host: interrupted (Ctrl-C)"
    assert out.read_text() == "OLD"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]   # no temporary file


def test_ctrl_c_during_the_benchmark_is_one_line(bundle_dir, tmp_path, monkeypatch, capsys):
    from dgfpga_host.runner import NetworkRunner

    def ctrl_c(self, *a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(NetworkRunner, "run_image", ctrl_c)
    out = tmp_path / "bench.json"
    rc = main(["bench", "--bundle", str(bundle_dir), "--device", "numpy", "--no-progress",
               "-o", str(out)])
    assert rc == 130
    assert capsys.readouterr().err == "dgfpga-host: interrupted (Ctrl-C)\n"
    assert not out.exists()


def test_entry_ignores_ctrl_c_at_shutdown(monkeypatch):
    import dgfpga_host.cli as cli
    monkeypatch.setattr(cli, "main", lambda argv=None: 3)
    old = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as e:
            cli.entry()
        assert e.value.code == 3
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_console_script_is_entry():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dgfpga-host"] == "dgfpga_host.cli:entry"
    assert scripts["dgfpga"] == "dgfpga.cli.main:entry"
