"""Layer shapes of the DGNet ResNets, without torch: the one table for shape-only tools.

The cycle model and benchmarks use it to predict a network without a trained model. The
shapes are those of the official code (torchvision ResNet for ImageNet: 7x7/2 stem +
3x3/2 max-pool, stages 64/128/256/512 at 56/28/14/7 with DGNet tiles 8/4/2/1; CIFAR
ResNets: 3x3 stem, stages 16/32/64 at 32/16/8 with tiles 4/2/2, 1x1/2 conv shortcuts).
MACs follow the official counting: multiply-accumulates of every conv at its output
resolution, gates included (spatial: 3x3 conv C_in->1 on the grid; channel: two 1x1
convs C_in->C_in/4->C_out), plus the fc.

`shape_plan(net, cfg)` packs a network from its shapes alone (`shape_qmodel`: zero
weights, no gates, identity blocks in place as the quantizer's default residual-scale tying
makes them) with the engine's own packer, so shape-only predictions price exactly the
layers and work lists the scheduler emits for a trained model of the same architecture.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dgfpga.errors import ConfigError


def gate_macs(in_c: int, out_c: int, n_tiles: int) -> int:
    """MACs of one block's gates, official counting (`dgfpga.numerics.gates`): the spatial
    gate's 3x3 conv C_in -> 1 on the grid, the channel gate's 1x1 convs C_in -> C_in/4 ->
    C_out."""
    from dgfpga.numerics.gates import channel_gate_macs, spatial_gate_macs
    return spatial_gate_macs((n_tiles, 1), in_c) + channel_gate_macs(in_c, in_c // 4, out_c)


@dataclass(frozen=True)
class ConvShape:
    name: str
    k: int
    stride: int
    in_h: int
    in_w: int
    in_c: int
    out_c: int
    maxpool: bool = False      # a 3x3/s2/pad1 max-pool follows (ImageNet stem)
    groups: int = 1            # in_c = groups: depthwise (MobileNetV2)

    @property
    def pad(self) -> int:
        return self.k // 2

    @property
    def conv_h(self) -> int:
        return (self.in_h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def conv_w(self) -> int:
        return (self.in_w + 2 * self.pad - self.k) // self.stride + 1

    @property
    def out_h(self) -> int:
        return (self.conv_h + 2 - 3) // 2 + 1 if self.maxpool else self.conv_h

    @property
    def out_w(self) -> int:
        return (self.conv_w + 2 - 3) // 2 + 1 if self.maxpool else self.conv_w

    @property
    def macs(self) -> int:
        return (self.conv_h * self.conv_w * self.out_c * (self.in_c // self.groups)
                * self.k * self.k)


class _BlockGeometry:
    """What a BasicBlock and a Bottleneck share: the 1x1/stride projection shortcut (unless
    stride 1 and in_c == out_c) and the spatial gate's tile grid over the block output
    (`out_h`, `out_w`, `tile` of the block)."""

    @property
    def shortcut(self) -> Optional[ConvShape]:
        if self.identity:
            return None
        return ConvShape(f"{self.name}.downsample", 1, self.stride, self.in_h, self.in_w,
                         self.in_c, self.out_c)

    @property
    def identity(self) -> bool:
        return self.stride == 1 and self.in_c == self.out_c

    @property
    def grid_h(self) -> int:
        return -(-self.out_h // self.tile)

    @property
    def grid_w(self) -> int:
        return -(-self.out_w // self.tile)

    @property
    def n_tiles(self) -> int:
        return self.grid_h * self.grid_w


@dataclass(frozen=True)
class BlockShape(_BlockGeometry):
    """A DGNet BasicBlock: conv1 (output-gated), optional 1x1/2 shortcut, conv2 (input-gated)."""
    name: str
    in_h: int
    in_w: int
    in_c: int
    out_c: int
    stride: int
    tile: int

    @property
    def conv1(self) -> ConvShape:
        return ConvShape(f"{self.name}.conv1", 3, self.stride, self.in_h, self.in_w,
                         self.in_c, self.out_c)

    @property
    def conv2(self) -> ConvShape:
        c1 = self.conv1
        return ConvShape(f"{self.name}.conv2", 3, 1, c1.out_h, c1.out_w, self.out_c, self.out_c)

    @property
    def out_h(self) -> int:
        return self.conv1.out_h

    @property
    def out_w(self) -> int:
        return self.conv1.out_w

    @property
    def gate_macs(self) -> int:
        return gate_macs(self.in_c, self.out_c, self.n_tiles)

    @property
    def dense_macs(self) -> int:
        sc = self.shortcut
        return self.conv1.macs + self.conv2.macs + (sc.macs if sc else 0)


    @property
    def gated_c(self) -> int:
        """Channels the channel gate decides (conv1's outputs)."""
        return self.out_c


@dataclass(frozen=True)
class BottleneckShape(_BlockGeometry):
    """A DGNet Bottleneck block (official: torchvision v1.5, stride on the 3x3): conv1 1x1
    at the input resolution (gated by mask_c1 and mask_s upsampled to the input), conv2 3x3
    (stride; in mask_c1, out mask_c2), conv3 1x1 (in mask_c2, x4 expansion), a 1x1/stride
    projection shortcut unless stride 1 and in_c == out_c. `width`: the gated channels."""
    name: str
    in_h: int
    in_w: int
    in_c: int
    width: int
    stride: int
    tile: int
    expansion: int = 4

    @property
    def out_c(self) -> int:
        return self.width * self.expansion

    @property
    def gated_c(self) -> int:
        """Channels each channel gate decides (conv1's and conv2's outputs)."""
        return self.width

    @property
    def conv1(self) -> ConvShape:
        return ConvShape(f"{self.name}.conv1", 1, 1, self.in_h, self.in_w, self.in_c, self.width)

    @property
    def conv2(self) -> ConvShape:
        return ConvShape(f"{self.name}.conv2", 3, self.stride, self.in_h, self.in_w,
                         self.width, self.width)

    @property
    def conv3(self) -> ConvShape:
        c2 = self.conv2
        return ConvShape(f"{self.name}.conv3", 1, 1, c2.out_h, c2.out_w, self.width, self.out_c)

    @property
    def out_h(self) -> int:
        return self.conv2.out_h

    @property
    def out_w(self) -> int:
        return self.conv2.out_w

    @property
    def gate_macs(self) -> int:
        """Spatial gate, mask_c1 (C_in -> C_in/4 -> width), mask_c2 (width -> width/4 ->
        width), official counting."""
        from dgfpga.numerics.gates import channel_gate_macs
        return (gate_macs(self.in_c, self.width, self.n_tiles)
                + channel_gate_macs(self.width, self.width // 4, self.width))

    @property
    def dense_macs(self) -> int:
        sc = self.shortcut
        return self.conv1.macs + self.conv2.macs + self.conv3.macs + (sc.macs if sc else 0)


@dataclass(frozen=True)
class InvertedShape:
    """A MobileNetV2 inverted residual block (official DGNet): [expand 1x1 in_c -> in_c*t,]
    depthwise 3x3 (stride), projection 1x1 -> out_c. Gated (tile > 0) exactly when it has a
    residual (stride 1, in_c == out_c); the channel gate decides the expanded channels."""
    name: str
    in_h: int
    in_w: int
    in_c: int
    out_c: int
    stride: int
    expand: int
    tile: int                  # 0: ungated

    @property
    def hidden(self) -> int:
        return self.in_c * self.expand

    @property
    def gated(self) -> bool:
        return self.tile > 0

    @property
    def conv1(self) -> Optional[ConvShape]:
        if self.expand == 1:
            return None
        return ConvShape(f"{self.name}.conv1", 1, 1, self.in_h, self.in_w, self.in_c,
                         self.hidden)

    @property
    def conv2(self) -> ConvShape:
        return ConvShape(f"{self.name}.conv2", 3, self.stride, self.in_h, self.in_w,
                         self.hidden, self.hidden, groups=self.hidden)

    @property
    def conv3(self) -> ConvShape:
        c2 = self.conv2
        return ConvShape(f"{self.name}.conv3", 1, 1, c2.out_h, c2.out_w, self.hidden,
                         self.out_c)

    @property
    def out_h(self) -> int:
        return self.conv2.out_h

    @property
    def out_w(self) -> int:
        return self.conv2.out_w

    @property
    def grid(self) -> tuple:
        if not self.gated:
            return (0, 0)
        return (-(-self.out_h // self.tile), -(-self.out_w // self.tile))

    @property
    def gate_macs(self) -> int:
        if not self.gated:
            return 0
        from dgfpga.numerics.gates import channel_gate_macs, spatial_gate_macs
        return (spatial_gate_macs(self.grid, self.in_c)
                + channel_gate_macs(self.in_c, self.in_c // 4, self.hidden))

    @property
    def dense_macs(self) -> int:
        return sum(c.macs for c in (self.conv1, self.conv2, self.conv3) if c is not None)


@dataclass(frozen=True)
class NetShape:
    name: str
    stem: ConvShape
    blocks: tuple
    fc_in: int
    fc_out: int
    tail: Optional[ConvShape] = None      # MobileNetV2's final 1x1 conv

    @property
    def fc_macs(self) -> int:
        return self.fc_in * self.fc_out

    @property
    def dense_macs(self) -> int:
        """Dense network MACs (no gates), official counting (MobileNetV2: every conv as it
        executes; the official code counts its stem at a third, see `official_dense_macs`)."""
        return (self.stem.macs + sum(b.dense_macs for b in self.blocks) + self.fc_macs
                + (self.tail.macs if self.tail is not None else 0))

    @property
    def official_dense_macs(self) -> int:
        """The official `get_flops` dense count: MobileNetV2's counts the 3x3 stem as
        3*h*w*3*32, a third of its MACs (docs/quantization.md); the ResNets' as executed."""
        if self.tail is None:
            return self.dense_macs
        return self.dense_macs - 2 * self.stem.macs // 3


def _stages(prefix_hw: int, in_c: int, widths, depths, tiles, first_strides) -> tuple:
    blocks = []
    h, c = prefix_hw, in_c
    for s, (w, n, t, st) in enumerate(zip(widths, depths, tiles, first_strides)):
        for i in range(n):
            stride = st if i == 0 else 1
            b = BlockShape(f"layer{s + 1}.{i}", h, h, c, w, stride, t)
            blocks.append(b)
            h, c = b.out_h, w
    return tuple(blocks)


def _bottleneck_stages(prefix_hw: int, in_c: int, widths, depths, tiles, first_strides) -> tuple:
    blocks = []
    h, c = prefix_hw, in_c
    for s, (w, n, t, st) in enumerate(zip(widths, depths, tiles, first_strides)):
        for i in range(n):
            b = BottleneckShape(f"layer{s + 1}.{i}", h, h, c, w, st if i == 0 else 1, t)
            blocks.append(b)
            h, c = b.out_h, b.out_c
    return tuple(blocks)


def imagenet_bottleneck_resnet(name: str, depths) -> NetShape:
    """ResNet-50-style DGNet: the ImageNet stem, Bottleneck stages of widths 64..512 (x4
    expansion) at 56/28/14/7 with tiles 8/4/2/1."""
    stem = ConvShape("conv1", 7, 2, 224, 224, 3, 64, maxpool=True)
    blocks = _bottleneck_stages(stem.out_h, 64, (64, 128, 256, 512), depths, (8, 4, 2, 1),
                                (1, 2, 2, 2))
    return NetShape(name, stem, blocks, 2048, 1000)


#: MobileNetV2 stages (models/mobilenet_v2.py MOBILENET_V2_STAGES: expand t, channels c,
#: repeats n, first stride s, DGNet tile), width multiplier 1.0
MOBILENET_V2_STAGES = ((1, 16, 1, 1, 16), (6, 24, 2, 2, 8), (6, 32, 3, 2, 4), (6, 64, 4, 2, 2),
                       (6, 96, 3, 1, 2), (6, 160, 3, 2, 2), (6, 320, 1, 1, 2))


def mobilenet_v2(name: str = "mobilenet_v2_dg", size: int = 224, classes: int = 1000) -> NetShape:
    """MobileNetV2 DGNet: 3x3/2 stem -> 32, 17 inverted residuals (features.1..17; gated
    exactly where they have a residual), 1x1 tail -> 1280, fc."""
    stem = ConvShape("features.0", 3, 2, size, size, 3, 32)
    blocks, h, c, k = [], stem.out_h, 32, 1
    for t, out_c, n, s, tile in MOBILENET_V2_STAGES:
        for i in range(n):
            stride = s if i == 0 else 1
            gated = stride == 1 and c == out_c
            b = InvertedShape(f"features.{k}", h, h, c, out_c, stride, t, tile if gated else 0)
            blocks.append(b)
            h, c, k = b.out_h, out_c, k + 1
    tail = ConvShape(f"features.{k}", 1, 1, h, h, c, 1280)
    return NetShape(name, stem, tuple(blocks), 1280, classes, tail)


#: networks with blocks the scheduler-based tools do not take (net_shape knows them)
OTHER_NETWORKS = {"mobilenet_v2_dg": mobilenet_v2}


def imagenet_resnet(name: str, depths) -> NetShape:
    stem = ConvShape("conv1", 7, 2, 224, 224, 3, 64, maxpool=True)
    blocks = _stages(stem.out_h, 64, (64, 128, 256, 512), depths, (8, 4, 2, 1), (1, 2, 2, 2))
    return NetShape(name, stem, blocks, 512, 1000)


def cifar_resnet(name: str, n: int) -> NetShape:
    stem = ConvShape("conv1", 3, 1, 32, 32, 3, 16)
    blocks = _stages(32, 16, (16, 32, 64), (n, n, n), (4, 2, 2), (1, 2, 2))
    return NetShape(name, stem, blocks, 64, 10)


NETWORKS = {
    "resdg18": lambda: imagenet_resnet("resdg18", (2, 2, 2, 2)),
    "resdg34": lambda: imagenet_resnet("resdg34", (3, 4, 6, 3)),
    "resdg50": lambda: imagenet_bottleneck_resnet("resdg50", (3, 4, 6, 3)),
    "resdg20_cifar10": lambda: cifar_resnet("resdg20_cifar10", 3),
    "resdg32_cifar10": lambda: cifar_resnet("resdg32_cifar10", 5),
    "resdg56_cifar10": lambda: cifar_resnet("resdg56_cifar10", 9),
    "resdg110_cifar10": lambda: cifar_resnet("resdg110_cifar10", 18),
}


def net_shape(name: str) -> NetShape:
    """Shapes of a DGNet by its zoo name (e.g. 'resdg18', 'resdg20_cifar10',
    'mobilenet_v2_dg')."""
    if name in OTHER_NETWORKS:
        return OTHER_NETWORKS[name]()
    if name not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}; known: "
                          f"{', '.join(list(NETWORKS) + list(OTHER_NETWORKS))}")
    return NETWORKS[name]()


# ----------------------------------------------------------------------------- shape-only plan

def shape_qmodel(net: NetShape):
    """A quantized model with `net`'s shapes and nothing else (torch-free): zero weights
    (read-only broadcasts, no memory), unit multipliers, no gate parameters. It is only for
    the packer (`shape_plan`): not a model to run, and not validated as one."""
    from dgfpga.numerics.qmodel import (INPUT_TENSOR, QBlock, QConv, QHead, QModel, QStem,
                                        TensorInfo)

    def conv(c: ConvShape, in_t: str, out_t: str, signed_out: bool = False) -> QConv:
        w = np.broadcast_to(np.int8(0), (c.out_c, c.in_c // c.groups, c.k, c.k))
        return QConv(c.name, w, np.zeros(c.out_c, np.int32), np.ones(c.out_c, np.int32), 16,
                     0, -128 if signed_out else 0, 127 if signed_out else 255, c.stride,
                     c.pad, in_t, out_t, groups=c.groups)

    st = net.stem
    tensors = {INPUT_TENSOR: TensorInfo((st.in_c, st.in_h, st.in_w), 1.0, True),
               "stem": TensorInfo((st.out_c, st.out_h, st.out_w), 1.0, False)}
    stem = QStem(conv(st, INPUT_TENSOR, "stem"), st.maxpool, "stem")
    blocks, prev = [], "stem"
    for b in net.blocks:
        out = f"{b.name}.out"
        if isinstance(b, InvertedShape):
            cur, c1 = prev, None
            if b.conv1 is not None:
                tensors[f"{b.name}.out1"] = TensorInfo((b.hidden, b.in_h, b.in_w), 1.0, False)
                c1 = conv(b.conv1, prev, f"{b.name}.out1")
                cur = c1.out_tensor
            tensors[f"{b.name}.out2"] = TensorInfo((b.hidden, b.out_h, b.out_w), 1.0, False)
            tensors[out] = TensorInfo((b.out_c, b.out_h, b.out_w), 1.0, True)
            c2 = conv(b.conv2, cur, f"{b.name}.out2")
            c3 = conv(b.conv3, c2.out_tensor, out, signed_out=True)
            if b.gated:
                c3.res_tensor, c3.res_mult = prev, 1 << c3.shift
            blocks.append(QBlock(b.name, c1, c2, None, b.gated, b.tile, b.grid, None, None,
                                 prev, out, kind="inverted_residual", conv3=c3))
            prev = out
            continue
        if isinstance(b, BottleneckShape):
            t1, t2 = f"{b.name}.conv1", f"{b.name}.conv2"
            tensors[t1] = TensorInfo((b.width, b.in_h, b.in_w), 1.0, False)
            tensors[t2] = TensorInfo((b.width, b.out_h, b.out_w), 1.0, False)
            tensors[out] = TensorInfo((b.out_c, b.out_h, b.out_w), 1.0, False)
            c1, c2 = conv(b.conv1, prev, t1), conv(b.conv2, t1, t2)
            c3 = conv(b.conv3, t2, out)
            ds = None
            if b.shortcut is not None:
                tensors[f"{b.name}.downsample"] = TensorInfo((b.out_c, b.out_h, b.out_w), 1.0,
                                                             True)
                ds = conv(b.shortcut, prev, f"{b.name}.downsample", signed_out=True)
            c3.res_tensor = ds.out_tensor if ds is not None else prev
            c3.res_mult = 1 << c3.shift
            blocks.append(QBlock(b.name, c1, c2, ds, b.identity, b.tile, (b.grid_h, b.grid_w),
                                 None, None, prev, out, kind="bottleneck", conv3=c3))
            prev = out
            continue
        tensors[f"{b.name}.conv1"] = TensorInfo((b.out_c, b.out_h, b.out_w), 1.0, False)
        tensors[out] = TensorInfo((b.out_c, b.out_h, b.out_w), 1.0, False)
        c1 = conv(b.conv1, prev, f"{b.name}.conv1")
        c2 = conv(b.conv2, f"{b.name}.conv1", out)
        ds = None
        if b.shortcut is not None:
            tensors[f"{b.name}.downsample"] = TensorInfo((b.out_c, b.out_h, b.out_w), 1.0, True)
            ds = conv(b.shortcut, prev, f"{b.name}.downsample", signed_out=True)
            c2.res_tensor = ds.out_tensor
        else:
            c2.res_tensor = prev
        c2.res_mult = 1 << c2.shift
        blocks.append(QBlock(b.name, c1, c2, ds, b.identity, b.tile, (b.grid_h, b.grid_w),
                             None, None, prev, out))
        prev = out
    last = net.blocks[-1]
    tail = None
    if net.tail is not None:
        tensors["tail"] = TensorInfo((net.tail.out_c, net.tail.out_h, net.tail.out_w), 1.0,
                                     False)
        tail = conv(net.tail, prev, "tail")
        prev = "tail"
    head = QHead("fc", np.zeros((net.fc_out, net.fc_in), np.int8),
                 np.zeros(net.fc_out, np.int32), np.ones(net.fc_out), prev,
                 last.out_h * last.out_w)
    return QModel(net.name, (st.in_c, st.in_h, st.in_w), net.fc_out, (0.0,) * st.in_c,
                  (1.0,) * st.in_c, tensors, stem, blocks, head, {"shape_only": True},
                  tail=tail)


@functools.lru_cache(maxsize=16)
def _shape_plan(name: str, cfg):
    from dgfpga.runtime.packer import plan_network
    return plan_network(shape_qmodel(net_shape(name)), cfg)


def shape_plan(net, cfg=None):
    """The engine's plan (`dgfpga.runtime.packer.plan_network`) of network `net` (a zoo
    name or a NetShape) from its shapes alone, for engine `cfg`; cached per (name, cfg)."""
    from dgfpga.contract.engine_config import default_config
    cfg = cfg or default_config()
    if isinstance(net, NetShape):
        if net.name in NETWORKS and NETWORKS[net.name]() == net:
            return _shape_plan(net.name, cfg)
        from dgfpga.runtime.packer import plan_network
        return plan_network(shape_qmodel(net), cfg)
    return _shape_plan(str(net), cfg)
