"""EfficientNet-Lite builder (Keras 3 functional) from an :class:`EfficientNetLiteSpec`.

Topology (the reference EfficientNet-Lite builder, layer for layer, so that
published weights load one tensor per Keras weight):

* input -> ``rescale``: ``(pixel - 127) / 128``, the normalisation the
  ImageNet weights were trained with (not tfedge's usual ``pixel / 127.5 - 1``);
  an int8 input still gets scale 1, since quantisation sees raw pixels;
* stem: ``stem_conv`` 3x3/2 -> ``stem_bn`` -> ``stem_relu`` (ReLU6);
* 7 MBConv stages; block ``b`` of stage ``s`` (1-based) is
  ``stage{s}_block{b}_expand_{conv,bn,relu}`` (1x1, omitted when the
  expansion is 1) -> ``..._dw_{conv,bn,relu}`` (kxk depthwise, the stage's
  stride in its first block) -> ``..._project_{conv,bn}`` (1x1, linear)
  [-> ``..._add`` when stride is 1 and the channels match];
* ``head_conv`` 1x1 -> ``head_bn`` -> ``head_relu`` (ReLU6);
* ``pool`` (global average) -> ``logits`` (Dense, no softmax).

Keras' ``padding="same"`` is TensorFlow's SAME (for stride 2 on an even side
the extra row/column goes after), which is what the PyTorch port of the
weights reproduces with explicit asymmetric padding; PyTorch's own symmetric
``padding=k//2`` would shift every stride-2 map by one pixel. BatchNorm
epsilon is 1e-3, as in training (tfedge's default too).
"""

from __future__ import annotations

from typing import Any

from tfedge.models._layers import (CONV_INITIALIZER, INPUT_NAME, RESCALE_NAME, BnOptions,
                                   classifier_head, conv_bn)
from tfedge.models._specs import EfficientNetLiteSpec

__all__ = ["build_efficientnet_lite", "EFFICIENTNET_LITE_PIXEL_SCALE",
           "EFFICIENTNET_LITE_PIXEL_OFFSET"]

_RELU6 = 6.0
_STEM_KERNEL = 3
_STEM_STRIDE = 2
#: ``(pixel - 127) / 128``: the reference EfficientNet-Lite preprocessing (MEAN_RGB 127,
#: STDDEV_RGB 128).
EFFICIENTNET_LITE_PIXEL_SCALE = 1.0 / 128.0
EFFICIENTNET_LITE_PIXEL_OFFSET = -127.0 / 128.0


def _mbconv(x: Any, out_width: int, kernel: int, stride: int, expansion: int, prefix: str,
            bn: BnOptions) -> Any:
    import keras

    in_width = x.shape[-1]
    y = x
    if expansion != 1:
        y = conv_bn(y, in_width * expansion, 1, 1, bn, conv_name=f"{prefix}_expand_conv",
                    bn_name=f"{prefix}_expand_bn", act_name=f"{prefix}_expand_relu",
                    relu_max=_RELU6)
    y = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                     depthwise_initializer=CONV_INITIALIZER,
                                     name=f"{prefix}_dw_conv")(y)
    y = bn.layer(f"{prefix}_dw_bn")(y)
    y = keras.layers.ReLU(max_value=_RELU6, name=f"{prefix}_dw_relu")(y)
    y = conv_bn(y, out_width, 1, 1, bn, conv_name=f"{prefix}_project_conv",
                bn_name=f"{prefix}_project_bn")
    if stride == 1 and in_width == out_width:
        y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return y


def build_efficientnet_lite(spec: EfficientNetLiteSpec, *, name: str, bn: BnOptions) -> Any:
    """Build the Keras functional model described by ``spec`` (untrained)."""
    import keras

    inputs = keras.Input(shape=(spec.resolution, spec.resolution, 3), dtype="float32",
                         name=INPUT_NAME)
    x = keras.layers.Rescaling(EFFICIENTNET_LITE_PIXEL_SCALE,
                               offset=EFFICIENTNET_LITE_PIXEL_OFFSET, name=RESCALE_NAME)(inputs)
    x = conv_bn(x, spec.stem_width, _STEM_KERNEL, _STEM_STRIDE, bn, conv_name="stem_conv",
                bn_name="stem_bn", act_name="stem_relu", relu_max=_RELU6)
    stages = zip(spec.stage_depths, spec.stage_widths, spec.stage_strides, spec.stage_kernels,
                 spec.stage_expansions)
    for s, (depth, width, stride, kernel, expansion) in enumerate(stages, start=1):
        for b in range(1, depth + 1):
            x = _mbconv(x, width, kernel, stride if b == 1 else 1, expansion,
                        f"stage{s}_block{b}", bn)
    x = conv_bn(x, spec.head_width, 1, 1, bn, conv_name="head_conv", bn_name="head_bn",
                act_name="head_relu", relu_max=_RELU6)
    outputs = classifier_head(x, spec.num_classes)
    return keras.Model(inputs, outputs, name=name)
