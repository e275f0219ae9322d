"""Reading image files into the pixels every model of a bundle sees: one decoder for
training (``tfedge.data`` class folders) and for the on-device runner (``tfedge-pi``).

Pillow and numpy only, never TensorFlow. Decoding the same way on both sides
keeps training and deployment pixel-identical: EXIF orientation applied,
16-bit images reduced to their top 8 bits, palettes and 1-bit images
expanded to colours, alpha dropped.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, ImageOps

from .errors import TfedgeError

__all__ = ["DEFAULT_MAX_PIXELS", "ImageReadError", "read_image", "stored_header",
           "upright_size", "to_uint8_rgb", "draft_request", "first_line"]

#: Largest image accepted, in pixels (64 MP: a 48 MP phone photo passes; a
#: decompression bomb, a small file declaring a huge image, does not). Checked
#: from the header, before anything is decoded.
DEFAULT_MAX_PIXELS = 64 * 2 ** 20
EXIF_ORIENTATION = 0x0112
_UPRIGHT = 1
#: EXIF orientations that transpose the image (quarter turns and mirrored transposes).
AXES_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_BITS_16_TO_8 = 8
_UINT8_MAX = 255


class ImageReadError(TfedgeError):
    """An image file cannot be read; the message is one line naming the file."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> ``(H, W, 3)`` uint8 RGB.

    16-bit images keep their top 8 bits (what libpng's strip does, so TF's
    decoder agrees); 32-bit integer images are read as 16-bit when any value
    exceeds 255; float images as [0, 1] when they stay within it, else
    [0, 255]. Alpha is dropped, as ``tf.io.decode_image(channels=3)`` does.
    Everything else (L, LA, P, PA, 1, CMYK, YCbCr, LAB, HSV, RGBA) goes
    through Pillow's own conversion to RGB.
    """
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES or mode == "I" or mode == "F":
        values = np.asarray(image)
        if mode == "F":
            values = values.astype(np.float64)
            finite = values[np.isfinite(values)]
            top = float(finite.max()) if finite.size else 0.0
            scaled = values * _UINT8_MAX if top <= 1.0 else values
            gray = np.clip(np.nan_to_num(scaled), 0, _UINT8_MAX).astype(np.uint8)
        else:
            values = values.astype(np.int64)
            if mode in _SIXTEEN_BIT_MODES or (values.size and values.max() > _UINT8_MAX):
                values = np.clip(values, 0, 2 ** 16 - 1) >> _BITS_16_TO_8
            gray = np.clip(values, 0, _UINT8_MAX).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def draft_request(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The ``(width, height)`` to pass to ``Image.draft`` so the short side stays >= ``short_side``.

    JPEG draft decoding scales by 1/2, 1/4 or 1/8 in the DCT domain and
    picks the strongest reduction whose result is still at least the
    requested size; the request keeps the image's aspect ratio.
    """
    short = min(width, height)
    if short <= short_side:
        return width, height
    ratio = short_side / short
    return int(math.ceil(width * ratio)), int(math.ceil(height * ratio))


def read_image(source: Union[str, os.PathLike, Any], *, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft_short_side: Optional[int] = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file (a path or a binary file object) as ``(H, W, 3)`` uint8 RGB, and its size.

    * the size is checked from the header before decoding: more than
      ``max_pixels`` pixels is refused (a decompression bomb cannot exhaust
      memory);
    * ``draft_short_side``: a JPEG is decoded in draft mode (scaled by 1/2,
      1/4 or 1/8 inside the decoder, several times faster) as far as its short
      side stays at least this many pixels (None: full size);
    * EXIF orientation is applied, so the image is the right way up;
    * any mode becomes 8-bit RGB (see :func:`to_uint8_rgb`).

    The size is the ``(H, W)`` of the upright image at full size: it differs
    from the array's only when draft decoding shrank a JPEG.
    Raises :class:`ImageReadError` with one line naming the file and the problem.
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else \
        str(getattr(source, "name", "<image>"))
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check replaces Pillow's DecompressionBombWarning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise ImageReadError(f"{name}: the image is {width}x{height} pixels: "
                                         "nothing to classify")
                if width * height > max_pixels:
                    raise ImageReadError(f"{name}: the image declares {width}x{height} = "
                                         f"{width * height} pixels, over the limit of "
                                         f"{max_pixels} (a decompression bomb?): raise "
                                         "max_pixels (tfedge-pi --max-pixels) if it is real")
                if draft_short_side and image.format == "JPEG":
                    image.draft("RGB", draft_request(width, height, int(draft_short_side)))
                image.load()
                full_size = (height, width)
                orientation = image.getexif().get(EXIF_ORIENTATION, _UPRIGHT)
                if orientation != _UPRIGHT:
                    # exif_transpose copies even an upright image (a frame's decode time).
                    image = ImageOps.exif_transpose(image)
                    if orientation in AXES_SWAPPING_ORIENTATIONS:
                        full_size = (width, height)
                return to_uint8_rgb(image), full_size
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{name}: the image declares too many pixels, a decompression "
                             f"bomb? ({first_line(exc)}): raise max_pixels (tfedge-pi "
                             "--max-pixels) if it is real") from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{name}: no such file") from exc
    except MemoryError as exc:
        raise ImageReadError(f"{name}: out of memory while decoding: lower max_pixels "
                             "(tfedge-pi --max-pixels)") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt files
        raise ImageReadError(f"{name}: cannot read the image ({first_line(exc)}): the file is "
                             "corrupt, truncated or not an image") from exc


def stored_header(path: Union[str, os.PathLike]) -> tuple[int, int, int]:
    """``(width, height, EXIF orientation)`` of the image as stored, from its header (no pixels).

    The orientation is 1 (upright) when the file has none or an invalid one.
    """
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, _UPRIGHT)
            return (int(image.width), int(image.height),
                    int(orientation) if orientation in range(1, 9) else _UPRIGHT)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt files
        raise ImageReadError(f"{path}: cannot read the image ({first_line(exc)}): the file is "
                             "corrupt, truncated or not an image") from exc


def upright_size(path: Union[str, os.PathLike]) -> tuple[int, int]:
    """``(H, W)`` of the image :func:`read_image` gives, from the header alone (no pixels)."""
    width, height, orientation = stored_header(path)
    return (width, height) if orientation in AXES_SWAPPING_ORIENTATIONS else (height, width)
