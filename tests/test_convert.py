"""Full-int8 conversion (tfedge._convert) and the tfedge-convert CLI, on tiny models.

One tiny classifier (16 px, Rescaling -> Conv -> BN -> ReLU -> GAP -> Dense)
is trained for a few seconds on a colour task it can learn, then converted;
its int8 logits are compared with Keras' within stated bounds.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

import keras  # noqa: E402

from tfedge.cli.convert import main as convert_main  # noqa: E402
from tfedge._convert import (ConversionCheckError, ConversionError, _Comparison,  # noqa: E402
                             check_tolerance, compare_float_int8, convert_classifier,
                             convert_to_int8)
from tfedge.data._types import ImageSplit  # noqa: E402
from tfedge.runtime.bundle import (StageEntry, check_tensor_specs, load_bundle,  # noqa: E402
                                   write_bundle)
from tfedge.runtime.errors import BundleError, TfedgeError  # noqa: E402
from tfedge.runtime.interpreter import TfliteModel  # noqa: E402

RES = 16
CLASSES = ("a_red", "b_green", "c_blue")  # sorted, as class folders are
# Stated bounds of the int8-vs-float comparison on the tiny model, in output quantisation
# steps (measured here: mean 0.34, max 7.2 where a logit passes the calibrated range) and
# argmax agreement (measured 100%).
MEAN_LOGIT_ERROR_STEPS = 1.0
MAX_LOGIT_ERROR_STEPS = 10.0
MIN_AGREEMENT = 0.95


def _colour_images(n: int, seed: int, size: int = RES) -> tuple[np.ndarray, np.ndarray]:
    """Raw pixels whose class is the dominant channel, with a patch of another colour."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n).astype(np.int32)
    images = rng.uniform(0, 120, (n, size, size, 3))
    half = size // 2
    for i, y in enumerate(labels):
        images[i, :, :, y] += 120
        r, c = rng.integers(0, half, 2)
        images[i, r:r + half, c:c + half, (y + 1) % 3] += 60
    return np.clip(images, 0, 255).astype(np.float32), labels


def _tiny_model(name: str = "tiny") -> keras.Model:
    inputs = keras.Input((RES, RES, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES))(x)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="module")
def trained() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _colour_images(384, seed=0)
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def int8_bytes(trained) -> bytes:
    return convert_to_int8(trained, _colour_images(64, seed=1)[0], io_dtype="int8")


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("io_dtype, zero_point", [("int8", -128), ("uint8", 0)])
def test_full_int8_matches_keras(trained, io_dtype, zero_point):
    data = convert_to_int8(trained, _colour_images(64, seed=1)[0], io_dtype=io_dtype)
    model = TfliteModel(data)
    assert model.input_spec.dtype == io_dtype and model.output_spec.dtype == io_dtype
    assert model.input_spec.shape == (1, RES, RES, 3)
    assert model.output_spec.shape == (1, len(CLASSES))
    # Rescaling(1/127.5, -1) + a [0, 255] input range: int8 input = pixel - 128, uint8 = pixel.
    assert model.input_spec.scale == pytest.approx(1.0, abs=1e-7)
    assert model.input_spec.zero_point == zero_point
    # Every tensor of the graph is integer: nothing left in float.
    dtypes = {np.dtype(d["dtype"]).name for d in model.interpreter.get_tensor_details()}
    assert dtypes <= {"int8", "uint8", "int32"}, dtypes

    images, labels = _colour_images(300, seed=2)
    result = compare_float_int8(trained, data, images, labels)
    assert result["count"] == 300
    assert result["float_top1"] > 0.9  # the tiny model did learn the task
    assert result["agreement"] >= MIN_AGREEMENT
    assert result["mean_abs_logit_error"] <= MEAN_LOGIT_ERROR_STEPS * result["output_scale"]
    assert result["max_abs_logit_error"] <= MAX_LOGIT_ERROR_STEPS * result["output_scale"]
    assert abs(result["float_top1"] - result["int8_top1"]) <= 0.02
    keras_logits = np.asarray(trained(images[:5], training=False))
    np.testing.assert_allclose(model.run(images[:5]), keras_logits,
                               atol=MAX_LOGIT_ERROR_STEPS * model.output_spec.scale)


