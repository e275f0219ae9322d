"""The cascade: early-exit rules, exact threshold calibration, cascade.json, end to end.

Pure functions are checked on hand-computed numbers; the calibration is
checked against brute force over every candidate threshold combination on
small random problems (2 and 3 stages: identical optimum; 4 stages: a
pairwise local optimum no worse than its starts). One end-to-end test takes
two tiny Keras stages and an untrained predictor through build -> calibrate
-> evaluate -> ``tfedge-convert cascade`` -> ``load_bundle``.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfedge._errors import TfedgeError
from tfedge.cascade._calibrate import (CalibrationResult, _cut_threshold, _exit_stages,
                                       _Objective, _totals, _valid_cuts, calibrate_thresholds,
                                       make_problem, max_total_macs, required_correct, solve,
                                       tradeoff_thresholds)
from tfedge.cascade._cascade import (CascadeSpec, PredictorConfig, StageConfig, load_cascade,
                                     save_cascade)
from tfedge.cascade._decision import (accumulate_logits, cascade_exits, criterion_scores,
                                      expected_macs, exits_at, simulate_cascade, softmax,
                                      threshold_bounds)
from tfedge.crop.geometry import CropConfig

REPO = Path(__file__).resolve().parent.parent
LN3 = math.log(3.0)


# --------------------------------------------------------------------------- decisions


def test_softmax_and_criteria_on_hand_numbers():
    logits = np.array([[0.0, LN3], [math.log(1), math.log(2)]])  # p = (1/4, 3/4), (1/3, 2/3)
    p = softmax(logits)
    np.testing.assert_allclose(p, [[0.25, 0.75], [1 / 3, 2 / 3]], atol=1e-12)
    np.testing.assert_allclose(criterion_scores(logits, "max_softmax"), [0.75, 2 / 3], atol=1e-12)
    np.testing.assert_allclose(criterion_scores(logits, "margin"), [0.5, 1 / 3], atol=1e-12)
    ent = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    np.testing.assert_allclose(criterion_scores(logits, "entropy")[0], ent, atol=1e-12)
    three = np.log(np.array([[0.1, 0.2, 0.7]]))
    assert criterion_scores(three, "margin")[0] == pytest.approx(0.5)
    assert criterion_scores(three, "entropy")[0] == pytest.approx(
        -(0.1 * math.log(0.1) + 0.2 * math.log(0.2) + 0.7 * math.log(0.7)))
    uniform = np.zeros((1, 4))
    assert criterion_scores(uniform, "entropy")[0] == pytest.approx(math.log(4))
    huge = np.array([[1000.0, 0.0, -1000.0]])  # stable: no overflow, no NaN
    assert criterion_scores(huge, "max_softmax")[0] == 1.0
    assert criterion_scores(huge, "entropy")[0] == pytest.approx(0.0, abs=1e-12)


def test_exit_rule_is_inclusive_and_entropy_is_lower_is_better():
    s = np.array([0.5, 0.7, 0.9])
    assert exits_at(s, "max_softmax", 0.7).tolist() == [False, True, True]
    assert exits_at(s, "margin", 0.7).tolist() == [False, True, True]
    assert exits_at(s, "entropy", 0.7).tolist() == [True, True, False]
    assert exits_at(s, "entropy", None).tolist() == [True, True, True]


def test_accumulation_follows_the_bundle_recursion():
    z0, z1, z2 = np.array([[1.0, 2.0]]), np.array([[3.0, 0.0]]), np.array([[0.0, 0.0]])
    d = accumulate_logits([z0, z1, z2], [0.0, 0.5, 2.0])
    np.testing.assert_allclose(d[0], [[1.0, 2.0]])
    np.testing.assert_allclose(d[1], [[3.5, 1.0]])       # z1 + 0.5 * d0
    np.testing.assert_allclose(d[2], [[7.0, 2.0]])       # z2 + 2 * d1 (accumulated, not z1)
    with pytest.raises(TfedgeError, match="first stage"):
        accumulate_logits([z0, z1], [0.5, 0.5])
    with pytest.raises(TfedgeError, match=">= 0"):
        accumulate_logits([z0, z1], [0.0, -1.0])


def test_cascade_exits_and_expected_macs_on_hand_numbers():
    # Stage 0 is sure of image 0 (class 1) only; stage 1 (accumulating) decides the rest.
    z0 = np.array([[0.0, 5.0], [0.0, 0.1], [1.0, 0.0]])
    z1 = np.array([[9.0, 0.0], [0.0, 3.0], [0.0, 2.5]])
    exit_stage, pred = cascade_exits(accumulate_logits([z0, z1], [0.0, 1.0]),
                                     ["max_softmax", "max_softmax"], [0.9, None])
    assert exit_stage.tolist() == [0, 1, 1]
    assert pred.tolist() == [1, 1, 1]  # image 2: d1 = (1, 2.5) -> class 1
    assert expected_macs(exit_stage, [10, 30], predictor_macs=5) == pytest.approx(5 + 10 + 20)
    out = simulate_cascade([z0, z1], np.array([1, 1, 0]), criteria=["max_softmax"] * 2,
                           weights=[0.0, 1.0], thresholds=[0.9, None], stage_macs=[10, 30],
                           predictor_macs=5)
    assert out.top1 == pytest.approx(2 / 3)
    assert out.exit_fractions == pytest.approx((1 / 3, 2 / 3))
    assert out.stage_top1 == pytest.approx((1.0, 0.5))
    with pytest.raises(TfedgeError, match="calibrate"):
        cascade_exits([z0, z1], ["max_softmax"] * 2, [None, None])
    with pytest.raises(TfedgeError, match="unknown cascade criterion"):
        criterion_scores(z0, "confidence")


def test_threshold_bounds_match_the_bundle_ranges():
    assert threshold_bounds("max_softmax", 10) == (0.0, 1.0)
    exit_all, exit_none = threshold_bounds("entropy", 10)
    assert exit_none == 0.0 and exit_all >= math.log(10)


# --------------------------------------------------------------------------- calibration


def _random_problem(rng, stages: int, n: int = 30, classes: int = 4):
    logits = []
    labels = rng.integers(0, classes, n)
    for k in range(stages):
        z = np.round(rng.normal(size=(n, classes)) * rng.uniform(0.5, 3.0), 1)  # rounding: ties
        z[np.arange(n), labels] += 0.6 * k  # later stages are better
        logits.append(z)
    criteria = [str(rng.choice(["max_softmax", "margin", "entropy"])) for _ in range(stages)]
    weights = [0.0] + [float(rng.choice([0.0, 0.5, 1.0])) for _ in range(stages - 1)]
    macs = sorted(int(m) for m in rng.integers(1, 100, stages))
    return logits, labels, criteria, weights, macs


def _brute_force(problem, objective):
    """Best key over every combination of candidate thresholds (distinct scores, +-inf)."""
    candidates = []
    for k in range(problem.num_stages - 1):
        sc = np.sort(problem.conf[k])[::-1]
        candidates.append([_cut_threshold(sc, int(p))
                           for p in _valid_cuts(sc, problem.none_allowed[k])])
    return max(objective.key(*_totals(problem, _exit_stages(problem, ts)))
               for ts in itertools.product(*candidates))


@pytest.mark.parametrize("stages", [2, 3])
def test_exact_search_matches_brute_force(stages):
    rng = np.random.default_rng(stages)
    for trial in range(40):
        logits, labels, criteria, weights, macs = _random_problem(rng, stages)
        problem = make_problem(logits, labels, criteria=criteria, weights=weights,
                               stage_macs=macs, predictor_macs=3)
        n = problem.count
        if trial % 2:
            objective = _Objective("accuracy", need_correct=int(rng.integers(5, n)))
        else:
            objective = _Objective("budget", max_macs=int(rng.uniform(macs[0], sum(macs)) * n)
                                   + 3 * n)
        thresholds, method, exact = solve(problem, objective)
        assert exact and method.startswith("exact")
        got = objective.key(*_totals(problem, _exit_stages(problem, thresholds)))
        assert got == _brute_force(problem, objective), (trial, criteria, weights)


def test_calibrated_thresholds_reproduce_the_optimum_through_the_bundle_rules():
    """Thresholds in criterion units, simulated with the bundle's rules, give the optimum."""
    rng = np.random.default_rng(7)
    for mode in ("accuracy", "budget"):
        for stages in (2, 3):
            logits, labels, criteria, weights, macs = _random_problem(rng, stages, n=40)
            problem = make_problem(logits, labels, criteria=criteria, weights=weights,
                                   stage_macs=macs, predictor_macs=2)
            kwargs = ({"target_accuracy": 0.6} if mode == "accuracy"
                      else {"macs_budget": float(2 + macs[0] + 0.4 * sum(macs[1:]))})
            result = calibrate_thresholds(logits, labels, criteria=criteria, weights=weights,
                                          stage_macs=macs, predictor_macs=2, mode=mode, **kwargs)
            objective = (_Objective("accuracy", need_correct=required_correct(0.6, 40))
                         if mode == "accuracy" else
                         _Objective("budget", max_macs=max_total_macs(kwargs["macs_budget"], 40)))
            best = _brute_force(problem, objective)
            out = simulate_cascade(logits, labels, criteria=criteria, weights=weights,
                                   thresholds=result.thresholds, stage_macs=macs,
                                   predictor_macs=2)
            correct = round(out.top1 * 40)
            total = round(out.expected_macs * 40)
            assert objective.key(correct, total) == best
            assert result.val_top1 == pytest.approx(out.top1)
            assert result.val_expected_macs == pytest.approx(out.expected_macs)
            assert result.thresholds[-1] is None and result.exact
            for t, c in zip(result.thresholds[:-1], criteria):
                assert t >= 0.0 and (c == "entropy" or t <= 1.0)  # the bundle's ranges


