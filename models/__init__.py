"""dgfpga_models: the DGNet model zoo (PyTorch), state_dict-compatible with the official code.

    from dgfpga_models import build_model, ARCHS
    model = build_model("resdg20_cifar10", num_classes=10, dense=False)
    logits = model(x)                  # [N, K]
    out = model.forward_gated(x)       # GatedOutput: logits, masks, norms, MACs, density

See docs/models.md for the zoo, the API and the MAC accounting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .gated import GatedBlock, GatedNetwork
from .outputs import BlockMasks, GatedOutput
from . import cifar, imagenet, mobilenet_v2


@dataclass(frozen=True)
class ArchSpec:
    """One architecture of the zoo: its family, default classes and input size."""

    name: str
    family: str                     # "cifar", "imagenet" or "mobilenet"
    num_classes: int
    input_size: tuple[int, int]
    builder: Callable[..., GatedNetwork]


def _specs() -> dict[str, ArchSpec]:
    specs = [ArchSpec(f"resdg{d}_cifar10", "cifar", 10, (32, 32),
                      getattr(cifar, f"resdg{d}_cifar10")) for d in cifar.CIFAR_DEPTHS]
    specs += [ArchSpec(name, "imagenet", 1000, (224, 224), getattr(imagenet, name))
              for name in imagenet.IMAGENET_LAYERS]
    specs.append(ArchSpec("mobilenet_v2_dg", "mobilenet", 1000, (224, 224),
                          mobilenet_v2.mobilenet_v2_dg))
    return {s.name: s for s in specs}


#: Every architecture of the zoo, by name (network order of the docs): the official ones.
ARCHS: dict[str, ArchSpec] = _specs()

from . import variants  # noqa: E402  (needs the blocks above)

#: dgfpga's own small variants (not official DGNet architectures; `dgfpga_models.variants`).
VARIANTS: dict[str, ArchSpec] = {
    "resdg11b_cifar10": ArchSpec("resdg11b_cifar10", "cifar", 10, (32, 32),
                                 variants.resdg11b_cifar10),
    "resdg29b_cifar10": ArchSpec("resdg29b_cifar10", "cifar", 10, (32, 32),
                                 variants.resdg29b_cifar10),
    "mobilenet_v2dg9_cifar10": ArchSpec("mobilenet_v2dg9_cifar10", "mobilenet", 10, (32, 32),
                               variants.mobilenet_v2dg9_cifar10),
}


def all_archs() -> dict[str, ArchSpec]:
    """The official zoo and dgfpga's variants, by name (what build_model accepts)."""
    return {**ARCHS, **VARIANTS}


def build_model(arch: str, num_classes: Optional[int] = None, dense: bool = False,
                input_size: Optional[tuple[int, int]] = None, **kwargs) -> GatedNetwork:
    """Build a freshly initialised zoo model (training mode, as `nn.Module`s start).

    arch: a key of `ARCHS`. num_classes / input_size: default to the architecture's
    (CIFAR: 10, 32x32; ImageNet: 1000, 224x224). dense=True forces every gate on (the
    dense baseline; same state_dict keys). Extra keyword arguments (`tau`, `gate_bias`)
    go to the architecture's constructor. Raises ValueError for an unknown arch.
    """
    spec = all_archs().get(arch)
    if spec is None:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(all_archs())}")
    model = spec.builder(num_classes=spec.num_classes if num_classes is None else num_classes,
                         input_size=tuple(input_size or spec.input_size), **kwargs)
    model.dense = dense
    return model


from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402  (needs ARCHS)
from .channel_group import channel_group_of, tie_channel_gates  # noqa: E402

__all__ = ["ARCHS", "VARIANTS", "all_archs", "ArchSpec", "BlockMasks", "GatedBlock", "GatedNetwork", "GatedOutput",
           "build_model", "channel_group_of", "load_checkpoint", "save_checkpoint", "tie_channel_gates"]
