"""cocotb test of dg_writeback: every write packet it forms (dg_module_env).

Reference: the vector sets' expected FMAP and SUMS (from dgfpga.numerics / the interpreter).
Each output-pixel packet {address, bytes, data} must address the layer's output map and
carry exactly the expected bytes there; each channel-sum packet likewise in SUMS; every
expected output byte of the layer must be written; and the groups written back must
count up to the layer's m-groups.
"""
from __future__ import annotations

import cocotb
import numpy as np

from dg_module_env import CFG, LayerRef, edges, get, run_sets, vector_sets

CASES = ["dense_3x3_s1_edge_tiles", "dense_1x1_s2_signed_out", "stem_7x7_s2_maxpool",
         "conv1_gated_half", "conv2_identity_in_place", "conv2_downsample_res_only",
         "conv2_edge_tiles_odd", "wide_channels"]
PK_BYTES = 4 * CFG.tm     # a sums packet's data: Tm int32
PX_BYTES = CFG.tm         # a pixel packet's data: Tm bytes


@cocotb.test()
async def test_writeback(dut):
    wb = dut.u_wb
    errors, counts = [], {"pixels": 0, "sums": 0}

    async def monitor(vs, lay):
        ref = LayerRef(vs)
        d = ref.d
        exp = {r: np.asarray(vs.expected[r], np.uint8) for r in ("fmap", "sums")}
        written = np.zeros(exp["fmap"].size, bool)
        out_bytes = d.out_h * d.out_w * (ref.out_ch.size if d.out_ch_gated else d.out_c)
        async for _ in edges(dut.ap_clk):
            for push, data, region in ((wb.pkq_push, wb.pkq_in, "fmap"), (wb.skq_push, wb.skq_in, "sums")):
                if not get(push):
                    continue
                v = get(data)
                nb = PX_BYTES if region == "fmap" else PK_BYTES    # the packet's data bytes
                addr = v >> (8 + 8 * nb)
                n = (v >> (8 * nb)) & 0xFF
                if n > nb:
                    errors.append((vs.name, region, "packet of", n, "bytes, room for", nb))
                    continue
                got = np.array([(v >> (8 * i)) & 0xFF for i in range(n)], np.uint8)
                off = addr - lay["bases"][region]
                want = exp[region][off:off + n]
                counts["pixels" if region == "fmap" else "sums"] += 1
                if region == "fmap":
                    if not (d.out_offset <= off and off + n <= d.out_offset + out_bytes):
                        errors.append((vs.name, "pixel outside the output map", off, n))
                        continue
                    written[off:off + n] = True
                if want.size != n or not np.array_equal(got, want):
                    errors.append((vs.name, region, off, got.tolist(), want.tolist()))
            if get(dut.u_seq.done):
                break
        # every byte the layer changes (expected != before) was written by a packet
        changed = np.flatnonzero(exp["fmap"] != np.asarray(vs.before["fmap"], np.uint8))
        if not written[changed].all():
            errors.append((vs.name, "unwritten output bytes", int((~written[changed]).sum())))
        groups = -(-ref.out_ch.size // CFG.tm) if d.n_active_tiles + d.n_res_tiles else 0
        if get(wb.wb_gdone) != groups:
            errors.append((vs.name, "groups written back", get(wb.wb_gdone), groups))

    await run_sets(dut, vector_sets(CASES), monitor)
    assert not errors, errors[:5]
    assert counts["pixels"] > 100, counts
