"""Each term of the cycle model (docs/perf.md, perf.cycle_model's docstring) worked out by
hand on layers small enough to do on paper.

Parameters are chosen so that the term under test decides the result (the next m-group's
weight prefetch longer than a group's compute; residual-only tiles bound by their DDR
bytes), so a wrong term changes the total. The expected numbers are written out below;
they are not computed by the model's code.
"""
from __future__ import annotations

import pytest

from dgfpga.contract import formats
from dgfpga.contract.engine_config import load_config
from dgfpga.perf.cycle_model import CycleParams, layer_cycles

SMALL = load_config("small")                      # tm = tn = 4, 8-byte AXI beat
# B = min(8 * 0.25, 1e12 / clock) = 2 bytes per cycle; small, round overheads.
P = CycleParams(layer_overhead_cycles=100, mgroup_overhead_cycles=10, tile_overhead_cycles=5,
                pipeline_depth_cycles=3, axi_efficiency=0.25, dram_bytes_per_s=1e12)
D = formats.DESCRIPTOR_BYTES                      # 96 bytes fetched per layer


def test_bytes_per_cycle_is_the_smaller_limit():
    assert P.bytes_per_cycle(SMALL) == 2.0
    slow = CycleParams(axi_efficiency=1.0, dram_bytes_per_s=SMALL.clock_hz * 3.0)
    assert slow.bytes_per_cycle(SMALL) == 3.0     # DRAM-bound: 3 bytes per cycle


def test_weight_bound_layer_two_m_groups():
    """3x3 conv on a 1x1 map, 64 -> 6 channels: m-groups of 4 and 2 channels.

    Per group: N = 64/4 = 16 n-groups, C = 5 + 3 + 9*1*16 = 152 cycles of compute; port
    reads of a step = 1 patch pixel * 64 / 2 = 32 (its m output bytes: one beat on the write
    channel, in parallel). Weights of a group of m channels:
    m * (9*64 + 8) = 584*m bytes = 292*m cycles (the port, not the 10*m read commands of
    73*m beats, is the limit).
      W[0] (not hidden) = 4*584/2 = 1168
      group 0 = 10 + max(152, step reads 64/2 = 32, W[1] 2*584/2 = 584,
                         DRAM (64 + 1168) / (1e12 / clock) ~ 0) = 594
                (group 1's weights load on the weight port during group 0's step)
      group 1 = 10 + max(152, 64/2) = 162
      fill: the first tile's prefetch, 5 + one 8-beat row = 13 (< C), once per layer
      descriptor 96 / 2 = 48
    total = 100 + 1168 + 594 + 162 + 13 + 48 = 2085.
    """
    d = formats.make_descriptor(k=3, stride=1, in_h=1, in_w=1, in_c=64, out_c=6, tile=1,
                                out_offset=64)
    formats.validate_descriptor(d, SMALL)       # a layer the engine accepts
    lc = layer_cycles(d, SMALL, P)
    assert lc.total_cycles == 2085
    assert lc.compute_cycles == 2 * 152
    # bytes: weights 4*584 + 2*584, steps (64+4) + (64+2), the descriptor
    assert lc.ddr_bytes == 2336 + 1168 + 68 + 66 + D
    assert lc.memory_cycles == lc.ddr_bytes / 2
    assert lc.macs == 1 * 6 * 64 * 9 and lc.dense_macs == 1 * 6 * 64 * 9


def test_both_read_ports_share_the_dram():
    """The layer above with a DRAM no faster than one port (2 bytes per cycle): the weight
    port and the feature-map port draw on it together, so group 0 = 10 + max(152, 32, 584,
    (64 + 1168) / 2 = 616) = 626 and total = 100 + 1168 + 626 + 162 + 13 + 48 = 2117."""
    d = formats.make_descriptor(k=3, stride=1, in_h=1, in_w=1, in_c=64, out_c=6, tile=1,
                                out_offset=64)
    p = CycleParams(layer_overhead_cycles=100, mgroup_overhead_cycles=10, tile_overhead_cycles=5,
                    pipeline_depth_cycles=3, axi_efficiency=0.25,
                    dram_bytes_per_s=2.0 * SMALL.clock_hz)
    assert p.bytes_per_cycle(SMALL) == 2.0 and p.dram_bytes_per_cycle(SMALL) == 2.0
    assert layer_cycles(d, SMALL, p).total_cycles == 2117


