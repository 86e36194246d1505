"""CIFAR-10 DGNet ResNets (official `models/cifar/resdg.py`): resdg20/32/56/110_cifar10.

3x3 stem (3->16), three stages of n = (depth-2)/6 BasicBlocks with 16/32/64 channels,
strides 1/2/2 and spatial-gate tiles 4/2/2, global average pool, fc. State-dict keys
and shapes are the official ones.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gated import GatedBlock, GatedNetwork, conv3x3, conv_out_size
from .mask import DEFAULT_GATE_BIAS, DEFAULT_TAU, ChannelGate, SpatialGate
from .outputs import BlockMasks, BlockResult

#: (channels, stride, tile) of the three stages.
CIFAR_STAGES = ((16, 1, 4), (32, 2, 2), (64, 2, 2))
CIFAR_DEPTHS = (20, 32, 56, 110)


class BasicBlock(GatedBlock):
    """Gated ResNet BasicBlock (official attribute names conv1, bn1, conv2, bn2,
    downsample, mask_s, mask_c).

    eval:  out1 = relu(bn1(conv1 x)) * mask_c * up(mask_s)
           out2 = bn2(conv2 out1) * up(mask_s)
           y    = relu(out2 + shortcut(x))        shortcut = downsample(x) or x, dense
    train: as eval but out1 is not multiplied by up(mask_s) (official training mode).

    MACs (official CIFAR `get_flops`): conv1 = 9 * tile^2 * tiles_on * ch_on * C_in,
    conv2 = 9 * tile^2 * tiles_on * C_out * ch_on (edge tiles counted whole), plus the
    dense downsample `out_h * out_w * C_out * C_in`.
    """

    kind = "basic"
    expansion = 1

    def __init__(self, inplanes: int, planes: int, in_h: int, in_w: int, tile: int,
                 stride: int = 1, downsample: nn.Module | None = None,
                 tau: float = DEFAULT_TAU, gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        out_h, out_w = conv_out_size(in_h, 3, stride, 1), conv_out_size(in_w, 3, stride, 1)
        self.mask_s = SpatialGate(inplanes, in_h, in_w, out_h, out_w, tile, tau, gate_bias)
        self.mask_c = ChannelGate(inplanes, planes, tau, gate_bias)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.set_geometry(in_channels=inplanes, mid_channels=planes, out_channels=planes,
                          stride=stride, in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w,
                          tile=tile, grid_h=self.mask_s.grid_h, grid_w=self.mask_s.grid_w)
        pixels = out_h * out_w
        self.flops_downsample = pixels * planes * inplanes if downsample is not None else 0
        self.flops_full = (9 * pixels * planes * inplanes + 9 * pixels * planes * planes
                           + self.flops_downsample)
        self.gate_flops = self.mask_s.get_flops() + self.mask_c.get_flops()

    def decide(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(grid mask [N,1,gh,gw], channel mask [N,C_out,1,1]); all ones in dense mode."""
        if self.dense:
            n = x.shape[0]
            return (x.new_ones(n, 1, self.grid_h, self.grid_w),
                    x.new_ones(n, self.out_channels, 1, 1))
        return self.mask_s(x), self.mask_c(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, BlockResult]:
        grid, chan = self.decide(x)
        up = self.mask_s.upsample(grid)
        out = F.relu(self.bn1(self.conv1(x)))
        out = out * chan if self.training else out * chan * up
        out = self.bn2(self.conv2(out)) * up
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(out + shortcut)
        masks = BlockMasks(spatial=grid, spatial_up=up, channel=chan)
        return y, self.make_result(masks, [chan], self.conv_macs(masks))

    def conv_macs(self, masks: BlockMasks) -> torch.Tensor:
        """Executed conv MACs per image, [N] float64 (official CIFAR formula)."""
        pixels_on = masks.spatial.sum((1, 2, 3)).double() * (self.tile * self.tile)
        ch_on = masks.channel.sum((1, 2, 3)).double()
        return (9 * pixels_on * ch_on * self.in_channels
                + 9 * pixels_on * self.out_channels * ch_on + self.flops_downsample)


class ResNetCifar(GatedNetwork):
    """DGNet ResNet for CIFAR-10 (official `ResNetCifar10`); see the module docstring.

    The head is a global average pool (the official `AvgPool2d(8)` on the 8x8 map of a
    32x32 input: identical there, and defined for other input sizes).
    """

    #: the residual block of every stage (dgfpga_models.variants swaps in the Bottleneck)
    block: type = BasicBlock

    def __init__(self, depth: int, num_classes: int = 10, input_size: tuple[int, int] = (32, 32),
                 tau: float = DEFAULT_TAU, gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        n = self._blocks_per_stage(depth)
        self.num_classes = num_classes
        self.in_h, self.in_w = input_size
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.flops_stem = 9 * self.in_h * self.in_w * 16 * 3
        h, w, inplanes = self.in_h, self.in_w, 16
        expansion = self.block.expansion
        for i, (planes, stride, tile) in enumerate(CIFAR_STAGES, start=1):
            layers = []
            for j in range(n):
                s = stride if j == 0 else 1
                downsample = None
                if s != 1 or inplanes != planes * expansion:
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * expansion, kernel_size=1, stride=s, bias=False),
                        nn.BatchNorm2d(planes * expansion))
                block = self.block(inplanes, planes, h, w, tile, s, downsample, tau, gate_bias)
                layers.append(block)
                h, w, inplanes = block.out_h, block.out_w, planes * expansion
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc = nn.Linear(inplanes, num_classes)
        self.flops_fc = inplanes * num_classes
        self._init_weights()

    def _blocks_per_stage(self, depth: int) -> int:
        """Blocks per stage of the official depths 6n + 2 (sets `arch`)."""
        if depth not in CIFAR_DEPTHS:
            raise ValueError(f"CIFAR ResNet depth must be one of {CIFAR_DEPTHS}, got {depth}")
        self.arch = f"resdg{depth}_cifar10"
        return (depth - 2) // 6

    def _init_weights(self) -> None:
        # Official init: conv N(0, sqrt(2 / (k*k*out))), BN weight 1 / bias 0; the gate
        # biases keep their constant init.
        for m in self.modules():
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


def resdg20_cifar10(**kwargs) -> ResNetCifar:
    """DGNet ResNet-20 for CIFAR-10."""
    return ResNetCifar(20, **kwargs)


def resdg32_cifar10(**kwargs) -> ResNetCifar:
    """DGNet ResNet-32 for CIFAR-10."""
    return ResNetCifar(32, **kwargs)


def resdg56_cifar10(**kwargs) -> ResNetCifar:
    """DGNet ResNet-56 for CIFAR-10."""
    return ResNetCifar(56, **kwargs)


def resdg110_cifar10(**kwargs) -> ResNetCifar:
    """DGNet ResNet-110 for CIFAR-10."""
    return ResNetCifar(110, **kwargs)