def test_four_stages_give_a_pairwise_local_optimum_no_worse_than_the_starts():
    rng = np.random.default_rng(11)
    for trial in range(8):
        logits, labels, criteria, weights, macs = _random_problem(rng, 4, n=24)
        problem = make_problem(logits, labels, criteria=criteria, weights=weights,
                               stage_macs=macs)
        objective = _Objective("budget", max_macs=int(0.5 * sum(macs) * problem.count))
        thresholds, method, exact = solve(problem, objective)
        assert not exact and method == "pairwise-block-coordinate-descent"
        got = objective.key(*_totals(problem, _exit_stages(problem, thresholds)))
        assert got <= _brute_force(problem, objective)
        for start in ([-math.inf] * 3, [math.inf] * 3):
            assert got >= objective.key(*_totals(problem, _exit_stages(problem, start)))
        # No single threshold change improves it.
        for k in range(3):
            sc = np.sort(problem.conf[k])[::-1]
            for p in _valid_cuts(sc, problem.none_allowed[k]):
                moved = list(thresholds)
                moved[k] = _cut_threshold(sc, int(p))
                assert objective.key(*_totals(problem, _exit_stages(problem, moved))) <= got


def test_unreachable_target_returns_the_most_accurate_cascade_marked_infeasible():
    rng = np.random.default_rng(3)
    logits, labels, criteria, weights, macs = _random_problem(rng, 2, n=30)
    result = calibrate_thresholds(logits, labels, criteria=criteria, weights=weights,
                                  stage_macs=macs, mode="accuracy", target_accuracy=1.0)
    problem = make_problem(logits, labels, criteria=criteria, weights=weights, stage_macs=macs)
    best_correct = max(_totals(problem, _exit_stages(problem, [t]))[0]
                       for t in (-math.inf, math.inf, *problem.conf[0]))
    if best_correct < 30:
        assert not result.feasible
        assert result.val_top1 == pytest.approx(best_correct / 30)


