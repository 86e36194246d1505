"""`dgfpga calibrate`: fit the analytical cycle model to per-layer RTL cycle counts."""
from __future__ import annotations

NAME = "calibrate"
HELP = ("measure per-layer cycles on the RTL (Verilator) and fit the cycle model's overheads "
        "(or --from saved measurements)")


def add_arguments(p):
    from dgfpga.perf.calibration import add_arguments as add
    add(p)


def run(args) -> int:
    from dgfpga.perf.calibration import run as go
    return go(args)