def test_compute_bound_layer_hides_the_prefetch():
    """Same layer on an 8x8 map (tile 8, one tile): compute 5 + 3 + 9*64*16 = 9224 per group
    hides W[1]; step reads (100 patch px... clipped to the map: 64 px * 64 ch) / 2.
      W[0] = 1168, group 0 = 10 + max(9224, 4096/2 + 584) = 9234,
      group 1 = 10 + max(9224, 4096/2) = 9234,
      fill: the first prefetch, 5 + 8 rows x 64 beats = 517 (< C), descriptor 48
    total = 100 + 1168 + 9234 + 9234 + 517 + 48 = 20301."""
    d = formats.make_descriptor(k=3, stride=1, in_h=8, in_w=8, in_c=64, out_c=6, tile=8)
    lc = layer_cycles(d, SMALL, P)
    assert lc.total_cycles == 20301
    assert lc.ddr_bytes == 2336 + 1168 + (4096 + 256) + (4096 + 128) + D


def test_residual_only_tile_is_bound_by_its_bytes():
    """conv2 of a block with no active tile but one residual-only tile (4x4 map, tile 4,
    8 output channels): the tile runs in each of the 2 m-groups (4 channels): it reads the
    residual, 16 px * 4 ch = 64 bytes = 32 port cycles, and writes the output (16 one-beat
    packets on the write channel); the compute passes its 16 px in 16 steps and its prefetch
    (5 + 16 one-beat residual reads = 21) hides. Its requantization, 16 px x 4 cycles of
    the time-shared requantizers = 64, runs in the decoupled write-back and bounds the group.
      step = 5 + max(16, 32, 16) = 37 per group; params 4 ch * 8 bytes: 16 cycles of port,
      32 of the loader (one byte per cycle) per group
      W[0] (group 0's params, exposed) = 32
      group 0 = 10 + max(37, requant 64, 32 + group 1's params 16 on the same port, 32) = 74
      group 1 = 10 + max(37, 64, 32) = 74
      descriptor + one u16 residual tile index: (96 + 2) / 2 = 49; no active tile: no fill
    total = 100 + 32 + 74 + 74 + 49 = 329."""
    d = formats.make_descriptor(k=3, stride=1, in_h=4, in_w=4, in_c=8, out_c=8, tile=4,
                                residual=True, res_mult=1 << 16, tile_gated=True,
                                n_active_tiles=0, n_res_tiles=1)
    lc = layer_cycles(d, SMALL, P, tiles=[], res_tiles=[0])
    assert lc.total_cycles == 329
    assert lc.ddr_bytes == 256 + 64 + D + 2
    assert lc.compute_cycles == 2 * 16 * 4
    assert lc.macs == 0


def test_residual_doubles_the_output_traffic_of_a_step():
    """With residual on, each output pixel of a step is read (residual) and written: the
    step reads of the 1x1 layer above become (64 + m) / 2, its bytes (64+8) + (64+4);
    group 0 = 10 + max(152, 68/2 = 34 on the feature-map port, W[1] 584 on the weight
    port) = 594, group 1 = 10 + max(152, 66/2) = 162; the fill: 5 + 8 patch beats + the
    residual read, 1 + 7/8 beats (out_c = 6: the lanes' bytes start anywhere in a beat, the
    average) = 14.875:
    total = 100 + 1168 + 594 + 162 + 14.875 + 48 = 2086.875 (1.875 more than without: the
    first prefetch's residual read)."""
    d = formats.make_descriptor(k=3, stride=1, in_h=1, in_w=1, in_c=64, out_c=6, tile=1,
                                residual=True, res_mult=1 << 16)
    lc = layer_cycles(d, SMALL, P)
    assert lc.ddr_bytes == 2336 + 1168 + 72 + 68 + D
    assert lc.total_cycles == 2086.875          # still weight/compute bound


@pytest.mark.parametrize("flags, extra", [
    (dict(tile_gated=True, n_active_tiles=3), 2 * 3),                   # u16 tile indices
    (dict(out_ch_gated=True, n_active_out=5), 2 * 5),                   # u16 channel ids
    (dict(emit_sums=True), 4 * 4 * 8),                                  # int32 per tile x ch
])
def test_work_list_and_sums_bytes(flags, extra):
    """The lists the engine reads and the sums it writes, on an 8x8 map of 4x4 tiles
    (4 tiles), 8 -> 8 channels: bytes over the same layer without the list / sums."""
    base = dict(k=3, stride=1, in_h=8, in_w=8, in_c=8, out_c=8, tile=4)
    dense = layer_cycles(formats.make_descriptor(**base), SMALL, P)
    d = formats.make_descriptor(**base, **flags)
    lc = layer_cycles(d, SMALL, P, tiles=[0, 1, 2] if d.tile_gated else None)
    list_bytes = lc.ddr_bytes - layer_cycles(
        formats.make_descriptor(**base, n_active_tiles=d.n_active_tiles,
                                n_active_out=d.n_active_out, n_active_in=d.n_active_in),
        SMALL, P, tiles=[0, 1, 2] if d.tile_gated else None).ddr_bytes
    assert list_bytes == extra
    assert dense.ddr_bytes > 0
