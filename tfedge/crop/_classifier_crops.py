"""The crop-robust classifier: trained on crops that look like the predictor's.

A classifier behind the foreground predictor never sees a whole image, only
a crop around a *predicted* box, off by a few pixels in position and scale
(and, rarely, missing the object). Trained on perfect ground-truth crops, the
classifier meets unfamiliar framing at test time; the calibration run of
issue #3 lost 15 points that way. So :func:`train_crop_classifier` trains on
a pool of jittered ground-truth crops (and, given a predictor, its own crops
of the training images), then :func:`tfedge.train_classifier` at the same
number of steps as a full-image run.

The crops themselves (``tf.data`` pipelines, jitter, materialised pools) are
:mod:`tfedge.crop._crop_datasets`'s; this module re-exports them for existing
imports.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._errors import DatasetError, TfedgeError
from .._train import TrainConfig, read_sidecar, train_classifier
from ..data._tfdata import AugmentConfig
from ..data._types import ImageSplit, Split
from ._crop_datasets import (FLIP_PROBABILITY, MAX_LOG_SCALE, MAX_SHIFT, JitterConfig,
                             crop_dataset_fn, make_crop_dataset, materialize_crops,
                             to_uint8_pixels)
from ._predictor_inference import predict_boxes
from .geometry import CropConfig

__all__ = ["CropTrainConfig", "crop_pool", "train_crop_classifier", "trained_crop_config",
           "DEFAULT_CROP_RESOLUTION",
           # re-exported from _crop_datasets, where they lived here before
           "JitterConfig", "make_crop_dataset", "crop_dataset_fn", "materialize_crops",
           "to_uint8_pixels", "FLIP_PROBABILITY", "MAX_SHIFT", "MAX_LOG_SCALE"]

log = logging.getLogger(__name__)


DEFAULT_CROP_RESOLUTION = 64


def trained_crop_config(models: Sequence[Union[str, os.PathLike]]) -> Optional[CropConfig]:
    """The crop geometry the first of ``models`` trained on crops was trained with.

    Read from the ``.keras`` files' sidecars (:func:`train_crop_classifier`
    writes it); None when no model has one (trained on whole images). A
    pipeline should crop at inference as its classifier saw in training.
    """
    for model in models:
        side = read_sidecar(model)
        crop = side.get("crop") if isinstance(side, dict) else None
        if isinstance(crop, dict) and isinstance(crop.get("crop"), dict):
            return CropConfig.from_dict(crop["crop"])
    return None


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
        boxes = predict_boxes(predictor, val)
    return materialize_crops(val, resolution=crop_config.resolution, boxes=boxes,
                             crop=crop_config.crop, jitter=None, copies=1)
