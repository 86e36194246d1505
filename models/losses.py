"""The DGNet training loss (paper Eq. 8-10; official `regularization.py`).

    L = L_task + L_sparsity + L_bound                                     (Eq. 10)
    L_sparsity = lambda * (density - den_target)^2                        (Eq. 8)
    L_bound    = gamma * sum over {spatial, channel} of
                 mean_blocks( relu(p*t - d)^2 + relu(d - (1 - p + p*t))^2 ) (Eq. 9)

`density` is the batch-mean MAC density of `GatedOutput` (blocks + gates + stem + fc
over the dense total); `d` is a gate's batch-mean mask density (mask L1 norm over its
size), per block; `t = sqrt(den_target)` (spatial x channel density ~ target); `p =
exp(-alpha * epoch)` anneals the bounds from [t, t] at epoch 0 to [0, 1]. Defaults are
the official ones: lambda = 5, gamma = 1, alpha = 0.05.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .outputs import GatedOutput

DEFAULT_LAMBDA = 5.0
DEFAULT_GAMMA = 1.0
DEFAULT_ALPHA = 0.05


def anneal_p(epoch: float, alpha: float = DEFAULT_ALPHA) -> float:
    """Bound annealing factor p = exp(-alpha * epoch) (official `ExpAnnealing(0, 1, 0)`)."""
    if epoch < 0 or alpha < 0:
        raise ValueError(f"epoch and alpha must be >= 0, got epoch={epoch}, alpha={alpha}")
    return math.exp(-alpha * epoch)


def _check(den_target: float, lbda: float, gamma: float, p: float) -> None:
    if not 0 < den_target <= 1:
        raise ValueError(f"den_target must be in (0, 1], got {den_target}")
    if lbda < 0 or gamma < 0:
        raise ValueError(f"lbda and gamma must be >= 0, got lbda={lbda}, gamma={gamma}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")


def sparsity_loss(out: GatedOutput, den_target: float, lbda: float = DEFAULT_LAMBDA) -> torch.Tensor:
    """Eq. 8: lbda * (batch-mean density - den_target)^2, in the logits' dtype."""
    extra = out.flops_stem + out.flops_fc
    executed = out.flops_real.mean(0).sum() + out.flops_mask.sum() + extra
    density = executed / (out.flops_full.sum() + extra)
    return (lbda * (density - den_target) ** 2).to(out.logits.dtype)


def _bound(density: torch.Tensor, target: float, p: float) -> torch.Tensor:
    lower = F.relu(p * target - density) ** 2
    upper = F.relu(density - 1 + p - p * target) ** 2
    return lower.mean() + upper.mean()


def bound_loss(out: GatedOutput, den_target: float, gamma: float = DEFAULT_GAMMA,
               p: float = 0.0) -> torch.Tensor:
    """Eq. 9: keep every gate's batch-mean mask density within [p*t, 1 - p + p*t],
    t = sqrt(den_target), for the spatial and the channel gates. p = 0 disables it."""
    target = math.sqrt(den_target)
    den_s = out.norm_s.mean(0) / out.norm_s_t
    den_c = out.norm_c.mean(0) / out.norm_c_t
    return gamma * (_bound(den_s, target, p) + _bound(den_c, target, p))


class DGLoss(nn.Module):
    """Eq. 10 as the official `Loss`: `DGLoss()(out, labels, den_target, lbda, gamma, p)`
    returns `(closs, rloss, bloss)`: task loss (cross-entropy by default), sparsity
    loss (Eq. 8) and bound loss (Eq. 9); train on their sum. Raises ValueError for
    out-of-range den_target / lbda / gamma / p.
    """

    def __init__(self, task_loss: nn.Module | None = None):
        super().__init__()
        self.task_loss = task_loss if task_loss is not None else nn.CrossEntropyLoss()

    def forward(self, out: GatedOutput, labels: torch.Tensor, den_target: float,
                lbda: float = DEFAULT_LAMBDA, gamma: float = DEFAULT_GAMMA,
                p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check(den_target, lbda, gamma, p)
        closs = self.task_loss(out.logits, labels)
        return closs, sparsity_loss(out, den_target, lbda), bound_loss(out, den_target, gamma, p)
