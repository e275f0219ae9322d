"""PNG contact sheets of images with their boxes, for a person to look at."""

from __future__ import annotations

import io
import math
import os
from typing import Optional, Sequence, Union

import numpy as np

from .._errors import DatasetError
from .._io import atomic_write_bytes
from ._files import writable_file_problem
from ._types import FileSplit, ImageSplit

__all__ = ["save_preview", "TRUE_BOX_COLOUR", "PREDICTED_BOX_COLOUR"]

TRUE_BOX_COLOUR = (0, 230, 0)
PREDICTED_BOX_COLOUR = (255, 40, 40)
TILE_PADDING = 2


def _load_rgb(split: Union[ImageSplit, FileSplit], index: int) -> np.ndarray:
    if isinstance(split, ImageSplit):
        return np.asarray(split.images[index])
    from ._tfdata import read_file_image

    return read_file_image(split.paths[index])  # as training and the device see it


def _draw_box(draw, box: np.ndarray, width: int, height: int, colour, line: int) -> None:
    if box is None or np.isnan(box).any():
        return
    y0, x0, y1, x1 = (float(v) for v in box)
    draw.rectangle([x0 * width, y0 * height, x1 * width - 1, y1 * height - 1],
                   outline=colour, width=line)


def save_preview(split: Union[ImageSplit, FileSplit], path: Union[str, os.PathLike], *,
                 count: int = 32, tile: int = 128, columns: Optional[int] = None,
                 predicted_boxes: Optional[np.ndarray] = None,
                 captions: Optional[Sequence[str]] = None) -> None:
    """Write a grid of the first ``count`` images with true (green) and predicted (red) boxes.

    A path that cannot take a file (a folder, a device, an unwritable place)
    raises :class:`DatasetError` before any image is read.
    """
    from PIL import Image, ImageDraw

    count = min(count, len(split))
    if count < 1:
        raise DatasetError("nothing to preview: the split is empty")
    problem = writable_file_problem(path)
    if problem is not None:
        raise DatasetError(f"cannot write the preview to {os.fspath(path)!r}: {problem}")
    columns = columns or int(math.ceil(math.sqrt(count)))
    rows = int(math.ceil(count / columns))
    step = tile + TILE_PADDING
    sheet = Image.new("RGB", (columns * step, rows * step), (255, 255, 255))
    line = max(1, tile // 64)
    for i in range(count):
        img = Image.fromarray(_load_rgb(split, i)).resize((tile, tile), Image.BILINEAR)
        draw = ImageDraw.Draw(img)
        if split.boxes is not None:
            _draw_box(draw, split.boxes[i], tile, tile, TRUE_BOX_COLOUR, line)
        if predicted_boxes is not None:
            _draw_box(draw, predicted_boxes[i], tile, tile, PREDICTED_BOX_COLOUR, line)
        caption = captions[i] if captions is not None else split.class_names[int(split.labels[i])]
        draw.text((3, 2), caption, fill=(255, 255, 0))
        sheet.paste(img, ((i % columns) * step, (i // columns) * step))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:  # e.g. the disk filled up while writing
        raise DatasetError(f"cannot write the preview to {os.fspath(path)!r} "
                           f"({exc.strerror or exc}): choose another path or free space") from None
