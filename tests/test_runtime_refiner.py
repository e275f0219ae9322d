"""The refiner on device (manifest version 2): geometry, manifest, runner, batch evaluation.

``tests/golden/bundle_refined/`` is ``tests/golden/bundle/`` (the same model
files) plus a tiny heat-map refiner with two passes; ``golden_refined.json``
holds every tensor of eight frames through it (``tests/golden/make_golden.py
--refined``). The step-by-step checks start each step from the recorded
tensors of the step before, as ``test_runtime_conformance.py`` does for
version 1. The training-side agreement tests (marked by their use of
TensorFlow) check that the numpy window geometry and box mapping of
:mod:`tfedge.runtime.refine` give the bits the training side computes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfedge.runtime.boxes import decode_box, predictor_values
from tfedge.runtime.bundle import (FORMAT_VERSION, REFINER_VERSION, BundleError, RefinerEntry,
                                   load_bundle, write_bundle)
from tfedge.runtime.evaluate import (crop_config, evaluate_bundle, reference_input,
                                     refiner_window_config)
from tfedge.runtime.geometry import CropConfig, crop_window
from tfedge.runtime.golden import decode_array
from tfedge.runtime.interpreter import dequantize
from tfedge.runtime.preprocess import prepare_input
from tfedge.runtime.refine import (MERGE_TOLERANCE, boxes_from_window, boxes_to_window,
                                   check_refiner_window, merge_refined, refine_step,
                                   refine_window, refine_windows, window_fraction)

GOLDEN = Path(__file__).resolve().parent / "golden"
PLAIN = GOLDEN / "bundle"
REFINED = GOLDEN / "bundle_refined"
REPO = GOLDEN.parents[1]
TF_FREE_ENV = "TFEDGE_REFINER_WITHOUT_TENSORFLOW"
MAX_CODE_DIFFERENCE = 1


def _interpreter_available() -> bool:
    from tfedge.runtime.interpreter import InterpreterUnavailableError, interpreter_backend

    try:
        interpreter_backend()
    except InterpreterUnavailableError:
        return False
    return True


needs_interpreter = pytest.mark.skipif(not _interpreter_available(),
                                       reason="no LiteRT interpreter installed")
needs_tensorflow = pytest.mark.skipif(os.environ.get(TF_FREE_ENV) == "1",
                                      reason="the training side is not importable here")


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((GOLDEN / "golden_refined.json").read_text())


@pytest.fixture(scope="module")
def bundle():
    with load_bundle(REFINED) as loaded:
        yield loaded


def _frame(case: dict) -> np.ndarray:
    return decode_array(case["frame"])


# --------------------------------------------------------------------------- the manifest


def test_refined_bundle_is_version_2_with_the_plain_bundles_models(golden, bundle):
    assert bundle.version == REFINER_VERSION == 2 and golden["manifest"] == dict(bundle.manifest)
    ref = bundle.refiner
    assert ref is not None and ref.passes == 2 and ref.box_format == "heatmap_cyxhw"
    assert bundle.models[1] is ref and bundle.locator_macs == bundle.predictor.macs + 2 * ref.macs
    with load_bundle(PLAIN) as plain:
        assert plain.version == FORMAT_VERSION == 1 and plain.refiner is None
        assert "refiner" not in plain.manifest
        for entry in plain.models:  # the same files: the v1 vectors still describe them
            assert bundle.files[entry.file] == plain.files[entry.file]


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _copy_with(tmp_path: Path, change) -> Path:
    import shutil

    target = tmp_path / "b"
    shutil.copytree(REFINED, target)
    manifest = _manifest(target)
    change(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("change, phrase", [
    (lambda m: m.update(version=1), "a version 1 manifest holds a 'refiner', which needs version 2"),
    (lambda m: m.update(version=3), "bundle version 3 is newer than this tfedge supports (2)"),
    (lambda m: m.update(predictor=None), "'refiner' refines the predictor's box but 'predictor' "
                                         "is null"),
    (lambda m: m["refiner"]["window"].update(square=False), "'refiner.window' must be square"),
    (lambda m: m["refiner"]["window"].update(scales=[0.5, 1.0]), "'refiner.window' must be square"),
    (lambda m: m["refiner"]["window"].update(tilt=1), "'refiner.window' has unknown keys"),
    (lambda m: m["refiner"]["window"].update(margin=-1), "'refiner.window' is invalid"),
    (lambda m: m["refiner"].update(passes=0), "'refiner.passes' must be a whole number >= 1"),
    (lambda m: m["refiner"].update(passes=True), "'refiner.passes' must be a whole number >= 1"),
    (lambda m: m["refiner"].pop("window"), "missing field 'refiner.window'"),
    (lambda m: m["refiner"].update(file="stage0.tflite"), "must be different files"),
    (lambda m: m["files"].pop("refiner.tflite"), "'refiner.tflite' is used but not listed"),
    (lambda m: m["refiner"].update(box_format="corners"), "'refiner.box_format' is 'corners'"),
])
def test_broken_refiner_manifests_are_refused(tmp_path, change, phrase):
    with pytest.raises(BundleError) as exc:
        load_bundle(_copy_with(tmp_path, change))
    assert phrase in str(exc.value) and "\n" not in str(exc.value)


def test_a_version_2_manifest_without_refiner_is_read(tmp_path):
    def drop(m):
        m.pop("refiner")
        m["files"].pop("refiner.tflite")
    with load_bundle(_copy_with(tmp_path, drop)) as loaded:
        assert loaded.version == 2 and loaded.refiner is None


def test_write_bundle_writes_version_2_only_with_a_refiner(tmp_path, bundle):
    stages = [(s, bundle.read_model(s)) for s in bundle.stages]
    predictor = (bundle.predictor, bundle.read_model(bundle.predictor))
    refiner = (bundle.refiner, bundle.read_model(bundle.refiner))
    with pytest.raises(BundleError, match="pass predictor="):
        write_bundle(tmp_path / "x", labels=bundle.labels, stages=stages, refiner=refiner)
    import dataclasses

    plain = write_bundle(tmp_path / "plain", labels=bundle.labels, stages=stages,
                         predictor=predictor, created_utc="2026-12-04T00:00:00Z")
    assert (plain / "manifest.json").read_bytes() == (PLAIN / "manifest.json").read_bytes()
    unnamed = (dataclasses.replace(bundle.refiner, file=""), refiner[1])
    refined = write_bundle(tmp_path / "refined", labels=bundle.labels, stages=stages,
                           predictor=predictor, refiner=unnamed,
                           created_utc="2026-12-04T00:00:00Z")
    assert (refined / "manifest.json").read_bytes() == (REFINED / "manifest.json").read_bytes()
    bad = dataclasses.replace(bundle.refiner, window={"margin": 0.2, "square": False})
    with pytest.raises(BundleError, match="must be square"):
        write_bundle(tmp_path / "bad", labels=bundle.labels, stages=stages, predictor=predictor,
                     refiner=(bad, refiner[1]))
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- geometry


def test_refine_step_maps_the_window_box_back_and_keeps_edges_that_do_not_fit():
    # A 40 x 100 frame; window rows 0..40, cols 30..70 (40 px: the short side).
    window = (0, 30, 40, 70)
    np.testing.assert_array_equal(window_fraction(np.asarray([window]), 40, 100)[0],
                                  np.float32([0.0, 0.3, 1.0, 0.7]))
    inner = np.float32([0.25, 0.25, 0.75, 0.75])
    narrow_box = np.float32([0.2, 0.35, 0.8, 0.65])    # fits the window: replaced
    got = refine_step(narrow_box, inner, window, 40, 100)
    np.testing.assert_allclose(got, [0.25, 0.4, 0.75, 0.6], rtol=0, atol=1e-7)
    wide_box = np.float32([0.2, 0.1, 0.8, 0.9])        # 80 px wide, the window 40: x kept
    got = refine_step(wide_box, inner, window, 40, 100)
    np.testing.assert_allclose(got, [0.25, 0.1, 0.75, 0.9], rtol=0, atol=1e-7)
    # Round trip inside a window, and the "not in this window" target.
    boxes = np.float32([[0.25, 0.4, 0.75, 0.6], [0.0, 0.0, 0.1, 0.05], [np.nan] * 4])
    wins = np.repeat(window_fraction(np.asarray([window]), 40, 100), 3, axis=0)
    inside = boxes_to_window(boxes, wins)
    np.testing.assert_allclose(inside[0], inner, atol=1e-6)
    assert np.isnan(inside[1:]).all()
    np.testing.assert_allclose(boxes_from_window(inside[:1], wins[:1]), boxes[:1], atol=1e-6)


def test_refine_window_is_the_crop_geometry_with_the_refiners_config():
    config = CropConfig(margin=0.25, square=True, min_size=0.1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(5, 200, 2))
        box = np.sort(rng.uniform(-0.1, 1.1, 4).astype(np.float32).reshape(2, 2), axis=0).T.ravel()
        assert refine_window(box, h, w, config).tolist() == crop_window(box, h, w, config).tolist()
    with pytest.raises(Exception, match="square"):
        check_refiner_window(CropConfig(square=False))
    with pytest.raises(Exception, match="scales"):
        check_refiner_window(CropConfig(scales=(0.5, 1.0)))


# --------------------------------------------------------------------------- golden, step by step


def test_golden_refiner_passes_step_by_step(golden, bundle):
    """Window, input, dequantised values, inner box, mapped and merged box, final crop."""
    ref = bundle.refiner
    config = refiner_window_config(ref)
    kept = 0
    for case in golden["cases"]:
        frame = _frame(case)
        height, width = frame.shape[:2]
        box = np.asarray(case["predictor"]["box"], np.float32)
        assert len(case["refiner"]) == ref.passes
        for record in case["refiner"]:
            window = record["window"]
            assert refine_window(box, height, width, config).tolist() == window
            recorded = decode_array(record["input"])
            np.testing.assert_array_equal(prepare_input(frame, window, ref.input), recorded)
            y0, x0, y1, x1 = window
            np.testing.assert_array_equal(reference_input(frame[y0:y1, x0:x1], ref.input),
                                          recorded)
            raw = [decode_array(o) for o in record["outputs"]]
            outputs = [dequantize(r, s.scale, s.zero_point) for r, s in zip(raw, ref.outputs)]
            values = predictor_values(outputs, ref.box_format)
            assert [float(v) for v in values] == record["values"]
            inner = decode_box(values, ref.box_format)
            assert [float(v) for v in inner] == record["inner"]
            new = refine_step(box, inner, window, height, width)
            assert [float(v) for v in new] == record["box"]
            fraction = window_fraction(np.asarray(window), height, width)
            kept += int(np.sum(fraction[2:] - fraction[:2] < box[2:] - box[:2] - MERGE_TOLERANCE))
            box = new
        assert crop_window(box, height, width, crop_config(bundle.predictor)).tolist() == \
            case["window"]
    assert kept >= 2, "the golden frames must exercise the merge (a box wider than the window)"


@needs_interpreter
def test_runner_and_batch_evaluation_reproduce_the_golden_frames(golden, bundle):
    from rpi_runner import EdgePipeline

    frames = [_frame(c) for c in golden["cases"]]
    models_codes = []
    with EdgePipeline(bundle) as pipe:
        for frame, case in zip(frames, golden["cases"]):
            r = pipe.classify(frame, trace=True)
            assert list(r.window) == case["window"]
            assert (r.class_index, r.exit_stage) == (case["result"]["class"],
                                                     case["result"]["exit_stage"])
            assert list(r.predictor_box) == case["predictor"]["box"]
            assert list(r.box) == case["refiner"][-1]["box"]
            for got, record in zip(r.trace.refiner, case["refiner"]):
                for a, b in zip(got.raw, record["outputs"]):
                    models_codes.append(np.abs(a.astype(int) - decode_array(b).astype(int)).max())
            record = r.to_json()
            assert record["refiner_ms"] >= 0 and record["predictor_box"] is not None
            stage_macs = sum(s.macs for s in bundle.stages[:r.exit_stage + 1])
            assert r.macs == bundle.locator_macs + stage_macs
    assert max(models_codes) <= MAX_CODE_DIFFERENCE
    result = evaluate_bundle(bundle, frames)
    assert result.windows.tolist() == [c["window"] for c in golden["cases"]]
    assert result.exit_stages.tolist() == [c["result"]["exit_stage"] for c in golden["cases"]]
    assert result.predictions.tolist() == [c["result"]["class"] for c in golden["cases"]]
    assert result.predictor_boxes.tolist() == [c["predictor"]["box"] for c in golden["cases"]]
    assert result.boxes.tolist() == [c["refiner"][-1]["box"] for c in golden["cases"]]


@needs_interpreter
def test_tfedge_pi_golden_writer_records_the_refiner_passes(golden, bundle):
    """rpi_runner's golden writer (tfedge-pi --golden) writes the committed refined cases."""
    from rpi_runner import EdgePipeline
    from rpi_runner._golden import golden_case
    from rpi_runner._sources import Frame

    with EdgePipeline(bundle) as pipe:
        for i, case in enumerate(golden["cases"]):
            frame = Frame(source=case["source"], index=case["index"], image=_frame(case))
            assert golden_case(frame, pipe.classify(frame.image, trace=True), pipe) == case


