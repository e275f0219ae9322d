"""Channel-rounding and depth-scaling arithmetic (pure Python, no TensorFlow).

Compound shrinking changes a network's width and depth by multipliers; these
functions turn a multiplier into concrete integer channel counts and block
counts. They follow the conventions of the reference implementations so that
a "0.5x" model here has the same channels as a "0.5x" model elsewhere:

* channels are rounded to a multiple of ``divisor`` (8 by default: int8
  kernels on ARM/XNNPACK vectorise over 8 or 16 channels, so other counts
  waste lanes), to the *nearest* multiple, but never more than 10% below the
  requested value (the MobileNet ``_make_divisible`` rule);
* depths are rounded *up* and never below one block (EfficientNet's
  ``round_repeats``), so a stage never disappears.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

from tfedge._errors import ModelConfigError

__all__ = ["round_channels", "scale_depths", "scale_widths", "DEFAULT_DIVISOR",
           "MAX_ROUND_DOWN"]

#: Channel counts are multiples of this by default (SIMD width of int8 kernels).
DEFAULT_DIVISOR = 8

#: Rounding to the divisor may not lose more than this fraction of the channels.
MAX_ROUND_DOWN = 0.1

#: Tolerance for ``ceil`` on products like 0.7 * 10 = 7.000000000000001.
_CEIL_EPSILON = 1e-9


def _check_positive_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or not math.isfinite(value):
        raise ModelConfigError(f"{what} must be a positive finite number, got {value!r}")
    return float(value)


def _check_positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ModelConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def round_channels(channels: float, divisor: int = DEFAULT_DIVISOR,
                   min_value: int | None = None) -> int:
    """Round ``channels`` to the nearest multiple of ``divisor`` (reference ``_make_divisible``).

    The result is at least ``min_value`` (default: ``divisor``) and never more
    than 10% below ``channels``; if the nearest multiple would be, the next one
    up is used. Examples: 12 -> 16, 18 -> 24 (16 would drop 11%), 33.6 -> 32.
    """
    value = _check_positive_number(channels, "channels")
    div = _check_positive_int(divisor, "divisor")
    floor = div if min_value is None else _check_positive_int(min_value, "min_value")
    rounded = max(floor, int(value + div / 2) // div * div)
    if rounded < (1.0 - MAX_ROUND_DOWN) * value:
        rounded += div
    return int(rounded)


def scale_depths(depths: Iterable[int], multiplier: float) -> tuple[int, ...]:
    """Scale each stage's block count by ``multiplier``, rounding up, at least 1.

    ``scale_depths((3, 4, 6, 3), 0.5) == (2, 2, 3, 2)``.
    """
    mult = _check_positive_number(multiplier, "depth multiplier")
    out = []
    for i, depth in enumerate(depths):
        d = _check_positive_int(depth, f"stage depth {i + 1}")
        out.append(max(1, math.ceil(d * mult - _CEIL_EPSILON)))
    return tuple(out)


def scale_widths(widths: Iterable[int], multiplier: float,
                 divisor: int = DEFAULT_DIVISOR) -> tuple[int, ...]:
    """Scale each width by ``multiplier`` and round with :func:`round_channels`.

    ``scale_widths((64, 128, 256, 512), 0.25) == (16, 32, 64, 128)``.
    """
    mult = _check_positive_number(multiplier, "width multiplier")
    out = []
    for i, width in enumerate(widths):
        w = _check_positive_int(width, f"width {i + 1}")
        out.append(round_channels(w * mult, divisor))
    return tuple(out)
