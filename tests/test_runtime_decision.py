"""The early-exit rule exists once: the batch path and the per-frame path decide identically.

``cascade_exits`` (evaluation, calibration) and ``decide_stage`` (the device,
one frame at a time) are fed the same random score vectors, over many seeds,
all three criteria, with accumulation weights, and must agree exactly: exit
stage, class, score (bit for bit), and the decision logits. Numpy's RNG
drives the cases (hypothesis is not a dependency of this project).
"""

from __future__ import annotations

import numpy as np
import pytest

from tfedge.runtime.decision import (CRITERIA, accumulate_logits, cascade_exits,
                                     criterion_scores, decide_stage, simulate_cascade, softmax)

SEEDS = range(200)


def _random_cascade(rng: np.random.Generator):
    """Logits of a random cascade, with thresholds that put some images at every stage."""
    stages = int(rng.integers(1, 5))
    count = int(rng.integers(1, 40))
    classes = int(rng.integers(1, 12))
    spread = rng.uniform(0.1, 20.0)
    logits = [(rng.normal(size=(count, classes)) * spread).astype(np.float32)
              for _ in range(stages)]
    if rng.random() < 0.3:  # ties: equal logits and repeated rows
        logits = [np.round(z) for z in logits]
    criteria = [str(rng.choice(CRITERIA)) for _ in range(stages)]
    weights = [0.0] + [float(rng.choice([0.0, 0.5, 1.0, rng.uniform(0, 3)]))
                       for _ in range(stages - 1)]
    decision = accumulate_logits(logits, weights)
    thresholds = []
    for k in range(stages - 1):
        scores = criterion_scores(decision[k], criteria[k])
        # Exactly an observed score half the time (the >= / <= edge), else a random quantile.
        thresholds.append(float(rng.choice(scores)) if rng.random() < 0.5
                          else float(np.quantile(scores, rng.uniform())))
    thresholds.append(None)
    return logits, criteria, weights, thresholds


def _per_frame(logits, criteria, weights, thresholds, i):
    """One image through the device's loop: run stages until one decides to exit."""
    previous = None
    for k, (z, criterion, weight, threshold) in enumerate(zip(logits, criteria, weights,
                                                             thresholds)):
        decision = decide_stage(z[i], previous, criterion=criterion, threshold=threshold,
                                accumulate_weight=weight)
        if decision.exits:
            return k, decision
        previous = decision.decision_logits
    raise AssertionError("the last stage always exits")


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_and_per_frame_decisions_are_identical(seed):
    rng = np.random.default_rng(seed)
    logits, criteria, weights, thresholds = _random_cascade(rng)
    decision = accumulate_logits(logits, weights)
    exit_stage, prediction = cascade_exits(decision, criteria, thresholds)
    for i in range(exit_stage.size):
        k, frame = _per_frame(logits, criteria, weights, thresholds, i)
        assert k == exit_stage[i], (i, criteria, thresholds)
        assert frame.class_index == prediction[i]
        # The same bits, not merely close: thresholds calibrated on batches hold per frame.
        np.testing.assert_array_equal(frame.decision_logits, decision[k][i])
        assert frame.score == criterion_scores(decision[k], criteria[k])[i]
        np.testing.assert_array_equal(frame.probabilities, softmax(decision[k])[i])


def test_every_criterion_and_both_edges_are_exercised():
    """The random cases above really cover early exits, late exits and every criterion."""
    seen_exit = set()
    seen_criteria = set()
    for seed in SEEDS:
        logits, criteria, weights, thresholds = _random_cascade(np.random.default_rng(seed))
        exit_stage, _ = cascade_exits(accumulate_logits(logits, weights), criteria, thresholds)
        seen_criteria.update(c for c, t in zip(criteria, thresholds) if t is not None)
        seen_exit.update((len(logits), int(e)) for e in exit_stage)
        if any(w not in (0.0,) for w in weights):
            seen_exit.add("accumulated")
    assert seen_criteria == set(CRITERIA)
    assert {(3, 0), (3, 1), (3, 2), "accumulated"} <= seen_exit


def test_simulation_and_per_frame_loop_agree_on_accuracy():
    rng = np.random.default_rng(7)
    logits, criteria, weights, thresholds = _random_cascade(rng)
    labels = rng.integers(0, logits[0].shape[1], logits[0].shape[0])
    outcome = simulate_cascade(logits, labels, criteria=criteria, weights=weights,
                               thresholds=thresholds, stage_macs=[1] * len(logits))
    frames = [_per_frame(logits, criteria, weights, thresholds, i)
              for i in range(labels.size)]
    assert outcome.top1 == np.mean([f.class_index == y for (_, f), y in zip(frames, labels)])
    assert outcome.exit_stage.tolist() == [k for k, _ in frames]
