"""dgfpga.paths: the cache folders and the inter-process build lock that lets parallel test
workers (python3 dev.py test runs pytest -n <cores>) and parallel jobs share one build."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dgfpga import paths

filelock = pytest.importorskip("filelock", reason="the build lock needs filelock (extra 'sim')")

HOLD = """
import sys, time
from dgfpga import paths
with paths.build_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(target, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DGFPGA_CACHE", str(tmp_path / "c"))
    d = paths.cache_dir("rtl", "x")
    assert d == tmp_path / "c" / "rtl" / "x" and d.is_dir()


def test_build_lock_excludes_another_process(tmp_path):
    target = tmp_path / "builds" / "cocotb-0123"
    proc = _holder(target, 30)
    try:
        with pytest.raises(filelock.Timeout):
            paths.build_lock(target).acquire(timeout=0.5)
        # another folder's lock is independent
        with paths.build_lock(tmp_path / "builds" / "cocotb-4567").acquire(timeout=0.5):
            pass
    finally:
        proc.kill()
        proc.wait()
    # the holder was killed in the middle of its "build": no stale lock is left behind
    t0 = time.monotonic()
    with paths.build_lock(target).acquire(timeout=10):
        assert time.monotonic() - t0 < 10
    assert not target.exists()            # the lock file sits beside the folder, not in it


def test_build_lock_waits_for_the_holder(tmp_path):
    target = tmp_path / "fast-abc"
    proc = _holder(target, 1.0)
    t0 = time.monotonic()
    with paths.build_lock(target).acquire(timeout=30):
        waited = time.monotonic() - t0
    proc.wait()
    assert proc.returncode == 0 and waited > 0.3
