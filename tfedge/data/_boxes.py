"""Box arithmetic on numpy arrays, shared by the data pipeline, the cropper and tests.

Every box is ``(ymin, xmin, ymax, xmax)`` normalised by the image height and
width with the max edge exclusive (see :mod:`tfedge.data._types`). Functions
take arrays of shape ``(..., 4)`` and work elementwise over the leading axes,
so one call handles a single box, a batch, or a batch against one window.

NaN marks an unknown box. Every function here lets NaN flow through: an
unknown box stays unknown after cropping, flipping or clipping, and its area
and IoU are NaN, never a made-up number.

This module imports numpy only. The tf.data pipeline repeats the crop and flip
formulas in TensorFlow ops (a graph cannot call numpy); tests check that both
give the same numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "boxes_to_pixels",
    "pixels_to_boxes",
    "clip_boxes",
    "box_area",
    "iou",
    "transform_boxes_for_crop",
    "flip_boxes_lr",
    "orient_boxes",
    "voc_pixels_to_box",
]

_YMIN, _XMIN, _YMAX, _XMAX = range(4)


def _as_boxes(boxes: np.ndarray | list | tuple) -> np.ndarray:
    """Float array of shape ``(..., 4)``: float64 stays float64, anything else becomes float32."""
    arr = np.asarray(boxes)
    if arr.dtype != np.float64:
        arr = arr.astype(np.float32)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4), got {arr.shape}")
    return arr


def _scale(height: float, width: float, dtype: np.dtype) -> np.ndarray:
    return np.asarray([height, width, height, width], dtype=dtype)


def boxes_to_pixels(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """Normalised boxes -> pixel edges ``(row0, col0, row1, col1)``, max edge exclusive.

    A box ``(0.25, 0, 0.75, 1)`` in a 4x10 image covers rows 1..2 and all
    columns: it becomes ``(1, 0, 3, 10)``. The result is float; round it when
    whole pixels are needed.
    """
    arr = _as_boxes(boxes)
    return arr * _scale(height, width, arr.dtype)


def pixels_to_boxes(pixels: np.ndarray, height: float, width: float) -> np.ndarray:
    """Pixel edges ``(row0, col0, row1, col1)`` (max exclusive) -> normalised boxes.

    The inverse of :func:`boxes_to_pixels`.
    """
    arr = _as_boxes(pixels)
    return arr / _scale(height, width, arr.dtype)


def clip_boxes(boxes: np.ndarray) -> np.ndarray:
    """Clip every coordinate to ``[0, 1]``; NaN stays NaN."""
    return np.clip(_as_boxes(boxes), 0.0, 1.0)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area as a fraction of the image, shape ``(...)``. An inverted box has area 0."""
    arr = _as_boxes(boxes)
    height = arr[..., _YMAX] - arr[..., _YMIN]
    width = arr[..., _XMAX] - arr[..., _XMIN]
    # np.maximum propagates NaN, so an unknown box has an unknown (NaN) area.
    return np.maximum(height, 0.0) * np.maximum(width, 0.0)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of ``a`` and ``b``, elementwise with broadcasting.

    Two empty boxes have IoU 0 (not NaN): they do not overlap anything.
    """
    a = _as_boxes(a)
    b = _as_boxes(b)
    inter_h = np.minimum(a[..., _YMAX], b[..., _YMAX]) - np.maximum(a[..., _YMIN], b[..., _YMIN])
    inter_w = np.minimum(a[..., _XMAX], b[..., _XMAX]) - np.maximum(a[..., _XMIN], b[..., _XMIN])
    inter = np.maximum(inter_h, 0.0) * np.maximum(inter_w, 0.0)
    union = box_area(a) + box_area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0.0, inter / np.where(union > 0.0, union, 1.0), 0.0)
    # ``union > 0`` is False for NaN, which would turn an unknown box into IoU 0.
    return np.where(np.isnan(union), np.nan, out).astype(np.result_type(a, b))


def transform_boxes_for_crop(boxes: np.ndarray, crop_window: np.ndarray) -> np.ndarray:
    """Express ``boxes`` in the coordinates of a crop of the same image.

    ``crop_window`` is ``(y0, x0, y1, x1)``, normalised in the source image
    (broadcast against ``boxes``). The result is normalised in the crop and
    clipped to ``[0, 1]``: the part of an object cut off by the crop is not in
    the crop's box. An object entirely outside the crop collapses to a box of
    zero area on the nearest edge. Resizing the crop afterwards does not change
    normalised coordinates, so this is also the box in the resized crop.
    """
    arr = _as_boxes(boxes)
    window = _as_boxes(crop_window).astype(arr.dtype)
    origin = window[..., [_YMIN, _XMIN, _YMIN, _XMIN]]
    size = (window[..., [_YMAX, _XMAX, _YMAX, _XMAX]] - origin)
    return np.clip((arr - origin) / size, 0.0, 1.0)


def flip_boxes_lr(boxes: np.ndarray) -> np.ndarray:
    """Boxes of the left-right mirrored image: ``x -> 1 - x``, min and max swapped."""
    arr = _as_boxes(boxes)
    return np.stack([arr[..., _YMIN], 1.0 - arr[..., _XMAX],
                     arr[..., _YMAX], 1.0 - arr[..., _XMIN]], axis=-1)


# EXIF orientation -> where a normalised point (y, x) of the stored image lands once the
# orientation is applied (what PIL.ImageOps.exif_transpose does to the pixels).
_ORIENT_POINT = {
    1: lambda y, x: (y, x),
    2: lambda y, x: (y, 1.0 - x),          # mirrored left-right
    3: lambda y, x: (1.0 - y, 1.0 - x),    # turned 180
    4: lambda y, x: (1.0 - y, x),          # mirrored top-bottom
    5: lambda y, x: (x, y),                # transposed
    6: lambda y, x: (x, 1.0 - y),          # turned 90 clockwise
    7: lambda y, x: (1.0 - x, 1.0 - y),    # transversed
    8: lambda y, x: (1.0 - x, y),          # turned 90 counter-clockwise
}


def orient_boxes(boxes: np.ndarray, orientation: int) -> np.ndarray:
    """Boxes of a stored image's pixels, in the upright image its EXIF ``orientation`` gives.

    Box files (VOC, ImageNet, CSV) give pixels as stored in the file, while
    decoders that honour EXIF (the device runner, training) show the image
    turned upright; orientation 1 (or any unknown value) leaves boxes as they are.
    """
    arr = _as_boxes(boxes)
    point = _ORIENT_POINT.get(int(orientation), _ORIENT_POINT[1])
    y0, x0 = point(arr[..., _YMIN], arr[..., _XMIN])
    y1, x1 = point(arr[..., _YMAX], arr[..., _XMAX])
    return np.stack([np.minimum(y0, y1), np.minimum(x0, x1), np.maximum(y0, y1),
                     np.maximum(x0, x1)], axis=-1).astype(arr.dtype)


def voc_pixels_to_box(xmin: float, ymin: float, xmax: float, ymax: float,
                      width: int, height: int) -> np.ndarray:
    """A Pascal VOC / ImageNet pixel box -> a normalised float32 box.

    VOC files give the first and the last pixel the object covers, both
    included. tfedge reads them as 0-based pixel indices (ImageNet's files are
    0-based; in 1-based VOC files the box shifts by one pixel, far below what
    the crop predictor resolves), so the max edge, exclusive, is the last pixel
    plus one: ``ymax_norm = (ymax + 1) / height``. Coordinates are clipped to
    ``[0, 1]`` because 1-based files can name pixel ``width``.
    """
    box = np.asarray([ymin / height, xmin / width, (ymax + 1.0) / height, (xmax + 1.0) / width],
                     dtype=np.float64)
    return np.clip(box, 0.0, 1.0).astype(np.float32)
