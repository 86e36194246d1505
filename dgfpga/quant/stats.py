"""Calibration statistics: check the calibration images, run the float model and record
every activation tensor that gets a scale, and reduce each to the range its scale covers
(percentile or MSE-optimal clipping for unsigned tensors, max-abs for signed ones); the
channel gates' hidden maxima (the range of their integer hidden layer).
"""
from __future__ import annotations

import numpy as np

from dgfpga.data.images import RANGE_TOLERANCE, check_normalised
from dgfpga.quant import CalibrationError

__all__ = ["check_calibration_images", "capture_activations", "tensor_range", "named_blocks",
           "gate_hidden_max"]


def check_calibration_images(images, input_shape, mean, std,
                             tolerance: float = RANGE_TOLERANCE) -> np.ndarray:
    """Return the calibration images as float32 [N, C, H, W] or raise CalibrationError."""
    x = np.asarray(images)
    if x.size == 0 or x.ndim == 0 or x.shape[0] == 0:
        raise CalibrationError("the calibration set is empty: give at least one image "
                               "(e.g. --calib embedded:256)")
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise CalibrationError(f"calibration images must be [N, {', '.join(map(str, input_shape))}] "
                               f"(normalised NCHW), got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise CalibrationError(f"calibration images must be normalised floats, got {x.dtype} "
                               f"(raw pixels? normalise with (x/255 - mean)/std)")
    why = check_normalised(x, mean, std, tolerance)
    if why:
        raise CalibrationError(f"calibration images: {why}")
    return x.astype(np.float32)


def capture_activations(model, images: np.ndarray, batch: int = 64) -> dict[str, list]:
    """Run the float model (eval, gated) and collect the tensors that get a scale.

    Keys: "stem" (ReLU(BN(conv)), before any max-pool), "<block>.out1" (conv1 output after
    ReLU and masks: conv2's input), "<block>.short" (downsample output), "<block>.out"
    (block output), "<block>.pooled" (the block input's channel means [N, C], float64:
    what the channel gate reads, for its hidden range). Bottleneck blocks also:
    "<block>.out2" (conv2 output after ReLU and masks: conv3's input) and "<block>.pooled2"
    (the channel means of conv1's masked output: what mask_c2 reads). MobileNetV2: the keys
    of `_mobilenet_hooks`. Values: lists of numpy batches.
    """
    import torch

    acts: dict[str, list] = {}
    hooks = []

    def keep(name):
        def fn(t):
            acts.setdefault(name, []).append(t.detach().float().cpu().numpy())
        return fn

    def pooled_keep(name):
        def fn(t):
            acts.setdefault(name, []).append(t.detach().double().mean(dim=(2, 3)).cpu().numpy())
        return fn

    from dgfpga.quant.float_model import is_mobilenet
    mobilenet = is_mobilenet(model)
    if mobilenet:
        hooks += _mobilenet_hooks(model, keep, pooled_keep)
    else:
        stem_keep = keep("stem")
        hooks.append(model.bn1.register_forward_hook(lambda m, i, o: stem_keep(torch.relu(o))))
    for name, b in ([] if mobilenet else named_blocks(model)):
        k1, ks, ko = keep(f"{name}.out1"), keep(f"{name}.short"), keep(f"{name}.out")
        kp = pooled_keep(f"{name}.pooled")
        hooks.append(b.register_forward_pre_hook(lambda m, i, k=kp: k(i[0])))
        hooks.append(b.conv2.register_forward_pre_hook(lambda m, i, k=k1: k(i[0])))
        if b.downsample is not None:
            hooks.append(b.downsample.register_forward_hook(lambda m, i, o, k=ks: k(o)))
        if getattr(b, "kind", "basic") == "bottleneck":
            k2, kp2 = keep(f"{name}.out2"), pooled_keep(f"{name}.pooled2")
            hooks.append(b.conv3.register_forward_pre_hook(lambda m, i, k=k2: k(i[0])))
            hooks.append(b.mask_c2.register_forward_pre_hook(lambda m, i, k=kp2: k(i[0])))
        hooks.append(b.register_forward_hook(lambda m, i, o, k=ko: k(o[0])))
    try:
        with torch.no_grad():
            for s in range(0, images.shape[0], batch):
                model.forward_gated(torch.from_numpy(images[s:s + batch]))
    finally:
        for h in hooks:
            h.remove()
    return acts


