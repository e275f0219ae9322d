"""The foreground predictor: a tiny CNN that sees a low-resolution image and outputs one box.

Family ``boxnet``. A spec's name encodes its whole configuration,
``boxnet_<head>_r<resolution>_w<width>``, e.g. ``boxnet_heat_r64_w16``:

* backbone: ``rescale`` (raw [0, 255] pixels to [-1, 1], as the classifiers)
  -> 3x3/2 conv (``width`` channels) -> three stages of depthwise-separable
  blocks at strides 4, 8 and 16 (``2w``, ``4w``, ``8w`` channels).
* head ``heat`` (the default, and the one the benchmark uses): a small
  top-down path brings the stride-16 context back to stride 4 (FPN-style), a
  1x1 conv gives a centre logit and two size channels per cell; the centre is
  the *soft-argmax* (softmax-weighted mean of the cell centres) and the size
  the softmax-weighted mean of the per-cell sizes. Translation-equivariant
  and sub-cell precise.
* head ``reg``: the stride-16 features are flattened (which keeps position)
  and two dense layers regress the box directly (the paper's style).

Both heads end in the same plain ``(batch, 4)`` float output ``box_params``
= ``(cy, cx, h, w)``, each in ``[0, 1]`` as a fraction of the image side;
:func:`decode_boxes` (pure numpy) turns it into a normalised ``(ymin, xmin,
ymax, xmax)`` box clipped to the image. For int8 deployment convert
:func:`predictor_export_model` (the heat head's maps as outputs) and decode
with :func:`tfedge.crop.geometry.decode_predictor_outputs`. Only builtin layers are used (conv, depthwise conv, BN, ReLU,
upsampling, softmax, dense, dot), so the model converts to full-int8 TFLite.

Training minimises ``L1(box) + (1 - GIoU(box))`` on normalised corner
boxes, with box-preserving augmentation (random resized crops that keep the
whole object, flips); examples whose box is unknown (NaN) are skipped.

Why this parameterisation (built-in benchmark, validation split, whose
background photos are never seen in training):

* a rectangle, not the paper's square: even a perfect square box (true
  centre, longer side) has mean IoU 0.659 with the true boxes, so a square
  predictor cannot reach 0.8; the crop is squared afterwards by the geometry;
* soft-argmax heat head, not dense regression: 0.43 against 0.14 mean IoU
  after the same short run (4,000 images, 5 epochs, r64 w16);
* resolution over width at equal MACs (12 epochs on 20,000 images):
  r64 w16 0.659 (3.3 MMACs), r96 w11 0.701 (3.9), r112 w9 0.651 (3.8),
  r128 w8 0.678 (4.1); wider does not help either: r96 w16 0.691 (7.4).
  The default is ``boxnet_heat_r96_w11``.
* on the device, time follows resolution as much as MACs (int8, one thread,
  on the project's x86 VM): r64 w16 (3.3 MMACs) 0.064 ms; at r96, w8 (2.3)
  0.076 ms, w10 (3.3) 0.105 ms, w11 (3.9) 0.11 ms, w12 (4.5) 0.118 ms, w16
  (7.4) 0.136 ms: the widths that are not multiples of 8 lie above the line
  through w8 and w16.
  Where every frame pays for the predictor (the cascade benchmark), r96 w8
  (validation IoU 0.68) is the better trade.
* what limits it: even on its own training images ``boxnet_heat_r96_w11``
  reaches only 0.79 (test 0.71), and new crops of the training photos give
  0.79 too, so the held-out scenes are not the whole gap. A hit (IoU >= 0.5)
  averages 0.82, and the size is the weak part: with the true size at the
  predicted centre hits would average 0.88. A second, closer look fixes
  much of it: :mod:`tfedge.crop._refine` (a refiner).
* int8: converting the model as it is, the int8 softmax (1/256 steps) cannot
  hold a distribution over many cells: r64 w16 0.653 -> 0.651, but r96 w11
  0.701 -> 0.671 and r128 w8 0.678 -> 0.599. :func:`predictor_export_model`
  exports the heat maps instead and the device decodes them in float
  (:func:`tfedge.crop.geometry.decode_predictor_outputs`): r96 w11 int8 0.704.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from .._errors import DatasetError, ModelConfigError, TfedgeError
from .._io import atomic_path, atomic_write_json
from ..data._pipeline import NO_AUGMENT, AugmentConfig
from ..data._types import FileSplit, ImageSplit, Split
from .geometry import decode_boxes

__all__ = [
    "PredictorSpec", "PREDICTOR_HEADS", "DEFAULT_PREDICTOR", "register_predictor",
    "list_predictors", "get_predictor_spec", "build_predictor", "predictor_spec_of",
    "decode_boxes", "decode_boxes_tf", "box_loss_tf",
    "PredictorTrainConfig", "PredictorTrainResult", "train_predictor", "predict_boxes",
    "save_predictor", "load_predictor", "read_predictor_sidecar", "PREDICTOR_FORMAT",
    "predictor_export_model",
    "OUTPUT_NAME",
]

log = logging.getLogger(__name__)


PREDICTOR_HEADS = ("heat", "reg")
PREDICTOR_FORMAT = "tfedge-predictor"
OUTPUT_NAME = "box_params"
HEAT_LOGIT_NAME = "flat_logit"
HEAT_SIZE_NAME = "flat_size"
#: Stride-4 features the auxiliary classifier pools with the centre softmax.
CLASS_FEATURES = "td4_pw_relu"
SIDECAR_SUFFIX = ".json"
#: Total downsampling of the backbone; the resolution must be a multiple of it.
OUTPUT_STRIDE = 16
#: The heat head predicts at this stride (the top-down path ends there).
HEAT_STRIDE = 4
MIN_RESOLUTION = 32
MAX_RESOLUTION = 256
MIN_WIDTH = 4
MAX_WIDTH = 64
#: Hidden units of the regression head's first dense layer, per unit of width.
REG_HIDDEN_PER_WIDTH = 4
#: BatchNorm momentum: short schedules need statistics that follow the data.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
DEFAULT_PREDICTOR = "boxnet_heat_r96_w11"

_NAME_RE = re.compile(r"boxnet_(?P<head>[a-z]+)_r(?P<r>\d+)_w(?P<w>\d+)")


# --------------------------------------------------------------------------- spec and registry


@dataclass(frozen=True)
class PredictorSpec:
    """Architecture of a foreground predictor (plain data, no TensorFlow).

    head: ``'heat'`` (soft-argmax centre + size maps) or ``'reg'`` (dense regression).
    resolution: square input side in pixels, a multiple of 16 in [32, 256].
    width: channels of the stem; stages have 2x, 4x and 8x that.
    """

    head: str = "heat"
    resolution: int = 64
    width: int = 16

    def __post_init__(self) -> None:
        if self.head not in PREDICTOR_HEADS:
            raise ModelConfigError(f"predictor head {self.head!r} is not valid: choose one of "
                                   f"{', '.join(PREDICTOR_HEADS)}")
        r = self.resolution
        if isinstance(r, bool) or not isinstance(r, int) or r % OUTPUT_STRIDE \
                or not MIN_RESOLUTION <= r <= MAX_RESOLUTION:
            raise ModelConfigError(
                f"predictor resolution {r!r} is not valid: use a multiple of {OUTPUT_STRIDE} "
                f"in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], e.g. 48, 64 or 96")
        w = self.width
        if isinstance(w, bool) or not isinstance(w, int) or not MIN_WIDTH <= w <= MAX_WIDTH:
            raise ModelConfigError(f"predictor width {w!r} is not valid: use a whole number in "
                                   f"[{MIN_WIDTH}, {MAX_WIDTH}], e.g. 16")

    @property
    def name(self) -> str:
        return f"boxnet_{self.head}_r{self.resolution}_w{self.width}"

    def with_changes(self, **changes: Any) -> "PredictorSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_REGISTRY: dict[str, Callable[[], PredictorSpec]] = {}


def register_predictor(name: str, factory: Callable[[], PredictorSpec], *,
                       overwrite: bool = False) -> None:
    """Register a friendly predictor name (``tfedge predictor list`` shows them)."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ModelConfigError(f"predictor name {name!r} is not valid: use lower-case "
                               "letters, digits and '_'")
    if name in _REGISTRY and not overwrite:
        raise ModelConfigError(f"predictor {name!r} is already registered: pick another name "
                               "or pass overwrite=True")
    _REGISTRY[name] = factory


