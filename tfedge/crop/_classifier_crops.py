"""Crop datasets for the classifier: train on crops that look like the predictor's.

A classifier behind the foreground predictor never sees a whole image, only
a crop around a *predicted* box, and predicted boxes are off by a few pixels
in position and scale (and, rarely, miss the object). Trained on perfect
ground-truth crops, the classifier meets unfamiliar framing at test time; the
calibration run of issue #3 lost 15 points that way. So:

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
* :func:`train_crop_classifier` -- the crop-robust classifier: a pool of
  jittered ground-truth crops (and, given a predictor, its own crops of the
  training images), then :func:`tfedge.train_classifier` at the same number
  of steps as a full-image run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from .._errors import DatasetError, TfedgeError
from ..data._pipeline import AugmentConfig
from ..data._types import FileSplit, ImageSplit, Split
from .geometry import CropConfig

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["JitterConfig", "make_crop_dataset", "crop_dataset_fn", "materialize_crops",
           "CropTrainConfig", "crop_pool",
           "train_crop_classifier", "trained_crop_config", "DEFAULT_CROP_RESOLUTION"]

log = logging.getLogger(__name__)


DEFAULT_CROP_RESOLUTION = 64
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


def trained_crop_config(models: Sequence[Union[str, os.PathLike]]) -> Optional[CropConfig]:
    """The crop geometry the first of ``models`` trained on crops was trained with.

    Read from the ``.keras`` files' sidecars (:func:`train_crop_classifier`
    writes it); None when no model has one (trained on whole images). A
    pipeline should crop at inference as its classifier saw in training.
    """
    from .._train import read_sidecar

    for model in models:
        side = read_sidecar(model)
        crop = side.get("crop") if isinstance(side, dict) else None
        if isinstance(crop, dict) and isinstance(crop.get("crop"), dict):
            return CropConfig.from_dict(crop["crop"])
    return None


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

    from ..data._pipeline import _decoded_examples
    from ._geometry_tf import crop_and_resize_tf

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


@dataclass(frozen=True)
class CropTrainConfig:
    """How the crop-robust classifier's training crops are made.

    resolution: the classifier's input side (the crop is resized to it).
    crop: the geometry used at inference too.
    jitter: errors added to ground-truth boxes (None: exact boxes).
    copies: jitter draws per training image in the pool (memory: copies x N x r x r x 3 bytes).
    predicted_copies: of those, how many use the predictor's own boxes on
        the training images instead (when a predictor is given).
    """

    resolution: int = DEFAULT_CROP_RESOLUTION
    crop: CropConfig = field(default_factory=CropConfig)
    jitter: Optional[JitterConfig] = field(default_factory=JitterConfig)
    copies: int = 4
    predicted_copies: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or self.copies < 1:
            raise TfedgeError(f"copies must be a whole number >= 1, got {self.copies!r}")
        if not 0 <= self.predicted_copies <= self.copies:
            raise TfedgeError(f"predicted_copies must be in [0, copies={self.copies}], got "
                              f"{self.predicted_copies!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "crop": self.crop.to_dict(),
                "jitter": self.jitter.to_dict() if self.jitter else None,
                "copies": self.copies, "predicted_copies": self.predicted_copies}


def crop_pool(train: Split, crop_config: CropTrainConfig, *, predictor: Any = None,
              seed: int = 0) -> ImageSplit:
    """The training pool of :func:`train_crop_classifier` (see :class:`CropTrainConfig`)."""
    predicted = crop_config.predicted_copies if predictor is not None else 0
    rest = crop_config.copies - predicted
    # Only the jittered copies need true boxes; the predictor's copies are cut at its own.
    if rest and (train.boxes is None or np.isnan(np.asarray(train.boxes)).all()):
        raise DatasetError(
            "the training split has no boxes to crop at: give boxes (--boxes), or crop at a "
            "predictor's boxes only (--predictor P --predicted-copies N --copies N; train P "
            "on Grad-CAM boxes with 'tfedge predictor train --pseudo-boxes --teacher T'), or "
            "label them with tfedge.crop.box_labels")
    parts = []
    if predicted:
        from ._predictor_inference import predict_boxes

        pred = predict_boxes(predictor, train)
        parts.append(materialize_crops(train, resolution=crop_config.resolution, boxes=pred,
                                       crop=crop_config.crop, jitter=None, copies=1, seed=seed))
        if predicted > 1:
            parts.append(materialize_crops(train, resolution=crop_config.resolution, boxes=pred,
                                           crop=crop_config.crop, jitter=crop_config.jitter,
                                           copies=predicted - 1, seed=seed + 1))
    if rest:
        parts.append(materialize_crops(train, resolution=crop_config.resolution,
                                       crop=crop_config.crop, jitter=crop_config.jitter,
                                       copies=rest, seed=seed + 2))
    if len(parts) == 1:
        return parts[0]
    return ImageSplit(np.concatenate([p.images for p in parts]),
                      np.concatenate([p.labels for p in parts]), None, tuple(train.class_names))


def train_crop_classifier(model: Any, train: Split, *, crop_config: CropTrainConfig = CropTrainConfig(),
                          config: Any = None, predictor: Any = None, teacher: Any = None,
                          output: Union[str, os.PathLike, None] = None,
                          metadata: Optional[dict] = None, val: Optional[Split] = None):
    """Train a classifier on crops; return ``(model, TrainResult)`` of :func:`tfedge.train_classifier`.

    The pool holds ``crop_config.copies`` crops per training image; each
    epoch runs ``len(train) // batch_size`` steps (unless ``config`` sets
    ``steps_per_epoch``), the budget of a full-image run, drawing from the
    whole pool, with flips. Validation is left to
    :func:`tfedge.crop.evaluate_crop_pipeline` (it needs the predictor);
    ``val``, if given, is cut at its true boxes (else at the predictor's), one
    plain crop per image, and scored by :func:`tfedge.train_classifier`: after
    training, and after every epoch when ``config.patience`` stops early.
    """
    from .._train import TrainConfig, train_classifier

    config = config or TrainConfig()
    pool = crop_pool(train, crop_config, predictor=predictor, seed=config.seed)
    steps = config.steps_per_epoch or max(1, len(train) // config.batch_size)
    config = dataclasses.replace(config, steps_per_epoch=steps,
                                 augment=AugmentConfig(random_resized_crop=False, flip=True))
    log.info("crop classifier: pool of %d crops at %d px (%d per image), %d steps per epoch",
             len(pool), crop_config.resolution, crop_config.copies, steps)
    val_pool = None if val is None else _val_crops(val, crop_config, predictor)
    meta = {"crop": crop_config.to_dict(), "input": "crop"}
    meta.update(metadata or {})
    return train_classifier(model, pool, val=val_pool, config=config, teacher=teacher,
                            output=output, resolution=crop_config.resolution, metadata=meta)


def _val_crops(val: Split, crop_config: CropTrainConfig, predictor: Any) -> ImageSplit:
    """One crop per validation image, at its true box (else the predictor's), unjittered."""
    boxes = None
    if val.boxes is None or np.isnan(np.asarray(val.boxes)).any():
        if predictor is None:
            raise DatasetError("the validation split has images without boxes: give boxes, "
                               "or a predictor to crop it at its boxes")
        from ._predictor_inference import predict_boxes

        boxes = predict_boxes(predictor, val)
    return materialize_crops(val, resolution=crop_config.resolution, boxes=boxes,
                             crop=crop_config.crop, jitter=None, copies=1)
