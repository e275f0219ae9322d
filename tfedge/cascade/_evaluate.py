"""Run a cascade's models on a split once, then calibrate and evaluate from the cached logits.

Every stage's logits are computed for every image (on the predictor's crop
when the cascade has a predictor, via :func:`tfedge.crop.predict_boxes` and
:func:`tfedge.crop.make_crop_dataset`, the same crops the device cuts; on the
whole image otherwise). Early exit only decides *which* of those logits an
image ends with and which stages it pays for, so thresholds can be searched
and evaluated in numpy without running a model again
(:mod:`tfedge.cascade._decision`, :mod:`tfedge.cascade._calibrate`).

Expected MACs always include the predictor and every stage an image runs
(its exit stage and all before it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._errors import TfedgeError
from ..data._types import Split
from ._calibrate import (DEFAULT_CURVE_POINTS, CalibrationResult, calibrate_thresholds,
                         tradeoff_thresholds)
from ._cascade import CascadeSpec
from ._decision import simulate_cascade

__all__ = ["SplitLogits", "compute_stage_logits", "stage_logits_on_crops", "resolve_target",
           "calibrate_cascade", "choose_exit_rule", "CascadeEvaluation", "evaluate_cascade",
           "tradeoff_curve", "TARGET_KEYWORDS"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 128
#: Relative accuracy targets: the last stage alone, or the best single stage, on validation.
TARGET_KEYWORDS = ("last", "best")
_POINTS = 100.0


@dataclass(frozen=True)
class SplitLogits:
    """Per-stage logits of every image of one split, with labels (and the predicted boxes)."""

    logits: tuple[np.ndarray, ...]
    labels: np.ndarray
    boxes: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "logits", tuple(np.asarray(z, np.float32) for z in self.logits))
        object.__setattr__(self, "labels", np.asarray(self.labels, np.int64))
        n = self.labels.shape[0]
        for k, z in enumerate(self.logits):
            if z.ndim != 2 or z.shape[0] != n:
                raise TfedgeError(f"stage {k} logits have shape {z.shape} for {n} labels: "
                                  "compute every stage on the same split")

    @property
    def count(self) -> int:
        return int(self.labels.shape[0])

    def stage_top1(self) -> tuple[float, ...]:
        """Accuracy of each stage's own logits (no accumulation, no exit)."""
        return tuple(float(np.mean(np.argmax(z, axis=1) == self.labels)) for z in self.logits)


def _load_models(spec: CascadeSpec) -> list:
    from .._train import load_classifier

    return [load_classifier(spec.stage_path(k)) for k in range(spec.num_stages)]


def _check_model(model: Any, k: int, spec: CascadeSpec) -> None:
    from .._train import model_resolution

    res = model_resolution(model)
    if res != spec.stages[k].resolution:
        raise TfedgeError(f"stage {k} model takes {res} px but the cascade says "
                          f"{spec.stages[k].resolution}: rebuild the cascade with "
                          "'tfedge cascade build'")
    if int(model.output_shape[-1]) != len(spec.class_names):
        raise TfedgeError(f"stage {k} model outputs {model.output_shape[-1]} classes but the "
                          f"cascade has {len(spec.class_names)}: rebuild the cascade")


def _run(model: Any, dataset: Any) -> np.ndarray:
    outs = [np.asarray(model(images, training=False), np.float32) for images, _ in dataset]
    return np.concatenate(outs) if outs else np.zeros((0, int(model.output_shape[-1])), np.float32)


def stage_logits_on_crops(models: Sequence[Any], split: Split, boxes: np.ndarray, crop: Any, *,
                          batch_size: int = DEFAULT_BATCH_SIZE) -> list[np.ndarray]:
    """Logits of each model on the crops of ``split`` at ``boxes`` (one crop per image, resized
    to each model's resolution)."""
    from .._train import model_resolution
    from ..crop import make_crop_dataset

    out = []
    for model in models:
        ds = make_crop_dataset(split, resolution=model_resolution(model), batch_size=batch_size,
                               boxes=boxes, crop=crop)
        out.append(_run(model, ds))
    return out


