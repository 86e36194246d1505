"""`dgfpga calibrate`: fit the analytical cycle model to per-layer RTL cycle counts
(the scheduler's own layers, dgfpga.perf.calibration); outputs to -o/--out, never into
the checkout by default."""
from __future__ import annotations

from dgfpga.cli import options

import json
import time
from pathlib import Path

from dgfpga.cli.options import add_arch, add_config, add_out
from dgfpga.errors import DgfpgaError

NAME = "calibrate"
HELP = ("measure per-layer cycles on the RTL (Verilator) and fit the cycle model's overheads "
        "(or --from saved measurements); writes to -o/--out (default out/calibrate)")


def add_arguments(ap) -> None:
    from dgfpga.perf.calibration import DEFAULT_OUT
    add_config(ap, default="small", help="engine configuration whose RTL is measured: a "
               "shipped name or a .toml path (default small)")
    add_arch(ap, default="resdg20_cifar10", help="network whose scheduled layers are "
             "measured (default resdg20_cifar10; must fit the engine)")
    add_out(ap, default=str(DEFAULT_OUT), help="folder for the measurements (cycles_*.json/"
            ".csv), the fit report (calibration_*.json) and cycle_params_<config>.json "
            f"(default {DEFAULT_OUT} under the current directory; the shipped calibration "
            "the demo and predict read is sim/results/cycle_params_small.json)")
    ap.add_argument("--latency", type=options.number(int, 0), default=0, help="RTL memory read latency, cycles")
    ap.add_argument("--stall", type=options.number(int, 0, 100), default=0, help="RTL memory stall percentage")
    ap.add_argument("--densities", type=densities, default=None, metavar="LIST",
                    help="block densities of the measured layers, comma-separated: 'dense' "
                    "(the scheduler's dense run) and numbers in (0, 1] (random masks of "
                    "that density); default dense,1.0,0.7,0.5,0.3 (the shipped ultra96 "
                    "resdg18 measurements: dense,0.5)")
    ap.add_argument("--from", dest="from_json", nargs="+", metavar="JSON",
                    help="fit measurements saved earlier (cycles_*.json, one or more: e.g. "
                    "ideal memory and --latency/--stall runs, fitted together) instead of "
                    "running the RTL")
    ap.add_argument("--with", dest="with_json", nargs="+", metavar="JSON", default=[],
                    help="also fit these earlier measurements together with this run's "
                    "(e.g. the ideal-memory cycles_*.json with a --latency/--stall run): one "
                    "engine, several memories")


def densities(text: str) -> tuple:
    """--densities: 'dense' -> None (the dense baseline), else a block density in (0, 1]."""
    import argparse
    import math
    out = []
    for item in text.split(","):
        item = item.strip()
        if item == "dense":
            out.append(None)
            continue
        try:
            v = float(item)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and 0 < v <= 1):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not 'dense' or a block density in (0, 1] (e.g. dense,0.5)")
        out.append(v)
    if not out or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"{text!r}: give each density once (e.g. dense,0.5)")
    return tuple(out)


def run(args) -> int:
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.calibration import (calibrate, calibration_layers, load_measurements,
                                         measure, params_path, save_measurements)
    from dgfpga.perf.netshapes import net_shape
    cfg = load_config(args.config)
    net_shape(args.arch)                                  # unknown names fail before work
    from dgfpga.cli.options import create_default_parent
    from dgfpga.perf.calibration import DEFAULT_OUT
    from dgfpga.outdir import check_writable
    create_default_parent(args.out, DEFAULT_OUT)
    out = check_writable(args.out)                       # before any work
    t0 = time.perf_counter()
    stem = f"cycles_{cfg.name}_{args.arch}" + (f"_lat{args.latency}_st{args.stall}"
                                               if args.latency or args.stall else "")

    def read(paths, flag):
        got = []
        for f in paths:
            try:
                got += load_measurements(f)
            except (OSError, ValueError) as exc:
                raise DgfpgaError(f"{flag} {f}: cannot read measurements: {exc}") from None
        return got
    earlier = read(args.with_json, "--with")                # read before the RTL runs
    if args.from_json:
        recs = read(args.from_json, "--from")
    else:
        layers = (calibration_layers(cfg, args.arch, densities=args.densities)
                  if args.densities else calibration_layers(cfg, args.arch))
        recs = measure(cfg, layers, latency=args.latency, stall_pct=args.stall)
    new = recs
    params, result = calibrate(recs + earlier, cfg, args.arch)
    result["wall_s"] = time.perf_counter() - t0
    # The folder collects the runs of several configs and latencies, so it is not replaced
    # as a whole: this run's files are written into a temporary folder inside it, then
    # each is renamed into place (atomic), with Ctrl-C deferred until all are moved.
    import os
    import shutil
    import tempfile
    from dgfpga.outdir import signals_deferred
    out.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".calibrate.tmp-", dir=out))
    try:
        if not args.from_json:
            save_measurements(new, tmp, stem)
        (tmp / f"calibration_{stem[7:]}.json").write_text(json.dumps(result, indent=1) + "\n")
        params.save(params_path(cfg, tmp))
        with signals_deferred():
            for f in sorted(tmp.iterdir()):
                os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items()
                      if k not in ("errors", "summary", "memories")}, indent=1))
    _print_errors(result)
    for tag, m in result["memories"].items():
        print(f"{tag:>12s}: worst layer error {100 * m['worst_error']:+.2f}% "
              f"({m['worst_layer']}), mean |error| {100 * m['mean_abs_error']:.2f}%, "
              f"{m['within_5pct']}/{m['layers']} layers within 5%")
    print(f"written to {out}/ (the shipped calibration, {params_path(cfg)}, is unchanged)")
    return 0


def _print_errors(result: dict) -> None:
    """The per-layer errors, one line per layer, one column per memory."""
    tags = list(result["memories"])
    by = {}
    for key, e in result["errors"].items():
        name, _, tag = key.rpartition("@")
        by.setdefault(name, {})[tag] = e
    print(f"{'layer':34s} " + " ".join(f"{t:>12s}" for t in tags) + "   (model - RTL) / RTL")
    for name, es in by.items():
        print(f"{name:34s} " + " ".join(f"{100 * es[t]:+11.2f}%" if t in es else f"{'-':>12s}"
                                         for t in tags))
