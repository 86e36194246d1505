"""The one image-spec parser (dgfpga.data.images) and the embedded 224x224 photos.

Each spec kind is checked against an independent computation of what it must return;
each rule violation must be an ImageSpecError naming the input."""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.data import embedded, photos
from dgfpga.data.images import (DEFAULTS, ImageSpecError, default_spec, load_images,
                                normalization_for, parse_spec)
from dgfpga.errors import DgfpgaError

CIFAR = (3, 32, 32)
E_MEAN, E_STD = embedded.MEAN, embedded.STD


def _load(spec, shape=CIFAR, **kw):
    return load_images(spec, shape, arch="resdg20_cifar10" if shape == CIFAR else "resdg18",
                       **kw)


def _normalise(u8, mean, std):
    """Independent reference: uint8 NHWC -> normalised float NCHW, in float64."""
    x = (u8.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return x.transpose(0, 3, 1, 2)


# ----------------------------------------------------------------------------- each kind

def test_embedded_count_and_split():
    s = _load("embedded:12")                       # default split of a non-calib load: test
    want = embedded.load_split("test", 12)
    np.testing.assert_array_equal(s.images, want.images)
    np.testing.assert_array_equal(s.labels, want.labels)
    assert s.object_masks.shape == (12, 32, 32) and len(s) == 12
    s = _load("embedded:12:val")
    np.testing.assert_array_equal(s.labels, embedded.load_split("val", 12).labels)
    s = _load("embedded:5", purpose="calib")       # calibration defaults to the train split
    np.testing.assert_array_equal(s.images, embedded.load_split("train", 5).images)
    s = _load("embedded:val")                      # no N: the whole split
    assert len(s) == embedded.DEFAULT_SIZES["val"]
    # the images are the generator's pixels normalised once
    raw = embedded.load_raw("test", 12).images
    np.testing.assert_allclose(_load("embedded:12").images, _normalise(raw, E_MEAN, E_STD),
                               atol=1e-5)


def test_photos_kind_and_normalisation():
    s = _load("photos:3:train", (3, 224, 224))
    assert s.images.shape == (3, 3, 224, 224) and s.images.dtype == np.float32
    assert s.labels is None
    raw = photos.load_raw("train", 3)
    np.testing.assert_allclose(s.images, _normalise(raw, (0.485, 0.456, 0.406),
                                                   (0.229, 0.224, 0.225)), atol=1e-5)


def test_npy_uint8_hwc_is_normalised_with_the_networks_statistics(tmp_path):
    u8 = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    s = _load(str(tmp_path / "u8.npy"))
    np.testing.assert_allclose(s.images, _normalise(u8, E_MEAN, E_STD), atol=1e-5)
    # another network's normalisation
    s = load_images(str(tmp_path / "u8.npy"), CIFAR, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    np.testing.assert_allclose(s.images, _normalise(u8, (0.5,) * 3, (0.25,) * 3), atol=1e-5)


def test_npy_float_nchw_is_taken_as_normalised(tmp_path):
    x = embedded.load_split("test", 6).images.astype(np.float64)
    np.save(tmp_path / "f.npy", x)
    s = _load(str(tmp_path / "f.npy"))
    assert s.images.dtype == np.float32
    np.testing.assert_array_equal(s.images, x.astype(np.float32))


def test_folder_of_png_jpeg_and_npy_in_name_order(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    Image.fromarray(u8[0]).save(tmp_path / "a.png")
    Image.fromarray(u8[1]).save(tmp_path / "b.jpg", quality=95)
    np.save(tmp_path / "c.npy", u8[2])
    (tmp_path / "notes.txt").write_text("ignored")
    s = _load(str(tmp_path))
    jpeg = np.asarray(Image.open(tmp_path / "b.jpg").convert("RGB"))
    want = _normalise(np.stack([u8[0], jpeg, u8[2]]), E_MEAN, E_STD)
    np.testing.assert_allclose(s.images, want, atol=1e-5)
    assert not np.array_equal(jpeg, u8[1])          # lossy: the file's pixels were used


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("spec,match", [
    ("embedded:0", "N must be a positive"),
    ("embedded:-3", "N must be a positive"),
    ("embedded:x", "'x' is neither an image count"),
    ("embedded:4:holdout", "'holdout' is neither"),
    ("embedded:4:test:1", r"expected embedded\[:N\]\[:SPLIT\]"),
    ("photos:0", "N must be a positive"),
    ("photos:2", "photos images are 224x224 but the network takes 32x32"),
    ("", "empty image spec"),
    ("MISSING.npy", "no such .npy file"),
    ("MISSING", "no such file or folder"),
    ("TXT", "not an .npy file or a folder"),
    ("EMPTYDIR", "no .png/.jpg/.jpeg/.npy images"),
    ("CORRUPTDIR", "not a readable PNG/JPEG"),
    ("CORRUPT.npy", "not a readable .npy"),
    ("EMPTY.npy", "empty array"),
    ("U8WRONG.npy", r"uint8 pixels of shape \[2, 3, 32, 32\]"),
    ("F32HWC.npy", "looks like HWC"),
    ("F32SIZE.npy", r"float images of shape \[2, 3, 28, 28\]"),
    ("INT64.npy", "dtype int64"),
    ("NAN.npy", "NaN or infinity"),
    ("RAW255.npy", "outside the normalised range"),
])
def test_every_rule_violation_is_a_clear_error(tmp_path, spec, match):
    d = tmp_path
    (d / "empty").mkdir()
    (d / "corrupt").mkdir()
    (d / "corrupt" / "x.png").write_bytes(b"\x89PNG not really")
    (d / "notes.txt").write_text("x")
    (d / "corrupt.npy").write_bytes(b"garbage")
    np.save(d / "empty.npy", np.zeros((0, 3, 32, 32), np.float32))
    np.save(d / "u8wrong.npy", np.zeros((2, 3, 32, 32), np.uint8))
    np.save(d / "f32hwc.npy", np.zeros((2, 32, 32, 3), np.float32))
    np.save(d / "f32size.npy", np.zeros((2, 3, 28, 28), np.float32))
    np.save(d / "int64.npy", np.zeros((2, 3, 32, 32), np.int64))
    np.save(d / "nan.npy", np.full((2, 3, 32, 32), np.nan, np.float32))
    np.save(d / "raw255.npy", np.full((2, 3, 32, 32), 200.0, np.float32))
    paths = {"MISSING.npy": d / "missing.npy", "MISSING": d / "missing", "TXT": d / "notes.txt",
             "EMPTYDIR": d / "empty", "CORRUPTDIR": d / "corrupt"}
    for k in ("CORRUPT", "EMPTY", "U8WRONG", "F32HWC", "F32SIZE", "INT64", "NAN", "RAW255"):
        paths[f"{k}.npy"] = d / f"{k.lower()}.npy"
    real = str(paths.get(spec, spec))
    with pytest.raises(ImageSpecError, match=match) as e:
        _load(real, what="--calib")
    assert isinstance(e.value, DgfpgaError)
    assert "--calib" in str(e.value)                 # names the option ...
    assert real in str(e.value) or spec == ""         # ... and the input


def test_embedded_digits_for_an_imagenet_network_names_the_fix():
    with pytest.raises(ImageSpecError, match=r"32x32 but the network takes 224x224: use photos"):
        _load("embedded:4", (3, 224, 224))


def test_labels_required(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ImageSpecError, match="needs labelled images"):
        _load(str(tmp_path / "x.npy"), labels_required=True)
    assert _load("embedded:2", labels_required=True).labels.shape == (2,)


def test_parse_spec_is_syntax_only(tmp_path):
    assert parse_spec("embedded") == parse_spec("embedded")
    s = parse_spec("photos:7:val")
    assert (s.kind, s.n, s.split) == ("photos", 7, "val")
    s = parse_spec("selfcheck:3", extra_kinds=("selfcheck",))
    assert (s.kind, s.n) == ("selfcheck", 3)
    with pytest.raises(ImageSpecError):
        parse_spec("selfcheck:3")                      # only where a caller registers it


# ----------------------------------------------------------------------------- defaults

def test_defaults_follow_the_input_size():
    assert default_spec((32, 32), "calib") == "embedded:256:train"
    assert default_spec((224, 224), "calib") == "photos:64:train"
    assert default_spec((32, 32), "check").startswith("embedded:")
    assert default_spec((224, 224), "check").startswith("photos:")
    with pytest.raises(ImageSpecError, match="no embedded image set is 64x64"):
        default_spec((64, 64))
    # spec None loads the default of the network's size
    assert _load(None, purpose="check").images.shape[1:] == CIFAR
    s = _load(None, (3, 224, 224), purpose="check")
    assert s.images.shape[1:] == (3, 224, 224) and s.source.startswith("photos:")
    assert set(DEFAULTS) == {"calib", "check", "eval"}


def test_normalisation_by_architecture():
    assert normalization_for("resdg20_cifar10") == (tuple(E_MEAN), tuple(E_STD))
    assert normalization_for("resdg18") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# ----------------------------------------------------------------------------- photos

def test_photos_are_deterministic_and_splits_differ():
    a, b = photos.load_raw("test", 4), photos.load_raw("test", 4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 224, 224, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, photos.load_raw("train", 4))
    # image i comes from photo i % 2: china (sky, blue-grey) vs flower (green foliage)
    src = [p.mean(axis=(0, 1)) for p in photos.source_photos()]
    for i in range(4):
        m = a[i].reshape(-1, 3).mean(0)
        assert np.linalg.norm(m - src[i % 2]) < np.linalg.norm(m - src[1 - i % 2])


def test_photo_resize_is_bilinear_like_torch():
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(2).uniform(0, 255, (37, 53, 3))
    got = photos._resize(img, 224, 224)
    t = torch.from_numpy(img.transpose(2, 0, 1)[None])
    want = torch.nn.functional.interpolate(t, size=(224, 224), mode="bilinear",
                                           align_corners=False)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, want, atol=1e-9)
