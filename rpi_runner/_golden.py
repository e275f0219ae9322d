"""Golden vectors: every intermediate tensor of a few frames, for the Android core's JVM tests.

The Android app cannot run LiteRT on the JVM, so its plain-Java core
(manifest, preprocessing, crop math, int8 (de)quantisation, early exit) is
tested against what this runner computed. ``tfedge-pi BUNDLE SOURCE --golden
golden.json`` writes (format ``tfedge-golden``, version 1)::

    {"format": "tfedge-golden", "version": 1,
     "manifest": {... the bundle's manifest.json ...},
     "array_encoding": "...",
     "cases": [{
        "source": "img.png", "index": 0,
        "frame": ARRAY,                       # (H, W, 3) uint8 RGB, as decoded
        "predictor": {                        # null without a predictor
            "input": ARRAY,                   # (1, r, r, 3) quantised input
            "outputs": [ARRAY, ...],          # raw output codes, every output
            "values": [cy_or_ymin, ...],      # the 4 box values, dequantised (float32;
                                              # heatmap_cyxhw: decoded (cy, cx, h, w))
            "box": [ymin, xmin, ymax, xmax]}, # decoded and clipped (the predictor's own)
        "refiner": [{                         # version-2 bundles only: one per pass
            "window": [y0, x0, y1, x1], "input": ARRAY, "outputs": [ARRAY, ...],
            "values": [...], "inner": [...],  # box values; box in window coordinates
            "box": [...]}],                   # the frame box after the pass
        "window": [y0, x0, y1, x1],           # crop in frame pixels, max exclusive
        "stages": [{                          # the stages that ran, in order
            "name": "...", "input": ARRAY, "output": ARRAY,
            "logits": [...],                  # dequantised, float32 values
            "decision_logits": [...],         # float64, after accumulation
            "probabilities": [...], "score": 0.93, "class": 1, "exits": true}],
        "result": {"class": 1, "label": "Trouser", "score": 0.93, "exit_stage": 0}}]}

An ``ARRAY`` is ``{"shape": [...], "dtype": "uint8" | "int8" | ..., "data":
base64 of the little-endian, row-major (C order) bytes}``
(:mod:`tfedge.runtime.golden`). Floats are JSON numbers (float32 values
written exactly as doubles).

What a consumer should expect: the quantised inputs of a correct port agree
exactly except where a resized value lies within float rounding of a
half-integer (then by 1); dequantisation and decisions agree exactly.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

import numpy as np

from tfedge.runtime.errors import TfedgeError
from tfedge.runtime.fileio import atomic_write_json
from tfedge.runtime.golden import (ARRAY_ENCODING, GOLDEN_FORMAT, GOLDEN_VERSION, decode_array,
                                   encode_array)
from tfedge.runtime.golden import floats as _floats

from ._pipeline import EdgePipeline, FrameResult
from ._sources import Frame

__all__ = ["GOLDEN_FORMAT", "GOLDEN_VERSION", "encode_array", "decode_array", "golden_case",
           "write_golden"]


def golden_case(frame: Frame, result: FrameResult, pipeline: EdgePipeline) -> dict[str, Any]:
    """One frame's golden record; ``result`` must come from ``classify(..., trace=True)``."""
    trace = result.trace
    if trace is None:
        raise TfedgeError("golden vectors need classify(frame, trace=True)")
    predictor = None
    if pipeline.predictor is not None:
        first = trace.predictor_box if trace.predictor_box is not None else result.box
        predictor = {"input": encode_array(trace.predictor_input),
                     "outputs": [encode_array(o) for o in trace.predictor_raw],
                     "values": _floats(trace.predictor_values),
                     "box": [float(v) for v in first]}
    stages = []
    for entry, st in zip(pipeline.stages, trace.stages):
        d = st.decision
        stages.append({"name": entry.name, "input": encode_array(st.input),
                       "output": encode_array(st.raw_output), "logits": _floats(st.logits),
                       "decision_logits": _floats(d.decision_logits),
                       "probabilities": _floats(d.probabilities), "score": float(d.score),
                       "class": int(d.class_index), "exits": bool(d.exits)})
    case = {"source": frame.source, "index": frame.index,
            "frame": encode_array(np.ascontiguousarray(frame.rgb())),
            "predictor": predictor, "window": [int(v) for v in result.window],
            "stages": stages,
            "result": {"class": result.class_index, "label": result.label,
                       "score": float(result.score), "exit_stage": result.exit_stage}}
    if getattr(pipeline, "refiner", None) is not None:
        case["refiner"] = [{"window": [int(v) for v in p.window], "input": encode_array(p.input),
                            "outputs": [encode_array(o) for o in p.raw],
                            "values": _floats(p.values), "inner": _floats(p.inner),
                            "box": _floats(p.box)} for p in trace.refiner]
    return case


def write_golden(path: Union[str, os.PathLike], pipeline: EdgePipeline,
                 cases: Sequence[dict[str, Any]]) -> None:
    """Write the golden-vector file (atomically) for ``cases`` from :func:`golden_case`."""
    atomic_write_json(path, {"format": GOLDEN_FORMAT, "version": GOLDEN_VERSION,
                             "manifest": dict(pipeline.bundle.manifest),
                             "array_encoding": ARRAY_ENCODING, "cases": list(cases)})
