"""dgfpga.backends.rtl_sim: numpy-only import, layout, register program, parameters; the fast
harness's binary memory exchange, clean-up, waveforms and the RTL device's counters."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from dgfpga.contract import regmap
from dgfpga.backends import rtl_sim
from dgfpga.contract.engine_config import load_config
from pathlib import Path


def test_imports_without_cocotb_or_torch():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['cocotb'] = None; "
            "import dgfpga.backends.rtl_sim, dgfpga.perf.calibration")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_layout_aligned_and_disjoint():
    import numpy as np
    regions = {"fmap": np.zeros(5000, np.uint8), "weight": np.zeros(10, np.uint8),
               "work": np.zeros(4096, np.uint8), "sums": np.zeros(1, np.uint8)}
    lay = rtl_sim.layout(b"\0" * 96, regions)
    spans = sorted((lay["bases"][r], lay["bases"][r] + regions[r].size) for r in regions)
    assert all(b % 4096 == 0 for b, _ in spans)
    assert all(e <= b2 for (_, e), (b2, _) in zip(spans, spans[1:]))
    assert spans[0][0] >= 96 and lay["size"] >= spans[-1][1]


def test_register_program_uses_regmap():
    pairs = dict(rtl_sim._reg_program({"fmap": 0x1000, "weight": 0x2000, "work": 0x3000,
                                       "sums": 0x1_0000_4000},
                                      {"fmap": 1, "weight": 2, "work": 3, "sums": 4}, 3))
    reg = regmap.BY_NAME
    assert pairs[reg["LAYER_COUNT"].offset] == 3
    assert pairs[reg["SUMS_BASE_HI"].offset] == 1 and pairs[reg["SUMS_BASE_LO"].offset] == 0x4000
    assert pairs[reg["GIE"].offset] == 1 and pairs[reg["IER"].offset] == 1
    assert pairs[reg["RUN_FLAGS"].offset] == 0
    dense = dict(rtl_sim._reg_program({"fmap": 0, "weight": 0, "work": 0, "sums": 0},
                                      {"fmap": 1, "weight": 1, "work": 1, "sums": 1}, 1, run_flags=1))
    assert dense[reg["RUN_FLAGS"].offset] == 1


def test_config_include_is_the_configs_contract(tmp_path, monkeypatch):
    """The RTL is configured only by the include rendered for its config: every EngineConfig
    field as DG_<NAME>, the config hash, one folder per distinct content."""
    import dataclasses
    import re
    monkeypatch.setattr(rtl_sim, "BUILD", tmp_path)
    skew = load_config(Path(__file__).resolve().parent / "configs" / "skew.toml")
    dirs = set()
    for cfg in (load_config("small"), load_config("ultra96"), skew, load_config("ultra96_resnet")):
        d = rtl_sim.config_include(cfg)
        text = (d / rtl_sim.INCLUDE).read_text()
        assert "GENERATED FILE" in text
        vals = dict(re.findall(r"localparam (?:int unsigned|string|bit|logic \[31:0\]) (DG_\w+) = ([^;]+);", text))
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            want = (f'"{v}"' if isinstance(v, str) else f"1'b{int(v)}" if isinstance(v, bool)
                    else str(v))
            assert vals[f"DG_{f.name.upper()}"] == want, f.name
        assert vals["DG_CONFIG_HASH"] == f"32'h{cfg.config_hash:08X}"
        assert rtl_sim.config_include(cfg) == d          # cached, same folder
        dirs.add(d)
    assert len(dirs) == 4


def test_no_parameter_rename_table():
    """Nothing maps config fields to RTL parameter names by hand any more."""
    assert not hasattr(rtl_sim, "rtl_parameters")


def test_fast_run_has_a_wall_clock_limit(tmp_path):
    """A simulation that outlives its wall-clock limit is killed and reported, not waited on."""
    import pytest
    from conftest import require_verilator
    require_verilator()
    from dgfpga.backends import vectors
    sim = rtl_sim.FastSim("small")
    vs = next(vectors.layer_sweep(load_config("small")))
    regions = {r: vs.before[r].copy() for r in vectors.REGIONS}
    with pytest.raises(rtl_sim.RtlSimError, match="wall-clock limit of 0.001 s"):
        sim.run(vs.program, vs.layer_count, regions, wall_timeout_s=0.001)
    run = sim.run(vs.program, vs.layer_count, regions, wall_timeout_s=600)
    assert run.status == vs.expected_status


# ----------------------------------------------------------------------------- binary exchange

def test_exchange_file_layout(tmp_path):
    """The exchange file, parsed independently from the format sim/tb/dg_fast_main.cpp reads:
    header, segment table, dump table, then the load segments' bytes back to back."""
    import struct
    import numpy as np
    a = np.arange(5, dtype=np.uint8)
    b = np.full(3, 0xAB, np.uint8)
    n = rtl_sim.write_exchange(tmp_path / "x.bin", 0x3000, [(0, a, True), (0x2000, b, False)],
                               [(0x2000, 3), (0x1000, 7)])
    raw = (tmp_path / "x.bin").read_bytes()
    assert n == len(raw) == 8 + 16 + 2 * 24 + 2 * 16 + 5 + 3
    assert raw[:8] == b"DGMEMIN1"
    assert struct.unpack_from("<QII", raw, 8) == (0x3000, 2, 2)
    assert struct.unpack_from("<6Q", raw, 24) == (0, 5, 1, 0x2000, 3, 0)
    assert struct.unpack_from("<4Q", raw, 72) == (0x2000, 3, 0x1000, 7)
    assert raw[104:] == a.tobytes() + b.tobytes()


