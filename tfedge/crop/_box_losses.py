"""The box predictor's training losses, in TensorFlow (the numpy decoding is
:func:`tfedge.crop.geometry.decode_boxes`)."""

from __future__ import annotations

from typing import Any

__all__ = ["decode_boxes_tf", "box_loss_tf", "centre_loss_tf"]


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