def _mobilenet_hooks(model, keep, pooled_keep) -> list:
    """MobileNetV2's capture hooks: "stem" (features.0 output, after ReLU6), per block
    "<block>.out1" (the expansion's output under the spatial mask: the depthwise conv's
    input; blocks with an expansion), "<block>.out2" (the depthwise output after ReLU6 and
    the masks: the projection's input), "<block>.out" (block output, signed),
    "<block>.pooled" (gated blocks: the input's channel means), "tail" (the final 1x1
    ConvBNReLU6's output)."""
    feats = model.features
    hooks = [feats[0].register_forward_hook(lambda m, i, o, k=keep("stem"): k(o)),
             feats[-1].register_forward_hook(lambda m, i, o, k=keep("tail"): k(o))]
    for name, b in named_blocks(model):
        dw, pw = b.conv[-3], b.conv[-2]
        if b.expand_ratio != 1:
            hooks.append(dw.register_forward_pre_hook(lambda m, i, k=keep(f"{name}.out1"): k(i[0])))
        hooks.append(pw.register_forward_pre_hook(lambda m, i, k=keep(f"{name}.out2"): k(i[0])))
        hooks.append(b.register_forward_hook(lambda m, i, o, k=keep(f"{name}.out"): k(o[0])))
        if b.gated:
            kp = pooled_keep(f"{name}.pooled")
            hooks.append(b.register_forward_pre_hook(lambda m, i, k=kp: k(i[0])))
    return hooks


def tensor_range(batches: list, signed: bool, percentile: float, statistic: str = "percentile") -> float:
    """The range a tensor's scale must cover (real value mapped to 255 / 127)."""
    v = np.concatenate([b.ravel() for b in batches])
    if signed:
        return float(np.abs(v).max(initial=0.0))
    if statistic == "mse":
        return _mse_clip(v)
    return float(np.percentile(v, percentile)) if percentile < 100 else float(v.max(initial=0.0))


def _mse_clip(v: np.ndarray, candidates: int = 64, sample: int = 1 << 20) -> float:
    """The u8 clipping value (between the 99th percentile and the max) that minimises the
    mean squared quantization error of the calibration values."""
    v = v.astype(np.float64)
    if v.size > sample:
        v = np.random.default_rng(0).choice(v, sample, replace=False)
    top = float(v.max(initial=0.0))
    if top <= 0:
        return 0.0
    best, best_err = top, np.inf
    for c in np.linspace(float(np.percentile(v, 99.0)), top, candidates):
        if c <= 0:
            continue
        s = c / 255.0
        err = float(np.mean((np.clip(np.round(v / s), 0, 255) * s - v) ** 2))
        if err < best_err:
            best, best_err = float(c), err
    return best


def gate_hidden_max(pooled_batches: list, fg) -> float:
    """The largest hidden unit relu(bn(fc1 . p)) of a channel gate (`FloatGates` fg) over the
    calibration images (pooled block inputs p, "<block>.pooled" batches); 0.0 if none."""
    from dgfpga.quant.gatequant import hidden_values
    if not pooled_batches:
        return 0.0
    return float(hidden_values(np.concatenate(pooled_batches), fg).max(initial=0.0))


def named_blocks(model) -> list[tuple[str, object]]:
    """(qualified module name, block) for every residual block, in order."""
    names = {id(m): n for n, m in model.named_modules()}
    return [(names[id(b)], b) for b in model.blocks()]
