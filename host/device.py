"""The device protocol: the narrow interface every engine target implements (numpy only).

A device offers physically contiguous buffers, 32-bit register access on the engine's
AXI4-Lite port, start, and a bounded wait. Three kinds implement it: the Ultra96 board
through PYNQ (`dgfpga_host.pynq_device`), the HLS C-simulation through ctypes and the
RTL through cocotb + Verilator (`dgfpga_host.sim_devices`), plus a numpy functional
model (`dgfpga_host.sim_devices.NumpyDevice`) for fast runs. `EngineDriver` programs the
register map (`dgfpga.contract.regmap`) over any of them; the network runner uses only the driver.

Every wait has a finite deadline (`check_timeout`: NaN, infinity, zero and negative
timeouts are refused) and polls with short sleeps (`poll_until`); on simulated devices the
deadline applies too (a start that outlives it is stopped, see `SimulatedDevice`).
"""
from __future__ import annotations

import abc
import ctypes
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from dgfpga.contract import regmap
from dgfpga.contract.engine_config import AXI_DATA_BITS
from dgfpga.errors import DgfpgaError

__all__ = ["DeviceError", "EngineTimeout", "EngineFault", "DeviceBuffer", "Device",
           "SimulatedDevice", "EngineDriver", "RunInfo", "check_timeout", "poll_until",
           "MAX_TIMEOUT_S"]

REG = {r.name: r.offset for r in regmap.REGISTERS}
AP_START, AP_DONE, AP_IDLE = (regmap.field("CTRL", n).mask
                              for n in ("AP_START", "AP_DONE", "AP_IDLE"))


#: the longest wait a caller may ask for (every wait has a finite deadline)
MAX_TIMEOUT_S = 24 * 3600.0
#: polling: the first sleep between register reads, doubled up to POLL_MAX_S
POLL_MIN_S, POLL_MAX_S = 50e-6, 1e-3
#: how long a timed-out simulated start gets to stop after it is told to
STOP_GRACE_S = 0.5


class DeviceError(DgfpgaError):
    """The device cannot be used (missing bitstream, no board, wrong engine, ...)."""


class EngineTimeout(DeviceError):
    """The engine did not signal ap_done within the timeout."""


def check_timeout(timeout_s, what: str = "timeout") -> float:
    """`timeout_s` as a float if it is a finite number of seconds in (0, MAX_TIMEOUT_S];
    DeviceError otherwise (NaN, infinity, zero, negative, not a number)."""
    ok = isinstance(timeout_s, (int, float, np.integer, np.floating)) and \
        not isinstance(timeout_s, bool)
    t = float(timeout_s) if ok else math.nan
    if not (math.isfinite(t) and 0 < t <= MAX_TIMEOUT_S):
        raise DeviceError(f"{what} {timeout_s!r} is not a number of seconds in (0, "
                          f"{MAX_TIMEOUT_S:g}]: pass a finite positive value, e.g. --timeout 5")
    return t


def poll_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Call `done()` until it is true (-> True) or `timeout_s` seconds passed (-> False),
    sleeping between calls: POLL_MIN_S at first, doubling up to POLL_MAX_S (so a quick
    engine is seen within ~50 µs and a long wait costs ~1000 reads per second, not a core)."""
    deadline = time.monotonic() + check_timeout(timeout_s)
    delay = POLL_MIN_S
    while True:
        if done():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        delay = min(2 * delay, POLL_MAX_S)


class _Stopped(BaseException):
    """Raised inside a simulated engine's worker thread to stop a start that timed out."""


class EngineFault(DeviceError):
    """The engine finished with a non-zero STATUS (it rejected a descriptor or work list)."""

    def __init__(self, status: int, context: str = ""):
        self.status = status
        super().__init__(f"engine reported {regmap.describe_status(status)}"
                         + (f" ({context})" if context else ""))


