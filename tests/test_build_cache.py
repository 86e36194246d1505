"""dgfpga.build_cache: the build cache's size bound, least recently used first, that never
deletes a build a live process uses or builds; the builders mark what they use."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgfpga import build_cache as bc
from dgfpga import paths
from dgfpga.errors import DgfpgaError

USE = """
import sys, time
from dgfpga import build_cache
build_cache.use(sys.argv[1])
print("using", flush=True)
time.sleep(60)
"""


def _entry(root: Path, rel: str, nbytes: int, t: float) -> Path:
    d = root / rel
    d.mkdir(parents=True)
    (d / "blob").write_bytes(b"x" * nbytes)
    os.utime(d, (t, t))
    return d


@pytest.fixture
def cache(tmp_path):
    """A cache with entries of hand-picked sizes and last-use times (seconds)."""
    root = tmp_path / "cache"
    _entry(root, "rtl/small/fast-aaaa", 1000, 100.0)
    _entry(root, "rtl/unit/dg_loader-small-default-bbbb", 2000, 200.0)
    _entry(root, "hls_csim/small-0001", 500, 300.0)
    _entry(root, "synth/k1", 10, 50.0)
    (root / "rtl" / "runs" / "fastsim-1-h-x").mkdir(parents=True)      # not an entry
    (root / "cluttered_digits_v1_test_n2_seed0.npz").write_bytes(b"d")  # not an entry
    return root


def _user(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", USE, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "using"
    return proc


def test_entries_are_the_build_folders(cache):
    got = {e.name: (e.area, e.bytes, e.last_used) for e in bc.entries(cache)}
    assert got == {"rtl/small/fast-aaaa": ("rtl", 1000, 100.0),
                   "rtl/unit/dg_loader-small-default-bbbb": ("rtl", 2000, 200.0),
                   "hls_csim/small-0001": ("hls_csim", 500, 300.0),
                   "synth/k1": ("synth", 10, 50.0)}


def test_prune_to_a_bound_least_recently_used_first(cache):
    # 3510 bytes; within 2600 after the oldest (synth 10, then fast 1000): 2500 left
    r = bc.prune(cache, max_bytes=2600)
    assert [e.name for e in r.removed] == ["synth/k1", "rtl/small/fast-aaaa"]
    assert (r.bytes_before, r.bytes_after) == (3510, 2500)
    assert not (cache / "rtl/small/fast-aaaa").exists()
    assert (cache / "rtl/unit/dg_loader-small-default-bbbb/blob").stat().st_size == 2000
    assert (cache / "rtl/runs").is_dir() and (cache / "cluttered_digits_v1_test_n2_seed0.npz").exists()


def test_prune_by_age_and_dry_run(cache):
    r = bc.prune(cache, older_than_s=1000.0, dry_run=True, areas=["rtl"])
    # every rtl entry is older than 1000 s (times are from 1970): listed, none deleted
    assert sorted(e.name for e in r.removed) == ["rtl/small/fast-aaaa",
                                                 "rtl/unit/dg_loader-small-default-bbbb"]
    assert (cache / "rtl/small/fast-aaaa").is_dir() and r.bytes_after == 3000 - 3000
    fresh = _entry(cache, "rtl/small/fast-new", 7, 4e9)      # used "in the future": young
    r = bc.prune(cache, older_than_s=1000.0, areas=["rtl"])
    assert fresh.is_dir() and not (cache / "rtl/small/fast-aaaa").exists()


def test_a_folder_in_use_by_another_process_is_never_deleted(cache):
    used = cache / "rtl/small/fast-aaaa"
    proc = _user(used)
    os.utime(cache / "rtl/small/.fast-aaaa.use", (100.0, 100.0))  # in use since long ago
    try:
        # under a bound the next ones in LRU order go instead: 3510 bytes to 2600, synth
        # (10) goes, fast-aaaa (1000) is in use and stays, so bbbb (2000) must go too
        r = bc.prune(cache, max_bytes=2600)
        assert [e.name for e in r.removed] == ["synth/k1", "rtl/unit/dg_loader-small-default-bbbb"]
        assert [e.name for e in r.kept_in_use] == ["rtl/small/fast-aaaa"]
        assert r.bytes_after == 1500 and (cache / "hls_csim/small-0001").is_dir()
        r = bc.prune(cache, everything=True)
        assert [e.name for e in r.kept_in_use] == ["rtl/small/fast-aaaa"]
        assert (used / "blob").is_file() and not (cache / "hls_csim/small-0001").exists()
    finally:
        proc.kill()
        proc.wait()
    r = bc.prune(cache, everything=True)                      # its process is gone: free
    assert [e.name for e in r.removed] == ["rtl/small/fast-aaaa"]


def test_a_build_in_progress_is_never_deleted(cache):
    """The build lock of a folder, and a build renamed into place when complete (the
    `.building-` folder belongs to its final name), keep it."""
    pytest.importorskip("filelock", reason="build locks need filelock (extra 'sim')")
    tmp_build = _entry(cache, "rtl/small/fast-cccc.building-x1y2", 5, 10.0)
    lock = paths.build_lock(cache / "rtl/small/fast-cccc")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom dgfpga import paths\n"
         "with paths.build_lock(sys.argv[1]):\n    print('held', flush=True)\n"
         "    time.sleep(60)\n", str(cache / "rtl/small/fast-cccc")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = bc.prune(cache, everything=True, areas=["rtl"])
        assert [e.name for e in r.kept_in_use] == ["rtl/small/fast-cccc.building-x1y2"]
        assert tmp_build.is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert lock is not None
    assert [e.name for e in bc.prune(cache, everything=True, areas=["rtl"]).removed] == \
        ["rtl/small/fast-cccc.building-x1y2"]


def test_this_process_keeps_what_it_uses(cache):
    old = cache / "hls_csim/.small-0001.use"           # marked in use long ago
    old.write_text("")
    os.utime(old, (100.0, 100.0))
    bc.use(cache / "hls_csim/small-0001")
    try:
        # used now: its last use is now, no longer its folder's time (300 s after 1970)
        used = {e.name: e.last_used for e in bc.entries(cache)}
        assert used["hls_csim/small-0001"] > time.time() - 600 and used["synth/k1"] == 50.0
        r = bc.prune(cache, everything=True, areas=["hls_csim"])
        assert r.removed == [] and (cache / "hls_csim/small-0001").is_dir()
    finally:
        os.close(bc._held.pop(str(cache / "hls_csim/.small-0001.use")))


def test_the_automatic_bound(cache, monkeypatch):
    monkeypatch.setenv(bc.MAX_ENV, "0")
    assert bc.enforce_limit(cache) is None and len(bc.entries(cache)) == 4
    monkeypatch.setenv(bc.MAX_ENV, str(2600 / 1e9))
    r = bc.enforce_limit(cache)
    # the builds (rtl, hls_csim: 3500 bytes) within 2600: the oldest build goes; synth stays
    assert [e.name for e in r.removed] == ["rtl/small/fast-aaaa"]
    assert (cache / "synth/k1").is_dir()
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv(bc.MAX_ENV, bad)
        with pytest.raises(DgfpgaError, match=bc.MAX_ENV):
            bc.max_bytes_setting()
    monkeypatch.delenv(bc.MAX_ENV)
    assert bc.max_bytes_setting() == int(bc.DEFAULT_MAX_GB * 1e9)


def test_builders_mark_the_folders_they_use(tmp_path, monkeypatch):
    """Each builder marks its folder before it looks for a build (a prune meanwhile then
    waits or is refused), also when it finds the build made."""
    from dgfpga.backends import hls_csim, rtl_sim
    from dgfpga.contract.engine_config import load_config
    cfg = load_config("small")
    used = []
    monkeypatch.setattr(bc, "use", lambda d: used.append(Path(d)) or Path(d))
    monkeypatch.setattr(bc, "enforce_limit", lambda root=None: None)
    monkeypatch.setattr(rtl_sim, "BUILD", tmp_path / "rtl")
    monkeypatch.setattr(rtl_sim, "_digest", lambda srcs, extra: "d1g35t")
    (tmp_path / "rtl/small/cocotb-d1g35t").mkdir(parents=True)
    (tmp_path / "rtl/small/cocotb-d1g35t/.built").write_text("ok\n")
    assert rtl_sim.build_cocotb(cfg) == tmp_path / "rtl/small/cocotb-d1g35t"
    assert used[-1] == tmp_path / "rtl/small/cocotb-d1g35t"
    assert used[0].name.startswith("include-")                 # the config include too
    fast = tmp_path / "rtl/small/fast-d1g35t"
    fast.mkdir()
    (fast / "Vdg_tb_fast").write_text("")
    assert rtl_sim.build_fast(cfg) == fast / "Vdg_tb_fast" and used[-1] == fast
    out = hls_csim.build_dir(cfg, tmp_path / "hls")
    monkeypatch.setattr(hls_csim, "compiler", lambda: "c++")
    monkeypatch.setattr(hls_csim, "ap_types_dir", lambda: tmp_path)
    monkeypatch.setattr(hls_csim, "_build_locked", lambda *a: a[8])
    pytest.importorskip("filelock", reason="build locks need filelock (extra 'sim')")
    hls_csim.build(cfg, "lib", tmp_path / "hls")
    assert used[-1] == out


def test_cli_info_and_prune(cache, monkeypatch, capsys):
    from dgfpga.cli.main import main
    monkeypatch.setenv("DGFPGA_CACHE", str(cache))
    monkeypatch.setenv(bc.MAX_ENV, "5")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"build cache: {cache}" in out and "5.00 GB" in out
    assert re.search(r"^rtl +2 +3.00 kB$", out, re.M) and re.search(r"^total +4 +3.51 kB$", out, re.M)
    assert main(["cache", "prune", "--all", "--dry-run", "--area", "synth"]) == 0
    out = capsys.readouterr().out
    assert "would delete: synth/k1" in out and (cache / "synth/k1").is_dir()
    assert main(["cache", "prune", "--max-gb", "0"]) == 0
    assert bc.entries(cache) == []
    assert main(["cache", "prune"]) == 2
    assert "--max-gb GB, --older-than DAYS or --all" in capsys.readouterr().err
