"""Shrinking surgery (tfedge.shrink: groups, prune_channels, importance, depth, resolution).

The central check: channels whose weights are all zero contribute nothing, so
removing them must leave the outputs unchanged, and the MACs must fall by
exactly what the group sizes predict (computed here from each layer's old
MACs and channel counts, independently of the surgery).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from tfedge._macs import count_macs  # noqa: E402
from tfedge.shrink import (IMPORTANCES, ShrinkError, block_importance, drop_blocks,  # noqa: E402
                           find_blocks, find_channel_groups, make_importance, prune_channels,
                           round_keep, set_resolution, shrink_width)
from tfedge.shrink._importance import (matrix_rank_per_channel, normalised_mean,  # noqa: E402
                                       top_channels)

RES = 32
CLASSES = 3


# --------------------------------------------------------------------------- helpers

def _images(n: int = 8, seed: int = 1, size: int = RES) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _randomise_bn(model, seed: int = 0) -> None:
    """Random BatchNorm scales/statistics, so a freshly built network's outputs are not
    degenerate (fresh moving statistics can make a deep ReLU6 net output ~0)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.2, 0.2, c),
                               rng.uniform(-0.1, 0.1, c), rng.uniform(0.5, 2.0, c)])


def _zero_channels(model, group, drop: np.ndarray) -> None:
    """Make channels ``drop`` of ``group`` exactly zero wherever the group's tensors flow."""
    for m in group.members:
        layer = model.get_layer(m.layer)
        if m.handle not in ("out", "channel"):
            continue
        values = []
        for w in layer.weights:
            v = np.array(w.numpy())
            idx = drop + m.offset
            if m.handle == "out" and v.ndim > 1:
                if type(layer).__name__.endswith("Transpose"):
                    v[..., idx, :] = 0
                else:
                    v[..., idx] = 0
            elif m.handle == "channel" and v.ndim > 1:  # depthwise kernel (k, k, C, 1)
                v[..., idx, :] = 0
            elif w.name in ("bias", "gamma", "beta"):
                v[idx] = 0
            values.append(v)
        layer.set_weights(values)


def _layer_channels(model):
    """name -> (in channels, out channels) of each layer's first call."""
    out = {}
    for layer in model.layers:
        try:
            out[layer.name] = (int(layer.input.shape[-1]), int(layer.output.shape[-1]))
        except (AttributeError, TypeError, ValueError):
            pass
    return out


def _predicted_macs(model, groups, dropped: dict[str, int]) -> int:
    """MACs after removing ``dropped[group]`` channels of each group, from old per-layer
    MACs scaled by the kept fraction of each layer's input and output channels."""
    loss_in: dict[str, int] = {}
    loss_out: dict[str, int] = {}
    for g in groups:
        d = dropped.get(g.name, 0)
        for m in g.members:
            if m.handle == "in":
                loss_in[m.layer] = loss_in.get(m.layer, 0) + d * m.positions
            elif m.handle == "out":
                loss_out[m.layer] = loss_out.get(m.layer, 0) + d
            elif m.handle == "channel" and type(model.get_layer(m.layer)).__name__.startswith(
                    "Depthwise"):
                loss_out[m.layer] = loss_out.get(m.layer, 0) + d
    channels = _layer_channels(model)
    total = Fraction(0)
    for row in count_macs(model).per_layer:
        if not row.macs:
            continue
        c_in, c_out = channels[row.name]
        frac = Fraction(c_out - loss_out.get(row.name, 0), c_out)
        if row.type.startswith("Depthwise"):
            frac = Fraction(c_out - loss_out.get(row.name, 0), c_out)
        else:
            frac *= Fraction(c_in - loss_in.get(row.name, 0), c_in)
        total += row.macs * frac
    assert total.denominator == 1
    return int(total)


