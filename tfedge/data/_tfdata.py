"""The tf.data input pipeline: decoding, box-aware augmentation, batching.

Importing this module does not import TensorFlow; :func:`make_dataset` does.

Element structure of the dataset :func:`make_dataset` returns:

* ``with_boxes=False``: ``(images, labels)``, what ``keras.Model.fit`` wants
  for a classifier.
* ``with_boxes=True``: ``(images, {"label": labels, "box": boxes})``. The
  dict keys are :data:`LABEL_KEY` and :data:`BOX_KEY`; a model with outputs
  named the same trains on it directly, others map it.

``images`` is float32 ``(B, resolution, resolution, 3)`` holding raw pixel
values in ``[0, 255]`` (models rescale themselves, which keeps the int8
deployment's input raw too); ``labels`` int32 ``(B,)``; ``boxes`` float32
``(B, 4)`` normalised ``(ymin, xmin, ymax, xmax)`` in the returned image's
coordinates, NaN for an image whose box is unknown (also after augmentation).

Training (``training=True``) shuffles, then per image: a random resized crop
that keeps at least ``min_box_visible`` of the object box (the label stays
true and the box follows the crop), a bilinear resize to ``resolution``, and a
random left-right flip that flips the box too. Evaluation resizes the whole
image to ``resolution`` (aspect ratio not kept; normalised boxes are
unchanged). All randomness derives from ``seed`` (a seeded shuffle, and
stateless crop and flip ops fed by a seeded stream), so the same seed gives
the same batches, and every pass over one dataset (a Keras epoch) draws a new
order and new crops.

Seams for later stages: :func:`_decoded_examples` yields ``(image uint8
(H, W, 3), label, box)`` per example before any resizing; a crop-to-box stage
(cropping on predicted boxes) maps over that stream in place of
:func:`_augment_example`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .._errors import DatasetError
from ..runtime.geometry import WHOLE_IMAGE
from ._types import FileSplit, ImageSplit

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["AugmentConfig", "make_dataset", "unreadable_images", "LABEL_KEY", "BOX_KEY"]

LABEL_KEY = "label"
BOX_KEY = "box"
MAX_CROP_ATTEMPTS = 100
"""Windows tried per image before the crop falls back to the whole image (which holds the whole box)."""
GATHER_CHUNK = 256
"""Examples an :class:`ImageSplit` copies out of its (memory-mapped) arrays per Python call."""
FLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation.

    random_resized_crop: crop a random window, then resize it to the
        training resolution (Inception-style).
    scale: range of the window's area as a fraction of the image's area.
    ratio: range of the window's width / height, in pixels.
    min_box_visible: a window must hold at least this fraction of the
        object box's area. After :data:`MAX_CROP_ATTEMPTS` failed draws the
        whole image is used, which holds the whole box. Images with unknown
        boxes get a plain random resized crop.
    flip: flip left-right with probability 1/2 (the box flips too).
    """

    random_resized_crop: bool = True
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    min_box_visible: float = 0.6
    flip: bool = True

    def __post_init__(self) -> None:
        lo, hi = _pair(self.scale, "scale")
        if not 0.0 < lo <= hi <= 1.0:
            raise DatasetError(f"AugmentConfig.scale={self.scale}: need 0 < min <= max <= 1 "
                               "(fractions of the image area), e.g. (0.35, 1.0)")
        lo, hi = _pair(self.ratio, "ratio")
        if not 0.0 < lo <= hi:
            raise DatasetError(f"AugmentConfig.ratio={self.ratio}: need 0 < min <= max "
                               "(width / height), e.g. (0.75, 1.333)")
        if not (isinstance(self.min_box_visible, (int, float)) and 0.0 <= self.min_box_visible <= 1.0):
            raise DatasetError(f"AugmentConfig.min_box_visible={self.min_box_visible!r}: need a "
                               "fraction in [0, 1], e.g. 0.6")


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DatasetError(f"AugmentConfig.{name}={value!r}: need a (min, max) pair of numbers") from None
    return lo, hi


