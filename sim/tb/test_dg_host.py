"""The board runtime inside the RTL simulation: NetworkRunner over a cocotb-bridged device.

The runner is the same blocking code that drives the Ultra96. It runs in a cocotb
`bridge` thread; its device calls go into the simulation through `resume`: register
reads and writes become AXI4-Lite transactions of cocotbext-axi's `AxiLiteMaster`,
waiting for ap_done is a simulated wait on the interrupt line, and buffers live in a
cocotbext-axi `AxiRam` (flush copies the CPU view into the RAM, invalidate copies back,
as the cache operations do on the board). Environment (set by dgfpga.backends.rtl_sim.run_host_cocotb):

  DG_BUNDLE    bundle folder (dgfpga build-hls)
  DG_IMAGES    self-check images to run (gated and dense each)
  DG_RESULTS   JSON file for the results
  DG_TIMEOUT   cycle budget per engine start
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam, AxiRamRead, AxiReadBus

from dgfpga_host.bundle import load_bundle
from dgfpga_host.device import REG, Device, DeviceBuffer, EngineTimeout
from dgfpga_host.runner import NetworkRunner

CLK_NS = 10
RAM_BYTES = 1 << 21


class _RamBuffer(DeviceBuffer):
    def __init__(self, ram: AxiRam, array: np.ndarray, address: int):
        super().__init__(array, address)
        self._ram = ram

    coherent = False          # the AxiRam is the engine's memory: copy each range through

    def _flush(self, offset: int, nbytes: int) -> None:
        self._ram.write(self.physical_address + offset,
                        self.array[offset:offset + nbytes].tobytes())

    def _invalidate(self, offset: int, nbytes: int) -> None:
        self.array[offset:offset + nbytes] = np.frombuffer(
            self._ram.read(self.physical_address + offset, nbytes), np.uint8)


class CocotbDevice(Device):
    """The device protocol implemented by simulated AXI transactions (call from a bridge)."""

    name = "rtl-cocotb"

    def __init__(self, dut, ctrl: AxiLiteMaster, ram: AxiRam, timeout_cycles: int):
        self.dut, self.ctrl, self.ram = dut, ctrl, ram
        self.timeout_cycles = timeout_cycles
        self._next = 0x1000

    def allocate(self, nbytes: int) -> DeviceBuffer:
        n = max(int(nbytes), 1)
        if self._next + n > RAM_BYTES:
            raise MemoryError(f"AxiRam of {RAM_BYTES} bytes is full")
        buf = _RamBuffer(self.ram, np.zeros(n, np.uint8), self._next)
        buf.flush()
        self._next += -(-n // 0x1000) * 0x1000 + 0x1000
        return buf

    def write_reg(self, offset: int, value: int) -> None:
        resume(self.ctrl.write_dword)(offset, int(value) & 0xFFFFFFFF)

    def read_reg(self, offset: int) -> int:
        return int(resume(self.ctrl.read_dword)(offset))

    def start(self, timeout_s=None) -> None:
        self.write_reg(REG["GIE"], 1)
        self.write_reg(REG["IER"], 1)
        super().start(timeout_s)

    def wait(self, timeout_s: float) -> None:
        """Wait for ap_done in *simulated* time (the cycle budget), then clear the ISR."""
        async def done() -> bool:
            if int(self.dut.interrupt.value):
                return True
            timer = Timer(self.timeout_cycles * CLK_NS, unit="ns")
            return await First(RisingEdge(self.dut.interrupt), timer) is not timer

        if not resume(done)():
            raise EngineTimeout(f"rtl-cocotb: no ap_done within {self.timeout_cycles} cycles")
        self.write_reg(REG["ISR"], 1)       # acknowledge the interrupt, as a driver would


@cocotb.test()
async def run_network(dut):
    """The bundle's self-check images through the runner, gated and dense, bit for bit."""
    cocotb.start_soon(Clock(dut.ap_clk, CLK_NS, unit="ns").start())
    ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False)
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                 reset_active_level=False, size=RAM_BYTES)
    # the read-only weight master m_axi_gmem_w on the same memory (two HP ports on one DDR)
    ram_w = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi_gmem_w"), dut.ap_clk, dut.ap_rst_n,
                       reset_active_level=False, size=RAM_BYTES, mem=ram.mem)
    for model in (ctrl, ram):              # thousands of transactions: log only problems
        for iface in (model.write_if, model.read_if):
            iface.log.setLevel(logging.WARNING)
    ram_w.log.setLevel(logging.WARNING)
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)
    b = load_bundle(os.environ["DG_BUNDLE"])
    n = int(os.environ.get("DG_IMAGES", "1"))
    dev = CocotbDevice(dut, ctrl, ram, int(os.environ.get("DG_TIMEOUT", "20000000")))

    @bridge
    def host() -> list:
        runner = NetworkRunner(b, dev)          # the board's code, blocking calls
        sc = b.selfcheck
        out = []
        for i in range(n):
            g = runner.run_image(sc.images[i])
            d = runner.run_image(sc.images[i], dense=True)
            masks_ok = all(np.array_equal(g.spatial[k], sc.spatial[k][i]) and
                           np.array_equal(g.channel[k], sc.channel[k][i])
                           for k in range(len(sc.spatial)))
            out.append({"image": i, "gated_cycles": g.cycles, "dense_cycles": d.cycles,
                        "gated_macs": g.macs, "dense_macs": d.macs,
                        "gated_ok": bool(np.array_equal(g.logits_int, sc.logits_int[i])) and masks_ok,
                        "dense_ok": bool(np.array_equal(d.logits_int, sc.logits_int_dense[i]))})
        return out

    results = await host()
    path = os.environ.get("DG_RESULTS")
    if path:
        Path(path).write_text(json.dumps(results, indent=1))
    assert all(r["gated_ok"] and r["dense_ok"] for r in results), results
