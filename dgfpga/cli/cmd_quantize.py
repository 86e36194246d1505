"""`dgfpga quantize`: checkpoint + calibration images -> quantized model (.qnpz)."""
from __future__ import annotations

NAME = "quantize"
HELP = "quantize a BasicBlock DGNet checkpoint to an int8 model file (.qnpz)"


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="float checkpoint (.pth.tar)")
    parser.add_argument("--arch", help="architecture (default: from the checkpoint file name)")
    parser.add_argument("--calib", default="embedded:256",
                        help="calibration images: embedded:N (embedded train split) or a .npy "
                             "of normalised float32 [N,3,H,W] (default embedded:256)")
    parser.add_argument("-o", "--output", required=True, help="output .qnpz")
    parser.add_argument("--statistic", choices=("percentile", "mse"), default="percentile",
                        help="range statistic for unsigned tensors (default percentile)")
    parser.add_argument("--percentile", type=float, default=99.99,
                        help="calibration percentile for unsigned tensors (100 = max)")
    parser.add_argument("--calib-mode", choices=("auto", "gated", "dense", "both"), default="auto",
                        help="forward passes the statistics come from: gated (the deployed "
                             "masked execution), dense (every gate on), both; auto (default) = "
                             "dense for checkpoints trained dense, else gated")
    parser.add_argument("--untied", action="store_true",
                        help="do not tie identity-block output scales to their input scales")


def run(args) -> int:
    from dgfpga.numerics.qmodel import save_qmodel
    from dgfpga.quant.quantize import (QuantConfig, load_calibration, load_float_model,
                                 quantize_model, trained_dense)

    model, meta = load_float_model(args.checkpoint, args.arch)
    images = load_calibration(args.calib)
    mode = args.calib_mode
    if mode == "auto":
        mode = "dense" if trained_dense(meta) else "gated"
    cfg = QuantConfig(percentile=args.percentile, statistic=args.statistic,
                      tied_residual_scales=not args.untied, calibration_mode=mode)
    qm = quantize_model(model, images, cfg,
                        meta={"checkpoint": str(args.checkpoint), "calibration": args.calib})
    path = save_qmodel(qm, args.output)
    n_conv = len(qm.convs())
    tied = sum(b.identity for b in qm.blocks)
    print(f"wrote {path}: {qm.arch}, {n_conv} convs + fc, {len(qm.blocks)} blocks "
          f"({tied} in-place identity blocks), calibrated {mode} on {images.shape[0]} images")
    return 0
