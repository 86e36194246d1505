"""`quantize_model`: a float DGNet ResNet (BasicBlock or Bottleneck) or MobileNetV2 -> a
`QModel` (needs torch).

Steps (docs/quantization.md has the reasoning and the figures; the module doing each
step in brackets):

1. check the model (BasicBlock ResNets: CIFAR resdg20/32/56/110, ImageNet resdg18/34;
   Bottleneck: resdg50; MobileNetV2: mobilenet_v2_dg) and the calibration images (shape, normalised range)
   [float_model, stats];
2. calibrate: run the float model in eval mode (gated, masked execution) and record
   every activation tensor; reduce each to the range its scale covers [stats];
3. tie residual scales (default): inside a stage every identity-shortcut block gets
   output scale = input scale, so one scale covers the whole residual stream of a stage
   [here];
4. fold each BatchNorm into its conv, quantize weights int8 per output channel
   (symmetric, max-abs), biases int32 in the accumulator scale, and derive the integer
   multipliers and the layer shift [fold]; `dgfpga.numerics.qmodel.validate` proves
   `|z| < 2^62`;
5. derive the integer gates (weights int16, the channel gate's hidden layer requantized
   with the calibrated hidden range) [gatequant, stats].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgfpga.data.images import RANGE_TOLERANCE
from dgfpga.numerics.qmodel import (INPUT_TENSOR, QBlock, QHead, QModel, QStem, TensorInfo,
                                    round_half_away, validate)
from dgfpga.quant import QuantizationError
from dgfpga.quant.float_model import (check_supported, default_normalization, input_range,
                                      is_mobilenet)
from dgfpga.quant.fold import conv_weight, fold_bn, make_conv, quantize_weights
from dgfpga.quant.gatequant import (DEFAULT_HIDDEN_MARGIN, FloatGates, hidden_range,
                                    quantize_channel_gate, quantize_spatial_gate)
from dgfpga.quant.stats import (capture_activations, check_calibration_images, gate_hidden_max,
                                named_blocks, tensor_range)

__all__ = ["QuantConfig", "quantize_model", "extract_gates"]


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
    gate_hidden_margin: the channel gates' hidden range is the calibrated maximum of their
      hidden units times this (>= 1).
    """
    percentile: float = 99.99
    statistic: str = "percentile"
    tied_residual_scales: bool = True
    range_tolerance: float = RANGE_TOLERANCE
    calibration_mode: str = "gated"
    gate_hidden_margin: float = DEFAULT_HIDDEN_MARGIN


def extract_gates(block, channel_gate=None) -> FloatGates:
    """A block's float gate parameters (float64; channel-gate BN folded to scale/shift):
    its spatial gate and `channel_gate` (default: the block's first channel gate, `mask_c`
    or a Bottleneck's `mask_c1`)."""
    ws = block.mask_s.atten_s.weight.detach().double().cpu().numpy()
    bs = block.mask_s.atten_s.bias.detach().double().cpu().numpy()
    if channel_gate is None:
        channel_gate = block.mask_c if hasattr(block, "mask_c") else block.mask_c1
    ac = channel_gate.atten_c
    fc1 = ac[0].weight.detach().double().cpu().numpy()[:, :, 0, 0]
    bn = ac[1]
    g = bn.weight.detach().double().cpu().numpy()
    a = g / np.sqrt(bn.running_var.detach().double().cpu().numpy() + bn.eps)
    shift = bn.bias.detach().double().cpu().numpy() - bn.running_mean.detach().double().cpu().numpy() * a
    fc2 = ac[3].weight.detach().double().cpu().numpy()[:, :, 0, 0]
    b2 = ac[3].bias.detach().double().cpu().numpy()
    return FloatGates(ws[0], float(bs[0]), fc1, a, shift, fc2, b2)


