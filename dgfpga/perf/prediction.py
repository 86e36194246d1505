"""Predicted engine performance from the analytical cycle model (torch-free).

- `paper_configurations(cfg)`: ResNet-18/34 at the paper's Table 3 operating points.
  Masks are drawn at random (`cycle_model.random_block_masks`) with one density for every
  gated block, chosen by bisection so that the network's theoretical MAC reduction (stem,
  shortcuts, gates and fc included, official counting) equals the paper's figure; then the
  model predicts dense and gated cycles. The paper's measured Ultra96 speedups sit beside.
- `predict_masks(...)`: the same prediction for real masks (e.g. the golden model's
  decisions on test images).
- Channel-group-aligned operating points (`channel_group=G`, `dgfpga predict
  --channel-groups`): the same random masks with every block's active channel count
  rounded to a neighbouring multiple of G (`align_channels`, randomised rounding that
  keeps the expected count; G = the engine's Tm), the density again solved for the
  paper's MAC reduction. These are the masks of a model
  trained with `dgfpga train --channel-group G` (its gates keep multiples of G channels
  active), NOT of the official or shipped checkpoints: the engine computes active output
  channels in groups of Tm, and a count that is not a multiple of Tm leaves lanes idle.

Both price one engine start per image of the network program: the network is packed
(`dgfpga.runtime.packer`; from its shapes when there is no model, `netshapes.shape_plan`),
every block is scheduled (`dgfpga.runtime.scheduler`, the reference of the work the
engine generates) and `cycle_model.network_cycles` prices stem, gate records, convs and
head. The host term is `host_s`, the host's CPU time per image the caller measured
(`dgfpga_host.runner.measure_host_cpu` or `dgfpga-host bench`); there is no host constant.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from dgfpga.perf.cycle_model import (BlockMask, CycleParams, compare, network_macs,
                                     random_block_masks)
from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.errors import ConfigError
from dgfpga.perf.netshapes import net_shape, shape_plan

__all__ = ["PAPER_TABLE3", "Prediction", "paper_configurations", "predict_masks",
           "block_density_for_reduction", "align_channels", "DDR_READ_LATENCY_S",
           "ddr_latency_cycles", "ddr_params"]

#: Read latency of the board's DDR as the engine's m_axi port sees it (AR accepted -> first
#: R beat), seconds, by board. Ultra96-V2: LPDDR4-2133 x32 behind the ZU3EG's PS DDR
#: controller, reached through an S_AXI_HP*_FPD port. An ESTIMATE, not a board measurement:
#: the LPDDR4 read latency RL = 20 tCK at 1066 MHz (~19 ns) plus tRCD ~18 ns on a row miss,
#: the controller's queue/scheduler and PHY (~50 ns), and the HP port's clock-domain
#: crossing, AFI FIFOs and the FPD interconnect both ways (~100 ns): ~200 ns idle, i.e.
#: 40 engine cycles at 200 MHz (the latency the RTL calibration also runs with). Loaded
#: DDR (CPU traffic, refresh) is slower; give `dgfpga predict --ddr-latency` a measured figure.
DDR_READ_LATENCY_S = {"Ultra96-V2": 200e-9}

# DGNet paper, Table 3 (Ultra96): network, sparsity, theoretical MAC reduction, measured speedup
PAPER_TABLE3 = (
    ("resdg18", 0.60, 2.40, 1.87),
    ("resdg34", 0.60, 2.46, 1.93),
    ("resdg34", 0.70, 3.05, 2.26),
)

# DGNet paper, Table 2 / the official README (ImageNet): network, sparsity, MACs of the
# DGNet. No FPGA speedup was published for these; their MAC reduction is taken against
# the official dense count of the network (`operating_points`).
PAPER_TABLE2_MACS = (
    ("resdg50", 0.60, 1.65e9),
    ("resdg50", 0.70, 1.31e9),
)


def operating_points(network: Optional[str] = None,
                     cfg: Optional[EngineConfig] = None) -> list[tuple]:
    """The paper's operating points as (network, sparsity, MAC reduction, Ultra96 speedup
    or None): Table 3's (ResNet-18/34, with measured speedups) and Table 2's ResNet-50
    rows (reduction = official dense MACs / the DGNet's MACs, no speedup published).
    `network`: only that network's rows (None: Table 3's)."""
    if network is None:
        return list(PAPER_TABLE3)
    rows = [r for r in PAPER_TABLE3 if r[0] == network]
    for net, sparsity, macs in PAPER_TABLE2_MACS:
        if net == network:
            dense = network_macs(shape_plan(net, cfg or default_config()), None)
            rows.append((net, sparsity, dense / macs, None))
    if not rows:
        known = sorted({r[0] for r in PAPER_TABLE3} | {r[0] for r in PAPER_TABLE2_MACS})
        raise ConfigError(f"no paper operating point for {network!r}: one of "
                          f"{', '.join(known)}")
    return rows


@dataclass
class Prediction:
    """Dense vs gated prediction of one network at one operating point."""
    network: str
    config: str
    block_density: float
    mac_reduction: float
    speedup: float
    efficiency: float
    dense_ms: float
    gated_ms: float
    gated_images_per_s: float
    dense_images_per_s: float
    paper_speedup: Optional[float] = None
    paper_mac_reduction: Optional[float] = None
    host_ms: float = 0.0          # host CPU per image included in dense_ms and gated_ms
    gate_ms: float = 0.0          # the gated run's gate records (included in gated_ms)
    channel_group: int = 1        # >1: active channel counts are multiples of it (aligned)
    #: {layer type: {"dense"|"gated": MACs / (cycles * tm * tn)}} (`efficiency_by_type`)
    efficiency_by_type: dict = field(default_factory=dict)
    #: {layer type: {"dense"|"gated": share of the engine cycles}}
    cycles_share_by_type: dict = field(default_factory=dict)
    #: {layer type: {"dense"|"gated": {bound: share of the type's cycles}}} (`bounds_by_type`)
    bounds_by_type: dict = field(default_factory=dict)
    #: {"dense"|"gated": [(layer name, {bound: cycles})]} (`LayerCycles.bounds`, in order)
    layer_bounds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def ddr_latency_cycles(cfg: EngineConfig) -> int:
    """`DDR_READ_LATENCY_S` of the config's board in its engine cycles (0: unknown board)."""
    return int(round(DDR_READ_LATENCY_S.get(cfg.board, 0.0) * cfg.clock_hz))


