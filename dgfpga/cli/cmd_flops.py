"""`dgfpga flops`: per-block MAC table of a zoo architecture, dense and (measured) gated.

    dgfpga flops resdg18                                    # dense table
    dgfpga flops resdg20_cifar10 --checkpoint ck.pth.tar --images imgs.npy
    dgfpga flops resdg20_cifar10 --checkpoint ck.pth.tar --images embedded:500

Counting follows the official `get_flops` (see docs/models.md). `--images` is an .npy
file of float images [N, 3, H, W] (already normalised), or `embedded:N` for the first N
images of the embedded test split (`dgfpga.data.embedded`, 32x32 CIFAR-size models only).
"""
from __future__ import annotations

NAME = "flops"
HELP = "per-block MAC table (official counting): dense, and gated on images with a checkpoint"

EMBEDDED_PREFIX = "embedded:"


def add_arguments(parser) -> None:
    parser.add_argument("arch", help="architecture, e.g. resdg20_cifar10, resdg18, resdg34, "
                                     "resdg50, mobilenet_v2_dg (docs/models.md lists all)")
    parser.add_argument("--checkpoint", help="trained checkpoint (.pth.tar); with --images, "
                                             "measure the gated MACs")
    parser.add_argument("--images", help="float images [N,3,H,W] as .npy, or embedded:N "
                                         "(first N test images of the embedded dataset)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--json", help="also write the tables to this JSON file")


def _load_images(spec: str):
    """float32 [N, 3, H, W] numpy images from an .npy path or `embedded:N`."""
    from pathlib import Path

    import numpy as np

    from dgfpga.errors import DgfpgaError

    if spec.startswith(EMBEDDED_PREFIX):
        count = spec[len(EMBEDDED_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise DgfpgaError(f"--images {spec}: expected embedded:N with N >= 1")
        from dgfpga.data.embedded import load_split
        images = load_split("test", int(count)).images
    else:
        path = Path(spec)
        if not path.is_file():
            raise DgfpgaError(f"--images {spec}: no such file (expected an .npy file of float "
                              "images [N,3,H,W], or embedded:N)")
        try:
            images = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DgfpgaError(f"--images {spec}: not a readable .npy array ({exc})") from None
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise DgfpgaError(f"--images {spec}: expected float images [N,3,H,W], got shape "
                          f"{list(images.shape)}")
    if not np.issubdtype(images.dtype, np.floating):
        raise DgfpgaError(f"--images {spec}: expected float images (normalised), got "
                          f"{images.dtype}")
    return images.astype(np.float32, copy=False)


def run(args) -> int:
    import json

    from dgfpga.errors import DgfpgaError
    from dgfpga_models import ARCHS, build_model
    from dgfpga_models.checkpoint import load_checkpoint
    from dgfpga_models.flops import dense_table, format_table, gated_table

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
    dense = dense_table(model)
    print(format_table(dense))
    tables = {"dense": dense.to_dict()}
    if args.images:
        images = _load_images(args.images)
        if tuple(images.shape[2:]) != model.input_size:
            raise DgfpgaError(f"--images are {images.shape[2]}x{images.shape[3]} but "
                              f"{model.arch} takes {model.in_h}x{model.in_w} inputs")
        gated = gated_table(model, images, args.batch_size)
        print()
        print(format_table(gated, reference=dense))
        tables["gated"] = gated.to_dict()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(tables, f, indent=1)
    return 0
