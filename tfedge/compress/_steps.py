"""The whole EdgeCompress method as one resumable pipeline of named, cached steps.

    base -> box labels -> predictor (+ refiner) -> crop classifier -> shrunk stages
    -> shrink-only ablation -> cascade -> int8 bundle -> verify -> measure -> report

Each step writes its artifacts into the run folder and a record under
``steps/`` (:mod:`._cache`); it is skipped when its inputs (the data
fingerprint, its settings and the sha256 of every artifact it reads) are
unchanged. Training steps resume a killed run from the engine's per-epoch
backups, shrinking from its step log. Every model's sidecar records the data,
the settings and the artifacts it came from; ``compress.json`` at the top of
the run folder holds the data source and settings, so a later run given only
the folder reuses them, and a run given other data is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .._errors import TfedgeError
from .._quiet import import_tensorflow_quietly, quiet_tensorflow
from ..runtime.fileio import atomic_write_json
from ._cache import StepCache, canonical_key, tree_sha256
from ._config import CompressConfig, DataSource, data_fingerprint

__all__ = ["run_compress", "CompressResult", "RUN_FORMAT", "STEP_NAMES", "read_run",
           "check_same_data"]

log = logging.getLogger("tfedge.compress")

RUN_FORMAT = "tfedge-compress"
RUN_VERSION = 1
RUN_FILE = "compress.json"
STEP_NAMES = ("base", "box_labels", "predictor", "refiner", "crop_classifier", "shrink",
              "shrink_only", "cascade", "bundle", "verify", "measure", "report")
#: Images that calibrate the int8 conversions; test images the int8 cascade is checked on.
CALIBRATION_IMAGES = 500
CHECK_IMAGES = 2000
#: Training images that calibrate the int8 conversion of the ablation's whole-image models.
ABLATION_CALIBRATION_IMAGES = 64


@dataclasses.dataclass
class CompressResult:
    """Where a run put things, and its summary (the report's JSON)."""

    run_dir: Path
    summary: dict[str, Any]
    steps_run: list[str]
    steps_cached: list[str]
    seconds: float

    @property
    def report(self) -> Path:
        return self.run_dir / "report" / "report.html"

    @property
    def bundle(self) -> Path:
        return self.run_dir / "bundle.zip"


def read_run(run_dir: Union[str, os.PathLike]) -> Optional[dict[str, Any]]:
    """The run folder's ``compress.json`` (None if there is none)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TfedgeError(f"{path}: not valid JSON ({exc}): delete it to start the run over")
    if not isinstance(obj, dict) or obj.get("format") != RUN_FORMAT:
        raise TfedgeError(f"{path} is not a tfedge compress record: pass another --output folder")
    return obj


def check_same_data(run_dir: Path, recorded: Mapping[str, Any], data: DataSource) -> None:
    """Refuse to reuse a run folder made from other data (a one-line error with the fix)."""
    old = DataSource.from_dict(recorded["data"])
    if old.to_dict() != data.to_dict():
        raise TfedgeError(
            f"{run_dir} was compressed from {old.describe()}, not {data.describe()}: pass another "
            "--output folder, or leave out the data flags to continue that run")


class _Run:
    """One run: the data, the settings, the cache, and the progress lines."""

    def __init__(self, run_dir: Path, data: DataSource, config: CompressConfig,
                 progress: Callable[[str], None]):
        self.dir = run_dir
        self.data_source = data
        self.config = config
        self.cache = StepCache(run_dir)
        self.say = progress
        self.index = 0
        self.ran: list[str] = []
        self.cached: list[str] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.hashes: dict[str, str] = {}  # artifact name -> sha256
        self._dataset = None
        self._loaded: dict[str, Any] = {}

    # -- data
    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = self.data_source.load()
            if len(self._dataset.val) == 0:
                raise TfedgeError("the dataset has no validation images: calibration and "
                                  "shrinking decide on them; add a val/ folder or more images")
        return self._dataset

    @property
    def test(self):
        """The test split (the validation split when the dataset has none; the report says so)."""
        return self.dataset.test if self.dataset.test is not None else self.dataset.val

    def data_record(self, fingerprint: str) -> dict[str, Any]:
        return {"name": self.dataset.name, "fingerprint": fingerprint,
                "source": self.data_source.to_dict(),
                "sizes": {k: (None if getattr(self.dataset, k) is None
                              else len(getattr(self.dataset, k))) for k in ("train", "val", "test")}}

    # -- steps
    def step(self, name: str, inputs: Mapping[str, Any], outputs: Sequence[Path],
             fn: Callable[[], Mapping[str, Any]], what: str,
             scratch: Sequence[Path] = ()) -> dict[str, Any]:
        """Run ``fn`` unless the cache holds this step with these inputs.

        scratch: resumable work the step leaves behind when killed (training backups,
        search logs): kept for a rerun with the same inputs, removed when they changed.
        """
        self.index += 1
        head = f"[{self.index}/{len(STEP_NAMES)}] {name}: {what}"
        record = self.cache.lookup(name, inputs)
        if record is not None:
            self.say(f"{head} (cached)")
            self.cached.append(name)
        else:
            self.say(f"{head} ({self.cache.why_stale(name, inputs)})")
            self._claim_scratch(name, inputs, scratch)
            start = time.perf_counter()
            import_tensorflow_quietly()  # its import notices, once, before any step needs it
            result = dict(fn())
            seconds = time.perf_counter() - start
            record = self.cache.save(name, inputs, outputs, result, seconds)
            self.say(f"      {name} done in {seconds:.0f} s")
            self.ran.append(name)
        for out in outputs:
            digest = self.cache.output_hash(record, out)
            if digest is not None:
                self.hashes[out.name] = digest
        self.results[name] = record["result"]
        return record["result"]

    def _claim_scratch(self, name: str, inputs: Mapping[str, Any], scratch: Sequence[Path]
                       ) -> None:
        marker = self.cache.dir / f"{name}.pending"
        key = canonical_key(inputs)
        previous = marker.read_text().strip() if marker.is_file() else None
        if previous != key:
            for path in scratch:  # left by a killed run with other inputs: cannot resume
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            self.cache.dir.mkdir(parents=True, exist_ok=True)
            marker.write_text(key + "\n")

    def skip(self, name: str, why: str) -> None:
        self.index += 1
        self.say(f"[{self.index}/{len(STEP_NAMES)}] {name}: skipped ({why})")
        self.results[name] = {"skipped": why}

    def meta(self, step: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """What every artifact's sidecar records: data, settings and its sources."""
        return {"dataset": self.dataset.name, "compress": {
            "run": str(self.dir), "step": step, "data": self.data_source.to_dict(),
            "inputs": dict(inputs)}}

    def load_model(self, path: Path):
        key = str(path)
        if key not in self._loaded:
            from .._train import load_classifier

            self._loaded[key] = load_classifier(path)
        return self._loaded[key]

    def load_predictor(self, path: Path):
        key = f"predictor:{path}"
        if key not in self._loaded:
            from ..crop import load_predictor

            self._loaded[key] = load_predictor(path)
        return self._loaded[key]

    def locator(self, predictor: Path, refiner: Optional[Path]):
        """What finds the box the crop classifier and the stages see: the predictor, or with a
        refiner the :class:`~tfedge.crop.RefinedPredictor` pair (its file names the predictor)."""
        return self.load_predictor(refiner if refiner is not None else predictor)

    def refiner_input(self) -> dict[str, Any]:
        """The refiner's hash as a step input, only when there is one (runs without a refiner
        keep the keys they had)."""
        digest = self.hashes.get("refiner.keras")
        return {"refiner": digest} if digest is not None else {}


# --------------------------------------------------------------------------- the steps


def _base_step(run: _Run, fp: str) -> Path:
    cfg = run.config
    if cfg.base_is_file:
        path = Path(cfg.model).resolve()
        if not path.is_file():
            raise TfedgeError(f"base model {cfg.model!r} does not exist: pass a .keras "
                              "classifier or a registry name to train ('tfedge models')")
        inputs = {"data": fp, "model_file": str(path), "model_sha256": tree_sha256(path)}

        def given() -> dict[str, Any]:
            from .._train import check_outputs, load_classifier, read_sidecar

            names = read_sidecar(path).get("class_names")
            if names is not None and tuple(names) != tuple(run.dataset.class_names):
                raise TfedgeError(f"{path} was trained on classes {list(names)[:4]}..., the data "
                                  f"has {list(run.dataset.class_names)[:4]}...: give a base "
                                  "trained on this dataset's classes")
            # Before the box steps: a wrong head would otherwise stop the run at the crop step.
            check_outputs(load_classifier(path), len(run.dataset.class_names), str(path))
            return {"given": str(path)}

        run.step("base", inputs, [], given, f"given classifier {path.name}")
        run.hashes["base.keras"] = inputs["model_sha256"]
        return path
    from .._train import describe_fields, scratch_recipe

    out = run.dir / "base.keras"
    # A family that does not start under the default optimiser gets its own recipe (recorded
    # only where one applies, so the cache of a default-recipe base stays valid).
    recipe = scratch_recipe(cfg.model)
    inputs = {"data": fp, "model": cfg.model, "resolution": cfg.resolution, "epochs": cfg.epochs,
              "batch_size": cfg.batch_size, "seed": cfg.seed, **({"recipe": recipe} if recipe
                                                                 else {})}

    def train() -> dict[str, Any]:
        from .._train import TrainConfig, train_classifier

        _, result = train_classifier(
            cfg.model, run.dataset.train, val=run.dataset.val,
            config=TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                               **recipe),
            output=out, resolution=cfg.resolution, metadata=run.meta("base", inputs))
        return {"val_top1": result.val.top1 if result.val else None,
                "train_seconds": result.train_seconds}

    how = f", {describe_fields(recipe)}" if recipe else ""
    run.step("base", inputs, [out], train, f"train {cfg.model} at {cfg.resolution} px, "
             f"{cfg.epochs} epochs{how}", scratch=[_backup(out)])
    return out


