"""Building blocks shared by the model builders (Keras 3, standard layers only).

No custom layer classes: every model is made of built-in Keras layers, so a
saved ``.keras`` file loads without ``tfedge`` installed and every layer
converts to a TFLite builtin op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BnOptions", "image_input", "classifier_head", "conv_bn", "INPUT_NAME",
           "RESCALE_NAME", "POOL_NAME", "LOGITS_NAME", "PIXEL_SCALE", "PIXEL_OFFSET",
           "BN_EPSILON", "CONV_INITIALIZER"]

#: Names of the layers every tfedge classifier shares.
INPUT_NAME = "image"
RESCALE_NAME = "rescale"
POOL_NAME = "pool"
LOGITS_NAME = "logits"

#: Raw pixels in [0, 255] -> [-1, 1]. This exact affine map gives an int8
#: TFLite input with scale 1.0 and zero point -128 (feed ``pixel - 128``).
PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0

#: BatchNorm epsilon (Keras' default; larger than torchvision's 1e-5, which
#: keeps tiny-variance channels of shrunk networks from blowing up in int8).
BN_EPSILON = 1e-3

#: He initialisation suits ReLU networks trained from scratch.
CONV_INITIALIZER = "he_normal"


@dataclass(frozen=True)
class BnOptions:
    """BatchNorm settings applied to every BN layer of a model.

    ``momentum`` 0.9 (not keras.applications' 0.999) lets the moving
    statistics follow the data within a short schedule; ``synchronized``
    averages batch statistics across replicas under ``tf.distribute``.
    """

    momentum: float = 0.9
    synchronized: bool = False

    def layer(self, name: str) -> Any:
        import keras

        return keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=BN_EPSILON, synchronized=self.synchronized,
            name=name)


def image_input(resolution: int) -> tuple[Any, Any]:
    """``(inputs, x)``: a float32 raw-pixel input and its [-1, 1] rescaling."""
    import keras

    inputs = keras.Input(shape=(resolution, resolution, 3), dtype="float32", name=INPUT_NAME)
    x = keras.layers.Rescaling(PIXEL_SCALE, offset=PIXEL_OFFSET, name=RESCALE_NAME)(inputs)
    return inputs, x


def classifier_head(x: Any, num_classes: int) -> Any:
    """Global average pooling then a Dense layer producing logits (no softmax)."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(name=POOL_NAME)(x)
    return keras.layers.Dense(num_classes, name=LOGITS_NAME)(x)


def conv_bn(x: Any, filters: int, kernel: int, stride: int, bn: BnOptions, *,
            conv_name: str, bn_name: str, act_name: str | None = None,
            relu_max: float | None = None) -> Any:
    """Conv2D (no bias, 'same' padding) -> BatchNorm [-> ReLU or ReLU6]."""
    import keras

    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            kernel_initializer=CONV_INITIALIZER, name=conv_name)(x)
    x = bn.layer(bn_name)(x)
    if act_name is not None:
        x = keras.layers.ReLU(max_value=relu_max, name=act_name)(x)
    return x
