"""The board bundle: everything the runtime needs, written by `dgfpga build-hls` (numpy only).

```
bundle/
  manifest.json    format, versions, engine configuration, hashes, file names
  model.qnpz       the quantized model (dgfpga.numerics.qmodel; no pickle)
  selfcheck.npz    int8 test images + the golden model's outputs, gated and dense
```

Loading checks the manifest version, the engine configuration (its hash must match the
one recorded), the quantized model (validated by `load_qmodel`) and the packed weight
image (SHA-256 recomputed from the model and compared), so a bundle from another engine
configuration, another dgfpga version or a corrupted copy is refused with the reason.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract.engine_config import EngineConfig, config_from_dict
from dgfpga.errors import ConfigError, FormatError
from dgfpga.contract.formats import FORMAT_VERSION
from dgfpga.runtime.packer import NetworkPlan, plan_network
from dgfpga.numerics.qmodel import QModel, load_qmodel, save_qmodel

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "Bundle", "SelfCheck", "write_bundle",
           "load_bundle"]

BUNDLE_FORMAT = "dgfpga-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.qnpz"
SELFCHECK_FILE = "selfcheck.npz"


@dataclass
class SelfCheck:
    """Images (int8, quantized) and what the golden model computed for them."""
    images: np.ndarray            # int8 [N, C, H, W]
    labels: np.ndarray            # int64 [N] (-1 if unknown)
    logits_int: np.ndarray        # int64 [N, K], gated
    logits_int_dense: np.ndarray  # int64 [N, K], every gate on
    spatial: list                 # per block bool [N, gh, gw]
    channel: list                 # per block bool [N, C]


@dataclass
class Bundle:
    path: Path
    manifest: dict
    cfg: EngineConfig
    qmodel: QModel
    plan: NetworkPlan
    selfcheck: Optional[SelfCheck]


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_bundle(out_dir, qm: QModel, cfg: EngineConfig, selfcheck: Optional[SelfCheck],
                 extra: Optional[dict] = None) -> Path:
    """Write a bundle folder (deterministic: the same inputs give the same bytes)."""
    from dgfpga import __version__
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_network(qm, cfg)
    save_qmodel(qm, out / MODEL_FILE)
    manifest = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "dgfpga_version": __version__,
        "format_version": FORMAT_VERSION, "arch": qm.arch,
        "engine": cfg.to_dict(), "config_hash": f"0x{cfg.config_hash:08X}",
        "model": MODEL_FILE, "weight_sha256": _sha256(plan.weight_image),
        "region_bytes": plan.region_bytes,
        "selfcheck": SELFCHECK_FILE if selfcheck is not None else None,
        **(extra or {}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if selfcheck is not None:
        arrays = {"images": selfcheck.images.astype(np.int8),
                  "labels": selfcheck.labels.astype(np.int64),
                  "logits_int": selfcheck.logits_int.astype(np.int64),
                  "logits_int_dense": selfcheck.logits_int_dense.astype(np.int64)}
        for i, (s, c) in enumerate(zip(selfcheck.spatial, selfcheck.channel)):
            arrays[f"spatial_{i}"] = np.asarray(s, bool)
            arrays[f"channel_{i}"] = np.asarray(c, bool)
        _save_npz_deterministic(out / SELFCHECK_FILE, arrays)
    return out


def _save_npz_deterministic(path: Path, arrays: dict) -> None:
    """np.savez with fixed zip timestamps, so rebuilding gives identical bytes."""
    import io
    import zipfile
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.save(buf, arrays[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())


def load_bundle(path, cfg_override: Optional[EngineConfig] = None) -> Bundle:
    """Load and check a bundle folder. FormatError/ConfigError name what is wrong."""
    p = Path(path)
    mpath = p / MANIFEST
    if not mpath.is_file():
        raise FormatError(f"{p}: not a dgfpga bundle (no {MANIFEST}); build one with "
                          "`dgfpga build-hls ... -o OUT` and copy OUT/bundle")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{mpath}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise FormatError(f"{mpath}: not a {BUNDLE_FORMAT} manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise FormatError(f"{mpath}: bundle version {manifest.get('version')}, this runtime "
                          f"reads {BUNDLE_VERSION}: rebuild the bundle with this dgfpga")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FormatError(f"{mpath}: engine formats version {manifest.get('format_version')}, "
                          f"this runtime writes {FORMAT_VERSION}: rebuild bundle and bitstream")
    try:
        cfg = config_from_dict(manifest["engine"], source=str(mpath))
    except (KeyError, TypeError) as exc:
        raise FormatError(f"{mpath}: engine configuration missing or malformed ({exc})") from None
    if f"0x{cfg.config_hash:08X}" != manifest.get("config_hash"):
        raise ConfigError(f"{mpath}: engine configuration hash 0x{cfg.config_hash:08X} does "
                          f"not match the recorded {manifest.get('config_hash')}: the manifest "
                          "was edited or written by another dgfpga version")
    if cfg_override is not None and cfg_override.config_hash != cfg.config_hash:
        raise ConfigError(f"bundle was built for engine '{cfg.name}' (0x{cfg.config_hash:08X}), "
                          f"not '{cfg_override.name}' (0x{cfg_override.config_hash:08X}): "
                          "rebuild it with --config " + cfg_override.name)
    qm = load_qmodel(p / str(manifest.get("model", MODEL_FILE)))
    plan = plan_network(qm, cfg)
    if _sha256(plan.weight_image) != manifest.get("weight_sha256"):
        raise FormatError(f"{p}: packed weights differ from the manifest's hash: the model "
                          "file was changed or the bundle comes from another dgfpga version")
    sc = None
    if manifest.get("selfcheck"):
        sc = _load_selfcheck(p / manifest["selfcheck"], len(qm.blocks))
    return Bundle(p, manifest, cfg, qm, plan, sc)


def _load_selfcheck(path: Path, n_blocks: int) -> SelfCheck:
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: unreadable self-check file ({exc})") from None
    try:
        return SelfCheck(a["images"], a["labels"], a["logits_int"], a["logits_int_dense"],
                         [a[f"spatial_{i}"] for i in range(n_blocks)],
                         [a[f"channel_{i}"] for i in range(n_blocks)])
    except KeyError as exc:
        raise FormatError(f"{path}: self-check entry {exc} missing") from None
