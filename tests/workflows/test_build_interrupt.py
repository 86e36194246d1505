"""Ctrl-C campaign: `dgfpga build-hls` rebuilding an existing good output is sent SIGINT at
seeded random moments. Every time, the folder must be byte for byte either the previous
output or the new one complete (never a mix, never missing), nothing may be left next to
it, and stderr must be one line, not a traceback.

Two output variants (2 or 3 self-check images) are built once as references; each trial
rebuilds the other variant into the folder. The signal goes out uniformly between 0.6 s
(after Python's own start-up, ~0.1 s, where no program can catch SIGINT) and 1.1x the time
a full build takes, so some trials finish first (then the folder must be the new output). A signal that
lands while Python is exiting after a finished build kills it silently (exit -2, the
interpreter restores the default handler at shutdown): allowed only with the new output
complete and nothing on stderr.
The default suite runs 3 trials; `-m slow` runs 20.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHECKPOINT = "resdg20_cifar10_d50.pth.tar"


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _command(ckpt: Path, n_images: int, out: Path) -> list:
    exe = Path(sys.executable).with_name("dgfpga")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "dgfpga.cli.main"]
    return head + ["build-hls", "--checkpoint", str(ckpt), "--config", "small",
                   "--calib", "embedded:8", "--images", f"embedded:{n_images}", "-o", str(out)]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    pytest.importorskip("torch")
    ckpt = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / CHECKPOINT
    if not ckpt.is_file():
        pytest.skip(f"shipped checkpoint {CHECKPOINT} not present")
    d = tmp_path_factory.mktemp("refs")
    refs, took = {}, []
    for n in (2, 3):
        t0 = time.monotonic()
        r = subprocess.run(_command(ckpt, n, d / f"v{n}"), capture_output=True, text=True,
                           env=_env(), timeout=600)
        took.append(time.monotonic() - t0)
        assert r.returncode == 0, r.stderr
        refs[n] = _tree(d / f"v{n}")
    assert refs[2] != refs[3]
    return ckpt, d, refs, max(took)


def campaign(references, work: Path, trials: int, seed: int) -> list:
    ckpt, ref_dir, refs, full = references
    rng = random.Random(seed)
    out = work / "out"
    shutil.copytree(ref_dir / "v2", out)
    current = 2
    results = []
    for t in range(trials):
        new = 5 - current                              # 2 <-> 3
        delay = rng.uniform(0.6, max(1.0, 1.1 * full))
        p = subprocess.Popen(_command(ckpt, new, out), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=_env())
        time.sleep(delay)
        sent = p.poll() is None
        if sent:
            p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"trial {t}: build-hls did not stop within 600 s after SIGINT")
        state = _tree(out)
        which = "new" if state == refs[new] else "previous" if state == refs[current] else "MIX"
        results.append(dict(trial=t, delay=round(delay, 2), signalled=sent, rc=p.returncode,
                            result=which))
        assert "Traceback" not in err, f"trial {t} ({delay:.2f} s): traceback\n{err}"
        # -SIGINT: the signal came while Python was exiting after a finished command (the
        # interpreter restores the default handler at shutdown): allowed only then
        finished = p.returncode == -signal.SIGINT and which == "new" and not err.strip()
        assert p.returncode in (0, 130) or finished, \
            f"trial {t} ({delay:.2f} s of {full:.1f}, {which}): exit {p.returncode}\n{err}"
        if p.returncode == 130:
            assert err.strip().splitlines()[-1] == "dgfpga: interrupted (Ctrl-C)", err
            assert err.count("interrupted") == 1, err
        assert which != "MIX", (f"trial {t} ({delay:.2f} s, exit {p.returncode}): the folder is "
                                "neither the previous output nor the new one")
        if p.returncode in (0, -signal.SIGINT):
            assert which == "new", f"trial {t}: exit 0 but the folder is not the new output"
        assert sorted(x.name for x in work.iterdir()) == ["out"], \
            f"trial {t}: left next to the output: {sorted(x.name for x in work.iterdir())}"
        if which == "new":
            current = new
    return results


def _report(results):
    print()
    for r in results:
        print(f"  trial {r['trial']:2d}: SIGINT at {r['delay']:6.2f} s "
              f"{'sent' if r['signalled'] else 'not sent (finished)':20s} exit {r['rc']:3d} "
              f"-> {r['result']}")
    kept = sum(r["result"] == "previous" for r in results)
    print(f"  {len(results)} trials: {kept} kept the previous output, "
          f"{len(results) - kept} produced the new one complete, 0 mixed")


def test_sigint_campaign_quick(references, tmp_path):
    _report(campaign(references, tmp_path, trials=3, seed=17))


@pytest.mark.slow
def test_sigint_campaign_20(references, tmp_path):
    results = campaign(references, tmp_path, trials=20, seed=2026)
    _report(results)
    assert any(r["result"] == "previous" for r in results)   # some interrupts did land


def test_cli_refuses_unsafe_outputs_before_any_work(tmp_path, capsys):
    """Checked before the checkpoint is even read (a missing checkpoint would be the error
    otherwise): foreign folder, missing parent, a file, an edited dgfpga file."""
    pytest.importorskip("torch")
    from dgfpga.cli.main import main
    from dgfpga.outdir import output_dir
    base = ["build-hls", "--checkpoint", str(tmp_path / "no-such.pth.tar"), "--config", "small"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README.md").write_text("mine")
    (tmp_path / "afile").write_text("x")
    ours = tmp_path / "ours"
    with output_dir(ours, "build-hls") as tmp:
        (tmp / "src").mkdir()
        (tmp / "src" / "dg_engine.cpp").write_text("generated")
    (ours / "src" / "dg_engine.cpp").write_text("edited by hand")
    for out, msg in [(foreign, "not written by dgfpga .*--force"),
                     (tmp_path / "missing" / "out", "does not exist"),
                     (tmp_path / "afile", "not a folder"),
                     (ours, r"src/dg_engine\.cpp changed since dgfpga wrote it")]:
        for force in ([], ["--force"]) if out == ours else ([],):
            assert main(base + ["-o", str(out)] + force) == 2
            err = capsys.readouterr().err
            assert err.startswith("dgfpga build-hls: error: ") and len(err.splitlines()) == 1
            assert re.search(msg, err), err
    assert (foreign / "README.md").read_text() == "mine"
    assert (ours / "src" / "dg_engine.cpp").read_text() == "edited by hand"
