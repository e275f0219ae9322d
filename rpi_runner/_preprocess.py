"""Frame -> model input, fast and bit-identical to the training side.

The bundle contract resizes with bilinear sampling, half-pixel centres and no
antialiasing (``tf.image.resize(..., antialias=False)``), which
:func:`tfedge.crop.geometry.resize_bilinear` reproduces in numpy. That
function converts the *whole* source to float32 first; on a 640x480 frame
that costs more than the int8 inference it feeds. Bilinear sampling only
reads the four neighbours of each output pixel, so :func:`resize_window`
gathers exactly those ``4 * h * w`` uint8 pixels (one ``np.take`` of single
bytes over the flattened frame, the crop window being an offset, never a
copy; byte gathers are about twice as fast as 3-byte pixel gathers), converts
only them, and then performs the *same* float32 operations in the same order
as ``resize_bilinear``: the result is identical bit for bit
(``tests/test_runner.py`` checks it). The cost grows with the model's
input, not with the frame.

:func:`quantize_pixels` gives the same codes as :func:`tfedge.litert.quantize`
(round half away from zero, clip) for the non-negative values a resize of
pixels produces; with the converter's usual input scale of 1.0 it stays in
float32 (provably the same result, see the function), otherwise it divides in
float64 as ``quantize`` does.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np

from tfedge._errors import TfedgeError
from tfedge.crop.geometry import _interpolation
from tfedge.litert import FLOAT_DTYPES, INTEGER_DTYPES, TensorSpec

__all__ = ["resize_window", "quantize_pixels", "prepare_input", "needed_short_side",
           "draft_request"]

_CHANNELS = 3
_HALF = np.float32(0.5)
_PIXEL_MAX = 255.0
_INTEGER_RANGES = {name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
                   for name in INTEGER_DTYPES}
#: Cached resize plans (distinct (output, crop size, frame width) combinations). The whole
#: frame's plan (the predictor's) is used on every frame; a 96-px plan takes 0.9 MB.
_PLAN_CACHE = 32
#: Cached per-axis plans: crops of a stream come in a few hundred sizes, and these are small.
_AXIS_CACHE = 1024
_RGB = np.arange(_CHANNELS)
_BGR_TO_RGB = _RGB[::-1]


@lru_cache(maxsize=_AXIS_CACHE)
def _row_plan(out_h: int, in_h: int, row_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets ``(4, out_h, 1)`` of each corner's source row; weights ``(out_h, 1)``."""
    lo, hi, weight = _interpolation(out_h, in_h)
    rows = np.stack([lo, lo, hi, hi]).astype(np.intp) * row_bytes
    return _frozen(rows[:, :, None]), _frozen(weight.astype(np.float32)[:, None])


@lru_cache(maxsize=_AXIS_CACHE)
def _col_plan(out_w: int, in_w: int, bgr: bool) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets ``(4, 1, out_w * 3)`` of each corner's pixel and channel within a row,
    and float32 weights ``(1, out_w * 3)``; ``bgr`` reads the channels in reverse."""
    lo, hi, weight = _interpolation(out_w, in_w)
    channels = _BGR_TO_RGB if bgr else _RGB
    cols = np.stack([lo, hi, lo, hi]).astype(np.intp)[:, :, None] * _CHANNELS + channels
    return (_frozen(cols.reshape(4, 1, out_w * _CHANNELS)),
            _frozen(np.repeat(weight.astype(np.float32), _CHANNELS)[None, :]))


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array``, read-only: cached plans are shared by every caller."""
    array.setflags(write=False)
    return array


