"""`dgfpga bench-scheduler`: host-side cost of gate evaluation + mask scheduling per image."""
from __future__ import annotations

import json
import time

import numpy as np

NAME = "bench-scheduler"
HELP = ("benchmark the mask scheduler (and the gate evaluation) per image, as the board's "
        "host runs it between engine starts")


def add_arguments(p):
    p.add_argument("--arch", default="resdg18", help="network (default resdg18)")
    p.add_argument("--config", default="ultra96", help="engine configuration")
    p.add_argument("--images", type=int, default=200, help="scheduled images (masks)")
    p.add_argument("--density", type=float, default=0.4, help="block density of the masks")
    p.add_argument("--json", dest="json_out", help="write the figures to this JSON file")


def _qmodel(arch: str):
    """A quantized model of `arch` with random weights (the schedule needs only shapes)."""
    from dgfpga.quant.quantize import make_test_model, quantize_model
    from dgfpga_models import build_model
    m = build_model(arch)
    h, w = m.in_h, m.in_w
    from dgfpga.quant.quantize import _default_normalization, input_range
    lo, hi = input_range(*_default_normalization(m))
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (4, 3, h, w))
    imgs = (lo[None, :, None, None] + u * (hi - lo)[None, :, None, None]).astype(np.float32)
    return quantize_model(make_test_model(arch, imgs), imgs)


def run(args) -> int:
    from dgfpga.contract import formats
    from dgfpga.numerics import gates
    from dgfpga.perf.cycle_model import random_block_masks
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.netshapes import net_shape
    from dgfpga.runtime.packer import plan_network
    from dgfpga.runtime.scheduler import Scheduler
    cfg = load_config(args.config)
    print(f"quantizing a random {args.arch} for its shapes ...", flush=True)
    qm = _qmodel(args.arch)
    plan = plan_network(qm, cfg)
    sch = Scheduler(plan)
    net = net_shape(args.arch)
    sched_us, gate_us = [], []
    for i in range(args.images):
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
        # gate evaluation from per-tile sums, as the runner does it
        t = time.perf_counter()
        for j, qb in enumerate(qm.blocks):
            c, h, w = qm.tensors[qb.in_tensor].shape
            _, tile, grid = plan.sums[qb.in_tensor]
            ts = np.random.default_rng(j).integers(0, 255 * tile * tile, (*grid, c)).astype(np.int32)
            bins, counts = formats.bin_sums_from_tile_sums(ts, tile, h, w, *qb.grid)
            gates.eval_spatial_gate(np.moveaxis(bins, -1, 0)[None], counts, 0.05, qb.spatial_gate)
            gates.eval_channel_gate(ts.reshape(-1, c).astype(np.int64).sum(0)[None], h * w, 0.05,
                                    qb.channel_gate)
        gate_us.append(1e6 * (time.perf_counter() - t))
    res = {"arch": args.arch, "config": cfg.name, "images": args.images,
           "blocks": len(plan.blocks), "density": args.density,
           "schedule_us_median": float(np.median(sched_us)),
           "schedule_us_p90": float(np.percentile(sched_us, 90)),
           "gates_us_median": float(np.median(gate_us)),
           "gates_us_p90": float(np.percentile(gate_us, 90))}
    print(f"{args.arch} ({len(plan.blocks)} blocks, density {args.density}) on '{cfg.name}', "
          f"{args.images} images:")
    print(f"  scheduling:      median {res['schedule_us_median']:8.1f} us/image   "
          f"p90 {res['schedule_us_p90']:8.1f} us")
    print(f"  gate evaluation: median {res['gates_us_median']:8.1f} us/image   "
          f"p90 {res['gates_us_p90']:8.1f} us")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0
