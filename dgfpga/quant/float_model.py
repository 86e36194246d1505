"""Float models for the quantizer: a checkpoint -> zoo model in eval mode (gated), the
input normalisation a network expects, and randomly initialised test models (torch).
"""
from __future__ import annotations

import numpy as np

from dgfpga.data.images import input_range, normalization_for
from dgfpga.data.photos import MEAN as IMAGENET_MEAN, STD as IMAGENET_STD
from dgfpga.quant import UnsupportedModelError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "default_normalization", "input_range",
           "check_supported", "load_float_model", "trained_dense", "make_test_model"]


def default_normalization(model) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the model's inputs are normalised with (`dgfpga.data.images.normalization_for`)."""
    return normalization_for(model.arch)


def block_kinds(model) -> set:
    """The kinds of `model`'s blocks ("basic", "bottleneck", "inverted_residual")."""
    blocks = model.blocks() if hasattr(model, "blocks") else []
    return {getattr(b, "kind", "?") for b in blocks}


def is_mobilenet(model) -> bool:
    """A DGNet MobileNetV2 (inverted residual blocks), whatever its arch name."""
    return block_kinds(model) == {"inverted_residual"}


def check_supported(model) -> None:
    """Raise UnsupportedModelError unless `model` is a DGNet ResNet of BasicBlocks or of
    Bottlenecks (every block gated) or a DGNet MobileNetV2 (inverted residuals)."""
    arch = getattr(model, "arch", type(model).__name__)
    blocks = model.blocks() if hasattr(model, "blocks") else []
    kinds = block_kinds(model)
    if is_mobilenet(model):                    # MobileNetV2: only residual blocks gated
        return
    if not blocks or kinds not in ({"basic"}, {"bottleneck"}) \
            or not all(getattr(b, "gated", False) for b in blocks):
        raise UnsupportedModelError(
            f"{arch}: only DGNet ResNets can be quantized (BasicBlock: resdg20/32/56/110_cifar10, "
            f"resdg18, resdg34; Bottleneck: resdg50) and mobilenet_v2_dg; this model has "
            f"{sorted(kinds) or 'no'} blocks.")


def load_float_model(checkpoint, arch: str | None = None):
    """Load a zoo model from a checkpoint: `(model, meta)`, model in eval mode, gated.

    `arch` defaults to the checkpoint's own (its `arch` entry or its keys). Raises
    CheckpointError (unreadable file, keys or shapes of another architecture) or
    UnsupportedModelError (not a DGNet ResNet or MobileNetV2).
    """
    from dgfpga_models import all_archs
    ARCHS = all_archs()
    from dgfpga_models.checkpoint import load_checkpoint

    if arch is not None and arch not in ARCHS:
        raise UnsupportedModelError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    model, meta = load_checkpoint(checkpoint, arch)
    check_supported(model)
    model.eval()
    model.dense = False
    return model, meta


def trained_dense(meta: dict) -> bool:
    """True for checkpoints trained with every gate on (`dgfpga train --dense` records
    `target_density: None`); their gates are untrained, so they are calibrated and
    evaluated dense. Official checkpoints (no such entry) count as gated."""
    return "target_density" in meta and meta["target_density"] is None


def make_test_model(arch: str = "resdg20_cifar10", images: np.ndarray | None = None,
                    seed: int = 0, on_fraction: float = 0.6, **build_kwargs):
    """A randomly initialised zoo model made realistic enough to exercise quantization
    (for tests and demos while no trained checkpoint is at hand): BN running statistics
    measured on `images` (dense, cumulative), BN affine parameters jittered, and every gate
    bias set so that about `on_fraction` of its decisions on `images` are on (some on,
    some off). `build_kwargs` go to `build_model` (e.g. input_size, num_classes).
    Returned in eval mode, gated."""
    import torch
    from dgfpga_models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, dense=True, **build_kwargs)
    if images is None:
        rng = np.random.default_rng(seed)
        images = rng.normal(0, 1, size=(64, 3, model.in_h, model.in_w)).astype(np.float32)
    x = torch.from_numpy(np.asarray(images, np.float32))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.momentum = None
            bn.reset_running_stats()
        model.train()
        model.forward_gated(x)
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
        model.eval()
        model.dense = False
        q = 100.0 * (1.0 - on_fraction)
        for b in model.blocks():
            if not getattr(b, "gated", True):    # MobileNetV2's blocks without residual
                continue
            # Inputs to this block under the gates already set upstream.
            inp = {}
            hook = b.register_forward_pre_hook(lambda m, i: inp.setdefault("x", i[0]))
            model.forward_gated(x)
            hook.remove()
            xin = inp["x"]
            b.mask_s.atten_s.bias.zero_()
            gate1 = b.mask_c if hasattr(b, "mask_c") else b.mask_c1
            _set_on_fraction(gate1, xin, q)
            ls = b.mask_s.logits(xin).flatten()
            b.mask_s.atten_s.bias.fill_(-float(np.percentile(ls.numpy(), q)))
            if hasattr(b, "mask_c2"):     # Bottleneck: its input is conv1's masked output
                inp2 = {}
                hook = b.mask_c2.register_forward_pre_hook(lambda m, i: inp2.setdefault("x", i[0]))
                model.forward_gated(x)
                hook.remove()
                _set_on_fraction(b.mask_c2, inp2["x"], q)
    return model


def _set_on_fraction(gate, xin, q: float) -> None:
    """Set a channel gate's output bias so that (100 - q)% of its decisions on `xin` are on."""
    import torch
    gate.atten_c[3].bias.zero_()
    lc = gate.logits(xin)[:, :, 0, 0].numpy()
    gate.atten_c[3].bias.copy_(torch.from_numpy(-np.percentile(lc, q, axis=0)).float())