def ddr_params(params: Optional[CycleParams], cfg: EngineConfig,
               latency: Optional[float] = None, stall_pct: float = 0.0) -> CycleParams:
    """`params` against the board's DDR: the read latency (`latency` cycles, default
    `ddr_latency_cycles(cfg)`) and stall percentage the cycle model then prices."""
    p = params or CycleParams()
    return p.with_memory(ddr_latency_cycles(cfg) if latency is None else latency, stall_pct)


def align_channels(net, masks: Sequence[BlockMask], group: int,
                   seed: int = 0) -> list[BlockMask]:
    """`masks` with every block's active channel count n rounded to a neighbouring multiple
    of `group`: up with probability frac(n / group), else down (randomised rounding with
    one uniform draw per block, numpy Generator seeded by `seed`: the expected count is
    kept, and the blocks step at different densities, so the density solve still lands on
    the paper's MAC reduction). At least `group` when any channel is on, at most the
    block's channels (a block narrower than `group` is all or nothing). Channels are
    dropped from the end of the active list or drawn at random from the inactive ones.
    Tiles are kept. group=1 returns the masks unchanged."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ConfigError(f"channel group must be an integer >= 1, got {group!r}")
    if len(masks) != len(net.blocks):
        raise ConfigError(f"{net.name}: {len(masks)} masks for {len(net.blocks)} blocks")
    if group == 1:
        return list(masks)
    rng = np.random.default_rng(seed)
    up = rng.random(len(masks))

    def aligned(chans, width: int, u: float) -> np.ndarray:
        n = len(chans)
        q = int(n // group) + int(n % group > u * group)
        want = 0 if n == 0 else min(width, max(group, group * q))
        chans = np.asarray(chans)
        if want < n:
            chans = chans[:want]
        elif want > n:
            free = np.setdiff1d(np.arange(width), chans)
            chans = np.sort(np.concatenate([chans, rng.choice(free, want - n, replace=False)]))
        return chans.astype(np.uint16)

    out = []
    for b, m, u in zip(net.blocks, masks, up):
        width = getattr(b, "gated_c", b.out_c)     # a Bottleneck gates its mid width
        c2 = None if m.channels2 is None else aligned(m.channels2, width, u)
        out.append(BlockMask(m.tiles, aligned(m.channels, width, u), c2))
    return out


def _masks(net, d: float, seed: int, group: int = 1) -> list[BlockMask]:
    return align_channels(net, random_block_masks(net, [d] * len(net.blocks), seed=seed),
                          group, seed)


def block_density_for_reduction(network: str, reduction: float, seed: int = 0,
                                cfg: Optional[EngineConfig] = None,
                                channel_group: int = 1) -> float:
    """The per-block density whose random masks (active channel counts rounded to
    multiples of `channel_group`) give `reduction` x fewer MACs overall."""
    net = net_shape(network)
    plan = shape_plan(network, cfg or default_config())
    dense = network_macs(plan, None)
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        r = dense / network_macs(plan, _masks(net, mid, seed, channel_group))
        lo, hi = (mid, hi) if r > reduction else (lo, mid)
    return 0.5 * (lo + hi)


def layer_type(lp) -> str:
    """The layer type a per-type efficiency is reported under: "stem 7x7" (the stem, its
    kernel), "depthwise 3x3", "1x1", "1x1/s2" (strided 1x1: ResNet projections), "3x3"."""
    d = lp.template
    if lp.kind == "stem":
        return f"stem {d.k}x{d.k}"
    if d.depthwise:
        return f"depthwise {d.k}x{d.k}"
    return f"{d.k}x{d.k}" + (f"/s{d.stride}" if d.k == 1 and d.stride > 1 else "")


def _layers_by_type(plan, runs: dict):
    """(type, mode, LayerCycles) for every planned layer of every run ({"dense":
    NetworkCycles, ...}), `layer_type` order; LayerCycles is None for a layer the run skipped
    (every gated block skipped it). Gate and head records are not planned layers."""
    for mode, nc in runs.items():
        by_name = {lc.name: lc for lc in nc.layers}
        for lp in plan.layers:
            yield layer_type(lp), mode, by_name.get(lp.name)


def efficiency_by_type(plan, runs: dict, cfg: EngineConfig) -> tuple[dict, dict]:
    """Per layer type (`layer_type`) and run ({"dense": NetworkCycles, "gated": ...}):
    the array efficiency MACs / (cycles * tm * tn) over that type's layers, and their share
    of the run's engine cycles (gate and head records excluded from both)."""
    acc: dict = {}
    for typ, mode, lc in _layers_by_type(plan, runs):
        t = acc.setdefault(typ, {m: [0, 0] for m in runs})
        if lc is not None:
            t[mode][0] += lc.macs
            t[mode][1] += lc.total_cycles
    lanes = cfg.tm * cfg.tn
    eff = {t: {m: (v[m][0] / (v[m][1] * lanes) if v[m][1] else 0.0) for m in runs}
           for t, v in acc.items()}
    share = {t: {m: v[m][1] / runs[m].engine_cycles for m in runs} for t, v in acc.items()}
    return eff, share


