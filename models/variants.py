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
- `mobilenet_v2dg9_cifar10`: a reduced **MobileNetV2** DGNet for 32x32 inputs from the
  official blocks (`dgfpga_models.mobilenet_v2.InvertedResidual`, `ConvBNReLU`; official semantics:
  gates on the identity blocks only, mask_s / mask_c as the official code): a 3x3 stride-1
  stem 3->16, the official stage table scaled to 32x32 (`MBV2_CIFAR_STAGES`: 16 ->
  8 -> 16 -> 24 -> 32 -> 48 output channels, strides 1/2/2/2/1, expansion 6 after the
  first stage), a 1x1 tail to 256 channels (every channel count <= 512: the `ultra96`
  engine's limits), mean pooling and a linear classifier. 9 blocks of which 4 are gated
  (16x16 map, tile 2, 8x8 grid; two 8x8 maps, tile 2, 4x4 grids; 4x4 map, tile 2, 2x2
  grid: every tile grid is an exact tiling of its map, so the pooling bins are unions of
  tiles and no layer needs per-pixel sums). 4,793,088 dense MACs (official counting,
  `docs/models.md`). Its name starts with `mobilenet` (the quantizer quantizes such
  architectures as MobileNetV2s) and ends with `_cifar10` (the embedded data's input
  normalisation, `dgfpga.data.images.normalization_for`).

They are kept apart from `ARCHS` (the official zoo, checked key for key against the
official code) in `VARIANTS`; `build_model` and checkpoint loading accept both.
"""
from __future__ import annotations

from .cifar import ResNetCifar
from .gated import GatedNetwork
from .imagenet import Bottleneck
from .mask import DEFAULT_GATE_BIAS, DEFAULT_TAU
from .mobilenet_v2 import MobileNetV2DG


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


#: (expand ratio t, output channels c, repeats n, first stride s, tile) per stage of
#: `mobilenet_v2dg9_cifar10`: the official MobileNetV2 table (`MOBILENET_V2_STAGES`) cut to
#: its first five stages with fewer repeats and narrower outputs (8/16/24/32/48 for the
#: official 16/24/32/64/96), strides for a 32x32 input (maps 32, 32, 16, 8, 4, 4).
#: Gated blocks (stride 1, in == out) get the tile: 16x16 -> 2 (8x8 grid), 8x8 -> 2 (4x4),
#: 4x4 -> 2 (2x2); the first block of each stage changes the shape and is not gated.
MBV2_CIFAR_STAGES = (
    (1, 8, 1, 1, 4),
    (6, 16, 2, 2, 2),
    (6, 24, 3, 2, 2),
    (6, 32, 2, 2, 2),
    (6, 48, 1, 1, 2),
)
MBV2_CIFAR_STEM = 16      # stem output channels (3x3, stride 1: 32x32 inputs)
MBV2_CIFAR_LAST = 256     # tail 1x1 conv output channels (<= ultra96's 512)


class MobileNetV2DGCifar(MobileNetV2DG):
    """dgfpga variant (not official): the official DGNet MobileNetV2 (`MobileNetV2DG`: the
    same `features` / `classifier` layout, blocks, gates, init and MAC accounting) with the
    32x32 stage table `MBV2_CIFAR_STAGES`, a stride-1 stem of `MBV2_CIFAR_STEM` channels and
    a tail of `MBV2_CIFAR_LAST` channels (module docstring)."""

    def __init__(self, num_classes: int = 10, input_size: tuple[int, int] = (32, 32),
                 tau: float = DEFAULT_TAU, gate_bias: float = DEFAULT_GATE_BIAS,
                 stages: tuple = MBV2_CIFAR_STAGES, stem_channels: int = MBV2_CIFAR_STEM,
                 last_channels: int = MBV2_CIFAR_LAST):
        """`stages`, `stem_channels`, `last_channels`: the shipped network's by default;
        tests build smaller networks of the same family with them (e.g. one that fits the
        `small` engine's 64-channel limit); checkpoints are always of the default one."""
        GatedNetwork.__init__(self)      # MobileNetV2DG.__init__ builds the 224x224 table
        self.arch, self.num_classes = "mobilenet_v2dg9_cifar10", num_classes
        self._build(input_size, stages, stem_channels, 1, last_channels, tau, gate_bias)


def mobilenet_v2dg9_cifar10(**kwargs) -> MobileNetV2DGCifar:
    """dgfpga variant (not official): a reduced MobileNetV2 DGNet for 32x32 inputs."""
    return MobileNetV2DGCifar(**kwargs)
