"""The MACs a width cut would leave, computed from channel counts without building the model.

Finding the widest model within a MAC budget tries dozens of channel counts
(a bisection on the keep ratio, then :func:`tfedge.shrink._search.fill_counts`
notch by notch). Building each candidate with ``from_config`` to count its MACs
took 1.5 s on a 5 MMAC MobileNetV2 and nearly all of a width step's time. A
convolution's or Dense layer's MACs are ``MACs * (C_in' / C_in) * (C_out' /
C_out)`` after a cut and a depthwise convolution's ``MACs * C' / C``, and the
channel groups say which counts each layer's input and output follow, so the
count is exact arithmetic on the base model's per-layer MACs.

:func:`width_macs_function` returns None for what it does not model (grouped
or separable convolutions, a layer called twice, nested models); callers then
build the model as before. Callers also check the one model they keep against
:func:`tfedge._macs.count_macs`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Mapping, Optional, Sequence

__all__ = ["width_macs_function"]

_DENSE_LIKE = frozenset({"Conv1D", "Conv2D", "Conv3D", "Dense"})
_DEPTHWISE = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})


def width_macs_function(model: Any, groups: Sequence[Any]
                        ) -> Optional[Callable[[Mapping[str, int]], int]]:
    """``macs(counts)``: the MACs of ``model`` with each group's channels cut to
    ``counts[group name]`` (groups left out keep all), or None when a layer the groups
    touch is not one this arithmetic models."""
    from .._macs import count_macs

    report = count_macs(model)
    rows: dict[str, int] = {}
    for row in report.per_layer:
        if row.macs:
            if row.name in rows:  # a layer called twice: its calls may differ
                return None
            rows[row.name] = int(row.macs)
    touches: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for g in groups:
        for m in g.members:
            if m.handle in ("in", "out", "channel"):
                touches[m.layer].append((g.name, m.handle, int(m.positions), int(g.size)))
    plan = []
    for name, items in touches.items():
        if name not in rows:
            continue  # no MACs of its own (BatchNorm) or not counted: nothing changes
        try:
            layer = model.get_layer(name)
        except ValueError:
            return None  # inside a nested model
        cls = type(layer).__name__
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            return None
        shape = tuple(int(d) for d in kernel.shape)
        if cls in _DENSE_LIKE and getattr(layer, "groups", 1) == 1:
            plan.append((rows[name], "full", shape[-2], shape[-1], items))
        elif cls in _DEPTHWISE and getattr(layer, "depth_multiplier", 1) == 1:
            plan.append((rows[name], "depthwise", shape[-2], 1, items))
        else:
            return None
    for macs, kind, c_in, c_out, _ in plan:
        if macs % (c_in * c_out):  # not the product form this arithmetic assumes
            return None
    total = int(report.macs)

    def macs(counts: Mapping[str, int]) -> int:
        result = total
        for layer_macs, kind, c_in, c_out, items in plan:
            removed = {"in": 0, "out": 0, "channel": 0}
            for group, handle, positions, size in items:
                cut = size - int(counts.get(group, size))
                removed[handle] += cut * (positions if handle == "in" else 1)
            if kind == "full":
                new = layer_macs // (c_in * c_out) * (c_in - removed["in"]) * (c_out - removed["out"])
            else:
                new = layer_macs // c_in * (c_in - removed["channel"])
            result += new - layer_macs
        return result

    return macs
