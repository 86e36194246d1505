"""The board runtime on the numpy device: bundle round trip, runner bit-exact vs golden in
one engine start per image, cache maintenance of exactly what the host writes and reads,
failure paths (timeouts, error status, bad program, wrong bundle) that must never hang."""
import json
import time

import numpy as np
import pytest

from dgfpga.contract import regmap
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError, FormatError
from dgfpga_host.bundle import load_bundle, write_bundle
from dgfpga_host.device import EngineFault, EngineTimeout
from dgfpga_host.runner import NetworkRunner
from dgfpga_host.sim_devices import NumpyDevice


def test_bundle_is_deterministic(test_qmodel, bundle_dir, tmp_path):
    b = load_bundle(bundle_dir)
    again = write_bundle(tmp_path, b.qmodel, b.cfg, b.selfcheck)
    for f in ("manifest.json", "selfcheck.npz"):
        assert (again / f).read_bytes() == (bundle_dir / f).read_bytes(), f


class _CountingDevice(NumpyDevice):
    """Counts engine starts that run a program (the identify run has layer_count 0)."""
    name = "counting"
    starts = 0

    def _launch(self):
        if self.arg("layer_count"):
            self.starts += 1
        super()._launch()


def test_runner_bit_exact_gated_and_dense_in_one_start(bundle_dir):
    from dgfpga.contract.program import RUN_DENSE
    b = load_bundle(bundle_dir)
    dev = _CountingDevice(b.cfg)
    runner = NetworkRunner(b, dev, validate=True)
    sc = b.selfcheck
    names = [r.name for r in b.plan.records]
    for n in range(len(sc.images)):
        before = dev.starts
        r = runner.run_image(sc.images[n])
        assert dev.starts - before == 1 == r.starts and len(r.run_cycles) == 1
        assert dev.arg("run_flags") == 0
        np.testing.assert_array_equal(r.logits_int, sc.logits_int[n])
        for i in range(len(sc.spatial)):
            np.testing.assert_array_equal(r.spatial[i], sc.spatial[i][n])
            np.testing.assert_array_equal(r.channel[i], sc.channel[i][n])
        rd = runner.run_image(sc.images[n], dense=True)
        assert dev.starts - before == 2 and dev.arg("run_flags") == RUN_DENSE
        np.testing.assert_array_equal(rd.logits_int, sc.logits_int_dense[n])
        assert all(s.all() for s in rd.spatial) and all(c.all() for c in rd.channel)
        assert rd.macs >= r.macs and rd.cycles >= r.cycles > 0
        # the cycle log: one entry per record, by record name, summing to CYCLES
        assert list(r.layer_cycles) == names and sum(r.layer_cycles.values()) == r.cycles
        assert r.host_s > 0 and r.cache_s >= 0


def _record(buf, log, name):
    """Record every cache-maintenance range that reaches the buffer (the device level)."""
    real_f, real_i = buf._flush, buf._invalidate

    def flush(off, n):
        log.append(("flush", name, off, n))
        real_f(off, n)

    def invalidate(off, n):
        log.append(("invalidate", name, off, n))
        real_i(off, n)
    buf._flush, buf._invalidate = flush, invalidate


def _bytes(ranges) -> list:
    """The byte offsets covered by [(offset, nbytes)], with repeats (an overlap shows)."""
    return sorted(i for o, n in ranges for i in range(o, o + n))


