"""Cycle model: hand-computed layers, monotonicity, masks of given density, network shapes."""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.perf import cycle_model as M
from dgfpga.contract import formats as F
from dgfpga.contract.engine_config import default_config, load_config
from dgfpga.errors import ConfigError
from dgfpga.perf.netshapes import net_shape, shape_plan

SMALL = load_config("small")
# B = 8 bytes/cycle exactly (64-bit AXI, no derating, DRAM never the limit)
EXACT = M.CycleParams(axi_efficiency=1.0, dram_bytes_per_s=1e15)
ZERO = M.CycleParams(layer_overhead_cycles=0, mgroup_overhead_cycles=0, tile_overhead_cycles=0,
                     pipeline_depth_cycles=0, axi_efficiency=1.0, dram_bytes_per_s=1e15)


def _layer(**kw):
    # one 3x3 layer, 16 -> 16 channels, output 4x8 = two 4x4 tiles (grid 1x2)
    return F.make_descriptor(k=3, stride=1, in_h=4, in_w=8, in_c=16, out_c=16, tile=4, **kw)


def test_hand_computed_dense_layer():
    """Tm = Tn = 4: N = 4 n-groups, G = 4 m-groups of 4 channels, B = 8 bytes/cycle.

    C per tile  = 12 + 10 + 9*16*4                       = 598
    patch       = 4 rows x 5 cols (halo clipped)         = 20 px -> 20*16 B in, 16*4 B out
    M per tile  = 320 / 8 reads (the 64 B out: the write channel) = 40   (< C, compute-bound)
    W per group = 4 * (9*16 + 8) / 8 = 76 bytes-cycles, but the loader consumes
                  params 1 byte/cycle (4*8) and a 16-byte weight span 4 (Tn) bytes/cycle
                  (4 lanes * 9 positions * 4): 32 + 144             = 176
    group       = 20 + max(2*598, 2*40 + 76, 176)        = 1216
    fill        = min(C, prefetch 5 + 4 rows x 10 beats) = 45   (once per layer: the first
                  tile's prefetch is not overlapped)
    X           = 96 (descriptor) / 8                    = 12
    total       = 200 + 176 + 4*1216 + 45 + 12           = 5297
    """
    r = M.layer_cycles(_layer(), SMALL, EXACT)
    assert r.total_cycles == pytest.approx(5297)
    assert r.compute_cycles == pytest.approx(4 * 2 * 598)
    assert r.ddr_bytes == pytest.approx(4 * 608 + 4 * 2 * 384 + 96)
    assert r.memory_cycles == pytest.approx(r.ddr_bytes / 8)
    assert r.macs == r.dense_macs == 32 * 16 * 16 * 9


def test_hand_computed_dense_layer_bounds():
    """The layer above, split by what bounds it (`LayerCycles.bounds`): every step is
    compute-bound (C 598 > M 40, O, P 45): MAC steps 8 x 576 = 4608, their tile overhead and
    pipeline fill 8 x (12 + 10) = 176; the first group's weights 176; overhead 200 + 4 x 20
    + fill 45 + 12 = 337. The split sums to the total, 5297."""
    r = M.layer_cycles(_layer(), SMALL, EXACT)
    assert {k: v for k, v in r.bounds.items() if v} == pytest.approx(
        {"compute": 4608, "tile overhead": 176, "weights": 176, "overhead": 337})
    assert set(r.bounds) <= set(M.BOUNDS)


def test_weight_bound_layer_bounds():
    """1x1, 512 -> 64 channels on a one-pixel map (small: Tm = Tn = 4, B = 8): 16 m-groups of
    one tile, each step C = 12 + 10 + 128 = 150; a group's params + weights W = max(2080 / 8,
    consume 4 x 8 + 4 x 512 / 4 = 544, the spans' read time) = 544. The first group's W is
    exposed and groups 0..14 wait for the next group's 544 > 150: weights 16 x 544 = 8704;
    the last group's step: compute 128 + tile overhead 22; overhead 200 + 16 x 20 + fill
    min(150, 5 + 64 beats) 69 + 96 / 8 = 601. Total 9455."""
    d = F.make_descriptor(k=1, stride=1, in_h=1, in_w=1, in_c=512, out_c=64, tile=1)
    r = M.layer_cycles(d, SMALL, EXACT)
    assert r.total_cycles == pytest.approx(9455)
    assert {k: v for k, v in r.bounds.items() if v} == pytest.approx(
        {"weights": 8704, "compute": 128, "tile overhead": 22, "overhead": 601})


