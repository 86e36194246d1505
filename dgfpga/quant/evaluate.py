"""`evaluate_quantized`: the float model vs the integer golden model on labelled images
(top-1, gate agreement, density, MACs, overflow bounds), as `dgfpga qreport` prints it;
`gate_arithmetic_flips`: what the integer gate arithmetic alone changes.
"""
from __future__ import annotations

import math

import numpy as np

from dgfpga.numerics.qmodel import QModel, conv_bounds
from dgfpga.quant import QuantizationError

__all__ = ["evaluate_quantized", "gate_arithmetic_flips"]


def evaluate_quantized(model, qm: QModel, images: np.ndarray, labels: np.ndarray,
                       batch: int = 200, dense: bool = False) -> dict:
    """Float model vs integer golden model on labelled images (both gated, or both with
    every gate on when `dense`).

    Returns a dict: n, top1_float, top1_int8 (percent), spatial_agreement and
    channel_agreement (fraction of identical gate decisions, all gated blocks), per-block
    lists (name, spatial/channel agreement (gated blocks only: MobileNetV2's blocks without
    residual have none), density float/int8), density_float / density_int8
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
    fl_logits, fl_sp, fl_ch, fl_ch2, fl_bd, fl_macs = [], [], [], [], [], []
    with torch.no_grad():
        for s in range(0, images.shape[0], batch):
            out = model.forward_gated(torch.from_numpy(np.ascontiguousarray(images[s:s + batch])))
            fl_logits.append(out.logits.numpy())
            # None: an ungated (MobileNetV2) block has no masks.
            fl_sp.append([None if m is None else m.spatial[:, 0].numpy() > 0
                          for m in out.masks])
            fl_ch.append([None if m is None else m.channel[:, :, 0, 0].numpy() > 0
                          for m in out.masks])
            fl_ch2.append([m.channel2[:, :, 0, 0].numpy() > 0
                           if m is not None and m.channel2 is not None
                           else None for m in out.masks])
            fl_bd.append((out.flops_real / out.flops_full).numpy())
            fl_macs.append(out.macs.numpy())
    fl = np.concatenate(fl_logits)
    sp = [np.concatenate([b[i] for b in fl_sp]) if qm.blocks[i].gated else None
          for i in range(len(qm.blocks))]
    ch = [np.concatenate([b[i] for b in fl_ch]) if qm.blocks[i].gated else None
          for i in range(len(qm.blocks))]
    ch2 = [np.concatenate([b[i] for b in fl_ch2]) if qm.blocks[i].channel_gate2 is not None
           else None for i in range(len(qm.blocks))]
    bd = np.concatenate(fl_bd)
    macs_f = np.concatenate(fl_macs)
    blocks = []
    agree_s = agree_c = total_s = total_c = 0
    for i, b in enumerate(qm.blocks):
        if not b.gated:             # MobileNetV2 blocks without residual: dense, no gates
            blocks.append({"name": b.name, "density_float": float(bd[:, i].mean()),
                           "density_int8": float(g.block_density[:, i].mean())})
            continue
        es = int((sp[i] == g.masks[i].spatial).sum())
        ec = int((ch[i] == g.masks[i].channel).sum())
        row = {"name": b.name, "spatial_agreement": es / sp[i].size,
               "channel_agreement": ec / ch[i].size}
        agree_s += es
        total_s += sp[i].size
        agree_c += ec
        total_c += ch[i].size
        if ch2[i] is not None:      # a Bottleneck's mask_c2 counts as channel decisions too
            ec2 = int((ch2[i] == g.masks[i].channel2).sum())
            row["channel2_agreement"] = ec2 / ch2[i].size
            agree_c += ec2
            total_c += ch2[i].size
        row.update(density_float=float(bd[:, i].mean()),
                   density_int8=float(g.block_density[:, i].mean()))
        blocks.append(row)
    return {
        "arch": qm.arch, "n": int(images.shape[0]),
        "top1_float": float((fl.argmax(1) == labels).mean() * 100),
        "top1_int8": float((g.logits.argmax(1) == labels).mean() * 100),
        "prediction_agreement": float((fl.argmax(1) == g.logits.argmax(1)).mean()),
        "spatial_agreement": agree_s / total_s, "channel_agreement": agree_c / total_c,
        "gate_agreement": (agree_s + agree_c) / (total_s + total_c),
        # one accounting, the MACs executed: the official count (the float model's) differs
        # from it only in a MobileNetV2's dense stem (counted at a third, as the official
        # code does), a constant that does not depend on the masks; 0 for the ResNets
        "density_float": float((macs_f.mean() + g.dense_macs - model.dense_macs)
                               / g.dense_macs),
        "density_int8": float(g.density.mean()),
        "macs_float": float(macs_f.mean()), "macs_int8": float(g.total_macs.mean()),
        "dense_macs": int(g.dense_macs), "blocks": blocks,
        "max_acc_bound_log2": max(math.log2(conv_bounds(qm, c)[0]) for c in qm.convs()),
        "max_z_bound_log2": max(math.log2(conv_bounds(qm, c)[1]) for c in qm.convs()),
    }


def gate_arithmetic_flips(model, qm: QModel, images: np.ndarray, chunk: int = 250) -> dict:
    """The integer gates vs the float model's own gate modules on the SAME int8 block
    inputs (dequantized for the float gates): the decisions the integer arithmetic alone
    changes, apart from the activation quantization of the layers before each gate.

    Returns {"spatial_flips", "spatial_total", "channel_flips", "channel_total"} (the golden
    model's gated run decides the block inputs; a Bottleneck's mask_c2 is compared on the
    golden conv1 output it reads, and counted with the channel decisions).
    """
    import torch
    from dgfpga.numerics.golden import run_golden

    mods = dict(model.named_modules())
    model.eval()
    out = dict(spatial_flips=0, spatial_total=0, channel_flips=0, channel_total=0)
    for s in range(0, images.shape[0], chunk):
        g = run_golden(qm, images[s:s + chunk], keep_layers=True)
        for b, m in zip(qm.blocks, g.masks):
            if not b.gated:
                continue
            x = torch.from_numpy(g.layers[b.in_tensor].astype(np.float64)
                                 * qm.tensors[b.in_tensor].scale).float()
            with torch.no_grad():
                ls = mods[b.name].mask_s.logits(x)[:, 0].numpy()
            gate1 = getattr(mods[b.name], "mask_c", None) or mods[b.name].mask_c1
            with torch.no_grad():
                lc = gate1.logits(x)[:, :, 0, 0].numpy()
            out["spatial_flips"] += int(((ls >= 0) != m.spatial).sum())
            out["channel_flips"] += int(((lc >= 0) != m.channel).sum())
            out["spatial_total"] += int(ls.size)
            out["channel_total"] += int(lc.size)
            if b.channel_gate2 is not None:
                y1 = torch.from_numpy(g.layers[b.conv1.out_tensor].astype(np.float64)
                                      * qm.tensors[b.conv1.out_tensor].scale).float()
                with torch.no_grad():
                    lc2 = mods[b.name].mask_c2.logits(y1)[:, :, 0, 0].numpy()
                out["channel_flips"] += int(((lc2 >= 0) != m.channel2).sum())
                out["channel_total"] += int(lc2.size)
    return out