def test_cache_maintenance_covers_only_what_the_host_writes_and_reads(bundle_dir):
    """Per image: flush exactly the input image's FMAP bytes; invalidate, in ONE call, the
    span of WORK that holds the logits, the cycle log and every block's masks (the packer's
    `readback`: those ranges and only their alignment padding); nothing of SUMS, WEIGHT or
    the rest of FMAP. The byte counts in the result are those of the calls."""
    from dgfpga.contract import program as P
    b = load_bundle(bundle_dir)
    log = []
    runner = NetworkRunner(b, NumpyDevice(b.cfg))
    for name, buf in runner.regions.items():
        _record(buf, log, name)
    plan = b.plan
    ib = plan.fmap[plan.input_tensor]
    want_inv = [(plan.logits.offset, 8 * b.qmodel.num_classes),
                (plan.cycle_log.offset, 4 * plan.record_count)]
    want_inv += [(plan.masks[i].offset, P.mask_bytes(bp.grid[0] * bp.grid[1],
                                                     bp.conv1.template.out_c))
                 for i, bp in enumerate(plan.blocks)]
    need = set(_bytes(want_inv))
    align = b.cfg.axi_bytes
    for dense in (False, True):
        log.clear()
        r = runner.run_image(b.selfcheck.images[0], dense=dense)
        flushed = [(reg, o, n) for op, reg, o, n in log if op == "flush"]
        inval = [(reg, o, n) for op, reg, o, n in log if op == "invalidate"]
        assert flushed == [("fmap", ib.offset, ib.nbytes)]
        assert len(inval) == 1 and inval[0][0] == "work"
        _, o, n = inval[0]
        got = set(range(o, o + n))
        assert need <= got                                   # everything the host reads
        assert len(got) - len(need) < align * len(want_inv)  # plus only alignment padding
        assert r.cache.flushed == ib.nbytes
        assert r.cache.invalidated == n
        assert r.cache.invalidated < plan.region_bytes["work"] // 4


def test_bundle_for_another_config_is_refused(bundle_dir):
    with pytest.raises(ConfigError, match="built for engine 'small'"):
        load_bundle(bundle_dir, cfg_override=load_config("ultra96"))


def test_engine_id_mismatch_is_refused(bundle_dir):
    b = load_bundle(bundle_dir)
    with pytest.raises(ConfigError, match="config hash"):
        NetworkRunner(b, NumpyDevice(load_config("ultra96")))


def test_tampered_bundles(bundle_dir, tmp_path):
    import shutil
    bad = tmp_path / "b"
    shutil.copytree(bundle_dir, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["engine"]["clock_hz"] = 150_000_000
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="hash"):
        load_bundle(bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(FormatError, match="unreadable manifest"):
        load_bundle(bad)
    with pytest.raises(FormatError, match="not a dgfpga bundle"):
        load_bundle(tmp_path / "missing")
    shutil.rmtree(bad)
    shutil.copytree(bundle_dir, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["version"] = 99
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match="bundle version 99"):
        load_bundle(bad)


class _HungDevice(NumpyDevice):
    """Accepts ap_start but never raises ap_done."""
    name = "hung"

    def write_reg(self, offset, value):
        if offset == 0 and value & 1 and self.arg("layer_count"):
            self.regs[0] = 0x1           # started, never done
            return
        super().write_reg(offset, value)


def test_engine_that_never_finishes_times_out(bundle_dir):
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, _HungDevice(b.cfg), timeout_s=0.2)
    t = time.monotonic()
    with pytest.raises(EngineTimeout, match="not done after 0.2 s"):
        runner.run_image(b.selfcheck.images[0])
    assert time.monotonic() - t < 5


class _FaultyDevice(NumpyDevice):
    """Reports an error status on every run."""
    name = "faulty"

    def _run(self, program, n, regions, run_flags=0):
        status, cycles = super()._run(program, n, regions, run_flags)
        return regmap.pack_status(regmap.ERR["TILE_RANGE"], 3, 7), cycles


def test_error_status_is_a_clear_error(bundle_dir):
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, _FaultyDevice(b.cfg))
    with pytest.raises(EngineFault, match="TILE_RANGE .* at layer 3, entry 7 .*gated run"):
        runner.run_image(b.selfcheck.images[0])


