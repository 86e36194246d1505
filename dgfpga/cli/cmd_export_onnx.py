"""`dgfpga export-onnx`: a zoo model (from a checkpoint) to ONNX with logits and masks.

    dgfpga export-onnx --checkpoint ck.pth.tar -o model.onnx
    dgfpga export-onnx --arch resdg18 -o r18.onnx           # untrained weights (tooling)

The graph is the eval-mode masked execution (see `dgfpga.workflows.onnx_export`); after writing,
onnxruntime is checked against PyTorch on random inputs unless --no-verify.
"""
from __future__ import annotations

from dgfpga.cli import options

NAME = "export-onnx"
HELP = "export a DGNet (checkpoint) to ONNX with logits and every block's masks as outputs"

VERIFY_IMAGES = 4
MAX_LOGIT_DIFF = 1e-3


def add_arguments(parser) -> None:
    options.add_checkpoint(parser, required=False,
                           help="trained checkpoint (.pth.tar, official layout)")
    options.add_arch(parser, help="architecture (default: from the checkpoint); without "
                                  "--checkpoint the weights are untrained")
    options.add_out(parser, help="ONNX file to write")
    parser.add_argument("--dense", action="store_true",
                        help="export with every gate on (dense baseline; masks are all ones)")
    parser.add_argument("--opset", type=options.number(int, 7), default=17, help="ONNX opset (default 17)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime vs PyTorch check")


def run(args) -> int:
    import numpy as np

    from dgfpga.errors import DgfpgaError
    from dgfpga.workflows.onnx_export import export_onnx, verify_onnx
    from dgfpga_models import all_archs, build_model
    ARCHS = all_archs()
    from dgfpga_models.checkpoint import load_checkpoint
    from dgfpga.outdir import atomic_file, check_writable

    check_writable(args.out, "file")                                  # before any work
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, arch=args.arch)
    elif args.arch:
        if args.arch not in ARCHS:
            raise DgfpgaError(f"unknown architecture {args.arch!r}; known: {', '.join(ARCHS)}")
        model = build_model(args.arch)
        print(f"note: no --checkpoint: exporting {args.arch} with untrained weights")
    else:
        raise DgfpgaError("give --checkpoint (and optionally --arch), or --arch alone")
    model.dense = args.dense
    # exported and verified in a temporary sibling: -o appears only when it passed
    with atomic_file(args.out) as tmp:
        names = export_onnx(model, tmp, opset=args.opset)
        print(f"exported {model.arch}{' (dense)' if args.dense else ''}, input "
              f"[N,3,{model.in_h},{model.in_w}], {len(names)} outputs (logits + "
              f"{len(names) - 1} masks)")
        if not args.no_verify:
            images = np.random.default_rng(0).standard_normal(
                (VERIFY_IMAGES, 3, model.in_h, model.in_w)).astype(np.float32)
            report = verify_onnx(model, tmp, images)
            print(f"onnxruntime vs torch on {report.images} random inputs: max |logit diff| "
                  f"{report.max_logit_diff:.2e}, mask mismatches {report.mask_mismatches}/"
                  f"{report.mask_entries}")
            if not report.ok or report.max_logit_diff > MAX_LOGIT_DIFF:
                raise DgfpgaError(f"the export disagrees with PyTorch (see above): {args.out} "
                                  "not written")
    print(f"wrote {args.out}")
    return 0
