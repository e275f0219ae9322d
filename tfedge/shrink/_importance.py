"""Importance criteria (plug-in parts), channel rounding and width shrinking.

A criterion is any callable ``imp(model, groups, calibration=None)``
returning ``{group.name: scores}`` with one finite score per channel (higher
= keep). The built-in ones score each member layer of a group, normalise
each member's scores by their mean (so a wide 1x1 and a narrow 3x3 count
alike) and average over members:

* ``l1`` / ``l2``: norm of each producer's output filter (kernel column) and
  of each depthwise filter (Li et al. 2017);
* ``bn``: ``|gamma|`` of the group's BatchNorm layers (network slimming); a
  group without BatchNorm falls back to ``l1``;
* ``hrank``: average rank of each channel's feature map after the
  producer's BatchNorm/activation on a calibration batch (Lin et al. 2020);
* ``taylor``: ``|activation * gradient|`` of the cross-entropy loss summed
  over a calibration batch, at the same tensors (Molchanov et al. 2019).

:func:`block_importance` scores removable residual blocks for depth
shrinking: the norm of the residual branch's output relative to the norm of
the block input on calibration images (a branch that adds little to its
input is cheap to drop), or without calibration data the mean ``|gamma|``
of the branch's last BatchNorm.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from ._groups import CHANNELWISE, ChannelGroup, ShrinkError, find_channel_groups

__all__ = ["IMPORTANCES", "make_importance", "round_keep", "shrink_width", "block_importance",
           "top_channels", "L1Importance", "L2Importance", "BNScaleImportance",
           "HRankImportance", "TaylorImportance"]

_EPS = 1e-12
#: Batch size for running calibration images through the model (memory bound).
CALIBRATION_BATCH = 32


# --------------------------------------------------------------------------- pure arithmetic

def round_keep(size: int, ratio: float, round_to: int = 8) -> int:
    """Channels to keep of ``size`` at ``ratio``: the nearest multiple of ``round_to``, at least
    ``round_to`` and at most ``size`` (a group of ``round_to`` channels or fewer is kept whole).

    >>> round_keep(64, 0.5), round_keep(64, 0.3), round_keep(20, 0.1), round_keep(6, 0.5)
    (32, 16, 8, 6)
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or round_to < 1:
        raise ValueError(f"round_to must be a positive integer, got {round_to!r}")
    if not isinstance(ratio, (int, float, np.floating)) or not (0.0 < float(ratio) <= 1.0) \
            or math.isnan(float(ratio)):
        raise ValueError(f"keep ratio must be in (0, 1], got {ratio!r}")
    if ratio >= 1.0 or size <= round_to:
        return int(size)
    multiples = math.floor(size * float(ratio) / round_to + 0.5)
    return int(min(size, max(round_to, multiples * round_to)))


def normalised_mean(member_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over members of each member's scores divided by their own mean (scale-free)."""
    rows = [np.asarray(s, dtype=np.float64) for s in member_scores]
    if not rows:
        raise ValueError("no member scores to aggregate")
    return np.mean([r / max(float(np.mean(np.abs(r))), _EPS) for r in rows], axis=0)


def top_channels(scores: np.ndarray, count: int) -> np.ndarray:
    """Sorted indices of the ``count`` highest scores (ties keep the lower index)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.sort(order[:count])


def matrix_rank_per_channel(maps: np.ndarray) -> np.ndarray:
    """Average matrix rank of each channel's 2-D map over a batch ``(N, H, W, C)`` -> ``(C,)``."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 2:  # (N, C): a 1x1 map has rank 1 unless it is zero
        return np.mean(np.abs(maps) > _EPS, axis=0).astype(np.float64)
    if maps.ndim == 3:  # (N, L, C): 1-D maps
        maps = maps[:, :, None, :]
    ranks = np.linalg.matrix_rank(np.moveaxis(maps, -1, 1))  # (N, C)
    return ranks.mean(axis=0).astype(np.float64)


# --------------------------------------------------------------------------- weights criteria

def _kernel_columns(layer: Any, cls: str) -> Optional[np.ndarray]:
    """``(out_channels, fan)`` rows of a producer's kernel."""
    weights = {w.name: np.asarray(w.numpy()) for w in layer.weights}
    kernel = weights.get("pointwise_kernel", weights.get("kernel"))
    if kernel is None:
        return None
    if cls.endswith("Transpose"):
        kernel = np.moveaxis(kernel, -2, -1)
    return np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)


def _member_filters(model: Any, group: ChannelGroup) -> list[np.ndarray]:
    """Per-channel filter weights of a group's producers and depthwise members."""
    rows = []
    for m in group.members:
        layer = model.get_layer(m.layer)
        cls = type(layer).__name__
        if m.handle == "out":
            cols = _kernel_columns(layer, cls)
            if cols is not None:
                rows.append(cols)
        elif m.handle == "channel" and cls.startswith("Depthwise"):
            kernel = np.asarray(layer.weights[0].numpy())  # (k..., C, 1)
            rows.append(np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1)[
                m.offset:m.offset + group.size])
    return rows


