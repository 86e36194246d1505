"""Checkpoint I/O in the official DGNet layout, loading weights only (no code execution).

The official training script saves `{'epoch', 'state_dict', 'acc', 'best_acc',
'optimizer'}` with `torch.save(..., pickle_protocol=4)`. `load_checkpoint` reads that
layout, a bare state dict, either with or without a DataParallel `module.` prefix.

Safety: a checkpoint is untrusted input. It is read with `torch.load(weights_only=True)`;
that unpickler only understands pickle protocol 2, so a protocol-4 file (every official
checkpoint) is re-read by a restricted unpickler that resolves no Python global except
the few a state dict needs (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
`torch._utils._rebuild_parameter`, `torch.Size`; storages are handled by torch). Either
way no code from the file runs. Anything else is a `CheckpointError`, never a raw torch
traceback.

Unlike the official loader, which silently drops keys it does not know, a checkpoint that
does not match the architecture is an error naming the missing, unexpected and
wrongly-shaped keys.
"""
from __future__ import annotations

import collections
import os
import pickle
import re
import tempfile
import types
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

import torch

from dgfpga.errors import CheckpointError

from . import all_archs, build_model
from .gated import GatedNetwork

PathLike = Union[str, os.PathLike]

#: keys of a classifier weight, to read the number of classes from a state dict
_CLASSIFIER_KEYS = ("fc.weight", "classifier.1.weight")
_LIST_LIMIT = 12
#: largest magnitude a weight or BN statistic may have: beyond it int8 quantization (a
#: per-channel scale of max|w| / 127, float32 arithmetic) no longer means anything
MAX_ABS_VALUE = 1e15
#: the first bytes of a legacy (non-zip) torch.save file: a pickle of the magic number
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TRUNCATION_HINTS = ("unexpected eof", "ran out of input", "truncated", "corrupted",
                     "invalid load key", "unpickling stack underflow")
_PLAIN_TYPES = (type(None), bool, int, float, str, bytes, torch.Tensor)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a state dict needs (any pickle protocol)."""

    _allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "Size"): torch.Size,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"Unsupported global: GLOBAL {module}.{name}") from None


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load(pickle_module=...) wants a module-like object with Unpickler and load.
_restricted_pickle = types.SimpleNamespace(
    __name__="dgfpga_restricted_pickle", Unpickler=_RestrictedUnpickler, load=_restricted_load)


def _read_file(path: Path) -> Any:
    """The unpickled object of a checkpoint file, or CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file; "
                              "pass the .pth/.pth.tar file inside it")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        try:
            with warnings.catch_warnings():
                # torch warns before failing on protocol > 2; the fallback below handles it
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "Unsupported operand" not in str(exc):
                raise
            # pickle protocol > 2 (the official script saves with protocol 4): same
            # weights-only rules, enforced by the restricted unpickler.
            return torch.load(path, map_location="cpu", weights_only=False,
                              pickle_module=_restricted_pickle)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear error
        raise _explain_read_error(path, exc) from None


def _explain_read_error(path: Path, exc: Exception) -> CheckpointError:
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return CheckpointError(
            f"refusing to load {path}: it references the Python object {found.group(1)}, and "
            "loading it could run code from the file. Only tensors and plain containers are "
            "accepted (weights only); re-save the checkpoint with plain metadata "
            "(save_checkpoint does).")
    kind = _container(path)
    if kind == "zip" or "zip archive" in text or "central directory" in text:
        return CheckpointError(
            f"{path} is a damaged PyTorch checkpoint (its zip archive cannot be read; the "
            "file is probably truncated or corrupted): copy or save it again")
    if kind == "legacy" or (kind == "pickle" and (
            isinstance(exc, EOFError) or any(h in text.lower() for h in _TRUNCATION_HINTS))):
        return CheckpointError(
            f"{path} is a truncated or corrupt PyTorch checkpoint (legacy, non-zip format; "
            f"{type(exc).__name__}: {text.splitlines()[0][:120] if text else 'unreadable'}): "
            "copy or save it again")
    return CheckpointError(
        f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: "
        f"{text.splitlines()[0][:160] if text else 'unreadable'}); expected a file written "
        "by torch.save (e.g. the official .pth.tar)")


