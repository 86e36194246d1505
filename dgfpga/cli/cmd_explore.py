"""`dgfpga explore`: sweep engine configurations derived from a board's config and show
predicted images/s against resources, marking the Pareto front (dgfpga.perf.explore)."""
from __future__ import annotations

import json
import time

from dgfpga.cli import options

NAME = "explore"
HELP = ("sweep engine configs (array tm x tn, tile, buffers) for a board and a network: "
        "resource estimate, predicted images/s (cycle model with the board's DDR), Pareto "
        "front; writes explore.csv/.json/.png")
DEFAULT_OUT = "explore"


def add_arguments(ap) -> None:
    ap.add_argument("--board", default="ultra96", help="the board's engine configuration "
                    "the sweep derives from: a shipped name or a .toml path (default ultra96)")
    options.add_arch(ap, default="resdg18")
    ap.add_argument("--reduction", type=options.number(float, 1.0), default=2.4,
                    help="theoretical MAC reduction of the gated network the images/s are "
                    "predicted at (default 2.4, the paper's resdg18 point)")
    ap.add_argument("--params", help="calibrated cycle-model parameters (JSON; default: the "
                    "shipped calibration, sim/results/cycle_params_small.json)")
    ap.add_argument("--ddr-latency", type=options.number(float, 0), default=None,
                    metavar="CYCLES", help="DDR read latency in engine cycles (default: the "
                    "board's estimate, dgfpga.perf.prediction.DDR_READ_LATENCY_S)")
    ap.add_argument("--seed", type=options.number(int, 0), default=0,
                    help="seed of the random masks (default 0)")
    ap.add_argument("--jobs", type=options.number(int, 1, 256), default=1,
                    help="evaluate the configs on a local Dask cluster of N worker processes "
                    "(default 1: serial, in this process)")
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="evaluate on a running Dask cluster (e.g. tcp://host:8786) instead "
                    "of a local one")
    ap.add_argument("--no-synth", action="store_true",
                    help="do not look up cached `dgfpga synth` results")
    options.add_out(ap, default=DEFAULT_OUT, help="output folder for explore.csv, "
                    f"explore.json, explore.png (default {DEFAULT_OUT})")
    options.add_force(ap)


def run(args) -> int:
    from dgfpga.contract.engine_config import load_config
    from dgfpga.outdir import output_dir, preflight
    from dgfpga.perf import explore as E
    from dgfpga.perf.cycle_model import CycleParams
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.perf.prediction import ddr_params
    from dgfpga.perf.resources import estimate
    base = load_config(args.board)
    net_shape(args.arch)                                   # unknown names fail before work
    preflight(args.out, args.force)
    if args.params:
        params = CycleParams.load(args.params)
    else:
        from dgfpga.perf.calibration import shipped_params
        params, path = shipped_params(base)
        args.params = str(path) if path else "defaults (uncalibrated)"
    lat = ddr_params(params, base, args.ddr_latency).read_latency_cycles
    t0 = time.perf_counter()
    rows = E.explore(base, args.arch, args.reduction, params, args.seed,
                     args.jobs, args.scheduler, host_s=0.0, synth=not args.no_synth,
                     ddr_latency=args.ddr_latency)
    budget = estimate(base).budget
    meta = dict(format="dgfpga-explore", version=1, board=base.board, base_config=base.name,
                arch=args.arch, reduction=args.reduction, seed=args.seed, params=args.params,
                ddr_latency_cycles=lat, clock_hz=base.clock_hz, budget_dsp=budget["dsp"],
                budget_bram36=budget["bram36"], wall_s=None,
                resources="estimate (dgfpga.perf.resources); synth_* columns: cached "
                          "`dgfpga synth` totals where present",
                images_per_s="engine only (no host term), cycle model with the DDR model")
    with output_dir(args.out, "explore", args.force) as tmp:
        meta["wall_s"] = round(time.perf_counter() - t0, 2)
        E.write_outputs(rows, tmp, meta)
    print(E.table(rows))
    n_syn = sum(r["synth_dsp"] is not None for r in rows)
    print(f"{len(rows)} configs from '{base.name}' ({args.arch} at {args.reduction}x fewer "
          f"MACs, DDR latency {lat:g} cycles, params {args.params}); resources: estimate; "
          f"open-synthesis figures for {n_syn} (cached `dgfpga synth` runs); "
          f"* = Pareto front (gated images/s vs DSP / vs BRAM36, fitting configs)")
    print(json.dumps({"written": [str(args.out) + "/explore." + k for k in ("csv", "json", "png")],
                      "wall_s": meta["wall_s"]}))
    return 0
