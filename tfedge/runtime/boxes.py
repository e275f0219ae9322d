"""The foreground predictor's outputs -> one normalised box, for each ``box_format``.

A bundle's predictor (``docs/bundle.md``, *Predictor*) encodes its box in one
of :data:`BOX_FORMATS`:

* ``yxyx_normalized``: the first output's first four values are the corners
  ``(ymin, xmin, ymax, xmax)``;
* ``cyxhw_normalized``: they are centre and size ``(cy, cx, h, w)`` (the raw
  output of tfedge's boxnet predictors);
* ``heatmap_cyxhw``: two outputs, centre logits ``(1, N)`` and per-cell sizes
  ``(1, N, 2)`` (either order), reduced in float to ``(cy, cx, h, w)`` by
  :func:`tfedge.runtime.geometry.decode_heatmap` (no int8 softmax on the
  device, whose kernels round differently on ARM and x86).

:func:`predictor_values` turns the dequantised outputs into four values,
:func:`decode_box` those into a float32 box clipped to ``[0, 1]``, which
:func:`tfedge.runtime.geometry.crop_window` turns into pixels.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .errors import BundleError
from .geometry import decode_heatmap

__all__ = ["BOX_FORMATS", "HEATMAP_BOX_FORMAT", "BOX_DECODERS", "predictor_values",
           "decode_box"]

BOX_FORMATS = ("yxyx_normalized", "cyxhw_normalized", "heatmap_cyxhw")
HEATMAP_BOX_FORMAT = "heatmap_cyxhw"
_BOX_SIZE = 4


def _decode_yxyx(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def _decode_cyxhw(values: np.ndarray) -> np.ndarray:
    # Centre and half sizes in double, the box then rounded once to float32.
    cy, cx, h, w = (float(v) for v in values)
    half_h, half_w = max(h, 0.0) * 0.5, max(w, 0.0) * 0.5
    return np.clip(np.array([cy - half_h, cx - half_w, cy + half_h, cx + half_w], np.float32),
                   0.0, 1.0)


#: box_format -> decoder of the four dequantised box values into a normalised
#: ``(ymin, xmin, ymax, xmax)`` box.
BOX_DECODERS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "yxyx_normalized": _decode_yxyx,
    "cyxhw_normalized": _decode_cyxhw,
    HEATMAP_BOX_FORMAT: _decode_cyxhw,
}


def predictor_values(outputs: Sequence[np.ndarray], box_format: str) -> np.ndarray:
    """The predictor's dequantised outputs -> the four box values its ``box_format`` decodes.

    One box output: its first four values. ``heatmap_cyxhw``: the centre
    logits ``(1, N)`` and cell sizes ``(1, N, 2)`` (in either order) reduced
    in float to ``(cy, cx, h, w)``.
    """
    if box_format == HEATMAP_BOX_FORMAT:
        arrays = sorted((np.asarray(o, np.float32) for o in outputs), key=lambda a: a.ndim)
        if len(arrays) != 2:
            raise BundleError(f"a {HEATMAP_BOX_FORMAT} predictor has two outputs, got "
                              f"{len(arrays)}: rebuild the bundle with tfedge-convert")
        return decode_heatmap(arrays[0].reshape(1, -1),
                              arrays[1].reshape(1, -1, 2)).reshape(-1)
    flat = np.asarray(outputs[0], dtype=np.float32).reshape(-1)
    if flat.size < _BOX_SIZE:
        raise BundleError(f"the predictor's first output holds {flat.size} values, a box needs "
                          f"{_BOX_SIZE}: rebuild the bundle with tfedge-convert")
    return flat[:_BOX_SIZE]


def decode_box(values: np.ndarray, box_format: str) -> np.ndarray:
    """Four box values (:func:`predictor_values`) -> a float32 ``(ymin, xmin, ymax, xmax)`` box.

    Coordinates are clipped to ``[0, 1]`` (a fraction of the frame, max edge exclusive).
    """
    decoder = BOX_DECODERS.get(box_format)
    if decoder is None:
        raise BundleError(f"unknown predictor box_format {box_format!r}: expected one of "
                          f"{', '.join(BOX_DECODERS)}; upgrade tfedge-pi")
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    if flat.size < _BOX_SIZE:
        raise BundleError(f"the predictor's first output holds {flat.size} values, a box needs "
                          f"{_BOX_SIZE}: rebuild the bundle with tfedge-convert")
    return decoder(flat[:_BOX_SIZE])
