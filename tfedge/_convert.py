"""Keras classifier -> full-integer int8 TFLite, checked against the float model.

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
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from ._errors import ModelConfigError, TfedgeError
from .data._types import FileSplit, ImageSplit, Split

__all__ = [
    "IO_DTYPES", "DEFAULT_CALIBRATION_SIZE", "DEFAULT_CHECK_SIZE", "DEFAULT_TOLERANCE_POINTS",
    "ConversionError", "ConversionCheckError", "convert_to_int8", "quantize_int8",
    "compare_float_int8", "convert_classifier", "convert_classifier_bundle", "check_tolerance",
]

log = logging.getLogger(__name__)

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


def check_tolerance(float_top1: float, int8_top1: float, tolerance_points: float) -> Optional[str]:
    """The failure message if int8 top-1 is more than ``tolerance_points`` below float, else None."""
    drop = (float_top1 - int8_top1) * _POINTS_PER_UNIT
    # A tiny epsilon keeps a drop of exactly the tolerance (up to float error) a pass.
    if drop <= tolerance_points + 1e-9:
        return None
    return (f"int8 top-1 {int8_top1:.3f} is {drop:.1f} points below float {float_top1:.3f} "
            f"(tolerance {tolerance_points:g}): use more calibration images "
            "(--calibration-size), or raise --tolerance")


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
        # Keras' export prints "Saved artifact at ..." on stdout, where CLIs put their JSON.
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
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


def quantize_int8(model, representative: np.ndarray, *, io_dtype: str = "int8",
                  qat=None, qat_examples: Optional[tuple[np.ndarray, np.ndarray]] = None,
                  qat_unsupported: Optional[str] = None) -> tuple[bytes, dict[str, Any]]:
    """Full-integer ``.tflite`` bytes by post-training quantisation or, with ``qat``, QAT.

    ``qat``: a :class:`tfedge.qat.QatConfig` (None: post-training only);
    ``qat_examples``: ``(images, labels)`` to fine-tune on, raw pixels as the
    model sees them in deployment; ``qat_unsupported``: a reason the caller
    already knows QAT does not apply. A model QAT cannot handle is quantised
    post-training only when ``qat.fallback`` allows it; otherwise the error
    names the reason. Returns the bytes and a record: ``method`` ('ptq' or
    'qat'), plus ``qat_skipped`` (the reason) after a fallback.
    """
    if qat is None:
        return convert_to_int8(model, representative, io_dtype=io_dtype), {"method": "ptq"}
    from .qat import qat_int8, qat_missing_packages, qat_support_problem

    missing = qat_missing_packages()  # before the fallback: a missing install is never skipped
    if missing:
        raise TfedgeError(missing)
    problem = qat_unsupported or qat_support_problem(model)
    if problem:
        if not qat.fallback:
            raise TfedgeError(f"{problem}: pass --qat-fallback to quantise it post-training "
                              "instead")
        log.warning("QAT skipped for %s (%s); post-training quantisation instead", model.name,
                    problem)
        return (convert_to_int8(model, representative, io_dtype=io_dtype),
                {"method": "ptq", "qat_skipped": problem})
    if qat_examples is None:
        raise TfedgeError("quantisation-aware training needs labelled examples (qat_examples)")
    data, record = qat_int8(model, qat_examples[0], qat_examples[1], representative,
                            io_dtype=io_dtype, config=qat)
    floats = _float_computation(data, model)
    if floats:
        raise ConversionError(f"QAT conversion of model {model.name!r} left float computation "
                              f"in {floats}")
    return data, record


# --------------------------------------------------------------------------- comparison


class _Comparison:
    """Accumulates float and int8 predictions batch by batch."""

    def __init__(self, model, tflite_bytes: bytes):
        from .litert import TfliteModel

        self.model = model
        self.tflite = TfliteModel(tflite_bytes)
        self.float_logits: list[np.ndarray] = []
        self.int8_logits: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        images = np.asarray(images, dtype=np.float32)
        self.float_logits.append(np.asarray(self.model(images, training=False), np.float32))
        self.int8_logits.append(self.tflite.run(images))
        self.labels.append(np.asarray(labels))

    def result(self) -> dict[str, Any]:
        if not self.labels:
            raise TfedgeError("no images to compare the float and int8 models on: pass a "
                              "non-empty check split")
        f = np.concatenate(self.float_logits)
        q = np.concatenate(self.int8_logits)
        y = np.concatenate(self.labels).astype(np.int64)
        f_pred, q_pred = f.argmax(axis=1), q.argmax(axis=1)
        err = np.abs(f - q)
        spec = self.tflite.output_spec
        return {
            "float_top1": float(np.mean(f_pred == y)),
            "int8_top1": float(np.mean(q_pred == y)),
            "agreement": float(np.mean(f_pred == q_pred)),
            "max_abs_logit_error": float(err.max()),
            "mean_abs_logit_error": float(err.mean()),
            "output_scale": float(spec.scale),
            "count": int(len(y)),
        }


def compare_float_int8(model, tflite_bytes: bytes, images: np.ndarray, labels: np.ndarray, *,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """Top-1 of the Keras model and of its int8 conversion on the same images.

    ``images``: ``(N, R, R, 3)`` raw float pixels; ``labels``: ``(N,)``.
    Returns ``float_top1``, ``int8_top1``, ``agreement`` (same argmax),
    ``max_abs_logit_error`` / ``mean_abs_logit_error`` (dequantised int8
    logits vs float logits), ``output_scale`` (one int8 step of the output)
    and ``count``.
    """
    resolution = _model_resolution(model)
    images = _check_pixels(images, resolution, "check images")
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise TfedgeError(f"labels must have shape ({len(images)},), got {labels.shape}")
    comparison = _Comparison(model, tflite_bytes)
    for start in range(0, len(images), batch_size):
        comparison.add(images[start:start + batch_size], labels[start:start + batch_size])
    return comparison.result()


# --------------------------------------------------------------------------- from splits


def _subset(split: Split, count: int, seed: int) -> Split:
    """``count`` examples drawn without replacement (all of them if fewer), in split order.

    A random draw, because class folders list examples class by class.
    """
    n = len(split)
    if count >= n:
        return split
    idx = np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))
    if isinstance(split, FileSplit):
        return split.subset(idx)
    return ImageSplit(split.images[idx], split.labels[idx],
                      None if split.boxes is None else split.boxes[idx], split.class_names)


def _split_batches(split: Split, resolution: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of (raw float pixels, labels) preprocessed exactly as for evaluation."""
    from .data._pipeline import make_dataset

    for images, labels in make_dataset(split, resolution=resolution, batch_size=batch_size,
                                       training=False):
        yield np.asarray(images, dtype=np.float32), np.asarray(labels)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TfedgeError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _ends_in_softmax(model) -> bool:
    """Whether the model's output is a softmax (probabilities) rather than logits."""
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    if last is None:
        return False
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def _load_model(model):
    if isinstance(model, (str, os.PathLike)):
        from ._train import load_classifier

        return load_classifier(model)
    return model


