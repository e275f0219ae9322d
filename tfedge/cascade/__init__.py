"""Dynamic inference: a cascade of classifiers with early exit and calibrated thresholds.

Several classifiers of growing cost run one after another on the same crop
(or whole image); an image leaves at the first stage confident enough. The
pieces:

* :class:`CascadeSpec` (``cascade.json``): stages (model, resolution, MACs,
  criterion, accumulation weight, threshold), the predictor and crop geometry,
  the calibration record. :func:`build_cascade`, :func:`load_cascade`,
  :func:`save_cascade`.
* :func:`recorded_dataset`: the dataset ``cascade.json`` records (its stages'
  training data), loaded again; :func:`dataset_mismatch` says how other data differ.
* :func:`compute_stage_logits`: run every stage once on a split (on predicted
  crops when there is a predictor); everything after works on these logits.
* :func:`calibrate_cascade` / :func:`calibrate_thresholds`: thresholds for an
  accuracy target at the fewest expected MACs, or the best accuracy within a
  MAC budget; exact for up to three stages (:mod:`tfedge.cascade._calibrate`).
* :func:`evaluate_cascade`: accuracy, expected MACs (predictor included), exit
  distribution, each stage alone, and the accuracy-versus-MACs curve;
  :func:`plot_tradeoff` draws it.
* :func:`convert_cascade_bundle`: one int8 bundle, checked against the float
  cascade (``tfedge-convert cascade``); :func:`evaluate_bundle` runs a bundle.
  Its stages are quantised on :func:`device_crops` (the int8 predictor's
  crops, as the device cuts them) and, given the calibration split, its
  thresholds are solved again on the int8 scores (:func:`recalibrate_thresholds`).

The early-exit rules (:mod:`tfedge.cascade._decision`) are those of
``docs/bundle.md``. Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # decisions (pure numpy)
    "CRITERIA": "tfedge.cascade._decision", "softmax": "tfedge.cascade._decision",
    "criterion_scores": "tfedge.cascade._decision",
    "accumulate_logits": "tfedge.cascade._decision", "cascade_exits": "tfedge.cascade._decision",
    "simulate_cascade": "tfedge.cascade._decision", "expected_macs": "tfedge.cascade._decision",
    "CascadeOutcome": "tfedge.cascade._decision",
    # calibration (pure numpy)
    "calibrate_thresholds": "tfedge.cascade._calibrate",
    "tradeoff_thresholds": "tfedge.cascade._calibrate",
    "CalibrationResult": "tfedge.cascade._calibrate", "MODES": "tfedge.cascade._calibrate",
    # the cascade as data
    "CascadeSpec": "tfedge.cascade._cascade", "StageConfig": "tfedge.cascade._cascade",
    "PredictorConfig": "tfedge.cascade._cascade", "build_cascade": "tfedge.cascade._cascade",
    "RefinerConfig": "tfedge.cascade._cascade", "load_locator": "tfedge.cascade._cascade",
    "load_cascade": "tfedge.cascade._cascade", "save_cascade": "tfedge.cascade._cascade",
    # the dataset a cascade records
    "dataset_record": "tfedge.cascade._dataset",
    "dataset_record_from_models": "tfedge.cascade._dataset",
    "describe_dataset_record": "tfedge.cascade._dataset",
    "recorded_dataset": "tfedge.cascade._dataset",
    "dataset_mismatch": "tfedge.cascade._dataset",
    "check_models_trained_on": "tfedge.cascade._dataset",
    # running models
    "SplitLogits": "tfedge.cascade._evaluate",
    "compute_stage_logits": "tfedge.cascade._evaluate",
    "calibrate_cascade": "tfedge.cascade._evaluate",
    "choose_exit_rule": "tfedge.cascade._evaluate",
    "evaluate_cascade": "tfedge.cascade._evaluate",
    "tradeoff_curve": "tfedge.cascade._evaluate",
    "CascadeEvaluation": "tfedge.cascade._evaluate",
    "plot_tradeoff": "tfedge.cascade._plot",
    "convert_cascade_bundle": "tfedge.cascade._convert",
    "evaluate_bundle": "tfedge.cascade._convert",
    "run_int8_cascade": "tfedge.cascade._convert",
    "device_crops": "tfedge.cascade._int8",
    "recalibrate_thresholds": "tfedge.cascade._int8",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfedge.cascade' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
