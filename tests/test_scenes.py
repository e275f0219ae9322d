"""Opt-in extended scenes of the built-in benchmark, and distractor augmentation (issue #19)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tfedge._errors import DatasetError
from tfedge.data import BenchmarkConfig, available_photos, split_photos
from tfedge.data import _backgrounds


def test_default_scenes_keep_the_config_dict_and_cache_key():
    cfg = BenchmarkConfig()
    assert "scenes" not in cfg.to_dict()
    # The key every existing cache folder and recorded figure was made with.
    assert cfg.key() == "06cbabd3971c"
    assert BenchmarkConfig(scenes="default").key() == cfg.key()
    extended = dataclasses.replace(cfg, scenes="extended")
    assert extended.to_dict()["scenes"] == "extended" and extended.key() != cfg.key()
    assert BenchmarkConfig.from_dict(extended.to_dict()) == extended


def test_unknown_scene_set_is_a_dataset_error():
    with pytest.raises(DatasetError, match="scenes='photos' is invalid: choose one of default, extended"):
        BenchmarkConfig(scenes="photos")
    with pytest.raises(DatasetError, match="unknown scene set"):
        available_photos("photos")


def test_extended_scenes_missing_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(_backgrounds.SCENE_ROOT_ENV, str(tmp_path))
    with pytest.raises(DatasetError, match="apt-get install darknet.*mate-backgrounds"):
        available_photos("extended")


def _fake_debian_root(root):
    from PIL import Image

    for package, path in _backgrounds._EXTENDED_DEBIAN_PHOTOS.values():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(target)


def test_extended_scenes_add_photos_without_moving_the_default_ones(tmp_path, monkeypatch):
    if _backgrounds._package_dir("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    _fake_debian_root(tmp_path)
    monkeypatch.setenv(_backgrounds.SCENE_ROOT_ENV, f"{tmp_path / 'nothing'}:{tmp_path}")
    default = available_photos()
    extended = available_photos("extended")
    assert set(default) < set(extended) and len(extended) == len(default) + 19
    train, heldout = split_photos(extended)
    d_train, d_heldout = split_photos(default)
    assert set(d_train) <= set(train) and set(d_heldout) <= set(heldout)
    assert not set(train) & set(heldout)
    assert _backgrounds.load_photo("darknet_dog").shape == (40, 60, 3)


def test_distractors_stay_off_the_object_and_follow_the_seed():
    tf = pytest.importorskip("tensorflow")
    from tfedge.crop._box_augment import augment_batch_tf, distractor_masks_tf

    n, size = 64, 32
    boxes = tf.constant(np.tile([[0.25, 0.25, 0.5, 0.5]], (n, 1)), tf.float32)
    seed = tf.constant([3, 4], tf.int64)
    masks = distractor_masks_tf(boxes, seed, size).numpy()
    assert masks.shape == (n, size, size)
    assert not masks[:, 8:16, 8:16].any()          # never on the (padded) object
    with_one = masks.any(axis=(1, 2)).mean()
    assert 0.25 < with_one < 0.75                  # about half the images get one
    np.testing.assert_array_equal(masks, distractor_masks_tf(boxes, seed, size).numpy())
    images = tf.constant(np.random.default_rng(0).integers(0, 255, (n, size, size, 3)), tf.float32)
    plain, b = augment_batch_tf(images, boxes, seed)
    pasted, b2 = augment_batch_tf(images, boxes, seed, distractors=True)
    np.testing.assert_array_equal(plain.numpy(), images.numpy())   # off: untouched
    np.testing.assert_array_equal(b.numpy(), b2.numpy())            # boxes stay on the object
    changed = (pasted.numpy() != images.numpy()).any(axis=3)
    assert changed.any() and not changed[:, 8:16, 8:16].any()
