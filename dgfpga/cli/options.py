"""Shared option helpers: one spelling and one help style for every `dgfpga` command.

    -o/--out PATH        every output (file or folder)        add_out
    --force              write into a folder dgfpga did not create  add_force
    --arch NAME          the network architecture             add_arch
    --config NAME|TOML   the engine configuration             add_config
    --images SPEC        input images (dgfpga.data.images)    add_images
    --checkpoint PATH    a DGNet checkpoint (.pth.tar)         add_checkpoint

`tests/workflows/test_cli_style.py` walks every subparser of `dgfpga` and `dgfpga-host`
and checks that every option has help text and every output option is `-o/--out`.
Old spellings (-o/--output, --out-dir, --json, --n, -n, --n-eval, --net, --folder,
--selfcheck, a positional arch) are gone.
"""
from __future__ import annotations

__all__ = ["number", "add_out", "add_arch", "add_config", "add_images", "add_checkpoint",
           "add_force", "create_default_parent", "IMAGES_HELP"]

def number(kind=int, lo=None, hi=None, lo_open: bool = False):
    """An argparse `type` for a numeric option: an int or a FINITE float in [lo, hi] (lo
    excluded with `lo_open`). Every numeric option of `dgfpga` uses it, so NaN, infinities
    and out-of-range values are usage errors (exit 2) before any work
    (`tests/workflows/test_cli_style.py` checks that every numeric option declares a range)."""
    import argparse
    import math

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"{text} must be <= {hi}")
        return v

    parse.__name__ = "integer" if kind is int else "number"
    parse.dgfpga_range = (kind, lo, hi, lo_open)
    return parse


# One description of the image-spec grammar (dgfpga.data.images.parse_spec implements it).
IMAGES_HELP = ("embedded[:N][:SPLIT] (embedded 32x32 digits, SPLIT train/val/test), "
               "photos[:N][:SPLIT] (embedded 224x224 photo crops), an .npy file (uint8 "
               "[N,H,W,3] pixels or normalised float32 [N,3,H,W]) or a folder of "
               "PNG/JPEG/.npy images")


def add_out(parser, default=None, help: str = "output path", required: bool | None = None,
            **kw):
    """`-o/--out` (dest `out`); required unless a default is given."""
    if required is None:
        required = default is None
    text = help if default is None or "default" in help else f"{help} (default {default})"
    return parser.add_argument("-o", "--out", default=default, required=required, help=text, **kw)


def add_arch(parser, default=None, help: str | None = None, **kw):
    """`--arch NAME`: the network architecture."""
    if help is None:
        help = ("architecture, e.g. resdg20_cifar10, resdg18 "
                + (f"(default {default})" if default else "(default: from the checkpoint)"))
    return parser.add_argument("--arch", default=default, help=help, **kw)


def add_config(parser, default: str | None = "ultra96", help: str | None = None):
    """`--config NAME|TOML`: a shipped engine configuration name or a .toml path."""
    if help is None:
        help = ("engine configuration: a shipped name (ultra96, small) or a .toml path"
                + (f" (default {default})" if default else ""))
    return parser.add_argument("--config", default=default, help=help)


def add_images(parser, default: str | None = None, help: str | None = None,
               flag: str = "--images", labelled: bool = False, **kw):
    """`--images SPEC` (or another flag such as `--calib` taking the same SPEC grammar).

    `default=None` means: the command picks the default from the network's input size
    (dgfpga.data.images.default_spec). `labelled`: only labelled sets (embedded) make
    sense (accuracy)."""
    what = help or "images"
    d = f"default {default}" if default else "default: by the network's input size"
    grammar = "embedded[:N][:SPLIT] (the embedded digits)" if labelled else IMAGES_HELP
    return parser.add_argument(flag, default=default, metavar="SPEC",
                               help=f"{what}: {grammar} ({d})", **kw)


def add_checkpoint(parser, required: bool = True, default=None, help: str | None = None):
    """`--checkpoint PATH`: a DGNet checkpoint (.pth.tar, official layout)."""
    if help is None:
        help = "DGNet checkpoint (.pth.tar, official layout)"
        if default is not None:
            help += f" (default {default})"
    return parser.add_argument("--checkpoint", required=required and default is None,
                               default=default, help=help)



def add_force(parser, help: str | None = None):
    """`--force`: write into an existing output folder that dgfpga did not create
    (dgfpga.outdir: the user's files are kept; a file dgfpga would overwrite is refused)."""
    return parser.add_argument(
        "--force", action="store_true",
        help=help or ("write into an existing folder that dgfpga did not create (your files "
                      "are kept; a file dgfpga would overwrite is refused, docs/outputs.md)"))


def create_default_parent(out, default) -> None:
    """A command's *default* output folder (e.g. out/demo) may have a missing parent (a
    fresh checkout has no out/): create it. A user-given -o with a missing parent is refused
    by dgfpga.outdir.check_writable before any work (a typo must not create folders)."""
    from pathlib import Path
    if str(out) == str(default):
        Path(default).parent.mkdir(parents=True, exist_ok=True)
