"""Crop geometry: from a predicted box to the pixel window the classifier sees.

Pure numpy (no TensorFlow): the Raspberry Pi runner imports this module to
crop the full-resolution camera frame with the box the foreground predictor
gave on a low-resolution copy. The tf.data pipeline runs the *same* formulas
with TensorFlow ops (:mod:`tfedge.crop._geometry_tf`); both go through
:func:`crop_window_with`, which takes the array operations as an argument, so
the two cannot drift apart, and a test checks that they give identical
windows and crops.

Steps, in the source image's pixels (so a square crop stays square however
the frame's aspect ratio differs from the predictor's square input):

1. **box** -- normalised ``(ymin, xmin, ymax, xmax)``, max edge exclusive
   (see :mod:`tfedge.data._types`). An unknown (NaN) box means the whole image.
2. **square-ify** -- both sides become the longer one (``square=True``), so
   the crop resized to the classifier's square input is not distorted.
3. **margin** -- each side grows by ``margin`` (a fraction of itself): context
   around the object, and slack for the predictor's errors.
4. **minimum size** -- each side is at least ``min_size`` of the image's short
   side: a tiny (or collapsed) prediction still yields a usable crop.
5. **snapping** (optional) -- each side goes *up* to the nearest of ``scales``
   (fractions of the short side; beyond the largest, a square window takes
   the short side itself and a free window keeps its side), so a device can
   keep a few fixed resize plans.
6. **clamp** -- a side never exceeds the image; the window keeps its size and
   slides inside the image rather than being cut (the object stays whole).
7. **whole pixels** -- sides and corners are rounded half up (``floor(v +
   0.5)``, not numpy's round-half-to-even) in float32, so numpy and TensorFlow
   agree bit for bit.

The window is int32 ``(y0, x0, y1, x1)``, max exclusive, ready for slicing:
``image[y0:y1, x0:x1]``. :func:`crop_and_resize` then resizes it with the
same bilinear sampling as ``tf.image.resize(..., antialias=False)``.

On the device::

    outputs = dequantised predictor outputs   # heat maps, or (1, 4) (cy, cx, h, w)
    box = decode_predictor_outputs(outputs)[0]  # normalised, any frame size
    crop, window = crop_and_resize(frame, box, classifier_side, CropConfig.from_dict(saved))
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .errors import TfedgeError

__all__ = [
    "CropConfig",
    "WHOLE_IMAGE",
    "ArrayOps",
    "NUMPY_OPS",
    "crop_window",
    "crop_window_with",
    "crop_windows",
    "window_to_box",
    "crop_box",
    "crop_and_resize",
    "resize_bilinear",
    "square_boxes",
    "decode_boxes",
    "decode_heatmap",
    "decode_predictor_outputs",
]

DEFAULT_MARGIN = 0.15
"""Each side of the crop grows by this fraction: context plus slack for predictor errors."""
DEFAULT_MIN_SIZE = 0.2
"""Smallest crop side, as a fraction of the image's short side."""
MAX_MARGIN = 4.0
WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)
"""The box ``(y0, x0, y1, x1)`` of the whole image: what an image without a known box stands for."""