def quantize_model(model, calib_images, config: QuantConfig | None = None,
                   mean=None, std=None, meta: dict | None = None) -> QModel:
    """Quantize a float DGNet ResNet (a `dgfpga_models` network of BasicBlocks or of
    Bottlenecks) to a QModel.

    calib_images: normalised float32 [N, 3, H, W] (the model's input size). mean/std:
    the normalisation the images were made with (default: the embedded dataset's for
    CIFAR archs, ImageNet's otherwise); it fixes the input scale.
    """
    cfg = config or QuantConfig()
    check_supported(model)
    if mean is None or std is None:
        mean, std = default_normalization(model)
    input_shape = (3, model.in_h, model.in_w)
    x = check_calibration_images(calib_images, input_shape, mean, std, cfg.range_tolerance)
    was_training, was_dense = model.training, model.dense
    if cfg.statistic not in ("percentile", "mse"):
        raise QuantizationError(f"statistic must be percentile or mse, got {cfg.statistic!r}")
    if not (np.isfinite(cfg.gate_hidden_margin) and cfg.gate_hidden_margin >= 1):
        raise QuantizationError(f"gate_hidden_margin must be >= 1, got {cfg.gate_hidden_margin}")
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

    blocks = named_blocks(model)
    imagenet_stem = hasattr(model, "maxpool")
    lo, hi = input_range(mean, std)
    s_input = float(max(np.abs(lo).max(), np.abs(hi).max())) / 127.0
    if is_mobilenet(model):
        return _quantize_mobilenet(model, x, cfg, acts, s_input, mean, std, meta)
    # --- tensor names, shapes and scale groups
    tensors: dict[str, TensorInfo] = {INPUT_TENSOR: TensorInfo(input_shape, s_input, True)}
    stat: dict[str, float] = {}

    def add(name, key, shape, signed):
        tensors[name] = TensorInfo(tuple(int(v) for v in shape), 0.0, signed)
        stat[name] = tensor_range(acts[key], signed, cfg.percentile, cfg.statistic)

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
        if b.kind == "bottleneck":      # conv1 at the block input resolution, conv2 strided
            add(f"{name}.out1", f"{name}.out1", (b.mid_channels, b.in_h, b.in_w), False)
            add(f"{name}.out2", f"{name}.out2", (b.mid_channels, b.out_h, b.out_w), False)
            group.setdefault(f"{name}.out2", f"{name}.out2")
        else:
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
    _assign_scales(tensors, stat, root)

    # --- layers
    def sc(n):
        return tensors[n].scale

    w, bvec = fold_bn(conv_weight(stem_conv), model.bn1)
    qstem = QStem(conv=make_conv("conv1", w, bvec, s_input, sc("stem"), False,
                                 stem_conv.stride[0], stem_conv.padding[0], INPUT_TENSOR, "stem"),
                  maxpool=imagenet_stem, out_tensor=stem_out)
    qblocks = []
    gate_info: dict[str, dict] = {}
    for name, b, xin, tied in plan:
        w1, b1 = fold_bn(conv_weight(b.conv1), b.bn1)
        c1 = make_conv(f"{name}.conv1", w1, b1, sc(xin), sc(f"{name}.out1"), False,
                       b.conv1.stride[0], b.conv1.padding[0], xin, f"{name}.out1")
        ds = None
        res = xin
        if b.downsample is not None:
            wd, bd = fold_bn(conv_weight(b.downsample[0]), b.downsample[1])
            ds = make_conv(f"{name}.downsample", wd, bd, sc(xin), sc(f"{name}.short"), True,
                           b.downsample[0].stride[0], b.downsample[0].padding[0], xin,
                           f"{name}.short")
            res = f"{name}.short"
        w2, b2 = fold_bn(conv_weight(b.conv2), b.bn2)
        extra = {}
        if b.kind == "bottleneck":
            c2 = make_conv(f"{name}.conv2", w2, b2, sc(f"{name}.out1"), sc(f"{name}.out2"),
                           False, b.conv2.stride[0], b.conv2.padding[0], f"{name}.out1",
                           f"{name}.out2")
            w3, b3 = fold_bn(conv_weight(b.conv3), b.bn3)
            extra["conv3"] = make_conv(f"{name}.conv3", w3, b3, sc(f"{name}.out2"),
                                       sc(f"{name}.out"), False, b.conv3.stride[0],
                                       b.conv3.padding[0], f"{name}.out2", f"{name}.out",
                                       res_tensor=res, s_res=sc(res), tied=tied)
        else:
            c2 = make_conv(f"{name}.conv2", w2, b2, sc(f"{name}.out1"), sc(f"{name}.out"), False,
                           b.conv2.stride[0], b.conv2.padding[0], f"{name}.out1", f"{name}.out",
                           res_tensor=res, s_res=sc(res), tied=tied)
        fg = extract_gates(b)
        h_max = gate_hidden_max(acts.get(f"{name}.pooled", []), fg)
        sg = quantize_spatial_gate(fg.ws, fg.bs, sc(xin))
        cg = quantize_channel_gate(fg, sc(xin), hidden_range(fg, sc(xin), h_max,
                                                             cfg.gate_hidden_margin))
        gate_info[name] = {"hidden_max": h_max, "hidden_shift": cg.shift}
        if b.kind == "bottleneck":      # mask_c2 reads conv1's masked output (scale of out1)
            fg2 = extract_gates(b, b.mask_c2)
            s1 = sc(f"{name}.out1")
            h2 = gate_hidden_max(acts.get(f"{name}.pooled2", []), fg2)
            extra["channel_gate2"] = quantize_channel_gate(
                fg2, s1, hidden_range(fg2, s1, h2, cfg.gate_hidden_margin))
            extra["kind"] = "bottleneck"
            gate_info[name].update(hidden_max2=h2, hidden_shift2=extra["channel_gate2"].shift)
        qblocks.append(QBlock(name=name, conv1=c1, conv2=c2, downsample=ds, identity=tied,
                              tile=int(b.tile), grid=(int(b.grid_h), int(b.grid_w)),
                              spatial_gate=sg, channel_gate=cg, in_tensor=xin,
                              out_tensor=f"{name}.out", **extra))
    # --- head
    fc = model.fc
    head = _make_head("fc", fc, tensors, prev)
    info = _info(x, cfg, gate_info, stat, meta)
    qm = QModel(arch=model.arch, input_shape=input_shape, num_classes=int(fc.out_features),
                mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                tensors=tensors, stem=qstem, blocks=qblocks, head=head, meta=info)
    validate(qm)
    return qm


