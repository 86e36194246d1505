"""The training recipe's settings (`TrainConfig`), apart from the torch code in
`dgfpga.workflows.train` so that `dgfpga --help` and `dgfpga train --help` build their
option defaults without importing torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dgfpga.data import embedded as data

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    arch: str = "resdg20_cifar10"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    target_density: Optional[float] = None     # None: dense baseline
    lbda: float = 5.0
    gamma: float = 1.0
    alpha: Optional[float] = None              # None: 4 / epochs
    n_train: int = data.DEFAULT_SIZES["train"]
    n_val: int = data.DEFAULT_SIZES["val"]
    seed: int = 0
    threads: int = 2
    init: Optional[str] = None                 # checkpoint to start from (the dense model)
    shift_px: int = 2                          # augmentation: random translation
    channel_group: int = 1                     # tie channel-gate rows in groups of G (1: off)

    @property
    def dense(self) -> bool:
        return self.target_density is None
