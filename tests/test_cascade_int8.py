"""Int8 cascade fidelity (issue #18 item 17): the int8 pipeline calibrated on what the device computes.

* thresholds solved again on int8 scores reach the calibration objective on
  the calibration split where the float thresholds miss it;
* the stages' calibration crops are exactly the crops the device feeds them
  (int8 predictor boxes, runtime crop windows and resize);
* end to end (slow): ``convert_cascade_bundle`` with ``threshold_split``
  writes those thresholds, records both operating points, and calibrates the
  stages on the int8 predictor's crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfedge.cascade._calibrate import calibrate_thresholds
from tfedge.cascade._cascade import CascadeSpec, PredictorConfig, StageConfig
from tfedge.cascade._int8 import device_boxes, device_crops, recalibrate_thresholds
from tfedge.runtime.bundle import PredictorEntry, StageEntry
from tfedge.runtime.decision import simulate_cascade
from tfedge.runtime.evaluate import evaluate_models
from tfedge.runtime.geometry import CropConfig
from tfedge.runtime.interpreter import TensorSpec, quantize

CLASSES = ("a", "b", "c", "d", "e")
MACS = (10, 40)


def _spec(tmp_path: Path, record=None) -> CascadeSpec:
    return CascadeSpec(stages=(StageConfig("s0", "s0.keras", 32, MACS[0]),
                               StageConfig("s1", "s1.keras", 64, MACS[1])),
                       class_names=CLASSES, root=tmp_path, calibration=record)


def _float_and_int8_logits(n: int = 600, seed: int = 0):
    """Float logits of a weak first and a better second stage, and an 'int8' version of them
    whose first stage is over-confident (scores shifted up, as a coarse output scale does)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    z0 = rng.normal(size=(n, len(CLASSES)))
    z0[np.arange(n), y] += 1.2
    z1 = rng.normal(size=(n, len(CLASSES)))
    z1[np.arange(n), y] += 2.5
    q0 = 1.8 * z0 + rng.normal(scale=0.1, size=z0.shape)
    q1 = z1 + rng.normal(scale=0.1, size=z1.shape)
    return (z0, z1), (q0, q1), y


def _outcome(spec, logits, y, thresholds):
    return simulate_cascade(logits, y, criteria=spec.criteria, weights=spec.weights,
                            thresholds=thresholds, stage_macs=spec.stage_macs)


def test_int8_thresholds_reach_the_accuracy_target_the_float_thresholds_miss(tmp_path):
    floats, int8, y = _float_and_int8_logits()
    target = float(np.mean(floats[1].argmax(1) == y)) - 0.01  # the last stage less a point
    float_cal = calibrate_thresholds(floats, y, criteria=["max_softmax"] * 2, weights=[0, 0],
                                     stage_macs=MACS, mode="accuracy", target_accuracy=target)
    assert float_cal.feasible
    spec = _spec(tmp_path, {**float_cal.to_dict(), "split": "val"})
    spec = spec.with_thresholds(float_cal.thresholds, spec.calibration)
    # The bug: the float thresholds on the int8 scores let too many images out at stage 0.
    stale = _outcome(spec, int8, y, spec.thresholds)
    assert stale.exit_fractions[0] > float_cal.val_exit_fractions[0] + 0.05
    assert stale.top1 < target
    result = recalibrate_thresholds(spec, int8, y)
    assert result.mode == "accuracy" and result.target_accuracy == pytest.approx(target)
    assert result.feasible and result.thresholds[0] > spec.thresholds[0]
    fixed = _outcome(spec, int8, y, result.thresholds)
    assert fixed.top1 >= target and fixed.top1 == pytest.approx(result.val_top1)
    assert fixed.expected_macs == pytest.approx(result.val_expected_macs)
    # Still the cheapest cascade reaching the target on the int8 scores: the exact optimum.
    direct = calibrate_thresholds(int8, y, criteria=["max_softmax"] * 2, weights=[0, 0],
                                  stage_macs=MACS, mode="accuracy", target_accuracy=target)
    assert result.thresholds == direct.thresholds