def _backup(model_path: Path) -> Path:
    """Where the training engine keeps a model's per-epoch backup."""
    from .._train import default_backup_dir

    return default_backup_dir(model_path)


def _needs_box_labels(split) -> bool:
    return split.boxes is None or bool(np.isnan(np.asarray(split.boxes)).any())


def _box_label_step(run: _Run, fp: str, base: Path) -> Optional[Path]:
    train = run.dataset.train
    if not _needs_box_labels(train):
        run.skip("box_labels", "every training image has a true box")
        return None
    out = run.dir / "box_labels.npz"
    inputs = {"data": fp, "base": run.hashes["base.keras"]}

    def label() -> dict[str, Any]:
        from ..crop import box_labels

        boxes, counts = box_labels(train, run.load_model(base))
        with open(out, "wb") as f:
            np.savez(f, train=boxes)
        return {"counts": counts}

    run.step("box_labels", inputs, [out], label, "Grad-CAM pseudo-boxes of the base for images "
             "without a box")
    return out


def _boxed_train(run: _Run, labels: Optional[Path]):
    if labels is None:
        return run.dataset.train
    from ..crop._predictor_training import with_box_labels

    with np.load(labels) as z:
        return with_box_labels(run.dataset.train, z["train"])


def _predictor_step(run: _Run, fp: str, labels: Optional[Path]) -> Path:
    cfg = run.config
    out = run.dir / "predictor.keras"
    inputs = {"data": fp, "predictor": cfg.predictor, "epochs": cfg.predictor_epochs,
              "seed": cfg.seed, "box_labels": run.hashes.get("box_labels.npz")}

    def train() -> dict[str, Any]:
        from ..crop import PredictorTrainConfig, train_predictor

        val = run.dataset.val
        _, result = train_predictor(
            cfg.predictor, _boxed_train(run, labels),
            val=None if _needs_box_labels(val) else val,
            config=PredictorTrainConfig(epochs=cfg.predictor_epochs, seed=cfg.seed),
            output=out, metadata=run.meta("predictor", inputs))
        return {"val": result.val, "train_seconds": result.train_seconds}

    run.step("predictor", inputs, [out], train, f"train {cfg.predictor} on "
             f"{'Grad-CAM pseudo-boxes' if labels else 'true boxes'}, "
             f"{cfg.predictor_epochs} epochs", scratch=[_backup(out)])
    return out


