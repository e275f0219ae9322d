"""THE early-exit rule of a tfedge cascade, in pure numpy: the rules of ``docs/bundle.md``.

Every consumer of a bundle (the Raspberry Pi runner frame by frame, the
batch evaluation and threshold calibration of the training side, the Android
core) must decide exits exactly the same way, so the rule is written once,
here, and both shapes of use call the same primitives:

* decision logits ``d_0 = z_0``, ``d_k = z_k + w_k * d_(k-1)``
  (:func:`_accumulate`; batches :func:`accumulate_logits`, one frame
  :func:`decision_logits`);
* ``p = softmax(d_k)`` computed as ``exp(log_softmax(d_k))``; the criterion
  score is ``max(p)`` (``max_softmax``), ``p[1st] - p[2nd]`` (``margin``) or
  ``-sum p ln p`` in nats (``entropy``) (:func:`_scores`; batches
  :func:`criterion_scores`, one frame :func:`decide_stage`, which runs the
  batch code on a one-row batch);
* an image leaves at the first stage whose score passes its threshold
  (``score >= threshold``, or ``score <= threshold`` for entropy; ``None`` on
  the last stage: always) (:func:`exits_at`), with class ``argmax(d_k)``
  (batches :func:`cascade_exits`, one frame :class:`StageDecision`).

==============  =====================================  ==================
criterion       score                                  exits when
==============  =====================================  ==================
``max_softmax`` ``max(p)``                             score >= threshold
``margin``      ``p[1st] - p[2nd]`` (1 with one class) score >= threshold
``entropy``     ``-sum(p * ln p)`` (nats)              score <= threshold
==============  =====================================  ==================

Arithmetic is float64 (Java's ``double``) on the float32 logits
:func:`tfedge.runtime.interpreter.dequantize` returns, so thresholds
calibrated on batches and decisions taken frame by frame agree to the last
bit (``tests/test_runtime_decision.py`` checks it on random vectors); a port
in float32 can differ only for scores within float32 rounding of a threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .errors import BundleError, TfedgeError

__all__ = [
    "CRITERIA", "LOWER_IS_CONFIDENT", "PROBABILITY_CRITERIA", "check_criterion",
    # batches (evaluation, calibration)
    "softmax", "log_softmax", "criterion_scores", "confidence", "exits_at", "threshold_bounds",
    "accumulate_logits", "cascade_exits", "CascadeOutcome", "simulate_cascade", "score_exits",
    "expected_macs",
    # one frame (the device)
    "decision_logits", "confidence_score", "passes_threshold", "StageDecision", "decide_stage",
]

#: Confidence criteria a stage may use (the bundle's ``stages[k].criterion``).
CRITERIA = ("max_softmax", "margin", "entropy")
#: Criteria whose image exits when the score is *at most* the threshold.
LOWER_IS_CONFIDENT = ("entropy",)
#: Criteria whose score is a probability, so a threshold above 1 can never pass.
PROBABILITY_CRITERIA = ("max_softmax", "margin")
#: Relative slack above ln(C) that still counts as "every image exits" for entropy
#: (float rounding can put a uniform distribution's entropy a hair above ln C).
_ENTROPY_SLACK = 1e-9


def check_criterion(criterion: str, *, from_bundle: bool = False) -> str:
    """``criterion`` if it is one of :data:`CRITERIA`, else a one-line error.

    ``from_bundle``: the criterion was read from a bundle, so the error is a
    :class:`~tfedge.BundleError` suggesting an upgrade (a newer tfedge may
    have written it); otherwise a :class:`~tfedge.TfedgeError` for a caller's
    argument.
    """
    if criterion in CRITERIA:
        return criterion
    if from_bundle:
        raise BundleError(f"unknown early-exit criterion {criterion!r}: expected one of "
                          f"{', '.join(CRITERIA)}; upgrade tfedge if a newer one wrote the bundle")
    raise TfedgeError(f"unknown cascade criterion {criterion!r}: choose one of "
                      f"{', '.join(CRITERIA)}")


# --------------------------------------------------------------------------- primitives


def _logits_2d(logits: np.ndarray, what: str = "logits") -> np.ndarray:
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise TfedgeError(f"{what} must be (N, classes), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise TfedgeError(f"{what} hold NaN or infinite values: check the model's outputs")
    return arr


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(logits))`` of ``(N, classes)`` in float64, stable for any range."""
    z = _logits_2d(logits)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64: row-wise for ``(N, classes)``, or of one ``(classes,)`` vector.

    Computed as ``exp(log_softmax)``, the form every decision uses.
    """
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim == 1:
        return np.exp(log_softmax(arr[None]))[0]
    return np.exp(log_softmax(arr))


def _scores(p: np.ndarray, logp: np.ndarray, criterion: str) -> np.ndarray:
    """The criterion's score of each row of probabilities ``p`` (and their logs ``logp``).

    The one place the three formulas are written. ``margin`` of a one-class
    output is its probability (1: nothing competes); ``entropy`` counts
    ``0 ln 0`` as 0 (``p`` is 0 there, and ``logp`` finite).
    """
    if criterion == "max_softmax":
        return p.max(axis=1)
    if criterion == "margin":
        if p.shape[1] == 1:
            return p[:, 0]
        top2 = -np.partition(-p, 1, axis=1)[:, :2]
        return top2[:, 0] - top2[:, 1]
    return -(p * logp).sum(axis=1)


def _probabilities_and_scores(decision: np.ndarray, criterion: str
                              ) -> tuple[np.ndarray, np.ndarray]:
    logp = log_softmax(decision)
    p = np.exp(logp)
    return p, _scores(p, logp, criterion)


def _accumulate(z: np.ndarray, weight: float, previous: Optional[np.ndarray]) -> np.ndarray:
    """``d_k = z_k + weight * d_(k-1)`` (``z_k`` itself when there is nothing to add)."""
    if previous is None or not weight:
        return z
    return z + float(weight) * previous


# --------------------------------------------------------------------------- batches


def criterion_scores(logits: np.ndarray, criterion: str) -> np.ndarray:
    """The criterion's score of each row of decision ``logits`` (float64 ``(N,)``).

    ``max_softmax``: the largest probability; ``margin``: largest minus second
    largest probability (the largest alone with one class); ``entropy``:
    ``-sum p ln p`` in nats (0 for a one-hot distribution, ``ln C`` for a
    uniform one).
    """
    check_criterion(criterion)
    return _probabilities_and_scores(logits, criterion)[1]


def confidence(scores: np.ndarray, criterion: str) -> np.ndarray:
    """Scores turned so that higher always means more confident (entropy is negated)."""
    s = np.asarray(scores, dtype=np.float64)
    return -s if check_criterion(criterion) in LOWER_IS_CONFIDENT else s


def exits_at(scores: np.ndarray, criterion: str, threshold: Optional[float]) -> np.ndarray:
    """Boolean ``(N,)``: which images leave a stage with these scores (``None``: all)."""
    s = np.asarray(scores, dtype=np.float64)
    if threshold is None:
        return np.ones(s.shape, dtype=bool)
    if check_criterion(criterion) in LOWER_IS_CONFIDENT:
        return s <= threshold
    return s >= threshold


def threshold_bounds(criterion: str, num_classes: int) -> tuple[float, float]:
    """The thresholds at which every image exits and at which (almost) none does.

    Returns ``(exit_all, exit_none)``: ``max_softmax``/``margin`` ``(0, 1)``
    (a score of exactly 1 still exits at 1); ``entropy`` ``(ln C + slack, 0)``
    (an entropy of exactly 0 still exits at 0). Bundles only allow thresholds
    inside these bounds.
    """
    if check_criterion(criterion) in LOWER_IS_CONFIDENT:
        return math.log(max(num_classes, 1)) * (1.0 + _ENTROPY_SLACK) + _ENTROPY_SLACK, 0.0
    return 0.0, 1.0


def accumulate_logits(stage_logits: Sequence[np.ndarray],
                      weights: Sequence[float]) -> list[np.ndarray]:
    """Decision logits ``d_0 = z_0``, ``d_k = z_k + weights[k] * d_{k-1}``.

    ``weights[0]`` must be 0 (the first stage has nothing to accumulate);
    every weight is >= 0. All logits must have the same shape.
    """
    if len(stage_logits) == 0:
        raise TfedgeError("a cascade needs at least one stage: pass one logits array per stage")
    if len(weights) != len(stage_logits):
        raise TfedgeError(f"got {len(weights)} accumulate weights for {len(stage_logits)} "
                          "stages: give one per stage (0 for the first)")
    out: list[np.ndarray] = []
    shape = None
    for k, (z, w) in enumerate(zip(stage_logits, weights)):
        z = _logits_2d(z, f"stage {k} logits")
        if shape is not None and z.shape != shape:
            raise TfedgeError(f"stage {k} logits have shape {z.shape} but stage 0's have {shape}: "
                              "every stage must score the same images and classes")
        shape = z.shape
        w = float(w)
        if not math.isfinite(w) or w < 0:
            raise TfedgeError(f"accumulate weight of stage {k} is {w!r}: use a number >= 0")
        if k == 0:
            if w != 0.0:
                raise TfedgeError(f"accumulate weight of stage 0 is {w!r} but the first stage has "
                                  "no earlier logits: set it to 0")
            out.append(z)
        else:
            out.append(_accumulate(z, w, out[-1]))
    return out


def cascade_exits(decision_logits: Sequence[np.ndarray], criteria: Sequence[str],
                  thresholds: Sequence[Optional[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Where each image exits and what it is classified as.

    ``thresholds[k]`` is stage k's threshold (the last one is ignored: every
    image still there exits). Returns ``(exit_stage int64 (N,), prediction
    int64 (N,))``.
    """
    k_count = len(decision_logits)
    if len(criteria) != k_count or len(thresholds) != k_count:
        raise TfedgeError(f"got {len(criteria)} criteria and {len(thresholds)} thresholds for "
                          f"{k_count} stages: give one of each per stage")
    n = np.asarray(decision_logits[0]).shape[0]
    exit_stage = np.full(n, k_count - 1, dtype=np.int64)
    prediction = np.zeros(n, dtype=np.int64)
    pending = np.ones(n, dtype=bool)
    for k, (d, criterion, threshold) in enumerate(zip(decision_logits, criteria, thresholds)):
        last = k == k_count - 1
        if not last and threshold is None:
            raise TfedgeError(f"stage {k} has no threshold but {k_count - 1 - k} stage(s) follow "
                              "it: calibrate the cascade (tfedge cascade calibrate)")
        if last:
            leave = pending.copy()
        else:
            leave = pending & exits_at(criterion_scores(d, criterion), criterion, threshold)
        exit_stage[leave] = k
        prediction[leave] = np.argmax(np.asarray(d)[leave], axis=1)
        pending &= ~leave
    return exit_stage, prediction


