"""The crop geometry of :mod:`tfedge.runtime.geometry` in TensorFlow ops, for tf.data.

:func:`crop_window_tf` runs :func:`tfedge.runtime.geometry.crop_window_with`
with TensorFlow's versions of the same elementwise operations, so the
training pipeline and the numpy code used on the device compute the same
window bit for bit (``tests/test_crop_geometry.py`` checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..runtime.geometry import ArrayOps, CropConfig, crop_window_with

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["tf_ops", "crop_window_tf", "crop_and_resize_tf", "crop_and_resize_with_window_tf"]


def tf_ops() -> ArrayOps:
    """TensorFlow's implementations of :class:`~tfedge.runtime.geometry.ArrayOps`."""
    import tensorflow as tf

    return ArrayOps(
        asarray=lambda x: tf.cast(x, tf.float32),
        isnan=tf.math.is_nan,
        where=tf.where,
        maximum=tf.maximum,
        minimum=tf.minimum,
        floor=tf.floor,
        any_last=lambda x: tf.reduce_any(x, axis=-1),
        unstack_last=lambda x: tf.unstack(x, axis=-1),
        stack_last=lambda xs: tf.stack(xs, axis=-1),
        to_int=lambda x: tf.cast(x, tf.int32),
    )


def crop_window_tf(box: "tf.Tensor", height: Any, width: Any,
                   config: CropConfig = CropConfig()) -> "tf.Tensor":
    """int32 ``(..., 4)`` windows ``(y0, x0, y1, x1)``; see :func:`tfedge.runtime.geometry.crop_window`."""
    return crop_window_with(tf_ops(), box, height, width, config)


def crop_and_resize_tf(image: "tf.Tensor", box: "tf.Tensor", size: int,
                       config: CropConfig = CropConfig()) -> "tf.Tensor":
    """Crop one ``(H, W, C)`` image at ``box`` and resize to ``size`` x ``size`` float32.

    A static slice then ``tf.image.resize`` (bilinear, no antialiasing): the
    same pixels as :func:`tfedge.runtime.geometry.crop_and_resize`.
    """
    return crop_and_resize_with_window_tf(image, box, size, config)[0]


def crop_and_resize_with_window_tf(image: "tf.Tensor", box: "tf.Tensor", size: int,
                                   config: CropConfig = CropConfig()
                                   ) -> tuple["tf.Tensor", "tf.Tensor"]:
    """:func:`crop_and_resize_tf`, also returning the int32 window ``(y0, x0, y1, x1)`` it cut."""
    import tensorflow as tf

    shape = tf.shape(image)
    window = crop_window_tf(box, shape[0], shape[1], config)
    begin = tf.stack([window[0], window[1], 0])
    extent = tf.stack([window[2] - window[0], window[3] - window[1], -1])
    crop = tf.slice(image, begin, extent)
    out = tf.image.resize(crop, [size, size], method="bilinear", antialias=False)
    return tf.cast(out, tf.float32), window
