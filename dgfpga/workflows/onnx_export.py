"""ONNX export of a zoo model (*torch*): logits plus every gated block's masks.

The model is exported in eval mode (deterministic gates, masked execution) with the
legacy TorchScript exporter (`dynamo=False`). The zoo expresses gating as arithmetic
(masks multiply activations; pooling bins are matrix products; nearest upsampling is an
index gather), with no data-dependent Python branch, so the graph is exact for every
input. Outputs, in order: `logits` [N, K], then per gated block (official module path
`name`): `name.mask_s` [N, 1, gh, gw] (grid), `name.mask_c` [N, C, 1, 1] (Bottleneck:
`name.mask_c1` and `name.mask_c2`), all float 0/1. The batch dimension is dynamic.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from dgfpga.errors import DgfpgaError

DEFAULT_OPSET = 17
INPUT_NAME = "input"


class ExportError(DgfpgaError):
    """The model cannot be exported, or the exported graph disagrees with PyTorch."""


def mask_output_names(model) -> list[str]:
    """Names of the mask outputs of `model`, in output order (after `logits`)."""
    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for block in model.blocks():
        if not block.gated:
            continue
        name = names[id(block)]
        channel = ["mask_c1", "mask_c2"] if block.kind == "bottleneck" else ["mask_c"]
        out += [f"{name}.mask_s"] + [f"{name}.{c}" for c in channel]
    return out


def _masks_flat(masks) -> list:
    """The mask tensors of a list of BlockMasks (None skipped), in output order."""
    flat = []
    for m in masks:
        if m is None:
            continue
        flat += [m.spatial, m.channel] + ([m.channel2] if m.channel2 is not None else [])
    return flat


def _wrapper(model):
    import torch

    class LogitsAndMasks(torch.nn.Module):
        """forward(x) -> (logits, *masks): the network's stem, blocks and head, without
        the MAC bookkeeping of `forward_gated` (not part of the exported graph)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            h = self.net.stem(x)
            masks = []
            for block in self.net.blocks():
                h, result = block(h)
                masks.append(result.masks)
            return (self.net.head(h), *_masks_flat(masks))

    return LogitsAndMasks(model)


def export_onnx(model, path: Union[str, Path], opset: int = DEFAULT_OPSET) -> list[str]:
    """Export `model` (a dgfpga_models network) to `path`; return the output names.

    Exports in eval mode (the model's mode is restored afterwards), keeps the model's
    dense flag (dense=True exports all-ones masks), checks the file with
    `onnx.checker`. Raises ExportError if the exporter or the checker fails.
    """
    import onnx
    import torch

    path = Path(path)
    names = ["logits"] + mask_output_names(model)
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, model.in_h, model.in_w)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad(), warnings.catch_warnings():
            # The legacy exporter is chosen on purpose (DESIGN.md §6); silence its notice.
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message="You are using the legacy TorchScript-based")
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message="The feature will be removed")
            torch.onnx.export(
                _wrapper(model), (x,), str(path), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=names,
                dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME] + names})
        onnx.checker.check_model(str(path), full_check=True)
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"ONNX export of {model.arch} to {path} failed: {exc}") from exc
    finally:
        model.train(was_training)
    return names


@dataclass(frozen=True)
class VerifyReport:
    """onnxruntime vs PyTorch on the same inputs."""

    images: int
    max_logit_diff: float          # max |logit_onnx - logit_torch|
    mask_mismatches: int           # mask entries that differ (0/1 decisions)
    mask_entries: int              # mask entries compared

    @property
    def ok(self) -> bool:
        return self.mask_mismatches == 0


def verify_onnx(model, path: Union[str, Path], images) -> VerifyReport:
    """Run `path` in onnxruntime and `model` (eval) in PyTorch on `images` [N, 3, H, W]."""
    import numpy as np
    import onnxruntime as ort
    import torch

    x = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: x})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.forward_gated(torch.from_numpy(x))
    finally:
        model.train(was_training)
    want = [out.logits] + _masks_flat(out.masks)
    if len(got) != len(want):
        raise ExportError(f"{path} has {len(got)} outputs, the model gives {len(want)}: "
                          "export it again from this model")
    diff = float(np.abs(got[0] - want[0].numpy()).max())
    mismatches = sum(int((g != w.numpy()).sum()) for g, w in zip(got[1:], want[1:]))
    entries = sum(int(w.numel()) for w in want[1:])
    return VerifyReport(x.shape[0], diff, mismatches, entries)