def _csim_device(cfg):
    from dgfpga.backends.hls_csim import CsimError
    from dgfpga_host.sim_devices import CsimDevice
    try:
        return CsimDevice(cfg)
    except CsimError as exc:
        pytest.skip(f"C-sim engine cannot be built here: {exc}")


def test_runner_on_csim_device_bit_exact(bundle_dir):
    """The HLS engine in C-simulation, driven by the board runtime, gated and dense, one
    start per image; its cycle log sums to at most its CYCLES. The C-sim has no clock: the
    device's cycles are the C-sim's estimate (the engine's own CYCLES register reads 0)."""
    b = load_bundle(bundle_dir)
    dev = _csim_device(b.cfg)
    assert dev.cycles_kind == "estimate"
    runner = NetworkRunner(b, dev)
    sc = b.selfcheck
    for n in range(min(2, len(sc.images))):
        r = runner.run_image(sc.images[n])
        np.testing.assert_array_equal(r.logits_int, sc.logits_int[n])
        for i in range(len(sc.spatial)):
            np.testing.assert_array_equal(r.spatial[i], sc.spatial[i][n])
            np.testing.assert_array_equal(r.channel[i], sc.channel[i][n])
        rd = runner.run_image(sc.images[n], dense=True)
        np.testing.assert_array_equal(rd.logits_int, sc.logits_int_dense[n])
        assert 0 < r.cycles < rd.cycles and r.starts == rd.starts == 1
        assert 0 < sum(r.layer_cycles.values()) <= r.cycles
        assert dev.last_cycles_register == 0        # the counter difference, clockless


def _corrupt_record(plan, kind):
    """The plan's program with the first record of `kind` given an out-of-range field."""
    from dgfpga.contract.formats import DESCRIPTOR_BYTES
    k = next(i for i, r in enumerate(plan.records) if r.kind == kind)
    prog = bytearray(plan.program)
    words = np.frombuffer(prog, "<u4").copy()
    words[k * DESCRIPTOR_BYTES // 4 + 3] = 0          # gate: st/grid word -> BAD_TILE
    return bytes(words.view(np.uint8)), k


def test_a_malformed_program_is_refused_by_host_check_and_engine(bundle_dir):
    """validate=True checks every record on the host once (FormatError naming it); without
    it the engine refuses the start with a STATUS (EngineFault), nothing run."""
    from dgfpga.errors import FormatError
    b = load_bundle(bundle_dir)
    bad, k = _corrupt_record(b.plan, "gate")
    b.plan.program = bad
    with pytest.raises(FormatError, match=f"program record {k} "):
        NetworkRunner(b, NumpyDevice(b.cfg), validate=True)
    runner = NetworkRunner(b, NumpyDevice(b.cfg))
    with pytest.raises(EngineFault, match=f"at layer {k}"):
        runner.run_image(b.selfcheck.images[0])


def test_host_cpu_is_measured_without_the_wait(bundle_dir):
    """host_s is the thread CPU time of the runner's own work: a wait that burns 0.2 s of
    the caller's CPU (a busy poll) and an engine that takes 0.2 s add nothing to it."""
    import time as _t

    class _Slow(NumpyDevice):
        def _run(self, program, n, regions, run_flags=0):
            _t.sleep(0.2)
            return super()._run(program, n, regions, run_flags)

        def wait(self, timeout_s):
            end = _t.thread_time() + 0.2
            while _t.thread_time() < end:      # CPU burnt in the caller's thread
                pass
            super().wait(timeout_s)
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, _Slow(b.cfg))
    r = runner.run_image(b.selfcheck.images[0])
    assert r.engine_s >= 0.2 and r.total_s >= 0.2
    assert 0 < r.host_s < 0.05


def test_measure_host_cpu_runs_the_runner_on_a_null_engine(bundle_dir):
    from dgfpga_host.runner import measure_host_cpu
    b = load_bundle(bundle_dir)
    t = measure_host_cpu(b.plan, n=5)
    assert 0 < t < 0.05
