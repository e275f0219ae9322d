"""The compression baselines compound shrinking is measured against, in the same harness.

Each baseline shrinks the base model to a MAC budget in one shot (bisection on
its one knob, MACs counted with :func:`tfedge.count_macs`), then gets exactly
the fine-tune compound shrinking gets (:meth:`SearchConfig.finetune`: the same
epochs, distillation from the base, BatchNorm re-estimation), so a difference
in accuracy is the method's, not the budget's.

* ``uniform``: a width multiplier: every prunable channel group keeps the same
  fraction of its channels, the first ones (no criterion: what building the
  model at a smaller width and keeping the inherited weights amounts to).
* ``resolution``: the same network at the largest input side within budget.
* ``l1``: Li et al. 2017, "Pruning Filters for Efficient ConvNets": per-layer
  L1 norm of the filters, the same ratio everywhere.
* ``bn``: network slimming (Liu et al. 2017): one global threshold on the
  BatchNorm scales |gamma| over all groups, so groups keep different fractions.
* ``hrank``: Lin et al. 2020: average rank of each channel's feature maps on a
  calibration batch, the same ratio everywhere.

:func:`shrink_to_target` runs any of them, or ``"compound"``, end to end.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .._errors import TfedgeError
from ._search import (MIN_KEEP_RATIO, SearchConfig, SearchResult, Slimming, _evaluate,
                      _macs, _resolution, _shrink_api, architecture_of, bisect_largest_int,
                      calibration_arrays, compound_search, finetune_and_select, fixed_scores,
                      head, resolve_target, width_within)

__all__ = ["BASELINES", "METHODS", "shrink_to_target", "run_shrink", "MIN_KEEP_RATIO"]

log = logging.getLogger(__name__)

#: The smallest input side the resolution baseline may choose.
MIN_BASELINE_RESOLUTION = 8


def _cannot_reach(method: str, smallest: int, target: int) -> TfedgeError:
    error = getattr(_shrink_api(), "ShrinkError", TfedgeError)
    return error(f"the {method} baseline cannot reach {target:,d} MACs: its smallest model has "
                 f"{smallest:,d}: give a larger target, or a smaller round_to")


def _groups(model, protect: Sequence[str], mode: str):
    groups = [g for g in _shrink_api().find_channel_groups(model, protect=protect, mode=mode)
              if g.prunable]
    if not groups:
        raise _shrink_api().ShrinkError(
            f"model {model.name!r} has no prunable channel groups (all protected?): unprotect "
            "some layers or use the resolution baseline")
    return groups


def _width_to_target(model, target: int, scores: Mapping[str, np.ndarray], method: str, *,
                     round_to: int, protect: Sequence[str], mode: str):
    """The same keep ratio in every group, the largest within ``target`` MACs, then the
    budget the rounding left filled group by group (so every method lands equally close)."""
    found = width_within(model, target, scores, round_to=round_to, protect=protect, mode=mode)
    if found is None:
        smallest = _macs(_shrink_api().shrink_width(
            model, MIN_KEEP_RATIO, importance=fixed_scores(scores), round_to=round_to,
            protect=protect, mode=mode))
        raise _cannot_reach(method, smallest, target)
    shrunk, _, detail = found
    return shrunk, detail


def _uniform(model, target: int, calibration=None, *, round_to: int = 8,
             protect: Sequence[str] = (), mode: str = "coupled"):
    groups = _groups(model, protect, mode)
    # Earlier channels score higher: a width multiplier keeps the first ones.
    scores = {g.name: np.arange(g.size, 0, -1, dtype=np.float64) for g in groups}
    return _width_to_target(model, target, scores, "uniform", round_to=round_to,
                            protect=protect, mode=mode)


def _by_criterion(criterion: str):
    def baseline(model, target: int, calibration=None, *, round_to: int = 8,
                 protect: Sequence[str] = (), mode: str = "coupled"):
        api = _shrink_api()
        groups = _groups(model, protect, mode)
        scores = api.make_importance(criterion)(model, groups, calibration)
        return _width_to_target(model, target, scores, criterion, round_to=round_to,
                                protect=protect, mode=mode)

    baseline.__name__ = f"_{criterion}"
    return baseline


def _bn_global(model, target: int, calibration=None, *, round_to: int = 8,
               protect: Sequence[str] = (), mode: str = "coupled"):
    """Network slimming: channels whose |gamma| is under one global threshold go."""
    slimming = Slimming(model, round_to=round_to, protect=protect, mode=mode,
                        groups=_groups(model, protect, mode))
    found = slimming.within(target)
    if found is None:
        raise _cannot_reach("bn", slimming.at(0.0)[1], target)
    shrunk, _, detail = found
    return shrunk, detail


def _resolution_only(model, target: int, calibration=None, *, round_to: int = 8,
                     protect: Sequence[str] = (), mode: str = "coupled"):
    api = _shrink_api()
    current = _resolution(model)
    cache: dict[int, tuple[Any, int]] = {}

    def cost(size: int) -> int:
        if size not in cache:
            shrunk = model if size == current else api.set_resolution(model, size)
            cache[size] = (shrunk, _macs(shrunk))
        return cache[size][1]

    smallest = min(MIN_BASELINE_RESOLUTION, current)
    if cost(smallest) > target:
        raise _cannot_reach("resolution", cost(smallest), target)
    size = bisect_largest_int(cost, target, smallest, current)
    return cache[size][0], {"resolution": size}


_IMPLEMENTATIONS = {
    "uniform": _uniform,
    "resolution": _resolution_only,
    "l1": _by_criterion("l1"),
    "bn": _bn_global,
    "hrank": _by_criterion("hrank"),
}


def _public(name: str, impl):
    def baseline(model, target_macs: int, calibration=None, *, round_to: int = 8,
                 protect: Sequence[str] = (), mode: str = "coupled"):
        """Shrink ``model`` to at most ``target_macs`` MACs (before the shared fine-tune)."""
        return impl(model, int(target_macs), calibration, round_to=round_to, protect=protect,
                    mode=mode)[0]

    baseline.__name__ = baseline.__qualname__ = f"{name}_baseline"
    return baseline


#: name -> ``baseline(model, target_macs, calibration, *, round_to, protect, mode) -> model``
BASELINES: dict[str, Callable[..., Any]] = {name: _public(name, impl)
                                            for name, impl in _IMPLEMENTATIONS.items()}
METHODS = ("compound", *BASELINES)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise TfedgeError(f"unknown shrink method {method!r}: choose one of {', '.join(METHODS)}")
    return method


def run_shrink(model, method: str, target_macs: Union[float, int], train, val, *,
               config: Optional[SearchConfig] = None, teacher=None,
               output_dir: Union[str, os.PathLike, None] = None, name: str = "shrink",
               progress: bool = True) -> SearchResult:
    """:func:`shrink_to_target` with the whole record (:class:`SearchResult`)."""
    import dataclasses

    check_method(method)
    config = config or SearchConfig()
    base_macs = _macs(model)
    target = resolve_target(base_macs, target_macs)
    config = dataclasses.replace(config, target_macs=target)
    if method == "compound":
        return compound_search(model, train, val, config, output_dir=output_dir, name=name,
                               teacher=teacher, progress=progress)
    say = log.info if progress else log.debug
    teacher = model if teacher is None else teacher
    val_eval = head(val, config.val_size)
    start = time.perf_counter()
    steps: list[dict[str, Any]] = [{"step": 0, "dimension": "base", "macs": base_macs,
                                    "macs_ratio": 1.0, "val_top1": _evaluate(model, val_eval),
                                    "resolution": _resolution(model),
                                    "seconds": round(time.perf_counter() - start, 3)}]
    start = time.perf_counter()
    calibration = (calibration_arrays(train, config.calibration_size, _resolution(model),
                                      config.batch_size) if method == "hrank" else None)
    shrunk, detail = _IMPLEMENTATIONS[method](model, target, calibration,
                                              round_to=config.round_to, protect=config.protect,
                                              mode=config.mode)
    from .._train import recalibrate_batchnorm

    recalibrate_batchnorm(shrunk, train, batches=config.bn_batches, batch_size=config.batch_size)
    macs = _macs(shrunk)
    steps.append({"step": 1, "dimension": method, "macs": macs, "macs_ratio": macs / base_macs,
                  "val_top1": _evaluate(shrunk, val_eval), "resolution": _resolution(shrunk),
                  "seconds": round(time.perf_counter() - start, 3), "detail": detail})
    say("%s baseline: %.2f MMACs (%.1f%% of base, target %.1f%%), val top-1 %.4f before "
        "fine-tuning", method, macs / 1e6, 100.0 * macs / base_macs, 100.0 * target / base_macs,
        steps[-1]["val_top1"])
    start = time.perf_counter()
    ft = config.finetune()
    backup = (os.path.join(os.fspath(output_dir), f"{name}.finetune.backup")
              if output_dir is not None and ft.epochs else None)
    tuned, top1, kept, finetuned_top1 = finetune_and_select(
        shrunk, steps[-1]["val_top1"], teacher, train, val_eval, config, ft, backup)
    steps.append({"step": 2, "dimension": "finetune", "macs": macs, "macs_ratio": macs / base_macs,
                  "val_top1": top1, "resolution": _resolution(tuned), "epochs": ft.epochs,
                  "kept": kept, "finetuned_val_top1": finetuned_top1,
                  "seconds": round(time.perf_counter() - start, 3)})
    say("%s baseline fine-tuned %d epoch(s): val top-1 %.4f%s", method, ft.epochs,
        finetuned_top1, "" if kept == "finetuned" else f"; kept the model before it ({top1:.4f})")
    return SearchResult(model=tuned, steps=steps, macs=macs, val_top1=top1,
                        architecture=architecture_of(tuned), base_macs=base_macs,
                        target_macs=target, method=method)


def shrink_to_target(model, method: str, target_macs: Union[float, int], train, val, *,
                     config: Optional[SearchConfig] = None, teacher=None,
                     output_dir: Union[str, os.PathLike, None] = None, name: str = "shrink",
                     progress: bool = True):
    """Shrink ``model`` to ``target_macs`` with ``method`` and fine-tune it; return the new model.

    method: ``"compound"`` (:func:`compound_search`) or a :data:`BASELINES` name.
    target_macs: a ratio of the base's MACs below 1, or absolute MACs.
    config: search, rounding and fine-tune settings (the baselines use its
        ``round_to``, ``protect``, ``mode``, ``calibration_size`` and fine-tune).
    Decisions use ``val`` only.
    """
    return run_shrink(model, method, target_macs, train, val, config=config, teacher=teacher,
                      output_dir=output_dir, name=name, progress=progress).model