@dataclass(frozen=True)
class CropConfig:
    """How a box becomes a crop window (see the module docstring for the steps).

    margin: each side grows by this fraction of itself (0.15 = 15 %).
    square: make the window square in pixels (its side is the box's longer side).
    min_size: smallest side, as a fraction of the image's short side, in (0, 1].
    scales: optional sorted fractions of the short side, each in (0, 1]; a side
        is snapped up to the nearest one (beyond the largest: the short side
        for a square window, unchanged otherwise).
        Empty: no snapping.
    """

    margin: float = DEFAULT_MARGIN
    square: bool = True
    min_size: float = DEFAULT_MIN_SIZE
    scales: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not _is_real(self.margin) or not 0.0 <= self.margin <= MAX_MARGIN:
            raise TfedgeError(f"crop margin must be a number in [0, {MAX_MARGIN}], got "
                              f"{self.margin!r}: e.g. 0.15 adds 15% on each side")
        if not isinstance(self.square, bool):
            raise TfedgeError(f"crop square must be True or False, got {self.square!r}")
        if not _is_real(self.min_size) or not 0.0 < self.min_size <= 1.0:
            raise TfedgeError(f"crop min_size must be a fraction in (0, 1] of the image's short "
                              f"side, got {self.min_size!r}: e.g. 0.2")
        try:
            scales = tuple(float(s) for s in self.scales)
        except (TypeError, ValueError):
            raise TfedgeError(f"crop scales must be a sequence of fractions, got "
                              f"{self.scales!r}: e.g. (0.25, 0.5, 1.0)") from None
        if any(not 0.0 < s <= 1.0 for s in scales) or list(scales) != sorted(set(scales)):
            raise TfedgeError(f"crop scales must be increasing fractions in (0, 1] of the "
                              f"image's short side, got {self.scales!r}: e.g. (0.25, 0.5, 1.0)")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "margin", float(self.margin))
        object.__setattr__(self, "min_size", float(self.min_size))

    def to_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "square": self.square, "min_size": self.min_size,
                "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CropConfig":
        return cls(margin=d.get("margin", DEFAULT_MARGIN), square=d.get("square", True),
                   min_size=d.get("min_size", DEFAULT_MIN_SIZE),
                   scales=tuple(d.get("scales", ())))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


class ArrayOps(NamedTuple):
    """The elementwise operations :func:`crop_window_with` needs, from one array library.

    Every argument and result is float32 except ``to_int`` (to int32) and
    ``isnan``/``where`` (booleans). numpy and TensorFlow implement each of
    these as one correctly-rounded IEEE operation, so the same sequence of
    calls gives the same bits in both.
    """

    asarray: Callable[[Any], Any]   # -> float32
    isnan: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]
    maximum: Callable[[Any, Any], Any]
    minimum: Callable[[Any, Any], Any]
    floor: Callable[[Any], Any]
    any_last: Callable[[Any], Any]  # reduce "or" over the last axis
    unstack_last: Callable[[Any], Sequence[Any]]
    stack_last: Callable[[Sequence[Any]], Any]
    to_int: Callable[[Any], Any]    # float32 holding whole numbers -> int32


NUMPY_OPS = ArrayOps(
    asarray=lambda x: np.asarray(x, dtype=np.float32),
    isnan=np.isnan,
    where=np.where,
    maximum=np.maximum,
    minimum=np.minimum,
    floor=np.floor,
    any_last=lambda x: np.any(x, axis=-1),
    unstack_last=lambda x: [x[..., i] for i in range(x.shape[-1])],
    stack_last=lambda xs: np.stack(xs, axis=-1),
    to_int=lambda x: x.astype(np.int32),
)


def _round_half_up(ops: ArrayOps, value: Any) -> Any:
    return ops.floor(value + 0.5)


def _snap_up(ops: ArrayOps, side: Any, short: Any, scales: tuple[float, ...],
             beyond: Any) -> Any:
    """Each side up to the smallest ``scale * short`` at least as large (else ``beyond``)."""
    snapped = beyond
    for scale in reversed(scales):  # largest first, so the smallest fitting scale wins
        candidate = short * scale
        snapped = ops.where(side <= candidate, candidate, snapped)
    return snapped


