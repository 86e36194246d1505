"""cocotb test of dg_loader: weight banks and the tile sequence it prepares (dg_module_env).

Reference: dgfpga.contract.formats (params, work lists) and the tile geometry of the
descriptor. Whenever a bank becomes ready, its group's bias and multiplier per lane must be
those of the group's output channels (out-channel list if gated); whenever a patch half
becomes full, its tile record must be the next entry of the sequence (per m-group: the
active tiles, then the residual-only tiles) with the right output origin and size.
"""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from dg_module_env import CFG, LayerRef, edges, get, run_sets, vector_sets
from test_dg_engine import PROGRAM_BASE, layout

CASES = ["dense_3x3_s1_edge_tiles", "dense_3x3_s2_edge", "stem_7x7_s2_maxpool", "conv1_gated_half",
         "conv1_gated_s2", "conv2_identity_in_place", "conv2_downsample_res_only", "wide_channels",
         "im2col_conv1_gated"]


def s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


@cocotb.test()
async def test_loader(dut):
    ld = dut.u_ld
    errors, counts = [], {"banks": 0, "tiles": 0, "weight_reads": 0}

    async def monitor(vs, lay):
        ref = LayerRef(vs)
        d = ref.d
        # the two read masters' bursts: m_axi_gmem_w reads only the weight region (params and
        # weights); m_axi_gmem never reads it in the run (the prefetcher's patches, residuals)
        wlo = lay["bases"]["weight"]
        whi = wlo + int(vs.before["weight"].size)
        groups = -(-ref.out_ch.size // CFG.tm)
        seq = []
        for g in range(groups):
            seq += [(g, int(t), False) for t in ref.tiles] + [(g, int(t), True) for t in ref.res_tiles]
        pos, prev_ready, prev_full, armed, init = 0, 0, 0, False, False
        async for _ in edges(dut.ap_clk):
            armed = armed or init            # bank/half state is reset by the run_init edge
            init = bool(get(dut.u_seq.run_init))
            if get(dut.m_axi_gmem_w_arvalid) and get(dut.m_axi_gmem_w_arready):
                counts["weight_reads"] += 1
                a = get(dut.m_axi_gmem_w_araddr)
                if not wlo <= a < whi:
                    errors.append((vs.name, "weight port read outside the weight region", hex(a)))
            if get(dut.run) and get(dut.m_axi_gmem_arvalid) and get(dut.m_axi_gmem_arready):
                a = get(dut.m_axi_gmem_araddr)
                if wlo <= a < whi:
                    errors.append((vs.name, "read master read the weight region in the run", hex(a)))
            ready, full = (get(ld.bk_ready), get(ld.full)) if armed else (0, 0)
            for b in range(2):
                if ready >> b & 1 and not prev_ready >> b & 1:
                    counts["banks"] += 1
                    g, m0, mg = get(ld.bk_grp[b]), get(ld.bk_m0[b]), get(ld.bk_mg[b])
                    if m0 != g * CFG.tm or mg != min(CFG.tm, ref.out_ch.size - m0):
                        errors.append((vs.name, "bank group", g, m0, mg, ref.out_ch.size))
                        continue
                    for lane in range(mg):
                        ch = int(ref.out_ch[m0 + lane])
                        got = (s32(get(ld.bk_bias[b][lane])), s32(get(ld.bk_mult[b][lane])))
                        if got != (int(ref.bias[ch]), int(ref.mult[ch])):
                            errors.append((vs.name, "params", g, lane, got, (ref.bias[ch], ref.mult[ch])))
                if full >> b & 1 and not prev_full >> b & 1:
                    counts["tiles"] += 1
                    got = (get(ld.t_g[b]), get(ld.t_idx[b]), bool(get(ld.t_res_only[b])))
                    want = seq[pos] if pos < len(seq) else None
                    pos += 1
                    if got != want:
                        errors.append((vs.name, "tile", pos - 1, got, want))
                        continue
                    ty, tx = divmod(want[1], d.grid_w)
                    o0y, o0x = ty * d.tile, tx * d.tile
                    geo = (get(ld.t_o0y[b]), get(ld.t_o0x[b]), get(ld.t_oh[b]), get(ld.t_ow[b]))
                    if geo != (o0y, o0x, min(d.tile, d.out_h - o0y), min(d.tile, d.out_w - o0x)):
                        errors.append((vs.name, "geometry", want, geo))
                    glast = pos == len(seq) or seq[pos][0] != want[0]     # last of its group
                    if bool(get(ld.t_glast[b])) != glast:
                        errors.append((vs.name, "group last", want))
            prev_ready, prev_full = ready, full

    await run_sets(dut, vector_sets(CASES), monitor)
    assert not errors, errors[:5]
    # (all sequence entries seen is implied: the run is bit-exact and every full half matched)
    assert counts["banks"] >= len(CASES) and counts["tiles"] >= len(CASES), counts
    assert counts["weight_reads"] >= counts["banks"], counts     # params at least, per bank


@cocotb.test()
async def test_loader_reset_in_run(dut):
    """A PL reset (ap_rst_n low) while the loader is busy in a run leaves it idle: ld_busy,
    bk_ready and full cleared at once, no loader read command (ld_fire) until the next run,
    and the next start of the same layer is bit-exact (run_sets checks its memory)."""
    from cocotb.triggers import ClockCycles
    from test_dg_engine import TB

    ld = dut.u_ld
    vs = vector_sets(["wide_channels"])[0]
    lay = layout(vs)
    tb = TB(dut, lay["size"])
    await tb.reset()
    tb.ram.write(PROGRAM_BASE, vs.program)
    for r, base in lay["bases"].items():
        tb.ram.write(base, bytes(vs.before[r].tobytes()))
    await tb.write_reg("PROGRAM_LO", PROGRAM_BASE)
    await tb.write_reg("PROGRAM_HI", 0)
    await tb.write_reg("LAYER_COUNT", vs.layer_count)
    for r in ("fmap", "weight", "work", "sums"):
        await tb.write_reg(f"{r.upper()}_BASE_LO", lay["bases"][r])
        await tb.write_reg(f"{r.upper()}_BASE_HI", 0)
        await tb.write_reg(f"{r.upper()}_BYTES", int(vs.before[r].size))
    await tb.write_reg("CTRL", 1)
    busy_cycles = 0
    async for _ in edges(dut.ap_clk):
        busy_cycles += get(ld.ld_busy)
        if busy_cycles == 3:            # loader mid-span: commands issued, beats in flight
            break
    await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 4)
    seen = []
    async for _ in edges(dut.ap_clk):
        seen.append((get(ld.ld_busy), get(ld.bk_ready), get(ld.full)))
        if len(seen) == 2:
            break
    assert seen == [(0, 0, 0)] * 2, f"loader state in reset (ld_busy, bk_ready, full): {seen}"
    await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1
    fires = 0
    n = 0
    async for _ in edges(dut.ap_clk):
        fires += get(ld.ld_fire) + get(ld.rcmd_valid) + get(ld.wt_rcmd_valid) + get(ld.ld_busy)
        n += 1
        if n == 64:
            break
    assert fires == 0, "the loader issued reads / stayed busy after a reset with no run"

    # the next start of the same layer (memory rewritten: the reset may have cut a write)
    await RisingEdge(dut.ap_clk)
    await tb.reset()
    tb.ram.write(PROGRAM_BASE, vs.program)
    for r, base in lay["bases"].items():
        tb.ram.write(base, bytes(vs.before[r].tobytes()))
    args = {"program": PROGRAM_BASE, "layer_count": vs.layer_count}
    for r in ("fmap", "weight", "work", "sums"):
        args[f"{r}_base"] = lay["bases"][r]
        args[f"{r}_bytes"] = int(vs.before[r].size)
    out = await tb.run(args, 2_000_000)
    assert not out["timeout"] and out["status"] == vs.expected_status, out
    for r in ("fmap", "sums"):
        got = np.frombuffer(tb.ram.read(lay["bases"][r], vs.before[r].size), np.uint8)
        assert np.array_equal(got, np.asarray(vs.expected[r], np.uint8)), f"after reset: {r} differs"
