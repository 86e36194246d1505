"""`dgfpga flops`: per-block MAC table of a zoo architecture, dense and (measured) gated.

    dgfpga flops --arch resdg18                                    # dense table
    dgfpga flops --arch resdg20_cifar10 --checkpoint ck.pth.tar --images imgs.npy
    dgfpga flops --arch resdg20_cifar10 --checkpoint ck.pth.tar --images embedded:500

Counting follows the official `get_flops` (see docs/models.md). `--images` is any image
spec (`dgfpga.data.images`): embedded:N (32x32 models), photos:N (224x224 models), an .npy
file or a folder.
"""
from __future__ import annotations

NAME = "flops"
HELP = "per-block MAC table (official counting): dense, and gated on images with a checkpoint"

def add_arguments(parser) -> None:
    from dgfpga.cli import options
    options.add_arch(parser, required=True,
                     help="architecture, e.g. resdg20_cifar10, resdg18, resdg34, resdg50, "
                          "mobilenet_v2_dg (docs/models.md lists all)")
    options.add_checkpoint(parser, required=False,
                           help="trained checkpoint (.pth.tar); with --images, measure the "
                                "gated MACs")
    parser.add_argument("--images", metavar="SPEC",
                        help="with --checkpoint, measure the gated MACs on these images: "
                             + options.IMAGES_HELP)
    parser.add_argument("--batch-size", type=options.number(int, 1), default=64, help="images per forward pass")
    options.add_out(parser, required=False, help="also write the tables to this JSON file")


def run(args) -> int:
    import json

    from dgfpga.errors import DgfpgaError
    from dgfpga_models import all_archs, build_model
    ARCHS = all_archs()
    from dgfpga_models.checkpoint import load_checkpoint
    from dgfpga_models.flops import dense_table, format_table, gated_table
    from dgfpga.outdir import atomic_write_text, check_writable

    if args.out:
        check_writable(args.out, "file")                           # before any work
    if args.arch not in ARCHS:
        raise DgfpgaError(f"unknown architecture {args.arch!r}; known: {', '.join(ARCHS)}")
    if bool(args.checkpoint) != bool(args.images):
        raise DgfpgaError("gated MACs need both --checkpoint and --images "
                          "(without them the dense table is printed)")
    if args.batch_size < 1:
        raise DgfpgaError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, arch=args.arch)
    else:
        model = build_model(args.arch)
    images = None
    if args.images:                       # checked before any table is computed
        from dgfpga.data.images import load_images
        images = load_images(args.images, (3, model.in_h, model.in_w), arch=model.arch).images
    dense = dense_table(model)
    print(format_table(dense))
    tables = {"dense": dense.to_dict()}
    if images is not None:
        gated = gated_table(model, images, args.batch_size)
        print()
        print(format_table(gated, reference=dense))
        tables["gated"] = gated.to_dict()
    if args.out:
        atomic_write_text(args.out, json.dumps(tables, indent=1))
    return 0
