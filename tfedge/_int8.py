"""Keras classifier -> full-integer int8 TFLite bytes: the converter setup both PTQ and QAT use.

Conversion goes through ``tf.lite.TFLiteConverter.from_keras_model`` with
``TFLITE_BUILTINS_INT8`` only: other routes fail on the device
(``tf.saved_model.save`` + ``from_saved_model`` and ``from_concrete_functions``
give models that stop with ``READ_VARIABLE``; Keras' ``export(format='litert')``
turns on SELECT_TF_OPS, which no device runtime has).

Two things the converter does not guarantee, and this module does:

* **The input contract.** tfedge models take raw ``[0, 255]`` pixels and
  rescale themselves, and the input tensor's quantisation is calibrated from
  the representative images. One corner pixel of the first calibration image
  is set to 0 and one to 255, so the input range is exactly ``[0, 255]``:
  int8 input gets scale 1.0 and zero point -128 (feed ``pixel - 128``), uint8
  input scale 1.0 and zero point 0 (feed raw pixels), whatever the
  calibration images' own range. Two pixels do not move any other tensor's
  range noticeably.
* **Full integer.** The converter quietly keeps float kernels for ops it can
  decompose but not quantise; the result is checked tensor by tensor and a
  float tensor is an error naming its layer.

Importing this module does not import TensorFlow; its functions do.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import numpy as np

from ._errors import TfedgeError
from ._io import private_tempdir
from ._quiet import quiet_tensorflow

__all__ = [
    "IO_DTYPES", "DEFAULT_CALIBRATION_SIZE", "DEFAULT_CHECK_SIZE", "DEFAULT_TOLERANCE_POINTS",
    "DEFAULT_BATCH_SIZE", "ConversionError", "ConversionCheckError", "convert_to_int8",
    "check_tolerance",
]

log = logging.getLogger("tfedge._convert")

IO_DTYPES = ("int8", "uint8")
DEFAULT_CALIBRATION_SIZE = 500
DEFAULT_CHECK_SIZE = 2000
DEFAULT_TOLERANCE_POINTS = 1.0
DEFAULT_BATCH_SIZE = 64
PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
# A calibration set whose brightest pixel is at most this is taken for normalised images.
_NORMALISED_MAX = 1.0
_POINTS_PER_UNIT = 100.0  # accuracy fraction -> percentage points
_FLOAT_TENSOR_DTYPES = ("float32", "float16", "float64")
_CAST_OPS = ("DEQUANTIZE", "QUANTIZE", "DELEGATE")  # no computation of their own


class ConversionError(TfedgeError):
    """A model cannot be converted to a full-integer TFLite model."""


class ConversionCheckError(TfedgeError):
    """The int8 model lost more accuracy than allowed. ``metrics`` holds the figures."""

    def __init__(self, message: str, metrics: Optional[Mapping[str, Any]] = None):
        super().__init__(message)
        self.metrics = dict(metrics or {})


# --------------------------------------------------------------------------- pure helpers


def check_tolerance(float_top1: float, int8_top1: float, tolerance_points: float, *,
                    count: Optional[int] = None, subject: str = "int8 top-1",
                    reference: str = "float") -> Optional[str]:
    """The failure message if int8 top-1 is more than ``tolerance_points`` below float, else None.

    ``count``: the images the two were measured on. When one image is worth more than
    the tolerance, the message says so: more calibration images cannot fix a drop of a
    single image, a larger check or a looser tolerance can.
    """
    drop = (float_top1 - int8_top1) * _POINTS_PER_UNIT
    # A tiny epsilon keeps a drop of exactly the tolerance (up to float error) a pass.
    if drop <= tolerance_points + 1e-9:
        return None
    fix = "use more calibration images (--calibration-size), or raise --tolerance"
    if count and _POINTS_PER_UNIT / count > tolerance_points:
        fix = (f"the check had only {count} images (one image is "
               f"{_POINTS_PER_UNIT / count:.1f} points): check on more images, or raise "
               f"--tolerance to {math.ceil(drop * 10 - 1e-6) / 10:g}")
    return (f"{subject} {int8_top1:.3f} is {drop:.1f} points below {reference} "
            f"{float_top1:.3f} (tolerance {tolerance_points:g}): {fix}")


def _pin_input_range(batch: np.ndarray) -> np.ndarray:
    """A copy of ``batch`` whose first image holds one 0 and one 255 pixel (see module docstring)."""
    pinned = np.array(batch, dtype=np.float32, copy=True)
    pinned[0, 0, 0, :] = PIXEL_MIN
    pinned[0, -1, -1, :] = PIXEL_MAX
    return pinned


def _check_io_dtype(io_dtype: str) -> str:
    if io_dtype not in IO_DTYPES:
        raise TfedgeError(f"io_dtype {io_dtype!r} is not supported: choose one of "
                          f"{', '.join(IO_DTYPES)}")
    return io_dtype


def _check_pixels(images: np.ndarray, resolution: int, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (resolution, resolution, 3):
        raise TfedgeError(f"{what} must be (N, {resolution}, {resolution}, 3) pixels for this "
                          f"model, got {images.shape}: resize them to the model's input")
    if len(images) == 0:
        raise TfedgeError(f"{what} is empty: pass at least one image")
    images = images.astype(np.float32, copy=False)
    if not np.all(np.isfinite(images)):
        raise TfedgeError(f"{what} holds NaN or infinite values: pass raw pixels in [0, 255]")
    low, high = float(images.min()), float(images.max())
    if low < PIXEL_MIN or high > PIXEL_MAX:
        raise TfedgeError(f"{what} range [{low:g}, {high:g}] is outside [0, 255]: tfedge models "
                          "take raw pixels (they rescale themselves)")
    if len(images) > 1 and high <= _NORMALISED_MAX:
        raise TfedgeError(f"{what} look normalised (all values <= {_NORMALISED_MAX:g}): pass raw "
                          "pixels in [0, 255]; tfedge models rescale themselves")
    return images


# --------------------------------------------------------------------------- conversion


def _layer_names(model) -> set[str]:
    """Names of every layer inside ``model`` (nested models included), not the model's own."""
    names: set[str] = set()
    stack = list(getattr(model, "layers", []) or [])
    while stack:
        layer = stack.pop()
        names.add(layer.name)
        stack.extend(getattr(layer, "layers", []) or [])
    return names


