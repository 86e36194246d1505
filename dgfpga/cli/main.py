"""The `dgfpga` command line: one subcommand per module `dgfpga.cli.cmd_*`.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
Modules are imported lazily so `dgfpga --help` stays fast and torch is only imported by
the commands that need it.
"""
from __future__ import annotations

import argparse
import importlib
import sys

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
]


from dgfpga.errors import DgfpgaError as UserError  # noqa: E402  (one error hierarchy)


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
    try:
        return _main(argv)
    except KeyboardInterrupt:          # Ctrl-C: one line; outputs are transactional
        print("dgfpga: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"dgfpga {args.command}: error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    """The console script: `main`, then Ctrl-C is ignored while the interpreter shuts down
    (the work is done and its output complete; a late Ctrl-C must not end in a silent
    exit -2)."""
    import signal
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
