"""One view of a Keras 3 functional model: layer calls, the edges between them, tensor shapes.

Edges come from ``model.get_config()`` (each call's ``inbound_nodes`` name
their input tensors by ``keras_history``: producing layer, that layer's call
number in this model, output number); shapes come from the symbolic tensors
of each call. The private Keras attributes needed for the second half
(``_nodes_by_depth``, ``_inbound_nodes``) are read here and nowhere else, so
MAC counting, QAT rebuilding and channel shrinking share one reading of them.

A model called as a layer (a nested functional model, as ``keras.applications``
backbones are when wrapped) is one node whose layer is a ``keras.Model``;
:meth:`ModelGraph.nested` gives its own graph at the shapes of that call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from tfedge._errors import ModelConfigError

__all__ = ["TensorRef", "Node", "ModelGraph", "flatten_model", "rewire"]


@dataclass(frozen=True)
class TensorRef:
    """One tensor of the graph: output ``index`` of call ``call`` of layer ``layer``
    (Keras' ``keras_history``, with calls numbered within this model)."""

    layer: str
    call: int = 0
    index: int = 0


@dataclass(frozen=True)
class Node:
    """One call of one layer (or operation) inside the model."""

    layer: str
    class_name: str
    call: int
    inputs: tuple[TensorRef, ...]
    input_shapes: tuple[tuple[Optional[int], ...], ...]
    output_shapes: tuple[tuple[Optional[int], ...], ...]

    @property
    def outputs(self) -> tuple[TensorRef, ...]:
        return tuple(TensorRef(self.layer, self.call, i) for i in range(len(self.output_shapes)))

    @property
    def is_input(self) -> bool:
        return self.class_name == "InputLayer"


def _history_refs(value: Any) -> Iterator[tuple[str, int, int]]:
    """Every ``keras_history`` in a serialised call's args/kwargs, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            name, call, index = value["config"]["keras_history"]
            yield str(name), int(call), int(index)
            return
        for item in value.values():
            yield from _history_refs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _history_refs(item)


def _shape(tensor: Any) -> tuple[Optional[int], ...]:
    return tuple(None if d is None else int(d) for d in tensor.shape)


class ModelGraph:
    """Layer calls of a built functional (or Sequential) Keras model, inputs first.

    ``nodes`` are in Keras' own order (deepest first, which is topological);
    ``config`` is the model's ``get_config()`` (None for a Sequential, whose
    edges are its order), the form that graph surgery edits and rebuilds with
    ``from_config``.
    """

    def __init__(self, model: Any, nodes: list[Node], live: dict[tuple[str, int], Any],
                 config: Optional[dict], inputs: list[TensorRef], outputs: list[TensorRef]):
        self.model = model
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.config = config
        self.inputs: tuple[TensorRef, ...] = tuple(inputs)
        self.outputs: tuple[TensorRef, ...] = tuple(outputs)
        self._live = live
        self._by_key = {(n.layer, n.call): n for n in nodes}
        self._consumers: dict[TensorRef, list[tuple[Node, int]]] = {}
        for node in nodes:
            for position, ref in enumerate(node.inputs):
                self._consumers.setdefault(ref, []).append((node, position))
        self._layers = {}
        for node in nodes:
            self._layers.setdefault(node.layer, live[(node.layer, node.call)].operation)
        self._config_by_name = ({entry["config"]["name"]: entry for entry in config["layers"]}
                                if config else {})

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_model(cls, model: Any) -> "ModelGraph":
        """Read the graph of a built functional or Sequential ``keras.Model``."""
        import keras

        if not isinstance(model, keras.Model):
            raise ModelConfigError(f"expected a keras.Model, got {type(model).__name__}")
        functional = model
        if not hasattr(functional, "_nodes_by_depth") and getattr(model, "_functional", None):
            functional = model._functional  # a built Sequential wraps a Functional
        by_depth = getattr(functional, "_nodes_by_depth", None)
        if by_depth is None:
            raise ModelConfigError(
                f"cannot read the graph of {type(model).__name__} {getattr(model, 'name', '')!r}: "
                "use a functional or a built Sequential model (subclassed models have no graph)")
        live_nodes = [n for depth in sorted(by_depth, reverse=True) for n in by_depth[depth]]
        in_model = {id(n) for n in live_nodes}

        def call_index(node: Any) -> int:
            own = [n for n in node.operation._inbound_nodes if id(n) in in_model]
            return next(i for i, n in enumerate(own) if n is node)

        config = None
        if functional is model:
            try:
                config = model.get_config()
            except Exception:  # a custom layer without get_config: edges from the tensors
                config = None
        serial_inputs: dict[tuple[str, int], list[TensorRef]] = {}
        if config is not None:
            for entry in config.get("layers", ()):
                for call, inbound in enumerate(entry.get("inbound_nodes") or ()):
                    serial_inputs[(entry["config"]["name"], call)] = [
                        TensorRef(*h) for h in _history_refs(inbound)]

        nodes, live = [], {}
        for ln in live_nodes:
            op = ln.operation
            call = call_index(ln)
            key = (op.name, call)
            live[key] = ln
            refs = serial_inputs.get(key)
            if refs is None or len(refs) != len(ln.input_tensors):
                # Sequential, or a call whose serialised form hides tensors: read the
                # symbolic tensors' own histories (same numbering).
                refs = []
                for t in ln.input_tensors:
                    hist = t._keras_history
                    refs.append(TensorRef(hist.operation.name, call_index(
                        hist.operation._inbound_nodes[hist.node_index]), hist.tensor_index))
            nodes.append(Node(layer=op.name, class_name=type(op).__name__, call=call,
                              inputs=tuple(refs),
                              input_shapes=tuple(_shape(t) for t in ln.input_tensors),
                              output_shapes=tuple(_shape(t) for t in ln.output_tensors)))

        def ref_of(t: Any) -> TensorRef:
            hist = t._keras_history
            return TensorRef(hist.operation.name,
                             call_index(hist.operation._inbound_nodes[hist.node_index]),
                             hist.tensor_index)

        inputs = [ref_of(t) for t in functional.inputs]
        outputs = [ref_of(t) for t in functional.outputs]
        return cls(model, nodes, live, config, inputs, outputs)

    # ------------------------------------------------------------------ queries

    def layer(self, name: str) -> Any:
        """The Keras layer (or operation) called ``name``."""
        try:
            return self._layers[name]
        except KeyError:
            raise ModelConfigError(f"model {self.model.name!r} has no layer {name!r}") from None

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Layer names in call order (each once)."""
        return tuple(self._layers)

    def all_layers(self) -> Iterator[Any]:
        """Every layer object once, in call order, nested models' layers included (before the
        nested model itself), e.g. every BatchNorm to re-estimate."""
        seen: set[int] = set()
        for node in self.nodes:
            layer = self._layers[node.layer]
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if self.is_nested(node):
                for inner in ModelGraph.from_model(layer).all_layers():
                    if id(inner) not in seen:
                        seen.add(id(inner))
                        yield inner
            yield layer

    def layer_config(self, name: str) -> dict:
        """The serialised entry of layer ``name`` in :attr:`config` (class_name, config, inbound_nodes)."""
        try:
            return self._config_by_name[name]
        except KeyError:
            raise ModelConfigError(f"layer {name!r} is not in the model's config") from None

    def node(self, ref_or_layer: Any, call: int = 0) -> Node:
        """The node producing ``ref`` (a :class:`TensorRef`), or the call ``call`` of a layer name."""
        key = (ref_or_layer.layer, ref_or_layer.call) if isinstance(ref_or_layer, TensorRef) \
            else (ref_or_layer, call)
        return self._by_key[key]

    def nodes_of(self, layer: str) -> list[Node]:
        """Every call of layer ``layer`` in this model."""
        return [n for n in self.nodes if n.layer == layer]

    def shape(self, ref: TensorRef) -> tuple[Optional[int], ...]:
        """Shape (batch first) of a tensor."""
        return self.node(ref).output_shapes[ref.index]

    def tensor(self, ref: TensorRef) -> Any:
        """The symbolic Keras tensor ``ref`` (to build a feature model on the same layers)."""
        return self._live[(ref.layer, ref.call)].output_tensors[ref.index]

    def consumers(self, ref: TensorRef) -> list[tuple[Node, int]]:
        """``(node, input position)`` of every call that reads tensor ``ref``."""
        return list(self._consumers.get(ref, ()))

    def is_nested(self, node: Node) -> bool:
        """Whether ``node`` calls a whole model (a nested functional/Sequential model)."""
        import keras

        return isinstance(self._live[(node.layer, node.call)].operation, keras.Model)

    def nested(self, node: Node) -> "ModelGraph":
        """The graph of the model called at ``node``, traced at the shapes of that call.

        A backbone built for any input size (as ``keras.applications`` builds
        them) is re-traced on the call's fixed shapes with the same layer
        objects, so its weights are shared, not copied.
        """
        import keras

        live = self._live[(node.layer, node.call)]
        model = live.operation
        inner = [_shape(t) for t in model.inputs]
        outer = [_shape(t) for t in live.input_tensors]
        if len(inner) != len(outer) or all(None not in s[1:] for s in inner):
            return ModelGraph.from_model(model)
        tensors = [keras.Input(batch_shape=s) for s in outer]
        traced = keras.models.clone_model(
            model, input_tensors=tensors if isinstance(model.input, (list, tuple)) else tensors[0],
            clone_function=lambda layer: layer)
        return ModelGraph.from_model(traced)

    def editable_config(self) -> dict:
        """A deep copy of :attr:`config` to edit and pass to :meth:`rebuild`."""
        if self.config is None:
            raise ModelConfigError(
                f"model {self.model.name!r} has no functional config (a Sequential or subclassed "
                "model): rebuild it as keras.Model(model.inputs, model.outputs) first")
        return copy.deepcopy(self.config)

    def rebuild(self, config: dict) -> Any:
        """A new model from an edited config (layers unbuilt until called, so edited widths hold).

        ``build_config`` entries are dropped: they would build each layer at
        its old input shape before the new graph calls it.
        """
        import keras

        config = copy.deepcopy(config)
        for entry in config.get("layers", ()):
            entry.pop("build_config", None)
        return keras.Model.from_config(config)


