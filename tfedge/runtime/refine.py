"""The refiner's second look at the predictor's box, in numpy: THE device implementation.

A bundle of manifest version 2 may hold a *refiner* (``docs/bundle.md``,
*Refiner*): a second small box predictor that sees a square window of the
full-resolution frame around the predictor's box and predicts the object's
box inside that window. Per pass, for a frame of ``height`` x ``width``:

1. **window** -- :func:`refine_window`: the box's crop window under the
   refiner's own :class:`~tfedge.runtime.geometry.CropConfig` (square, no
   scales; margin 0.25 and min_size 0.1 by default), in whole pixels, by
   :func:`tfedge.runtime.geometry.crop_window_with`, the same function (and
   float32 operations) the training side runs with TensorFlow ops when it
   cuts the refiner's windows (``tfedge.crop._crop_datasets.window_crops``);
2. **look** -- that window resized to the refiner's resolution and quantised
   like any model input; the refiner's outputs decode to a box *in window
   coordinates* exactly as the predictor's do (``box_format``);
3. **map back** -- :func:`boxes_from_window`: ``clip(inner * side + origin,
   0, 1)`` with the window as a normalised box (:func:`window_fraction`,
   float32 division by the frame's size);
4. **merge** -- :func:`merge_refined`: along an axis where the window is
   narrower than the previous box (a wide object in a 4:3 frame does not fit
   a square window), the previous box's two edges stand.

After the last pass the box becomes the stages' crop window as usual. Every
step is float32 in a fixed order, so numpy, TensorFlow and the Java core
agree bit for bit (``tests/test_runtime_refiner.py``, the golden vectors).
The training side's Keras refiner (``tfedge.crop._refine``, ``._crop_datasets``) cuts its windows
with TensorFlow ops and maps boxes with the same formulas; the tests check
that both give the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import TfedgeError
from .geometry import NUMPY_OPS, CropConfig, crop_window_with, window_to_box

__all__ = ["DEFAULT_REFINER_WINDOW", "MERGE_TOLERANCE", "MIN_TARGET_SIDE", "check_refiner_window",
           "refine_window", "window_fraction", "boxes_to_window", "boxes_from_window",
           "merge_refined", "refine_step", "refine_windows"]

#: The refiner's window by default: the box's longer side x1.25, at least 10% of the short
#: side, squared and slid inside the frame (``tfedge.crop.DEFAULT_REFINE_WINDOW``).
DEFAULT_REFINER_WINDOW = CropConfig(margin=0.25, square=True, min_size=0.1)
#: Slack of the merge's "window narrower than the box" test, applied in float32.
MERGE_TOLERANCE = np.float32(1e-6)
#: A target box narrower than this (fraction of its window) is not in the window.
MIN_TARGET_SIDE = np.float32(1e-3)


def check_refiner_window(window: CropConfig) -> CropConfig:
    """``window`` if a refiner may use it: square (its input is square) and no scales."""
    if not isinstance(window, CropConfig) or not window.square:
        raise TfedgeError(f"the refiner's window must be a square CropConfig, got {window!r}: "
                          "its input is square, a free window would stretch the object")
    if window.scales:
        raise TfedgeError(f"the refiner's window must not snap to scales, got {window.scales}: "
                          "its box is mapped back from the exact window")
    return window


def refine_window(box: Any, height: int, width: int,
                  window: CropConfig = DEFAULT_REFINER_WINDOW) -> np.ndarray:
    """int32 ``(y0, x0, y1, x1)`` pixel window the refiner sees around ``box`` (``(4,)`` or ``(N, 4)``)."""
    return crop_window_with(NUMPY_OPS, np.asarray(box, np.float32), height, width, window)


def window_fraction(window: Any, height: Any, width: Any) -> np.ndarray:
    """Pixel windows as normalised float32 boxes (float32 division by ``(h, w, h, w)``)."""
    return window_to_box(window, height, width)


def _frame(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(origin, side)`` in box order, each ``(N, 4)`` float32, of normalised windows."""
    w = np.asarray(windows, np.float32)
    return np.tile(w[:, :2], 2), np.tile(w[:, 2:] - w[:, :2], 2)


def boxes_to_window(boxes: Any, windows: Any) -> np.ndarray:
    """Normalised image boxes ``(N, 4)`` -> boxes in normalised window coordinates.

    Clipped to the window; a box that is unknown (NaN) or reaches less than
    :data:`MIN_TARGET_SIDE` of the window's side into it comes out NaN (the
    refiner's training target "not in this window").
    """
    b = np.asarray(boxes, np.float32)
    origin, side = _frame(windows)
    out = np.clip((b - origin) / side, np.float32(0.0), np.float32(1.0))
    empty = ((out[:, 2] - out[:, 0] < MIN_TARGET_SIDE) | (out[:, 3] - out[:, 1] < MIN_TARGET_SIDE)
             | np.isnan(b).any(axis=1))
    out[empty] = np.nan
    return out.astype(np.float32)


def boxes_from_window(boxes: Any, windows: Any) -> np.ndarray:
    """Boxes ``(N, 4)`` in normalised window coordinates -> normalised image boxes (float32)."""
    origin, side = _frame(windows)
    mapped = np.asarray(boxes, np.float32) * side + origin
    return np.clip(mapped, np.float32(0.0), np.float32(1.0)).astype(np.float32)


def merge_refined(previous: Any, refined: Any, windows: Any) -> np.ndarray:
    """The refined boxes, except along an axis where the window is narrower than the previous box.

    A square window is at most the frame's short side: in a 4:3 frame an
    object wider than 75% of it does not fit, and a refiner that sees only
    the window would shrink the box to it. Along such an axis (window side <
    previous box side - :data:`MERGE_TOLERANCE`, in float32) the previous
    box's edges stand.
    """
    prev = np.asarray(previous, np.float32)
    out = np.array(refined, np.float32, copy=True)
    w = np.asarray(windows, np.float32)
    for lo, hi in ((0, 2), (1, 3)):
        too_small = (w[:, hi] - w[:, lo]) < (prev[:, hi] - prev[:, lo]) - MERGE_TOLERANCE
        out[too_small, lo] = prev[too_small, lo]
        out[too_small, hi] = prev[too_small, hi]
    return out


def refine_step(box: Any, inner: Any, window: Any, height: int, width: int) -> np.ndarray:
    """One pass's new box ``(4,)``: the refiner's ``inner`` box (window coordinates) mapped
    into the frame and merged with the previous ``box``; ``window`` the pixel window it saw."""
    fraction = window_fraction(np.asarray(window)[None], height, width)
    mapped = boxes_from_window(np.asarray(inner, np.float32).reshape(1, 4), fraction)
    return merge_refined(np.asarray(box, np.float32).reshape(1, 4), mapped, fraction)[0]


def refine_windows(boxes: Any, heights: Any, widths: Any,
                   window: CropConfig = DEFAULT_REFINER_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """``(pixel windows int32 (N, 4), normalised windows float32 (N, 4))`` for ``(N, 4)`` boxes."""
    pixels = refine_window(np.asarray(boxes, np.float32).reshape(-1, 4), heights, widths, window)
    return pixels, window_fraction(pixels, heights, widths)
