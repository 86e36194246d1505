"""`dgfpga demo`: the whole flow on the shipped DGNet and embedded data, with a report."""
from __future__ import annotations

from dgfpga.cli import options

NAME = "demo"
DEFAULT_OUT = "out/demo"
HELP = ("quantize -> schedule -> HLS C-sim (and RTL with --rtl) -> bit-exact check -> "
        "cycles -> Ultra96 prediction -> build-hls -> HTML report, on the shipped model")


def add_arguments(p):
    from dgfpga.workflows.demo import DEFAULT_CHECKPOINT
    options.add_out(p, default=DEFAULT_OUT, help="output folder: project_<config>/ for each "
                    "engine and report/ (each complete or left as it was, docs/outputs.md)")
    options.add_checkpoint(p, required=False, default=str(DEFAULT_CHECKPOINT),
                           help="DGNet checkpoint (default: the shipped resdg20_cifar10 at "
                                "density 0.5)")
    options.add_arch(p)
    options.add_images(p, help="images evaluated (float vs int8 accuracy when labelled) and "
                               "simulated (the first --n-sim); for 32x32 networks the default "
                               "is the whole embedded test split")
    options.add_images(p, flag="--calib", help="calibration images")
    p.add_argument("--n-sim", type=options.number(int, 1), default=20,
                   help="how many of the images go through the C-sim (default 20)")
    p.add_argument("--rtl", type=options.number(int, 0), default=0, metavar="N",
                   help="also run N images through the RTL (Verilator)")
    options.add_config(p, default="small", help="engine configuration simulated (default "
                                                "small); the board's is ultra96")
    options.add_force(p)


def run(args) -> int:
    from pathlib import Path
    from dgfpga.workflows.demo import DemoOptions, run_demo
    options.create_default_parent(args.out, DEFAULT_OUT)
    s = run_demo(DemoOptions(out=Path(args.out), checkpoint=Path(args.checkpoint),
                             arch=args.arch, images=args.images, calib=args.calib,
                             n_sim=args.n_sim, rtl=args.rtl, config=args.config,
                             force=args.force))
    print("\n=== dgfpga demo summary ===")
    if "accuracy" in s:
        a = s["accuracy"]
        print(f"accuracy ({a['n']} test images): float {a['top1_float']:.2f}%  int8 "
              f"{a['top1_int8']:.2f}%  gate agreement {100 * a['gate_agreement']:.2f}%  "
              f"density float {a['density_float']:.3f} / int8 {a['density_int8']:.3f}")
    for lvl in ("csim", "rtl"):
        if lvl in s:
            c = s[lvl]
            print(f"{lvl:5s}: {c['images']} images, bit-exact {'PASS' if c['bit_exact'] else 'FAIL'}; "
                  f"cycles dense {c['dense_cycles']:,.0f} -> gated {c['gated_cycles']:,.0f} "
                  f"= {c['speedup']:.2f}x for {c['mac_reduction']:.2f}x fewer MACs "
                  f"(efficiency {c['efficiency']:.2f})")
    u = s["ultra96"]["shipped_model"]
    print(f"Ultra96 ({s['board_config']}, {s['cycle_params']}): {s['arch']} "
          f"{u['gated_ms']:.3f} ms gated vs {u['dense_ms']:.3f} ms dense ({u['speedup']:.2f}x)")
    for p in s["ultra96"]["paper"]:
        print(f"  {p['network']} at {p['mac_reduction']:.2f}x fewer MACs: predicted "
              f"{p['speedup']:.2f}x ({p['gated_ms']:.1f} ms, {p['gated_images_per_s']:.0f} img/s); "
              f"paper {p['paper_speedup']:.2f}x")
    print(f"projects: {args.out}/project_*  report: {args.out}/report/index.html")
    return 0 if s["bit_exact"] else 1