def crop_window_with(ops: ArrayOps, boxes: Any, height: Any, width: Any,
                     config: CropConfig) -> Any:
    """The crop window of ``boxes`` (``(..., 4)``) in an image of ``height`` x ``width`` pixels.

    ``ops`` chooses the array library (:data:`NUMPY_OPS`, or the TensorFlow
    set in :mod:`tfedge.crop._geometry_tf`); ``height`` and ``width`` may be
    scalars or arrays broadcasting against the boxes' leading axes. Returns
    int32 ``(..., 4)`` windows ``(y0, x0, y1, x1)``, max exclusive, with
    ``1 <= y1 - y0 <= height`` and ``1 <= x1 - x0 <= width``.
    """
    boxes = ops.asarray(boxes)
    h_img = ops.asarray(height)
    w_img = ops.asarray(width)
    unknown = ops.any_last(ops.isnan(boxes))
    whole = ops.asarray(WHOLE_IMAGE)
    boxes = ops.where(unknown[..., None], whole, boxes)
    ymin, xmin, ymax, xmax = ops.unstack_last(boxes)
    # 1. box in pixels: centre and sides (a collapsed or inverted box has side 0).
    cy = (ymin + ymax) * 0.5 * h_img
    cx = (xmin + xmax) * 0.5 * w_img
    bh = ops.maximum(ymax - ymin, 0.0) * h_img
    bw = ops.maximum(xmax - xmin, 0.0) * w_img
    # 2. square-ify.
    if config.square:
        bh = bw = ops.maximum(bh, bw)
    # 3. margin.
    grow = float(np.float32(1.0 + config.margin))
    bh = bh * grow
    bw = bw * grow
    # 4. minimum size.
    short = ops.minimum(h_img, w_img)
    smallest = short * float(np.float32(config.min_size))
    bh = ops.maximum(bh, smallest)
    bw = ops.maximum(bw, smallest)
    # 5. snapping to a few scales of the short side.
    if config.scales:
        # Past the largest scale a square window takes the short side (all it can be); a
        # free window keeps its side, which may exceed the short side along the long axis.
        bh = _snap_up(ops, bh, short, config.scales, short if config.square else bh)
        bw = _snap_up(ops, bw, short, config.scales, short if config.square else bw)
    # 6. clamp the size inside the image (a square window inside the short side).
    if config.square:
        bh = bw = ops.minimum(bh, short)
    bh = ops.minimum(bh, h_img)
    bw = ops.minimum(bw, w_img)
    # 7. whole pixels, then slide the window inside the image.
    sh = ops.maximum(_round_half_up(ops, bh), 1.0)
    sw = ops.maximum(_round_half_up(ops, bw), 1.0)
    y0 = _round_half_up(ops, cy - sh * 0.5)
    x0 = _round_half_up(ops, cx - sw * 0.5)
    y0 = ops.minimum(ops.maximum(y0, 0.0), h_img - sh)
    x0 = ops.minimum(ops.maximum(x0, 0.0), w_img - sw)
    return ops.to_int(ops.stack_last([y0, x0, y0 + sh, x0 + sw]))


def _check_size(height: Any, width: Any) -> None:
    h = np.asarray(height)
    w = np.asarray(width)
    if np.any(h < 1) or np.any(w < 1):
        raise TfedgeError(f"image size must be at least 1x1 pixels, got {height}x{width}")


def _check_boxes(boxes: Any) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise TfedgeError(f"boxes must have shape (..., 4) (ymin, xmin, ymax, xmax), got "
                          f"{arr.shape}")
    return arr


def crop_window(box: Any, height: int, width: int, config: CropConfig = CropConfig()) -> np.ndarray:
    """The int32 pixel window ``(y0, x0, y1, x1)`` of one normalised box in an ``height`` x ``width`` image.

    >>> crop_window([0.25, 0.25, 0.75, 0.5], 100, 100, CropConfig(margin=0.0)).tolist()
    [25, 13, 75, 63]
    """
    _check_size(height, width)
    return crop_window_with(NUMPY_OPS, _check_boxes(box), height, width, config)


def crop_windows(boxes: Any, height: Any, width: Any, config: CropConfig = CropConfig()) -> np.ndarray:
    """:func:`crop_window` for ``(N, 4)`` boxes (heights and widths scalars or ``(N,)``)."""
    _check_size(height, width)
    return crop_window_with(NUMPY_OPS, _check_boxes(boxes), height, width, config)


