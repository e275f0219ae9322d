"""Quantisation-aware training (tfedge.qat) and its flags in tfedge-convert.

The fine-tune runs in a child process (tfmot needs tf-keras); these tests run
it on tiny models. Without tf-keras/tfmot installed only the checks that need
neither run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

import keras  # noqa: E402

from tfedge.cli.convert import main as convert_main  # noqa: E402
from tfedge import qat as qat_module  # noqa: E402
from tfedge._convert import convert_classifier, quantize_int8  # noqa: E402
from tfedge._errors import TfedgeError  # noqa: E402
from tfedge.litert import TfliteModel  # noqa: E402
from tfedge.models import create_model  # noqa: E402
from tfedge.qat import QatConfig, qat_int8, qat_missing_packages, qat_support_problem  # noqa: E402

from test_convert import CLASSES, RES, _colour_images, _split, _tiny_model  # noqa: E402

needs_qat = pytest.mark.skipif(qat_missing_packages() is not None,
                               reason="tf-keras / tensorflow-model-optimization not installed")


@pytest.fixture(scope="module")
def trained() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = _tiny_model("tiny_qat")
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _colour_images(384, seed=0)
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


def _softmax_model() -> keras.Model:
    inputs = keras.Input((RES, RES, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Softmax()(keras.layers.Dense(len(CLASSES))(x))
    return keras.Model(inputs, outputs, name="with_softmax")


# --------------------------------------------------------------------------- no tfmot needed


def test_config_is_checked():
    with pytest.raises(TfedgeError, match="images must be a whole number"):
        QatConfig(images=0)
    with pytest.raises(TfedgeError, match="learning_rate must be a number > 0"):
        QatConfig(learning_rate=-1.0)
    with pytest.raises(TfedgeError, match="epochs must be a number > 0"):
        QatConfig(epochs=float("nan"))
    assert QatConfig(epochs=0.5).to_dict()["epochs"] == 0.5


def test_support_problem_names_the_layer(trained):
    assert qat_support_problem(trained) is None
    for name in ("resnet10_025", "mobilenetv2_035"):
        assert qat_support_problem(create_model(name, num_classes=3, resolution=32)) is None, name
    problem = qat_support_problem(_softmax_model())
    assert "Softmax" in problem and "with_softmax" in problem
    assert "functional" in qat_support_problem(keras.Sequential([keras.layers.Dense(2)]))


def test_missing_packages_name_the_install(monkeypatch, tmp_path, capsys):
    real = qat_module.importlib.util.find_spec
    monkeypatch.setattr(qat_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf_keras" else real(name, *a))
    problem = qat_missing_packages()
    assert "tf-keras" in problem and "pip install --no-deps tf-keras" in problem
    with pytest.raises(TfedgeError, match="tf-keras"):
        quantize_int8(_tiny_model(), _colour_images(4, 1)[0], qat=QatConfig())
    rc = convert_main(["classifier", "--model", str(tmp_path / "m.keras"), "--output",
                       str(tmp_path / "b"), "--qat", "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "tf-keras" in err[0]


def test_qat_flags_need_qat(tmp_path, capsys):
    rc = convert_main(["classifier", "--model", str(tmp_path / "m.keras"), "--output",
                       str(tmp_path / "b"), "--qat-fallback", "--data", str(tmp_path)])
    assert rc == 2 and "--qat-fallback only applies with --qat" in capsys.readouterr().err


def test_bad_examples_are_refused():
    x, _ = _colour_images(8, 1)
    with pytest.raises(TfedgeError, match="QAT images range .* is outside \\[0, 255\\]"):
        qat_module._as_pixels(x / 255.0 - 2.0, RES, "QAT images")
    with pytest.raises(TfedgeError, match="must be \\(N, 32, 32, 3\\) pixels"):
        qat_module._as_pixels(x, 32, "QAT images")
    assert qat_module._as_pixels(x, RES, "QAT images").dtype == np.uint8


# --------------------------------------------------------------------------- with tfmot


@needs_qat
def test_qat_int8_matches_the_input_contract_and_accuracy(trained):
    x, y = _colour_images(256, seed=2)
    data, record = qat_int8(trained, x, y, _colour_images(64, seed=1)[0],
                            config=QatConfig(images=256, epochs=1))
    model = TfliteModel(data)
    assert model.input_spec.dtype == "int8" and model.output_spec.dtype == "int8"
    assert model.input_spec.scale == 1.0 and model.input_spec.zero_point == -128
    assert record["method"] == "qat" and record["rebuild_max_logit_difference"] < 1e-4
    assert record["finetune_steps"] == 8 and len(record["finetune_loss"]) == 1
    xt, yt = _colour_images(200, seed=5)
    float_top1 = np.mean(np.argmax(trained.predict(xt, verbose=0), 1) == yt)
    int8_top1 = np.mean(np.argmax(model.run(xt), 1) == yt)
    assert int8_top1 >= float_top1 - 0.02


@needs_qat
@pytest.mark.parametrize("name", ["resnet10_025", "mobilenetv2_035"])
def test_registry_models_rebuild_exactly(name):
    pytest.importorskip("tf_keras")
    keras.utils.set_random_seed(1)
    model = create_model(name, num_classes=3, resolution=32)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    model(x, training=True)  # move the BN statistics off their initial values
    rebuilt = qat_module._rebuild_in_tf_keras(model)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(rebuilt(x, training=False).numpy(),
                               np.asarray(model(x, training=False)), atol=1e-4)


@needs_qat
def test_unsupported_model_falls_back_only_when_allowed():
    model = _softmax_model()
    rep = _colour_images(16, 1)[0]
    with pytest.raises(TfedgeError, match="Softmax.*--qat-fallback"):
        quantize_int8(model, rep, qat=QatConfig())
    data, record = quantize_int8(model, rep, qat=QatConfig(fallback=True))
    assert record["method"] == "ptq" and "Softmax" in record["qat_skipped"]
    assert TfliteModel(data).input_spec.dtype == "int8"


@needs_qat
def test_convert_classifier_records_qat(trained):
    data, metrics = convert_classifier(trained, _split(80, 6), _split(50, 7), calibration_size=40,
                                       check_size=40, batch_size=16,
                                       qat=QatConfig(images=60, epochs=1, batch_size=16))
    assert metrics["quantization"]["method"] == "qat"
    assert metrics["quantization"]["finetune_images"] == 60
    assert metrics["top1_drop_points"] <= 1.0
    assert TfliteModel(data).input_spec.scale == 1.0


@needs_qat
def test_cli_classifier_with_qat(tmp_path, trained, capsys):
    from test_convert import _write_folder_dataset

    from tfedge._train import save_classifier

    path = save_classifier(trained, tmp_path / "tiny.keras", {"class_names": list(CLASSES)})
    data = _write_folder_dataset(tmp_path / "data")
    rc = convert_main(["classifier", "--model", str(path), "--output", str(tmp_path / "bundle"),
                       "--data", str(data), "--calibration-size", "20",
                       "--check-size", "20", "--qat", "--qat-images", "30", "--qat-epochs", "1",
                       "--tolerance", "20"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, out
    result = json.loads(out[-1])
    assert result["passed"] and result["stages"][0]["quantization"] == "qat"
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["stages"][0]["metrics"]["quantization"]["method"] == "qat"
