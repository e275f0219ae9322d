"""Running a box predictor (or a refined one) over a split."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data._types import Split
from ._boxnet import predictor_spec_of
from .geometry import decode_boxes

__all__ = ["predict_boxes"]


def predict_boxes(predictor: Any, split: Split, *, batch_size: int = 256) -> np.ndarray:
    """Predicted normalised boxes ``(N, 4)`` for every image of ``split`` (whole image resized).

    A :class:`~tfedge.crop.RefinedPredictor` predicts, then refines its boxes.
    """
    from ..data._pipeline import make_dataset
    from ._refine import RefinedPredictor, refine_boxes

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
