"""One schedule: the cycle model prices exactly the layers and work lists the scheduler emits.

The reference side of every comparison is independent of dgfpga.perf: a fresh
`Scheduler(plan, validate=True)` per network, each run's descriptors unpacked from its
program bytes and its work lists read back from a WORK image through
`formats.read_work_list`. The priced side is whatever `cycle_model.layer_cycles` is called
with while `network_cycles` runs (a spy), so any drift of the cycle model (an extra or
missing layer, a different count, list or flag) fails, descriptor by descriptor.
"""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.contract import formats
from dgfpga.contract.engine_config import load_config
from dgfpga.perf import cycle_model as M
from dgfpga.perf.netshapes import net_shape, shape_plan
from dgfpga.runtime.scheduler import Scheduler

SMALL, U96 = load_config("small"), load_config("ultra96")
MODES = ("off", "on", "tiles_no_channel", "channels_no_tile", "random")


def _masks(plan, seed: int, modes=None) -> list:
    """Per block a mask of the given (or a random) mode; every mode appears."""
    rng = np.random.default_rng(seed)
    out = []
    for i, bp in enumerate(plan.blocks):
        n, c = bp.conv1.template.n_tiles, bp.conv1.template.out_c
        mode = modes[i] if modes else MODES[(i + seed) % len(MODES)]
        tiles = {"off": [], "on": range(n), "tiles_no_channel": range(n),
                 "channels_no_tile": [],
                 "random": np.flatnonzero(rng.random(n) < 0.4)}[mode]
        chans = {"off": [], "on": range(c), "tiles_no_channel": [], "channels_no_tile": range(c),
                 "random": np.flatnonzero(rng.random(c) < 0.6)}[mode]
        out.append(M.BlockMask(np.asarray(tiles, np.uint16), np.asarray(chans, np.uint16)))
    return out


def _scheduled(plan, masks):
    """Reference: (descriptor, work list) of every layer the scheduler emits, and the runs."""
    sch = Scheduler(plan, validate=True)
    work = np.zeros(plan.region_bytes["work"], np.uint8)
    runs = [sch.stem()]
    for i, bp in enumerate(plan.blocks):
        if masks is None:
            runs.append(sch.block(i))
            continue
        sp = np.zeros(bp.conv1.template.n_tiles, bool)
        sp[masks[i].tiles.astype(int)] = True
        ch = np.zeros(bp.conv1.template.out_c, bool)
        ch[masks[i].channels.astype(int)] = True
        runs.append(sch.block(i, sp, ch))
    layers = []
    for run in runs:
        for off, data in run.work_writes:
            work[off:off + data.size] = data
        b = formats.DESCRIPTOR_BYTES
        for k in range(run.layer_count):
            d = formats.unpack_descriptor(run.program[k * b:(k + 1) * b], plan.cfg)
            layers.append((d, formats.read_work_list(d, work)))
    return layers, runs


def _priced(plan, masks, monkeypatch, params=None):
    """What network_cycles hands to layer_cycles: (descriptor, tiles, res_tiles) per layer."""
    seen = []
    real = M.layer_cycles

    def spy(d, cfg=None, params=None, tiles=None, res_tiles=None, name=""):
        seen.append((d, tiles, res_tiles))
        return real(d, cfg, params, tiles=tiles, res_tiles=res_tiles, name=name)
    with monkeypatch.context() as mp:
        mp.setattr(M, "layer_cycles", spy)
        nc = M.network_cycles(plan, masks, params)
    return seen, nc


