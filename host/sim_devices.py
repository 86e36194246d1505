"""Devices that simulate the engine on this machine (numpy only at import time).

- `NumpyDevice`: the functional model `dgfpga.runtime.interpreter`; cycles from the analytical
  cycle model (`dgfpga.perf.cycle_model.program_cycles`, per record, written into the
  program's cycle log), labelled as model cycles. Fast; no compiler.
- `CsimDevice`: the Vitis HLS engine compiled with g++ (C-simulation) through its
  `extern "C"` bridge (`dgfpga.backends.hls_csim`); bit-exact with the HLS sources. The C-sim
  has no clock (the engine's CYCLES, a counter difference, reads 0 there): the device's
  CYCLES register and cycle log hold the C-sim's cycle ESTIMATE (`cycles_kind`).
- `RtlDevice`: the reference RTL under Verilator, the stand-alone fast harness
  (`dgfpga.backends.rtl_sim.FastSim`); cycle-accurate, optional FST waveform of the first start.

All three run the whole network program (every record, RUN_FLAGS passed on) and share
`SimulatedDevice`'s register file (ap_ctrl_hs), so the driver and the network runner above
them are the code that runs on the board. Each start runs in a worker thread; the caller's timeout applies (see `SimulatedDevice`): a start that outlives it is
stopped and reported as EngineTimeout. The RTL device builds its simulator in `start`, so
the Verilator compile does not count against the deadline, and passes the deadline to the
simulator process (`FastSim.run(wall_timeout_s=...)`, when the backend offers it).
"""
from __future__ import annotations

import abc
import inspect
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract import regmap
from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.contract.formats import DESCRIPTOR_BYTES
from dgfpga_host.device import DeviceError, SimulatedDevice

__all__ = ["NumpyDevice", "NullDevice", "CsimDevice", "RtlDevice", "make_device"]


def _accepts(fn, name: str) -> bool:
    """Whether callable `fn` takes a keyword argument `name`."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


class _ProgramDevice(SimulatedDevice):
    """Reads the program, RUN_FLAGS and regions from the argument registers, runs `_run`."""

    def __init__(self, cfg: Optional[EngineConfig] = None):
        super().__init__()
        self.cfg = cfg or default_config()

    def engine_id(self) -> int:
        if getattr(self, "_engine_id", None) is None:   # the config hash: computed once
            self._engine_id = regmap.engine_id(self.cfg)
        return self._engine_id

    def execute(self) -> tuple[int, int]:
        n = self.arg("layer_count")
        if n == 0:                      # identify run: touches no memory
            return 0, 1
        if n > self.cfg.max_layers:
            return regmap.pack_status(regmap.ERR["BAD_COUNT"]), 1
        program = self.resolve(self.arg("program"), n * DESCRIPTOR_BYTES)
        flags = self.arg("run_flags") if "RUN_FLAGS" in regmap.BY_NAME else 0
        return self._run(bytes(program), n, self.regions(), flags)

    @abc.abstractmethod
    def _run(self, program: bytes, n: int, regions: dict, run_flags: int = 0) -> tuple[int, int]:
        """Run n records of `program` over `regions` with `run_flags`; (STATUS, cycles)."""


class NumpyDevice(_ProgramDevice):
    """The numpy functional model of the engine (`dgfpga.runtime.interpreter.run_program`);
    its cycles are the analytical model's (`dgfpga.perf.cycle_model.program_cycles`, per
    record), written into the program's cycle log as an engine writes its counts.
    `pending`: also run what the contract specifies but the engines do not implement yet
    (`formats.PENDING_OPS`/`PENDING_FIELDS`: MobileNetV2's depthwise layers and pixel sums;
    a `NetworkPlan.pending` bundle); by default they are refused as the engines refuse them."""

    name = "numpy"
    default_timeout_s = 300.0       # a whole ResNet-50 image in numpy: tens of seconds

    def __init__(self, cfg: Optional[EngineConfig] = None, cycle_params=None,
                 pending: bool = False):
        super().__init__(cfg)
        from dgfpga.perf.cycle_model import CycleParams
        self.cycle_params = cycle_params or CycleParams()
        self.pending = bool(pending)

    def _run(self, program: bytes, n: int, regions: dict, run_flags: int = 0) -> tuple[int, int]:
        from dgfpga.runtime.interpreter import run_program
        kw = {"run_flags": run_flags} if (run_flags or _accepts(run_program, "run_flags")) else {}
        if self.pending:
            kw["pending"] = True
        res = run_program(program, n, regions, self.cfg, **kw)
        if res.status:
            return res.status, 1
        per = self.record_cycles(program, n, regions, res, run_flags)
        return res.status, int(sum(per))

    def record_cycles(self, program: bytes, n: int, regions: dict, res, run_flags: int) -> list:
        """Model cycles per record of a start that ran (rounded, as a cycle counter); the
        head's cycle log gets them."""
        from dgfpga.contract import program as P
        from dgfpga.perf.cycle_model import program_cycles
        per = [int(round(c)) for c in program_cycles(
            program, n, regions["work"], getattr(res, "gate_masks", ()),
            bool(run_flags & P.RUN_DENSE), self.cfg, self.cycle_params)]
        last = program[(n - 1) * DESCRIPTOR_BYTES:n * DESCRIPTOR_BYTES]
        if P.record_op(last) == P.OP_HEAD:
            h = P.unpack_head_record(last, self.cfg, None, n)
            log = regions["work"][h.log_offset:h.log_offset + 4 * n].view("<u4")
            log[:] = np.minimum(per, 0xFFFFFFFF)
        return per


