"""cocotb testbench of dg_axi_rd: commands -> INCR bursts (max burst, 4 KB), in-order data with rd_last."""
from __future__ import annotations

import itertools
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiRamRead, AxiReadBus

DATA_W = int(os.environ.get("DG_PARAM_DATA_W", "64"))
MAX_BURST = int(os.environ.get("DG_PARAM_MAX_BURST", "16"))
AB = DATA_W // 8


class TB:
    def __init__(self, dut):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.ram = AxiRamRead(AxiReadBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=1 << 16)
        dut.cmd_valid.value = 0
        dut.rd_ready.value = 0
        dut.err_clear.value = 0
        self.bursts = []
        cocotb.start_soon(self.ar_monitor())

    async def ar_monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            if int(self.dut.m_axi_arvalid.value) and int(self.dut.m_axi_arready.value):
                self.bursts.append((int(self.dut.m_axi_araddr.value), int(self.dut.m_axi_arlen.value) + 1))

    def set_backpressure(self, on: bool):
        if on:
            self.ram.ar_channel.set_pause_generator(itertools.cycle([0, 1, 0]))
            self.ram.r_channel.set_pause_generator(itertools.cycle([0, 0, 1]))
        else:
            self.ram.ar_channel.clear_pause_generator()
            self.ram.r_channel.clear_pause_generator()

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def run_cmds(self, cmds, sink_pause: bool):
        """Issue commands and collect the beats; returns a list of (beats, last flags) per command."""
        got, cur = [], []
        done = cocotb.triggers.Event()

        async def sink():
            rng = random.Random(1)
            while len(got) < len(cmds):
                self.dut.rd_ready.value = 0 if (sink_pause and rng.random() < 0.3) else 1
                await RisingEdge(self.dut.clk)
                if int(self.dut.rd_valid.value) and int(self.dut.rd_ready.value):
                    cur.append(int(self.dut.rd_data.value).to_bytes(AB, "little"))
                    if int(self.dut.rd_last.value):
                        got.append(list(cur))
                        cur.clear()
            self.dut.rd_ready.value = 0
            done.set()

        cocotb.start_soon(sink())
        for addr, beats in cmds:
            self.dut.cmd_addr.value = addr
            self.dut.cmd_beats.value = beats
            self.dut.cmd_valid.value = 1
            await RisingEdge(self.dut.clk)
            while not int(self.dut.cmd_ready.value):
                await RisingEdge(self.dut.clk)
            self.dut.cmd_valid.value = 0
        await done.wait()
        return got


async def _check(dut, backpressure: bool):
    tb = TB(dut)
    await tb.reset()
    tb.set_backpressure(backpressure)
    mem = bytes(random.Random(7).getrandbits(8) for _ in range(1 << 16))
    tb.ram.write(0, mem)
    rng = random.Random(3)
    cmds = [(0x0FF0 & ~(AB - 1), 9), (0x1000 - AB, 2), (0x2000 - 3 * AB, 40), (0, 1), (0x100, MAX_BURST),
            (0x100, MAX_BURST + 1)]
    cmds += [((rng.randrange(0, 0xE000) // AB) * AB, rng.randint(1, 70)) for _ in range(12)]
    got = await tb.run_cmds(cmds, sink_pause=backpressure)
    for (addr, beats), data in zip(cmds, got):
        assert len(data) == beats, f"command @0x{addr:x}: {len(data)} beats, want {beats}"
        assert b"".join(data) == mem[addr:addr + beats * AB], f"data of command @0x{addr:x}"
    for addr, n in tb.bursts:
        assert n <= MAX_BURST, f"burst of {n} beats > MAX_BURST {MAX_BURST}"
        assert addr // 4096 == (addr + n * AB - 1) // 4096, f"burst @0x{addr:x} x{n} crosses 4 KB"
    assert sum(n for _, n in tb.bursts) == sum(b for _, b in cmds)
    await ClockCycles(dut.clk, 2)
    assert int(dut.idle.value) == 1 and int(dut.err.value) == 0


@cocotb.test()
async def test_bursts(dut):
    """Random commands, bursts split at MAX_BURST and 4 KB, data in order."""
    await _check(dut, False)


@cocotb.test()
async def test_bursts_backpressure(dut):
    """Same with AR/R stalls and a stalling consumer."""
    await _check(dut, True)
