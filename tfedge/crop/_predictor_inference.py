"""Running a box predictor (or a refined one) over a split, and what one prediction costs.

:func:`predict_boxes` and :func:`refine_boxes` call each other (a refined
predictor predicts, then refines; a refiner's look is a plain prediction on
windows), so they live together. The window arithmetic is the device's own
(:mod:`tfedge.runtime.refine`), so the boxes mapped here are the runner's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._macs import count_macs
from ..data._tfdata import make_dataset
from ..data._types import ImageSplit, Split
from ..runtime.refine import boxes_from_window, merge_refined
from ._boxnet import predictor_spec_of
from ._crop_datasets import window_crops
from ._refined_predictor import DEFAULT_REFINE_WINDOW, RefinedPredictor
from .geometry import CropConfig, decode_boxes

__all__ = ["predict_boxes", "refine_boxes", "predictor_macs"]


def predict_boxes(predictor: Any, split: Split, *, batch_size: int = 256) -> np.ndarray:
    """Predicted normalised boxes ``(N, 4)`` for every image of ``split`` (whole image resized).

    A :class:`~tfedge.crop.RefinedPredictor` predicts, then refines its boxes.
    """
    if isinstance(predictor, RefinedPredictor):
        first = predict_boxes(predictor.predictor, split, batch_size=batch_size)
        return refine_boxes(predictor.refiner, split, first, window=predictor.window,
                            passes=predictor.passes, batch_size=batch_size)
    spec = predictor_spec_of(predictor)
    ds = make_dataset(split, resolution=spec.resolution, batch_size=batch_size, training=False)
    out = [np.asarray(predictor(images, training=False)) for images, _ in ds]
    if not out:
        return np.zeros((0, 4), np.float32)
    return decode_boxes(np.concatenate(out))


def refine_boxes(refiner: Any, split: Split, boxes: Any, *, window: CropConfig = DEFAULT_REFINE_WINDOW,
                 passes: int = 1, batch_size: int = 256) -> np.ndarray:
    """``passes`` looks of ``refiner`` (a Keras boxnet) around ``boxes``; returns the last boxes."""
    res = predictor_spec_of(refiner).resolution
    current = np.asarray(boxes, np.float32)
    for _ in range(passes):
        crops, windows = window_crops(split, current, resolution=res, window=window,
                                      batch_size=batch_size)
        inner = predict_boxes(refiner, ImageSplit(crops, np.zeros(len(crops), np.int32), None,
                                                  tuple(split.class_names)),
                              batch_size=batch_size)
        current = merge_refined(current, boxes_from_window(inner, windows), windows)
    return current


def predictor_macs(predictor: Any) -> int:
    """MACs of one prediction: a plain predictor's, or ``predictor + passes * refiner``."""
    if isinstance(predictor, RefinedPredictor):
        return (count_macs(predictor.predictor).macs
                + predictor.passes * count_macs(predictor.refiner).macs)
    return count_macs(predictor).macs
