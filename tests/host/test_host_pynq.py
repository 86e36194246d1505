"""The board device against a stand-in for the pynq objects it uses.

Stand-ins: `pynq.Overlay` (ip_dict + attribute access to the IP), `pynq.allocate`
(an ndarray with physical_address, flush, invalidate, freebuffer), `pynq.DefaultIP`
(base class with write/read). The stand-in IP forwards register access to the numpy
engine model, so the whole runner runs through the PYNQ code path.
"""
import types

import numpy as np
import pytest

from dgfpga.contract.regmap import ENGINE_VLNV
from dgfpga_host.bundle import load_bundle
from dgfpga_host.device import DeviceError, EngineTimeout
from dgfpga_host.pynq_device import PynqDevice
from dgfpga_host.runner import NetworkRunner
from dgfpga_host.sim_devices import NumpyDevice


class _Buf(np.ndarray):
    """As pynq's PynqBuffer: a slice is a buffer of that byte range (it keeps the parent's
    bookkeeping); flush/invalidate act on (and here record) exactly the slice's bytes."""

    def __array_finalize__(self, obj):
        self.log = getattr(obj, "log", None)
        self.addr0 = getattr(obj, "addr0", None)

    def _record(self, op):
        self.log.append((op, self.__array_interface__["data"][0] - self.addr0, self.nbytes))

    def flush(self):
        self._record("flush")

    def invalidate(self):
        self._record("invalidate")

    def freebuffer(self):
        pass


def fake_pynq(engine: NumpyDevice, hang: bool = False):
    mod = types.ModuleType("pynq")
    calls = {"overlay": None}

    class DefaultIP:
        def __init__(self, description):
            self.description = description

        def write(self, offset, value):
            if hang and offset == 0 and value & 1 and engine.arg("layer_count"):
                engine.regs[0] = 1     # started, never done
                return
            engine.write_reg(offset, value)

        def read(self, offset):
            return engine.read_reg(offset)

    class Overlay:
        def __init__(self, path):
            calls["overlay"] = path
            self.ip_dict = {"dg_engine_0": {"type": ENGINE_VLNV}, "zynq_ultra_ps_e_0": {"type": "x"}}
            drivers = [c for c in DefaultIP.__subclasses__() if ENGINE_VLNV in c.bindto]
            assert drivers, "the dgfpga driver did not bind to the engine VLNV"
            self.dg_engine_0 = drivers[-1]({"type": ENGINE_VLNV})

    def allocate(shape, dtype):
        dev_buf = engine.allocate(int(np.prod(shape)))
        b = dev_buf.array.view(_Buf)
        b.physical_address = dev_buf.physical_address
        b.log, b.addr0 = [], b.__array_interface__["data"][0]
        return b

    mod.DefaultIP, mod.Overlay, mod.allocate, mod.calls = DefaultIP, Overlay, allocate, calls
    return mod


@pytest.fixture
def bitfile(tmp_path):
    (tmp_path / "dgfpga.bit").write_bytes(b"bit")
    (tmp_path / "dgfpga.hwh").write_text("<hwh/>")
    return tmp_path / "dgfpga.bit"


def test_board_device_runs_bit_exact(bundle_dir, bitfile):
    b = load_bundle(bundle_dir)
    pynq = fake_pynq(NumpyDevice(b.cfg))
    dev = PynqDevice(str(bitfile), pynq_module=pynq)
    runner = NetworkRunner(b, dev)
    r = runner.run_image(b.selfcheck.images[0])
    np.testing.assert_array_equal(r.logits_int, b.selfcheck.logits_int[0])
    assert pynq.calls["overlay"] == str(bitfile)
    # once at construction: every region flushed whole; per image: the input's bytes
    # flushed, the logits / cycle log / masks invalidated, nothing else
    regions = {k: v._buf.log for k, v in runner.regions.items()}
    for name, log in regions.items():
        assert log[0] == ("flush", 0, runner.regions[name].nbytes)
    ib = b.plan.fmap[b.plan.input_tensor]
    assert regions["fmap"][1:] == [("flush", ib.offset, ib.nbytes)]
    assert regions["sums"][1:] == regions["weight"][1:] == []
    inv = regions["work"][1:]
    assert {op for op, _, _ in inv} == {"invalidate"}
    lo = b.plan.logits.offset
    assert any(o <= lo and lo + 8 * b.qmodel.num_classes <= o + n for _, o, n in inv)
    assert sum(n for _, _, n in inv) == r.cache.invalidated
    dev.close()


def test_board_device_timeout(bundle_dir, bitfile):
    b = load_bundle(bundle_dir)
    dev = PynqDevice(str(bitfile), pynq_module=fake_pynq(NumpyDevice(b.cfg), hang=True))
    runner = NetworkRunner(b, dev, timeout_s=0.1)
    with pytest.raises(EngineTimeout, match="reload the overlay"):
        runner.run_image(b.selfcheck.images[0])


def test_missing_bitstream_and_hwh(tmp_path):
    with pytest.raises(DeviceError, match="not found"):
        PynqDevice(str(tmp_path / "nothing.bit"), pynq_module=types.ModuleType("pynq"))
    (tmp_path / "a.bit").write_bytes(b"x")
    with pytest.raises(DeviceError, match="hwh"):
        PynqDevice(str(tmp_path / "a.bit"), pynq_module=types.ModuleType("pynq"))


def test_without_pynq_installed_is_a_clear_error(bitfile):
    import importlib.util
    if importlib.util.find_spec("pynq") is not None:
        pytest.skip("pynq is installed here")
    with pytest.raises(DeviceError, match="needs pynq"):
        PynqDevice(str(bitfile))
