"""`dgfpga evaluate`: test top-1 and measured MAC density of a checkpoint (float model)."""
from __future__ import annotations

NAME = "evaluate"
HELP = "evaluate a checkpoint on the embedded test split: top-1, density, per-block density"


def add_arguments(p):
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--arch", help="architecture (default: from the checkpoint)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--n", type=int, help="images (default: the whole split)")
    p.add_argument("--dense", action="store_true", help="force every gate on")
    p.add_argument("--json", dest="json_out", help="also write the figures as JSON")


def run(args) -> int:
    import json
    from dgfpga import data
    from dgfpga.train import evaluate
    from dgfpga_models.checkpoint import load_checkpoint
    model, meta = load_checkpoint(args.checkpoint, args.arch)
    split = data.load_split(args.split, args.n)
    r = evaluate(model, split, dense=True if args.dense else None)
    print(f"{args.checkpoint}: {model.arch} on the {args.split} split ({len(split.labels)} images)")
    print(f"top-1 {r['top1']:.2f}%   MAC density {r['density']:.4f} "
          f"({1 / r['density']:.2f}x fewer MACs than dense)")
    print("per-block conv density: " + " ".join(f"{d:.2f}" for d in r["block_density"]))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(r, fh, indent=2)
    return 0
