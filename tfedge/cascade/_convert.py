"""A calibrated cascade -> one int8 deployment bundle, checked against the float cascade.

:func:`convert_cascade_bundle` converts the predictor and every stage with
:func:`tfedge.convert_to_int8` (full integer, input range pinned to [0, 255]):

* the predictor is calibrated on whole training images at its resolution;
* each stage on the crops the *int8* predictor cuts from the same training
  images, resized to the stage's resolution: what the stage sees deployed
  (:func:`tfedge.cascade._int8.device_crops`);
* with a refiner (``refiner=``, a ``tfedge predictor refine`` file refining
  the cascade's predictor; the bundle is then manifest version 2), the
  refiner is calibrated on its own input windows: those around the *int8*
  predictor's boxes on the calibration images (and, for later passes, around
  the float refiner's boxes after the pass before); the stages then calibrate
  on the crops at the int8 *refined* boxes, and both pipelines crop at
  refined boxes;
* with ``threshold_split`` (the split the thresholds were calibrated on), the
  exit thresholds are calibrated again, with the same objective, on the int8
  pipeline's scores of that split (:func:`tfedge.cascade._int8.recalibrate_thresholds`):
  the bundle holds thresholds for the scores the device computes.

It then runs both pipelines on held-out images: the float one (Keras
predictor, Keras stages) and the int8 one as the device runs it (int8
predictor -> decoded box -> crop of the full image -> int8 stages -> the
calibrated thresholds of ``docs/bundle.md``), through
:func:`tfedge.runtime.evaluate.evaluate_models`, the TensorFlow-free route
every bundle evaluation takes. When the int8 cascade's top-1
is more than ``tolerance_points`` below the float cascade's, nothing is
written and :class:`~tfedge.ConversionCheckError` says so. The bundle's
manifest carries the thresholds and both pipelines' figures.

:func:`evaluate_bundle` runs a written bundle's int8 cascade on a split,
with the same code (:func:`tfedge.runtime.evaluate.evaluate_bundle`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..data._types import Split
from ..runtime.boxes import HEATMAP_BOX_FORMAT
from ..runtime.decision import CascadeOutcome, score_exits, simulate_cascade
from ..runtime.errors import TfedgeError
from ._cascade import CascadeSpec
from ._evaluate import SplitLogits, _check_model, compute_stage_logits, stage_logits_on_crops
from ._int8 import device_crops, operating_point, recalibrate_thresholds

__all__ = ["convert_cascade_bundle", "run_int8_cascade", "evaluate_bundle", "Int8Refiner",
           "threshold_split_of"]

#: tfedge.crop predictors output (cy, cx, h, w); geometry.decode_boxes turns it into corners.
#: Heat-head predictors are converted in their export form (predictor_export_model: heat
#: maps out, box format heatmap_cyxhw), so no int8 softmax runs on the device.
PREDICTOR_BOX_FORMAT = "cyxhw_normalized"

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
_POINTS = 100.0


def _whole_images(split: Split, resolution: int, batch_size: int) -> list[np.ndarray]:
    from ..data._tfdata import make_dataset

    return [np.asarray(images, np.float32) for images, _ in
            make_dataset(split, resolution=resolution, batch_size=batch_size, training=False)]


def _crops(split: Split, resolution: int, boxes: Optional[np.ndarray], crop: Any,
           batch_size: int) -> list[np.ndarray]:
    """Preprocessed batches as a stage sees them: crops at ``boxes``, or whole images."""
    if boxes is None:
        return _whole_images(split, resolution, batch_size)
    from ..crop import make_crop_dataset

    return [np.asarray(images, np.float32) for images, _ in
            make_crop_dataset(split, resolution=resolution, batch_size=batch_size, boxes=boxes,
                              crop=crop)]


@dataclass(frozen=True)
class Int8Refiner:
    """A converted refiner and how the device runs it (a bundle's ``refiner`` entry)."""

    model: Any                    # tfedge.TfliteModel
    resolution: int
    macs: int                     # one pass
    window: Any                   # tfedge.runtime.geometry.CropConfig (square, no scales)
    passes: int
    box_format: str

    def entry(self, metrics: Optional[Mapping[str, Any]] = None) -> Any:
        from ..runtime.bundle import RefinerEntry

        return RefinerEntry(resolution=int(self.resolution), macs=int(self.macs),
                            input=self.model.input_spec, outputs=self.model.output_specs,
                            window=self.window.to_dict(), passes=int(self.passes),
                            box_format=self.box_format, metrics=dict(metrics or {}))


def run_int8_cascade(split: Split, *, stages: Sequence[Any], resolutions: Sequence[int],
                     criteria: Sequence[str], weights: Sequence[float],
                     thresholds: Sequence[Optional[float]], stage_macs: Sequence[int],
                     predictor: Any = None, predictor_resolution: int = 0,
                     predictor_macs: int = 0, crop: Any = None,
                     batch_size: int = DEFAULT_BATCH_SIZE,
                     box_format: Optional[str] = None,
                     refiner: Optional[Int8Refiner] = None) -> tuple[SplitLogits, CascadeOutcome]:
    """The int8 cascade on ``split`` as a device runs it (``stages``/``predictor``:
    :class:`tfedge.TfliteModel`), before any bundle is written.

    The models are described by manifest entries and run through
    :func:`tfedge.runtime.evaluate.evaluate_models`, the one route every
    bundle evaluation takes, so the figures recorded here are what
    :func:`evaluate_bundle` gives on the written bundle. ``box_format``
    defaults to the converter's choice (two predictor outputs: heat maps).
    ``refiner``: the predictor's converted refiner, run before the crop.
    ``batch_size`` is unused (models run image by image) and kept for callers.
    """
    del batch_size
    result = _run_int8(split, stages=stages, resolutions=resolutions, criteria=criteria,
                       weights=weights, thresholds=thresholds, stage_macs=stage_macs,
                       predictor=predictor, predictor_resolution=predictor_resolution,
                       predictor_macs=predictor_macs, crop=crop, box_format=box_format,
                       refiner=refiner)
    return _outcome(result, stage_macs, _locator_macs(predictor_macs, refiner))


def _locator_macs(predictor_macs: int, refiner: Optional[Int8Refiner]) -> int:
    """MACs of finding the box: the predictor, plus every refiner pass."""
    return int(predictor_macs) + (refiner.passes * int(refiner.macs) if refiner else 0)


def _run_int8(split: Split, *, stages: Sequence[Any], resolutions: Sequence[int],
              criteria: Sequence[str], weights: Sequence[float],
              thresholds: Sequence[Optional[float]], stage_macs: Sequence[int],
              predictor: Any = None, predictor_resolution: int = 0, predictor_macs: int = 0,
              crop: Any = None, box_format: Optional[str] = None,
              refiner: Optional[Int8Refiner] = None) -> Any:
    """:func:`run_int8_cascade`'s :class:`~tfedge.runtime.evaluate.BundleEvaluation`."""
    from ..runtime.bundle import PredictorEntry, StageEntry

    entries = [StageEntry(name=f"stage{k}", resolution=int(res), macs=int(macs),
                          input=model.input_spec, output=model.output_specs[0],
                          criterion=criterion, threshold=threshold, accumulate_weight=weight)
               for k, (model, res, criterion, weight, threshold, macs) in enumerate(
                   zip(stages, resolutions, criteria, weights, thresholds, stage_macs))]
    pred_entry = None
    if predictor is not None:
        if box_format is None:
            box_format = (HEATMAP_BOX_FORMAT if len(predictor.output_specs) == 2
                          else PREDICTOR_BOX_FORMAT)
        pred_entry = PredictorEntry(resolution=int(predictor_resolution),
                                    macs=int(predictor_macs), input=predictor.input_spec,
                                    outputs=predictor.output_specs,
                                    crop=crop.to_dict() if crop is not None else {},
                                    box_format=box_format)
    if refiner is not None and predictor is None:
        raise TfedgeError("a refiner refines the predictor's box: pass the predictor too")
    return _evaluate_models(split, entries, list(stages), pred_entry, predictor, refiner)


def evaluate_bundle(bundle: Any, split: Split, *, num_threads: int = 1
                    ) -> tuple[SplitLogits, CascadeOutcome]:
    """Run a loaded bundle's (:func:`tfedge.load_bundle`) int8 cascade on ``split``.

    The training side's form of :func:`tfedge.runtime.evaluate.evaluate_bundle`
    (the same route, the same numbers), in the training side's types: per-stage
    logits and a :class:`CascadeOutcome`.
    """
    from ..runtime.evaluate import evaluate_bundle as evaluate_on_runtime

    return _outcome(evaluate_on_runtime(bundle, split, num_threads=num_threads),
                    [s.macs for s in bundle.stages], bundle.locator_macs)


def _evaluate_models(split: Split, stages: Sequence[Any], models: Sequence[Any],
                     predictor: Any, predictor_model: Any,
                     refiner: Optional[Int8Refiner] = None) -> Any:
    from ..runtime.evaluate import split_images, evaluate_models

    images, labels, count, _ = split_images(split)
    return evaluate_models(images, stages=stages, stage_models=models, predictor=predictor,
                           predictor_model=predictor_model, labels=labels, count=count,
                           refiner=refiner.entry() if refiner is not None else None,
                           refiner_model=refiner.model if refiner is not None else None)


def _refined_device_crops(split: Split, resolutions: Sequence[int], predictor: Any,
                          refiner: Int8Refiner, crop: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`tfedge.cascade._int8.device_crops` with the refiner: the float32 inputs the
    device feeds each stage, cut at the int8 *refined* boxes (the device's own route,
    :func:`tfedge.runtime.evaluate.locate_box`)."""
    from ..runtime.bundle import PredictorEntry
    from ..runtime.evaluate import locate_box, split_images
    from ..runtime.geometry import crop_window, resize_bilinear

    from ._int8 import predictor_box_format

    entry = PredictorEntry(resolution=int(predictor.input_spec.shape[1]), macs=0,
                           input=predictor.input_spec, outputs=predictor.output_specs,
                           crop=crop.to_dict(), box_format=predictor_box_format(predictor))
    ref_entry = refiner.entry()
    images, _, _, _ = split_images(split)
    out: list[list[np.ndarray]] = [[] for _ in resolutions]
    boxes = []
    for image in images:
        image = np.asarray(image)
        _, box = locate_box(image, entry, predictor, ref_entry, refiner.model)
        boxes.append(box)
        y0, x0, y1, x1 = (int(v) for v in crop_window(box, *image.shape[:2], crop))
        for arr, res in zip(out, resolutions):
            arr.append(resize_bilinear(image[y0:y1, x0:x1], int(res), int(res)))
    crops = [np.stack(a).astype(np.float32) if a else np.zeros((0, int(r), int(r), 3), np.float32)
             for a, r in zip(out, resolutions)]
    return np.asarray(boxes, np.float32).reshape(-1, 4), crops


def _load_refiner(path: Union[str, os.PathLike], spec: CascadeSpec) -> Any:
    """The :class:`~tfedge.crop.RefinedPredictor` of refiner file ``path`` given to convert
    a cascade, checked to refine the cascade's own predictor file."""
    from ._cascade import load_refiner_of

    if spec.predictor is None:
        raise TfedgeError("a refiner refines the predictor's box, but the cascade has no "
                          "predictor: build the cascade with --predictor, or drop --refiner")
    return load_refiner_of(spec, path, fix="pass a refiner 'tfedge predictor refine' wrote for "
                                           "the cascade's predictor")


def _convert_refiner(pair: Any, cal: Split, predictor: Any, *, io_dtype: str, qat: Any,
                     batch_size: int) -> tuple[bytes, dict[str, Any], int]:
    """The int8 refiner, calibrated on the windows it sees deployed.

    Pass 1 sees windows around the *int8* predictor's boxes; pass ``k + 1``
    windows around the boxes after pass ``k`` (the float refiner's, on the
    windows cut the way the training side cuts them,
    :func:`tfedge.crop._crop_datasets.window_crops`). Returns the bytes, the
    quantisation record and the number of calibration windows.
    """
    from .._convert import quantize_int8
    from ..crop import predict_boxes, predictor_export_model, predictor_spec_of
    from ..crop._crop_datasets import window_crops
    from ..data._types import ImageSplit
    from ..runtime.refine import boxes_from_window, merge_refined

    from ._int8 import device_boxes

    resolution = predictor_spec_of(pair.refiner).resolution
    boxes = device_boxes(cal, predictor)
    windows_seen = []
    for look in range(pair.passes):
        crops, windows = window_crops(cal, boxes, resolution=resolution, window=pair.window,
                                      batch_size=batch_size)
        windows_seen.append(crops)
        if look + 1 < pair.passes:
            inner = predict_boxes(pair.refiner, ImageSplit(
                crops, np.zeros(len(crops), np.int32), None, tuple(cal.class_names)),
                batch_size=batch_size)
            boxes = merge_refined(boxes, boxes_from_window(inner, windows), windows)
    representative = np.concatenate(windows_seen).astype(np.float32)
    data, quantization = quantize_int8(predictor_export_model(pair.refiner), representative,
                                       io_dtype=io_dtype, qat=qat,
                                       qat_unsupported=_PREDICTOR_NO_QAT.replace(
                                           "foreground predictor", "refiner"))
    return data, quantization, len(representative)


def _int8_thresholds(spec: CascadeSpec, split: Split, stages: Sequence[Any], predictor: Any,
                     crop: Any, refiner: Optional[Int8Refiner] = None
                     ) -> tuple[tuple[Optional[float], ...], Optional[dict[str, Any]]]:
    """Thresholds for the int8 pipeline's scores: ``spec``'s objective solved on ``split``.

    Returns the thresholds and a record of both pipelines' figures on
    ``split`` (the float ones from ``spec.calibration``); the float
    thresholds and no record when the spec has no objective to solve again.
    """
    data, float_thresholds_out = run_int8_cascade(
        split, stages=stages, resolutions=[s.resolution for s in spec.stages],
        criteria=spec.criteria, weights=spec.weights, thresholds=spec.thresholds,
        stage_macs=spec.stage_macs, predictor=predictor,
        predictor_resolution=spec.predictor.resolution if spec.predictor else 0,
        predictor_macs=_own_predictor_macs(spec), crop=crop, refiner=refiner)
    result = recalibrate_thresholds(spec, data.logits, data.labels)
    if result is None:
        log.warning("the cascade records no calibration objective: the bundle keeps its float "
                    "thresholds")
        return tuple(spec.thresholds), None
    log.info("int8 thresholds %s (float %s): int8 top-1 %.4f at %.0f MACs on %d calibration-"
             "split images (%.4f with the float thresholds)", result.thresholds,
             spec.thresholds, result.val_top1, result.val_expected_macs, result.count,
             float_thresholds_out.top1)
    if not result.feasible:
        log.warning("the int8 cascade cannot reach the float calibration's %s on the "
                    "calibration split; its thresholds are the closest (top-1 %.4f at %.0f MACs)",
                    "accuracy target" if result.mode == "accuracy" else "MAC budget",
                    result.val_top1, result.val_expected_macs)
    calib = dict(spec.calibration or {})
    record = {**result.to_dict(), "split": calib.get("split"),
              "float_val_top1": calib.get("val_top1"),
              "float_val_expected_macs": calib.get("val_expected_macs"),
              "float_val_exit_fractions": calib.get("val_exit_fractions"),
              "int8_with_float_thresholds": operating_point(float_thresholds_out)}
    return tuple(result.thresholds), record


def threshold_split_of(spec: CascadeSpec, dataset: Any) -> Optional[Split]:
    """The split ``spec``'s thresholds were calibrated on (``calibration['split']``), from
    ``dataset``: what ``convert_cascade_bundle(threshold_split=...)`` solves them again on.
    None when the spec records no split (hand-set thresholds stay as they are)."""
    name = (spec.calibration or {}).get("split")
    if not name:
        return None
    split = dataset.split(name)
    if split is None or len(split) == 0:
        raise TfedgeError(f"the cascade was calibrated on the {name!r} split, which the dataset "
                          "does not have: convert with the dataset it was calibrated on, or "
                          "keep the float thresholds (--float-thresholds)")
    return split


def _own_predictor_macs(spec: CascadeSpec) -> int:
    """The predictor's own MACs (:func:`_locator_macs` adds the refiner's passes)."""
    return int(spec.predictor.macs) if spec.predictor is not None else 0


def _outcome(result: Any, stage_macs: Sequence[int],
             predictor_macs: int) -> tuple[SplitLogits, CascadeOutcome]:
    """A runtime :class:`~tfedge.runtime.evaluate.BundleEvaluation` as (SplitLogits, outcome)."""
    data = SplitLogits(result.logits, result.labels, result.boxes)
    return data, score_exits(result.exit_stages, result.predictions, data.labels,
                             stage_macs=stage_macs, predictor_macs=predictor_macs)


def _stage_metrics(float_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray,
                   output_scale: float) -> dict[str, Any]:
    f_pred, q_pred = float_logits.argmax(axis=1), int8_logits.argmax(axis=1)
    err = np.abs(float_logits - int8_logits)
    return {"float_top1": float(np.mean(f_pred == labels)),
            "int8_top1": float(np.mean(q_pred == labels)),
            "agreement": float(np.mean(f_pred == q_pred)),
            "max_abs_logit_error": float(err.max()), "mean_abs_logit_error": float(err.mean()),
            "output_scale": float(output_scale), "count": int(labels.size)}


_PREDICTOR_NO_QAT = ("the foreground predictor regresses boxes, and QAT here fine-tunes "
                     "classifiers (cross-entropy on labels)")


def convert_cascade_bundle(
    spec: CascadeSpec,
    calibration: Split,
    check: Split,
    output: Union[str, os.PathLike],
    *,
    zip_path: Union[str, os.PathLike, None] = None,
    io_dtype: str = "int8",
    calibration_size: int = 500,
    check_size: int = 2000,
    tolerance_points: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    extra_metrics: Optional[Mapping[str, Any]] = None,
    qat=None,
    threshold_split: Optional[Split] = None,
    refiner: Union[str, os.PathLike, None] = None,
) -> tuple[Path, dict[str, Any]]:
    """Convert a calibrated cascade to one int8 bundle (see the module docstring).

    ``qat`` (a :class:`tfedge.qat.QatConfig`): fine-tune every stage with
    fake quantisation on the float predictor's crops of ``qat.images`` other
    training images. The predictor regresses boxes, which QAT's
    classification fine-tune cannot train: it is quantised post-training when
    ``qat.fallback`` allows, else the conversion stops and says so.

    calibration: training split (``calibration_size`` random images calibrate
    every model); check: held-out split (``check_size`` random images compare
    the int8 cascade with the float one). Returns the bundle folder and the
    figures (``top1``/``float_top1`` of the cascades, ``mean_macs``,
    ``exit_rates``, per-stage metrics...). Raises
    :class:`~tfedge.ConversionCheckError` (nothing written) when the int8
    cascade loses more than ``tolerance_points``.

    threshold_split: the split the thresholds were calibrated on (e.g. the
    validation split; never the check split). When given, the int8 pipeline
    runs on it and the bundle gets thresholds solved for its int8 scores
    (``metrics['thresholds']``; the float ones stay in
    ``metrics['float_thresholds']``). Without it the float thresholds are kept.

    refiner: a refiner file (``tfedge predictor refine``) of the cascade's
    predictor; default: the cascade's own refiner, if it has one. The bundle then holds the int8 refiner (manifest version 2),
    calibrated on its own windows, and every crop (calibration, both checks)
    is cut at refined boxes; the figures' MACs include its passes.
    """
    from .._convert import (ConversionCheckError, _check_settings, _subset, check_tolerance,
                            quantize_int8)
    from .._train import load_classifier
    from ..runtime.bundle import PredictorEntry, StageEntry, write_bundle
    from ..runtime.interpreter import TfliteModel

    if not spec.calibrated:
        raise TfedgeError("the cascade has no thresholds yet: run 'tfedge cascade calibrate' "
                          "before converting it")
    calibration_size, check_size, batch_size = _check_settings(
        io_dtype, calibration_size, check_size, batch_size, tolerance_points)
    for what, split in (("calibration", calibration), ("check", check)):
        if len(split) == 0:
            raise TfedgeError(f"the {what} split is empty: check the dataset")
        if tuple(split.class_names) != tuple(spec.class_names):
            raise TfedgeError(f"the {what} split's classes {list(split.class_names)[:4]}... "
                              f"differ from the cascade's {list(spec.class_names)[:4]}...: "
                              "convert with the dataset the stages were trained on")
    models = [load_classifier(spec.stage_path(k)) for k in range(spec.num_stages)]
    for k, model in enumerate(models):
        _check_model(model, k, spec)  # a stage retrained since 'cascade build': stop before work
    predictor = None
    if spec.predictor is not None:
        from ..crop import load_predictor, predictor_spec_of

        predictor = load_predictor(spec.predictor_path())
        resolution = predictor_spec_of(predictor).resolution
        if resolution != spec.predictor.resolution:
            raise TfedgeError(f"the predictor takes {resolution} px but the cascade says "
                              f"{spec.predictor.resolution}: rebuild the cascade with "
                              "'tfedge cascade build'")
    if refiner is None and spec.refiner is not None:
        refiner = spec.refiner_path()  # the cascade's own: its thresholds were set on its boxes
    elif refiner is not None and spec.refiner is not None \
            and Path(refiner).resolve() != spec.refiner_path().resolve():
        raise TfedgeError(f"the cascade already holds refiner {str(spec.refiner_path())!r}, not "
                          f"{str(refiner)!r}: drop --refiner, or rebuild the cascade with the "
                          "other refiner")
    pair = _load_refiner(refiner, spec) if refiner is not None else None
    cal = _subset(calibration, calibration_size, seed)
    chk = _subset(check, check_size, seed + 1)
    crop = spec.predictor.crop if spec.predictor is not None else None

    # Calibration images: whole images for the predictor; for the stages, the crops the device
    # cuts at the int8 predictor's boxes (not the float predictor's: those are not what it sees).
    pred_bytes = None
    pred_quantization = None
    pred_tfl = None
    if predictor is not None:
        from ..crop import predict_boxes, predictor_export_model

        log.info("converting the predictor (%d calibration images at %d px)", len(cal),
                 spec.predictor.resolution)
        export = predictor_export_model(predictor)
        pred_box_format = HEATMAP_BOX_FORMAT if len(export.outputs) == 2 else PREDICTOR_BOX_FORMAT
        pred_bytes, pred_quantization = quantize_int8(
            export, np.concatenate(_whole_images(cal, spec.predictor.resolution, batch_size)),
            io_dtype=io_dtype, qat=qat, qat_unsupported=_PREDICTOR_NO_QAT)
        pred_tfl = TfliteModel(pred_bytes)
    int8_refiner = ref_bytes = ref_quantization = None
    ref_windows = 0
    if pair is not None:
        from .._macs import count_macs
        from ..crop import predictor_spec_of

        log.info("converting the refiner (%d passes, windows around the int8 predictor's boxes "
                 "on %d calibration images)", pair.passes, len(cal))
        ref_bytes, ref_quantization, ref_windows = _convert_refiner(
            pair, cal, pred_tfl, io_dtype=io_dtype, qat=qat, batch_size=batch_size)
        ref_tfl = TfliteModel(ref_bytes)
        int8_refiner = Int8Refiner(
            model=ref_tfl, resolution=predictor_spec_of(pair.refiner).resolution,
            macs=int(count_macs(pair.refiner).macs), window=pair.window, passes=pair.passes,
            box_format=(HEATMAP_BOX_FORMAT if len(ref_tfl.output_specs) == 2
                        else PREDICTOR_BOX_FORMAT))
        _, stage_reps = _refined_device_crops(cal, [s.resolution for s in spec.stages],
                                              pred_tfl, int8_refiner, crop)
    else:
        _, stage_reps = device_crops(cal, [s.resolution for s in spec.stages],
                                     predictor=pred_tfl, crop=crop)
    locator = pair if pair is not None else predictor  # what cuts the float crops
    locator_macs = _locator_macs(_own_predictor_macs(spec), int8_refiner)
    qat_set = qat_boxes = None
    if qat is not None:
        qat_set = _subset(calibration, qat.images, seed + 2)
        if predictor is not None:
            qat_boxes = predict_boxes(locator, qat_set, batch_size=batch_size)
    stage_bytes, stage_quantization = [], []
    for k, (stage, model) in enumerate(zip(spec.stages, models)):
        log.info("converting stage %d %s (%d calibration %s at %d px%s)", k, stage.name, len(cal),
                 "int8-predictor crops" if pred_tfl is not None else "images", stage.resolution,
                 ", quantisation-aware" if qat is not None else "")
        rep = stage_reps[k]
        examples = None
        if qat_set is not None:
            examples = (np.concatenate(_crops(qat_set, stage.resolution, qat_boxes, crop,
                                              batch_size)), np.asarray(qat_set.labels))
        data, quantization = quantize_int8(model, rep, io_dtype=io_dtype, qat=qat,
                                           qat_examples=examples)
        stage_bytes.append(data)
        stage_quantization.append(quantization)

    # Held-out check: the float cascade and the int8 cascade, each end to end.
    log.info("checking the int8 cascade against the float cascade on %d images", len(chk))
    float_data = compute_stage_logits(spec, chk, models=models, predictor=locator,
                                      batch_size=batch_size)
    float_out = simulate_cascade(float_data.logits, float_data.labels, criteria=spec.criteria,
                                 weights=spec.weights, thresholds=spec.thresholds,
                                 stage_macs=spec.stage_macs, predictor_macs=locator_macs)
    stage_tfl = [TfliteModel(b) for b in stage_bytes]
    thresholds, threshold_record = tuple(spec.thresholds), None
    if threshold_split is not None:
        thresholds, threshold_record = _int8_thresholds(spec, threshold_split, stage_tfl,
                                                        pred_tfl, crop, int8_refiner)
    int8_eval = _run_int8(
        chk, stages=stage_tfl, resolutions=[s.resolution for s in spec.stages],
        criteria=spec.criteria, weights=spec.weights, thresholds=thresholds,
        stage_macs=spec.stage_macs, predictor=pred_tfl,
        predictor_resolution=spec.predictor.resolution if spec.predictor else 0,
        predictor_macs=_own_predictor_macs(spec), crop=crop, refiner=int8_refiner)
    int8_data, int8_out = _outcome(int8_eval, spec.stage_macs, locator_macs)
    # Per stage: the float and int8 model on the same (int8-pipeline) inputs.
    same_input = (stage_logits_on_crops(models, chk, int8_data.boxes, crop, batch_size=batch_size)
                  if int8_data.boxes is not None else float_data.logits)
    stage_metrics = []
    for k in range(spec.num_stages):
        m = _stage_metrics(np.asarray(same_input[k]), int8_data.logits[k], chk.labels,
                           stage_tfl[k].output_spec.scale)
        m.update({"calibration_images": len(cal), "io_dtype": io_dtype,
                  "quantization": stage_quantization[k]})
        stage_metrics.append(m)
    agreement = float(np.mean(float_out.prediction == int8_out.prediction))
    metrics = {
        "top1": int8_out.top1, "float_top1": float_out.top1,
        "mean_macs": int8_out.expected_macs, "float_mean_macs": float_out.expected_macs,
        "exit_rates": list(int8_out.exit_fractions),
        "float_exit_rates": list(float_out.exit_fractions), "agreement": agreement,
        "top1_drop_points": (float_out.top1 - int8_out.top1) * _POINTS,
        "tolerance_points": float(tolerance_points), "check_images": int(len(chk)),
        "calibration_images": int(len(cal)), "io_dtype": io_dtype,
        "thresholds": list(thresholds), "float_thresholds": list(spec.thresholds),
        "threshold_source": "int8" if threshold_record is not None else "float",
        "operating_points": {"float": operating_point(float_out),
                             "int8": operating_point(int8_out)},
    }
    if threshold_record is not None:
        metrics["int8_threshold_calibration"] = threshold_record
    if spec.calibration:
        metrics["threshold_calibration"] = {
            k: spec.calibration.get(k) for k in ("mode", "target_accuracy", "macs_budget",
                                                 "split", "val_top1", "val_expected_macs",
                                                 "method", "exact", "count")}
    metrics.update(extra_metrics or {})
    log.info("float cascade top-1 %.4f at %.0f MACs; int8 cascade top-1 %.4f at %.0f MACs "
             "(agreement %.4f)", float_out.top1, float_out.expected_macs, int8_out.top1,
             int8_out.expected_macs, agreement)
    problem = check_tolerance(float_out.top1, int8_out.top1, tolerance_points, count=len(chk),
                              subject="int8 cascade top-1", reference="the float cascade's")
    if problem:
        raise ConversionCheckError(problem, {**metrics, "stages": stage_metrics})

    entries = []
    for k, (stage, data) in enumerate(zip(spec.stages, stage_bytes)):
        tfl = stage_tfl[k]
        entries.append((StageEntry(name=stage.name, resolution=stage.resolution, macs=stage.macs,
                                   input=tfl.input_spec, output=tfl.output_spec,
                                   criterion=stage.criterion, threshold=thresholds[k],
                                   accumulate_weight=stage.accumulate_weight,
                                   metrics=stage_metrics[k]), data))
    pred_entry = ref_entry = None
    if pred_tfl is not None:
        from ..data._boxes import iou

        # The predictor's own boxes (before any refiner), int8 and float.
        int8_first = int8_eval.predictor_boxes
        float_first = (float_data.boxes if pair is None
                       else predict_boxes(predictor, chk, batch_size=batch_size))
        ious = iou(int8_first, float_first)
        pmetrics: dict[str, Any] = {"float_int8_mean_iou": float(np.mean(ious)),
                                    "calibration_images": len(cal), "io_dtype": io_dtype,
                                    "quantization": pred_quantization}
        has_truth = chk.boxes is not None and not np.isnan(np.asarray(chk.boxes)).all()
        if has_truth:
            from ..crop import iou_summary

            pmetrics["mean_iou"] = iou_summary(int8_first, chk.boxes)["miou"]
            pmetrics["float_mean_iou"] = iou_summary(float_first, chk.boxes)["miou"]
        if int8_refiner is not None:
            rmetrics: dict[str, Any] = {
                "float_int8_mean_iou": float(np.mean(iou(int8_data.boxes, float_data.boxes))),
                "calibration_windows": int(ref_windows), "io_dtype": io_dtype,
                "quantization": ref_quantization, "refiner_model": pair.refiner.name}
            if has_truth:
                rmetrics["mean_iou"] = iou_summary(int8_data.boxes, chk.boxes)["miou"]
                rmetrics["float_mean_iou"] = iou_summary(float_data.boxes, chk.boxes)["miou"]
            ref_entry = (int8_refiner.entry(rmetrics), ref_bytes)
        pred_entry = (PredictorEntry(resolution=spec.predictor.resolution,
                                     macs=spec.predictor.macs, input=pred_tfl.input_spec,
                                     outputs=pred_tfl.output_specs,
                                     crop=spec.predictor.crop.to_dict(),
                                     box_format=pred_box_format, metrics=pmetrics),
                      pred_bytes)
    path = write_bundle(output, labels=list(spec.class_names), stages=entries,
                        predictor=pred_entry, metrics=metrics, zip_path=zip_path,
                        refiner=ref_entry)
    extra = {"refiner": dict(ref_entry[0].metrics)} if ref_entry is not None else {}
    return path, {**metrics, "stages": stage_metrics, **extra,
                  "bytes": (sum(len(b) for b in stage_bytes) + len(pred_bytes or b"")
                            + len(ref_bytes or b""))}