def rewire(value: Any, mapping: dict) -> Any:
    """A copy of a serialised call (args/kwargs) whose ``keras_history`` entries found in
    ``mapping`` (``(layer, call, index)`` tuples) point at their replacements."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            hist = tuple(value["config"]["keras_history"])
            if hist in mapping:
                value = dict(value, config=dict(value["config"], keras_history=list(mapping[hist])))
            return value
        return {k: rewire(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [rewire(v, mapping) for v in value]
    if isinstance(value, tuple):
        return tuple(rewire(v, mapping) for v in value)
    return value


def _resolve(mapping: dict) -> dict:
    """Follow chains (a replacement that is itself replaced) to their end."""
    out = {}
    for key, target in mapping.items():
        seen = {key}
        while target in mapping and target not in seen:
            seen.add(target)
            target = mapping[target]
        out[key] = target
    return out


def _history_list(value: Any) -> list[tuple]:
    """``input_layers``/``output_layers`` of a config as a list of (layer, call, index)."""
    if value and not isinstance(value[0], (list, tuple)):
        return [tuple(value)]
    return [tuple(v) for v in value]


def _set_histories(original: Any, histories: list[tuple]) -> Any:
    """``histories`` in the form (flat or list) ``original`` had."""
    if original and not isinstance(original[0], (list, tuple)):
        return list(histories[0])
    return [list(h) for h in histories]


def flatten_model(model: Any) -> Any:
    """A copy of a functional model with every nested functional/Sequential model (each called
    once) inlined as plain layers, weights included: what channel shrinking needs of a
    classifier built as ``backbone(inputs)`` plus a head.

    A nested model's own input layers disappear (the outer tensors feed its first
    layers, so a backbone built for any input size takes the outer size); a layer
    name used both inside and outside stops with :class:`ModelConfigError`.
    """
    import keras

    graph = ModelGraph.from_model(model)
    config = graph.editable_config()
    outer_names = {e["config"]["name"] for e in config["layers"]}
    layers, sources, mapping = [], {}, {}
    for entry in config["layers"]:
        name = entry["config"]["name"]
        obj = graph.layer(name)
        if not isinstance(obj, keras.Model):
            layers.append(entry)
            sources[name] = obj
            continue
        calls = graph.nodes_of(name)
        if len(calls) != 1:
            raise ModelConfigError(f"nested model {name!r} is called {len(calls)} times: only a "
                                   "model called once can be inlined")
        inner_model = obj if getattr(obj, "_nodes_by_depth", None) is not None and \
            type(obj).__name__ != "Sequential" else keras.Model(obj.inputs, obj.outputs,
                                                                 name=obj.name)
        inner_model = flatten_model(inner_model)
        inner = ModelGraph.from_model(inner_model).editable_config()
        inputs = _history_list(inner["input_layers"])
        if len(inputs) != len(calls[0].inputs):
            raise ModelConfigError(f"nested model {name!r} takes {len(inputs)} inputs but is "
                                   f"called with {len(calls[0].inputs)}")
        for hist, ref in zip(inputs, calls[0].inputs):
            mapping[hist] = (ref.layer, ref.call, ref.index)
        for i, hist in enumerate(_history_list(inner["output_layers"])):
            mapping[(name, 0, i)] = hist
        input_names = {h[0] for h in inputs}
        for inner_entry in inner["layers"]:
            inner_name = inner_entry["config"]["name"]
            if inner_name in input_names:
                continue
            if inner_name in outer_names or inner_name in sources:
                raise ModelConfigError(
                    f"layer name {inner_name!r} is used inside nested model {name!r} and outside "
                    "it: rename one before flattening")
            layers.append(inner_entry)
            sources[inner_name] = inner_model.get_layer(inner_name)
    if len(layers) == len(config["layers"]) and not mapping:
        flat = graph.rebuild(config)
        flat.set_weights(model.get_weights())
        return flat
    mapping = _resolve(mapping)
    config["layers"] = [rewire(e, mapping) for e in layers]
    config["output_layers"] = _set_histories(
        config["output_layers"],
        [mapping.get(h, h) for h in _history_list(config["output_layers"])])
    flat = graph.rebuild(config)
    for layer in flat.layers:
        if layer.weights:
            layer.set_weights(sources[layer.name].get_weights())
    return flat
