"""Contribution-guided compound shrinking: depth, width and resolution, one measured step at a time.

EdgeCompress's second idea. From the base model, each round tries one shrink
step in every dimension:

* depth: drop the ``depth_step`` least important removable residual blocks
  (:func:`tfedge.shrink.block_importance`);
* width: keep ``1 - width_step`` of the channels of every prunable channel
  group, chosen by an importance criterion (:func:`tfedge.shrink.shrink_width`);
* resolution: ``resolution_step`` pixels fewer at the input, never below
  ``min_resolution`` (:func:`tfedge.shrink.set_resolution`);

re-estimates each candidate's BatchNorm statistics on training images (or
fine-tunes it briefly, ``score="finetune"``), scores it on the validation
split by accuracy lost per MAC saved, and keeps the best. A step that would go
below the target is shortened where the dimension allows (a fractional width
step, a smaller resolution step) so the search can land on the target; a step
reaching the target competes on the same score as the others, credited only
with the MACs still to save (:func:`choose_step`), so a costly landing step
loses to a cheaper step that stops short. Then the result is fine-tuned with
knowledge distillation from the base (:mod:`._finetune`).

With ``step_macs_fraction`` the width and resolution steps are sized to save
about that fraction of the current MACs each (so the dimensions compete on
comparable steps), input sides stay multiples of ``resolution_multiple`` (0:
the network's total stride), and the final step lands within
``landing_tolerance`` under the target when a candidate can. With
``score="finetune"`` the short fine-tunes of the accepted steps are taken off
the final fine-tune (``charge_search_steps``), so the result trained as many
steps as a baseline. ``target_ms`` replaces the MAC target by int8
milliseconds measured with the runtime's interpreter (:mod:`._latency`).

Every accepted step is logged (dimension, MACs, validation top-1, seconds,
the candidates it beat) to ``<name>.search.json`` in ``output_dir``, written
atomically after the step's model (``<name>.search.keras``); a search started
again with the same arguments resumes from the last step. Decisions use the
validation split only, never a test split.

The arithmetic (target, score, choice, step sizes, bisection) is in small pure
functions at the top of this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .._errors import TfedgeError
from .._io import atomic_write_json
from ._calibration import calibration_arrays, head
from ._finetune import FinetuneConfig, finetune_with_distillation
from ._latency import check_target_ms
from ._resolution import allowed_sides, total_stride

__all__ = [
    "SearchConfig", "SearchResult", "compound_search", "DIMENSIONS", "SCORES",
    "resolve_target", "step_score", "choose_step", "next_resolution", "bisect_largest",
    "bisect_largest_int", "remaining_finetune", "WIDTH_ALLOCATIONS", "Slimming",
]

log = logging.getLogger(__name__)

DIMENSIONS = ("depth", "width", "resolution")
SCORES = ("bn", "finetune")
WIDTH_ALLOCATIONS = ("uniform", "global")
SEARCH_FORMAT = "tfedge-shrink-search"
SEARCH_VERSION = 1
#: The smallest keep ratio a landing width step tries: every group then keeps ``round_to``.
MIN_KEEP_RATIO = 1e-3
#: Bisection steps for a fractional width step: 2^-10 of the ratio range is finer than
#: any channel rounding (round_to=8 on a 1024-channel layer moves the ratio by 1/128).
BISECTION_STEPS = 10


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- pure arithmetic


def resolve_target(base_macs: int, target: Union[float, int]) -> int:
    """The MAC budget ``target`` stands for: a ratio of ``base_macs`` below 1, or absolute MACs.

    ``0 < target < 1``: that fraction of the base; ``target > 1``: that many
    MACs, which must be below the base's. 1 and anything >= the base are not a
    shrink and are refused, as are zero, negatives and non-numbers.
    """
    if not _is_number(target) or not math.isfinite(float(target)) or target <= 0:
        raise TfedgeError(f"MAC target {target!r} is invalid: give a ratio of the base's MACs "
                          "below 1 (e.g. 0.5) or an absolute MAC count below the base's")
    if base_macs <= 0:
        raise TfedgeError(f"the base model has {base_macs} MACs: nothing to shrink")
    if target < 1:
        return max(1, int(math.floor(float(target) * base_macs)))
    if target == 1 or target >= base_macs:
        raise TfedgeError(f"MAC target {target!r} does not shrink the base ({base_macs:,d} MACs): "
                          "give a ratio below 1 (e.g. 0.5) or an absolute MAC count below "
                          f"{base_macs:,d}")
    return int(target)


def step_score(top1_before: float, top1_after: float, macs_before: int, macs_after: int,
               base_macs: int) -> float:
    """Validation accuracy lost per fraction of the base's MACs saved (lower is better).

    A step that saves nothing scores +inf (never chosen); a step that gains
    accuracy scores below zero.
    """
    saved = (macs_before - macs_after) / float(base_macs)
    if saved <= 0:
        return math.inf
    return (top1_before - top1_after) / saved


def choose_step(candidates: Sequence[Mapping[str, Any]], *, top1: float, macs: float,
                target_macs: float, base_macs: float,
                landing_tolerance: Optional[float] = None) -> Optional[int]:
    """Index of the candidate step to keep, or None when none saves MACs.

    candidates: mappings with ``macs`` and ``val_top1`` (after the step); ``macs``
    may be any cost (e.g. int8 milliseconds) as long as ``macs``, ``target_macs``
    and ``base_macs`` are the same one.
    Every step competes on :func:`step_score` (accuracy lost per MAC saved, lowest
    wins), steps that reach the target (``macs <= target_macs``) included: they
    are credited only with the MACs the search still had to save (an overshoot
    earns nothing), so a landing step ends the search only when it costs less
    accuracy per MAC than a step that stops short of the target (a short step is
    followed by more steps), and among reaching steps the most accurate wins.
    At equal scores: a reaching step that lands within ``landing_tolerance`` under
    the target (it spends the whole budget), then the step saving more (two free
    steps: take the bigger; among reaching steps, the one keeping more MACs), then
    the earlier candidate (the order of ``SearchConfig.dimensions``).
    """
    useful = [i for i, c in enumerate(candidates) if c["macs"] < macs]
    if not useful:
        return None
    # Saving more than the target asks for is worth nothing: credit a reaching step with
    # what was left to save (macs - target), no more.
    needed_floor = min(target_macs, macs)
    floor = (1.0 - landing_tolerance) * target_macs if landing_tolerance is not None else None

    def key(i: int) -> tuple:
        c = candidates[i]
        credited = max(c["macs"], needed_floor)
        lands = floor is not None and floor <= c["macs"] <= target_macs
        return (step_score(top1, c["val_top1"], macs, credited, base_macs), not lands,
                credited, -c["macs"], i)

    return min(useful, key=key)


#: SearchConfig's default ``landing_tolerance``; also the coarse-landing margin when it is None.
DEFAULT_LANDING_TOLERANCE = 0.05


def coarse_floor(budget: float, landing_tolerance: Optional[float]) -> float:
    """The MACs under which a width step sized to ``budget`` counts as landing coarsely:
    ``landing_tolerance`` below it (:data:`DEFAULT_LANDING_TOLERANCE` when it is None)."""
    margin = DEFAULT_LANDING_TOLERANCE if landing_tolerance is None else landing_tolerance
    return (1.0 - margin) * budget


def next_resolution(current: int, step: Union[int, float], minimum: int) -> Optional[int]:
    """The input side one resolution step below ``current``, or None when at ``minimum``.

    ``step`` >= 1 is pixels; ``0 < step < 1`` a fraction of ``current``
    (rounded down, at least one pixel). The result never goes below ``minimum``.
    """
    if current <= minimum:
        return None
    fewer = int(step) if step >= 1 else max(1, int(math.floor(current * float(step))))
    return max(minimum, current - fewer)


def bisect_largest(cost: Callable[[float], float], target: float, lo: float, hi: float,
                   steps: int = BISECTION_STEPS) -> float:
    """The largest ``x`` in ``[lo, hi]`` with ``cost(x) <= target``, for non-decreasing ``cost``.

    ``cost(lo)`` must be within the target (returned as is when ``hi`` is
    not); ``steps`` halvings bound the error by ``(hi - lo) / 2**steps``.
    """
    if cost(hi) <= target:
        return hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if cost(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo


def bisect_largest_int(cost: Callable[[int], float], target: float, lo: int, hi: int) -> int:
    """The largest integer ``x`` in ``[lo, hi]`` with ``cost(x) <= target`` (``cost`` non-decreasing,
    ``cost(lo) <= target`` assumed)."""
    if cost(hi) <= target:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cost(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo


def remaining_finetune(epochs: int, steps_per_epoch: int, used_steps: int
                       ) -> tuple[int, Optional[int]]:
    """``(epochs, steps_per_epoch)`` of the final fine-tune once ``used_steps`` of the budget
    ``epochs * steps_per_epoch`` went to the short fine-tunes of the accepted steps.

    ``steps_per_epoch`` None means whole epochs (nothing used); ``(0, None)``:
    the budget is spent (BatchNorm re-estimation only).
    """
    if epochs <= 0 or used_steps <= 0:
        return epochs, None
    left = epochs * steps_per_epoch - used_steps
    if left <= 0:
        return 0, None
    epochs_left = min(epochs, left)
    return epochs_left, max(1, left // epochs_left)


def fill_counts(sizes: Mapping[str, int], counts: Mapping[str, int], round_to: int,
                fits: Callable[[dict[str, int]], bool], max_tries: Optional[int] = None
                ) -> dict[str, int]:
    """Grow channel counts one ``round_to`` notch at a time while ``fits(counts)`` holds.

    A single keep ratio for every group moves in coarse jumps once counts are
    rounded (a 16-channel group goes 12 -> 16 at once), so a bisection on the
    ratio can land well below a MAC budget. This spends the rest: each pass
    grows the group that keeps the smallest fraction of its channels (ties:
    the larger group), and a group that no longer fits is not tried again
    (growing others only adds MACs). ``max_tries`` bounds the calls to ``fits``
    (default: three per group).
    """
    counts = {name: int(c) for name, c in counts.items()}
    tries, limit = 0, (3 * len(counts) if max_tries is None else max_tries)
    blocked: set[str] = set()
    while tries < limit:
        open_groups = [n for n in counts if counts[n] < sizes[n] and n not in blocked]
        if not open_groups:
            break
        name = min(open_groups, key=lambda n: (counts[n] / sizes[n], -sizes[n], n))
        trial = {**counts, name: min(int(sizes[name]), counts[name] + round_to)}
        tries += 1
        if fits(trial):
            counts = trial
        else:
            blocked.add(name)
    return counts


# --------------------------------------------------------------------------- config and result


@dataclass(frozen=True)
class SearchConfig:
    """How compound shrinking searches and fine-tunes.

    target_macs_ratio: the MAC budget as a fraction of the base's; ignored when
        ``target_macs`` (absolute MACs) is set.
    width_step: fraction of each prunable group's channels one width step removes (with
        ``width_allocation="global"``: of all the ranked channels, wherever they are).
    depth_step: residual blocks one depth step removes.
    resolution_step: pixels (>= 1) or a fraction (< 1) of the side one resolution step removes.
    min_resolution: the smallest input side the search may choose.
    importance: channel criterion for width steps (``l1``, ``l2``, ``bn``, ``hrank``, ``taylor``);
        default ``bn`` (BatchNorm scale): the best width criterion of benchmarks/shrink.py's
        quick runs (docs/shrink.md), where ``l1`` was the worst.
    width_allocation: how a width step shares the cut between channel groups. ``uniform``:
        every group keeps the same fraction, its channels chosen by ``importance``.
        ``global``: network slimming's allocation, one threshold on the raw BatchNorm
        scales of all groups, so groups keep different fractions (needs ``importance="bn"``
        and BatchNorm in the groups). A global step that would land more than
        ``landing_tolerance`` under its MAC goal (the threshold moves in notches of a whole
        group's ``round_to`` channels) takes the uniform cut instead when that is wider.
    score: ``bn`` (re-estimate BatchNorm statistics, then validate) or ``finetune``
        (``score_finetune_steps`` distillation steps, then validate).
    round_to: channel counts stay multiples of this (int8 kernels like multiples of 8).
    protect: layer names whose channels are never removed (e.g. the stem).
    mode: channel groups ``coupled`` (all of them) or ``inner`` (bottleneck insides only).
    dimensions: which dimensions the search may shrink, in tie-break order.
    calibration_size: training images for importance criteria that look at activations.
    val_size: validation images per candidate (None: all).
    bn_batches: batches of training images that re-estimate BatchNorm for each candidate
        (and each baseline). 0 keeps the statistics the model carries everywhere: no
        re-estimation when scoring, none after the fine-tunes, which train with BatchNorm
        frozen (:class:`FinetuneConfig` ``freeze_batchnorm``). For a pretrained model and a
        few images: re-estimated on 128 crops of 12 photos, EfficientNet-Lite0's statistics
        cost it nearly all its agreement with itself (benchmarks/recorded/pretrained-*).
    finetune_epochs: epochs of the final distillation fine-tune (0: none).
    step_macs_fraction: when set, width and resolution steps are sized to save about
        this fraction of the current MACs each (width_step/resolution_step then unused),
        so the dimensions compete on comparable steps.
    resolution_multiple: input sides the search may choose are multiples of this
        (0: the network's total stride, so every downsampling stays exact; 1: any side).
    landing_tolerance: between steps that score alike, one landing within this
        fraction under the target wins (see :func:`choose_step`). It never overrides
        the score: a forced landing once ended searches on a width cut that kept
        0.04 of a pretrained model's agreement where a resolution step kept 0.54.
    charge_search_steps: the short fine-tunes (``score="finetune"``) of the accepted
        steps trained the final model: take them off the final fine-tune, so the
        result got the same number of training steps as a baseline.
    target_ms: an int8 latency target in milliseconds (one thread, the runtime's
        interpreter) instead of MACs: every candidate is converted and timed
        interleaved with the base, and steps are scored per millisecond saved.
    keep_better_start: after the final fine-tune, keep the model it started from when
        that scores higher on the validation images (:func:`select_on_validation`; the
        step log says which was kept). One rule for compound shrinking and every
        baseline. A full-length fine-tune once took a searched model from 0.698 to 0.671
        on validation and 0.678 to 0.654 on test (benchmarks/recorded/shrink-noise-*).
    """

    target_macs_ratio: Optional[float] = 0.5
    target_macs: Optional[int] = None
    width_step: float = 0.1
    depth_step: int = 1
    resolution_step: Union[int, float] = 16
    min_resolution: int = 32
    importance: str = "bn"
    width_allocation: str = "uniform"
    score: str = "bn"
    round_to: int = 8
    protect: tuple[str, ...] = ()
    mode: str = "coupled"
    dimensions: tuple[str, ...] = DIMENSIONS
    calibration_size: int = 128
    val_size: Optional[int] = 1000
    bn_batches: int = 8
    batch_size: int = 64
    score_finetune_steps: int = 20
    finetune_epochs: int = 5
    learning_rate: float = FinetuneConfig.learning_rate
    distill_alpha: float = 0.7
    distill_temperature: float = 4.0
    seed: int = 0
    step_macs_fraction: Optional[float] = None
    resolution_multiple: int = 1
    landing_tolerance: Optional[float] = DEFAULT_LANDING_TOLERANCE
    charge_search_steps: bool = True
    target_ms: Optional[float] = None
    keep_better_start: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "protect", tuple(self.protect))
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if self.target_macs is None:
            ratio = self.target_macs_ratio
            if not _is_number(ratio) or not 0 < ratio < 1:
                raise TfedgeError(f"target_macs_ratio must be between 0 and 1 (exclusive), got "
                                  f"{ratio!r}: e.g. 0.5 keeps half of the base's MACs")
        elif not _is_number(self.target_macs) or self.target_macs < 1:
            raise TfedgeError(f"target_macs must be a positive MAC count, got {self.target_macs!r}")
        if not _is_number(self.width_step) or not 0 < self.width_step < 1:
            raise TfedgeError(f"width_step must be between 0 and 1, got {self.width_step!r}: "
                              "e.g. 0.1 removes a tenth of the channels per step")
        if not isinstance(self.depth_step, int) or self.depth_step < 1:
            raise TfedgeError(f"depth_step must be a whole number >= 1, got {self.depth_step!r}")
        if not _is_number(self.resolution_step) or self.resolution_step <= 0:
            raise TfedgeError(f"resolution_step must be pixels (>= 1) or a fraction (< 1), got "
                              f"{self.resolution_step!r}")
        if not isinstance(self.min_resolution, int) or self.min_resolution < 8:
            raise TfedgeError(f"min_resolution must be a whole number >= 8, got "
                              f"{self.min_resolution!r}")
        if isinstance(self.importance, str):
            known = tuple(_shrink_api().IMPORTANCES)
            if self.importance not in known:
                raise TfedgeError(f"unknown importance {self.importance!r}: choose one of "
                                  f"{', '.join(known)}")
        elif not callable(self.importance):
            raise TfedgeError(f"importance must be a criterion name or a callable, got "
                              f"{self.importance!r}")
        if self.width_allocation not in WIDTH_ALLOCATIONS:
            raise TfedgeError(f"unknown width_allocation {self.width_allocation!r}: choose one of "
                              f"{', '.join(WIDTH_ALLOCATIONS)}")
        if self.width_allocation == "global" and self.importance != "bn":
            raise TfedgeError(f"width_allocation 'global' ranks channels by their raw BatchNorm "
                              f"scales across layers (network slimming): other criteria's scores "
                              f"do not compare between layers. Use importance 'bn' with it, or "
                              f"width_allocation 'uniform' with importance {self.importance!r}")
        if self.score not in SCORES:
            raise TfedgeError(f"unknown score {self.score!r}: choose one of {', '.join(SCORES)}")
        unknown = [d for d in self.dimensions if d not in DIMENSIONS]
        if unknown or not self.dimensions:
            raise TfedgeError(f"dimensions must be a non-empty subset of {', '.join(DIMENSIONS)}, "
                              f"got {list(self.dimensions)}")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise TfedgeError(f"round_to must be a whole number >= 1, got {self.round_to!r}")
        if not isinstance(self.finetune_epochs, int) or self.finetune_epochs < 0:
            raise TfedgeError(f"finetune_epochs must be a whole number >= 0, got "
                              f"{self.finetune_epochs!r}")
        for name in ("calibration_size", "batch_size", "score_finetune_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TfedgeError(f"{name} must be a whole number >= 1, got {value!r}")
        b = self.bn_batches
        if isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise TfedgeError(f"bn_batches must be a whole number >= 0 (0: keep the model's "
                              f"BatchNorm statistics), got {b!r}")
        if self.val_size is not None and (not isinstance(self.val_size, int) or self.val_size < 1):
            raise TfedgeError(f"val_size must be a whole number >= 1 or None, got {self.val_size!r}")
        f = self.step_macs_fraction
        if f is not None and (not _is_number(f) or not 0 < f < 1):
            raise TfedgeError(f"step_macs_fraction must be between 0 and 1 or None, got {f!r}: "
                              "e.g. 0.2 makes each step save about a fifth of the MACs")
        m = self.resolution_multiple
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise TfedgeError(f"resolution_multiple must be a whole number >= 0 (0: the "
                              f"network's total stride), got {m!r}")
        t = self.landing_tolerance
        if t is not None and (not _is_number(t) or not 0 <= t < 1):
            raise TfedgeError(f"landing_tolerance must be between 0 and 1 or None, got {t!r}")
        check_target_ms(self.target_ms)

    def target(self, base_macs: int) -> int:
        """The absolute MAC budget for a base of ``base_macs``."""
        return resolve_target(base_macs, self.target_macs if self.target_macs is not None
                              else self.target_macs_ratio)

    def finetune(self) -> FinetuneConfig:
        """The final fine-tune (the baselines get exactly the same one); ``bn_batches=0``
        freezes BatchNorm in it."""
        keep = self.bn_batches == 0
        extra = dict(bn_recalibration_batches=0, freeze_batchnorm=True) if keep else {}
        return FinetuneConfig(epochs=self.finetune_epochs, batch_size=self.batch_size,
                              learning_rate=self.learning_rate, distill_alpha=self.distill_alpha,
                              distill_temperature=self.distill_temperature, seed=self.seed,
                              **extra)

    def score_train_steps(self) -> int:
        """Training steps one scored candidate gets (0 when scored by BatchNorm re-estimation)."""
        return self.score_finetune_steps if self.score == "finetune" else 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["protect"], d["dimensions"] = list(self.protect), list(self.dimensions)
        if d["width_allocation"] == "uniform":
            # Left out at its default: search logs written before the option existed carry
            # this dict in their fingerprint and stay resumable.
            del d["width_allocation"]
        return d


@dataclass
class SearchResult:
    """What a shrink produced: the model and how it got there.

    steps: one record per accepted step (the first is the base, the last the
    fine-tune), each with ``dimension``, ``macs``, ``val_top1``, ``seconds``.
    architecture: the shrunk model's resolution, dropped blocks and group widths.
    """

    model: Any
    steps: list[dict[str, Any]]
    macs: int
    val_top1: Optional[float]
    architecture: dict[str, Any]
    base_macs: int = 0
    target_macs: int = 0
    method: str = "compound"
    int8_ms: Optional[float] = None
    target_ms: Optional[float] = None
    base_int8_ms: Optional[float] = None

    @property
    def reached(self) -> bool:
        if self.target_ms is not None:
            return self.int8_ms is not None and self.int8_ms <= self.target_ms
        return self.macs <= self.target_macs

    def record(self) -> dict[str, Any]:
        """Everything but the model, as JSON-able data (what the CLI puts in the sidecar)."""
        out = {"method": self.method, "macs": self.macs, "val_top1": self.val_top1,
               "base_macs": self.base_macs, "target_macs": self.target_macs,
               "macs_ratio": self.macs / self.base_macs if self.base_macs else None,
               "reached": self.reached, "architecture": self.architecture, "steps": self.steps}
        if self.target_ms is not None:
            out.update(target_ms=self.target_ms, int8_ms=self.int8_ms,
                       base_int8_ms=self.base_int8_ms)
        return out


# --------------------------------------------------------------------------- model helpers


def _shrink_api():
    """B1's surgery functions (tfedge.shrink), imported when first needed (no import cycle)."""
    import importlib

    return importlib.import_module("tfedge.shrink")


def _macs(model) -> int:
    from .._macs import count_macs

    return int(count_macs(model).macs)


def _resolution(model) -> int:
    from .._train import model_resolution

    return model_resolution(model)


def architecture_of(model, dropped_blocks: Sequence[str] = ()) -> dict[str, Any]:
    """The shrunk architecture as data: resolution, MACs, dropped blocks, channel-group widths."""
    from .._macs import count_macs

    report = count_macs(model)
    arch: dict[str, Any] = {"resolution": _resolution(model), "macs": int(report.macs),
                            "params": int(report.params), "dropped_blocks": list(dropped_blocks)}
    try:
        groups = _shrink_api().find_channel_groups(model)
        arch["widths"] = {g.name: int(g.size) for g in groups if g.prunable}
    except Exception as exc:  # noqa: BLE001 - the record is informative, never fatal
        arch["widths_error"] = f"{exc.__class__.__name__}: {exc}"
    return arch


def fixed_scores(scores: Mapping[str, np.ndarray]) -> Callable[..., dict[str, np.ndarray]]:
    """An importance plug-in returning scores computed once (on the model being shrunk)."""

    def importance(model, groups, calibration=None, *args, **kwargs):
        return {g.name: np.asarray(scores[g.name]) for g in groups if g.name in scores}

    return importance


def width_within(model, target: int, scores: Mapping[str, np.ndarray], *, round_to: int,
                 protect: Sequence[str] = (), mode: str = "coupled", lo: float = MIN_KEEP_RATIO,
                 hi: float = 1.0):
    """The widest model within ``target`` MACs: the largest common keep ratio in ``[lo, hi]``
    (bisection), then the budget left filled group by group (:func:`fill_counts`).

    scores: per-group channel scores (which channels stay). Returns ``(model, macs,
    detail)``, or None when even ``lo`` exceeds the target. The MACs of the counts tried
    are computed from the channel counts (:func:`width_macs_function`); only the model
    returned is built (and its MACs counted, which must agree, else every try is built).
    """
    api = _shrink_api()
    importance = fixed_scores(scores)
    groups = [g for g in api.find_channel_groups(model, protect=protect, mode=mode)
              if g.prunable]
    sizes = {g.name: int(g.size) for g in groups}
    built: dict[Any, tuple[Any, int]] = {}

    def build(keep) -> tuple[Any, int]:
        key = keep if isinstance(keep, float) else tuple(sorted(keep.items()))
        if key not in built:
            shrunk = api.shrink_width(model, keep, importance=importance, round_to=round_to,
                                      protect=protect, mode=mode)
            built[key] = (shrunk, _macs(shrunk))
        return built[key]

    def ratios(c: Mapping[str, int]) -> dict[str, float]:
        return {n: min(1.0, c[n] / sizes[n]) for n in c}

    def search(cost: Callable[[Any], int]):
        if cost(float(lo)) > target:
            return None
        ratio = bisect_largest(lambda r: cost(float(r)), target, float(lo), float(hi))
        counts = {n: api.round_keep(size, ratio, round_to) for n, size in sizes.items()}
        filled = fill_counts(sizes, counts, round_to, lambda c: cost(ratios(c)) <= target)
        grown = sum(filled[n] != counts[n] for n in counts)
        return ratio, grown, (ratios(filled) if grown else float(ratio))

    found = _search_by_arithmetic(model, groups, sizes, round_to, search, build)
    if found is None:
        return None
    ratio, grown, keep = found
    shrunk, macs = build(keep)
    return shrunk, macs, {"keep_ratio": round(float(ratio), 6), "groups_grown": grown}


class Slimming:
    """Network slimming's channel allocation (Liu et al. 2017) on one model: every prunable
    group's channels ranked together by their raw BatchNorm |gamma|, one threshold for all,
    so groups keep different fractions.

    Used by the ``bn`` baseline (one shot to the target) and by compound shrinking's width
    steps with ``width_allocation="global"``. ``groups``: the model's prunable channel groups
    when the caller has them (else found here). Raises :class:`ShrinkError` when no prunable
    group has BatchNorm.
    """

    def __init__(self, model, *, round_to: int, protect: Sequence[str] = (),
                 mode: str = "coupled", groups=None):
        api = _shrink_api()
        self.model, self.round_to, self.protect, self.mode = model, round_to, protect, mode
        if groups is None:
            groups = [g for g in api.find_channel_groups(model, protect=protect, mode=mode)
                      if g.prunable]
        self.scores = raw_batchnorm_scales(model, groups)
        if not self.scores:
            raise api.ShrinkError(
                f"model {model.name!r} has no BatchNorm in its prunable channel groups: ranking "
                "channels by BatchNorm scale across layers (network slimming) needs them")
        self.groups = [g for g in groups if g.name in self.scores]
        self.sizes = {g.name: int(g.size) for g in self.groups}
        self.pooled = np.sort(np.concatenate(list(self.scores.values())))
        self.ranks = global_ranks(self.scores)
        self._built: dict[Any, tuple[Any, int]] = {}

    def ratios_at(self, keep: float) -> dict[str, float]:
        """Keep ratio per group when ``keep`` of all ranked channels stay (the threshold's knob)."""
        if keep >= 1.0:
            return {name: 1.0 for name in self.scores}
        cut = int(np.floor((1.0 - keep) * len(self.pooled)))
        return {name: max(MIN_KEEP_RATIO, float(np.mean(r > cut))) for name, r in
                self.ranks.items()}

    def threshold(self, keep: float) -> float:
        """The |gamma| at which ``keep`` of the ranked channels stay."""
        cut = int(np.floor((1.0 - keep) * len(self.pooled)))
        return float(self.pooled[min(cut, len(self.pooled) - 1)])

    def build(self, ratios: Mapping[str, float]) -> tuple[Any, int]:
        key = tuple(sorted(ratios.items()))
        if key not in self._built:
            shrunk = (self.model if all(r >= 1.0 for r in ratios.values()) else
                      _shrink_api().shrink_width(self.model, dict(ratios),
                                                 importance=fixed_scores(self.scores),
                                                 round_to=self.round_to, protect=self.protect,
                                                 mode=self.mode))
            self._built[key] = (shrunk, _macs(shrunk))
        return self._built[key]

    def at(self, keep: float) -> tuple[Any, int]:
        """The model keeping ``keep`` of the ranked channels, and its MACs."""
        return self.build(self.ratios_at(keep))

    def within(self, target: int, lo: float = 0.0, hi: float = 1.0):
        """The most channels within ``target`` MACs: the largest kept fraction in ``[lo, hi]``
        (bisection), then the budget the threshold's jumps left filled notch by notch
        (:func:`fill_counts`, as for a common ratio). ``(model, macs, detail)``, or None
        when even ``lo`` exceeds the target."""
        api = _shrink_api()
        sizes = self.sizes

        def ratios(c: Mapping[str, int]) -> dict[str, float]:
            return {n: min(1.0, c[n] / sizes[n]) for n in c}

        def search(cost):
            if cost(self.ratios_at(lo)) > target:
                return None
            keep = bisect_largest(lambda k: cost(self.ratios_at(k)), target, lo, hi)
            counts = {n: api.round_keep(sizes[n], r, self.round_to)
                      for n, r in self.ratios_at(keep).items()}
            filled = fill_counts(sizes, counts, self.round_to,
                                 lambda c: cost(ratios(c)) <= target)
            return keep, sum(filled[n] != counts[n] for n in counts), ratios(filled)

        found = _search_by_arithmetic(self.model, self.groups, sizes, self.round_to, search,
                                      self.build)
        if found is None:
            return None
        keep, grown, final = found
        shrunk, macs = self.build(final)
        return shrunk, macs, {"channels_kept": round(float(keep), 6),
                              "gamma_threshold": self.threshold(keep), "groups_grown": grown}


def raw_batchnorm_scales(model, groups) -> dict[str, np.ndarray]:
    """|gamma| per channel of each group with BatchNorm, averaged over its BatchNorm layers.

    Unlike the ``bn`` importance plug-in (normalised per layer, for ranking within a group),
    these are the raw scales: network slimming compares them across the whole network.
    Groups without BatchNorm are left out (never pruned by it).
    """
    out = {}
    for g in groups:
        rows = []
        for m in g.members:
            layer = model.get_layer(m.layer)
            if m.handle == "channel" and type(layer).__name__ == "BatchNormalization" \
                    and getattr(layer, "scale", True):
                rows.append(np.abs(np.asarray(layer.gamma.numpy(), np.float64))[
                    m.offset:m.offset + g.size])
        if rows:
            out[g.name] = np.mean(rows, axis=0)
    return out


def global_ranks(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each channel's rank (0: the first to go) in one ordering of every group's channels: by
    score, equal scores by their position in their group, last first.

    Equal |gamma| are common (an untrained model's are all 1): a threshold on the value
    alone removed every tied channel at once (EfficientNetB0 asked for 50% of its MACs got
    3%). Ranked this way, ties shrink every group by the same fraction, like a width
    multiplier, and distinct scores keep network slimming's order.
    """
    names = list(scores)
    values = np.concatenate([np.asarray(scores[n], np.float64) for n in names])
    position = np.concatenate([-(np.arange(len(scores[n])) + 0.5) / len(scores[n]) for n in names])
    order = np.lexsort((position, values))  # the last key is the primary one
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    bounds = np.cumsum([len(scores[n]) for n in names])[:-1]
    return dict(zip(names, np.split(rank, bounds)))


def _search_by_arithmetic(model, groups, sizes: Mapping[str, int], round_to: int,
                          search: Callable[[Callable[[Any], int]], Any],
                          build: Callable[[Any], tuple[Any, int]]):
    """Run ``search(cost)`` with ``cost(keep)`` (a common keep ratio, or ratios by group name)
    computed from channel counts, check the keep it chose by building that one model, and
    search again building every try when the two disagree (or no arithmetic applies)."""
    api = _shrink_api()
    from ._width_macs import width_macs_function

    estimate = width_macs_function(model, groups)

    def counted(keep) -> int:
        if isinstance(keep, float):
            return estimate({n: api.round_keep(size, keep, round_to) for n, size in sizes.items()})
        return estimate({n: api.round_keep(sizes[n], r, round_to) for n, r in keep.items()})

    def built(keep) -> int:
        return build(keep)[1]

    if estimate is not None:
        found = search(counted)
        if found is not None and built(found[-1]) == counted(found[-1]):
            return found
        log.debug("channel-count MACs disagree with the built model for %s: building every "
                  "try", model.name)
    return search(built)


# --------------------------------------------------------------------------- candidate steps


@dataclass
class _Candidate:
    dimension: str
    model: Any
    macs: int
    detail: dict[str, Any]
    val_top1: float = float("nan")
    seconds: float = 0.0
    train_steps: int = 0
    int8_ms: Optional[float] = None

    def summary(self) -> dict[str, Any]:
        out = {"dimension": self.dimension, "macs": self.macs, "val_top1": self.val_top1,
               "seconds": round(self.seconds, 3), "train_steps": self.train_steps, **self.detail}
        if self.int8_ms is not None:
            out["int8_ms"] = self.int8_ms
        return out


class _Stepper:
    """Proposes one step per dimension from the current model.

    ``target`` is the MAC budget the steps must not go under unnecessarily; with a
    latency target the search moves it each round to the MACs its target is
    estimated to correspond to.
    """

    def __init__(self, config: SearchConfig, train, target_macs: int, stride: int = 1):
        self.config = config
        self.train = train
        self.target = target_macs
        self.api = _shrink_api()
        self.multiple = config.resolution_multiple or max(1, int(stride))

    def calibration(self, model):
        return calibration_arrays(self.train, self.config.calibration_size, _resolution(model),
                                  self.config.batch_size)

    def goal(self, macs: int) -> int:
        """The MACs one sized step aims at: ``1 - step_macs_fraction`` of the current, never
        under the target."""
        return max(self.target, int(math.floor((1.0 - self.config.step_macs_fraction) * macs)))

    def propose(self, dimension: str, model, macs: int, calibration) -> Optional[_Candidate]:
        return getattr(self, f"_step_{dimension}")(model, macs, calibration)

    def _step_depth(self, model, macs: int, calibration) -> Optional[_Candidate]:
        blocks = self.api.find_blocks(model)
        if not blocks:
            return None
        scores = self.api.block_importance(model, blocks, calibration)
        order = sorted(blocks, key=lambda b: (scores[b.name], b.name))
        names = [b.name for b in order[:self.config.depth_step]]
        shrunk = self.api.drop_blocks(model, names)
        return _Candidate("depth", shrunk, _macs(shrunk),
                          {"blocks": names, "block_scores": {n: float(scores[n]) for n in names}})

    def _slimming(self, model, groups=None) -> Slimming:
        c = self.config
        return Slimming(model, round_to=c.round_to, protect=c.protect, mode=c.mode,
                        groups=groups)

    def _width_at(self, model, ratio: float, calibration):
        c = self.config
        if c.width_allocation == "global":
            return self._slimming(model).at(ratio)[0]
        return self.api.shrink_width(model, ratio, importance=c.importance,
                                     calibration=calibration, round_to=c.round_to,
                                     protect=c.protect, mode=c.mode)

    def _landing(self, model, macs: int, calibration, lo: float, hi: float,
                 budget: Optional[int] = None) -> Optional[_Candidate]:
        """The widest width step in keep ratios ``[lo, hi]`` within ``budget`` MACs (default:
        the target; channel scores computed once on ``model``), or None."""
        c = self.config
        budget = self.target if budget is None else budget
        groups = [g for g in self.api.find_channel_groups(model, protect=c.protect, mode=c.mode)
                  if g.prunable]
        if not groups:
            return None
        allocation = c.width_allocation

        def uniform():
            scores = self.api.make_importance(c.importance)(model, groups, calibration)
            return width_within(model, budget, scores, round_to=c.round_to, protect=c.protect,
                                mode=c.mode, lo=lo, hi=hi)

        if allocation == "global":
            found = self._slimming(model, groups).within(budget, lo=lo, hi=hi)
            if found is not None and found[1] < coarse_floor(budget, c.landing_tolerance):
                # One threshold over all groups moves in notches of round_to channels of
                # whichever group holds the next-lowest scale: on a small model one notch of a
                # high-resolution group can cost a quarter of the MACs (a 1.7% cut landed at
                # 74% of its budget). The same criterion shared evenly lands closer: take the
                # wider of the two.
                even = uniform()
                if even is not None and even[1] > found[1]:
                    found, allocation = even, "uniform"
        else:
            found = uniform()
        if found is None or found[1] >= macs:
            return None
        shrunk, shrunk_macs, detail = found
        return _Candidate("width", shrunk, shrunk_macs,
                          {**detail, "importance": c.importance,
                           "allocation": allocation, "landing": budget <= self.target})

    def _step_width(self, model, macs: int, calibration) -> Optional[_Candidate]:
        if self.config.step_macs_fraction is not None:
            # Sized by MACs: the widest model within the step's goal.
            return self._landing(model, macs, calibration, MIN_KEEP_RATIO, 1.0,
                                 budget=self.goal(macs))
        ratio = 1.0 - self.config.width_step
        shrunk = self._width_at(model, ratio, calibration)
        shrunk_macs = _macs(shrunk)
        if shrunk_macs >= macs:
            return None
        if shrunk_macs < self.target:
            # The last step: only as far as the target.
            landing = self._landing(model, macs, calibration, ratio, 1.0)
            if landing is not None:
                return landing
        return _Candidate("width", shrunk, shrunk_macs,
                          {"keep_ratio": round(float(ratio), 6), "importance": self.config.importance,
                           "allocation": self.config.width_allocation})

    def land_width(self, model, macs: int, calibration) -> Optional[_Candidate]:
        """A width step of any size that lands just within the target (None if none can).

        Offered when another dimension's step would end the search below the
        target: finishing with one larger width step may keep more accuracy
        than overshooting (the choice between them is measured).
        """
        hi = 1.0 if self.config.step_macs_fraction is not None else 1.0 - self.config.width_step
        return self._landing(model, macs, calibration, MIN_KEEP_RATIO, hi)

    def _step_resolution(self, model, macs: int, calibration) -> Optional[_Candidate]:
        c = self.config
        current = _resolution(model)
        sides = allowed_sides(current, c.min_resolution, self.multiple)
        if not sides:
            return None
        cache: dict[int, tuple[Any, int]] = {}

        def cost(index: int) -> int:
            side = sides[index]
            if side not in cache:
                m = self.api.set_resolution(model, side)
                cache[side] = (m, _macs(m))
            return cache[side][1]

        if c.step_macs_fraction is not None:
            goal = self.goal(macs)
        else:
            new = next_resolution(current, c.resolution_step, c.min_resolution)
            below = [i for i, side in enumerate(sides) if new is not None and side <= new]
            if not below:
                return None
            goal = max(self.target, cost(below[-1]))
        # The largest allowed side within the goal; when even the smallest is over it, the
        # smallest (the biggest step this dimension has).
        index = 0 if cost(0) > goal else bisect_largest_int(cost, goal, 0, len(sides) - 1)
        side = sides[index]
        shrunk, shrunk_macs = cache[side]
        return _Candidate("resolution", shrunk, shrunk_macs, {"resolution": side})


# --------------------------------------------------------------------------- the search


class _SearchLog:
    """``<name>.search.json`` and ``<name>.search.keras`` in ``output_dir``: written after each
    step (model first, then the JSON), read back to resume."""

    def __init__(self, output_dir: Optional[Path], name: str):
        self.dir = output_dir
        self.json = output_dir / f"{name}.search.json" if output_dir else None
        self.model = output_dir / f"{name}.search.keras" if output_dir else None

    def load(self, fingerprint: dict[str, Any]):
        """(state dict, current model) of an earlier run of this search, or None."""
        if self.json is None or not self.json.exists():
            return None
        try:
            state = json.loads(self.json.read_text())
        except (OSError, ValueError) as exc:
            raise TfedgeError(f"{self.json} is not readable search log JSON ({exc}): delete it "
                              "to start the search over") from None
        if state.get("format") != SEARCH_FORMAT:
            raise TfedgeError(f"{self.json} is not a tfedge search log: delete it or choose "
                              "another output")
        if state.get("fingerprint") != fingerprint:
            old, new = state.get("fingerprint") or {}, fingerprint
            differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise TfedgeError(f"{self.json} belongs to another search (it differs in "
                              f"{', '.join(differ)}): delete it (and {self.model.name}) to start "
                              "over, or rerun with the original settings")
        if not self.model.exists():
            return None if len(state.get("steps", [])) <= 1 else self._missing()
        from .._train import load_classifier, read_sidecar

        model = load_classifier(self.model)
        side = read_sidecar(self.model)
        steps = state["steps"]
        saved_step = side.get("search_step")
        if saved_step == len(steps) and side.get("search_record"):
            # Killed between writing the model and the log: the model's own record completes it.
            record = side["search_record"]
            steps.append(record)
            if record.get("dimension") == "depth":
                state["dropped_blocks"] = state.get("dropped_blocks", []) + list(
                    (record.get("detail") or {}).get("blocks", []))
            state["finished"] = record.get("dimension") == "finetune"
        elif saved_step != len(steps) - 1:
            raise TfedgeError(f"{self.model} (step {saved_step}) does not match {self.json} "
                              f"({len(steps) - 1} steps): delete both to start the search over")
        return state, model

    def _missing(self):
        raise TfedgeError(f"{self.json} logs steps but {self.model} is missing: delete the log "
                          "to start the search over")

    def save(self, state: dict[str, Any], model=None, record: Optional[dict] = None) -> None:
        if self.json is None:
            return
        if model is not None:
            from .._train import save_classifier

            save_classifier(model, self.model, {"search_step": len(state["steps"]) - 1,
                                                "search_record": record,
                                                "class_names": state.get("class_names")})
        atomic_write_json(self.json, state)


def _evaluate(model, val) -> float:
    from .._train import evaluate_classifier

    return float(evaluate_classifier(model, val).top1)


def _score_candidate(candidate: _Candidate, train, val, config: SearchConfig, teacher,
                     meter=None) -> None:
    """Fill in the candidate's validation top-1 after BN re-estimation or a short fine-tune
    (and its int8 milliseconds when a latency meter is given)."""
    from .._train import recalibrate_batchnorm

    start = time.perf_counter()
    if config.score == "bn":
        recalibrate_batchnorm(candidate.model, train, batches=config.bn_batches,
                              batch_size=config.batch_size)
    else:
        short = dataclasses.replace(config.finetune(), epochs=1,
                                    steps_per_epoch=config.score_finetune_steps,
                                    bn_recalibration_batches=config.bn_batches)
        candidate.model = finetune_with_distillation(candidate.model, teacher, train, config=short)
        candidate.train_steps = config.score_train_steps()
    candidate.val_top1 = _evaluate(candidate.model, val)
    if meter is not None:
        candidate.int8_ms = meter.measure(candidate.model)
    candidate.seconds = time.perf_counter() - start


def select_on_validation(start_top1: float, finetuned_top1: float) -> str:
    """``'start'`` when the model a fine-tune started from scored strictly higher on the
    validation images than its result, else ``'finetuned'`` (a tie keeps the trained one)."""
    return "start" if start_top1 > finetuned_top1 else "finetuned"


def finetune_and_select(start, start_top1: float, teacher, train, val_eval,
                        config: SearchConfig, ft: FinetuneConfig, backup_dir=None):
    """The final fine-tune of compound shrinking and of every baseline.

    Returns ``(model, val_top1, kept, finetuned_val_top1)``: ``kept`` is ``'finetuned'``
    or, with ``config.keep_better_start`` and a start that scored higher on ``val_eval``
    (``start_top1``), ``'start'``, and then ``model`` is ``start`` itself.
    """
    tuned = finetune_with_distillation(start, teacher, train, config=ft, backup_dir=backup_dir)
    top1 = _evaluate(tuned, val_eval)
    if config.keep_better_start and select_on_validation(start_top1, top1) == "start":
        return start, start_top1, "start", top1
    return tuned, top1, "finetuned", top1


def _fingerprint(model, base_macs: int, train, val, config: SearchConfig) -> dict[str, Any]:
    fp = {"base_model": model.name, "base_macs": base_macs, "base_resolution": _resolution(model),
          "base_params": int(model.count_params()), "train_size": len(train),
          "val_size": len(val), "class_names": list(train.class_names),
          "config": config.to_dict()}
    return json.loads(json.dumps(fp, default=str))


def _final_finetune(config: SearchConfig, train, steps: Sequence[Mapping[str, Any]]
                    ) -> FinetuneConfig:
    """The final fine-tune, less the training the accepted steps already had
    (``charge_search_steps``), so compound shrinking trains as long as a baseline."""
    ft = config.finetune()
    if not config.charge_search_steps:
        return ft
    used = sum(int(s.get("train_steps") or 0) for s in steps)
    epochs, per_epoch = remaining_finetune(ft.epochs, max(1, len(train) // ft.batch_size), used)
    return dataclasses.replace(ft, epochs=epochs, steps_per_epoch=per_epoch)


def compound_search(model, train, val, config: SearchConfig = SearchConfig(), *,
                    output_dir: Union[str, os.PathLike, None] = None, name: str = "shrink",
                    teacher=None, progress: bool = True) -> SearchResult:
    """Shrink ``model`` to ``config``'s MAC (or int8 latency) target along depth, width and
    resolution; fine-tune.

    model: the trained base (Keras functional classifier; not modified).
    train: training split (BatchNorm re-estimation, importance, fine-tune).
    val: validation split: every decision is made on it (never pass the test split).
    output_dir: where the step log and the current model go (resumable); None: nowhere.
    teacher: the model to distil from in the fine-tune (default: ``model``).
    progress: log each step at INFO (else DEBUG).
    Returns a :class:`SearchResult`; when no dimension can shrink further before
    the target, it warns and returns the smallest model found (``reached`` False).
    With ``config.target_ms`` the target is int8 milliseconds measured with the
    runtime's interpreter (:class:`tfedge.shrink._latency.LatencyMeter`), relative
    to the base timed in the same process.
    """
    say = log.info if progress else log.debug
    base_macs = _macs(model)
    by_latency = config.target_ms is not None
    target = config.target(base_macs) if not by_latency else 1
    teacher = model if teacher is None else teacher
    val_eval = head(val, config.val_size)
    if len(val_eval) == 0:
        raise TfedgeError("the validation split is empty: the search decides on validation "
                          "accuracy, so give it validation images")
    meter = None
    if by_latency:
        from ._latency import LatencyMeter

        meter = LatencyMeter(model, train, calibration_size=min(32, config.calibration_size))
    slog = _SearchLog(Path(output_dir) if output_dir is not None else None, name)
    fingerprint = _fingerprint(model, base_macs, train, val, config)
    loaded = slog.load(fingerprint)
    if loaded is not None:
        state, current = loaded
        say("resuming the search from %s: %d step(s) done", slog.json, len(state["steps"]) - 1)
    else:
        start = time.perf_counter()
        current = model
        base_top1 = _evaluate(model, val_eval)
        state = {"format": SEARCH_FORMAT, "version": SEARCH_VERSION, "fingerprint": fingerprint,
                 "base_macs": base_macs, "target_macs": None if by_latency else target,
                 "target_ms": config.target_ms, "class_names":
                 list(train.class_names), "finished": False, "dropped_blocks": [],
                 "steps": [{"step": 0, "dimension": "base", "macs": base_macs,
                            "macs_ratio": 1.0, "val_top1": base_top1,
                            "resolution": _resolution(model),
                            "seconds": round(time.perf_counter() - start, 3)}]}
        if by_latency:
            state["steps"][0]["int8_ms"] = meter.reference_ms
        slog.save(state)
    steps = state["steps"]
    # With a latency target, the cost the search compares is milliseconds (measured in
    # this run: a resumed search re-measures where it stands); else MACs.
    base_cost = meter.reference_ms if by_latency else base_macs
    goal = config.target_ms if by_latency else target
    if by_latency:
        say("compound shrinking %s: %.3f int8 ms (%.2f MMACs) -> target %.3f ms, val top-1 %.4f",
            model.name, base_cost, base_macs / 1e6, goal, steps[0]["val_top1"])
    else:
        say("compound shrinking %s: %.2f MMACs -> target %.2f MMACs (%.1f%%), val top-1 %.4f",
            model.name, base_macs / 1e6, target / 1e6, 100.0 * target / base_macs,
            steps[0]["val_top1"])

    def cost_of(record: Mapping[str, Any]) -> float:
        return record["int8_ms"] if by_latency else record["macs"]

    current_cost = cost_of(steps[-1]) if len(steps) > 1 or not by_latency else base_cost
    if by_latency and len(steps) > 1 and not state["finished"]:
        current_cost = meter.measure(current)
    if not state["finished"] and current_cost > goal:
        stepper = _Stepper(config, train, target, stride=total_stride(model))
        current_top1 = steps[-1]["val_top1"]
        macs = steps[-1]["macs"]
        exhausted: set[str] = set()
        while current_cost > goal:
            round_start = time.perf_counter()
            if by_latency:
                # The MACs the latency target stands for from here (milliseconds roughly
                # proportional to MACs over one step); re-estimated every round.
                stepper.target = max(1, int(math.floor(macs * goal / current_cost)))
            calibration = stepper.calibration(current)
            candidates: list[_Candidate] = []
            for dimension in config.dimensions:
                if dimension in exhausted:
                    continue
                candidate = stepper.propose(dimension, current, macs, calibration)
                if candidate is None or candidate.macs >= macs:
                    exhausted.add(dimension)
                    continue
                _score_candidate(candidate, train, val_eval, config, teacher, meter)
                candidates.append(candidate)

            def cost(c: _Candidate) -> float:
                return c.int8_ms if by_latency else c.macs

            width = next((c for c in candidates if c.dimension == "width"), None)
            if ("width" in config.dimensions and "width" not in exhausted
                    and any(cost(c) <= goal for c in candidates)
                    and (width is None or cost(width) > goal)):
                landing = stepper.land_width(current, macs, calibration)
                if landing is not None:
                    _score_candidate(landing, train, val_eval, config, teacher, meter)
                    candidates.append(landing)
            summaries = [c.summary() for c in candidates]
            costs = [{"macs": cost(c), "val_top1": c.val_top1} for c in candidates]
            chosen = choose_step(costs, top1=current_top1, macs=current_cost, target_macs=goal,
                                 base_macs=base_cost, landing_tolerance=config.landing_tolerance)
            if chosen is None:
                unit = "int8 ms" if by_latency else "MMACs"
                scale = 1.0 if by_latency else 1e6
                log.warning("no dimension can shrink %s further: stopping at %.3f %s, above "
                            "the %.3f %s target (lower min_resolution or round_to, or allow "
                            "more dimensions)", model.name, current_cost / scale, unit,
                            goal / scale, unit)
                break
            best = candidates[chosen]
            for summary, c in zip(summaries, costs):
                summary["score"] = step_score(current_top1, c["val_top1"], current_cost,
                                              c["macs"], base_cost)
                if not math.isfinite(summary["score"]):
                    summary["score"] = None
            if best.dimension == "depth":
                state["dropped_blocks"] = state["dropped_blocks"] + best.detail["blocks"]
            record = {"step": len(steps), "dimension": best.dimension, "macs": best.macs,
                      "macs_ratio": best.macs / base_macs, "val_top1": best.val_top1,
                      "resolution": _resolution(best.model), "train_steps": best.train_steps,
                      "seconds": round(time.perf_counter() - round_start, 3),
                      "detail": best.detail, "candidates": summaries}
            if by_latency:
                record["int8_ms"] = best.int8_ms
            steps.append(record)
            slog.save(state, best.model, record)
            say("step %d: %s -> %.2f MMACs (%.1f%% of base)%s, val top-1 %.4f  [%s]  %.0fs",
                record["step"], best.dimension, best.macs / 1e6, 100.0 * best.macs / base_macs,
                f", {best.int8_ms:.3f} ms" if by_latency else "", best.val_top1,
                ", ".join(f"{s['dimension']} {s['macs'] / 1e6:.2f}M "
                          f"{s['val_top1']:.3f}" for s in summaries),
                record["seconds"])
            current, macs, current_top1 = best.model, best.macs, best.val_top1
            current_cost = cost(best)

    if not state["finished"]:
        start = time.perf_counter()
        ft = _final_finetune(config, train, steps)
        backup = (slog.dir / f"{name}.finetune.backup") if slog.dir and ft.epochs else None
        current, top1, kept, finetuned_top1 = finetune_and_select(
            current, steps[-1]["val_top1"], teacher, train, val_eval, config, ft, backup)
        record = {"step": len(steps), "dimension": "finetune", "macs": _macs(current),
                  "macs_ratio": _macs(current) / base_macs, "val_top1": top1,
                  "resolution": _resolution(current), "epochs": ft.epochs,
                  "steps_per_epoch": ft.steps_per_epoch, "kept": kept,
                  "finetuned_val_top1": finetuned_top1,
                  "seconds": round(time.perf_counter() - start, 3)}
        if by_latency:
            record["int8_ms"] = current_cost
        steps.append(record)
        state["finished"] = True
        slog.save(state, current, record)
        say("fine-tuned %d epoch(s)%s with distillation: val top-1 %.4f at %.2f MMACs%s",
            ft.epochs, f" of {ft.steps_per_epoch} steps" if ft.steps_per_epoch else "",
            finetuned_top1, record["macs"] / 1e6,
            "" if kept == "finetuned" else f"; kept the model before it ({top1:.4f})")
    final_macs = _macs(current)
    return SearchResult(model=current, steps=steps, macs=final_macs, val_top1=steps[-1]["val_top1"],
                        architecture=architecture_of(current, state.get("dropped_blocks", [])),
                        base_macs=base_macs, target_macs=target if not by_latency else final_macs,
                        method="compound",
                        int8_ms=steps[-1].get("int8_ms") if by_latency else None,
                        target_ms=config.target_ms,
                        base_int8_ms=steps[0].get("int8_ms") if by_latency else None)
