"""The EdgeCompress inference of one frame: predictor -> crop -> cascade with early exit.

:class:`EdgePipeline` holds a bundle's interpreters and classifies uint8 RGB
(or BGR) frames of any size. It is the core of ``tfedge-pi`` and what Python
code calls to run a bundle exactly as the device does::

    from rpi_runner import EdgePipeline
    with EdgePipeline("mybundle.zip", num_threads=1) as pipe:
        result = pipe.classify(frame)          # frame: (H, W, 3) uint8 RGB
        print(result.label, result.score, result.exit_stage, result.stage_ms)

Per frame (``docs/bundle.md``): the whole frame is resized to the predictor's
resolution; its box becomes a crop window in the *full-resolution* frame
(:func:`tfedge.runtime.geometry.crop_window`, the training side's own function);
each stage gets that window resized to its resolution, quantised with its own
input tensor's parameters (:mod:`tfedge.runtime.preprocess`, the fast path),
and its output is dequantised with its own output parameters; the early-exit
rule (:func:`tfedge.runtime.decision.decide_stage`) decides whether the next
stage runs. Without a predictor the window is the whole frame. A bundle with a
refiner (manifest version 2) runs it ``passes`` times between the predictor
and the crop: each pass cuts the refiner's window around the current box from
the full-resolution frame, and its box, mapped back into the frame
(:mod:`tfedge.runtime.refine`), replaces the current one.

:func:`evaluate_bundle` (:mod:`tfedge.runtime.evaluate`, re-exported here) is
the Python evaluation of a bundle on an image split, by the *reference*
route; comparing the two (``benchmarks/runner.py``) checks the runner's
shortcuts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from tfedge.runtime.boxes import BOX_DECODERS, decode_box, predictor_values
from tfedge.runtime.bundle import (Bundle, PredictorEntry, RefinerEntry, StageEntry,
                                   check_tensor_specs, load_bundle)
from tfedge.runtime.decision import StageDecision, decide_stage
from tfedge.runtime.errors import BundleError, TfedgeError
from tfedge.runtime.evaluate import (BundleEvaluation, agreement, crop_config, evaluate_bundle,
                                     refiner_window_config)
from tfedge.runtime.geometry import NUMPY_OPS, crop_window_with
from tfedge.runtime.interpreter import TensorSpec, TfliteModel, dequantize, invoke_checked
from tfedge.runtime.preprocess import needed_short_side, prepare_input
from tfedge.runtime.refine import refine_step

__all__ = ["BOX_DECODERS", "decode_box", "predictor_values", "StageTrace", "RefinerTrace",
           "FrameTrace", "FrameResult", "EdgePipeline", "BundleEvaluation", "evaluate_bundle", "agreement"]

BundleLike = Union[Bundle, str, os.PathLike]
_MS = 1e3


def _dequantized(raw: Sequence[np.ndarray], specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    return [dequantize(r, spec.scale, spec.zero_point) for r, spec in zip(raw, specs)]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StageTrace:
    """One stage's tensors for a frame: what golden vectors record."""

    input: np.ndarray           # quantised input, (1, r, r, 3) in the input dtype
    raw_output: np.ndarray      # output codes in the output dtype
    logits: np.ndarray          # dequantised, float32
    decision: StageDecision


@dataclass(frozen=True)
class RefinerTrace:
    """One refiner pass of a frame: the window it saw, its tensors, and the box after it."""

    window: tuple[int, int, int, int]   # pixel window around the previous box
    input: np.ndarray                   # quantised input, (1, r, r, 3)
    raw: tuple[np.ndarray, ...]         # output codes, every output
    values: np.ndarray                  # the 4 box values (window coordinates), float32
    inner: np.ndarray                   # decoded box in window coordinates
    box: np.ndarray                     # the frame box after this pass (mapped and merged)


@dataclass(frozen=True)
class FrameTrace:
    """Every intermediate tensor of one frame (``classify(..., trace=True)``)."""

    predictor_input: Optional[np.ndarray] = None
    predictor_raw: tuple[np.ndarray, ...] = ()
    predictor_values: Optional[np.ndarray] = None
    stages: tuple[StageTrace, ...] = ()
    predictor_box: Optional[np.ndarray] = None
    refiner: tuple[RefinerTrace, ...] = ()