def _layer_from_tensor_name(name: str, known: set[str]) -> Optional[str]:
    """The Keras layer a converter tensor/location name comes from, when it can be told.

    Converter names look like ``model_1/layer_1/Op`` (tracing appends ``_1``...).
    """
    for part in name.split("/"):
        part = part.split("@")[0].split(";")[0]
        if part in known:
            return part
        stripped = re.sub(r"_\d+$", "", part)
        if stripped in known:
            return stripped
    return None


def _describe_converter_error(exc: Exception, model) -> str:
    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    ops += sorted(set(re.findall(r"'(tfl?\.\w+)' op (?:is not|failed|has no)", text)) - set(ops))
    known = _layer_names(model)
    layers = []
    for loc in re.findall(r'fused\["[^"]*", "([^"]+)"\]', text):
        layer = _layer_from_tensor_name(loc, known)
        if layer and layer not in layers:
            layers.append(layer)
    first = next((line.strip() for line in text.splitlines() if "error:" in line), "")
    first = re.sub(r"^.*error: (loc\(.*?\)\)\): )?", "", first)[:200] if first else \
        (text.strip().splitlines() or [exc.__class__.__name__])[0][:200]
    where = []
    if layers:
        where.append(f"layer {', '.join(layers)}")
    if ops:
        where.append(f"op {', '.join(ops)}")
    place = f" in {' / '.join(where)}" if where else ""
    return (f"int8 conversion of model {model.name!r} failed{place} ({first}): replace that layer "
            "with int8-convertible ones (Conv2D, DepthwiseConv2D, Dense, BatchNormalization, "
            "ReLU/ReLU6, pooling, Add, Resizing) and convert again")


