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
import stat
import warnings
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, ImageOps

from .errors import TfedgeError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_DECODED_BYTES", "ImageReadError", "read_image",
           "stored_header", "upright_size", "to_uint8_rgb", "decoded_bytes", "draft_request",
           "first_line", "not_a_regular_file"]

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


#: Bytes per pixel Pillow stores a decoded image of each mode in (4 for RGB: it pads to
#: RGBX). Modes not listed count as :data:`_WIDEST_STORAGE` bytes.
_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2,
                  "BGR;15": 2, "BGR;16": 2, "BGR;24": 3}
_WIDEST_STORAGE = 4
#: Largest decoded image accepted, in bytes of Pillow's storage (64 MP at 4 bytes per
#: pixel). Conversion to 8-bit RGB works in bands of rows, so decoding an image
#: peaks at about its storage plus 3 bytes per pixel of output, whatever its mode:
#: a 16-bit or float 8192x8192 image no longer goes through float64 copies of itself.
DEFAULT_MAX_DECODED_BYTES = 256 * 2 ** 20
_BAND_PIXELS = 1 << 20  # pixels converted at a time (a few MiB of temporaries)


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes Pillow needs to hold a decoded ``width`` x ``height`` image of ``mode``."""
    return int(width) * int(height) * _STORAGE_BYTES.get(mode, _WIDEST_STORAGE)


def _bands(image: Image.Image) -> list[tuple[int, int]]:
    width, height = image.size
    rows = max(1, _BAND_PIXELS // max(width, 1))
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def _band(image: Image.Image, top: int, bottom: int) -> Image.Image:
    return image.crop((0, top, image.size[0], bottom))


def _gray_to_uint8(values: np.ndarray, mode: str, float_top: float, int_wide: bool
                   ) -> np.ndarray:
    """One band of a one-channel 16/32-bit or float image -> uint8 gray (see to_uint8_rgb)."""
    if mode == "F":
        values = values.astype(np.float64)
        scaled = values * _UINT8_MAX if float_top <= 1.0 else values
        return np.clip(np.nan_to_num(scaled), 0, _UINT8_MAX).astype(np.uint8)
    values = values.astype(np.int64)
    if int_wide:
        values = np.clip(values, 0, 2 ** 16 - 1) >> _BITS_16_TO_8
    return np.clip(values, 0, _UINT8_MAX).astype(np.uint8)


def to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> ``(H, W, 3)`` uint8 RGB.

    16-bit images keep their top 8 bits (what libpng's strip does, so TF's
    decoder agrees); 32-bit integer images are read as 16-bit when any value
    exceeds 255; float images as [0, 1] when they stay within it, else
    [0, 255]. Alpha is dropped, as ``tf.io.decode_image(channels=3)`` does.
    Everything else (L, LA, P, PA, 1, CMYK, YCbCr, LAB, HSV, RGBA) goes
    through Pillow's own conversion to RGB (pixel by pixel).

    The work is done in bands of rows written into the output, so memory
    beyond the output stays a few MiB whatever the image's size and mode.
    """
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    width, height = image.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES or mode == "I" or mode == "F":
        float_top, int_wide = 0.0, mode in _SIXTEEN_BIT_MODES
        if mode == "F":  # the largest finite value decides the scale: one pass to find it
            tops = []
            for top, bottom in _bands(image):
                values = np.asarray(_band(image, top, bottom))
                finite = values[np.isfinite(values)]
                if finite.size:
                    tops.append(float(finite.max()))
            float_top = max(tops) if tops else 0.0
        elif mode == "I":
            int_wide = any(np.asarray(_band(image, top, bottom)).max(initial=0) > _UINT8_MAX
                           for top, bottom in _bands(image))
        for top, bottom in _bands(image):
            gray = _gray_to_uint8(np.asarray(_band(image, top, bottom)), mode, float_top,
                                  int_wide)
            out[top:bottom] = gray[:, :, None]
        return out
    for top, bottom in _bands(image):
        out[top:bottom] = np.asarray(_band(image, top, bottom).convert("RGB"), dtype=np.uint8)
    return out


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


def not_a_regular_file(path: Union[str, os.PathLike]) -> Optional[str]:
    """What ``path`` is when it is not a regular file (a FIFO, a device...); None otherwise.

    Checked before an image is opened: opening a FIFO blocks until a writer
    comes, and a device such as /dev/zero never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: open() says so itself
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_image(source: Union[str, os.PathLike, Any], *, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft_short_side: Optional[int] = None,
               max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
               ) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file (a path or a binary file object) as ``(H, W, 3)`` uint8 RGB, and its size.

    * the size is checked from the header before decoding: more than
      ``max_pixels`` pixels is refused (a decompression bomb cannot exhaust
      memory), and so is more than ``max_decoded_bytes`` of decoded pixels for
      the file's mode (a 16-bit or float image takes 2-4 bytes per pixel);
    * a path that is a FIFO or a device is refused before it is opened;
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
    if isinstance(source, (str, os.PathLike)):
        kind = not_a_regular_file(source)
        if kind is not None:
            raise ImageReadError(f"{name}: is {kind}, not an image file")
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
                needed = decoded_bytes(image.mode, *image.size)
                if needed > max_decoded_bytes:
                    decoded_w, decoded_h = image.size
                    raise ImageReadError(
                        f"{name}: the image is {decoded_w}x{decoded_h} {image.mode} pixels, "
                        f"{needed / 2 ** 20:.0f} MiB decoded, over the limit of "
                        f"{max_decoded_bytes / 2 ** 20:.0f} MiB: convert it to 8-bit or a "
                        "smaller size, or raise max_decoded_bytes (tfedge-pi --max-decoded-mb)")
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
