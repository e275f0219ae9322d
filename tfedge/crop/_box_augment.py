"""Batch augmentation for box training: colour, orientation, background mixing and
distractors, the boxes following the pixels (used by :func:`tfedge.crop.train_predictor`)."""

from __future__ import annotations

from typing import Any

__all__ = ["augment_batch_tf", "distractor_masks_tf", "paste_distractors_tf"]

#: Photometric augmentation strengths (the benchmark has 13 training backgrounds: the
#: predictor must not learn them by their colours).
GRAYSCALE_PROBABILITY = 0.2
CHANNEL_SHUFFLE_PROBABILITY = 0.5
BRIGHTNESS_DELTA = 40.0
CONTRAST_RANGE = (0.6, 1.4)
MIX_PROBABILITY = 0.5
MIX_EXTENT = (0.25, 0.7)
MIX_OBJECT_PADDING = 0.02
#: Distractors (issue #19): an irregular object-sized blob pasted away from the object, filled
#: half the time with another image's pixels (a non-object patch with the hard edge of a
#: pasted thing), half the time rendered like the benchmark's objects (a random tint times
#: another image's shading): a silhouette that is not a garment. The box stays on the object.
DISTRACTOR_PROBABILITY = 0.5
DISTRACTOR_RADIUS = (0.08, 0.22)   # of the image side: the objects' half-sides
DISTRACTOR_BUMPS = 3               # Gaussian bumps whose sum, thresholded, is the blob
DISTRACTOR_RENDERED_PROBABILITY = 0.5
DISTRACTOR_SHADE_FLOOR = 0.25      # as the benchmark's objects (tfedge.data._benchmark)
_CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def distractor_masks_tf(boxes: Any, seed: Any, size: int) -> Any:
    """``(n, size, size)`` booleans: one irregular blob per image, outside its padded box.

    Images drawn not to get one (``DISTRACTOR_PROBABILITY``) have an empty mask; a box of
    NaNs (unknown) keeps the whole image available.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 4)
    n = tf.shape(boxes)[0]
    grid = (tf.range(size, dtype=tf.float32) + 0.5) / float(size)
    yy = grid[None, :, None, None]
    xx = grid[None, None, :, None]
    centre = tf.random.stateless_uniform([n, 1, 1, 2], seeds[0], 0.1, 0.9)
    radius = tf.random.stateless_uniform([n, 1, 1, 1], seeds[1], *DISTRACTOR_RADIUS)
    offsets = tf.random.stateless_uniform([n, 1, 1, DISTRACTOR_BUMPS, 2], seeds[2], -0.6, 0.6)
    cy = centre[..., 0:1] + offsets[..., 0] * radius
    cx = centre[..., 1:2] + offsets[..., 1] * radius
    bumps = tf.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * (0.6 * radius) ** 2))
    blob = tf.reduce_sum(bumps, axis=-1) > 0.5
    pad = MIX_OBJECT_PADDING
    b = tf.where(tf.math.is_nan(boxes), -1.0, boxes)
    ys = (grid[None, :] >= b[:, 0:1] - pad) & (grid[None, :] < b[:, 2:3] + pad)
    xs = (grid[None, :] >= b[:, 1:2] - pad) & (grid[None, :] < b[:, 3:4] + pad)
    on_object = ys[:, :, None] & xs[:, None, :]
    use = tf.random.stateless_uniform([n, 1, 1], seeds[3]) < DISTRACTOR_PROBABILITY
    return blob & ~on_object & use


def paste_distractors_tf(x: Any, boxes: Any, seed: Any) -> Any:
    """Float pixels ``(n, S, S, 3)`` with a distractor pasted into about half the images."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 3)
    n = tf.shape(x)[0]
    size = int(x.shape[1]) if x.shape[1] is not None else None
    if size is None:
        raise ValueError("distractors need a static image size")
    mask = distractor_masks_tf(boxes, seeds[0], size)
    other = tf.roll(x, 1, axis=0)
    shade = tf.reduce_mean(tf.roll(x, 2, axis=0), axis=3, keepdims=True) / 255.0
    tint = tf.random.stateless_uniform([n, 1, 1, 3], seeds[1], 0.2, 1.0)
    rendered = tint * (DISTRACTOR_SHADE_FLOOR + (1.0 - DISTRACTOR_SHADE_FLOOR) * shade) * 255.0
    use_rendered = tf.random.stateless_uniform([n, 1, 1, 1], seeds[2]) \
        < DISTRACTOR_RENDERED_PROBABILITY
    fill = tf.where(use_rendered, rendered, other)
    return tf.where(mask[..., None], fill, x)


def augment_batch_tf(images: Any, boxes: Any, seed: Any, *, photometric: bool = False,
                     dihedral: bool = False, mix: bool = False,
                     distractors: bool = False) -> tuple[Any, Any]:
    """Per-image colour and orientation augmentation of a batch, boxes following.

    photometric: random channel order, grayscale, brightness and contrast.
    dihedral: a random one of the 8 rotations/reflections of the square
        (transpose, then flips), exact for boxes: the predictor sees scenes
        in orientations the few training photos never had.
    mix: with probability 1/2, a random rectangle of another image of the
        batch replaces the background (never either image's object): new
        mixtures of the few training photos, with hard-edged distractors.
    distractors: with probability 1/2, an object-sized irregular blob away from
        the object (:func:`paste_distractors_tf`): another image's pixels, or a
        tinted, shaded silhouette rendered like the objects but not one.
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
    if distractors:
        x = paste_distractors_tf(x, boxes, tf.random.experimental.stateless_fold_in(seed, 11))
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
