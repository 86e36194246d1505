"""cocotb testbench of dg_axil_regs: the ap_ctrl_hs register map of dgfpga.contract.regmap."""
from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from dgfpga.contract import regmap

REG = {r.name: r.offset for r in regmap.REGISTERS}
INPUT_ARGS = [a for a in regmap.ARGUMENTS if a.direction == "in"]


class TB:
    def __init__(self, dut):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for s in ("ap_done", "ap_ready", "out_status_vld", "out_cycles_vld", "out_engine_id_vld"):
            getattr(dut, s).value = 0
        dut.ap_idle.value = 1
        dut.out_status.value = 0
        dut.out_cycles.value = 0
        dut.out_engine_id.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def pulse(self, *names):
        for n in names:
            getattr(self.dut, n).value = 1
        await RisingEdge(self.dut.clk)
        for n in names:
            getattr(self.dut, n).value = 0
        await RisingEdge(self.dut.clk)

    async def rd(self, name):
        return await self.axil.read_dword(REG[name])

    async def wr(self, name, v):
        await self.axil.write_dword(REG[name], v)


@cocotb.test()
async def test_ctrl_handshake(dut):
    """ap_start set by the host, cleared by ap_ready; ap_done/ap_ready clear on read; idle mirrors."""
    tb = TB(dut)
    await tb.reset()
    assert await tb.rd("CTRL") == 0x4, "reset: only ap_idle"
    await tb.wr("CTRL", 1)
    assert int(dut.ap_start.value) == 1
    assert (await tb.rd("CTRL")) & 1 == 1
    dut.ap_idle.value = 0
    await tb.pulse("ap_ready", "ap_done")
    assert int(dut.ap_start.value) == 0, "ap_ready clears ap_start (no auto-restart)"
    dut.ap_idle.value = 1
    v = await tb.rd("CTRL")
    assert v & 0b1110 == 0b1110, f"done|idle|ready expected, CTRL=0x{v:x}"
    v = await tb.rd("CTRL")
    assert v & 0b1010 == 0, f"ap_done/ap_ready clear on read, CTRL=0x{v:x}"
    await tb.wr("CTRL", 0x80)
    assert (await tb.rd("CTRL")) & 0x80, "auto_restart is RW"
    await tb.wr("CTRL", 0x81)
    await tb.pulse("ap_ready")
    assert int(dut.ap_start.value) == 1, "auto_restart keeps ap_start"


@cocotb.test()
async def test_interrupts(dut):
    """GIE/IER enable, ISR set by events and toggled by writing 1."""
    tb = TB(dut)
    await tb.reset()
    await tb.pulse("ap_done")
    assert await tb.rd("ISR") == 0 and int(dut.irq.value) == 0, "IER off: no ISR bit"
    await tb.wr("IER", 3)
    await tb.pulse("ap_done")
    assert await tb.rd("ISR") == 1
    assert int(dut.irq.value) == 0, "GIE off: no interrupt"
    await tb.wr("GIE", 1)
    await RisingEdge(dut.clk)
    assert int(dut.irq.value) == 1
    await tb.wr("ISR", 1)
    assert await tb.rd("ISR") == 0 and int(dut.irq.value) == 0, "write 1 toggles the bit off"
    await tb.wr("ISR", 2)
    assert await tb.rd("ISR") == 2, "write 1 toggles the bit on (TOW)"
    await tb.pulse("ap_ready")
    assert await tb.rd("ISR") == 2
    await tb.wr("ISR", 2)
    assert await tb.rd("GIE") == 1 and await tb.rd("IER") == 3


@cocotb.test()
async def test_arguments(dut):
    """Every input argument register is RW and drives its port; output arguments latch with ap_vld COR."""
    tb = TB(dut)
    await tb.reset()
    vals = {}
    for i, a in enumerate(INPUT_ARGS):
        v = (0x1234_5000 + i * 0x111) | (((0x40 + i) << 32) if a.bits == 64 else 0)
        vals[a.name] = v
        if a.bits == 64:
            await tb.wr(f"{a.name.upper()}_LO", v & 0xFFFFFFFF)
            await tb.wr(f"{a.name.upper()}_HI", v >> 32)
        else:
            await tb.wr(a.name.upper(), v)
    ports = {"program": "arg_program", "layer_count": "arg_layer_count"}
    for a in INPUT_ARGS:
        port = ports.get(a.name, f"arg_{a.name}")
        assert int(getattr(dut, port).value) == vals[a.name], a.name
        if a.bits == 64:
            assert await tb.rd(f"{a.name.upper()}_LO") == vals[a.name] & 0xFFFFFFFF
            assert await tb.rd(f"{a.name.upper()}_HI") == vals[a.name] >> 32
    dut.out_status.value = 0x00070109
    dut.out_cycles.value = 0x1_2345_6789
    dut.out_engine_id.value = 0xD6E0_0001_E356_6D5F
    await tb.pulse("out_status_vld", "out_cycles_vld", "out_engine_id_vld")
    assert await tb.rd("STATUS") == 0x00070109
    assert await tb.rd("STATUS_CTRL") == 1
    assert await tb.rd("STATUS_CTRL") == 0, "ap_vld clears on read"
    assert await tb.rd("CYCLES_LO") == 0x2345_6789 and await tb.rd("CYCLES_HI") == 1
    assert await tb.rd("CYCLES_CTRL") == 1 and await tb.rd("CYCLES_CTRL") == 0
    assert await tb.rd("ENGINE_ID_HI") == 0xD6E0_0001 and await tb.rd("ENGINE_ID_LO") == 0xE356_6D5F
    assert await tb.rd("ENGINE_ID_CTRL") == 1
    # partial write strobes
    await tb.axil.write(REG["FMAP_BYTES"], b"\xAA")
    assert await tb.rd("FMAP_BYTES") == (vals["fmap_bytes"] & 0xFFFFFF00) | 0xAA
