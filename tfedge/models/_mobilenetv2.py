"""MobileNetV2 builder (Keras 3 functional) from a :class:`MobileNetV2Spec`.

Topology (Sandler et al. 2018, as keras.applications/torchvision build it):

* input -> ``rescale`` (raw [0, 255] pixels to [-1, 1]);
* stem: ``stem_conv`` 3x3/2 -> ``stem_bn`` -> ``stem_relu`` (ReLU6);
* 7 inverted-residual stages; block ``b`` of stage ``s`` (1-based) is
  ``stage{s}_block{b}_expand_{conv,bn,relu}`` (1x1, omitted when the
  expansion is 1, i.e. in stage 1) -> ``..._dw_{conv,bn,relu}`` (3x3
  depthwise, stride 2 in the first block of stages 2, 3, 4 and 6) ->
  ``..._project_{conv,bn}`` (1x1, linear) [-> ``..._add`` when stride is 1 and
  the channels match];
* ``head_conv`` 1x1 -> ``head_bn`` -> ``head_relu`` (ReLU6);
* ``pool`` (global average) -> ``logits`` (Dense, no softmax).
"""

from __future__ import annotations

from typing import Any

from tfedge.models._layers import (CONV_INITIALIZER, BnOptions, classifier_head, conv_bn,
                                   image_input)
from tfedge.models._specs import MobileNetV2Spec

__all__ = ["build_mobilenetv2"]

_RELU6 = 6.0
_STEM_KERNEL = 3
_STEM_STRIDE = 2
_DEPTHWISE_KERNEL = 3


def _inverted_residual(x: Any, out_width: int, stride: int, expansion: int, prefix: str,
                       bn: BnOptions) -> Any:
    import keras

    in_width = x.shape[-1]
    y = x
    if expansion != 1:
        y = conv_bn(y, in_width * expansion, 1, 1, bn, conv_name=f"{prefix}_expand_conv",
                    bn_name=f"{prefix}_expand_bn", act_name=f"{prefix}_expand_relu",
                    relu_max=_RELU6)
    y = keras.layers.DepthwiseConv2D(_DEPTHWISE_KERNEL, strides=stride, padding="same",
                                     use_bias=False, depthwise_initializer=CONV_INITIALIZER,
                                     name=f"{prefix}_dw_conv")(y)
    y = bn.layer(f"{prefix}_dw_bn")(y)
    y = keras.layers.ReLU(max_value=_RELU6, name=f"{prefix}_dw_relu")(y)
    y = conv_bn(y, out_width, 1, 1, bn, conv_name=f"{prefix}_project_conv",
                bn_name=f"{prefix}_project_bn")
    if stride == 1 and in_width == out_width:
        y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return y


def build_mobilenetv2(spec: MobileNetV2Spec, *, name: str, bn: BnOptions) -> Any:
    """Build the Keras functional model described by ``spec`` (untrained)."""
    import keras

    inputs, x = image_input(spec.resolution)
    x = conv_bn(x, spec.resolved_stem_width, _STEM_KERNEL, _STEM_STRIDE, bn,
                conv_name="stem_conv", bn_name="stem_bn", act_name="stem_relu", relu_max=_RELU6)
    stages = zip(spec.stage_depths, spec.resolved_stage_widths, spec.stage_strides,
                 spec.stage_expansions)
    for s, (depth, width, stride, expansion) in enumerate(stages, start=1):
        for b in range(1, depth + 1):
            x = _inverted_residual(x, width, stride if b == 1 else 1, expansion,
                                   f"stage{s}_block{b}", bn)
    x = conv_bn(x, spec.resolved_last_width, 1, 1, bn, conv_name="head_conv",
                bn_name="head_bn", act_name="head_relu", relu_max=_RELU6)
    outputs = classifier_head(x, spec.num_classes)
    return keras.Model(inputs, outputs, name=name)
