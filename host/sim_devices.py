"""Devices that simulate the engine on this machine (numpy only at import time).

- `NumpyDevice`: the functional model `dgfpga.runtime.interpreter`; cycles from the analytical
  cycle model (`dgfpga.perf.cycle_model`), labelled as model cycles. Fast; no compiler.
- `CsimDevice`: the Vitis HLS engine compiled with g++ (C-simulation) through its
  `extern "C"` bridge (`dgfpga.backends.hls_csim`); bit-exact with the HLS sources.
- `RtlDevice`: the reference RTL under Verilator, driven by cocotb (`dgfpga.backends.rtl_sim`);
  cycle-accurate.

All three share `SimulatedDevice`'s register file (ap_ctrl_hs), so the driver and the
network runner above them are the code that runs on the board. Each start runs in a worker
thread; the caller's timeout applies (see `SimulatedDevice`): a start that outlives it is
stopped and reported as EngineTimeout. The RTL device builds its simulator in `start`, so
the Verilator compile does not count against the deadline, and passes the deadline to the
simulator process (`FastSim.run(wall_timeout_s=...)`, when the backend offers it).
"""
from __future__ import annotations

import abc
import inspect
from typing import Optional

import numpy as np

from dgfpga.contract import regmap
from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.contract.formats import DESCRIPTOR_BYTES
from dgfpga_host.device import DeviceError, SimulatedDevice

__all__ = ["NumpyDevice", "CsimDevice", "RtlDevice", "make_device"]


class _ProgramDevice(SimulatedDevice):
    """Reads the program and regions from the argument registers, runs `_run`."""

    def __init__(self, cfg: Optional[EngineConfig] = None):
        super().__init__()
        self.cfg = cfg or default_config()

    def engine_id(self) -> int:
        return regmap.engine_id(self.cfg)

    def execute(self) -> tuple[int, int]:
        n = self.arg("layer_count")
        if n == 0:                      # identify run: touches no memory
            return 0, 1
        if n > self.cfg.max_layers:
            return regmap.pack_status(regmap.ERR["BAD_COUNT"]), 1
        program = self.resolve(self.arg("program"), n * DESCRIPTOR_BYTES)
        return self._run(bytes(program), n, self.regions())

    @abc.abstractmethod
    def _run(self, program: bytes, n: int, regions: dict) -> tuple[int, int]:
        """Run n descriptors of `program` over `regions`; (STATUS, cycles)."""


class NumpyDevice(_ProgramDevice):
    """The numpy functional model of the engine; cycles from the analytical model."""

    name = "numpy"

    def __init__(self, cfg: Optional[EngineConfig] = None, cycle_params=None):
        super().__init__(cfg)
        from dgfpga.perf.cycle_model import CycleParams
        self.cycle_params = cycle_params or CycleParams()

    def _run(self, program: bytes, n: int, regions: dict) -> tuple[int, int]:
        from dgfpga.contract import formats
        from dgfpga.perf.cycle_model import layer_cycles
        from dgfpga.runtime.interpreter import run_program
        res = run_program(program, n, regions, self.cfg)
        cycles = 0
        for i in range(len(res.macs)):          # layers that ran
            d = formats.unpack_descriptor(program[i * DESCRIPTOR_BYTES:(i + 1) * DESCRIPTOR_BYTES],
                                          self.cfg)
            tiles, res_tiles = _tile_lists(d, regions["work"])
            cycles += layer_cycles(d, self.cfg, self.cycle_params, tiles=tiles,
                                   res_tiles=res_tiles).total_cycles
        return res.status, int(cycles)


def _tile_lists(d, work: np.ndarray):
    """(active tiles or None if not gated, residual-only tiles) of a checked descriptor."""
    def u16(off, n):
        return work[off:off + 2 * n].view("<u2").astype(np.int64)
    tiles = u16(d.tile_list_offset, d.n_active_tiles) if d.tile_gated else None
    return tiles, u16(d.res_tile_list_offset, d.n_res_tiles)


