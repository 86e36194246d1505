"""MAC accounting tables of the zoo, per the official `get_flops`.

Counts are multiply-accumulates. Per block: conv MACs (conv1/conv2[/conv3] or the
inverted-residual convs on the active tiles and channels, plus the dense downsample),
gate MACs (spatial 3x3 conv on the grid + channel-gate 1x1 convs), and the dense
("full") MACs. The network adds the stem conv and the classifier (MobileNetV2: plus its
final 1x1 conv, as the official code counts it). Density = (blocks + gates + stem + fc)
/ (dense blocks + stem + fc): gates count against the gated network, so a network with
every gate on has a density slightly above 1.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from .gated import GatedBlock, GatedNetwork
from .outputs import GatedOutput


@dataclass(frozen=True)
class BlockMacs:
    """One row of a MAC table: block name (official module path), geometry, MACs."""

    name: str
    kind: str
    gated: bool
    in_channels: int
    out_channels: int
    stride: int
    out_h: int
    out_w: int
    tile: int
    grid_h: int
    grid_w: int
    conv_macs: float        # mean over images (dense: the dense count)
    gate_macs: int
    full_macs: int

    @property
    def density(self) -> float:
        """(conv + gate) / full MACs of this block."""
        return (self.conv_macs + self.gate_macs) / self.full_macs


@dataclass(frozen=True)
class MacTable:
    """Per-block MACs plus network totals. `mode` is "dense" or "gated"; `images` is the
    number of images averaged (0 for the dense table, which needs none)."""

    arch: str
    mode: str
    images: int
    blocks: tuple[BlockMacs, ...]
    stem_macs: int
    fc_macs: int

    @property
    def conv_macs(self) -> float:
        return sum(b.conv_macs for b in self.blocks)

    @property
    def gate_macs(self) -> int:
        return sum(b.gate_macs for b in self.blocks)

    @property
    def total_macs(self) -> float:
        """Executed MACs per image: blocks + gates + stem + fc."""
        return self.conv_macs + self.gate_macs + self.stem_macs + self.fc_macs

    @property
    def dense_macs(self) -> int:
        """Dense MACs: full blocks + stem + fc, no gates."""
        return sum(b.full_macs for b in self.blocks) + self.stem_macs + self.fc_macs

    @property
    def density(self) -> float:
        """total_macs / dense_macs (official definition)."""
        return self.total_macs / self.dense_macs

    def to_dict(self) -> dict:
        """Plain-data form (for JSON): rows, totals and density."""
        return {"arch": self.arch, "mode": self.mode, "images": self.images,
                "blocks": [{**asdict(b), "density": b.density} for b in self.blocks],
                "stem_macs": self.stem_macs, "fc_macs": self.fc_macs,
                "conv_macs": self.conv_macs, "gate_macs": self.gate_macs,
                "total_macs": self.total_macs, "dense_macs": self.dense_macs,
                "density": self.density}


def _block_names(model: GatedNetwork) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(b)] for b in model.blocks()]


def _row(name: str, b: GatedBlock, conv: float, gate: int) -> BlockMacs:
    return BlockMacs(name=name, kind=b.kind, gated=b.gated, in_channels=b.in_channels,
                     out_channels=b.out_channels, stride=b.stride, out_h=b.out_h, out_w=b.out_w,
                     tile=b.tile, grid_h=b.grid_h, grid_w=b.grid_w, conv_macs=float(conv),
                     gate_macs=int(gate), full_macs=int(b.flops_full))


def dense_table(model: GatedNetwork) -> MacTable:
    """The dense network's MACs (no gates run, no gate cost); needs no images."""
    rows = [_row(n, b, b.flops_full, 0) for n, b in zip(_block_names(model), model.blocks())]
    return MacTable(model.arch, "dense", 0, tuple(rows), model.flops_stem, model.flops_fc)


def table_from_outputs(model: GatedNetwork, outputs: list[GatedOutput]) -> MacTable:
    """Mean per-image MACs over the images of one or more `forward_gated` outputs."""
    if not outputs:
        raise ValueError("table_from_outputs needs at least one GatedOutput")
    real = torch.cat([o.flops_real.detach() for o in outputs]).double()
    n = real.shape[0]
    mean = real.mean(0).tolist()
    gates = outputs[0].flops_mask.tolist()
    rows = [_row(name, b, conv, gate) for name, b, conv, gate
            in zip(_block_names(model), model.blocks(), mean, gates)]
    return MacTable(model.arch, "dense" if model.dense else "gated", n, tuple(rows),
                    model.flops_stem, model.flops_fc)


def gated_table(model: GatedNetwork, images: np.ndarray | torch.Tensor,
                batch_size: int = 64) -> MacTable:
    """Measured MACs of `model` in eval mode over `images` (float [N, 3, H, W]).

    The model's dense flag is respected (dense=True gives the dense counts back). The
    model is left in eval mode. Raises ValueError for an empty or wrongly shaped batch.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"images must be a non-empty [N, 3, H, W] array, got {list(x.shape)}")
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            outs.append(model.forward_gated(x[s:s + batch_size].float()))
    return table_from_outputs(model, outs)


_KIND = {"basic": "basic", "bottleneck": "bneck", "inverted_residual": "invres"}


def _si(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3f}{unit}"
    return f"{v:.0f}"


def format_table(table: MacTable, reference: Optional[MacTable] = None) -> str:
    """Human-readable table: one row per block, then stem, fc and totals.

    With `reference` (the dense table) the totals line also shows the MAC reduction.
    """
    head = (f"{'block':<12} {'kind':<6} {'C_in>C_out':>10} {'s':>1} {'out':>7} {'tile':>4} "
            f"{'grid':>5} {'conv MACs':>11} {'gate MACs':>10} {'full MACs':>11} {'density':>8}")
    title = (f"{table.arch}: {table.mode} MACs" +
             (f", mean over {table.images} images" if table.images else ""))
    lines = [title, head, "-" * len(head)]
    for b in table.blocks:
        grid = f"{b.grid_h}x{b.grid_w}" if b.gated else "-"
        lines.append(
            f"{b.name:<12} {_KIND[b.kind]:<6} {f'{b.in_channels}>{b.out_channels}':>10} "
            f"{b.stride:>1} {f'{b.out_h}x{b.out_w}':>7} {b.tile if b.gated else '-':>4} "
            f"{grid:>5} {b.conv_macs:>11.0f} {b.gate_macs:>10d} {b.full_macs:>11d} "
            f"{b.density:>8.2%}")
    lines.append(f"{'stem':<12} {'':<6} {'':>10} {'':>1} {'':>7} {'':>4} {'':>5} "
                 f"{table.stem_macs:>11d} {0:>10d} {table.stem_macs:>11d}")
    lines.append(f"{'fc':<12} {'':<6} {'':>10} {'':>1} {'':>7} {'':>4} {'':>5} "
                 f"{table.fc_macs:>11d} {0:>10d} {table.fc_macs:>11d}")
    lines.append("-" * len(head))
    total = (f"total: {table.total_macs:.0f} MACs ({_si(table.total_macs)}), dense "
             f"{table.dense_macs} ({_si(table.dense_macs)}), gates {table.gate_macs}, "
             f"density {table.density:.2%}")
    if reference is not None and table.total_macs > 0:
        total += f", reduction {reference.total_macs / table.total_macs:.2f}x"
    lines.append(total)
    return "\n".join(lines)
