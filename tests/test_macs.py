"""MAC/parameter counting and channel arithmetic: published figures, hand counts, helpers."""

from __future__ import annotations

import json

import pytest

from tfedge._channels import round_channels, scale_depths, scale_widths
from tfedge._errors import ModelConfigError
from tfedge._macs import (conv2d_macs, conv2d_transpose_macs, conv_macs, count_macs,
                          dense_macs, depthwise_conv2d_macs, estimate_spec, macs_of,
                          separable_conv2d_macs)
from tfedge.models._registry import get_spec, list_models
from tfedge.models._specs import MobileNetV2Spec, ResNetSpec

# --------------------------------------------------------------------------- channel arithmetic


@pytest.mark.parametrize("channels, kwargs, expected", [
    (12, {}, 16), (18, {}, 24), (33.6, {}, 32), (5.6, {}, 8), (11.2, {}, 16), (3, {}, 8),
    (64, {}, 64), (1280 * 1.4, {}, 1792), (100, {"divisor": 16}, 96),
    (7, {"min_value": 16}, 16), (24, {"divisor": 1}, 24),
])
def test_round_channels_known_values(channels, kwargs, expected):
    assert round_channels(channels, **kwargs) == expected


def test_round_channels_never_drops_more_than_ten_percent():
    for tenth in range(10, 20_000):
        value = tenth / 10
        rounded = round_channels(value)
        assert rounded % 8 == 0 and rounded >= 0.9 * value


@pytest.mark.parametrize("bad", [0, -3, float("nan"), float("inf"), "8", True])
def test_round_channels_rejects_bad_input(bad):
    with pytest.raises(ModelConfigError):
        round_channels(bad)
    with pytest.raises(ModelConfigError, match="divisor"):
        round_channels(16, divisor=0)


def test_scale_depths():
    assert scale_depths((3, 4, 6, 3), 0.5) == (2, 2, 3, 2)
    assert scale_depths((2, 2, 2, 2), 0.5) == (1, 1, 1, 1)
    assert scale_depths([10], 0.7) == (7,)  # 0.7 * 10 == 7.000000000000001
    assert scale_depths((1, 3), 0.01) == (1, 1)
    assert scale_depths((3,), 1.5) == (5,)
    with pytest.raises(ModelConfigError, match="depth multiplier"):
        scale_depths((2,), 0)
    with pytest.raises(ModelConfigError, match="stage depth 2"):
        scale_depths((2, 0), 1.0)


def test_scale_widths():
    assert scale_widths((64, 128, 256, 512), 0.25) == (16, 32, 64, 128)
    assert scale_widths((16, 24, 32, 64, 96, 160, 320), 0.35) == (8, 8, 16, 24, 32, 56, 112)
    assert scale_widths((64,), 0.5, divisor=4) == (32,)
    with pytest.raises(ModelConfigError, match="width 1"):
        scale_widths((-64,), 0.5)


# --------------------------------------------------------------------------- pure MAC formulas

def test_mac_formulas_known_values():
    assert conv2d_macs(112, 112, 7, 7, 3, 64) == 118_013_952  # ResNet stem at 224
    assert conv2d_macs(4, 4, 1, 1, 6, 6, groups=2) == 4 * 4 * 3 * 6
    assert depthwise_conv2d_macs(112, 112, 3, 3, 32) == 3_612_672
    assert depthwise_conv2d_macs(4, 4, 3, 3, 4, depth_multiplier=2) == 1152
    assert separable_conv2d_macs(4, 4, 3, 3, 8, 6) == 4 * 4 * 9 * 8 + 4 * 4 * 8 * 6
    assert conv2d_transpose_macs(4, 4, 2, 2, 6, 2) == 768
    assert dense_macs(512, 1000) == 512_000
    assert dense_macs(8, 3, positions=4) == 96
    assert conv_macs((10,), (3,), 4, 8) == 10 * 3 * 4 * 8
    with pytest.raises(ModelConfigError, match="groups=3"):
        conv2d_macs(4, 4, 3, 3, 8, 6, groups=3)
    with pytest.raises(ModelConfigError, match="c_out"):
        conv2d_macs(4, 4, 3, 3, 8, 0)


