"""Exceptions shared across dgfpga, and the one error boundary of its command lines
(torch-free: `dgfpga` and the board's `dgfpga-host` both use `cli_boundary`)."""
import signal
import sys


class DgfpgaError(Exception):
    """Base class: a clear, user-facing message naming what is wrong and what to do."""


class CheckpointError(DgfpgaError):
    """A checkpoint file is unreadable, not a checkpoint, or does not match the architecture."""


class FormatError(DgfpgaError):
    """A packed structure (work list, descriptor, bundle, quantized model) is malformed."""


class ConfigError(DgfpgaError):
    """An engine configuration is invalid or does not fit the target."""


def cli_boundary(prog: str, build_parser, argv, handler: str) -> int:
    """Parse `argv` and run the chosen subcommand (`args.<handler>(args)`), turning every
    expected failure (a DgfpgaError) into one `PROG CMD: error: ...` line and exit 2 (the
    traceback with `--debug`), and Ctrl-C into one line and exit 130 (outputs are written
    transactionally, so nothing is left half-done)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        run = getattr(args, handler, None)
        if not run:
            parser.print_help()
            return 0
        try:
            return int(run(args) or 0)
        except DgfpgaError as exc:
            if getattr(args, "debug", False):
                raise
            print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


def console_entry(main) -> None:
    """A console script: `main()`, then Ctrl-C is ignored while the interpreter shuts down
    (the work is done and its output complete; a late Ctrl-C must not end in a silent
    exit -2)."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
