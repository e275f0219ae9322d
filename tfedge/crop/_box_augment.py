"""Batch augmentation for box training: colour, orientation and background mixing,
the boxes following the pixels (used by :func:`tfedge.crop.train_predictor`)."""

from __future__ import annotations

from typing import Any

__all__ = ["augment_batch_tf"]

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