def _undelegated_interpreter(tflite_bytes: bytes):
    """An interpreter without XNNPACK, whose op list is the model's own ops."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        from .litert import load_interpreter

        return load_interpreter(tflite_bytes)
    interpreter = Interpreter(
        model_content=tflite_bytes,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def _float_computation(tflite_bytes: bytes, model) -> str:
    """Where a converted model still computes in float ('' when it is fully integer)."""
    interpreter = _undelegated_interpreter(tflite_bytes)
    known = _layer_names(model)
    layers: list[str] = []
    tensors: list[str] = []
    for details in interpreter.get_tensor_details():
        if np.dtype(details["dtype"]).name not in _FLOAT_TENSOR_DTYPES:
            continue
        layer = _layer_from_tensor_name(details["name"], known)
        if layer is not None and layer not in layers:
            layers.append(layer)
        tensors.append(details["name"])
    if not tensors:
        return ""
    ops: list[str] = []
    for op in getattr(interpreter, "_get_ops_details", lambda: [])():
        results = [np.dtype(t).name for t in op.get("result_types", [])]
        name = op.get("op_name", "")
        if any(r in _FLOAT_TENSOR_DTYPES for r in results) and name not in _CAST_OPS \
                and name not in ops:
            ops.append(name)
    where = (f"layer {', '.join(layers[:5])}" if layers
             else f"tensor {', '.join(tensors[:3])}")
    return where + (f" (ops {', '.join(ops[:5])})" if ops else "")


BatchFactory = Callable[[], Iterable[np.ndarray]]


def _int8_converter(model, representative: Callable[[], Iterator[list[np.ndarray]]],
                   io_dtype: str):
    """A ``TFLiteConverter`` for full-integer int8 with ``io_dtype`` input and output.

    Shared by post-training quantisation and the QAT child process (which
    passes a tf-keras model): builtin int8 ops only, so the result runs on
    every LiteRT runtime.
    """
    import tensorflow as tf

    tf_dtype = {"int8": tf.int8, "uint8": tf.uint8}[io_dtype]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf_dtype
    converter.inference_output_type = tf_dtype
    return converter


def _convert(model, batches: BatchFactory, io_dtype: str) -> bytes:
    """Full-integer conversion with calibration batches from ``batches()`` (already checked)."""
    def representative() -> Iterator[list[np.ndarray]]:
        first = True
        for batch in batches():
            batch = np.asarray(batch, dtype=np.float32)
            if first:
                batch = _pin_input_range(batch)
                first = False
            for i in range(len(batch)):
                yield [batch[i:i + 1]]

    converter = _int8_converter(model, representative, io_dtype)
    try:
        # Keras' export prints "Saved artifact at ..." and a TensorSpec per captured variable on
        # stdout (where CLIs put their JSON), the converter its own lines from C++: all hidden
        # unless debugging (tfedge._quiet; replayed to stderr if the conversion fails).
        # TensorFlow's SavedModel export and AutoGraph files go to a folder of ours, removed
        # afterwards (and by the next run, after a kill): every caller of convert_to_int8.
        with private_tempdir("convert"), quiet_tensorflow(), \
                contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # Expected: the input's range comes from calibration, not from given statistics.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            data = converter.convert()
    except TfedgeError:
        raise
    except Exception as exc:  # ConverterError, and errors raised while tracing the model
        raise ConversionError(_describe_converter_error(exc, model)) from exc
    floats = _float_computation(data, model)
    if floats:
        raise ConversionError(
            f"int8 conversion of model {model.name!r} left float computation in "
            f"{floats}: TFLite has no int8 "
            "kernel for it; replace that layer with int8-convertible ones (Conv2D, "
            "DepthwiseConv2D, Dense, BatchNormalization, ReLU/ReLU6, pooling, Add, Resizing)")
    return data


def _model_resolution(model) -> int:
    from ._train import model_resolution

    return model_resolution(model)


def convert_to_int8(model, representative: np.ndarray, *, io_dtype: str = "int8",
                    num_calibration: Optional[int] = None) -> bytes:
    """Convert a Keras classifier to a full-integer int8 ``.tflite`` model (its bytes).

    Args:
        model: a Keras model taking raw ``[0, 255]`` float pixels ``(1, R, R, 3)``.
        representative: ``(N, R, R, 3)`` float32 raw pixels for calibration,
            preprocessed exactly as at evaluation.
        io_dtype: ``'int8'`` (input = pixel - 128) or ``'uint8'`` (input = pixel).
        num_calibration: use only the first this many images (None: all).
    """
    _check_io_dtype(io_dtype)
    resolution = _model_resolution(model)
    if num_calibration is not None:
        if isinstance(num_calibration, bool) or not isinstance(num_calibration, (int, np.integer)) \
                or num_calibration < 1:
            raise TfedgeError(f"num_calibration must be a whole number >= 1, got "
                              f"{num_calibration!r}")
        representative = np.asarray(representative)[:num_calibration]
    images = _check_pixels(representative, resolution, "representative images")
    return _convert(model, lambda: [images], io_dtype)