def _mismatches(plan, masks, monkeypatch) -> list[str]:
    want, runs = _scheduled(plan, masks)
    got, nc = _priced(plan, masks, monkeypatch)
    bad = []
    if len(got) != len(want):
        bad.append(f"{len(got)} layers priced, {len(want)} scheduled")
    for k, ((d, tiles, res), (dw, wl)) in enumerate(zip(got, want)):
        if d != dw:
            diff = {f: (getattr(d, f), getattr(dw, f)) for f in d.__dataclass_fields__
                    if getattr(d, f) != getattr(dw, f)}
            bad.append(f"layer {k}: descriptor differs {diff}")
        if dw.tile_gated:
            if tiles is None or list(np.asarray(tiles)) != wl.tiles.tolist():
                bad.append(f"layer {k}: active tiles differ")
        elif tiles is not None and list(np.asarray(tiles)) != list(range(dw.n_tiles)):
            bad.append(f"layer {k}: dense layer priced on a subset of tiles")
        if list(np.asarray(res if res is not None else [])) != wl.res_tiles.tolist():
            bad.append(f"layer {k}: residual-only tiles differ")
    # totals: the same layers priced independently + the one start's other records (gate
    # records, head, the fetch of every conv record the gates left empty); no host term
    p = M.CycleParams()
    engine = sum(M.layer_cycles(dw, plan.cfg, p, tiles=wl.tiles if dw.tile_gated else None,
                                res_tiles=wl.res_tiles if len(wl.res_tiles) else None).total_cycles
                 for dw, wl in want)
    n_skipped = len(plan.layers) - len(want)
    if nc.skipped_cycles != pytest.approx(n_skipped * M.skipped_layer_cycles(plan.cfg, p)):
        bad.append(f"{n_skipped} skipped records, priced {nc.skipped_cycles}")
    other = nc.gate_cycles + nc.skipped_cycles + nc.head_cycles
    if nc.host_cycles != 0 or nc.total_cycles != pytest.approx(engine + other, rel=1e-12):
        bad.append(f"total {nc.total_cycles} != scheduled {engine + other}")
    work = sum(r.macs for r in runs)
    if masks is not None:
        work += sum(formats_gate(bp) for bp in plan.blocks)
    if nc.macs != work + plan.qmodel.head.weight.size:
        bad.append(f"MACs {nc.macs} != scheduled {work + plan.qmodel.head.weight.size}")
    return bad


