"""MobileNetV2 with dual gating (official `models/mobilenet_v2/mobilenet_v2_dg{,_util}.py`):
mobilenet_v2_dg (width 1.0).

features.0 is the 3x3/s2 stem (ConvBNReLU6), features.1..17 the inverted residual blocks,
features.18 the final 1x1 ConvBNReLU6 to 1280 channels, then mean pooling and
classifier = (Dropout(0.2), Linear). Only the blocks with a residual connection
(stride 1, in == out channels) are gated. State-dict keys and shapes are the official
ones. The official MAC accounting counts the final 1x1 conv in `flops_fc` and counts the
stem as `3*h*w*3*32` (a third of its real MACs); both are kept.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .gated import GatedBlock, GatedNetwork, conv_out_size
from .mask import DEFAULT_GATE_BIAS, DEFAULT_TAU, ChannelGate, NearestUpsample, SpatialGate
from .outputs import BlockMasks, BlockResult

#: (expand ratio t, output channels c, repeats n, first stride s, tile) per stage
#: (official `inverted_residual_setting`, width multiplier 1.0).
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1, 16),
    (6, 24, 2, 2, 8),
    (6, 32, 3, 2, 4),
    (6, 64, 4, 2, 2),
    (6, 96, 3, 1, 2),
    (6, 160, 3, 2, 2),
    (6, 320, 1, 1, 2),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class ConvBNReLU(nn.Sequential):
    """Conv (padding (k-1)/2, no bias) + BN + ReLU6; keys `0.weight`, `1.*`."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1):
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(GatedBlock):
    """Inverted residual block; gated when it has a residual connection.

    `conv` = [expand ConvBNReLU 1x1 (if t != 1)], depthwise ConvBNReLU 3x3, pw-linear
    Conv 1x1, BN. For gated blocks, mask_c (on the block input, one decision per
    expanded channel) and mask_s (tile grid of the output) give, in eval mode:
        e = expand(x) * up(mask_s)                 (official mask_s1, input resolution)
        d = dw(e) * mask_c * up(mask_s)
        y = bn(pw(d)) * up(mask_s) + x
    in training: d = dw(expand(x)) * mask_c, y = bn(pw(d)) * up(mask_s) + x (official).
    Ungated blocks run densely and report norms equal to their targets (official).

    MACs (official): dw = 9 * pixels_on * ch_on, pw = pixels_on * ch_on * C_out,
    expand = pixels_on * ch_on * C_in; dense: 9*HW*hidden + HW*hidden*C_out + HW_in*hidden*C_in.
    """

    kind = "inverted_residual"

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, in_h: int,
                 in_w: int, tile: int, tau: float = DEFAULT_TAU,
                 gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        out_h, out_w = conv_out_size(in_h, 3, stride, 1), conv_out_size(in_w, 3, stride, 1)
        hidden = int(round(inp * expand_ratio))
        self.expand_ratio = expand_ratio
        self.gated = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel_size=1))
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        if self.gated:
            self.mask_c = ChannelGate(inp, hidden, tau, gate_bias)
            self.mask_s = SpatialGate(inp, in_h, in_w, out_h, out_w, tile, tau, gate_bias)
            # Official `upsample1`: the grid mask at the input resolution (equal to the
            # output resolution here, since gated blocks have stride 1).
            self.upsample_in = NearestUpsample(self.mask_s.grid_h, self.mask_s.grid_w,
                                               in_h, in_w)
            grid_h, grid_w, self.gate_flops = (self.mask_s.grid_h, self.mask_s.grid_w,
                                               self.mask_s.get_flops() + self.mask_c.get_flops())
        else:
            tile, grid_h, grid_w, self.gate_flops = 0, 0, 0, 0
        self.set_geometry(in_channels=inp, mid_channels=hidden, out_channels=oup, stride=stride,
                          in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w, tile=tile,
                          grid_h=grid_h, grid_w=grid_w)
        pixels = out_h * out_w
        self.flops_full = 9 * pixels * hidden + pixels * hidden * oup
        if expand_ratio != 1:
            self.flops_full += in_h * in_w * hidden * inp

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, BlockResult]:
        if not self.gated:
            return self.conv(x), self._ungated_result(x.shape[0], x.device)
        n = x.shape[0]
        if self.dense:
            grid = x.new_ones(n, 1, self.grid_h, self.grid_w)
            chan = x.new_ones(n, self.mid_channels, 1, 1)
        else:
            chan, grid = self.mask_c(x), self.mask_s(x)
        s_in, s_out = self.upsample_in(grid), self.mask_s.upsample(grid)
        expand, dw, pw, bn = self.conv
        if self.training:
            out = dw(expand(x)) * chan
        else:
            out = dw(expand(x) * s_in) * chan * s_out
        y = bn(pw(out)) * s_out + x
        masks = BlockMasks(spatial=grid, spatial_up=s_out, channel=chan, spatial_in=s_in)
        return y, self.make_result(masks, [chan], self.conv_macs(masks))

    def conv_macs(self, masks: BlockMasks) -> torch.Tensor:
        """Executed conv MACs per image, [N] float64 (official formula)."""
        pix = masks.spatial_up.sum((1, 2, 3)).double()
        pix_in = masks.spatial_in.sum((1, 2, 3)).double()
        ch = masks.channel.sum((1, 2, 3)).double()
        return 9 * pix * ch + pix * ch * self.out_channels + pix_in * ch * self.in_channels

    def _ungated_result(self, n: int, device: torch.device) -> BlockResult:
        pixels = self.out_h * self.out_w
        full = torch.full((n,), float(self.flops_full), dtype=torch.float64, device=device)
        return BlockResult(
            masks=None,
            norm_s=torch.full((n,), float(pixels), device=device),
            norm_s_t=pixels,
            norm_c=[torch.full((n,), float(self.mid_channels), device=device)],
            norm_c_t=[self.mid_channels],
            flops_real=full,
            flops_mask=0,
            flops_full=self.flops_full,
        )


