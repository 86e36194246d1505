"""The embedded dataset: deterministic, disjoint splits, cluttered, object a minority."""
import numpy as np
import pytest

from dgfpga.data import embedded as data


def test_deterministic_by_seed():
    a = data.generate("test", 64, seed=3)
    b = data.generate("test", 64, seed=3)
    c = data.generate("test", 64, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_split_sources_are_disjoint():
    pools = {s: set(data.source_indices(s).tolist()) for s in data.SPLITS}
    assert not pools["train"] & pools["test"]
    assert not pools["train"] & pools["val"]
    assert not pools["val"] & pools["test"]
    raw = data.generate("test", 200)
    assert set(raw.source_ids.tolist()) <= pools["test"]


def test_images_are_cluttered_and_object_is_a_minority():
    raw = data.generate("train", 256)
    assert raw.images.shape == (256, 32, 32, 3) and raw.images.dtype == np.uint8
    cover = raw.object_masks.mean(axis=(1, 2))
    assert 0.02 < cover.mean() < 0.25 and cover.max() < 0.5
    # varied position and scale
    centers = (raw.boxes[:, :2] + raw.boxes[:, 2:]) / 2
    assert centers.std(axis=0).min() > 2.0
    sides = raw.boxes[:, 2] - raw.boxes[:, 0]
    assert sides.min() >= data.OBJECT_SIZES_PX[0] and sides.max() <= data.OBJECT_SIZES_PX[1]
    # the background is not flat: clutter and noise away from the object
    bg = raw.images.astype(float).std(axis=(1, 2)).mean()
    assert bg > 10
    assert set(np.unique(raw.labels)) == set(range(10))


def test_normalised_split_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGFPGA_CACHE", str(tmp_path))
    s = data.load_split("val", 50)
    assert s.images.shape == (50, 3, 32, 32) and s.images.dtype == np.float32
    assert abs(float(s.images.mean())) < 1.0
    assert list(tmp_path.rglob("*.npz")), "the split was not cached"
    s2 = data.load_split("val", 50)
    np.testing.assert_array_equal(s.images, s2.images)


def test_bad_split_is_a_clear_error():
    from dgfpga.errors import DgfpgaError
    with pytest.raises((ValueError, DgfpgaError)):
        data.load_split("validation", 10)
    with pytest.raises(DgfpgaError):
        data.generate("test", 0)