def _refiner_step(run: _Run, fp: str, labels: Optional[Path], predictor: Path) -> Optional[Path]:
    cfg = run.config
    if not cfg.refiner:
        run.skip("refiner", "not asked for (refiner=False)")
        return None
    out = run.dir / "refiner.keras"
    inputs = {"data": fp, "predictor": run.hashes["predictor.keras"],
              "epochs": cfg.refiner_epochs, "seed": cfg.seed,
              "box_labels": run.hashes.get("box_labels.npz")}

    def train() -> dict[str, Any]:
        from ..crop import DEFAULT_REFINER, RefinerTrainConfig, train_refiner

        base = RefinerTrainConfig()
        config = dataclasses.replace(base, train=dataclasses.replace(
            base.train, epochs=cfg.refiner_epochs, seed=cfg.seed))
        val = run.dataset.val
        _, result = train_refiner(DEFAULT_REFINER, _boxed_train(run, labels),
                                  predictor=run.load_predictor(predictor),
                                  val=None if _needs_box_labels(val) else val, config=config,
                                  output=out, predictor_path=predictor,
                                  metadata=run.meta("refiner", inputs))
        return {"val": result.val, "train_seconds": result.train_seconds}

    run.step("refiner", inputs, [out], train, f"train a refiner for the predictor, "
             f"{cfg.refiner_epochs} epochs", scratch=[_backup(out)])
    return out