RELU6_MAX = 6.0     # ReLU6's upper bound (MobileNetV2), in real units


def _assign_scales(tensors: dict, stat: dict, root) -> None:
    """Every tensor's scale from its statistic: a scale group (`root`) covers all its
    members' statistics; s = range / 127 (s8) or / 255 (u8)."""
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


def _make_head(name: str, fc, tensors: dict, prev: str) -> QHead:
    """The int8 classifier on the integer sum pool of tensor `prev`."""
    wf = fc.weight.detach().double().cpu().numpy()
    bf = fc.bias.detach().double().cpu().numpy()
    wq, sw = quantize_weights(wf)
    _, hh, ww = tensors[prev].shape
    logit_scale = sw * tensors[prev].scale / (hh * ww)
    hb = round_half_away(bf / logit_scale)
    if np.any(np.abs(hb) >= 2 ** 31):
        raise QuantizationError(f"{name}: bias does not fit int32")
    return QHead(name=name, weight=wq, bias=hb.astype(np.int32), logit_scale=logit_scale,
                 in_tensor=prev, pool_count=hh * ww)


def _info(x, cfg: QuantConfig, gate_info: dict, stat: dict, meta) -> dict:
    info = {"calibration_images": int(x.shape[0]), "percentile": cfg.percentile,
            "statistic": cfg.statistic,
            "calibration_mode": cfg.calibration_mode,
            "tied_residual_scales": cfg.tied_residual_scales,
            "gate_hidden_margin": cfg.gate_hidden_margin, "gates": gate_info,
            "statistics": {n: float(v) for n, v in stat.items()}}
    info.update(meta or {})
    return info


def _conv_bn(seq):
    """(conv, bn) of a ConvBNReLU Sequential (`0` conv, `1` BN)."""
    return seq[0], seq[1]


