"""Shared harness of the engine-module testbenches (test_dg_sequencer/_loader/_compute/_writeback).

Each of those tests checks ONE module of dg_engine against an independent reference
(dgfpga.contract.formats decoding, numpy convolution, the vector set's expected memory),
observing that module's own ports while the engine runs shared sweep layers
(dgfpga.backends.vectors) of the config the RTL was built for (DG_CONFIG) on a cocotbext-axi
AxiRam. The engine around the module is its realistic environment; what a test asserts is
only what the module itself produces.
"""
from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, ReadOnly

from dgfpga.contract import formats
from dgfpga.contract.engine_config import load_config
from dgfpga.backends.vectors import build_layer_case, sweep_cases
from test_dg_engine import PROGRAM_BASE, TB, layout

CFG = load_config(os.environ.get("DG_CONFIG", "small"))
REGIONS = ("fmap", "weight", "work", "sums")


def vector_sets(names) -> list:
    by_name = {c.name: c for c in sweep_cases(CFG)}
    return [build_layer_case(by_name[n], CFG) for n in names]


class LayerRef:
    """Reference view of one (valid) layer of a vector set, from the formats module."""

    def __init__(self, vs, i: int = 0):
        nb = formats.DESCRIPTOR_BYTES
        self.d = d = formats.unpack_descriptor(vs.program[i * nb:(i + 1) * nb], CFG)
        before = {r: np.asarray(vs.before[r], np.uint8) for r in REGIONS}
        self.work = formats.read_work_list(d, before["work"].tobytes())
        w = before["weight"]
        self.weights = formats.read_layer_weights(w, d, CFG).astype(np.int64)
        self.bias, self.mult = formats.unpack_params(
            w[d.param_offset:d.param_offset + d.out_c * formats.PARAM_BYTES].tobytes(), d.out_c)
        inc = (self.work.in_channels if d.in_ch_gated else np.arange(d.in_c)).astype(np.int64)
        outc = (self.work.out_channels if d.out_ch_gated else np.arange(d.out_c)).astype(np.int64)
        self.in_ch, self.out_ch = inc, outc
        fm = before["fmap"]
        n_in = inc.size
        x = fm[d.in_offset:d.in_offset + d.in_h * d.in_w * n_in].reshape(d.in_h, d.in_w, n_in)
        x = x.view(np.int8) if d.in_signed else x
        self.x_full = np.zeros((d.in_c, d.in_h, d.in_w), np.int64)   # inactive channels are 0
        self.x_full[inc] = np.moveaxis(x.astype(np.int64), -1, 0)
        self.tiles = self.work.tiles.astype(np.int64)
        self.res_tiles = self.work.res_tiles.astype(np.int64)

    def conv_acc(self) -> np.ndarray:
        """int64 [out_c, conv_h, conv_w]: the accumulators without bias (numpy reference)."""
        from dgfpga.numerics.golden import conv2d_int
        d = self.d
        return conv2d_int(self.x_full[None], self.weights, d.stride, d.pad)[0]


def get(h) -> int:
    return int(h.value)


async def run_sets(dut, sets, make_monitor, timeout: int = 2_000_000,
                   program_offsets=None) -> list:
    """Run each vector set on the engine with `make_monitor(vs, lay)` (a coroutine) watching
    the module; returns [(vs, outputs)]. Memory is compared too (the run must be good).
    `program_offsets`: per set, bytes added to the program's address (default 0)."""
    tb = TB(dut, max(layout(vs)["size"] for vs in sets))
    done = []
    for k, vs in enumerate(sets):
        lay = layout(vs)
        off = program_offsets[k] if program_offsets else 0
        assert PROGRAM_BASE + off + len(vs.program) <= min(lay["bases"].values()), vs.name
        await tb.reset()
        tb.ram.write(PROGRAM_BASE, bytes(off) + vs.program)
        for r, base in lay["bases"].items():
            tb.ram.write(base, bytes(vs.before[r].tobytes()))
        args = {"program": PROGRAM_BASE + off, "layer_count": vs.layer_count}
        for r in REGIONS:
            args[f"{r}_base"] = lay["bases"][r]
            args[f"{r}_bytes"] = int(vs.before[r].size)
        mon = cocotb.start_soon(make_monitor(vs, lay))
        out = await tb.run(args, timeout)
        mon.kill()
        assert not out["timeout"], f"{vs.name}: timeout"
        if os.environ.get("DG_MODULE_ONLY") == "1":
            continue    # mutation checks: only the module's own assertions count
        assert out["status"] == vs.expected_status, (vs.name, hex(out["status"]))
        for r in ("fmap", "sums"):
            got = np.frombuffer(tb.ram.read(lay["bases"][r], vs.before[r].size), np.uint8)
            assert np.array_equal(got, np.asarray(vs.expected[r], np.uint8)), f"{vs.name}: {r} differs"
        done.append((vs, out))
    return done


async def edges(clk):
    """Yield after each rising edge, once the values of that edge have settled."""
    while True:
        await RisingEdge(clk)
        await ReadOnly()
        yield
