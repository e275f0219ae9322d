"""Early-exit decisions of a tfedge cascade: pure functions, no interpreter.

The rules are the bundle contract's (``docs/bundle.md``, *Early exit*). For
stage ``k`` with dequantised logits ``z_k``::

    d_0 = z_0
    d_k = z_k + accumulate_weight_k * d_(k-1)        (k >= 1)
    p   = softmax(d_k)

and the image leaves at stage ``k`` with class ``argmax(d_k)`` when the
stage's threshold is ``null``, or when its confidence score passes it:

==============  =====================================  ==================
criterion       score                                  exits when
==============  =====================================  ==================
``max_softmax`` ``max(p)``                             score >= threshold
``margin``      ``p[1st] - p[2nd]``                    score >= threshold
``entropy``     ``-sum(p * ln p)`` (nats)              score <= threshold
==============  =====================================  ==================

Arithmetic is float64 (Java's ``double``), so the Android core, which reads
the same golden vectors, takes the same decisions; the logits themselves are
float32, as :func:`tfedge.litert.dequantize` returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from tfedge.runtime.errors import BundleError

__all__ = ["CRITERIA", "softmax", "confidence_score", "passes_threshold", "decision_logits",
           "StageDecision", "decide_stage"]

#: criterion -> True when a *larger* score means more confident.
_HIGHER_IS_CONFIDENT = {"max_softmax": True, "margin": True, "entropy": False}
CRITERIA = tuple(_HIGHER_IS_CONFIDENT)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Float64 softmax of a 1-D logit vector (shifted by its maximum, so it never overflows)."""
    d = np.asarray(logits, dtype=np.float64).reshape(-1)
    e = np.exp(d - d.max())
    return e / e.sum()


def confidence_score(probabilities: np.ndarray, criterion: str) -> float:
    """The score ``criterion`` compares with the threshold (see the module table).

    ``margin`` of a one-class output is 1 (nothing competes); ``entropy``
    counts ``0 * ln 0`` as 0.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if criterion == "max_softmax":
        return float(p.max())
    if criterion == "margin":
        if p.size < 2:
            return 1.0
        top2 = np.partition(p, p.size - 2)[-2:]
        return float(top2[1] - top2[0])
    if criterion == "entropy":
        nz = p[p > 0]
        return float(-(nz * np.log(nz)).sum())
    raise BundleError(f"unknown early-exit criterion {criterion!r}: expected one of "
                      f"{', '.join(CRITERIA)}; upgrade tfedge if a newer one wrote the bundle")


def passes_threshold(score: float, criterion: str, threshold: Optional[float]) -> bool:
    """Whether an image with ``score`` leaves the cascade (always when ``threshold`` is None)."""
    if threshold is None:
        return True
    if criterion not in _HIGHER_IS_CONFIDENT:
        raise BundleError(f"unknown early-exit criterion {criterion!r}: expected one of "
                          f"{', '.join(CRITERIA)}; upgrade tfedge if a newer one wrote the bundle")
    if _HIGHER_IS_CONFIDENT[criterion]:
        return score >= threshold
    return score <= threshold


def decision_logits(logits: np.ndarray, previous: Optional[np.ndarray],
                    accumulate_weight: float) -> np.ndarray:
    """``d_k = z_k + accumulate_weight * d_(k-1)`` in float64 (``z_0`` alone at the first stage)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if previous is None or accumulate_weight == 0:
        return z
    prev = np.asarray(previous, dtype=np.float64).reshape(-1)
    if prev.shape != z.shape:
        raise BundleError(f"stage outputs differ in length ({prev.size} then {z.size}): every "
                          "stage must output one logit per label; rebuild the bundle")
    return z + float(accumulate_weight) * prev


@dataclass(frozen=True)
class StageDecision:
    """What one stage decided: its decision logits, probabilities, score, class and exit."""

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
    """Apply the contract's early-exit rule to one stage's dequantised logits.

    ``previous`` is the previous stage's :attr:`StageDecision.decision_logits`
    (None at the first stage).
    """
    d = decision_logits(logits, previous, accumulate_weight)
    p = softmax(d)
    score = confidence_score(p, criterion)
    return StageDecision(decision_logits=d, probabilities=p, score=score,
                         class_index=int(np.argmax(d)),
                         exits=passes_threshold(score, criterion, threshold))