def formats_gate(bp) -> int:
    from dgfpga.numerics.gates import channel_gate_macs, spatial_gate_macs
    t = bp.conv1.template
    return spatial_gate_macs((t.grid_h, t.grid_w), t.in_c) + \
        channel_gate_macs(t.in_c, t.in_c // 4, t.out_c)


@pytest.mark.parametrize("name, cfg", [("resdg20_cifar10", SMALL), ("resdg20_cifar10", U96),
                                       ("resdg18", U96)])
def test_cycle_model_prices_exactly_the_scheduled_work(name, cfg, monkeypatch):
    plan = shape_plan(name, cfg)
    for seed in range(len(MODES)):                 # every block sees every mode
        assert _mismatches(plan, _masks(plan, seed), monkeypatch) == [], seed
    all_off = _masks(plan, 0, ["off"] * len(plan.blocks))
    all_on = _masks(plan, 0, ["on"] * len(plan.blocks))
    for masks in (all_off, all_on, None):
        assert _mismatches(plan, masks, monkeypatch) == []
    # the disagreement that was fixed: an all-off identity block is no layer and no start
    want, runs = _scheduled(plan, all_off)
    identity = [i for i, bp in enumerate(plan.blocks) if bp.identity]
    assert identity and all(runs[1 + i].layer_count == 0 for i in identity)
    nc = M.network_cycles(plan, all_off)
    assert len(nc.layers) == len(want) == 1 + sum(
        2 for bp in plan.blocks if not bp.identity)    # stem + (shortcut, conv2) per downsample


def _drift_empty_runs_charged(real):
    """A drifted model: an empty run (all-off identity block) priced as the dense run, as
    the removed `block_descriptors` did (two layers and a start)."""
    def runs(plan, masks):
        out = real(plan, masks)
        dense = real(plan, None)
        return [d if (r.layer_count == 0) else r for r, d in zip(out, dense)]
    return runs


def _drift_lost_residual_tiles(real):
    """A drifted model: residual-only tiles not priced."""
    def scheduled_layers(run, cfg, work):
        return [(d, formats.WorkList(wl.tiles, np.zeros(0, np.uint16), wl.out_channels,
                                     wl.in_channels, wl.bitmap)) for d, wl in real(run, cfg, work)]
    return scheduled_layers


def _drift_average_tiles(real):
    """A drifted model: gated layers priced as `count` average tiles (no tile lists)."""
    def price_layer(d, wl, cfg, params, name=""):
        return M.layer_cycles(d, cfg, params, tiles=None, res_tiles=None, name=name)
    return price_layer


@pytest.mark.parametrize("attr, drift", [("network_runs", _drift_empty_runs_charged),
                                         ("scheduled_layers", _drift_lost_residual_tiles),
                                         ("price_layer", _drift_average_tiles)])
def test_a_drifted_cycle_model_fails(attr, drift, monkeypatch):
    plan = shape_plan("resdg20_cifar10", SMALL)
    masks = _masks(plan, 0, ["off", "random", "off", "random", "on", "off", "random",
                             "random", "off"])
    assert _mismatches(plan, masks, monkeypatch) == []
    monkeypatch.setattr(M, attr, drift(getattr(M, attr)))
    assert _mismatches(plan, masks, monkeypatch) != []


def test_shape_plan_is_the_plan_of_a_quantized_model(test_qmodel, monkeypatch):
    """Shape-only predictions use the same schedule as the trained model's own plan."""
    from dgfpga.runtime.packer import plan_network
    real = plan_network(test_qmodel, SMALL)
    shape = shape_plan(test_qmodel.arch, SMALL)
    assert len(real.layers) == len(shape.layers)
    geometry = ("k", "stride", "pad", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c",
                "tile", "grid_h", "grid_w", "maxpool", "tile_gated", "out_ch_gated",
                "in_ch_gated", "zero_halo", "in_place", "residual", "emit_sums", "res_signed",
                "in_signed", "out_signed", "weight_layout")
    for a, b in zip(real.layers, shape.layers):
        assert a.kind == b.kind
        assert {f: getattr(a.template, f) for f in geometry} == \
            {f: getattr(b.template, f) for f in geometry}, a.name
    for seed in range(3):
        masks = _masks(real, seed)
        x, y = M.network_cycles(real, masks), M.network_cycles(shape, masks)
        assert x.total_cycles == y.total_cycles and x.macs == y.macs


def test_network_macs_are_the_golden_models(test_qmodel, calib_images):
    """MAC accounting = the integer golden model's count (convs, gates, fc) per image."""
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import plan_network
    plan = plan_network(test_qmodel, SMALL)
    g = run_golden(test_qmodel, calib_images[:3], keep_layers=False)
    for n in range(3):
        masks = [M.BlockMask(np.flatnonzero(m.spatial[n].reshape(-1)).astype(np.uint16),
                             np.flatnonzero(m.channel[n]).astype(np.uint16)) for m in g.masks]
        assert M.network_macs(plan, masks) == int(g.total_macs[n])
    assert M.network_macs(plan, None) == int(g.dense_macs)


def test_calibration_measures_the_scheduled_layers(monkeypatch):
    """The calibration's layers are the scheduler's: same descriptors (but the vector's own
    offsets), same work lists; all-off identity blocks are not measured (they do not run)."""
    from dgfpga.perf import calibration
    plan = shape_plan("resdg20_cifar10", SMALL)
    items = calibration.calibration_layers(SMALL, densities=(None, 0.5), max_blocks=5)
    masks = M.random_block_masks(net_shape("resdg20_cifar10"), [0.5] * 9, seed=0)
    want = []
    for m in (None, masks):
        layers, runs = _scheduled(plan, m)
        n_first = 1 + sum(r.layer_count for r in runs[1:6])
        want += layers[1:n_first]                   # no stem, blocks 0..4
    assert len(items) == len(want)
    offsets = set(formats.OFFSET_FIELDS)
    for item, (dw, wl) in zip(items, want):
        vs = item["vector"]
        d = vs.meta["descriptor"]
        assert {f: v for f, v in vars(d).items() if f not in offsets} == \
            {f: v for f, v in vars(dw).items() if f not in offsets}, item["name"]
        assert vs.meta["tiles"].tolist() == wl.tiles.tolist()
        assert vs.meta["res_tiles"].tolist() == wl.res_tiles.tolist()
        assert vs.expected_status == 0
