"""The board runtime on the numpy device: bundle round trip, runner bit-exact vs golden,
failure paths (timeouts, error status, wrong bundle) that must never hang."""
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


def test_runner_bit_exact_gated_and_dense(bundle_dir):
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, NumpyDevice(b.cfg), validate=True)
    sc = b.selfcheck
    for n in range(len(sc.images)):
        r = runner.run_image(sc.images[n])
        np.testing.assert_array_equal(r.logits_int, sc.logits_int[n])
        for i in range(len(sc.spatial)):
            np.testing.assert_array_equal(r.spatial[i], sc.spatial[i][n])
            np.testing.assert_array_equal(r.channel[i], sc.channel[i][n])
        rd = runner.run_image(sc.images[n], dense=True)
        np.testing.assert_array_equal(rd.logits_int, sc.logits_int_dense[n])
        assert rd.macs >= r.macs and rd.cycles >= r.cycles > 0


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
    """Reports an error status on every run after the stem."""
    name = "faulty"

    def _run(self, program, n, regions):
        status, cycles = super()._run(program, n, regions)
        self.runs = getattr(self, "runs", 0) + 1
        if self.runs > 1:
            return regmap.pack_status(regmap.ERR["TILE_RANGE"], 0, 3), cycles
        return status, cycles


def test_error_status_is_a_clear_error(bundle_dir):
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, _FaultyDevice(b.cfg))
    with pytest.raises(EngineFault, match="TILE_RANGE .* at layer 0, entry 3"):
        runner.run_image(b.selfcheck.images[0])


def _csim_device(cfg):
    from dgfpga.backends.hls_csim import CsimError
    from dgfpga_host.sim_devices import CsimDevice
    try:
        return CsimDevice(cfg)
    except CsimError as exc:
        pytest.skip(f"C-sim engine cannot be built here: {exc}")


def test_runner_on_csim_device_bit_exact(bundle_dir):
    """The HLS engine in C-simulation, driven by the board runtime, gated and dense."""
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, _csim_device(b.cfg))
    sc = b.selfcheck
    for n in range(len(sc.images)):
        r = runner.run_image(sc.images[n])
        np.testing.assert_array_equal(r.logits_int, sc.logits_int[n])
        rd = runner.run_image(sc.images[n], dense=True)
        np.testing.assert_array_equal(rd.logits_int, sc.logits_int_dense[n])
        assert 0 < r.cycles < rd.cycles


def _buggy_writer(real):
    """A work-list writer that puts a residual-only tile index equal to the tile count."""
    def encode(d, slots, tiles, res_tiles=None, out_channels=None, in_channels=None):
        fields, writes = real(d, slots, tiles, res_tiles, out_channels, in_channels)
        if res_tiles is not None and len(res_tiles):
            bad = np.asarray(res_tiles, "<u2").copy()
            bad[-1] = d.n_tiles
            writes = [(o, bad.view(np.uint8)) if o == slots.res_tiles else (o, w)
                      for o, w in writes]
        return fields, writes
    return encode


def test_host_check_rejects_residual_only_index_equal_to_count(bundle_dir, monkeypatch):
    """validate=True (the host check, formats.read_work_list) refuses the run before the
    engine starts; without it the engine itself reports TILE_RANGE."""
    from dgfpga.contract import formats
    b = load_bundle(bundle_dir)
    monkeypatch.setattr(formats, "encode_work_list", _buggy_writer(formats.encode_work_list))
    runner = NetworkRunner(b, NumpyDevice(b.cfg), validate=True)
    ds = [i for i, bp in enumerate(b.plan.blocks) if bp.downsample is not None]
    # every tile off in a downsample block: its conv2 lists all tiles as residual-only
    with pytest.raises(FormatError, match=r"residual-only tile list\[\d+\] = \d+ out of range"):
        runner.scheduler.block(ds[0], np.zeros(b.plan.blocks[ds[0]].grid, bool), None)
    runner = NetworkRunner(b, NumpyDevice(b.cfg), validate=False)
    run = runner.scheduler.block(ds[0], np.zeros(b.plan.blocks[ds[0]].grid, bool), None)
    with pytest.raises(EngineFault, match="TILE_RANGE"):
        runner._start(run, "tampered block")
