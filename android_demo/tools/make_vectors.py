"""Golden vectors for the Android core's JVM tests, computed by the Python runtime.

The Java core (``android_demo/core``) implements the device contract
(``docs/bundle.md``) a second time; these vectors hold it to the Python
runtime. Three files, written with :mod:`tfedge.runtime`'s public names and
the runner's pipeline and golden writer:

* ``pipeline.json`` -- ``tfedge-pi``'s own golden format
  (:mod:`rpi_runner._golden`): every intermediate tensor of a few frames run
  through :class:`rpi_runner.EdgePipeline` on the committed tiny bundle
  (heat-map predictor, three stages: int8 / uint8 / int8 inputs, criteria
  max_softmax / entropy / margin, logit accumulation).
* ``unit.json`` -- the pure functions on many hand-picked and random inputs:
  quantise, dequantise, bilinear resize, crop windows, box decoding (all
  three box formats), early-exit decisions (all criteria).
* ``refusals.json`` -- broken variants of the tiny bundle (and of zips) with
  a phrase the Python reader's refusal contains; the Java reader must refuse
  each with the same phrase. Plus variants both must accept.

The tiny bundle itself (``bundle/``, a few KB of random-weight int8 models)
is committed next to the vectors: rebuilding it needs TensorFlow and TFLite
conversion is not promised to be bit-identical across TensorFlow versions,
so the vectors are regenerated from the committed bundle (numpy, Pillow and
LiteRT only) and ``tests/test_android_core.py`` checks that they still equal
the committed ones.

    .venv/bin/python android_demo/tools/make_vectors.py            # rewrite the vectors
    .venv/bin/python android_demo/tools/make_vectors.py --bundle   # rebuild the bundle (TF) too
    .venv/bin/python android_demo/tools/make_vectors.py --out DIR  # write elsewhere (tests)
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import io
import json
import math
import shutil
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GOLDEN_DIR = REPO / "android_demo" / "core" / "src" / "test" / "resources" / "golden"
BUNDLE_NAME = "bundle"
LABELS = ("red", "green", "blue")
PREDICTOR_RES = 24
HEATMAP_SIDE = 4
CROP = {"margin": 0.1, "square": True, "min_size": 0.3, "scales": []}
CREATED_UTC = "2026-12-04T00:00:00Z"
#: Frame sizes of the pipeline cases: not square, not the models' sizes, some odd.
FRAME_SIZES = ((40, 48), (40, 48), (40, 48), (40, 48), (40, 48), (40, 48), (33, 27), (48, 31),
               (24, 24), (61, 45))
UNIT_SEED = 20261204


# --------------------------------------------------------------------------- the tiny bundle


def _frames(count: int, seed: int, sizes=None) -> list[np.ndarray]:
    """Grey noise with one saturated coloured square each (something for the models to see)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        height, width = sizes[i] if sizes else (40, 48)
        frame = rng.integers(60, 160, (height, width, 3), dtype=np.uint8)
        side = int(rng.integers(min(height, width) // 4, min(height, width) // 2))
        top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
        frame[top:top + side, left:left + side] = 0
        frame[top:top + side, left:left + side, i % 3] = 250
        out.append(frame)
    return out


def _classifier(res: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((res, res, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # Large random weights: peaked, varied softmax outputs, so early exit has something to decide.
    outputs = keras.layers.Dense(len(LABELS),
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    return keras.Model(inputs, outputs, name=f"tiny_r{res}")


def _heatmap_predictor():
    """Two outputs, as tfedge's heat predictors export: centre logits (1, N), sizes (1, N, 2)."""
    import keras

    keras.utils.set_random_seed(7)
    cells = HEATMAP_SIDE * HEATMAP_SIDE
    inputs = keras.Input((PREDICTOR_RES, PREDICTOR_RES, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D(PREDICTOR_RES // 2 // HEATMAP_SIDE)(x)
    logits = keras.layers.Reshape((cells,), name="centre_logits")(
        keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(x))
    sizes = keras.layers.Reshape((cells, 2), name="cell_sizes")(
        keras.layers.Conv2D(2, 1, activation="sigmoid")(x))
    return keras.Model(inputs, [logits, sizes], name="tiny_heat_predictor")


def _convert(model, io_dtype: str = "int8") -> bytes:
    from tfedge._convert import convert_to_int8
    from tfedge.runtime import resize_bilinear

    res = int(model.input_shape[1])
    calibration = np.stack([resize_bilinear(f, res, res) for f in _frames(24, seed=11)])
    return convert_to_int8(model, calibration, io_dtype=io_dtype)


def _between_middle(scores) -> float:
    """A threshold halfway between the two middle scores: about half the frames exit, and none
    sits on the knife edge (a score equal to its threshold decides by its last bit, and numpy's
    exp and log differ in the last bit between CPUs)."""
    s = sorted(float(v) for v in scores)
    i = len(s) // 2
    return (s[i - 1] + s[i]) / 2


def build_bundle(dest: Path) -> Path:
    """Build the tiny bundle at ``dest`` (needs TensorFlow): thresholds set so every stage exits
    on some of the pipeline frames, none of them on a knife edge."""
    from rpi_runner import EdgePipeline
    from tfedge.runtime import PredictorEntry, StageEntry, TfliteModel, write_bundle

    def stage(name, res, data, **kwargs):
        model = TfliteModel(data)
        return StageEntry(name=name, resolution=res, macs=1000 * res, input=model.input_spec,
                          output=model.output_spec, **kwargs), data

    predictor = _convert(_heatmap_predictor())
    pmodel = TfliteModel(predictor)
    pentry = (PredictorEntry(resolution=PREDICTOR_RES, macs=500, input=pmodel.input_spec,
                             outputs=pmodel.output_specs, crop=CROP, box_format="heatmap_cyxhw"),
              predictor)
    s0 = _convert(_classifier(16, seed=1))
    s1 = _convert(_classifier(24, seed=2), io_dtype="uint8")
    s2 = _convert(_classifier(20, seed=3))
    frames = _frames(len(FRAME_SIZES), seed=3, sizes=FRAME_SIZES)
    with tempfile.TemporaryDirectory() as tmp:
        probe = write_bundle(Path(tmp) / "p0", labels=LABELS, predictor=pentry,
                             stages=[stage("small", 16, s0)], created_utc=CREATED_UTC)
        with EdgePipeline(probe) as pipe:
            t0 = _between_middle([pipe.classify(f).exit_score for f in frames])
        probe = write_bundle(Path(tmp) / "p1", labels=LABELS, predictor=pentry, stages=[
            stage("small", 16, s0, threshold=t0),
            stage("medium", 24, s1, criterion="entropy", accumulate_weight=0.5)],
            created_utc=CREATED_UTC)
        with EdgePipeline(probe) as pipe:
            reached = [r.exit_score for r in (pipe.classify(f) for f in frames) if r.exit_stage == 1]
        t1 = _between_middle(reached)
    return write_bundle(dest, labels=LABELS, predictor=pentry, created_utc=CREATED_UTC,
                        metrics={"note": "random weights: a test bundle, not a classifier"},
                        stages=[stage("small", 16, s0, threshold=t0),
                                stage("medium", 24, s1, criterion="entropy", threshold=t1,
                                      accumulate_weight=0.5),
                                stage("large", 20, s2, criterion="margin",
                                      accumulate_weight=0.25)])


# --------------------------------------------------------------------------- pipeline vectors


def pipeline_vectors(bundle_dir: Path) -> dict[str, Any]:
    """``tfedge-pi --golden`` output for the pipeline frames (rpi_runner's own writer)."""
    from rpi_runner import EdgePipeline, Frame
    from rpi_runner._golden import golden_case, write_golden

    frames = _frames(len(FRAME_SIZES), seed=3, sizes=FRAME_SIZES)
    with EdgePipeline(bundle_dir, num_threads=1) as pipe, tempfile.TemporaryDirectory() as tmp:
        cases = []
        for i, image in enumerate(frames):
            frame = Frame(source=f"frame{i}", index=i, image=image)
            cases.append(golden_case(frame, pipe.classify(image, trace=True), pipe))
        exits = sorted({c["result"]["exit_stage"] for c in cases})
        if exits != list(range(pipe.num_stages)):
            raise SystemExit(f"the pipeline frames exit at stages {exits}, not at every stage: "
                             "rebuild the bundle (--bundle)")
        path = Path(tmp) / "golden.json"
        write_golden(path, pipe, cases)
        return json.loads(path.read_text())


# --------------------------------------------------------------------------- unit vectors


def _f32(values) -> list[float]:
    return [float(v) for v in np.asarray(values, np.float32).reshape(-1)]


def _quantize_cases(rng) -> list[dict[str, Any]]:
    from tfedge.runtime import quantize

    params = [("int8", 1.0, -128), ("uint8", 1.0, 0), ("int8", 0.5, -3), ("uint8", 2.5, 7),
              ("int8", 0.0392157, 0), ("int16", 0.25, 0), ("uint8", 1.7, 128)]
    cases = []
    for dtype, scale, zp in params:
        # Pixel values (what preprocessing feeds), exact halves, out-of-range values, negatives.
        values = np.concatenate([rng.uniform(0, 255, 40), np.arange(0, 12) * 0.5 * scale,
                                 [-1000.0, 1000.0, -0.5 * scale, -1.5 * scale, 255.0, 0.0]])
        cases.append({"dtype": dtype, "scale": scale, "zero_point": zp,
                      "values": [float(v) for v in values],
                      "codes": [int(c) for c in quantize(values, scale, zp, dtype)]})
    return cases


def _dequantize_cases(rng) -> list[dict[str, Any]]:
    from tfedge.runtime import dequantize

    ranges = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
    params = [("int8", 0.0625, 12), ("uint8", 0.0711, 5), ("int8", 0.00390625, -128),
              ("int16", 0.001, 3), ("int8", 0.1734, 0)]
    cases = []
    for dtype, scale, zp in params:
        low, high = ranges[dtype]
        codes = np.concatenate([[low, high, zp], rng.integers(low, high + 1, 30)]).astype(dtype)
        cases.append({"dtype": dtype, "scale": scale, "zero_point": zp,
                      "codes": [int(c) for c in codes],
                      "values": _f32(dequantize(codes, scale, zp))})
    return cases


def _resize_cases(rng) -> list[dict[str, Any]]:
    from tfedge.runtime import resize_bilinear

    cases = []
    for (h, w), window, (oh, ow) in [((7, 9), (0, 0, 7, 9), (4, 4)),
                                     ((7, 9), (1, 2, 6, 9), (8, 5)),
                                     ((13, 5), (0, 0, 13, 5), (13, 5)),
                                     ((13, 5), (3, 0, 4, 5), (6, 6)),
                                     ((10, 12), (2, 3, 9, 11), (16, 16)),
                                     ((1, 1), (0, 0, 1, 1), (3, 2))]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        y0, x0, y1, x1 = window
        out = resize_bilinear(image[y0:y1, x0:x1], oh, ow)
        cases.append({"image": [int(v) for v in image.reshape(-1)], "height": h, "width": w,
                      "window": list(window), "out_height": oh, "out_width": ow,
                      "values": _f32(out)})
    return cases


def _crop_cases(rng) -> list[dict[str, Any]]:
    from tfedge.runtime import CropConfig, crop_window

    configs = [CROP, {"margin": 0.0, "square": False, "min_size": 0.2, "scales": []},
               {"margin": 0.15, "square": True, "min_size": 0.2, "scales": [0.25, 0.5, 1.0]},
               {"margin": 0.3, "square": False, "min_size": 0.05, "scales": [0.3, 0.6]},
               {"margin": 4.0, "square": True, "min_size": 1.0, "scales": []}]
    sizes = [(40, 48), (48, 40), (480, 640), (33, 27), (1, 1), (7, 300)]
    fixed = [[0.25, 0.25, 0.75, 0.5], [0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5],
             [0.9, 0.9, 0.1, 0.1], [-0.2, 0.3, 1.4, 0.4], [None, 0.1, 0.2, 0.3],
             [0.0, 0.0, 0.05, 0.05], [0.95, 0.95, 1.0, 1.0]]
    cases = []
    for config in configs:
        cfg = CropConfig.from_dict(config)
        for h, w in sizes:
            boxes = fixed + [sorted(rng.uniform(-0.05, 1.05, 2)) for _ in range(3)]
            for box in boxes:
                if len(box) == 2:  # random: ymin <= ymax, then an x pair
                    xs = sorted(rng.uniform(-0.05, 1.05, 2))
                    box = [float(box[0]), float(xs[0]), float(box[1]), float(xs[1])]
                box = [float(np.float32(v)) if v is not None else None for v in box]
                arr = np.array([np.nan if v is None else v for v in box], np.float32)
                window = crop_window(arr, h, w, cfg)
                cases.append({"config": config, "height": h, "width": w, "box": box,
                              "window": [int(v) for v in window]})
    return cases


def _box_cases(rng) -> list[dict[str, Any]]:
    from tfedge.runtime import decode_box, predictor_values

    cases = []
    for fmt in ("yxyx_normalized", "cyxhw_normalized"):
        for values in [[0.1, -0.2, 0.9, 1.3], [0.5, 0.5, 0.4, 0.2], [0.5, 0.5, -0.3, 0.2],
                       [0.0, 0.0, 0.0, 0.0], *rng.uniform(-0.3, 1.3, (6, 4)).tolist()]:
            raw = np.asarray(values, np.float32)
            v = predictor_values([raw[None]], fmt)
            cases.append({"box_format": fmt, "outputs": [_f32(raw)], "output_shapes": [[1, 4]],
                          "values": _f32(v), "box": _f32(decode_box(v, fmt))})
    for side in (1, 3, 4, 7):
        cells = side * side
        for spread in (0.5, 4.0, 30.0):
            logits = rng.normal(0, spread, cells).astype(np.float32)
            sizes = rng.uniform(-0.1, 1.1, (cells, 2)).astype(np.float32)
            v = predictor_values([logits[None], sizes[None]], "heatmap_cyxhw")
            cases.append({"box_format": "heatmap_cyxhw", "outputs": [_f32(logits), _f32(sizes)],
                          "output_shapes": [[1, cells], [1, cells, 2]],
                          "values": _f32(v), "box": _f32(decode_box(v, "heatmap_cyxhw"))})
    return cases


def _decision_cases(rng) -> list[dict[str, Any]]:
    from tfedge.runtime import decide_stage

    cases = []
    plans = [  # (criteria, thresholds, weights, classes)
        (["max_softmax", "max_softmax"], [0.8, None], [0.0, 0.5], 3),
        (["margin", "entropy", "max_softmax"], [0.6, 0.4, None], [0.0, 0.5, 1.0], 5),
        (["entropy", "margin"], [0.2, None], [0.0, 0.0], 10),
        (["max_softmax"], [None], [0.0], 1),
        (["margin", "margin"], [0.3, None], [0.0, 2.0], 50),
    ]
    for criteria, thresholds, weights, classes in plans:
        for spread in (0.3, 2.0, 8.0, 40.0):
            stages = []
            previous = None
            for criterion, threshold, weight in zip(criteria, thresholds, weights):
                logits = rng.normal(0, spread, classes).astype(np.float32)
                d = decide_stage(logits, previous, criterion=criterion, threshold=threshold,
                                 accumulate_weight=weight)
                stages.append({"criterion": criterion, "threshold": threshold,
                               "accumulate_weight": weight, "logits": _f32(logits),
                               "decision_logits": [float(v) for v in d.decision_logits],
                               "probabilities": [float(v) for v in d.probabilities]
                               if classes <= 10 else None,
                               "score": float(d.score), "class": int(d.class_index),
                               "exits": bool(d.exits)})
                previous = d.decision_logits
            cases.append({"stages": stages})
    # Ties (the first of equal logits wins, as numpy's argmax) and a score exactly at the
    # threshold (exits: >= for probabilities, <= for entropy).
    for criterion, logits, threshold in [("max_softmax", [1.0, 3.0, 3.0], 0.0),
                                         ("max_softmax", [0.0, 0.0], 0.5),
                                         ("margin", [2.0, 2.0, -1.0], 0.0),
                                         ("entropy", [0.0, 0.0, 0.0, 0.0], float(math.log(4))),
                                         ("entropy", [-200.0, 200.0, 0.0], 0.0)]:
        d = decide_stage(np.asarray(logits, np.float32), None, criterion=criterion,
                         threshold=threshold)
        cases.append({"stages": [{"criterion": criterion, "threshold": threshold,
                                  "accumulate_weight": 0.0, "logits": _f32(logits),
                                  "decision_logits": [float(v) for v in d.decision_logits],
                                  "probabilities": [float(v) for v in d.probabilities],
                                  "score": float(d.score), "class": int(d.class_index),
                                  "exits": bool(d.exits)}]})
    return cases


def unit_vectors() -> dict[str, Any]:
    rng = np.random.default_rng(UNIT_SEED)
    return {"format": "tfedge-android-unit-vectors", "version": 1,
            "quantize": _quantize_cases(rng), "dequantize": _dequantize_cases(rng),
            "resize": _resize_cases(rng), "crop_window": _crop_cases(rng),
            "box": _box_cases(rng), "decisions": _decision_cases(rng)}


# --------------------------------------------------------------------------- refusals

def _set(path: list, value: Any) -> list[dict[str, Any]]:
    return [{"op": "set", "path": path, "value": value}]


def _delete(path: list) -> list[dict[str, Any]]:
    return [{"op": "delete", "path": path}]


def _file(name: str, change: str, data: bytes = b"", source: str = "") -> list[dict[str, Any]]:
    """A file operation: ``remove`` it, ``flip_last_byte``, ``append_zero``, ``write`` data,
    or ``copy`` it from the bundle's file ``source``."""
    op = {"op": change, "name": name}
    if change == "write":
        op["data"] = base64.b64encode(data).decode("ascii")
    if change == "copy":
        op["from"] = source
    return [op]


def _rehash(name: str, data: bytes) -> list[dict[str, Any]]:
    """Replace a file and list its new size and hash (so only its content is wrong)."""
    return _file(name, "write", data) + _set(["files", name], {
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})


def _both(*ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [op for group in ops for op in group]


def apply_ops(manifest: Any, files: dict[str, Optional[bytes]], ops: list[dict[str, Any]]) -> None:
    """Apply a refusal case's operations (the Java test implements the same few)."""
    for op in ops:
        kind = op["op"]
        if kind in ("set", "delete"):
            target = manifest
            for key in op["path"][:-1]:
                target = target[key]
            if kind == "set":
                target[op["path"][-1]] = copy.deepcopy(op["value"])
            else:
                del target[op["path"][-1]]
        elif kind == "remove":
            files[op["name"]] = None
        elif kind == "flip_last_byte":
            data = files[op["name"]]
            files[op["name"]] = data[:-1] + bytes([data[-1] ^ 0xFF])
        elif kind == "append_zero":
            files[op["name"]] = files[op["name"]] + b"\0"
        elif kind == "write":
            files[op["name"]] = base64.b64decode(op["data"])
        elif kind == "copy":
            files[op["name"]] = files[op["from"]]
        else:
            raise ValueError(f"unknown operation {kind!r}")


#: name -> (operations, phrase of the refusal; None: the variant must load).
REFUSALS: dict[str, tuple[list[dict[str, Any]], Optional[str]]] = {
    "version_3": (_set(["version"], 3), "bundle version 3 is newer than this tfedge supports (2)"),
    "version_2_plain_ok": (_set(["version"], 2), None),
    "version_0": (_set(["version"], 0), "'version' must be a whole number >= 1"),
    "version_string": (_set(["version"], "1"), "'version' must be a whole number >= 1"),
    "version_float": (_set(["version"], 1.0), "'version' must be a whole number >= 1"),
    "format_other": (_set(["format"], "other"), "this is not a tfedge bundle"),
    "format_missing": (_delete(["format"]), "this is not a tfedge bundle"),
    "created_missing": (_delete(["created_utc"]), "missing field 'created_utc'"),
    "resolution_missing": (_delete(["stages", 0, "resolution"]),
                           "missing field 'stages[0].resolution'"),
    "resolution_bool": (_set(["stages", 0, "resolution"], True),
                        "'stages[0].resolution' must be a whole number >= 1"),
    "resolution_mismatch": (_set(["stages", 0, "resolution"], 17),
                            "'stages[0].input.shape' is [1, 16, 16, 3] but resolution 17 needs"),
    "macs_negative": (_set(["stages", 1, "macs"], -5),
                      "'stages[1].macs' must be a whole number >= 0"),
    "last_threshold": (_set(["stages", 2, "threshold"], 0.5),
                       "the last stage must have threshold null"),
    "early_null_threshold": (_set(["stages", 0, "threshold"], None), "could never run"),
    "criterion_unknown": (_set(["stages", 0, "criterion"], "top5"),
                          "'stages[0].criterion' is 'top5', expected one of"),
    "threshold_above_one": (_set(["stages", 0, "threshold"], 1.5), "is above 1 but criterion"),
    "threshold_string": (_set(["stages", 1, "threshold"], "0.5"),
                         "'stages[1].threshold' must be a number >= 0"),
    "first_accumulates": (_set(["stages", 0, "accumulate_weight"], 0.5),
                          "the first stage has no earlier logits"),
    "negative_accumulate": (_set(["stages", 1, "accumulate_weight"], -0.5),
                            "'stages[1].accumulate_weight' must be a number >= 0"),
    "output_labels": (_set(["stages", 1, "output", "shape"], [1, 4]),
                      "the bundle has 3 labels (expected [1, 3])"),
    "zero_point_range": (_set(["stages", 0, "input", "zero_point"], 300),
                         "a zero point in [-128, 127]"),
    "zero_point_float": (_set(["stages", 0, "output", "zero_point"], 1.5),
                         "'stages[0].output.zero_point' must be a whole number"),
    "scale_zero": (_set(["stages", 0, "output", "scale"], 0.0),
                   "quantised tensors need scale > 0"),
    "dtype_unknown": (_set(["stages", 0, "input", "dtype"], "int4"),
                      "'stages[0].input.dtype' is 'int4', expected one of"),
    "shape_bad": (_set(["stages", 0, "input", "shape"], [1, 16, 0, 3]),
                  "'stages[0].input.shape' must be a list of positive whole numbers"),
    "duplicate_names": (_set(["stages", 1, "name"], "small"), "stage names must be unique"),
    "name_empty": (_set(["stages", 1, "name"], ""), "'stages[1].name' must be a non-empty string"),
    "file_climbs": (_set(["stages", 0, "file"], "../stage0.tflite"),
                    "is not a plain relative file name"),
    "file_suffix": (_set(["stages", 0, "file"], "labels.txt"), "must end in .tflite"),
    "file_unlisted": (_both(_delete(["files", "stage1.tflite"]), _file("stage1.tflite", "remove")),
                      "'stage1.tflite' is used but not listed under 'files'"),
    "same_file_twice": (_set(["stages", 1, "file"], "stage0.tflite"),
                        "the labels file and the models must be different files"),
    "stages_empty": (_set(["stages"], []), "'stages' must be a non-empty list"),
    "labels_empty": (_set(["labels"], []), "'labels' must be a non-empty list of strings"),
    "label_blank": (_set(["labels", 1], " "), "'labels[1]' must be a non-empty one-line string"),
    "label_two_lines": (_set(["labels", 1], "gr\neen"),
                        "'labels[1]' must be a non-empty one-line string"),
    "labels_disagree": (_rehash("labels.txt", b"red\ngreen\nteal\n"),
                        "labels.txt and the labels in manifest.json disagree"),
    "resize_nearest": (_set(["preprocessing", "resize"], "nearest"),
                       "'preprocessing.resize' is 'nearest', expected one of"),
    "color_bgr": (_set(["preprocessing", "color"], "BGR"), "'preprocessing.color' is 'BGR'"),
    "pixel_range": (_set(["preprocessing", "pixel_range"], [-1, 1]),
                    "'preprocessing.pixel_range' is [-1, 1]"),
    "box_format_unknown": (_set(["predictor", "box_format"], "xywh"),
                           "'predictor.box_format' is 'xywh', expected one of"),
    "crop_unknown_key": (_set(["predictor", "crop", "pad"], 1),
                         "'predictor.crop' has unknown keys ['pad']"),
    "crop_margin": (_set(["predictor", "crop", "margin"], 9.0), "'predictor.crop' is invalid"),
    "crop_scales_unsorted": (_set(["predictor", "crop", "scales"], [0.5, 0.25]),
                             "'predictor.crop' is invalid"),
    "heatmap_shapes": (_set(["predictor", "output", 1, "shape"], [1, 16, 3]),
                       "do not form a heat map"),
    "predictor_input": (_set(["predictor", "resolution"], 32),
                        "'predictor.input.shape' is [1, 24, 24, 3] but resolution 32 needs"),
    "sha_not_hex": (_set(["files", "stage0.tflite", "sha256"], "ABC"),
                    "must be 64 lowercase hex digits"),
    "file_missing": (_file("stage1.tflite", "remove"),
                     "stage1.tflite: listed in manifest.json but missing from the bundle"),
    "sha_mismatch": (_file("stage2.tflite", "flip_last_byte"),
                     "stage2.tflite: SHA-256 mismatch (file altered or corrupt)"),
    "size_mismatch": (_file("predictor.tflite", "append_zero"),
                      "bytes but manifest.json says"),
    "labels_file_missing": (_file("labels.txt", "remove"),
                            "labels.txt: listed in manifest.json but missing"),
    # Name rules: whole-name match, at most 8 parts of 128 characters, no file-and-folder.
    "name_trailing_newline": (_set(["labels_file"], "labels.txt\n"),
                              "is not a plain relative file name"),
    "name_part_too_long": (_set(["stages", 0, "file"], "s" * 129 + ".tflite"),
                           "is longer than bundles allow (at most 8 folders deep, 128 characters"),
    "name_too_deep": (_set(["stages", 0, "file"], "a/" * 8 + "stage0.tflite"),
                      "is longer than bundles allow (at most 8 folders deep"),
    "files_file_and_folder": (_set(["files", "labels.txt/x"], {"sha256": "0" * 64, "bytes": 1}),
                              "lists 'labels.txt' both as a file and as a folder"),
    # Accepted: unknown fields are ignored, files not listed are ignored (docs/bundle.md).
    "unknown_fields_ok": (_both(_set(["future_field"], {"x": 1}),
                                _set(["stages", 0, "future"], [1, 2])), None),
    "unlisted_file_ok": (_file("notes.txt", "write", b"hello\n"), None),
    "predictor_null_ok": (_both(_set(["predictor"], None), _delete(["files", "predictor.tflite"]),
                                _file("predictor.tflite", "remove")), None),
}

#: A refiner (manifest version 2): the predictor's model file copied as refiner.tflite (a
#: heat-map box model of the same shapes), with the refiner's window and passes.
_REFINER_WINDOW = {"margin": 0.25, "square": True, "min_size": 0.1, "scales": []}


def _with_refiner(manifest: dict[str, Any], version: int = 2) -> list[dict[str, Any]]:
    entry = {key: copy.deepcopy(manifest["predictor"][key])
             for key in ("resolution", "macs", "box_format", "input", "output", "metrics")}
    entry.update(file="refiner.tflite", window=dict(_REFINER_WINDOW), passes=2)
    return _both(_file("refiner.tflite", "copy", source="predictor.tflite"),
                 _set(["files", "refiner.tflite"], manifest["files"]["predictor.tflite"]),
                 _set(["refiner"], entry), _set(["version"], version))


def refiner_variants(manifest: dict[str, Any]) -> dict[str, tuple[list[dict[str, Any]],
                                                                   Optional[str]]]:
    """Refusals (and one acceptance) of version-2 manifests, built on the tiny bundle's own."""
    ok = _with_refiner(manifest)
    return {
        "refiner_ok": (ok, None),
        "refiner_in_version_1": (_with_refiner(manifest, version=1),
                                 "a version 1 manifest holds a 'refiner', which needs version 2"),
        "refiner_without_predictor": (_both(ok, _set(["predictor"], None)),
                                      "'refiner' refines the predictor's box but 'predictor' is "
                                      "null"),
        "refiner_window_free": (_both(ok, _set(["refiner", "window", "square"], False)),
                                "'refiner.window' must be square with no scales"),
        "refiner_window_scales": (_both(ok, _set(["refiner", "window", "scales"], [0.5, 1.0])),
                                  "'refiner.window' must be square with no scales"),
        "refiner_window_unknown_key": (_both(ok, _set(["refiner", "window", "pad"], 1)),
                                       "'refiner.window' has unknown keys ['pad']"),
        "refiner_window_margin": (_both(ok, _set(["refiner", "window", "margin"], 9.0)),
                                  "'refiner.window' is invalid"),
        "refiner_window_missing": (_both(ok, _delete(["refiner", "window"])),
                                   "missing field 'refiner.window'"),
        "refiner_passes_zero": (_both(ok, _set(["refiner", "passes"], 0)),
                                "'refiner.passes' must be a whole number >= 1"),
        "refiner_passes_float": (_both(ok, _set(["refiner", "passes"], 2.0)),
                                 "'refiner.passes' must be a whole number >= 1"),
        "refiner_input": (_both(ok, _set(["refiner", "resolution"], 32)),
                          "'refiner.input.shape' is [1, 24, 24, 3] but resolution 32 needs"),
        "refiner_heatmap_shapes": (_both(ok, _set(["refiner", "output", 1, "shape"], [1, 16, 3])),
                                   "do not form a heat map"),
        "refiner_same_file": (_both(ok, _set(["refiner", "file"], "predictor.tflite")),
                              "the labels file and the models must be different files"),
        "refiner_unlisted": (_both(ok, _delete(["files", "refiner.tflite"])),
                             "'refiner.tflite' is used but not listed under 'files'"),
        "refiner_sha_mismatch": (_both(ok, _file("refiner.tflite", "flip_last_byte")),
                                 "refiner.tflite: SHA-256 mismatch (file altered or corrupt)"),
    }


#: Special manifests that are not JSON objects.
RAW_MANIFESTS = {
    "manifest_not_json": (b"{\"format\": \"tfedge-bundle\", ", "manifest.json is not valid JSON"),
    "manifest_list": (b"[1, 2]\n", "the manifest must be a JSON object"),
}

_NOT_JSON = "manifest.json is not valid JSON"


def _field(text: str, member: str) -> str:
    """The manifest text with ``member`` as its first field (readers ignore unknown ones)."""
    return "{" + member + ", " + text.lstrip()[1:]


def strict_json_variants(text: str) -> dict[str, tuple[str, Optional[str]]]:
    """The bundle's manifest text with the JSON rules broken (docs/bundle.md, "Reading rules"):
    name -> (text, phrase; None: both readers must accept it)."""
    return {
        "json_duplicate_key": (_field(text, '"format": "tfedge-bundle"'),
                               "the key 'format' appears twice in one object"),
        "json_nan": (_field(text, '"x": NaN'), "NaN is not a JSON number"),
        "json_infinity": (_field(text, '"x": Infinity'), "Infinity is not a JSON number"),
        "json_minus_infinity": (_field(text, '"x": -Infinity'), "Infinity is not a JSON number"),
        "json_float_overflow": (_field(text, '"x": 1e999'),
                                "the number 1e999 is too large for a double"),
        "json_int_over_64_bits": (_field(text, '"x": 9223372036854775808'),
                                  "does not fit in 64 bits"),
        "json_extremes_ok": (_field(text, '"lo": -9223372036854775808, "hi": '
                                    '9223372036854775807, "big": 1.7e308, "tiny": 1e-400'), None),
        "json_depth_32_ok": (_field(text, '"x": ' + "[" * 31 + "]" * 31), None),
        "json_depth_33": (_field(text, '"x": ' + "[" * 32 + "]" * 32),
                          "nests arrays and objects 33 deep, over the 32 a manifest may"),
        "json_depth_5000": (_field(text, '"x": ' + "[" * 4999 + "]" * 4999),
                            "nests arrays and objects 5000 deep"),
        "json_brackets_in_strings_ok": (_field(text, '"x": "' + "[{" * 40 + '\\"]"'), None),
        "json_comment": ("// a comment\n" + text, _NOT_JSON),
        "json_single_quotes": (_field(text, "'x': 1"), _NOT_JSON),
        "json_unquoted_value": (_field(text, '"x": abc'), _NOT_JSON),
        "json_trailing_comma": (text.rstrip()[:-1].rstrip() + ",}", _NOT_JSON),
        "json_arrow": (_field(text, '"x" => 1'), _NOT_JSON),
        "json_semicolon": (_field(text, '"x": 1; "y": 2'), _NOT_JSON),
        "json_control_character": (_field(text, '"x": "a\tb"'), _NOT_JSON),
        "json_bad_escape": (_field(text, '"x": "\\q"'), _NOT_JSON),
        "json_leading_zero": (_field(text, '"x": 012'), _NOT_JSON),
        "json_plus_sign": (_field(text, '"x": +1'), _NOT_JSON),
        "json_hex": (_field(text, '"x": 0x10'), _NOT_JSON),
        "json_bom": ("\ufeff" + text, _NOT_JSON),
        "json_two_documents": (text + "{}", _NOT_JSON),
    }


def _zip_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as zf:
        warnings.simplefilter("ignore", UserWarning)  # the duplicate entry is the point
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            if len(data) > 2 ** 20:  # the oversized manifest: a few KB deflated
                info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buffer.getvalue()


def _mark_encrypted(data: bytes, name: str) -> bytes:
    """The zip with entry ``name`` flagged as encrypted (general-purpose bit 0), both in its
    local header and in the central directory: what a password-protected archive says."""
    out = bytearray(data)
    target = name.encode()
    i = out.find(b"PK\x03\x04")
    while i >= 0:  # local headers: flags at +6, name length at +26, name at +30
        length = int.from_bytes(out[i + 26:i + 28], "little")
        if bytes(out[i + 30:i + 30 + length]) == target:
            out[i + 6] |= 1
        i = out.find(b"PK\x03\x04", i + 4)
    i = out.find(b"PK\x01\x02")
    while i >= 0:  # central directory: flags at +8, name length at +28, name at +46
        length = int.from_bytes(out[i + 28:i + 30], "little")
        if bytes(out[i + 46:i + 46 + length]) == target:
            out[i + 8] |= 1
        i = out.find(b"PK\x01\x02", i + 4)
    return bytes(out)


#: Zip archives checked before anything is read: name -> (entries, phrase).
ZIP_REFUSALS = {
    "zip_climbs": ([("manifest.json", b"{}"), ("../evil.txt", b"x")], "climbs out of the bundle"),
    "zip_absolute": ([("/etc/evil", b"x"), ("manifest.json", b"{}")], "is an absolute path"),
    "zip_drive": ([("C:/evil", b"x"), ("manifest.json", b"{}")], "is an absolute path"),
    "zip_backslash": ([("manifest.json", b"{}"), ("a\\b.txt", b"x")], "contains a backslash"),
    "zip_duplicate": ([("manifest.json", b"{}"), ("labels.txt", b"a"), ("labels.txt", b"b")],
                      "appears twice"),
    "zip_no_manifest": ([("labels.txt", b"a")], "no manifest.json at the top of the zip"),
    "zip_two_folders": ([("a/manifest.json", b"{}"), ("b/manifest.json", b"{}")],
                        "no manifest.json at the top of the zip"),
    "zip_encrypted": ([("manifest.json", b"{}"), ("labels.txt", b"a")], "is encrypted"),
    "zip_empty_name": ([("manifest.json", b"{}"), ("", b"x")], "has an empty name"),
    "zip_long_name": ([("manifest.json", b"{}"), ("n" * 300 + ".txt", b"x")],
                      "has a part longer than the 255 bytes file systems allow"),
    "zip_file_then_folder": ([("manifest.json", b"{}"), ("x", b"1"), ("x/y", b"2")],
                             "zip entry 'x' is both a file and a folder"),
    "zip_folder_then_file": ([("manifest.json", b"{}"), ("x/y", b"2"), ("x", b"1")],
                             "zip entry 'x' is both a file and a folder"),
    "zip_manifest_too_big": ([("manifest.json", b" " * (16 * 2 ** 20 + 1))],
                             "over the 16.0 MiB a manifest may be"),
}


def refusal_vectors(bundle_dir: Path) -> dict[str, Any]:
    """Every broken variant, checked here against the Python reader."""
    from tfedge.runtime import BundleError, load_bundle

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    originals = {p.name: p.read_bytes() for p in bundle_dir.iterdir() if p.name != "manifest.json"}
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        def check(name: str, folder_or_zip: Path, phrase: Optional[str]) -> None:
            try:
                load_bundle(folder_or_zip).close()
            except BundleError as exc:
                message = str(exc).replace(tmp + "/", "")  # no temporary paths in the vectors
                if phrase is None or phrase not in message:
                    raise SystemExit(f"{name}: the Python reader says {message!r}, expected "
                                     f"{'no refusal' if phrase is None else repr(phrase)}")
                cases[-1]["python_message"] = message
                return
            if phrase is not None:
                raise SystemExit(f"{name}: the Python reader accepted it, expected {phrase!r}")

        for name, (ops, phrase) in {**REFUSALS, **refiner_variants(manifest)}.items():
            m = copy.deepcopy(manifest)
            files: dict[str, Optional[bytes]] = dict(originals)
            apply_ops(m, files, ops)
            cases.append({"name": name, "ops": ops, "phrase": phrase})
            folder = Path(tmp) / name
            shutil.copytree(bundle_dir, folder)
            (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
            for k, v in files.items():
                if v is None:
                    (folder / k).unlink(missing_ok=True)
                elif originals.get(k) != v:
                    (folder / k).write_bytes(v)
            check(name, folder, phrase)
        raw_cases = {name: (raw.decode("utf-8"), phrase)
                     for name, (raw, phrase) in RAW_MANIFESTS.items()}
        raw_cases.update(strict_json_variants((bundle_dir / "manifest.json").read_text()))
        for name, (raw, phrase) in raw_cases.items():
            cases.append({"name": name, "manifest_text": raw, "phrase": phrase})
            folder = Path(tmp) / name
            shutil.copytree(bundle_dir, folder)
            (folder / "manifest.json").write_bytes(raw.encode("utf-8"))
            check(name, folder, phrase)
        zips = []
        for name, (entries, phrase) in ZIP_REFUSALS.items():
            data = _zip_bytes(entries)
            if name == "zip_encrypted":
                data = _mark_encrypted(data, "labels.txt")
            path = Path(tmp) / f"{name}.zip"
            path.write_bytes(data)
            zips.append({"name": name, "zip": base64.b64encode(data).decode("ascii"),
                         "phrase": phrase})
            cases.append(zips[-1])  # check() records the message on cases[-1]
            check(name, path, phrase)
            cases.pop()
    return {"format": "tfedge-android-refusals", "version": 1, "bundle": BUNDLE_NAME,
            "cases": cases, "zips": zips}


# --------------------------------------------------------------------------- main


def write_json(path: Path, obj: Any) -> None:
    # One case per line: small files whose diffs still show what changed.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")).replace(
        "},{", "},\n{") + "\n")


def write_vectors(out_dir: Path, bundle_dir: Path) -> list[Path]:
    """Write pipeline.json, unit.json and refusals.json for ``bundle_dir`` into ``out_dir``."""
    written = []
    for name, obj in (("pipeline.json", pipeline_vectors(bundle_dir)),
                      ("unit.json", unit_vectors()),
                      ("refusals.json", refusal_vectors(bundle_dir))):
        write_json(out_dir / name, obj)
        written.append(out_dir / name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR,
                        help="folder for the vectors (default: the Java tests' resources)")
    parser.add_argument("--bundle", action="store_true",
                        help="rebuild the tiny bundle first (needs TensorFlow)")
    args = parser.parse_args(argv)
    bundle_dir = GOLDEN_DIR / BUNDLE_NAME
    if args.bundle:
        with tempfile.TemporaryDirectory() as tmp:
            built = build_bundle(Path(tmp) / BUNDLE_NAME)
            if bundle_dir.exists():
                shutil.rmtree(bundle_dir)
            shutil.copytree(built, bundle_dir)
    for path in write_vectors(args.out, bundle_dir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