def _check_settings(io_dtype: str, calibration_size: Any, check_size: Any, batch_size: Any,
                    tolerance_points: Any) -> tuple[int, int, int]:
    """Validate the conversion settings every converter takes; return the three counts."""
    _check_io_dtype(io_dtype)
    counts = (_positive(calibration_size, "calibration_size"), _positive(check_size, "check_size"),
              _positive(batch_size, "batch_size"))
    if isinstance(tolerance_points, bool) or not isinstance(tolerance_points, (int, float)) \
            or not np.isfinite(tolerance_points) or tolerance_points < 0:
        raise TfedgeError(f"tolerance must be a number of points >= 0, got {tolerance_points!r}")
    return counts


def convert_classifier(
    model,
    calibration: Split,
    check: Split,
    *,
    io_dtype: str = "int8",
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    check_size: int = DEFAULT_CHECK_SIZE,
    tolerance_points: float = DEFAULT_TOLERANCE_POINTS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    qat=None,
) -> tuple[bytes, dict[str, Any]]:
    """Convert a classifier to int8 and check its accuracy on a held-out split.

    ``model`` is a Keras model or a ``.keras`` path. Calibration uses
    ``calibration_size`` random images of ``calibration`` (the training
    split), the check ``check_size`` random images of ``check`` (the
    validation split), both resized exactly as evaluation does
    (:func:`tfedge.data._pipeline.make_dataset` with ``training=False``).

    With ``qat`` (a :class:`tfedge.qat.QatConfig`), the model is fine-tuned
    with fake quantisation on ``qat.images`` other images of ``calibration``
    first (see :func:`quantize_int8`); the float side of the check stays the
    model as given.

    Returns the ``.tflite`` bytes and the metrics of :func:`compare_float_int8`
    plus ``calibration_images``, ``io_dtype``, ``tolerance_points``,
    ``top1_drop_points`` and ``quantization`` (how it was quantised). Raises :class:`ConversionCheckError` (with
    ``.metrics``) when int8 top-1 is more than ``tolerance_points`` below float.
    """
    calibration_size, check_size, batch_size = _check_settings(
        io_dtype, calibration_size, check_size, batch_size, tolerance_points)
    model = _load_model(model)
    resolution = _model_resolution(model)
    outputs = int(model.output_shape[-1])
    for what, split in (("calibration", calibration), ("check", check)):
        if len(split) == 0:
            raise TfedgeError(f"the {what} split is empty: check the dataset")
        if split.num_classes > outputs:
            raise ModelConfigError(f"the {what} split has {split.num_classes} classes but model "
                                   f"{model.name!r} outputs {outputs}: use the dataset it was "
                                   "trained on")

    cal = _subset(calibration, calibration_size, seed)
    log.info("calibrating on %d images at %dx%d (%s input/output)", len(cal), resolution,
             resolution, io_dtype)

    def cal_batches() -> Iterator[np.ndarray]:
        for images, _ in _split_batches(cal, resolution, batch_size):
            yield _check_pixels(images, resolution, "calibration images")

    if qat is None:
        data, quantization = _convert(model, cal_batches, io_dtype), {"method": "ptq"}
    else:
        examples = [batch for batch in _split_batches(
            _subset(calibration, qat.images, seed + 2), resolution, batch_size)]
        data, quantization = quantize_int8(
            model, np.concatenate(list(cal_batches())), io_dtype=io_dtype, qat=qat,
            qat_examples=(np.concatenate([b[0] for b in examples]),
                          np.concatenate([b[1] for b in examples])))
    log.info("converted: %d bytes; checking on %d images", len(data), min(check_size, len(check)))
    comparison = _Comparison(model, data)
    for images, labels in _split_batches(_subset(check, check_size, seed + 1), resolution,
                                          batch_size):
        comparison.add(images, labels)
    metrics = comparison.result()
    metrics.update({
        "calibration_images": len(cal), "io_dtype": io_dtype,
        "tolerance_points": float(tolerance_points),
        "top1_drop_points": (metrics["float_top1"] - metrics["int8_top1"]) * _POINTS_PER_UNIT,
        "quantization": quantization,
    })
    log.info("float top-1 %.4f, int8 top-1 %.4f, agreement %.4f (%d images)",
             metrics["float_top1"], metrics["int8_top1"], metrics["agreement"], metrics["count"])
    problem = check_tolerance(metrics["float_top1"], metrics["int8_top1"], tolerance_points)
    if problem:
        raise ConversionCheckError(problem, metrics)
    return data, metrics


