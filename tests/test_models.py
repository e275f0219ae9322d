"""Model families, specs and registry: every registered variant builds and runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfedge._errors import ModelConfigError
from tfedge.models._registry import (build_model, create_model, get_spec, list_models,
                                     register_model, spec_of)
from tfedge.models import _registry
from tfedge.models._specs import (EfficientNetLiteSpec, MobileNetV2Spec, ResNetSpec,
                                  is_spec_name, spec_from_dict, spec_from_name)

REPO = Path(__file__).resolve().parents[1]
TINY = 32
CLASSES = 3
VARIANTS = list_models()


def _pixels(n: int = 2, size: int = TINY, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


# --------------------------------------------------------------------------- every variant

def test_registry_has_the_documented_variants():
    assert set(VARIANTS) == {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet18_050", "resnet18_025",
        "resnet10_050", "resnet10_025", "mobilenetv2_100", "mobilenetv2_075",
        "mobilenetv2_050", "mobilenetv2_035", "efficientnet_lite0", "efficientnet_lite1",
        "efficientnet_lite2", "efficientnet_lite3", "efficientnet_lite4"}
    assert list_models("resnet18*") == ["resnet18", "resnet18_025", "resnet18_050"]


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_builds_and_runs(name):
    model = create_model(name, resolution=TINY, num_classes=CLASSES)
    out = model(_pixels(), training=False)
    assert tuple(out.shape) == (2, CLASSES)
    assert out.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(out)))
    assert model.input_shape == (None, TINY, TINY, 3)
    assert model.name == get_spec(name, resolution=TINY, num_classes=CLASSES).name


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_spec_round_trips(name):
    spec = get_spec(name)
    default_resolution = {"efficientnet_lite1": 240, "efficientnet_lite2": 260,
                          "efficientnet_lite3": 280, "efficientnet_lite4": 300}.get(name, 224)
    assert spec.resolution == default_resolution and spec.num_classes == 1000
    assert spec_from_name(spec.name) == spec
    assert spec_from_name(spec.name).name == spec.name
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert type(spec).from_dict(spec.to_dict()) == spec
    assert get_spec(spec.name) == spec  # full encoded names are accepted too
    assert is_spec_name(spec.name) and not is_spec_name(name)


# --------------------------------------------------------------------------- topology

def test_resnet_standard_topologies():
    assert get_spec("resnet18").stage_depths == (2, 2, 2, 2)
    assert get_spec("resnet34").stage_depths == (3, 4, 6, 3)
    assert get_spec("resnet50").block == "bottleneck"
    assert get_spec("resnet101").stage_depths == (3, 4, 23, 3)
    assert get_spec("resnet50").stage_out_widths == (256, 512, 1024, 2048)
    assert get_spec("resnet18_050").stage_widths == (32, 64, 128, 256)
    assert get_spec("resnet18_050").stem_width == 32
    assert get_spec("resnet10_025").stage_depths == (1, 1, 1, 1)
    assert get_spec("resnet10_025").stage_widths == (16, 32, 64, 128)
    assert get_spec("resnet18").output_stride == 32
    assert get_spec("resnet18", stem="small", resolution=32).output_stride == 8


def test_mobilenetv2_widths_follow_the_reference_rounding():
    assert get_spec("mobilenetv2_100").resolved_stage_widths == (16, 24, 32, 64, 96, 160, 320)
    assert get_spec("mobilenetv2_075").resolved_stage_widths == (16, 24, 24, 48, 72, 120, 240)
    assert get_spec("mobilenetv2_035").resolved_stage_widths == (8, 8, 16, 24, 32, 56, 112)
    assert get_spec("mobilenetv2_035").resolved_stem_width == 16
    assert get_spec("mobilenetv2_050").resolved_last_width == 1280
    assert MobileNetV2Spec(width_multiplier=1.4).resolved_last_width == 1792


@pytest.mark.parametrize("alpha", [0.35, 1.0])
def test_mobilenetv2_matches_keras_applications(alpha):
    import keras

    from tfedge._macs import count_macs

    ref = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=alpha, weights=None,
                                         classes=CLASSES)
    ours = create_model("mobilenetv2_100", width_multiplier=alpha, resolution=96,
                        num_classes=CLASSES)
    assert ours.count_params() == ref.count_params()
    assert count_macs(ours).macs == count_macs(ref).macs


def test_resnet_layer_names_and_input_pipeline():
    import keras

    model = create_model("resnet18", resolution=TINY, num_classes=CLASSES)
    names = {layer.name for layer in model.layers}
    for expected in ("image", "rescale", "stem_conv", "stem_bn", "stem_relu", "stem_pool",
                     "stage1_block1_conv1", "stage1_block2_conv2", "stage2_block1_conv1",
                     "stage2_block1_shortcut_conv", "stage2_block1_shortcut_bn",
                     "stage4_block2_add", "pool", "logits"):
        assert expected in names
    assert "stage1_block1_shortcut_conv" not in names  # same shape: identity shortcut
    rescale = model.layers[1]
    assert isinstance(rescale, keras.layers.Rescaling)
    assert rescale.scale == pytest.approx(1 / 127.5) and rescale.offset == pytest.approx(-1.0)
    # v1.5: the stride of a downsampling bottleneck sits on the 3x3 conv.
    bottleneck = create_model("resnet50", resolution=TINY, num_classes=CLASSES)
    assert bottleneck.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert bottleneck.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert isinstance(model.get_layer("logits"), keras.layers.Dense)
    assert model.get_layer("logits").activation.__name__ == "linear"


def test_efficientnet_lite_follows_the_reference_scaling():
    # Widths and depths of the reference builder (round_filters / round_repeats with the
    # stem, head and first/last stage depths fixed).
    lite0, lite2, lite4 = (get_spec(f"efficientnet_lite{i}") for i in (0, 2, 4))
    assert lite0.stage_depths == (1, 2, 2, 3, 3, 4, 1)
    assert lite0.stage_widths == (16, 24, 40, 80, 112, 192, 320)
    assert lite2.stage_depths == (1, 3, 3, 4, 4, 5, 1)
    assert lite2.stage_widths == (16, 24, 48, 88, 120, 208, 352)
    assert lite4.stage_depths == (1, 4, 4, 6, 6, 8, 1)
    assert (lite4.stem_width, lite4.head_width, lite4.resolution) == (32, 1280, 300)
    assert lite0.output_stride == 32 and lite0.stage_kernels == (3, 3, 5, 3, 5, 5, 3)


def test_efficientnet_lite_layers_padding_and_normalisation():
    import keras

    model = create_model("efficientnet_lite0", resolution=40, num_classes=CLASSES)
    names = {layer.name for layer in model.layers}
    assert "stage1_block1_expand_conv" not in names
    for expected in ("stem_conv", "stage2_block1_expand_relu", "stage2_block2_add",
                     "stage3_block1_dw_conv", "stage7_block1_project_bn", "head_relu", "logits"):
        assert expected in names
    assert not any("se_" in n or "squeeze" in n for n in names)  # no squeeze-excite
    assert model.get_layer("stage3_block1_dw_conv").kernel_size == (5, 5)
    assert model.get_layer("stage1_block1_dw_relu").max_value == 6.0
    assert model.get_layer("head_bn").epsilon == 1e-3
    # 'same' padding: 40 px -> 20 -> 10 -> 5 -> 3 -> 2 (ceil), any side >= 32 works.
    assert model.get_layer("head_conv").output.shape[1] == 2
    # (pixel - 127) / 128: pixel 127 -> 0, pixel 255 -> 1.
    rescale = keras.Model(model.input, model.get_layer("rescale").output)
    out = np.asarray(rescale(np.full((1, 40, 40, 3), [127.0, 255.0, 0.0], np.float32)))
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 1.0, -127.0 / 128.0], atol=1e-6)


def test_efficientnet_lite_knobs_and_resolution():
    spec = get_spec("efficientnet_lite0", width_multiplier=0.5, stage_depths=(1, 1, 1, 1, 1, 1, 1),
                    resolution=100, num_classes=3)
    assert spec.stage_widths == (8, 16, 24, 40, 56, 96, 160) and spec.stem_width == 16
    assert spec.head_width == 1280  # the reference keeps the head fixed
    assert spec_from_name(spec.name) == spec and get_spec(spec.name) == spec
    assert EfficientNetLiteSpec().name == get_spec("efficientnet_lite0").name
    with pytest.raises(ModelConfigError, match="at least 32"):
        get_spec("efficientnet_lite0", resolution=16)
    with pytest.raises(ModelConfigError, match="7 stages"):
        EfficientNetLiteSpec(stage_depths=(1, 2, 3))


def test_mobilenetv2_layer_names():
    model = create_model("mobilenetv2_035", resolution=TINY, num_classes=CLASSES)
    names = {layer.name for layer in model.layers}
    assert "stage1_block1_expand_conv" not in names  # expansion 1 in the first stage
    for expected in ("stem_conv", "stage1_block1_dw_conv", "stage1_block1_project_bn",
                     "stage2_block1_expand_conv", "stage2_block2_add", "stage7_block1_dw_relu",
                     "head_conv", "pool", "logits"):
        assert expected in names
    assert model.get_layer("stage2_block1_dw_conv").strides == (2, 2)


def test_bn_options_are_applied():
    import keras

    model = create_model("resnet10_025", resolution=TINY, num_classes=CLASSES,
                         bn_momentum=0.8, synchronized_bn=True)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(l.momentum == pytest.approx(0.8) and l.synchronized for l in bns)
    default = create_model("mobilenetv2_035", resolution=TINY, num_classes=CLASSES)
    assert all(l.momentum == pytest.approx(0.9) for l in default.layers
               if isinstance(l, keras.layers.BatchNormalization))
    with pytest.raises(ModelConfigError, match="bn_momentum"):
        create_model("resnet10_025", bn_momentum=1.0)


def test_small_stem_runs_on_tiny_inputs():
    model = create_model("resnet10_025", stem="small", resolution=16, num_classes=CLASSES)
    assert "stem_pool" not in {l.name for l in model.layers}
    assert model.get_layer("stem_conv").kernel_size == (3, 3)
    assert tuple(model.get_layer("stage4_block1_out").output.shape) == (None, 2, 2, 128)
    assert tuple(model(_pixels(size=16)).shape) == (2, CLASSES)


def test_gradients_reach_every_trainable_variable():
    import tensorflow as tf

    model = create_model("resnet10_025", stem="small", resolution=16, num_classes=CLASSES)
    x = tf.constant(_pixels(n=4, size=16))
    y = tf.constant([0, 1, 2, 0])
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == len(model.trainable_variables) > 0
    for var, grad in zip(model.trainable_variables, grads):
        assert grad is not None, var.path
        assert np.all(np.isfinite(grad.numpy())), var.path
        assert np.any(grad.numpy() != 0), var.path


# --------------------------------------------------------------------------- knobs and names

def test_knob_overrides():
    spec = get_spec("resnet18", stage_depths=(1, 2, 1, 1), stage_widths=(8, 16, 24, 32),
                    resolution=64, num_classes=5)
    assert spec == ResNetSpec("basic", (1, 2, 1, 1), (8, 16, 24, 32), 64, 64, 5)
    half = get_spec("resnet18", width_multiplier=0.5)
    assert half == get_spec("resnet18_050")
    quarter = get_spec("resnet18_050", width_multiplier=0.5)  # relative to the variant
    assert quarter == get_spec("resnet18_025")
    mb = get_spec("mobilenetv2_100", width_multiplier=0.5)
    assert mb == get_spec("mobilenetv2_050")
    assert get_spec("mobilenetv2_100", expansion=4).expansion == 4
    with pytest.raises(ModelConfigError, match="not both"):
        get_spec("resnet18", width_multiplier=0.5, stage_widths=(8, 8, 8, 8))
    with pytest.raises(ModelConfigError, match="no knob colour"):
        get_spec("resnet18", colour="red")


def test_mobilenetv2_explicit_widths_round_trip():
    spec = MobileNetV2Spec(0.5, (1, 1, 2, 2, 1, 1, 1), (8, 16, 16, 32, 48, 80, 160),
                           resolution=64, num_classes=4, stem_width=8, last_width=640)
    assert spec_from_name(spec.name) == spec
    assert spec_from_dict(spec.to_dict()) == spec
    model = build_model(spec)
    assert model.get_layer("stem_conv").filters == 8
    assert model.get_layer("stage7_block1_project_conv").filters == 160
    assert model.get_layer("head_conv").filters == 640
    assert spec_of(model) == spec


def test_odd_multiplier_names_round_trip():
    for mult in (0.1, 1.3, 0.123456789, 2.0):
        spec = MobileNetV2Spec(width_multiplier=mult, resolution=32)
        assert "." not in spec.name
        assert spec_from_name(spec.name) == spec


def test_create_model_by_full_encoded_name():
    spec = ResNetSpec("bottleneck", (1, 1), (8, 16), 8, resolution=16, num_classes=2,
                      stem="small")
    assert spec.name == "resnet_bottleneck_d1-1_w8-16_s8small_r16_c2"
    assert spec.output_stride == 2
    model = create_model(spec.name)
    assert model.name == spec.name
    assert spec_of(model) == spec
    assert tuple(model(_pixels(size=16)).shape) == (2, 2)
    assert create_model(spec, num_classes=7).output_shape == (None, 7)


def test_build_model_name_prefix_keeps_the_spec():
    spec = get_spec("resnet10_025", resolution=TINY, num_classes=CLASSES)
    model = build_model(spec, name="teacher")
    assert model.name == f"teacher__{spec.name}"
    assert spec_of(model) == spec
    with pytest.raises(ModelConfigError, match="not valid"):
        build_model(spec, name="a/b")


def test_spec_of_finds_a_wrapped_model_and_rejects_foreign_ones():
    import keras

    inner = create_model("resnet10_025", resolution=TINY, num_classes=CLASSES)
    inputs = keras.Input((TINY, TINY, 3))
    outer = keras.Model(inputs, keras.layers.Softmax()(inner(inputs)), name="wrapper")
    assert spec_of(outer) == spec_of(inner)
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(ModelConfigError, match="create_model"):
        spec_of(foreign)


def test_unknown_name_lists_names_and_closest_match():
    with pytest.raises(ModelConfigError) as info:
        get_spec("resnt18")
    message = str(info.value)
    assert "did you mean resnet18?" in message
    for name in VARIANTS:
        assert name in message
    assert "\n" not in message
    with pytest.raises(ModelConfigError, match="unknown model"):
        create_model("efficientnet_b0")


def test_bad_resolution_names_the_fix():
    with pytest.raises(ModelConfigError) as info:
        get_spec("resnet18", resolution=100)
    assert str(info.value) == ("resolution 100 is not divisible by 32, the output stride of "
                               "resnet18: use 96 or 128")
    with pytest.raises(ModelConfigError, match="mobilenetv2_050: use 32 or 64"):
        create_model("mobilenetv2_050", resolution=48)
    with pytest.raises(ModelConfigError, match="use 32 or more"):
        get_spec("resnet50", resolution=20)
    with pytest.raises(ModelConfigError, match="divisible by 8"):
        ResNetSpec("basic", (1, 1, 1, 1), (8, 8, 8, 8), 8, resolution=12, stem="small")
    with pytest.raises(ModelConfigError, match="resolution must be"):
        get_spec("resnet18", resolution=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"stage_depths": (2, 0, 2, 2)}, "at least 1 block"),
    ({"stage_widths": (64, -128, 256, 512)}, "at least 1 channel"),
    ({"stage_widths": (64, 128, 256)}, "one width per stage"),
    ({"stage_depths": ()}, "empty"),
    ({"block": "wide"}, "basic, bottleneck"),
    ({"stem": "huge"}, "imagenet, small"),
    ({"num_classes": 0}, "num_classes"),
    ({"stem_width": 2.5}, "stem_width"),
    ({"stage_depths": (2.0, 2, 2, 2)}, "positive integers"),
])
def test_bad_resnet_knobs(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        get_spec("resnet18", **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"stage_depths": (1, 2, 3, 4)}, "7 depths"),
    ({"stage_depths": (1, 0, 3, 4, 3, 3, 1)}, "at least 1 block"),
    ({"stage_widths": (16, 24, 32)}, "give 7 widths"),
    ({"stage_widths": (16, 24, 32, 64, 96, 160, -320)}, "at least 1 channel"),
    ({"width_multiplier": -0.5}, "positive number"),
    ({"expansion": 0}, "expansion"),
])
def test_bad_mobilenetv2_knobs(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        get_spec("mobilenetv2_100", **kwargs)


def test_dict_errors():
    data = get_spec("resnet18").to_dict()
    with pytest.raises(ModelConfigError, match="unknown ResNetSpec keys"):
        spec_from_dict({**data, "colour": 1})
    with pytest.raises(ModelConfigError, match="family"):
        spec_from_dict({**data, "family": "vgg"})
    del data["block"]
    with pytest.raises(ModelConfigError, match="incomplete"):
        spec_from_dict(data)
    with pytest.raises(ModelConfigError, match="not an encoded model name"):
        spec_from_name("resnet_basic_d2-2_w8_s8_r32_c2_extra")


def test_register_model(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    register_model("tiny_net", lambda: ResNetSpec("basic", (1,), (8,), 8, stem="small"))
    assert "tiny_net" in list_models()
    assert get_spec("tiny_net", resolution=8).resolution == 8
    with pytest.raises(ModelConfigError, match="already registered"):
        register_model("tiny_net", lambda: get_spec("resnet18"))
    with pytest.raises(ModelConfigError, match="not valid"):
        register_model("Bad Name", lambda: get_spec("resnet18"))

    @register_model("tiny_net", overwrite=True)
    def _factory():
        return MobileNetV2Spec(0.35)

    assert get_spec("tiny_net").family == "mobilenetv2"


# --------------------------------------------------------------------------- persistence

def test_keras_file_round_trip(tmp_path):
    import keras

    model = create_model("mobilenetv2_035", resolution=TINY, num_classes=CLASSES)
    x = _pixels(n=3)
    expected = np.asarray(model(x, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)
    assert spec_of(loaded) == spec_of(model) == get_spec(
        "mobilenetv2_035", resolution=TINY, num_classes=CLASSES)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


def test_specs_module_does_not_import_tensorflow():
    code = ("import sys, tfedge.models._specs, tfedge._channels, tfedge._macs, "
            "tfedge.models._registry; "
            "from tfedge._macs import estimate_spec; "
            "from tfedge.models._registry import get_spec; "
            "estimate_spec(get_spec('resnet18')); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