def _crop_step(run: _Run, fp: str, base: Path, labels: Optional[Path], predictor: Path,
               refiner: Optional[Path]) -> Path:
    cfg = run.config
    out = run.dir / "crop.keras"
    inputs = {"data": fp, "base": run.hashes["base.keras"],
              "predictor": run.hashes["predictor.keras"], **run.refiner_input(),
              "box_labels": run.hashes.get("box_labels.npz"), "resolution": cfg.crop_resolution,
              "copies": cfg.crop_copies, "epochs": cfg.epochs, "seed": cfg.seed}

    def train() -> dict[str, Any]:
        from .._train import TrainConfig
        from ..crop import CropTrainConfig, train_crop_classifier
        from ..shrink import set_resolution

        # Start from the base's weights at the crop resolution: its features already know
        # the objects, so the short crop schedule only adapts them to the framing.
        start = set_resolution(run.load_model(base), cfg.crop_resolution)
        _, result = train_crop_classifier(
            start, _boxed_train(run, labels),
            crop_config=CropTrainConfig(resolution=cfg.crop_resolution, copies=cfg.crop_copies),
            config=TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed),
            predictor=run.locator(predictor, refiner), output=out,
            metadata=run.meta("crop_classifier", inputs))
        return {"train_seconds": result.train_seconds}

    run.step("crop_classifier", inputs, [out], train,
             f"crop-robust classifier at {cfg.crop_resolution} px from the base's weights, "
             f"{cfg.epochs} epochs" + (", on refined boxes" if refiner else ""),
             scratch=[_backup(out)])
    return out


