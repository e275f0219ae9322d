"""Coupled channel groups of a Keras functional model (DepGraph-style), found on :mod:`tfedge.graph`.

Every tensor's last axis is a *layout*: a list of segments, each a slice of
one *channel space*, repeated over ``positions`` (more than one only after a
``Flatten`` of a map larger than 1x1). Following the graph once:

* a convolution or Dense layer reads its input layout (its *in* handle) and
  starts a new space for its output (its *out* handle);
* BatchNorm and DepthwiseConv2D (multiplier 1) keep the layout and hold one
  weight per channel (in = out);
* activations, dropout, padding, cropping, pooling, global pooling, scalar
  Rescaling, Flatten of 1x1 maps and Reshape keeping the last axis keep it;
* Add/Subtract/Average/Maximum/Minimum/Multiply join the spaces of their
  inputs (residual members drop the same channels; squeeze-excite gates join
  the tensor they gate; a gate of one channel broadcasts and joins nothing);
* Concatenate on the channel axis lays its inputs' segments side by side
  (consumers read each at its offset).

Each joined space is one :class:`ChannelGroup`: removing its channel ``k``
removes output channel ``k`` of every producer, the per-channel weights of
every BatchNorm/depthwise member and the matching input rows of every
consumer. Spaces that reach the model input or output, pass through a layer
that mixes channels in a way surgery cannot follow (softmax over channels,
per-channel Normalization, Reshape of the channel axis) or touch a protected
layer are not prunable. A layer type outside these lists stops with
:class:`ShrinkError`: guessing would silently break the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .._errors import TfedgeError

__all__ = ["ShrinkError", "ChannelMember", "ChannelGroup", "find_channel_groups", "MODES"]

MODES = ("coupled", "inner")


class ShrinkError(TfedgeError):
    """A model (or a request) that shrinking surgery cannot handle; the message names the layer."""


# Layer classes by how they treat the channel axis (Keras class names).
PRODUCERS = frozenset({"Conv1D", "Conv2D", "Conv3D", "Dense", "SeparableConv1D",
                       "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose",
                       "Conv3DTranspose"})
CHANNELWISE = frozenset({"BatchNormalization", "DepthwiseConv1D", "DepthwiseConv2D"})
PRESERVING = frozenset({
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Rescaling",
    "Normalization", "Flatten", "Reshape"})
MERGES = frozenset({"Add", "Subtract", "Average", "Maximum", "Minimum", "Multiply"})
RESIDUAL_MERGES = MERGES - {"Multiply"}
SUPPORTED = PRODUCERS | CHANNELWISE | PRESERVING | MERGES | {"Concatenate", "InputLayer"}


@dataclass(frozen=True)
class ChannelMember:
    """One layer's part in a group.

    ``handle``: ``"out"`` (its output channels: kernel columns, bias),
    ``"in"`` (its input channels: kernel rows, starting at ``offset`` of its
    input, repeated ``positions`` times after a Flatten), ``"channel"``
    (per-channel weights, in = out: BatchNorm, depthwise), ``"shape"`` (a
    config value holds the count: Reshape) or ``"merge"`` (joins the group's
    tensors: Add, Multiply, Concatenate).
    """

    layer: str
    handle: str
    offset: int = 0
    positions: int = 1


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that must be removed together (same indices in every member)."""

    name: str
    size: int
    members: tuple[ChannelMember, ...]
    prunable: bool
    reason: str = ""  # why not prunable

    def layers(self, handle: Optional[str] = None) -> tuple[str, ...]:
        """Member layer names (of one handle), each once, in graph order."""
        seen: dict[str, None] = {}
        for m in self.members:
            if handle is None or m.handle == handle:
                seen.setdefault(m.layer, None)
        return tuple(seen)

    residual: bool = False  # joined to other tensors by a residual merge (Add & co.)


@dataclass
class Layout:
    """The channel axis of one tensor: ``positions`` repeats of segments ``(space, size)``."""

    segments: list[tuple[int, int]]
    positions: int = 1

    @property
    def channels(self) -> int:
        return sum(size for _, size in self.segments)


