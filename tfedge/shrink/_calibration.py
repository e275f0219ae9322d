"""Calibration images for the shrink search: what importance criteria and int8 conversion
run the model on, resized exactly as evaluation resizes them."""

from __future__ import annotations

from typing import Optional

import numpy as np


def head(split, count: Optional[int]):
    """The first ``count`` examples of a split (all when None or when it is smaller)."""
    if count is None or len(split) <= count:
        return split
    if hasattr(split, "take"):
        return split.take(count)
    return split.subset(range(count))


def calibration_arrays(split, count: int, resolution: int, batch_size: int = 64):
    """``(images, labels)``: the first ``count`` images resized as evaluation resizes them,
    float32 raw pixels ``(N, R, R, 3)`` (what importance criteria run the model on)."""
    from ..data._tfdata import make_dataset

    images, labels = [], []
    for x, y in make_dataset(head(split, count), resolution=resolution, batch_size=batch_size,
                             training=False):
        images.append(np.asarray(x, np.float32))
        labels.append(np.asarray(y))
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)
