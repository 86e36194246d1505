"""Gates of a Dynamic Dual Gating block: the Gumbel-sigmoid decision, the spatial gate
(official `Mask_s`) and the channel gate (official `Mask_c`).

Parameter names follow the official `models/mask.py` so released checkpoints load
unchanged: `atten_s.{weight,bias}` and `atten_c.0.weight`, `atten_c.1.*` (BatchNorm),
`atten_c.3.{weight,bias}`. The official training script always passes `--bias 2`
(>= 0), so both gates carry a bias, initialised to `bias_init`.

Two pieces of the official arithmetic are expressed here as fixed linear maps instead of
`F.adaptive_avg_pool2d` / `nn.Upsample`, with the same bins and the same source indices,
so that the legacy ONNX exporter can export every size (it refuses adaptive pooling
whose output does not divide the input) and so that the tile/pixel maps are readable
attributes for the quantizer:

* pooling bins: bin i of `out` over `in` pixels is `[floor(i*in/out), ceil((i+1)*in/out))`
  (PyTorch's adaptive average pooling); the pooled value is the bin sum / bin size;
* nearest upsampling: output pixel j reads grid cell `nearest_source_index(out, grid)[j]`,
  taken from PyTorch's own `F.interpolate(mode="nearest")`, i.e. `floor(j * (grid/out))`
  in float32 arithmetic. Where `out` is divisible by the tile (all official sizes except
  MobileNetV2's 7x7 maps) this is `j // tile`; otherwise cells need not be `tile` wide.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Gumbel-sigmoid temperature of the official code (`eps=0.66667`).
DEFAULT_TAU = 0.66667
#: Initial gate bias of the official training script (`--bias 2`).
DEFAULT_GATE_BIAS = 2.0
#: Channel-gate reduction (`fc_reduction=4`).
CHANNEL_REDUCTION = 4


def adaptive_pool_bins(in_len: int, out_len: int) -> list[tuple[int, int]]:
    """Bins `[start, end)` of PyTorch's adaptive average pooling of `in_len` to `out_len`."""
    if in_len < 1 or out_len < 1:
        raise ValueError(f"pooling sizes must be positive, got in={in_len}, out={out_len}")
    return [((i * in_len) // out_len, -((-(i + 1) * in_len) // out_len)) for i in range(out_len)]


def nearest_source_index(out_len: int, in_len: int) -> list[int]:
    """For nearest upsampling of `in_len` cells to `out_len` pixels: the cell each pixel reads.

    Computed with PyTorch's `F.interpolate(mode="nearest")` itself, so it is exactly the
    official `nn.Upsample(size=..., mode="nearest")` mapping.
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"upsampling sizes must be positive, got in={in_len}, out={out_len}")
    cells = torch.arange(in_len, dtype=torch.float32).view(1, 1, in_len)
    return [int(v) for v in F.interpolate(cells, size=out_len, mode="nearest").view(-1)]


class TilePool(nn.Module):
    """Average pooling of `[N, C, in_h, in_w]` to the `[N, C, grid_h, grid_w]` gate grid.

    Same bins as `F.adaptive_avg_pool2d`; computed as bin sums (two 0/1 matrix products)
    divided by the bin size, which exports to ONNX for any size.
    """

    def __init__(self, in_h: int, in_w: int, grid_h: int, grid_w: int):
        super().__init__()
        self.in_h, self.in_w, self.grid_h, self.grid_w = in_h, in_w, grid_h, grid_w
        rows, cols = adaptive_pool_bins(in_h, grid_h), adaptive_pool_bins(in_w, grid_w)
        sel_h = torch.zeros(grid_h, in_h)
        for i, (a, b) in enumerate(rows):
            sel_h[i, a:b] = 1.0
        sel_w = torch.zeros(in_w, grid_w)
        for j, (a, b) in enumerate(cols):
            sel_w[a:b, j] = 1.0
        count = torch.tensor([[(b - a) * (d - c) for (c, d) in cols] for (a, b) in rows],
                             dtype=torch.float32)
        # Not persistent: derived from the geometry, never part of a checkpoint.
        self.register_buffer("sel_h", sel_h, persistent=False)
        self.register_buffer("sel_w", sel_w, persistent=False)
        self.register_buffer("count", count, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.sel_h, x), self.sel_w) / self.count


class NearestUpsample(nn.Module):
    """Nearest upsampling of a `[N, 1, grid_h, grid_w]` mask to `[N, 1, out_h, out_w]`.

    Same mapping as the official `nn.Upsample(size=(out_h, out_w), mode="nearest")`,
    done as an index gather (exact; exports to ONNX `Gather`). `row_cell[i]` /
    `col_cell[j]` name the grid cell of output pixel (i, j).
    """

    def __init__(self, grid_h: int, grid_w: int, out_h: int, out_w: int):
        super().__init__()
        self.grid_h, self.grid_w, self.out_h, self.out_w = grid_h, grid_w, out_h, out_w
        self.row_cell = nearest_source_index(out_h, grid_h)
        self.col_cell = nearest_source_index(out_w, grid_w)
        self.register_buffer("idx_h", torch.tensor(self.row_cell, dtype=torch.long),
                             persistent=False)
        self.register_buffer("idx_w", torch.tensor(self.col_cell, dtype=torch.long),
                             persistent=False)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.index_select(2, self.idx_h).index_select(3, self.idx_w)


class GumbelSigmoid(nn.Module):
    """Binary gate decision (official `GumbelSoftmax`).

    eval: `logits >= 0` (ties are on), as 0/1 in the logits' dtype.
    train: a straight-through sample: forward value `sigmoid((logits + g) / tau) >= 0.5`
    with logistic noise `g = log(u) - log(1 - u)`, gradient of the soft sigmoid. The
    forward value is exactly 0 or 1.
    """

    def __init__(self, tau: float = DEFAULT_TAU):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"Gumbel temperature tau must be > 0, got {tau}")
        self.tau = tau

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (logits >= 0).to(logits.dtype)
        u = torch.rand_like(logits)
        noise = torch.log(u + 1e-8) - torch.log(1 - u + 1e-8)
        soft = torch.sigmoid((logits + noise) / self.tau)
        hard = (soft >= 0.5).to(soft.dtype)
        return hard + (soft - soft.detach())


def l1_norm(mask: torch.Tensor) -> torch.Tensor:
    """Per-sample L1 norm over (C, H, W), as the official `torch.norm(p=1)` (gradient 0 at 0)."""
    return torch.linalg.vector_norm(mask, ord=1, dim=(1, 2, 3))


class SpatialGate(nn.Module):
    """Spatial gate (official `Mask_s`): one decision per tile of the block's output.

    Input: the block input `[N, in_channels, in_h, in_w]`. The grid is
    `ceil(out_h / tile) x ceil(out_w / tile)`; the input is average-pooled to the grid,
    a 3x3 conv (padding 1, in_channels -> 1, with bias) gives one logit per cell, and
    `GumbelSigmoid` decides. `forward` returns the grid mask `[N, 1, grid_h, grid_w]`;
    `upsample` maps it to the output resolution.
    """

    def __init__(self, in_channels: int, in_h: int, in_w: int, out_h: int, out_w: int,
                 tile: int, tau: float = DEFAULT_TAU, bias_init: float = DEFAULT_GATE_BIAS):
        super().__init__()
        if tile < 1:
            raise ValueError(f"tile size must be >= 1, got {tile}")
        self.in_channels, self.tile = in_channels, tile
        self.grid_h, self.grid_w = math.ceil(out_h / tile), math.ceil(out_w / tile)
        self.pool = TilePool(in_h, in_w, self.grid_h, self.grid_w)
        self.atten_s = nn.Conv2d(in_channels, 1, kernel_size=3, stride=1, padding=1, bias=True)
        nn.init.constant_(self.atten_s.bias, bias_init)
        self.gate_s = GumbelSigmoid(tau)
        self.upsample = NearestUpsample(self.grid_h, self.grid_w, out_h, out_w)

    @property
    def cells(self) -> int:
        """Number of grid cells (the official `eleNum_s`, the bound loss's norm target)."""
        return self.grid_h * self.grid_w

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Gate logits `[N, 1, grid_h, grid_w]` before the decision."""
        return self.atten_s(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate_s(self.logits(x))

    def get_flops(self) -> int:
        """Gate MACs, official formula: grid cells x in_channels x 9 (pooling not counted)."""
        return self.grid_h * self.grid_w * self.in_channels * 9


class TiedRowsConv1x1(nn.Module):
    """A 1x1 conv `in_channels -> out_channels` (with bias) whose output rows are tied in
    groups of `group` consecutive channels: the parameters are `out_channels // group`
    rows (`weight_tied`, `bias_tied`), expanded with `repeat_interleave` when used.

    Stands in for a channel gate's fc2 (`atten_c.3`) in channel-group training
    (`tie_rows`). Its state dict is the official one: `weight` `[out, in, 1, 1]` and
    `bias` `[out]`, the expanded (identical) rows, so the checkpoint loads into the plain
    zoo model and every level downstream sees an ordinary fc2 whose tied rows give
    identical logits. Loading a state dict requires the rows to be tied (exactly equal
    within each group): anything else is an error naming the key and the first group.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, group: int):
        super().__init__()
        out_channels = weight.shape[0]
        check_channel_group(out_channels, group, "fc2")
        self.group = group
        self.in_channels, self.out_channels = weight.shape[1], out_channels
        rows = out_channels // group
        # start from the group means of the given rows (equal to them if already tied)
        self.weight_tied = nn.Parameter(weight.detach().reshape(rows, group, *weight.shape[1:])
                                        .mean(1).clone())
        self.bias_tied = nn.Parameter(bias.detach().reshape(rows, group).mean(1).clone())

    @property
    def weight(self) -> torch.Tensor:
        """The expanded weight `[out_channels, in_channels, 1, 1]` (official fc2 shape)."""
        return self.weight_tied.repeat_interleave(self.group, dim=0)

    @property
    def bias(self) -> torch.Tensor:
        """The expanded bias `[out_channels]`."""
        return self.bias_tied.repeat_interleave(self.group, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        w, b = self.weight, self.bias
        destination[prefix + "weight"] = w if keep_vars else w.detach()
        destination[prefix + "bias"] = b if keep_vars else b.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        shapes = {"weight": (self.out_channels, self.in_channels, 1, 1),
                  "bias": (self.out_channels,)}
        for name, shape in shapes.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if tuple(value.shape) != shape:
                error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{tuple(value.shape)}, the model has {shape}")
                continue
            groups = value.reshape(self.out_channels // self.group, self.group, -1)
            untied = (groups != groups[:, :1]).flatten(1).any(1)
            if bool(untied.any()):
                first = int(untied.nonzero()[0, 0])
                error_msgs.append(
                    f"{key}: rows {first * self.group}..{(first + 1) * self.group - 1} are not "
                    f"identical, so this is not a channel-group-{self.group} gate; load the "
                    "checkpoint into the plain model (no tie_channel_gates), or train it "
                    f"with --channel-group {self.group}")
                continue
            target = self.weight_tied if name == "weight" else self.bias_tied
            with torch.no_grad():
                target.copy_(groups[:, 0].reshape(target.shape))


def check_channel_group(channels: int, group: int, what: str) -> None:
    """ValueError unless `group` >= 1 divides `channels` (naming `what`)."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"channel group must be an integer >= 1, got {group!r}")
    if channels % group:
        raise ValueError(
            f"channel group {group} does not divide the {channels} channels of {what}; "
            "choose a group size that divides every gated channel count (e.g. a power of "
            "two up to the narrowest stage's width)")


class ChannelGate(nn.Module):
    """Channel gate (official `Mask_c`): one decision per gated output channel.

    Global average pool of the input `[N, in_channels, H, W]`, then `atten_c`:
    1x1 conv in->in//4 (no bias), BatchNorm, ReLU, 1x1 conv in//4->out_channels (bias);
    `GumbelSigmoid` decides. Returns `[N, out_channels, 1, 1]`.

    `tie_rows(G)` (channel-group training) makes fc2 a `TiedRowsConv1x1`: G consecutive
    channels share one logit, so at inference the number of active channels is a multiple
    of G. In training the Gumbel sample is drawn once per group, so the masks the loss
    sees keep that property too. `group` is 1 for the official gate.
    """

    group: int = 1

    def __init__(self, in_channels: int, out_channels: int, tau: float = DEFAULT_TAU,
                 bias_init: float = DEFAULT_GATE_BIAS):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.hidden = in_channels // CHANNEL_REDUCTION
        if self.hidden < 1:
            raise ValueError(f"channel gate needs in_channels >= {CHANNEL_REDUCTION}, "
                             f"got {in_channels}")
        self.atten_c = nn.Sequential(
            nn.Conv2d(in_channels, self.hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(self.hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden, out_channels, kernel_size=1, bias=True),
        )
        nn.init.constant_(self.atten_c[3].bias, bias_init)
        self.gate_c = GumbelSigmoid(tau)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Gate logits `[N, out_channels, 1, 1]` before the decision."""
        return self.atten_c(x.mean(dim=(2, 3), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        if self.group == 1:
            return self.gate_c(logits)
        # one decision (and one Gumbel sample in training) per group of tied rows
        return self.gate_c(logits[:, ::self.group]).repeat_interleave(self.group, dim=1)

    def tie_rows(self, group: int) -> None:
        """Tie fc2's rows in groups of `group` consecutive output channels (their group
        means to start with); `group` must divide `out_channels`. Idempotent for the same
        group; ValueError if the gate is already tied with another group."""
        check_channel_group(self.out_channels, group, f"a channel gate ({self.out_channels} "
                                                      "outputs)")
        if self.group == group:
            return
        if self.group != 1:
            raise ValueError(f"channel gate already tied in groups of {self.group}; "
                             f"cannot re-tie it in groups of {group}")
        if group == 1:
            return
        fc2 = self.atten_c[3]
        self.atten_c[3] = TiedRowsConv1x1(fc2.weight, fc2.bias, group)
        self.group = group

    def get_flops(self) -> int:
        """Gate MACs, official formula: in x in//4 + in//4 x out (pooling, BN not counted)."""
        return self.in_channels * self.hidden + self.hidden * self.out_channels


# Official class names, for readers coming from the reference code.
Mask_s = SpatialGate
Mask_c = ChannelGate