def bounds_by_type(plan, runs: dict) -> dict:
    """Per layer type (`layer_type`) and run ({"dense": NetworkCycles, "gated": ...}): what
    bounded that type's cycles, as shares of them ({bound: share}, `cycle_model.BOUNDS`,
    from each layer's `LayerCycles.bounds`; the shares of a type sum to 1)."""
    acc: dict = {}
    for typ, mode, lc in _layers_by_type(plan, runs):
        t = acc.setdefault(typ, {m: {} for m in runs})[mode]
        for b, c in (lc.bounds.items() if lc is not None else ()):
            t[b] = t.get(b, 0.0) + c
    return {t: {m: {b: c / sum(v.values()) for b, c in v.items() if c}
                for m, v in modes.items() if sum(v.values())}
            for t, modes in acc.items()}


def _prediction(network, cfg, cmp, d, paper=None, channel_group: int = 1,
                plan=None) -> Prediction:
    dense_s = cmp.dense.seconds(cfg)
    gated_s = cmp.gated.seconds(cfg)
    runs = {"dense": cmp.dense, "gated": cmp.gated}
    eff, share = efficiency_by_type(plan, runs, cfg) if plan is not None else ({}, {})
    bounds = bounds_by_type(plan, runs) if plan is not None else {}
    return Prediction(network, cfg.name, d, cmp.mac_reduction, cmp.speedup, cmp.efficiency,
                      1e3 * dense_s, 1e3 * gated_s, 1 / gated_s, 1 / dense_s,
                      paper[3] if paper else None, paper[2] if paper else None,
                      1e3 * cmp.gated.host_cycles / cfg.clock_hz,
                      1e3 * cmp.gated.gate_cycles / cfg.clock_hz, channel_group, eff, share,
                      bounds, {m: [(lc.name, dict(lc.bounds)) for lc in nc.layers]
                               for m, nc in runs.items()})


