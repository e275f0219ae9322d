"""Settings of a compress run: where the data comes from, and how each step trains.

:class:`DataSource` (from :mod:`tfedge.data`) is recorded in the run folder (``compress.json``) so later
runs and commands reuse it without repeating flags; :class:`CompressConfig`
holds every step's settings; :data:`PRESETS` are the demo's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .._errors import TfedgeError
from ..data._source import DataSource, find_voc_boxes

__all__ = ["DataSource", "CompressConfig", "PRESETS", "preset", "find_voc_boxes",
           "data_fingerprint", "CALIBRATION_MODES"]

CALIBRATION_MODES = ("accuracy", "budget")


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