def window_to_box(window: Any, height: Any, width: Any) -> np.ndarray:
    """A pixel window ``(y0, x0, y1, x1)`` as a normalised float32 box of the same image."""
    win = np.asarray(window, dtype=np.float32)
    scale = np.stack(np.broadcast_arrays(np.float32(height), np.float32(width),
                                         np.float32(height), np.float32(width)), axis=-1)
    return (win / scale).astype(np.float32)


def crop_box(box: Any, height: int, width: int, config: CropConfig = CropConfig()) -> np.ndarray:
    """The normalised box of the crop window (what :func:`crop_window` cuts), for drawing."""
    return window_to_box(crop_window(box, height, width, config), height, width)


def square_boxes(boxes: Any, height: float = 1.0, width: float = 1.0) -> np.ndarray:
    """Boxes made square in pixels about their centres (their longer side), not clamped.

    The shape a square-crop predictor (the paper's) can express at best;
    used to measure the IoU ceiling of that parameterisation.
    """
    arr = _check_boxes(boxes)
    cy = (arr[..., 0] + arr[..., 2]) * 0.5
    cx = (arr[..., 1] + arr[..., 3]) * 0.5
    side = np.maximum((arr[..., 2] - arr[..., 0]) * height, (arr[..., 3] - arr[..., 1]) * width)
    half_h = side / height * 0.5
    half_w = side / width * 0.5
    return np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1).astype(np.float32)


def decode_boxes(params: Any) -> np.ndarray:
    """Foreground-predictor output -> normalised boxes.

    The predictor (``tfedge.crop.build_predictor``) outputs ``(..., 4)`` box
    parameters ``(cy, cx, h, w)``, each a fraction of the image side in
    ``[0, 1]`` (after dequantising an int8 model's output with its own scale
    and zero point). The box is ``(cy - h/2, cx - w/2, cy + h/2, cx + w/2)``
    clipped to ``[0, 1]``; a negative size counts as zero. Returns float32
    ``(..., 4)`` ``(ymin, xmin, ymax, xmax)`` for :func:`crop_window`.
    """
    p = np.asarray(params, dtype=np.float32)
    if p.ndim == 0 or p.shape[-1] != 4:
        raise TfedgeError(f"predictor output must have shape (..., 4) (cy, cx, h, w), got {p.shape}")
    cy, cx = p[..., 0], p[..., 1]
    half_h = np.maximum(p[..., 2], 0.0) * 0.5
    half_w = np.maximum(p[..., 3], 0.0) * 0.5
    box = np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)
    return np.clip(box, 0.0, 1.0).astype(np.float32)


def _cell_centres(cells: int) -> np.ndarray:
    side = int(round(np.sqrt(cells)))
    if side * side != cells:
        raise TfedgeError(f"a heat map must have a square number of cells, got {cells}")
    centres = (np.arange(side, dtype=np.float64) + 0.5) / side
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def decode_heatmap(logits: Any, sizes: Any) -> np.ndarray:
    """Heat-head maps -> box parameters ``(..., 4)`` = ``(cy, cx, h, w)``.

    ``logits`` ``(..., S*S)``: centre logits of an S x S grid, row-major;
    ``sizes`` ``(..., S*S, 2)``: per-cell ``(h, w)`` in ``[0, 1]``. The centre
    is the softmax-weighted mean of the cell centres, the size the
    softmax-weighted mean of the cell sizes -- what the Keras model computes
    inside, done here in float so an int8 model's softmax (1/256 steps, too
    coarse for hundreds of cells) does not cost precision.
    """
    lg = np.asarray(logits, np.float64)
    sz = np.asarray(sizes, np.float64)
    if lg.ndim < 1 or sz.shape != lg.shape + (2,):
        raise TfedgeError(f"heat maps must be logits (..., N) and sizes (..., N, 2), got "
                          f"{lg.shape} and {sz.shape}")
    prob = np.exp(lg - lg.max(axis=-1, keepdims=True))
    prob /= prob.sum(axis=-1, keepdims=True)
    centre = prob @ _cell_centres(lg.shape[-1])
    size = np.einsum("...n,...nc->...c", prob, sz)
    return np.concatenate([centre, size], axis=-1).astype(np.float32)


