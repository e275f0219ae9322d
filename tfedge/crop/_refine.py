"""Box refinement: a second, closer look at the predictor's box.

The predictor sees the whole image at low resolution, where a small object
spans a few pixels; its boxes find the object but miss its edges. A
*refiner* is a second ``boxnet`` that sees a square window around that box
(the box's longer side grown by ``margin``, x1.25 by default, cut from the
full-resolution image, :func:`tfedge.crop.geometry.crop_window`) and
predicts the object's box inside it; mapped back to the image it replaces
the predictor's box. ``passes`` repeats the look around its own box. Both
models' MACs count as the predictor's: ``predictor + passes * refiner``.

Why (built-in benchmark, test split, seed 0, 12 epochs each):

* even on its own training images the default predictor reaches only mean
  IoU 0.79: a hit (IoU >= 0.5) averages 0.82, and with the true size at its
  predicted centre it would average 0.88. The size is what a 96-px view
  cannot read precisely;
* ``boxnet_heat_r96_w11`` alone 0.713; with a ``boxnet_heat_r64_w8`` refiner
  (window x1.5, i.e. margin 0.5; one training window per image around the
  predictor's box and one around a jittered true box): one pass 0.786, two
  passes 0.798. The refiner also recovers partial misses (IoU < 0.5: 17% ->
  12%);
* within 5% of the base's MACs (4.1 M), ``boxnet_heat_r96_w8`` (2.29 M, 0.680
  alone) and two passes of: ``boxnet_heat_r48_w8`` (0.57 M each) 0.773 and
  ``boxnet_heat_r64_w6`` (0.65 M each) 0.781 (both window x1.5, one window of
  each kind); ``boxnet_heat_r64_w6`` with window x1.25 and two windows of
  each kind 0.800 (4.4% of the base's MACs; a third pass 0.805).
  ``boxnet_heat_r96_w9`` first (2.77 M, 0.665 alone) with window x1.25 and
  one window of each kind 0.783: the refiner matters more than the first
  stage's width. Margin and copies changed together between 0.781 and 0.800.

Training: the refiner learns on windows around the predictor's own boxes on
the training images (what it will see) and around jittered true boxes (more
variety), each window's target being the true box in window coordinates.

A refiner file is a predictor file too: its sidecar names the predictor it
refines, and :func:`tfedge.crop.load_predictor` on it returns a
:class:`RefinedPredictor`, which every ``--predictor`` flag of the crop
commands accepts. Cascades take it as their predictor (stage crops at the
refined boxes) and bundles hold it as the manifest-v2 ``refiner`` entry
(``docs/bundle.md``). The window arithmetic (``boxes_to_window``,
``boxes_from_window``, ``merge_refined``) is :mod:`tfedge.runtime.refine`'s, the
device's own.

This module trains refiners. What the lower layers of :mod:`tfedge.crop` need
lives below it, so imports flow one way: the pair's type in
:mod:`tfedge.crop._refined_predictor`, the windows in
:mod:`tfedge.crop._crop_datasets` (:func:`window_crops`), inference and MACs
in :mod:`tfedge.crop._predictor_inference` (:func:`refine_boxes`,
:func:`predictor_macs`), files in :mod:`tfedge.crop._predictor_files`
(:func:`save_refiner`, :func:`load_refined`); import them from there, or from
:mod:`tfedge.crop`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .._errors import DatasetError, TfedgeError
from .._train import default_backup_dir
from ..data._tfdata import AugmentConfig
from ..data._types import ImageSplit, Split
from ..runtime.refine import boxes_to_window
from ._boxnet import build_predictor, get_predictor_spec
from ._crop_datasets import JitterConfig, window_crops
from ._evaluate import iou_summary
from ._predictor_files import _check_pairing, save_refiner
from ._predictor_inference import predict_boxes, refine_boxes
from ._predictor_training import PredictorTrainConfig, train_predictor
from ._refined_predictor import DEFAULT_REFINE_WINDOW, REFINER_ROLE, RefinedPredictor
from .geometry import CropConfig

__all__ = ["RefinerTrainConfig", "RefinerTrainResult", "DEFAULT_REFINER", "train_refiner"]

log = logging.getLogger(__name__)

DEFAULT_REFINER = "boxnet_heat_r64_w6"


def _refiner_augment() -> AugmentConfig:
    # Windows already vary in scale and position; a random resized crop would cut the object
    # the window holds. Flips only.
    return AugmentConfig(random_resized_crop=False, flip=True)


def _default_refiner_train() -> PredictorTrainConfig:
    return PredictorTrainConfig(augment=_refiner_augment())


@dataclass(frozen=True)
class RefinerTrainConfig:
    """How to train a refiner.

    window: the crop geometry of its window (margin, minimum size; square).
    passes: looks at inference (recorded with the model).
    predicted_copies: windows per image around the predictor's boxes (the first
        as predicted, the others moved by ``jitter`` as well).
    jittered_copies: windows per image around the true box moved by ``jitter``.
        Two of each (window x1.25) scored 0.800, one of each (window x1.5)
        0.781 (see the module docstring).
    train: the boxnet training settings (epochs, learning rate, seed, ...);
        its ``augment`` should keep the window's framing (flips only).
    """

    window: CropConfig = DEFAULT_REFINE_WINDOW
    passes: int = 2
    predicted_copies: int = 2
    jittered_copies: int = 2
    jitter: JitterConfig = JitterConfig(shift=0.08, scale=0.1, aspect=0.05)
    train: Any = field(default_factory=_default_refiner_train)

    def __post_init__(self) -> None:
        for key in ("passes", "predicted_copies", "jittered_copies"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TfedgeError(f"{key} must be a whole number >= 0, got {value!r}")
        if self.passes < 1:
            raise TfedgeError(f"passes must be >= 1, got {self.passes}: a refiner looks at least once")
        if self.predicted_copies + self.jittered_copies < 1:
            raise TfedgeError("predicted_copies + jittered_copies must be >= 1: the refiner "
                              "needs windows to learn from")
        if not isinstance(self.window, CropConfig) or not self.window.square:
            raise TfedgeError("the refiner's window must be a square CropConfig (its input is "
                              "square: a free window would stretch the object)")
        if self.window.scales:
            raise TfedgeError("the refiner's window must not snap to scales: its box is mapped "
                              "back from the exact window")

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window.to_dict(), "passes": self.passes,
                "predicted_copies": self.predicted_copies,
                "jittered_copies": self.jittered_copies, "jitter": self.jitter.to_dict(),
                "train": self.train.to_dict()}


@dataclass(frozen=True)
class RefinerTrainResult:
    model_path: Optional[Path]
    train_seconds: float
    windows: int                      # training windows (examples) the refiner saw per epoch
    val: Optional[dict[str, float]]   # IoU summaries on the validation split: predictor, refined
    interrupted: bool = False         # stopped by stop_after_epochs; the backup stays


# --------------------------------------------------------------------------- training


def train_refiner(model: Any, train: Split, *, predictor: Any,
                  val: Optional[Split] = None,
                  config: RefinerTrainConfig = RefinerTrainConfig(),
                  output: Union[str, os.PathLike, None] = None,
                  predictor_path: Union[str, os.PathLike, None] = None,
                  metadata: Optional[dict] = None,
                  backup_dir: Union[str, os.PathLike, None] = None,
                  stop_after_epochs: Optional[int] = None,
                  ) -> tuple[RefinedPredictor, RefinerTrainResult]:
    """Train a refiner for ``predictor`` (a Keras boxnet) on ``train``'s true boxes.

    model: a predictor name or spec (e.g. :data:`DEFAULT_REFINER`) or a Keras
        boxnet to fine-tune.
    val: scored with and without the refiner (mean IoU), if given and boxed.
    output: where to write the refiner (``.keras`` and sidecar); then
        ``predictor_path`` (the predictor's file) is required, since the
        sidecar names it so :func:`tfedge.crop.load_predictor` can rebuild
        the pair.
    backup_dir: per-epoch backups of the refiner's training (default
        ``<output>.backup``); a killed run started again resumes (its windows
        are cut again, the same way). ``stop_after_epochs``: stop after that
        many epochs, keeping the backup, as if killed (to test resuming);
        the result's ``interrupted`` is then True and nothing is written.

    The training windows are held in memory, ``N * (predicted_copies +
    jittered_copies) * r * r * 3`` bytes (about 1 GB for 20,000 images, four
    windows each, r = 64).
    """
    if isinstance(predictor, RefinedPredictor):
        raise TfedgeError("predictor is already refined: pass its first-stage predictor")
    if train.boxes is None or np.isnan(np.asarray(train.boxes)).all():
        raise DatasetError("a refiner learns from true boxes: the training split has none "
                           "(give boxes, or Grad-CAM pseudo-boxes with tfedge.crop.box_labels)")
    if output is not None:
        output = Path(output)
        if output.suffix != ".keras":
            raise TfedgeError(f"refiner files must end in .keras, got {str(output)!r}")
        if predictor_path is None:
            raise TfedgeError("train_refiner(output=...) needs predictor_path: the refiner's "
                              "sidecar names the predictor it refines")
        _check_pairing(output, Path(predictor_path))
    import keras

    if getattr(config.train, "patience", None) is not None:
        raise TfedgeError("early stopping is not available for refiners (their score needs the "
                          "predictor's boxes on the validation split): give the refiner a fixed "
                          "number of epochs")
    augment = config.train.augment
    if augment is not None and augment.random_resized_crop:
        log.warning("the refiner's training config crops windows at random "
                    "(augment.random_resized_crop): that cuts the object each window frames; "
                    "RefinerTrainConfig's default train config flips only")
    if not isinstance(model, keras.Model):
        keras.utils.set_random_seed(config.train.seed)  # the seed decides the initial weights
    net = model if isinstance(model, keras.Model) else build_predictor(get_predictor_spec(model))
    res = get_predictor_spec(net.name).resolution
    start = time.perf_counter()
    truth = np.asarray(train.boxes, np.float32)
    n = len(train)
    copies = config.predicted_copies + config.jittered_copies
    # One array filled in place: the windows are the bulk of the memory.
    images = np.empty((n * copies, res, res, 3), np.uint8)
    targets = np.empty((n * copies, 4), np.float32)
    sources = []
    if config.predicted_copies:
        pred = predict_boxes(predictor, train)
        sources += [(pred, config.jitter if k else None, k)
                    for k in range(config.predicted_copies)]
    sources += [(truth, config.jitter, 101 + k) for k in range(config.jittered_copies)]
    for j, (boxes, jitter, stream) in enumerate(sources):
        crops, windows = window_crops(train, boxes, resolution=res, window=config.window,
                                      jitter=jitter, seed=config.train.seed * 7919 + stream)
        images[j * n:(j + 1) * n] = crops
        targets[j * n:(j + 1) * n] = boxes_to_window(truth, windows)
    keep = ~np.isnan(targets).any(axis=1)
    if not keep.any():
        raise DatasetError("no training window holds its object: the predictor's boxes miss "
                           "every object; train the predictor first")
    if not keep.all():
        images, targets = images[keep], targets[keep]
    labels = np.tile(np.asarray(train.labels, np.int32), copies)[keep]
    # BatchNorm statistics are recalibrated on the first windows: those around the
    # predictor's own boxes, what the first pass sees at inference.
    windows_split = ImageSplit(images, labels, targets, tuple(train.class_names))
    log.info("refiner: %d training windows at %d px, %.0f MB (%d without their object, left "
             "out)", len(windows_split), res, images.nbytes / 1e6, int((~keep).sum()))
    if backup_dir is None:
        backup_dir = default_backup_dir(output)
    refiner, trained = train_predictor(
        net, windows_split, config=config.train, backup_dir=backup_dir,
        stop_after_epochs=stop_after_epochs,
        run_tag={"role": REFINER_ROLE, "refines_model": getattr(predictor, "name", None),
                 "refiner_config": config.to_dict()})
    train_seconds = time.perf_counter() - start
    if trained.stop_reason == "interrupted":
        return (RefinedPredictor(predictor, refiner, config.window, config.passes),
                RefinerTrainResult(None, train_seconds, len(windows_split), None, True))
    pair = RefinedPredictor(predictor, refiner, config.window, config.passes,
                            None if predictor_path is None else str(predictor_path))
    val_summary = None
    if val is not None and val.boxes is not None and not np.isnan(np.asarray(val.boxes)).all():
        first = predict_boxes(predictor, val)
        refined = refine_boxes(refiner, val, first, window=config.window, passes=config.passes)
        val_summary = {"predictor": iou_summary(first, val.boxes),
                       "refined": iou_summary(refined, val.boxes)}
        log.info("refiner validation mean IoU %.4f (predictor alone %.4f)",
                 val_summary["refined"]["miou"], val_summary["predictor"]["miou"])
    if output is not None:
        save_refiner(pair, output, predictor_path, {
            "train_config": config.to_dict(), "train_seconds": train_seconds,
            "epochs_used": trained.epochs_run, "stop_reason": trained.stop_reason,
            "val": val_summary, "class_names": list(train.class_names), **(metadata or {})})
    return pair, RefinerTrainResult(output, train_seconds, len(windows_split), val_summary)