class DeviceBuffer:
    """A physically contiguous uint8 buffer the engine can reach.

    `array` is the CPU view; `physical_address` what the engine's registers take;
    `flush(offset, nbytes)` before the engine reads what the CPU wrote there,
    `invalidate(offset, nbytes)` before the CPU reads what the engine wrote there (both
    default to the whole buffer; a range outside the buffer is a DeviceError). The
    network runner maintains only the byte ranges the host writes or reads.
    """

    #: CPU and engine see the same memory (simulators): maintenance is a no-op, not timed
    coherent = True

    def __init__(self, array: np.ndarray, physical_address: int):
        self.array = array
        self.physical_address = int(physical_address)

    @property
    def nbytes(self) -> int:
        return int(self.array.size)

    def _range(self, offset: int, nbytes: Optional[int]) -> tuple[int, int]:
        n = self.nbytes - int(offset) if nbytes is None else int(nbytes)
        if not (0 <= int(offset) and 0 <= n and int(offset) + n <= self.nbytes):
            raise DeviceError(f"cache maintenance of [{offset}, {offset}+{n}) outside a "
                              f"{self.nbytes}-byte buffer")
        return int(offset), n

    def flush(self, offset: int = 0, nbytes: Optional[int] = None) -> int:
        """Write CPU-cached bytes [offset, offset+nbytes) back to memory; returns nbytes."""
        off, n = self._range(offset, nbytes)
        if n:
            self._flush(off, n)
        return n

    def invalidate(self, offset: int = 0, nbytes: Optional[int] = None) -> int:
        """Drop CPU-cached copies of [offset, offset+nbytes); returns nbytes."""
        off, n = self._range(offset, nbytes)
        if n:
            self._invalidate(off, n)
        return n

    def check_ranges(self, ranges) -> tuple:
        """`ranges` [(offset, nbytes)] checked against the buffer (DeviceError outside it),
        sorted, empty ones dropped and touching ones merged: what `flush_ranges` and
        `invalidate_ranges` take (prepared once, used per image)."""
        out: list = []
        for off, n in sorted(self._range(o, k) for o, k in ranges):
            if not n:
                continue
            if out and off <= out[-1][0] + out[-1][1]:
                end = max(out[-1][0] + out[-1][1], off + n)
                out[-1] = (out[-1][0], end - out[-1][0])
            else:
                out.append((off, n))
        return tuple(out)

    def flush_ranges(self, ranges: tuple) -> int:
        """Flush each (offset, nbytes) of `check_ranges`' result; returns the bytes."""
        n = 0
        for off, k in ranges:
            self._flush(off, k)
            n += k
        return n

    def invalidate_ranges(self, ranges: tuple) -> int:
        """Invalidate each (offset, nbytes) of `check_ranges`' result; returns the bytes."""
        n = 0
        for off, k in ranges:
            self._invalidate(off, k)
            n += k
        return n

    def _flush(self, offset: int, nbytes: int) -> None:   # coherent on simulators
        pass

    def _invalidate(self, offset: int, nbytes: int) -> None:
        pass


class Device(abc.ABC):
    """What the network runner needs from a target."""

    name = "device"

    @abc.abstractmethod
    def allocate(self, nbytes: int) -> DeviceBuffer:
        """A zeroed, physically contiguous buffer of `nbytes` bytes."""

    @abc.abstractmethod
    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit register of the engine's control port."""

    @abc.abstractmethod
    def read_reg(self, offset: int) -> int:
        """Read a 32-bit register of the engine's control port."""

    #: what to do when the engine times out (the end of the EngineTimeout message)
    timeout_hint = ("the engine may be hung: reset the board (reload the overlay) and check "
                    "the bundle matches the bitstream")
    #: the deadline of one start when the caller gives none: an image takes milliseconds
    #: on the board; simulated devices take seconds to minutes (sim_devices)
    default_timeout_s = 10.0

    def start(self, timeout_s: Optional[float] = None) -> None:
        """Set ap_start. `timeout_s`: the deadline the caller will wait with (simulators
        may use it to bound their own run; the hardware ignores it)."""
        self.write_reg(REG["CTRL"], AP_START)

    def wait(self, timeout_s: float) -> None:
        """Return when the engine is done; EngineTimeout after `timeout_s` seconds
        (DeviceError for a timeout that is not finite and positive, see check_timeout).
        Polls ap_done with short sleeps (poll_until), never busily."""
        t = check_timeout(timeout_s)
        self._poll_done(t, t)

    def _poll_done(self, left_s: float, timeout_s: float) -> None:
        if not poll_until(lambda: self.read_reg(REG["CTRL"]) & AP_DONE, left_s):
            raise self._timeout_error(timeout_s)

    def _timeout_error(self, timeout_s: float, detail: str = "") -> EngineTimeout:
        return EngineTimeout(f"{self.name}: engine not done after {timeout_s:g} s (CTRL=0x"
                             f"{self.read_reg(REG['CTRL']):08X}){detail}; {self.timeout_hint}")

    def close(self) -> None:
        pass