def paper_configurations(cfg: Optional[EngineConfig] = None,
                         params: Optional[CycleParams] = None, seed: int = 0,
                         host_s=0.0, channel_group: int = 1,
                         network: Optional[str] = None) -> list[Prediction]:
    """Predictions at the paper's Table 3 operating points (see the module docstring).
    `host_s`: host CPU seconds per image, a number or {network: seconds}.
    `channel_group` > 1: channel-group-aligned masks (`align_channels`; the figures of a
    model trained with `dgfpga train --channel-group`, not of the official checkpoints).
    `network`: that network's operating points (`operating_points`; None: Table 3's)."""
    cfg = cfg or default_config()
    out = []
    for network, _sparsity, reduction, _speedup in operating_points(network, cfg):
        d = block_density_for_reduction(network, reduction, seed, cfg, channel_group)
        net = net_shape(network)
        h = host_s.get(network, 0.0) if isinstance(host_s, dict) else host_s
        plan = shape_plan(network, cfg)
        cmp = compare(plan, _masks(net, d, seed, channel_group), params, h)
        out.append(_prediction(network, cfg, cmp, d, (network, _sparsity, reduction, _speedup),
                               channel_group, plan))
    return out


def predict_masks(network, spatial: Sequence[np.ndarray], channel: Sequence[np.ndarray],
                  cfg: Optional[EngineConfig] = None,
                  params: Optional[CycleParams] = None, host_s: float = 0.0) -> Prediction:
    """Prediction for one image's real masks (spatial bool grids, channel bool vectors);
    `host_s`: the host's CPU seconds per image.

    `network`: a zoo name (planned from its shapes for `cfg`) or the
    `dgfpga.runtime.packer.NetworkPlan` of the quantized model itself (then `cfg` is the
    plan's)."""
    if isinstance(network, str):
        cfg = cfg or default_config()
        plan = shape_plan(network, cfg)
    else:
        plan, cfg = network, network.cfg
    masks = [BlockMask(np.flatnonzero(np.asarray(s).reshape(-1)).astype(np.uint16),
                       np.flatnonzero(np.asarray(c).reshape(-1)).astype(np.uint16))
             for s, c in zip(spatial, channel)]
    cmp = compare(plan, masks, params, host_s)
    dens = float(np.mean([len(m.tiles) / b.conv1.template.n_tiles * len(m.channels)
                          / b.conv1.template.out_c for m, b in zip(masks, plan.blocks)]))
    return _prediction(plan.qmodel.arch, cfg, cmp, dens, plan=plan)
