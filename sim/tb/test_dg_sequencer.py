"""cocotb test of dg_sequencer: descriptor fetch/check, work lists, STATUS (dg_module_env).

Reference: dgfpga.contract.formats (unpack_descriptor, read_work_list) and the vector sets'
expected STATUS. For every layer the sequencer starts (`run_init`), the layer it hands to
the agents (the dg_layer_t fields that are descriptor fields) and the work lists (tile lists
and bitmap as held; channel lists as written to the loader's list memories, `ch_we`/`ch_idx`/
`ch_val`, entry by entry) must equal
the formats module's decoding; a faulty layer must never start and STATUS (code, layer,
entry) must be the expected one; the number of started layers must match. The programs sit at
AXI-aligned bases (the contract, docs/register_map.md), a few beats apart.

SHORT_LISTS are lists of one and two entries (the first entry is the last, or the entry after
the first is): a tile list of 1 (conv1_gated_one_tile) and of 2, channel lists of 1 on both
sides, a residual-tile list of 1, each with its bitmap.
"""
from __future__ import annotations

import cocotb

from dgfpga.contract import formats
from dgfpga.backends.vectors import LayerCase, build_layer_case
from dg_module_env import CFG, edges, get, run_sets, vector_sets

# dg_layer_t members that are descriptor fields, in declaration order (MSB first)
L_FIELDS = ("k", "stride", "pad", "in_signed", "out_signed", "residual", "res_signed", "maxpool",
            "emit_sums", "tile_gated", "in_ch_gated", "out_ch_gated", "zero_halo", "im2col", "shift", "in_h",
            "in_w", "out_h", "out_w", "in_c", "out_c", "n_active_tiles", "n_res_tiles",
            "n_active_out", "n_active_in", "tile", "grid_h", "grid_w", "res_mult")
CASES = ["dense_3x3_s1_edge_tiles", "stem_7x7_s2_maxpool", "conv1_gated_half",
         "conv2_identity_in_place", "conv2_downsample_res_only", "conv2_no_tiles",
         "fault_tile_range", "fault_tile_order", "fault_channel_range", "fault_bitmap_mismatch",
         "fault_bad_offset", "fault_bad_count", "im2col_stem_7x7_s2_maxpool", "fault_im2col_1x1",
         "conv1_gated_one_tile"]
# 8x8 input, tile 2: a 4 x 4 grid of 16 tiles
SHORT_LISTS = [
    # 2 active tiles, 1 out channel, 1 in channel, zero_halo (a bitmap of 2 set bits)
    LayerCase("seq_two_tiles_one_channel", 3, 1, 8, 16, 16, 2, tile_density=2 / 16,
              out_density=1 / 16, in_density=1 / 16, zero_halo=True),
    # 15 active tiles and 1 residual-only tile, 2 in channels
    LayerCase("seq_one_res_tile", 3, 1, 8, 16, 16, 2, tile_density=15 / 16, in_density=2 / 16,
              residual="s8", res_only=True, zero_halo=True),
]
LIST_LENGTHS = {"conv1_gated_one_tile": {"tiles": 1}, "seq_two_tiles_one_channel":
                {"tiles": 2, "out_channels": 1, "in_channels": 1},
                "seq_one_res_tile": {"res_tiles": 1, "in_channels": 2}}


def unpack_layer(value: int, width: int) -> dict:
    out, pos = {}, width
    for name in L_FIELDS:
        w = formats.FIELD_BY_NAME[name].width
        pos -= w
        out[name] = (value >> pos) & ((1 << w) - 1)
    return out


@cocotb.test()
async def test_sequencer(dut):
    seq = dut.u_seq
    errors, started = [], []

    async def monitor(vs, lay):
        nb = formats.DESCRIPTOR_BYTES
        written = {0: {}, 1: {}}     # channel-list entries written: list -> {index: value}
        async for _ in edges(dut.ap_clk):
            we = get(seq.ch_we)
            for b in (0, 1):
                if we >> b & 1:
                    written[b][get(seq.ch_idx)] = get(seq.ch_val)
            if not get(seq.run_init):
                continue
            i = get(seq.layer)
            started.append((vs.name, i))
            d = formats.unpack_descriptor(vs.program[i * nb:(i + 1) * nb], CFG)
            wl = formats.read_work_list(d, bytes(vs.before["work"].tobytes()))
            got = unpack_layer(get(seq.L), len(seq.L.value))
            for name in L_FIELDS:
                if got[name] != int(getattr(d, name)):
                    errors.append((vs.name, i, name, got[name], int(getattr(d, name))))
            lists = [("tl_mem", wl.tiles if d.tile_gated else []), ("rl_mem", wl.res_tiles),
                     (0, wl.out_channels), (1, wl.in_channels)]
            for sig, want in lists:
                if isinstance(sig, int):
                    have = [written[sig].get(j) for j in range(len(want))]
                else:
                    h = getattr(seq, sig)
                    have = [get(h[j]) for j in range(len(want))]
                if have != [int(v) for v in want]:
                    errors.append((vs.name, i, sig, have[:8], [int(v) for v in want][:8]))
            if d.zero_halo:
                bits = get(seq.bitmap)
                have = [t for t in range(d.n_tiles) if bits >> t & 1]
                if have != [int(t) for t in wl.tiles]:
                    errors.append((vs.name, i, "bitmap", have[:8], list(wl.tiles[:8])))

    sets = vector_sets(CASES) + [build_layer_case(c, CFG) for c in SHORT_LISTS]
    for vs in sets:   # the short-list cases are what they claim (a guard on the generator)
        for what, n in LIST_LENGTHS.get(vs.name, {}).items():
            d = formats.unpack_descriptor(vs.program[:formats.DESCRIPTOR_BYTES], CFG)
            wl = formats.read_work_list(d, bytes(vs.before["work"].tobytes()))
            assert len(getattr(wl, what)) == n, (vs.name, what, len(getattr(wl, what)))
    # the PROGRAM base is AXI-aligned by contract (docs/register_map.md), so a record's offset
    # in its beat is layer * DESCRIPTOR_BYTES mod the beat (0 up to 32-byte beats); the
    # sequencer does not read the address bits below that (dg_sequencer: RG)
    ab = CFG.axi_bytes
    offsets = [ab * (k % 4) for k in range(len(sets))]
    await run_sets(dut, sets, monitor, program_offsets=offsets)
    for vs in sets:
        status = int(vs.expected_status)
        n = vs.layer_count if status == 0 else (status >> 8) & 0xFF
        runs = [i for name, i in started if name == vs.name]
        # a layer without work (no tiles) is checked but skips the run: count started layers
        if runs != list(range(n)):
            errors.append((vs.name, "started layers", runs, list(range(n))))
    assert not errors, errors[:5]
    assert len(started) >= len(sets)