class MobileNetV2DG(GatedNetwork):
    """MobileNetV2 with dual gating (official `MobileNetV2`, width 1.0)."""

    def __init__(self, num_classes: int = 1000, input_size: tuple[int, int] = (224, 224),
                 tau: float = DEFAULT_TAU, gate_bias: float = DEFAULT_GATE_BIAS):
        super().__init__()
        self.arch, self.num_classes = "mobilenet_v2_dg", num_classes
        self._build(input_size, MOBILENET_V2_STAGES, STEM_CHANNELS, 2, LAST_CHANNELS, tau,
                    gate_bias)

    def _build(self, input_size: tuple[int, int], stages: tuple, stem_channels: int,
               stem_stride: int, last_channels: int, tau: float, gate_bias: float) -> None:
        """The official MobileNetV2 layout from a stage table `(t, c, n, s, tile)`: stem
        3x3/`stem_stride` 3 -> `stem_channels`, the inverted residuals, the 1x1 tail to
        `last_channels`, the classifier, the official MAC accounting and init (shared with
        dgfpga's reduced variant, `dgfpga_models.variants.MobileNetV2DGCifar`)."""
        self.in_h, self.in_w = input_size
        h = conv_out_size(self.in_h, 3, stem_stride, 1)
        w = conv_out_size(self.in_w, 3, stem_stride, 1)
        # Official count `3 * h * w * 3 * C`: a third of the stem's true 27*h*w*C MACs;
        # kept so that densities equal the official ones.
        self.flops_stem = 3 * h * w * 3 * stem_channels
        features: list[nn.Module] = [ConvBNReLU(3, stem_channels, stride=stem_stride)]
        inp = stem_channels
        for t, c, n, s, tile in stages:
            for i in range(n):
                block = InvertedResidual(inp, c, s if i == 0 else 1, t, h, w, tile, tau,
                                         gate_bias)
                if block.gated and block.expand_ratio == 1:
                    # InvertedResidual's gated path needs the expansion layer (official)
                    raise ValueError(f"stage {(t, c, n, s, tile)}: block {len(features)} is an "
                                     f"identity block (gated) with expand ratio t = 1; a gated "
                                     f"block needs t > 1 (or change its channels or stride)")
                features.append(block)
                h, w, inp = block.out_h, block.out_w, c
        features.append(ConvBNReLU(inp, last_channels, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channels, self.num_classes))
        # Official: the final 1x1 conv is counted with the classifier.
        self.flops_fc = inp * last_channels * h * w + self.num_classes * last_channels
        for m in self.modules():
            # Official init: this zeroes the gate biases too (unlike the ResNets).
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.features[0](x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features[-1](x).mean(dim=(2, 3)))

    def blocks(self) -> list[GatedBlock]:
        return list(self.features)[1:-1]


def mobilenet_v2_dg(**kwargs) -> MobileNetV2DG:
    """MobileNetV2 (width 1.0) with dual gating on its residual blocks."""
    return MobileNetV2DG(**kwargs)
