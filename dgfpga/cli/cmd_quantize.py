"""`dgfpga quantize`: checkpoint + calibration images -> quantized model (.qnpz)."""
from __future__ import annotations

from dgfpga.cli import options

NAME = "quantize"
HELP = "quantize a DGNet checkpoint (BasicBlock or Bottleneck ResNet, MobileNetV2) to an int8 model file (.qnpz)"


def add_arguments(parser) -> None:
    options.add_checkpoint(parser)
    options.add_arch(parser)
    options.add_images(parser, flag="--calib", help="calibration images")
    options.add_out(parser, help="quantized model to write (.qnpz)")
    parser.add_argument("--statistic", choices=("percentile", "mse"), default="percentile",
                        help="range statistic for unsigned tensors (default percentile)")
    parser.add_argument("--percentile", type=options.number(float, 0, 100, lo_open=True), default=99.99,
                        help="calibration percentile for unsigned tensors (100 = max)")
    parser.add_argument("--calib-mode", choices=("auto", "gated", "dense", "both"), default="auto",
                        help="forward passes the statistics come from: gated (the deployed "
                             "masked execution), dense (every gate on), both; auto (default) = "
                             "dense for checkpoints trained dense, else gated")
    parser.add_argument("--untied", action="store_true",
                        help="do not tie identity-block output scales to their input scales")


def run(args) -> int:
    from dgfpga.data.images import load_images
    from dgfpga.numerics.qmodel import save_qmodel
    from dgfpga.quant.float_model import default_normalization, load_float_model, trained_dense
    from dgfpga.quant.quantizer import QuantConfig, quantize_model
    from dgfpga.outdir import atomic_file, check_writable

    check_writable(args.out, "file")                                  # before any work
    model, meta = load_float_model(args.checkpoint, args.arch)
    mean, std = default_normalization(model)
    calib = load_images(args.calib, (3, model.in_h, model.in_w), mean, std, purpose="calib",
                        what="--calib")
    mode = args.calib_mode
    if mode == "auto":
        mode = "dense" if trained_dense(meta) else "gated"
    cfg = QuantConfig(percentile=args.percentile, statistic=args.statistic,
                      tied_residual_scales=not args.untied, calibration_mode=mode)
    qm = quantize_model(model, calib.images, cfg, mean, std,
                        meta={"checkpoint": str(args.checkpoint), "calibration": calib.source})
    with atomic_file(args.out) as tmp:                                # complete or absent
        save_qmodel(qm, tmp)
    path = args.out
    n_conv = len(qm.convs())
    tied = sum(b.identity for b in qm.blocks)
    print(f"wrote {path}: {qm.arch}, {n_conv} convs + fc, {len(qm.blocks)} blocks "
          f"({tied} in-place identity blocks), calibrated {mode} on {calib.source}")
    return 0