class CsimDevice(_ProgramDevice):
    """The HLS engine in C-simulation (g++ + ap_types), called through ctypes."""

    name = "csim"

    def __init__(self, cfg: Optional[EngineConfig] = None):
        super().__init__(cfg)
        try:
            from dgfpga.backends import hls_csim
        except ImportError as exc:  # pragma: no cover - depends on the checkout
            raise DeviceError(f"csim device unavailable: {exc}") from None
        self._engine = hls_csim.CsimEngine(self.cfg)

    def _run(self, program: bytes, n: int, regions: dict) -> tuple[int, int]:
        out = self._engine.run(program, n, regions["fmap"], regions["weight"],
                               regions["work"], regions["sums"])
        return int(out.status), int(out.cycles)


class RtlDevice(_ProgramDevice):
    """The reference RTL under Verilator: each engine start is one simulation run of the
    fast harness (`dgfpga.backends.rtl_sim.FastSim`: the engine RTL + a SystemVerilog AXI memory
    model; Python only before and after the run, never per cycle). Cycle-accurate."""

    name = "rtl"

    def __init__(self, cfg: Optional[EngineConfig] = None, latency: int = 0,
                 stall_pct: int = 0):
        super().__init__(cfg)
        try:
            from dgfpga.backends import rtl_sim
        except ImportError as exc:  # pragma: no cover - depends on the checkout
            raise DeviceError(f"rtl device unavailable: {exc}") from None
        self._rtl = rtl_sim
        self._sim = None
        self.latency, self.stall_pct = latency, stall_pct
        self.sim_cycles = 0
        self.sim_wall_s = 0.0

    def _prepare(self, program_bytes: int, regions: dict) -> None:
        if self._sim is None:
            need = sum(int(r.size) for r in regions.values()) + program_bytes + 5 * 4096
            self._sim = self._rtl.FastSim(self.cfg, mem_bytes=need)

    def start(self, timeout_s: Optional[float] = None) -> None:
        """Build the simulator (Verilator compile, cached) here, in the caller's thread,
        so the compile does not count against the engine's deadline."""
        n = self.arg("layer_count")
        if self._sim is None and 0 < n <= self.cfg.max_layers:
            try:
                regions = self.regions()
            except DeviceError:
                regions = None               # reported by the run itself
            if regions is not None:
                self._prepare(n * DESCRIPTOR_BYTES, regions)
        super().start(timeout_s)

    def _run(self, program: bytes, n: int, regions: dict) -> tuple[int, int]:
        self._prepare(len(program), regions)
        kw = {}
        if self.start_timeout_s is not None and \
                "wall_timeout_s" in inspect.signature(self._sim.run).parameters:
            kw["wall_timeout_s"] = self.start_timeout_s     # the simulator kills its process
        out = self._sim.run(program, n, regions, latency=self.latency, stall_pct=self.stall_pct,
                            **kw)
        if out.timeout:
            return regmap.pack_status(regmap.ERR["AXI_ERROR"]), int(out.cycles)
        for name in ("fmap", "sums"):
            regions[name][:] = out.regions[name]
        self.sim_cycles += out.sim_cycles
        self.sim_wall_s += out.wall_s
        return int(out.status), int(out.cycles)


def make_device(kind: str, cfg: Optional[EngineConfig] = None, **kw):
    """A device by name: 'numpy', 'csim', 'rtl' or 'board' (PYNQ, on the Ultra96)."""
    if kind == "numpy":
        return NumpyDevice(cfg, **kw)
    if kind == "csim":
        return CsimDevice(cfg)
    if kind == "rtl":
        return RtlDevice(cfg, **kw)
    if kind == "board":
        from dgfpga_host.pynq_device import PynqDevice
        return PynqDevice(**kw)
    raise DeviceError(f"unknown device {kind!r}: use numpy, csim, rtl or board")