def _crop_splits(run: _Run, labels: Optional[Path], predictor: Path, refiner: Optional[Path]):
    """Training crops (jittered true / pseudo boxes) and validation crops (predicted boxes,
    refined when there is a refiner)."""
    from ..crop import CropConfig, JitterConfig, materialize_crops, predict_boxes

    cfg = run.config
    train = materialize_crops(_boxed_train(run, labels), resolution=cfg.crop_resolution,
                              crop=CropConfig(), jitter=JitterConfig(), copies=1, seed=cfg.seed)
    val_boxes = predict_boxes(run.locator(predictor, refiner), run.dataset.val)
    val = materialize_crops(run.dataset.val, resolution=cfg.crop_resolution, boxes=val_boxes,
                            crop=CropConfig(), jitter=None, copies=1)
    return train, val


def _search_config(cfg: CompressConfig):
    from ..shrink import SearchConfig

    # The settings of benchmarks/shrink.py (helper S's quick run): candidates scored after a
    # short distillation fine-tune, steps sized to save about 30% of the MACs each (fewer,
    # comparable steps), input sides in multiples of 16.
    return SearchConfig(finetune_epochs=cfg.shrink_finetune_epochs, batch_size=cfg.batch_size,
                        seed=cfg.seed, min_resolution=min(32, cfg.crop_resolution),
                        score="finetune", score_finetune_steps=15, step_macs_fraction=0.3,
                        resolution_multiple=16)


def _stage_path(run: _Run, target: float) -> Path:
    return run.dir / f"stage_{int(round(target * 100)):02d}.keras"


def _shrink_step(run: _Run, fp: str, crop: Path, labels: Optional[Path], predictor: Path,
                 refiner: Optional[Path]) -> list[Path]:
    cfg = run.config
    outs = [_stage_path(run, t) for t in cfg.shrink_targets]
    work = run.dir / "work" / "shrink"
    inputs = {"data": fp, "crop": run.hashes["crop.keras"],
              "predictor": run.hashes["predictor.keras"], **run.refiner_input(),
              "box_labels": run.hashes.get("box_labels.npz"),
              "targets": list(cfg.shrink_targets), "search": _search_config(cfg).to_dict()}

    def shrink() -> dict[str, Any]:
        from .._train import save_classifier
        from ..shrink._baselines import run_shrink

        train, val = _crop_splits(run, labels, predictor, refiner)
        model = run.load_model(crop)
        records = []
        for target, out in zip(cfg.shrink_targets, outs):
            result = run_shrink(model, "compound", target, train, val,
                                config=_search_config(cfg), output_dir=work, name=out.stem)
            record = result.record()
            save_classifier(result.model, out, {
                "class_names": list(run.dataset.class_names), "input": "crop",
                "crop": {"resolution": cfg.crop_resolution}, "shrink": record,
                **run.meta("shrink", inputs)})
            records.append({"target": target, "macs": result.macs, "val_top1": result.val_top1,
                            "architecture": record["architecture"],
                            "steps": [{k: s.get(k) for k in ("dimension", "macs", "val_top1")}
                                      for s in record["steps"]]})
        return {"stages": records}

    run.step("shrink", inputs, outs, shrink, "compound shrinking of the crop classifier to "
             + ", ".join(f"{t:.0%}" for t in cfg.shrink_targets) + " of its MACs",
             scratch=[work])
    return outs


