"""The one image-spec parser: every `--images SPEC` / `--calib SPEC` of `dgfpga` and
`dgfpga-host` goes through `load_images` (torch-free: numpy; Pillow for PNG/JPEG).

SPEC is one of

    embedded[:N][:SPLIT]   the embedded 32x32 digits (dgfpga.data.embedded), SPLIT
                           train/val/test (default: the command's), N default: whole split
    photos[:N][:SPLIT]     the embedded 224x224 photo crops (dgfpga.data.photos), N default 64
    FILE.npy               an array of images
    FOLDER                 a folder of .png/.jpg/.jpeg/.npy files, one image each, in name order

Layout rules (enforced; anything else is an `ImageSpecError` naming the input):

    uint8   pixels 0..255, HWC: [N, H, W, 3] (.npy) or [H, W, 3] (one image); converted with
            the network's normalisation: (x/255 - mean)/std, to NCHW
    float   already normalised, NCHW: [N, 3, H, W] (.npy) or [3, H, W] (one image); must be
            finite and inside the range that pixels 0..255 map to (+-RANGE_TOLERANCE)

H x W must be the network's input size (no resizing: crop or resize the files first).
An .npy header is checked against the file's size before anything is allocated.
The result is always float32 [N, 3, H, W] (`ImageSet.images`), with labels and object
masks when the source has them (embedded only).

`default_spec(input_hw, purpose)` gives the default image set (`DEFAULTS`) for a network's
input size: embedded digits for 32x32 networks, embedded photos for 224x224 ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.errors import DgfpgaError

__all__ = ["ImageSpecError", "ImageSpec", "ImageSet", "parse_spec", "load_images",
           "default_spec", "normalization_for", "DEFAULTS", "check_normalised", "EMBEDDED_KINDS",
           "IMAGE_SUFFIXES", "RANGE_TOLERANCE", "input_range"]

EMBEDDED_KINDS = ("embedded", "photos")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
RANGE_TOLERANCE = 0.05     # normalised units beyond the 0..255 pixel range still accepted


class ImageSpecError(DgfpgaError):
    """An image spec is malformed, or its images are missing, unreadable or of the wrong
    layout, size or range for the network."""


@dataclass(frozen=True)
class ImageSpec:
    """A parsed spec: kind is embedded, photos, npy, folder (or an extra kind a caller
    registered, e.g. dgfpga-host's `selfcheck`)."""
    kind: str
    n: Optional[int] = None          # embedded kinds: image count (None = the default)
    split: Optional[str] = None      # embedded kinds: train/val/test (None = the caller's)
    path: Optional[Path] = None      # npy and folder


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray                       # float32 [N, 3, H, W], normalised
    labels: Optional[np.ndarray] = None      # int64 [N] (embedded only)
    object_masks: Optional[np.ndarray] = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _err(what: str, spec: str, msg: str) -> ImageSpecError:
    return ImageSpecError(f"{what} {spec}: {msg}")


def parse_spec(spec: str, what: str = "--images", extra_kinds: tuple[str, ...] = ()) -> ImageSpec:
    """Parse SPEC (syntax and existence only; nothing is loaded)."""
    from dgfpga.data.embedded import SPLITS
    if not isinstance(spec, str) or not spec.strip():
        raise _err(what, repr(spec), "empty image spec; expected " + _GRAMMAR)
    head, _, rest = spec.partition(":")
    if head in EMBEDDED_KINDS + tuple(extra_kinds):
        parts = rest.split(":") if rest else []
        n = split = None
        if len(parts) > 2:
            raise _err(what, spec, f"expected {head}[:N][:SPLIT]")
        for i, part in enumerate(parts):
            if part.lstrip("+-").isdigit() and i == 0:
                n = int(part)
                if n <= 0:
                    raise _err(what, spec, f"N must be a positive image count, got {n}")
            elif part in SPLITS and split is None:
                split = part
            else:
                raise _err(what, spec, f"{part!r} is neither an image count N >= 1 nor a split "
                                       f"({'/'.join(SPLITS)}); expected {head}[:N][:SPLIT]")
        return ImageSpec(head, n, split)
    p = Path(spec)
    if p.is_dir():
        return ImageSpec("folder", path=p)
    if p.suffix.lower() == ".npy":
        if not p.is_file():
            raise _err(what, spec, "no such .npy file")
        return ImageSpec("npy", path=p)
    if p.exists():
        raise _err(what, spec, "not an .npy file or a folder; expected " + _GRAMMAR)
    raise _err(what, spec, "no such file or folder, and not a known spec; expected " + _GRAMMAR)


_GRAMMAR = ("embedded[:N][:SPLIT], photos[:N][:SPLIT], an .npy file or a folder of "
            "PNG/JPEG/.npy images")


def normalization_for(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The default input normalisation (mean, std) of an architecture: the embedded digits'
    statistics for the CIFAR-family (`*_cifar10`), ImageNet's otherwise."""
    if arch.endswith("_cifar10"):
        from dgfpga.data.embedded import MEAN, STD
    else:
        from dgfpga.data.photos import MEAN, STD
    return tuple(MEAN), tuple(STD)


# The default image set of each purpose, by the network's input size (H, W).
DEFAULTS = {
    "calib": {(32, 32): "embedded:256:train", (224, 224): "photos:64:train"},
    "check": {(32, 32): "embedded:20:test", (224, 224): "photos:8:test"},
    "eval": {(32, 32): "embedded:test", (224, 224): "photos:64:test"},
}


def default_spec(input_hw, purpose: str = "check") -> str:
    """The default SPEC for `purpose` (calib: calibration; check: self-check and prediction
    images; eval: evaluation) for a network taking `input_hw` = (H, W) inputs: embedded
    digits for 32x32 networks, embedded photos for 224x224 ones."""
    hw = tuple(int(v) for v in input_hw)
    try:
        return DEFAULTS[purpose][hw]
    except KeyError:
        raise ImageSpecError(f"no embedded image set is {hw[0]}x{hw[1]} (embedded: 32x32, "
                             f"photos: 224x224): give the images as an .npy file or a "
                             f"folder") from None


def input_range(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel normalised values of pixel 0 and pixel 1: `(0 - mean)/std`, `(1 - mean)/std`."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return (0 - mean) / std, (1 - mean) / std


def check_normalised(x: np.ndarray, mean, std, tolerance: float = RANGE_TOLERANCE
                     ) -> Optional[str]:
    """None if float NCHW `x` is finite and within the normalised pixel range, else why not."""
    if not np.all(np.isfinite(x)):
        return "contains NaN or infinity"
    lo, hi = input_range(mean, std)
    cmin, cmax = x.min(axis=(0, 2, 3)), x.max(axis=(0, 2, 3))
    if np.any(cmin < lo - tolerance) or np.any(cmax > hi + tolerance):
        return (f"values outside the normalised range: per-channel min "
                f"{np.round(cmin, 3).tolist()} / max {np.round(cmax, 3).tolist()}, expected "
                f"within {np.round(lo, 3).tolist()} .. {np.round(hi, 3).tolist()} for mean "
                f"{list(mean)}, std {list(std)}. Were they normalised (x/255 - mean)/std "
                f"exactly once? (raw pixels must be uint8 [N,H,W,3])")
    return None


def _to_nchw(a: np.ndarray, shape, mean, std, name: str, what: str, single: bool) -> np.ndarray:
    """Apply the layout rules to one array (a batch, or one image if `single`)."""
    c, h, w = shape
    nd = 3 if single else 4
    lead = "" if single else "N, "
    if a.dtype == np.uint8:
        if a.ndim != nd or tuple(a.shape[-3:]) != (h, w, c):
            raise _err(what, name, f"uint8 pixels of shape {list(a.shape)}; the network takes "
                                   f"uint8 [{lead}{h}, {w}, {c}] (HWC) or normalised float32 "
                                   f"[{lead}{c}, {h}, {w}] (NCHW)")
        x = a.reshape(-1, h, w, c).astype(np.float32) / 255.0
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if np.issubdtype(a.dtype, np.floating):
        if a.ndim != nd or tuple(a.shape[-3:]) != (c, h, w):
            hint = ""
            if a.ndim == nd and tuple(a.shape[-3:]) == (h, w, c):
                hint = " (this looks like HWC: floats must be NCHW)"
            raise _err(what, name, f"float images of shape {list(a.shape)}; the network takes "
                                   f"normalised float32 [{lead}{c}, {h}, {w}] (NCHW) or uint8 "
                                   f"[{lead}{h}, {w}, {c}] pixels{hint}")
        x = a.reshape(-1, c, h, w).astype(np.float32)
        why = check_normalised(x, mean, std)
        if why:
            raise _err(what, name, why)
        return x
    raise _err(what, name, f"dtype {a.dtype}: images must be uint8 pixels 0..255 (HWC) or "
                           f"normalised floats (NCHW)")


def _load_npy(path: Path, what: str, spec: str) -> np.ndarray:
    """np.load, after checking the .npy header against the file's size: a header that
    claims more data than the file holds (e.g. 2^40 images) is refused before anything is
    allocated, so memory stays bounded by the file's size."""
    from numpy.lib import format as npy
    try:
        with open(path, "rb") as f:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = f.tell()
            f.seek(0, 2)
            have = f.tell() - offset
        if dtype.hasobject:
            raise ValueError("object arrays are not images")
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if need != have:
            raise ValueError(f"the header declares {dtype} {list(shape)} ({need} bytes) but the "
                             f"file holds {have} bytes of data: truncated or not made by np.save")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _err(what, spec, f"not a readable .npy array ({exc})") from None


def _load_picture(path: Path, what: str) -> np.ndarray:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise _err(what, str(path), "PNG/JPEG input needs Pillow (pip install pillow); "
                                    "or give .npy files") from None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _err(what, str(path), f"not a readable PNG/JPEG image ({exc})") from None


def _suggest(hw) -> str:
    kinds = {(32, 32): "embedded[:N][:SPLIT]", (224, 224): "photos[:N][:SPLIT]"}
    return kinds.get(tuple(hw), "an .npy file or a folder of images of that size")


def load_images(spec: Optional[str], input_shape, mean=None, std=None, *,
                arch: Optional[str] = None, purpose: str = "check",
                default_split: Optional[str] = None, what: str = "--images",
                labels_required: bool = False) -> ImageSet:
    """Load SPEC as float32 [N, 3, H, W] for a network with `input_shape` (C, H, W).

    mean/std: the network's normalisation (default: `normalization_for(arch)`). spec None:
    `default_spec(input size, purpose)`. default_split: the split of an embedded spec
    without one (default: train for calibration, else test). Raises ImageSpecError (a
    DgfpgaError) on any violation, before anything else is done."""
    from dgfpga.data import embedded, photos
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or shape[0] != 3:
        raise ImageSpecError(f"{what}: networks take 3-channel inputs, got shape {shape}")
    if mean is None or std is None:
        if arch is None:
            raise ImageSpecError(f"{what}: give the network's mean/std or its arch")
        mean, std = normalization_for(arch)
    if default_split is None:
        default_split = "train" if purpose == "calib" else "test"
    if spec is None:
        spec = default_spec(shape[1:], purpose)
    s = parse_spec(spec, what)
    if s.kind in EMBEDDED_KINDS:
        mod = embedded if s.kind == "embedded" else photos
        size = mod.IMAGE_SIZE
        if shape[1:] != (size, size):
            raise _err(what, spec, f"the {s.kind} images are {size}x{size} but the network "
                                   f"takes {shape[1]}x{shape[2]}: use "
                                   f"{_suggest(shape[1:])}")
        split = s.split or default_split
        if s.kind == "embedded":
            d = embedded.load_split(split, s.n)
            # the dataset is made with its own MEAN/STD: re-normalise if the network differs
            x = d.images
            if tuple(mean) != tuple(embedded.MEAN) or tuple(std) != tuple(embedded.STD):
                x = _to_nchw(embedded.load_raw(split, s.n).images, shape, mean, std, spec,
                             what, False)
            out = ImageSet(x, d.labels, d.object_masks, f"embedded:{len(d)}:{split}")
        else:
            raw = photos.load_raw(split, s.n or photos.DEFAULT_N)
            out = ImageSet(_to_nchw(raw, shape, mean, std, spec, what, False), None, None,
                           f"photos:{len(raw)}:{split}")
    elif s.kind == "npy":
        a = _load_npy(s.path, what, spec)
        if a.ndim == 0 or a.shape[0] == 0:
            raise _err(what, spec, f"empty array of shape {list(a.shape)}: give at least one image")
        out = ImageSet(_to_nchw(a, shape, mean, std, spec, what, False), source=spec)
    elif s.kind == "folder":
        try:
            files = sorted(p for p in s.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise _err(what, spec, f"cannot read the folder ({exc.strerror or exc})") from None
        if not files:
            raise _err(what, spec, "folder holds no .png/.jpg/.jpeg/.npy images")
        xs = []
        for p in files:
            a = _load_npy(p, what, str(p)) if p.suffix.lower() == ".npy" else _load_picture(p, what)
            xs.append(_to_nchw(a, shape, mean, std, str(p), what, True))
        out = ImageSet(np.concatenate(xs), source=f"{spec} ({len(files)} files)")
    else:   # pragma: no cover - parse_spec only returns the kinds above without extra_kinds
        raise _err(what, spec, f"{s.kind} images are not available here")
    if labels_required and out.labels is None:
        raise _err(what, spec, "this command needs labelled images: use embedded[:N][:SPLIT]")
    return out