class _Criterion:
    """Base: ``imp(model, groups, calibration=None) -> {name: scores}``."""

    name = ""
    needs_calibration = False

    def __call__(self, model: Any, groups: Sequence[ChannelGroup],
                 calibration: Optional[tuple] = None) -> dict[str, np.ndarray]:
        if self.needs_calibration and calibration is None:
            raise ValueError(f"importance {self.name!r} needs calibration=(images, labels)")
        out = self.score(model, list(groups), calibration)
        for g in groups:
            s = out[g.name]
            if s.shape != (g.size,) or not np.all(np.isfinite(s)):
                raise ShrinkError(f"importance {self.name!r} gave bad scores for group "
                                  f"{g.name!r} (shape {s.shape}, expected ({g.size},))")
        return out

    def score(self, model, groups, calibration) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class L1Importance(_Criterion):
    """L1 norm of each output filter (Li et al. 2017)."""

    name = "l1"
    order = 1

    def score(self, model, groups, calibration):
        out = {}
        for g in groups:
            rows = _member_filters(model, g)
            if not rows:
                out[g.name] = np.ones(g.size)
                continue
            out[g.name] = normalised_mean([np.linalg.norm(r, ord=self.order, axis=1)
                                           for r in rows])
        return out


class L2Importance(L1Importance):
    """L2 norm of each output filter."""

    name = "l2"
    order = 2


class BNScaleImportance(_Criterion):
    """``|gamma|`` of the group's BatchNorm layers (network slimming); L1 without BatchNorm."""

    name = "bn"

    def score(self, model, groups, calibration):
        out = {}
        fallback = [g for g in groups if not self._gammas(model, g)]
        out.update(L1Importance().score(model, fallback, calibration) if fallback else {})
        for g in groups:
            gammas = self._gammas(model, g)
            if gammas:
                out[g.name] = normalised_mean(gammas)
        return out

    @staticmethod
    def _gammas(model, g: ChannelGroup) -> list[np.ndarray]:
        rows = []
        for m in g.members:
            layer = model.get_layer(m.layer)
            if m.handle == "channel" and type(layer).__name__ == "BatchNormalization" \
                    and getattr(layer, "scale", True):
                gamma = np.abs(np.asarray(layer.gamma.numpy()))
                rows.append(gamma[m.offset:m.offset + g.size])
        return rows


def _probe_refs(graph: Any, group: ChannelGroup) -> list[Any]:
    """Tensors where a group's channels are read: after each producer's chain of
    BatchNorm/activation layers (the post-activation maps HRank ranks)."""
    refs = []
    for m in group.members:
        if m.handle != "out":
            continue
        ref = graph.nodes_of(m.layer)[0].outputs[0]
        while True:
            users = graph.consumers(ref)
            if len(users) != 1:
                break
            node = users[0][0]
            if node.class_name not in CHANNELWISE | {"Activation", "ReLU", "LeakyReLU", "ELU"} \
                    or node.class_name.startswith("Depthwise"):
                break
            ref = node.outputs[0]
        refs.append(ref)
    return refs


def _batches(calibration: tuple, batch: int = CALIBRATION_BATCH):
    images, labels = calibration
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"calibration needs as many labels as images, got {len(images)} images "
                         f"and {len(labels)} labels")
    for start in range(0, len(images), batch):
        yield images[start:start + batch].astype("float32"), labels[start:start + batch]


class _ActivationCriterion(_Criterion):
    needs_calibration = True

    def score(self, model, groups, calibration):
        import keras

        from ..graph import ModelGraph

        graph = ModelGraph.from_model(model)
        probes: dict[str, list] = {g.name: _probe_refs(graph, g) for g in groups}
        refs = list(dict.fromkeys(r for rs in probes.values() for r in rs))
        out = {}
        if not refs:
            return {g.name: np.ones(g.size) for g in groups}
        features = keras.Model(_model_input(model), [graph.tensor(r) for r in refs] + list(model.outputs))
        totals = self.accumulate(features, refs, calibration, model, graph)
        for g in groups:
            rows = [totals[r][:g.size] for r in probes[g.name]]
            out[g.name] = normalised_mean(rows) if rows else np.ones(g.size)
        return out


class HRankImportance(_ActivationCriterion):
    """Average rank of each channel's post-activation feature map (Lin et al. 2020)."""

    name = "hrank"

    def accumulate(self, features, refs, calibration, model, graph):
        totals = {r: np.zeros(graph.shape(r)[-1]) for r in refs}
        count = 0
        for images, _ in _batches(calibration):
            maps = features(images, training=False)
            for r, m in zip(refs, maps[:len(refs)]):
                totals[r] = totals[r] + matrix_rank_per_channel(np.asarray(m)) * len(images)
            count += len(images)
        return {r: t / count for r, t in totals.items()}