def convert_classifier_bundle(
    model,
    calibration: Split,
    check: Split,
    output: Union[str, os.PathLike],
    *,
    labels: Optional[Sequence[str]] = None,
    name: Optional[str] = None,
    zip_path: Union[str, os.PathLike, None] = None,
    extra_metrics: Optional[Mapping[str, Any]] = None,
    **convert_kwargs: Any,
) -> tuple[Path, dict[str, Any]]:
    """Convert a classifier (see :func:`convert_classifier`) into a one-stage bundle.

    ``labels`` default to the ``class_names`` in the model's sidecar (when
    ``model`` is a path), else the check split's class names; they must
    match the model's output count. Returns the bundle folder and the stage's
    metrics. Nothing is written when the accuracy check fails.
    """
    from ._macs import count_macs
    from ._train import read_sidecar
    from .bundle import StageEntry, write_bundle
    from .litert import TfliteModel

    sidecar_names = None
    if isinstance(model, (str, os.PathLike)):
        sidecar_names = read_sidecar(model).get("class_names")
    keras_model = _load_model(model)
    outputs = int(keras_model.output_shape[-1])
    if labels is None:
        labels = sidecar_names if sidecar_names else list(check.class_names)
        if sidecar_names and tuple(sidecar_names) != tuple(check.class_names):
            raise TfedgeError(f"the model was trained on classes {list(sidecar_names)[:5]}... but "
                              f"the dataset has {list(check.class_names)[:5]}...: convert with "
                              "the dataset the model was trained on")
    labels = [str(label) for label in labels]
    if _ends_in_softmax(keras_model):
        raise ModelConfigError(f"model {keras_model.name!r} ends in a softmax: bundles hold "
                               "logits (the cascade applies softmax itself); remove the final "
                               "softmax (e.g. Dense(n) with no activation) and convert again")
    if len(labels) != outputs:
        raise TfedgeError(f"model {keras_model.name!r} outputs {outputs} classes but there are "
                          f"{len(labels)} labels: convert with the dataset it was trained on")

    report = count_macs(keras_model)  # before converting: a model it cannot count fails fast
    data, metrics = convert_classifier(keras_model, calibration, check, **convert_kwargs)
    tflite = TfliteModel(data)
    stage = StageEntry(name=name or keras_model.name, resolution=_model_resolution(keras_model),
                       macs=int(report.macs), input=tflite.input_spec, output=tflite.output_spec,
                       criterion="max_softmax", threshold=None, accumulate_weight=0.0,
                       metrics={**metrics, "params": int(report.params)})
    pipeline = {"top1": metrics["int8_top1"], "float_top1": metrics["float_top1"],
                "mean_macs": int(report.macs), "check_images": metrics["count"]}
    pipeline.update(extra_metrics or {})
    path = write_bundle(output, labels=labels, stages=[(stage, data)], metrics=pipeline,
                        zip_path=zip_path)
    return path, {**metrics, "macs": int(report.macs), "params": int(report.params),
                  "bytes": len(data), "name": stage.name}