def _shrink_only_step(run: _Run, fp: str, base: Path, crop: Path, predictor: Path,
                      refiner: Optional[Path]) -> dict[str, Path]:
    cfg = run.config
    methods = (["compound"] if cfg.shrink_only else []) + list(cfg.baselines)
    if not methods:
        run.skip("shrink_only", "shrink_only=False and no baselines")
        return {}
    outs = {m: run.dir / f"base_{m}.keras" for m in methods}
    work = run.dir / "work" / "shrink_only"
    inputs = {"data": fp, "base": run.hashes["base.keras"], "crop": run.hashes["crop.keras"],
              "predictor": run.hashes["predictor.keras"], **run.refiner_input(),
              "methods": methods,
              "search": _search_config(cfg).to_dict()}

    def shrink() -> dict[str, Any]:
        from .._macs import count_macs
        from .._train import save_classifier
        from ..crop import predictor_macs
        from ..shrink._baselines import run_shrink

        base_model = run.load_model(base)
        # The same MACs as the crop pipeline (predictor, refiner passes, crop classifier): the
        # ablation compares the two ways of spending them.
        target = (predictor_macs(run.locator(predictor, refiner))
                  + count_macs(run.load_model(crop)).macs) / count_macs(base_model).macs
        records = {}
        if target >= 1:
            return {"methods": {}, "skipped": "the crop pipeline costs as much as the base: "
                                              "nothing to shrink the base to"}
        for method, out in outs.items():
            result = run_shrink(base_model, method, target, run.dataset.train, run.dataset.val,
                                config=_search_config(cfg), output_dir=work, name=out.stem)
            record = result.record()
            save_classifier(result.model, out, {
                "class_names": list(run.dataset.class_names), "shrink": record,
                **run.meta("shrink_only", inputs)})
            records[method] = {"macs": result.macs, "val_top1": result.val_top1,
                               "target_ratio": target, "architecture": record["architecture"]}
        return {"methods": records}

    result = run.step("shrink_only", inputs, list(outs.values()), shrink,
             "shrink the base on whole images to the crop pipeline's MACs ("
             + ", ".join(methods) + ")", scratch=[work])
    return {m: p for m, p in outs.items() if m in result.get("methods", {})}


#: Bumped when what the cascade step writes changes (2: cascade.json's own 'dataset' field).
CASCADE_STEP_FORMAT = 2


def _cascade_step(run: _Run, fp: str, base: Path, stages: Sequence[Path], predictor: Path,
                  refiner: Optional[Path]) -> Path:
    cfg = run.config
    out = run.dir / "cascade.json"
    inputs = {"format": CASCADE_STEP_FORMAT, "data": fp,
              "stages": [run.hashes[p.name] for p in stages],
              "predictor": run.hashes["predictor.keras"], **run.refiner_input(),
              "base": run.hashes["base.keras"],
              "calibration": cfg.calibration, "accuracy_drop_points": cfg.accuracy_drop_points,
              "macs_budget": cfg.macs_budget}

    def calibrate() -> dict[str, Any]:
        from .._macs import count_macs
        from ..cascade import (build_cascade, choose_exit_rule, compute_stage_logits,
                               evaluate_cascade, save_cascade)
        from ..crop import CropConfig

        # With a refiner the cascade holds it (cascade.json version 2): stage crops at the
        # refined boxes, its passes in every MAC figure, and the bundle carries it.
        spec = build_cascade(stages, predictor=refiner or predictor, crop=CropConfig(),
                             class_names=run.dataset.class_names,
                             names=[p.stem for p in stages], dataset=run.data_record(fp))
        pred = run.locator(predictor, refiner)
        models = [run.load_model(p) for p in stages]
        val = compute_stage_logits(spec, run.dataset.val, models=models, predictor=pred)
        test = compute_stage_logits(spec, run.test, models=models, predictor=pred)
        if cfg.calibration == "accuracy":
            spec, result, _ = choose_exit_rule(spec, val, mode="accuracy", target="last",
                                               target_offset_points=-cfg.accuracy_drop_points)
        else:
            budget = cfg.macs_budget * count_macs(run.load_model(base)).macs
            spec, result, _ = choose_exit_rule(spec, val, mode="budget", macs_budget=budget)
        ev = evaluate_cascade(spec, test, val=val)
        evaluation = ev.to_dict()
        spec = spec.with_evaluation({**{k: v for k, v in evaluation.items() if k != "curve"},
                                     "split": "test" if run.dataset.test is not None else "val"})
        save_cascade(spec, out)
        return {"evaluation": evaluation, "calibration": result.to_dict(),
                "criterion": spec.stages[-1].criterion,
                "accumulate_weight": spec.stages[-1].accumulate_weight}

    run.step("cascade", inputs, [out], calibrate,
             f"{len(stages)}-stage cascade calibrated on validation ({cfg.calibration} mode)"
             + (", refined boxes" if refiner else ""))
    return out