class SimulatedDevice(Device):
    """A device whose register file and memory live in Python; `execute` runs the engine.

    Registers follow ap_ctrl_hs: writing AP_START runs `execute()` in a worker thread (as
    the hardware runs beside the CPU); when it returns, the output arguments, their ap_vld
    bits and ap_done/ap_idle are set. An exception from `execute()` is raised by the next
    read of CTRL (so by `wait`). A start that outlives the caller's deadline is stopped
    (`wait`: an exception is raised inside the worker; its results are discarded) and
    reported as EngineTimeout; memory it wrote before stopping is undefined, as on a
    board. Buffers get fake, non-overlapping physical addresses; the engine sees memory
    through `resolve`.
    """

    BASE = 0x1000_0000
    timeout_hint = ("the output buffers of a timed-out start are undefined: check the program "
                    "(layer count, descriptors) or pass a longer --timeout")

    def __init__(self):
        self.regs: dict[int, int] = {REG["CTRL"]: AP_IDLE}
        self.buffers: list[DeviceBuffer] = []
        self._next = self.BASE
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._worker: Optional[threading.Thread] = None
        self._job: Optional[int] = None   # the start the worker is to run next
        self._busy = False                # a start is running (or could not be stopped)
        self._done = threading.Event()    # the current start ended (committed or not)
        self._closing = False
        self._run_id = 0                 # the start whose results may still be committed
        self._error: Optional[BaseException] = None
        #: the deadline passed to `start` (None: not known); simulators may bound their run
        self.start_timeout_s: Optional[float] = None

    def allocate(self, nbytes: int) -> DeviceBuffer:
        buf = DeviceBuffer(np.zeros(max(int(nbytes), 1), dtype=np.uint8), self._next)
        self._next += -(-max(int(nbytes), 1) // 4096) * 4096 + 4096  # page-aligned, a gap
        self.buffers.append(buf)
        return buf

    def resolve(self, address: int, nbytes: int) -> np.ndarray:
        """The writable view of [address, address + nbytes); DeviceError if unmapped."""
        for b in self.buffers:
            off = address - b.physical_address
            if 0 <= off and off + nbytes <= b.nbytes:
                return b.array[off:off + nbytes]
        raise DeviceError(f"{self.name}: address 0x{address:X} (+{nbytes}) is not in any "
                          "allocated buffer")

    def arg(self, name: str) -> int:
        r = regmap.BY_NAME
        if f"{name.upper()}_LO" in r:
            return self.regs.get(REG[f"{name.upper()}_LO"], 0) | \
                (self.regs.get(REG[f"{name.upper()}_HI"], 0) << 32)
        return self.regs.get(REG[name.upper()], 0)

    def set_out(self, name: str, value: int, bits: int) -> None:
        up = name.upper()
        if bits == 64:
            self.regs[REG[f"{up}_LO"]] = value & 0xFFFFFFFF
            self.regs[REG[f"{up}_HI"]] = (value >> 32) & 0xFFFFFFFF
        else:
            self.regs[REG[up]] = value & 0xFFFFFFFF
        self.regs[REG[f"{up}_CTRL"]] = 1

    def start(self, timeout_s: Optional[float] = None) -> None:
        self.start_timeout_s = None if timeout_s is None else check_timeout(timeout_s)
        super().start(timeout_s)

    def write_reg(self, offset: int, value: int) -> None:
        if offset == REG["CTRL"]:
            if value & AP_START:
                self._launch()
            return
        self.regs[offset] = int(value) & 0xFFFFFFFF

    def _launch(self) -> None:
        """Hand the start to the worker thread (started once and kept between starts, so
        a start costs the caller a notify, as a register write costs on the board)."""
        with self._lock:
            if self._busy:
                raise DeviceError(
                    f"{self.name}: ap_start while the simulated engine is still running (a "
                    "start that timed out could not be stopped yet): wait for it or use a new "
                    "device")
            self._run_id += 1
            self._error = None
            self.regs[REG["CTRL"]] = AP_START
            self._busy = True
            self._done.clear()
            self._job = self._run_id
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._worker_loop,
                                                name=f"dgfpga-{self.name}-engine", daemon=True)
                self._worker.start()
            self._cv.notify()

    def _worker_loop(self) -> None:
        """The worker: wait for a start, run it, repeat. A start stopped at its deadline
        ends the thread (the next start makes a new one)."""
        try:
            while True:
                with self._cv:
                    while self._job is None and not self._closing:
                        self._cv.wait()
                    if self._job is None:          # closing
                        return
                    run_id, self._job = self._job, None
                if not self._engine_job(run_id):
                    return                         # abandoned: this thread ends
        except _Stopped:
            with self._lock:
                self.regs[REG["CTRL"]] = AP_IDLE  # stopped: idle, not done, nothing committed
                self._busy = False
            self._done.set()

    def _engine_job(self, run_id: int) -> bool:
        """One start: execute(), then commit the outputs unless the start was abandoned
        (-> False: the worker ends, as a stopped one does)."""
        try:
            result = self.execute()
        except _Stopped:
            raise
        except BaseException as exc:  # noqa: BLE001 - re-raised by read_reg(CTRL)
            result = exc
        with self._lock:
            committed = run_id == self._run_id
            if not committed:               # abandoned at its deadline: discard
                self.regs[REG["CTRL"]] = AP_IDLE
            else:
                self._run_id += 1        # committed: nothing can stop this run any more
                if isinstance(result, BaseException):
                    self._error = result
                else:
                    status, cycles = result
                    self.set_out("status", status, 32)
                    self.set_out("cycles", cycles, 64)
                    self.set_out("engine_id", self.engine_id(), 64)
                self.regs[REG["CTRL"]] = AP_DONE | AP_IDLE
            self._busy = False
        self._done.set()
        return committed

    def _stop(self, worker: threading.Thread, run_id: int) -> str:
        """Stop start `run_id` (running in `worker`) that outlived its deadline: raise
        _Stopped inside its thread and give it STOP_GRACE_S to end. Returns 'committed'
        (it finished meanwhile), 'stopped', or 'running' (it is inside compiled code,
        which an exception reaches only when that returns)."""
        with self._lock:
            if self._run_id != run_id:
                return "committed"
            self._run_id += 1             # its results will not be committed
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident),
                                                       ctypes.py_object(_Stopped))
        worker.join(STOP_GRACE_S)         # _Stopped ends the worker thread
        if worker.is_alive():
            return "running"              # CTRL stays busy: EngineDriver sees "not idle"
        self.regs[REG["CTRL"]] = AP_IDLE
        return "stopped"

    def wait(self, timeout_s: float) -> None:
        """As Device.wait; a simulated start still running at the deadline is stopped."""
        t = check_timeout(timeout_s)
        deadline = time.monotonic() + t
        with self._lock:
            worker, run_id, busy = self._worker, self._run_id, self._busy
        if worker is not None and busy:
            if not self._done.wait(t):
                outcome = self._stop(worker, run_id)
                if outcome == "stopped":
                    raise self._timeout_error(t, ": the simulated engine exceeded the deadline "
                                                 "and was stopped")
                if outcome == "running":
                    raise self._timeout_error(
                        t, ": the simulated engine exceeded the deadline and could not be "
                           "stopped (it is inside compiled code and stops when that returns); "
                           "this device refuses new starts until then")
        self._poll_done(max(deadline - time.monotonic(), POLL_MIN_S), t)

    def close(self) -> None:
        """End the idle worker thread (a running start ends it when it returns)."""
        with self._cv:
            self._closing = True
            self._cv.notify()

    def read_reg(self, offset: int) -> int:
        if offset == REG["CTRL"] and self._error is not None:
            err, self._error = self._error, None
            raise err
        v = self.regs.get(offset, 0)
        if offset == REG["CTRL"] and v & AP_DONE:       # ap_done is clear-on-read
            self.regs[offset] = v & ~AP_DONE
        return v

    def regions(self) -> dict:
        """The four regions the current arguments point at (writable views)."""
        return {r: self.resolve(self.arg(f"{r}_base"), self.arg(f"{r}_bytes"))
                for r in ("fmap", "weight", "work", "sums")}

    @abc.abstractmethod
    def execute(self) -> tuple[int, int]:
        """Run the engine on the current arguments; return (STATUS, cycles)."""

    @abc.abstractmethod
    def engine_id(self) -> int:
        """The ENGINE_ID this engine reports."""


