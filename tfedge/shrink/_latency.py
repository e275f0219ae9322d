"""Int8 latency as a shrink budget: convert, run with the runtime's interpreter, compare in one process.

A MAC count does not see what an int8 kernel costs: on this project's CPUs a
resolution-shrunk network ran 2.5-3x faster than a width-pruned one with the
same MACs (benchmarks/recorded/shrink-quick-2026-12-04). A latency target
measures instead: each candidate is converted to full int8
(:func:`tfedge._convert.convert_to_int8`) and run with
:func:`tfedge.runtime.load_interpreter` (one thread), interleaved with the
base model (base, candidate, base, candidate, ...), so the shared machine's
drift hits both alike. The candidate's milliseconds are its median over the
base's median in the same run, times the base's milliseconds measured once at
the start (BENCHMARKS.md, Latency).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np

from .._errors import TfedgeError
from ._calibration import calibration_arrays

__all__ = ["LatencyMeter", "time_interleaved", "int8_model_bytes", "TIMING_ROUNDS",
           "TIMING_INVOKES", "WARMUP_INVOKES"]

TIMING_ROUNDS = 5
TIMING_INVOKES = 40  # per model per round: 200 invocations of each (BENCHMARKS.md)
WARMUP_INVOKES = 10


def time_interleaved(models: Mapping[str, Any], rounds: int = TIMING_ROUNDS,
                     invokes: int = TIMING_INVOKES, warmup: int = WARMUP_INVOKES,
                     num_threads: int = 1) -> dict[str, dict[str, float]]:
    """Median (``p50``) and ``p90`` milliseconds per invocation of each ``.tflite`` model
    (bytes or path), ``num_threads`` threads, models interleaved round by round after a
    warm-up (A, B, C, A, B, C, ...)."""
    from ..runtime import load_interpreter

    if rounds < 1 or invokes < 1:
        raise TfedgeError(f"timing needs rounds >= 1 and invokes >= 1, got {rounds}, {invokes}")
    interpreters = {}
    for key, data in models.items():
        interpreter = load_interpreter(data, num_threads=num_threads)
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters[key] = interpreter
    times: dict[str, list[float]] = {key: [] for key in models}
    for _ in range(rounds):
        for key, interpreter in interpreters.items():
            invoke = interpreter.invoke
            for _ in range(invokes):
                t0 = time.perf_counter()
                invoke()
                times[key].append(1000.0 * (time.perf_counter() - t0))
    return {key: {"p50": float(np.median(v)), "p90": float(np.percentile(v, 90))}
            for key, v in times.items()}


def int8_model_bytes(model, split, count: int = 32, batch_size: int = 64) -> bytes:
    """``model`` converted to full int8, calibrated on the first ``count`` images of ``split``
    resized as evaluation resizes them."""
    from .._convert import convert_to_int8
    from .._train import model_resolution

    images, _ = calibration_arrays(split, count, model_resolution(model), batch_size)
    return convert_to_int8(model, images)


class LatencyMeter:
    """Int8 milliseconds of models, each timed interleaved with a reference model.

    reference: the Keras model every measurement is relative to (the base).
    split: images to calibrate the int8 conversions with (the training split).
    """

    def __init__(self, reference, split, *, calibration_size: int = 32, rounds: int = 5,
                 invokes: int = 20, num_threads: int = 1):
        self.split = split
        self.calibration_size = calibration_size
        self.rounds, self.invokes, self.num_threads = rounds, invokes, num_threads
        self.reference_bytes = int8_model_bytes(reference, split, calibration_size)
        alone = time_interleaved({"reference": self.reference_bytes}, rounds=2 * rounds,
                                 invokes=invokes, num_threads=num_threads)
        self.reference_ms = alone["reference"]["p50"]

    def measure_bytes(self, tflite: bytes) -> float:
        """Milliseconds of one ``.tflite`` model: its median over the reference's in the same
        interleaved run, times the reference's milliseconds."""
        timing = time_interleaved({"reference": self.reference_bytes, "model": tflite},
                                  rounds=self.rounds, invokes=self.invokes,
                                  num_threads=self.num_threads)
        ratio = timing["model"]["p50"] / max(timing["reference"]["p50"], 1e-9)
        return float(self.reference_ms * ratio)

    def measure(self, model) -> float:
        """Int8 milliseconds of a Keras model (converted here)."""
        return self.measure_bytes(int8_model_bytes(model, self.split, self.calibration_size))


def check_target_ms(value: Optional[float]) -> Optional[float]:
    """``value`` if it is a usable latency target (positive finite milliseconds), else an error."""
    import math

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or value <= 0:
        raise TfedgeError(f"target_ms must be positive milliseconds of int8 inference, got "
                          f"{value!r}: e.g. 0.5")
    return float(value)