class TaylorImportance(_ActivationCriterion):
    """``|activation * d loss / d activation|`` summed over the calibration batch (Molchanov 2019)."""

    name = "taylor"

    def accumulate(self, features, refs, calibration, model, graph):
        import tensorflow as tf

        from .._train import ends_in_softmax

        from_logits = not ends_in_softmax(model)
        totals = {r: np.zeros(graph.shape(r)[-1]) for r in refs}
        for images, labels in _batches(calibration):
            with tf.GradientTape() as tape:
                outs = features(images, training=False)
                acts, pred = outs[:len(refs)], outs[-1]
                loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(
                    labels.astype("int64"), pred, from_logits=from_logits))
            grads = tape.gradient(loss, acts)
            for r, a, gr in zip(refs, acts, grads):
                if gr is None:
                    continue
                contrib = np.abs(np.asarray(a) * np.asarray(gr))
                totals[r] = totals[r] + contrib.reshape(-1, contrib.shape[-1]).sum(axis=0)
        return totals


def _model_input(model: Any) -> Any:
    """The input tensor(s) in the structure the model was built with (no Keras warning)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


IMPORTANCES: dict[str, type] = {
    "l1": L1Importance, "l2": L2Importance, "bn": BNScaleImportance,
    "hrank": HRankImportance, "taylor": TaylorImportance,
}


def make_importance(name_or_callable: Union[str, Callable]) -> Callable:
    """An importance instance from a name in :data:`IMPORTANCES`, or a callable as it is."""
    if isinstance(name_or_callable, str):
        try:
            return IMPORTANCES[name_or_callable]()
        except KeyError:
            raise ValueError(f"unknown importance {name_or_callable!r}: choose one of "
                             f"{', '.join(IMPORTANCES)} or pass a callable") from None
    if callable(name_or_callable):
        return name_or_callable
    raise ValueError(f"importance must be a name ({', '.join(IMPORTANCES)}) or a callable, "
                     f"got {type(name_or_callable).__name__}")


# --------------------------------------------------------------------------- width shrinking

def shrink_width(model: Any, keep_ratio: Union[float, Mapping[str, float]], *,
                 importance: Union[str, Callable] = "bn", calibration: Optional[tuple] = None,
                 round_to: int = 8, protect: Sequence[str] = (), mode: str = "coupled") -> Any:
    """Keep ``keep_ratio`` of the channels of every prunable group (or per group name), the
    most important ones, rounded with :func:`round_keep`; returns the pruned model.

    importance: a criterion name or callable; ``bn`` (BatchNorm scale, L1 for groups
    without BatchNorm) by default, the best of benchmarks/shrink.py (docs/shrink.md)."""
    from ._surgery import prune_channels

    groups = [g for g in find_channel_groups(model, protect=protect, mode=mode) if g.prunable]
    if isinstance(keep_ratio, Mapping):
        names = {g.name for g in groups}
        unknown = [k for k in keep_ratio if k not in names]
        if unknown:
            raise ShrinkError(f"no prunable channel group {unknown[0]!r}: take names from "
                              "find_channel_groups(model) (prunable ones)")
        ratios = {g.name: keep_ratio.get(g.name, 1.0) for g in groups}
    else:
        ratios = {g.name: keep_ratio for g in groups}
    counts = {g.name: round_keep(g.size, ratios[g.name], round_to) for g in groups}
    todo = [g for g in groups if counts[g.name] < g.size]
    if not todo:
        return prune_channels(model, {})
    scores = make_importance(importance)(model, todo, calibration)
    keep = {g.name: top_channels(scores[g.name], counts[g.name]) for g in todo}
    return prune_channels(model, keep)


# --------------------------------------------------------------------------- blocks

def block_importance(model: Any, blocks: Sequence[Any],
                     calibration: Optional[tuple] = None) -> dict[str, float]:
    """Score removable residual blocks (higher = keep).

    With calibration images: mean over images of ``||branch output|| /
    ||block input||`` (the residual's share of the sum). Without: the mean
    ``|gamma|`` of the branch's last BatchNorm (1.0 if it has none).
    """
    import keras

    from ..graph import ModelGraph

    graph = ModelGraph.from_model(model)
    if calibration is None:
        out = {}
        for b in blocks:
            bns = [n for n in b.layers if type(model.get_layer(n)).__name__ == "BatchNormalization"]
            out[b.name] = float(np.mean(np.abs(model.get_layer(bns[-1]).gamma.numpy()))) \
                if bns else 1.0
        return out
    if not blocks:
        return {}
    tensors = []
    for b in blocks:
        tensors += [graph.tensor(b.input), graph.tensor(b.branch_output)]
    probe = keras.Model(_model_input(model), tensors)
    sums = np.zeros(len(blocks))
    count = 0
    for images, _ in _batches(calibration):
        values = probe(images, training=False)
        for i in range(len(blocks)):
            x = np.asarray(values[2 * i]).reshape(len(images), -1)
            y = np.asarray(values[2 * i + 1]).reshape(len(images), -1)
            sums[i] += float(np.sum(np.linalg.norm(y, axis=1)
                                    / np.maximum(np.linalg.norm(x, axis=1), _EPS)))
        count += len(images)
    return {b.name: float(s / count) for b, s in zip(blocks, sums)}
