"""`dgfpga build-hls`: checkpoint + calibration images -> Vitis HLS project, Vivado block
design scripts for Ultra96-V2, and the board bundle.

Every input (checkpoint, configuration, both image sets) is checked before anything is
quantized or written."""
from __future__ import annotations

from dgfpga.cli import options

NAME = "build-hls"
HELP = ("quantize a checkpoint and write a complete HLS project + Ultra96 Vivado scripts + "
        "board bundle")

BOARDS = {"ultra96": "ultra96"}   # board -> default engine configuration


def add_arguments(p):
    options.add_checkpoint(p)
    options.add_arch(p)
    options.add_images(p, flag="--calib", help="calibration images")
    p.add_argument("--board", default="ultra96", choices=sorted(BOARDS),
                   help="target board (default ultra96)")
    options.add_config(p, default=None, help="engine configuration: a shipped name (ultra96, "
                                             "small) or a .toml path (default: the board's)")
    options.add_images(p, help="self-check images recorded (with their golden outputs) in "
                               "the bundle")
    options.add_out(p, help="output folder (HLS project, Vivado scripts, bundle/)")
    options.add_force(p)


def run(args) -> int:
    import time
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data.images import load_images
    from dgfpga.perf.resources import check_fits
    from dgfpga.quant.float_model import default_normalization, load_float_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.workflows.build import build_hls
    t0 = time.perf_counter()
    # ---- every input first: nothing is quantized or written before these pass
    cfg = load_config(args.config or BOARDS[args.board])
    check_fits(cfg)
    from dgfpga.outdir import preflight
    preflight(args.out, args.force)        # writable, and dgfpga's to replace
    model, meta = load_float_model(args.checkpoint, args.arch)
    mean, std = default_normalization(model)
    shape = (3, model.in_h, model.in_w)
    calib = load_images(args.calib, shape, mean, std, purpose="calib", what="--calib")
    check = load_images(args.images, shape, mean, std, purpose="check", what="--images")
    print(f"[1/4] loaded {model.arch} from {args.checkpoint}; calibration {calib.source}, "
          f"self-check {check.source}", flush=True)
    qm = quantize_model(model, calib.images, mean=mean, std=std)
    print(f"[2/4] quantized with {len(calib)} calibration images", flush=True)
    print(f"[3/4] golden self-check on {len(check)} images; writing project ...", flush=True)
    r = build_hls(qm, cfg, args.out, check.images, check.labels, force=args.force,
                  extra={"checkpoint": str(args.checkpoint), "calibration": calib.source})
    print(f"[4/4] wrote {len(r.project_files)} project files and the bundle to {r.out_dir} "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"\nengine '{cfg.name}' on {cfg.part} @ {cfg.clock_hz / 1e6:.0f} MHz, "
          f"{cfg.tm}x{cfg.tn} MACs. Resource estimate (not synthesis):")
    print(r.resources.table())
    print(f"\nnext: cd {r.out_dir} && make all   (needs Vitis HLS + Vivado; see README.md there)")
    print(f"      then copy {r.out_dir}/overlay and {r.bundle_dir} to the board (docs/board.md)")
    return 0