def test_int8_thresholds_keep_the_mac_budget_of_budget_mode(tmp_path):
    floats, int8, y = _float_and_int8_logits(seed=1)
    budget = MACS[0] + 0.5 * MACS[1]
    float_cal = calibrate_thresholds(floats, y, criteria=["margin"] * 2, weights=[0, 0.5],
                                     stage_macs=MACS, mode="budget", macs_budget=budget)
    spec = CascadeSpec(stages=(StageConfig("s0", "s0.keras", 32, MACS[0], "margin", 0.0),
                               StageConfig("s1", "s1.keras", 64, MACS[1], "margin", 0.5)),
                       class_names=CLASSES, root=tmp_path)
    spec = spec.with_thresholds(float_cal.thresholds, {**float_cal.to_dict(), "split": "val"})
    result = recalibrate_thresholds(spec, int8, y)
    assert result.mode == "budget" and result.macs_budget == budget
    out = _outcome(spec, int8, y, result.thresholds)
    assert out.expected_macs <= budget and result.feasible
    assert result.thresholds[-1] is None and len(result.thresholds) == 2


def test_hand_set_thresholds_are_kept(tmp_path):
    _, int8, y = _float_and_int8_logits(n=50)
    spec = _spec(tmp_path).with_thresholds((0.7, None), None)
    assert recalibrate_thresholds(spec, int8, y) is None


# --------------------------------------------------------------------------- device crops


class _FakeModel:
    """A TfliteModel stand-in: int8 input (scale 1, zero point -128), float outputs."""

    def __init__(self, resolution: int, outputs, record: bool = False):
        self.input_spec = TensorSpec((1, resolution, resolution, 3), "int8", 1.0, -128)
        self.output_specs = tuple(TensorSpec(tuple(o), "float32", 0.0, 0) for o in outputs)
        self.inputs: list[np.ndarray] = []
        self.record = record

    def run_raw_all(self, x):
        assert x.dtype == np.int8 and x.shape == self.input_spec.shape
        if self.record:
            self.inputs.append(x.copy())
        return self.outputs(x)


class _BoxPredictor(_FakeModel):
    """Its box depends on the image (the brightest rows/columns), so every crop differs."""

    def __init__(self):
        super().__init__(16, [(1, 4)])

    def outputs(self, x):
        img = x[0].astype(np.float32).mean(axis=-1)
        cy = (np.argmax(img.mean(axis=1)) + 0.5) / 16
        cx = (np.argmax(img.mean(axis=0)) + 0.5) / 16
        return (np.array([[cy, cx, 0.4, 0.3]], np.float32),)


class _Stage(_FakeModel):
    def __init__(self, resolution: int):
        super().__init__(resolution, [(1, len(CLASSES))], record=True)

    def outputs(self, x):
        return (np.tile(x.astype(np.float32).mean(), (1, len(CLASSES))),)


def test_device_crops_are_the_inputs_the_device_feeds_each_stage():
    from conftest import make_colour_split

    split = make_colour_split(12, size=40, seed=3)
    crop = CropConfig(margin=0.1)
    predictor = _BoxPredictor()
    stages = [_Stage(16), _Stage(24)]
    entries = [StageEntry(name=f"s{k}", resolution=r, macs=1, input=m.input_spec,
                          output=m.output_specs[0], criterion="max_softmax",
                          threshold=0.5 if k == 0 else None, accumulate_weight=0.0)
               for k, (m, r) in enumerate(zip(stages, (16, 24)))]
    pred_entry = PredictorEntry(resolution=16, macs=1, input=predictor.input_spec,
                                outputs=predictor.output_specs, crop=crop.to_dict(),
                                box_format="cyxhw_normalized")
    result = evaluate_models(split.images, stages=entries, stage_models=stages,
                             predictor=pred_entry, predictor_model=predictor,
                             labels=split.labels)
    boxes, crops = device_crops(split, [16, 24], predictor=predictor, crop=crop)
    np.testing.assert_array_equal(boxes, result.boxes)
    np.testing.assert_array_equal(device_boxes(split, predictor), result.boxes)
    assert len(np.unique(boxes, axis=0)) > 1  # the boxes really vary with the image
    for stage, arr in zip(stages, crops):
        fed = np.concatenate(stage.inputs)
        assert arr.dtype == np.float32 and arr.shape == (12,) + fed.shape[1:]
        np.testing.assert_array_equal(quantize(arr, 1.0, -128, "int8"), fed)
    # Without a predictor: the whole image, resized the same way.
    none_boxes, whole = device_crops(split, [16], predictor=None)
    assert none_boxes is None and whole[0].shape == (12, 16, 16, 3)
    assert not np.array_equal(whole[0], crops[0])


# --------------------------------------------------------------------------- end to end