def test_zero_overheads_reach_the_mac_bound():
    r = M.layer_cycles(_layer(), SMALL, ZERO)
    ideal = 32 * 16 * 16 * 9 / (SMALL.tm * SMALL.tn)             # 4608
    assert r.total_cycles == pytest.approx(ideal + 176 + 45 + 12)     # + fill (above)


def test_hand_computed_gated_layer():
    """Only tile 1 active: total = 200 + 176 + 4*(20 + 598) + fill 45 + (96 + 2)/8."""
    d = _layer(tile_gated=True, n_active_tiles=1)
    r = M.layer_cycles(d, SMALL, EXACT, tiles=[1])
    assert r.total_cycles == pytest.approx(2905.25)
    assert r.macs == r.dense_macs / 2


def test_compact_channels_cut_groups():
    """8 of 16 active output channels: G = 2; W = 2*(152)... per group as in the dense case."""
    d = _layer(out_ch_gated=True, n_active_out=8)
    r = M.layer_cycles(d, SMALL, EXACT)
    # patch bytes unchanged (all inputs), output 16 px * 4 ch per group
    assert r.total_cycles == pytest.approx(200 + 176 + 2 * 1216 + 45 + (96 + 16) / 8)


def test_memory_bound_layer():
    """1x1 conv with 4 in/4 out channels: compute 1*16*1 + 22 = 38/tile; memory dominates."""
    d = F.make_descriptor(k=1, stride=1, in_h=4, in_w=8, in_c=4, out_c=4, tile=4)
    p = M.CycleParams(axi_efficiency=1.0, dram_bytes_per_s=1e15)
    slow = M.CycleParams(axi_efficiency=0.05, dram_bytes_per_s=1e15)
    fast = M.layer_cycles(d, SMALL, p)
    starved = M.layer_cycles(d, SMALL, slow)
    assert starved.total_cycles > 2 * fast.total_cycles
    assert starved.memory_cycles > starved.compute_cycles
    # what bounds it: the read port's bytes at 0.4 B/cycle (320 cycles), not the MAC array
    assert starved.bounds["read bandwidth"] == pytest.approx(320)
    assert starved.bounds["compute"] + starved.bounds["tile overhead"] == 0
    assert fast.bounds["read bandwidth"] == 0


def test_no_active_tiles_costs_only_overheads():
    d = _layer(tile_gated=True, n_active_tiles=0)
    r = M.layer_cycles(d, SMALL, EXACT, tiles=[])
    assert r.total_cycles == pytest.approx(200 + 96 / 8) and r.macs == 0


def test_residual_only_tiles():
    d = _layer(tile_gated=True, n_active_tiles=1, residual=True, res_mult=1, n_res_tiles=1)
    r = M.layer_cycles(d, SMALL, EXACT, tiles=[0], res_tiles=[1])
    # the residual-only tile runs in each of the 4 m-groups, after the active tile:
    # max(tile 12 + max(16 px one compute step each, 16*4 B residual reads / 8 = 8,
    # 16 one-beat pixel writes), prefetch 5 + 16 one-beat residual reads) = 28 per group;
    # its requantization (16 px x 4 cycles of the time-shared requantizers,
    # formats.requant_cycles_per_pixel) runs in the write-back behind the next tiles: the
    # group's requant 4*16 + 4*16 = 128 < its steps. Fill: the active tile's prefetch,
    # 5 + 4 rows of 10 beats + its 16 one-beat residual reads = 61 (< C = 598); its params
    # are those of the groups (in W = 176)
    base = 200 + 176 + 4 * (20 + 598) + 61 + (96 + 4) / 8
    assert F.requant_cycles_per_pixel(SMALL) == 4
    assert r.total_cycles == pytest.approx(base + 4 * 28)


def test_gating_is_monotone():
    d = F.make_descriptor(k=3, stride=1, in_h=28, in_w=28, in_c=128, out_c=128, tile=4)
    prev = None
    for n in range(0, 50, 7):
        g = d.replace(tile_gated=True, n_active_tiles=n)
        t = M.layer_cycles(g).total_cycles
        assert prev is None or t > prev
        prev = t


def test_fused_pool_geometry():
    stem = F.make_descriptor(k=7, stride=2, in_h=224, in_w=224, in_c=3, out_c=64, tile=8,
                             maxpool=True, in_signed=True)
    pix, opix, patch, rows, width = M._tile_geometry(stem)
    assert (rows * width == patch).all() and rows.max() == 39
    assert opix.sum() == 56 * 56
    assert pix.max() == 17 * 17 and patch.max() == 39 * 39
    assert M.layer_cycles(stem).macs == pytest.approx(float(pix.sum()) * 64 * 3 * 49)