def expected_macs(exit_stage: np.ndarray, stage_macs: Sequence[int],
                  predictor_macs: int = 0) -> float:
    """Mean MACs per image: the predictor, plus every stage up to and including the exit stage."""
    e = np.asarray(exit_stage, dtype=np.int64)
    if e.size == 0:
        raise TfedgeError("no images: cannot compute expected MACs of an empty split")
    cumulative = np.cumsum(np.asarray(stage_macs, dtype=np.float64))
    return float(predictor_macs) + float(cumulative[e].mean())


@dataclass(frozen=True)
class CascadeOutcome:
    """What a cascade did on a set of images (from cached logits)."""

    top1: float
    expected_macs: float
    exit_fractions: tuple[float, ...]
    stage_top1: tuple[float, ...]  # accuracy of the images exiting at each stage (nan if none)
    exit_stage: np.ndarray
    prediction: np.ndarray

    def to_dict(self) -> dict:
        return {"top1": self.top1, "expected_macs": self.expected_macs,
                "exit_fractions": list(self.exit_fractions),
                "exit_top1": [None if math.isnan(a) else a for a in self.stage_top1],
                "count": int(self.exit_stage.size)}


def simulate_cascade(stage_logits: Sequence[np.ndarray], labels: np.ndarray, *,
                     criteria: Sequence[str], weights: Sequence[float],
                     thresholds: Sequence[Optional[float]], stage_macs: Sequence[int],
                     predictor_macs: int = 0) -> CascadeOutcome:
    """Run the cascade's decisions on cached per-stage logits and score them against ``labels``."""
    decision = accumulate_logits(stage_logits, weights)
    exit_stage, prediction = cascade_exits(decision, criteria, thresholds)
    return score_exits(exit_stage, prediction, labels, stage_macs=stage_macs,
                       predictor_macs=predictor_macs)


