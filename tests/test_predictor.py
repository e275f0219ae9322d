"""The foreground predictor: registry, model, decoding, loss, training, files, int8."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfedge._errors import DatasetError, ModelConfigError, TfedgeError
from tfedge.crop import (DEFAULT_PREDICTOR, PredictorSpec, PredictorTrainConfig, build_predictor,
                         decode_boxes, get_predictor_spec, list_predictors, load_predictor,
                         predict_boxes, predictor_spec_of, save_predictor, train_predictor,
                         with_box_labels)
from tfedge.crop._predictor_files import read_predictor_sidecar

TINY = "boxnet_heat_r32_w4"
TINY_REG = "boxnet_reg_r32_w4"
# The predictor is at most this fraction of the base classifier's MACs (issue #3).
MAX_MAC_FRACTION = 0.05


# --------------------------------------------------------------------------- registry


def test_registry_lists_and_parses_names():
    names = list_predictors()
    assert DEFAULT_PREDICTOR in names and names == sorted(names)
    spec = get_predictor_spec("boxnet_reg_r80_w10")  # encoded, not registered
    assert spec == PredictorSpec(head="reg", resolution=80, width=10)
    assert spec.name == "boxnet_reg_r80_w10"
    assert get_predictor_spec(DEFAULT_PREDICTOR, resolution=48).resolution == 48


@pytest.mark.parametrize("name, match", [
    ("boxnet_heat_r64_w1", "width"), ("boxnet_heat_r60_w16", "multiple of 16"),
    ("boxnet_blob_r64_w16", "head"), ("boxnett_heat_r64", "unknown predictor"),
])
def test_bad_names_say_the_fix(name, match):
    with pytest.raises(ModelConfigError, match=match):
        get_predictor_spec(name)


def test_unknown_name_suggests_a_close_one():
    with pytest.raises(ModelConfigError, match="did you mean boxnet_heat_r64_w16"):
        get_predictor_spec("boxnet_heat_r64_w15x")


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("name", [TINY, TINY_REG])
def test_model_outputs_box_parameters_in_unit_range(name):
    model = build_predictor(name)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 4)
    rng = np.random.default_rng(0)
    out = np.asarray(model(rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)))
    assert out.shape == (3, 4) and np.isfinite(out).all()
    assert (out >= 0).all() and (out <= 1).all()
    assert predictor_spec_of(model) == get_predictor_spec(name)


def test_default_predictor_costs_under_five_percent_of_the_base():
    from tfedge._macs import count_macs, macs_of

    predictor = count_macs(build_predictor(DEFAULT_PREDICTOR)).macs
    base = macs_of("resnet10_050", resolution=128, num_classes=10).macs
    assert 0 < predictor <= MAX_MAC_FRACTION * base


def test_spec_of_a_classifier_is_a_clear_error():
    from tfedge.models import create_model

    with pytest.raises(ModelConfigError, match="not a tfedge box predictor"):
        predictor_spec_of(create_model("resnet10_025", resolution=32, num_classes=3))


# --------------------------------------------------------------------------- decode and loss


def test_decode_boxes():
    out = decode_boxes([[0.5, 0.5, 0.2, 0.4], [0.05, 0.95, 0.2, 0.2], [0.5, 0.5, -0.1, 0.3]])
    np.testing.assert_allclose(out, [[0.4, 0.3, 0.6, 0.7], [0.0, 0.85, 0.15, 1.0],
                                     [0.5, 0.35, 0.5, 0.65]], atol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(TfedgeError, match="shape"):
        decode_boxes([0.5, 0.5, 0.2])


@pytest.mark.parametrize("name", [TINY, TINY_REG])
def test_export_model_decodes_to_the_same_boxes(name):
    from tfedge.crop.geometry import decode_predictor_outputs
    from tfedge.crop import predictor_export_model

    model = build_predictor(name)
    exported = predictor_export_model(model)
    images = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    outputs = exported(images)
    outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    assert len(outputs) == (2 if "heat" in name else 1)
    np.testing.assert_allclose(decode_predictor_outputs(outputs[::-1]),
                               decode_boxes(np.asarray(model(images))), atol=1e-5)
    assert predictor_spec_of(exported) == predictor_spec_of(model)


def test_decode_outputs_rejects_bad_forms():
    from tfedge.crop.geometry import decode_heatmap, decode_predictor_outputs

    with pytest.raises(TfedgeError, match="square number"):
        decode_heatmap(np.zeros((1, 10)), np.zeros((1, 10, 2)))
    with pytest.raises(TfedgeError, match="sizes"):
        decode_heatmap(np.zeros((1, 16)), np.zeros((1, 16)))
    with pytest.raises(TfedgeError, match="one output"):
        decode_predictor_outputs([np.zeros((1, 4))] * 3)


def test_decode_numpy_and_tf_agree():
    from tfedge.crop._box_losses import decode_boxes_tf

    params = np.random.default_rng(1).uniform(-0.2, 1.2, (500, 4)).astype(np.float32)
    np.testing.assert_allclose(decode_boxes_tf(params).numpy(), decode_boxes(params), atol=1e-7)


def test_box_loss_is_zero_at_the_truth_and_grows_with_error():
    import tensorflow as tf

    from tfedge.crop._box_losses import box_loss_tf

    truth = tf.constant([[0.2, 0.2, 0.6, 0.6]] * 3)
    pred = tf.constant([[0.2, 0.2, 0.6, 0.6], [0.25, 0.25, 0.65, 0.65], [0.7, 0.7, 0.9, 0.9]])
    loss = box_loss_tf(truth, pred).numpy()
    assert loss[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < loss[1] < loss[2]
    # Disjoint boxes still get a gradient that moves the prediction (GIoU).
    with tf.GradientTape() as tape:
        tape.watch(pred)
        value = tf.reduce_sum(box_loss_tf(truth, pred, l1_weight=0.0))
    grad = tape.gradient(value, pred).numpy()
    assert np.abs(grad[2]).sum() > 0


def test_train_config_rejects_bad_values():
    with pytest.raises(TfedgeError, match="epochs"):
        PredictorTrainConfig(epochs=0)
    with pytest.raises(TfedgeError, match="loss weights"):
        PredictorTrainConfig(l1_weight=0.0, giou_weight=0.0)


# --------------------------------------------------------------------------- training


def test_train_needs_boxes(colour_split):
    import dataclasses

    with pytest.raises(DatasetError, match="no boxes"):
        train_predictor(TINY, dataclasses.replace(colour_split, boxes=None),
                        config=PredictorTrainConfig(epochs=1))


def test_with_box_labels_checks_shape(colour_split):
    with pytest.raises(DatasetError, match="shape"):
        with_box_labels(colour_split, np.zeros((3, 4)))
    with pytest.raises(DatasetError, match="NaN"):
        with_box_labels(colour_split, np.full((len(colour_split), 4), np.nan))


@pytest.mark.slow
def test_training_learns_boxes_and_saves(colour_split, tmp_path):
    from conftest import make_colour_split

    val = make_colour_split(48, seed=7)
    out = tmp_path / "pred.keras"
    config = PredictorTrainConfig(epochs=6, batch_size=16, learning_rate=1e-2,
                                  photometric=False, bn_recalibration_batches=4)
    untrained = build_predictor(TINY)
    from tfedge.crop._evaluate import iou_summary

    before = iou_summary(predict_boxes(untrained, val), val.boxes)["miou"]
    model, result = train_predictor(TINY, make_colour_split(320, seed=3), val=val, config=config,
                                    output=out, metadata={"note": "test"})
    assert result.epochs_run == 6 and len(result.history) == 6
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.val["miou"] > before + 0.1
    assert set(result.val) >= {"miou", "p10", "p50", "p90", "above_0.5", "count"}
    side = read_predictor_sidecar(out)
    assert side["format"] == "tfedge-predictor" and side["note"] == "test"
    assert side["spec"] == {"head": "heat", "resolution": 32, "width": 4}
    loaded = load_predictor(out)
    np.testing.assert_allclose(predict_boxes(loaded, val), predict_boxes(model, val), atol=1e-5)
    boxes = predict_boxes(model, val)
    assert boxes.shape == (len(val), 4) and boxes.dtype == np.float32
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes >= 0).all() and (boxes <= 1).all()


@pytest.mark.slow
def test_unknown_boxes_are_skipped(tmp_path):
    from tfedge.data import FileSplit
    from PIL import Image

    from conftest import make_colour_split

    split = make_colour_split(16)
    paths = []
    for i, img in enumerate(split.images):
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        paths.append(str(path))
    boxes = split.boxes.copy()
    boxes[::2] = np.nan
    files = FileSplit(tuple(paths), split.labels, boxes, split.class_names)
    model, result = train_predictor(TINY, files, config=PredictorTrainConfig(
        epochs=1, batch_size=4, bn_recalibration_batches=1))
    assert np.isfinite(result.history[0]["loss"])


def test_load_rejects_missing_and_classifiers(tmp_path):
    from tfedge._train import save_classifier
    from tfedge.models import create_model

    with pytest.raises(TfedgeError, match="does not exist"):
        load_predictor(tmp_path / "nope.keras")
    path = save_classifier(create_model("resnet10_025", resolution=32, num_classes=3),
                           tmp_path / "clf.keras")
    with pytest.raises(ModelConfigError, match="not a tfedge box predictor"):
        load_predictor(path)
    with pytest.raises(TfedgeError, match=".keras"):
        save_predictor(build_predictor(TINY), tmp_path / "p.h5")


@pytest.mark.slow
def test_int8_tflite_keeps_box_precision():
    """Full-int8 with builtin ops only; the int8 boxes overlap the float ones almost exactly."""
    from ai_edge_litert.interpreter import Interpreter

    from tfedge._convert import convert_to_int8
    from conftest import make_colour_split

    split = make_colour_split(96, seed=11)
    model, _ = train_predictor(TINY, split, config=PredictorTrainConfig(
        epochs=3, batch_size=16, learning_rate=1e-2, photometric=False,
        bn_recalibration_batches=2))
    images = split.images.astype(np.float32)
    from tfedge.crop import predictor_export_model
    from tfedge.crop.geometry import decode_predictor_outputs

    data = convert_to_int8(predictor_export_model(model), images[:48])
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outs = interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and all(o["dtype"] == np.int8 for o in outs)
    assert sorted(tuple(o["shape"]) for o in outs) == [(1, 64), (1, 64, 2)]  # 8 x 8 cells
    int8_boxes = []
    for image in images[48:]:
        interpreter.set_tensor(inp["index"], (image[None] - 128).astype(np.int8))
        interpreter.invoke()
        dequantised = [(interpreter.get_tensor(o["index"]).astype(np.float32)
                        - o["quantization"][1]) * o["quantization"][0] for o in outs]
        int8_boxes.append(decode_predictor_outputs(dequantised))
    int8_boxes = np.concatenate(int8_boxes)
    float_boxes = decode_boxes(np.asarray(model(images[48:])))
    from tfedge.data._boxes import iou

    # A tiny (width 4), briefly trained model is the worst case for int8 noise; on the
    # benchmark, boxnet_heat_r96_w11 exported this way lost nothing in int8 (0.701 -> 0.704).
    truth = split.boxes[48:]
    assert float(np.mean(iou(int8_boxes, float_boxes))) > 0.8
    float_quality = float(np.mean(iou(float_boxes, truth)))
    assert float(np.mean(iou(int8_boxes, truth))) > float_quality - 0.05


# --------------------------------------------------------------------------- pipeline and CLI


def _crop_parser():
    import argparse

    from tfedge.cli._shell import add_common_flags
    from tfedge.cli.crop import register as add_crop_commands

    parser = argparse.ArgumentParser(prog="tfedge")
    add_common_flags(parser)
    add_crop_commands(parser.add_subparsers())
    return parser


def test_cli_predictor_list(capsys):
    from tfedge.cli._shell import run_cli

    assert run_cli(_crop_parser(), ["predictor", "list"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert DEFAULT_PREDICTOR in json.loads(out[-1])["predictors"]


def test_cli_errors_are_one_line(capsys, tmp_path):
    from tfedge.cli._shell import run_cli

    code = run_cli(_crop_parser(), ["predictor", "train", "--output", str(tmp_path / "p.h5")])
    assert code == 2
    assert "--output must end in .keras" in capsys.readouterr().err
    code = run_cli(_crop_parser(), ["predictor", "train", "--output", str(tmp_path / "p.keras"),
                                    "--predictor", "boxnet_heat_r64_w3"])
    assert code == 2 and "width" in capsys.readouterr().err


def test_crop_pool_without_true_boxes_uses_the_predictors_alone(colour_split):
    import dataclasses

    from tfedge.crop._classifier_crops import CropTrainConfig, crop_pool

    no_boxes = dataclasses.replace(colour_split.take(6), boxes=None)
    predictor = build_predictor(TINY)
    pool = crop_pool(no_boxes, CropTrainConfig(resolution=16, copies=2, predicted_copies=2),
                     predictor=predictor)
    assert pool.images.shape == (12, 16, 16, 3)
    with pytest.raises(DatasetError, match="--predicted-copies N --copies N"):
        crop_pool(no_boxes, CropTrainConfig(resolution=16, copies=2, predicted_copies=1),
                  predictor=predictor)


@pytest.mark.slow
def test_crop_classifier_and_pipeline_evaluation(colour_split, tmp_path):
    from tfedge._train import TrainConfig
    from tfedge.crop._evaluate import evaluate_crop_pipeline, save_box_preview
    from tfedge.crop import CropTrainConfig, train_crop_classifier
    from tfedge.crop.geometry import CropConfig

    predictor = build_predictor(TINY)
    crop_config = CropTrainConfig(resolution=32, copies=2, predicted_copies=1)
    classifier, result = train_crop_classifier(
        "resnet10_025", colour_split, crop_config=crop_config, predictor=predictor,
        config=TrainConfig(epochs=1, batch_size=16, bn_recalibration_batches=2),
        output=tmp_path / "crop.keras")
    assert classifier.input_shape == (None, 32, 32, 3)
    assert result.history[0]["epoch"] == 1
    evaluation, boxes = evaluate_crop_pipeline(predictor, classifier, colour_split.take(20),
                                               crop=CropConfig())
    assert evaluation.count == 20 and boxes.shape == (20, 4)
    assert evaluation.pipeline_macs == evaluation.predictor_macs + evaluation.classifier_macs
    for top1 in (evaluation.top1_predicted, evaluation.top1_oracle, evaluation.top1_full):
        assert 0.0 <= top1 <= 1.0
    assert set(evaluation.boxes) >= {"miou", "p50"}
    assert json.loads(json.dumps(evaluation.to_dict()))["pipeline_macs"] > 0
    png = tmp_path / "boxes.png"
    shown = save_box_preview(colour_split.take(20), boxes, png, count=6, order="worst")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(shown) == 6


def test_distractors_setting_reaches_the_batch_augmentation(monkeypatch):
    from tfedge.crop import _box_augment
    from conftest import make_colour_split

    seen = []
    original = _box_augment.augment_batch_tf

    def spy(*args, **kwargs):
        seen.append(kwargs.get("distractors"))
        return original(*args, **kwargs)

    monkeypatch.setattr(_box_augment, "augment_batch_tf", spy)
    _, result = train_predictor(TINY, make_colour_split(16), config=PredictorTrainConfig(
        epochs=1, batch_size=8, distractors=True, bn_recalibration_batches=1))
    assert seen and all(seen) and np.isfinite(result.history[0]["loss"])


def test_a_predictor_next_to_the_sidecar_of_another_save_is_refused(tmp_path):
    # A kill between the model's rename and the sidecar's write leaves the new predictor
    # beside the old sidecar (spec, resolution, refiner links): loading must refuse the pair.
    path = tmp_path / "p.keras"
    save_predictor(build_predictor(TINY), path)
    assert read_predictor_sidecar(path)["spec"] == get_predictor_spec(TINY).to_dict()
    old_sidecar = (tmp_path / "p.keras.json").read_bytes()
    save_predictor(build_predictor("boxnet_heat_r32_w8"), path)
    (tmp_path / "p.keras.json").write_bytes(old_sidecar)  # what the kill leaves
    with pytest.raises(TfedgeError, match="was written for another version of"):
        load_predictor(path)


def test_int8_export_runs_as_one_delegate_partition_with_the_same_outputs():
    """Static-shape upsampling and reshapes at export: nothing between XNNPACK partitions,
    and the int8 maps bit-identical to those of the model's own layers called as built."""
    from collections import Counter

    import keras
    from ai_edge_litert.interpreter import Interpreter

    from tfedge._convert import convert_to_int8
    from tfedge.crop import predictor_export_model
    from tfedge.crop._boxnet import HEAT_LOGIT_NAME, HEAT_SIZE_NAME

    model = build_predictor(TINY)
    images = np.random.default_rng(3).uniform(0, 255, (40, 32, 32, 3)).astype(np.float32)
    as_built = keras.Model(model.input, [model.get_layer(HEAT_LOGIT_NAME).output,
                                         model.get_layer(HEAT_SIZE_NAME).output])
    outputs, ops = {}, {}
    for key, export in (("as_built", as_built), ("export", predictor_export_model(model))):
        interpreter = Interpreter(model_content=convert_to_int8(export, images[:32]))
        interpreter.allocate_tensors()
        ops[key] = Counter(op["op_name"] for op in interpreter._get_ops_details())
        inp = interpreter.get_input_details()[0]
        outputs[key] = []
        for image in images[32:]:
            interpreter.set_tensor(inp["index"], (image[None] - 128).astype(np.int8))
            interpreter.invoke()
            outputs[key].append(sorted((o["shape"].tolist(), interpreter.get_tensor(o["index"])
                                        .tolist()) for o in interpreter.get_output_details()))
    assert outputs["export"] == outputs["as_built"]
    assert ops["as_built"]["TILE"] > 0  # what the static shapes remove (Keras 3's UpSampling2D)
    assert not {"TILE", "SHAPE", "STRIDED_SLICE", "PACK", "EXPAND_DIMS"} & set(ops["export"])
    assert ops["export"]["DELEGATE"] == 1