def test_input_range_is_pinned_whatever_the_calibration_range(trained):
    dim = _colour_images(32, seed=3)[0] * 0.5 + 40  # pixels in [40, 168] only
    model = TfliteModel(convert_to_int8(trained, dim, num_calibration=16))
    assert model.input_spec.scale == pytest.approx(1.0, abs=1e-7)
    assert model.input_spec.zero_point == -128


def test_tflite_model_input_forms(trained, int8_bytes):
    model = TfliteModel(int8_bytes)
    images, _ = _colour_images(4, seed=4)
    batch = model.run(images)
    assert batch.shape == (4, len(CLASSES)) and batch.dtype == np.float32
    np.testing.assert_array_equal(model.run(images[1]), batch[1])  # (H, W, 3)
    np.testing.assert_array_equal(model.run(images[1:2]), batch[1:2])
    codes = np.round(images).astype(np.int32) - 128  # the int8 input contract: pixel - 128
    np.testing.assert_array_equal(model.run(codes.astype(np.int8)),
                                  model.run(np.round(images)))
    raw = model.run_raw(codes.astype(np.int8))
    assert raw.dtype == np.int8 and raw.shape == (4, len(CLASSES))
    with pytest.raises(TfedgeError, match="takes int8 input"):
        model.run_raw(images)
    with pytest.raises(TfedgeError, match="takes input of shape"):
        model.run(np.zeros((2, RES + 1, RES + 1, 3), np.float32))


def test_bad_representative_images(trained):
    with pytest.raises(TfedgeError, match=r"must be \(N, 16, 16, 3\)"):
        convert_to_int8(trained, np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(TfedgeError, match="look normalised"):
        convert_to_int8(trained, np.random.default_rng(0).uniform(0, 1, (4, RES, RES, 3)))
    with pytest.raises(TfedgeError, match="outside"):
        convert_to_int8(trained, np.full((4, RES, RES, 3), 300.0))
    with pytest.raises(TfedgeError, match="io_dtype"):
        convert_to_int8(trained, np.zeros((4, RES, RES, 3)), io_dtype="int16")


def _with_layer(layer: keras.layers.Layer) -> keras.Model:
    inputs = keras.Input((RES, RES, 3), batch_size=1)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3)(x)
    x = layer(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name="odd")


class _CropLayer(keras.layers.Layer):
    def call(self, x):
        import tensorflow as tf

        return tf.image.crop_and_resize(x, tf.constant([[0.0, 0.0, 0.5, 0.5]]), tf.constant([0]),
                                        (4, 4))


class _LgammaLayer(keras.layers.Layer):
    def call(self, x):
        import tensorflow as tf

        return tf.math.lgamma(x + 2.0)


def test_unconvertible_op_names_layer_and_op():
    model = _with_layer(_CropLayer(name="crop_here"))
    with pytest.raises(ConversionError) as exc:
        convert_to_int8(model, _colour_images(4, seed=5)[0])
    message = str(exc.value)
    assert "\n" not in message
    assert "layer crop_here" in message and "tf.CropAndResize" in message
    assert message.endswith("and convert again")


def test_float_fallback_is_refused_and_named():
    model = _with_layer(_LgammaLayer(name="lgamma_here"))
    with pytest.raises(ConversionError, match="left float computation in layer lgamma_here") as exc:
        convert_to_int8(model, _colour_images(4, seed=5)[0])
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- accuracy check


def test_check_tolerance():
    assert check_tolerance(0.735, 0.730, 1.0) is None
    assert check_tolerance(0.735, 0.725, 1.0) is None  # exactly 1 point: still allowed
    assert check_tolerance(0.70, 0.75, 0.0) is None  # int8 better
    message = check_tolerance(0.735, 0.712, 1.0)
    assert message == ("int8 top-1 0.712 is 2.3 points below float 0.735 (tolerance 1): use more "
                       "calibration images (--calibration-size), or raise --tolerance")
    # One image of 45 is 2.2 points: more calibration images cannot fix that, say what can.
    message = check_tolerance(0.444, 0.422, 1.0, count=45)
    assert message == ("int8 top-1 0.422 is 2.2 points below float 0.444 (tolerance 1): the check "
                       "had only 45 images (one image is 2.2 points): check on more images, or "
                       "raise --tolerance to 2.2")
    assert "--calibration-size" in check_tolerance(0.735, 0.712, 1.0, count=1000)


