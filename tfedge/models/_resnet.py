"""ResNet v1.5 builder (Keras 3 functional) from a :class:`ResNetSpec`.

Topology (He et al. 2016, with the v1.5 change of torchvision/NVIDIA: a
bottleneck downsamples in its 3x3 conv, not its first 1x1):

* input -> ``rescale`` (raw [0, 255] pixels to [-1, 1]);
* stem: 'imagenet' = ``stem_conv`` 7x7/2 -> ``stem_bn`` -> ``stem_relu`` ->
  ``stem_pool`` 3x3/2 max-pool; 'small' = ``stem_conv`` 3x3/1 -> BN -> ReLU;
* stage ``s`` (1-based) has ``stage_depths[s-1]`` blocks; block ``b``'s layers
  are ``stage{s}_block{b}_{conv,bn,relu}{i}``; the first block of stages 2+
  has stride 2; a block whose shape changes gets a projection shortcut
  ``stage{s}_block{b}_shortcut_{conv,bn}`` (1x1 conv + BN); the residual sum
  is ``stage{s}_block{b}_add`` followed by ``stage{s}_block{b}_out`` (ReLU);
* head: ``pool`` (global average) -> ``logits`` (Dense, no softmax).

The stable layer names let compound shrinking drop blocks or channels by name
and copy the surviving weights into the smaller model.
"""

from __future__ import annotations

from typing import Any

from tfedge.models._layers import BnOptions, classifier_head, conv_bn, image_input
from tfedge.models._specs import ResNetSpec

__all__ = ["build_resnet", "block_prefix"]

_IMAGENET_STEM_KERNEL = 7
_SMALL_STEM_KERNEL = 3
_STEM_CONV_STRIDE = {"imagenet": 2, "small": 1}
_STEM_POOL_SIZE = 3
_STEM_POOL_STRIDE = 2


def block_prefix(stage: int, block: int) -> str:
    """Layer-name prefix of a block, both 1-based: ``stage2_block1``."""
    return f"stage{stage}_block{block}"


def _block(x: Any, spec: ResNetSpec, width: int, stride: int, prefix: str,
           bn: BnOptions) -> Any:
    import keras

    out_width = width * spec.block_expansion
    in_width = x.shape[-1]
    shortcut = x
    if stride != 1 or in_width != out_width:
        shortcut = conv_bn(x, out_width, 1, stride, bn, conv_name=f"{prefix}_shortcut_conv",
                           bn_name=f"{prefix}_shortcut_bn")
    if spec.block == "basic":
        y = conv_bn(x, width, 3, stride, bn, conv_name=f"{prefix}_conv1",
                    bn_name=f"{prefix}_bn1", act_name=f"{prefix}_relu1")
        y = conv_bn(y, out_width, 3, 1, bn, conv_name=f"{prefix}_conv2", bn_name=f"{prefix}_bn2")
    else:
        y = conv_bn(x, width, 1, 1, bn, conv_name=f"{prefix}_conv1",
                    bn_name=f"{prefix}_bn1", act_name=f"{prefix}_relu1")
        y = conv_bn(y, width, 3, stride, bn, conv_name=f"{prefix}_conv2",
                    bn_name=f"{prefix}_bn2", act_name=f"{prefix}_relu2")
        y = conv_bn(y, out_width, 1, 1, bn, conv_name=f"{prefix}_conv3", bn_name=f"{prefix}_bn3")
    y = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{prefix}_out")(y)


def build_resnet(spec: ResNetSpec, *, name: str, bn: BnOptions) -> Any:
    """Build the Keras functional model described by ``spec`` (untrained)."""
    import keras

    inputs, x = image_input(spec.resolution)
    kernel = _IMAGENET_STEM_KERNEL if spec.stem == "imagenet" else _SMALL_STEM_KERNEL
    x = conv_bn(x, spec.stem_width, kernel, _STEM_CONV_STRIDE[spec.stem], bn,
                conv_name="stem_conv", bn_name="stem_bn", act_name="stem_relu")
    if spec.stem == "imagenet":
        x = keras.layers.MaxPooling2D(_STEM_POOL_SIZE, strides=_STEM_POOL_STRIDE,
                                      padding="same", name="stem_pool")(x)
    for s, (depth, width, stride) in enumerate(
            zip(spec.stage_depths, spec.stage_widths, spec.stage_strides), start=1):
        for b in range(1, depth + 1):
            x = _block(x, spec, width, stride if b == 1 else 1, block_prefix(s, b), bn)
    outputs = classifier_head(x, spec.num_classes)
    return keras.Model(inputs, outputs, name=name)
