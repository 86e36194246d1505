"""`dgfpga bench-scheduler`: numpy cost of the integer gate evaluation (from per-tile sums,
`gates_from_tile_sums`) and of the mask scheduler (`Scheduler.block`) per image: what the
one-start engine does on chip, timed in Python (the reference implementations)."""
from __future__ import annotations

from dgfpga.cli import options

import json
import time

import numpy as np

NAME = "bench-scheduler"
HELP = ("benchmark the mask scheduler (the reference for the work the engine generates) and "
        "the integer gate evaluation in numpy, per image")


def add_arguments(p):
    from dgfpga.cli.options import add_arch, add_config, add_out
    add_arch(p, default="resdg18", help="network, planned from its shapes (default resdg18)")
    add_config(p, default="ultra96")
    p.add_argument("--masks", type=options.number(int, 1), default=200,
                   help="random mask sets scheduled, one per simulated image (default 200)")
    p.add_argument("--density", type=options.number(float, 0, 1, lo_open=True), default=0.4,
                   help="block density of the random masks (default 0.4)")
    add_out(p, default=None, required=False, help="also write the figures to this JSON file")


def _gate_params(plan, rng):
    """Random integer gates of the plan's block shapes (timing does not depend on them)."""
    from dgfpga.numerics.gates import IntChannelGate, IntSpatialGate
    out = []
    for b in plan.blocks:
        c_in, c_out = b.conv1.template.in_c, b.conv1.template.out_c
        h = c_in // 4
        out.append((IntSpatialGate(rng.integers(-32767, 32768, (c_in, 3, 3)), 0),
                    IntChannelGate(rng.integers(-32767, 32768, (h, c_in)),
                                   rng.integers(-2 ** 12, 2 ** 12, h), np.zeros(h, np.int64), 40,
                                   rng.integers(-32767, 32768, (c_out, h)),
                                   np.zeros(c_out, np.int64))))
    return out


def run(args) -> int:
    from dgfpga.errors import DgfpgaError
    from dgfpga.numerics import gates
    from dgfpga.perf.cycle_model import random_block_masks
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.netshapes import net_shape, shape_plan
    from dgfpga.runtime.scheduler import Scheduler
    from dgfpga.outdir import atomic_write_text, check_writable
    if args.out:
        check_writable(args.out, "file")                           # before any work
    if args.masks < 1 or not 0.0 <= args.density <= 1.0:
        raise DgfpgaError(f"--masks must be >= 1 and --density in [0, 1] (got {args.masks}, "
                          f"{args.density})")
    cfg = load_config(args.config)
    net = net_shape(args.arch)
    plan = shape_plan(net, cfg)
    qm = plan.qmodel
    gate_params = _gate_params(plan, np.random.default_rng(0))
    sch = Scheduler(plan)
    sums = []                       # per block: random tile sums, the block's bin table
    for j, qb in enumerate(qm.blocks):
        c, h, w = qm.tensors[qb.in_tensor].shape
        _, tile, grid = plan.sums[qb.in_tensor]
        ts = np.random.default_rng(j).integers(0, 255 * tile * tile, (*grid, c)).astype(np.int32)
        sums.append((ts, gates.bin_table(h, w, tile, qb.grid)))
    sched_us, gate_us = [], []
    for i in range(args.masks):
        masks = random_block_masks(net, [args.density] * len(net.blocks), seed=i)
        grids = []
        for b, m in zip(plan.blocks, masks):
            sp = np.zeros(b.grid, bool).reshape(-1)
            sp[m.tiles] = True
            ch = np.zeros(b.conv1.template.out_c, bool)
            ch[m.channels] = True
            grids.append((sp.reshape(b.grid), ch))
        t = time.perf_counter()
        for j, (sp, ch) in enumerate(grids):
            sch.block(j, sp, ch)
        sched_us.append(1e6 * (time.perf_counter() - t))
        # the integer gates from per-tile sums (what the engine evaluates on chip), in numpy
        t = time.perf_counter()
        for j, (ts, table) in enumerate(sums):
            sg, cg = gate_params[j]
            gates.gates_from_tile_sums(ts, table, sg, cg)
        gate_us.append(1e6 * (time.perf_counter() - t))
    res = {"arch": args.arch, "config": cfg.name, "masks": args.masks,
           "blocks": len(plan.blocks), "density": args.density,
           "schedule_us_median": float(np.median(sched_us)),
           "schedule_us_p90": float(np.percentile(sched_us, 90)),
           "gates_us_median": float(np.median(gate_us)),
           "gates_us_p90": float(np.percentile(gate_us, 90))}
    print(f"{args.arch} ({len(plan.blocks)} blocks, density {args.density}) on '{cfg.name}', "
          f"{args.masks} mask sets:")
    print(f"  scheduling:      median {res['schedule_us_median']:8.1f} us/image   "
          f"p90 {res['schedule_us_p90']:8.1f} us")
    print(f"  gate evaluation: median {res['gates_us_median']:8.1f} us/image   "
          f"p90 {res['gates_us_p90']:8.1f} us")
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=2))
    return 0