def _container(path: Path) -> str:
    """'zip' (torch.save's default), 'legacy' (the pre-1.6 format: a pickled magic number
    first), 'pickle' (another pickle stream) or 'other', from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return "other"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        if head[2:4] == b"\x8a\x0a" and int.from_bytes(head[4:14], "little") == _LEGACY_MAGIC:
            return "legacy"
        return "pickle"
    return "other"


def _prefix_hint(keys) -> str:
    """A hint when only some keys carry DataParallel's `module.` prefix ('' otherwise)."""
    keys = [str(k) for k in keys]
    n = sum(k.startswith("module.") for k in keys)
    if 0 < n < len(keys):
        return (f"  {n} of {len(keys)} keys start with 'module.' (a DataParallel prefix on only "
                "some keys, e.g. a state dict merged from two sources): strip 'module.' from "
                "every key, or add it to every key, and save again")
    return ""


def check_values(state: dict[str, torch.Tensor], path: Path) -> None:
    """CheckpointError naming the first tensor with a NaN or infinite value, a magnitude
    above MAX_ABS_VALUE, or (BatchNorm running_var) a negative variance."""
    for k, v in state.items():
        if not torch.is_floating_point(v) or v.numel() == 0:
            continue
        v = v.detach()
        bad = ~torch.isfinite(v)
        if bool(bad.any()):
            what = "NaN" if bool(torch.isnan(v).any()) else "infinite"
            raise CheckpointError(
                f"checkpoint {path}: tensor {k} has {int(bad.sum())} {what} value(s) of "
                f"{v.numel()}; the training run diverged or the file is corrupt: use an "
                "earlier checkpoint or retrain (quantization needs finite weights)")
        big = float(v.abs().max())
        if big > MAX_ABS_VALUE:
            raise CheckpointError(
                f"checkpoint {path}: tensor {k} has a value of magnitude {big:.3g} (limit "
                f"{MAX_ABS_VALUE:g}); int8 quantization of it would be meaningless: the "
                "training run diverged or the weights were scaled by mistake; use another "
                "checkpoint")
        if k.endswith("running_var") and bool((v < 0).any()):
            raise CheckpointError(
                f"checkpoint {path}: tensor {k} (a BatchNorm variance) has negative values; "
                "the file is corrupt or not from this architecture: use another checkpoint")


