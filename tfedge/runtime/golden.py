"""Golden vectors: the plain-JSON form in which the Python side hands tensors to other ports.

The Android core cannot run LiteRT on the JVM, so its plain-Java core
(manifest, preprocessing, crop math, int8 (de)quantisation, early exit) is
tested against tensors this runtime computed: ``tfedge-pi BUNDLE SOURCE
--golden FILE`` writes them for any bundle, and ``tests/golden/`` holds a
committed tiny bundle with its vectors (the format is in ``docs/bundle.md``,
*Golden vectors*). Arrays are ``{"shape": [...], "dtype": "uint8" | "int8" |
..., "data": base64 of the little-endian, row-major (C order) bytes}``;
floats are JSON numbers (float32 values written exactly as doubles).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

__all__ = ["GOLDEN_FORMAT", "GOLDEN_VERSION", "ARRAY_ENCODING", "encode_array", "decode_array",
           "floats"]

GOLDEN_FORMAT = "tfedge-golden"
GOLDEN_VERSION = 1
ARRAY_ENCODING = ("each array is {shape, dtype, data}: data is base64 of the array's "
                  "little-endian bytes in row-major (C) order")


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """An array as ``{shape, dtype, data}`` (base64 of little-endian C-order bytes)."""
    a = np.ascontiguousarray(array)
    little = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {"shape": [int(s) for s in a.shape], "dtype": a.dtype.name,
            "data": base64.b64encode(little.tobytes()).decode("ascii")}


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """The inverse of :func:`encode_array`."""
    dtype = np.dtype(obj["dtype"]).newbyteorder("<")
    return np.frombuffer(base64.b64decode(obj["data"]), dtype=dtype).reshape(obj["shape"]).copy()


def floats(values: np.ndarray) -> list[float]:
    """Every value of ``values`` as a JSON number (a double holds a float32 exactly)."""
    return [float(v) for v in np.asarray(values).reshape(-1)]
