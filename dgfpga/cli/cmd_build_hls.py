"""`dgfpga build-hls`: checkpoint + calibration images -> Vitis HLS project, Vivado block
design scripts for Ultra96-V2, and the board bundle."""
from __future__ import annotations

NAME = "build-hls"
HELP = ("quantize a checkpoint and write a complete HLS project + Ultra96 Vivado scripts + "
        "board bundle")

BOARDS = {"ultra96": "ultra96"}   # board -> default engine configuration


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, help="DGNet checkpoint (.pth.tar, official layout)")
    p.add_argument("--arch", help="architecture (default: from the checkpoint)")
    p.add_argument("--calib", default="embedded:256",
                   help="calibration images: embedded:N or a .npy of normalised [N,3,H,W]")
    p.add_argument("--board", default="ultra96", choices=sorted(BOARDS), help="target board")
    p.add_argument("--config", help="engine configuration name or .toml (default: the board's)")
    p.add_argument("--selfcheck", default="embedded:20",
                   help="self-check images for the bundle: embedded:N (test split) or a .npy")
    p.add_argument("-o", "--out", required=True, help="output folder")


def _selfcheck(spec: str):
    import numpy as np
    from dgfpga.errors import DgfpgaError
    if spec.startswith("embedded:"):
        from dgfpga.data.embedded import load_split
        s = load_split("test", int(spec.split(":", 1)[1]))
        return s.images, s.labels
    try:
        return np.load(spec, allow_pickle=False), None
    except (OSError, ValueError) as exc:
        raise DgfpgaError(f"--selfcheck {spec!r}: not embedded:N or a readable .npy ({exc})") from None


def run(args) -> int:
    import time
    from dgfpga.workflows.build import build_hls
    from dgfpga.contract.engine_config import load_config
    from dgfpga.quant.quantize import load_calibration, load_float_model, quantize_model
    t0 = time.perf_counter()
    cfg = load_config(args.config or BOARDS[args.board])
    model, meta = load_float_model(args.checkpoint, args.arch)
    print(f"[1/4] loaded {model.arch} from {args.checkpoint}", flush=True)
    calib = load_calibration(args.calib)
    qm = quantize_model(model, calib)
    print(f"[2/4] quantized with {len(calib)} calibration images", flush=True)
    images, labels = _selfcheck(args.selfcheck)
    print(f"[3/4] golden self-check on {len(images)} images; writing project ...", flush=True)
    r = build_hls(qm, cfg, args.out, images, labels,
                  extra={"checkpoint": str(args.checkpoint), "calibration": args.calib})
    print(f"[4/4] wrote {len(r.project_files)} project files and the bundle to {r.out_dir} "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"\nengine '{cfg.name}' on {cfg.part} @ {cfg.clock_hz / 1e6:.0f} MHz, "
          f"{cfg.tm}x{cfg.tn} MACs. Resource estimate (not synthesis):")
    print(r.resources.table())
    print(f"\nnext: cd {r.out_dir} && make all   (needs Vitis HLS + Vivado; see README.md there)")
    print(f"      then copy {r.out_dir}/overlay and {r.bundle_dir} to the board (docs/board.md)")
    return 0
