"""Crop datasets and the crop-robust classifier, under the module name they had before
(:mod:`tfedge.crop._crop_datasets` and :mod:`tfedge.crop._classifier_crops` now; this name
re-exports them for existing imports)."""

from __future__ import annotations

from ._classifier_crops import (DEFAULT_CROP_RESOLUTION, CropTrainConfig, crop_pool,
                                train_crop_classifier, trained_crop_config)
from ._crop_datasets import (FLIP_PROBABILITY, MAX_LOG_SCALE, MAX_SHIFT, JitterConfig,
                             _check_boxes, _jitter_box_tf, crop_dataset_fn, make_crop_dataset,
                             materialize_crops, to_uint8_pixels)

__all__ = ["JitterConfig", "make_crop_dataset", "crop_dataset_fn", "materialize_crops",
           "CropTrainConfig", "crop_pool", "train_crop_classifier", "trained_crop_config",
           "DEFAULT_CROP_RESOLUTION", "FLIP_PROBABILITY", "MAX_SHIFT", "MAX_LOG_SCALE",
           "to_uint8_pixels"]
