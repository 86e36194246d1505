"""Resource ESTIMATE of the engine for an engine configuration (torch-free), calibrated
against open synthesis of the reference RTL.

Vitis HLS and Vivado were not run here. The estimate is built per **unit** of the reference
RTL, the units `dgfpga synth --by-module` synthesises (`SYNTH_UNITS`: compute `u_cp`, loader
`u_ld`, write-back `u_wb`, gate unit `u_gate`, sequencer `u_seq`, and the AXI masters,
AXI-Lite registers and top shell); the HLS engine follows the same micro-architecture loop
for loop (docs/hls.md), so the RTL's synthesis is the evidence for both. Per unit:

- **structural terms** counted from the RTL's declarations (`rtl_geometry` mirrors
  sim/rtl/dg_pkg.sv and dg_gate.sv): the MAC array's DSP48E2, one per PAIR of int8 MACs,
  ceil(TM/2)*TN (lanes m, m+1 share the activation: the UltraScale+ INT8 packing, WP486;
  sim/rtl/dg_mac_array.sv, hls/src/dg_dsp.h); the requantizers' 6 DSP48E2 per lane
  (33x31 and 9x31-bit products), TM/REQUANT_SHARE lanes; and the memories (loader weight,
  patch and residual banks, the gate unit's lane banks), each mapped to the cheapest
  BRAM18 aspect ratio or to distributed RAM as the RTL asks for it;
- **fitted allowances** (`ALLOWANCES`) for everything else (control, address arithmetic,
  adder trees, muxes, FIFOs): per unit and resource a linear function of what the unit's
  logic grows with (`FEATURES`: TM, TN, the AXI beat's bytes AB, the gate lanes GL, and
  DW, whether the depthwise hardware is built),
  fitted by least squares (`fit_allowances`) to the synthesised units of the FIT_CONFIGS in
  the shipped results (sim/results/synth/*.json, from small arrays to ultra96's 16x16, with
  and without the depthwise hardware) and
  checked on CHECK_CONFIGS, which the fit does not see (`compare`, `dgfpga synth
  --compare`; docs/synth.md has the table).

`estimate(cfg)` returns the breakdown; `check_fits(cfg)` raises ConfigError naming the
DSP48E2 or BRAM36 excess over the part's budget (ZU3EG: 360 DSP, 216 BRAM36, 70560 LUT,
141120 FF); a LUT/FF excess is a warning (fitted to Yosys, not Vivado).
This is the one DSP/BRAM model: `engine_config.validate` refuses a configuration through
`dsp_bram_problems` (against the config's own `part_dsp`/`part_bram36`), the HLS project
reports it, and docs/hls.md quotes it. Module-by-module synthesis over-counts a little (a
unit cannot see that a neighbour leaves a port constant), so the estimate, fitted to it,
errs on the safe side.
"""
from __future__ import annotations

import dataclasses
import json
import math
from decimal import ROUND_HALF_EVEN, Decimal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from dgfpga import paths
from dgfpga.contract.engine_config import EngineConfig
from dgfpga.contract.formats import (DW_KERNELS, MAX_KERNEL, MAX_KERNEL_TAPS, REQUANT_SHARE,
                                     dw_bank_half_bytes)
from dgfpga.contract.program import GATE_FRAC_BITS, MAX_CLASSES
from dgfpga.errors import ConfigError

__all__ = ["PART_BUDGETS", "Item", "ResourceEstimate", "estimate", "check_fits",
           "dsp_bram_problems", "buffer_geometry", "rtl_geometry", "UNITS", "SYNTH_UNITS",
           "FEATURES", "ALLOWANCES", "FIT_CONFIGS", "CHECK_CONFIGS",
           "CALIBRATED_MACS", "RESOURCES", "ENFORCED", "SynthResult", "synth_results", "fit_allowances",
           "compare", "compare_table"]

# Budgets by part family (device resources; DSP/BRAM also come from the config).
PART_BUDGETS = {
    "xczu3eg": dict(dsp=360, bram36=216, lut=70560, ff=141120),      # Ultra96-V2
    "xczu9eg": dict(dsp=2520, bram36=912, lut=274080, ff=548160),    # ZCU102 (DS891)
}

