"""`dgfpga gate-figure`: picture what a checkpoint's gates do on a few test images."""
from __future__ import annotations

from dgfpga.cli import options

NAME = "gate-figure"
HELP = ("draw the spatial cost map (blocks executed per tile) and per-block channel "
        "density of a checkpoint on a few embedded test images (PNG)")


def add_arguments(p):
    options.add_checkpoint(p)
    options.add_out(p, help="PNG to write")
    options.add_images(p, default="embedded:test", help="images to pick from")
    p.add_argument("--first", type=options.number(int, 0), default=0,
                   help="index (in --images) of the first image shown (default 0)")
    p.add_argument("--count", type=options.number(int, 1), default=4, help="images shown (default 4)")


def run(args) -> int:
    from pathlib import Path
    from dgfpga.data.images import load_images, normalization_for
    from dgfpga.errors import DgfpgaError
    from dgfpga.workflows.gate_figure import collect_masks, gate_figure
    from dgfpga.workflows.train import load_trained
    from dgfpga.outdir import atomic_file, check_writable
    check_writable(args.out, "file")                                  # before any work
    model, meta = load_trained(args.checkpoint)
    mean, std = normalization_for(model.arch)
    split = load_images(args.images, (3, model.in_h, model.in_w), mean, std, purpose="eval")
    sel = slice(args.first, args.first + args.count)
    if len(split.images[sel]) < args.count:
        raise DgfpgaError(f"--first {args.first} --count {args.count}: {split.source} has "
                          f"only {len(split)} images")
    spatial, channel = collect_masks(model, split.images[sel])
    title = f"{Path(args.checkpoint).name}, target density {meta.get('target_density')}"
    with atomic_file(args.out) as tmp:         # same suffix: matplotlib picks the format
        gate_figure(split.images[sel], spatial, channel, tmp, title, mean=mean, std=std,
                    labels=None if split.labels is None else split.labels[sel].tolist(),
                    n=args.count,
                    object_masks=None if split.object_masks is None else split.object_masks[sel])
    print(f"wrote {args.out}")
    return 0