# --------------------------------------------------------------------------- graph counter

def _hand_model():
    import keras

    L = keras.layers
    x = inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)  # 8x8x4, bias
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False,
                          name="dw")(x)  # 4x4x8
    x = L.SeparableConv2D(6, 3, padding="same", use_bias=False, name="sep")(x)  # 4x4x6
    x = L.Conv2D(6, 1, groups=2, use_bias=False, name="grouped")(x)  # 4x4x6
    x = L.Conv2DTranspose(2, 2, strides=2, use_bias=False, name="tconv")(x)  # 8x8x2
    x = L.BatchNormalization(name="bn")(x)
    x = L.MaxPooling2D(2, name="maxpool")(x)  # 4x4x2
    x = L.Flatten(name="flat")(x)
    outputs = L.Dense(5, name="fc")(x)
    return keras.Model(inputs, outputs)


def test_count_macs_matches_a_hand_computation():
    report = count_macs(_hand_model())
    by_name = {r.name: r for r in report.per_layer}
    assert by_name["conv"].macs == 8 * 8 * 3 * 3 * 3 * 4 == 6912
    assert by_name["dw"].macs == 4 * 4 * 3 * 3 * 4 * 2 == 1152
    assert by_name["sep"].macs == 4 * 4 * 9 * 8 + 4 * 4 * 8 * 6 == 1920
    assert by_name["grouped"].macs == 4 * 4 * 3 * 6 == 288
    assert by_name["tconv"].macs == 4 * 4 * 2 * 2 * 6 * 2 == 768
    assert by_name["fc"].macs == 32 * 5 == 160
    assert by_name["bn"].macs == by_name["maxpool"].macs == 0
    assert report.macs == 6912 + 1152 + 1920 + 288 + 768 + 160
    assert by_name["conv"].params == 3 * 3 * 3 * 4 + 4
    assert by_name["dw"].params == 72 and by_name["sep"].params == 72 + 48
    assert by_name["grouped"].params == 18 and by_name["tconv"].params == 48
    assert by_name["bn"].params == 8 and by_name["fc"].params == 32 * 5 + 5
    assert report.params == 112 + 72 + 120 + 18 + 48 + 8 + 165
    assert report.trainable_params == report.params - 4  # BN moving mean and variance
    # bias + relu of conv (2 x 256), bn (128), 2x2 max-pool (4 per output, 32 outputs), fc bias
    assert report.elementwise_ops == 2 * 256 + 128 + 4 * 32 + 5
    assert sum(r.params for r in report.per_layer) == report.params
    assert report.uncounted == ()


def test_shared_layers_nested_models_and_leading_dims():
    import keras

    L = keras.layers
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, use_bias=False, name="inner_fc")],
                             name="inner")
    shared = L.Dense(6, use_bias=False, name="shared")
    x = inputs = keras.Input((6,))
    a = inner(shared(shared(x)))
    b = inner(x)
    y = L.Add(name="add")([a, b])
    model = keras.Model(inputs, y)
    report = count_macs(model)
    assert report.macs == 2 * 36 + 2 * 24
    assert report.params == 36 + 24
    assert sum(r.params for r in report.per_layer) == report.params
    assert "inner/inner_fc" in {r.name for r in report.per_layer}
    assert report.elementwise_ops == 4  # one add per output element

    seq = keras.Sequential([keras.Input((4, 8)), L.Dense(3, use_bias=False)])
    assert count_macs(seq).macs == 4 * 8 * 3


