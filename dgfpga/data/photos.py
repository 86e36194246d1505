"""Embedded photos: a deterministic 224x224 RGB image set for ImageNet-sized networks.

Torch-free (numpy + scikit-learn + Pillow). The source is the two photographs bundled with
scikit-learn (``sklearn.datasets.load_sample_images``: china.jpg and flower.jpg, 427x640).
They carry no ImageNet labels: the set is for calibration, self-checks, cycle prediction
and mask statistics of resdg18/34, never for accuracy. Preprocessing (``docs/dataset.md``):

1. each photo is resized (bilinear, align_corners=False, float64) so its shorter side is
   ``BASE_SIDE`` = 256 px (256x384);
2. image i of a split takes photo ``i % 2`` and a random-resized crop of it drawn from
   ``numpy.random.default_rng([SEED, split id, VERSION])``: area fraction uniform in
   ``SCALE`` = (0.25, 1.0) of the photo, aspect ratio log-uniform in (3/4, 4/3) (clipped
   to the photo), position uniform, then a horizontal flip with probability 1/2;
3. the crop is resized bilinearly (as in 1) to 224x224 and rounded to uint8;
4. ``normalize`` maps it to float32 NCHW with the ImageNet mean/std (``MEAN``/``STD``).

Splits (train/val/test) use different crop seeds of the same two photos, so they are
different crops, not disjoint content. Same (split, n) -> identical arrays.
"""
from __future__ import annotations

import numpy as np

from dgfpga.data.embedded import resize_matrix

__all__ = ["IMAGE_SIZE", "MEAN", "STD", "SPLITS", "DEFAULT_N", "VERSION", "SEED", "SCALE",
           "BASE_SIDE", "load_raw", "load_split", "normalize", "source_photos"]

VERSION = 1
IMAGE_SIZE = 224
MEAN = (0.485, 0.456, 0.406)       # ImageNet statistics (torchvision's)
STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
DEFAULT_N = 64                     # images of `photos` without N
SEED = 20240224
SCALE = (0.25, 1.0)
RATIO = (3 / 4, 4 / 3)
BASE_SIDE = 256


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """float64 [H, W, 3] -> [h, w, 3], separable bilinear."""
    return np.einsum("ph,hwc,qw->pqc", resize_matrix(img.shape[0], h, np.float64), img,
                     resize_matrix(img.shape[1], w, np.float64), optimize=True)


_PHOTOS: list | None = None


def source_photos() -> list[np.ndarray]:
    """The two bundled photos, resized to a shorter side of BASE_SIDE (float64 0..255)."""
    global _PHOTOS
    if _PHOTOS is None:
        from dgfpga.errors import DgfpgaError
        try:
            from sklearn.datasets import load_sample_images
            photos = load_sample_images().images
        except ImportError as exc:
            raise DgfpgaError(f"the embedded photos need scikit-learn and Pillow "
                              f"(pip install 'dgfpga[torch]'): {exc}") from None
        out = []
        for p in photos:
            h, w = p.shape[:2]
            s = BASE_SIDE / min(h, w)
            out.append(_resize(p.astype(np.float64), round(h * s), round(w * s)))
        _PHOTOS = out
    return _PHOTOS


def load_raw(split: str = "test", n: int = DEFAULT_N) -> np.ndarray:
    """uint8 [n, 224, 224, 3] crops of `split` (see the module docstring)."""
    from dgfpga.errors import DgfpgaError
    if split not in SPLITS:
        raise DgfpgaError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if int(n) <= 0:
        raise DgfpgaError(f"number of images must be positive, got {n}")
    photos = source_photos()
    rng = np.random.default_rng([SEED, _SPLIT_ID[split], VERSION])
    out = np.empty((int(n), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i in range(int(n)):
        src = photos[i % len(photos)]
        H, W = src.shape[:2]
        area = H * W * rng.uniform(*SCALE)
        ratio = np.exp(rng.uniform(np.log(RATIO[0]), np.log(RATIO[1])))
        cw = int(min(W, max(1, round(np.sqrt(area * ratio)))))
        ch = int(min(H, max(1, round(np.sqrt(area / ratio)))))
        y0 = int(rng.integers(0, H - ch + 1))
        x0 = int(rng.integers(0, W - cw + 1))
        crop = src[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = np.clip(np.rint(_resize(crop, IMAGE_SIZE, IMAGE_SIZE)), 0, 255).astype(np.uint8)
    return out


def normalize(images_u8: np.ndarray, mean=MEAN, std=STD) -> np.ndarray:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W]: (x/255 - mean)/std."""
    x = images_u8.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load_split(split: str = "test", n: int = DEFAULT_N) -> np.ndarray:
    """float32 [n, 3, 224, 224] normalised with the ImageNet mean/std."""
    return normalize(load_raw(split, n))
