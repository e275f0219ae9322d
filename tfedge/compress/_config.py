"""Settings of a compress run: where the data comes from, and how each step trains.

:class:`DataSource` is recorded in the run folder (``compress.json``) so later
runs and commands reuse it without repeating flags; :class:`CompressConfig`
holds every step's settings; :data:`PRESETS` are the demo's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from .._errors import TfedgeError

__all__ = ["DataSource", "CompressConfig", "PRESETS", "preset", "find_voc_boxes",
           "data_fingerprint", "CALIBRATION_MODES"]

CALIBRATION_MODES = ("accuracy", "budget")
_XML = ".xml"


def find_voc_boxes(root: Union[str, os.PathLike]) -> Union[None, str, dict[str, str]]:
    """Pascal VOC files lying next to the images of a class-folder dataset, as a box source.

    ``root/{train,val,test}/<class>/<stem>.xml`` (each split its own) gives
    ``{split: root/split}``; ``root/<class>/<stem>.xml`` gives ``root``. None when
    no class folder holds an ``.xml`` file. What :func:`tfedge.data.load_dataset`'s
    ``boxes`` takes.
    """
    from ..data._folders import SPLIT_NAMES

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
        from ..data import BenchmarkConfig

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
        from ..data import load_dataset

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


def data_fingerprint(dataset) -> str:
    """A short hash of what the splits hold: the benchmark's cache key, or every file's
    name, size and modification time with its label and box."""
    digest = hashlib.sha256(dataset.name.encode("utf-8"))
    for name in ("train", "val", "test"):
        split = getattr(dataset, name)
        digest.update(f"|{name}:{0 if split is None else len(split)}".encode())
        if split is None:
            continue
        digest.update(np.asarray(split.labels, np.int64).tobytes())
        if split.boxes is not None:
            digest.update(np.nan_to_num(np.asarray(split.boxes, np.float32), nan=-1).tobytes())
        for path in getattr(split, "paths", ()):
            try:
                st = os.stat(path)
                digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"{path}:missing".encode())
    digest.update("|".join(dataset.class_names).encode("utf-8"))
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class CompressConfig:
    """Every step's settings (see docs/compress.md).

    model: the base: a registry name to train at ``resolution``, or a ``.keras``
        classifier to start from (not retrained).
    epochs: epochs of the base and of the crop classifier.
    predictor / predictor_epochs: the foreground predictor's variant and budget.
    refiner / refiner_epochs: also train a refiner; the crop classifier and the
        stages then learn on, and the cascade and its bundle (manifest version 2)
        crop at, the refined boxes.
    crop_resolution: the crop classifier's input side.
    shrink_targets: MAC ratios of the crop classifier, one cascade stage each
        (compound shrinking), cheaper than the crop classifier, which is the last stage.
    shrink_finetune_epochs: the distillation fine-tune after each shrink.
    shrink_only: also shrink the base on whole images to the crop pipeline's MACs
        (the ablation's 'shrink only' row); baselines: tfedge.shrink.BASELINES
        names shrunk to the same MACs.
    calibration: 'accuracy' (the last stage's validation top-1 less
        ``accuracy_drop_points``, at the fewest MACs) or 'budget' (the best
        accuracy within ``macs_budget``, a ratio of the base's MACs).
    tolerance_points: the most int8 top-1 may lose against float.
    """

    model: str = "resnet10_050"
    resolution: int = 128
    epochs: int = 4
    batch_size: int = 64
    predictor: str = "boxnet_heat_r96_w8"
    predictor_epochs: int = 6
    refiner: bool = False
    refiner_epochs: int = 6
    crop_resolution: int = 64
    crop_copies: int = 4
    shrink_targets: tuple[float, ...] = (0.35,)
    shrink_finetune_epochs: int = 1
    shrink_only: bool = True
    baselines: tuple[str, ...] = ()
    calibration: str = "accuracy"
    accuracy_drop_points: float = 0.5
    macs_budget: Optional[float] = None
    tolerance_points: float = 2.0
    seed: int = 0
    preview_count: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "shrink_targets",
                           tuple(sorted(float(t) for t in self.shrink_targets)))
        object.__setattr__(self, "baselines", tuple(self.baselines))
        for name in ("epochs", "predictor_epochs", "refiner_epochs", "batch_size", "crop_copies",
                     "resolution", "crop_resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TfedgeError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.shrink_finetune_epochs < 0:
            raise TfedgeError(f"shrink_finetune_epochs must be >= 0, got "
                              f"{self.shrink_finetune_epochs!r}")
        for t in self.shrink_targets:
            if not 0 < t < 1:
                raise TfedgeError(f"shrink target {t!r} must be a ratio of the crop classifier's "
                                  "MACs between 0 and 1 (e.g. 0.35)")
        if self.calibration not in CALIBRATION_MODES:
            raise TfedgeError(f"calibration {self.calibration!r} is unknown: choose one of "
                              f"{', '.join(CALIBRATION_MODES)}")
        if self.calibration == "budget" and not (self.macs_budget and 0 < self.macs_budget < 1):
            raise TfedgeError(f"budget calibration needs macs_budget, a ratio of the base's MACs "
                              f"between 0 and 1 (e.g. 0.25), got {self.macs_budget!r}")
        if self.baselines:
            from ..shrink import BASELINES

            unknown = [b for b in self.baselines if b not in BASELINES]
            if unknown:
                raise TfedgeError(f"unknown baseline(s) {', '.join(unknown)}: choose from "
                                  f"{', '.join(BASELINES)}")

    @property
    def base_is_file(self) -> bool:
        return self.model.endswith(".keras")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["shrink_targets"] = list(self.shrink_targets)
        out["baselines"] = list(self.baselines)
        return out


#: The demo's presets. Quick: small splits and budgets, one shrunk stage (under 15 minutes
#: on 2 idle cores); full: the benchmark settings of benchmarks/cascade.py (4 epochs per
#: classifier on 20,000 images, the predictor 12) with two shrunk stages and the refiner.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"data": {"train_size": 3000, "val_size": 500, "test_size": 1000,
                       "image_size": 128},
              "config": dict(epochs=4, predictor_epochs=6, shrink_targets=(0.35,),
                             shrink_finetune_epochs=1, tolerance_points=2.0)},
    "full": {"data": {"train_size": 20000, "val_size": 2000, "test_size": 5000,
                      "image_size": 128},
             "config": dict(epochs=4, predictor_epochs=12, refiner=True, refiner_epochs=12,
                            shrink_targets=(0.3, 0.6), shrink_finetune_epochs=2,
                            baselines=("uniform", "l1"), tolerance_points=1.0)},
}


def preset(name: str, **overrides: Any) -> tuple[DataSource, CompressConfig]:
    """The benchmark data source and settings of a demo preset (``quick`` or ``full``)."""
    if name not in PRESETS:
        raise TfedgeError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    return (DataSource("benchmark", benchmark=p["data"]),
            CompressConfig(**{**p["config"], **overrides}))