def list_predictors() -> list[str]:
    """Sorted registered predictor names."""
    return sorted(_REGISTRY)


def _spec_from_name(name: str) -> Optional[PredictorSpec]:
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return None
    return PredictorSpec(head=match["head"], resolution=int(match["r"]), width=int(match["w"]))


def get_predictor_spec(name: Union[str, PredictorSpec], **changes: Any) -> PredictorSpec:
    """The spec of a registered or encoded predictor name, with fields overridden."""
    if isinstance(name, PredictorSpec):
        spec = name
    elif isinstance(name, str) and name in _REGISTRY:
        spec = _REGISTRY[name]()
    elif isinstance(name, str) and _spec_from_name(name) is not None:
        spec = _spec_from_name(name)
    else:
        names = list_predictors()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ModelConfigError(
            f"unknown predictor {name!r}: {hint}choose one of {', '.join(names)} or an encoded "
            "name boxnet_<heat|reg>_r<resolution>_w<width> (tfedge predictor list shows them)")
    changes = {k: v for k, v in changes.items() if v is not None}
    return spec.with_changes(**changes) if changes else spec


def predictor_spec_of(model: Any) -> PredictorSpec:
    """Recover the spec of a predictor built by :func:`build_predictor` (from its name).

    For a :class:`~tfedge.crop.RefinedPredictor`, the spec of its first stage
    (the model that sees the whole image).
    """
    from ._refine import RefinedPredictor

    if isinstance(model, RefinedPredictor):
        model = model.predictor
    spec = _spec_from_name(str(getattr(model, "name", "")))
    if spec is None:
        raise ModelConfigError(f"model {getattr(model, 'name', None)!r} is not a tfedge box "
                               "predictor: build one with tfedge.crop.build_predictor")
    return spec


