"""Frame -> model input, fast and bit-identical to the training side.

The bundle contract resizes with bilinear sampling, half-pixel centres and no
antialiasing (``tf.image.resize(..., antialias=False)``), which
:func:`tfedge.runtime.geometry.resize_bilinear` reproduces in numpy. That
function converts the *whole* source to float32 first; on a 640x480 frame
that costs more than the int8 inference it feeds. Bilinear sampling only
reads the four neighbours of each output pixel, so :func:`resize_window`
gathers exactly those ``4 * h * w`` uint8 pixels (the whole frame through a
cached byte index; a crop by copying its ``2 * h`` source rows, then taking
columns), converts only them, and then performs the *same* float32
operations in the same order as ``resize_bilinear``: the result is identical
bit for bit (``tests/test_runner.py`` checks it). The cost grows with the
model's input, not with the frame.

:func:`quantize_pixels` gives the same codes as :func:`tfedge.runtime.interpreter.quantize`
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

from .errors import TfedgeError
from .image import draft_request
from .geometry import _interpolation
from .interpreter import FLOAT_DTYPES, INTEGER_DTYPES, TensorSpec

__all__ = ["resize_window", "quantize_pixels", "prepare_input", "needed_short_side",
           "draft_request"]

_CHANNELS = 3
_HALF = np.float32(0.5)
_PIXEL_MAX = 255.0
_INTEGER_RANGES = {name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
                   for name in INTEGER_DTYPES}
#: Cached whole-frame plans (output size x frame size): the predictor's, the same every frame.
#: A 96-px plan takes 0.9 MB.
_PLAN_CACHE = 8
#: Cached per-axis plans: crops of a stream come in a few hundred sizes, and these are small.
_AXIS_CACHE = 1024
_RGB = np.arange(_CHANNELS)
_BGR_TO_RGB = _RGB[::-1]


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array``, read-only: cached plans are shared by every caller."""
    array.setflags(write=False)
    return array


@lru_cache(maxsize=_AXIS_CACHE)
def _row_plan(out_h: int, in_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Source rows ``(2 * out_h,)``, every upper neighbour then every lower one, and float32
    weights ``(out_h, 1)``."""
    lo, hi, weight = _interpolation(out_h, in_h)
    return (_frozen(np.concatenate([lo, hi]).astype(np.intp)),
            _frozen(weight.astype(np.float32)[:, None]))


@lru_cache(maxsize=_AXIS_CACHE)
def _col_plan(out_w: int, in_w: int, bgr: bool) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets within a row ``(2, out_w * 3)``, the left neighbours' channels and the
    right ones', and float32 weights ``(1, out_w * 3)``; ``bgr`` reverses the channels."""
    lo, hi, weight = _interpolation(out_w, in_w)
    channels = _BGR_TO_RGB if bgr else _RGB
    cols = np.stack([lo, hi]).astype(np.intp)[:, :, None] * _CHANNELS + channels
    return (_frozen(cols.reshape(2, out_w * _CHANNELS)),
            _frozen(np.repeat(weight.astype(np.float32), _CHANNELS)[None, :]))


@lru_cache(maxsize=_PLAN_CACHE)
def _frame_plan(out_h: int, out_w: int, frame_h: int, frame_w: int, bgr: bool) -> np.ndarray:
    """Byte offsets ``(2, 2 * out_h, out_w * 3)`` of every neighbour in a whole frame."""
    rows, _ = _row_plan(out_h, frame_h)
    cols, _ = _col_plan(out_w, frame_w, bgr)
    return _frozen(rows[None, :, None] * (frame_w * _CHANNELS) + cols[:, None, :])


def resize_window(frame: np.ndarray, window: Sequence[int], height: int, width: int, *,
                  bgr: bool = False) -> np.ndarray:
    """Resize ``frame[y0:y1, x0:x1]`` to ``(height, width, 3)`` float32, as the training side does.

    ``frame`` is a C-contiguous ``(H, W, 3)`` uint8 array; ``window`` the
    int ``(y0, x0, y1, x1)`` from :func:`tfedge.runtime.geometry.crop_window`
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
    bgr = bool(bgr)
    # Gather the neighbours as left and right (2 * height, width * 3) blocks of bytes, each
    # the upper rows then the lower ones: contiguous, so every operation below runs over
    # whole blocks. The whole frame (the predictor's input, the same plan every frame) takes
    # single bytes through a cached index; a crop (a new size nearly every frame) copies
    # its source rows, then takes columns from that small block.
    rows, y_w = _row_plan(height, y1 - y0)
    cols, x_w = _col_plan(width, x1 - x0, bgr)
    if (y0, x0, y1, x1) == (0, 0, frame_h, frame_w):
        left, right = np.take(frame.reshape(-1), _frame_plan(height, width, frame_h, frame_w,
                                                             bgr)).astype(np.float32)
    else:
        block = frame[rows + y0 if y0 else rows, x0:x1].reshape(2 * height, -1)
        left = np.take(block, cols[0], axis=1).astype(np.float32)
        right = np.take(block, cols[1], axis=1).astype(np.float32)
    # geometry.resize_bilinear's float32 operations, in place (IEEE addition commutes, so
    # ``right += left`` is its ``left + ...`` bit for bit):
    #   top = top_left + (top_right - top_left) * x_w       (and the same for the bottom)
    #   out = top + (bottom - top) * y_w
    right -= left
    right *= x_w
    right += left
    top, bottom = right[:height], right[height:]
    bottom -= top
    bottom *= y_w
    bottom += top
    return bottom.reshape(height, width, _CHANNELS)


def quantize_pixels(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float32 pixel values in [0, 255] -> the input tensor's dtype, with its own parameters.

    Equal to ``tfedge.runtime.interpreter.quantize(values, spec.scale, spec.zero_point,
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
