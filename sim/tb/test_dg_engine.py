"""cocotb testbench of dg_engine: runs vector sets (docs/test_vectors.md) against a cocotbext-axi AxiRam.

Per vector set: load the regions into the RAM (one memory behind both of the engine's AXI
masters: m_axi_gmem, and the read-only m_axi_gmem_w of the weights), program the registers with AxiLiteMaster
(offsets from dgfpga.contract.regmap), start, wait for the ap_done interrupt (no per-cycle Python
on the control side), then compare every region the set has an expected image of (FMAP and
SUMS; WORK too when given) bit for bit and STATUS.
Environment (set by dgfpga.backends.rtl_sim / tests/test_rtl_engine.py):

  DG_VECTORS   vector set folders, os.pathsep separated
  DG_RESULTS   JSON file to write per-vector results to
  DG_STALL     memory back-pressure: "none" (default), "rd", "wr", "both" (AxiRam pause
               generators, 1 cycle in 4 stalled) or "heavy" (every other cycle)
  DG_TIMEOUT   cycle budget per vector set (default 2_000_000)
  DG_RUN_FLAGS the RUN_FLAGS register of every start (default: the set's run_flags; bit 0 DENSE)
  DG_DUMP      folder: after each start write <name>.<region>.bin of all four regions (a
               network program writes WORK: masks, lists, logits, the cycle log, which the
               caller compares with its own rules)
  DG_AXI_ERR   JSON {"region", "offset"}: the test `axi_error_weight_port` instead (the only
               one it runs; rtl_sim.run_cocotb_axi_error): the first vector set of DG_VECTORS
               twice without a reset between, the first start with the weight port answering
               SLVERR on the beats covering that byte, the second without
"""
from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam, AxiRamRead, AxiReadBus

from dgfpga.contract import regmap
from dgfpga.backends.rtl_sim import layout as rtl_layout
from dgfpga.backends.vectors import read_vector_set

CLK_NS = 10
REG = {r.name: r.offset for r in regmap.REGISTERS}
PROGRAM_BASE = 0x0


def layout(vs) -> dict:
    """Region bases and RAM size: the same rule as the fast harness (dgfpga.backends.rtl_sim.layout)."""
    return rtl_layout(vs.program, vs.before)


def pause_pattern(kind: str):
    if kind == "heavy":
        return itertools.cycle([1, 0])
    return itertools.cycle([0, 0, 0, 1])


class ErrRamRead(AxiRamRead):
    """AxiRamRead that answers SLVERR on the beats covering byte `err_addr` (None: never):
    cocotbext-axi's read slave answers SLVERR for a beat whose `_read` raises."""
    err_addr = None

    async def _read(self, address, length):
        if self.err_addr is not None and address <= self.err_addr < address + length:
            raise OSError(f"injected SLVERR at {self.err_addr:#x}")
        return await super()._read(address, length)


def weight_port(dut, ram: AxiRam) -> ErrRamRead:
    """The read-only weight master m_axi_gmem_w on the same memory as `ram` (two HP ports on
    one DDR)."""
    return ErrRamRead(AxiReadBus.from_prefix(dut, "m_axi_gmem_w"), dut.ap_clk, dut.ap_rst_n,
                      reset_active_level=False, size=ram.size, mem=ram.mem)