def _check_zero_mask_removal(model, fraction: float = 0.25, seed: int = 0, protect=()):
    """Zero ``fraction`` of every prunable group, remove them, compare outputs and MACs."""
    _randomise_bn(model, seed)
    groups = find_channel_groups(model, protect=protect)
    prunable = [g for g in groups if g.prunable]
    assert prunable
    rng = np.random.default_rng(seed)
    keep, dropped = {}, {}
    for g in prunable:
        drop = np.sort(rng.choice(g.size, max(1, int(g.size * fraction)), replace=False))
        _zero_channels(model, g, drop)
        keep[g.name] = np.setdiff1d(np.arange(g.size), drop)
        dropped[g.name] = len(drop)
    x = _images(size=model.input_shape[1])
    before = np.asarray(model(x, training=False))
    pruned = prune_channels(model, keep)
    after = np.asarray(pruned(x, training=False))
    assert after.shape == before.shape
    assert np.std(before) > 0  # a degenerate output would prove nothing
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(before).max()))
    assert count_macs(pruned).macs == _predicted_macs(model, groups, dropped)
    assert count_macs(pruned).macs < count_macs(model).macs
    new_sizes = {g.name: g.size for g in find_channel_groups(pruned)}
    for g in prunable:
        assert new_sizes[g.name] == g.size - dropped[g.name]
    for name in protect:
        for w_old, w_new in zip(model.get_layer(name).weights, pruned.get_layer(name).weights):
            np.testing.assert_array_equal(w_old.numpy(), w_new.numpy())
    # the argument is never changed
    np.testing.assert_allclose(np.asarray(model(x, training=False)), before)
    return model, pruned, groups


# --------------------------------------------------------------------------- pure functions

def test_round_keep():
    assert round_keep(64, 0.5) == 32
    assert round_keep(64, 0.3) == 16  # 19.2 -> nearest multiple of 8
    assert round_keep(64, 0.01) == 8  # never below round_to
    assert round_keep(6, 0.5) == 6  # groups of round_to or fewer stay whole
    assert round_keep(20, 0.9) == 16 and round_keep(20, 1.0) == 20
    assert round_keep(100, 0.5, round_to=1) == 50
    assert round_keep(100, 0.99, round_to=16) == 96
    for size in range(1, 300, 7):
        for ratio in (0.1, 0.25, 0.5, 0.77, 1.0):
            k = round_keep(size, ratio)
            assert 1 <= k <= size and (k == size or k % 8 == 0)
    for bad in ((0, 0.5), (8, 0.0), (8, 1.5), (8, float("nan")), (8.0, 0.5)):
        with pytest.raises(ValueError):
            round_keep(*bad)
    with pytest.raises(ValueError, match="round_to"):
        round_keep(8, 0.5, round_to=0)


def test_score_helpers():
    np.testing.assert_allclose(normalised_mean([np.array([1.0, 3.0]), np.array([10.0, 30.0])]),
                               [0.5, 1.5])
    np.testing.assert_array_equal(top_channels(np.array([0.1, 5, 3, 5, 0]), 3), [1, 2, 3])
    maps = np.zeros((2, 4, 4, 3))
    maps[:, :, :, 1] = np.eye(4)
    maps[:, 0, :, 2] = 1.0
    np.testing.assert_array_equal(matrix_rank_per_channel(maps), [0, 4, 1])


# --------------------------------------------------------------------------- groups on a hand model

def _hand_model():
    """Residual Add, Concatenate, squeeze-excite Multiply, Flatten of a 2x2 map into Dense."""
    L = keras.layers
    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.Conv2D(6, 1, name="inner")(x)  # inner channels
    y = L.BatchNormalization(name="inner_bn")(y)
    y = L.Activation("relu", name="inner_act")(y)
    y = L.Conv2D(8, 3, padding="same", name="back")(y)
    x = L.Add(name="add")([x, y])  # stem, back: one group
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = L.Conv2D(3, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)  # joins the stem group
    x = L.Multiply(name="se_gate")([x, s])
    a = L.Conv2D(4, 1, name="left")(x)
    b = L.DepthwiseConv2D(3, padding="same", name="dw")(x)  # joins the stem/back group
    c = L.Concatenate(name="cat")([a, b])  # left at 0..3, stem group at 4..11
    z = L.Conv2D(5, 3, strides=4, padding="same", name="squeeze")(c)  # 2x2x5
    z = L.Flatten(name="flat")(z)
    outputs = L.Dense(CLASSES, name="logits")(z)
    return keras.Model(inputs, outputs, name="hand")


