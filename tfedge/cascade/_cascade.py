"""A cascade as data: ``cascade.json`` (format ``tfedge-cascade``, version 1; 2 with a refiner).

A cascade is an ordered list of Keras classifiers (cheapest first), an
optional foreground predictor whose box every stage's input is cropped from
(optionally refined by a refiner, ``tfedge predictor refine``: the crops are
then cut at the refined boxes and the refiner's passes count in every MAC
figure), and one early-exit rule per stage (criterion, logit accumulation
weight, threshold). Any ``.keras`` classifier taking ``(N, R, R, 3)`` raw pixels and
returning logits can be a stage, so better (e.g. compound-shrunk) stages
drop in without code changes.

``cascade.json`` holds the model *paths* (relative to the file's folder
when they are inside it), never the weights, plus the calibration record
(how the thresholds were chosen, on which split, with what validation
figures), the last evaluation, and the dataset the stages were trained on
(``dataset``: its name and, when known, the source that loads it again, so
``tfedge cascade calibrate|evaluate`` and ``tfedge-convert cascade`` need no
data flags and refuse other data). A file with a refiner is version 2, so a
reader that knows only version 1 refuses it instead of cropping at unrefined
boxes. ``tfedge-convert cascade`` turns it into one
deployment bundle (``docs/bundle.md``), whose stage fields are the same.

This module never imports TensorFlow; :func:`build_cascade` loads the models
(and so TensorFlow) to read their resolution and count their MACs.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .._errors import TfedgeError
from .._io import atomic_write_json
from ..crop.geometry import CropConfig
from ._calibrate import CalibrationResult
from ._decision import LOWER_IS_CONFIDENT, check_criterion

__all__ = ["CASCADE_FORMAT", "CASCADE_VERSION", "StageConfig", "PredictorConfig", "RefinerConfig",
           "CascadeSpec", "load_cascade", "save_cascade", "build_cascade", "load_locator"]

log = logging.getLogger(__name__)

CASCADE_FORMAT = "tfedge-cascade"
#: The newest version this module reads; files are written as version 1 unless they hold a
#: refiner (version 2).
CASCADE_VERSION = 2
_REFINER_VERSION = 2
_MODEL_SUFFIX = ".keras"

PathLike = Union[str, os.PathLike]


def _fail(message: str) -> TfedgeError:
    return TfedgeError(message)


def _whole(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _number(value: Any, what: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum:
        raise _fail(f"{what} must be a number >= {minimum}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class StageConfig:
    """One classifier of the cascade and its exit rule.

    model: path of the ``.keras`` file (relative paths are relative to the
    cascade file's folder). threshold: None on the last stage, and on every
    stage until the cascade is calibrated.
    """

    name: str
    model: str
    resolution: int
    macs: int
    criterion: str = "max_softmax"
    accumulate_weight: float = 0.0
    threshold: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "resolution": self.resolution,
                "macs": self.macs, "criterion": self.criterion,
                "accumulate_weight": self.accumulate_weight, "threshold": self.threshold}


@dataclass(frozen=True)
class RefinerConfig:
    """A refiner of the predictor's box (``tfedge predictor refine``): ``passes`` looks, each
    at a square ``window`` around the previous box, resized to ``resolution``.

    model: the refiner file (its sidecar names the predictor file it refines);
    macs: one pass.
    """

    model: str
    resolution: int
    macs: int
    passes: int
    window: CropConfig

    @property
    def total_macs(self) -> int:
        return int(self.passes) * int(self.macs)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "resolution": self.resolution, "macs": self.macs,
                "passes": self.passes, "window": self.window.to_dict()}


@dataclass(frozen=True)
class PredictorConfig:
    """The foreground predictor: whole image at ``resolution`` -> one box -> crop window.

    macs: the predictor's own; with a ``refiner`` every MAC figure of the cascade adds its
    passes (:attr:`CascadeSpec.predictor_macs`).
    """

    model: str
    resolution: int
    macs: int
    crop: CropConfig = field(default_factory=CropConfig)
    refiner: Optional[RefinerConfig] = None

    def to_json(self) -> dict[str, Any]:
        out = {"model": self.model, "resolution": self.resolution, "macs": self.macs,
               "crop": self.crop.to_dict()}
        if self.refiner is not None:
            out["refiner"] = self.refiner.to_json()
        return out


@dataclass(frozen=True)
class CascadeSpec:
    """The whole cascade; see the module docstring. ``root`` resolves relative model paths."""

    stages: tuple[StageConfig, ...]
    class_names: tuple[str, ...]
    predictor: Optional[PredictorConfig] = None
    calibration: Optional[Mapping[str, Any]] = None
    evaluation: Optional[Mapping[str, Any]] = None
    root: Optional[Path] = None
    dataset: Optional[Mapping[str, Any]] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        _validate(self)

    # -- views
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def criteria(self) -> tuple[str, ...]:
        return tuple(s.criterion for s in self.stages)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(s.accumulate_weight for s in self.stages)

    @property
    def thresholds(self) -> tuple[Optional[float], ...]:
        return tuple(s.threshold for s in self.stages)

    @property
    def stage_macs(self) -> tuple[int, ...]:
        return tuple(s.macs for s in self.stages)

    @property
    def predictor_macs(self) -> int:
        """MACs of finding the box, paid by every image: the predictor and the refiner's passes."""
        if self.predictor is None:
            return 0
        refiner = self.predictor.refiner
        return self.predictor.macs + (refiner.total_macs if refiner is not None else 0)

    @property
    def refiner(self) -> Optional[RefinerConfig]:
        return self.predictor.refiner if self.predictor is not None else None

    @property
    def calibrated(self) -> bool:
        """Whether every stage but the last has a threshold."""
        return all(s.threshold is not None for s in self.stages[:-1])

    def resolve(self, model: str) -> Path:
        path = Path(model)
        if not path.is_absolute() and self.root is not None:
            path = self.root / path
        return path

    def stage_path(self, index: int) -> Path:
        return self.resolve(self.stages[index].model)

    def predictor_path(self) -> Optional[Path]:
        return self.resolve(self.predictor.model) if self.predictor is not None else None

    def refiner_path(self) -> Optional[Path]:
        return self.resolve(self.refiner.model) if self.refiner is not None else None

    # -- changes
    def with_thresholds(self, thresholds: Sequence[Optional[float]],
                        calibration: Optional[Mapping[str, Any]] = None) -> "CascadeSpec":
        """A copy with new thresholds (the last must be None) and calibration record."""
        if len(thresholds) != self.num_stages:
            raise _fail(f"got {len(thresholds)} thresholds for {self.num_stages} stages: give one "
                        "per stage (None for the last)")
        stages = tuple(replace(s, threshold=None if t is None else float(t))
                       for s, t in zip(self.stages, thresholds))
        return replace(self, stages=stages, calibration=dict(calibration or {}) or None,
                       evaluation=None)

    def with_evaluation(self, evaluation: Mapping[str, Any]) -> "CascadeSpec":
        return replace(self, evaluation=dict(evaluation))

    def with_dataset(self, dataset: Optional[Mapping[str, Any]]) -> "CascadeSpec":
        """A copy recording the dataset its stages were trained on (see :func:`build_cascade`)."""
        return replace(self, dataset=dict(dataset) if dataset else None)

    def calibration_result(self) -> Optional[CalibrationResult]:
        if not self.calibration:
            return None
        return CalibrationResult.from_dict(dict(self.calibration))

    # -- JSON
    def to_json(self, root: Optional[Path] = None) -> dict[str, Any]:
        """The ``cascade.json`` object; model paths relative to ``root`` when inside it."""
        def rel(model: str) -> str:
            path = self.resolve(model)
            if root is None:
                return str(path)
            try:
                return os.path.relpath(path.resolve(), root.resolve()) \
                    if path.resolve().is_relative_to(root.resolve()) else str(path.resolve())
            except (OSError, ValueError):
                return str(path)

        predictor = None
        if self.predictor is not None:
            predictor = {**self.predictor.to_json(), "model": rel(self.predictor.model)}
            if self.refiner is not None:
                predictor["refiner"] = {**self.refiner.to_json(), "model": rel(self.refiner.model)}
        return {"format": CASCADE_FORMAT,
                "version": _REFINER_VERSION if self.refiner is not None else 1,
                "class_names": list(self.class_names),
                "dataset": dict(self.dataset) if self.dataset else None,
                "predictor": predictor,
                "stages": [{**s.to_json(), "model": rel(s.model)} for s in self.stages],
                "calibration": dict(self.calibration) if self.calibration else None,
                "evaluation": dict(self.evaluation) if self.evaluation else None}

    @classmethod
    def from_json(cls, obj: Any, root: Optional[Path] = None, where: str = "cascade.json"
                  ) -> "CascadeSpec":
        fix = "rebuild it with 'tfedge cascade build'"
        if not isinstance(obj, dict):
            raise _fail(f"{where}: not a JSON object: {fix}")
        if obj.get("format") != CASCADE_FORMAT:
            raise _fail(f"{where}: format is {obj.get('format')!r}, not {CASCADE_FORMAT!r}: pass "
                        f"a cascade file written by 'tfedge cascade build'")
        version = obj.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _fail(f"{where}: version {version!r} is not valid: {fix}")
        if version > CASCADE_VERSION:
            raise _fail(f"{where}: version {version} is newer than this tfedge supports "
                        f"({CASCADE_VERSION}): upgrade tfedge")
        try:
            stages = tuple(StageConfig(
                name=str(s["name"]), model=str(s["model"]), resolution=s["resolution"],
                macs=s["macs"], criterion=s.get("criterion", "max_softmax"),
                accumulate_weight=s.get("accumulate_weight", 0.0), threshold=s.get("threshold"))
                for s in obj["stages"])
            pred = obj.get("predictor")
            ref = None if pred is None else pred.get("refiner")
            refiner = None if ref is None else RefinerConfig(
                model=str(ref["model"]), resolution=ref["resolution"], macs=ref["macs"],
                passes=ref["passes"], window=CropConfig.from_dict(ref["window"]))
            predictor = None if pred is None else PredictorConfig(
                model=str(pred["model"]), resolution=pred["resolution"], macs=pred["macs"],
                crop=CropConfig.from_dict(pred.get("crop") or {}), refiner=refiner)
            class_names = obj["class_names"]
        except (KeyError, TypeError) as exc:
            raise _fail(f"{where}: missing or malformed field {exc}: {fix}") from None
        if refiner is not None and version < _REFINER_VERSION:
            raise _fail(f"{where}: version {version} cannot hold a refiner (version "
                        f"{_REFINER_VERSION} does): {fix}")
        dataset = obj.get("dataset")
        if dataset is not None and not (isinstance(dataset, dict)
                                        and isinstance(dataset.get("name"), str)):
            raise _fail(f"{where}: dataset must be an object with the dataset's name: {fix}")
        if not isinstance(class_names, list):
            raise _fail(f"{where}: class_names must be a list of names: {fix}")
        return cls(stages=stages, class_names=tuple(class_names), predictor=predictor,
                   calibration=obj.get("calibration"), evaluation=obj.get("evaluation"),
                   root=root, dataset=dataset)


def _validate(spec: CascadeSpec) -> None:
    if not spec.stages:
        raise _fail("a cascade needs at least one stage: pass one or more .keras classifiers")
    if not spec.class_names or any(not c or "\n" in c for c in spec.class_names):
        raise _fail("a cascade needs its class names (one line each): build it from models "
                    "trained by tfedge, or pass the dataset's class names")
    names = [s.name for s in spec.stages]
    if len(set(names)) != len(names):
        raise _fail(f"stage names must be unique, got {names}: rename the duplicates")
    count = len(spec.stages)
    for k, s in enumerate(spec.stages):
        where = f"stage {k} ({s.name!r})"
        if not s.name:
            raise _fail(f"stage {k} has an empty name: give every stage a name")
        _whole(s.resolution, f"{where} resolution", 1)
        _whole(s.macs, f"{where} MACs")
        check_criterion(s.criterion)
        weight = _number(s.accumulate_weight, f"{where} accumulate weight")
        if k == 0 and weight != 0.0:
            raise _fail(f"{where} accumulate weight is {weight} but the first stage has no "
                        "earlier logits: set it to 0")
        if k == count - 1:
            if s.threshold is not None:
                raise _fail(f"{where} is the last stage but has threshold {s.threshold}: every "
                            "image left exits there, so its threshold must be None")
        elif s.threshold is not None:
            t = _number(s.threshold, f"{where} threshold")
            if s.criterion not in LOWER_IS_CONFIDENT and t > 1.0:
                raise _fail(f"{where} threshold {t} is above 1 but {s.criterion} is a "
                            "probability: use a threshold in [0, 1]")
    if spec.predictor is not None:
        _whole(spec.predictor.resolution, "predictor resolution", 1)
        _whole(spec.predictor.macs, "predictor MACs")
        if not isinstance(spec.predictor.crop, CropConfig):
            raise _fail("predictor crop must be a tfedge.crop.CropConfig")
        refiner = spec.predictor.refiner
        if refiner is not None:
            from ..runtime.refine import check_refiner_window

            _whole(refiner.resolution, "refiner resolution", 1)
            _whole(refiner.macs, "refiner MACs")
            _whole(refiner.passes, "refiner passes", 1)
            check_refiner_window(refiner.window)


def save_cascade(spec: CascadeSpec, path: PathLike) -> Path:
    """Write ``spec`` as ``cascade.json`` atomically; model paths become relative to its folder."""
    path = Path(path)
    if path.suffix != ".json":
        raise _fail(f"cascade files end in .json, got {str(path)!r}: e.g. runs/cascade.json")
    root = path.parent if str(path.parent) else Path(".")
    atomic_write_json(path, spec.to_json(root))
    return path


def load_cascade(path: PathLike) -> CascadeSpec:
    """Read ``cascade.json``; relative model paths resolve against its folder."""
    path = Path(path)
    if not path.is_file():
        raise _fail(f"cascade file {str(path)!r} does not exist: write one with 'tfedge cascade "
                    "build'")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: not valid JSON ({exc}): rebuild it with 'tfedge cascade build'") \
            from None
    return CascadeSpec.from_json(obj, root=path.parent, where=str(path))


# --------------------------------------------------------------------------- building


def _per_stage(value: Any, count: int, what: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise _fail(f"got {len(value)} {what} for {count} stages: give one per stage, or one "
                        "for all")
        return list(value)
    return [value] * count


def build_cascade(models: Sequence[PathLike], *, predictor: Optional[PathLike] = None,
                  crop: Optional[CropConfig] = None,
                  criteria: Union[str, Sequence[str]] = "max_softmax",
                  accumulate_weight: Union[float, Sequence[float]] = 0.0,
                  names: Optional[Sequence[str]] = None,
                  class_names: Optional[Sequence[str]] = None,
                  macs: Optional[Sequence[int]] = None,
                  dataset: Optional[Mapping[str, Any]] = None) -> CascadeSpec:
    """An uncalibrated cascade of the ``.keras`` classifiers ``models`` (cheapest first).

    ``predictor``: a predictor file, or a refiner file (``tfedge predictor
    refine``; its sidecar names its predictor): the stages then classify crops
    at the refined boxes, and the refiner's passes count in every MAC figure.
    ``dataset``: what the stages were trained on (``{"name": ..., "source":
    ...}``, see :meth:`CascadeSpec.with_dataset`), recorded in ``cascade.json``.

    Each model's input resolution is read from the model and its MACs counted
    with :func:`tfedge.count_macs` (``macs`` overrides them, for models the
    counter cannot walk). ``accumulate_weight`` applies to every stage after
    the first (or give one per stage, 0 first). ``crop`` defaults to the
    geometry the first stage was trained with (its sidecar), else
    :class:`~tfedge.crop.CropConfig`'s defaults. ``class_names`` default to
    the first model's sidecar; stage ``names`` to the model files' stems.
    """
    from .._macs import count_macs
    from .._train import load_classifier, model_resolution, read_sidecar
    from ..crop._classifier_crops import trained_crop_config

    if not models:
        raise _fail("a cascade needs at least one stage: pass one or more .keras classifiers")
    count = len(models)
    criteria_list = [check_criterion(str(c)) for c in _per_stage(criteria, count, "criteria")]
    if isinstance(accumulate_weight, (list, tuple)):
        weights = [float(w) for w in _per_stage(accumulate_weight, count, "accumulate weights")]
    else:
        weights = [0.0] + [float(accumulate_weight)] * (count - 1)
    macs_list = _per_stage(macs, count, "MAC counts") if macs is not None else [None] * count
    stage_names = list(names) if names is not None else []
    if names is not None and len(stage_names) != count:
        raise _fail(f"got {len(stage_names)} names for {count} stages: give one per stage")
    stages = []
    outputs = None
    for k, model_path in enumerate(models):
        path = Path(model_path)
        if path.suffix != _MODEL_SUFFIX:
            raise _fail(f"stage {k} model {str(path)!r} is not a .keras file: train one with "
                        "'tfedge train' or save it with model.save('name.keras')")
        model = load_classifier(path)
        res = model_resolution(model)
        out = int(model.output_shape[-1])
        if outputs is not None and out != outputs:
            raise _fail(f"stage {k} ({path.name}) outputs {out} classes but stage 0 outputs "
                        f"{outputs}: every stage must classify the same label set")
        outputs = out
        side = read_sidecar(path)
        if class_names is None and side.get("class_names"):
            class_names = side["class_names"]
        stage_macs = macs_list[k] if macs_list[k] is not None else count_macs(model).macs
        name = stage_names[k] if stage_names else path.stem
        if not stage_names and any(s.name == name for s in stages):
            name = f"{name}_{k}"
        stages.append(StageConfig(name=name, model=str(path), resolution=res,
                                  macs=int(stage_macs), criterion=criteria_list[k],
                                  accumulate_weight=weights[k]))
    if class_names is None:
        raise _fail("the first model has no class names in its sidecar (.keras.json): pass "
                    "class_names (the CLI takes them from --data)")
    if len(class_names) != outputs:
        raise _fail(f"the models output {outputs} classes but there are {len(class_names)} class "
                    "names: use the dataset the models were trained on")
    for k in range(1, count):
        if stages[k].macs < stages[k - 1].macs:
            log.warning("stage %d (%s, %d MACs) is cheaper than stage %d (%d MACs): cascades "
                        "usually run the cheapest model first", k, stages[k].name,
                        stages[k].macs, k - 1, stages[k - 1].macs)
    pred_config = None
    if predictor is not None:
        from ..crop import RefinedPredictor, load_predictor, predictor_spec_of

        ppath = Path(predictor)
        net = load_predictor(ppath)
        refiner = None
        if isinstance(net, RefinedPredictor):
            refiner = RefinerConfig(model=str(ppath),
                                    resolution=predictor_spec_of(net.refiner).resolution,
                                    macs=int(count_macs(net.refiner).macs), passes=net.passes,
                                    window=net.window)
            ppath, net = Path(net.predictor_path), net.predictor
        pred_config = PredictorConfig(model=str(ppath),
                                      resolution=predictor_spec_of(net).resolution,
                                      macs=int(count_macs(net).macs),
                                      crop=crop or trained_crop_config(models) or CropConfig(),
                                      refiner=refiner)
    elif crop is not None:
        raise _fail("a crop geometry was given without a predictor: pass the predictor too, or "
                    "drop the crop settings to classify whole images")
    return CascadeSpec(stages=tuple(stages), class_names=tuple(class_names),
                       predictor=pred_config, root=None,
                       dataset=dict(dataset) if dataset else None)


def load_refiner_of(spec: CascadeSpec, path: PathLike, *, fix: str) -> Any:
    """The :class:`~tfedge.crop.RefinedPredictor` of refiner file ``path``, checked to refine
    the cascade's own predictor file; ``fix`` ends either error message."""
    from ..crop import RefinedPredictor, load_predictor

    pair = load_predictor(Path(path))
    if not isinstance(pair, RefinedPredictor):
        raise _fail(f"{str(path)!r} is a plain predictor, not a refiner: {fix}")
    first = Path(pair.predictor_path or "")
    if first.resolve() != Path(spec.predictor_path()).resolve():
        raise _fail(f"refiner {str(path)!r} refines {str(first)!r}, but the cascade's predictor "
                    f"is {str(spec.predictor_path())!r}: {fix}")
    return pair


def load_locator(spec: CascadeSpec) -> Any:
    """What finds the box the stages crop: the predictor (Keras), or with a refiner the
    :class:`~tfedge.crop.RefinedPredictor` pair; None without a predictor.

    The refiner file must still refine the cascade's own predictor file.
    """
    if spec.predictor is None:
        return None
    if spec.refiner is None:
        from ..crop import load_predictor

        return load_predictor(spec.predictor_path())
    path = spec.refiner_path()
    pair = load_refiner_of(spec, path, fix="rebuild the cascade with 'tfedge cascade build "
                                           "--predictor REFINER.keras'")
    if pair.passes != spec.refiner.passes:
        raise _fail(f"refiner {str(path)!r} makes {pair.passes} passes, the cascade says "
                    f"{spec.refiner.passes}: rebuild the cascade")
    return pair

