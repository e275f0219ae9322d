"""The foreground predictor, under the module name it had before it was split.

What lived here now lives in modules named for what they hold:

* :mod:`tfedge.crop._boxnet` -- the ``boxnet`` family: spec, registry, the Keras model,
  the int8 export form (and why it is shaped so);
* :mod:`tfedge.crop._box_losses` -- box decoding and losses in TensorFlow;
* :mod:`tfedge.crop._box_augment` -- batch augmentations that move the boxes too;
* :mod:`tfedge.crop._predictor_training` -- training (on :func:`tfedge._train.run_training`);
* :mod:`tfedge.crop._predictor_inference` -- :func:`predict_boxes` (and a refined
  predictor's :func:`refine_boxes`, :func:`predictor_macs`);
* :mod:`tfedge.crop._predictor_files` -- save, load, sidecar (a refiner's file too).

The refined pair's type is :mod:`tfedge.crop._refined_predictor`'s, refiner training
:mod:`tfedge.crop._refine`'s.

New code should import from :mod:`tfedge.crop` (or those modules); this one re-exports
them so existing imports keep working.
"""

from __future__ import annotations

from ._box_augment import augment_batch_tf
from ._box_losses import box_loss_tf, centre_loss_tf, decode_boxes_tf
from ._boxnet import (CLASS_FEATURES, DEFAULT_PREDICTOR, HEAT_LOGIT_NAME, HEAT_SIZE_NAME,
                      HEAT_STRIDE, OUTPUT_NAME, PREDICTOR_HEADS, PredictorSpec, build_predictor,
                      get_predictor_spec, list_predictors, predictor_export_model,
                      predictor_spec_of, register_predictor)
from ._predictor_files import (PREDICTOR_FORMAT, load_predictor, read_predictor_sidecar,
                               save_predictor)
from ._predictor_inference import predict_boxes
from ._predictor_training import (PredictorTrainConfig, PredictorTrainResult, train_predictor,
                                  with_box_labels)
from .geometry import decode_boxes

__all__ = [
    "PredictorSpec", "PREDICTOR_HEADS", "DEFAULT_PREDICTOR", "register_predictor",
    "list_predictors", "get_predictor_spec", "build_predictor", "predictor_spec_of",
    "decode_boxes", "decode_boxes_tf", "box_loss_tf", "centre_loss_tf", "augment_batch_tf",
    "PredictorTrainConfig", "PredictorTrainResult", "train_predictor", "predict_boxes",
    "save_predictor", "load_predictor", "read_predictor_sidecar", "PREDICTOR_FORMAT",
    "predictor_export_model", "with_box_labels",
    "OUTPUT_NAME", "HEAT_LOGIT_NAME", "HEAT_SIZE_NAME", "HEAT_STRIDE", "CLASS_FEATURES",
]