def test_budget_mode_respects_the_budget_and_the_curve_is_monotone():
    rng = np.random.default_rng(5)
    logits, labels, criteria, weights, macs = _random_problem(rng, 3, n=60)
    curve = tradeoff_thresholds(logits, labels, criteria=criteria, weights=weights,
                                stage_macs=macs, predictor_macs=4, points=9)
    assert len(curve) >= 2
    budgets = [c.macs_budget for c in curve]
    assert budgets == sorted(budgets)
    for c in curve:
        assert c.feasible and c.val_expected_macs <= c.macs_budget + 1e-9
    accs = [c.val_top1 for c in curve]
    assert accs == sorted(accs)  # a larger budget never lowers the optimum


def test_calibration_input_errors_are_one_line_and_name_the_fix():
    z = [np.zeros((4, 3)), np.zeros((4, 3))]
    y = np.zeros(4, int)
    common = dict(criteria=["max_softmax"] * 2, weights=[0.0, 0.0], stage_macs=[1, 2])
    with pytest.raises(TfedgeError, match="fraction in"):
        calibrate_thresholds(z, y, mode="accuracy", target_accuracy=85, **common)
    with pytest.raises(TfedgeError, match="budget"):
        calibrate_thresholds(z, y, mode="budget", **common)
    with pytest.raises(TfedgeError, match="unknown calibration mode"):
        calibrate_thresholds(z, y, mode="fast", target_accuracy=0.5, **common)
    with pytest.raises(TfedgeError, match="labels"):
        calibrate_thresholds(z, np.zeros(3, int), mode="accuracy", target_accuracy=0.5, **common)


def test_calibration_of_two_thousand_images_and_three_stages_is_fast():
    import time

    rng = np.random.default_rng(0)
    n, c = 2000, 10
    labels = rng.integers(0, c, n)
    logits = []
    for k in range(3):
        z = rng.normal(size=(n, c))
        z[np.arange(n), labels] += 1 + k
        logits.append(z)
    start = time.perf_counter()
    result = calibrate_thresholds(logits, labels, criteria=["max_softmax"] * 3,
                                  weights=[0.0, 0.5, 0.5], stage_macs=[6, 20, 46],
                                  mode="budget", macs_budget=25.0)
    assert time.perf_counter() - start < 5.0
    assert result.exact and result.feasible and result.val_expected_macs <= 25.0


# --------------------------------------------------------------------------- cascade.json