@dataclass(frozen=True)
class FrameResult:
    """The outcome for one frame, with its timing.

    ``box``: the normalised box ``(ymin, xmin, ymax, xmax)`` the crop was cut
    at: the predictor's, or after the refiner's passes when the bundle has one
    (None without a predictor); ``refiner_ms`` is then the refiner's inference
    time (all passes), and ``predictor_box`` the predictor's own box. ``window``: the crop the classifiers saw, in frame
    pixels ``(y0, x0, y1, x1)``, max exclusive. ``score``: the probability of
    the chosen class after softmax of the exit stage's decision logits;
    ``exit_score`` the stage's criterion value. Times in milliseconds:
    ``stage_ms`` (inference of each stage that ran), ``predictor_ms``,
    ``preprocess_ms`` (all resizing and quantisation), ``infer_ms`` (predictor
    + stages), ``pipeline_ms`` (the whole :meth:`EdgePipeline.classify` call).
    """

    class_index: int
    label: str
    score: float
    exit_stage: int
    exit_score: float
    box: Optional[tuple[float, float, float, float]]
    window: tuple[int, int, int, int]
    frame_size: tuple[int, int]
    stage_ms: tuple[float, ...]
    predictor_ms: Optional[float]
    preprocess_ms: float
    infer_ms: float
    pipeline_ms: float
    macs: int
    trace: Optional[FrameTrace] = field(default=None, repr=False, compare=False)
    refiner_ms: Optional[float] = None
    predictor_box: Optional[tuple[float, float, float, float]] = None

    def to_json(self) -> dict[str, Any]:
        """The record's fields as plain JSON values (times rounded to microseconds)."""
        return {
            "label": self.label, "class": self.class_index, "score": round(self.score, 6),
            "exit_stage": self.exit_stage, "exit_score": round(self.exit_score, 6),
            "box": None if self.box is None else [round(float(v), 6) for v in self.box],
            "window": [int(v) for v in self.window],
            "frame_size": [int(v) for v in self.frame_size],
            "stage_ms": [round(v, 3) for v in self.stage_ms],
            "predictor_ms": None if self.predictor_ms is None else round(self.predictor_ms, 3),
            "preprocess_ms": round(self.preprocess_ms, 3), "infer_ms": round(self.infer_ms, 3),
            "pipeline_ms": round(self.pipeline_ms, 3), "macs": int(self.macs),
            # Only with a refiner: records of version-1 bundles keep their fields.
            **({} if self.refiner_ms is None else {
                "refiner_ms": round(self.refiner_ms, 3),
                "predictor_box": [round(float(v), 6) for v in self.predictor_box]}),
        }


# --------------------------------------------------------------------------- models


