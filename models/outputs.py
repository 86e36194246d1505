"""What `forward_gated` returns: the logits plus every block's masks, norms and MACs.

Shapes (N images, B gated blocks, B' channel gates: B' = B for BasicBlock and
MobileNetV2 networks, 2B for Bottleneck networks):

* masks are 0/1 float tensors; in training mode they are the straight-through samples
  (value 0/1, gradient of the soft gate); in dense mode they are all ones.
* MAC counts follow the official `get_flops` (multiply-accumulates) and are float64
  tensors (exact integers), differentiable with respect to the masks in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class BlockMasks:
    """The masks of one gated block.

    spatial:    [N, 1, grid_h, grid_w] grid decision (official `mask_s_m`).
    spatial_up: [N, 1, out_h, out_w] the grid mask upsampled to the block's output.
    channel:    [N, C, 1, 1] channel decision: conv1's output channels (BasicBlock,
                Bottleneck `mask_c1`), the expanded channels (MobileNetV2).
    channel2:   Bottleneck only: [N, width, 1, 1] `mask_c2` (conv2's output channels).
    spatial_in: Bottleneck / MobileNetV2 only: [N, 1, in_h, in_w] the grid mask
                upsampled to the block's input (official `mask_s1`).
    """

    spatial: torch.Tensor
    spatial_up: torch.Tensor
    channel: torch.Tensor
    channel2: Optional[torch.Tensor] = None
    spatial_in: Optional[torch.Tensor] = None


@dataclass
class BlockResult:
    """One block's contribution to a `GatedOutput` (internal to the zoo).

    norm_s: [N] L1 norm of the grid mask; norm_s_t: grid cells.
    norm_c: per channel gate, [N] L1 norm; norm_c_t: per channel gate, gated channels.
    flops_real: [N] executed conv MACs (float64); flops_mask / flops_full: python ints.
    """

    masks: Optional[BlockMasks]
    norm_s: torch.Tensor
    norm_s_t: int
    norm_c: list[torch.Tensor]
    norm_c_t: list[int]
    flops_real: torch.Tensor
    flops_mask: int
    flops_full: int


@dataclass
class GatedOutput:
    """Logits, masks and MAC accounting of one gated forward pass.

    logits:     [N, K].
    masks:      one `BlockMasks` per block, network order (None for the ungated
                MobileNetV2 blocks, which still count in B).
    norm_s:     [N, B] spatial-mask L1 norms; norm_s_t: [B] grid cells per block.
    norm_c:     [N, B'] channel-mask L1 norms; norm_c_t: [B'] gated channels per gate.
    flops_real: [N, B] executed conv MACs per block (conv1/conv2[/conv3] on the active
                tiles and channels + the dense downsample), float64.
    flops_mask: [B] gate MACs per block (0 in dense mode), float64.
    flops_full: [B] dense MACs per block, float64.
    flops_stem, flops_fc: dense MACs of the stem conv and the classifier (ints).
    macs:       [N] total executed MACs per image = blocks + gates + stem + fc (+ the
                ungated layers of MobileNetV2), float64.
    dense_macs: the dense total (no gates), int.
    density:    [N] = macs / dense_macs (official definition; can exceed 1 because of
                the gates).
    """

    logits: torch.Tensor
    masks: list[Optional[BlockMasks]]
    norm_s: torch.Tensor
    norm_s_t: torch.Tensor
    norm_c: torch.Tensor
    norm_c_t: torch.Tensor
    flops_real: torch.Tensor
    flops_mask: torch.Tensor
    flops_full: torch.Tensor
    flops_stem: int
    flops_fc: int
    macs: torch.Tensor
    dense_macs: int
    density: torch.Tensor
