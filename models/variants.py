"""dgfpga's own small DGNet variants (NOT official DGNet architectures): networks built from
the official blocks at the sizes of the embedded 32x32 dataset, so that what only exists
at ImageNet size in the official zoo can be trained and measured on this machine.

- `resdg29b_cifar10`: the CIFAR ResNet layout (3x3 stem 3->16, three stages with strides
  1/2/2 and spatial-gate tiles 4/2/2, global average pool, fc) with n = 3 official DGNet
  **Bottleneck** blocks per stage (`dgfpga_models.imagenet.Bottleneck`: 1x1 -> 3x3 -> 1x1,
  planes 16/32/64, x4 expansion, mask_s, mask_c1, mask_c2, projection shortcuts where the
  shape changes); depth 9n + 2 = 29. Used for the Bottleneck quantization fidelity on
  trained weights (docs/quantization.md).
- `resdg11b_cifar10`: the same layout with n = 1 Bottleneck per stage (depth 11: three
  gated Bottlenecks, 16->64, 64->128 stride 2, 128->256 stride 2, each with a projection
  shortcut): the trained Bottleneck variant shipped in `models/checkpoints/` (43 % of
  resdg29b's MACs, which is what fits this machine's 2 shared CPU cores;
  models/MODEL_CARD.md).

They are kept apart from `ARCHS` (the official zoo, checked key for key against the
official code) in `VARIANTS`; `build_model` and checkpoint loading accept both.
"""
from __future__ import annotations

from .cifar import ResNetCifar
from .imagenet import Bottleneck


class ResNetCifarBottleneck(ResNetCifar):
    """CIFAR-layout DGNet ResNet of Bottleneck blocks (see the module docstring): the
    official CIFAR network's stem, stages, init and head with `block = Bottleneck` and
    depth 9n + 2 (three layers per block)."""

    block = Bottleneck

    def _blocks_per_stage(self, depth: int) -> int:
        if depth < 11 or (depth - 2) % 9:
            raise ValueError(f"a CIFAR Bottleneck ResNet has depth 9n + 2 (n >= 1), got {depth}")
        self.arch = f"resdg{depth}b_cifar10"
        return (depth - 2) // 9


def resdg29b_cifar10(**kwargs) -> ResNetCifarBottleneck:
    """dgfpga variant (not official): CIFAR-layout DGNet with 3 Bottlenecks per stage."""
    return ResNetCifarBottleneck(29, **kwargs)


def resdg11b_cifar10(**kwargs) -> ResNetCifarBottleneck:
    """dgfpga variant (not official): CIFAR-layout DGNet with 1 Bottleneck per stage."""
    return ResNetCifarBottleneck(11, **kwargs)
