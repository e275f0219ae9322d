"""Box arithmetic and the tf.data pipeline: shapes, box-consistent augmentation, determinism."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfedge._errors import DatasetError
from tfedge.data._boxes import (box_area, boxes_to_pixels, clip_boxes, flip_boxes_lr, iou,
                                pixels_to_boxes, transform_boxes_for_crop, voc_pixels_to_box)
from tfedge.data._types import FileSplit, ImageSplit

NAN = np.nan
BRIGHT = 255
BRIGHT_THRESHOLD = 127.5  # a bilinear edge between 0 and 255 crosses this at the true edge
# Thresholding a bilinear edge finds it within half an output pixel; a box off by one
# source pixel (>= 1.25 output pixels below, where crops are enlarged) fails.
EDGE_TOLERANCE_PX = 0.75


# --------------------------------------------------------------------------- pure box helpers


def test_boxes_to_pixels_and_back():
    boxes = np.array([[0.25, 0.0, 0.75, 1.0], [0.0, 0.1, 0.5, 0.3]], np.float32)
    pixels = boxes_to_pixels(boxes, 4, 10)
    np.testing.assert_allclose(pixels, [[1, 0, 3, 10], [0, 1, 2, 3]], atol=1e-6)
    np.testing.assert_allclose(pixels_to_boxes(pixels, 4, 10), boxes, atol=1e-7)
    assert pixels.dtype == np.float32


def test_clip_boxes_keeps_nan():
    out = clip_boxes([[-0.5, 0.2, 1.5, 0.9], [NAN, NAN, NAN, NAN]])
    np.testing.assert_allclose(out[0], [0.0, 0.2, 1.0, 0.9])
    assert np.isnan(out[1]).all()


def test_box_area():
    np.testing.assert_allclose(box_area([[0.1, 0.2, 0.5, 0.7], [0.5, 0.5, 0.4, 0.9]]), [0.2, 0.0],
                               atol=1e-6)
    assert np.isnan(box_area([NAN, 0, 1, 1]))


def test_iou_hand_values():
    a = np.array([0.0, 0.0, 0.5, 0.5])
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, [0.5, 0.5, 1.0, 1.0]) == pytest.approx(0.0)
    # Half-overlapping: intersection 0.125, union 0.375.
    assert iou(a, [0.0, 0.25, 0.5, 0.75]) == pytest.approx(1 / 3)
    # Broadcasting one box against many, and the empty / unknown cases.
    out = iou(np.array([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2], [NAN] * 4]), a)
    np.testing.assert_allclose(out[:2], [1.0, 0.0])
    assert np.isnan(out[2])
    assert iou([0.3, 0.3, 0.3, 0.3], [0.3, 0.3, 0.3, 0.3]) == 0.0


def test_transform_boxes_for_crop_hand_values():
    # A window covering the right half and the middle rows of the image.
    window = np.array([0.25, 0.5, 0.75, 1.0])
    boxes = np.array([[0.25, 0.5, 0.5, 0.75],   # inside: maps to the crop's top-left quarter
                      [0.0, 0.0, 1.0, 1.0],     # the whole image: clipped to the whole crop
                      [0.0, 0.0, 0.2, 0.4],     # outside: collapses onto the corner
                      [NAN] * 4])
    out = transform_boxes_for_crop(boxes, window)
    np.testing.assert_allclose(out[0], [0.0, 0.0, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, 0.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(box_area(out[2]), 0.0)
    assert np.isnan(out[3]).all()
    # The whole-image window is the identity.
    np.testing.assert_allclose(transform_boxes_for_crop(boxes[:1], [0, 0, 1, 1]), boxes[:1])


def test_flip_boxes_lr():
    out = flip_boxes_lr([[0.1, 0.2, 0.5, 0.3], [NAN] * 4])
    np.testing.assert_allclose(out[0], [0.1, 0.7, 0.5, 0.8], atol=1e-6)
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(flip_boxes_lr(flip_boxes_lr([0.1, 0.2, 0.5, 0.3])), [0.1, 0.2, 0.5, 0.3],
                               atol=1e-6)


def test_voc_pixels_to_box_convention():
    # Inclusive 0-based pixel indices: x 2..5 and y 4..7 in a 10 wide, 20 high image.
    box = voc_pixels_to_box(xmin=2, ymin=4, xmax=5, ymax=7, width=10, height=20)
    np.testing.assert_array_equal(box, np.float32([4 / 20, 2 / 10, 8 / 20, 6 / 10]))
    # A 1-based file naming pixel `width` is clipped to the edge.
    np.testing.assert_array_equal(voc_pixels_to_box(1, 1, 10, 20, 10, 20)[2:], [1.0, 1.0])


def test_box_helpers_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_area(np.zeros((3, 5)))


# --------------------------------------------------------------------------- fixtures


def _rect_images(n: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Black images each with one bright rectangle, and its exact normalised box."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, height, width, 3), np.uint8)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        rh, rw = rng.integers(height // 3, height * 2 // 3), rng.integers(width // 3, width * 2 // 3)
        r0, c0 = rng.integers(0, height - rh + 1), rng.integers(0, width - rw + 1)
        images[i, r0:r0 + rh, c0:c0 + rw] = BRIGHT
        boxes[i] = [r0 / height, c0 / width, (r0 + rh) / height, (c0 + rw) / width]
    return images, boxes


def _bright_box(image: np.ndarray) -> np.ndarray:
    """Pixel edges (row0, col0, row1, col1) of the pixels above half brightness."""
    rows = np.flatnonzero((image.mean(axis=-1) > BRIGHT_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((image.mean(axis=-1) > BRIGHT_THRESHOLD).any(axis=0))
    return np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float64)


def _write_images(tmp_path: Path, images: np.ndarray, fmt: str = "PNG") -> tuple[str, ...]:
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"img{i}.{fmt.lower()}"
        Image.fromarray(image).save(path, format=fmt)
        paths.append(str(path))
    return tuple(paths)


def _collect(dataset, with_boxes: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels, boxes = [], [], []
    for x, y in dataset.as_numpy_iterator():
        images.append(x)
        if with_boxes:
            labels.append(y["label"])
            boxes.append(y["box"])
        else:
            labels.append(y)
    return (np.concatenate(images), np.concatenate(labels),
            np.concatenate(boxes) if with_boxes else np.zeros((0, 4)))


# --------------------------------------------------------------------------- pipeline


def test_importing_data_modules_does_not_import_tensorflow():
    code = ("import sys; import tfedge.data._tfdata, tfedge.data._folders, tfedge.data._boxes; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("with_boxes", [True, False])
def test_image_split_shapes_and_dtypes(training, with_boxes):
    from tfedge.data._tfdata import make_dataset

    images, boxes = _rect_images(10, 24, 32)
    split = ImageSplit(images, np.arange(10, dtype=np.int32), boxes, tuple("abcdefghij"))
    ds = make_dataset(split, resolution=16, batch_size=4, training=training, with_boxes=with_boxes)
    batches = list(ds.as_numpy_iterator())
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 255.0 and x.max() > 200.0
    labels = y["label"] if with_boxes else y
    assert labels.dtype == np.int32 and labels.shape == (4,)
    if with_boxes:
        assert y["box"].shape == (4, 4) and y["box"].dtype == np.float32
        assert ((y["box"] >= 0) & (y["box"] <= 1)).all()
    all_labels = np.concatenate([(b[1]["label"] if with_boxes else b[1]) for b in batches])
    assert sorted(all_labels) == list(range(10))
    if not training:
        np.testing.assert_array_equal(all_labels, np.arange(10))  # evaluation keeps the order


def test_drop_remainder_and_repeat():
    from tfedge.data._tfdata import make_dataset

    images, boxes = _rect_images(10, 16, 16)
    split = ImageSplit(images, np.zeros(10, np.int32), boxes, ("a",))
    ds = make_dataset(split, resolution=16, batch_size=4, training=True, drop_remainder=True)
    assert ds.element_spec[0].shape.as_list() == [4, 16, 16, 3]
    assert len(list(ds)) == 2
    repeated = make_dataset(split, resolution=16, batch_size=4, training=True, repeat=True)
    assert len(list(repeated.take(7))) == 7


def test_file_split_decodes_png_and_jpeg(tmp_path):
    from tfedge.data._tfdata import make_dataset

    images, boxes = _rect_images(3, 20, 28)
    png = _write_images(tmp_path, images, "PNG")
    jpg = _write_images(tmp_path, images, "JPEG")
    gray = tmp_path / "gris café.png"  # a non-ASCII name with a space
    Image.fromarray(np.full((12, 9), 77, np.uint8), mode="L").save(gray)
    split = FileSplit(png + jpg + (str(gray),), np.arange(7, dtype=np.int32), None, tuple("abcdefg"))
    x, labels, out_boxes = _collect(make_dataset(split, resolution=20, batch_size=8, training=False,
                                                 with_boxes=True))
    assert x.shape == (7, 20, 20, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(labels, np.arange(7))
    assert np.isnan(out_boxes).all()  # the split has no boxes: all unknown
    np.testing.assert_allclose(x[6], 77.0)  # grayscale became three equal channels
    import tensorflow as tf

    expected = tf.image.resize(images[0], [20, 20], method="bilinear").numpy()
    np.testing.assert_allclose(x[0], expected, atol=1e-4)  # PNG is lossless: exact


def test_evaluation_is_the_plain_resize():
    import tensorflow as tf

    from tfedge.data._tfdata import make_dataset

    images, boxes = _rect_images(5, 30, 40)
    split = ImageSplit(images, np.arange(5, dtype=np.int32), boxes, tuple("abcde"))
    x, labels, out_boxes = _collect(make_dataset(split, resolution=24, batch_size=2, training=False,
                                                 with_boxes=True))
    expected = tf.image.resize(images, [24, 24], method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(x, expected, atol=1e-4)
    np.testing.assert_array_equal(out_boxes, boxes)  # squashing keeps normalised boxes
    # At the stored resolution, evaluation returns the pixels themselves.
    same, _, _ = _collect(make_dataset(ImageSplit(images[:, :30, :30], np.arange(5, dtype=np.int32),
                                                  None, tuple("abcde")),
                                       resolution=30, batch_size=5, training=False, with_boxes=True))
    np.testing.assert_array_equal(same, images[:, :30, :30].astype(np.float32))


def _assert_boxes_match_bright_pixels(x: np.ndarray, boxes: np.ndarray, resolution: int) -> None:
    for image, box in zip(x, boxes):
        expected = _bright_box(image)
        np.testing.assert_allclose(box * resolution, expected, atol=EDGE_TOLERANCE_PX,
                                   err_msg=f"box {box} vs bright pixels {expected / resolution}")


@pytest.mark.parametrize("kind", ["image", "file"])
def test_augmented_boxes_follow_the_object(tmp_path, kind):
    from tfedge.data._tfdata import make_dataset

    resolution = 40
    images, boxes = _rect_images(16, 24, 32, seed=1)
    labels = np.arange(16, dtype=np.int32)
    if kind == "image":
        split = ImageSplit(images, labels, boxes, tuple(map(str, range(16))))
    else:
        split = FileSplit(_write_images(tmp_path, images), labels, boxes, tuple(map(str, range(16))))
    ds = make_dataset(split, resolution=resolution, batch_size=16, training=True, seed=3,
                      with_boxes=True, repeat=True)
    x, out_labels, out_boxes = _collect(ds.take(4))  # 64 augmented views
    _assert_boxes_match_bright_pixels(x, out_boxes, resolution)
    # Flips happened, and crops did: some boxes moved to the other side or grew.
    source = boxes[out_labels]
    centre_in = (source[:, 1] + source[:, 3]) / 2
    centre_out = (out_boxes[:, 1] + out_boxes[:, 3]) / 2
    assert ((centre_in - 0.5) * (centre_out - 0.5) < 0).sum() >= 5
    assert (np.abs(out_boxes - source) > 0.05).any(axis=1).mean() > 0.5


def test_flip_only_mirrors_image_and_box():
    from tfedge.data._tfdata import AugmentConfig, make_dataset

    images, boxes = _rect_images(8, 16, 16, seed=2)
    split = ImageSplit(images, np.arange(8, dtype=np.int32), boxes, tuple("abcdefgh"))
    ds = make_dataset(split, resolution=16, batch_size=8, training=True, seed=0, with_boxes=True,
                      augment=AugmentConfig(random_resized_crop=False, flip=True))
    x, labels, out_boxes = _collect(ds)
    flipped = 0
    for image, label, box in zip(x, labels, out_boxes):
        if np.array_equal(image, images[label]):
            np.testing.assert_array_equal(box, boxes[label])
        else:
            np.testing.assert_array_equal(image, images[label][:, ::-1].astype(np.float32))
            np.testing.assert_allclose(box, flip_boxes_lr(boxes[label]), atol=1e-6)
            flipped += 1
    assert 0 < flipped < 8


def test_crop_keeps_min_box_visible():
    import tensorflow as tf

    from tfedge.data._tfdata import AugmentConfig, _sample_crop_window

    config = AugmentConfig(min_box_visible=0.8)
    box = np.float32([0.1, 0.6, 0.3, 0.95])
    fractions, areas = [], []
    for s in range(200):
        _, size, window = _sample_crop_window(tf.constant([60, 80, 3]), tf.constant(box),
                                              tf.constant([s, 7], tf.int64), config)
        window = window.numpy()
        visible = box_area(clip_boxes(np.float32([max(box[0], window[0]), max(box[1], window[1]),
                                                  min(box[2], window[2]), min(box[3], window[3])])))
        fractions.append(visible / box_area(box))
        areas.append(size.numpy()[0] * size.numpy()[1] / (60 * 80))
    assert min(fractions) >= 0.8 - 1e-6
    assert min(areas) >= 0.35 - 1e-6 and np.ptp(areas) > 0.2  # really random, within the scale range
    # An unknown box gets a plain random crop within the scale range.
    _, size, window = _sample_crop_window(tf.constant([60, 80, 3]), tf.constant([NAN] * 4, tf.float32),
                                          tf.constant([1, 2], tf.int64), config)
    assert size.numpy()[0] * size.numpy()[1] / (60 * 80) >= 0.35 - 1e-6


def test_tf_box_twins_match_numpy():
    import tensorflow as tf

    from tfedge.data._tfdata import _tf_flip_box_lr, _tf_transform_boxes_for_crop

    rng = np.random.default_rng(0)
    for _ in range(20):
        box = np.sort(rng.uniform(size=(2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]].astype(np.float32)
        window = np.sort(rng.uniform(size=(2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]].astype(np.float32)
        np.testing.assert_allclose(_tf_transform_boxes_for_crop(tf.constant(box), tf.constant(window)),
                                   transform_boxes_for_crop(box, window), atol=1e-6)
        np.testing.assert_allclose(_tf_flip_box_lr(tf.constant(box)), flip_boxes_lr(box), atol=1e-7)


def test_unknown_boxes_stay_nan(tmp_path):
    from tfedge.data._tfdata import make_dataset

    images, boxes = _rect_images(8, 24, 24, seed=4)
    boxes[[1, 4, 6]] = NAN
    split = FileSplit(_write_images(tmp_path, images), np.arange(8, dtype=np.int32), boxes, tuple("abcdefgh"))
    for training in (True, False):
        _, labels, out_boxes = _collect(make_dataset(split, resolution=16, batch_size=3,
                                                     training=training, with_boxes=True))
        unknown = np.isin(labels, [1, 4, 6])
        assert np.isnan(out_boxes[unknown]).all()
        assert not np.isnan(out_boxes[~unknown]).any()


def test_same_seed_same_batches_new_seed_new_batches():
    from tfedge.data._tfdata import make_dataset

    images, boxes = _rect_images(12, 24, 24, seed=5)
    split = ImageSplit(images, np.arange(12, dtype=np.int32), boxes, tuple("abcdefghijkl"))

    def run(seed):
        return make_dataset(split, resolution=16, batch_size=4, training=True, seed=seed, with_boxes=True)

    first, again, other = _collect(run(7)), _collect(run(7)), _collect(run(8))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    # A second pass over the same dataset (the next Keras epoch) draws a new order and new crops.
    ds = run(7)
    epoch1, epoch2 = _collect(ds), _collect(ds)
    np.testing.assert_array_equal(epoch1[0], first[0])
    assert not np.array_equal(epoch1[0], epoch2[0])


def test_make_dataset_rejects_bad_arguments():
    from tfedge.data._tfdata import AugmentConfig, make_dataset

    images, boxes = _rect_images(2, 8, 8)
    split = ImageSplit(images, np.zeros(2, np.int32), boxes, ("a",))
    with pytest.raises(DatasetError, match="resolution=0"):
        make_dataset(split, resolution=0, batch_size=2, training=True)
    with pytest.raises(DatasetError, match="batch_size=2.5"):
        make_dataset(split, resolution=8, batch_size=2.5, training=True)
    with pytest.raises(DatasetError, match="training=False"):
        make_dataset(split, resolution=8, batch_size=2, training=False, augment=AugmentConfig())
    with pytest.raises(DatasetError, match="ImageSplit or a FileSplit"):
        make_dataset(images, resolution=8, batch_size=2, training=True)
    with pytest.raises(DatasetError, match="no examples"):
        make_dataset(split.take(0), resolution=8, batch_size=2, training=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": (0.0, 1.0)}, "scale"),
    ({"scale": (0.8, 0.5)}, "scale"),
    ({"scale": (0.5, 1.5)}, "scale"),
    ({"ratio": (2.0, 1.0)}, "ratio"),
    ({"ratio": "wide"}, "ratio"),
    ({"min_box_visible": 1.5}, "min_box_visible"),
])
def test_augment_config_validates(kwargs, match):
    from tfedge.data._tfdata import AugmentConfig

    with pytest.raises(DatasetError, match=match):
        AugmentConfig(**kwargs)
