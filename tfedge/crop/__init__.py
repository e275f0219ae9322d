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
    "PredictorSpec": "._boxnet", "DEFAULT_PREDICTOR": "._boxnet",
    "build_predictor": "._boxnet", "predictor_export_model": "._boxnet",
    "get_predictor_spec": "._boxnet", "list_predictors": "._boxnet",
    "predictor_spec_of": "._boxnet", "register_predictor": "._boxnet",
    "PredictorTrainConfig": "._predictor_training",
    "PredictorTrainResult": "._predictor_training", "train_predictor": "._predictor_training",
    "with_box_labels": "._predictor_training",
    "predict_boxes": "._predictor_inference",
    "load_predictor": "._predictor_files", "save_predictor": "._predictor_files",
    # refinement
    "RefinedPredictor": "._refined_predictor", "DEFAULT_REFINE_WINDOW": "._refined_predictor",
    "refine_boxes": "._predictor_inference", "predictor_macs": "._predictor_inference",
    "RefinerTrainConfig": "._refine", "RefinerTrainResult": "._refine",
    "DEFAULT_REFINER": "._refine", "train_refiner": "._refine",
    # labels
    "box_labels": "._gradcam", "cam_boxes": "._gradcam", "gradcam_boxes": "._gradcam",
    "gradcam_maps": "._gradcam",
    # crops for the classifier
    "JitterConfig": "._crop_datasets", "make_crop_dataset": "._crop_datasets",
    "materialize_crops": "._crop_datasets", "crop_dataset_fn": "._crop_datasets",
    "CropTrainConfig": "._classifier_crops",
    "train_crop_classifier": "._classifier_crops", "trained_crop_config": "._classifier_crops",
    # evaluation
    "CropEvalResult": "._evaluate", "evaluate_crop_pipeline": "._evaluate",
    "iou_summary": "._evaluate", "iou_by_background": "._evaluate", "save_box_preview": "._evaluate",
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
