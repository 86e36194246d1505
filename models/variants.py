"""dgfpga's own small DGNet variants (NOT official DGNet architectures): networks built from
the official blocks at the sizes of the embedded 32x32 dataset, so that what only exists
at ImageNet size in the official zoo can be trained and measured on this machine.

- `resdg29b_cifar10`: the CIFAR ResNet layout (3x3 stem 3->16, three stages with strides
  1/2/2 and spatial-gate tiles 4/2/2, global average pool, fc) with n = 3 official DGNet
  **Bottleneck** blocks per stage (`dgfpga_models.imagenet.Bottleneck`: 1x1 -> 3x3 -> 1x1,
  planes 16/32/64, x4 expansion, mask_s, mask_c1, mask_c2, projection shortcuts where the
  shape changes); depth 9n + 2 = 29. Used for the Bottleneck quantization fidelity on
  trained weights (docs/quantization.md).

They are kept apart from `ARCHS` (the official zoo, checked key for key against the
official code) in `VARIANTS`; `build_model` and checkpoint loading accept both.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cifar import CIFAR_STAGES
from .gated import GatedBlock, GatedNetwork, conv1x1
from .imagenet import Bottleneck
from .mask import DEFAULT_GATE_BIAS, DEFAULT_TAU


class ResNetCifarBottleneck(GatedNetwork):
    """CIFAR-layout DGNet ResNet of Bottleneck blocks (see the module docstring)."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10,
                 input_size: tuple[int, int] = (32, 32), tau: float = DEFAULT_TAU,
                 gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        n = blocks_per_stage
        self.arch = f"resdg{9 * n + 2}b_cifar10"
        self.num_classes = num_classes
        self.in_h, self.in_w = input_size
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.flops_stem = 9 * self.in_h * self.in_w * 16 * 3
        h, w, inplanes = self.in_h, self.in_w, 16
        for i, (planes, stride, tile) in enumerate(CIFAR_STAGES, start=1):
            layers = []
            for j in range(n):
                s = stride if j == 0 else 1
                downsample = None
                if s != 1 or inplanes != planes * Bottleneck.expansion:
                    downsample = nn.Sequential(conv1x1(inplanes, planes * Bottleneck.expansion, s),
                                               nn.BatchNorm2d(planes * Bottleneck.expansion))
                block = Bottleneck(inplanes, planes, h, w, tile, s, downsample, tau, gate_bias)
                layers.append(block)
                h, w, inplanes = block.out_h, block.out_w, planes * Bottleneck.expansion
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc = nn.Linear(inplanes, num_classes)
        self.flops_fc = inplanes * num_classes
        for m in self.modules():          # the CIFAR init (gate biases keep their constant)
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def blocks(self) -> list[GatedBlock]:
        return [*self.layer1, *self.layer2, *self.layer3]


def resdg29b_cifar10(**kwargs) -> ResNetCifarBottleneck:
    """dgfpga variant (not official): CIFAR-layout DGNet with 3 Bottlenecks per stage."""
    return ResNetCifarBottleneck(3, **kwargs)
