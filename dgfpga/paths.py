"""Where dgfpga finds the engine sources it generates projects and simulations from.

In a checkout they are the top-level `hls/` and `sim/` folders; an installed dgfpga (a wheel,
`pip install <checkout>`) carries the same trees as package data under `dgfpga/hw/`
(pyproject.toml maps them there). `engine_root()` returns the folder that holds both, so
`engine_root() / "hls" / "src"` is the HLS engine wherever dgfpga runs from.

Caches and build products never go into either place: `cache_dir()` is `$DGFPGA_CACHE`
or `~/.cache/dgfpga`.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from dgfpga.errors import DgfpgaError

_PKG = Path(__file__).resolve().parent
# What must be present for a folder to count as an engine tree.
_MARKERS = ("hls/src/dg_engine.cpp", "sim/rtl/dg_engine.sv")


def _is_engine_tree(root: Path) -> bool:
    return all((root / m).is_file() for m in _MARKERS)


@lru_cache(maxsize=None)
def engine_root() -> Path:
    """The folder holding `hls/` and `sim/`: the checkout first, else the installed copy."""
    for root in (_PKG.parent, _PKG / "hw"):
        if _is_engine_tree(root):
            return root
    raise DgfpgaError(
        f"the engine sources (hls/, sim/) are neither in a checkout beside {_PKG} nor "
        f"installed under {_PKG / 'hw'}: reinstall dgfpga (pip install <checkout>)")


def hls_dir() -> Path:
    return engine_root() / "hls"


def sim_dir() -> Path:
    return engine_root() / "sim"


def in_checkout() -> bool:
    """True when running from a source checkout (where `dgfpga gen` may write)."""
    return engine_root() == _PKG.parent


def cache_dir(*parts: str) -> Path:
    """A per-user cache folder (created), `$DGFPGA_CACHE` or `~/.cache/dgfpga`."""
    base = Path(os.environ.get("DGFPGA_CACHE") or Path.home() / ".cache" / "dgfpga")
    d = base.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def shipped_checkpoint(name: str) -> Path:
    """A checkpoint shipped with the zoo (`models/checkpoints/NAME.pth.tar`), located without
    importing `dgfpga_models` (which needs torch)."""
    import importlib.util
    spec = importlib.util.find_spec("dgfpga_models")
    if spec is None or not spec.submodule_search_locations:
        raise DgfpgaError("the DGNet zoo (dgfpga_models) is not installed: pip install dgfpga[torch]")
    folder = Path(list(spec.submodule_search_locations)[0]) / "checkpoints"
    path = folder / f"{name}.pth.tar"
    if not path.is_file():
        have = sorted(p.name for p in folder.glob("*.pth.tar"))
        raise DgfpgaError(f"no shipped checkpoint {name!r} in {folder} (have: {', '.join(have) or 'none'})")
    return path


def build_lock(target: Path):
    """An inter-process lock for building `target` (a cache folder or file), held as
    ``with build_lock(d): ...``. Parallel test workers (pytest -n 2) and parallel jobs that
    need the same Verilator or C-sim build then build it once: the second waits and finds
    it built. The lock is an OS file lock (filelock), released when its process exits, so a
    killed build never leaves a stale lock behind."""
    from filelock import FileLock
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target.parent / f".{target.name}.lock"))
