"""Regenerate the committed golden bundle and vectors (needs TensorFlow; the tests do not).

    .venv/bin/python tests/golden/make_golden.py            # everything (new models)
    .venv/bin/python tests/golden/make_golden.py --refined  # only the version-2 bundle

writes ``tests/golden/bundle/`` (a bundle-format-1 folder: two tiny int8
stages of a cascade and a heat-map foreground predictor) and
``tests/golden/golden.json`` (format ``tfedge-golden`` version 1, see
``docs/bundle.md``, *Golden vectors*):

* ``cases``: frames of several sizes run through ``rpi_runner.EdgePipeline``
  with ``trace=True``: every quantised input, raw output code, dequantised
  value, box, crop window and stage decision;
* ``decision_cases``: hand-picked and random logit vectors through the
  early-exit rule alone (all three criteria, accumulation, ties, a threshold
  exactly on the score), for ports that test their decision code in
  isolation.

``--refined`` (also part of the full run) writes ``tests/golden/bundle_refined/``,
a bundle-format-2 folder holding the *same* predictor and stage files as
``bundle/`` (copied byte for byte, so the version-1 vectors stay as they
are) plus a tiny heat-map refiner with two passes, and
``tests/golden/golden_refined.json``: the same frames, each case also holding
``refiner``, one record per pass: the pixel window it saw, its quantised
input, raw output codes, box values, the box in window coordinates and the
frame box after the pass (mapped back and merged).

The models are untrained (seeded random weights, large enough that softmax
outputs vary), so the vectors test arithmetic, not accuracy. Stage 0's
threshold is set to the median of its scores on the frames so some frames
exit early and some go on. Regenerating gives new models (converter output
is not bit-stable across TensorFlow versions): commit bundle and vectors
together, and the Android core's copy of them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from rpi_runner._golden import golden_case  # noqa: E402
from rpi_runner._pipeline import EdgePipeline  # noqa: E402
from rpi_runner._sources import Frame  # noqa: E402
from tfedge.runtime.bundle import PredictorEntry, StageEntry, write_bundle  # noqa: E402
from tfedge.runtime.decision import CRITERIA, decide_stage  # noqa: E402
from tfedge.runtime.fileio import atomic_write_json  # noqa: E402
from tfedge.runtime.geometry import CropConfig, resize_bilinear  # noqa: E402
from tfedge.runtime.refine import MERGE_TOLERANCE, refine_window, window_fraction  # noqa: E402
from tfedge.runtime.golden import (ARRAY_ENCODING, GOLDEN_FORMAT, GOLDEN_VERSION,  # noqa: E402
                                   decode_array, floats)
from tfedge.runtime.interpreter import TfliteModel  # noqa: E402

BUNDLE = HERE / "bundle"
VECTORS = HERE / "golden.json"
REFINED_BUNDLE = HERE / "bundle_refined"
REFINED_VECTORS = HERE / "golden_refined.json"
REFINER_RES = 16
REFINER_PASSES = 2
# A smaller minimum than the stages' crop: the refiner looks closely; square, no scales.
REFINER_WINDOW = {"margin": 0.25, "square": True, "min_size": 0.2, "scales": []}
LABELS = ("red", "green", "blue")
PREDICTOR_RES = 16
HEAT_SIDE = 4  # a 4 x 4 heat map: 16 cells
STAGE_RES = (12, 20)
STAGE_CRITERION = "margin"
ACCUMULATE_WEIGHT = 0.5
CROP = {"margin": 0.15, "square": True, "min_size": 0.3, "scales": []}
# Frames of several shapes: landscape, portrait, square, one smaller than a model input.
FRAME_SHAPES = ((36, 48), (48, 36), (40, 40), (30, 52), (10, 14), (44, 44))
CREATED_UTC = "2026-12-04T00:00:00Z"
DECISION_SEED = 20261204


def _frames(seed: int = 3) -> list[np.ndarray]:
    """Noise with one saturated coloured square each (something for the models to react to)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, (height, width) in enumerate(FRAME_SHAPES):
        frame = rng.integers(60, 160, (height, width, 3), dtype=np.uint8)
        side = int(rng.integers(max(min(height, width) // 4, 1), max(min(height, width) // 2, 2)))
        top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
        frame[top:top + side, left:left + side] = 0
        frame[top:top + side, left:left + side, i % 3] = 250
        frames.append(frame)
    return frames


def _wide_frames(seed: int = 21) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = []
    for i, (height, width) in enumerate(((18, 64), (60, 16))):
        frame = rng.integers(60, 160, (height, width, 3), dtype=np.uint8)
        frame[height // 4: 3 * height // 4, width // 4: 3 * width // 4, i] = 250
        frames.append(frame)
    return frames


def _classifier(res: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((res, res, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(LABELS),
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    return keras.Model(inputs, outputs, name=f"golden_r{res}")


def _heatmap_predictor():
    """Centre logits (1, 16) and cell sizes in [0, 1] (1, 16, 2): the heat head's export form."""
    import keras

    keras.utils.set_random_seed(5)
    inputs = keras.Input((PREDICTOR_RES, PREDICTOR_RES, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)  # 4 x 4
    cells = HEAT_SIDE * HEAT_SIDE
    logits = keras.layers.Reshape((cells,), name="centre_logits")(
        keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.RandomNormal(
            stddev=2.0))(x))
    sizes = keras.layers.Reshape((cells, 2), name="cell_sizes")(
        keras.layers.Conv2D(2, 1, activation="sigmoid")(x))
    return keras.Model(inputs, [logits, sizes], name="golden_heat")


def _int8(model, frames: list[np.ndarray]) -> bytes:
    from tfedge._convert import convert_to_int8

    res = int(model.input_shape[1])
    calibration = np.stack([resize_bilinear(f, res, res) for f in frames])
    return convert_to_int8(model, calibration)


def _write(stage0_threshold: float, models: dict[str, bytes]) -> Path:
    pred = TfliteModel(models["predictor"])
    stages = []
    for k, (res, key) in enumerate(zip(STAGE_RES, ("stage0", "stage1"))):
        tfl = TfliteModel(models[key])
        stages.append((StageEntry(
            name=f"golden_r{res}", resolution=res, macs=1000 * res * res, input=tfl.input_spec,
            output=tfl.output_spec, criterion=STAGE_CRITERION,
            threshold=stage0_threshold if k == 0 else None,
            accumulate_weight=0.0 if k == 0 else ACCUMULATE_WEIGHT), models[key]))
    predictor = (PredictorEntry(resolution=PREDICTOR_RES, macs=500, input=pred.input_spec,
                                outputs=pred.output_specs, crop=CROP,
                                box_format="heatmap_cyxhw"), models["predictor"])
    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    return write_bundle(BUNDLE, labels=LABELS, stages=stages, predictor=predictor,
                        created_utc=CREATED_UTC)


def _decision_record(logits, previous, criterion, threshold, weight) -> dict:
    d = decide_stage(logits, previous, criterion=criterion, threshold=threshold,
                     accumulate_weight=weight)
    return {"criterion": criterion, "threshold": threshold, "accumulate_weight": weight,
            "logits": floats(logits),
            "previous": None if previous is None else floats(previous),
            "decision_logits": floats(d.decision_logits),
            "probabilities": floats(d.probabilities), "score": d.score,
            "class": d.class_index, "exits": d.exits}


def _decision_cases() -> list[dict]:
    """The early-exit rule alone: hand-picked edge cases, then random vectors."""
    cases = []
    hand = [
        ([2.0, 0.0, 0.0], None, 0.0),               # a clear winner
        ([1.0, 1.0, 1.0], None, 0.0),               # uniform: entropy ln 3, margin 0
        ([3.0, 3.0, -1.0], None, 0.0),              # a tie for first: class 0 (first index)
        ([5.0], None, 0.0),                         # one class: margin 1, entropy 0
        ([1000.0, 0.0, -1000.0], None, 0.0),        # huge logits: no overflow
        ([0.0, 1.0], [3.0, 0.0], 1.0),              # accumulation changes the class
        ([0.5, -1.0, 0.25], [1.0, 2.0, 0.0], 0.5),
    ]
    for criterion in CRITERIA:
        for logits, previous, weight in hand:
            z = np.asarray(logits, np.float32)
            prev = None if previous is None else np.asarray(previous, np.float64)
            score = decide_stage(z, prev, criterion=criterion, threshold=None,
                                 accumulate_weight=weight).score
            # The threshold exactly on the score (the inclusive edge: exits), one float past it
            # on the confident side (does not exit), and null (always exits).
            beyond = np.nextafter(score, -np.inf if criterion == "entropy" else np.inf)
            for threshold in (score, float(beyond), None):
                cases.append(_decision_record(z, prev, criterion, threshold, weight))
    rng = np.random.default_rng(DECISION_SEED)
    for criterion in CRITERIA:
        for _ in range(8):
            classes = int(rng.integers(2, 10))
            z = (rng.normal(size=classes) * rng.uniform(0.5, 8.0)).astype(np.float32)
            prev = rng.normal(size=classes) * 3.0 if rng.random() < 0.5 else None
            weight = float(rng.choice([0.5, 1.0])) if prev is not None else 0.0
            score = decide_stage(z, prev, criterion=criterion, threshold=None,
                                 accumulate_weight=weight).score
            threshold = float(score * rng.uniform(0.7, 1.3))  # either side of the score
            cases.append(_decision_record(z, prev, criterion, threshold, weight))
    return cases


def _refiner():
    """A heat-map boxnet stand-in like the predictor, its own weights (it sees windows)."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((REFINER_RES, REFINER_RES, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)  # 4 x 4
    cells = HEAT_SIDE * HEAT_SIDE
    logits = keras.layers.Reshape((cells,), name="centre_logits")(
        keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.RandomNormal(
            stddev=2.0))(x))
    sizes = keras.layers.Reshape((cells, 2), name="cell_sizes")(
        keras.layers.Conv2D(2, 1, activation="sigmoid",
                            bias_initializer=keras.initializers.Constant(1.0))(x))
    return keras.Model(inputs, [logits, sizes], name="golden_refiner")


def make_refined() -> None:
    """The version-2 golden bundle: bundle/'s models plus a refiner, and its vectors."""
    from tfedge.runtime.bundle import RefinerEntry, load_bundle

    with load_bundle(BUNDLE) as plain:
        stages = [(s, plain.read_model(s)) for s in plain.stages]
        predictor = (plain.predictor, plain.read_model(plain.predictor))
        labels = plain.labels
    # The version-1 frames, then two very wide ones: a box wider than the frame's short side
    # does not fit the square window, so the merge keeps its edges along that axis.
    frames = _frames() + _wide_frames()
    # Calibrated on windows around the predictor's boxes, what it sees deployed.
    calibration = []
    with EdgePipeline(BUNDLE) as pipe:
        for image in _frames(seed=11) + _frames(seed=12):
            box, _ = pipe.locate(image)
            y0, x0, y1, x1 = refine_window(box, *image.shape[:2],
                                           CropConfig.from_dict(REFINER_WINDOW))
            calibration.append(image[y0:y1, x0:x1])
    refiner_bytes = _int8(_refiner(), calibration)
    tfl = TfliteModel(refiner_bytes)
    refiner = (RefinerEntry(resolution=REFINER_RES, macs=400, input=tfl.input_spec,
                            outputs=tfl.output_specs, window=REFINER_WINDOW,
                            passes=REFINER_PASSES, box_format="heatmap_cyxhw"), refiner_bytes)
    if REFINED_BUNDLE.exists():
        shutil.rmtree(REFINED_BUNDLE)
    write_bundle(REFINED_BUNDLE, labels=labels, stages=stages, predictor=predictor,
                 refiner=refiner, created_utc=CREATED_UTC)
    cases = []
    with EdgePipeline(REFINED_BUNDLE) as pipe:
        for i, image in enumerate(frames):
            frame = Frame(source=f"frame{i}", index=i, image=image)
            result = pipe.classify(image, trace=True)
            cases.append(golden_case(frame, result, pipe))  # with the refiner's passes
        manifest = dict(pipe.bundle.manifest)
    atomic_write_json(REFINED_VECTORS, {"format": GOLDEN_FORMAT, "version": GOLDEN_VERSION,
                                        "manifest": manifest, "array_encoding": ARRAY_ENCODING,
                                        "bundle": REFINED_BUNDLE.name, "cases": cases})
    exits = [c["result"]["exit_stage"] for c in cases]
    kept = sum(_kept_axes(c) for c in cases)
    size = sum(p.stat().st_size for p in REFINED_BUNDLE.iterdir()) + \
        REFINED_VECTORS.stat().st_size
    print(f"wrote {REFINED_BUNDLE} and {REFINED_VECTORS}: {size / 1024:.0f} KiB, exits per "
          f"frame {exits}, {kept} pass axes kept the previous box's edges")


def _kept_axes(case: dict) -> int:
    """Passes of a case whose window was narrower than the previous box along an axis."""
    height, width = decode_array(case["frame"]).shape[:2]
    previous = np.asarray(case["predictor"]["box"], np.float32)
    count = 0
    for record in case["refiner"]:
        window = window_fraction(np.asarray(record["window"]), height, width)
        for lo, hi in ((0, 2), (1, 3)):
            count += bool(window[hi] - window[lo] < previous[hi] - previous[lo] - MERGE_TOLERANCE)
        previous = np.asarray(record["box"], np.float32)
    return count


def main() -> None:
    if "--refined" in sys.argv[1:]:
        make_refined()
        return
    import keras

    frames = _frames()
    calibration = _frames(seed=11) + _frames(seed=12)
    models = {"predictor": _int8(_heatmap_predictor(), calibration),
              "stage0": _int8(_classifier(STAGE_RES[0], seed=1), calibration),
              "stage1": _int8(_classifier(STAGE_RES[1], seed=2), calibration)}
    del keras
    # First pass: every frame to the last stage, to place stage 0's threshold at the median.
    _write(1.0, models)
    with EdgePipeline(BUNDLE) as pipe:
        scores = [pipe.classify(f, trace=True).trace.stages[0].decision.score for f in frames]
    threshold = float(np.median(scores))
    _write(threshold, models)
    cases = []
    with EdgePipeline(BUNDLE) as pipe:
        for i, image in enumerate(frames):
            frame = Frame(source=f"frame{i}", index=i, image=image)
            cases.append(golden_case(frame, pipe.classify(image, trace=True), pipe))
        manifest = dict(pipe.bundle.manifest)
    exits = [c["result"]["exit_stage"] for c in cases]
    if len(set(exits)) != 2:
        raise SystemExit(f"golden frames exit at stages {exits}: both stages must be exercised")
    atomic_write_json(VECTORS, {"format": GOLDEN_FORMAT, "version": GOLDEN_VERSION,
                                "manifest": manifest, "array_encoding": ARRAY_ENCODING,
                                "bundle": BUNDLE.name, "cases": cases,
                                "decision_cases": _decision_cases()})
    size = sum(p.stat().st_size for p in BUNDLE.iterdir()) + VECTORS.stat().st_size
    print(f"wrote {BUNDLE} and {VECTORS}: {size / 1024:.0f} KiB, exits per frame {exits}, "
          f"stage 0 threshold {threshold:.6f}")
    make_refined()


if __name__ == "__main__":
    main()