class TB:
    def __init__(self, dut, ram_size: int):
        self.dut = dut
        cocotb.start_soon(Clock(dut.ap_clk, CLK_NS, unit="ns").start())
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk,
                                  dut.ap_rst_n, reset_active_level=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, size=ram_size)
        self.ram_w = weight_port(dut, self.ram)

    def set_stall(self, kind: str) -> None:
        if kind in ("rd", "both", "heavy"):
            for rd in (self.ram.read_if, self.ram_w):
                rd.r_channel.set_pause_generator(pause_pattern(kind))
                rd.ar_channel.set_pause_generator(pause_pattern(kind))
        if kind in ("wr", "both", "heavy"):
            self.ram.write_if.w_channel.set_pause_generator(pause_pattern(kind))
            self.ram.write_if.aw_channel.set_pause_generator(pause_pattern(kind))

    async def reset(self) -> None:
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    async def write_reg(self, name: str, value: int) -> None:
        await self.ctrl.write_dword(REG[name], value & 0xFFFFFFFF)

    async def read_reg(self, name: str) -> int:
        return await self.ctrl.read_dword(REG[name])

    async def run(self, args: dict, timeout_cycles: int) -> dict:
        """Program arguments, start, wait for the ap_done interrupt; return the outputs."""
        for name, value in args.items():
            if name in ("program", "fmap_base", "weight_base", "work_base", "sums_base"):
                await self.write_reg(f"{name.upper()}_LO", value)
                await self.write_reg(f"{name.upper()}_HI", value >> 32)
            else:
                await self.write_reg(name.upper(), value)
        await self.write_reg("GIE", 1)
        await self.write_reg("IER", 1)
        t0 = time.perf_counter()
        await self.write_reg("CTRL", 1)
        timer = Timer(timeout_cycles * CLK_NS, unit="ns")
        fired = await First(RisingEdge(self.dut.interrupt), timer)
        wall = time.perf_counter() - t0
        if fired is timer:
            probe = {}
            for path in ("u_seq.state", "u_seq.layer", "u_ld.pf_state", "u_ld.ld_busy", "u_ld.ld_g",
                         "u_ld.pf_g", "u_ld.pf_i", "full", "wb_gdone", "u_cp.cp_state", "u_cp.inflight",
                         "u_wb.pl_state", "u_wb.rq_inflight", "wb_busy", "bk_ready", "u_ld.sp_phase",
                         "u_ld.ldf_free", "rd_idle"):
                try:
                    h = self.dut
                    for part in path.split("."):
                        h = getattr(h, part)
                    probe[path] = int(h.value)
                except Exception:  # noqa: BLE001 - debug aid only (HLS RTL has other names)
                    pass
            self.dut._log.warning("timeout; engine state %s", probe)
            return {"timeout": True, "wall_s": wall, "probe": probe}
        ctrl = await self.read_reg("CTRL")
        out = {
            "timeout": False, "wall_s": wall, "ctrl": ctrl,
            "status": await self.read_reg("STATUS"),
            "status_vld": await self.read_reg("STATUS_CTRL"),
            "cycles": (await self.read_reg("CYCLES_LO")) | ((await self.read_reg("CYCLES_HI")) << 32),
            "engine_id": (await self.read_reg("ENGINE_ID_LO")) | ((await self.read_reg("ENGINE_ID_HI")) << 32),
            "ctrl_after_read": await self.read_reg("CTRL"),
        }
        await self.write_reg("ISR", 1)           # toggle the pending ap_done bit off
        out["irq_after_clear"] = int(self.dut.interrupt.value)
        return out


def compare(name: str, got: bytes, want) -> dict:
    import numpy as np
    g = np.frombuffer(got, dtype=np.uint8)
    w = np.asarray(want, dtype=np.uint8)
    diff = np.flatnonzero(g != w)
    return {"bytes": int(w.size), "mismatches": int(diff.size),
            "first": int(diff[0]) if diff.size else None}


def _load(tb: TB, vs, lay: dict) -> dict:
    """The set's program and regions into the RAM; returns the start's register arguments."""
    tb.ram.write(PROGRAM_BASE, vs.program)
    for r, base in lay["bases"].items():
        tb.ram.write(base, bytes(vs.before[r].tobytes()))
    args = {"program": PROGRAM_BASE, "layer_count": vs.layer_count,
            "run_flags": int(getattr(vs, "run_flags", 0))}
    for r in ("fmap", "weight", "work", "sums"):
        args[f"{r}_base"] = lay["bases"][r]
        args[f"{r}_bytes"] = int(vs.before[r].size)
    return args


