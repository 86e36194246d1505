"""`dgfpga simulate`: a bundle's network on the simulated engine (rtl, cocotb, csim, numpy),
checked bit for bit against the golden model, with cycles.json, junit.xml, summary.md,
baseline/budget checks, a Perfetto trace and an RTL waveform (docs/simulate.md)."""
from __future__ import annotations

from pathlib import Path

NAME = "simulate"
HELP = ("run a bundle's images through the simulated engine (rtl, cocotb, csim or numpy), "
        "check every logit and gate mask bit for bit, report cycles (JSON, JUnit, Markdown), "
        "compare with a baseline / budget")


def _regression(text: str) -> float:
    import argparse
    from dgfpga.workflows.simulate import SimulateError, parse_regression
    try:
        return parse_regression(text)
    except SimulateError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def add_arguments(p):
    from dgfpga.cli.options import add_force, add_images, add_out, number
    from dgfpga.workflows.simulate import LEVELS, MIN_SLACK_CYCLES
    p.add_argument("--bundle", required=True, help="bundle folder written by dgfpga build-hls")
    p.add_argument("--level", required=True, choices=LEVELS,
                   help="engine model: rtl (Verilator, cycle-accurate), cocotb (the runner "
                        "inside a cocotb RTL simulation; --images selfcheck[:N] only), csim "
                        "(HLS C-simulation), numpy (interpreter; cycle-model cycles)")
    add_images(p, help="images to simulate; also selfcheck[:N] (the bundle's self-check "
                       "images)")
    add_out(p, default="sim-report", help="report folder: cycles.json, junit.xml, summary.md "
                                          "(default sim-report)")
    add_force(p)
    p.add_argument("--jobs", type=number(int, 1, 1024), default=1,
                   help="parallel image jobs on a local Dask cluster of this many worker "
                        "processes (default 1: serial in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="send the image jobs to this Dask scheduler (e.g. tcp://host:8786); "
                        "its workers must see the bundle path and have dgfpga installed")
    p.add_argument("--dense", action="store_true",
                   help="every gate on (RUN_FLAGS.DENSE): the dense baseline run")
    p.add_argument("--baseline", type=Path, metavar="CYCLES_JSON",
                   help="compare with this cycles.json (of an accepted run)")
    p.add_argument("--max-regression", type=_regression, default=None, metavar="PCT",
                   help="with --baseline: fail if the median total or a layer's median "
                        "cycles exceed the baseline by more than this (2%% or 0.02; a layer "
                        f"is allowed at least +{MIN_SLACK_CYCLES} cycles; default 2%%)")
    p.add_argument("--budget-cycles", type=number(int, 1), default=None, metavar="N",
                   help="fail if the median total cycles per image exceed N")
    p.add_argument("--update-baseline", action="store_true",
                   help="write this run's cycles.json to the --baseline path (only if every "
                        "image is bit-exact and the budget holds)")
    p.add_argument("--trace", type=Path, metavar="TRACE_JSON",
                   help="also write a Chrome/Perfetto trace (a bare file name goes into the "
                        "report folder)")
    p.add_argument("--wave", type=Path, metavar="FST",
                   help="level rtl: dump the FST waveform of the first image (a bare file "
                        "name goes into the report folder)")
    p.add_argument("--latency", type=number(int, 0, 100_000), default=0, metavar="CYC",
                   help="level rtl: memory read latency of the harness's AXI model, cycles "
                        "(default 0)")
    p.add_argument("--stall", type=number(int, 0, 99), default=0, metavar="PCT",
                   help="level rtl: random AXI stall percentage of the memory model (default 0)")
    p.add_argument("--timeout", type=number(float, 0, 86_400, lo_open=True), default=None,
                   metavar="S", help="engine timeout per image, seconds (default: the level's "
                                     "device's, minutes: Device.default_timeout_s)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar on stderr")


def run(args) -> int:
    from dgfpga.workflows.simulate import SimOptions, simulate
    opts = SimOptions(bundle=Path(args.bundle), level=args.level, images=args.images,
                      out=Path(args.out), jobs=args.jobs, scheduler=args.scheduler,
                      dense=args.dense, baseline=args.baseline,
                      max_regression=args.max_regression, budget_cycles=args.budget_cycles,
                      update_baseline=args.update_baseline, trace=args.trace, wave=args.wave,
                      latency=args.latency, stall=args.stall, timeout=args.timeout,
                      force=args.force, progress=args.progress)
    return simulate(opts)
