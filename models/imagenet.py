"""ImageNet DGNet ResNets (official `models/imagenet/resdg.py`): resdg18, resdg34 (BasicBlock)
and resdg50 (Bottleneck).

7x7/s2 stem (3->64) + BN + ReLU + 3x3/s2 max-pool, four stages of 64/128/256/512 planes,
strides 1/2/2/2, spatial-gate tiles 8/4/2/1, global average pool, fc. State-dict keys and
shapes are the official ones.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import cifar
from .gated import GatedBlock, GatedNetwork, conv1x1, conv3x3, conv_out_size
from .mask import DEFAULT_GATE_BIAS, DEFAULT_TAU, ChannelGate, NearestUpsample, SpatialGate
from .outputs import BlockMasks, BlockResult

#: (planes, stride, tile) of the four stages.
IMAGENET_STAGES = ((64, 1, 8), (128, 2, 4), (256, 2, 2), (512, 2, 1))
#: blocks per stage.
IMAGENET_LAYERS = {"resdg18": (2, 2, 2, 2), "resdg34": (3, 4, 6, 3), "resdg50": (3, 4, 6, 3)}


class BasicBlock(cifar.BasicBlock):
    """Gated BasicBlock with the official ImageNet MAC formula.

    Same structure and masking as `cifar.BasicBlock`; MACs count the active *pixels* of
    the upsampled mask (edge tiles at their real size): conv1 = 9 * pixels_on * ch_on *
    C_in, conv2 = 9 * pixels_on * ch_on * C_out, plus the dense downsample.
    """

    def conv_macs(self, masks: BlockMasks) -> torch.Tensor:
        """Executed conv MACs per image, [N] float64 (official ImageNet formula)."""
        pixels_on = masks.spatial_up.sum((1, 2, 3)).double()
        ch_on = masks.channel.sum((1, 2, 3)).double()
        return (9 * pixels_on * ch_on * self.in_channels
                + 9 * pixels_on * ch_on * self.out_channels + self.flops_downsample)


class Bottleneck(GatedBlock):
    """Gated Bottleneck (official attribute names conv1..3, bn1..3, mask_s, mask_c1,
    mask_c2, downsample).

    mask_s decides on the output grid; `spatial_in` (official mask_s1) is that grid
    upsampled to the block *input* (tile 2t in stride-2 blocks). eval:
        out1 = relu(bn1(conv1 x)) * mask_c1 * up_in(mask_s)
        mask_c2 = gate(out1)                      (depends on the masked conv1 output)
        out2 = relu(bn2(conv2 out1)) * mask_c2 * up(mask_s)
        out3 = bn3(conv3 out2) * up(mask_s)
        y    = relu(out3 + shortcut(x))
    train: out1, out2 are multiplied by their channel masks only (official).

    MACs (official): conv1 = pixels_in_on * c1_on * C_in, conv2 = 9 * pixels_on * c2_on *
    c1_on, conv3 = pixels_on * C_out * c2_on, plus the dense downsample.
    """

    kind = "bottleneck"
    expansion = 4

    def __init__(self, inplanes: int, planes: int, in_h: int, in_w: int, tile: int,
                 stride: int = 1, downsample: nn.Module | None = None,
                 tau: float = DEFAULT_TAU, gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        width, outplanes = planes, planes * self.expansion
        out_h, out_w = conv_out_size(in_h, 3, stride, 1), conv_out_size(in_w, 3, stride, 1)
        self.mask_s = SpatialGate(inplanes, in_h, in_w, out_h, out_w, tile, tau, gate_bias)
        self.upsample_in = NearestUpsample(self.mask_s.grid_h, self.mask_s.grid_w, in_h, in_w)
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.mask_c1 = ChannelGate(inplanes, width, tau, gate_bias)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.mask_c2 = ChannelGate(width, width, tau, gate_bias)
        self.conv3 = conv1x1(width, outplanes)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.downsample = downsample
        self.set_geometry(in_channels=inplanes, mid_channels=width, out_channels=outplanes,
                          stride=stride, in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w,
                          tile=tile, grid_h=self.mask_s.grid_h, grid_w=self.mask_s.grid_w)
        pixels = out_h * out_w
        self.flops_downsample = pixels * outplanes * inplanes if downsample is not None else 0
        self.flops_full = (in_h * in_w * width * inplanes + 9 * pixels * width * width
                           + pixels * width * outplanes + self.flops_downsample)
        self.gate_flops = (self.mask_s.get_flops() + self.mask_c1.get_flops()
                           + self.mask_c2.get_flops())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, BlockResult]:
        n = x.shape[0]
        if self.dense:
            grid = x.new_ones(n, 1, self.grid_h, self.grid_w)
            c1 = x.new_ones(n, self.mid_channels, 1, 1)
        else:
            grid, c1 = self.mask_s(x), self.mask_c1(x)
        s_in, s_out = self.upsample_in(grid), self.mask_s.upsample(grid)
        out = F.relu(self.bn1(self.conv1(x)))
        out = out * c1 if self.training else out * c1 * s_in
        c2 = x.new_ones(n, self.mid_channels, 1, 1) if self.dense else self.mask_c2(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = out * c2 if self.training else out * c2 * s_out
        out = self.bn3(self.conv3(out)) * s_out
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(out + shortcut)
        masks = BlockMasks(spatial=grid, spatial_up=s_out, channel=c1, channel2=c2,
                           spatial_in=s_in)
        return y, self.make_result(masks, [c1, c2], self.conv_macs(masks))

    def conv_macs(self, masks: BlockMasks) -> torch.Tensor:
        """Executed conv MACs per image, [N] float64 (official formula)."""
        pix_in = masks.spatial_in.sum((1, 2, 3)).double()
        pix = masks.spatial_up.sum((1, 2, 3)).double()
        c1 = masks.channel.sum((1, 2, 3)).double()
        c2 = masks.channel2.sum((1, 2, 3)).double()
        return (pix_in * c1 * self.in_channels + 9 * pix * c2 * c1
                + pix * self.out_channels * c2 + self.flops_downsample)


class ResDG(GatedNetwork):
    """DGNet ResNet for ImageNet (official `ResDG`); see the module docstring."""

    def __init__(self, arch: str, block: type, layers: tuple[int, ...], num_classes: int = 1000,
                 input_size: tuple[int, int] = (224, 224), tau: float = DEFAULT_TAU,
                 gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        self.arch, self.num_classes = arch, num_classes
        self.in_h, self.in_w = input_size
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        h, w = conv_out_size(self.in_h, 7, 2, 3), conv_out_size(self.in_w, 7, 2, 3)
        self.flops_stem = 49 * h * w * 64 * 3
        h, w = conv_out_size(h, 3, 2, 1), conv_out_size(w, 3, 2, 1)
        inplanes = 64
        for i, ((planes, stride, tile), count) in enumerate(zip(IMAGENET_STAGES, layers), 1):
            blocks = []
            for j in range(count):
                s = stride if j == 0 else 1
                downsample = None
                if s != 1 or inplanes != planes * block.expansion:
                    downsample = nn.Sequential(conv1x1(inplanes, planes * block.expansion, s),
                                               nn.BatchNorm2d(planes * block.expansion))
                b = block(inplanes, planes, h, w, tile, s, downsample, tau, gate_bias)
                blocks.append(b)
                h, w, inplanes = b.out_h, b.out_w, planes * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.flops_fc = 512 * block.expansion * num_classes
        for m in self.modules():
            # Official init; the gate biases keep their constant init.
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(F.relu(self.bn1(self.conv1(x))))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def blocks(self) -> list[GatedBlock]:
        return [*self.layer1, *self.layer2, *self.layer3, *self.layer4]


def resdg18(**kwargs) -> ResDG:
    """DGNet ResNet-18 for ImageNet."""
    return ResDG("resdg18", BasicBlock, IMAGENET_LAYERS["resdg18"], **kwargs)


def resdg34(**kwargs) -> ResDG:
    """DGNet ResNet-34 for ImageNet."""
    return ResDG("resdg34", BasicBlock, IMAGENET_LAYERS["resdg34"], **kwargs)


def resdg50(**kwargs) -> ResDG:
    """DGNet ResNet-50 for ImageNet."""
    return ResDG("resdg50", Bottleneck, IMAGENET_LAYERS["resdg50"], **kwargs)
