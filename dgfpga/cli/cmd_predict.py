"""`dgfpga predict`: predicted Ultra96 latency, images/s and speedup from the cycle model."""
from __future__ import annotations

import json

NAME = "predict"
HELP = ("predict dense vs gated cycles, latency and images/s from the analytical cycle "
        "model (ResNet-18/34 at the paper's Table 3 densities)")


def add_arguments(p):
    p.add_argument("--config", default="ultra96", help="engine configuration (default ultra96)")
    p.add_argument("--params", help="calibrated cycle-model parameters (JSON from calibration)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random masks")
    p.add_argument("--checkpoint", help="also predict this DGNet on real images (its golden-model masks)")
    p.add_argument("--images", default="embedded:20",
                   help="with --checkpoint: embedded:N (test split) or a .npy of normalised images")
    p.add_argument("--json", dest="json_out", help="also write the figures to this JSON file")


def run(args) -> int:
    from dgfpga.perf.cycle_model import CycleParams
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.prediction import paper_configurations
    cfg = load_config(args.config)
    params = CycleParams.load(args.params) if args.params else CycleParams()
    if not args.params:   # the RTL calibration of this config, else of 'small' (same design)
        from dgfpga.perf.calibration import params_path
        for c in (cfg, load_config("small")):
            if params_path(c).is_file():
                params = CycleParams.load(params_path(c))
                args.params = str(params_path(c))
                break
    preds = paper_configurations(cfg, params, args.seed)
    print(f"engine '{cfg.name}': {cfg.tm}x{cfg.tn} MACs @ {cfg.clock_hz / 1e6:.0f} MHz; "
          f"cycle params {'calibrated: ' + args.params if args.params else 'defaults (uncalibrated)'}")
    print("masks: random, one density per gated block, solved so the network's MAC reduction "
          "equals the paper's")
    hdr = (f"{'network':9s} {'blk dens':>8s} {'MAC red.':>8s} {'speedup':>8s} {'effic.':>7s} "
           f"{'dense ms':>9s} {'gated ms':>9s} {'img/s':>7s} {'paper speedup':>13s} {'paper effic.':>12s}")
    print(hdr)
    for p in preds:
        print(f"{p.network:9s} {p.block_density:8.3f} {p.mac_reduction:7.2f}x {p.speedup:7.2f}x "
              f"{p.efficiency:7.2f} {p.dense_ms:9.2f} {p.gated_ms:9.2f} {p.gated_images_per_s:7.1f} "
              f"{p.paper_speedup:12.2f}x {p.paper_speedup / p.paper_mac_reduction:12.2f}")
    rows = [p.as_dict() for p in preds]
    if args.checkpoint:
        own = _own_model(args, cfg, params)
        rows.append(own.as_dict())
        print(f"{own.network:9s} {own.block_density:8.3f} {own.mac_reduction:7.2f}x "
              f"{own.speedup:7.2f}x {own.efficiency:7.2f} {own.dense_ms:9.3f} {own.gated_ms:9.3f} "
              f"{own.gated_images_per_s:7.1f}   (real masks: {args.checkpoint}, {args.images}; "
              "median image)")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


def _own_model(args, cfg, params):
    """Median prediction over images for a checkpoint's golden-model masks."""
    import numpy as np
    from dgfpga.numerics.golden import run_golden
    from dgfpga.perf.prediction import predict_masks
    from dgfpga.quant.quantize import load_calibration, load_float_model, quantize_model
    model, _ = load_float_model(args.checkpoint)
    qm = quantize_model(model, load_calibration("embedded:256"))
    if args.images.startswith("embedded:"):
        from dgfpga.data.embedded import load_split
        images = load_split("test", int(args.images.split(":", 1)[1])).images
    else:
        images = load_calibration(args.images)
    g = run_golden(qm, images, keep_layers=False)
    preds = [predict_masks(qm.arch, [m.spatial[i] for m in g.masks],
                           [m.channel[i] for m in g.masks], cfg, params)
             for i in range(len(images))]
    order = np.argsort([p.speedup for p in preds])
    return preds[int(order[len(order) // 2])]
