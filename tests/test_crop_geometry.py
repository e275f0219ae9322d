"""Crop geometry: the pure numpy rules, and numpy == TensorFlow (windows and pixels)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tfedge.runtime.errors import TfedgeError
from tfedge.runtime.geometry import (CropConfig, crop_and_resize, crop_box, crop_window,
                                     crop_windows, resize_bilinear, square_boxes, window_to_box)

NAN = np.nan
EXACT = CropConfig(margin=0.0, min_size=0.01)
# numpy and TensorFlow both round every float32 operation; the bilinear blend's order of
# operations can differ in the last bit, far below one grey level.
PIXEL_TOLERANCE = 1e-3


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    centre = rng.uniform(-0.1, 1.1, (n, 2))
    size = rng.uniform(0.0, 1.2, (n, 2)) ** 2
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    boxes[::37] = NAN
    boxes[5::41, 2] = boxes[5::41, 0] - 0.1  # inverted boxes
    return boxes


# --------------------------------------------------------------------------- the rules


def test_square_window_centred_on_the_box():
    # Box 50 x 25 px centred at (50, 37.5) in 100 x 100: square side 50.
    assert crop_window([0.25, 0.25, 0.75, 0.5], 100, 100, EXACT).tolist() == [25, 13, 75, 63]


def test_margin_grows_each_side():
    win = crop_window([0.4, 0.4, 0.6, 0.6], 100, 100, CropConfig(margin=0.5, min_size=0.01))
    assert win.tolist() == [35, 35, 65, 65]  # 20 px * 1.5 = 30 px about the centre


def test_non_square_keeps_aspect():
    win = crop_window([0.2, 0.4, 0.8, 0.6], 100, 100, CropConfig(margin=0.0, square=False,
                                                                 min_size=0.01))
    assert win.tolist() == [20, 40, 80, 60]


def test_square_in_pixels_on_a_wide_image():
    # Normalised square box on a 100 x 200 image is 20 x 40 px: the window is 40 x 40 px.
    win = crop_window([0.4, 0.4, 0.6, 0.6], 100, 200, EXACT)
    assert (win[2] - win[0], win[3] - win[1]) == (40, 40)
    assert win.tolist() == [30, 80, 70, 120]


def test_minimum_size():
    win = crop_window([0.5, 0.5, 0.5, 0.5], 100, 200, CropConfig(margin=0.2, min_size=0.3))
    assert (win[2] - win[0], win[3] - win[1]) == (30, 30)  # 30% of the short side


def test_snapping_goes_up_to_the_next_scale():
    config = CropConfig(margin=0.0, min_size=0.01, scales=(0.25, 0.5, 0.75))
    sides = []
    for s in (0.1, 0.25, 0.3, 0.6, 0.8):
        win = crop_window([0.5 - s / 2, 0.5 - s / 2, 0.5 + s / 2, 0.5 + s / 2], 100, 100, config)
        sides.append(int(win[2] - win[0]))
    assert sides == [25, 25, 50, 75, 100]  # beyond the largest scale: the short side
    # A free (non-square) window beyond the largest scale keeps its side: a full-width
    # object in a 100x400 frame stays whole instead of being cut to the short side.
    free = CropConfig(margin=0.0, min_size=0.01, square=False, scales=(0.5, 1.0))
    assert crop_window([0.4, 0.0, 0.6, 1.0], 100, 400, free).tolist() == [25, 0, 75, 400]


def test_window_stays_inside_and_keeps_its_size():
    # Near the corner: the 40 px window slides inside rather than being cut.
    win = crop_window([0.0, 0.9, 0.2, 1.0], 100, 100, CropConfig(margin=1.0, min_size=0.01))
    assert win.tolist() == [0, 60, 40, 100]
    # Larger than the image: clamped to the short side (square) or to each side.
    assert crop_window([0.0, 0.0, 1.0, 1.0], 50, 80, CropConfig(margin=0.5)).tolist() == \
        [0, 15, 50, 65]
    assert crop_window([0.0, 0.0, 1.0, 1.0], 50, 80, CropConfig(margin=0.5, square=False)
                       ).tolist() == [0, 0, 50, 80]


def test_unknown_box_is_the_whole_image():
    assert crop_window([NAN] * 4, 60, 60, CropConfig()).tolist() == [0, 0, 60, 60]
    assert crop_window([NAN] * 4, 60, 100, CropConfig()).tolist() == [0, 20, 60, 80]


def test_random_windows_are_valid():
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, 3000)
    heights = rng.integers(1, 500, len(boxes))
    widths = rng.integers(1, 500, len(boxes))
    for config in (CropConfig(), EXACT, CropConfig(square=False, scales=(0.3, 0.6))):
        win = crop_windows(boxes, heights, widths, config)
        assert win.dtype == np.int32 and win.shape == (len(boxes), 4)
        assert (win[:, :2] >= 0).all()
        assert (win[:, 2] <= heights).all() and (win[:, 3] <= widths).all()
        assert (win[:, 2] > win[:, 0]).all() and (win[:, 3] > win[:, 1]).all()
        if config.square:
            square = (win[:, 2] - win[:, 0]) == (win[:, 3] - win[:, 1])
            assert square.all()


def test_window_holds_the_box_when_it_fits():
    rng = np.random.default_rng(2)
    boxes = np.clip(_random_boxes(rng, 2000), 0.0, 1.0)
    ok = ~np.isnan(boxes).any(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes = boxes[ok]
    win = crop_windows(boxes, 200, 200, CropConfig(margin=0.1))
    px = boxes * 200
    inside = ((win[:, 0] <= np.floor(px[:, 0]) + 1) & (win[:, 2] >= np.ceil(px[:, 2]) - 1)
              & (win[:, 1] <= np.floor(px[:, 1]) + 1) & (win[:, 3] >= np.ceil(px[:, 3]) - 1))
    assert inside.all()


def test_window_to_box_and_crop_box():
    np.testing.assert_allclose(window_to_box([25, 13, 75, 63], 100, 100),
                               [0.25, 0.13, 0.75, 0.63], atol=1e-7)
    np.testing.assert_allclose(crop_box([0.25, 0.25, 0.75, 0.5], 100, 100, EXACT),
                               [0.25, 0.13, 0.75, 0.63], atol=1e-7)


def test_square_boxes():
    out = square_boxes([[0.2, 0.4, 0.8, 0.6]])
    np.testing.assert_allclose(out, [[0.2, 0.2, 0.8, 0.8]], atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"margin": -0.1}, "margin"), ({"margin": float("nan")}, "margin"),
    ({"min_size": 0.0}, "min_size"), ({"min_size": 1.5}, "min_size"),
    ({"scales": (0.5, 0.25)}, "scales"), ({"scales": (0.0, 0.5)}, "scales"),
    ({"scales": "big"}, "scales"), ({"square": 1}, "square"),
])
def test_crop_config_rejects_bad_values(kwargs, match):
    with pytest.raises(TfedgeError, match=match):
        CropConfig(**kwargs)


def test_crop_config_round_trip():
    config = CropConfig(margin=0.3, square=False, min_size=0.1, scales=(0.5, 1.0))
    assert CropConfig.from_dict(config.to_dict()) == config


def test_bad_shapes_raise():
    with pytest.raises(TfedgeError, match="shape"):
        crop_window([0.1, 0.2, 0.3], 10, 10)
    with pytest.raises(TfedgeError, match="at least 1x1"):
        crop_window([0.1, 0.2, 0.3, 0.4], 0, 10)
    with pytest.raises(TfedgeError, match="height, width"):
        resize_bilinear(np.zeros((4, 4)), 2, 2)


# --------------------------------------------------------------------------- resampling


def test_resize_identity_and_constant():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (7, 9, 3)).astype(np.uint8)
    np.testing.assert_array_equal(resize_bilinear(img, 7, 9), img.astype(np.float32))
    flat = np.full((5, 11, 3), 77, np.uint8)
    np.testing.assert_allclose(resize_bilinear(flat, 13, 3), 77.0)


def test_crop_and_resize_returns_window_and_float_crop():
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:30, 20:40] = 200
    crop, window = crop_and_resize(img, [0.25, 1 / 3, 0.75, 2 / 3], 16, EXACT)
    assert window.tolist() == [10, 20, 30, 40]
    assert crop.shape == (16, 16, 3) and crop.dtype == np.float32
    np.testing.assert_allclose(crop, 200.0)


# --------------------------------------------------------------------------- numpy == TensorFlow


@pytest.mark.parametrize("config", [CropConfig(), EXACT,
                                    CropConfig(margin=0.333, square=False, min_size=0.07,
                                               scales=(0.2, 0.45, 0.8))])
def test_numpy_and_tf_windows_are_identical(config):
    import tensorflow as tf

    from tfedge.crop._geometry_tf import crop_window_tf

    rng = np.random.default_rng(4)
    boxes = _random_boxes(rng, 5000)
    heights = rng.integers(1, 1200, len(boxes))
    widths = rng.integers(1, 1200, len(boxes))
    expected = crop_windows(boxes, heights, widths, config)
    got = crop_window_tf(tf.constant(boxes), tf.constant(heights), tf.constant(widths),
                         config).numpy()
    np.testing.assert_array_equal(got, expected)


def test_numpy_and_tf_crops_agree():
    import tensorflow as tf

    from tfedge.crop._geometry_tf import crop_and_resize_tf

    rng = np.random.default_rng(5)
    config = CropConfig(margin=0.2)
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(8, 200, 2))
        image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        box = _random_boxes(rng, 1)[0]
        size = int(rng.choice([16, 32, 64]))
        expected, window = crop_and_resize(image, box, size, config)
        got = crop_and_resize_tf(tf.constant(image), tf.constant(box), size, config).numpy()
        assert got.shape == (size, size, 3)
        np.testing.assert_allclose(got, expected, atol=PIXEL_TOLERANCE, err_msg=f"trial {trial}")


@pytest.mark.parametrize("shape, size", [((30, 50), (64, 64)), ((200, 120), (16, 24)),
                                         ((1, 1), (5, 5)), ((13, 7), (13, 7))])
def test_resize_bilinear_matches_tf(shape, size):
    import tensorflow as tf

    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    expected = tf.image.resize(img, size, method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(resize_bilinear(img, *size), expected, atol=PIXEL_TOLERANCE)


def test_geometry_does_not_import_tensorflow():
    code = ("import sys; import tfedge.crop.geometry, tfedge.crop; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
            "assert 'keras' not in sys.modules, 'keras imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- crop datasets


def test_crop_dataset_matches_numpy_crops(colour_split):
    from tfedge.crop import make_crop_dataset

    split = colour_split.take(10)
    config = CropConfig(margin=0.25)
    boxes = split.boxes.copy()
    boxes[3] = np.nan  # an unknown box crops the whole image
    images, labels = next(iter(make_crop_dataset(split, resolution=24, batch_size=10,
                                                 boxes=boxes, crop=config)))
    np.testing.assert_array_equal(labels.numpy(), split.labels)
    for i in range(10):
        expected, _ = crop_and_resize(split.images[i], boxes[i], 24, config)
        np.testing.assert_allclose(images[i].numpy(), expected, atol=PIXEL_TOLERANCE)


def test_jitter_is_fresh_every_pass_and_reproducible(colour_split):
    from tfedge.crop import JitterConfig, make_crop_dataset

    split = colour_split.take(8)
    jitter = JitterConfig(shift=0.2, scale=0.2)

    def passes(seed):
        ds = make_crop_dataset(split, resolution=16, batch_size=8, jitter=jitter, seed=seed)
        return [next(iter(ds))[0].numpy() for _ in range(2)]

    first, second = passes(3)
    assert not np.allclose(first, second)  # a new draw on every pass (epoch)
    again = passes(3)
    np.testing.assert_array_equal(first, again[0])  # same seed, same crops


def test_jitter_from_errors_recovers_the_spread():
    from tfedge.crop import JitterConfig

    rng = np.random.default_rng(8)
    n = 20000
    true = np.tile(np.float32([[0.3, 0.3, 0.5, 0.5]]), (n, 1))
    shift = rng.normal(0, 0.1, (n, 2)) * 0.2
    log_scale = rng.normal(0, 0.15, n)
    centre = 0.4 + shift
    half = 0.1 * np.exp(log_scale)[:, None]
    pred = np.concatenate([centre - half, centre + half], axis=1)
    jitter = JitterConfig.from_errors(pred, true)
    assert jitter.shift == pytest.approx(0.1, rel=0.05)
    assert jitter.scale == pytest.approx(0.15, rel=0.05)
    assert jitter.aspect == pytest.approx(0.0, abs=1e-6)


def test_materialize_crops_repeats_labels(colour_split):
    from tfedge.crop import JitterConfig, materialize_crops

    split = colour_split.take(6)
    pool = materialize_crops(split, resolution=16, jitter=JitterConfig(), copies=3)
    assert pool.images.shape == (18, 16, 16, 3) and pool.images.dtype == np.uint8
    np.testing.assert_array_equal(pool.labels, np.tile(split.labels, 3))
    assert pool.boxes is None
    with pytest.raises(TfedgeError, match="copies"):
        materialize_crops(split, resolution=16, copies=0)


def test_jitter_config_rejects_bad_values():
    from tfedge.crop import JitterConfig

    with pytest.raises(TfedgeError, match="shift"):
        JitterConfig(shift=-0.1)
    with pytest.raises(TfedgeError, match="scale"):
        JitterConfig(scale=3.0)


def test_shuffled_crop_datasets_cut_each_image_at_its_own_box():
    from tfedge.crop import crop_dataset_fn, make_crop_dataset
    from tfedge.data import ImageSplit

    n, size, side = 40, 32, 8
    rng = np.random.default_rng(0)
    images = np.zeros((n, size, size, 3), np.uint8)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        top, left = (int(v) for v in rng.integers(0, size - side, 2))
        images[i, top:top + side, left:left + side] = 255        # white exactly inside its box
        boxes[i] = (top / size, left / size, (top + side) / size, (left + side) / size)
    split = ImageSplit(images, np.arange(n, dtype=np.int32) % 2, boxes, ("a", "b"))
    crop = CropConfig(margin=0.0, min_size=0.01)
    shuffled = make_crop_dataset(split, resolution=8, batch_size=8, crop=crop, shuffle=True,
                                 repeat=True, seed=1, boxes=boxes.copy())
    training = crop_dataset_fn(crop)(split, resolution=8, batch_size=8, seed=3, training=True)
    for dataset in (shuffled, training):
        crops = np.concatenate([np.asarray(c) for c, _ in dataset.take(10)])
        assert crops.shape == (80, 8, 8, 3)
        assert (crops.min(axis=(1, 2, 3)) > 250).all()              # every crop all white


def test_crop_flags_override_only_what_they_name(tmp_path):
    from tfedge._train import save_classifier
    from tfedge.cli.crop import crop_with_overrides
    from tfedge.crop import trained_crop_config
    from tfedge.models import create_model

    trained = CropConfig(margin=0.4, min_size=0.5, scales=(0.5, 1.0))
    assert crop_with_overrides(trained, margin=0.1) == CropConfig(margin=0.1, min_size=0.5,
                                                                  scales=(0.5, 1.0))
    assert crop_with_overrides(trained, square=False, scales=[]) == CropConfig(
        margin=0.4, square=False, min_size=0.5)
    assert crop_with_overrides(None, min_size=0.3) == CropConfig(min_size=0.3)
    model = create_model("resnet10_025", resolution=32, num_classes=3)
    whole = save_classifier(model, tmp_path / "whole.keras", {"class_names": ["a", "b", "c"]})
    crops = save_classifier(model, tmp_path / "crops.keras",
                            {"crop": {"resolution": 32, "crop": trained.to_dict()}})
    assert trained_crop_config([whole]) is None
    assert trained_crop_config([whole, crops]) == trained


def test_crop_dataset_fn_for_a_training_loop(colour_split):
    from tfedge.crop import JitterConfig, crop_dataset_fn

    fn = crop_dataset_fn(CropConfig(), JitterConfig())
    train = fn(colour_split.take(10), resolution=16, batch_size=4, seed=1, training=True)
    batches = [images.shape[0] for images, _ in train.take(5)]  # repeats, full batches only
    assert batches == [4] * 5
    evaluation = fn(colour_split.take(10), resolution=16, batch_size=4, training=False)
    assert [images.shape[0] for images, _ in evaluation] == [4, 4, 2]
