"""`dgfpga gen`: generate the engine-contract files (HLS header, RTL include, docs)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "gen"
HELP = ("generate hls/generated/dg_config.h, sim/generated/dg_params.svh and the register-map "
        "and format docs from the engine config, regmap and formats")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="ultra96",
                        help="engine config: shipped name (ultra96, small) or a .toml path "
                             "(default: ultra96)")
    parser.add_argument("-o", "--out-dir", type=Path, default=None,
                        help="write the HLS/RTL includes to OUT_DIR/<config name>/{hls,sim}/ "
                             "instead of the repository (required for non-default configs)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that are stale")


def run(args: argparse.Namespace) -> int:
    from dgfpga.contract import codegen

    files = codegen.outputs(args.config, args.out_dir)
    if args.check:
        stale = codegen.stale(files)
        for p in stale:
            print(f"stale: {p}", file=sys.stderr)
        if stale:
            print(f"{len(stale)} generated file(s) out of date: run `dgfpga gen"
                  f"{'' if args.out_dir is None else f' --config {args.config} -o {args.out_dir}'}`",
                  file=sys.stderr)
            return 1
        print(f"{len(files)} generated file(s) up to date")
        return 0
    changed = codegen.write(files)
    for p in files:
        print(f"{'wrote' if p in changed else 'unchanged'}: {p}")
    return 0
