"""Cluttered-digits: a small 32x32 RGB classification set built offline from sklearn's digits.

Torch-free (numpy + scikit-learn): the board-side tools and the tests can import it.

Each image holds one handwritten digit (sklearn's bundled 8x8 ``load_digits``), scaled to
10-16 px and placed at a random position, over a cluttered background: a colour gradient,
pixel noise, fragments cropped from *other* digits and random strokes. The label is the
digit's class. The object covers a minority of the image, so a spatial gate has something
to find, and the per-image object mask (and bounding box) is kept to measure whether it
finds it. See ``docs/dataset.md``.

The 1797 source digits are split once (fixed, stratified) into train/val/test pools, so a
test image never shows a digit (or a distractor fragment) seen in training, whatever the
generation seed. Generation is vectorised (10k images in about a second) and cached as
``.npz`` under ``$DGFPGA_CACHE`` (default ``~/.cache/dgfpga``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SIZE", "NUM_CLASSES", "MEAN", "STD", "SPLITS", "DEFAULT_SIZES", "VERSION",
    "Split", "RawSplit", "load_split", "load_raw", "generate", "normalize", "cache_dir",
    "source_indices",
]

VERSION = 1                      # bump when the generator changes: it is part of the cache key
IMAGE_SIZE = 32
NUM_CLASSES = 10
SPLITS = ("train", "val", "test")
DEFAULT_SIZES = {"train": 10000, "val": 1000, "test": 2000}
# Fraction of the 1797 source digits in each pool (stratified by class).
_POOL_FRACTIONS = {"train": 0.6, "val": 0.15, "test": 0.25}
_POOL_SEED = 20211011            # fixed: the pools never depend on the generation seed
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}

OBJECT_SIZES_PX = (10, 16)       # inclusive range of the scaled digit's side
OBJECT_MASK_THRESHOLD = 0.25     # digit intensity (0..1) above which a pixel is "object"

# Per-channel statistics of the default train split (seed 0), in 0..1 units; used by
# `normalize`. tests/test_data.py checks they match the generated data.
MEAN = (0.4326, 0.4260, 0.4293)
STD = (0.2045, 0.2041, 0.2044)


@dataclass(frozen=True)
class RawSplit:
    """One generated split as stored: uint8 HWC images plus labels and object geometry."""
    images: np.ndarray        # uint8 [N, 32, 32, 3]
    labels: np.ndarray        # int64 [N]
    object_masks: np.ndarray  # bool  [N, 32, 32]: pixels where the digit's ink is
    boxes: np.ndarray         # int16 [N, 4]: y0, x0, y1, x1 (exclusive) of the scaled digit
    source_ids: np.ndarray    # int32 [N]: index into load_digits() of the object digit


@dataclass(frozen=True)
class Split:
    """One split ready for a network: normalised float32 NCHW images."""
    images: np.ndarray        # float32 [N, 3, 32, 32], (x/255 - MEAN) / STD
    labels: np.ndarray        # int64 [N]
    object_masks: np.ndarray  # bool  [N, 32, 32]
    boxes: np.ndarray         # int16 [N, 4]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def cache_dir() -> Path:
    """Where generated splits are cached: ``$DGFPGA_CACHE`` or ``~/.cache/dgfpga``."""
    from dgfpga import paths
    return paths.cache_dir()


def _digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    # sklearn's digits are 0..16 ink values; keep them as 0..1 float.
    return (d.images.astype(np.float32) / 16.0), d.target.astype(np.int64)


def source_indices(split: str) -> np.ndarray:
    """Indices (into ``load_digits()``) of the source digits that ``split`` may use.

    The three pools are disjoint and stratified by class; they are fixed (independent of
    any generation seed).
    """
    _check_split(split)
    _, y = _digits()
    rng = np.random.default_rng(_POOL_SEED)
    pools = {s: [] for s in SPLITS}
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = int(round(len(idx) * _POOL_FRACTIONS["train"]))
        n_val = int(round(len(idx) * _POOL_FRACTIONS["val"]))
        pools["train"].append(idx[:n_train])
        pools["val"].append(idx[n_train:n_train + n_val])
        pools["test"].append(idx[n_train + n_val:])
    return np.sort(np.concatenate(pools[split]))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        from dgfpga.errors import DgfpgaError
        raise DgfpgaError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


def resize_matrix(src: int, dst: int, dtype=np.float32) -> np.ndarray:
    """[dst, src] bilinear (align_corners=False) interpolation matrix (the embedded sets'
    one resampler: digits here, photo crops in `dgfpga.data.photos`)."""
    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    pos = np.clip(pos, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    w_hi = pos - lo
    m = np.zeros((dst, src), dtype)
    m[np.arange(dst), lo] += 1 - w_hi
    m[np.arange(dst), hi] += w_hi
    return m


def _paste(canvas_alpha, patches, y0, x0):
    """canvas_alpha[n, y0:y0+s, x0:x0+s] = max(canvas, patch) for a batch of s x s patches."""
    n, s, _ = patches.shape
    r = np.arange(s)
    rows = (y0[:, None] + r[None, :])[:, :, None]
    cols = (x0[:, None] + r[None, :])[:, None, :]
    nn_ = np.arange(n)[:, None, None]
    rows_c = np.clip(rows, 0, IMAGE_SIZE - 1)
    cols_c = np.clip(cols, 0, IMAGE_SIZE - 1)
    inside = (rows >= 0) & (rows < IMAGE_SIZE) & (cols >= 0) & (cols < IMAGE_SIZE)
    cur = canvas_alpha[nn_, rows_c, cols_c]
    new = np.where(inside, np.maximum(cur, patches), cur)
    canvas_alpha[nn_, rows_c, cols_c] = new


def _composite(img, alpha, color):
    """img <- img*(1-alpha) + color*alpha; img [N,H,W,3], alpha [N,H,W], color [N,3]."""
    a = alpha[..., None]
    return img * (1 - a) + color[:, None, None, :] * a


def generate(split: str, n: int, seed: int = 0) -> RawSplit:
    """Generate ``n`` images of ``split`` deterministically from ``seed`` (no cache)."""
    _check_split(split)
    if n <= 0:
        from dgfpga.errors import DgfpgaError
        raise DgfpgaError(f"number of images must be positive, got {n}")
    digits, targets = _digits()
    pool = source_indices(split)
    rng = np.random.default_rng([seed, _SPLIT_ID[split], VERSION])
    S = IMAGE_SIZE

    # Background: a random colour per image with a linear gradient towards a second one.
    c0 = rng.uniform(0.15, 0.75, (n, 3)).astype(np.float32)
    c1 = np.clip(c0 + rng.uniform(-0.25, 0.25, (n, 3)), 0, 1).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi, n)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / (S - 1)
    t = (np.cos(ang)[:, None, None] * xx + np.sin(ang)[:, None, None] * yy)
    t = (t - t.min(axis=(1, 2), keepdims=True))
    t = t / np.maximum(t.max(axis=(1, 2), keepdims=True), 1e-6)
    img = c0[:, None, None, :] * (1 - t[..., None]) + c1[:, None, None, :] * t[..., None]

    def ink_color(k):
        # A colour well away from the local background: light on dark, dark on light.
        bright = c0.mean(axis=1)[:k] < 0.45
        base = np.where(bright[:, None], rng.uniform(0.7, 1.0, (k, 3)),
                        rng.uniform(0.0, 0.3, (k, 3)))
        return base.astype(np.float32)

    # Distractors: 3 fragments cropped from other pool digits + 2 random strokes.
    n_frag = 3
    for _ in range(n_frag):
        src = digits[rng.choice(pool, n)]
        # A 4x4..5x5 window of the 8x8 digit: a piece of a stroke, never a whole digit.
        cw = 4 + (rng.random(n) < 0.5).astype(int)
        oy = rng.integers(0, 8 - cw + 1)
        ox = rng.integers(0, 8 - cw + 1)
        alpha = np.zeros((n, S, S), np.float32)
        scale = rng.integers(OBJECT_SIZES_PX[0], OBJECT_SIZES_PX[1] + 1, n)
        for w in (4, 5):
            sel_w = np.flatnonzero(cw == w)
            for s in np.unique(scale[sel_w]):
                sel = sel_w[scale[sel_w] == s]
                ps = int(round(w * s / 8))     # same stroke scale as the object
                crops = np.stack([src[i, oy[i]:oy[i] + w, ox[i]:ox[i] + w] for i in sel])
                m = resize_matrix(w, ps)
                patch = np.einsum("ps,nst,qt->npq", m, crops, m)
                y0 = rng.integers(-2, S - ps + 3, len(sel))
                x0 = rng.integers(-2, S - ps + 3, len(sel))
                a = alpha[sel]
                _paste(a, patch, y0, x0)
                alpha[sel] = a
        strength = rng.uniform(0.5, 1.0, n).astype(np.float32)[:, None, None]
        img = _composite(img, alpha * strength, ink_color(n))

    n_strokes = 2
    for _ in range(n_strokes):
        p0 = rng.uniform(0, S, (n, 2))
        length = rng.uniform(4, 9, n)
        th = rng.uniform(0, np.pi, n)
        p1 = p0 + length[:, None] * np.stack([np.sin(th), np.cos(th)], 1)
        # Distance from each pixel to the segment, vectorised over the batch.
        pix = np.stack([yy * (S - 1), xx * (S - 1)], -1)[None]          # [1,S,S,2]
        d = (p1 - p0)[:, None, None, :]
        rel = pix - p0[:, None, None, :]
        u = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-6), 0, 1)
        dist = np.linalg.norm(rel - u[..., None] * d, axis=-1)
        width = rng.uniform(0.6, 1.2, n)[:, None, None]
        alpha = np.clip(width + 0.5 - dist, 0, 1).astype(np.float32)
        strength = rng.uniform(0.4, 0.9, n).astype(np.float32)[:, None, None]
        img = _composite(img, alpha * strength, ink_color(n))

    # The object: one pool digit, scaled to 10..16 px, fully inside the image.
    src_ids = rng.choice(pool, n).astype(np.int32)
    labels = targets[src_ids]
    size = rng.integers(OBJECT_SIZES_PX[0], OBJECT_SIZES_PX[1] + 1, n)
    y0 = (rng.random(n) * (S - size + 1)).astype(int)
    x0 = (rng.random(n) * (S - size + 1)).astype(int)
    obj = np.zeros((n, S, S), np.float32)
    for s in np.unique(size):
        sel = np.flatnonzero(size == s)
        m = resize_matrix(8, int(s))
        patch = np.einsum("ps,nst,qt->npq", m, digits[src_ids[sel]], m)
        a = obj[sel]
        _paste(a, patch, y0[sel], x0[sel])
        obj[sel] = a
    img = _composite(img, obj, ink_color(n))

    # Global intensity/contrast jitter and pixel noise.
    gain = rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32)
    img = (img - 0.5) * gain + 0.5
    img = img + rng.normal(0, 0.04, img.shape).astype(np.float32)
    images = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)

    boxes = np.stack([y0, x0, y0 + size, x0 + size], 1).astype(np.int16)
    return RawSplit(images=images, labels=labels.astype(np.int64),
                    object_masks=obj >= OBJECT_MASK_THRESHOLD, boxes=boxes,
                    source_ids=src_ids)


def _cache_path(split: str, n: int, seed: int) -> Path:
    return cache_dir() / f"cluttered_digits_v{VERSION}_{split}_n{n}_seed{seed}.npz"


def load_raw(split: str, n: int | None = None, seed: int = 0, cache: bool = True) -> RawSplit:
    """The uint8 split, generated on first use and cached as ``.npz`` (see ``cache_dir``)."""
    _check_split(split)
    n = DEFAULT_SIZES[split] if n is None else int(n)
    path = _cache_path(split, n, seed)
    if cache and path.exists():
        with np.load(path) as z:
            return RawSplit(**{k: z[k] for k in RawSplit.__dataclass_fields__})
    raw = generate(split, n, seed)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **raw.__dict__)
        os.replace(tmp, path)   # atomic: parallel runs never read a half-written file
    return raw


def normalize(images_u8: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] normalised with MEAN/STD."""
    x = images_u8.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load_split(split: str, n: int | None = None, seed: int = 0, cache: bool = True) -> Split:
    """A split ready for training/evaluation.

    ``split`` is ``train``, ``val`` or ``test``; ``n`` defaults to ``DEFAULT_SIZES``.
    Same (split, n, seed) -> identical arrays. The first ``k`` images do depend on ``n``
    (draws are batched), so compare splits at equal ``n``.
    """
    raw = load_raw(split, n, seed, cache)
    return Split(images=normalize(raw.images), labels=raw.labels,
                 object_masks=raw.object_masks, boxes=raw.boxes)