def _tiny_classifier(resolution: int, width: int, name: str):
    import keras

    inputs = keras.Input((resolution, resolution, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name=name)


@pytest.mark.slow
def test_conversion_calibrates_stages_on_int8_crops_and_thresholds_on_int8_scores(
        tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    import keras

    import tfedge._convert as convert_module
    from conftest import make_colour_split
    from tfedge._convert import _subset
    from tfedge._train import save_classifier
    from tfedge.bundle import load_bundle
    from tfedge.cascade._calibrate import calibrate_thresholds as calibrate
    from tfedge.cascade._convert import convert_cascade_bundle, evaluate_bundle
    from tfedge.crop import build_predictor, save_predictor
    from tfedge.data._tfdata import make_dataset
    from tfedge.runtime.interpreter import TfliteModel

    train, val, test = (make_colour_split(n, size=32, seed=s) for n, s in ((64, 0), (40, 1),
                                                                         (30, 2)))
    keras.utils.set_random_seed(0)
    stages = []
    for res, width, name in ((16, 4, "tiny_a"), (24, 8, "tiny_b")):
        model = _tiny_classifier(res, width, name)
        model.compile(keras.optimizers.Adam(1e-2),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(make_dataset(train, resolution=res, batch_size=32, training=False), epochs=2,
                  verbose=0, shuffle=False)
        path = save_classifier(model, tmp_path / f"{name}.keras",
                               {"class_names": list(train.class_names)})
        stages.append(StageConfig(name, path.name, res, 1000 * res))
    save_predictor(build_predictor("boxnet_heat_r32_w4"), tmp_path / "pred.keras")
    crop = CropConfig(margin=0.2)
    spec = CascadeSpec(stages=tuple(stages), class_names=train.class_names,
                       predictor=PredictorConfig("pred.keras", 32, 500, crop), root=tmp_path)

    # Float calibration as 'tfedge cascade calibrate' records it (budget: half the images go on).
    from tfedge.cascade._evaluate import compute_stage_logits

    float_val = compute_stage_logits(spec, val)
    budget = 500 + stages[0].macs + 0.5 * stages[1].macs
    float_cal = calibrate(float_val.logits, float_val.labels, criteria=spec.criteria,
                          weights=spec.weights, stage_macs=spec.stage_macs,
                          predictor_macs=spec.predictor_macs, mode="budget", macs_budget=budget)
    spec = spec.with_thresholds(float_cal.thresholds, {**float_cal.to_dict(), "split": "val"})

    representative = []
    real_quantize = convert_module.quantize_int8

    def recording_quantize(model, rep, **kwargs):
        data, record = real_quantize(model, rep, **kwargs)
        representative.append((rep.copy(), data))
        return data, record

    monkeypatch.setattr(convert_module, "quantize_int8", recording_quantize)
    out = tmp_path / "bundle"
    path, metrics = convert_cascade_bundle(spec, train, test, out, calibration_size=24,
                                           tolerance_points=100.0, threshold_split=val)
    # 1. The stages were calibrated on the int8 predictor's crops of the calibration images.
    assert len(representative) == 3  # predictor, then each stage
    predictor_tfl = TfliteModel(representative[0][1])
    _, expected = device_crops(_subset(train, 24, 0), [16, 24], predictor=predictor_tfl,
                               crop=crop)
    for (rep, _), want in zip(representative[1:], expected):
        np.testing.assert_array_equal(rep, want)
    # 2. The bundle's thresholds are the float objective solved on the int8 scores of val.
    with load_bundle(path) as bundle:
        int8_val, _ = evaluate_bundle(bundle, val)
        want = recalibrate_thresholds(spec, int8_val.logits, int8_val.labels)
        assert [s.threshold for s in bundle.stages] == list(want.thresholds)
        m = bundle.metrics
        assert m["thresholds"] == list(want.thresholds)
        assert m["float_thresholds"] == list(spec.thresholds)
        assert m["threshold_source"] == "int8"
        assert m["int8_threshold_calibration"]["val_expected_macs"] <= budget
        assert m["int8_threshold_calibration"]["split"] == "val"
        ops = m["operating_points"]
        assert ops["int8"]["top1"] == pytest.approx(m["top1"])
        assert ops["float"]["top1"] == pytest.approx(m["float_top1"])
        _, test_out = evaluate_bundle(bundle, _subset(test, 2000, 1))
        assert test_out.top1 == pytest.approx(m["top1"])  # the check ran with these thresholds
    assert metrics["thresholds"] == list(want.thresholds)
