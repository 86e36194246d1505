"""The `dgfpga-host` command line."""
import sys


def main(argv=None):
    print("dgfpga-host: no subcommands yet", file=sys.stderr)
    return 0