def _spec(tmp_path: Path) -> CascadeSpec:
    stages = (StageConfig("small", str(tmp_path / "models" / "s0.keras"), 32, 1000),
              StageConfig("big", str(tmp_path / "models" / "s1.keras"), 64, 5000,
                          criterion="entropy", accumulate_weight=0.5))
    return CascadeSpec(stages=stages, class_names=("a", "b", "c"),
                       predictor=PredictorConfig(str(tmp_path / "p.keras"), 32, 300,
                                                 CropConfig(margin=0.1)))


def test_cascade_json_round_trips_with_relative_paths(tmp_path):
    spec = _spec(tmp_path).with_thresholds([0.8, None], {"mode": "accuracy"})
    path = save_cascade(spec, tmp_path / "cascade.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == "tfedge-cascade" and raw["stages"][0]["model"] == "models/s0.keras"
    assert raw["stages"][0]["threshold"] == 0.8 and raw["stages"][1]["threshold"] is None
    loaded = load_cascade(path)
    assert loaded.thresholds == (0.8, None) and loaded.calibrated
    assert loaded.stage_path(1) == tmp_path / "models" / "s1.keras"
    assert loaded.predictor.crop == CropConfig(margin=0.1)
    assert loaded.criteria == ("max_softmax", "entropy") and loaded.weights == (0.0, 0.5)
    assert loaded.predictor_macs == 300 and loaded.stage_macs == (1000, 5000)
    assert not _spec(tmp_path).calibrated


def test_cascade_json_errors_name_the_fix(tmp_path):
    spec = _spec(tmp_path)
    with pytest.raises(TfedgeError, match="last stage"):
        spec.with_thresholds([0.5, 0.5])
    with pytest.raises(TfedgeError, match="above 1"):
        spec.with_thresholds([1.5, None])
    with pytest.raises(TfedgeError, match="first stage"):
        CascadeSpec(stages=(StageConfig("a", "a.keras", 32, 1, accumulate_weight=1.0),),
                    class_names=("x",))
    with pytest.raises(TfedgeError, match="unique"):
        CascadeSpec(stages=(StageConfig("a", "a.keras", 32, 1), StageConfig("a", "b.keras", 32, 1)),
                    class_names=("x",))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**spec.to_json(tmp_path), "version": 99}))
    with pytest.raises(TfedgeError, match="upgrade tfedge"):
        load_cascade(bad)
    bad.write_text(json.dumps({"format": "something"}))
    with pytest.raises(TfedgeError, match="tfedge cascade build"):
        load_cascade(bad)
    with pytest.raises(TfedgeError, match="does not exist"):
        load_cascade(tmp_path / "missing.json")


def test_a_refiner_and_the_dataset_round_trip_and_a_refiner_needs_version_2(tmp_path):
    from tfedge.cascade._cascade import RefinerConfig

    window = CropConfig(margin=0.25, square=True, min_size=0.1)
    plain = _spec(tmp_path)
    predictor = PredictorConfig(plain.predictor.model, 32, 300, CropConfig(margin=0.1),
                                refiner=RefinerConfig(str(tmp_path / "r.keras"), 24, 50, 2, window))
    data = {"name": "mydata", "source": {"source": "/data/mydata", "boxes": "auto", "seed": 0}}
    spec = CascadeSpec(stages=plain.stages, class_names=plain.class_names, predictor=predictor,
                       dataset=data).with_thresholds([0.8, None], {"mode": "accuracy"})
    # Every image pays the predictor and both refiner passes.
    assert spec.predictor_macs == 300 + 2 * 50
    path = save_cascade(spec, tmp_path / "cascade.json")
    raw = json.loads(path.read_text())
    assert raw["version"] == 2 and raw["predictor"]["refiner"]["model"] == "r.keras"
    assert raw["dataset"] == data
    loaded = load_cascade(path)
    assert loaded.refiner_path() == tmp_path / "r.keras" and loaded.refiner.resolution == 24
    assert loaded.refiner.passes == 2 and loaded.refiner.window == window
    assert loaded.dataset == data and loaded.predictor_macs == 400
    # Without a refiner the file stays version 1, byte for byte what older readers take.
    assert json.loads(save_cascade(plain, tmp_path / "p.json").read_text())["version"] == 1
    raw["version"] = 1  # a refiner in a version-1 file: an older writer never made one
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(TfedgeError, match="cannot hold a refiner"):
        load_cascade(bad)
    raw["version"], raw["predictor"]["refiner"]["window"]["square"] = 2, False
    bad.write_text(json.dumps(raw))
    with pytest.raises(TfedgeError, match="square"):
        load_cascade(bad)