class NullDevice(_ProgramDevice):
    """An engine that finishes every start at once with STATUS 0 and touches no memory:
    the runner's own work around a start is then all that runs (what
    `dgfpga_host.runner.measure_host_cpu` times). Not an engine model."""

    name = "null"

    def _launch(self) -> None:
        """Done within the ap_start write itself, no worker thread: on the board a start is
        one register write, so a thread hand-off here would be simulator cost counted as
        host work."""
        with self._lock:
            self._run_id += 1
            self._error = None
            self._busy = True
            self._done.clear()
        self._engine_job(self._run_id)

    def execute(self) -> tuple[int, int]:
        return 0, 1                      # reads nothing: no program or region copies either

    def _run(self, program: bytes, n: int, regions: dict, run_flags: int = 0) -> tuple[int, int]:
        return 0, 1


class CsimDevice(_ProgramDevice):
    """The HLS engine in C-simulation (g++ + ap_types), called through ctypes.

    Cycles are the C-sim's ESTIMATE (`hls_csim.CsimRun.cycles_estimate`, also what the
    engine writes into the cycle log under C-sim), not a count: on the board the engine's
    CYCLES is a free-running counter's difference, which the clockless C-sim reads as 0.
    `last_cycles_register` keeps that raw register of the last start."""

    name = "csim"
    cycles_kind = "estimate"
    default_timeout_s = 600.0       # C-simulation: seconds to minutes per image

    def __init__(self, cfg: Optional[EngineConfig] = None):
        super().__init__(cfg)
        try:
            from dgfpga.backends import hls_csim
        except ImportError as exc:  # pragma: no cover - depends on the checkout
            raise DeviceError(f"csim device unavailable: {exc}") from None
        self._engine = hls_csim.CsimEngine(self.cfg)
        self.last_cycles_register = None

    def _run(self, program: bytes, n: int, regions: dict, run_flags: int = 0) -> tuple[int, int]:
        kw = {"run_flags": run_flags} if (run_flags or _accepts(self._engine.run, "run_flags")) \
            else {}
        out = self._engine.run(program, n, regions["fmap"], regions["weight"],
                               regions["work"], regions["sums"], **kw)
        self.last_cycles_register = int(out.cycles)
        return int(out.status), int(out.cycles_estimate)