#: Training batches without augmentation: whole images, resized, never flipped.
NO_AUGMENT = AugmentConfig(random_resized_crop=False, flip=False)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DatasetError(f"{name}={value!r}: need a positive whole number")
    return int(value)


# --------------------------------------------------------------------------- examples


def _split_boxes(split: ImageSplit | FileSplit) -> np.ndarray:
    """The split's boxes as float32 (N, 4), NaN rows where unknown."""
    if split.boxes is None:
        return np.full((len(split), 4), np.nan, np.float32)
    return np.asarray(split.boxes, np.float32)


#: Marks an unreadable training image inside TensorFlow's error text (see run_cli).
UNREADABLE_IMAGE = "tfedge: unreadable training image: "


def read_file_image(path: str | os.PathLike) -> np.ndarray:
    """One training image as ``(H, W, 3)`` uint8, decoded as the device runner decodes it.

    Raises :class:`DatasetError` naming the file; inside ``tf.data`` that
    message travels in TensorFlow's error after :data:`UNREADABLE_IMAGE`.
    """
    from .._image import ImageReadError

    try:
        return _read_regular_image(path)
    except ImageReadError as exc:
        raise DatasetError(f"{UNREADABLE_IMAGE}{exc}: replace or delete it (find them all with "
                           "'tfedge data ... --verify-images')") from None


def _read_regular_image(path: str | os.PathLike) -> np.ndarray:
    """``read_image`` for a path that must be a regular file: a FIFO is refused, not opened
    (``open`` would block until a writer appears), a symlink loop is named as one."""
    from .._image import ImageReadError, read_image
    from ._files import not_a_regular_file

    problem = not_a_regular_file(path)
    if problem is not None:
        raise ImageReadError(f"{path}: {problem}, not an image file")
    return read_image(path)[0]