@needs_interpreter
def test_plain_bundle_records_keep_their_fields(golden):
    from rpi_runner import EdgePipeline

    with EdgePipeline(PLAIN) as pipe:
        r = pipe.classify(_frame(golden["cases"][0]))
    assert r.refiner_ms is None and r.predictor_box is None
    assert "refiner_ms" not in r.to_json() and "predictor_box" not in r.to_json()


# --------------------------------------------------------------------------- the training side


@needs_tensorflow
def test_numpy_window_geometry_matches_the_training_sides_tensorflow():
    """Windows (pixels and normalised): the same bits on both sides; the box mapping: one code."""
    import tensorflow as tf

    from tfedge.crop import DEFAULT_REFINE_WINDOW, _refine
    from tfedge.crop._geometry_tf import crop_window_tf

    config = DEFAULT_REFINE_WINDOW
    rng = np.random.default_rng(1)
    n = 400
    heights = rng.integers(8, 500, n)
    widths = rng.integers(8, 500, n)
    corners = np.sort(rng.uniform(-0.05, 1.05, (n, 2, 2)).astype(np.float32), axis=1)
    boxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
    boxes[::37] = np.nan
    boxes[5::41, 3] = boxes[5::41, 1]           # collapsed boxes
    pixels, fractions = refine_windows(boxes, heights, widths, config)
    tf_pixels = crop_window_tf(tf.constant(boxes), tf.constant(heights, tf.int32),
                               tf.constant(widths, tf.int32), config).numpy()
    np.testing.assert_array_equal(pixels, tf_pixels)
    size = tf.cast(tf.stack([heights, widths, heights, widths], axis=1), tf.float32)
    tf_fractions = (tf.cast(tf_pixels, tf.float32) / size).numpy()  # as window_crops divides
    np.testing.assert_array_equal(fractions, tf_fractions)
    # The box mapping has one implementation: the training side calls the runtime's.
    from tfedge.crop import _predictor_inference

    assert _refine.boxes_to_window is boxes_to_window
    assert _predictor_inference.boxes_from_window is boxes_from_window
    assert _predictor_inference.merge_refined is merge_refined


