"""The `dgfpga` command line: one subcommand per module `dgfpga.cli.cmd_*`.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
Modules are imported lazily so `dgfpga --help` stays fast and torch is only imported by
the commands that need it.
"""
from __future__ import annotations

import argparse
import importlib

# Order is the order shown in --help. Add a command by adding its module here.
COMMANDS = [
    "demo",
    "train",
    "evaluate",
    "gate-figure",
    "flops",
    "export_onnx",
    "gen",
    "quantize",
    "qreport",
    "build-hls",
    "calibrate",
    "predict",
    "bench-scheduler",
    "synth",
    "simulate",
    "ci",
    "explore",
    "cache",
]


from dgfpga.errors import cli_boundary, console_entry  # noqa: E402  (one error boundary)


def _load(name: str):
    return importlib.import_module(f"dgfpga.cli.cmd_{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgfpga",
        description="FPGA co-design toolkit for Dynamic Dual Gating networks (DGNet).")
    from dgfpga import __version__
    parser.add_argument("--version", action="version", version=f"dgfpga {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of a one-line message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error (also: dgfpga --debug CMD)")
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    return cli_boundary("dgfpga", build_parser, argv, "_run")


def entry() -> None:
    """The console script (Ctrl-C ignored at interpreter shutdown: `console_entry`)."""
    console_entry(main)


if __name__ == "__main__":
    entry()