def unreadable_images(split: ImageSplit | FileSplit, *, workers: Optional[int] = None,
                      progress: Optional[Any] = None) -> list[tuple[str, str]]:
    """``(path, reason)`` of every image of ``split`` that training could not decode.

    Decodes each file as training does (:func:`read_file_image`), on
    ``workers`` threads (Pillow decodes outside the GIL), so a corrupt file
    is found before a long run instead of in its middle. Array splits hold
    decoded pixels already: none. ``progress(done, total)`` is called as it goes.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .._image import ImageReadError

    if not isinstance(split, FileSplit):
        return []
    paths = list(split.paths)

    def check(path: str) -> Optional[tuple[str, str]]:
        try:
            _read_regular_image(path)  # what read_file_image does, keeping the decoder's message
        except ImageReadError as exc:
            return str(path), str(exc)
        return None

    bad = []
    step = max(1, len(paths) // 10)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for done, result in enumerate(pool.map(check, paths), 1):
            if result is not None:
                bad.append(result)
            if progress is not None and (done % step == 0 or done == len(paths)):
                progress(done, len(paths))
    return bad


def _decoded_examples(split: ImageSplit | FileSplit, indices: "tf.data.Dataset",
                      boxes: Optional[np.ndarray] = None) -> "tf.data.Dataset":
    """Map a stream of example indices to ``(image uint8 (H, W, 3), label int32, box float32 (4,))``.

    ``boxes`` (``(N, 4)``, NaN = unknown) replaces the split's own boxes.

    An :class:`ImageSplit` is read by numpy fancy indexing, a chunk of
    indices per Python call, so a memory-mapped array is never copied whole
    into the graph (``from_tensor_slices`` would embed it as a constant:
    twice the memory, and a hard failure past TensorFlow's 2 GB graph limit).
    A :class:`FileSplit` reads and decodes one file per example.
    """
    import tensorflow as tf

    labels = np.asarray(split.labels, np.int32)
    boxes = _split_boxes(split) if boxes is None else np.asarray(boxes, np.float32)
    if isinstance(split, ImageSplit):
        images = split.images
        height, width = split.image_size

        def gather(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return images[idx], labels[idx], boxes[idx]

        def gather_chunk(idx: "tf.Tensor") -> tuple["tf.Tensor", "tf.Tensor", "tf.Tensor"]:
            img, lab, box = tf.numpy_function(gather, [idx], (tf.uint8, tf.int32, tf.float32), stateful=False)
            img.set_shape([None, height, width, 3])
            lab.set_shape([None])
            box.set_shape([None, 4])
            return img, lab, box

        return (indices.batch(GATHER_CHUNK)
                .map(gather_chunk, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .unbatch())

    # The device runner's decoder (EXIF orientation, 16-bit, palettes, alpha), so training
    # sees the pixels deployment will; an unreadable file names itself (see read_file_image).
    paths = tuple(split.paths)
    labels_t = tf.constant(labels)
    boxes_t = tf.constant(boxes)

    def read(i: np.ndarray) -> np.ndarray:
        return read_file_image(paths[int(i)])

    def load(i: "tf.Tensor") -> tuple["tf.Tensor", "tf.Tensor", "tf.Tensor"]:
        image = tf.numpy_function(read, [i], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return image, tf.gather(labels_t, i), tf.gather(boxes_t, i)

    return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# --------------------------------------------------------------------------- per-example transforms


def _tf_transform_boxes_for_crop(box: "tf.Tensor", window: "tf.Tensor") -> "tf.Tensor":
    """TF twin of :func:`tfedge.data._boxes.transform_boxes_for_crop` for one box."""
    import tensorflow as tf

    origin = tf.stack([window[0], window[1], window[0], window[1]])
    size = tf.stack([window[2] - window[0], window[3] - window[1]] * 2)
    return tf.clip_by_value((box - origin) / size, 0.0, 1.0)


def _tf_flip_box_lr(box: "tf.Tensor") -> "tf.Tensor":
    """TF twin of :func:`tfedge.data._boxes.flip_boxes_lr` for one box."""
    import tensorflow as tf

    return tf.stack([box[0], 1.0 - box[3], box[2], 1.0 - box[1]])


def _resize(image: "tf.Tensor", resolution: int) -> "tf.Tensor":
    import tensorflow as tf

    out = tf.image.resize(image, [resolution, resolution], method="bilinear", antialias=False)
    return tf.cast(out, tf.float32)


def _sample_crop_window(shape: "tf.Tensor", box: "tf.Tensor", seed: "tf.Tensor", config: AugmentConfig
                        ) -> tuple["tf.Tensor", "tf.Tensor", "tf.Tensor"]:
    """Draw a crop window in whole pixels for an image of ``shape`` (H, W, C).

    Returns ``begin`` and ``size`` (for ``tf.slice``) and the window as a
    normalised ``(y0, x0, y1, x1)``. A known ``box`` keeps at least
    ``config.min_box_visible`` of its area inside the window; an unknown (NaN)
    box gets a plain random resized crop.
    """
    import tensorflow as tf

    known = tf.logical_not(tf.reduce_any(tf.math.is_nan(box)))
    target = tf.where(known, box, tf.constant(WHOLE_IMAGE, tf.float32))
    covered = tf.where(known, tf.constant(config.min_box_visible, tf.float32), 0.0)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, target[tf.newaxis, tf.newaxis, :], seed=seed, min_object_covered=covered,
        aspect_ratio_range=config.ratio, area_range=config.scale,
        max_attempts=MAX_CROP_ATTEMPTS, use_image_if_no_bounding_boxes=True)
    hw = tf.cast(shape[:2], tf.float32)
    start = tf.cast(begin[:2], tf.float32) / hw
    window = tf.concat([start, start + tf.cast(size[:2], tf.float32) / hw], axis=0)
    return begin, size, window


def _augment_example(image: "tf.Tensor", label: "tf.Tensor", box: "tf.Tensor", seed: "tf.Tensor",
                     config: AugmentConfig, resolution: int
                     ) -> tuple["tf.Tensor", "tf.Tensor", "tf.Tensor"]:
    """Box-aware random resized crop, resize, random flip; ``seed`` is a stateless (2,) seed."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    known = tf.logical_not(tf.reduce_any(tf.math.is_nan(box)))
    if config.random_resized_crop:
        begin, size, window = _sample_crop_window(tf.shape(image), box, crop_seed, config)
        image = tf.slice(image, begin, size)
        box = tf.where(known, _tf_transform_boxes_for_crop(box, window), box)
    if config.flip:
        # Flipping before the resize is the same (bilinear resizing is mirror-symmetric) and
        # moves the uint8 crop rather than the larger float32 image.
        flip = tf.random.stateless_uniform([], flip_seed) < FLIP_PROBABILITY
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        box = tf.where(flip, _tf_flip_box_lr(box), box)
    return _resize(image, resolution), label, box


# --------------------------------------------------------------------------- the dataset


def make_dataset(split: ImageSplit | FileSplit, *, resolution: int, batch_size: int, training: bool,
                 augment: Optional[AugmentConfig] = None, seed: int = 0,
                 shuffle_buffer: Optional[int] = None, repeat: bool = False,
                 drop_remainder: bool = False, with_boxes: bool = False) -> "tf.data.Dataset":
    """A batched, prefetched ``tf.data.Dataset`` over ``split`` (see the module docstring).

    Args:
        split: an :class:`ImageSplit` (arrays, possibly memory-mapped) or a
            :class:`FileSplit` (image files of any size).
        resolution: side of the square images produced.
        batch_size: examples per batch.
        training: shuffle and augment (True) or resize whole images in order (False).
        augment: the augmentation when training; None means ``AugmentConfig()``.
            Pass ``AugmentConfig(random_resized_crop=False, flip=False)`` for none.
        seed: drives the shuffle, the crops and the flips.
        shuffle_buffer: examples in the shuffle buffer; None shuffles the whole
            split (the buffer holds indices, not images, so this is cheap).
        repeat: repeat forever (training with ``steps_per_epoch``).
        drop_remainder: drop a last, smaller batch.
        with_boxes: yield ``(images, {"label", "box"})`` instead of ``(images, labels)``.
    """
    import tensorflow as tf

    if not isinstance(split, (ImageSplit, FileSplit)):
        raise DatasetError(f"split is a {type(split).__name__}: pass an ImageSplit or a FileSplit")
    if len(split) == 0:
        raise DatasetError("split has no examples: load a dataset with at least one image")
    resolution = _positive_int(resolution, "resolution")
    batch_size = _positive_int(batch_size, "batch_size")
    if shuffle_buffer is not None:
        shuffle_buffer = _positive_int(shuffle_buffer, "shuffle_buffer")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DatasetError(f"seed={seed!r}: need a whole number")
    if augment is not None and not isinstance(augment, AugmentConfig):
        raise DatasetError(f"augment is a {type(augment).__name__}: pass an AugmentConfig or None")
    if augment is not None and not training:
        raise DatasetError("augment was given with training=False: evaluation never augments; "
                           "pass augment=None or training=True")
    config = augment if augment is not None else AugmentConfig()

    n = len(split)
    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(shuffle_buffer or n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    examples = _decoded_examples(split, indices)

    if training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        examples = tf.data.Dataset.zip(examples, seeds).map(
            lambda ex, s: _augment_example(*ex, s, config, resolution),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    elif isinstance(split, ImageSplit) and split.image_size == (resolution, resolution):
        examples = examples.map(lambda im, lab, box: (tf.cast(im, tf.float32), lab, box),
                                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        examples = examples.map(lambda im, lab, box: (_resize(im, resolution), lab, box),
                                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def to_element(images: "tf.Tensor", labels: "tf.Tensor", boxes: "tf.Tensor") -> tuple:
        images = tf.ensure_shape(images, [None, resolution, resolution, 3])
        if with_boxes:
            return images, {LABEL_KEY: labels, BOX_KEY: boxes}
        return images, labels

    dataset = (examples.batch(batch_size, drop_remainder=drop_remainder,
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .map(to_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
