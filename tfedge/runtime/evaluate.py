"""A bundle's int8 cascade on a split of images: THE Python evaluation of a bundle.

One route, used by everything that scores int8 models on images: the
``tfedge-pi`` comparison (``rpi_runner.evaluate_bundle``), the training
side's bundle evaluation (``tfedge.cascade.evaluate_bundle``) and the int8
check of ``tfedge-convert cascade`` (``run_int8_cascade``). Per image, as the
bundle contract says (``docs/bundle.md``):

1. the predictor sees the whole image resized (:func:`geometry.resize_bilinear`,
   float32) and quantised with its input's own parameters
   (:func:`interpreter.quantize`); its dequantised outputs become a box
   (:mod:`tfedge.runtime.boxes`), the box a window of the full-resolution
   image (:func:`geometry.crop_window`); without a predictor the window is the
   whole image; with a refiner (manifest version 2) each pass cuts the
   refiner's window around the box (:mod:`tfedge.runtime.refine`), feeds it
   the same way and maps its box back into the image before that crop;
2. every stage sees that window resized to its resolution and quantised the
   same way; its output codes are dequantised to logits;
3. the exit decisions come from :func:`decision.cascade_exits` on the
   accumulated logits (the one early-exit rule).

Every stage runs on every image (the decisions only choose among the
logits), so per-stage figures come free. This is deliberately the
*reference* route, not the runner's fast path (:mod:`tfedge.runtime.preprocess`),
so comparing the two checks the runner's shortcuts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from .boxes import decode_box, predictor_values
from .bundle import (Bundle, PredictorEntry, RefinerEntry, StageEntry, check_tensor_specs,
                     load_bundle)
from .decision import accumulate_logits, cascade_exits, expected_macs
from .errors import BundleError, TfedgeError
from .geometry import CropConfig, crop_window, resize_bilinear
from .image import read_image
from .interpreter import TensorSpec, TfliteModel, dequantize, quantize
from .refine import refine_step, refine_window

__all__ = ["BundleEvaluation", "evaluate_bundle", "evaluate_models", "split_images",
           "crop_config", "refiner_window_config", "reference_input", "locate_box", "agreement"]

BundleLike = Union[Bundle, str, os.PathLike]


@dataclass(frozen=True)
class BundleEvaluation:
    """A bundle's predictions on a split (see :func:`evaluate_bundle`).

    ``logits``: every stage's dequantised logits, ``(N, classes)`` float32
    each (every stage runs on every image). ``boxes``: the normalised boxes
    ``(N, 4)`` the crops were cut at (None without a predictor): the refined
    boxes when the bundle has a refiner, whose input boxes (the predictor's
    own) are then ``predictor_boxes``.
    """

    predictions: np.ndarray     # (N,) int32 class indices
    exit_stages: np.ndarray     # (N,) int32
    windows: np.ndarray         # (N, 4) int32 crop windows in image pixels
    top1: Optional[float]       # None when the split has no labels
    exit_rates: tuple[float, ...]
    mean_macs: float
    count: int
    logits: tuple[np.ndarray, ...] = ()
    boxes: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    predictor_boxes: Optional[np.ndarray] = None

    def to_json(self) -> dict[str, Any]:
        return {"top1": self.top1, "exit_rates": list(self.exit_rates),
                "mean_macs": self.mean_macs, "count": self.count}


def crop_config(entry: PredictorEntry) -> CropConfig:
    """The predictor's crop geometry (a :class:`~tfedge.BundleError` if the manifest's is bad)."""
    try:
        return CropConfig.from_dict(dict(entry.crop))
    except TfedgeError as exc:
        raise BundleError(f"manifest.json: predictor.crop is invalid ({exc}): rebuild the bundle "
                          "with tfedge-convert") from exc


def refiner_window_config(entry: RefinerEntry) -> CropConfig:
    """The refiner's window geometry (a :class:`~tfedge.BundleError` if the manifest's is bad)."""
    try:
        return CropConfig.from_dict(dict(entry.window))
    except TfedgeError as exc:
        raise BundleError(f"manifest.json: refiner.window is invalid ({exc}): rebuild the bundle "
                          "with tfedge-convert") from exc


def _model_box(model: Any, image: np.ndarray, box_format: str) -> np.ndarray:
    raw = model.run_raw_all(reference_input(image, model.input_spec))
    outputs = [dequantize(r, s.scale, s.zero_point) for r, s in zip(raw, model.output_specs)]
    return decode_box(predictor_values(outputs, box_format), box_format)


def locate_box(image: np.ndarray, predictor: PredictorEntry, predictor_model: Any,
               refiner: Optional[RefinerEntry] = None, refiner_model: Any = None,
               window: Optional[CropConfig] = None) -> tuple[np.ndarray, np.ndarray]:
    """``(predictor's box, final box)`` of one ``(H, W, 3)`` image, by the reference route.

    Without a refiner both are the predictor's box; with one, each of its
    ``passes`` cuts :func:`tfedge.runtime.refine.refine_window` around the
    current box, runs the refiner on it and maps its box back
    (:func:`tfedge.runtime.refine.refine_step`).
    """
    height, width = image.shape[:2]
    first = _model_box(predictor_model, image, predictor.box_format)
    box = first
    if refiner is not None:
        config = window if window is not None else refiner_window_config(refiner)
        for _ in range(refiner.passes):
            y0, x0, y1, x1 = (int(v) for v in refine_window(box, height, width, config))
            inner = _model_box(refiner_model, image[y0:y1, x0:x1], refiner.box_format)
            box = refine_step(box, inner, (y0, x0, y1, x1), height, width)
    return first, box


def reference_input(image: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The training side's preprocessing: float32 bilinear resize, then ``interpreter.quantize``."""
    _, height, width, _ = spec.shape
    resized = resize_bilinear(image, height, width)
    if spec.quantized:
        return quantize(resized, spec.scale, spec.zero_point, spec.dtype)[None]
    return resized.astype(spec.dtype)[None]


def split_images(split: Any) -> tuple[Iterable[np.ndarray], Optional[np.ndarray], int,
                                       Optional[tuple[str, ...]]]:
    """``(images, labels, count, class_names)`` of an array, an ImageSplit, a FileSplit or a
    list of ``(H, W, 3)`` uint8 arrays of any sizes (no labels).

    Duck-typed (``images`` or ``paths``, ``labels``, ``class_names``): the
    runtime never imports ``tfedge.data``.
    """
    names = getattr(split, "class_names", None)
    names = tuple(names) if names is not None else None
    if isinstance(split, (list, tuple)):
        return split, None, len(split), None
    if isinstance(split, np.ndarray):
        images, labels = split, None
    elif hasattr(split, "images"):
        images, labels = np.asarray(split.images), np.asarray(split.labels)
    elif hasattr(split, "paths"):
        paths = tuple(split.paths)
        return ((read_image(p)[0] for p in paths), np.asarray(split.labels), len(paths), names)
    else:
        raise TfedgeError(f"evaluate_bundle needs an ImageSplit, a FileSplit or an (N, H, W, 3) "
                          f"uint8 array, got {type(split).__name__}: load image files into a "
                          "split first")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise TfedgeError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    return images, labels, int(images.shape[0]), names


def _limited(images: Iterable[np.ndarray], limit: Optional[int]) -> Iterator[np.ndarray]:
    for i, image in enumerate(images):
        if limit is not None and i >= limit:
            return
        yield image


def evaluate_models(images: Iterable[np.ndarray], *, stages: Sequence[StageEntry],
                    stage_models: Sequence[Any], predictor: Optional[PredictorEntry] = None,
                    predictor_model: Any = None, labels: Optional[np.ndarray] = None,
                    count: Optional[int] = None, refiner: Optional[RefinerEntry] = None,
                    refiner_model: Any = None) -> BundleEvaluation:
    """Run a cascade given as manifest entries and loaded models (see the module docstring).

    ``stage_models``/``predictor_model``: objects with ``input_spec``,
    ``output_specs`` and ``run_raw_all`` (:class:`~tfedge.runtime.interpreter.TfliteModel`).
    ``images``: ``(H, W, 3)`` uint8 RGB arrays of any size. The entries'
    ``file`` may be empty: this is how ``tfedge-convert`` checks models before
    writing their bundle. ``refiner``/``refiner_model``: the predictor's
    refiner (manifest version 2), run before the crop.
    """
    if not stages:
        raise TfedgeError("a cascade needs at least one stage: pass stages and stage_models")
    if refiner is not None and predictor is None:
        raise TfedgeError("a refiner refines the predictor's box: pass predictor and "
                          "predictor_model too")
    config = crop_config(predictor) if predictor is not None else None
    refine_config = refiner_window_config(refiner) if refiner is not None else None
    logits: list[list[np.ndarray]] = [[] for _ in stages]
    windows, boxes, first_boxes = [], [], []
    for image in images:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise TfedgeError(f"images must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        window = (0, 0, height, width)
        if predictor is not None:
            first, box = locate_box(image, predictor, predictor_model, refiner, refiner_model,
                                    refine_config)
            window = tuple(int(v) for v in crop_window(box, height, width, config))
            boxes.append(box)
            first_boxes.append(first)
        y0, x0, y1, x1 = window
        crop = image[y0:y1, x0:x1]
        for k, model in enumerate(stage_models):
            spec = model.output_specs[0]
            raw = model.run_raw_all(reference_input(crop, model.input_spec))[0]
            logits[k].append(dequantize(raw, spec.scale, spec.zero_point).reshape(-1))
        windows.append(window)
    n = len(windows)
    if count is not None and n != count:
        raise TfedgeError(f"expected {count} images, got {n}")
    classes = int(stages[0].output.shape[-1])
    stage_logits = tuple(np.stack(z).astype(np.float32) if z else np.zeros((0, classes), np.float32)
                         for z in logits)
    if n:
        decision = accumulate_logits(stage_logits, [s.accumulate_weight for s in stages])
        exits, predictions = cascade_exits(decision, [s.criterion for s in stages],
                                           [s.threshold for s in stages])
        locator_macs = predictor.macs if predictor is not None else 0
        if refiner is not None:
            locator_macs += refiner.passes * refiner.macs
        mean_macs = expected_macs(exits, [s.macs for s in stages], locator_macs)
    else:
        exits = predictions = np.zeros(0, np.int64)
        mean_macs = 0.0
    y = None if labels is None else np.asarray(labels)[:n]
    top1 = float(np.mean(predictions == y)) if y is not None and n else None
    rates = tuple(float(np.mean(exits == k)) if n else 0.0 for k in range(len(stages)))
    return BundleEvaluation(
        predictions=predictions.astype(np.int32), exit_stages=exits.astype(np.int32),
        windows=np.asarray(windows, np.int32).reshape(n, 4), top1=top1, exit_rates=rates,
        mean_macs=mean_macs, count=n, logits=stage_logits,
        boxes=np.asarray(boxes, np.float32).reshape(n, 4) if predictor is not None else None,
        labels=y,
        predictor_boxes=(np.asarray(first_boxes, np.float32).reshape(n, 4)
                         if predictor is not None else None))


def evaluate_bundle(bundle: BundleLike, split: Any, *, num_threads: int = 1,
                    limit: Optional[int] = None) -> BundleEvaluation:
    """Run a bundle on an image split the way the training side evaluates, without TensorFlow.

    ``bundle``: a loaded :class:`~tfedge.runtime.bundle.Bundle` or the path of
    a bundle folder or ``.zip``. ``split``: an ``ImageSplit``, a ``FileSplit``
    (its files decoded with :func:`tfedge.runtime.image.read_image`), an
    ``(N, H, W, 3)`` uint8 array or a list of ``(H, W, 3)`` uint8 frames of any
    sizes (then ``top1`` is None). ``limit``: only the
    first images. A split whose class names differ from the bundle's labels
    is refused. This is the reference ``rpi_runner.EdgePipeline`` is compared
    with: both must agree on (nearly) every image.
    """
    images, labels, count, names = split_images(split)
    owns = not isinstance(bundle, Bundle)
    loaded = load_bundle(bundle) if owns else bundle
    try:
        if names is not None and tuple(loaded.labels) != names:
            raise TfedgeError(f"the bundle's labels {list(loaded.labels)[:4]}... differ from the "
                              f"split's {list(names)[:4]}...: evaluate on the dataset the bundle "
                              "was built for")
        models = check_tensor_specs(loaded, lambda path: TfliteModel(path, num_threads=num_threads))
        predictor = loaded.predictor
        refiner = loaded.refiner
        return evaluate_models(
            _limited(images, limit), stages=loaded.stages,
            stage_models=[models[s.file] for s in loaded.stages], predictor=predictor,
            predictor_model=models[predictor.file] if predictor is not None else None,
            labels=labels, count=count if limit is None else min(count, limit),
            refiner=refiner, refiner_model=models[refiner.file] if refiner is not None else None)
    finally:
        if owns:
            loaded.close()


def agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """The fraction of positions where two prediction sequences agree."""
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        raise TfedgeError(f"cannot compare {x.shape[0] if x.ndim else 0} predictions with "
                          f"{y.shape[0] if y.ndim else 0}: run both on the same images")
    return float(np.mean(x == y)) if x.size else 1.0