def score_exits(exit_stage: np.ndarray, prediction: np.ndarray, labels: np.ndarray, *,
                stage_macs: Sequence[int], predictor_macs: int = 0) -> CascadeOutcome:
    """Accuracy, expected MACs and exit distribution of decisions already taken."""
    exit_stage = np.asarray(exit_stage, dtype=np.int64)
    prediction = np.asarray(prediction, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != exit_stage.shape:
        raise TfedgeError(f"labels have shape {y.shape} but the logits hold {exit_stage.size} "
                          "images: pass the labels of the same split")
    correct = prediction == y
    k_count = len(stage_macs)
    fractions = tuple(float(np.mean(exit_stage == k)) for k in range(k_count))
    per_stage = tuple(float(correct[exit_stage == k].mean()) if np.any(exit_stage == k)
                      else float("nan") for k in range(k_count))
    return CascadeOutcome(top1=float(correct.mean()),
                          expected_macs=expected_macs(exit_stage, stage_macs, predictor_macs),
                          exit_fractions=fractions, stage_top1=per_stage,
                          exit_stage=exit_stage, prediction=prediction)


# --------------------------------------------------------------------------- one frame


def decision_logits(logits: np.ndarray, previous: Optional[np.ndarray],
                    accumulate_weight: float) -> np.ndarray:
    """One frame's ``d_k = z_k + accumulate_weight * d_(k-1)`` as a float64 vector.

    ``previous`` is the previous stage's decision logits (None at the first
    stage, which then decides on ``z_0`` alone).
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    prev = None
    if previous is not None and accumulate_weight:
        prev = np.asarray(previous, dtype=np.float64).reshape(-1)
        if prev.shape != z.shape:
            raise BundleError(f"stage outputs differ in length ({prev.size} then {z.size}): "
                              "every stage must output one logit per label; rebuild the bundle")
    return _accumulate(z, accumulate_weight, prev)


def confidence_score(probabilities: np.ndarray, criterion: str) -> float:
    """The score ``criterion`` gives one frame's ``probabilities`` (see the module table).

    :func:`decide_stage` scores logits (through ``log_softmax``, exactly as
    the batch path); this form takes probabilities someone else computed,
    with ``ln p`` taken directly (``0 ln 0`` counts as 0).
    """
    check_criterion(criterion, from_bundle=True)
    p = np.asarray(probabilities, dtype=np.float64).reshape(1, -1)
    logp = np.log(np.where(p > 0, p, 1.0))
    return float(_scores(p, logp, criterion)[0])


def passes_threshold(score: float, criterion: str, threshold: Optional[float]) -> bool:
    """Whether a frame with ``score`` leaves the cascade (always when ``threshold`` is None)."""
    check_criterion(criterion, from_bundle=True)
    return bool(exits_at(np.float64(score), criterion, threshold))


@dataclass(frozen=True)
class StageDecision:
    """What one stage decided for one frame: decision logits, probabilities, score, class, exit."""

    decision_logits: np.ndarray
    probabilities: np.ndarray
    score: float
    class_index: int
    exits: bool

    @property
    def probability(self) -> float:
        """The probability of the chosen class."""
        return float(self.probabilities[self.class_index])


def decide_stage(logits: np.ndarray, previous: Optional[np.ndarray], *, criterion: str,
                 threshold: Optional[float], accumulate_weight: float = 0.0) -> StageDecision:
    """Apply the early-exit rule to one stage's dequantised logits for one frame.

    ``previous`` is the previous stage's :attr:`StageDecision.decision_logits`
    (None at the first stage). The scores come from the batch code run on a
    one-row batch, so a frame decides exactly as :func:`cascade_exits` does.
    """
    check_criterion(criterion, from_bundle=True)
    d = decision_logits(logits, previous, accumulate_weight)
    p, scores = _probabilities_and_scores(d[None], criterion)
    return StageDecision(decision_logits=d, probabilities=p[0], score=float(scores[0]),
                         class_index=int(np.argmax(d)),
                         exits=bool(exits_at(scores, criterion, threshold)[0]))