class _Model:
    """One interpreter with its tensor indices and specs, invoked with no per-call checks."""

    def __init__(self, model: TfliteModel):
        self.interpreter = model.interpreter
        inputs = model.interpreter.get_input_details()
        outputs = model.interpreter.get_output_details()
        self.input_index = inputs[0]["index"]
        self.output_indices = tuple(d["index"] for d in outputs)
        self.input_spec: TensorSpec = model.input_spec
        self.output_specs: tuple[TensorSpec, ...] = tuple(model.output_specs)
        self.name = os.path.basename(str(model.source))

    def invoke(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        self.interpreter.set_tensor(self.input_index, x)
        invoke_checked(self.interpreter, self.name)  # a failing frame is an error record
        return tuple(self.interpreter.get_tensor(i).copy() for i in self.output_indices)

    def warm_up(self) -> None:
        # XNNPACK prepares its kernels on the first invoke: keep that out of frame timings.
        self.invoke(np.zeros(self.input_spec.shape, dtype=self.input_spec.dtype))


@dataclass(frozen=True)
class _Located:
    """The predictor's part of one frame: box, crop window, timings and tensors."""

    box: Optional[np.ndarray]
    window: tuple[int, int, int, int]
    preprocess_s: float = 0.0
    predictor_s: float = 0.0
    input: Optional[np.ndarray] = None
    raw: tuple[np.ndarray, ...] = ()
    values: Optional[np.ndarray] = None
    first_box: Optional[np.ndarray] = None
    refiner_s: float = 0.0
    passes: tuple[RefinerTrace, ...] = ()


def _open_bundle(bundle: BundleLike) -> tuple[Bundle, bool]:
    if isinstance(bundle, Bundle):
        return bundle, False
    return load_bundle(bundle), True


# --------------------------------------------------------------------------- pipeline


class EdgePipeline:
    """A bundle's predictor and cascade, ready to classify frames.

    Args:
        bundle: a loaded :class:`tfedge.runtime.bundle.Bundle`, or the path of a bundle
            folder or ``.zip`` (loaded and checked here, closed by :meth:`close`).
        num_threads: interpreter threads per model.
        warm_up: run every model once on zeros now, so the first frame's
            timing is not the interpreter's one-off setup.

    Every model's tensors are checked against the manifest
    (:func:`tfedge.runtime.bundle.check_tensor_specs`); problems raise
    :class:`~tfedge.BundleError` with a one-line fix.
    """

    def __init__(self, bundle: BundleLike, num_threads: int = 1, *, warm_up: bool = True):
        self.bundle, self._owns_bundle = _open_bundle(bundle)
        try:
            models = check_tensor_specs(self.bundle,
                                        lambda path: TfliteModel(path, num_threads=num_threads))
            self.num_threads = int(num_threads)
            predictor = self.bundle.predictor
            self.predictor: Optional[PredictorEntry] = predictor
            self._predictor = _Model(models[predictor.file]) if predictor is not None else None
            self.crop_config = crop_config(predictor) if predictor is not None else None
            if predictor is not None and predictor.box_format not in BOX_DECODERS:
                raise BundleError(f"unknown predictor box_format {predictor.box_format!r}: "
                                  f"expected one of {', '.join(BOX_DECODERS)}; upgrade tfedge-pi")
            refiner = self.bundle.refiner
            self.refiner: Optional[RefinerEntry] = refiner
            self._refiner = _Model(models[refiner.file]) if refiner is not None else None
            self.refiner_window = refiner_window_config(refiner) if refiner is not None else None
            self.stages: tuple[StageEntry, ...] = tuple(self.bundle.stages)
            self._stages = tuple(_Model(models[s.file]) for s in self.stages)
            self.labels: tuple[str, ...] = tuple(self.bundle.labels)
            if warm_up:
                for model in (((self._predictor,) if self._predictor else ())
                              + ((self._refiner,) if self._refiner else ()) + self._stages):
                    model.warm_up()
        except BaseException:
            self.close()
            raise

    # -- information

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def draft_short_side(self) -> int:
        """The smallest short side a frame may be decoded at (JPEG draft) without losing detail.

        See :func:`tfedge.runtime.preprocess.needed_short_side`: the smallest
        crop the predictor can cause must still hold the largest stage input
        (and the smallest refiner window the refiner's input).
        """
        side = needed_short_side(
            [s.resolution for s in self.stages],
            self.predictor.resolution if self.predictor is not None else 0,
            self.crop_config.min_size if self.crop_config is not None else 1.0)
        if self.refiner is not None:
            side = max(side, needed_short_side([self.refiner.resolution], 0,
                                               self.refiner_window.min_size))
        return side

    def describe(self) -> str:
        """One line: what runs, per frame, at which resolutions."""
        parts = []
        if self.predictor is not None:
            parts.append(f"predictor {self.predictor.resolution}px")
        if self.refiner is not None:
            parts.append(f"refiner {self.refiner.resolution}px x{self.refiner.passes}")
        for s in self.stages:
            rule = "always exits" if s.threshold is None else f"{s.criterion} {s.threshold:g}"
            parts.append(f"{s.name} {s.resolution}px ({rule})")
        return " -> ".join(parts)

    # -- inference

    def locate(self, frame: np.ndarray, *, bgr: bool = False
               ) -> tuple[Optional[np.ndarray], tuple[int, int, int, int]]:
        """The predictor's box and the crop window for ``frame`` (the whole frame without one)."""
        found = self._locate(self._check_frame(frame), bgr)
        return found.box, found.window

    def _locate(self, frame: np.ndarray, bgr: bool) -> "_Located":
        height, width = frame.shape[:2]
        if self._predictor is None:
            return _Located(box=None, window=(0, 0, height, width))
        start = time.perf_counter()
        q = prepare_input(frame, (0, 0, height, width), self._predictor.input_spec, bgr=bgr)
        mid = time.perf_counter()
        raw = self._predictor.invoke(q)
        end = time.perf_counter()
        values = predictor_values(_dequantized(raw, self._predictor.output_specs),
                                  self.predictor.box_format)
        box = decode_box(values, self.predictor.box_format)
        first_box = box
        preprocess_s = mid - start
        refiner_s = 0.0
        passes: list[RefinerTrace] = []
        if self._refiner is not None:
            for _ in range(self.refiner.passes):
                t0 = time.perf_counter()
                # refine.refine_window minus its argument conversions (the box is float32 here).
                look = tuple(int(v) for v in crop_window_with(NUMPY_OPS, box, height, width,
                                                              self.refiner_window))
                rq = prepare_input(frame, look, self._refiner.input_spec, bgr=bgr)
                t1 = time.perf_counter()
                rraw = self._refiner.invoke(rq)
                t2 = time.perf_counter()
                preprocess_s += t1 - t0
                refiner_s += t2 - t1
                rvalues = predictor_values(_dequantized(rraw, self._refiner.output_specs),
                                           self.refiner.box_format)
                inner = decode_box(rvalues, self.refiner.box_format)
                box = refine_step(box, inner, look, height, width)
                passes.append(RefinerTrace(window=look, input=rq, raw=rraw, values=rvalues,
                                           inner=inner, box=box))
        # crop_window's own function minus its argument checks (box and size are valid here).
        window = tuple(int(v) for v in crop_window_with(NUMPY_OPS, box, height, width,
                                                        self.crop_config))
        return _Located(box=box, window=window, preprocess_s=preprocess_s,
                        predictor_s=end - mid, input=q, raw=raw, values=values,
                        first_box=first_box, refiner_s=refiner_s, passes=tuple(passes))

    @staticmethod
    def _check_frame(frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 \
                or frame.shape[0] < 1 or frame.shape[1] < 1:
            raise TfedgeError(f"a frame must be (height, width, 3) uint8 pixels, got "
                              f"{frame.shape} {frame.dtype}: decode images with "
                              "rpi_runner.decode_image")
        return frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)

    def classify(self, frame: np.ndarray, *, bgr: bool = False, trace: bool = False) -> FrameResult:
        """Classify one ``(H, W, 3)`` uint8 frame (RGB; ``bgr=True`` for OpenCV frames).

        ``trace=True`` keeps every intermediate tensor in ``result.trace``
        (for golden vectors; a little slower).
        """
        start = time.perf_counter()
        frame = self._check_frame(frame)
        found = self._locate(frame, bgr)
        preprocess_s = found.preprocess_s
        stage_seconds: list[float] = []
        stage_traces: list[StageTrace] = []
        previous: Optional[np.ndarray] = None
        macs = self.bundle.locator_macs
        decision: Optional[StageDecision] = None
        q: Optional[np.ndarray] = None
        q_spec: Optional[TensorSpec] = None
        for entry, model in zip(self.stages, self._stages):
            t0 = time.perf_counter()
            if q is None or model.input_spec != q_spec:  # stages often share an input
                q_spec = model.input_spec
                q = prepare_input(frame, found.window, q_spec, bgr=bgr)
            t1 = time.perf_counter()
            raw = model.invoke(q)[0]
            t2 = time.perf_counter()
            preprocess_s += t1 - t0
            stage_seconds.append(t2 - t1)
            macs += entry.macs
            spec = model.output_specs[0]
            logits = dequantize(raw, spec.scale, spec.zero_point).reshape(-1)
            decision = decide_stage(logits, previous, criterion=entry.criterion,
                                    threshold=entry.threshold,
                                    accumulate_weight=entry.accumulate_weight)
            if trace:
                stage_traces.append(StageTrace(input=q, raw_output=raw, logits=logits,
                                               decision=decision))
            if decision.exits:
                break
            previous = decision.decision_logits
        assert decision is not None  # a bundle has >= 1 stage and the last one always exits
        total = time.perf_counter() - start
        frame_trace = None
        if trace:
            frame_trace = FrameTrace(predictor_input=found.input, predictor_raw=found.raw,
                                     predictor_values=found.values, stages=tuple(stage_traces),
                                     predictor_box=found.first_box, refiner=found.passes)
        return FrameResult(
            class_index=decision.class_index, label=self.labels[decision.class_index],
            score=decision.probability, exit_stage=len(stage_seconds) - 1,
            exit_score=decision.score,
            box=None if found.box is None else tuple(float(v) for v in found.box),
            window=found.window, frame_size=(int(frame.shape[0]), int(frame.shape[1])),
            stage_ms=tuple(s * _MS for s in stage_seconds),
            predictor_ms=None if self._predictor is None else found.predictor_s * _MS,
            preprocess_ms=preprocess_s * _MS,
            infer_ms=(found.predictor_s + found.refiner_s + sum(stage_seconds)) * _MS,
            pipeline_ms=total * _MS, macs=int(macs), trace=frame_trace,
            refiner_ms=None if self._refiner is None else found.refiner_s * _MS,
            predictor_box=(None if self._refiner is None
                           else tuple(float(v) for v in found.first_box)))

    # -- lifetime

    def close(self) -> None:
        """Release the bundle's temporary folder (a zip's extraction) if this pipeline opened it."""
        if getattr(self, "_owns_bundle", False):
            self.bundle.close()

    def __enter__(self) -> "EdgePipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