def test_groups_of_a_hand_model():
    model = _hand_model()
    groups = {g.name: g for g in find_channel_groups(model)}
    residual = groups["stem"]
    assert residual.size == 8 and residual.prunable and residual.residual
    assert set(residual.layers("out")) == {"stem", "back", "se_expand"}
    assert set(residual.layers("channel")) == {"stem_bn", "dw"}
    assert set(residual.layers("in")) >= {"inner", "left", "squeeze", "se_reduce"}
    # after the Concatenate the residual channels sit at offset 4 of cat's consumers
    assert {m.offset for m in residual.members if m.layer == "squeeze"} == {4}
    assert {m.offset for m in groups["left"].members if m.layer == "squeeze"} == {0}
    assert "se_expand" in residual.layers("out") and "se_gate" in residual.layers("merge")
    assert groups["inner"].prunable and not groups["inner"].residual
    # Dense after Flatten of a 2x2 map reads each channel at 4 positions
    assert [m.positions for m in groups["squeeze"].members if m.layer == "logits"] == [4]
    assert not groups["logits"].prunable and groups["logits"].reason == "model output"
    assert not groups["image"].prunable and groups["image"].reason == "model input"
    inner = {g.name: g for g in find_channel_groups(model, mode="inner")}
    assert not inner["stem"].prunable and inner["inner"].prunable
    assert inner["left"].prunable  # a Concatenate places channels side by side, no coupling
    protected = {g.name: g for g in find_channel_groups(model, protect=["se_reduce"])}
    assert not protected["stem"].prunable and "se_reduce" in protected["stem"].reason
    assert not protected["se_reduce"].prunable


def test_zero_mask_removal_hand_model(tmp_path):
    _, pruned, _ = _check_zero_mask_removal(_hand_model(), fraction=0.3)
    pruned.save(tmp_path / "pruned.keras")  # a shrunk model is an ordinary Keras model
    loaded = keras.models.load_model(tmp_path / "pruned.keras", compile=False)
    x = _images(2, size=8)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(pruned(x)), rtol=1e-6)


def test_protected_layers_are_untouched():
    _check_zero_mask_removal(_hand_model(), protect=("inner",))


def test_unsupported_layers_are_named():
    L = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="c1")(inputs)
    x = L.LayerNormalization(name="odd_norm")(x)
    model = keras.Model(inputs, L.Conv2D(2, 1)(x))
    with pytest.raises(ShrinkError, match="'odd_norm'.*LayerNormalization"):
        find_channel_groups(model)
    inner = keras.Model(inputs, L.Conv2D(4, 1, name="c2")(inputs), name="backbone")
    outer_in = keras.Input((8, 8, 3))
    wrapped = keras.Model(outer_in, L.Dense(2)(L.GlobalAveragePooling2D()(inner(outer_in))))
    with pytest.raises(ShrinkError, match="'backbone' is a nested model.*flatten_model"):
        find_channel_groups(wrapped)
    from tfedge.graph import flatten_model
    assert any(g.prunable for g in find_channel_groups(flatten_model(wrapped)))
    grouped = keras.Model(inputs, L.Conv2D(6, 1, groups=3, name="grp")(inputs))
    with pytest.raises(ShrinkError, match="'grp'.*grouped"):
        find_channel_groups(grouped)
    with pytest.raises(ShrinkError, match="'nope'"):
        find_channel_groups(_hand_model(), protect=["nope"])
    with pytest.raises(ValueError, match="mode"):
        find_channel_groups(_hand_model(), mode="loose")


def test_prune_channels_rejects_bad_requests():
    model = _hand_model()
    with pytest.raises(ShrinkError, match="no channel group 'missing'"):
        prune_channels(model, {"missing": [0]})
    with pytest.raises(ShrinkError, match="'logits' cannot be pruned"):
        prune_channels(model, {"logits": [0, 1]})
    with pytest.raises(ShrinkError, match="sorted"):
        prune_channels(model, {"inner": [3, 1]})
    with pytest.raises(ShrinkError, match="at least one"):
        prune_channels(model, {"inner": []})
    same = prune_channels(model, {"inner": range(6)})  # keep everything: an equal copy
    x = _images(2, size=8)
    np.testing.assert_allclose(same(x), model(x), rtol=1e-6)
    assert same is not model


# --------------------------------------------------------------------------- real networks

def _registry(name: str):
    from tfedge.models import create_model

    keras.utils.set_random_seed(0)
    return create_model(name, resolution=RES, num_classes=CLASSES)


@pytest.mark.parametrize("name", ["resnet10_025", "mobilenetv2_035", "efficientnet_lite0",
                                  pytest.param("resnet50", marks=pytest.mark.slow)])
def test_zero_mask_removal_registry(name):
    model = _registry(name)
    protect = ("stem_conv",)
    _, pruned, _ = _check_zero_mask_removal(model, protect=protect)
    assert pruned.name.endswith("_shrunk")  # the registry name no longer describes it
    from tfedge.models import spec_of
    from tfedge._errors import ModelConfigError
    with pytest.raises(ModelConfigError):
        spec_of(pruned)