LUTRAM_MAX_BITS = 2048      # synchronous-read memories this small map to distributed RAM
# distributed RAM as Yosys maps a one-write, one-read memory for UltraScale+: RAM32M16 (8
# LUTs, 32 rows x 14 bits) up to 32 rows, else RAM64M8 (8 LUTs, 64 rows x 7 bits) per 64 rows
LUTRAM_CELL_LUTS = 8
DSP_PER_REQUANT = 4 + 2     # (acc+bias)*mult 33x31 bits + res*res_mult 9x31 bits
MACS_PER_DSP = 2            # int8 products per DSP48E2 (lanes m, m+1 packed: dg_dsp.h)

# The estimate's units and the `dgfpga synth --by-module` units (instance names of
# dg_engine's children, and the shell) each stands for.
SYNTH_UNITS = {
    "compute": ("u_cp",),           # MAC array, adder trees, patch/im2col addressing
    "loader": ("u_ld",),            # weight/patch/residual banks, prefetch, AXI read commands
    "write-back": ("u_wb",),        # requantizers, residual, max-pool, sums, AXI writes
    "gate unit": ("u_gate",),       # gate, gate-2 and head records
    "sequencer": ("u_seq",),        # program records, descriptor check, work lists
    # AXI masters (activations / parameters `rdm`, weights `rdm_w`, writes `wrm`), AXI-Lite
    # registers, shell
    "AXI": ("rdm", "rdm_w", "wrm", "regs", "dg_engine"),
}
UNITS = tuple(SYNTH_UNITS)
RESOURCES = ("dsp", "bram36", "lut", "ff")
# what `check_fits` refuses over the budget (counted terms); a LUT/FF excess is a warning
ENFORCED = ("dsp", "bram36")
# what the allowances are fitted on: LUT split into logic (+ SRL) and distributed RAM (the
# structural memories' LUTs are distributed RAM)
FIT_RESOURCES = ("dsp", "bram36", "lut", "lutram", "ff")

# What each unit's fitted allowance grows with: what its logic is replicated over. Compute:
# per output lane (accumulators, requantizer feed), per input lane, and per input lane and
# byte of the AXI beat (the patch rotators pick one of AB bytes per lane; the MAC operand
# paths are in the DSP48E2s); loader: per output lane (the weight banks' write paths), per
# input lane, and per input lane and beat byte (the beat's byte selects into the banks)
# (picked by leave-one-out over the fit configs; TM*TN terms extrapolated worse:
# docs/synth.md); write-back: per input and output lane, its distributed RAM (FIFOs of
# TM-wide entries) per output lane; gate unit: per gate lane (GL = min(AB/2, TN): its lane
# banks, products and adder trees); sequencer and AXI: per byte of the beat (the descriptor
# aligner, the data paths). DW (1 when the depthwise hardware is built, DG_DEPTHWISE) adds
# the depthwise logic: in the compute unit a constant (the tap tables, bank and step
# control) and per output lane (depthwise by lane parity since round 12, DW_LP: a pixel's
# two steps feed the 9 taps of each lane pair's low, then its high lane through the
# DSP48E2's A / D inputs, so the tap selects grow with the lanes, no longer with the MACs;
# DW*tm left the fit's largest LUT error at 6 against 123 with round 11's DW*tm*tn, and
# 1.3 % against 46 % left out: docs/synth.md), in the loader a
# constant and per beat byte and dw bank column (AB x DW_NBW: a beat's bytes routed to the
# tap banks' DW_NBW columns). A feature is a product of config fields and rtl_geometry sizes
# ("1" = constant); a dict gives some resources their own features ("default" for the
# others).
FEATURES = {
    "compute": ("1", "tm", "tn", "tn*AB", "DW", "DW*tm"),
    "loader": ("1", "tm", "tn", "tn*AB", "DW", "DW*AB*DW_NBW"),
    "write-back": {"default": ("1", "tn", "tm"), "lutram": ("1", "tm")},
    "gate unit": ("1", "GL"),
    "sequencer": ("1", "AB"),
    "AXI": ("1", "AB"),
}

# The engine configs whose open synthesis the allowances are fitted to, and those that only
# check them (sim/results/synth/<name>.json; `small`, `ultra96` and `ultra96_resnet` are
# shipped configs, the others tests/backends/configs/<name>.toml; the *_nodw / resnet ones
# are built without the depthwise hardware). All are synthesised from one RTL revision
# (each result records its own).
FIT_CONFIGS = ("small", "syn_8x4", "syn_4x8", "ultra96", "small_nodw", "ultra96_resnet",
               "syn_8x8_nodw")
