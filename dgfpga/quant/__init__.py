"""Post-training quantization of DGNet BasicBlock ResNets (needs torch, except this file and
gatequant).

One job per module (docs/quantization.md):

    float_model  checkpoint -> float model in eval mode; input normalisation; test models
    stats        activation capture and calibration statistics (tensor ranges)
    fold         BatchNorm folding, int8 weight quantization, integer multipliers and shifts
    quantizer    `quantize_model`: scales, residual-scale tying, layer assembly, gate extraction
    gatequant    float gate parameters -> integer gates (numpy only)
    evaluate     `evaluate_quantized`: float model vs integer golden model; `gate_arithmetic_flips`
    fakequant    fake-quantized forward pass (quantization-aware checks)

The exceptions live here so every module raises the same ones.
"""
from dgfpga.errors import DgfpgaError


class QuantizationError(DgfpgaError):
    """The model cannot be quantized as asked."""


class CalibrationError(QuantizationError):
    """The calibration set is empty, wrongly shaped or outside the normalised range."""


class UnsupportedModelError(QuantizationError):
    """The architecture is outside the quantizer's scope (Bottleneck, MobileNetV2, ...)."""


__all__ = ["QuantizationError", "CalibrationError", "UnsupportedModelError"]