def _split(n: int, seed: int) -> ImageSplit:
    images, labels = _colour_images(n, seed, size=24)  # resized to 16 by the pipeline
    return ImageSplit(np.round(images).astype(np.uint8), labels, None, CLASSES)


def test_convert_classifier_passes_and_reports(trained):
    data, metrics = convert_classifier(trained, _split(60, 6), _split(50, 7), calibration_size=40,
                                       check_size=30, batch_size=16)
    assert TfliteModel(data).input_spec.dtype == "int8"
    assert metrics["calibration_images"] == 40 and metrics["count"] == 30
    assert metrics["io_dtype"] == "int8" and metrics["tolerance_points"] == 1.0
    assert metrics["top1_drop_points"] == pytest.approx(
        100 * (metrics["float_top1"] - metrics["int8_top1"]))
    assert metrics["top1_drop_points"] <= 1.0


def test_convert_classifier_check_failure(trained, monkeypatch):
    real = _Comparison.result

    def worse(self):
        result = real(self)
        result["int8_top1"] = result["float_top1"] - 0.05
        return result

    monkeypatch.setattr(_Comparison, "result", worse)
    with pytest.raises(ConversionCheckError, match=r"is 5\.0 points below float .* "
                                                   r"\(tolerance 1\)") as exc:
        convert_classifier(trained, _split(20, 6), _split(20, 7), calibration_size=10,
                           check_size=10)
    assert exc.value.metrics["int8_top1"] == pytest.approx(exc.value.metrics["float_top1"] - 0.05)
    with pytest.raises(TfedgeError, match="tolerance must be"):
        convert_classifier(trained, _split(20, 6), _split(20, 7), tolerance_points=-1.0)


