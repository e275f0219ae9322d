"""Pseudo-boxes from a teacher classifier's Grad-CAM, for datasets without boxes.

The paper trains its foreground predictor on boxes derived from class
activation maps when a dataset has none. Here:

1. :func:`gradcam_maps` -- Grad-CAM (Selvaraju et al. 2017) of the teacher at
   one convolutional layer: the feature maps weighted by the spatially
   averaged gradient of the target class's logit, ReLU, scaled so each map's
   peak is 1. The target is the true label when known (training data), else
   the teacher's own top class.
2. :func:`cam_boxes` (pure numpy) -- each map is upsampled (the same
   bilinear sampling as the pipeline), thresholded at ``threshold`` times its
   peak, and the box of the connected strong region that holds the peak is
   taken (other, weaker blobs are background the teacher also looked at).
3. :func:`box_labels` -- ground-truth boxes where the split has them, Grad-CAM
   pseudo-boxes elsewhere: what :func:`tfedge.crop.train_predictor` trains on.

The default layer is the last one whose output is still at least
:data:`MIN_CAM_SIDE` cells wide (stride 16 for a 128-px ResNet: 8x8 cells):
the last stage's 4x4 map is too coarse to place a box edge.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from .._errors import DatasetError, ModelConfigError
from ..data._types import FileSplit, ImageSplit, Split
from .geometry import resize_bilinear

__all__ = ["DEFAULT_CAM_THRESHOLD", "MIN_CAM_SIDE", "CAM_BOX_RESOLUTION", "default_cam_layer",
           "gradcam_maps", "cam_boxes", "gradcam_boxes", "box_labels"]

log = logging.getLogger(__name__)


DEFAULT_CAM_THRESHOLD = 0.35
"""Cells at or above this fraction of the map's peak are "strong"."""
MIN_CAM_SIDE = 8
"""The default layer is the last whose map is at least this many cells wide."""
CAM_BOX_RESOLUTION = 64
"""Maps are upsampled to this side before thresholding: box edges land on 1/64 steps."""
_CHUNK = 512


def default_cam_layer(model: Any) -> str:
    """Name of the last 4-D layer output at least :data:`MIN_CAM_SIDE` cells wide."""
    best = None
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and shape[1] is not None and shape[1] >= MIN_CAM_SIDE \
                and shape[1] < model.input_shape[1]:
            best = layer.name
    if best is None:
        raise ModelConfigError(f"model {model.name!r} has no convolutional layer with a map of "
                               f"at least {MIN_CAM_SIDE} cells: pass layer= explicitly")
    return best


def gradcam_maps(model: Any, split: Split, *, layer: Optional[str] = None,
                 use_labels: bool = True, batch_size: int = 128) -> np.ndarray:
    """Grad-CAM maps ``(N, h, w)`` in ``[0, 1]`` (peak 1; all-zero where nothing is positive)."""
    import keras
    import tensorflow as tf

    from .._train import model_resolution
    from ..data._tfdata import make_dataset

    num_outputs = int(model.output_shape[-1])
    if use_labels and split.num_classes > num_outputs:
        raise ModelConfigError(f"the dataset has {split.num_classes} classes but the Grad-CAM "
                               f"teacher {model.name!r} outputs {num_outputs}: use a teacher "
                               "trained on this dataset's classes")
    name = layer or default_cam_layer(model)
    try:
        features = model.get_layer(name).output
    except ValueError:
        raise ModelConfigError(f"model {model.name!r} has no layer {name!r}: pick one of its "
                               "convolutional layers (model.summary() lists them)") from None
    probe = keras.Model(model.input, [features, model.output])
    res = model_resolution(model)
    ds = make_dataset(split, resolution=res, batch_size=batch_size, training=False)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            fmap, logits = probe(images, training=False)
            target = labels if use_labels else tf.argmax(logits, axis=-1, output_type=tf.int32)
            score = tf.reduce_sum(tf.gather(logits, target, axis=1, batch_dims=1))
        grads = tape.gradient(score, fmap)
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))
        peak = tf.reduce_max(cam, axis=[1, 2], keepdims=True)
        return tf.math.divide_no_nan(cam, peak)

    maps = [step(images, tf.cast(labels, tf.int32)).numpy() for images, labels in ds]
    return np.concatenate(maps).astype(np.float32)


