"""Post-training quantization of a DGNet BasicBlock ResNet to a `QModel` (needs torch).

Steps (docs/quantization.md has the reasoning and the figures):

1. check the model (BasicBlock ResNets only: CIFAR resdg20/32/56/110, ImageNet
   resdg18/34) and the calibration images (shape, normalised range);
2. calibrate: run the float model in eval mode (gated, masked execution) and record
   every activation tensor; pick each tensor's scale (`calibrate_scales`);
3. tie residual scales (default): inside a stage every identity-shortcut block gets
   output scale = input scale, so one scale covers the whole residual stream of a stage;
4. fold each BatchNorm into its conv, quantize weights int8 per output channel
   (symmetric, max-abs), biases int32 in the accumulator scale, and derive the integer
   multipliers and the layer shift; `dgfpga.numerics.qmodel.validate` proves `|z| < 2^62`;
5. extract the gate parameters as float32 (channel gate BN folded into scale/shift).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dgfpga.errors import DgfpgaError
from dgfpga.numerics.gates import ChannelGateParams, SpatialGateParams
from dgfpga.numerics.qmodel import (INPUT_TENSOR, MAX_SHIFT, MULT_LIMIT, QBlock, QConv, QHead,
                           QModel, QStem, TensorInfo, conv_bounds, round_half_away, validate)

__all__ = ["QuantizationError", "CalibrationError", "UnsupportedModelError", "QuantConfig",
           "quantize_model", "fold_bn", "quantize_weights", "choose_shift",
           "input_range", "check_calibration_images", "capture_activations"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class QuantizationError(DgfpgaError):
    """The model cannot be quantized as asked."""


class CalibrationError(QuantizationError):
    """The calibration set is empty, wrongly shaped or outside the normalised range."""


class UnsupportedModelError(QuantizationError):
    """The architecture is outside the quantizer's scope (Bottleneck, MobileNetV2, ...)."""


@dataclass
class QuantConfig:
    """Quantizer options.

    percentile: statistic for unsigned (post-ReLU) tensors: this percentile of all
      calibration values (zeros included); 100 means the max.
    statistic: "percentile" (above) or "mse" (the clipping value minimising the mean
      squared quantization error of the calibration values); signed tensors use the max.
    tied_residual_scales: identity blocks keep their input scale (in-place engine writes).
    calibration_mode: "gated" (the deployed masked execution: default), "dense" (every gate
      on: for checkpoints trained dense) or "both" (statistics over both passes).
    range_tolerance: how far (in normalised units) calibration images may exceed the
      range that [0, 1] pixels map to before they are rejected.
    """
    percentile: float = 99.99
    statistic: str = "percentile"
    tied_residual_scales: bool = True
    range_tolerance: float = 0.05
    calibration_mode: str = "gated"


# ----------------------------------------------------------------------------- checks

def _default_normalization(model) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if model.arch.endswith("_cifar10"):
        from dgfpga.data.embedded import MEAN, STD
        return tuple(MEAN), tuple(STD)
    return IMAGENET_MEAN, IMAGENET_STD


def check_supported(model) -> None:
    """Raise UnsupportedModelError unless `model` is a BasicBlock DGNet ResNet."""
    arch = getattr(model, "arch", type(model).__name__)
    blocks = model.blocks() if hasattr(model, "blocks") else []
    kinds = {getattr(b, "kind", "?") for b in blocks}
    if not blocks or kinds != {"basic"} or not all(getattr(b, "gated", False) for b in blocks):
        raise UnsupportedModelError(
            f"{arch}: only BasicBlock DGNet ResNets can be quantized (resdg20/32/56/110_cifar10, "
            f"resdg18, resdg34); this model has {sorted(kinds) or 'no'} blocks. Bottleneck "
            f"(resdg50) and MobileNetV2 quantization is not supported.")