def _bundle_step(run: _Run, fp: str, cascade: Path, stages: Sequence[Path], predictor: Path
                 ) -> Path:
    cfg = run.config
    folder, archive = run.dir / "bundle", run.dir / "bundle.zip"
    inputs = {"data": fp, "cascade": run.hashes["cascade.json"],
              "stages": [run.hashes[p.name] for p in stages],
              "predictor": run.hashes["predictor.keras"], **run.refiner_input(),
              "tolerance_points": cfg.tolerance_points, "seed": cfg.seed}

    def convert() -> dict[str, Any]:
        from .._convert import ConversionCheckError
        from ..cascade import convert_cascade_bundle, load_cascade
        from ..cascade._convert import threshold_split_of

        for old in (folder, archive):  # ours, from a run whose inputs have changed since
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
        test = run.test
        spec = load_cascade(cascade)  # with the refiner, if the run trained one
        try:
            with quiet_tensorflow():
                _, metrics = convert_cascade_bundle(
                    spec, run.dataset.train, test, folder, zip_path=archive,
                    calibration_size=min(CALIBRATION_IMAGES, len(run.dataset.train)),
                    check_size=min(CHECK_IMAGES, len(test)),
                    tolerance_points=cfg.tolerance_points, seed=cfg.seed,
                    extra_metrics={"dataset": run.data_record(fp), "compress_run": str(run.dir)},
                    # What tfedge-convert cascade does: the thresholds solved again on the
                    # int8 scores of the split they were calibrated on.
                    threshold_split=threshold_split_of(spec, run.dataset))
        except ConversionCheckError as exc:
            raise TfedgeError(f"int8 conversion check failed: {exc} (raise tolerance_points, "
                              "or train longer: a sharper model quantises better)") from exc
        keys = ("top1", "float_top1", "top1_drop_points", "mean_macs", "float_mean_macs",
                "exit_rates", "float_exit_rates", "agreement", "thresholds", "float_thresholds",
                "check_images", "calibration_images", "refiner")
        return {k: metrics.get(k) for k in keys}

    run.step("bundle", inputs, [archive], convert,
             "int8 conversion of predictor" + (", refiner" if run.refiner_input() else "")
             + " and stages, checked against float")
    return archive


def _verify_step(run: _Run, archive: Path) -> dict[str, Any]:
    inputs = {"bundle": run.hashes["bundle.zip"]}

    def verify() -> dict[str, Any]:
        from ..runtime import load_bundle
        from ..runtime.bundle import check_tensor_specs
        from ..runtime.interpreter import TfliteModel

        checked = []
        with load_bundle(archive) as bundle:
            models = check_tensor_specs(bundle, lambda path: TfliteModel(path, 1))
            for entry in bundle.models:
                model = models[entry.file]
                zeros = np.zeros(model.input_spec.shape, dtype=model.input_spec.dtype)
                outputs = model.run_raw_all(zeros)
                if not all(np.all(np.isfinite(o)) for o in outputs):
                    raise TfedgeError(f"{archive}: {entry.file} gives NaN or infinity on a zero "
                                      "input: delete the run's bundle.zip and run again")
                checked.append(entry.file)
            manifest_version = getattr(bundle, "version", None)
            has_refiner = getattr(bundle, "refiner", None) is not None
        return {"ok": True, "models": checked, "manifest_version": manifest_version,
                "refiner_in_bundle": has_refiner}

    return run.step("verify", inputs, [], verify, "the bundle's hashes, tensor specs and a run "
                    "of every model (what 'tfedge-convert verify' checks)")