class RtlDevice(_ProgramDevice):
    """The reference RTL under Verilator: each engine start is one simulation run of the
    fast harness (`dgfpga.backends.rtl_sim.FastSim`: the engine RTL + a SystemVerilog AXI memory
    model; Python only before and after the run, never per cycle). Cycle-accurate.

    `wave`: an FST waveform of the FIRST start is written there (a --trace-fst build of
    the harness); later starts run untraced. `last_run` is the `rtl_sim.RtlRun` of the last
    start (None before); `sim_cycles`, `sim_wall_s` and `bytes_exchanged` (memory handed to
    and read back from the harness) add up over the starts. `close()` also removes the
    simulator's work folder."""

    default_timeout_s = 7200.0      # cycle-accurate: ~10^5 engine cycles per second

    name = "rtl"

    def __init__(self, cfg: Optional[EngineConfig] = None, latency: int = 0,
                 stall_pct: int = 0, wave: Optional[Path] = None):
        super().__init__(cfg)
        try:
            from dgfpga.backends import rtl_sim
        except ImportError as exc:  # pragma: no cover - depends on the checkout
            raise DeviceError(f"rtl device unavailable: {exc}") from None
        self._rtl = rtl_sim
        self._sim = None
        self.latency, self.stall_pct = latency, stall_pct
        self.wave = wave
        self._wave_pending = wave is not None
        self.last_run = None
        self.sim_cycles = 0
        self.sim_wall_s = 0.0
        self.bytes_exchanged = 0

    def _prepare(self, program_bytes: int, regions: dict) -> None:
        if self._sim is None:
            need = sum(int(r.size) for r in regions.values()) + program_bytes + 5 * 4096
            self._sim = self._rtl.FastSim(self.cfg, mem_bytes=need)
        if self._wave_pending:
            self._sim.trace_exe()           # the traced build, also outside the deadline

    def start(self, timeout_s: Optional[float] = None) -> None:
        """Build the simulator (Verilator compile, cached) here, in the caller's thread,
        so the compile does not count against the engine's deadline."""
        n = self.arg("layer_count")
        if (self._sim is None or self._wave_pending) and 0 < n <= self.cfg.max_layers:
            try:
                regions = self.regions()
            except DeviceError:
                regions = None               # reported by the run itself
            if regions is not None:
                self._prepare(n * DESCRIPTOR_BYTES, regions)
        super().start(timeout_s)

    def _run(self, program: bytes, n: int, regions: dict, run_flags: int = 0) -> tuple[int, int]:
        self._prepare(len(program), regions)
        kw = {}
        if self.start_timeout_s is not None and _accepts(self._sim.run, "wall_timeout_s"):
            kw["wall_timeout_s"] = self.start_timeout_s     # the simulator kills its process
        if run_flags or _accepts(self._sim.run, "run_flags"):
            kw["run_flags"] = run_flags
        if self._wave_pending:
            self._wave_pending = False       # the first start only, whatever its outcome
            kw["wave"] = self.wave
        out = self._sim.run(program, n, regions, latency=self.latency, stall_pct=self.stall_pct,
                            **kw)
        self.last_run = out
        self.sim_cycles += out.sim_cycles
        self.sim_wall_s += out.wall_s
        self.bytes_exchanged += out.bytes_in + out.bytes_out
        if out.timeout:
            return regmap.pack_status(regmap.ERR["AXI_ERROR"]), int(out.cycles)
        for name in ("fmap", "sums", "work"):        # WORK: masks, lists, logits, log
            if name in out.regions:
                regions[name][:] = out.regions[name]
        return int(out.status), int(out.cycles)

    def close(self) -> None:
        super().close()
        if self._sim is not None:
            self._sim.close()
            self._sim = None


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
