"""Common machinery of the zoo: the gated-block base, the network base with
`forward` / `forward_gated`, dense mode, and the conv helpers of the official code.

A gated block's `forward(x)` returns `(y, BlockResult)`; the network runs its stem,
its blocks in order and its head, and assembles a `GatedOutput`. Every block exposes
its geometry as plain attributes (see `GatedBlock`).
"""
from __future__ import annotations

import abc

import torch
import torch.nn as nn

from .mask import l1_norm
from .outputs import BlockMasks, BlockResult, GatedOutput


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution / pooling (floor mode, dilation 1)."""
    return (size + 2 * padding - kernel) // stride + 1


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (official `conv3x3`)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (official `conv1x1`)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class GatedBlock(nn.Module):
    """Base of every block of the zoo.

    Geometry attributes (set by the subclass, read by the quantizer and the MAC table):
    `kind` ("basic", "bottleneck", "inverted_residual"), `gated` (False only for the
    ungated MobileNetV2 blocks), `in_channels`, `mid_channels` (conv1 / expansion output
    channels: the channel-gated ones), `out_channels`, `stride`, `in_h`, `in_w`,
    `out_h`, `out_w`, `tile`, `grid_h`, `grid_w` (0 when ungated), and the official MAC
    constants `flops_full` (dense block MACs) and `gate_flops` (gate MACs), ints.

    `dense` (set through the network) forces every gate on: masks are ones, the gate
    networks are not run and the block reports its dense MACs with no gate overhead.
    """

    kind: str
    gated: bool = True
    dense: bool = False

    def set_geometry(self, *, in_channels: int, mid_channels: int, out_channels: int,
                     stride: int, in_h: int, in_w: int, out_h: int, out_w: int, tile: int,
                     grid_h: int, grid_w: int) -> None:
        """Record the block's geometry as attributes (see the class docstring)."""
        self.in_channels, self.mid_channels, self.out_channels = (
            in_channels, mid_channels, out_channels)
        self.stride = stride
        self.in_h, self.in_w, self.out_h, self.out_w = in_h, in_w, out_h, out_w
        self.tile, self.grid_h, self.grid_w = tile, grid_h, grid_w

    @property
    def flops_mask(self) -> int:
        """Gate MACs this block spends in the current mode (0 in dense mode)."""
        return 0 if self.dense else self.gate_flops

    def make_result(self, masks: BlockMasks, channel_masks: list[torch.Tensor],
                    conv_macs: torch.Tensor) -> BlockResult:
        """Package masks, norms and MACs; in dense mode the MACs are the dense counts."""
        n = masks.spatial.shape[0]
        if self.dense:
            conv_macs = torch.full((n,), float(self.flops_full), dtype=torch.float64,
                                   device=masks.spatial.device)
        return BlockResult(
            masks=masks,
            norm_s=l1_norm(masks.spatial),
            norm_s_t=self.grid_h * self.grid_w,
            norm_c=[l1_norm(m) for m in channel_masks],
            norm_c_t=[m.shape[1] for m in channel_masks],
            flops_real=conv_macs,
            flops_mask=self.flops_mask,
            flops_full=self.flops_full,
        )


class GatedNetwork(nn.Module, abc.ABC):
    """Base of the zoo's networks.

    Subclasses set `arch`, `num_classes`, `in_h`, `in_w`, `flops_stem`, `flops_fc` and
    implement `stem(x)`, `head(x)` and `blocks()` (all blocks, network order).
    `forward(x)` returns the logits; `forward_gated(x)` returns a `GatedOutput`.
    In eval mode the masks are deterministic (logit >= 0) and the masked-execution
    semantics of DESIGN.md section 3 hold; in training mode they are Gumbel samples and
    the official training-mode masking applies.
    """

    arch: str
    num_classes: int
    in_h: int
    in_w: int
    flops_stem: int
    flops_fc: int

    @abc.abstractmethod
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The dense layers before the first gated block."""

    @abc.abstractmethod
    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Pooling and classifier after the last block."""

    @abc.abstractmethod
    def blocks(self) -> list[GatedBlock]:
        """The gated blocks in network order."""

    @property
    def dense(self) -> bool:
        """True when every gate is forced on (dense baseline); same parameters either way."""
        return all(b.dense for b in self.blocks())

    @dense.setter
    def dense(self, value: bool) -> None:
        for b in self.blocks():
            b.dense = bool(value)

    @property
    def input_size(self) -> tuple[int, int]:
        """The (H, W) the network was built for; inputs must have exactly this size."""
        return (self.in_h, self.in_w)

    @property
    def dense_macs(self) -> int:
        """Dense MACs of the whole network (blocks + stem + fc, no gates)."""
        return sum(b.flops_full for b in self.blocks()) + self.flops_stem + self.flops_fc

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless x is `[N, 3, in_h, in_w]`."""
        if x.dim() != 4 or x.shape[1] != 3 or (x.shape[2], x.shape[3]) != (self.in_h, self.in_w):
            raise ValueError(
                f"{self.arch} was built for inputs [N, 3, {self.in_h}, {self.in_w}], got "
                f"{list(x.shape)}; build the model with input_size=(H, W) for other sizes")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[N, num_classes]`."""
        return self.forward_gated(x).logits

    def forward_gated(self, x: torch.Tensor) -> GatedOutput:
        """Logits plus every block's masks, norms and MAC counts (see `GatedOutput`)."""
        self.check_input(x)
        h = self.stem(x)
        results = []
        for block in self.blocks():
            h, result = block(h)
            results.append(result)
        return self._assemble(self.head(h), results)

    def _assemble(self, logits: torch.Tensor, results: list[BlockResult]) -> GatedOutput:
        dev = logits.device
        f64 = dict(dtype=torch.float64, device=dev)
        flops_real = torch.stack([r.flops_real for r in results], dim=1)
        flops_mask = torch.tensor([r.flops_mask for r in results], **f64)
        flops_full = torch.tensor([r.flops_full for r in results], **f64)
        extra = self.flops_stem + self.flops_fc
        macs = flops_real.sum(1) + flops_mask.sum() + extra
        dense_macs = int(sum(r.flops_full for r in results)) + extra
        return GatedOutput(
            logits=logits,
            masks=[r.masks for r in results],
            norm_s=torch.stack([r.norm_s for r in results], dim=1),
            norm_s_t=torch.tensor([float(r.norm_s_t) for r in results], device=dev),
            norm_c=torch.stack([c for r in results for c in r.norm_c], dim=1),
            norm_c_t=torch.tensor([float(t) for r in results for t in r.norm_c_t], device=dev),
            flops_real=flops_real,
            flops_mask=flops_mask,
            flops_full=flops_full,
            flops_stem=self.flops_stem,
            flops_fc=self.flops_fc,
            macs=macs,
            dense_macs=dense_macs,
            density=macs / dense_macs,
        )
