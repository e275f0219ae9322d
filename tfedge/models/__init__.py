"""Model families with explicit depth, width and resolution knobs, and their registry.

Specs (:class:`ResNetSpec`, :class:`MobileNetV2Spec`,
:class:`EfficientNetLiteSpec`) are plain data and need no
TensorFlow; :func:`build_model` / :func:`create_model` build Keras 3 functional
models from them. A variant's name encodes its whole configuration, so
``spec_of(model)`` recovers the architecture from a saved model.
"""

from ._registry import (build_model, create_model, get_spec, list_models, register_model,
                        spec_of)
from ._specs import (EfficientNetLiteSpec, MobileNetV2Spec, ModelSpec, ResNetSpec,
                     spec_from_dict, spec_from_name)

__all__ = ["EfficientNetLiteSpec", "MobileNetV2Spec", "ModelSpec", "ResNetSpec", "build_model",
           "create_model", "get_spec", "list_models", "register_model", "spec_from_dict", "spec_from_name",
           "spec_of"]