def compute_stage_logits(spec: CascadeSpec, split: Split, *, models: Optional[Sequence[Any]] = None,
                         predictor: Any = None,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> SplitLogits:
    """Every stage's logits on every image of ``split``, as the deployed cascade computes them.

    ``models`` / ``predictor``: already loaded Keras models (default: loaded
    from the spec's paths; the predictor with its refiner, when the cascade has one,
    :func:`tfedge.cascade._cascade.load_locator`).
    """
    from .._train import predict_logits

    if len(split) == 0:
        raise TfedgeError("the split is empty: check the dataset")
    if tuple(split.class_names) != tuple(spec.class_names):
        raise TfedgeError(f"the dataset's classes {list(split.class_names)[:4]}... differ from "
                          f"the cascade's {list(spec.class_names)[:4]}...: use the dataset the "
                          "stages were trained on")
    models = list(models) if models is not None else _load_models(spec)
    if len(models) != spec.num_stages:
        raise TfedgeError(f"got {len(models)} models for {spec.num_stages} stages")
    for k, model in enumerate(models):
        _check_model(model, k, spec)
    if spec.predictor is None:
        logits = [predict_logits(m, split, batch_size=batch_size) for m in models]
        return SplitLogits(tuple(logits), split.labels, None)
    from ..crop import predict_boxes
    from ._cascade import load_locator

    if predictor is None:
        predictor = load_locator(spec)  # with a refiner: the pair, so crops are at refined boxes
    boxes = predict_boxes(predictor, split, batch_size=batch_size)
    logits = stage_logits_on_crops(models, split, boxes, spec.predictor.crop,
                                   batch_size=batch_size)
    return SplitLogits(tuple(logits), split.labels, boxes)


# --------------------------------------------------------------------------- calibration


def resolve_target(target: Union[str, float], val: SplitLogits,
                   offset_points: float = 0.0) -> float:
    """An accuracy target as a fraction: a number, ``'last'`` (the last stage alone on
    validation) or ``'best'`` (the best single stage), plus ``offset_points`` points."""
    if isinstance(target, str):
        if target in TARGET_KEYWORDS:
            top1 = val.stage_top1()
            base = top1[-1] if target == "last" else max(top1)
        else:
            try:
                base = float(target)
            except ValueError:
                raise TfedgeError(f"accuracy target {target!r} is not valid: give a fraction "
                                  "(e.g. 0.85) or one of " + ", ".join(TARGET_KEYWORDS)) from None
    else:
        base = float(target)
    value = base + float(offset_points) / _POINTS
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise TfedgeError(f"accuracy target {value!r} is outside [0, 1]: give a fraction such as "
                          "0.85 (not a percentage)")
    return value


def calibrate_cascade(spec: CascadeSpec, val: SplitLogits, *, mode: str = "accuracy",
                      target: Union[str, float, None] = "last", target_offset_points: float = 0.0,
                      macs_budget: Optional[float] = None, split_name: str = "val"
                      ) -> tuple[CascadeSpec, CalibrationResult]:
    """Choose thresholds on validation logits; return the calibrated spec and the record."""
    target_accuracy = None
    if mode == "accuracy":
        if target is None:
            raise TfedgeError("accuracy mode needs a target: a fraction, 'last' or 'best'")
        target_accuracy = resolve_target(target, val, target_offset_points)
    result = calibrate_thresholds(val.logits, val.labels, criteria=spec.criteria,
                                  weights=spec.weights, stage_macs=spec.stage_macs,
                                  predictor_macs=spec.predictor_macs, mode=mode,
                                  target_accuracy=target_accuracy, macs_budget=macs_budget)
    if not result.feasible:
        what = (f"accuracy {target_accuracy:.4f}" if mode == "accuracy"
                else f"a budget of {macs_budget:,.0f} MACs")
        log.warning("no thresholds reach %s on %s; using the closest (top-1 %.4f at %.0f MACs)",
                    what, split_name, result.val_top1, result.val_expected_macs)
    record = {**result.to_dict(), "split": split_name,
              "target": target if isinstance(target, str) else None,
              "target_offset_points": float(target_offset_points),
              "val_stage_top1": list(val.stage_top1())}
    return spec.with_thresholds(result.thresholds, record), result


def _with_rule(spec: CascadeSpec, criterion: str, weight: float) -> CascadeSpec:
    from dataclasses import replace

    stages = tuple(replace(s, criterion=criterion, accumulate_weight=0.0 if k == 0 else weight,
                           threshold=None) for k, s in enumerate(spec.stages))
    return replace(spec, stages=stages, calibration=None, evaluation=None)


def choose_exit_rule(spec: CascadeSpec, val: SplitLogits, *,
                     criteria: Sequence[str] = ("max_softmax", "margin", "entropy"),
                     weights: Sequence[float] = (0.0, 0.5, 1.0), mode: str = "accuracy",
                     target: Union[str, float, None] = "last", target_offset_points: float = 0.0,
                     macs_budget: Optional[float] = None, split_name: str = "val"
                     ) -> tuple[CascadeSpec, CalibrationResult, list[dict]]:
    """Calibrate every (criterion, accumulation weight) pair on ``val``; keep the best.

    One criterion for all stages and one weight for every stage after the
    first. "Best" is the calibration objective itself (feasible first; then
    fewest MACs in accuracy mode, highest accuracy in budget mode), judged on
    validation only. Returns the calibrated spec, its record and one row per
    pair tried.
    """
    from ._calibrate import _Objective, max_total_macs, required_correct

    if not criteria or not weights:
        raise TfedgeError("choose_exit_rule needs at least one criterion and one weight")
    rows = []
    best = None
    for criterion in criteria:
        for weight in weights:
            candidate, result = calibrate_cascade(
                _with_rule(spec, criterion, float(weight)), val, mode=mode, target=target,
                target_offset_points=target_offset_points, macs_budget=macs_budget,
                split_name=split_name)
            n = result.count
            objective = (_Objective("accuracy", need_correct=required_correct(
                result.target_accuracy, n)) if mode == "accuracy" else
                _Objective("budget", max_macs=max_total_macs(result.macs_budget, n)))
            key = objective.key(round(result.val_top1 * n), round(result.val_expected_macs * n))
            rows.append({"criterion": criterion, "accumulate_weight": float(weight),
                         "val_top1": result.val_top1,
                         "val_expected_macs": result.val_expected_macs,
                         "feasible": result.feasible, "thresholds": list(result.thresholds)})
            if best is None or key > best[0]:
                best = (key, candidate, result)
    assert best is not None
    _, chosen, result = best
    record = {**dict(chosen.calibration or {}), "rule_search": rows}
    return chosen.with_thresholds(chosen.thresholds, record), result, rows


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class CascadeEvaluation:
    """A calibrated cascade on one split (the test split, for reported figures).

    stages: per stage ``name``, ``macs``, ``alone_macs`` (predictor + that
    stage only) and ``top1`` of that stage alone. best_single_stage: the most
    accurate stage alone whose ``alone_macs`` do not exceed the cascade's
    expected MACs (None if none is that cheap). curve: points of the
    accuracy-versus-expected-MACs trade-off, each chosen on validation and
    measured here.
    """

    top1: float
    expected_macs: float
    exit_fractions: tuple[float, ...]
    exit_top1: tuple[Optional[float], ...]
    count: int
    predictor_macs: int
    thresholds: tuple[Optional[float], ...]
    stages: tuple[dict, ...]
    best_single_stage: Optional[dict]
    curve: tuple[dict, ...] = field(default=())

    @property
    def beats_best_single_stage(self) -> Optional[bool]:
        if self.best_single_stage is None:
            return None
        return self.top1 > self.best_single_stage["top1"]

    def to_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "expected_macs": self.expected_macs,
                "exit_fractions": list(self.exit_fractions), "exit_top1": list(self.exit_top1),
                "count": self.count, "predictor_macs": self.predictor_macs,
                "thresholds": list(self.thresholds), "stages": [dict(s) for s in self.stages],
                "best_single_stage": self.best_single_stage,
                "beats_best_single_stage": self.beats_best_single_stage,
                "curve": [dict(p) for p in self.curve]}


