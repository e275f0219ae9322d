"""Evaluation of the crop pipeline: box quality, top-1 on three inputs, MACs, a picture.

:func:`evaluate_crop_pipeline` scores one predictor + classifier pair on a
split:

* box quality -- mean IoU of the predicted boxes against the true ones, and
  IoU percentiles (:func:`iou_summary`);
* top-1 of the classifier on **predicted** crops (what the deployment does),
  on **ground-truth** crops (the oracle: the best a predictor could give) and
  on the **full image** resized to the same resolution (what cropping is
  compared with at equal classifier cost);
* MACs: the predictor's plus the classifier's, always counted together.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .._errors import DatasetError
from .._image import upright_size
from .._macs import count_macs
from .._train import _check_labels, model_resolution
from ..data._boxes import iou
from ..data._tfdata import make_dataset
from ..data._preview import save_preview
from ..data._types import ImageSplit, Split
from ._boxnet import predictor_spec_of
from ._crop_datasets import make_crop_dataset
from ._predictor_inference import predict_boxes, predictor_macs
from .geometry import CropConfig, crop_windows, window_to_box

__all__ = ["IOU_PERCENTILES", "IOU_THRESHOLDS", "LOW_IOU_PERCENTILE", "iou_summary",
           "iou_by_background", "CropEvalResult", "evaluate_crop_pipeline", "save_box_preview"]

log = logging.getLogger(__name__)


IOU_PERCENTILES = (5, 10, 25, 50, 75, 90)
IOU_THRESHOLDS = (0.5, 0.7, 0.8)
LOW_IOU_PERCENTILE = 10
"""The percentile :func:`iou_by_background` reports: the boxes a user sees fail (issue #19)."""
MISS_IOU = 0.5
"""A box below this IoU counts as missing its object."""


def iou_summary(predicted: Any, true: Any) -> dict[str, float]:
    """Mean IoU, IoU percentiles (``p5`` ... ``p90``) and the fraction above 0.5/0.7/0.8.

    Rows whose true box is unknown (NaN) are left out; ``count`` says how
    many were scored.
    """
    pred = np.asarray(predicted, np.float32)
    truth = np.asarray(true, np.float32)
    if pred.shape != truth.shape or pred.ndim != 2 or pred.shape[-1] != 4:
        raise DatasetError(f"predicted and true boxes must both be (N, 4), got {pred.shape} "
                           f"and {truth.shape}")
    scores = iou(pred, truth)
    scores = scores[~np.isnan(scores)]
    if scores.size == 0:
        raise DatasetError("no true boxes to score against: the split has no known boxes")
    out = {"miou": float(scores.mean()), "count": int(scores.size)}
    for p, v in zip(IOU_PERCENTILES, np.percentile(scores, IOU_PERCENTILES)):
        out[f"p{p}"] = float(v)
    for t in IOU_THRESHOLDS:
        out[f"above_{t:.1f}"] = float(np.mean(scores >= t))
    return out


def iou_by_background(ious: Any, backgrounds: Any) -> dict[str, Any]:
    """Box IoU per background (photo or scene), and its 10th percentile, overall and per background.

    A mean over the test split hides a scene the predictor never learned;
    this names it. ``ious`` is one IoU per image (NaN: unknown true box, left
    out); ``backgrounds`` one label per image (e.g.
    :func:`tfedge.data.benchmark_backgrounds`, or photo scenes). Returns::

        {"count": N, "miou": mean, "p10": 10th percentile, "missed": fraction below 0.5,
         "backgrounds": {name: {"count", "miou", "p10", "missed"}, ...},   # sorted by name
         "worst": name of the background with the lowest mean, "worst_miou": its mean}
    """
    scores = np.asarray(ious, np.float64).reshape(-1)
    labels = np.asarray([str(b) for b in backgrounds], dtype=object)
    if labels.shape != scores.shape:
        raise DatasetError(f"ious and backgrounds must have one entry per image: got "
                           f"{scores.size} IoUs and {labels.size} backgrounds")
    known = ~np.isnan(scores)
    if not known.any():
        raise DatasetError("no IoU to group: every true box is unknown")
    scores, labels = scores[known], labels[known]

    def stats(values: np.ndarray) -> dict[str, Any]:
        return {"count": int(values.size), "miou": float(values.mean()),
                f"p{LOW_IOU_PERCENTILE}": float(np.percentile(values, LOW_IOU_PERCENTILE)),
                "missed": float(np.mean(values < MISS_IOU))}

    per = {name: stats(scores[labels == name]) for name in sorted(set(labels.tolist()))}
    worst = min(per, key=lambda name: (per[name]["miou"], name))
    return {**stats(scores), "backgrounds": per, "worst": worst, "worst_miou": per[worst]["miou"]}


@dataclass(frozen=True)
class CropEvalResult:
    """Scores of one predictor + classifier pair on one split (see the module docstring)."""

    count: int
    boxes: Optional[dict[str, float]]  # iou_summary of predicted boxes; None without true boxes
    top1_predicted: float
    top1_oracle: Optional[float]       # ground-truth crops; None without true boxes
    top1_full: float                   # whole image at the classifier's resolution
    predictor_macs: int
    classifier_macs: int
    classifier_resolution: int
    predictor_resolution: int
    crop: dict[str, Any]

    @property
    def pipeline_macs(self) -> int:
        """Predictor plus classifier: what one image costs."""
        return self.predictor_macs + self.classifier_macs

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["pipeline_macs"] = self.pipeline_macs
        return out


def _top1(classifier: Any, dataset: Any, labels: np.ndarray) -> float:
    logits = [np.asarray(classifier(images, training=False)) for images, _ in dataset]
    pred = np.argmax(np.concatenate(logits), axis=1)
    return float(np.mean(pred == np.asarray(labels)))


def evaluate_crop_pipeline(predictor: Any, classifier: Any, split: Split, *,
                           crop: CropConfig = CropConfig(), batch_size: int = 128,
                           predicted_boxes: Optional[np.ndarray] = None) -> tuple[CropEvalResult, np.ndarray]:
    """Score the crop pipeline on ``split``; return ``(result, predicted boxes (N, 4))``.

    ``predicted_boxes`` skips running the predictor (boxes computed before).
    """
    _check_labels(classifier, split)
    res = model_resolution(classifier)
    spec = predictor_spec_of(predictor)
    boxes = predict_boxes(predictor, split) if predicted_boxes is None else \
        np.asarray(predicted_boxes, np.float32)
    labels = np.asarray(split.labels)
    top1_pred = _top1(classifier, make_crop_dataset(split, resolution=res, batch_size=batch_size,
                                                    boxes=boxes, crop=crop), labels)
    has_truth = split.boxes is not None and not np.isnan(np.asarray(split.boxes)).all()
    summary = iou_summary(boxes, split.boxes) if has_truth else None
    top1_oracle = _top1(classifier, make_crop_dataset(split, resolution=res, batch_size=batch_size,
                                                      crop=crop), labels) if has_truth else None
    top1_full = _top1(classifier, make_dataset(split, resolution=res, batch_size=batch_size,
                                               training=False), labels)
    result = CropEvalResult(
        count=len(split), boxes=summary, top1_predicted=top1_pred, top1_oracle=top1_oracle,
        top1_full=top1_full, predictor_macs=predictor_macs(predictor),
        classifier_macs=count_macs(classifier).macs, classifier_resolution=res,
        predictor_resolution=spec.resolution, crop=crop.to_dict())
    log.info("crop pipeline: top-1 %.4f on predicted crops, %s on true crops, %.4f on full "
             "images; mean IoU %s; %.2f + %.2f MMACs", top1_pred,
             "n/a" if top1_oracle is None else f"{top1_oracle:.4f}", top1_full,
             "n/a" if summary is None else f"{summary['miou']:.4f}",
             result.predictor_macs / 1e6, result.classifier_macs / 1e6)
    return result, boxes


def save_box_preview(split: Split, predicted_boxes: np.ndarray, path: Union[str, os.PathLike], *,
                     count: int = 32, crop: Optional[CropConfig] = None, order: str = "first",
                     tile: int = 128) -> np.ndarray:
    """PNG grid of images with true (green) and predicted (red) boxes; returns the indices shown.

    crop: draw the crop window (of the predicted box) instead of the raw
        predicted box. order: ``'first'`` images, or ``'worst'`` IoU first
        (the failures are what a person wants to see).
    """
    pred = np.asarray(predicted_boxes, np.float32)
    if pred.shape != (len(split), 4):
        raise DatasetError(f"predicted boxes must be ({len(split)}, 4), got {pred.shape}")
    if order not in ("first", "worst"):
        raise DatasetError(f"preview order {order!r} is not valid: choose first or worst")
    n = min(count, len(split))
    scores = iou(pred, split.boxes) if split.boxes is not None else np.full(len(split), np.nan)
    if order == "worst" and split.boxes is not None:
        idx = np.argsort(np.where(np.isnan(scores), np.inf, scores), kind="stable")[:n]
    else:
        idx = np.arange(n)
    if isinstance(split, ImageSplit):
        sub = ImageSplit(np.asarray(split.images[idx]), split.labels[idx],
                         None if split.boxes is None else split.boxes[idx], split.class_names)
        heights = np.full(n, split.image_size[0])
        widths = np.full(n, split.image_size[1])
    else:
        sub = split.subset(idx)
        sizes = np.array([upright_size(p) for p in sub.paths]).reshape(-1, 2)
        heights, widths = sizes[:, 0], sizes[:, 1]
    shown = pred[idx]
    if crop is not None:
        shown = window_to_box(crop_windows(shown, heights, widths, crop), heights, widths)
    captions = [f"{split.class_names[int(split.labels[i])][:10]} "
                + ("" if np.isnan(scores[i]) else f"{scores[i]:.2f}") for i in idx]
    save_preview(sub, path, count=n, tile=tile, predicted_boxes=shown, captions=captions)
    return idx