def test_calibrate_and_convert_use_the_recorded_data_and_refuse_other_data(tmp_path):
    import argparse

    from tfedge.cli.cascade import cascade_dataset, register
    from tfedge.cli.convert import build_parser as convert_parser
    from tfedge.compress import DataSource

    source = DataSource("benchmark", benchmark={"train_size": 30, "val_size": 10,
                                                "test_size": 10, "image_size": 32,
                                                "object_size": (8, 16)})
    spec = _spec(tmp_path).with_dataset({"name": "fashion-on-photos-x",
                                         "source": source.to_dict()})
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for argv in (["cascade", "calibrate", "--cascade", "c.json", "--data", str(tmp_path)],
                 ["cascade", "evaluate", "--cascade", "c.json", "--train-size", "99"]):
        args = parser.parse_args(argv)
        with pytest.raises(TfedgeError) as err:  # refused before any data is loaded
            cascade_dataset(args, spec, "c.json")
        message = str(err.value)
        assert "\n" not in message and "30/10/10 images at 32 px" in message
        assert "drop the data flags" in message
    assert "folder " + str(tmp_path) in str(
        pytest.raises(TfedgeError, cascade_dataset,
                      parser.parse_args(["cascade", "calibrate", "--cascade", "c.json", "--data",
                                         str(tmp_path)]), spec, "c.json").value)
    # tfedge-convert cascade: no data flags given is None (the recorded data), not the default.
    args = convert_parser().parse_args(["cascade", "--cascade", "c.json", "--output", "b"])
    assert args.data is None and args.train_size is None and not args.float_thresholds
    spec_without_source = spec.with_dataset({"name": "mydata"})
    with pytest.raises(TfedgeError, match="does not record where it is"):
        cascade_dataset(args, spec_without_source, "c.json")


def test_calibration_record_round_trips():
    r = CalibrationResult(thresholds=(0.5, None), mode="budget", target_accuracy=None,
                          macs_budget=10.0, feasible=True, val_top1=0.9, val_expected_macs=9.0,
                          val_exit_fractions=(0.5, 0.5), count=10, method="exact-1d-sweep",
                          exact=True, candidates=(11,))
    assert CalibrationResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def _synthetic(tmp_path: Path, seed: int = 0, n: int = 200):
    """A 2-stage spec and validation/test logits where the second stage is better."""
    from tfedge.cascade._evaluate import SplitLogits

    rng = np.random.default_rng(seed)
    spec = CascadeSpec(stages=(StageConfig("s0", "s0.keras", 32, 10),
                               StageConfig("s1", "s1.keras", 64, 40)),
                       class_names=("a", "b", "c", "d"), root=tmp_path)

    def split(m: int) -> SplitLogits:
        y = rng.integers(0, 4, m)
        z0 = rng.normal(size=(m, 4))
        z0[np.arange(m), y] += 1.0
        z1 = rng.normal(size=(m, 4))
        z1[np.arange(m), y] += 2.0
        return SplitLogits((z0, z1), y)

    return spec, split(n), split(n)


def test_targets_resolve_from_the_validation_stages():
    from tfedge.cascade._evaluate import SplitLogits, resolve_target

    y = np.array([0, 1, 0, 1])
    val = SplitLogits((np.eye(2)[[0, 1, 1, 1]] * 3, np.eye(2)[[1, 0, 0, 1]] * 3), y)
    assert val.stage_top1() == (0.75, 0.5)
    assert resolve_target("last", val) == 0.5
    assert resolve_target("best", val) == 0.75
    assert resolve_target("best", val, offset_points=-5) == pytest.approx(0.70)
    assert resolve_target(0.6, val) == 0.6
    with pytest.raises(TfedgeError, match="fraction"):
        resolve_target("85%", val)
    with pytest.raises(TfedgeError, match="outside"):
        resolve_target(85, val)


def test_choose_exit_rule_keeps_the_best_rule_on_validation(tmp_path):
    from tfedge.cascade._evaluate import choose_exit_rule

    spec, val, _ = _synthetic(tmp_path)
    chosen, result, rows = choose_exit_rule(spec, val, mode="budget", macs_budget=30.0)
    assert len(rows) == 9 and chosen.calibrated and result.feasible
    assert max(r["val_top1"] for r in rows if r["feasible"]) == pytest.approx(result.val_top1)
    assert chosen.calibration["rule_search"] == rows
    assert {chosen.stages[1].criterion} <= {"max_softmax", "margin", "entropy"}
    assert chosen.stages[0].accumulate_weight == 0.0