def _grow_regions(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 8-connected parts of ``mask`` (``(N, H, W)`` bool) that touch ``seed``."""
    region = seed & mask
    while True:
        grown = region.copy()
        grown[:, 1:, :] |= region[:, :-1, :]
        grown[:, :-1, :] |= region[:, 1:, :]
        step = grown.copy()
        step[:, :, 1:] |= grown[:, :, :-1]
        step[:, :, :-1] |= grown[:, :, 1:]
        step &= mask
        if np.array_equal(step, region):
            return region
        region = step


def cam_boxes(maps: np.ndarray, threshold: float = DEFAULT_CAM_THRESHOLD, *,
              resolution: int = CAM_BOX_RESOLUTION) -> np.ndarray:
    """Boxes ``(N, 4)`` of the strong region holding each map's peak (see the module docstring).

    ``maps`` is ``(N, h, w)`` with values in ``[0, 1]``; each is upsampled to
    ``resolution`` squared. A map with no positive value (the teacher found
    no evidence) gives the whole image.
    """
    maps = np.asarray(maps, np.float32)
    if maps.ndim != 3:
        raise DatasetError(f"CAM maps must be (N, height, width), got shape {maps.shape}")
    if not 0.0 < threshold < 1.0:
        raise DatasetError(f"CAM threshold must be in (0, 1), got {threshold}: e.g. 0.35")
    out = np.empty((len(maps), 4), np.float32)
    for start in range(0, len(maps), _CHUNK):
        chunk = maps[start:start + _CHUNK]
        up = resize_bilinear(np.moveaxis(chunk, 0, -1), resolution, resolution)
        up = np.moveaxis(up, -1, 0)  # (n, R, R)
        peak = up.reshape(len(up), -1).max(axis=1)
        flat_arg = up.reshape(len(up), -1).argmax(axis=1)
        seed = np.zeros(up.shape, bool)
        seed[np.arange(len(up)), flat_arg // resolution, flat_arg % resolution] = True
        region = _grow_regions(seed, up >= threshold * peak[:, None, None])
        rows = region.any(axis=2)
        cols = region.any(axis=1)
        empty = peak <= 0.0
        r0 = rows.argmax(axis=1)
        r1 = resolution - rows[:, ::-1].argmax(axis=1)
        c0 = cols.argmax(axis=1)
        c1 = resolution - cols[:, ::-1].argmax(axis=1)
        boxes = np.stack([r0, c0, r1, c1], axis=1).astype(np.float32) / resolution
        boxes[empty] = (0.0, 0.0, 1.0, 1.0)
        out[start:start + len(chunk)] = boxes
    return out


def gradcam_boxes(teacher: Any, split: Split, *, layer: Optional[str] = None,
                  threshold: float = DEFAULT_CAM_THRESHOLD, use_labels: bool = True,
                  batch_size: int = 128) -> np.ndarray:
    """Pseudo-boxes ``(N, 4)`` for every image of ``split`` from ``teacher``'s Grad-CAM."""
    maps = gradcam_maps(teacher, split, layer=layer, use_labels=use_labels, batch_size=batch_size)
    return cam_boxes(maps, threshold)


def box_labels(split: Split, teacher: Any = None, *, layer: Optional[str] = None,
               threshold: float = DEFAULT_CAM_THRESHOLD, batch_size: int = 128
               ) -> tuple[np.ndarray, dict[str, int]]:
    """Box labels for training a predictor: ground truth where known, Grad-CAM elsewhere.

    Returns ``(boxes (N, 4), counts)`` with ``counts = {"ground_truth": ..,
    "gradcam": ..}``. Without a ``teacher``, a split with unknown boxes is an
    error that says how to get boxes.
    """
    n = len(split)
    boxes = (np.full((n, 4), np.nan, np.float32) if split.boxes is None
             else np.array(split.boxes, np.float32))
    unknown = np.isnan(boxes).any(axis=1)
    counts = {"ground_truth": int(n - unknown.sum()), "gradcam": 0}
    if not unknown.any():
        return boxes, counts
    if teacher is None:
        raise DatasetError(
            f"{int(unknown.sum())} of {n} training images have no box: pass a teacher "
            "classifier (--teacher model.keras) for Grad-CAM pseudo-boxes, or give boxes "
            "(--boxes)")
    idx = np.flatnonzero(unknown)
    subset = split.subset(idx) if isinstance(split, FileSplit) else ImageSplit(
        split.images[idx], split.labels[idx], None, split.class_names)
    boxes[idx] = gradcam_boxes(teacher, subset, layer=layer, threshold=threshold,
                               batch_size=batch_size)
    counts["gradcam"] = int(len(idx))
    log.info("box labels: %d ground truth, %d from Grad-CAM", counts["ground_truth"],
             counts["gradcam"])
    return boxes, counts
