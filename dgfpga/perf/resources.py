"""Resource ESTIMATE of the HLS engine for an engine configuration (torch-free).

This is an estimate from the micro-architecture in `hls/src` (docs/hls.md), not a
synthesis report: Vitis HLS was not run here. It counts what the C++ instantiates:

- **DSP48E2**: one per PAIR of int8 x (u8|s8) MACs of the TM x TN array, ceil(TM/2)*TN
  (TM*TN/2; TM = 1 uses TN half-empty ones): output lanes m, m+1 share the activation and
  one 27x18 multiply computes both products
  (the UltraScale+ INT8 packing, Xilinx WP486; hls/src/dg_dsp.h, sim/rtl/dg_mac_array.sv;
  the packed operand is the DSP's pre-adder, the sign correction one bit in the adder
  tree, counted there); per requantizer lane a 33x31-bit product (4 DSPs) and a 9x31-bit residual
  product (2 DSPs), TM/4 lanes (the write-back time-multiplexes them 4:1); a fixed
  allowance for the address multipliers of the loaders and the write-back.
- **BRAM36**: every on-chip array after its partitioning, mapped to the cheapest BRAM18
  aspect ratio (16Kx1 .. 512x36, or 512x72 on a BRAM36); arrays of at most
  `LUTRAM_MAX_BITS` bits go to distributed RAM (counted as LUTs); plus the m_axi
  adapters' burst FIFOs.
- **LUT / FF**: adder trees, the input rotator, the requantizers and the distributed RAM
  from the array sizes; control (descriptor checks, loop counters, address generators)
  and the AXI adapters as fixed allowances calibrated on typical Vitis HLS reports.

`estimate(cfg)` returns the breakdown; `check_fits(cfg)` raises ConfigError naming the
resource that exceeds the part's budget (ZU3EG: 360 DSP, 216 BRAM36, 70560 LUT, 141120 FF).
This is the one DSP/BRAM model: `engine_config.validate` refuses a configuration through
`dsp_bram_problems` (against the config's own `part_dsp`/`part_bram36`), the HLS project
reports it, and docs/hls.md quotes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from dgfpga.contract.engine_config import EngineConfig
from dgfpga.contract.formats import MAX_KERNEL_TAPS, REQUANT_SHARE
from dgfpga.errors import ConfigError

__all__ = ["PART_BUDGETS", "Item", "ResourceEstimate", "estimate", "check_fits",
           "dsp_bram_problems", "buffer_geometry"]

# Budgets by part family (device resources; DSP/BRAM also come from the config).
PART_BUDGETS = {
    "xczu3eg": dict(dsp=360, bram36=216, lut=70560, ff=141120),
}

LUTRAM_MAX_BITS = 2048      # arrays this small map to distributed RAM (HLS default-like)
LUT_PER_LUTRAM_BITS = 32    # one LUT6 as 64x1 RAM, x2 for the second read port
DSP_PER_REQUANT = 4 + 2     # (acc+bias)*mult 33x31 bits + res*res_mult 9x31 bits
DSP_ADDRESSING = 24         # address multipliers of the loaders/write-back (allowance)
MACS_PER_DSP = 2            # int8 products per DSP48E2 (lanes m, m+1 packed: dg_dsp.h)
LUT_CONTROL = 6000          # descriptor fetch + checks, work-list checks, FSMs, counters
FF_CONTROL = 7000
LUT_PER_MAXI = 1400         # one m_axi adapter (64-bit address, read/write channels)
FF_PER_MAXI = 1900
LUT_SAXILITE = 450
FF_SAXILITE = 550
N_MAXI = 5                  # gmem_prog, gmem_fmap, gmem_w, gmem_work, gmem_sums
MAXI_FIFO_CHANNELS = 6      # read: prog, fmap, w, work; write: fmap, sums


@dataclass(frozen=True)
class Item:
    """One component of the estimate."""
    component: str
    dsp: int = 0
    bram36: float = 0.0
    lut: int = 0
    ff: int = 0
    note: str = ""


@dataclass
class ResourceEstimate:
    """The estimate for one configuration, with its breakdown and the part budget."""
    config: str
    items: list = field(default_factory=list)
    budget: dict = field(default_factory=dict)

    @property
    def dsp(self) -> int:
        return sum(i.dsp for i in self.items)

    @property
    def bram36(self) -> int:
        return math.ceil(sum(i.bram36 for i in self.items))

    @property
    def lut(self) -> int:
        return sum(i.lut for i in self.items)

    @property
    def ff(self) -> int:
        return sum(i.ff for i in self.items)

    def totals(self) -> dict:
        return dict(dsp=self.dsp, bram36=self.bram36, lut=self.lut, ff=self.ff)

    def utilisation(self) -> dict:
        """Fraction of the budget per resource."""
        return {k: v / self.budget[k] for k, v in self.totals().items()}

    def over_budget(self) -> list[str]:
        return [k for k, v in self.totals().items() if v > self.budget[k]]

    def table(self) -> str:
        """A plain-text table of the breakdown (an estimate, says so)."""
        rows = [f"resource ESTIMATE for engine config '{self.config}' (not a synthesis report)",
                f"{'component':34s} {'DSP':>5s} {'BRAM36':>7s} {'LUT':>7s} {'FF':>7s}  note"]
        for i in self.items:
            rows.append(f"{i.component:34s} {i.dsp:5d} {i.bram36:7.1f} {i.lut:7d} {i.ff:7d}  {i.note}")
        t, b = self.totals(), self.budget
        rows.append(f"{'total':34s} {t['dsp']:5d} {t['bram36']:7d} {t['lut']:7d} {t['ff']:7d}")
        rows.append(f"{'budget':34s} {b['dsp']:5d} {b['bram36']:7d} {b['lut']:7d} {b['ff']:7d}")
        return "\n".join(rows)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def buffer_geometry(cfg: EngineConfig) -> dict:
    """On-chip array sizes the engine instantiates (mirrors hls/src/dg_types.h)."""
    tm, tn = cfg.tm, cfg.tn
    max_tiles = cfg.max_grid * cfg.max_grid
    return dict(
        W_DEPTH=_ceil_div(cfg.weight_buffer_bytes // 2, tm * tn) + MAX_KERNEL_TAPS,
        IFM_DEPTH=_ceil_div(cfg.ifm_buffer_bytes // 2, tn),
        ACC_DEPTH=cfg.ofm_buffer_bytes // (4 * tm),
        PARAM_ROWS=_ceil_div(cfg.max_out_channels, tm),
        REQUANT_LANES=tm // REQUANT_SHARE if tm >= REQUANT_SHARE else 1,
        MAX_TILES=max_tiles,
        BITMAP_WORDS=_ceil_div(max_tiles, 32),
    )


# BRAM18 aspect ratios (depth, width); a BRAM36 also offers 512 x 72 (= two BRAM18).
_BRAM18_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def _memory(depth: int, width: int) -> tuple[float, int]:
    """(BRAM36, LUT) of one memory of depth x width bits."""
    if depth * width <= LUTRAM_MAX_BITS:
        return 0.0, _ceil_div(depth, 64) * width * 2
    halves = min(_ceil_div(depth, d) * _ceil_div(width, w) for d, w in _BRAM18_MODES)
    halves = min(halves, 2 * _ceil_div(depth, 512) * _ceil_div(width, 72))
    return halves / 2, 0


def _memories(name: str, count: int, depth: int, width: int, note: str) -> Item:
    b, lut = _memory(depth, width)
    return Item(name, bram36=count * b, lut=count * lut,
                note=f"{count} x {depth}x{width} bit {'LUTRAM' if lut else 'BRAM'}; {note}")


def _items(cfg: EngineConfig) -> list[Item]:
    """The components of the estimate (needs no part budget)."""
    g = buffer_geometry(cfg)
    tm, tn = cfg.tm, cfg.tn
    rq = g["REQUANT_LANES"]
    log_tn = max(1, int(math.log2(tn)))
    items = [
        Item("MAC array multipliers", dsp=_ceil_div(tm, MACS_PER_DSP) * tn,
             ff=_ceil_div(tm, MACS_PER_DSP) * tn * 36,
             note=f"{tm}x{tn} int8 x 9-bit products, {MACS_PER_DSP} per DSP48E2 "
                  f"(lanes m, m+1 share x; 36-bit P each)"),
        Item("MAC adder trees + accumulators", lut=tm * ((tn - 1) * 20 + 32) + tm * tn // 2,
             ff=tm * ((tn - 1) * 20 + 32), note=f"{tm} trees of {tn} products (+ the packing's "
                                               f"sign-correction bits), 32-bit accumulators"),
        Item("input rotator + sign extension", lut=tn * 9 * log_tn // 2 + tn * 9,
             ff=tn * 9 * 2, note=f"{tn}-byte barrel rotate out of the patch banks"),
        Item("weight ping-pong select", lut=tm * tn * 8 // 2, ff=tm * tn * 8,
             note="2:1 mux of the two weight halves"),
        Item("requantizers", dsp=rq * DSP_PER_REQUANT, lut=rq * 170, ff=rq * 230,
             note=f"{rq} lanes (TM/{REQUANT_SHARE}), 64-bit round/shift/clamp/max"),
        Item("write-back sums + store", lut=tm * 40, ff=tm * 48,
             note=f"{tm} x 32-bit channel sums, TM-byte pixel store"),
        Item("address generators", dsp=DSP_ADDRESSING, lut=2500, ff=3000,
             note="patch/weight/output/residual addressing (allowance)"),
        Item("control + checks", lut=LUT_CONTROL, ff=FF_CONTROL,
             note="descriptor + work-list validation, step pipeline FSM (allowance)"),
        _memories("weight buffers", 2 * tm, g["W_DEPTH"], 8 * tn,
                  "ping-pong x TM lanes, TN bytes reshaped into one word"),
        _memories("input patch buffers", 2 * tn, g["IFM_DEPTH"], 8, "ping-pong x TN byte banks"),
        _memories("accumulator buffers", 2 * tm, g["ACC_DEPTH"], 32, "ping-pong x TM lanes"),
        _memories("params (bias, mult)", 2 * tm, g["PARAM_ROWS"], 32, "cyclic over TM lanes"),
        _memories("tile lists", 2, g["MAX_TILES"], 16, "active + residual-only"),
        _memories("channel lists", 1, cfg.max_out_channels, 16, "out-channel ids"),
        _memories("channel lists (in)", 1, cfg.max_in_channels, 16, "in-channel ids"),
        Item("m_axi adapters", bram36=MAXI_FIFO_CHANNELS * 0.5,
             lut=N_MAXI * LUT_PER_MAXI + LUT_SAXILITE, ff=N_MAXI * FF_PER_MAXI + FF_SAXILITE,
             note=f"{N_MAXI} masters (burst FIFOs: one BRAM18 per channel) + s_axilite"),
    ]
    return items


def estimate(cfg: EngineConfig) -> ResourceEstimate:
    """The resource estimate of the engine built for `cfg` (see the module docstring)."""
    fam = next((k for k in PART_BUDGETS if cfg.part.startswith(k)), None)
    if not fam:
        raise ConfigError(f"engine config '{cfg.name}': no LUT/FF budget known for part "
                          f"{cfg.part!r} (known families: {', '.join(PART_BUDGETS)})")
    budget = dict(PART_BUDGETS[fam])
    budget["dsp"], budget["bram36"] = cfg.part_dsp, cfg.part_bram36
    return ResourceEstimate(cfg.name, _items(cfg), budget)


def _reasons(est: ResourceEstimate, over: list[str]) -> str:
    t, b = est.totals(), est.budget
    worst = {k: max(est.items, key=lambda i: getattr(i, k)) for k in over}
    return "; ".join(f"{k.upper()} {t[k]} > {b[k]} (largest: {worst[k].component}, "
                     f"{getattr(worst[k], k):g}: {worst[k].note})" for k in over)


def dsp_bram_problems(cfg: EngineConfig) -> list[str]:
    """DSP and BRAM36 of the estimate against the config's part_dsp / part_bram36 (any part:
    no LUT/FF budget needed); one message per resource over budget, empty if it fits."""
    est = ResourceEstimate(cfg.name, _items(cfg),
                           dict(dsp=cfg.part_dsp, bram36=cfg.part_bram36, lut=0, ff=0))
    over = [k for k in ("dsp", "bram36") if est.totals()[k] > est.budget[k]]
    return [f"the resource estimate needs {_reasons(est, [k])}" for k in over]


def check_fits(cfg: EngineConfig) -> ResourceEstimate:
    """The estimate, or ConfigError naming each resource over the part's budget and why."""
    est = estimate(cfg)
    over = est.over_budget()
    if over:
        raise ConfigError(f"engine config '{cfg.name}' does not fit {cfg.part} by the "
                          f"resource estimate: {_reasons(est, over)}. Reduce tm/tn or the "
                          f"buffer sizes.")
    return est