def _measure_step(run: _Run, fp: str, paths: Mapping[str, Any]) -> dict[str, Any]:
    from ._measure import measure

    cfg = run.config
    grid = run.dir / "report" / "grid.png"
    inputs = {"data": fp, "base": run.hashes["base.keras"],
              "predictor": run.hashes["predictor.keras"], "crop": run.hashes["crop.keras"],
              "cascade": run.hashes["cascade.json"], "bundle": run.hashes["bundle.zip"],
              "stages": [run.hashes[p.name] for p in paths["stages"]],
              "refiner": run.hashes.get("refiner.keras"),
              "shrink_only": {m: run.hashes[p.name] for m, p in paths["shrink_only"].items()},
              "preview_count": cfg.preview_count}
    return run.step("measure", inputs, [grid], lambda: measure(run, paths, grid),
                     "top-1, MACs, parameters, int8 size and int8 ms per frame of every "
                     "ablation row; test-image grid")


def run_compress(run_dir: Union[str, os.PathLike], data: Optional[DataSource] = None,
                 config: Optional[CompressConfig] = None, *,
                 progress: Optional[Callable[[str], None]] = None) -> CompressResult:
    """Run (or resume) the whole method in ``run_dir``; return where things are and the summary.

    data / config: None reuses what ``run_dir/compress.json`` recorded (an error
    when there is no such record); data that differs from the record is refused.
    progress: called with one line per step (default: the ``tfedge.compress`` logger).
    """
    run_dir = Path(run_dir)
    recorded = read_run(run_dir)
    if recorded is not None:
        if data is None:
            data = DataSource.from_dict(recorded["data"])
        else:
            check_same_data(run_dir, recorded, data)
        if config is None:
            config = CompressConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                       for k, v in recorded["settings"].items()})
    elif data is None:
        raise TfedgeError(f"{run_dir} holds no compress run yet: give the data (--data "
                          "benchmark or a folder of class folders)")
    config = config or CompressConfig()
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(run_dir, data, config, progress or log.info)
    run.say(f"compress: {data.describe()} -> {run_dir}")
    fp = data_fingerprint(run.dataset)
    atomic_write_json(run_dir / RUN_FILE, {
        "format": RUN_FORMAT, "version": RUN_VERSION, "data": data.to_dict(),
        "data_fingerprint": fp, "dataset": run.dataset.name, "settings": config.to_dict()})

    base = _base_step(run, fp)
    labels = _box_label_step(run, fp, base)
    predictor = _predictor_step(run, fp, labels)
    refiner = _refiner_step(run, fp, labels, predictor)
    crop = _crop_step(run, fp, base, labels, predictor, refiner)
    shrunk = _shrink_step(run, fp, crop, labels, predictor, refiner)
    shrink_only = _shrink_only_step(run, fp, base, crop, predictor, refiner)
    stages = [*shrunk, crop]
    cascade = _cascade_step(run, fp, base, stages, predictor, refiner)
    archive = _bundle_step(run, fp, cascade, stages, predictor)
    _verify_step(run, archive)
    paths = {"base": base, "predictor": predictor, "crop": crop, "cascade": cascade,
             "bundle": archive, "refiner": refiner, "stages": stages,
             "shrink_only": shrink_only}
    measured = _measure_step(run, fp, paths)

    from ._report import write_report

    run.index += 1
    run.say(f"[{run.index}/{len(STEP_NAMES)}] report: HTML, PNGs and JSON summary")
    summary = write_report(run_dir / "report", run_record={
        "run_dir": str(run_dir), "data": run.data_record(fp), "settings": config.to_dict(),
        "steps": {k: v for k, v in run.results.items() if k not in ("measure",)},
        "steps_run": run.ran, "steps_cached": run.cached,
        "artifacts": {name: digest for name, digest in run.hashes.items()}}, measured=measured)
    seconds = time.perf_counter() - start
    run.say(f"compress: done in {seconds:.0f} s ({len(run.ran)} step(s) run, "
            f"{len(run.cached)} cached); report {run_dir / 'report' / 'report.html'}")
    return CompressResult(run_dir, summary, run.ran, run.cached, seconds)


def inputs_key(inputs: Mapping[str, Any]) -> str:
    """The cache key of a step's inputs (exposed for tests)."""
    return canonical_key(inputs)