def test_params_save_load(tmp_path):
    p = M.CycleParams(tile_overhead_cycles=7, axi_efficiency=0.5)
    path = tmp_path / "cal.json"
    p.save(path)
    assert M.CycleParams.load(path) == p
    path.write_text('{"tile_overhead": 3}')
    with pytest.raises(ConfigError, match="unknown key"):
        M.CycleParams.load(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        M.CycleParams.load(path)


# ---- network shapes and masks --------------------------------------------------------------
def test_dense_macs_match_reference_numbers():
    assert net_shape("resdg18").dense_macs == pytest.approx(1.814e9, rel=2e-3)
    assert net_shape("resdg34").dense_macs == pytest.approx(3.664e9, rel=2e-3)
    assert net_shape("resdg20_cifar10").dense_macs == pytest.approx(40.8e6, rel=5e-3)
    r18 = net_shape("resdg18")
    assert [b.out_h for b in r18.blocks] == [56, 56, 28, 28, 14, 14, 7, 7]
    assert [b.tile for b in r18.blocks] == [8, 8, 4, 4, 2, 2, 1, 1]
    assert {b.n_tiles for b in r18.blocks} == {49}
    assert len(net_shape("resdg34").blocks) == 16
    with pytest.raises(ConfigError):
        net_shape("resdg99")


@pytest.mark.parametrize("name, cfg", [("resdg18", default_config()),
                                       ("resdg34", default_config()),
                                       ("resdg20_cifar10", SMALL)])
def test_every_network_layer_fits_its_engine(name, cfg):
    """The shape plan packs (every template validated against the engine's buffers) and
    every scheduled run, dense and gated, passes the engine's checks."""
    from dgfpga.runtime.scheduler import Scheduler
    plan = shape_plan(name, cfg)
    assert [lp.kind for lp in plan.layers].count("conv2") == len(net_shape(name).blocks)
    net = net_shape(name)
    masks = M.random_block_masks(net, [0.3] * len(net.blocks), seed=5)
    sch = Scheduler(plan, validate=True)
    for i, (bp, m) in enumerate(zip(plan.blocks, masks)):
        sp = np.zeros(bp.conv1.template.n_tiles, bool)
        sp[m.tiles] = True
        ch = np.zeros(bp.conv1.template.out_c, bool)
        ch[m.channels] = True
        assert sch.block(i, sp, ch).layer_count >= 2
        assert sch.block(i).layer_count in (2, 3)


def test_shape_plan_refuses_a_network_that_does_not_fit():
    with pytest.raises(ConfigError, match="does not fit"):
        shape_plan("resdg18", SMALL)


def test_random_masks_have_the_requested_density():
    net = net_shape("resdg34")
    dens = list(np.linspace(0.2, 0.9, len(net.blocks)))
    masks = M.random_block_masks(net, dens, seed=11)
    again = M.random_block_masks(net, dens, seed=11)
    for b, m, m2, d in zip(net.blocks, masks, again, dens):
        assert np.array_equal(m.tiles, m2.tiles) and np.array_equal(m.channels, m2.channels)
        assert np.all(np.diff(m.tiles.astype(int)) > 0) and m.tiles.max() < b.n_tiles
        assert abs(M.block_density(b, m) - d) < 0.1
    spatial_only = M.random_block_masks(net, [0.5] * len(net.blocks), spatial_share=1.0)
    assert all(len(m.channels) == b.out_c for b, m in zip(net.blocks, spatial_only))
    with pytest.raises(ConfigError):
        M.random_block_masks(net, [0.5])
    with pytest.raises(ConfigError):
        M.random_block_masks(net, [1.5] * len(net.blocks))


def test_network_prediction_is_plausible():
    net = net_shape("resdg18")
    plan = shape_plan("resdg18", default_config())
    masks = M.random_block_masks(net, [0.4] * len(net.blocks), seed=0)
    c = M.compare(plan, masks)
    assert c.dense.macs == net.dense_macs == c.gated.dense_macs
    assert 1.5 < c.mac_reduction < 3.0
    assert 1.0 < c.speedup < c.mac_reduction
    assert 0.5 < c.efficiency < 1.0
    assert c.dense.seconds(default_config()) > 0
    all_on = M.random_block_masks(net, [1.0] * len(net.blocks))
    assert M.compare(plan, all_on).speedup < 1.0          # gate overhead, nothing skipped


@pytest.mark.parametrize("arch", ["resdg18", "resdg50"])
def test_bounds_split_every_network_layer_exactly(arch):
    """Dense and gated, with the DDR model: each layer's bounds are non-negative, named in
    BOUNDS and sum to its cycles."""
    cfg = load_config("ultra96")
    plan = shape_plan(arch, cfg)
    net = net_shape(arch)
    p = M.CycleParams().with_memory(40)
    c = M.compare(plan, M.random_block_masks(net, [0.4] * len(net.blocks), seed=1), p)
    for nc in (c.dense, c.gated):
        for lc in nc.layers:
            assert set(lc.bounds) <= set(M.BOUNDS), lc.name
            assert min(lc.bounds.values()) >= -1e-6 * lc.total_cycles, lc.name
            assert sum(lc.bounds.values()) == pytest.approx(lc.total_cycles, rel=1e-9), lc.name


# ---- the one-start program: gate and head records, no host constant --------------------------
def test_old_parameter_files_load_without_their_host_budget(tmp_path):
    """Files written before the one-start engine carry the per-start / per-block host budget;
    it is no engine cost and is dropped (no such field any more)."""
    path = tmp_path / "old.json"
    path.write_text('{"tile_overhead_cycles": 3, "start_overhead_cycles": 2000, '
                    '"gate_cycles_per_block": 6000}')
    p = M.CycleParams.load(path)
    assert p == M.CycleParams(tile_overhead_cycles=3)
    assert not hasattr(p, "start_overhead_cycles") and not hasattr(p, "gate_cycles_per_block")


def test_gate_record_hand_computed():
    """in_c = out_c = 16, hidden 4, 2x2 sum tiles and grid, small (AB = 8, Tn = 4), 1 tile and
    3 channels on: fetch 96/8; bin table 1 beat + 4 checks + reciprocals 3 beats; SUMS per
    bin row 4 x 8 beats; pooling 4 x 4; totals 32 beats + 4; one multiply-stage cycle per
    pool pass (4 bins + the totals); spatial weights 36 beats; the 3x3 over 2x2 bins
    2 x 2 x (2 x 4 + 1); fc1 16 + m1/o1 6 + fc2 16 + b2 16 beats; list scans 2 x 4*1/2 +
    2 x 16*3/4; write beats 1 + 2 + 2 + 1; 14 read streams (bins, recip, 4 bin rows,
    totals, ws, bs, w1, m1, o1, w2, b2)."""
    p = M.CycleParams(gate_fixed_cycles=10, gate_stream_cycles=2)
    got = M.gate_record_cycles(16, 16, 4, 2, 2, 2, 2, False, 1, 3, False, SMALL, p)
    terms = 1 + 4 + 3 + 32 + 16 + 32 + 4 + 5 + 36 + 36 + 16 + 6 + 16 + 16 + 28 + 6
    assert got == pytest.approx(12 + 10 + terms + 2 * 14)
    # DENSE: bin table + reciprocals + the biases bs, o1, b2 (1 + 4 + 16 beats), 5 streams
    dense = M.gate_record_cycles(16, 16, 4, 2, 2, 2, 2, False, 4, 16, True, SMALL, p)
    scan = 2 * 4 * 4 / 5 + 2 * 16 * 16 / 17
    beats = 1 + 2 * 1 + 2 * 4 + 1
    assert dense == pytest.approx(12 + 10 + (1 + 4 + 3 + 1 + 4 + 16) + scan + beats + 2 * 5)
    # the residual-only list of 3 inactive tiles: scan 4*3/4 + 1 beat
    res = M.gate_record_cycles(16, 16, 4, 2, 2, 2, 2, True, 1, 3, False, SMALL, p)
    assert res == pytest.approx(got + 3 + 1)


def test_head_record_hand_computed():
    """in_c 64, 10 classes, 2x2 sum tiles, small (AB = 8, Tn = 4): fetch 12 + SUMS 128 beats
    + 10 weight rows of 16 cycles (a stream segment holds at most Tn = 4 int8 weights, not a
    beat's 8: the gate unit's arrays are Tn banks) + biases 5 + logits 10 beats; 4 streams."""
    p = M.CycleParams(head_fixed_cycles=3, gate_stream_cycles=2)
    got = M.head_record_cycles(64, 10, 2, 2, SMALL, p)
    assert got == pytest.approx(12 + 3 + 128 + 160 + 5 + 10 + 2 * 4)


def test_network_has_gate_and_head_records_and_only_the_measured_host_term():
    net = net_shape("resdg20_cifar10")
    plan = shape_plan("resdg20_cifar10", SMALL)
    masks = M.random_block_masks(net, [0.4] * len(net.blocks), seed=1)
    g = M.network_cycles(plan, masks, EXACT)
    d = M.network_cycles(plan, None, EXACT)
    for c in (g, d):
        assert c.host_cycles == 0 and c.gate_cycles > 0 and c.head_cycles > 0
        assert c.engine_cycles == pytest.approx(sum(l.total_cycles for l in c.layers)
                                                + c.gate_cycles + c.head_cycles
                                                + c.skipped_cycles)
        assert c.total_cycles == c.engine_cycles
    assert g.gate_cycles > d.gate_cycles                 # dense: no gate evaluation
    h = M.network_cycles(plan, masks, EXACT, host_s=1e-4)
    assert h.host_cycles == pytest.approx(1e-4 * SMALL.clock_hz)
    assert h.total_cycles == pytest.approx(g.total_cycles + 1e-4 * SMALL.clock_hz)
    cmp = M.compare(plan, masks, EXACT, host_s=1e-4)
    assert cmp.dense.host_cycles == cmp.gated.host_cycles == h.host_cycles


def test_numpy_device_cycle_log_is_the_network_model(bundle_dir):
    """Two routes to one image's cycles: the numpy engine walks the program's records after
    running them (program_cycles, its cycle log) and network_cycles walks the plan with the
    scheduler for the masks the engine decided. They agree record group by record group."""
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    b = load_bundle(bundle_dir)
    runner = NetworkRunner(b, NumpyDevice(b.cfg))
    for dense in (False, True):
        r = runner.run_image(b.selfcheck.images[1], dense=dense)
        masks = None if dense else [
            M.BlockMask(np.flatnonzero(s.reshape(-1)).astype(np.uint16),
                        np.flatnonzero(c).astype(np.uint16)) for s, c in zip(r.spatial, r.channel)]
        nc = M.network_cycles(b.plan, masks)
        kinds = [rec.kind for rec in b.plan.records]
        log = np.asarray(r.cycle_log, dtype=float)
        assert len(log) == len(kinds) and r.cycles == int(log.sum())
        gate = log[[k == "gate" for k in kinds]].sum()
        assert gate == pytest.approx(nc.gate_cycles, abs=len(kinds))
        assert log[-1] == pytest.approx(nc.head_cycles, abs=1)
        assert log.sum() == pytest.approx(nc.engine_cycles, abs=len(kinds))


@pytest.mark.parametrize("arch,im2col", [("cifar", False), ("cifar", True)])
def test_weight_bytes_are_the_contract_streams(arch, im2col):
    """LayerCycles.weight_bytes (what the trace's weight phase uses) = the layer's weight
    stream (formats.weight_stream_bytes: im2col rows padded to tn) + its per-channel
    params, for a dense layer."""
    from dgfpga.backends import vectors
    from dgfpga.contract import formats
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.cycle_model import layer_cycles
    cfg = load_config("small")
    vs = vectors.build_layer_case(vectors.stem_case(arch, im2col), cfg)
    d = formats.unpack_descriptor(vs.program[:formats.DESCRIPTOR_BYTES], cfg)
    assert d.im2col == im2col
    lc = layer_cycles(d, cfg)
    assert lc.weight_bytes == formats.weight_stream_bytes(d, cfg) + d.out_c * formats.PARAM_BYTES


# ---- Bottleneck (resdg50) ---------------------------------------------------------------
R50_CFG = "ultra96"    # 2048-channel limits


def test_resdg50_shapes_are_the_official_ones():
    """16 Bottleneck blocks, x4 expansion, stride on the 3x3, projections where the shape
    changes; dense MACs = the official count (models/, tests/models/test_flops.py); the
    gates' MACs by hand for layer2.0 (spatial 9 x 49 x 256, mask_c1 256 x 64 + 64 x 128,
    mask_c2 128 x 32 + 32 x 128)."""
    from dgfpga.perf.netshapes import BottleneckShape
    net = net_shape("resdg50")
    assert net.dense_macs == 4_089_184_256
    assert len(net.blocks) == 16 and all(isinstance(b, BottleneckShape) for b in net.blocks)
    assert [b.shortcut is not None for b in net.blocks] == \
        [True, False, False, True, False, False, False, True] + [False] * 5 + [True, False, False]
    b = net.blocks[3]
    assert (b.in_h, b.out_h, b.in_c, b.width, b.out_c, b.tile, b.n_tiles) == \
        (56, 28, 256, 128, 512, 4, 49)
    assert (b.conv1.out_h, b.conv2.stride, b.conv3.in_c) == (56, 2, 128)
    assert b.gate_macs == 9 * 49 * 256 + 256 * 64 + 64 * 128 + 128 * 32 + 32 * 128
    assert net.fc_in == 2048


def test_gate2_record_hand_computed():
    """in_c = out_c = 16, hidden 4, 2x2 tiles, small (AB = 8, Tn = 4), 3 of 4 tiles and 5 of
    16 conv1 channels on, 6 mask_c2 channels decided: fetch 96/8 = 12; the masks it reads
    8 bytes: 1 beat; recip 1, o1 32 bytes: 4, b2 128 bytes: 16 beats; the tile scan 4 (one
    tile per cycle); conv1's compact sums, rows of 20 bytes, one stream per run of active
    tiles: tiles {0} and {2, 3} (mask 1011): ceil(20/8) = 3 and ceil(40/8) = 5 + 1 (the row
    boundary at byte 60 is inside a beat) = 9 cycles, 2 streams; pooling 16/4 = 4 and its
    read and multiply stages 2; fc1
    16x4x2 = 128 bytes: 16, m1 2, fc2 16; list scans 2 x 16*6/7, write beats 1 + 2 x
    ceil(12/8) = 5; streams 4 + 2 runs + 3 + 3; gate2_fixed 7, 2 per stream.
    Without the mask: 1.5 runs expected (3 * (4 - 3 + 1) / 4) and the expected sums
    3*20/8 + 1.5 * 1/2 + 1.5 * 1/2 = 9 (every other row boundary inside a beat)."""
    p = M.CycleParams(gate_fixed_cycles=10, gate_stream_cycles=2, gate2_fixed_cycles=7)
    got = M.gate2_record_cycles(16, 16, 4, 2, 2, 3, 5, 6, False, SMALL, p,
                                np.array([1, 0, 1, 1], bool))
    terms = 1 + 1 + 4 + 16 + 4 + 9 + 4 + 2 + 16 + 2 + 16 + 2 * 16 * 6 / 7 + 5
    assert got == pytest.approx(12 + 7 + terms + 2 * 12)
    assert M.tile_runs(4, 3, np.array([1, 0, 1, 1], bool)) == 2
    assert M.tile_runs(4, 3) == pytest.approx(1.5)
    expected = M.gate2_record_cycles(16, 16, 4, 2, 2, 3, 5, 6, False, SMALL, p)
    assert expected == pytest.approx(12 + 7 + terms + 2 * 11.5)
    dense = M.gate2_record_cycles(16, 16, 4, 2, 2, 4, 16, 16, True, SMALL, p)
    assert dense == pytest.approx(12 + 7 + (1 + 1 + 4 + 16) + 2 * 16 * 16 / 17 + 1 + 2 * 4
                                  + 2 * 7)


def test_bottleneck_network_cycles_price_every_record():
    """resdg50 on ultra96's engine with ResNet-50's channel limits: each block adds a
    gate-2 record to the gate cycles and three main convs (conv1 at the input resolution,
    conv2 gated on both sides, conv3); fewer cycles gated than dense; the MACs = the
    scheduler's convs + both channel gates + the spatial gate + the fc."""
    from dgfpga.contract.engine_config import load_config as _load
    from dgfpga.numerics.gates import channel_gate_macs
    cfg = _load(R50_CFG)
    net = net_shape("resdg50")
    plan = shape_plan("resdg50", cfg)
    assert [r.kind for r in plan.records].count("gate2") == 16
    masks = M.random_block_masks(net, [0.4] * 16, seed=2)
    assert all(m.channels2 is not None and len(m.channels2) == len(m.channels) for m in masks)
    g = M.network_cycles(plan, masks, EXACT)
    d = M.network_cycles(plan, None, EXACT)
    assert d.macs == net.dense_macs
    names = [l.name for l in d.layers]
    assert sum(n.endswith(".conv3") for n in names) == 16
    assert g.engine_cycles < 0.75 * d.engine_cycles
    gate2 = sum(M.gate2_record_cycles(bp.gate2_record.in_c, bp.gate2_record.out_c,
                                      bp.gate2_record.hidden, *bp.grid, len(m.tiles),
                                      len(m.channels), len(m.channels2), False, cfg, EXACT,
                                      np.isin(np.arange(bp.grid[0] * bp.grid[1]), m.tiles))
                for bp, m in zip(plan.blocks, masks))
    gate1 = sum(M.gate_record_cycles(*M._gate_fields(plan, i), len(m.tiles), len(m.channels),
                                     False, cfg, EXACT) for i, m in enumerate(masks))
    assert g.gate_cycles == pytest.approx(gate1 + gate2)
    convs = M.network_runs(plan, masks)
    want = sum(r.macs for r in convs) + net.fc_in * net.fc_out + sum(
        b.n_tiles * 9 * b.in_c + channel_gate_macs(b.in_c, b.in_c // 4, b.width)
        + channel_gate_macs(b.width, b.width // 4, b.width) for b in net.blocks)
    assert g.macs == want


def test_bottleneck_program_cycles_equal_network_cycles():
    """Two routes to one Bottleneck image's cycles: program_cycles walks the program after
    the interpreter ran it (effective descriptors under the gate and gate-2 counts, the lists
    the records wrote in WORK, mask_c2 read back from WORK) and network_cycles walks the
    plan with the scheduler for the same decisions. They agree."""
    pytest.importorskip("torch")
    from dgfpga.contract import program as P
    from dgfpga.numerics.qmodel import quantize_input
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.runtime.interpreter import run_program
    from dgfpga.runtime.packer import plan_network
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 32, 32)).astype(np.float32).clip(-1.9, 2.0)
    qm = quantize_model(make_test_model("resdg29b_cifar10", x), x)
    cfg = default_config()
    plan = plan_network(qm, cfg)
    for dense in (False, True):
        mem = {k: np.zeros(v, np.uint8) for k, v in plan.region_bytes.items()}
        mem["weight"][:] = plan.weight_image
        ib = plan.fmap[plan.input_tensor]
        xq = quantize_input(x[:1], qm.input_scale)[0]
        mem["fmap"][ib.offset:ib.offset + ib.nbytes] = \
            np.moveaxis(xq, 0, -1).reshape(-1).view(np.uint8)
        r = run_program(plan.program, plan.record_count, mem, cfg, P.RUN_DENSE if dense else 0)
        assert r.ok, r.message
        per = M.program_cycles(plan.program, plan.record_count, mem["work"], r.gate_masks,
                               dense, cfg, EXACT)
        masks = None if dense else [
            M.BlockMask(np.flatnonzero(sp.reshape(-1)).astype(np.uint16),
                        np.flatnonzero(ch).astype(np.uint16),
                        np.flatnonzero(c2).astype(np.uint16))
            for (sp, ch), c2 in zip(r.gate_masks, r.gate2_masks)]
        nc = M.network_cycles(plan, masks, EXACT)
        kinds = [rec.kind for rec in plan.records]
        gates = sum(c for c, k in zip(per, kinds) if k in ("gate", "gate2"))
        assert gates == pytest.approx(nc.gate_cycles)
        assert sum(per) == pytest.approx(nc.engine_cycles)


# ---- depthwise layers (MobileNetV2; an estimate of the specified mode) -------------------
def _dw(cfg, c=96, h=14, tile=2, gated=0):
    d = F.make_descriptor(k=3, stride=1, in_h=h, in_w=h, in_c=c, out_c=c, tile=tile,
                          op=F.OP_DWCONV, in_offset=0, out_offset=1 << 20)
    if gated:
        d = d.replace(tile_gated=True, in_ch_gated=True, out_ch_gated=True, zero_halo=True,
                      n_active_out=gated, n_active_in=gated, tile_list_offset=0,
                      out_ch_list_offset=512, bitmap_offset=1024)
    return d


def test_depthwise_layer_hand_counted():
    """A dense depthwise 3x3 on 14x14x96, tile 2 (7x7 grid), ultra96: MACs = 14*14*96*9
    (one channel per lane, not 96 x 96); weights = 96 rows of 16 bytes (9 taps padded to
    tn) + params, loaded once; the compute is bounded below by the array (two steps per
    pixel and m-group: 6 groups x 196 pixels) and by the write-back's requantizers (4
    cycles per pixel and group: 4704); gating half the channels and a third of the tiles
    costs less."""
    cfg = load_config("ultra96")
    d = _dw(cfg)
    assert F.mac_steps_per_pixel(d, cfg) == 2 and F.weight_stream_bytes(d, cfg) == 96 * 16
    lc = M.layer_cycles(d, cfg)
    assert lc.macs == lc.dense_macs == 14 * 14 * 96 * 9
    assert lc.weight_bytes == 96 * (16 + F.PARAM_BYTES)
    groups, pix = 6, 14 * 14
    assert lc.compute_cycles >= groups * pix * F.requant_cycles_per_pixel(cfg)
    assert lc.total_cycles >= lc.compute_cycles
    # the patch is read once per tile for all channels (not once per m-group)
    side = [min(13, 2 * t + 2) - max(0, 2 * t - 1) + 1 for t in range(7)]   # 3, 4, .., 4, 3
    patch_bytes = sum(a * b for a in side for b in side) * 96
    assert lc.ddr_bytes < patch_bytes * 1.01 + 14 * 14 * 96 + lc.weight_bytes + 2000
    g = M.layer_cycles(_dw(cfg, gated=48), cfg, tiles=[0, 3, 6, 21, 24, 27, 42, 45, 48])
    assert g.macs == 9 * 4 * 48 * 9 and g.total_cycles < lc.total_cycles / 3


def test_mobilenet_program_priced_without_the_scheduler():
    """MobileNetV2 shapes (netshapes.mobilenet_v2) on ultra96's engine with 2048-channel
    limits, priced as one start of the network program (program_network_cycles): dense,
    the convs' MACs are the shapes' dense count (fc included; the official count is it
    minus two thirds of the stem); with random decisions each gated block's MACs are
    active pixels x active channels x (C_in + 9 + C_out) by hand, plus its gates."""
    from dgfpga.numerics.gates import channel_gate_macs, spatial_gate_macs
    from dgfpga.perf.netshapes import net_shape, shape_plan
    cfg = load_config(R50_CFG)
    net = net_shape("mobilenet_v2_dg")
    assert net.official_dense_macs == net.dense_macs - 2 * net.stem.macs // 3
    plan = shape_plan("mobilenet_v2_dg", cfg)
    dense = M.program_network_cycles(plan, None)
    assert dense.macs == dense.dense_macs == net.dense_macs == 300_774_272
    masks = M.random_gated_masks(plan, 0.3, seed=1)
    gated = M.program_network_cycles(plan, masks)
    want = net.dense_macs
    k = 0
    for b in net.blocks:
        if not b.gated:
            continue
        sp, ch = masks[k]
        k += 1
        gh, gw = b.grid
        rows = [min(b.tile, b.out_h - b.tile * i) for i in range(gh)]
        cols = [min(b.tile, b.out_w - b.tile * j) for j in range(gw)]
        pix = sum(rows[t // gw] * cols[t % gw] for t in np.flatnonzero(sp))
        want += pix * int(ch.sum()) * (b.in_c + 9 + b.out_c) - b.dense_macs
        want += spatial_gate_macs(b.grid, b.in_c) + channel_gate_macs(b.in_c, b.in_c // 4,
                                                                       b.hidden)
    assert k == 10 and gated.macs == want
    assert gated.total_cycles < dense.total_cycles and gated.gate_cycles > 0
    assert dense.gate_cycles > 0 and dense.skipped_cycles == 0


def test_mobilenet_prediction_hits_the_paper_operating_point():
    """`dgfpga predict --arch mobilenet_v2_dg`: the solved random decisions reach the
    paper's 50% model's MACs (0.16 G, official counting) within 1%, and the predicted
    speedup is a real one, below the MAC reduction."""
    from dgfpga.cli.cmd_predict import MOBILENET_V2_PAPER_MACS, mobilenet_prediction
    r = mobilenet_prediction(load_config(R50_CFG), M.CycleParams())
    assert abs(r["gated_official_macs"] / MOBILENET_V2_PAPER_MACS - 1) < 0.01
    assert 1.0 < r["speedup"] < r["mac_reduction"] * 1.05
    assert set(r["efficiency_by_type"]) == {"stem 3x3", "1x1", "depthwise 3x3"}


def test_ic_layout_weights_are_priced_as_merged_reads():
    """An input-gated 3x3 layer (ic_g_k_k_m) on ultra96, one m-group: the loader reads each
    active in-channel's 9 rows as ONE 9-beat command (formats.ic_weight_run_beats). Against
    a 40-cycle latency with 8 reads in flight the group's params + weights (exposed before
    the first tile) then take the larger of the port time and the loader's consumer, not
    a latency round per 8 rows. Hand-computed:
      params 16 one-beat commands (8 B each, consumed 1 B/cycle: 128 cycles);
      weights 128 commands of 9 beats (1152 rows of 16 B, consumed one row per cycle);
      read_time(144 commands, 1168 beats) = max(40 + 1168, 40 + 8 b + (144/8 - 1)(40 + b))
                                          = 1208 (b = 1168/144);
      consumer = 128 + 1152 = 1280; bytes / B = (128 + 18432) / 16 = 1160  ->  1280.
    One command per row would be 1168 one-beat commands: 40 + 8 + (146 - 1) * 41 = 5993."""
    import dataclasses
    cfg = load_config("ultra96")
    d = F.make_descriptor(k=3, stride=1, in_h=7, in_w=7, in_c=256, out_c=16, tile=7,
                          in_ch_gated=True, n_active_in=128)
    assert d.weight_layout == "ic_g_k_k_m"
    p = M.CycleParams(axi_efficiency=1.0, dram_bytes_per_s=1e15, outstanding_reads=8,
                      max_burst_beats=16).with_memory(40, 0)
    assert M.read_time(144, 1168 / 144, p) == pytest.approx(1208)
    assert M.read_time(1168, 1.0, p) == pytest.approx(5993)
    assert M.layer_cycles(d, cfg, p).bounds["weights"] == pytest.approx(1280)
    # m_g = 8 < the 16-byte beat (tm = 8): the rows share beats, one command per row
    narrow = dataclasses.replace(cfg, tm=8)
    assert F.ic_weight_run_beats(8, 9, 16, narrow) == 0
    assert M.layer_cycles(d, narrow, p).bounds["weights"] > 4 * 1280
