"""cocotb test of dg_compute: the MAC-array results it produces (dg_module_env).

Reference: numpy integer convolution (dgfpga.numerics.golden.conv2d_int) of the layer's
input (inactive input channels zero) with its weights. Every MAC result the compute emits
is matched to the tile record it pushed when the tile started: for each lane of the group,
the int32 accumulator must equal the reference accumulator (no bias) of that output
channel at that conv pixel; residual-only tiles accumulate nothing (0). Every pixel of every
tile of the sequence must come out exactly once, in order.
"""
from __future__ import annotations

from collections import deque

import cocotb

from dg_module_env import CFG, LayerRef, edges, get, run_sets, vector_sets

CASES = ["dense_3x3_s1_edge_tiles", "dense_3x3_s2_edge", "dense_1x1_s2_signed_out",
         "stem_3x3_signed_in", "stem_7x7_s2_maxpool", "conv1_gated_half", "conv1_gated_s2",
         "wide_channels", "conv2_downsample_res_only", "im2col_stem_3x3_signed_in",
         "im2col_stem_7x7_s2_maxpool", "im2col_3x3_s2_edge_odd_ch", "im2col_conv1_gated"]
TR = (("gb", 1), ("glast", 1), ("idx", 16), ("o0y", 16), ("o0x", 16), ("cy0", 16), ("cx0", 16),
      ("oh", 8), ("ow", 8), ("chy", 8), ("chw", 8), ("sg", 16))


def fields(v: int, spec) -> dict:
    out, pos = {}, sum(w for _, w in spec)
    for name, w in spec:
        pos -= w
        out[name] = (v >> pos) & ((1 << w) - 1)
    return out


@cocotb.test()
async def test_compute(dut):
    cp, ld = dut.u_cp, dut.u_ld
    tag_spec = (("gb", 1), ("res_only", 1), ("tlast", 1), ("py", 8), ("px", 8), ("sg", 16),
                ("res", 8 * CFG.tm))
    errors, seen = [], {"results": 0}

    async def monitor(vs, lay):
        ref = LayerRef(vs)
        acc = ref.conv_acc()
        zero_halo = ref.d.zero_halo
        tiles = deque()
        async for _ in edges(dut.ap_clk):
            if get(cp.tr_push):
                tiles.append(fields(get(cp.tr_in), TR))
            if not get(cp.mac_v):
                continue
            seen["results"] += 1
            tag = fields(get(cp.mac_tag), tag_spec)
            if not tiles:
                errors.append((vs.name, "result without a started tile"))
                continue
            t = tiles[0]
            b = tag["gb"]
            m0, mg = get(ld.bk_m0[b]), get(ld.bk_mg[b])
            cy, cx = t["cy0"] + tag["py"], t["cx0"] + tag["px"]
            value = get(cp.mac_acc)
            for lane in range(mg):
                got = (value >> (32 * lane)) & 0xFFFFFFFF
                got = got - (1 << 32) if got >> 31 else got
                want = 0 if tag["res_only"] else int(acc[int(ref.out_ch[m0 + lane]), cy, cx])
                if got != want and not zero_halo:
                    errors.append((vs.name, t["idx"], cy, cx, lane, got, want))
            if tag["tlast"]:
                last_y = tag["py"] == (t["oh"] if tag["res_only"] else t["chy"]) - 1
                last_x = tag["px"] == (t["ow"] if tag["res_only"] else t["chw"]) - 1
                if not (last_y and last_x):
                    errors.append((vs.name, "tile ends early", t["idx"], tag["py"], tag["px"]))
                tiles.popleft()
        # unreachable (killed when the run ends)

    await run_sets(dut, vector_sets(CASES), monitor)
    assert not errors, errors[:5]
    assert seen["results"] > 100, seen
