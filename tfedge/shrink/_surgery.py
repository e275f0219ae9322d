"""Width surgery: remove channels by editing the model's config and copying sliced weights.

:func:`prune_channels` keeps, for every channel group, the channel indices
it is given; every member follows (see :mod:`._groups`): producers lose
kernel columns and bias entries (``filters``/``units`` shrink in the
config), BatchNorm and depthwise layers lose their per-channel weights,
consumers lose kernel rows (at the group's offset after a Concatenate,
at every position after a Flatten), a Reshape keeping the channel axis gets
its new size. The edited config is rebuilt with ``from_config`` and every
layer receives its (sliced) weights, so removing channels whose weights are
all zero leaves the outputs unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._groups import CHANNELWISE, PRODUCERS, Analysis, Layout, ShrinkError, analyse

__all__ = ["prune_channels", "shrunk_name", "SHRUNK_SUFFIX"]

#: Appended to the name of a model whose width or depth changed: registry names
#: encode an architecture (tfedge.models.spec_of reads them), a shrunk model
#: no longer has it.
SHRUNK_SUFFIX = "_shrunk"


def shrunk_name(name: str) -> str:
    """``name`` marked as shrunk (once)."""
    return name if name.endswith(SHRUNK_SUFFIX) else name + SHRUNK_SUFFIX


def _check_keep(keep: Mapping[str, Sequence[int]], analysis: Analysis) -> dict[int, np.ndarray]:
    groups = {g.name: g for g in analysis.groups()}
    kept: dict[int, np.ndarray] = {}
    for name, indices in keep.items():
        group = groups.get(name)
        if group is None:
            raise ShrinkError(f"no channel group {name!r} in this model: take names from "
                              "find_channel_groups(model)")
        idx = np.asarray(list(indices), dtype=np.int64).reshape(-1)
        if len(idx) == group.size and np.array_equal(idx, np.arange(group.size)):
            continue
        if not group.prunable:
            raise ShrinkError(f"channel group {name!r} cannot be pruned ({group.reason})")
        if len(idx) == 0:
            raise ShrinkError(f"channel group {name!r}: keep at least one channel")
        if np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= group.size:
            raise ShrinkError(f"channel group {name!r}: keep must be sorted, distinct indices in "
                              f"0..{group.size - 1}, got {list(idx)[:8]}...")
        kept[analysis.group_roots[name]] = idx
    return kept


class _Keeper:
    def __init__(self, analysis: Analysis, kept: dict[int, np.ndarray]):
        self.analysis = analysis
        self.kept = kept

    def space(self, space: int, size: int) -> np.ndarray:
        return self.kept.get(self.analysis.root(space), np.arange(size))

    def layout(self, layout: Layout) -> np.ndarray:
        """Indices along the tensor's last axis that survive."""
        total = layout.channels
        parts = []
        for p in range(layout.positions):
            offset = p * total
            for space, size in layout.segments:
                parts.append(offset + self.space(space, size))
                offset += size
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _take(array: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    if array.shape[axis] == len(index):
        return array
    return np.take(array, index, axis=axis)


def _slice_weight(cls: str, weight_name: str, value: np.ndarray, in_keep: np.ndarray,
                  out_keep: np.ndarray) -> np.ndarray:
    if cls not in PRODUCERS and cls not in CHANNELWISE:
        return value  # e.g. Normalization: its channels are never prunable
    if cls in ("BatchNormalization",):
        return _take(value, 0, out_keep)
    if cls.startswith("Depthwise"):  # kernel (k..., C, 1), bias (C,)
        return _take(value, -2, out_keep) if value.ndim > 1 else _take(value, 0, out_keep)
    if weight_name == "bias":
        return _take(value, 0, out_keep)
    if weight_name == "depthwise_kernel":  # separable: (k..., in, 1)
        return _take(value, -2, in_keep)
    if cls.endswith("Transpose"):  # kernel (k..., out, in)
        return _take(_take(value, -1, in_keep), -2, out_keep)
    # Conv kernel (k..., in, out), Dense kernel (in, out), separable pointwise (1.., in, out)
    return _take(_take(value, -2, in_keep), -1, out_keep)


def prune_channels(model: Any, keep: Mapping[str, Sequence[int]]) -> Any:
    """A new model keeping, for each group name in ``keep``, only those channel indices.

    ``keep[group.name]``: sorted channel indices to keep (names from
    :func:`find_channel_groups`); groups not named keep every channel. Needs
    a flat functional model; ``model`` itself is not changed. The result is
    named ``<name>_shrunk`` (a registry name no longer describes it).
    """
    analysis = analyse(model)
    kept = _check_keep(keep, analysis)
    graph = analysis.graph
    if not kept:
        return _clone(model, graph)
    keeper = _Keeper(analysis, kept)
    config = graph.editable_config()
    entries = {e["config"]["name"]: e for e in config["layers"]}
    plans: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for node in graph.nodes:
        if node.is_input:
            continue
        in_layout = analysis.layouts[node.inputs[0]] if node.inputs else None
        out_layout = analysis.layouts[node.outputs[0]]
        in_keep = keeper.layout(in_layout) if in_layout is not None else None
        out_keep = keeper.layout(out_layout)
        previous = plans.get(node.layer)
        if previous is not None:
            if not (np.array_equal(previous[1], in_keep) and np.array_equal(previous[2], out_keep)):
                raise ShrinkError(f"layer {node.layer!r} is called on tensors that would lose "
                                  "different channels: cannot prune a shared layer this way")
            continue
        plans[node.layer] = (node.class_name, in_keep, out_keep)
        cfg = entries[node.layer]["config"]
        out_channels = int(node.output_shapes[0][-1])
        if node.class_name in ("Dense",) and len(out_keep) != out_channels:
            cfg["units"] = int(len(out_keep))
        elif "filters" in cfg and len(out_keep) != out_channels:
            cfg["filters"] = int(len(out_keep))
        elif node.class_name == "Reshape" and len(out_keep) != out_channels:
            cfg["target_shape"] = list(cfg["target_shape"])[:-1] + [int(len(out_keep))]
    new = graph.rebuild(config)
    new.name = shrunk_name(model.name) if hasattr(new, "name") else None
    for name, (cls, in_keep, out_keep) in plans.items():
        old_layer = graph.layer(name)
        if not old_layer.weights:
            continue
        new_layer = new.get_layer(name)
        values = [_slice_weight(cls, w.name, np.asarray(w.numpy()), in_keep, out_keep)
                  for w in old_layer.weights]
        _assign(new_layer, values, name)
    return new


def _assign(layer: Any, values: list[np.ndarray], name: str) -> None:
    if len(layer.weights) != len(values):
        raise ShrinkError(f"layer {name!r}: rebuilt with {len(layer.weights)} weights, "
                          f"expected {len(values)}")
    for w, v in zip(layer.weights, values):
        if tuple(w.shape) != v.shape:
            raise ShrinkError(f"layer {name!r}: weight {w.name} has shape {tuple(w.shape)} "
                              f"after surgery but {v.shape} was sliced")
        w.assign(v)


def _clone(model: Any, graph: Any) -> Any:
    """An unchanged copy (new layers, same weights), as every surgery returns a new model."""
    new = graph.rebuild(graph.editable_config())
    new.set_weights(model.get_weights())
    return new
