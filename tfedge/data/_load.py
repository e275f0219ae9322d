"""One entry point for every dataset tfedge trains on: the built-in benchmark or a folder."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .._errors import DatasetError
from ._benchmark import BenchmarkConfig, load_benchmark
from ._files import not_a_regular_file
from ._folders import SkippedFile, scan_image_dataset
from ._types import FileSplit, Split

__all__ = ["Dataset", "load_dataset", "BENCHMARK_NAME"]

BENCHMARK_NAME = "benchmark"
DEFAULT_VAL_FRACTION = 0.1



@dataclass(frozen=True)
class Dataset:
    """Train, validation and (optional) test splits of one labelled image dataset."""

    name: str
    train: Split
    val: Split
    test: Optional[Split]
    class_names: tuple[str, ...]
    info: dict[str, Any]
    #: ``(path, reason)`` of image-named entries of a folder dataset left out because they are
    #: not readable files (symlink loops, dangling symlinks, FIFOs, devices); counted in ``info``.
    skipped: tuple[SkippedFile, ...] = ()

    def split(self, name: str) -> Split:
        splits = {"train": self.train, "val": self.val, "test": self.test}
        if name not in splits:
            raise DatasetError(f"unknown split {name!r}: choose train, val or test")
        if splits[name] is None:
            raise DatasetError(f"dataset {self.name!r} has no {name!r} split: use --split val, "
                               f"or add a {name}/ folder next to train/")
        return splits[name]

    @property
    def has_boxes(self) -> bool:
        return self.train.boxes is not None


def _stratified_holdout(split: FileSplit, fraction: float, seed: int) -> tuple[FileSplit, FileSplit]:
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in np.unique(split.labels):
        idx = np.flatnonzero(split.labels == label)
        rng.shuffle(idx)
        take = int(round(len(idx) * fraction))
        if len(idx) > 1:
            take = min(max(take, 1), len(idx) - 1)
        else:
            take = 0
        held.extend(idx[:take].tolist())
    held_set = set(held)
    keep = [i for i in range(len(split)) if i not in held_set]
    return split.subset(keep), split.subset(sorted(held))


def load_dataset(
    source: Union[str, os.PathLike] = BENCHMARK_NAME,
    *,
    benchmark: Optional[BenchmarkConfig] = None,
    boxes: Optional[str] = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    cache_dir: Union[str, os.PathLike, None] = None,
    fashion_mnist_path: Union[str, os.PathLike, None] = None,
    allow_download: bool = False,
    progress: bool = True,
) -> Dataset:
    """Load ``'benchmark'`` (the built-in fashion-on-photos data) or a folder of classes.

    A folder is either ``root/<class>/*.jpg`` or ``root/{train,val,test}/<class>/``;
    without a ``val`` folder, a stratified ``val_fraction`` of train (fixed by
    ``seed``) becomes the validation split. ``boxes`` names VOC XML files or a CSV
    (see :func:`tfedge.data.load_image_dataset`).
    """
    if str(source) == BENCHMARK_NAME:
        config = benchmark or BenchmarkConfig()
        data = load_benchmark(config, cache_dir=cache_dir, fashion_mnist_path=fashion_mnist_path,
                              allow_download=allow_download, progress=progress)
        return Dataset(name=f"fashion-on-photos-{config.key()}", train=data.train, val=data.val,
                       test=data.test, class_names=data.train.class_names,
                       info={"kind": "benchmark", "config": dataclasses.asdict(config),
                             "path": str(data.path)})
    root = Path(source)
    if not root.exists():
        # A symlink loop or a dangling link does not "exist" either: say which it is.
        what = f"is {not_a_regular_file(root)}" if root.is_symlink() else "does not exist"
        raise DatasetError(f"dataset {str(source)!r} {what}: pass 'benchmark' for the built-in "
                           "data or the path of a folder of class folders")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    splits, skipped = scan_image_dataset(root, boxes=boxes)
    if "train" not in splits:
        raise DatasetError(f"{root}: no training images found: put them in {root}/train/<class>/ "
                           f"or {root}/<class>/")
    train = splits["train"]
    val = splits.get("val")
    if val is None:
        train, val = _stratified_holdout(train, val_fraction, seed)
    return Dataset(name=root.name, train=train, val=val, test=splits.get("test"),
                   class_names=train.class_names,
                   info={"kind": "folders", "path": str(root), "boxes": boxes,
                         "val_fraction": val_fraction if "val" not in splits else None,
                         "skipped_files": len(skipped)},
                   skipped=tuple(skipped))