def _small_set():
    from dgfpga.backends import vectors
    return next(vectors.layer_sweep(load_config("small")))


@pytest.fixture(scope="module")
def small_sim():
    from conftest import require_verilator
    require_verilator()
    with rtl_sim.FastSim("small") as sim:
        yield sim


@pytest.mark.verilator
def test_fast_run_exchanges_only_the_start_segments(small_sim):
    """Bit-exact, and what crosses to the harness is the program + the regions in, the
    writable regions out (plus a few hundred bytes of tables, registers and result text),
    not the memory model (1 MB for small)."""
    vs = _small_set()
    rec = rtl_sim.run_fast(vs, sim=small_sim)
    assert rec["pass"], rec
    run = small_sim.run(vs.program, vs.layer_count, vs.before, run_flags=vs.run_flags)
    sizes = {r: int(np.asarray(vs.before[r]).size) for r in rtl_sim.REGIONS}
    payload_in = len(vs.program) + sum(sizes.values())
    payload_out = sizes["fmap"] + sizes["sums"] + sizes["work"]
    assert payload_in <= run.bytes_in <= payload_in + 1024, (run.bytes_in, payload_in)
    assert payload_out <= run.bytes_out <= payload_out + 1024, (run.bytes_out, payload_out)
    assert run.bytes_in + run.bytes_out < small_sim.words * small_sim.cfg.axi_bytes // 8
    assert np.array_equal(run.regions["weight"], vs.before["weight"])
    for r in ("fmap", "sums"):
        assert np.array_equal(run.regions[r], vs.expected[r]), r
    assert run.cycles_per_s > 0


def _hang_script(tmp_path: Path) -> Path:
    """A stand-in simulator that runs for a minute unless killed."""
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(0o755)
    return hang


