"""dev.py, the bootstrap behind the README's two commands: the options its test job adds
(pytest-xdist on every core) and when it adds none."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def dev(monkeypatch):
    spec = importlib.util.spec_from_file_location("dgfpga_dev_bootstrap", ROOT / "dev.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.delenv("DGFPGA_TEST_WORKERS", raising=False)
    return mod


def test_workers_one_per_core_at_most_eight(dev, monkeypatch):
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 2)
    assert dev._workers([]) == ["-n", "2", "--dist", "worksteal"]
    assert dev._workers(["-m", "slow", "tests/backends"]) == ["-n", "2", "--dist", "worksteal"]
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 64)
    assert dev._workers([]) == ["-n", "8", "--dist", "worksteal"]
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 1)
    assert dev._workers([]) == []                 # one core: no workers to start


def test_workers_leave_the_users_choice_alone(dev, monkeypatch):
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 4)
    for args in (["-n", "1"], ["-n3"], ["--numprocesses=2"], ["--dist", "load"],
                 ["-p", "no:xdist"], ["tests/test_paths.py::test_build_lock_waits_for_the_holder"]):
        assert dev._workers(args) == [], args
    monkeypatch.setenv("DGFPGA_TEST_WORKERS", "1")
    assert dev._workers([]) == []
    monkeypatch.setenv("DGFPGA_TEST_WORKERS", "3")
    assert dev._workers([]) == ["-n", "3", "--dist", "worksteal"]