def test_bundle_refuses_softmax_outputs(tmp_path):
    from tfedge._convert import convert_classifier_bundle
    from tfedge._errors import ModelConfigError

    inputs = keras.Input((RES, RES, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(x))
    with pytest.raises(ModelConfigError, match="ends in a softmax: bundles hold logits"):
        convert_classifier_bundle(model, _split(10, 6), _split(10, 7), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_bundle_of_other_classes_names_the_folder_the_sidecar_records(tmp_path, trained):
    from tfedge._convert import convert_classifier_bundle
    from tfedge._train import save_classifier

    path = save_classifier(trained, tmp_path / "m.keras", {
        "class_names": ["x", "y", "z"],
        "dataset_info": {"kind": "folders", "path": "/data/shapes"}})
    with pytest.raises(TfedgeError, match=r"trained on classes \['x', 'y', 'z'\].*its sidecar "
                                          r"names the folder '/data/shapes': --data /data/shapes"):
        convert_classifier_bundle(path, _split(10, 6), _split(10, 7), tmp_path / "b")
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- bundle + real model


def test_check_tensor_specs_on_a_real_model(tmp_path, int8_bytes):
    model = TfliteModel(int8_bytes)
    stage = StageEntry(name="tiny", resolution=RES, macs=1, input=model.input_spec,
                       output=model.output_spec)
    path = write_bundle(tmp_path / "b", labels=list(CLASSES), stages=[(stage, int8_bytes)])
    loaded = check_tensor_specs(load_bundle(path))
    assert list(loaded) == ["stage0.tflite"]

    manifest = json.loads((path / "manifest.json").read_text())
    manifest["stages"][0]["output"]["zero_point"] += 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"^stage0\.tflite output zero point is .* but the "
                                          "manifest says") as exc:
        check_tensor_specs(load_bundle(path))
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- CLI


def _write_folder_dataset(root: Path) -> Path:
    from PIL import Image

    for split, (n, seed) in {"train": (36, 10), "val": (24, 11)}.items():
        images, labels = _colour_images(n, seed, size=24)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(image).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def saved_model(trained, tmp_path_factory) -> Path:
    from tfedge._train import save_classifier

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_classifier(trained, path, {"class_names": list(CLASSES)})
    return path


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_cli_classifier_inspect_verify(tmp_path, saved_model, capsys):
    data = _write_folder_dataset(tmp_path / "data")
    bundle = tmp_path / "bundle"
    rc = convert_main(["classifier", "--model", str(saved_model), "--output", str(bundle),
                       "--zip", "--data", str(data), "--calibration-size", "20",
                       "--check-size", "24", "--tolerance", "5"])
    assert rc == 0
    summary = _last_json(capsys)
    assert summary["bundle"] == str(bundle) and summary["passed"] is True
    assert summary["zip"] == str(bundle) + ".zip"
    [stage] = summary["stages"]
    assert stage["name"] == "tiny" and stage["bytes"] == (bundle / "stage0.tflite").stat().st_size
    assert 0.0 <= stage["int8_top1"] <= 1.0

    loaded = load_bundle(bundle)
    assert loaded.labels == CLASSES
    [entry] = loaded.stages
    assert entry.criterion == "max_softmax" and entry.threshold is None
    assert entry.resolution == RES and entry.macs > 0
    assert entry.input.dtype == "int8" and entry.input.zero_point == -128
    assert entry.metrics["calibration_images"] == 20 and entry.metrics["count"] == 24
    assert loaded.metrics["dataset"] == "data" and loaded.metrics["check_split"] == "val"
    with zipfile.ZipFile(str(bundle) + ".zip") as zf:
        assert zf.namelist()[0] == "manifest.json"

    assert convert_main(["inspect", str(bundle)]) == 0
    info = _last_json(capsys)
    assert info["stages"][0]["name"] == "tiny" and info["labels"] == list(CLASSES)
    assert info["stages"][0]["input"]["dtype"] == "int8"

    for target in (bundle, Path(str(bundle) + ".zip")):
        assert convert_main(["verify", str(target)]) == 0
        result = _last_json(capsys)
        assert result["ok"] is True and result["models"][0]["file"] == "stage0.tflite"

    data_bytes = bytearray((bundle / "stage0.tflite").read_bytes())
    data_bytes[len(data_bytes) // 2] ^= 0x01
    (bundle / "stage0.tflite").write_bytes(bytes(data_bytes))
    assert convert_main(["verify", str(bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("tfedge-convert: error: stage0.tflite: SHA-256 mismatch (file altered or "
                       "corrupt): rebuild the bundle with tfedge-convert")


def test_cli_classifier_check_failure_writes_nothing(tmp_path, saved_model, capsys, monkeypatch):
    data = _write_folder_dataset(tmp_path / "data")
    real = _Comparison.result

    def worse(self):
        result = real(self)
        result["int8_top1"] = result["float_top1"] - 0.1
        return result

    monkeypatch.setattr(_Comparison, "result", worse)
    bundle = tmp_path / "bundle"
    rc = convert_main(["classifier", "--model", str(saved_model), "--output", str(bundle),
                       "--data", str(data), "--calibration-size", "10", "--check-size", "10"])
    assert rc == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["passed"] is False
    assert "10.0 points below float" in captured.err
    assert not bundle.exists()


def test_cli_bad_input(tmp_path, capsys):
    assert convert_main(["classifier", "--model", str(tmp_path / "none.keras"), "--output",
                         str(tmp_path / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert convert_main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    for bad in ("nan", "inf", "0"):
        assert convert_main(["inspect", str(tmp_path / "b"), "--max-file-mb", bad]) == 2
        assert "--max-file-mb must be a number > 0" in capsys.readouterr().err
    assert convert_main(["classifier", "--model", "m.keras", "--output", "b.zip"]) == 2
    assert "names a zip" in capsys.readouterr().err
    # --output at a folder of other files: refused before any work, nothing deleted.
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "base.keras").write_bytes(b"weights")
    assert convert_main(["classifier", "--model", "m.keras", "--output",
                         str(tmp_path / "runs")]) == 2
    assert "would delete them" in capsys.readouterr().err
    assert (tmp_path / "runs" / "base.keras").read_bytes() == b"weights"