@pytest.mark.verilator
def test_fast_sim_leaves_no_files(monkeypatch, tmp_path):
    """Every start removes its folder (after a run, a failed run, a timeout, Ctrl-C: the
    simulator process is killed); close() and the context manager remove the simulator's
    folder; a closed FastSim refuses to run; collection removes the folder too."""
    from conftest import require_verilator
    require_verilator()
    vs = _small_set()
    with rtl_sim.FastSim("small") as sim:
        wd = sim.workdir
        assert wd.is_dir() and wd.parent == rtl_sim.RUNS
        sim.run(vs.program, vs.layer_count, vs.before)
        assert list(wd.iterdir()) == []
        with pytest.raises(rtl_sim.RtlSimError, match="wall-clock limit"):
            sim.run(vs.program, vs.layer_count, vs.before, wall_timeout_s=0.001)
        assert list(wd.iterdir()) == []
        started = []

        class Interrupted(subprocess.Popen):
            def communicate(self, *a, **kw):
                started.append(self)
                raise KeyboardInterrupt
        monkeypatch.setattr(rtl_sim.subprocess, "Popen", Interrupted)
        monkeypatch.setattr(sim, "exe", _hang_script(tmp_path))
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            sim.run(vs.program, vs.layer_count, vs.before)
        assert time.monotonic() - t0 < 10, "the simulator was waited for, not killed"
        assert started and started[0].poll() is not None
        assert list(wd.iterdir()) == [] and not sim._procs
        monkeypatch.undo()
        monkeypatch.setattr(sim, "exe", Path("/bin/false"))
        with pytest.raises(rtl_sim.RtlSimError, match="simulation failed"):
            sim.run(vs.program, vs.layer_count, vs.before)
        assert list(wd.iterdir()) == []
    assert not wd.exists()
    with pytest.raises(rtl_sim.RtlSimError, match="closed"):
        sim.run(vs.program, vs.layer_count, vs.before)
    sim2 = rtl_sim.FastSim("small")
    wd2 = sim2.workdir
    del sim2
    import gc
    gc.collect()
    assert not wd2.exists()


def test_stale_run_folders_of_dead_processes_are_removed(tmp_path):
    """Folders of simulator processes that are gone (killed before their clean-up; the old
    harness's run-<pid> once an hour old) are removed; those of a live process, of another
    host sharing the cache, or a fresh old-style one are kept."""
    import os
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    host = rtl_sim._host_tag()
    try:
        def folder(rel: str, age_s: float = 0) -> Path:
            d = tmp_path / rel
            d.mkdir(parents=True)
            (d / "mem.hex").write_text("00\n")
            os.utime(d, (time.time() - age_s,) * 2)
            return d
        gone = [folder(f"runs/fastsim-{dead.pid}-{host}-abc"),
                folder(f"small/fast-0123/run-{dead.pid}", 4000)]
        kept = [folder(f"runs/fastsim-{live.pid}-{host}-abc"),
                folder(f"runs/fastsim-{dead.pid}-{host}x-abc"),          # another host
                folder(f"small/fast-0123/run-{live.pid}", 4000),
                folder(f"small/fast-4567/run-{dead.pid}")]                # fresh
        keep = tmp_path / "small" / "fast-0123" / "Vdg_tb_fast"
        keep.write_text("binary")
        assert rtl_sim.remove_stale_runs(tmp_path) == 2
        assert not any(d.exists() for d in gone)
        assert all(d.exists() for d in kept) and keep.exists()
    finally:
        live.kill()
        live.wait()


@pytest.mark.verilator
def test_close_stops_a_running_start(tmp_path):
    """A start still running in another thread (as a daemon worker abandoned at Ctrl-C or
    exit) is killed by close(), and nothing is left behind."""
    import threading
    from conftest import require_verilator
    require_verilator()
    vs = _small_set()
    sim = rtl_sim.FastSim("small")
    sim.exe = _hang_script(tmp_path)
    errors = []

    def start():
        try:
            sim.run(vs.program, vs.layer_count, vs.before)
        except rtl_sim.RtlSimError as exc:
            errors.append(str(exc))
    t = threading.Thread(target=start, daemon=True)
    t0 = time.monotonic()
    t.start()
    while not sim._procs and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    procs = list(sim._procs)
    assert procs
    sim.close()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 20
    assert all(p.poll() is not None for p in procs) and errors
    assert not sim.workdir.exists()


@pytest.mark.verilator
def test_engine_write_into_read_only_memory_is_an_error(small_sim, monkeypatch):
    """The harness checks the segments it does not read back (program, weights) are
    unchanged: treating FMAP as read-only makes the engine's FMAP writes an error."""
    vs = _small_set()
    monkeypatch.setattr(rtl_sim, "WRITABLE", ("sums", "work"))
    with pytest.raises(rtl_sim.RtlSimError, match="read-only"):
        small_sim.run(vs.program, vs.layer_count, vs.before)


