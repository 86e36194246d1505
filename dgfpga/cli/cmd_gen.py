"""`dgfpga gen`: generate the engine-contract files (HLS header, RTL include, docs)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dgfpga.cli import options

NAME = "gen"
HELP = ("generate hls/generated/dg_config.h, sim/generated/dg_params.svh and the register-map "
        "and format docs from the engine config, regmap and formats")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    options.add_out(parser, required=False, type=Path,
                    help="write the HLS/RTL includes to OUT/<config name>/{hls,sim}/ instead "
                         "of the repository (required for non-default configs)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that are stale")


def run(args: argparse.Namespace) -> int:
    from dgfpga.contract import codegen

    from dgfpga import paths
    from dgfpga.errors import DgfpgaError
    from dgfpga.outdir import check_writable

    if args.out is not None and not args.check:
        check_writable(args.out)                                   # before any work
    if args.out is None and not args.check and not paths.in_checkout():
        raise DgfpgaError("this dgfpga is installed, not a source checkout: the repository's "
                          "generated files are part of the package and are not rewritten; "
                          "write a config's includes to a folder with -o DIR")
    files = codegen.outputs(args.config, args.out)
    if args.check:
        stale = codegen.stale(files)
        for p in stale:
            print(f"stale: {p}", file=sys.stderr)
        if stale:
            print(f"{len(stale)} generated file(s) out of date: run `dgfpga gen"
                  f"{'' if args.out is None else f' --config {args.config} -o {args.out}'}`",
                  file=sys.stderr)
            return 1
        print(f"{len(files)} generated file(s) up to date")
        return 0
    changed = codegen.write(files)
    for p in files:
        print(f"{'wrote' if p in changed else 'unchanged'}: {p}")
    return 0
