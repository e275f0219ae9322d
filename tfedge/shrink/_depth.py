"""Depth surgery: find and drop residual blocks whose input and output shapes match.

A removable block is a merge ``Add([x, branch(x)])`` where everything on the
branch comes from ``x`` alone and is used by nothing but the branch and the
Add, and the Add's output has ``x``'s shape. Dropping it rewires every
consumer of the Add to ``x`` (a ReLU after the Add, as in ResNet, stays and
is then applied to an already non-negative tensor: a no-op) and removes the
branch's layers and the Add from the config; every other layer keeps its
weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ._groups import ShrinkError
from ._surgery import shrunk_name

__all__ = ["Block", "find_blocks", "drop_blocks"]


@dataclass(frozen=True)
class Block:
    """A removable residual block: ``name`` (its Add layer), the branch layers and the Add,
    and the MACs removed with it."""

    name: str
    layers: tuple[str, ...]
    macs: int
    input: Any = None  # TensorRef of the block input x (the shortcut)
    branch_output: Any = None  # TensorRef of branch(x), the Add's other input


def _branch(graph: Any, start: Any, end: Any, add_layer: str):
    """Layers of the branch from tensor ``start`` to tensor ``end``, or None if the branch
    reads anything else or feeds anything outside itself."""
    layers: dict[str, None] = {}
    stack = [end]
    seen = set()
    while stack:
        ref = stack.pop()
        if ref == start or ref in seen:
            continue
        seen.add(ref)
        node = graph.node(ref)
        if node.is_input or graph.is_nested(node) or len(graph.nodes_of(node.layer)) != 1:
            return None
        layers[node.layer] = None
        stack.extend(node.inputs)
    if not layers:
        return None
    inside = set(layers) | {add_layer}
    for name in layers:
        for out in graph.nodes_of(name)[0].outputs:
            if out in graph.outputs or any(user.layer not in inside
                                           for user, _ in graph.consumers(out)):
                return None
    order = {n: i for i, n in enumerate(graph.layer_names)}
    return tuple(sorted(layers, key=order.__getitem__))


def find_blocks(model: Any) -> list[Block]:
    """Removable residual blocks of a functional model, in graph order."""
    from .._macs import count_macs
    from ..graph import ModelGraph

    graph = ModelGraph.from_model(model)
    per_layer: dict[str, int] = {}
    for row in count_macs(model).per_layer:
        per_layer[row.name] = per_layer.get(row.name, 0) + row.macs
    blocks = []
    for node in graph.nodes:
        if node.class_name != "Add" or len(node.inputs) != 2 or graph.is_nested(node):
            continue
        if len(set(node.input_shapes)) != 1 or node.input_shapes[0] != node.output_shapes[0]:
            continue
        for x, y in (node.inputs, node.inputs[::-1]):
            branch = _branch(graph, x, y, node.layer)
            if branch is not None:
                blocks.append(Block(name=node.layer, layers=branch + (node.layer,),
                                    macs=sum(per_layer.get(n, 0) for n in branch),
                                    input=x, branch_output=y))
                break
    return blocks


def drop_blocks(model: Any, names: Sequence[str]) -> Any:
    """A new model without the residual blocks ``names`` (from :func:`find_blocks`)."""
    from ..graph import ModelGraph, rewire

    blocks = {b.name: b for b in find_blocks(model)}
    unknown = [n for n in names if n not in blocks]
    if unknown:
        raise ShrinkError(f"{unknown[0]!r} is not a removable block of model {model.name!r}: "
                          "take names from find_blocks(model)")
    graph = ModelGraph.from_model(model)
    config = graph.editable_config()
    removed: set[str] = set()
    mapping: dict[tuple, tuple] = {}
    for name in names:
        b = blocks[name]
        removed.update(b.layers)
        mapping[(name, 0, 0)] = (b.input.layer, b.input.call, b.input.index)
    for key in list(mapping):  # a dropped block's input may itself be a dropped Add
        target = mapping[key]
        while target in mapping:
            target = mapping[target]
        mapping[key] = target
    config["layers"] = [rewire(e, mapping) for e in config["layers"]
                        if e["config"]["name"] not in removed]
    flat = bool(config["output_layers"]) and not isinstance(config["output_layers"][0],
                                                             (list, tuple))
    outputs = [list(mapping.get(tuple(o), tuple(o)))
               for o in ([config["output_layers"]] if flat else config["output_layers"])]
    config["output_layers"] = outputs[0] if flat else outputs
    new = graph.rebuild(config)
    new.name = shrunk_name(model.name)
    for layer in new.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return new