APPLICATIONS = {
    "ResNet50": lambda: keras.applications.ResNet50(
        weights=None, input_shape=(RES, RES, 3), classes=CLASSES),
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(RES, RES, 3), classes=CLASSES),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(
        weights=None, input_shape=(RES, RES, 3), classes=CLASSES),
}


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_zero_mask_removal_keras_applications(name):
    keras.utils.set_random_seed(0)
    model = APPLICATIONS[name]()
    _check_zero_mask_removal(model)


@pytest.mark.parametrize("name", ["resnet10_025", "mobilenetv2_035", *APPLICATIONS])
def test_width_macs_from_channel_counts_match_the_built_model(name):
    """The width search counts MACs of channel counts without building models; it must
    agree exactly with the counter on the model shrink_width builds."""
    from tfedge.shrink._width_macs import width_macs_function

    model = APPLICATIONS[name]() if name in APPLICATIONS else _registry(name)
    rng = np.random.default_rng(0)
    for mode in ("coupled", "inner"):
        groups = [g for g in find_channel_groups(model, mode=mode) if g.prunable]
        macs = width_macs_function(model, groups)
        assert macs is not None, (name, mode)
        assert macs({}) == count_macs(model).macs
        ratios = {g.name: float(rng.uniform(0.05, 1.0)) for g in groups}
        shrunk = shrink_width(model, ratios, importance="l1", round_to=8, mode=mode)
        counts = {g.name: round_keep(g.size, ratios[g.name], 8) for g in groups}
        assert macs(counts) == count_macs(shrunk).macs, (name, mode)


def test_width_search_builds_every_try_when_the_arithmetic_disagrees(monkeypatch):
    import tfedge.shrink._width_macs as width_macs
    from tfedge.shrink._search import width_within

    model = _registry("resnet10_025")
    scores = {g.name: np.arange(g.size, 0, -1.0) for g in find_channel_groups(model)
              if g.prunable}
    target = count_macs(model).macs // 2
    _, right, _ = width_within(model, target, scores, round_to=8)
    monkeypatch.setattr(width_macs, "width_macs_function", lambda m, g: lambda counts: 1)
    shrunk, macs, _ = width_within(model, target, scores, round_to=8)
    assert macs == right == count_macs(shrunk).macs <= target


# --------------------------------------------------------------------------- importance

def test_each_importance_scores_every_channel():
    model = _registry("mobilenetv2_035")
    _randomise_bn(model)
    groups = [g for g in find_channel_groups(model) if g.prunable]
    calibration = (_images(6), np.arange(6) % CLASSES)
    for name in IMPORTANCES:
        scores = make_importance(name)(model, groups, calibration)
        for g in groups:
            assert scores[g.name].shape == (g.size,), (name, g.name)
            assert np.all(np.isfinite(scores[g.name])), (name, g.name)
    for name in ("hrank", "taylor"):
        with pytest.raises(ValueError, match="calibration"):
            make_importance(name)(model, groups, None)
    with pytest.raises(ValueError, match="unknown importance 'nope'"):
        make_importance("nope")
    custom = lambda m, gs, calibration=None: {g.name: np.ones(g.size) for g in gs}  # noqa: E731
    assert make_importance(custom) is custom


def test_importances_rank_zeroed_channels_last():
    model = _registry("resnet10_025")
    _randomise_bn(model)
    group = next(g for g in find_channel_groups(model) if g.prunable and not g.residual)
    _zero_channels(model, group, np.array([1, 5]))
    calibration = (_images(6), np.arange(6) % CLASSES)
    for name in IMPORTANCES:
        s = make_importance(name)(model, [group], calibration)[group.name]
        assert set(np.argsort(s, kind="stable")[:2]) == {1, 5}, name


def test_shrink_width_keeps_rounded_counts():
    model = _registry("resnet10_025")
    before = {g.name: g for g in find_channel_groups(model)}
    small = shrink_width(model, 0.5, importance="bn")
    after = {g.name: g.size for g in find_channel_groups(small)}
    for name, g in before.items():
        assert after[name] == (round_keep(g.size, 0.5) if g.prunable else g.size)
    assert count_macs(small).macs < count_macs(model).macs
    inner = shrink_width(model, 0.5, mode="inner")
    inner_after = {g.name: g.size for g in find_channel_groups(inner)}
    for g in find_channel_groups(model):
        if g.residual:
            assert inner_after[g.name] == g.size
    first = next(n for n, g in before.items() if g.prunable)
    one = shrink_width(model, {first: 0.5})
    assert {g.name: g.size for g in find_channel_groups(one)}[first] == \
        round_keep(before[first].size, 0.5)
    with pytest.raises(ShrinkError, match="'logits'"):
        shrink_width(model, {"logits": 0.5})


