"""Keras classifier -> checked int8 TFLite: post-training or quantisation-aware, compared with float.

The converter setup and the int8 contract (raw ``[0, 255]`` pixels in, every
tensor integer) are :mod:`tfedge._int8`'s, shared with :mod:`tfedge.qat`; this
module chooses PTQ or QAT, compares the int8 model with the float one on a
check split and writes the bundle. Importing it does not import TensorFlow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from ._errors import ModelConfigError, TfedgeError
from ._io import private_tempdir
from .data._types import FileSplit, ImageSplit, Split
from ._int8 import (DEFAULT_BATCH_SIZE, DEFAULT_CALIBRATION_SIZE, DEFAULT_CHECK_SIZE,  # noqa: F401
                    DEFAULT_TOLERANCE_POINTS, IO_DTYPES, _POINTS_PER_UNIT, ConversionCheckError,
                    ConversionError, _check_io_dtype, _check_pixels, _convert, _float_computation,
                    _model_resolution, check_tolerance, convert_to_int8)

__all__ = [
    "IO_DTYPES", "DEFAULT_CALIBRATION_SIZE", "DEFAULT_CHECK_SIZE", "DEFAULT_TOLERANCE_POINTS",
    "ConversionError", "ConversionCheckError", "convert_to_int8", "quantize_int8",
    "compare_float_int8", "convert_classifier", "convert_classifier_bundle", "check_tolerance",
]

log = logging.getLogger(__name__)


@private_tempdir("convert")  # TensorFlow's SavedModel export and AutoGraph files: ours to clean
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
    from .data._tfdata import make_dataset

    for images, labels in make_dataset(split, resolution=resolution, batch_size=batch_size,
                                       training=False):
        yield np.asarray(images, dtype=np.float32), np.asarray(labels)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TfedgeError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


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


@private_tempdir("convert")
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
    (:func:`tfedge.data._tfdata.make_dataset` with ``training=False``).

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
    problem = check_tolerance(metrics["float_top1"], metrics["int8_top1"], tolerance_points,
                              count=metrics["count"])
    if problem:
        raise ConversionCheckError(problem, metrics)
    return data, metrics


@private_tempdir("convert")
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
    from ._train import ends_in_softmax, read_sidecar
    from .bundle import StageEntry, write_bundle
    from .litert import TfliteModel

    sidecar: dict[str, Any] = {}
    if isinstance(model, (str, os.PathLike)):
        sidecar = read_sidecar(model)
    sidecar_names = sidecar.get("class_names")
    keras_model = _load_model(model)
    outputs = int(keras_model.output_shape[-1])
    if labels is None:
        labels = sidecar_names if sidecar_names else list(check.class_names)
        if sidecar_names and tuple(sidecar_names) != tuple(check.class_names):
            info = sidecar.get("dataset_info") or {}
            where = (f" (its sidecar names the folder {info['path']!r}: --data {info['path']})"
                     if info.get("kind") == "folders" and info.get("path") else "")
            raise TfedgeError(f"the model was trained on classes {list(sidecar_names)[:5]}... but "
                              f"the dataset has {list(check.class_names)[:5]}...: convert with "
                              f"the dataset the model was trained on{where}")
    labels = [str(label) for label in labels]
    if ends_in_softmax(keras_model):
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
