"""`dgfpga qreport`: float checkpoint vs quantized model (accuracy, gates, density, MACs)."""
from __future__ import annotations

from dgfpga.cli import options

NAME = "qreport"
HELP = ("compare a float checkpoint with its quantized model: top-1, gate agreement (integer "
        "gates vs float), density")

# Targets of issue 4 (docs/quantization.md).
MAX_TOP1_DROP = 0.5          # points
MIN_GATE_AGREEMENT = 0.98
MAX_DENSITY_GAP = 0.02


def add_arguments(parser) -> None:
    options.add_checkpoint(parser, help="float checkpoint (.pth.tar)")
    parser.add_argument("--qmodel", required=True, help="quantized model (.qnpz)")
    options.add_arch(parser)
    options.add_images(parser, default="embedded:test", labelled=True, help="labelled images")
    parser.add_argument("--mode", choices=("auto", "gated", "dense"), default="auto",
                        help="gated (masked execution) or dense (every gate on) for both "
                             "models; auto (default) = dense for checkpoints trained dense")
    options.add_out(parser, required=False, help="also write the figures to this JSON file")


def run(args) -> int:
    import json

    from dgfpga.data.images import load_images
    from dgfpga.numerics.qmodel import load_qmodel
    from dgfpga.quant.evaluate import evaluate_quantized, gate_arithmetic_flips
    from dgfpga.quant.float_model import load_float_model, trained_dense
    from dgfpga.outdir import atomic_write_text, check_writable

    if args.out:
        check_writable(args.out, "file")                           # before any work
    qm = load_qmodel(args.qmodel)
    model, meta = load_float_model(args.checkpoint, args.arch or qm.arch)
    data = load_images(args.images, qm.input_shape, qm.mean, qm.std, purpose="eval",
                       labels_required=True)
    mode = args.mode
    if mode == "auto":
        mode = "dense" if trained_dense(meta) else "gated"
    r = evaluate_quantized(model, qm, data.images, data.labels, dense=mode == "dense")
    r["mode"] = mode
    if mode == "gated":
        r["gate_arithmetic"] = gate_arithmetic_flips(model, qm, data.images)
    print(f"{r['arch']} on {data.source}, {mode}")
    print(f"{'':24s}{'float':>10s}{'int8':>10s}")
    print(f"{'top-1 (%)':24s}{r['top1_float']:10.2f}{r['top1_int8']:10.2f}")
    print(f"{'density':24s}{r['density_float']:10.4f}{r['density_int8']:10.4f}")
    print(f"{'MACs / image (M)':24s}{r['macs_float'] / 1e6:10.3f}{r['macs_int8'] / 1e6:10.3f}"
          f"   (dense {r['dense_macs'] / 1e6:.3f} M)")
    print(f"gate agreement: spatial {r['spatial_agreement']:.4f}, channel "
          f"{r['channel_agreement']:.4f}; predictions identical {r['prediction_agreement']:.4f}")
    if "gate_arithmetic" in r:
        a = r["gate_arithmetic"]
        print(f"integer gate arithmetic alone (same int8 inputs, float gates vs integer gates): "
              f"{a['spatial_flips']} of {a['spatial_total']} spatial and {a['channel_flips']} of "
              f"{a['channel_total']} channel decisions differ")
    print(f"overflow proof: worst-case |acc| < 2^{r['max_acc_bound_log2']:.1f} (limit 2^31), "
          f"|z| < 2^{r['max_z_bound_log2']:.1f} (limit 2^62)")
    print(f"{'block':16s}{'agree_s':>9s}{'agree_c':>9s}{'dens_f':>9s}{'dens_q':>9s}")
    for b in r["blocks"]:
        agree = "".join(f"{b[k]:9.4f}" if k in b else f"{'-':>9s}"   # ungated: no gates
                        for k in ("spatial_agreement", "channel_agreement"))
        print(f"{b['name']:16s}{agree}{b['density_float']:9.4f}{b['density_int8']:9.4f}")
    checks = {
        "top-1 within 0.5 pt": r["top1_float"] - r["top1_int8"] <= MAX_TOP1_DROP,
        "gate agreement >= 98%": min(r["spatial_agreement"], r["channel_agreement"]) >= MIN_GATE_AGREEMENT,
        "density within 2 pts": abs(r["density_float"] - r["density_int8"]) <= MAX_DENSITY_GAP,
    }
    print("targets: " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in checks.items()))
    if args.out:
        r["targets"] = checks
        atomic_write_text(args.out, json.dumps(r, indent=1))
    return 0