def _fst_header(path: Path) -> tuple:
    """(block type, header length, start time, end time, endian-test double) of an FST
    file: the header block of the FST format (gtkwave fstapi: FST_BL_HDR = 0, length 329,
    FST_DOUBLE_ENDTEST = e)."""
    import struct
    raw = Path(path).read_bytes()[:33]
    return (raw[0], int.from_bytes(raw[1:9], "big"), int.from_bytes(raw[9:17], "big"),
            int.from_bytes(raw[17:25], "big"), struct.unpack("<d", raw[25:33])[0])


@pytest.mark.slow
@pytest.mark.verilator
def test_wave_is_an_fst_of_the_start(small_sim, tmp_path):
    """`wave=`: the traced build writes an FST of the whole start (end time = the simulated
    cycles at 10 time units per clock) and computes the same results as the untraced one."""
    import math
    vs = _small_set()
    plain = small_sim.run(vs.program, vs.layer_count, vs.before)
    wave = tmp_path / "sub" / "start.fst"
    traced = small_sim.run(vs.program, vs.layer_count, vs.before, wave=wave)
    kind, hlen, t0, t1, e = _fst_header(wave)
    assert (kind, hlen, t0) == (0, 329, 0) and math.isclose(e, math.e)
    assert abs(t1 - 10 * traced.sim_cycles) <= 20 and wave.stat().st_size > 1000
    assert (traced.status, traced.cycles) == (plain.status, plain.cycles)
    for r in rtl_sim.REGIONS:
        assert np.array_equal(traced.regions[r], plain.regions[r]), r
    assert list(small_sim.workdir.iterdir()) == []


def _device_starts(dev, vs, n: int) -> list:
    from dgfpga_host.device import EngineDriver
    drv = EngineDriver(dev, timeout_s=600)
    bufs = {}
    for r in rtl_sim.REGIONS:
        bufs[r] = dev.allocate(np.asarray(vs.before[r]).size)
    prog = dev.allocate(len(vs.program))
    prog.array[:len(vs.program)] = np.frombuffer(vs.program, np.uint8)
    drv.set_regions(bufs)
    out = []
    for _ in range(n):
        for r in rtl_sim.REGIONS:
            bufs[r].array[:] = np.asarray(vs.before[r], np.uint8).reshape(-1)
        out.append((drv.run(prog, vs.layer_count, run_flags=vs.run_flags),
                    {r: bufs[r].array.copy() for r in rtl_sim.REGIONS}))
    return out


@pytest.mark.verilator
def test_rtl_device_counts_the_exchange():
    """RtlDevice: last_run is the RtlRun of the last start; bytes_exchanged, sim_cycles and
    sim_wall_s add up over the starts; results are the vector's; close removes the folder."""
    from conftest import require_verilator
    require_verilator()
    from dgfpga_host.sim_devices import RtlDevice
    vs = _small_set()
    dev = RtlDevice(load_config("small"))
    assert dev.last_run is None and dev.bytes_exchanged == 0
    starts = _device_starts(dev, vs, 2)
    for info, mem in starts:
        assert info.status == vs.expected_status
        assert np.array_equal(mem["fmap"], vs.expected["fmap"])
    run = dev.last_run
    assert isinstance(run, rtl_sim.RtlRun) and run.cycles == starts[-1][0].cycles
    assert dev.bytes_exchanged == 2 * (run.bytes_in + run.bytes_out) > 0
    assert dev.sim_cycles == 2 * run.sim_cycles
    wd = dev._sim.workdir
    dev.close()
    assert not wd.exists()


@pytest.mark.slow
@pytest.mark.verilator
def test_rtl_device_wave_first_start_only(tmp_path):
    from conftest import require_verilator
    require_verilator()
    from dgfpga_host.sim_devices import RtlDevice
    vs = _small_set()
    wave = tmp_path / "first.fst"
    dev = RtlDevice(load_config("small"), wave=wave)
    (first, _), = _device_starts(dev, vs, 1)
    assert _fst_header(wave)[:2] == (0, 329)
    wave.unlink()
    (second, _), = _device_starts(dev, vs, 1)
    assert not wave.exists() and second.cycles == first.cycles
    dev.close()
