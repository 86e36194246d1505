"""`dgfpga evaluate`: test top-1 and measured MAC density of a checkpoint (float model)."""
from __future__ import annotations

from dgfpga.cli import options

NAME = "evaluate"
HELP = ("evaluate a checkpoint on the embedded test split: top-1, density, per-block "
        "density and mask statistics")


WHOLE_TEST_SPLIT = "embedded:test"


def add_arguments(p):
    options.add_checkpoint(p)
    options.add_arch(p)
    options.add_images(p, default=WHOLE_TEST_SPLIT, labelled=True, help="labelled images")
    p.add_argument("--dense", action="store_true", help="force every gate on")
    options.add_out(p, required=False, help="also write the figures to this JSON file")
    p.add_argument("--record", action="store_true",
                   help="store the results in the checkpoint's metadata (test_top1, "
                        "test_density, test_block_density, mask_statistics); needs the "
                        f"default --images {WHOLE_TEST_SPLIT}")


def run(args) -> int:
    import json
    from dgfpga.data.images import load_images, parse_spec
    from dgfpga.errors import DgfpgaError
    from dgfpga.workflows.gate_figure import collect_masks, mask_statistics
    from dgfpga.workflows.train import evaluate, load_trained
    from dgfpga_models.checkpoint import save_checkpoint
    from dgfpga.outdir import atomic_write_text, check_writable
    if args.out:
        check_writable(args.out, "file")                           # before any work
    spec = parse_spec(args.images)
    if args.record and (args.dense or (spec.kind, spec.n, spec.split) != ("embedded", None, "test")):
        raise DgfpgaError(f"--record stores test-split figures: use it with the default "
                          f"--images {WHOLE_TEST_SPLIT} and no --dense")
    if args.record:               # rewritten in place (save_checkpoint: temp file + rename)
        check_writable(args.checkpoint, "file")
    model, meta = load_trained(args.checkpoint, args.arch)
    split = load_images(args.images, (3, model.in_h, model.in_w), arch=model.arch,
                        purpose="eval", labels_required=True)
    r = evaluate(model, split, dense=True if args.dense else None)
    mode = "dense (every gate on)" if (args.dense or model.dense) else "gated"
    print(f"{args.checkpoint}: {model.arch}, {mode}, on {split.source}")
    print(f"top-1 {r['top1']:.2f}%   MAC density {r['density']:.4f} "
          f"({1 / r['density']:.2f}x fewer MACs than dense)")
    print("per-block conv density:     " + " ".join(f"{d:.2f}" for d in r["block_density"]))
    print("  std across images:        " + " ".join(f"{d:.2f}" for d in r["block_density_std"]))
    if not (args.dense or model.dense):
        spatial, channel = collect_masks(model, split.images)
        st = mask_statistics(spatial, channel, split.object_masks)
        r["mask_statistics"] = st
        for key in ("spatial_density_mean", "spatial_density_std", "channel_density_mean",
                    "channel_density_std", "spatial_unlike_mode", "channel_unlike_mode"):
            print(f"{key + ':':27s} " + " ".join(f"{d:.2f}" for d in st[key]))
        print(f"tiles active: {100 * st['object_tiles_active']:.1f}% of object tiles, "
              f"{100 * st['background_tiles_active']:.1f}% of background tiles; "
              f"{100 * st['active_tiles_on_object']:.1f}% of active tiles touch the object")
    if args.out:
        atomic_write_text(args.out, json.dumps(r, indent=2))
    if args.record:
        keep = {k: v for k, v in meta.items()
                if k not in ("arch", "num_classes", "input_size", "mask_statistics")}
        keep.update(dense=model.dense, test_top1=r["top1"], test_density=r["density"],
                    test_block_density=r["block_density"],
                    test_block_density_std=r["block_density_std"])
        if "mask_statistics" in r:
            keep["mask_statistics"] = r["mask_statistics"]
        save_checkpoint(args.checkpoint, model, **keep)
        print(f"recorded the test figures in {args.checkpoint}")
    return 0
