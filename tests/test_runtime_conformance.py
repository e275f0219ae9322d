"""Runtime conformance: the committed golden bundle and vectors, checked with tfedge.runtime only.

``tests/golden/`` holds a tiny bundle (two int8 stages, a heat-map
predictor) and ``golden.json`` (``docs/bundle.md``, *Golden vectors*;
regenerate both with ``tests/golden/make_golden.py``, which needs
TensorFlow). Every step of the device contract is checked on its own, from
the recorded tensors of the step before, so a failure names the step:
preprocessing, inference, dequantisation, box decoding, crop window,
accumulation and exit decision; then the whole route end to end.

Nothing here imports TensorFlow, Keras or the training side: the last test
runs this file again in a subprocess where importing TensorFlow fails, as on
a device. Another port (the Android core) runs the same vectors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfedge.runtime.boxes import decode_box, predictor_values
from tfedge.runtime.bundle import check_tensor_specs, load_bundle
from tfedge.runtime.decision import (accumulate_logits, cascade_exits, criterion_scores,
                                     decide_stage, exits_at, softmax)
from tfedge.runtime.evaluate import crop_config, evaluate_bundle, reference_input
from tfedge.runtime.geometry import crop_window
from tfedge.runtime.golden import GOLDEN_FORMAT, GOLDEN_VERSION, decode_array
from tfedge.runtime.interpreter import dequantize
from tfedge.runtime.preprocess import prepare_input

GOLDEN = Path(__file__).resolve().parent / "golden"
BUNDLE = GOLDEN / "bundle"
REPO = GOLDEN.parents[1]
TF_FREE_ENV = "TFEDGE_CONFORMANCE_WITHOUT_TENSORFLOW"
#: Integer output codes may differ by one between interpreter builds (XNNPACK on ARM vs
#: x86 rounds some requantisations differently); every later step starts from the
#: recorded codes, so it is still checked exactly.
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


@pytest.fixture(scope="module")
def golden() -> dict:
    data = json.loads((GOLDEN / "golden.json").read_text())
    assert data["format"] == GOLDEN_FORMAT and data["version"] == GOLDEN_VERSION
    return data


@pytest.fixture(scope="module")
def bundle():
    with load_bundle(BUNDLE) as loaded:  # sizes and SHA-256 of every file checked
        yield loaded


@pytest.fixture(scope="module")
def models(bundle):
    if not _interpreter_available():
        pytest.skip("no LiteRT interpreter installed")
    return check_tensor_specs(bundle)


def _frame(case: dict) -> np.ndarray:
    return decode_array(case["frame"])


def _assert_codes_close(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert diff.max(initial=0) <= MAX_CODE_DIFFERENCE, f"{what}: codes differ by {diff.max()}"


# --------------------------------------------------------------------------- the bundle


def test_golden_bundle_is_small_and_matches_its_vectors(golden, bundle):
    size = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    assert size < 400 * 1024, f"tests/golden is {size} bytes: keep the golden bundle tiny"
    assert golden["manifest"] == dict(bundle.manifest)
    assert bundle.predictor is not None and bundle.predictor.box_format == "heatmap_cyxhw"
    assert len(bundle.stages) == 2 and bundle.stages[1].accumulate_weight > 0
    assert all(s.input.dtype == "int8" and s.output.dtype == "int8" for s in bundle.stages)
    # The frames exercise both stages: some exit at stage 0, the others at stage 1.
    assert {c["result"]["exit_stage"] for c in golden["cases"]} == {0, 1}


def test_golden_bundle_reads_the_same_from_a_zip(tmp_path, bundle):
    archive = tmp_path / "golden.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(BUNDLE.iterdir()):
            zf.write(path, path.name)
    with load_bundle(archive) as zipped:
        assert zipped.manifest == bundle.manifest
        assert zipped.read_model(zipped.stages[0]) == bundle.read_model(bundle.stages[0])


# --------------------------------------------------------------------------- step by step


def test_preprocessing_gives_the_recorded_inputs(golden, bundle):
    """Resize (fast path and reference route) and quantise: exactly the recorded codes."""
    config = crop_config(bundle.predictor)
    for case in golden["cases"]:
        frame = _frame(case)
        height, width = frame.shape[:2]
        recorded = decode_array(case["predictor"]["input"])
        whole = (0, 0, height, width)
        np.testing.assert_array_equal(prepare_input(frame, whole, bundle.predictor.input), recorded)
        np.testing.assert_array_equal(reference_input(frame, bundle.predictor.input), recorded)
        y0, x0, y1, x1 = case["window"]
        assert list(crop_window(case["predictor"]["box"], height, width, config)) == case["window"]
        for entry, stage in zip(bundle.stages, case["stages"]):
            recorded = decode_array(stage["input"])
            np.testing.assert_array_equal(
                prepare_input(frame, case["window"], entry.input), recorded, entry.name)
            np.testing.assert_array_equal(reference_input(frame[y0:y1, x0:x1], entry.input),
                                          recorded, entry.name)


def test_predictor_outputs_decode_to_the_recorded_box(golden, bundle):
    pred = bundle.predictor
    for case in golden["cases"]:
        raw = [decode_array(o) for o in case["predictor"]["outputs"]]
        outputs = [dequantize(r, s.scale, s.zero_point) for r, s in zip(raw, pred.outputs)]
        values = predictor_values(outputs, pred.box_format)
        assert [float(v) for v in values] == case["predictor"]["values"]
        box = decode_box(values, pred.box_format)
        assert [float(v) for v in box] == case["predictor"]["box"]


def test_stage_outputs_dequantise_and_decide_as_recorded(golden, bundle):
    for case in golden["cases"]:
        previous = None
        for entry, stage in zip(bundle.stages, case["stages"]):
            raw = decode_array(stage["output"])
            logits = dequantize(raw, entry.output.scale, entry.output.zero_point).reshape(-1)
            assert [float(v) for v in logits] == stage["logits"]
            d = decide_stage(logits, previous, criterion=entry.criterion,
                             threshold=entry.threshold, accumulate_weight=entry.accumulate_weight)
            assert [float(v) for v in d.decision_logits] == stage["decision_logits"]
            assert [float(v) for v in d.probabilities] == stage["probabilities"]
            assert (d.score, d.class_index, d.exits) == (stage["score"], stage["class"],
                                                         stage["exits"])
            previous = d.decision_logits
        last = case["stages"][-1]
        assert last["exits"] and case["result"]["exit_stage"] == len(case["stages"]) - 1
        assert case["result"]["class"] == last["class"]
        assert case["result"]["label"] == bundle.labels[last["class"]]
        assert case["result"]["score"] == last["probabilities"][last["class"]]


@needs_interpreter
def test_interpreter_reproduces_the_recorded_output_codes(golden, bundle, models):
    pred = models[bundle.predictor.file]
    for case in golden["cases"]:
        outputs = pred.run_raw_all(decode_array(case["predictor"]["input"]))
        for got, recorded in zip(outputs, case["predictor"]["outputs"]):
            _assert_codes_close(got, decode_array(recorded), f"{case['source']} predictor")
        for entry, stage in zip(bundle.stages, case["stages"]):
            got = models[entry.file].run_raw(decode_array(stage["input"]))
            _assert_codes_close(got, decode_array(stage["output"]),
                                f"{case['source']} {entry.name}")


# --------------------------------------------------------------------------- end to end


@needs_interpreter
def test_reference_evaluation_takes_the_recorded_decisions(golden, bundle):
    frames = [_frame(case) for case in golden["cases"]]
    result = evaluate_bundle(bundle, frames)
    assert result.count == len(frames)
    assert result.exit_stages.tolist() == [c["result"]["exit_stage"] for c in golden["cases"]]
    assert result.predictions.tolist() == [c["result"]["class"] for c in golden["cases"]]
    assert result.windows.tolist() == [c["window"] for c in golden["cases"]]
    # The batch rule on every stage's logits (all stages ran) agrees with the recorded frames.
    decision = accumulate_logits(result.logits, [s.accumulate_weight for s in bundle.stages])
    exits, classes = cascade_exits(decision, [s.criterion for s in bundle.stages],
                                   [s.threshold for s in bundle.stages])
    assert exits.tolist() == result.exit_stages.tolist()
    assert classes.tolist() == result.predictions.tolist()


def test_decision_vectors(golden):
    """The early-exit rule alone, on recorded vectors: per frame and as a one-row batch."""
    cases = golden["decision_cases"]
    assert {c["criterion"] for c in cases} == {"max_softmax", "margin", "entropy"}
    assert {c["exits"] for c in cases} == {True, False}
    for c in cases:
        previous = None if c["previous"] is None else np.asarray(c["previous"])
        d = decide_stage(np.asarray(c["logits"], np.float32), previous, criterion=c["criterion"],
                         threshold=c["threshold"], accumulate_weight=c["accumulate_weight"])
        assert [float(v) for v in d.decision_logits] == c["decision_logits"]
        assert [float(v) for v in d.probabilities] == c["probabilities"]
        assert (d.score, d.class_index, d.exits) == (c["score"], c["class"], c["exits"]), c
        row = np.asarray(c["decision_logits"])[None]
        assert criterion_scores(row, c["criterion"])[0] == c["score"]
        assert [float(v) for v in softmax(row)[0]] == c["probabilities"]
        assert bool(exits_at(criterion_scores(row, c["criterion"]), c["criterion"],
                             c["threshold"])[0]) == c["exits"]


# --------------------------------------------------------------------------- no TensorFlow


@pytest.mark.skipif(os.environ.get(TF_FREE_ENV) != "1", reason="runs inside the subprocess")
def test_nothing_from_the_training_side_was_imported():
    assert sys.modules.get("tensorflow") is None and sys.modules.get("keras") is None
    # Old import paths (tfedge._errors, which tfedge/__init__ uses) are aliases of runtime
    # modules: judged by the module object, not the name.
    training = sorted(m for m, module in sys.modules.items() if m.startswith("tfedge.")
                      and module is not None
                      and not module.__name__.startswith("tfedge.runtime"))
    assert training == [], f"the runtime pulled in the training side: {training}"


def test_conformance_passes_where_tensorflow_cannot_be_imported():
    """This file again, in a process where ``import tensorflow`` (and keras) fails."""
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "import pytest\n"
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {__file__!r}, "
            "'-k', 'not tensorflow_cannot_be_imported']))")
    env = {**os.environ, TF_FREE_ENV: "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
