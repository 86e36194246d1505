"""Design-space exploration of the engine for a board and a network (`dgfpga explore`).

For every engine configuration derived from the board's (`sweep_configs`: array shape
tm x tn, tile side, on-chip buffers) one point (`evaluate_point`):

- resources: the ESTIMATE of `dgfpga.perf.resources.estimate` (DSP48E2, BRAM36, LUT, FF)
  against the part's budget (fits or not), and the open-synthesis totals of `dgfpga synth`
  where a cached result exists for exactly that configuration and the current RTL
  (`cached_synth`; nothing is synthesised here);
- performance: `dgfpga.perf.prediction` of images/s, dense and gated at the requested MAC
  reduction (random masks at the block density that gives it; the same masks for every
  point), from the cycle model with the board's DDR memory (`prediction.ddr_params`).

`pareto_front` marks the points no other point beats on images/s AND the resource (DSP,
BRAM36), among those that fit. The points are independent: `explore` evaluates them
serially, or as Dask tasks on a `LocalCluster` (`jobs` worker processes) or on the cluster
of a running scheduler (`scheduler` address): the standard tool, not a home-made pool.
`write_outputs` writes explore.csv, explore.json and explore.png (matplotlib).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Optional, Sequence

from dgfpga.contract.engine_config import EngineConfig, validate
from dgfpga.errors import ConfigError, DgfpgaError

TM_TN = (8, 16, 32)          # array sides swept (tm and tn independently)
TILE_SCALES = (1, 2)         # max_tile relative to the board config's (grid adjusted); a
                             # smaller tile than the network's gate tile cannot run it
BUFFERS = ("fit", "board")   # on-chip buffers: the smallest the network fits, or the board's

COLUMNS = ("name", "tm", "tn", "macs_per_cycle", "max_tile", "max_grid", "buffers",
           "weight_buffer_bytes", "ifm_buffer_bytes", "ofm_buffer_bytes", "dsp", "bram36",
           "lut", "ff", "fits", "over", "network_fits", "dense_images_per_s",
           "gated_images_per_s", "speedup", "mac_reduction", "efficiency", "synth_dsp",
           "synth_bram36", "synth_lut", "synth_source", "pareto_dsp", "pareto_bram")


def network_buffers(cfg: EngineConfig, arch: str) -> tuple[int, int, int]:
    """The smallest (weight, ifm, ofm) buffer bytes with which every layer of `arch` fits
    `cfg` (THE fit rule, `formats.layer_fit_problems`: two halves of the weight and patch
    buffers), and at least what the config's limits need (`validate`); beat-rounded."""
    from dgfpga.contract import formats
    from dgfpga.perf.cycle_model import network_runs, scheduled_layers
    from dgfpga.perf.netshapes import shape_plan
    import numpy as np
    big = dataclasses.replace(cfg, name=cfg.name + "_fit", weight_buffer_bytes=1 << 30,
                              ifm_buffer_bytes=1 << 30, ofm_buffer_bytes=1 << 30)
    plan = shape_plan(arch, big)
    work = np.zeros(plan.region_bytes["work"], np.uint8)
    w = i = o = 0
    for run in network_runs(plan, None):
        for d, _ in scheduled_layers(run, big, work):
            w = max(w, 2 * cfg.tm * d.k * d.k * d.n_active_in)
            i = max(i, 2 * formats.input_patch_side(d) ** 2 * d.in_c_stored)
            o = max(o, cfg.tm * formats.conv_tile_side(d) ** 2 * (cfg.acc_bits // 8))
    ab = cfg.axi_bytes

    def up(n: int) -> int:
        return -(-n // ab) * ab
    return (up(max(w, cfg.min_weight_buffer_bytes)), up(max(i, cfg.min_ifm_buffer_bytes)),
            up(max(o, cfg.min_ofm_buffer_bytes)))


def sweep_configs(base: EngineConfig, arch: str, tm_tn: Sequence[int] = TM_TN,
                  tile_scales: Sequence[float] = TILE_SCALES,
                  buffers: Sequence[str] = BUFFERS) -> list[EngineConfig]:
    """The swept configurations derived from `base` (names `<base>_m<tm>n<tn>t<tile><f|b>`).
    A tile side keeps the grid covering the same maps (max_grid scaled inversely, 1..255);
    buffers 'fit' are the smallest `arch` fits (`network_buffers`), 'board' the base's
    (raised where the array grew). Resource budgets are NOT applied here: a configuration
    over the part's budget is a point that does not fit."""
    out = []
    for tm in tm_tn:
        for tn in tm_tn:
            for sc in tile_scales:
                tile = max(1, int(round(base.max_tile * sc)))
                grid = min(255, max(1, math.ceil(base.max_tile * base.max_grid / tile)))
                c0 = dataclasses.replace(base, tm=tm, tn=tn, max_tile=tile, max_grid=grid)
                for buf in buffers:
                    if buf == "fit":
                        try:
                            wb, ib, ob = network_buffers(c0, arch)
                        except DgfpgaError:
                            continue                      # the network cannot run on it
                    else:
                        wb = max(base.weight_buffer_bytes * tm // base.tm,   # m-groups of
                                 base.weight_buffer_bytes, c0.min_weight_buffer_bytes)   # tm rows
                        ib = max(base.ifm_buffer_bytes, c0.min_ifm_buffer_bytes)
                        ob = max(base.ofm_buffer_bytes, c0.min_ofm_buffer_bytes)
                    out.append(dataclasses.replace(
                        c0, name=f"{base.name}_m{tm}n{tn}t{tile}{buf[0]}",
                        weight_buffer_bytes=wb, ifm_buffer_bytes=ib, ofm_buffer_bytes=ob))
    return out


def _structurally_valid(cfg: EngineConfig) -> Optional[str]:
    """None if `cfg` passes validate() apart from the part's DSP/BRAM budget (reported by
    the point, not refused), else why not."""
    try:
        validate(dataclasses.replace(cfg, part_dsp=1 << 30, part_bram36=1 << 30))
    except ConfigError as e:
        return str(e)
    return None


def cached_synth(cfg: EngineConfig) -> Optional[dict]:
    """Totals of a cached `dgfpga synth` run of the current RTL for exactly `cfg` (whole
    design, else every by-module unit), or None: nothing is synthesised. Keys: dsp,
    bram36 (RAMB36 + RAMB18/2), lut, source ('whole' | 'modules')."""
    try:
        from dgfpga import paths
        from dgfpga.backends import synth as S
        design = S.Design.for_config(cfg)
        version = S.yosys_version()

        def result(unit) -> Optional[dict]:
            f = paths.cache_dir("synth", S.cache_key(design, unit, version)) / "result.json"
            return json.loads(f.read_text())["resources"] if f.is_file() else None

        found, source = result(S.WHOLE), "whole"
        if found is None:
            hier = paths.cache_dir("synth", S.cache_key(design, S.Unit("hierarchy", S.TOP, S.TOP),
                                                        version))
            if not (hier / "hierarchy.json").is_file():
                return None
            parts = [result(u) for u in S.units(design)]   # cached hierarchy: no Yosys run
            if not parts or any(p is None for p in parts):
                return None
            found = {k: sum(p[k] for p in parts) for k in ("dsp", "ramb18", "ramb36", "lut")}
            source = "modules"
        return dict(dsp=int(found["dsp"]), lut=int(found["lut"]), source=source,
                    bram36=float(found["ramb36"]) + float(found["ramb18"]) / 2)
    except (DgfpgaError, OSError, KeyError, ValueError, ImportError):
        return None


def _buffer_choice(name: str) -> str:
    """'fit' / 'board' for a swept config's name (`sweep_configs`), else 'as given'."""
    m = re.search(r"_m\d+n\d+t\d+([fb])$", name)
    return {"f": "fit", "b": "board"}[m.group(1)] if m else "as given"


def evaluate_point(cfg: EngineConfig, arch: str, density: float, seed: int, params,
                   host_s: float = 0.0, synth: bool = True,
                   ddr_latency: Optional[float] = None) -> dict:
    """One row of the sweep (see the module docstring). Pure function of its arguments:
    the same row serially and on a Dask worker. `ddr_latency`: DDR read latency in engine
    cycles (None: the board's estimate, `prediction.ddr_params`)."""
    from dgfpga.perf.cycle_model import compare
    from dgfpga.perf.netshapes import net_shape, shape_plan
    from dgfpga.perf.prediction import ddr_params, _masks
    from dgfpga.perf.resources import ENFORCED, RESOURCES, estimate
    est = estimate(cfg)
    used = dict(dsp=est.dsp, bram36=est.bram36, lut=est.lut, ff=est.ff)
    budget = est.budget
    over = [k for k in RESOURCES if used[k] > budget[k]]
    # fits as `resources.check_fits` decides (ENFORCED: DSP48E2, BRAM36); a LUT/FF excess
    # (fitted to Yosys, not Vivado) is named in `over` but is a warning
    fits = not set(ENFORCED) & set(over)
    row = dict(name=cfg.name, tm=cfg.tm, tn=cfg.tn, macs_per_cycle=cfg.macs_per_cycle,
               max_tile=cfg.max_tile, max_grid=cfg.max_grid,
               buffers=_buffer_choice(cfg.name),
               weight_buffer_bytes=cfg.weight_buffer_bytes,
               ifm_buffer_bytes=cfg.ifm_buffer_bytes, ofm_buffer_bytes=cfg.ofm_buffer_bytes,
               **{k: round(float(v), 1) for k, v in used.items()},
               fits=fits, over=" ".join(over), network_fits=False,
               dense_images_per_s=None, gated_images_per_s=None, speedup=None,
               mac_reduction=None, efficiency=None, synth_dsp=None, synth_bram36=None,
               synth_lut=None, synth_source="none cached")
    problem = _structurally_valid(cfg)
    if problem is None:
        try:
            plan = shape_plan(arch, cfg)
        except DgfpgaError as e:
            problem = str(e)
    if problem is None:
        cmp = compare(plan, _masks(net_shape(arch), density, seed),
                      ddr_params(params, cfg, ddr_latency), host_s)
        row.update(network_fits=True, dense_images_per_s=1.0 / cmp.dense.seconds(cfg),
                   gated_images_per_s=1.0 / cmp.gated.seconds(cfg), speedup=cmp.speedup,
                   mac_reduction=cmp.mac_reduction, efficiency=cmp.efficiency)
    else:
        row["over"] = (row["over"] + " " if row["over"] else "") + "network: " + problem
    if synth:
        s = cached_synth(cfg)
        if s:
            row.update(synth_dsp=s["dsp"], synth_bram36=s["bram36"], synth_lut=s["lut"],
                       synth_source=f"dgfpga synth ({s['source']}, cached)")
    return row


def pareto_front(rows: list[dict], resource: str) -> set:
    """Names of the points that fit (part budget and network) and that no other fitting
    point dominates: at most the resource and at least the gated images/s, one strictly."""
    ok = [r for r in rows if r["fits"] and r["network_fits"]]
    front = set()
    for r in ok:
        dominated = any(
            o is not r and o[resource] <= r[resource]
            and o["gated_images_per_s"] >= r["gated_images_per_s"]
            and (o[resource] < r[resource] or o["gated_images_per_s"] > r["gated_images_per_s"])
            for o in ok)
        if not dominated:
            front.add(r["name"])
    return front


def explore(base: EngineConfig, arch: str, reduction: float = 2.4, params=None,
            seed: int = 0, jobs: int = 1, scheduler: Optional[str] = None,
            configs: Optional[Sequence[EngineConfig]] = None, host_s: float = 0.0,
            synth: bool = True, progress: bool = True,
            ddr_latency: Optional[float] = None) -> list[dict]:
    """Evaluate every configuration (default `sweep_configs(base, arch)`) and mark the Pareto
    fronts; rows in sweep order. jobs > 1: a Dask `LocalCluster(n_workers=jobs,
    threads_per_worker=1, processes=True)`; `scheduler`: `Client(scheduler)`."""
    from dgfpga.perf.cycle_model import CycleParams
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.perf.prediction import block_density_for_reduction
    net_shape(arch)                                          # unknown names fail first
    params = params or CycleParams()
    configs = list(configs) if configs is not None else sweep_configs(base, arch)
    density = block_density_for_reduction(arch, reduction, seed, base)
    args = [(c, arch, density, seed, params, host_s, synth, ddr_latency) for c in configs]
    if scheduler or jobs > 1:
        rows = _run_dask(args, jobs, scheduler, progress)
    else:
        from tqdm import tqdm
        rows = [evaluate_point(*a) for a in tqdm(args, desc="explore", unit="config",
                                                  disable=not progress)]
    for res, key in (("dsp", "pareto_dsp"), ("bram36", "pareto_bram")):
        front = pareto_front(rows, res)
        for r in rows:
            r[key] = r["name"] in front
    return rows


def _run_dask(args: list, jobs: int, scheduler: Optional[str], progress: bool) -> list[dict]:
    from tqdm import tqdm
    from dgfpga.backends.cluster import dask_client
    with dask_client(jobs, scheduler) as client:
        from dask.distributed import as_completed
        futures = client.map(evaluate_point, *[list(col) for col in zip(*args)], pure=False)
        for _ in tqdm(as_completed(futures), total=len(futures), desc="explore",
                      unit="config", disable=not progress):
            pass
        return client.gather(futures)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def table(rows: list[dict]) -> str:
    """The printed table: one line per configuration, '*' on a Pareto front."""
    hdr = (f"{'config':24s} {'array':>7s} {'tile':>4s} {'buf':>5s} {'DSP':>6s} {'BRAM36':>7s} "
           f"{'fits':>4s} {'dense/s':>8s} {'gated/s':>8s} {'speedup':>7s} {'effic':>6s} "
           f"{'synth DSP':>9s} {'P-DSP':>5s} {'P-BRAM':>6s}")
    out = [hdr]
    for r in rows:
        out.append(f"{r['name']:24s} {r['tm']:>3d}x{r['tn']:<3d} {r['max_tile']:4d} "
                   f"{r['buffers']:>5s} {r['dsp']:6.0f} {r['bram36']:7.1f} "
                   f"{'yes' if r['fits'] else 'no':>4s} {_fmt(r['dense_images_per_s']):>8s} "
                   f"{_fmt(r['gated_images_per_s']):>8s} {_fmt(r['speedup']):>7s} "
                   f"{_fmt(r['efficiency']):>6s} {_fmt(r['synth_dsp']):>9s} "
                   f"{'*' if r['pareto_dsp'] else '':>5s} {'*' if r['pareto_bram'] else '':>6s}")
    return "\n".join(out)


def write_outputs(rows: list[dict], folder: Path, meta: dict) -> dict:
    """explore.csv, explore.json ({meta, rows}) and explore.png into `folder`."""
    folder = Path(folder)
    with open(folder / "explore.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    (folder / "explore.json").write_text(json.dumps(dict(meta, rows=rows), indent=1) + "\n")
    plot(rows, folder / "explore.png", meta)
    return {k: folder / f"explore.{k}" for k in ("csv", "json", "png")}


def plot(rows: list[dict], path: Path, meta: dict) -> None:
    """Gated images/s against DSP48E2 and against BRAM36 (estimate): fitting points filled,
    over-budget hollow (at their estimate), Pareto front joined, the part's budget dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ok = [r for r in rows if r["network_fits"]]
    for ax, res, key, budget in ((axes[0], "dsp", "pareto_dsp", meta.get("budget_dsp")),
                                 (axes[1], "bram36", "pareto_bram", meta.get("budget_bram36"))):
        fit = [r for r in ok if r["fits"]]
        over = [r for r in ok if not r["fits"]]
        ax.scatter([r[res] for r in fit], [r["gated_images_per_s"] for r in fit], s=18,
                   label="fits the part")
        ax.scatter([r[res] for r in over], [r["gated_images_per_s"] for r in over], s=18,
                   facecolors="none", edgecolors="grey", label="over budget")
        labels = {}                     # front points; configs that tie share a label
        for r in sorted((r for r in fit if r[key]), key=lambda r: r[res]):
            labels.setdefault((r[res], r["gated_images_per_s"]), []).append(
                f"{r['tm']}x{r['tn']} t{r['max_tile']}{r['buffers'][0]}")
        ax.plot([x for x, _ in labels], [y for _, y in labels], "r-o", ms=4,
                label="Pareto front")
        for (x, y), names in labels.items():
            ax.annotate(", ".join(dict.fromkeys(names)) if len(names) < 3
                        else f"{names[0]} (+{len(names) - 1})", (x, y), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        if budget:
            ax.axvline(budget, ls="--", c="k", lw=0.8, label="part budget")
        ax.set_xlabel(f"{'DSP48E2' if res == 'dsp' else 'BRAM36'} (estimate)")
        ax.set_ylabel("predicted images/s (gated)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"dgfpga explore: {meta.get('arch')} on {meta.get('board')} "
                 f"({meta.get('reduction')}x fewer MACs, DDR latency "
                 f"{meta.get('ddr_latency_cycles')} cycles)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
