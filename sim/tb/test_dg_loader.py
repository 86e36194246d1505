"""cocotb test of dg_loader: weight banks and the tile sequence it prepares (dg_module_env).

Reference: dgfpga.contract.formats (params, work lists) and the tile geometry of the
descriptor. Whenever a bank becomes ready, its group's bias and multiplier per lane must be
those of the group's output channels (out-channel list if gated); whenever a patch half
becomes full, its tile record must be the next entry of the sequence (per m-group: the
active tiles, then the residual-only tiles) with the right output origin and size.
"""
from __future__ import annotations

import cocotb

from dg_module_env import CFG, LayerRef, edges, get, run_sets, vector_sets

CASES = ["dense_3x3_s1_edge_tiles", "dense_3x3_s2_edge", "stem_7x7_s2_maxpool", "conv1_gated_half",
         "conv1_gated_s2", "conv2_identity_in_place", "conv2_downsample_res_only", "wide_channels",
         "im2col_conv1_gated"]


def s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


@cocotb.test()
async def test_loader(dut):
    ld = dut.u_ld
    errors, counts = [], {"banks": 0, "tiles": 0}

    async def monitor(vs, lay):
        ref = LayerRef(vs)
        d = ref.d
        groups = -(-ref.out_ch.size // CFG.tm)
        seq = []
        for g in range(groups):
            seq += [(g, int(t), False) for t in ref.tiles] + [(g, int(t), True) for t in ref.res_tiles]
        pos, prev_ready, prev_full, armed, init = 0, 0, 0, False, False
        async for _ in edges(dut.ap_clk):
            armed = armed or init            # bank/half state is reset by the run_init edge
            init = bool(get(dut.u_seq.run_init))
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
