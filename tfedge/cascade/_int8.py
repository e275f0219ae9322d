"""Int8 cascade fidelity: calibrate the int8 pipeline on what the device really computes.

A float cascade's numbers do not carry over to its int8 bundle piece by piece.
On the device the stages see crops cut at the *int8* predictor's boxes, and
the exit thresholds are compared with the *int8* stages' scores. Two inputs
of the conversion are therefore taken from the int8 pipeline itself:

* :func:`device_crops`: the crops the device feeds each stage (int8
  predictor -> decoded box -> crop window of the full image -> bilinear
  resize, exactly the route of :func:`tfedge.runtime.evaluate.evaluate_models`),
  used as each stage's quantisation calibration images;
* :func:`recalibrate_thresholds`: the cascade's own calibration objective
  (``spec.calibration``: accuracy target or MAC budget, the same absolute
  figures) solved again on the int8 pipeline's logits of the calibration
  split, so the bundle's thresholds give on the device the operating point
  the float thresholds gave in float.

The early-exit rule itself (:mod:`tfedge.runtime.decision`) is unchanged;
only its inputs (crops, thresholds) are calibrated. Pure numpy + LiteRT: no
TensorFlow here.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..runtime.boxes import HEATMAP_BOX_FORMAT, decode_box, predictor_values
from ..runtime.errors import TfedgeError
from ..runtime.evaluate import reference_input, split_images
from ..runtime.geometry import crop_window, resize_bilinear
from ..runtime.interpreter import dequantize
from ._calibrate import CalibrationResult, calibrate_thresholds
from ._cascade import CascadeSpec

__all__ = ["PREDICTOR_BOX_FORMAT", "predictor_box_format", "device_boxes", "device_crops",
           "recalibrate_thresholds", "operating_point"]

#: tfedge.crop predictors output (cy, cx, h, w); heat-head predictors are converted in their
#: export form (two outputs: heat maps and cell sizes).
PREDICTOR_BOX_FORMAT = "cyxhw_normalized"


def predictor_box_format(predictor: Any) -> str:
    """The box format of a converted predictor (a ``TfliteModel``), as the converter writes it."""
    return HEATMAP_BOX_FORMAT if len(predictor.output_specs) == 2 else PREDICTOR_BOX_FORMAT


def _device_box(image: np.ndarray, predictor: Any, box_format: str) -> np.ndarray:
    raw = predictor.run_raw_all(reference_input(image, predictor.input_spec))
    outputs = [dequantize(r, s.scale, s.zero_point) for r, s in zip(raw, predictor.output_specs)]
    return decode_box(predictor_values(outputs, box_format), box_format)


def device_boxes(split: Any, predictor: Any, *, box_format: Optional[str] = None) -> np.ndarray:
    """The int8 predictor's ``(N, 4)`` normalised boxes on ``split``, decoded as on the device."""
    fmt = box_format or predictor_box_format(predictor)
    images, _, _, _ = split_images(split)
    boxes = [_device_box(np.asarray(image), predictor, fmt) for image in images]
    return np.asarray(boxes, np.float32).reshape(len(boxes), 4)


def device_crops(split: Any, resolutions: Sequence[int], *, predictor: Any = None,
                 crop: Any = None, box_format: Optional[str] = None
                 ) -> tuple[Optional[np.ndarray], list[np.ndarray]]:
    """The float32 ``(N, R, R, 3)`` inputs the device feeds a stage of each resolution.

    With ``predictor`` (a converted predictor, ``TfliteModel``): crops of the
    full image at the int8 predictor's boxes, through ``crop`` (a
    :class:`~tfedge.runtime.geometry.CropConfig`); without: whole images.
    Resized as :func:`tfedge.runtime.evaluate.reference_input` does, before
    its quantisation, so they are the values the stage's int8 input encodes.
    Returns ``(boxes or None, one array per resolution)``.
    """
    if predictor is not None and crop is None:
        raise TfedgeError("device_crops needs the predictor's crop config (crop=...) to cut "
                          "the crop windows")
    fmt = (box_format or predictor_box_format(predictor)) if predictor is not None else None
    images, _, _, _ = split_images(split)
    out: list[list[np.ndarray]] = [[] for _ in resolutions]
    boxes = []
    for image in images:
        image = np.asarray(image)
        height, width = image.shape[:2]
        window = (0, 0, height, width)
        if predictor is not None:
            box = _device_box(image, predictor, fmt)
            boxes.append(box)
            window = tuple(int(v) for v in crop_window(box, height, width, crop))
        y0, x0, y1, x1 = window
        patch = image[y0:y1, x0:x1]
        for arr, res in zip(out, resolutions):
            arr.append(resize_bilinear(patch, int(res), int(res)))
    crops = [np.stack(a).astype(np.float32) if a else np.zeros((0, int(r), int(r), 3), np.float32)
             for a, r in zip(out, resolutions)]
    box_array = np.asarray(boxes, np.float32).reshape(-1, 4) if predictor is not None else None
    return box_array, crops


def recalibrate_thresholds(spec: CascadeSpec, stage_logits: Sequence[np.ndarray],
                           labels: np.ndarray) -> Optional[CalibrationResult]:
    """Solve ``spec``'s own calibration objective again on another pipeline's logits.

    ``stage_logits``: per-stage logits of the int8 pipeline on the split the
    thresholds were calibrated on (``spec.calibration['split']``). The same
    mode, the same *absolute* accuracy target or MAC budget, the same
    criteria and accumulation weights: only the thresholds move. Returns None
    when the spec records no calibration objective (hand-set thresholds),
    which are then kept as they are.
    """
    record = dict(spec.calibration or {})
    mode = record.get("mode")
    if spec.num_stages < 2 or mode not in ("accuracy", "budget"):
        return None
    return calibrate_thresholds(
        stage_logits, labels, criteria=spec.criteria, weights=spec.weights,
        stage_macs=spec.stage_macs, predictor_macs=spec.predictor_macs, mode=mode,
        target_accuracy=record.get("target_accuracy") if mode == "accuracy" else None,
        macs_budget=record.get("macs_budget") if mode == "budget" else None)


def operating_point(outcome: Any) -> dict[str, Any]:
    """A :class:`~tfedge.runtime.decision.CascadeOutcome` as manifest-friendly figures."""
    return {"top1": float(outcome.top1), "mean_macs": float(outcome.expected_macs),
            "exit_rates": [float(f) for f in outcome.exit_fractions],
            "exit_top1": [None if np.isnan(a) else float(a) for a in outcome.stage_top1]}
