"""Crop datasets: boxes cut out of a split's images with ``tf.data``, as a model will see them.

A classifier behind the foreground predictor never sees a whole image, only
a crop around a *predicted* box, and predicted boxes are off by a few pixels
in position and scale (and, rarely, miss the object). Trained on perfect
ground-truth crops, the classifier meets unfamiliar framing at test time; the
calibration run of issue #3 lost 15 points that way. So the crops can be
jittered like a predictor's errors:

* :func:`make_crop_dataset` -- a ``tf.data`` pipeline: per image, a box
  (ground truth, or given boxes such as the predictor's), optional random
  jitter of that box (:class:`JitterConfig`: centre shift and scale noise in
  proportion to the box's size, a fresh draw every epoch), the crop geometry
  of :mod:`tfedge.crop.geometry` in TensorFlow ops, a bilinear resize to the
  classifier's resolution, an optional flip.
* :func:`materialize_crops` -- the same crops, drawn ``copies`` times per
  image, stored as an :class:`~tfedge.data.ImageSplit` at the crop
  resolution, so :func:`tfedge.train_classifier` (which takes a split) trains
  on them unchanged; sampling an epoch from several jitter draws per image is
  close to drawing afresh every epoch.
* :func:`window_crops` -- the refiner's square windows around boxes, cut the
  same way, with the windows themselves.

The crop-robust classifier trained on them is :mod:`tfedge.crop._classifier_crops`'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .._errors import DatasetError, TfedgeError
from ..data._tfdata import _decoded_examples
from ..data._types import FileSplit, ImageSplit, Split
from ._geometry_tf import crop_and_resize_tf, crop_and_resize_with_window_tf
from .geometry import CropConfig

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["JitterConfig", "make_crop_dataset", "crop_dataset_fn", "materialize_crops",
           "window_crops", "to_uint8_pixels", "FLIP_PROBABILITY", "MAX_SHIFT", "MAX_LOG_SCALE"]


FLIP_PROBABILITY = 0.5
MAX_SHIFT = 1.0
MAX_LOG_SCALE = 1.0
_PIXEL_MAX = 255.0


@dataclass(frozen=True)
class JitterConfig:
    """Random errors applied to a box before cropping (what a predictor's errors look like).

    shift: standard deviation of the centre's shift along each axis, as a
        fraction of the box's side along that axis.
    scale: standard deviation of the log of the factor applied to both sides.
    aspect: standard deviation of the log of an extra factor applied to the
        height and divided from the width.
    Draws are clipped at two standard deviations: a predictor's gross misses
    are not something a classifier can learn to fix.
    """

    shift: float = 0.08
    scale: float = 0.12
    aspect: float = 0.06

    def __post_init__(self) -> None:
        for key, top in (("shift", MAX_SHIFT), ("scale", MAX_LOG_SCALE), ("aspect", MAX_LOG_SCALE)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= top:
                raise TfedgeError(f"jitter {key} must be a number in [0, {top}], got {value!r}: "
                                  "e.g. shift 0.08, scale 0.12")

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_errors(cls, predicted: np.ndarray, true: np.ndarray) -> "JitterConfig":
        """Jitter matching a predictor's measured errors (on held-out images).

        Each standard deviation is the robust estimate ``1.4826 * median|e|``
        of the corresponding error: centre shift over the true side, log size
        ratio (mean of height and width) and log aspect change. Gross misses
        barely move a median, so they do not inflate the jitter.
        """
        p = np.asarray(predicted, np.float64)
        t = np.asarray(true, np.float64)
        ok = ~(np.isnan(p).any(axis=1) | np.isnan(t).any(axis=1))
        if not ok.any():
            raise DatasetError("no pairs of predicted and true boxes to measure errors on")
        p, t = p[ok], t[ok]
        th = np.maximum(t[:, 2] - t[:, 0], 1e-6)
        tw = np.maximum(t[:, 3] - t[:, 1], 1e-6)
        ph = np.maximum(p[:, 2] - p[:, 0], 1e-6)
        pw = np.maximum(p[:, 3] - p[:, 1], 1e-6)
        shift = np.concatenate([((p[:, 0] + p[:, 2]) - (t[:, 0] + t[:, 2])) * 0.5 / th,
                                ((p[:, 1] + p[:, 3]) - (t[:, 1] + t[:, 3])) * 0.5 / tw])
        log_h, log_w = np.log(ph / th), np.log(pw / tw)
        robust = 1.4826
        return cls(shift=float(min(robust * np.median(np.abs(shift)), MAX_SHIFT)),
                   scale=float(min(robust * np.median(np.abs((log_h + log_w) * 0.5)), MAX_LOG_SCALE)),
                   aspect=float(min(robust * np.median(np.abs((log_h - log_w) * 0.5)), MAX_LOG_SCALE)))


_CLIP_SIGMAS = 2.0


def _jitter_box_tf(box: "tf.Tensor", seed: "tf.Tensor", jitter: JitterConfig) -> "tf.Tensor":
    import tensorflow as tf

    noise = tf.random.stateless_truncated_normal([4], seed) * 1.0  # within 2 sigma
    noise = tf.clip_by_value(noise, -_CLIP_SIGMAS, _CLIP_SIGMAS)
    cy = (box[0] + box[2]) * 0.5
    cx = (box[1] + box[3]) * 0.5
    h = box[2] - box[0]
    w = box[3] - box[1]
    cy = cy + noise[0] * jitter.shift * h
    cx = cx + noise[1] * jitter.shift * w
    log_scale = noise[2] * jitter.scale
    log_aspect = noise[3] * jitter.aspect
    h = h * tf.exp(log_scale + log_aspect)
    w = w * tf.exp(log_scale - log_aspect)
    out = tf.stack([cy - h * 0.5, cx - w * 0.5, cy + h * 0.5, cx + w * 0.5])
    # An unknown box stays unknown (the geometry then crops the whole image).
    return tf.where(tf.reduce_any(tf.math.is_nan(box)), box, out)


def _check_boxes(split: Split, boxes: Optional[np.ndarray]) -> np.ndarray:
    if boxes is None:
        if split.boxes is None:
            return np.full((len(split), 4), np.nan, np.float32)
        return np.asarray(split.boxes, np.float32)
    arr = np.asarray(boxes, np.float32)
    if arr.shape != (len(split), 4):
        raise DatasetError(f"boxes must have shape ({len(split)}, 4) (one per image), got "
                           f"{arr.shape}")
    return arr


def make_crop_dataset(split: Split, *, resolution: int, batch_size: int,
                      boxes: Optional[np.ndarray] = None, crop: CropConfig = CropConfig(),
                      jitter: Optional[JitterConfig] = None, flip: bool = False,
                      shuffle: bool = False, seed: int = 0, repeat: bool = False,
                      drop_remainder: bool = False) -> "tf.data.Dataset":
    """Batches ``(crops float32 (B, r, r, 3) in [0, 255], labels int32 (B,))``.

    boxes: one normalised box per image to crop at (e.g. predicted boxes);
        None uses the split's boxes. A NaN box crops the whole image (square
        about its centre).
    crop: the geometry (margin, square, minimum size, snapping).
    jitter: random box errors, drawn afresh on every pass (None: exact boxes).
    flip: random left-right flips. shuffle: shuffle the order every pass.
    All randomness derives from ``seed``.
    """
    import tensorflow as tf

    if not isinstance(split, (ImageSplit, FileSplit)):
        raise DatasetError(f"split is a {type(split).__name__}: pass an ImageSplit or a FileSplit")
    if len(split) == 0:
        raise DatasetError("split has no examples: load a dataset with at least one image")
    for key, value in (("resolution", resolution), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DatasetError(f"{key}={value!r}: need a positive whole number")
    box_array = _check_boxes(split, boxes)
    n = len(split)
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    # The boxes travel with their images: one pass over the indices (a second pass over
    # a shuffled stream would be in another order).
    examples = _decoded_examples(split, indices, boxes=box_array)
    if jitter is not None or flip:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        examples = tf.data.Dataset.zip(examples, seeds)
    else:
        examples = examples.map(lambda *ex: (ex, tf.zeros([2], tf.int64)))

    def one(example, s):
        image, label, box = example
        jitter_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(s, 2))
        if jitter is not None:
            box = _jitter_box_tf(box, jitter_seed, jitter)
        out = crop_and_resize_tf(image, box, int(resolution), crop)
        if flip:
            do = tf.random.stateless_uniform([], flip_seed) < FLIP_PROBABILITY
            out = tf.cond(do, lambda: tf.reverse(out, axis=[1]), lambda: out)
        return tf.ensure_shape(out, [resolution, resolution, 3]), label

    # Plain TensorFlow ops, no Python control flow on tensors: skip AutoGraph (faster tracing,
    # and no re-reading of source files).
    examples = examples.map(tf.autograph.experimental.do_not_convert(one),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = examples.batch(batch_size, drop_remainder=drop_remainder,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def crop_dataset_fn(crop: CropConfig = CropConfig(), jitter: Optional[JitterConfig] = None,
                    boxes: Optional[np.ndarray] = None):
    """A ``dataset_fn(split, *, resolution, batch_size, seed, training)`` building crop datasets.

    For a training loop that takes its dataset builder as a parameter:
    training datasets shuffle, jitter (a fresh draw every epoch), flip,
    repeat and drop the last partial batch; others crop at the exact boxes.
    """
    def dataset_fn(split: Split, *, resolution: int, batch_size: int, seed: int = 0,
                   training: bool = True) -> "tf.data.Dataset":
        if training:
            return make_crop_dataset(split, resolution=resolution, batch_size=batch_size,
                                     boxes=boxes, crop=crop, jitter=jitter, flip=True,
                                     shuffle=True, seed=seed, repeat=True, drop_remainder=True)
        return make_crop_dataset(split, resolution=resolution, batch_size=batch_size,
                                 boxes=boxes, crop=crop)

    return dataset_fn


def to_uint8_pixels(batch: Any) -> np.ndarray:
    """Float crops in [0, 255] -> uint8, rounded half up (how materialised crops are stored)."""
    return np.clip(np.floor(np.asarray(batch) + 0.5), 0, _PIXEL_MAX).astype(np.uint8)


def materialize_crops(split: Split, *, resolution: int, boxes: Optional[np.ndarray] = None,
                      crop: CropConfig = CropConfig(), jitter: Optional[JitterConfig] = None,
                      copies: int = 1, seed: int = 0, batch_size: int = 256) -> ImageSplit:
    """``copies`` crops of every image (each with its own jitter draw) as a uint8 ImageSplit.

    Example ``i + k * N`` is copy ``k`` of image ``i``; labels repeat, and the
    split carries no boxes (the crop is the object's frame).
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise TfedgeError(f"copies must be a whole number >= 1, got {copies!r}")
    n = len(split)
    images = np.empty((n * copies, resolution, resolution, 3), np.uint8)
    labels = np.tile(np.asarray(split.labels, np.int32), copies)
    for k in range(copies):
        ds = make_crop_dataset(split, resolution=resolution, batch_size=batch_size, boxes=boxes,
                               crop=crop, jitter=jitter, seed=seed * 7919 + k)
        at = k * n
        for batch, _ in ds:
            arr = to_uint8_pixels(batch)
            images[at:at + len(arr)] = arr
            at += len(arr)
    return ImageSplit(images, labels, None, tuple(split.class_names))


def window_crops(split: Split, boxes: Any, *, resolution: int, window: CropConfig,
                 jitter: Optional[JitterConfig] = None, seed: int = 0,
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The refiner's input for every image: ``(crops uint8 (N, r, r, 3), windows (N, 4))``.

    Each crop is the window of ``boxes[i]`` (moved by ``jitter`` first, if
    given) cut from the full image and resized to ``resolution``, exactly as
    :func:`tfedge.crop.make_crop_dataset` cuts a classifier's crop;
    ``windows`` are those windows as normalised image boxes.
    """
    import tensorflow as tf

    if not isinstance(split, (ImageSplit, FileSplit)):
        raise DatasetError(f"split is a {type(split).__name__}: pass an ImageSplit or a FileSplit")
    source = _check_boxes(split, np.asarray(boxes, np.float32))
    n = len(split)
    indices = tf.data.Dataset.range(n)
    examples = _decoded_examples(split, indices, boxes=source)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    examples = tf.data.Dataset.zip(examples, seeds)

    def one(example, s):
        image, _, box = example
        if jitter is not None:
            box = _jitter_box_tf(box, s, jitter)
        out, win = crop_and_resize_with_window_tf(image, box, resolution, window)
        shape = tf.shape(image)
        size = tf.cast(tf.stack([shape[0], shape[1], shape[0], shape[1]]), tf.float32)
        return tf.ensure_shape(out, [resolution, resolution, 3]), tf.cast(win, tf.float32) / size

    ds = examples.map(tf.autograph.experimental.do_not_convert(one),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    crops = np.empty((n, resolution, resolution, 3), np.uint8)
    windows = np.empty((n, 4), np.float32)
    at = 0
    for batch, wins in ds:
        arr = to_uint8_pixels(batch)
        crops[at:at + len(arr)] = arr
        windows[at:at + len(arr)] = np.asarray(wins)
        at += len(arr)
    return crops, windows
