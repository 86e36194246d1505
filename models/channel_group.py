"""Channel-group training: channel gates whose active channel count is a multiple of G.

The engine computes a gated layer's active output channels in groups of Tm (its MAC
array's output width); a count that is not a multiple of Tm leaves lanes idle in the last
group. `tie_channel_gates(model, G)` ties every channel gate's fc2 rows in groups of G
consecutive channels (`mask.TiedRowsConv1x1`): G channels share one logit, hence one
decision, so the count of active channels is a multiple of G wherever the gate is
evaluated. Nothing else changes: the state dict keeps the official keys and shapes (the
tied rows are written out expanded, identical), the quantizer quantizes fc2 per row (equal
rows -> equal integer rows and biases), and the golden model and the engines evaluate the
ordinary integer gate, so no level needs to know about groups.

`channel_group_of(state_dict)` reads the largest G for which a state dict's channel gates are
tied, e.g. to check a checkpoint trained with `dgfpga train --channel-group G`.
"""
from __future__ import annotations

import re

import torch

from .gated import GatedNetwork
from .mask import ChannelGate, check_channel_group

__all__ = ["tie_channel_gates", "channel_gates", "channel_group_of", "group_counts"]

#: state-dict key of a channel gate's fc2 weight (`mask_c`, `mask_c1`, `mask_c2` of any block)
_FC2_WEIGHT = re.compile(r"(^|\.)mask_c\d*\.atten_c\.3\.weight$")


def channel_gates(model: GatedNetwork) -> list[tuple[str, ChannelGate]]:
    """Every channel gate of the model, `(qualified name, gate)`, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ChannelGate)]


def tie_channel_gates(model: GatedNetwork, group: int) -> GatedNetwork:
    """Tie every channel gate's fc2 rows in groups of `group` channels (in place; returns
    the model). Checks every gate first: a group that does not divide some gate's channel
    count raises ValueError naming that gate, and nothing is changed. group=1 is a no-op.
    """
    gates = channel_gates(model)
    for name, gate in gates:
        check_channel_group(gate.out_channels, group,
                            f"{name} ({gate.out_channels} gated channels)")
    for _, gate in gates:
        gate.tie_rows(group)
    return model


def _tied(rows: torch.Tensor, group: int) -> bool:
    if rows.shape[0] % group:
        return False
    g = rows.reshape(rows.shape[0] // group, group, -1)
    return bool((g == g[:, :1]).all())


def channel_group_of(state_dict: dict[str, torch.Tensor]) -> int:
    """The largest G such that every channel gate's fc2 weight and bias in `state_dict` are
    tied in groups of G consecutive rows (1: untied, the official training; ValueError if
    the state dict has no channel gate)."""
    keys = [k for k in state_dict if _FC2_WEIGHT.search(k)]
    if not keys:
        raise ValueError("the state dict has no channel gate (no mask_c*.atten_c.3.weight)")
    pairs = [(state_dict[k], state_dict[k[:-len("weight")] + "bias"]) for k in keys]
    limit = min(w.shape[0] for w, _ in pairs)
    for group in range(limit, 1, -1):
        if all(_tied(w, group) and _tied(b, group) for w, b in pairs):
            return group
    return 1


def group_counts(active_channels, tm: int) -> tuple[int, int]:
    """(lanes computed, lanes wasted) of active channel counts on a Tm-wide array:
    sum of ceil(n / tm) * tm and of ceil(n / tm) * tm - n."""
    if tm < 1:
        raise ValueError(f"Tm must be >= 1, got {tm}")
    computed = sum(-(-int(n) // tm) * tm for n in active_channels)
    return computed, computed - sum(int(n) for n in active_channels)