@lru_cache(maxsize=_PLAN_CACHE)
def _plan(out_h: int, out_w: int, in_h: int, in_w: int, row_stride: int, bgr: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat byte indices ``(4, out_h, out_w * 3)`` of the four neighbours, and the two weights.

    Index order: (top-left, top-right, bottom-left, bottom-right), relative
    to the window's top-left byte in a frame whose rows are ``row_stride``
    pixels apart; ``bgr`` reads the channels in reverse, so the output is RGB.
    Weights are float32 ``(1, out_w * 3)`` and ``(out_h, 1)``: each broadcasts
    along whole contiguous rows, twice as fast as a per-pixel ``(..., 1)``.
    """
    rows, y_w = _row_plan(out_h, in_h, row_stride * _CHANNELS)
    cols, x_w = _col_plan(out_w, in_w, bgr)
    return _frozen(rows + cols), x_w, y_w


def resize_window(frame: np.ndarray, window: Sequence[int], height: int, width: int, *,
                  bgr: bool = False) -> np.ndarray:
    """Resize ``frame[y0:y1, x0:x1]`` to ``(height, width, 3)`` float32, as the training side does.

    ``frame`` is a C-contiguous ``(H, W, 3)`` uint8 array; ``window`` the
    int ``(y0, x0, y1, x1)`` from :func:`tfedge.crop.geometry.crop_window`
    (or the whole frame). ``bgr=True`` takes an OpenCV-style BGR frame and
    returns RGB (the channel swap happens on the small output, not the frame).
    Equal to ``geometry.resize_bilinear(rgb[y0:y1, x0:x1], height, width)``.
    """
    if frame.ndim != 3 or frame.shape[2] != _CHANNELS or frame.dtype != np.uint8:
        raise TfedgeError(f"frames must be (height, width, 3) uint8, got {frame.shape} "
                          f"{frame.dtype}")
    if not frame.flags.c_contiguous:
        frame = np.ascontiguousarray(frame)
    y0, x0, y1, x1 = (int(v) for v in window)
    frame_h, frame_w = frame.shape[:2]
    if not (0 <= y0 < y1 <= frame_h and 0 <= x0 < x1 <= frame_w):
        raise TfedgeError(f"crop window {[y0, x0, y1, x1]} is outside the {frame_h}x{frame_w} "
                          "frame")
    height, width = int(height), int(width)
    index, x_w, y_w = _plan(height, width, y1 - y0, x1 - x0, frame_w, bool(bgr))
    flat = frame.reshape(-1)
    offset = (y0 * frame_w + x0) * _CHANNELS
    corners = np.take(flat[offset:] if offset else flat, index).astype(np.float32)
    # geometry.resize_bilinear's float32 operations, in place (IEEE addition commutes, so
    # ``right += left`` is its ``left + ...`` bit for bit):
    #   top = top_left + (top_right - top_left) * x_w       (and the same for the bottom)
    #   out = top + (bottom - top) * y_w
    left, right = corners[0::2], corners[1::2]      # (top_left, bottom_left), (top_right, ...)
    right -= left
    right *= x_w
    right += left
    top, bottom = corners[1], corners[3]
    bottom -= top
    bottom *= y_w
    bottom += top
    return bottom.reshape(height, width, _CHANNELS)


def quantize_pixels(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float32 pixel values in [0, 255] -> the input tensor's dtype, with its own parameters.

    Equal to ``tfedge.litert.quantize(values, spec.scale, spec.zero_point,
    spec.dtype)`` for values in [0, 255], which is all a bilinear resize of
    uint8 pixels produces (convex combinations). With scale 1.0 the rounding
    ``floor(v + 0.5)`` runs in float32: ``v + 0.5`` is rounded only when it
    reaches a power of two ``2**k`` that ``v`` is below, and then both the
    exact and the rounded sum lie in ``[2**k, 2**k + 0.5]``: same floor. Other
    scales divide in float64, as ``quantize`` does. A float input is fed as is.
    """
    return _quantize_in_place(np.array(values, dtype=np.float32), spec)


def _quantize_in_place(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """:func:`quantize_pixels` reusing ``values`` (a float32 array the caller owns) as scratch."""
    if spec.dtype in FLOAT_DTYPES or not spec.quantized:
        return values.astype(spec.dtype, copy=False)
    if spec.dtype not in INTEGER_DTYPES:
        raise TfedgeError(f"cannot feed a {spec.dtype} input tensor: rebuild the bundle with "
                          "tfedge-convert")
    if spec.scale == 1.0:
        q = values
        q += _HALF
    else:
        q = values.astype(np.float64)
        q /= spec.scale
        q += 0.5
    np.floor(q, out=q)
    if spec.zero_point:
        q += spec.zero_point
    low, high = _INTEGER_RANGES[spec.dtype]
    # Pixels lie in [0, 255]: clipping is needed only when those codes leave the dtype's range.
    highest = math.floor(_PIXEL_MAX / spec.scale + 0.5) + spec.zero_point
    if spec.zero_point < low or highest > high:
        np.clip(q, low, high, out=q)
    return q.astype(spec.dtype)


def prepare_input(frame: np.ndarray, window: Sequence[int], spec: TensorSpec, *,
                  bgr: bool = False) -> np.ndarray:
    """The model input ``(1, h, w, 3)`` for the window of ``frame``: resized, then quantised."""
    _, height, width, _ = spec.shape
    return _quantize_in_place(resize_window(frame, window, height, width, bgr=bgr), spec)[None]


def needed_short_side(stage_resolutions: Sequence[int], predictor_resolution: int = 0,
                      min_crop_fraction: float = 1.0) -> int:
    """The smallest short side a frame may be decoded at without starving any model of pixels.

    The smallest crop is ``min_crop_fraction`` of the short side; it must still
    hold at least the largest stage resolution, and the whole frame at least
    the predictor's. A JPEG decoded with ``draft`` to this short side or more
    gives every model at least as many source pixels as it samples.
    """
    largest = max(int(r) for r in stage_resolutions)
    fraction = min(max(float(min_crop_fraction), 1e-6), 1.0)
    return max(int(predictor_resolution), int(math.ceil(largest / fraction)))


def draft_request(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The ``(width, height)`` to pass to ``Image.draft`` so the short side stays >= ``short_side``.

    JPEG draft decoding scales by 1/2, 1/4 or 1/8 in the DCT domain and
    picks the strongest reduction whose result is still at least the
    requested size; the request keeps the image's aspect ratio.
    """
    short = min(width, height)
    if short <= short_side:
        return width, height
    ratio = short_side / short
    return int(math.ceil(width * ratio)), int(math.ceil(height * ratio))