def input_range(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel normalised values of pixel 0 and pixel 1: `(0 - mean)/std`, `(1 - mean)/std`."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return (0 - mean) / std, (1 - mean) / std


def check_calibration_images(images, input_shape, mean, std, tolerance: float = 0.05) -> np.ndarray:
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
    if not np.all(np.isfinite(x)):
        raise CalibrationError("calibration images contain NaN or infinity")
    lo, hi = input_range(mean, std)
    cmin = x.min(axis=(0, 2, 3))
    cmax = x.max(axis=(0, 2, 3))
    if np.any(cmin < lo - tolerance) or np.any(cmax > hi + tolerance):
        raise CalibrationError(
            f"calibration images are outside the normalised range: per-channel min "
            f"{np.round(cmin, 3).tolist()} / max {np.round(cmax, 3).tolist()}, expected within "
            f"{np.round(lo, 3).tolist()} .. {np.round(hi, 3).tolist()} for mean {list(mean)}, "
            f"std {list(std)}. Were they normalised (x/255 - mean)/std exactly once?")
    return x.astype(np.float32)


# ----------------------------------------------------------------------------- calibration

def capture_activations(model, images: np.ndarray, batch: int = 64) -> dict[str, list]:
    """Run the float model (eval, gated) and collect the tensors that get a scale.

    Keys: "stem" (ReLU(BN(conv)), before any max-pool), "<block>.out1" (conv1 output after
    ReLU and masks: conv2's input), "<block>.short" (downsample output), "<block>.out"
    (block output). Values: lists of float32 numpy batches.
    """
    import torch

    acts: dict[str, list] = {}
    hooks = []

    def keep(name):
        def fn(t):
            acts.setdefault(name, []).append(t.detach().float().cpu().numpy())
        return fn

    stem_keep = keep("stem")
    hooks.append(model.bn1.register_forward_hook(lambda m, i, o: stem_keep(torch.relu(o))))
    for name, b in _named_blocks(model):
        k1, ks, ko = keep(f"{name}.out1"), keep(f"{name}.short"), keep(f"{name}.out")
        hooks.append(b.conv2.register_forward_pre_hook(lambda m, i, k=k1: k(i[0])))
        if b.downsample is not None:
            hooks.append(b.downsample.register_forward_hook(lambda m, i, o, k=ks: k(o)))
        hooks.append(b.register_forward_hook(lambda m, i, o, k=ko: k(o[0])))
    try:
        with torch.no_grad():
            for s in range(0, images.shape[0], batch):
                model.forward_gated(torch.from_numpy(images[s:s + batch]))
    finally:
        for h in hooks:
            h.remove()
    return acts


def _stat(batches: list, signed: bool, percentile: float, statistic: str = "percentile") -> float:
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


def _named_blocks(model) -> list[tuple[str, object]]:
    names = {id(m): n for n, m in model.named_modules()}
    return [(names[id(b)], b) for b in model.blocks()]


# ----------------------------------------------------------------------------- arithmetic

def fold_bn(weight: np.ndarray, bn) -> tuple[np.ndarray, np.ndarray]:
    """Fold an eval-mode BatchNorm into the preceding bias-free conv (float64):
    `W' = W * gamma/sigma`, `b' = beta - mu * gamma/sigma`, sigma = sqrt(var + eps)."""
    g = bn.weight.detach().double().cpu().numpy()
    beta = bn.bias.detach().double().cpu().numpy()
    mu = bn.running_mean.detach().double().cpu().numpy()
    var = bn.running_var.detach().double().cpu().numpy()
    a = g / np.sqrt(var + bn.eps)
    return weight.astype(np.float64) * a.reshape(-1, *([1] * (weight.ndim - 1))), beta - mu * a


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: `s[m] = max|W[m]| / 127`, `q = round_half_away(W/s)`.
    All-zero channels get s = 1/127 (their weights stay 0)."""
    w = np.asarray(w, dtype=np.float64)
    amax = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0 / 127.0)
    q = round_half_away(w / scale.reshape(-1, *([1] * (w.ndim - 1))))
    return np.clip(q, -127, 127).astype(np.int8), scale


def choose_shift(ratios: np.ndarray, res_ratio: float = 0.0) -> int:
    """The largest shift <= 31 keeping every `round(ratio * 2^shift)` (and the residual's)
    below 2^31."""
    top = max(float(np.max(ratios, initial=0.0)), float(res_ratio))
    if not math.isfinite(top) or top <= 0:
        raise QuantizationError(f"requantization ratio {top} is not positive and finite")
    for shift in range(MAX_SHIFT, 0, -1):
        if round_half_away(top * 2.0 ** shift) < MULT_LIMIT:
            return shift
    raise QuantizationError(f"requantization ratio {top:.3g} is too large for a multiplier "
                            f"below 2^31 with shift >= 1 (output scale far too small?)")


def make_conv(name: str, w: np.ndarray, b: np.ndarray, s_in: float, s_out: float,
              out_signed: bool, stride: int, pad: int, in_tensor: str, out_tensor: str,
              res_tensor: Optional[str] = None, s_res: Optional[float] = None,
              tied: bool = False) -> QConv:
    """Quantize one folded conv (float64 W [M, C, k, k], b [M]) with its requantization."""
    wq, sw = quantize_weights(w)
    acc_scale = sw * s_in
    bias = round_half_away(b / acc_scale)
    if np.any(np.abs(bias) >= 2 ** 30):
        raise QuantizationError(f"{name}: bias does not fit the int32 accumulator "
                                f"(max |bias| = {np.abs(bias).max():.3g} LSB)")
    ratios = acc_scale / s_out
    res_ratio = 0.0 if res_tensor is None else float(s_res) / s_out
    shift = choose_shift(ratios, res_ratio)
    mult = round_half_away(ratios * 2.0 ** shift).astype(np.int64)
    res_mult = 0
    if res_tensor is not None:
        res_mult = 2 ** shift if tied else int(round_half_away(res_ratio * 2.0 ** shift))
    lo, hi = (-128, 127) if out_signed else (0, 255)
    return QConv(name=name, weight=wq, bias=bias.astype(np.int32), mult=mult.astype(np.int32),
                 shift=int(shift), res_mult=int(res_mult), lo=lo, hi=hi, stride=int(stride),
                 pad=int(pad), in_tensor=in_tensor, out_tensor=out_tensor, res_tensor=res_tensor,
                 weight_scale=sw.astype(np.float64))


def _conv_w(conv) -> np.ndarray:
    return conv.weight.detach().double().cpu().numpy()


def _gates(block) -> tuple[SpatialGateParams, ChannelGateParams]:
    ws = block.mask_s.atten_s.weight.detach().double().cpu().numpy()
    bs = block.mask_s.atten_s.bias.detach().double().cpu().numpy()
    ac = block.mask_c.atten_c
    fc1 = ac[0].weight.detach().double().cpu().numpy()[:, :, 0, 0]
    bn = ac[1]
    g = bn.weight.detach().double().cpu().numpy()
    a = g / np.sqrt(bn.running_var.detach().double().cpu().numpy() + bn.eps)
    shift = bn.bias.detach().double().cpu().numpy() - bn.running_mean.detach().double().cpu().numpy() * a
    fc2 = ac[3].weight.detach().double().cpu().numpy()[:, :, 0, 0]
    b2 = ac[3].bias.detach().double().cpu().numpy()
    return (SpatialGateParams(ws[0].astype(np.float32), np.float32(bs[0])),
            ChannelGateParams(fc1, a, shift, fc2, b2))


# ----------------------------------------------------------------------------- driver

def quantize_model(model, calib_images, config: QuantConfig | None = None,
                   mean=None, std=None, meta: dict | None = None) -> QModel:
    """Quantize a float DGNet BasicBlock ResNet (a `dgfpga_models` network) to a QModel.

    calib_images: normalised float32 [N, 3, H, W] (the model's input size). mean/std:
    the normalisation the images were made with (default: the embedded dataset's for
    CIFAR archs, ImageNet's otherwise); it fixes the input scale.
    """
    cfg = config or QuantConfig()
    check_supported(model)
    if mean is None or std is None:
        mean, std = _default_normalization(model)
    input_shape = (3, model.in_h, model.in_w)
    x = check_calibration_images(calib_images, input_shape, mean, std, cfg.range_tolerance)
    was_training, was_dense = model.training, model.dense
    if cfg.statistic not in ("percentile", "mse"):
        raise QuantizationError(f"statistic must be percentile or mse, got {cfg.statistic!r}")
    if cfg.calibration_mode not in ("gated", "dense", "both"):
        raise QuantizationError(f"calibration_mode must be gated, dense or both, "
                                f"got {cfg.calibration_mode!r}")
    model.eval()
    try:
        acts: dict[str, list] = {}
        for dense in {"gated": [False], "dense": [True], "both": [False, True]}[cfg.calibration_mode]:
            model.dense = dense
            for k, v in capture_activations(model, x).items():
                acts.setdefault(k, []).extend(v)
    finally:
        model.train(was_training)
        model.dense = was_dense

    blocks = _named_blocks(model)
    imagenet_stem = hasattr(model, "maxpool")
    # --- tensor names, shapes and scale groups
    lo, hi = input_range(mean, std)
    s_input = float(max(np.abs(lo).max(), np.abs(hi).max())) / 127.0
    tensors: dict[str, TensorInfo] = {INPUT_TENSOR: TensorInfo(input_shape, s_input, True)}
    stat: dict[str, float] = {}

    def add(name, key, shape, signed):
        tensors[name] = TensorInfo(tuple(int(v) for v in shape), 0.0, signed)
        stat[name] = _stat(acts[key], signed, cfg.percentile, cfg.statistic)

    stem_conv = model.conv1
    stem_hw = (acts["stem"][0].shape[2], acts["stem"][0].shape[3])
    add("stem", "stem", (stem_conv.out_channels, *stem_hw), False)
    stem_out = "stem"
    if imagenet_stem:
        b0 = blocks[0][1]
        tensors["stem.pool"] = TensorInfo((stem_conv.out_channels, b0.in_h, b0.in_w), 0.0, False)
        stem_out = "stem.pool"
    # Union-find of tensors sharing one scale (pooled stem output, tied identity blocks).
    group = {n: n for n in tensors}
    group["stem.pool"] = "stem"

    def root(n):
        while group[n] != n:
            n = group[n]
        return n

    prev = stem_out
    plan = []
    for name, b in blocks:
        out_shape = (b.out_channels, b.out_h, b.out_w)
        add(f"{name}.out1", f"{name}.out1", (b.mid_channels, b.out_h, b.out_w), False)
        if b.downsample is not None:
            add(f"{name}.short", f"{name}.short", out_shape, True)
        add(f"{name}.out", f"{name}.out", out_shape, False)
        group.setdefault(f"{name}.out1", f"{name}.out1")
        group.setdefault(f"{name}.short", f"{name}.short")
        group[f"{name}.out"] = f"{name}.out"
        tied = cfg.tied_residual_scales and b.downsample is None
        if tied:
            group[f"{name}.out"] = root(prev)
        plan.append((name, b, prev, tied))
        prev = f"{name}.out"
    # A group's scale covers all its members' statistics.
    gstat: dict[str, float] = {}
    for n, v in stat.items():
        r = root(n)
        gstat[r] = max(gstat.get(r, 0.0), v)
    for n, t in tensors.items():
        if n == INPUT_TENSOR:
            continue
        v = gstat.get(root(n), 0.0)
        if not v > 0:
            v = 1.0                         # an all-zero tensor: any scale is exact
        t.scale = float(v / (127.0 if t.signed else 255.0))

    # --- layers
    def sc(n):
        return tensors[n].scale

    w, bvec = fold_bn(_conv_w(stem_conv), model.bn1)
    qstem = QStem(conv=make_conv("conv1", w, bvec, s_input, sc("stem"), False,
                                 stem_conv.stride[0], stem_conv.padding[0], INPUT_TENSOR, "stem"),
                  maxpool=imagenet_stem, out_tensor=stem_out)
    qblocks = []
    for name, b, xin, tied in plan:
        w1, b1 = fold_bn(_conv_w(b.conv1), b.bn1)
        c1 = make_conv(f"{name}.conv1", w1, b1, sc(xin), sc(f"{name}.out1"), False,
                       b.conv1.stride[0], b.conv1.padding[0], xin, f"{name}.out1")
        ds = None
        res = xin
        if b.downsample is not None:
            wd, bd = fold_bn(_conv_w(b.downsample[0]), b.downsample[1])
            ds = make_conv(f"{name}.downsample", wd, bd, sc(xin), sc(f"{name}.short"), True,
                           b.downsample[0].stride[0], b.downsample[0].padding[0], xin,
                           f"{name}.short")
            res = f"{name}.short"
        w2, b2 = fold_bn(_conv_w(b.conv2), b.bn2)
        c2 = make_conv(f"{name}.conv2", w2, b2, sc(f"{name}.out1"), sc(f"{name}.out"), False,
                       b.conv2.stride[0], b.conv2.padding[0], f"{name}.out1", f"{name}.out",
                       res_tensor=res, s_res=sc(res), tied=tied)
        sg, cg = _gates(b)
        qblocks.append(QBlock(name=name, conv1=c1, conv2=c2, downsample=ds, identity=tied,
                              tile=int(b.tile), grid=(int(b.grid_h), int(b.grid_w)),
                              spatial_gate=sg, channel_gate=cg, in_tensor=xin,
                              out_tensor=f"{name}.out"))
    # --- head
    fc = model.fc
    wf = fc.weight.detach().double().cpu().numpy()
    bf = fc.bias.detach().double().cpu().numpy()
    wq, sw = quantize_weights(wf)
    _, hh, ww = tensors[prev].shape
    logit_scale = sw * sc(prev) / (hh * ww)
    hb = round_half_away(bf / logit_scale)
    if np.any(np.abs(hb) >= 2 ** 31):
        raise QuantizationError("fc: bias does not fit int32")
    head = QHead(name="fc", weight=wq, bias=hb.astype(np.int32), logit_scale=logit_scale,
                 in_tensor=prev, pool_count=hh * ww)
    info = {"calibration_images": int(x.shape[0]), "percentile": cfg.percentile,
            "statistic": cfg.statistic,
            "calibration_mode": cfg.calibration_mode,
            "tied_residual_scales": cfg.tied_residual_scales,
            "statistics": {n: float(v) for n, v in stat.items()}}
    info.update(meta or {})
    qm = QModel(arch=model.arch, input_shape=input_shape, num_classes=int(fc.out_features),
                mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                tensors=tensors, stem=qstem, blocks=qblocks, head=head, meta=info)
    validate(qm)
    return qm


# ----------------------------------------------------------------------------- test models

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
            # Inputs to this block under the gates already set upstream.
            inp = {}
            hook = b.register_forward_pre_hook(lambda m, i: inp.setdefault("x", i[0]))
            model.forward_gated(x)
            hook.remove()
            xin = inp["x"]
            b.mask_s.atten_s.bias.zero_()
            b.mask_c.atten_c[3].bias.zero_()
            ls = b.mask_s.logits(xin).flatten()
            b.mask_s.atten_s.bias.fill_(-float(np.percentile(ls.numpy(), q)))
            lc = b.mask_c.logits(xin)[:, :, 0, 0].numpy()
            b.mask_c.atten_c[3].bias.copy_(torch.from_numpy(
                -np.percentile(lc, q, axis=0)).float())
    return model


# ----------------------------------------------------------------------------- inputs

def load_float_model(checkpoint, arch: str | None = None):
    """Load a zoo model from a checkpoint: `(model, meta)`, model in eval mode, gated.

    `arch` defaults to the checkpoint's own (its `arch` entry or its keys). Raises
    CheckpointError (unreadable file, keys or shapes of another architecture) or
    UnsupportedModelError (not a BasicBlock ResNet).
    """
    from dgfpga_models import ARCHS
    from dgfpga_models.checkpoint import load_checkpoint

    if arch is not None and arch not in ARCHS:
        raise UnsupportedModelError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    if arch is not None and (ARCHS[arch].family == "mobilenet" or arch.startswith("resdg50")):
        raise UnsupportedModelError(f"{arch}: Bottleneck and MobileNetV2 quantization is not "
                                    f"supported; use a BasicBlock ResNet (resdg20/32/56/110_cifar10, "
                                    f"resdg18, resdg34)")
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


def load_calibration(spec: str) -> np.ndarray:
    """`embedded:N` (the embedded dataset's train split, first N images) or a `.npy` file
    of normalised float32 [N, 3, H, W] images."""
    if spec.startswith("embedded:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise CalibrationError(f"--calib {spec!r}: expected embedded:N with an integer N") from None
        if n < 1:
            raise CalibrationError("the calibration set is empty: use embedded:N with N >= 1")
        from dgfpga.data.embedded import load_split
        return load_split("train", n).images
    from pathlib import Path
    p = Path(spec)
    if p.suffix != ".npy" or not p.is_file():
        raise CalibrationError(f"--calib {spec!r}: expected embedded:N or an existing .npy file")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CalibrationError(f"{p}: not a readable .npy array ({exc})") from None


# ----------------------------------------------------------------------------- report

def evaluate_quantized(model, qm: QModel, images: np.ndarray, labels: np.ndarray,
                       batch: int = 200, dense: bool = False) -> dict:
    """Float model vs integer golden model on labelled images (both gated, or both with
    every gate on when `dense`).

    Returns a dict: n, top1_float, top1_int8 (percent), spatial_agreement and
    channel_agreement (fraction of identical gate decisions, all blocks), per-block lists
    (name, spatial/channel agreement, density float/int8), density_float / density_int8
    (whole network, official definition), macs_float / macs_int8 (mean per image),
    dense_macs.
    """
    import torch
    from dgfpga.numerics.golden import run_golden

    if model.arch != qm.arch:
        raise QuantizationError(f"the checkpoint is {model.arch} but the quantized model is {qm.arch}")
    model.eval()
    model.dense = dense
    g = run_golden(qm, images, masks="dense" if dense else None, keep_layers=False)
    fl_logits, fl_sp, fl_ch, fl_bd, fl_macs = [], [], [], [], []
    with torch.no_grad():
        for s in range(0, images.shape[0], batch):
            out = model.forward_gated(torch.from_numpy(np.ascontiguousarray(images[s:s + batch])))
            fl_logits.append(out.logits.numpy())
            fl_sp.append([m.spatial[:, 0].numpy() > 0 for m in out.masks])
            fl_ch.append([m.channel[:, :, 0, 0].numpy() > 0 for m in out.masks])
            fl_bd.append((out.flops_real / out.flops_full).numpy())
            fl_macs.append(out.macs.numpy())
    fl = np.concatenate(fl_logits)
    sp = [np.concatenate([b[i] for b in fl_sp]) for i in range(len(qm.blocks))]
    ch = [np.concatenate([b[i] for b in fl_ch]) for i in range(len(qm.blocks))]
    bd = np.concatenate(fl_bd)
    macs_f = np.concatenate(fl_macs)
    blocks = []
    agree_s = agree_c = total_s = total_c = 0
    for i, b in enumerate(qm.blocks):
        es = int((sp[i] == g.masks[i].spatial).sum())
        ec = int((ch[i] == g.masks[i].channel).sum())
        agree_s += es
        agree_c += ec
        total_s += sp[i].size
        total_c += ch[i].size
        blocks.append({"name": b.name, "spatial_agreement": es / sp[i].size,
                       "channel_agreement": ec / ch[i].size,
                       "density_float": float(bd[:, i].mean()),
                       "density_int8": float(g.block_density[:, i].mean())})
    return {
        "arch": qm.arch, "n": int(images.shape[0]),
        "top1_float": float((fl.argmax(1) == labels).mean() * 100),
        "top1_int8": float((g.logits.argmax(1) == labels).mean() * 100),
        "prediction_agreement": float((fl.argmax(1) == g.logits.argmax(1)).mean()),
        "spatial_agreement": agree_s / total_s, "channel_agreement": agree_c / total_c,
        "gate_agreement": (agree_s + agree_c) / (total_s + total_c),
        "density_float": float(macs_f.mean() / g.dense_macs),
        "density_int8": float(g.density.mean()),
        "macs_float": float(macs_f.mean()), "macs_int8": float(g.total_macs.mean()),
        "dense_macs": int(g.dense_macs), "blocks": blocks,
        "max_acc_bound_log2": max(math.log2(conv_bounds(qm, c)[0]) for c in qm.convs()),
        "max_z_bound_log2": max(math.log2(conv_bounds(qm, c)[1]) for c in qm.convs()),
    }
