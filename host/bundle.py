"""The board bundle: everything the runtime needs, written by `dgfpga build-hls` (numpy only).

```
bundle/
  manifest.json    format, versions, engine configuration, hashes, file names
  model.qnpz       the quantized model (dgfpga.numerics.qmodel; no pickle)
  selfcheck.npz    int8 test images + the golden model's outputs, gated and dense
  .dgfpga-output   dgfpga's output marker (dgfpga.outdir)
```

Writing is transactional (dgfpga.outdir): the three files are written into a temporary
sibling folder and moved into place together, so a bundle is complete or absent.

Loading trusts nothing in the folder (docs/board.md, "The bundle"): the manifest is read
within size/depth/integer limits; the file names it gives must be plain names inside the
bundle; the manifest version, the engine configuration (its hash must match the one
recorded), the SHA-256 of model.qnpz and selfcheck.npz, the model (validated by
`load_qmodel`), its `arch`, and the packed weight image (SHA-256 recomputed from the model)
are all checked, and selfcheck.npz is parsed against the names, dtypes and shapes the model
implies before any member is decompressed. Whatever is wrong is a FormatError/ConfigError
naming it.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract.engine_config import EngineConfig, config_from_dict
from dgfpga.errors import ConfigError, FormatError
from dgfpga.outdir import sha256_file as _sha256_file
from dgfpga.contract.formats import FORMAT_VERSION
from dgfpga.runtime.packer import NetworkPlan, plan_network
from dgfpga.numerics.qmodel import QModel, load_qmodel

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "Bundle", "SelfCheck", "write_bundle",
           "load_bundle"]

BUNDLE_FORMAT = "dgfpga-bundle"
BUNDLE_VERSION = 2               # 2: model_sha256 and selfcheck_sha256 in the manifest
MANIFEST = "manifest.json"
MODEL_FILE = "model.qnpz"
SELFCHECK_FILE = "selfcheck.npz"
MAX_MANIFEST_BYTES = 2 ** 20
MAX_SELFCHECK_BYTES = 256 * 2 ** 20
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")   # a plain file name


@dataclass
class SelfCheck:
    """Images (int8, quantized) and what the golden model computed for them."""
    images: np.ndarray            # int8 [N, C, H, W]
    labels: np.ndarray            # int64 [N] (-1 if unknown)
    logits_int: np.ndarray        # int64 [N, K], gated
    logits_int_dense: np.ndarray  # int64 [N, K], every gate on
    spatial: list                 # per gated block bool [N, gh, gw] (every ResNet block)
    channel: list                 # per gated block bool [N, C]


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
                 extra: Optional[dict] = None, force: bool = False) -> Path:
    """Write a bundle folder (deterministic: the same inputs give the same bytes), complete
    or not at all (dgfpga.outdir.output_dir; `force` as there)."""
    from dgfpga import __version__
    from dgfpga.numerics.qmodel import to_arrays
    from dgfpga.outdir import output_dir
    plan = plan_network(qm, cfg)
    out = Path(out_dir)
    with output_dir(out, "bundle", force=force) as tmp:
        _save_npz_deterministic(tmp / MODEL_FILE, to_arrays(qm))
        manifest = {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "dgfpga_version": __version__,
            "format_version": FORMAT_VERSION, "arch": qm.arch,
            "engine": cfg.to_dict(), "config_hash": f"0x{cfg.config_hash:08X}",
            "model": MODEL_FILE, "model_sha256": _sha256_file(tmp / MODEL_FILE),
            "weight_sha256": _sha256(plan.weight_image),
            "region_bytes": plan.region_bytes,
            "selfcheck": SELFCHECK_FILE if selfcheck is not None else None,
            "selfcheck_sha256": None,
            **(extra or {}),
        }
        if selfcheck is not None:
            arrays = {"images": selfcheck.images.astype(np.int8),
                      "labels": selfcheck.labels.astype(np.int64),
                      "logits_int": selfcheck.logits_int.astype(np.int64),
                      "logits_int_dense": selfcheck.logits_int_dense.astype(np.int64)}
            for i, (s, c) in enumerate(zip(selfcheck.spatial, selfcheck.channel)):
                arrays[f"spatial_{i}"] = np.asarray(s, bool)
                arrays[f"channel_{i}"] = np.asarray(c, bool)
            _save_npz_deterministic(tmp / SELFCHECK_FILE, arrays)
            manifest["selfcheck_sha256"] = _sha256_file(tmp / SELFCHECK_FILE)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
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


def _bundle_file(p: Path, mpath: Path, manifest: dict, key: str, sha_key: str,
                 limit: int) -> Path:
    """The file named by manifest[key]: a plain name inside the bundle, a regular file of
    at most `limit` bytes, whose SHA-256 is manifest[sha_key]."""
    name = manifest.get(key)
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise FormatError(f"{mpath}: {key} {name!r} is not a file name inside the bundle "
                          "(plain names only: no folders, '..' or absolute paths)")
    f = p / name
    if f.is_symlink() or not f.is_file() or f.resolve().parent != p.resolve():
        raise FormatError(f"{p}: {key} file {name} is missing or not a regular file inside "
                          "the bundle: copy the whole bundle folder again")
    size = f.stat().st_size
    if size > limit:
        raise FormatError(f"{f}: {size} bytes, more than the {limit}-byte limit")
    want = manifest.get(sha_key)
    if not isinstance(want, str) or _sha256_file(f) != want:
        raise FormatError(f"{f}: SHA-256 differs from the manifest's {sha_key}: the file was "
                          "changed, truncated or comes from another bundle; rebuild or copy "
                          "the whole bundle folder again")
    return f


def load_bundle(path, cfg_override: Optional[EngineConfig] = None) -> Bundle:
    """Load and check a bundle folder. FormatError/ConfigError name what is wrong."""
    from dgfpga.numerics.qmodel import MAX_HEADER_BYTES, max_array_bytes, parse_header
    p = Path(path)
    mpath = p / MANIFEST
    if not mpath.is_file():
        raise FormatError(f"{p}: not a dgfpga bundle (no {MANIFEST}); build one with "
                          "`dgfpga build-hls ... -o OUT` and copy OUT/bundle")
    try:
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise FormatError(f"{size} bytes, more than the {MAX_MANIFEST_BYTES}-byte limit")
        manifest = parse_header(mpath.read_bytes(), what=MANIFEST)
    except (OSError, FormatError) as exc:
        raise FormatError(f"{mpath}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise FormatError(f"{mpath}: not a {BUNDLE_FORMAT} manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise FormatError(f"{mpath}: bundle version {manifest.get('version')!r}, this runtime "
                          f"reads {BUNDLE_VERSION}: rebuild the bundle with this dgfpga")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FormatError(f"{mpath}: engine formats version {manifest.get('format_version')!r}, "
                          f"this runtime writes {FORMAT_VERSION}: rebuild bundle and bitstream")
    try:
        if not isinstance(manifest.get("engine"), dict):
            raise TypeError("'engine' is not a table")
        cfg = config_from_dict(manifest["engine"], source=str(mpath))
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{mpath}: engine configuration missing or malformed ({exc})") from None
    if f"0x{cfg.config_hash:08X}" != manifest.get("config_hash"):
        raise ConfigError(f"{mpath}: engine configuration hash 0x{cfg.config_hash:08X} does "
                          f"not match the recorded {manifest.get('config_hash')}: the manifest "
                          "was edited or written by another dgfpga version")
    if cfg_override is not None and cfg_override.config_hash != cfg.config_hash:
        raise ConfigError(f"bundle was built for engine '{cfg.name}' (0x{cfg.config_hash:08X}), "
                          f"not '{cfg_override.name}' (0x{cfg_override.config_hash:08X}): "
                          "rebuild it with --config " + cfg_override.name)
    model_cap = max_array_bytes() + MAX_HEADER_BYTES + 16 * 2 ** 20
    qm = load_qmodel(_bundle_file(p, mpath, manifest, "model", "model_sha256", model_cap))
    if manifest.get("arch") != qm.arch:
        raise FormatError(f"{mpath}: arch {manifest.get('arch')!r}, but the model is "
                          f"{qm.arch!r}: the manifest was edited; rebuild the bundle")
    plan = plan_network(qm, cfg)
    if _sha256(plan.weight_image) != manifest.get("weight_sha256"):
        raise FormatError(f"{p}: packed weights differ from the manifest's hash: the model "
                          "file was changed or the bundle comes from another dgfpga version")
    sc = None
    if manifest.get("selfcheck") is not None:
        sc = _load_selfcheck(_bundle_file(p, mpath, manifest, "selfcheck", "selfcheck_sha256",
                                          MAX_SELFCHECK_BYTES), qm)
    return Bundle(p, manifest, cfg, qm, plan, sc)


def _gated_blocks(qm: QModel) -> list:
    """The blocks with gates, in order (every ResNet block; MobileNetV2's residual blocks):
    a self-check holds their decisions, `spatial_<k>`/`channel_<k>` for the k-th."""
    return [b for b in qm.blocks if b.gated]


def _selfcheck_table(qm: QModel, n: int) -> dict:
    """{member: (dtype, shape)} a self-check of n images for qm must hold."""
    k = qm.num_classes
    t = {"images": (np.dtype(np.int8), (n, *map(int, qm.input_shape))),
         "labels": (np.dtype(np.int64), (n,)),
         "logits_int": (np.dtype(np.int64), (n, k)),
         "logits_int_dense": (np.dtype(np.int64), (n, k))}
    for i, b in enumerate(_gated_blocks(qm)):
        t[f"spatial_{i}"] = (np.dtype(bool), (n, *map(int, b.grid)))
        t[f"channel_{i}"] = (np.dtype(bool), (n, int(b.conv1.out_channels)))
    return t


def _load_selfcheck(path: Path, qm: QModel) -> SelfCheck:
    """Parse selfcheck.npz within bounds: every member's name, dtype and shape (from its
    .npy preamble) and stored size (from the zip directory) checked against what `qm`
    implies before any member is read in full (the qmodel reader's helpers)."""
    import zipfile
    from dgfpga.numerics import qmodel as Q
    try:
        with open(path, "rb") as f:
            entries, cd_size = Q._eocd(f, path.stat().st_size)
            most = 2 * len(_gated_blocks(qm)) + 4
            if entries > most or cd_size > entries * 4096 + 22:
                raise FormatError(f"the zip lists {entries} members; a self-check of this "
                                  f"model has {most}")
            f.seek(0)
            zf = zipfile.ZipFile(f)
            infos = {i.filename: i for i in zf.infolist()}
            got = {}
            for name, info in infos.items():
                if not name.endswith(".npy") or info.compress_type != zipfile.ZIP_STORED \
                        or info.flag_bits & 0x1:
                    raise FormatError(f"member {name}: not a stored .npy")
                with zf.open(info) as m:
                    dt, shape, _, pre = Q._npy_preamble(m, name)
                got[name[:-4]] = (dt, shape, pre)
            if "images" not in got or len(got["images"][1]) != 4:
                raise FormatError("no images [N, C, H, W] entry")
            n = got["images"][1][0]
            want = _selfcheck_table(qm, n)
            if sorted(got) != sorted(want):
                missing = sorted(set(want) - set(got))
                extra = sorted(set(got) - set(want))
                raise FormatError("entries " + (f"missing: {', '.join(missing[:5])} "
                                  if missing else "") + (f"not expected: {', '.join(extra[:5])}"
                                                         if extra else ""))
            arrays = {}
            for name, (dt, shape) in want.items():
                gdt, gshape, pre = got[name]
                if gdt != dt or gshape != shape:
                    raise FormatError(f"entry {name} is {gdt} {list(gshape)}, expected {dt} "
                                      f"{list(shape)} for {qm.arch} with {n} images")
                nbytes = math.prod(shape) * dt.itemsize
                arrays[name] = Q._read_member(zf, infos[name + ".npy"], dt, shape, nbytes)
    except FormatError as exc:
        raise FormatError(f"{path}: malformed self-check file: {exc}") from None
    except Q._READ_ERRORS as exc:
        raise FormatError(f"{path}: unreadable self-check file (truncated or corrupt?): "
                          f"{type(exc).__name__}: {exc}") from None
    nb = len(_gated_blocks(qm))
    return SelfCheck(arrays["images"], arrays["labels"], arrays["logits_int"],
                     arrays["logits_int_dense"], [arrays[f"spatial_{i}"] for i in range(nb)],
                     [arrays[f"channel_{i}"] for i in range(nb)])