def test_evaluate_cascade_reports_exits_single_stages_and_a_test_curve(tmp_path):
    from tfedge.cascade._evaluate import calibrate_cascade, evaluate_cascade

    spec, val, test = _synthetic(tmp_path)
    with pytest.raises(TfedgeError, match="calibrate"):
        evaluate_cascade(spec, test)
    spec, result = calibrate_cascade(spec, val, mode="accuracy", target="last")
    assert spec.calibration["split"] == "val" and result.val_top1 >= val.stage_top1()[1] - 1e-12
    ev = evaluate_cascade(spec, test, val=val, curve_points=6)
    out = simulate_cascade(test.logits, test.labels, criteria=spec.criteria, weights=spec.weights,
                           thresholds=spec.thresholds, stage_macs=spec.stage_macs)
    assert ev.top1 == out.top1 and ev.expected_macs == out.expected_macs  # test, not val
    assert [s["alone_macs"] for s in ev.stages] == [10, 40]
    assert [s["top1"] for s in ev.stages] == list(test.stage_top1())
    assert 10 <= ev.expected_macs <= 50
    within = [(a, s["name"]) for s, a in zip(ev.stages, test.stage_top1())
              if s["alone_macs"] <= ev.expected_macs]
    assert ev.best_single_stage["name"] == max(within)[1]
    assert ev.beats_best_single_stage == (ev.top1 > max(within)[0])
    macs = [p["expected_macs"] for p in ev.curve]
    assert len(ev.curve) >= 2 and macs == sorted(macs)
    assert json.loads(json.dumps(ev.to_dict()))["count"] == test.count