@dataclass
class RunInfo:
    """One engine start: STATUS and cycle count."""
    status: int
    cycles: int


#: the alignment the driver asks of every buffer it gives the engine: the widest AXI beat
#: a config may have. The engine reads and writes whole beats and ignores the address bits
#: below its beat (docs/register_map.md "Alignment").
BUFFER_ALIGN = max(AXI_DATA_BITS) // 8


def _check_aligned(name: str, buf: "DeviceBuffer") -> None:
    if buf.physical_address % BUFFER_ALIGN:
        raise DeviceError(f"the {name} buffer at physical address 0x{buf.physical_address:x} is "
                          f"not aligned to {BUFFER_ALIGN} bytes: the engine reads and writes whole "
                          f"AXI beats; allocate it with the device (page-aligned)")


class EngineDriver:
    """Programs the engine's register map over a device and runs one program."""

    def __init__(self, device: Device, timeout_s: Optional[float] = None):
        """`timeout_s`: the deadline of one start; None: the device's default
        (`Device.default_timeout_s`: 10 s on the board, longer on simulators)."""
        self.device = device
        self.timeout_s = check_timeout(device.default_timeout_s if timeout_s is None
                                       else timeout_s)

    def _w64(self, name: str, value: int) -> None:
        self.device.write_reg(REG[f"{name}_LO"], value & 0xFFFFFFFF)
        self.device.write_reg(REG[f"{name}_HI"], (value >> 32) & 0xFFFFFFFF)

    def _r64(self, name: str) -> int:
        return self.device.read_reg(REG[f"{name}_LO"]) | \
            (self.device.read_reg(REG[f"{name}_HI"]) << 32)

    def set_regions(self, regions: dict) -> None:
        """Point the engine at the four region buffers (name -> DeviceBuffer)."""
        names = ("fmap", "weight", "work", "sums")
        for name in names:                  # all checked before any register is written
            _check_aligned(name, regions[name])
        for name in names:
            buf = regions[name]
            self._w64(f"{name.upper()}_BASE", buf.physical_address)
            self.device.write_reg(REG[f"{name.upper()}_BYTES"], buf.nbytes)

    def set_program(self, program: DeviceBuffer, layer_count: int) -> None:
        """Point the engine at a program of `layer_count` records (the registers keep it
        for every later start)."""
        _check_aligned("program", program)
        self._w64("PROGRAM", program.physical_address)
        self.device.write_reg(REG["LAYER_COUNT"], layer_count)

    def set_run_flags(self, run_flags: int) -> None:
        """Write RUN_FLAGS (bit RUN_DENSE: every gate on). DeviceError if this register
        map has no RUN_FLAGS and a flag is asked for."""
        if "RUN_FLAGS" in REG:
            self.device.write_reg(REG["RUN_FLAGS"], int(run_flags) & 0xFFFFFFFF)
        elif run_flags:
            raise DeviceError("this register map has no RUN_FLAGS argument: rebuild the engine "
                              "and bundle with this dgfpga")

    def start(self, timeout_s: Optional[float] = None) -> float:
        """Start the engine on the registers as set; returns the deadline used."""
        dev = self.device
        if not dev.read_reg(REG["CTRL"]) & AP_IDLE:
            raise DeviceError(f"{dev.name}: engine is not idle (CTRL=0x"
                              f"{dev.read_reg(REG['CTRL']):08X}); reset it before starting")
        t = self.timeout_s if timeout_s is None else check_timeout(timeout_s)
        dev.start(t)
        return t

    def wait(self, timeout_s: float) -> None:
        """Wait for the start to end (EngineTimeout after `timeout_s`)."""
        self.device.wait(timeout_s)

    def result(self) -> RunInfo:
        """STATUS and CYCLES of the start that ended."""
        return RunInfo(self.device.read_reg(REG["STATUS"]), self._r64("CYCLES"))

    def run(self, program: DeviceBuffer, layer_count: int,
            timeout_s: Optional[float] = None, run_flags: int = 0) -> RunInfo:
        """Start `layer_count` records at `program` with `run_flags`; wait; return STATUS
        and cycles."""
        self.set_program(program, layer_count)
        self.set_run_flags(run_flags)
        t = self.start(timeout_s)
        self.wait(t)
        return self.result()

    def engine_id(self) -> int:
        """Read ENGINE_ID with an identify run (layer_count = 0)."""
        self.device.write_reg(REG["LAYER_COUNT"], 0)
        self.device.start(self.timeout_s)
        self.device.wait(self.timeout_s)
        return self._r64("ENGINE_ID")