@needs_tensorflow
def test_training_windows_are_the_devices_windows_and_crops():
    """tfedge.crop._crop_datasets.window_crops (tf.data) cuts what the device feeds the refiner."""
    from tfedge.crop._crop_datasets import window_crops
    from tfedge.crop._refined_predictor import DEFAULT_REFINE_WINDOW
    from tfedge.data._types import ImageSplit
    from tfedge.runtime.interpreter import TensorSpec

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (12, 40, 58, 3), dtype=np.uint8)
    boxes = np.float32([[0.1, 0.2, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0], [0.3, 0.05, 0.5, 0.95],
                        [np.nan] * 4] * 3)
    split = ImageSplit(images, np.zeros(12, np.int32), None, ("a",))
    crops, windows = window_crops(split, boxes, resolution=16, window=DEFAULT_REFINE_WINDOW)
    pixels, fractions = refine_windows(boxes, 40, 58, DEFAULT_REFINE_WINDOW)
    np.testing.assert_array_equal(windows, fractions)
    spec = TensorSpec(shape=(1, 16, 16, 3), dtype="int8", scale=1.0, zero_point=-128)
    for image, crop, window in zip(images, crops, pixels):
        q = prepare_input(image, window, spec)[0].astype(np.int16) + 128
        # The device's int8 codes are the training side's uint8 window pixels (round half up).
        np.testing.assert_array_equal(q, crop.astype(np.int16))


# --------------------------------------------------------------------------- no TensorFlow


@pytest.mark.skipif(os.environ.get(TF_FREE_ENV) != "1", reason="runs inside the subprocess")
def test_nothing_from_the_training_side_was_imported():
    assert sys.modules.get("tensorflow") is None and sys.modules.get("keras") is None
    training = sorted(m for m, module in sys.modules.items() if m.startswith("tfedge.")
                      and module is not None
                      and not module.__name__.startswith("tfedge.runtime"))
    assert training == [], f"the runtime pulled in the training side: {training}"


def test_refiner_runtime_passes_where_tensorflow_cannot_be_imported():
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "import pytest\n"
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {__file__!r}, "
            "'-k', 'not tensorflow_cannot_be_imported']))")
    env = {**os.environ, TF_FREE_ENV: "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
