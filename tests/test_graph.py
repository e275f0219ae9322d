"""tfedge.graph.ModelGraph: layer calls, edges from get_config, shapes, nested models, rebuild."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from tfedge._errors import ModelConfigError  # noqa: E402
from tfedge.graph import ModelGraph, TensorRef, flatten_model  # noqa: E402


def _model():
    L = keras.layers
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, use_bias=False, name="inner_fc")],
                             name="inner")
    shared = L.Dense(6, use_bias=False, name="shared")
    x = inputs = keras.Input((6,), name="features")
    a = inner(shared(shared(x)))
    b = inner(x)
    y = L.Add(name="add")([a, b])
    return keras.Model(inputs, y, name="toy")


def test_nodes_edges_and_shapes():
    g = ModelGraph.from_model(_model())
    assert g.inputs == (TensorRef("features"),) and g.outputs == (TensorRef("add"),)
    assert [n.layer for n in g.nodes][0] == "features" and g.nodes[-1].layer == "add"
    shared = g.nodes_of("shared")
    assert [n.call for n in shared] == [0, 1]  # a shared layer: two calls, numbered in order
    assert shared[0].inputs == (TensorRef("features"),)
    assert shared[1].inputs == (TensorRef("shared", 0, 0),)
    add = g.node("add")
    assert set(add.inputs) == {TensorRef("inner", 0, 0), TensorRef("inner", 1, 0)}
    assert add.input_shapes == ((None, 4), (None, 4)) and add.output_shapes == ((None, 4),)
    assert g.shape(TensorRef("shared", 1)) == (None, 6)
    users = g.consumers(TensorRef("features"))
    assert sorted((n.layer, n.call, pos) for n, pos in users) == [("inner", 1, 0), ("shared", 0, 0)]
    assert g.layer_config("add")["class_name"] == "Add"
    assert g.layer("shared").units == 6 and "inner" in g.layer_names
    # every node's order is topological: inputs come before their consumers
    seen = set()
    for node in g.nodes:
        assert all(ref in seen for ref in node.inputs), node.layer
        seen.update(node.outputs)
    with pytest.raises(ModelConfigError, match="no layer 'nope'"):
        g.layer("nope")


def test_edges_from_config_match_the_symbolic_tensors():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=4)
    g = ModelGraph.from_model(model)
    assert g.config is not None
    for node in g.nodes:
        if node.is_input:
            continue
        layer = model.get_layer(node.layer)
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        assert [g.shape(ref) for ref in node.inputs] == [tuple(t.shape) for t in inputs]
        assert node.output_shapes == (tuple(layer.output.shape),)
    assert g.node("Conv1").inputs == (TensorRef(model.layers[0].name),)


def test_nested_and_sequential_models():
    L = keras.layers
    free = keras.Input((None, None, 3))
    backbone = keras.Model(free, L.Conv2D(8, 3, padding="same", name="conv")(free),
                           name="backbone")
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(backbone(inputs))))
    g = ModelGraph.from_model(model)
    node = g.node("backbone")
    assert g.is_nested(node) and not g.is_nested(g.nodes[-1])
    inner = g.nested(node)
    assert inner.node("conv").output_shapes == ((None, 16, 16, 8),)  # traced at the call size
    assert inner.layer("conv") is backbone.get_layer("conv")  # same weights, not copies
    names = [layer.name for layer in g.all_layers()]
    assert names.index("conv") < names.index("backbone") and len(names) == len(set(names))
    seq = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d1"), L.Dense(2, name="d2")])
    gs = ModelGraph.from_model(seq)
    assert gs.node("d2").inputs == (TensorRef("d1"),) and gs.config is None
    with pytest.raises(ModelConfigError, match="Sequential"):
        gs.editable_config()


def test_rebuild_round_trip():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=4,
                                           alpha=0.35)
    g = ModelGraph.from_model(model)
    config = g.editable_config()
    config["layers"][1]["config"]["filters"] = 8  # an edit does not touch the original
    assert g.config["layers"][1]["config"]["filters"] != 8
    again = g.rebuild(g.editable_config())
    again.set_weights(model.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(again(x), model(x), rtol=1e-5, atol=1e-6)
    assert again is not model


def test_refuses_what_has_no_graph():
    with pytest.raises(ModelConfigError, match="keras.Model"):
        ModelGraph.from_model("resnet18")

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ModelConfigError, match="subclassed"):
        ModelGraph.from_model(Sub())


def test_flatten_model_inlines_nested_models():
    from tfedge._macs import count_macs

    L = keras.layers
    free = keras.Input((None, None, 3))
    y = L.Conv2D(8, 3, padding="same", name="b_conv")(free)
    backbone = keras.Model(free, L.BatchNormalization(name="b_bn")(y), name="backbone")
    head = keras.Sequential([keras.Input((8,)), L.Dense(3, name="h_fc")], name="head")
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    model = keras.Model(inputs, head(L.GlobalAveragePooling2D(name="gap")(backbone(x))))
    flat = flatten_model(model)
    assert [layer.name for layer in flat.layers] == [
        "image", "rescale", "b_conv", "b_bn", "gap", "h_fc"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(flat(x)), np.asarray(model(x)), rtol=1e-6)
    assert count_macs(flat).macs == count_macs(model).macs
    twice = keras.Model(inputs, L.Add()([backbone(inputs), backbone(inputs)]))
    with pytest.raises(ModelConfigError, match="called 2 times"):
        flatten_model(twice)
    clash = keras.Model(inputs, backbone(L.Conv2D(3, 1, name="b_conv")(inputs)))
    with pytest.raises(ModelConfigError, match="'b_conv'"):
        flatten_model(clash)
