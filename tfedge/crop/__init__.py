"""Dynamic image cropping: a tiny foreground predictor picks the crop the classifier sees.

* :mod:`tfedge.crop.geometry` (public, numpy only -- the device runner uses it):
  box -> square, margin, minimum size, snapping, clamped pixel window; crop
  and bilinear resize identical to the training pipeline.
* The predictor family ``boxnet`` (:func:`build_predictor`,
  :func:`train_predictor`, :func:`predict_boxes`, :func:`decode_boxes`), and
  its refiner, a second look closer at the predictor's box
  (:func:`train_refiner`, :class:`RefinedPredictor`).
* Box labels: ground truth, or Grad-CAM pseudo-boxes from a teacher
  (:func:`box_labels`, :func:`gradcam_boxes`).
* Crop-robust classifier training (:func:`train_crop_classifier`) and the
  pipeline's evaluation (:func:`evaluate_crop_pipeline`, :func:`save_box_preview`).

Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

from .geometry import (CropConfig, crop_and_resize, crop_window, crop_windows, decode_boxes,
                       decode_heatmap, decode_predictor_outputs, resize_bilinear)

_LAZY = {
    # predictor
    "PredictorSpec": "._predictor", "PredictorTrainConfig": "._predictor",
    "PredictorTrainResult": "._predictor", "DEFAULT_PREDICTOR": "._predictor",
    "build_predictor": "._predictor", "predictor_export_model": "._predictor",
    "get_predictor_spec": "._predictor", "list_predictors": "._predictor",
    "load_predictor": "._predictor", "predict_boxes": "._predictor",
    "predictor_spec_of": "._predictor", "register_predictor": "._predictor",
    "save_predictor": "._predictor", "train_predictor": "._predictor",
    "with_box_labels": "._predictor",
    # refinement
    "RefinedPredictor": "._refine", "RefinerTrainConfig": "._refine",
    "RefinerTrainResult": "._refine", "DEFAULT_REFINER": "._refine",
    "DEFAULT_REFINE_WINDOW": "._refine", "refine_boxes": "._refine",
    "train_refiner": "._refine", "predictor_macs": "._refine",
    # labels
    "box_labels": "._gradcam", "cam_boxes": "._gradcam", "gradcam_boxes": "._gradcam",
    "gradcam_maps": "._gradcam",
    # crops for the classifier
    "JitterConfig": "._pipeline", "CropTrainConfig": "._pipeline",
    "make_crop_dataset": "._pipeline", "materialize_crops": "._pipeline",
    "crop_dataset_fn": "._pipeline",
    "train_crop_classifier": "._pipeline", "trained_crop_config": "._pipeline",
    # evaluation
    "CropEvalResult": "._evaluate", "evaluate_crop_pipeline": "._evaluate",
    "iou_summary": "._evaluate", "save_box_preview": "._evaluate",
}

__all__ = ["CropConfig", "crop_and_resize", "crop_window", "crop_windows", "decode_boxes",
           "decode_heatmap", "decode_predictor_outputs", "resize_bilinear",
           *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfedge.crop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
