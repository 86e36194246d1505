"""What the gates do, as a picture (paper Fig. 6 style).

For a few images: the input, the spatial cost map (how many blocks executed each pixel's
tile, the grid masks upsampled to the input resolution with PyTorch's nearest rule) and the
per-block channel density (active conv1 output channels / channels).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from dgfpga.numerics.gates import upsample_grid

__all__ = ["collect_masks", "cost_maps", "gate_figure", "object_overlap", "mask_statistics"]


def collect_masks(model, images: np.ndarray, batch: int = 500):
    """Eval-mode masks of a zoo model (torch) on normalised images [N, 3, H, W].

    Returns (spatial, channel): per gated block (a MobileNetV2's ungated blocks have no
    masks), bool [N, gh, gw] grid masks and bool [N, C] conv1 channel masks, in network
    order.
    """
    import torch
    was = model.training
    model.eval()
    spatial, channel = None, None
    with torch.no_grad():
        for s in range(0, len(images), batch):
            out = model.forward_gated(torch.from_numpy(np.ascontiguousarray(images[s:s + batch])))
            masks = [m for m in out.masks if m is not None]
            sp = [m.spatial[:, 0].numpy() > 0.5 for m in masks]
            ch = [m.channel[:, :, 0, 0].numpy() > 0.5 for m in masks]
            if spatial is None:
                spatial, channel = [[a] for a in sp], [[a] for a in ch]
            else:
                for lst, a in zip(spatial, sp):
                    lst.append(a)
                for lst, a in zip(channel, ch):
                    lst.append(a)
    model.train(was)
    return [np.concatenate(a) for a in spatial], [np.concatenate(a) for a in channel]


def mask_statistics(spatial: Sequence[np.ndarray], channel: Sequence[np.ndarray],
                    object_masks: Optional[np.ndarray] = None) -> dict:
    """Do masks vary with the image? Per block: mean and std over images of the spatial
    and channel mask density, the fraction of images whose mask differs from the block's
    most common mask, plus (with object masks) `object_overlap`."""
    def _varying(m):
        flat = m.reshape(len(m), -1)
        _, inv, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
        return float(1 - counts.max() / len(m))
    sd = [np.asarray(s, bool).reshape(len(s), -1).mean(1) for s in spatial]
    cd = [np.asarray(c, bool).mean(1) for c in channel]
    r = {"spatial_density_mean": [float(v.mean()) for v in sd],
         "spatial_density_std": [float(v.std()) for v in sd],
         "channel_density_mean": [float(v.mean()) for v in cd],
         "channel_density_std": [float(v.std()) for v in cd],
         "spatial_unlike_mode": [_varying(np.asarray(s, bool)) for s in spatial],
         "channel_unlike_mode": [_varying(np.asarray(c, bool)) for c in channel]}
    if object_masks is not None:
        r.update(object_overlap(spatial, object_masks))
    return r


def cost_maps(spatial: Sequence[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    """Sum over blocks of the spatial masks upsampled to `hw`: int [N, H, W]."""
    total = None
    for s in spatial:
        up = upsample_grid(np.asarray(s, bool), hw).astype(np.int32)
        total = up if total is None else total + up
    return total


def object_overlap(spatial: Sequence[np.ndarray], object_masks: np.ndarray) -> dict:
    """Do spatial gates concentrate on the object?

    A tile "overlaps the object" if any object pixel falls in it (object masks at the input
    resolution, mapped to each block's grid by nearest upsampling). Returns the mean over
    images and blocks of: fraction of object tiles that are active, fraction of background
    tiles that are active, and the fraction of active tiles that are object tiles.
    """
    obj = np.asarray(object_masks, bool)
    n, h, w = obj.shape
    on_obj, on_bg, act_obj = [], [], []
    for s in spatial:
        s = np.asarray(s, bool)
        gh, gw = s.shape[1:]
        # which input pixels map to each grid cell (nearest, at the input resolution)
        cell = upsample_grid(np.arange(gh * gw).reshape(1, gh, gw), (h, w))[0]
        is_obj = np.zeros((n, gh * gw), bool)
        for c in range(gh * gw):
            is_obj[:, c] = obj[:, cell == c].any(axis=1)
        act = s.reshape(n, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            on_obj.append((act & is_obj).sum(1) / np.maximum(is_obj.sum(1), 1))
            on_bg.append((act & ~is_obj).sum(1) / np.maximum((~is_obj).sum(1), 1))
            act_obj.append(np.where(act.sum(1) > 0, (act & is_obj).sum(1) / np.maximum(act.sum(1), 1), np.nan))
    return {"object_tiles_active": float(np.mean(on_obj)),
            "background_tiles_active": float(np.mean(on_bg)),
            "active_tiles_on_object": float(np.nanmean(act_obj))}


def _to_rgb(images: np.ndarray, mean, std) -> np.ndarray:
    x = np.asarray(images, np.float32)
    if x.dtype == np.uint8 or x.max() > 20:
        return x.transpose(0, 2, 3, 1) / 255.0
    x = x * np.asarray(std)[None, :, None, None] + np.asarray(mean)[None, :, None, None]
    return np.clip(x.transpose(0, 2, 3, 1), 0, 1)


def gate_figure(images: np.ndarray, spatial: Sequence[np.ndarray], channel: Sequence[np.ndarray],
                path, level: str, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                labels: Optional[Sequence[int]] = None, n: int = 4,
                object_masks: Optional[np.ndarray] = None):
    """Write the figure to `path` (PNG). `spatial[b]`: bool [N, gh, gw]; `channel[b]`:
    bool [N, C]; images: normalised float [N, 3, H, W] (with mean/std) or uint8;
    object_masks: bool [N, H, W], outlined (red) on the cost map when given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = min(n, len(images))
    rgb = _to_rgb(images[:n], mean, std)
    hw = rgb.shape[1:3]
    cm = cost_maps([s[:n] for s in spatial], hw)
    nb = len(spatial)
    chd = np.stack([np.asarray(c[:n], bool).mean(1) for c in channel], axis=1)   # [n, B]
    fig, axes = plt.subplots(n, 3, figsize=(9, 2.4 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.25, 1.6]})
    for i in range(n):
        a0, a1, a2 = axes[i]
        a0.imshow(rgb[i], interpolation="nearest")
        a0.set_title("input" + (f" (label {labels[i]})" if labels is not None else ""), fontsize=8)
        a0.axis("off")
        im = a1.imshow(cm[i], cmap="viridis", vmin=0, vmax=nb, interpolation="nearest")
        if object_masks is not None:
            a1.contour(np.asarray(object_masks[i], float), levels=[0.5], colors="red",
                       linewidths=1.0)
        a1.set_title(f"spatial cost map (blocks executed, of {nb})", fontsize=8)
        a1.axis("off")
        fig.colorbar(im, ax=a1, fraction=0.046, pad=0.04)
        a2.bar(np.arange(nb), chd[i], color="#27a")
        a2.set_ylim(0, 1)
        a2.set_xticks(np.arange(nb))
        a2.set_xlabel("block", fontsize=8)
        a2.set_ylabel("channel density", fontsize=8)
        a2.tick_params(labelsize=7)
        a2.set_title("active conv1 channels per block", fontsize=8)
        a2.grid(alpha=0.3)
    fig.suptitle(f"What the gates chose ({level})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