def _quantize_mobilenet(model, x, cfg: QuantConfig, acts: dict, s_input: float, mean, std,
                        meta) -> QModel:
    """MobileNetV2 (docs/quantization.md "MobileNetV2 blocks"): stem ConvBNReLU6 (u8),
    inverted residuals ([expand u8] -> depthwise u8 -> project s8 [+ residual]), tail
    ConvBNReLU6 1x1 (u8), mean pool + classifier. ReLU6 is the u8 clamp: every ReLU6
    tensor's range is capped at 6.0, so code 255 is at most 6.0 in real units. Residual
    blocks keep their input scale (tied, in-place) when `tied_residual_scales`."""
    blocks = named_blocks(model)
    input_shape = (3, model.in_h, model.in_w)
    tensors: dict[str, TensorInfo] = {INPUT_TENSOR: TensorInfo(input_shape, s_input, True)}
    stat: dict[str, float] = {}
    group: dict[str, str] = {}

    def add(name, shape, signed, relu6=False):
        tensors[name] = TensorInfo(tuple(int(v) for v in shape), 0.0, signed)
        v = tensor_range(acts[name], signed, cfg.percentile, cfg.statistic)
        stat[name] = min(v, RELU6_MAX) if relu6 else v
        group[name] = name

    def root(n):
        while group[n] != n:
            n = group[n]
        return n

    stem_seq, tail_seq = model.features[0], model.features[-1]
    sh, sw = acts["stem"][0].shape[2:]
    add("stem", (stem_seq[0].out_channels, sh, sw), False, relu6=True)
    prev = "stem"
    plan = []
    for name, b in blocks:
        hid = b.mid_channels
        if b.expand_ratio != 1:
            add(f"{name}.out1", (hid, b.in_h, b.in_w), False, relu6=True)
        add(f"{name}.out2", (hid, b.out_h, b.out_w), False, relu6=True)
        add(f"{name}.out", (b.out_channels, b.out_h, b.out_w), True)
        tied = bool(b.gated and cfg.tied_residual_scales)
        if tied:
            group[f"{name}.out"] = root(prev)
        plan.append((name, b, prev, tied))
        prev = f"{name}.out"
    _, th, tw = acts["tail"][0].shape[1:]
    add("tail", (tail_seq[0].out_channels, th, tw), False, relu6=True)
    _assign_scales(tensors, stat, root)

    def sc(n):
        return tensors[n].scale

    def conv(qname, seq_conv, bn, tin, tout, signed, **kw):
        w, bias = fold_bn(conv_weight(seq_conv), bn)
        c = make_conv(qname, w, bias, sc(tin), sc(tout), signed, seq_conv.stride[0],
                      seq_conv.padding[0], tin, tout, **kw)
        c.groups = int(seq_conv.groups)
        return c

    stem_c, stem_bn = _conv_bn(stem_seq)
    qstem = QStem(conv=conv("features.0", stem_c, stem_bn, INPUT_TENSOR, "stem", False),
                  maxpool=False, out_tensor="stem")
    qblocks, gate_info = [], {}
    for name, b, xin, tied in plan:
        layers = list(b.conv)
        c1 = None
        tin = xin
        if b.expand_ratio != 1:
            ec, ebn = _conv_bn(layers.pop(0))
            c1 = conv(f"{name}.conv1", ec, ebn, xin, f"{name}.out1", False)
            tin = f"{name}.out1"
        dc, dbn = _conv_bn(layers[0])
        c2 = conv(f"{name}.conv2", dc, dbn, tin, f"{name}.out2", False)
        res = dict(res_tensor=xin, s_res=sc(xin), tied=tied) if b.gated else {}
        c3 = conv(f"{name}.conv3", layers[1], layers[2], f"{name}.out2", f"{name}.out", True,
                  **res)
        gates = dict(tile=0, grid=(0, 0), spatial_gate=None, channel_gate=None)
        if b.gated:
            fg = extract_gates(b)
            h_max = gate_hidden_max(acts.get(f"{name}.pooled", []), fg)
            gates = dict(tile=int(b.tile), grid=(int(b.grid_h), int(b.grid_w)),
                         spatial_gate=quantize_spatial_gate(fg.ws, fg.bs, sc(xin)),
                         channel_gate=quantize_channel_gate(
                             fg, sc(xin), hidden_range(fg, sc(xin), h_max,
                                                       cfg.gate_hidden_margin)))
            gate_info[name] = {"hidden_max": h_max,
                               "hidden_shift": gates["channel_gate"].shift}
        qblocks.append(QBlock(name=name, kind="inverted_residual", conv1=c1, conv2=c2,
                              conv3=c3, downsample=None, identity=tied, in_tensor=xin,
                              out_tensor=f"{name}.out", **gates))
    tc, tbn = _conv_bn(tail_seq)
    tail = conv(f"features.{len(model.features) - 1}", tc, tbn, prev, "tail", False)
    head = _make_head("classifier", model.classifier[1], tensors, "tail")
    qm = QModel(arch=model.arch, input_shape=input_shape,
                num_classes=int(model.classifier[1].out_features),
                mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
                tensors=tensors, stem=qstem, blocks=qblocks, head=head,
                meta=_info(x, cfg, gate_info, stat, meta), tail=tail)
    validate(qm)
    return qm