# --------------------------------------------------------------------------- depth

@pytest.mark.parametrize("make", [lambda: _registry("resnet18_025"),
                                  APPLICATIONS["MobileNetV2"]], ids=["resnet18_025", "MobileNetV2"])
def test_drop_blocks(make):
    keras.utils.set_random_seed(0)
    model = make()
    _randomise_bn(model)
    blocks = find_blocks(model)
    assert blocks and all(b.macs > 0 for b in blocks)
    victim = blocks[-1]
    # a branch whose last BatchNorm outputs zero adds nothing: dropping it changes nothing
    last_bn = [n for n in victim.layers
               if isinstance(model.get_layer(n), keras.layers.BatchNormalization)][-1]
    bn = model.get_layer(last_bn)
    gamma, beta, mean, var = (w.numpy() for w in bn.weights)
    bn.set_weights([0 * gamma, 0 * beta, mean, var])
    x = _images(4)
    dropped = drop_blocks(model, [victim.name, blocks[0].name])
    assert dropped.output_shape == model.output_shape
    assert count_macs(model).macs - count_macs(dropped).macs == victim.macs + blocks[0].macs
    assert all(n not in {layer.name for layer in dropped.layers} for n in victim.layers)
    only = drop_blocks(model, [victim.name])
    np.testing.assert_allclose(np.asarray(only(x, training=False)),
                               np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)
    scores = block_importance(model, blocks, (x, np.zeros(4, int)))
    assert set(scores) == {b.name for b in blocks} and scores[victim.name] == 0.0
    assert min(scores.values()) == 0.0 and all(np.isfinite(list(scores.values())))
    assert block_importance(model, blocks, None)[victim.name] == 0.0
    with pytest.raises(ShrinkError, match="'nope' is not a removable block"):
        drop_blocks(model, ["nope"])


def test_blocks_of_a_model_without_identity_blocks():
    model = _hand_model()
    assert [b.name for b in find_blocks(model)] == ["add"]
    assert find_blocks(_registry("resnet10_025"))[0].name == "stage1_block1_add"


# --------------------------------------------------------------------------- resolution

def test_set_resolution_keeps_weights_and_scales_macs():
    from tfedge.models import spec_of

    model = _registry("resnet18_025")
    small = set_resolution(model, 64)
    assert small.input_shape == (None, 64, 64, 3)
    assert spec_of(small).resolution == 64 and spec_of(small).stage_widths == \
        spec_of(model).stage_widths
    for a, b in zip(model.weights, small.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    old = {r.name: r for r in count_macs(model).per_layer}
    for row in count_macs(small).per_layer:
        expect = old[row.name].macs if row.type == "Dense" else old[row.name].macs * 4
        assert row.macs == expect, row.name
    # a size the family refuses still works, under a name that claims no architecture
    odd = set_resolution(model, 40)
    assert odd.name.endswith("_shrunk") and odd.output_shape == model.output_shape
    apps = set_resolution(APPLICATIONS["MobileNetV2"](), 64)
    assert apps.output_shape == (None, CLASSES)


def test_set_resolution_refuses_size_dependent_weights():
    L = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="flat_fc")(L.Flatten()(x)))
    with pytest.raises(ShrinkError, match="'flat_fc'"):
        set_resolution(model, 16)
    with pytest.raises(ValueError, match="resolution"):
        set_resolution(model, 0)


# --------------------------------------------------------------------------- int8 deployment

def test_shrunk_model_converts_to_full_int8():
    pytest.importorskip("ai_edge_litert")
    from tfedge._convert import convert_to_int8
    from tfedge.runtime.interpreter import TfliteModel

    model = _registry("resnet10_025")
    _randomise_bn(model)
    small = drop_blocks(shrink_width(model, 0.5), [find_blocks(model)[0].name])
    small = set_resolution(small, RES)
    tflite = TfliteModel(convert_to_int8(small, _images(16), io_dtype="int8"))
    assert tflite.input_spec.dtype == "int8" and tflite.output_spec.dtype == "int8"
    assert tflite.run(_images(2)).shape == (2, CLASSES)
