"""Where a run's images come from, as data: :class:`DataSource` names the built-in
benchmark (with its generator settings) or a class-folder dataset and its boxes, can
load it, compare it with another and say it in words. What ``tfedge compress`` runs
and ``cascade.json`` record, so later commands can load the same images again."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ._folders import SPLIT_NAMES

__all__ = ["DataSource", "find_voc_boxes"]

_XML = ".xml"


def find_voc_boxes(root: Union[str, os.PathLike]) -> Union[None, str, dict[str, str]]:
    """Pascal VOC files lying next to the images of a class-folder dataset, as a box source.

    ``root/{train,val,test}/<class>/<stem>.xml`` (each split its own) gives
    ``{split: root/split}``; ``root/<class>/<stem>.xml`` gives ``root``. None when
    no class folder holds an ``.xml`` file. What :func:`tfedge.data.load_dataset`'s
    ``boxes`` takes.
    """
    root = Path(root)

    def has_xml(tree: Path) -> bool:
        try:
            for entry in os.scandir(tree):
                if entry.is_dir() and not entry.name.startswith("."):
                    with os.scandir(entry.path) as files:
                        if any(f.name.lower().endswith(_XML) for f in files):
                            return True
        except OSError:
            return False
        return False

    splits = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    if splits:
        found = {s: str(root / s) for s in splits if has_xml(root / s)}
        return found or None
    return str(root) if has_xml(root) else None


@dataclass(frozen=True)
class DataSource:
    """Where a run's images come from.

    source: ``'benchmark'`` (the built-in data, ``benchmark`` holds its
        :class:`~tfedge.data.BenchmarkConfig` fields) or a folder of class folders.
    boxes: a VOC folder or CSV file of the folder's boxes; ``'auto'`` finds VOC
        files next to the images (:func:`find_voc_boxes`); ``'none'`` ignores
        any boxes (the predictor then learns Grad-CAM pseudo-boxes).
    seed: the benchmark generator's seed and the validation hold-out's.
    """

    source: str = "benchmark"
    boxes: str = "auto"
    benchmark: Optional[Mapping[str, Any]] = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source != "benchmark":
            object.__setattr__(self, "source", str(Path(self.source).resolve()))
        if self.benchmark is not None:
            object.__setattr__(self, "benchmark", dict(self.benchmark))

    @property
    def is_benchmark(self) -> bool:
        return self.source == "benchmark"

    def benchmark_config(self):
        from ._benchmark import BenchmarkConfig

        fields = dict(self.benchmark or {})
        if "object_size" in fields:
            fields["object_size"] = tuple(fields["object_size"])
        return BenchmarkConfig(**{"seed": self.seed, **fields})

    def box_source(self) -> Union[None, str, dict[str, str]]:
        if self.is_benchmark or self.boxes == "none":
            return None
        if self.boxes == "auto":
            return find_voc_boxes(self.source)
        return self.boxes

    def load(self, **where: Any):
        """The :class:`~tfedge.data.Dataset` (boxes dropped with ``boxes='none'``).

        where: :func:`tfedge.data.load_dataset`'s ``cache_dir``, ``fashion_mnist_path``,
        ``allow_download`` (where things are, not what the data is).
        """
        from ._load import load_dataset

        if self.is_benchmark:
            return load_dataset("benchmark", benchmark=self.benchmark_config(), seed=self.seed,
                                **where)
        data = load_dataset(self.source, boxes=self.box_source(), seed=self.seed, **where)
        if self.boxes == "none":
            drop = {k: (None if s is None else dataclasses.replace(s, boxes=None))
                    for k, s in (("train", data.train), ("val", data.val), ("test", data.test))}
            data = dataclasses.replace(data, **drop)
        return data

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "boxes": self.boxes, "seed": self.seed}
        if self.is_benchmark:
            out["benchmark"] = dataclasses.asdict(self.benchmark_config())
            out["benchmark"]["object_size"] = list(out["benchmark"]["object_size"])
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "DataSource":
        bench = obj.get("benchmark")
        if bench is not None:
            bench = {k: v for k, v in bench.items() if k != "seed"}
        return cls(source=obj["source"], boxes=obj.get("boxes", "auto"), benchmark=bench,
                   seed=int(obj.get("seed", 0)))

    def same_images(self, other: "DataSource") -> bool:
        """Whether both give the same images, labels and splits (boxes aside: a cascade's
        calibration and conversion read labels only)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return all(mine.get(k) == theirs.get(k) for k in ("source", "seed", "benchmark"))

    def describe(self) -> str:
        if self.is_benchmark:
            c = self.benchmark_config()
            return (f"built-in benchmark ({c.train_size}/{c.val_size}/{c.test_size} images at "
                    f"{c.image_size} px, seed {c.seed})")
        return f"folder {self.source} (boxes: {self.boxes})"