#: (resolution, width) pairs registered for each head: about 2-4 MMACs each, i.e. within
#: 5 % of the 82-MMAC base classifier (resnet10_050 at 128 px).
_REGISTERED_SIZES = ((48, 16), (64, 12), (64, 16), (96, 11), (112, 9), (128, 8))
for _head in PREDICTOR_HEADS:
    for _res, _w in _REGISTERED_SIZES:
        register_predictor(f"boxnet_{_head}_r{_res}_w{_w}",
                           (lambda h=_head, r=_res, w=_w: PredictorSpec(h, r, w)))
del _head, _res, _w


# --------------------------------------------------------------------------- the Keras model


def _conv_bn_relu(x: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
    import keras

    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _separable(x: Any, filters: int, stride: int, name: str) -> Any:
    """Depthwise 3x3 (stride) -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""
    import keras

    x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                     name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_dw_relu")(x)
    return _conv_bn_relu(x, filters, 1, 1, f"{name}_pw")


def _cell_centres(side: int) -> np.ndarray:
    """``(side * side, 2)`` normalised ``(y, x)`` centres of a side x side grid, row-major."""
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def build_predictor(spec: Union[str, PredictorSpec] = DEFAULT_PREDICTOR) -> Any:
    """An untrained Keras predictor: float32 raw pixels ``(r, r, 3)`` -> ``(4,)`` box parameters."""
    import keras

    from ..models._layers import image_input

    spec = get_predictor_spec(spec)
    w = spec.width
    inputs, x = image_input(spec.resolution)
    x = _conv_bn_relu(x, w, 3, 2, "stem")                       # stride 2
    x = _separable(x, 2 * w, 2, "s4a")
    f4 = _separable(x, 2 * w, 1, "s4b")                         # stride 4
    x = _separable(f4, 4 * w, 2, "s8a")
    f8 = _separable(x, 4 * w, 1, "s8b")                         # stride 8
    x = _separable(f8, 8 * w, 2, "s16a")
    x = _separable(x, 8 * w, 1, "s16b")
    f16 = _separable(x, 8 * w, 1, "s16c")                       # stride 16
    if spec.head == "reg":
        x = _conv_bn_relu(f16, 2 * w, 1, 1, "reg_reduce")
        x = keras.layers.Flatten(name="reg_flatten")(x)
        x = keras.layers.Dense(REG_HIDDEN_PER_WIDTH * w, activation="relu", name="reg_hidden")(x)
        out = keras.layers.Dense(4, activation="sigmoid", name=OUTPUT_NAME)(x)
        return keras.Model(inputs, out, name=spec.name)
    # Top-down path: stride 16 -> 8 -> 4, adding lateral 1x1 projections.
    x = _conv_bn_relu(f16, 4 * w, 1, 1, "top16")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up8")(x)
    x = keras.layers.Add(name="merge8")([x, _conv_bn_relu(f8, 4 * w, 1, 1, "lat8")])
    x = _separable(x, 2 * w, 1, "td8")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up4")(x)
    x = keras.layers.Add(name="merge4")([x, _conv_bn_relu(f4, 2 * w, 1, 1, "lat4")])
    x = _separable(x, 2 * w, 1, "td4")
    side = spec.resolution // HEAT_STRIDE
    cells = side * side
    logit = keras.layers.Conv2D(1, 1, name="centre_logit")(x)
    sizes = keras.layers.Conv2D(2, 1, activation="sigmoid", name="size_map")(x)
    flat_logit = keras.layers.Reshape((cells,), name=HEAT_LOGIT_NAME)(logit)
    prob = keras.layers.Softmax(name="centre_prob")(flat_logit)
    centre_layer = keras.layers.Dense(2, use_bias=False, trainable=False, name="centre")
    centre = centre_layer(prob)
    centre_layer.set_weights([_cell_centres(side)])
    size = keras.layers.Dot(axes=1, name="size")(
        [prob, keras.layers.Reshape((cells, 2), name=HEAT_SIZE_NAME)(sizes)])
    out = keras.layers.Concatenate(name=OUTPUT_NAME)([centre, size])
    return keras.Model(inputs, out, name=spec.name)


def predictor_export_model(model: Any) -> Any:
    """The model to convert to int8 TFLite: heat maps out, decoded on the device in float.

    For the heat head, outputs ``[centre logits (B, S*S), sizes (B, S*S, 2)]``
    (decoded by :func:`tfedge.crop.geometry.decode_predictor_outputs`): an
    int8 softmax has 1/256 steps, too coarse for the hundreds of cells of a
    96-px input (the in-model soft-argmax lost 0.03 mean IoU in int8; this
    form loses none). The regression head is returned unchanged (one
    ``(B, 4)`` output). Same layers and weights; named like ``model``.
    """
    import keras

    from ._refine import RefinedPredictor

    if isinstance(model, RefinedPredictor):
        first = model.predictor_path or "the file the refiner's sidecar names under 'refines'"
        raise TfedgeError(f"{model.name} is a refined predictor: bundles do not hold refiners "
                          f"yet. Convert its first-stage predictor ({first}) instead")
    spec = predictor_spec_of(model)
    if spec.head != "heat":
        return model
    return keras.Model(model.input, [model.get_layer(HEAT_LOGIT_NAME).output,
                                      model.get_layer(HEAT_SIZE_NAME).output], name=model.name)


# --------------------------------------------------------------------------- decoding and loss


def decode_boxes_tf(params: Any) -> Any:
    """TensorFlow twin of :func:`decode_boxes` (used in the training loss)."""
    import tensorflow as tf

    cy, cx, h, w = tf.unstack(tf.cast(params, tf.float32), axis=-1)
    half_h = tf.maximum(h, 0.0) * 0.5
    half_w = tf.maximum(w, 0.0) * 0.5
    return tf.clip_by_value(tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], -1),
                            0.0, 1.0)


def box_loss_tf(true_boxes: Any, pred_boxes: Any, l1_weight: float = 1.0,
                giou_weight: float = 1.0) -> Any:
    """Per-example ``l1_weight * mean|pred - true| + giou_weight * (1 - GIoU)``.

    GIoU (Rezatofighi et al. 2019) has a useful gradient even when the boxes
    do not overlap, and it optimises the overlap that IoU measures; the L1
    term keeps the corners precise once they do.
    """
    import tensorflow as tf

    t = tf.cast(true_boxes, tf.float32)
    p = tf.cast(pred_boxes, tf.float32)
    l1 = tf.reduce_mean(tf.abs(p - t), axis=-1)
    area_t = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    area_p = tf.maximum(p[:, 2] - p[:, 0], 0.0) * tf.maximum(p[:, 3] - p[:, 1], 0.0)
    ih = tf.maximum(tf.minimum(t[:, 2], p[:, 2]) - tf.maximum(t[:, 0], p[:, 0]), 0.0)
    iw = tf.maximum(tf.minimum(t[:, 3], p[:, 3]) - tf.maximum(t[:, 1], p[:, 1]), 0.0)
    inter = ih * iw
    union = area_t + area_p - inter
    iou = inter / tf.maximum(union, 1e-7)
    hull = ((tf.maximum(t[:, 2], p[:, 2]) - tf.minimum(t[:, 0], p[:, 0]))
            * (tf.maximum(t[:, 3], p[:, 3]) - tf.minimum(t[:, 1], p[:, 1])))
    giou = iou - (hull - union) / tf.maximum(hull, 1e-7)
    return l1_weight * l1 + giou_weight * (1.0 - giou)


def centre_loss_tf(true_boxes: Any, flat_logits: Any, centres: Any, sigma: float) -> Any:
    """Cross-entropy between the centre softmax and a Gaussian at the true centre.

    The Gaussian's standard deviation is ``sigma`` times the object's mean
    side (so a large object's centre is allowed to be vaguer), never below
    half a cell. It gives every cell a gradient from the first step, which
    the box loss alone (through the soft-argmax) does not: training
    converges in a fraction of the steps.
    """
    import tensorflow as tf

    t = tf.cast(true_boxes, tf.float32)
    cy = (t[:, 0] + t[:, 2]) * 0.5
    cx = (t[:, 1] + t[:, 3]) * 0.5
    side = ((t[:, 2] - t[:, 0]) + (t[:, 3] - t[:, 1])) * 0.5
    cells = tf.cast(tf.shape(centres)[0], tf.float32)
    min_sigma = 0.5 / tf.sqrt(cells)  # half a cell, in normalised units
    s = tf.maximum(sigma * side, min_sigma)
    d2 = (tf.square(centres[None, :, 0] - cy[:, None]) + tf.square(centres[None, :, 1] - cx[:, None]))
    target = tf.nn.softmax(-d2 / (2.0 * tf.square(s[:, None])), axis=-1)
    return tf.nn.softmax_cross_entropy_with_logits(target, flat_logits) \
        + tf.reduce_sum(target * tf.math.log(target + 1e-12), axis=-1)  # minus the entropy: 0 at best


# --------------------------------------------------------------------------- training

#: Photometric augmentation strengths (the benchmark has 13 training backgrounds: the
#: predictor must not learn them by their colours).
GRAYSCALE_PROBABILITY = 0.2
CHANNEL_SHUFFLE_PROBABILITY = 0.5
BRIGHTNESS_DELTA = 40.0
CONTRAST_RANGE = (0.6, 1.4)
MIX_PROBABILITY = 0.5
MIX_EXTENT = (0.25, 0.7)
MIX_OBJECT_PADDING = 0.02
_CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def augment_batch_tf(images: Any, boxes: Any, seed: Any, *, photometric: bool = False,
                     dihedral: bool = False, mix: bool = False) -> tuple[Any, Any]:
    """Per-image colour and orientation augmentation of a batch, boxes following.

    photometric: random channel order, grayscale, brightness and contrast.
    dihedral: a random one of the 8 rotations/reflections of the square
        (transpose, then flips), exact for boxes: the predictor sees scenes
        in orientations the few training photos never had.
    mix: with probability 1/2, a random rectangle of another image of the
        batch replaces the background (never either image's object): new
        mixtures of the few training photos, with hard-edged distractors.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 10)
    n = tf.shape(images)[0]
    x = tf.cast(images, tf.float32)
    if mix:
        size = tf.cast(tf.shape(x)[1], tf.float32)
        grid = (tf.range(size) + 0.5) / size
        other = tf.roll(x, 1, axis=0)
        other_box = tf.roll(boxes, 1, axis=0)
        corner = tf.random.stateless_uniform([n, 2], seeds[7], -0.2, 1.0)
        extent = tf.random.stateless_uniform([n, 2], seeds[8], *MIX_EXTENT)
        rect = tf.concat([corner, corner + extent], axis=1)

        def inside(b):  # (n, S, S) booleans: cell centre inside box b (NaN: nowhere)
            ys = (grid[None, :] >= b[:, 0:1]) & (grid[None, :] < b[:, 2:3])
            xs = (grid[None, :] >= b[:, 1:2]) & (grid[None, :] < b[:, 3:4])
            return ys[:, :, None] & xs[:, None, :]

        pad = MIX_OBJECT_PADDING
        padded = boxes + tf.constant([-pad, -pad, pad, pad])
        other_padded = other_box + tf.constant([-pad, -pad, pad, pad])
        use = tf.random.stateless_uniform([n, 1, 1], seeds[9]) < MIX_PROBABILITY
        mask = inside(rect) & ~inside(padded) & ~inside(other_padded) & use
        x = tf.where(mask[..., None], other, x)
    if photometric:
        order = tf.random.stateless_uniform([n], seeds[0], 0, len(_CHANNEL_ORDERS), tf.int32)
        use = tf.random.stateless_uniform([n], seeds[1]) < CHANNEL_SHUFFLE_PROBABILITY
        order = tf.where(use, order, 0)
        perm = tf.gather(tf.constant(_CHANNEL_ORDERS, tf.int32), order)  # (n, 3)
        x = tf.gather(x, perm, axis=3, batch_dims=1)
        gray = tf.reduce_mean(x, axis=3, keepdims=True) * tf.ones_like(x)
        to_gray = tf.random.stateless_uniform([n, 1, 1, 1], seeds[2]) < GRAYSCALE_PROBABILITY
        x = tf.where(to_gray, gray, x)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        contrast = tf.random.stateless_uniform([n, 1, 1, 1], seeds[3], *CONTRAST_RANGE)
        bright = tf.random.stateless_uniform([n, 1, 1, 1], seeds[4], -BRIGHTNESS_DELTA,
                                             BRIGHTNESS_DELTA)
        x = tf.clip_by_value((x - mean) * contrast + mean + bright, 0.0, 255.0)
    b = boxes
    if dihedral:
        transpose = tf.random.stateless_uniform([n], seeds[5]) < 0.5
        x = tf.where(transpose[:, None, None, None], tf.transpose(x, [0, 2, 1, 3]), x)
        b = tf.where(transpose[:, None], tf.gather(b, [1, 0, 3, 2], axis=1), b)
        vflip = tf.random.stateless_uniform([n], seeds[6]) < 0.5
        x = tf.where(vflip[:, None, None, None], tf.reverse(x, axis=[1]), x)
        b = tf.where(vflip[:, None], tf.stack([1.0 - b[:, 2], b[:, 1], 1.0 - b[:, 0], b[:, 3]], 1), b)
        # Left-right flips come from the dataset's own augmentation.
    return x, b



def _default_predictor_augment() -> AugmentConfig:
    # The predictor always sees the whole image at inference, so training crops keep the
    # whole object (min_box_visible=1) and vary its scale and position only.
    return AugmentConfig(scale=(0.45, 1.0), ratio=(3 / 4, 4 / 3), min_box_visible=1.0, flip=True)


@dataclass(frozen=True)
class PredictorTrainConfig:
    """How to train a predictor. Defaults work for the built-in benchmark.

    The loss is ``l1_weight * L1 + giou_weight * (1 - GIoU)`` on the decoded
    box, plus optional auxiliary terms for the heat head: ``heatmap_weight``
    times the cross-entropy of the centre softmax against a Gaussian at the
    true centre (``heatmap_sigma`` of the object's side), and
    ``class_weight`` times the cross-entropy of a training-only classifier
    reading the features the centre softmax attends to. ``augment`` is the
    dataset's box-keeping random resized crop and flip (None: none); ``photometric``
    (colour), ``dihedral`` (rotations) and ``mix`` (background patches from
    other images) are extra batch augmentations. On the built-in benchmark
    (12 epochs, validation mean IoU of ``boxnet_heat_r64_w16``) none of the
    extras helped: none 0.659, heatmap 0.1 0.651, photometric 0.653,
    photometric + dihedral 0.624, photometric + mix + class 0.5 0.607; so
    all are off by default. Pasting object-sized soft ellipses of other
    photos (tinted like the objects half the time) as distractors did not
    help either: ``boxnet_heat_r96_w11`` 0.649 against 0.701 without; nor
    did 8 more training scenes (21 photos instead of 13): 0.658. What is
    missed are the held-out photos' salient things, and a harder training
    set only lowers the fit.

    Where (``miou_by_background`` of ``benchmarks/crop.py``): on the test
    split ``astronaut`` scores 0.34, about half its images missed (the
    orange suit, flag and patch draw the centre), ``coffee`` and ``retina``
    0.69, ``cell``, ``moon`` and ``text`` 0.85. Augmentations that make the
    net ignore colourful regions (a random hue rotation with saturation
    x1-2.5, or a smooth random hue and saturation field, each on half the
    images, then 3 clean epochs to recover the fit) raise ``astronaut`` to
    0.41-0.44 and lower the others: validation 0.706-0.711 over two seeds,
    against 0.70-0.71 without. Subtracting the image's mean colour in the
    model gave 0.669, weight averaging (EMA 0.995) 0.675. An extra input
    channel marking where neighbouring pixels share one colour direction
    (true inside every tinted garment, whose interior is tint x shade)
    sharpened the gray scenes (``cell``, ``moon``, ``text`` 0.90) but lost
    the colourful ones (``astronaut`` 0.20, ``retina`` 0.46): 0.653.
    The default itself varies with the seed: test mean IoU 0.713, 0.703 and
    0.655 for seeds 0-2 (``coffee`` 0.69, 0.61, 0.40).
    """

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    l1_weight: float = 1.0
    giou_weight: float = 1.0
    heatmap_weight: float = 0.0
    heatmap_sigma: float = 0.25
    class_weight: float = 0.0
    photometric: bool = False
    dihedral: bool = False
    mix: bool = False
    seed: int = 0
    augment: Optional[AugmentConfig] = field(default_factory=_default_predictor_augment)
    steps_per_epoch: Optional[int] = None
    bn_recalibration_batches: int = 32

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TfedgeError(f"{key} must be a whole number >= 1, got {value!r}")
        if not self.learning_rate > 0:
            raise TfedgeError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.l1_weight < 0 or self.giou_weight < 0 or self.l1_weight + self.giou_weight == 0:
            raise TfedgeError(f"loss weights must be >= 0 and not both 0, got l1_weight="
                              f"{self.l1_weight}, giou_weight={self.giou_weight}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise TfedgeError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PredictorTrainResult:
    model_path: Optional[Path]
    epochs_run: int
    train_seconds: float
    history: tuple[dict[str, float], ...]
    val: Optional[dict[str, float]]  # IoU summary on the validation split


def with_box_labels(split: Split, boxes: np.ndarray) -> Split:
    """``split`` with its boxes replaced by ``boxes`` (``(N, 4)``, NaN rows = unknown)."""
    boxes = np.asarray(boxes, np.float32)
    if boxes.shape != (len(split), 4):
        raise DatasetError(f"box labels must have shape ({len(split)}, 4), got {boxes.shape}")
    if isinstance(split, ImageSplit):
        if np.isnan(boxes).any():
            raise DatasetError("an ImageSplit cannot hold unknown (NaN) boxes: fill them first "
                               "(Grad-CAM pseudo-boxes, tfedge.crop.box_labels)")
        return dataclasses.replace(split, boxes=boxes)
    return dataclasses.replace(split, boxes=boxes)


def _known_count(split: Split) -> int:
    if split.boxes is None:
        return 0
    return int((~np.isnan(np.asarray(split.boxes)).any(axis=1)).sum())


def train_predictor(model: Any, train: Split, *,
                    val: Optional[Split] = None,
                    config: PredictorTrainConfig = PredictorTrainConfig(),
                    output: Union[str, os.PathLike, None] = None,
                    metadata: Optional[dict] = None) -> tuple[Any, PredictorTrainResult]:
    """Train a foreground predictor on ``train``'s boxes; return ``(model, result)``.

    model: a predictor name (e.g. :data:`DEFAULT_PREDICTOR`) or spec (built
        here), or a Keras predictor to fine-tune.
    train: a split with boxes (ground truth, or pseudo-boxes set with
        :func:`with_box_labels`); examples with unknown (NaN) boxes are skipped.
    val: scored (mean IoU and percentiles) after training, if given and boxed.
    output: where to write the ``.keras`` predictor and its JSON sidecar.
    """
    import keras
    import tensorflow as tf

    from .._train import recalibrate_batchnorm
    from ..data._pipeline import BOX_KEY, LABEL_KEY, make_dataset
    from ._evaluate import iou_summary

    if not isinstance(train, (ImageSplit, FileSplit)):
        raise DatasetError("train_predictor needs a training split (an ImageSplit or FileSplit)")
    known = _known_count(train)
    if known == 0:
        raise DatasetError("the training split has no boxes: give ground-truth boxes or "
                           "Grad-CAM pseudo-boxes (tfedge.crop.box_labels) to train a predictor")
    output = Path(output) if output is not None else None
    if output is not None and output.suffix != ".keras":
        raise TfedgeError(f"predictor files must end in .keras, got {str(output)!r}")
    if isinstance(model, keras.Model):
        net = model
        spec = predictor_spec_of(net)
    else:
        spec = get_predictor_spec(model)
        keras.utils.set_random_seed(config.seed)  # the seed decides the initial weights too
        net = build_predictor(spec)
    res = spec.resolution
    steps = config.steps_per_epoch or max(1, known // config.batch_size)
    total = config.epochs * steps
    warmup = max(1, int(round(config.warmup_epochs * steps)))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - warmup), warmup_target=config.learning_rate,
        warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    l1_w, giou_w = float(config.l1_weight), float(config.giou_weight)
    heat_w = float(config.heatmap_weight) if spec.head == "heat" else 0.0
    class_w = float(config.class_weight) if spec.head == "heat" else 0.0
    # The same layers, also exposing what the auxiliary losses need.
    outputs = [net.output, net.get_layer(HEAT_LOGIT_NAME).output if heat_w else net.output]
    class_head = None
    if class_w:
        outputs += [net.get_layer("centre_prob").output, net.get_layer(CLASS_FEATURES).output]
        class_head = keras.layers.Dense(train.num_classes, name="aux_class")
        class_head.build((None, net.get_layer(CLASS_FEATURES).output.shape[-1]))
    train_net = keras.Model(net.input, outputs)
    variables = net.trainable_variables + (class_head.trainable_variables if class_head else [])
    centres = tf.constant(_cell_centres(spec.resolution // HEAT_STRIDE))
    photometric, dihedral, mix = bool(config.photometric), bool(config.dihedral), bool(config.mix)

    @tf.function
    def train_step(images, boxes, labels, seed):
        images, boxes = augment_batch_tf(images, boxes, seed, photometric=photometric,
                                         dihedral=dihedral, mix=mix)
        mask = tf.cast(tf.logical_not(tf.reduce_any(tf.math.is_nan(boxes), axis=-1)), tf.float32)
        safe = tf.where(tf.math.is_nan(boxes), 0.5, boxes)
        with tf.GradientTape() as tape:
            out = train_net(images, training=True)
            pred = decode_boxes_tf(out[0])
            losses = box_loss_tf(safe, pred, l1_w, giou_w)
            if heat_w:
                losses += heat_w * centre_loss_tf(safe, out[1], centres, config.heatmap_sigma)
            losses = losses * mask
            loss = tf.reduce_sum(losses) / tf.maximum(tf.reduce_sum(mask), 1.0)
            if class_head is not None:
                # Classify the features the centre softmax attends to: the class can only
                # be read off the object, so recognising it and finding it are one task.
                feats = out[3]
                flat = tf.reshape(feats, [tf.shape(feats)[0], -1, feats.shape[-1]])
                pooled = tf.einsum("bn,bnc->bc", out[2], flat)
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    tf.cast(labels, tf.int32), class_head(pooled))
                loss += class_w * tf.reduce_mean(ce)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    history: list[dict[str, float]] = []
    start = time.perf_counter()
    extra = tf.random.Generator.from_seed(config.seed)
    for epoch in range(config.epochs):
        ds = make_dataset(train, resolution=res, batch_size=config.batch_size, training=True,
                          augment=config.augment or NO_AUGMENT,
                          seed=config.seed * 1000 + epoch, repeat=True,
                          drop_remainder=True, with_boxes=True)
        t0 = time.perf_counter()
        loss_sum = 0.0
        for images, targets in ds.take(steps):
            loss_sum += float(train_step(images, targets[BOX_KEY], targets[LABEL_KEY],
                                         extra.make_seeds(1)[:, 0]))
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": loss_sum / steps, "seconds": seconds,
                  "images_per_second": steps * config.batch_size / seconds}
        history.append(record)
        log.info("predictor epoch %d/%d  loss %.4f  %.0f img/s", epoch + 1, config.epochs,
                 record["loss"], record["images_per_second"])
    train_seconds = time.perf_counter() - start
    if config.bn_recalibration_batches:
        recalibrate_batchnorm(net, train, batches=config.bn_recalibration_batches)
    val_summary = None
    if val is not None and _known_count(val):
        val_summary = iou_summary(predict_boxes(net, val), val.boxes)
        log.info("predictor validation mean IoU %.4f (median %.4f)", val_summary["miou"],
                 val_summary["p50"])
    if output is not None:
        meta = {"train_config": config.to_dict(), "train_seconds": train_seconds,
                "val": val_summary, "class_names": list(train.class_names)}
        meta.update(metadata or {})
        save_predictor(net, output, meta)
    return net, PredictorTrainResult(output, config.epochs, train_seconds, tuple(history),
                                     val_summary)


def predict_boxes(predictor: Any, split: Split, *, batch_size: int = 256) -> np.ndarray:
    """Predicted normalised boxes ``(N, 4)`` for every image of ``split`` (whole image resized).

    A :class:`~tfedge.crop.RefinedPredictor` predicts, then refines its boxes.
    """
    from ..data._pipeline import make_dataset
    from ._refine import RefinedPredictor, refine_boxes

    if isinstance(predictor, RefinedPredictor):
        first = predict_boxes(predictor.predictor, split, batch_size=batch_size)
        return refine_boxes(predictor.refiner, split, first, window=predictor.window,
                            passes=predictor.passes, batch_size=batch_size)
    spec = predictor_spec_of(predictor)
    ds = make_dataset(split, resolution=spec.resolution, batch_size=batch_size, training=False)
    out = [np.asarray(predictor(images, training=False)) for images, _ in ds]
    if not out:
        return np.zeros((0, 4), np.float32)
    return decode_boxes(np.concatenate(out))


# --------------------------------------------------------------------------- files


def _sidecar(path: Path) -> Path:
    return path.with_suffix(path.suffix + SIDECAR_SUFFIX)


def save_predictor(model: Any, path: Union[str, os.PathLike], metadata: Optional[dict] = None) -> Path:
    """Write ``model`` as a ``.keras`` file atomically, with a JSON sidecar (format, spec, decode)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise TfedgeError(f"predictor files must end in .keras, got {str(path)!r}")
    spec = predictor_spec_of(model)
    with atomic_path(path) as tmp:
        model.save(tmp)
    meta = {"format": PREDICTOR_FORMAT, "version": 1, "model_name": model.name,
            "spec": spec.to_dict(), "resolution": spec.resolution,
            "output": "box_params (cy, cx, h, w) in [0, 1]; box = (cy - h/2, cx - w/2, "
                      "cy + h/2, cx + w/2) clipped to [0, 1] (tfedge.crop.decode_boxes)",
            "export": "convert tfedge.crop.predictor_export_model(model) to int8; decode its "
                      "outputs with tfedge.crop.geometry.decode_predictor_outputs"}
    meta.update(metadata or {})
    atomic_write_json(_sidecar(path), meta)
    return path


def read_predictor_sidecar(path: Union[str, os.PathLike]) -> dict[str, Any]:
    side = _sidecar(Path(path))
    if not side.exists():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise TfedgeError(f"{side}: not valid JSON ({exc.msg} at line {exc.lineno}): delete it "
                          "or write it again") from exc


def load_predictor(path: Union[str, os.PathLike]) -> Any:
    """Load a predictor written by :func:`save_predictor` (checks that it is one).

    A refiner's file (:func:`tfedge.crop.train_refiner`) loads as a
    :class:`~tfedge.crop.RefinedPredictor`: the predictor its sidecar names
    plus the refiner.
    """
    from .._train import load_classifier

    path = Path(path)
    if not path.exists():
        raise TfedgeError(f"predictor file {str(path)!r} does not exist: train one with "
                          "'tfedge predictor train'")
    sidecar = read_predictor_sidecar(path)
    if sidecar.get("role") == "refiner":
        from ._refine import load_refined

        return load_refined(path, sidecar)
    model = load_classifier(path)
    predictor_spec_of(model)  # raises a clear error for a classifier passed by mistake
    return model
