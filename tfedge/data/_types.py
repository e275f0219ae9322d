"""The in-memory and on-disk forms a dataset split takes.

Boxes everywhere in tfedge are float32 ``(ymin, xmin, ymax, xmax)``
normalised to ``[0, 1]`` by the image's height and width, with the max edge
exclusive: a box covering pixel rows ``r0 .. r1-1`` has ``ymin = r0 / H`` and
``ymax = r1 / H``. This is the convention of ``tf.image.crop_and_resize`` and
does not depend on the resolution an image is later resized to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from .._errors import DatasetError

__all__ = ["ImageSplit", "FileSplit", "Split"]


def _check_boxes(boxes: Optional[np.ndarray], n: int, what: str) -> None:
    if boxes is None:
        return
    if boxes.shape != (n, 4):
        raise DatasetError(f"{what}: boxes must have shape ({n}, 4), got {boxes.shape}")
    if n and (np.any(boxes < 0.0) or np.any(boxes > 1.0)
              or np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1])):
        raise DatasetError(
            f"{what}: boxes must be normalised (ymin, xmin, ymax, xmax) with "
            "0 <= min < max <= 1")


@dataclass(frozen=True)
class ImageSplit:
    """A split held as arrays: every image has the same size.

    images: ``(N, H, W, 3)`` uint8 RGB. labels: ``(N,)`` int32 class indices.
    boxes: ``(N, 4)`` float32 normalised boxes, or None when unknown.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: Optional[np.ndarray]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise DatasetError(
                f"images must be (N, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        n = self.images.shape[0]
        if self.labels.shape != (n,):
            raise DatasetError(f"labels must have shape ({n},), got {self.labels.shape}")
        _check_boxes(self.boxes, n, "ImageSplit")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def take(self, count: int) -> "ImageSplit":
        """The first ``count`` examples (a view, no copy)."""
        return ImageSplit(self.images[:count], self.labels[:count],
                          None if self.boxes is None else self.boxes[:count], self.class_names)


@dataclass(frozen=True)
class FileSplit:
    """A split held as image files of any size (a user's class folders).

    paths: one image file per example. labels: ``(N,)`` int32. boxes: ``(N, 4)``
    float32 normalised boxes, with NaN rows for images that have no box, or None
    when the dataset has no boxes at all.
    """

    paths: tuple[str, ...]
    labels: np.ndarray
    boxes: Optional[np.ndarray]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.labels.shape != (n,):
            raise DatasetError(f"labels must have shape ({n},), got {self.labels.shape}")
        if self.boxes is not None:
            known = ~np.isnan(self.boxes).any(axis=1) if self.boxes.shape == (n, 4) else None
            if known is None:
                raise DatasetError(f"FileSplit: boxes must have shape ({n}, 4), got {self.boxes.shape}")
            _check_boxes(self.boxes[known], int(known.sum()), "FileSplit")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: Sequence[int]) -> "FileSplit":
        idx = np.asarray(indices, dtype=np.int64)
        return FileSplit(tuple(self.paths[i] for i in idx), self.labels[idx],
                         None if self.boxes is None else self.boxes[idx], self.class_names)


#: Either kind of split: what every function taking a split accepts.
Split = Union[ImageSplit, FileSplit]