def test_a_backbone_built_for_any_input_size_counts_at_its_call_size():
    import keras

    L = keras.layers
    free = keras.Input((None, None, 3))                          # keras.applications' default
    backbone = keras.Model(free, L.Conv2D(8, 3, padding="same", name="conv")(free),
                           name="backbone")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, L.Dense(3, use_bias=False)(L.GlobalAveragePooling2D()(
        backbone(inputs))))
    report = count_macs(model)
    assert report.macs == 32 * 32 * 9 * 3 * 8 + 8 * 3
    assert report.params == 9 * 3 * 8 + 8 + 8 * 3
    assert "backbone/conv" in {r.name for r in report.per_layer}


def test_counter_errors_and_uncounted_layers():
    import keras

    L = keras.layers
    inputs = keras.Input((None, None, 3))
    with pytest.raises(ModelConfigError, match="fixed input resolution"):
        count_macs(keras.Model(inputs, L.Conv2D(2, 3)(inputs)))
    with pytest.raises(ModelConfigError, match="keras.Model"):
        count_macs("resnet18")
    inputs = keras.Input((5,))
    odd = keras.Model(inputs, L.EinsumDense("ab,bc->ac", output_shape=4, name="einsum")(inputs))
    report = count_macs(odd)
    assert report.uncounted == ("einsum",) and report.params == 20 and report.macs == 0


def test_report_helpers():
    report = count_macs(_hand_model())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["macs"] == report.macs and len(data["per_layer"]) == len(report.per_layer)
    assert report.mmacs == pytest.approx(report.macs / 1e6)
    text = report.summary(top=3)
    assert text.splitlines()[1].startswith("conv ") and "total:" in text


# --------------------------------------------------------------------------- published figures

@pytest.mark.parametrize("name, gmacs, mparams", [
    ("resnet50", 4.1, 25.6),
    ("resnet18", 1.8, 11.7),
    ("mobilenetv2_100", 0.300, 3.5),
])
def test_published_figures_at_224(name, gmacs, mparams):
    report = macs_of(name)
    assert report.gmacs == pytest.approx(gmacs, rel=0.03)
    assert report.mparams == pytest.approx(mparams, rel=0.02)
    assert report.uncounted == ()


def test_macs_of_accepts_names_specs_and_models():
    spec = get_spec("resnet10_025", resolution=64, num_classes=10)
    by_name = macs_of("resnet10_025", resolution=64, num_classes=10)
    assert macs_of(spec).macs == by_name.macs
    assert macs_of(spec.name).macs == by_name.macs
    # MACs scale with the number of pixels (exactly, as every layer but the classifier does)
    quarter = macs_of("resnet10_025", resolution=32, num_classes=10)
    fc = 128 * 10
    assert (by_name.macs - fc) == 4 * (quarter.macs - fc)
    from tfedge.models._registry import build_model

    with pytest.raises(ModelConfigError, match="cannot change a built model"):
        macs_of(build_model(spec), resolution=32)


@pytest.mark.parametrize("name", list_models())
def test_estimate_spec_agrees_with_the_graph_counter(name):
    spec = get_spec(name, resolution=64, num_classes=7)
    report = macs_of(spec)
    estimate = estimate_spec(spec)
    assert estimate.macs == report.macs
    assert estimate.trainable_params == report.trainable_params


@pytest.mark.parametrize("spec", [
    ResNetSpec("bottleneck", (2, 1), (8, 24), 16, resolution=16, num_classes=2, stem="small"),
    ResNetSpec("basic", (1, 3, 1), (8, 8, 16), 8, resolution=64, num_classes=4),
    MobileNetV2Spec(0.5, (1, 1, 1, 2, 1, 1, 1), (8, 8, 16, 16, 24, 32, 48), expansion=3,
                    last_width=256, resolution=32, num_classes=2, stem_width=8),
    MobileNetV2Spec(1.4, resolution=32, num_classes=2),
])
def test_estimate_spec_on_custom_specs(spec):
    report = macs_of(spec)
    estimate = estimate_spec(spec)
    assert (estimate.macs, estimate.trainable_params) == (report.macs, report.trainable_params)


def test_estimate_spec_rejects_non_specs():
    with pytest.raises(ModelConfigError, match="ResNetSpec"):
        estimate_spec("resnet18")