def _split(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict without `module.` prefix, metadata) of an unpickled checkpoint."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict; "
                              "expected {'state_dict': ..., ...} or a bare state dict")
    if "state_dict" in obj:
        state, meta = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, meta = obj, {}
    else:
        keys = ", ".join(map(str, list(obj)[:_LIST_LIMIT]))
        raise CheckpointError(f"{path} has no 'state_dict' entry and is not a bare state dict "
                              f"(top-level keys: {keys or 'none'})")
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: 'state_dict' is empty or not a dict")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {_fmt(bad)}")
    if all(str(k).startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, meta


def _fmt(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f" ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else "")


@lru_cache(maxsize=None)
def _arch_keys(arch: str) -> frozenset[str]:
    return frozenset(build_model(arch).state_dict())


def infer_arch(state_dict: dict[str, torch.Tensor]) -> Optional[str]:
    """The zoo architecture whose state_dict keys equal these keys exactly, or None."""
    keys = frozenset(k[len("module."):] if k.startswith("module.") else k for k in state_dict)
    for arch in all_archs():
        if _arch_keys(arch) == keys:
            return arch
    return None


def _closest_arch(keys: frozenset[str]) -> str:
    """Hint for error messages: the architecture sharing most keys, or 'none'."""
    best = max(all_archs(), key=lambda a: len(_arch_keys(a) & keys) - len(_arch_keys(a) ^ keys))
    return best if _arch_keys(best) & keys else "none"


def _num_classes(state: dict[str, torch.Tensor]) -> Optional[int]:
    for key in _CLASSIFIER_KEYS:
        if key in state and state[key].dim() == 2:
            return int(state[key].shape[0])
    return None


def _check_match(model: GatedNetwork, state: dict[str, torch.Tensor], path: Path,
                 strict: bool) -> tuple[list[str], list[str]]:
    """Raise CheckpointError on wrong shapes, and (strict) on missing/unexpected keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        lines = [f"checkpoint {path} does not match architecture {model.arch}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if shapes:
            lines.append(f"  wrongly-shaped keys ({len(shapes)}): {_fmt(shapes)}")
        guess = infer_arch(state)
        if guess and guess != model.arch:
            lines.append(f"  the keys are those of {guess}: load it with arch={guess!r}")
        elif missing or unexpected:
            lines.append(f"  closest architecture: {_closest_arch(frozenset(state))}; check the "
                         "architecture, or pass strict=False to load the matching keys only")
        else:
            lines.append("  check num_classes / input size, or the architecture")
        hint = _prefix_hint(state)
        if hint:
            lines.append(hint)
        raise CheckpointError("\n".join(lines))
    return missing, unexpected


def load_checkpoint(path: PathLike, arch: Optional[str] = None,
                    model: Optional[GatedNetwork] = None,
                    strict: bool = True) -> tuple[GatedNetwork, dict[str, Any]]:
    """Load a checkpoint into a zoo model; return `(model, meta)` with the model in eval mode.

    path: a `.pth.tar` in the official layout (`{'state_dict', 'epoch', 'best_acc', ...}`),
    or a bare state dict; a `module.` prefix on every key is stripped.
    model: load into this model (its architecture must match). Otherwise `arch` names
    the architecture; if None, the checkpoint's own `arch` entry (written by
    `save_checkpoint`) or the architecture whose keys match exactly is used. The number
    of classes is read from the classifier weight, the input size from `input_size` if
    the checkpoint has one for that architecture.
    strict: every key must match. With strict=False, missing and unexpected keys are
    skipped and listed in `meta['missing_keys']` / `meta['unexpected_keys']`; wrong
    shapes are always an error.
    meta: every top-level entry except 'state_dict' (e.g. epoch, best_acc, optimizer).
    Raises CheckpointError for unreadable files, non-checkpoints, code-carrying pickles,
    mismatches (naming the keys and what to do), and non-finite or absurd values
    (`check_values`: NaN/inf, |v| > MAX_ABS_VALUE, negative BN variance, naming the tensor).
    """
    path = Path(path)
    state, meta = _split(_read_file(path), path)
    if model is None:
        arch = arch or meta.get("arch") or infer_arch(state)
        if arch is None:
            raise CheckpointError(
                f"cannot tell the architecture of {path}: its keys match none of "
                f"{', '.join(all_archs())} (closest: {_closest_arch(frozenset(state))}); "
                "pass arch=... to see which keys differ"
                + (("\n" + _prefix_hint(state)) if _prefix_hint(state) else ""))
        if arch not in all_archs():
            raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(all_archs())}")
        size = meta.get("input_size") if meta.get("arch") == arch else None
        model = build_model(arch, num_classes=_num_classes(state),
                            input_size=tuple(size) if size else None)
    elif arch is not None and arch != model.arch:
        raise CheckpointError(f"arch={arch!r} but the given model is {model.arch}: pass one")
    missing, unexpected = _check_match(model, state, path, strict)
    check_values(state, path)
    model.load_state_dict(state, strict=strict)
    if not strict:
        meta = {**meta, "missing_keys": missing, "unexpected_keys": unexpected}
    return model.eval(), meta


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, where)
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN_TYPES):
        raise CheckpointError(
            f"metadata {where} is a {type(value).__name__}; a checkpoint holds only tensors, "
            "numbers, strings and lists/dicts of them (so it loads weights-only): convert it")


def save_checkpoint(path: PathLike, model: GatedNetwork, **meta: Any) -> Path:
    """Write `{'state_dict': ..., 'arch', 'num_classes', 'input_size', **meta}` to `path`.

    The official layout (add `epoch=`, `best_acc=` etc. as you like; the official loader
    reads `best_acc`), loadable weights-only. Atomic: written to a temporary file in the
    same folder, then renamed over `path`. Metadata must be plain data (CheckpointError
    otherwise). Returns the path.
    """
    path = Path(path)
    if "state_dict" in meta:
        raise CheckpointError("save_checkpoint writes the model's state_dict itself; "
                              "do not pass state_dict= as metadata")
    for key, value in meta.items():
        _check_plain(value, key)
    obj = {"arch": model.arch, "num_classes": model.num_classes,
           "input_size": list(model.input_size), **meta,
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