def decode_predictor_outputs(outputs: Any) -> np.ndarray:
    """Boxes ``(B, 4)`` from a predictor's (dequantised) outputs, whichever form it exports.

    One array ``(B, 4)``: box parameters (:func:`decode_boxes`). Two arrays
    (any order) ``(B, N)`` and ``(B, N, 2)``: the heat head's export form
    (:func:`decode_heatmap`, then :func:`decode_boxes`).
    """
    if isinstance(outputs, np.ndarray):
        outputs = [outputs]
    arrays = [np.asarray(o, np.float32) for o in outputs]
    if len(arrays) == 1:
        return decode_boxes(arrays[0])
    if len(arrays) == 2:
        arrays.sort(key=lambda a: a.ndim)
        return decode_boxes(decode_heatmap(arrays[0], arrays[1]))
    raise TfedgeError(f"a predictor has one output (box parameters) or two (heat maps), got "
                      f"{len(arrays)}")


# --------------------------------------------------------------------------- resampling


def _interpolation(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of TensorFlow's half-pixel bilinear resize along one axis.

    Mirrors ``compute_interpolation_weights`` in TensorFlow's
    ``resize_bilinear_op.cc`` (``half_pixel_centers=True``): the source
    coordinate of output ``i`` is ``(i + 0.5) * in / out - 0.5``, its lower
    neighbour is clamped at 0 and its upper one at ``in - 1``.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    lower_f = np.floor(pos)
    lower = np.maximum(lower_f, 0).astype(np.int64)
    upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
    return lower, upper, (pos - lower_f).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(H, W, C)`` to ``(height, width, C)`` float32 like ``tf.image.resize`` (bilinear).

    Same sampling as ``tf.image.resize(image, (height, width))`` with its
    defaults (bilinear, no antialiasing, half-pixel centres), which is how
    tfedge's training pipeline resizes: a classifier deployed with this
    function sees the pixels it was trained on (to float32 rounding).
    Without antialiasing, a large downscale aliases; so does training.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise TfedgeError(f"image must be (height, width, channels) with at least one pixel, "
                          f"got shape {img.shape}")
    if height < 1 or width < 1:
        raise TfedgeError(f"resize target must be at least 1x1, got {height}x{width}")
    y_lo, y_hi, y_w = _interpolation(height, img.shape[0])
    x_lo, x_hi, x_w = _interpolation(width, img.shape[1])
    img = img.astype(np.float32, copy=False)
    top = img[y_lo]
    bottom = img[y_hi]
    x_w = x_w[None, :, None]
    top = top[:, x_lo] + (top[:, x_hi] - top[:, x_lo]) * x_w
    bottom = bottom[:, x_lo] + (bottom[:, x_hi] - bottom[:, x_lo]) * x_w
    return top + (bottom - top) * y_w[:, None, None]


def crop_and_resize(image: np.ndarray, box: Any, size: int,
                    config: CropConfig = CropConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` (``(H, W, 3)``, any size) at ``box`` and resize to ``size`` x ``size``.

    Returns ``(crop float32 (size, size, 3) in the image's value range,
    window int32 (y0, x0, y1, x1))``. The crop equals what the training
    pipeline (:func:`tfedge.crop._geometry_tf.crop_and_resize_tf`) produces.
    """
    img = np.asarray(image)
    if img.ndim != 3:
        raise TfedgeError(f"image must be (height, width, channels), got shape {img.shape}")
    window = crop_window(box, img.shape[0], img.shape[1], config)
    y0, x0, y1, x1 = (int(v) for v in window)
    return resize_bilinear(img[y0:y1, x0:x1], size, size), window
