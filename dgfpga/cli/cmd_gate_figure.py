"""`dgfpga gate-figure`: picture what a checkpoint's gates do on a few test images."""
from __future__ import annotations

NAME = "gate-figure"
HELP = ("draw the spatial cost map (blocks executed per tile) and per-block channel "
        "density of a checkpoint on a few embedded test images (PNG)")


def add_arguments(p):
    p.add_argument("--checkpoint", required=True)
    p.add_argument("-o", "--out", required=True, help="PNG to write")
    p.add_argument("--n", type=int, default=4, help="images to show (default 4)")
    p.add_argument("--first", type=int, default=0, help="index of the first test image")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))


def run(args) -> int:
    from pathlib import Path
    from dgfpga.data import embedded as data
    from dgfpga.errors import DgfpgaError
    from dgfpga.workflows.gate_figure import collect_masks, gate_figure
    from dgfpga.workflows.train import load_trained
    if args.n < 1:
        raise DgfpgaError(f"--n {args.n}: show at least one image")
    model, meta = load_trained(args.checkpoint)
    split = data.load_split(args.split)
    sel = slice(args.first, args.first + args.n)
    if len(split.labels[sel]) < args.n:
        raise DgfpgaError(f"--first {args.first} --n {args.n}: the {args.split} split has "
                          f"only {len(split.labels)} images")
    spatial, channel = collect_masks(model, split.images[sel])
    title = f"{Path(args.checkpoint).name}, target density {meta.get('target_density')}"
    gate_figure(split.images[sel], spatial, channel, args.out, title, mean=data.MEAN,
                std=data.STD, labels=split.labels[sel].tolist(), n=args.n,
                object_masks=split.object_masks[sel])
    print(f"wrote {args.out}")
    return 0
