"""cocotb testbench of dg_axi_wr: commands + strobed beats -> INCR bursts (max burst, 4 KB), all responses."""
from __future__ import annotations

import itertools
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiRamWrite, AxiWriteBus

DATA_W = int(os.environ.get("DG_PARAM_DATA_W", "64"))
MAX_BURST = int(os.environ.get("DG_PARAM_MAX_BURST", "16"))
AB = DATA_W // 8


class TB:
    def __init__(self, dut):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.ram = AxiRamWrite(AxiWriteBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=1 << 16)
        dut.cmd_valid.value = 0
        dut.wd_valid.value = 0
        dut.err_clear.value = 0
        self.bursts = []
        cocotb.start_soon(self.aw_monitor())

    async def aw_monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            if int(self.dut.m_axi_awvalid.value) and int(self.dut.m_axi_awready.value):
                self.bursts.append((int(self.dut.m_axi_awaddr.value), int(self.dut.m_axi_awlen.value) + 1))

    def set_backpressure(self, on: bool):
        for ch in (self.ram.aw_channel, self.ram.w_channel, self.ram.b_channel):
            if on:
                ch.set_pause_generator(itertools.cycle([0, 1, 0, 0]))
            else:
                ch.clear_pause_generator()

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)


async def _check(dut, backpressure: bool):
    tb = TB(dut)
    await tb.reset()
    tb.set_backpressure(backpressure)
    rng = random.Random(5)
    model = bytearray(1 << 16)
    tb.ram.write(0, bytes(model))
    cmds = [(0x0FF0 & ~(AB - 1), 9), (0x1000 - AB, 2), (0x3000 - 3 * AB, 40), (0x40, 1),
            (0x200, MAX_BURST + 3)]
    cmds += [((rng.randrange(0, 0xE000) // AB) * AB, rng.randint(1, 50)) for _ in range(10)]
    beats = []
    for addr, n in cmds:
        for i in range(n):
            data = rng.getrandbits(8 * AB)
            strb = rng.getrandbits(AB) if rng.random() < 0.5 else (1 << AB) - 1
            beats.append((data, strb))
            a = addr + i * AB
            for b in range(AB):
                if strb >> b & 1:
                    model[a + b] = (data >> (8 * b)) & 0xFF

    async def data_source():
        for data, strb in beats:
            dut.wd_data.value = data
            dut.wd_strb.value = strb
            dut.wd_valid.value = 1
            await RisingEdge(dut.clk)
            while not int(dut.wd_ready.value):
                await RisingEdge(dut.clk)
            dut.wd_valid.value = 0
            if backpressure and rng.random() < 0.2:
                await RisingEdge(dut.clk)

    src = cocotb.start_soon(data_source())
    for addr, n in cmds:
        dut.cmd_addr.value = addr
        dut.cmd_beats.value = n
        dut.cmd_valid.value = 1
        await RisingEdge(dut.clk)
        while not int(dut.cmd_ready.value):
            await RisingEdge(dut.clk)
        dut.cmd_valid.value = 0
    await src
    for _ in range(2000):
        await RisingEdge(dut.clk)
        if int(dut.idle.value):
            break
    assert int(dut.idle.value) == 1, "all responses back"
    assert tb.ram.read(0, 1 << 16) == bytes(model), "memory differs from the strobed model"
    for addr, n in tb.bursts:
        assert n <= MAX_BURST, f"burst of {n} beats > MAX_BURST {MAX_BURST}"
        assert addr // 4096 == (addr + n * AB - 1) // 4096, f"burst @0x{addr:x} x{n} crosses 4 KB"
    assert int(dut.err.value) == 0


@cocotb.test()
async def test_bursts(dut):
    """Random commands with random strobes; bursts split at MAX_BURST and 4 KB."""
    await _check(dut, False)


@cocotb.test()
async def test_bursts_backpressure(dut):
    """Same with AW/W/B stalls and a bursty data source."""
    await _check(dut, True)