def _outcome(spec: CascadeSpec, data: SplitLogits, thresholds: Sequence[Optional[float]]):
    return simulate_cascade(data.logits, data.labels, criteria=spec.criteria,
                            weights=spec.weights, thresholds=thresholds,
                            stage_macs=spec.stage_macs, predictor_macs=spec.predictor_macs)


def tradeoff_curve(spec: CascadeSpec, val: SplitLogits, test: SplitLogits, *,
                   points: int = DEFAULT_CURVE_POINTS) -> list[dict]:
    """Thresholds chosen on ``val`` for budgets across the whole range, measured on ``test``."""
    results = tradeoff_thresholds(val.logits, val.labels, criteria=spec.criteria,
                                  weights=spec.weights, stage_macs=spec.stage_macs,
                                  predictor_macs=spec.predictor_macs, points=points)
    curve = []
    for r in results:
        o = _outcome(spec, test, r.thresholds)
        curve.append({"thresholds": list(r.thresholds), "macs_budget": r.macs_budget,
                      "val_top1": r.val_top1, "val_expected_macs": r.val_expected_macs,
                      "top1": o.top1, "expected_macs": o.expected_macs,
                      "exit_fractions": list(o.exit_fractions)})
    curve.sort(key=lambda p: (p["expected_macs"], p["top1"]))
    return curve


def evaluate_cascade(spec: CascadeSpec, data: SplitLogits, *, val: Optional[SplitLogits] = None,
                     curve_points: int = DEFAULT_CURVE_POINTS) -> CascadeEvaluation:
    """Accuracy, expected MACs and exits of the calibrated ``spec`` on ``data``'s split.

    With ``val`` (the calibration split's logits) the trade-off curve is
    added: thresholds picked on ``val`` for a range of budgets, measured on
    ``data``.
    """
    if not spec.calibrated:
        raise TfedgeError("the cascade has no thresholds yet: run 'tfedge cascade calibrate' "
                          "first")
    if len(data.logits) != spec.num_stages:
        raise TfedgeError(f"got logits of {len(data.logits)} stages for a {spec.num_stages}-stage "
                          "cascade")
    o = _outcome(spec, data, spec.thresholds)
    alone = data.stage_top1()
    stages = tuple({"name": s.name, "resolution": s.resolution, "macs": s.macs,
                    "alone_macs": spec.predictor_macs + s.macs, "top1": a}
                   for s, a in zip(spec.stages, alone))
    cheaper = [s for s in stages if s["alone_macs"] <= o.expected_macs]
    best = max(cheaper, key=lambda s: s["top1"]) if cheaper else None
    curve = tuple(tradeoff_curve(spec, val, data, points=curve_points)) if val is not None else ()
    return CascadeEvaluation(
        top1=o.top1, expected_macs=o.expected_macs, exit_fractions=o.exit_fractions,
        exit_top1=tuple(None if math.isnan(a) else a for a in o.stage_top1), count=data.count,
        predictor_macs=spec.predictor_macs, thresholds=spec.thresholds, stages=stages,
        best_single_stage=dict(best) if best else None, curve=curve)