CHECK_CONFIGS = ("syn_8x8",)
CALIBRATED_MACS = 256       # the largest synthesised array (ultra96): beyond it LUT/FF extrapolate
SYNTH_RESULTS = paths.sim_dir() / "results" / "synth"   # the shipped results (checkout or installed copy)

# GENERATED by fit_allowances(FIT_CONFIGS) from the shipped synthesis results (the test
# tests/perf/test_resources_calibration.py refits and compares): per unit and resource the
# coefficients of FEATURES[unit].
ALLOWANCES = {
    'compute': {
        'dsp': (1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        'bram36': (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        'lut': (1446.0, -141.9, 220.6, 19.73, 932.7, 187.8),
        'lutram': (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        'ff': (618.9, 22.81, 41.48, 1.623, 291.5, 7.159),
    },
    'loader': {
        'dsp': (25.0, 0.25, -0.25, 0.03125, 0.6667, 0.02083),
        'bram36': (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        'lut': (3403.0, 167.9, -55.37, 11.5, 1039.0, 31.02),
        'lutram': (131.0, 16.75, 3.438, -0.3359, 36.0, 0.01562),
        'ff': (4027.0, 270.0, -134.4, 15.74, 1265.0, 4.855),
    },
    'write-back': {
        'dsp': (4.034, 0.08966, 1.09),
        'bram36': (0.0, 0.0, 0.0),
        'lut': (1635.0, 3.241, 162.7),
        'lutram': (262.6, 46.03),
        'ff': (1295.0, -1.928, 321.1),
    },
    'gate unit': {
        'dsp': (9.0, 6.25),
        'bram36': (0.0, 0.0),
        'lut': (2448.0, 1699.0),
        'lutram': (-268.8, 49.6),
        'ff': (5646.0, 779.9),
    },
    'sequencer': {
        'dsp': (2.0, 0.0),
        'bram36': (0.0, 0.0),
        'lut': (3500.0, 21.06),
        'lutram': (-192.0, 30.0),
        'ff': (4235.0, 71.04),
    },
    'AXI': {
        'dsp': (0.0, 0.0),
        'bram36': (0.0, 0.0),
        'lut': (1291.0, 7.4),
        'lutram': (16.0, 5.0),
        'ff': (1120.0, 0.0),
    },
}


@dataclass(frozen=True)
class Item:
    """One component of the estimate, in one unit."""
    component: str
    dsp: int = 0
    bram36: float = 0.0
    lut: int = 0
    ff: int = 0
    note: str = ""
    unit: str = ""


@dataclass
class ResourceEstimate:
    """The estimate for one configuration, with its breakdown and the part budget."""
    config: str
    items: list = field(default_factory=list)
    budget: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

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

    def unit_totals(self) -> dict:
        """{unit: {dsp, bram36, lut, ff}}: the estimate per synthesis unit."""
        out = {u: dict.fromkeys(RESOURCES, 0) for u in UNITS}
        for i in self.items:
            for k in RESOURCES:
                out[i.unit][k] += getattr(i, k)
        return out

    def utilisation(self) -> dict:
        """Fraction of the budget per resource."""
        return {k: v / self.budget[k] for k, v in self.totals().items()}

    def over_budget(self) -> list[str]:
        return [k for k, v in self.totals().items() if v > self.budget[k]]

    def table(self) -> str:
        """A plain-text table of the breakdown (an estimate, says so)."""
        rows = [f"resource ESTIMATE for engine config '{self.config}' (not a synthesis report; "
                f"calibrated against open synthesis of the reference RTL)",
                f"{'unit':11s} {'component':34s} {'DSP':>5s} {'BRAM36':>7s} {'LUT':>7s} "
                f"{'FF':>7s}  note"]
        for i in self.items:
            rows.append(f"{i.unit:11s} {i.component:34s} {i.dsp:5d} {i.bram36:7.1f} {i.lut:7d} "
                        f"{i.ff:7d}  {i.note}")
        t, b = self.totals(), self.budget
        rows.append(f"{'total':46s} {t['dsp']:5d} {t['bram36']:7d} {t['lut']:7d} {t['ff']:7d}")
        rows.append(f"{'budget':46s} {b['dsp']:5d} {b['bram36']:7d} {b['lut']:7d} {b['ff']:7d}")
        rows += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(rows)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _clog2(n: int) -> int:
    """SystemVerilog $clog2: ceil(log2(n)), 0 for n <= 1."""
    return max(0, (n - 1).bit_length())


def buffer_geometry(cfg: EngineConfig) -> dict:
    """On-chip array sizes the HLS engine instantiates (mirrors hls/src/dg_types.h)."""
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


def rtl_geometry(cfg: EngineConfig) -> dict:
    """Memory sizes of the reference RTL (mirrors sim/rtl/dg_pkg.sv and dg_gate.sv's
    localparams: DW = DG_DEPTHWISE (1: the depthwise hardware is built), GL gate lanes,
    GATE_CGM channel groups per lane, GATE_PVW / GATE_SW / GATE_AW the pooled value, channel
    sum and fc1 row sum widths, GATE_MAXL logit rows)."""
    tm, tn = cfg.tm, cfg.tn
    ab = cfg.axi_bytes
    nb = max(tn, ab)                                    # patch byte banks
    ct_max = 2 * cfg.max_tile + 1
    pmax = (ct_max - 1) * 2 + MAX_KERNEL
    ihalf = _ceil_div(cfg.ifm_buffer_bytes // 2 + pmax * 2 * ab + tn, nb) * nb
    wd_a = MAX_KERNEL_TAPS * _ceil_div(cfg.max_in_channels, tn)
    wd_b = cfg.weight_buffer_bytes // 2 // (tm * tn) + MAX_KERNEL_TAPS
    dw_nbw = max(tm, ab)                               # depthwise bank byte columns
    dw_half = _ceil_div(dw_bank_half_bytes(cfg), dw_nbw) * dw_nbw
    gl = cfg.gate_lanes
    return dict(AB=ab, NB=nb, DW=int(cfg.depthwise), IDEPTH=2 * ihalf // nb,
                WDEPTH=min(wd_a, wd_b),
                DW_NBW=dw_nbw, DW_DEPTH=2 * dw_half // dw_nbw,
                RPIX=cfg.max_tile ** 2, PPIX=ct_max ** 2,
                REQUANT_LANES=tm // REQUANT_SHARE if tm >= REQUANT_SHARE else 1,
                GL=gl, GATE_CGM=1 << _clog2(_ceil_div(cfg.max_in_channels, gl)),
                GATE_CELLS=cfg.max_grid * ((cfg.max_grid + 2) // 3),
                GATE_PVW=cfg.act_bits + GATE_FRAC_BITS + 2,
                GATE_SW=32 + 2 * _clog2(cfg.max_grid) + 1,
                GATE_AW=34 + _clog2(cfg.max_in_channels),
                GATE_MAXL=max(cfg.max_out_channels, MAX_CLASSES))


# BRAM18 aspect ratios (depth, width); a BRAM36 also offers 512 x 72 (= two BRAM18).
_BRAM18_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def _memory(depth: int, width: int, style: str = "auto") -> tuple[float, int]:
    """(BRAM36, LUT) of one memory of depth x width bits. style 'auto': distributed RAM up
    to LUTRAM_MAX_BITS, else block RAM; 'block' / 'lutram': as the RTL forces it."""
    if style == "lutram" or (style == "auto" and depth * width <= LUTRAM_MAX_BITS):
        if depth <= 32:
            return 0.0, LUTRAM_CELL_LUTS * _ceil_div(width, 14)
        return 0.0, LUTRAM_CELL_LUTS * _ceil_div(depth, 64) * _ceil_div(width, 7)
    halves = min(_ceil_div(depth, d) * _ceil_div(width, w) for d, w in _BRAM18_MODES)
    halves = min(halves, 2 * _ceil_div(depth, 512) * _ceil_div(width, 72))
    return halves / 2, 0


def _memories(unit: str, name: str, count: int, depth: int, width: int, note: str,
              style: str = "auto", byte_write: bool = False) -> Item:
    """`count` memories of depth x width bits. byte_write: written a byte column at a time
    with a registered read (the depthwise patch banks): as distributed RAM each byte is its
    own cells (a RAM64M8 / RAM32M16 has one write enable; ceil(8/7) = 2 RAM64M8 or one
    RAM32M16 per byte) and the read register is width FFs in the fabric (inside the block
    RAM when it maps there)."""
    (b, lut), ff = _memory(depth, width, style), 0
    if byte_write and lut:
        lut, ff = _memory(depth, 8, "lutram")[1] * _ceil_div(width, 8), width
    return Item(name, bram36=count * b, lut=count * lut, ff=count * ff, unit=unit,
                note=f"{count} x {depth}x{width} bit {'LUTRAM' if lut else 'BRAM'}; {note}")


def _features(unit: str, resource: str) -> tuple:
    """The FEATURES of `unit` that `resource`'s allowance is linear in."""
    f = FEATURES[unit]
    return f.get(resource, f["default"]) if isinstance(f, dict) else f


def _feature(cfg: EngineConfig, name: str) -> int:
    """The value of a FEATURES entry: a product of config fields (tm, tn) and rtl_geometry
    sizes (AB, GL, PPIX ...); "1" is the constant."""
    v, geo = 1, None
    for f in name.split("*"):
        if f == "1":
            continue
        if hasattr(cfg, f):
            v *= getattr(cfg, f)
        else:
            geo = geo or rtl_geometry(cfg)
            v *= geo[f]
    return v


# dg_gate.sv's lane banks (DG_BANKS): a registered read maps to block RAM from this depth
# per bank (the RTL forces it), below to distributed RAM
GATE_BRAM_MIN_DEPTH = 128


def _gate_memories(cfg: EngineConfig, g: dict) -> list[Item]:
    """The gate unit's memories as dg_gate.sv declares them: GL lane banks of the channel
    vectors (DG_BANKS), the spatial gate's tap and pooled-value banks, the cell logits."""
    gl, cgm = g["GL"], g["GATE_CGM"]
    maxc = cfg.max_in_channels

    def banks(name: str, width: int, depth: int, sync: bool, note: str) -> Item:
        d = _ceil_div(depth, gl)
        style = "lutram" if not sync or d < GATE_BRAM_MIN_DEPTH else "block"
        return _memories("gate unit", name, gl, d, width, note, style)
    ph_d = _ceil_div(maxc, gl)
    return [
        banks("reciprocals", 32, cfg.max_grid ** 2 + 1, False, "R(n) per bin (rc)"),
        banks("pooled totals / hidden units", g["GATE_PVW"], 2 * gl * ph_d, True,
              "Pt and h in one bank memory (ph)"),
        banks("fc1 row sums", g["GATE_AW"], maxc, True, "A per hidden unit (am)"),
        banks("hidden multipliers / head biases", 32, max(maxc, MAX_CLASSES), True, "m1"),
        banks("logits", 64, g["GATE_MAXL"], True, "channel-gate / head logits (lg)"),
        banks("channel sums", g["GATE_SW"], maxc, True, "SUMS rows (ac)"),
        # the spatial gate's taps: three 16-bit columns written one at a time (one memory each)
        _memories("gate unit", "spatial taps", 3 * gl, 3 * cgm, 16,
                  "per gate lane 3 columns (kx) of 3 x CGM int16 taps"),
        _memories("gate unit", "one bin's pooled vector", gl, cgm, g["GATE_PVW"],
                  "per gate lane, one bin at a time"),
        _memories("gate unit", "cell logits", 3, g["GATE_CELLS"], 64,
                  "3 banks by cell column mod 3, asynchronous read", "lutram"),
    ]


def _structural(cfg: EngineConfig) -> list[Item]:
    """The counted terms (see the module docstring), each in its unit. A config without the
    depthwise hardware (`depthwise = false`) has no depthwise memories; its allowances drop
    the depthwise logic through the DW features (fitted on builds with and without it)."""
    return _structural_all(cfg) + (_depthwise_memories(cfg) if cfg.depthwise else [])


def _depthwise_memories(cfg: EngineConfig) -> list[Item]:
    g = rtl_geometry(cfg)
    return [
        _memories("loader", "depthwise patch banks", 2 * DW_KERNELS[0] ** 2,
                  g["DW_DEPTH"] // 2, 8 * g["DW_NBW"], f"{DW_KERNELS[0]}x{DW_KERNELS[0]} tap "
                  f"banks (patch row, column mod {DW_KERNELS[0]}), each as two memories (even, "
                  f"odd rows) of max(TM, AXI bytes) byte columns, both halves",
                  # (<= 64 rows: Yosys maps them to RAM64M8 whatever their width; small)
                  "lutram" if g["DW_DEPTH"] // 2 <= 64 else "auto", byte_write=True),
    ] + _depthwise_param_memories(cfg)


def _depthwise_param_memories(cfg: EngineConfig) -> list[Item]:
    """The depthwise parameters as dg_loader.sv's g_dwparams declares them: per output lane one
    memory of SG_MAX = ceil(max_out / TM) rows x 64 bits ({mult, bias}); above 64 rows
    (a LUTRAM would be two RAM64M8 halves and a read mux) lanes 0 .. TM/2 - 1 are block RAM
    (`DW_PBL`, one RAMB36 each), the others distributed RAM."""
    tm = cfg.tm
    rows = _ceil_div(cfg.max_out_channels, tm)
    pbl = tm // 2 if rows > 64 else 0
    out = [_memories("loader", "depthwise parameters (distributed)", tm - pbl, rows, 64,
                     "{mult, bias} rows of one lane per m-group, registered read by the "
                     "write-back", "lutram")]
    if pbl:
        out.append(_memories("loader", "depthwise parameters (block RAM)", pbl, rows, 64,
                             "lanes 0 .. TM/2 - 1 above 64 rows (DW_PBL)", "block"))
    return out


def _structural_all(cfg: EngineConfig) -> list[Item]:
    """The counted terms every config has."""
    g = rtl_geometry(cfg)
    tm, tn = cfg.tm, cfg.tn
    rq = g["REQUANT_LANES"]
    return [
        Item("MAC array multipliers", dsp=_ceil_div(tm, MACS_PER_DSP) * tn, unit="compute",
             note=f"{tm}x{tn} int8 x 9-bit products, {MACS_PER_DSP} per DSP48E2 "
                  f"(lanes m, m+1 share x)"),
        Item("MAC array accumulators", dsp=tm, unit="compute",
             note="one DSP48E2 per output lane: the adder trees' root add and the "
                  "accumulate, (A + D) * 1 + C + P (C: a third tree when Tn has "
                  "3-product cascades; dg_mac_array.sv g_acc)"),
        _memories("loader", "weight buffers", tm, 2 * g["WDEPTH"], 8 * tn,
                  "one bank per output lane, both ping-pong halves"),
        _memories("loader", "input patch buffers", g["NB"], g["IDEPTH"], 8,
                  "byte banks, both halves"),
        _memories("loader", "residual buffers", tm, 2 * g["RPIX"], 8, "one per output lane"),
        _memories("loader", "out-channel list", 1, _ceil_div(cfg.max_out_channels, tm),
                  16 * tm, "one row of TM u16 entries per m-group, read whole at a group start"),
        _memories("loader", "in-channel list", 2, max(cfg.max_in_channels,
                                                      cfg.max_out_channels), 16,
                  "two copies (span index, compact merge pointer), registered reads"),
        Item("requantizers", dsp=rq * DSP_PER_REQUANT, unit="write-back",
             note=f"{rq} lanes (TM/{REQUANT_SHARE}) of 33x31 + 9x31-bit products"),
        _memories("write-back", "max-pool buffers", tm, 2 * (1 << _clog2(g["PPIX"])), 8,
                  "one RAM per output lane, both halves (dg_writeback.sv)"),
        _memories("sequencer", "per-record cycle log", g["AB"] // 4,
                  _ceil_div(cfg.max_layers, g["AB"] // 4), 32,
                  "one 32-bit lane per entry mod AB/4 (dg_sequencer.sv)"),
    ] + _gate_memories(cfg, g)


def _allowance_items(cfg: EngineConfig, allowances: dict) -> list[Item]:
    """Each unit's fitted allowance at `cfg`."""
    items = []
    for unit in UNITS:
        coef = allowances.get(unit)
        if coef is None:
            continue
        v = {}
        for k in FIT_RESOURCES:
            x = [_feature(cfg, f) for f in _features(unit, k)]
            v[k] = max(0.0, sum(c * xi for c, xi in zip(coef[k], x)))
        items.append(Item(f"{unit} logic (fitted)", dsp=round(v["dsp"]),
                          bram36=math.ceil(2 * v["bram36"] - 1e-9) / 2,
                          lut=round(v["lut"] + v["lutram"]), ff=round(v["ff"]), unit=unit,
                          note="fitted to open synthesis: " + " + ".join(_features(unit, "lut"))))
    return items


def _items(cfg: EngineConfig, allowances: Optional[dict] = None) -> list[Item]:
    """The components of the estimate (needs no part budget)."""
    return _structural(cfg) + _allowance_items(cfg, ALLOWANCES if allowances is None
                                               else allowances)


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
    over = [k for k in ENFORCED if est.totals()[k] > est.budget[k]]
    return [f"the resource estimate needs {_reasons(est, [k])}" for k in over]


def check_fits(cfg: EngineConfig) -> ResourceEstimate:
    """The estimate, or ConfigError naming each of DSP48E2 and BRAM36 over the part's budget
    and why. Those are counted terms (the MAC array, the requantizers, the memories), the
    same for the HLS engine and the RTL. LUT and FF are fitted to open synthesis (Yosys) of
    the reference RTL, which is not the HLS engine Vitis builds and over-counts against
    Vivado's mapping (not measured here): an excess is a warning in the estimate's
    `warnings` (and table), never a refusal; beyond the largest synthesised array
    (CALIBRATED_MACS) it is also an extrapolation."""
    est = estimate(cfg)
    over = est.over_budget()
    for k in [k for k in over if k not in ENFORCED]:
        over.remove(k)
        scope = (f"extrapolated from synthesised arrays of <= {CALIBRATED_MACS} MACs to "
                 f"{cfg.tm * cfg.tn}" if cfg.tm * cfg.tn > CALIBRATED_MACS else
                 f"calibrated on synthesised arrays of <= {CALIBRATED_MACS} MACs")
        est.warnings.append(
            f"{k.upper()} {est.totals()[k]} > {est.budget[k]} by the estimate ({scope}; open "
            f"synthesis of the reference RTL, not Vivado: not enforced): `dgfpga synth "
            f"--config {cfg.name} --by-module` measures the RTL, docs/synth.md")
    if over:
        raise ConfigError(f"engine config '{cfg.name}' does not fit {cfg.part} by the "
                          f"resource estimate: {_reasons(est, over)}. Reduce tm/tn or the "
                          f"buffer sizes.")
    return est


# ----------------------------------------------------------------------------- calibration

@dataclass
class SynthResult:
    """One shipped open-synthesis result: the engine config, the synthesised figures per
    estimate unit (units whose synthesis units are all present) and where it came from."""
    cfg: EngineConfig
    units: dict
    source: str
    snapshot: dict


def _config_of(data: dict, source: str) -> EngineConfig:
    from dgfpga.contract.engine_config import load_config
    fields = data.get("engine_config")
    if not isinstance(fields, dict):
        raise ConfigError(f"{source}: no 'engine_config' object (the config the RTL was "
                          f"synthesised for); re-ship it with `dgfpga synth --ship`")
    # the fields as synthesised, over `small` (fields added to EngineConfig later keep
    # small's values; not validated: the estimate of any config is wanted)
    base = load_config("small")
    known = {f.name for f in dataclasses.fields(base)}
    return dataclasses.replace(base, **{k: v for k, v in fields.items() if k in known})


def synth_results(folder: Path | str = SYNTH_RESULTS) -> dict:
    """The shipped open-synthesis results ({config name: SynthResult}) of `folder`: each
    <name>.json is a `dgfpga synth --by-module --json` report with the config's fields."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ConfigError(f"no open-synthesis results (*.json) in {folder}: run "
                          f"`dgfpga synth --config NAME --by-module --ship`")
    out = {}
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{f}: not a readable synthesis report ({e})") from e
        cfg = _config_of(data, str(f))
        got = {u["unit"]["name"]: u["resources"] for u in data.get("units", [])}
        units = {}
        for unit, names in SYNTH_UNITS.items():
            if all(n in got for n in names):
                units[unit] = {k: sum(got[n][k] for n in names) for k in RESOURCES}
                units[unit]["lutram"] = sum(got[n]["lutram"] for n in names)
        out[cfg.name] = SynthResult(cfg, units, str(f), data.get("snapshot", {}))
    return out


def fit_allowances(results: dict, configs: Iterable[str] = FIT_CONFIGS,
                   units: Iterable[str] = UNITS) -> dict:
    """Least-squares fit of each unit's allowance (synthesis minus the structural terms,
    linear in FEATURES[unit]) over the `configs` of `results` (synth_results); coefficients
    rounded to 4 significant digits. A unit whose features the configs cannot separate is
    an error."""
    import numpy as np
    configs = list(configs)
    missing = [c for c in configs if c not in results]
    if missing:
        raise ConfigError(f"no synthesis results for {', '.join(missing)} (have "
                          f"{', '.join(sorted(results))})")
    out = {}
    for unit in units:
        rows = [results[c] for c in configs if unit in results[c].units]
        # the structural items' LUTs are all distributed RAM
        structural = [ResourceEstimate(r.cfg.name, _structural(r.cfg)).unit_totals()[unit]
                      for r in rows]
        for st in structural:
            st["lutram"], st["lut"] = st["lut"], 0
        out[unit] = {}
        for k in FIT_RESOURCES:
            feats = _features(unit, k)
            x = np.array([[_feature(r.cfg, f) for f in feats] for r in rows], float)
            if len(rows) == 0 or np.linalg.matrix_rank(x) < len(feats):
                raise ConfigError(f"unit '{unit}': the synthesised configs "
                                  f"({', '.join(r.cfg.name for r in rows) or 'none'}) do not "
                                  f"separate its features {feats}: synthesise more")
            y = np.array([(r.units[unit][k] - (r.units[unit]["lutram"] if k == "lut" else 0))
                          - s[k] for r, s in zip(rows, structural)], float)
            coef = np.linalg.lstsq(x, y, rcond=None)[0]
            out[unit][k] = tuple(_sig4(c) for c in coef)
    return out


def _sig4(c: float) -> float:
    """A fitted coefficient to 4 significant digits, ties to even. The fit of as many configs
    as features is exact, so coefficients such as 1292.5 are common: they are snapped to 10
    significant digits first, so the rounding does not follow the last bits the linear
    algebra library happens to produce. |c| < 1e-6 is a zero of the least squares."""
    if abs(c) <= 1e-6:
        return 0.0
    d = Decimal(f"{c:.10g}")
    return float(d.quantize(Decimal(1).scaleb(d.adjusted() - 3), rounding=ROUND_HALF_EVEN)) + 0.0


def compare(results: dict, allowances: Optional[dict] = None) -> list[dict]:
    """Estimate against synthesis per config, unit and resource (plus a 'total' unit for the
    configs with every unit synthesised): rows with config, role ('fit' | 'check' | 'other'),
    unit, resource, synth, estimate, error and rel (estimate - synth, absolute and over
    synth)."""
    rows = []
    for name, r in sorted(results.items(), key=lambda kv: (kv[0] not in FIT_CONFIGS, kv[0])):
        role = "fit" if name in FIT_CONFIGS else "check" if name in CHECK_CONFIGS else "other"
        est = ResourceEstimate(name, _items(r.cfg, allowances)).unit_totals()
        units = [u for u in UNITS if u in r.units]
        for unit in units + (["total"] if len(units) == len(UNITS) else []):
            for k in RESOURCES:
                def val(d):
                    return sum(d[u][k] for u in UNITS) if unit == "total" else d[unit][k]
                e, s = val(est), val(r.units)
                rows.append(dict(config=name, role=role, unit=unit, resource=k,
                                 synth=round(s, 1), estimate=round(e, 1),
                                 error=round(e - s, 1), rel=(e - s) / s if s else None))
    return rows


def compare_table(rows: list[dict]) -> str:
    """The error table of `compare`: per config and unit, synthesis / estimate (error %)."""
    out = ["resource estimate vs open synthesis (module by module), per unit: synth / "
           "estimate (error %)",
           f"{'config':9s} {'role':5s} {'unit':10s} " + " ".join(
               f"{k.upper():>22s}" for k in RESOURCES)]
    key = {}
    for r in rows:
        key.setdefault((r["config"], r["role"], r["unit"]), {})[r["resource"]] = r
    for (cfg, role, unit), rs in key.items():
        cells = []
        for k in RESOURCES:
            r = rs[k]
            pct = f"{100 * r['rel']:+.0f}%" if r["rel"] is not None else (
                "exact" if r["error"] == 0 else "-")
            cells.append(f"{r['synth']:g} / {r['estimate']:g} {pct}")
        out.append(f"{cfg:9s} {role:5s} {unit:10s} " + " ".join(f"{c:>22s}" for c in cells))
    return "\n".join(out)