class Analysis:
    """Channel spaces of one graph: layouts of every tensor, members and unprunable reasons."""

    def __init__(self, graph: Any):
        self.graph = graph
        self.parent: list[int] = []
        self.sizes: list[int] = []
        self.layouts: dict[Any, Layout] = {}
        self.members: dict[int, list[ChannelMember]] = {}
        self.blocked: dict[int, str] = {}
        self.residual: set[int] = set()
        self.origin: list[str] = []
        self.group_roots: dict[str, int] = {}
        self._walk()

    # -------------------------------------------------------------- union-find
    def new_space(self, size: int, origin: str) -> int:
        self.origin.append(origin)
        self.parent.append(len(self.parent))
        self.sizes.append(size)
        return len(self.parent) - 1

    def root(self, space: int) -> int:
        while self.parent[space] != space:
            self.parent[space] = self.parent[self.parent[space]]
            space = self.parent[space]
        return space

    def join(self, a: int, b: int, where: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        if self.sizes[ra] != self.sizes[rb]:
            raise ShrinkError(f"layer {where!r} joins channel groups of {self.sizes[ra]} and "
                              f"{self.sizes[rb]} channels: cannot shrink this model")
        self.parent[rb] = ra

    def block(self, layout: Layout, reason: str) -> None:
        for space, _ in layout.segments:
            self.blocked.setdefault(space, reason)

    def add_member(self, layout: Layout, layer: str, handle: str) -> None:
        offset = 0
        for space, size in layout.segments:
            self.members.setdefault(space, []).append(
                ChannelMember(layer, handle, offset, layout.positions))
            offset += size

    # -------------------------------------------------------------- walk
    def _walk(self) -> None:
        g = self.graph
        for node in g.nodes:
            name, cls = node.layer, node.class_name
            if node.is_input:
                space = self.new_space(int(node.output_shapes[0][-1]), name)
                self.blocked[space] = "model input"
                self.layouts[node.outputs[0]] = Layout([(space, self.sizes[space])])
                continue
            if g.is_nested(node):
                raise ShrinkError(f"layer {name!r} is a nested model ({cls}): shrinking needs a "
                                  "flat functional model; inline it first with "
                                  "tfedge.graph.flatten_model(model)")
            if cls not in SUPPORTED:
                raise ShrinkError(f"layer {name!r} of type {cls} is not supported by channel "
                                  "shrinking: build the model from built-in layers "
                                  "(Conv2D, BatchNormalization, Add, ...) or leave it unshrunk")
            if len(node.output_shapes) != 1:
                raise ShrinkError(f"layer {name!r} ({cls}) has {len(node.output_shapes)} outputs: "
                                  "not supported by channel shrinking")
            ins = [self.layouts[ref] for ref in node.inputs]
            layer = g.layer(name)
            out_shape = node.output_shapes[0]
            out = self._layer(node, cls, layer, ins, out_shape)
            self.layouts[node.outputs[0]] = out
        for ref in g.outputs:
            self.block(self.layouts[ref], "model output")

    def _fresh(self, channels: int, origin: str, reason: Optional[str] = None) -> Layout:
        space = self.new_space(int(channels), origin)
        if reason:
            self.blocked[space] = reason
        return Layout([(space, int(channels))])

    def _layer(self, node: Any, cls: str, layer: Any, ins: list[Layout], out_shape) -> Layout:
        name = node.layer
        channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
        if cls in PRODUCERS:
            if not channels_last:
                raise ShrinkError(f"layer {name!r} ({cls}) uses channels_first: not supported")
            if getattr(layer, "groups", 1) != 1:
                raise ShrinkError(f"layer {name!r} ({cls}) is a grouped convolution "
                                  f"(groups={layer.groups}): not supported by channel shrinking")
            if cls.startswith("Separable") and layer.depth_multiplier != 1:
                raise ShrinkError(f"layer {name!r} ({cls}) has depth_multiplier="
                                  f"{layer.depth_multiplier}: only 1 is supported")
            if ins[0].positions != 1 and cls != "Dense":
                self.block(ins[0], f"flattened input of {name!r}")
            self.add_member(ins[0], name, "in")
            out = self._fresh(out_shape[-1], name)
            self.add_member(out, name, "out")
            return out
        if cls in CHANNELWISE:
            axis = getattr(layer, "axis", -1)
            rank = len(out_shape)
            if cls == "BatchNormalization" and axis not in (-1, rank - 1):
                raise ShrinkError(f"layer {name!r} ({cls}) normalises axis {axis}, not the "
                                  "channel axis: not supported")
            if cls.startswith("Depthwise"):
                if not channels_last:
                    raise ShrinkError(f"layer {name!r} ({cls}) uses channels_first: not supported")
                if layer.depth_multiplier != 1:
                    raise ShrinkError(f"layer {name!r} ({cls}) has depth_multiplier="
                                      f"{layer.depth_multiplier}: only 1 is supported")
            if ins[0].positions != 1:
                self.block(ins[0], f"per-feature weights of {name!r} after a Flatten")
            self.add_member(ins[0], name, "channel")
            return ins[0]
        if cls in PRESERVING:
            return self._preserving(node, cls, layer, ins[0], out_shape)
        if cls in MERGES:
            return self._merge(node, cls, ins, out_shape)
        if cls == "Concatenate":
            rank = len(out_shape)
            if layer.axis not in (-1, rank - 1):
                return self._merge(node, cls, ins, out_shape)
            if any(lay.positions != 1 for lay in ins):
                for lay in ins:
                    self.block(lay, f"Concatenate {name!r} of flattened tensors")
                return self._fresh(out_shape[-1], name, f"Concatenate {name!r} of flattened tensors")
            out = Layout([seg for lay in ins for seg in lay.segments])
            self.add_member(out, name, "merge")
            return out
        raise ShrinkError(f"layer {name!r} of type {cls} is not supported by channel shrinking")

    def _preserving(self, node, cls, layer, inp: Layout, out_shape) -> Layout:
        name = node.layer
        in_shape = node.input_shapes[0]
        if cls in ("Softmax",) or (cls == "Activation" and _activation_name(layer) in
                                   ("softmax", "log_softmax")):
            axis = getattr(layer, "axis", -1)
            if axis in (-1, len(out_shape) - 1):
                self.block(inp, f"softmax over channels in {name!r}")
            return inp
        if cls == "Rescaling":
            if _size(getattr(layer, "scale", 1.0)) > 1 or _size(getattr(layer, "offset", 0.0)) > 1:
                self.block(inp, f"per-channel Rescaling {name!r}")
            return inp
        if cls == "Normalization":
            self.block(inp, f"per-channel Normalization {name!r}")
            return inp
        if cls == "Flatten":
            spatial = math.prod(int(d) for d in in_shape[1:-1]) if len(in_shape) > 2 else 1
            if getattr(layer, "data_format", "channels_last") != "channels_last" and spatial > 1:
                self.block(inp, f"channels_first Flatten {name!r}")
                return self._fresh(out_shape[-1], name, f"channels_first Flatten {name!r}")
            return Layout(list(inp.segments), inp.positions * spatial)
        if cls == "Reshape":
            if inp.positions == 1 and in_shape[-1] == out_shape[-1]:
                self.add_member(inp, name, "shape")
                return inp
            self.block(inp, f"Reshape {name!r} changes the channel axis")
            return self._fresh(out_shape[-1], name, f"Reshape {name!r} changes the channel axis")
        if cls.startswith("Global") and not channels_last_of(layer):
            raise ShrinkError(f"layer {name!r} ({cls}) uses channels_first: not supported")
        return inp

    def _merge(self, node, cls, ins: list[Layout], out_shape) -> Layout:
        name = node.layer
        channels = int(out_shape[-1])
        joined = [lay for lay in ins if lay.channels * lay.positions == channels]
        broadcast = [lay for lay in ins if lay not in joined]
        for lay in broadcast:
            if lay.channels != 1:
                self.block(lay, f"{cls} {name!r} broadcasts over channels")
        if not joined:
            return self._fresh(channels, name, f"{cls} {name!r} broadcasts over channels")
        first = joined[0]
        same = all(lay.positions == first.positions
                   and [s for _, s in lay.segments] == [s for _, s in first.segments]
                   for lay in joined)
        if not same:
            for lay in joined:
                self.block(lay, f"{cls} {name!r} merges differently split channels")
            return Layout(list(first.segments), first.positions)
        for lay in joined[1:]:
            for (a, _), (b, _) in zip(first.segments, lay.segments):
                self.join(a, b, name)
        self.add_member(first, name, "merge")
        if cls in RESIDUAL_MERGES or cls == "Concatenate":
            for space, _ in first.segments:
                self.residual.add(space)
        return Layout(list(first.segments), first.positions)

    # -------------------------------------------------------------- groups
    def groups(self, protect: Sequence[str] = (), mode: str = "coupled") -> list[ChannelGroup]:
        by_root: dict[int, list[int]] = {}
        for space in range(len(self.parent)):
            by_root.setdefault(self.root(space), []).append(space)
        order = {name: i for i, name in enumerate(self.graph.layer_names)}
        protected = set(protect)
        groups = []
        for root, spaces in by_root.items():
            members = [m for s in spaces for m in self.members.get(s, ())]
            members.sort(key=lambda m: order.get(m.layer, 0))
            producers = [m.layer for m in members if m.handle == "out"]
            reasons = [self.blocked[s] for s in spaces if s in self.blocked]
            if not producers and not reasons:
                reasons.append("no layer produces these channels")
            hit = [m.layer for m in members if m.layer in protected]
            if hit:
                reasons.append(f"protected layer {hit[0]!r}")
            if mode == "inner" and any(s in self.residual for s in spaces):
                reasons.append("coupled to a residual merge (mode='inner')")
            name = producers[0] if producers else self.origin[root]
            self.group_roots[name] = root
            groups.append(ChannelGroup(
                name=name, size=self.sizes[root], members=tuple(members),
                prunable=not reasons, reason=reasons[0] if reasons else "",
                residual=any(s in self.residual for s in spaces)))
        groups.sort(key=lambda gr: order.get(gr.members[0].layer, 0) if gr.members else -1)
        return groups


def channels_last_of(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _size(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 1


def _activation_name(layer: Any) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act))


def analyse(model: Any) -> Analysis:
    """The channel analysis of ``model`` (raises :class:`ShrinkError` on unsupported layers)."""
    import keras

    from ..graph import ModelGraph

    if not isinstance(model, keras.Model):
        raise ShrinkError(f"expected a keras.Model, got {type(model).__name__}")
    return Analysis(ModelGraph.from_model(model))


def find_channel_groups(model: Any, *, protect: Sequence[str] = (),
                        mode: str = "coupled") -> list[ChannelGroup]:
    """Coupled channel groups of a functional model, in graph order.

    ``protect``: layer names whose channels stay untouched (every group they
    belong to is not prunable). ``mode``: ``"coupled"`` (every group,
    residual ones included: all members of an Add drop the same channels) or
    ``"inner"`` (the coupling-free mode of EdgeCompress: groups joined to a
    residual merge are marked not prunable, leaving the inner channels of
    bottleneck/basic/inverted-residual blocks). Group names are the first
    layer producing the channels, stable for :func:`prune_channels`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    analysis = analyse(model)
    names = set(analysis.graph.layer_names)
    unknown = [p for p in protect if p not in names]
    if unknown:
        raise ShrinkError(f"protected layer {unknown[0]!r} is not in model {model.name!r}: "
                          "check the name with model.summary()")
    return analysis.groups(protect, mode)