def test_importing_the_cascade_package_does_not_import_tensorflow():
    code = ("import sys, tfedge.cascade as c; c.calibrate_thresholds; c.load_cascade; "
            "c.simulate_cascade; import tfedge.cli.cascade; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --------------------------------------------------------------------------- end to end


def _folder_dataset(root: Path) -> None:
    from PIL import Image

    from conftest import make_colour_split

    for split, count, seed in (("train", 72, 0), ("val", 30, 1), ("test", 30, 2)):
        data = make_colour_split(count, size=32, seed=seed)
        for i, (image, label) in enumerate(zip(data.images, data.labels)):
            folder = root / split / data.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}{i}.png")


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
def test_build_calibrate_evaluate_convert_end_to_end(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    import argparse

    import keras

    from tfedge.cli.convert import main as convert_main
    from tfedge.cli._shell import run_cli
    from tfedge._train import save_classifier
    from tfedge.bundle import load_bundle
    from tfedge.cli.cascade import register as add_cascade_commands
    from tfedge.crop import build_predictor, save_predictor
    from tfedge.data import load_dataset
    from tfedge.data._tfdata import make_dataset

    data_dir = tmp_path / "data"
    _folder_dataset(data_dir)
    dataset = load_dataset(str(data_dir))
    keras.utils.set_random_seed(0)
    paths = []
    for res, width, name in ((16, 4, "tiny_a"), (32, 8, "tiny_b")):
        model = _tiny_classifier(res, width, name)
        model.compile(keras.optimizers.Adam(1e-2),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(make_dataset(dataset.train, resolution=res, batch_size=24, training=False),
                  epochs=3, verbose=0, shuffle=False)
        # The first stage "was trained" on crops with min_size 0.5 (as its sidecar says).
        trained = {"crop": {"margin": 0.4, "min_size": 0.5, "square": True, "scales": []}}
        paths.append(save_classifier(model, tmp_path / f"{name}.keras",
                                     {"class_names": list(dataset.class_names),
                                      **({"crop": trained} if name == "tiny_a" else {})}))
    predictor = save_predictor(build_predictor("boxnet_heat_r32_w4"), tmp_path / "pred.keras")

    parser = argparse.ArgumentParser(prog="tfedge")
    add_cascade_commands(parser.add_subparsers())

    def cli(*argv: str) -> dict:
        return run_cli(parser, list(argv))

    cascade = tmp_path / "run" / "cascade.json"
    data_flags = ["--data", str(data_dir)]
    assert cli("cascade", "build", *map(str, paths), "--predictor", str(predictor),
               "--accumulate-weight", "0.5", "--crop-margin", "0.2",
               "--output", str(cascade), *data_flags) == 0
    spec = load_cascade(cascade)
    assert spec.dataset["name"] == "data"
    assert spec.dataset["source"]["source"] == str(data_dir.resolve())
    # Other data than the recorded: one line naming both, before any image is read.
    capsys.readouterr()
    assert cli("cascade", "calibrate", "--cascade", str(cascade), "--data", "benchmark") == 2
    err = capsys.readouterr().err
    assert f"folder {data_dir.resolve()}" in err and "built-in benchmark" in err
    assert len(err.strip().splitlines()) == 1
    assert not spec.calibrated and spec.predictor.crop.margin == 0.2
    assert spec.predictor.crop.min_size == 0.5                   # the flag left out: as trained
    assert spec.weights == (0.0, 0.5) and spec.stage_macs[0] < spec.stage_macs[1]
    assert cli("cascade", "calibrate", "--cascade", str(cascade), "--mode", "budget",
               "--macs-budget", str(spec.predictor_macs + spec.stage_macs[0]
                                    + 0.5 * spec.stage_macs[1])) == 0  # the recorded data
    # A ratio is of the last stage's MACs (as tfedge compress --macs-budget is of the base's);
    # a number that is neither a ratio nor a plausible count stops with one line.
    ratio = tmp_path / "ratio.json"
    assert cli("cascade", "calibrate", "--cascade", str(cascade), "--mode", "budget",
               "--macs-budget", "0.9", "--output", str(ratio)) == 0
    assert load_cascade(ratio).calibration["macs_budget"] == pytest.approx(0.9 * spec.stage_macs[-1])
    capsys.readouterr()
    assert cli("cascade", "calibrate", "--cascade", str(cascade), "--mode", "budget",
               "--macs-budget", "50", "--output", str(ratio)) == 2
    assert "write a ratio as 0.5 (not 50)" in capsys.readouterr().err
    spec = load_cascade(cascade)
    assert spec.calibrated and spec.calibration["split"] == "val"
    assert spec.calibration["exact"] and spec.calibration["val_expected_macs"] <= \
        spec.predictor_macs + spec.stage_macs[0] + 0.5 * spec.stage_macs[1]
    plot = tmp_path / "curve.png"
    assert cli("cascade", "evaluate", "--cascade", str(cascade), "--plot", str(plot),
               "--curve-points", "4", "--record", *data_flags) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    spec = load_cascade(cascade)
    ev = spec.evaluation
    assert ev["split"] == "test" and ev["count"] == 30
    assert sum(ev["exit_fractions"]) == pytest.approx(1.0)
    assert spec.predictor_macs + spec.stage_macs[0] <= ev["expected_macs"] <= \
        spec.predictor_macs + sum(spec.stage_macs)

    bundle_dir = tmp_path / "bundle"
    assert convert_main(["cascade", "--cascade", str(cascade), "--output", str(bundle_dir),
                         "--zip", "--calibration-size", "16", "--check-split", "test",
                         "--tolerance", "100"]) == 0
    with load_bundle(str(bundle_dir) + ".zip") as bundle:
        # The bundle's thresholds are for the int8 scores when the converter re-solved them on
        # the calibration split (threshold_source 'int8'), else the float ones; both are recorded.
        assert [s.threshold for s in bundle.stages] == bundle.metrics["thresholds"]
        assert bundle.metrics["float_thresholds"] == list(spec.thresholds)
        if bundle.metrics["threshold_source"] == "float":
            assert bundle.metrics["thresholds"] == list(spec.thresholds)
        assert [s.accumulate_weight for s in bundle.stages] == [0.0, 0.5]
        assert [s.macs for s in bundle.stages] == list(spec.stage_macs)
        assert bundle.predictor is not None and bundle.predictor.crop["margin"] == 0.2
        assert bundle.predictor.box_format == "heatmap_cyxhw"  # no int8 softmax on device
        assert len(bundle.predictor.outputs) == 2
        assert bundle.predictor.macs == spec.predictor_macs
        assert bundle.labels == spec.class_names
        assert 0.0 <= bundle.metrics["top1"] <= 1.0 and len(bundle.metrics["exit_rates"]) == 2
        assert bundle.stages[0].input.dtype == "int8"
        from tfedge.cascade._convert import evaluate_bundle

        _, outcome = evaluate_bundle(bundle, dataset.test)
        assert outcome.top1 == pytest.approx(bundle.metrics["top1"])  # same images, same code
        # The device runner (no TensorFlow) must take the same decisions on the same images.
        from PIL import Image

        from rpi_runner import EdgePipeline

        images = [np.asarray(Image.open(path).convert("RGB")) for path in dataset.test.paths]
        with EdgePipeline(bundle) as pipeline:
            runner = [pipeline.classify(image) for image in images]
        agree = np.mean([r.class_index == p for r, p in zip(runner, outcome.prediction)])
        assert agree >= 0.95, f"runner agrees with the Python evaluation on {agree:.1%} only"

    # A stage retrained at another resolution since 'cascade build': refused before converting.
    saved = {p: p.read_bytes() for p in (paths[0], Path(str(paths[0]) + ".json"))}
    save_classifier(_tiny_classifier(24, 4, "tiny_a"), paths[0],
                    {"class_names": list(dataset.class_names)})
    stale = tmp_path / "stale_bundle"
    assert convert_main(["cascade", "--cascade", str(cascade), "--output", str(stale),
                         *data_flags]) == 2
    assert "stage 0 model takes 24 px but the cascade says 16" in capsys.readouterr().err
    assert not stale.exists()
    for p, data in saved.items():
        p.write_bytes(data)

    # Quantisation-aware training: the stages fine-tune, the box predictor cannot.
    from tfedge.qat import qat_missing_packages

    if qat_missing_packages() is not None:
        return
    qat_flags = ["--calibration-size", "16", "--check-split", "test", "--tolerance", "100",
                 "--qat", "--qat-images", "24", *data_flags]
    refused = tmp_path / "qat_refused"
    assert convert_main(["cascade", "--cascade", str(cascade), "--output", str(refused),
                         *qat_flags]) == 2
    assert not refused.exists()
    qat_dir = tmp_path / "qat_bundle"
    assert convert_main(["cascade", "--cascade", str(cascade), "--output", str(qat_dir),
                         "--qat-fallback", *qat_flags]) == 0
    with load_bundle(qat_dir) as bundle:
        assert [s.metrics["quantization"]["method"] for s in bundle.stages] == ["qat", "qat"]
        assert bundle.predictor.metrics["quantization"]["method"] == "ptq"
        assert "regresses boxes" in bundle.predictor.metrics["quantization"]["qat_skipped"]
        assert bundle.stages[0].input.scale == 1.0 and bundle.stages[0].input.zero_point == -128


def test_the_library_reads_a_cascades_dataset_from_its_models_and_refuses_other_data(tmp_path):
    import tfedge.cascade as tc
    from tfedge._train import _sidecar
    from tfedge.data import BenchmarkConfig, DataSource

    small = DataSource("benchmark", benchmark={"train_size": 30, "val_size": 10,
                                               "test_size": 10, "image_size": 32,
                                               "object_size": (8, 16)})
    models = [tmp_path / "s0.keras", tmp_path / "s1.keras"]
    _sidecar(models[0]).write_text(json.dumps({"dataset": "mine"}))
    _sidecar(models[1]).write_text(json.dumps({"dataset": "mine",
                                               "compress": {"data": small.to_dict()}}))
    # The first sidecar that says where its data is wins; its name comes with it.
    record = tc.dataset_record_from_models(models)
    assert record == {"name": "mine", "source": small.to_dict()}
    assert "30/10/10 images at 32 px" in tc.describe_dataset_record(record)
    # A name alone is recorded as such; the default benchmark's name gets its source back.
    _sidecar(models[1]).write_text(json.dumps({"dataset": "mine"}))
    assert tc.dataset_record_from_models(models) == {"name": "mine"}
    default = f"fashion-on-photos-{BenchmarkConfig().key()}"
    _sidecar(models[0]).write_text(json.dumps({"dataset": default}))
    assert DataSource.from_dict(tc.dataset_record_from_models(models)["source"]).same_images(
        DataSource("benchmark"))
    assert tc.dataset_record_from_models([tmp_path / "none.keras"]) is None
    with pytest.raises(TfedgeError, match="s0.keras was trained on dataset .* but the data "
                                          "given is 'other'"):
        tc.check_models_trained_on(models, "other", fix="pass its data")
    # Other images are named in one line; the same ones (boxes aside) pass.
    assert tc.dataset_mismatch(record, small) is None
    assert tc.dataset_mismatch(record, DataSource("benchmark", benchmark={}, boxes="none",
                                                  seed=0)) is not None
    assert tc.dataset_mismatch(record, None, "mine") is None
    assert "'other'" in tc.dataset_mismatch(record, None, "other")
    assert tc.dataset_mismatch(None, small) is None
    spec = _spec(tmp_path)
    with pytest.raises(TfedgeError, match="records no dataset"):
        tc.recorded_dataset(spec, "c.json")
    with pytest.raises(TfedgeError, match="does not record where it is"):
        tc.recorded_dataset(spec.with_dataset({"name": "mine"}), "c.json")


def test_build_warns_when_the_predictor_was_trained_on_other_data(tmp_path, caplog):
    import argparse

    from tfedge._train import _sidecar
    from tfedge.cli.cascade import _build_dataset, register

    stage, predictor = tmp_path / "s0.keras", tmp_path / "p.keras"
    _sidecar(stage).write_text(json.dumps({"dataset": "x"}))
    _sidecar(predictor).write_text(json.dumps({"dataset": "z"}))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["cascade", "build", str(stage), "--output", "c.json"])
    with caplog.at_level("WARNING", logger="tfedge.cascade"):
        record, dataset = _build_dataset(args, [str(stage)], str(predictor))
    assert record == {"name": "x"} and dataset is None
    assert "different datasets (x, z)" in caplog.text
    _sidecar(predictor).write_text("{not json")  # read before any data flag is acted on
    args = parser.parse_args(["cascade", "build", str(stage), "--output", "c.json",
                              "--train-size", "10"])
    with pytest.raises(TfedgeError, match="not valid JSON"):
        _build_dataset(args, [str(stage)], str(predictor))