@cocotb.test(skip=not os.environ.get("DG_AXI_ERR"))
async def axi_error_weight_port(dut):
    """A weight-port SLVERR, then the host's next start (no reset: the engine clears its error
    flags at ap_start) on the memory image again: results of both starts in DG_RESULTS."""
    spec = json.loads(os.environ["DG_AXI_ERR"])
    folder = Path(os.environ["DG_VECTORS"].split(os.pathsep)[0])
    timeout = int(os.environ.get("DG_TIMEOUT", "2000000"))
    vs = read_vector_set(folder)
    lay = layout(vs)
    tb = TB(dut, lay["size"])
    results = []
    await tb.reset()
    for armed in (True, False):
        args = _load(tb, vs, lay)
        tb.ram_w.err_addr = lay["bases"][spec["region"]] + int(spec["offset"]) if armed else None
        out = await tb.run(args, timeout)
        rec = {"name": vs.name, "armed": armed, "expected_status": int(vs.expected_status), **out}
        if not out["timeout"]:
            for r in ("fmap", "work", "sums"):
                if r in vs.expected:
                    got = bytearray(tb.ram.read(lay["bases"][r], vs.before[r].size))
                    want = bytes(vs.expected[r].tobytes())
                    for region, off, n in getattr(vs, "ignore", ()):
                        if region == r:
                            got[off:off + n] = want[off:off + n]
                    rec[r] = compare(r, bytes(got), vs.expected[r])
        dut._log.info("%s (error %s): status=0x%08X cycles=%s", vs.name,
                      "armed" if armed else "off", out.get("status", -1), out.get("cycles"))
        results.append(rec)
    Path(os.environ["DG_RESULTS"]).write_text(json.dumps(results, indent=1))


@cocotb.test()
async def run_vectors(dut):
    """Every vector set of DG_VECTORS, bit for bit."""
    folders = [Path(p) for p in os.environ.get("DG_VECTORS", "").split(os.pathsep) if p]
    assert folders, "DG_VECTORS names no vector set"
    stall = os.environ.get("DG_STALL", "none")
    timeout = int(os.environ.get("DG_TIMEOUT", "2000000"))
    env_flags = os.environ.get("DG_RUN_FLAGS")
    dump = os.environ.get("DG_DUMP")
    sets = [read_vector_set(f) for f in folders]
    size = max(layout(vs)["size"] for vs in sets)
    tb = TB(dut, size)
    tb.set_stall(stall)
    results = []
    for folder, vs in zip(folders, sets):
        lay = layout(vs)
        await tb.reset()
        tb.ram.write(PROGRAM_BASE, vs.program)
        for r, base in lay["bases"].items():
            tb.ram.write(base, bytes(vs.before[r].tobytes()))
        run_flags = int(env_flags, 0) if env_flags else int(getattr(vs, "run_flags", 0))
        args = {"program": PROGRAM_BASE, "layer_count": vs.layer_count, "run_flags": run_flags}
        for r in ("fmap", "weight", "work", "sums"):
            args[f"{r}_base"] = lay["bases"][r]
            args[f"{r}_bytes"] = int(vs.before[r].size)
        out = await tb.run(args, timeout)
        rec = {"name": vs.name, "folder": str(folder), "stall": stall, "macs": int(vs.macs),
               "layer_count": vs.layer_count, "expected_status": int(vs.expected_status), **out}
        if not out["timeout"]:
            checked = [r for r in ("fmap", "weight", "work", "sums") if r in vs.expected]
            for r in checked:
                got = bytearray(tb.ram.read(lay["bases"][r], vs.before[r].size))
                want = bytes(vs.expected[r].tobytes())
                for region, off, n in getattr(vs, "ignore", ()):   # e.g. the cycle log
                    if region == r:
                        got[off:off + n] = want[off:off + n]
                rec[r] = compare(r, bytes(got), vs.expected[r])
            if dump:
                for r in ("fmap", "weight", "work", "sums"):
                    Path(dump, f"{vs.name}.{r}.bin").write_bytes(
                        bytes(tb.ram.read(lay["bases"][r], vs.before[r].size)))
            rec["pass"] = (out["status"] == vs.expected_status
                           and all(rec[r]["mismatches"] == 0 for r in checked))
        else:
            rec["pass"] = False
        dut._log.info("%s: %s status=0x%08X (want 0x%08X) cycles=%s", vs.name,
                      "PASS" if rec["pass"] else "FAIL", out.get("status", -1),
                      vs.expected_status, out.get("cycles"))
        results.append(rec)
    path = os.environ.get("DG_RESULTS")
    if path:
        Path(path).write_text(json.dumps(results, indent=1))
    bad = [r["name"] for r in results if not r["pass"]]
    assert not bad, f"vector sets failed: {bad}"
