"""The device protocol: the narrow interface every engine target implements (numpy only).

A device offers physically contiguous buffers, 32-bit register access on the engine's
AXI4-Lite port, start, and a bounded wait. Three kinds implement it: the Ultra96 board
through PYNQ (`dgfpga_host.pynq_device`), the HLS C-simulation through ctypes and the
RTL through cocotb + Verilator (`dgfpga_host.sim_devices`), plus a numpy functional
model (`dgfpga_host.sim_devices.NumpyDevice`) for fast runs. `EngineDriver` programs the
register map (`dgfpga.contract.regmap`) over any of them; the network runner uses only the driver.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dgfpga.contract import regmap
from dgfpga.errors import DgfpgaError

__all__ = ["DeviceError", "EngineTimeout", "EngineFault", "DeviceBuffer", "Device",
           "SimulatedDevice", "EngineDriver", "RunInfo"]

REG = {r.name: r.offset for r in regmap.REGISTERS}
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4


class DeviceError(DgfpgaError):
    """The device cannot be used (missing bitstream, no board, wrong engine, ...)."""


class EngineTimeout(DeviceError):
    """The engine did not signal ap_done within the timeout."""


class EngineFault(DeviceError):
    """The engine finished with a non-zero STATUS (it rejected a descriptor or work list)."""

    def __init__(self, status: int, context: str = ""):
        self.status = status
        super().__init__(f"engine reported {regmap.describe_status(status)}"
                         + (f" ({context})" if context else ""))


class DeviceBuffer:
    """A physically contiguous uint8 buffer the engine can reach.

    `array` is the CPU view; `physical_address` what the engine's registers take;
    `flush()` before the engine reads, `invalidate()` before the CPU reads what it wrote.
    """

    def __init__(self, array: np.ndarray, physical_address: int):
        self.array = array
        self.physical_address = int(physical_address)

    @property
    def nbytes(self) -> int:
        return int(self.array.size)

    def flush(self) -> None:  # caches are coherent on simulators
        pass

    def invalidate(self) -> None:
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

    def start(self) -> None:
        """Set ap_start."""
        self.write_reg(REG["CTRL"], AP_START)

    def wait(self, timeout_s: float) -> None:
        """Return when the engine is done; EngineTimeout after `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.read_reg(REG["CTRL"]) & AP_DONE:
                return
            if time.monotonic() > deadline:
                raise EngineTimeout(
                    f"{self.name}: engine not done after {timeout_s:g} s (CTRL=0x"
                    f"{self.read_reg(REG['CTRL']):08X}); the engine may be hung: reset the "
                    "board (reload the overlay) and check the bundle matches the bitstream")
            time.sleep(0.0002)

    def close(self) -> None:
        pass


class SimulatedDevice(Device):
    """A device whose register file and memory live in Python; `execute` runs the engine.

    Registers follow ap_ctrl_hs: writing AP_START runs `execute()` to completion and sets
    ap_done/ap_idle, the output arguments and their ap_vld bits. Buffers get fake,
    non-overlapping physical addresses; the engine sees memory through `resolve`.
    """

    BASE = 0x1000_0000

    def __init__(self):
        self.regs: dict[int, int] = {REG["CTRL"]: AP_IDLE}
        self.buffers: list[DeviceBuffer] = []
        self._next = self.BASE

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

    def write_reg(self, offset: int, value: int) -> None:
        if offset == REG["CTRL"]:
            if value & AP_START:
                self.regs[offset] = AP_START
                status, cycles = self.execute()
                self.set_out("status", status, 32)
                self.set_out("cycles", cycles, 64)
                self.set_out("engine_id", self.engine_id(), 64)
                self.regs[offset] = AP_DONE | AP_IDLE
            return
        self.regs[offset] = int(value) & 0xFFFFFFFF

    def read_reg(self, offset: int) -> int:
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


class EngineDriver:
    """Programs the engine's register map over a device and runs one program."""

    def __init__(self, device: Device, timeout_s: float = 10.0):
        self.device = device
        self.timeout_s = timeout_s

    def _w64(self, name: str, value: int) -> None:
        self.device.write_reg(REG[f"{name}_LO"], value & 0xFFFFFFFF)
        self.device.write_reg(REG[f"{name}_HI"], (value >> 32) & 0xFFFFFFFF)

    def _r64(self, name: str) -> int:
        return self.device.read_reg(REG[f"{name}_LO"]) | \
            (self.device.read_reg(REG[f"{name}_HI"]) << 32)

    def set_regions(self, regions: dict) -> None:
        """Point the engine at the four region buffers (name -> DeviceBuffer)."""
        for name in ("fmap", "weight", "work", "sums"):
            buf = regions[name]
            self._w64(f"{name.upper()}_BASE", buf.physical_address)
            self.device.write_reg(REG[f"{name.upper()}_BYTES"], buf.nbytes)

    def run(self, program: DeviceBuffer, layer_count: int,
            timeout_s: Optional[float] = None) -> RunInfo:
        """Start `layer_count` descriptors at `program`; wait; return STATUS and cycles."""
        dev = self.device
        self._w64("PROGRAM", program.physical_address)
        dev.write_reg(REG["LAYER_COUNT"], layer_count)
        if not dev.read_reg(REG["CTRL"]) & AP_IDLE:
            raise DeviceError(f"{dev.name}: engine is not idle (CTRL=0x"
                              f"{dev.read_reg(REG['CTRL']):08X}); reset it before starting")
        dev.start()
        dev.wait(self.timeout_s if timeout_s is None else timeout_s)
        status = dev.read_reg(REG["STATUS"])
        cycles = self._r64("CYCLES")
        return RunInfo(status, cycles)

    def engine_id(self) -> int:
        """Read ENGINE_ID with an identify run (layer_count = 0)."""
        self.device.write_reg(REG["LAYER_COUNT"], 0)
        self.device.start()
        self.device.wait(self.timeout_s)
        return self._r64("ENGINE_ID")
