"""The one training engine (tfedge._train.run_training): early stopping, backups, resume,
and the predictor and refiner trained on it."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from tfedge import TfedgeError
from tfedge._train import (AUTO_EPOCHS_CAP, AUTO_PATIENCE, EarlyStopping, TrainConfig,
                           TrainingTask, parse_epochs, read_sidecar, run_training,
                           train_classifier)

from conftest import make_colour_split

STEPS = 2
BATCH = 8


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def _tiny_task(seed: int = 0):
    """A two-layer regression model on fixed random data: fast, deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(3)(inputs)))
    optimizer = keras.optimizers.SGD(0.05)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS * BATCH, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")

    def dataset_fn(epoch):
        return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=epoch).batch(BATCH, drop_remainder=True).repeat()

    def loss_fn(targets, outputs):
        return tf.reduce_mean(tf.square(outputs - targets))

    return TrainingTask(model, optimizer, dataset_fn, loss_fn, STEPS, BATCH, name="tiny")


def _scripted(task, scores, seen):
    """A monitor returning ``scores[epoch - 1]`` and recording the weights it was shown."""
    def monitor():
        epoch = int(task.optimizer.iterations.numpy()) // STEPS
        seen[epoch] = _weights(task.model)
        return scores[epoch - 1]
    return monitor


SCORES = [0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.9, 0.9]  # best at epoch 2; patience 2 stops at 4


def test_early_stopping_stops_and_restores_the_best_weights():
    task = _tiny_task()
    seen: dict[int, list] = {}
    loop = run_training(task, epochs=8, early_stopping=EarlyStopping(
        _scripted(task, SCORES, seen), patience=2, monitor_name="val_x"))
    assert loop.stop_reason == "patience" and loop.epochs_run == 4
    assert loop.best_epoch == 2 and loop.best_score == pytest.approx(0.5)
    assert [r["val_x"] for r in loop.history] == SCORES[:4]
    for a, b in zip(_weights(task.model), seen[2]):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(seen[2][0], seen[4][0]), "training went on after the best epoch"


def test_min_delta_and_the_cap():
    task = _tiny_task()
    loop = run_training(task, epochs=3, early_stopping=EarlyStopping(
        _scripted(task, [0.5, 0.55, 0.58], {}), patience=5, min_delta=0.1))
    assert loop.stop_reason == "epochs" and loop.epochs_run == 3
    assert loop.best_epoch == 1, "gains under min_delta are not improvements"


def test_resumed_early_stopping_run_ends_as_an_uninterrupted_one(tmp_path):
    task = _tiny_task()
    seen: dict[int, list] = {}
    whole = run_training(task, epochs=8, early_stopping=EarlyStopping(
        _scripted(task, SCORES, seen), patience=2))
    backup = tmp_path / "backup"
    first = _tiny_task()
    cut = run_training(first, epochs=8, backup_dir=backup, stop_after_epochs=3,
                       fingerprint={"run": 1}, early_stopping=EarlyStopping(
                           _scripted(first, SCORES, {}), patience=2))
    assert cut.stop_reason == "interrupted" and cut.epochs_run == 3
    assert (backup / "best-2.npz").exists(), "the best weights are backed up"
    again = _tiny_task()  # a new process: fresh weights, restored from the backup
    rest = run_training(again, epochs=8, backup_dir=backup, fingerprint={"run": 1},
                        early_stopping=EarlyStopping(_scripted(again, SCORES, {}), patience=2))
    assert rest.resumed_from == 3 and rest.epochs_run == whole.epochs_run == 4
    assert rest.best_epoch == 2 and rest.stop_reason == "patience"
    for a, b in zip(_weights(again.model), _weights(task.model)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not backup.exists(), "the backup goes when training ends"


def test_a_run_killed_after_it_stopped_early_does_not_train_on(tmp_path, monkeypatch):
    import tfedge._train as engine

    backup = tmp_path / "backup"
    first = _tiny_task()
    # Killed after the last backup, before the run could clean up (or save its model).
    monkeypatch.setattr(engine.shutil, "rmtree", lambda *args, **kwargs: None)
    stopped = run_training(first, epochs=8, backup_dir=backup, early_stopping=EarlyStopping(
        _scripted(first, SCORES, {}), patience=2))
    monkeypatch.undo()
    assert stopped.stop_reason == "patience" and backup.is_dir()
    again = _tiny_task()
    rerun = run_training(again, epochs=8, backup_dir=backup, early_stopping=EarlyStopping(
        _scripted(again, SCORES, {}), patience=2))
    assert rerun.history == () and rerun.resumed_from == 4
    assert (rerun.stop_reason, rerun.best_epoch, rerun.epochs_run) == ("patience", 2, 4)
    for a, b in zip(_weights(again.model), _weights(first.model)):
        np.testing.assert_array_equal(a, b)
    assert not backup.exists()


def test_a_backup_of_another_run_is_refused(tmp_path):
    run_training(_tiny_task(), epochs=3, backup_dir=tmp_path / "b", stop_after_epochs=1,
                 fingerprint={"model": "a"})
    with pytest.raises(TfedgeError, match=r"another run \(it differs in model\)"):
        run_training(_tiny_task(), epochs=3, backup_dir=tmp_path / "b",
                     fingerprint={"model": "b"})


@pytest.mark.parametrize("text, expected", [
    ("12", {"epochs": 12, "patience": None, "min_epochs": 0}),
    ("auto", {"epochs": AUTO_EPOCHS_CAP, "patience": AUTO_PATIENCE, "min_epochs": 0}),
    ("AUTO:30", {"epochs": 30, "patience": AUTO_PATIENCE, "min_epochs": 0}),
    ("auto:30:3", {"epochs": 30, "patience": 3, "min_epochs": 0}),
    ("auto:30:3:12", {"epochs": 30, "patience": 3, "min_epochs": 12}),
])
def test_parse_epochs(text, expected):
    assert parse_epochs(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "auto:x", "auto:5:0", "0", "3:2", "auto:1:2:3",
                                  "auto:10:2:11", "auto:10:2:-1", "auto:1:2:0:4"])
def test_parse_epochs_rejects_bad_values_with_the_fix(text):
    with pytest.raises(argparse.ArgumentTypeError, match="invalid epochs .*'auto'|must be >= 1|"
                                                         "between 0 and the cap"):
        parse_epochs(text)


def test_bad_patience_is_rejected():
    with pytest.raises(TfedgeError, match="patience must be a whole number >= 1"):
        TrainConfig(patience=0)
    with pytest.raises(TfedgeError, match="min_delta must be >= 0"):
        TrainConfig(patience=2, min_delta=-1)
    with pytest.raises(TfedgeError, match="min_epochs=3 only applies with early stopping"):
        TrainConfig(min_epochs=3)
    with pytest.raises(TfedgeError, match=r"min_epochs \(20\) is above the epoch cap \(10\)"):
        TrainConfig(epochs=10, patience=2, min_epochs=20)
    with pytest.raises(TfedgeError, match="min_epochs must be a whole number >= 0"):
        TrainConfig(patience=2, min_epochs=-1)


def test_no_early_stop_before_min_epochs():
    # SCORES stall after epoch 2: patience 2 alone stops at 4; min_epochs 6 lets the late
    # gain at epoch 6 in, then the stall after it stops the run at 8 (the cap).
    task = _tiny_task()
    loop = run_training(task, epochs=8, early_stopping=EarlyStopping(
        _scripted(task, SCORES, {}), patience=2, min_epochs=6))
    assert loop.epochs_run == 8 and loop.best_epoch == 6
    task = _tiny_task()
    loop = run_training(task, epochs=8, early_stopping=EarlyStopping(
        _scripted(task, [0.1, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], {}), patience=2, min_epochs=5))
    assert loop.stop_reason == "patience" and loop.epochs_run == 5 and loop.best_epoch == 2


def test_a_default_min_epochs_leaves_config_records_as_they_were():
    # Backups, sidecars and cached compress steps written before min_epochs existed match.
    from tfedge.crop import PredictorTrainConfig

    assert "min_epochs" not in TrainConfig().to_dict()
    assert "min_epochs" not in PredictorTrainConfig().to_dict()
    # --epochs auto:CAP:PATIENCE:MIN reaches both configs the commands build.
    assert TrainConfig(**parse_epochs("auto:9:2:4")).to_dict()["min_epochs"] == 4
    assert PredictorTrainConfig(**parse_epochs("auto:9:2:4")).to_dict()["min_epochs"] == 4
    with pytest.raises(TfedgeError, match="only applies with early stopping"):
        PredictorTrainConfig(min_epochs=2)


def test_classifier_early_stopping_is_recorded_in_the_sidecar(tmp_path, colour_split):
    out = tmp_path / "m.keras"
    config = TrainConfig(epochs=3, patience=1, batch_size=16, augment=None,
                         bn_recalibration_batches=2, steps_per_epoch=2)
    with pytest.raises(TfedgeError, match="needs a validation split"):
        train_classifier("resnet10_025", colour_split, config=config, resolution=32)
    _, result = train_classifier("resnet10_025", colour_split, val=colour_split.take(32),
                                 config=config, output=out, resolution=32)
    meta = read_sidecar(out)
    assert meta["epochs_used"] == meta["epochs"] == result.epochs_run == len(result.history)
    assert meta["stop_reason"] == result.stop_reason in ("epochs", "patience")
    assert meta["train_config"]["patience"] == 1
    best = meta["best_epoch"]
    assert best == result.best_epoch and 1 <= best <= result.epochs_run
    scores = [r["val_top1"] for r in result.history]
    assert meta["best_val_score"] == pytest.approx(max(scores))
    # The kept weights are the best epoch's: validation scores what the monitor saw then.
    assert result.val.top1 == pytest.approx(scores[best - 1])


def test_a_classifier_at_chance_gets_a_warning_naming_the_fix():
    from tfedge._train import above_chance, chance_warning

    assert not above_chance(0.106, 10) and not above_chance(0.14, 10) and above_chance(0.16, 10)
    assert not above_chance(0.52, 2) and above_chance(0.56, 2) and above_chance(0.002, 1000)
    assert chance_warning(0.539, 10, "patience") is None
    cut = chance_warning(0.106, 10, "patience")
    assert "0.106" in cut and "0.100 for 10 classes" in cut and "--epochs auto:CAP:PATIENCE:MIN" in cut
    short = chance_warning(0.11, 10, "epochs")
    assert "train longer" in short and "MIN" not in short
    assert chance_warning(0.0, 1, "epochs") is None  # one class: no chance level to speak of
    # A depthwise model under AdamW is pointed at the SGD recipe that made MobileNetV2 learn;
    # other models, or SGD already, are not.
    sgd = "--optimizer sgd --learning-rate 0.05 --weight-decay 4e-05"
    assert sgd in chance_warning(0.1, 10, "patience", optimizer="adamw", depthwise=True)
    assert sgd not in chance_warning(0.1, 10, "patience", optimizer="adamw", depthwise=False)
    assert sgd not in chance_warning(0.1, 10, "patience", optimizer="sgd", depthwise=True)
    assert chance_warning(0.5, 10, "patience", optimizer="adamw", depthwise=True) is None


def test_depthwise_models_are_recognised_for_the_chance_warning():
    from tfedge._train import _has_depthwise
    from tfedge.models import create_model

    assert _has_depthwise(create_model("mobilenetv2_035", resolution=32, num_classes=3))
    assert not _has_depthwise(create_model("resnet10_025", resolution=32, num_classes=3))


def test_classifier_history_without_early_stopping_is_unchanged(colour_split):
    _, result = train_classifier("resnet10_025", colour_split, resolution=32,
                                 config=TrainConfig(epochs=1, batch_size=16, augment=None,
                                                    bn_recalibration_batches=1))
    assert set(result.history[0]) == {"epoch", "loss", "train_top1", "seconds",
                                      "images_per_second"}
    assert result.stop_reason == "epochs" and result.best_epoch is None


# --------------------------------------------------------------------------- predictor, refiner

TINY_BOXNET = "boxnet_heat_r32_w4"


def _boxnet_config(**changes):
    from tfedge.crop import PredictorTrainConfig

    # photometric and mix draw from a seeded generator that must resume too.
    base = dict(epochs=2, batch_size=16, steps_per_epoch=2, bn_recalibration_batches=1,
                photometric=True, mix=True, seed=4)
    base.update(changes)
    return PredictorTrainConfig(**base)


@pytest.mark.slow
def test_killed_predictor_training_resumes(tmp_path):
    from tfedge.crop import train_predictor

    split = make_colour_split(48, seed=5)
    out = tmp_path / "p.keras"
    _, cut = train_predictor(TINY_BOXNET, split, config=_boxnet_config(), output=out,
                             stop_after_epochs=1)
    assert cut.stop_reason == "interrupted" and cut.model_path is None and not out.exists()
    assert (tmp_path / "p.keras.backup").is_dir()
    resumed, result = train_predictor(TINY_BOXNET, split, config=_boxnet_config(), output=out)
    assert result.resumed_from_epoch == 1 and result.epochs_run == 2 and len(result.history) == 1
    assert out.exists() and not (tmp_path / "p.keras.backup").exists()
    assert read_sidecar(out)["epochs_used"] == 2
    whole, uninterrupted = train_predictor(TINY_BOXNET, split, config=_boxnet_config())
    assert result.history[0]["loss"] == pytest.approx(uninterrupted.history[1]["loss"], rel=1e-5)
    for a, b in zip(_weights(resumed), _weights(whole)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_predictor_early_stopping_keeps_the_best_iou(tmp_path):
    from tfedge.crop import train_predictor

    split = make_colour_split(48, seed=6)
    with pytest.raises(TfedgeError, match="needs a validation split with boxes"):
        train_predictor(TINY_BOXNET, split, config=_boxnet_config(patience=1))
    _, result = train_predictor(TINY_BOXNET, split, val=split.take(16),
                                config=_boxnet_config(epochs=3, patience=1),
                                output=tmp_path / "p.keras")
    scores = [r["val_miou"] for r in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    assert result.val["miou"] == pytest.approx(max(scores), abs=1e-6)
    meta = read_sidecar(tmp_path / "p.keras")
    assert meta["best_epoch"] == result.best_epoch and meta["stop_reason"] == result.stop_reason


@pytest.mark.slow
def test_killed_refiner_training_resumes(tmp_path):
    import dataclasses

    from tfedge.crop import (RefinerTrainConfig, build_predictor, save_predictor,
                             train_refiner)

    split = make_colour_split(32, seed=7)
    predictor = build_predictor(TINY_BOXNET)
    pred_path = save_predictor(predictor, tmp_path / "pred.keras")
    config = RefinerTrainConfig(passes=1, predicted_copies=1, jittered_copies=1,
                                train=_boxnet_config(photometric=False, dihedral=False,
                                                     mix=False, augment=None))
    out = tmp_path / "ref.keras"
    _, cut = train_refiner(TINY_BOXNET, split, predictor=predictor, config=config, output=out,
                           predictor_path=pred_path, stop_after_epochs=1)
    assert cut.interrupted and not out.exists() and (tmp_path / "ref.keras.backup").is_dir()
    pair, result = train_refiner(TINY_BOXNET, split, predictor=predictor, config=config,
                                 output=out, predictor_path=pred_path)
    assert not result.interrupted and out.exists()
    whole, _ = train_refiner(TINY_BOXNET, split, predictor=predictor, config=config)
    for a, b in zip(_weights(pair.refiner), _weights(whole.refiner)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(TfedgeError, match="early stopping is not available for refiners"):
        train_refiner(TINY_BOXNET, split, predictor=predictor, config=dataclasses.replace(
            config, train=_boxnet_config(patience=2)))


def test_crop_cli_accepts_epochs_auto():
    from tfedge.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["predictor", "train", "--output", "p.keras", "--epochs", "auto"])
    assert args.epochs == {"epochs": AUTO_EPOCHS_CAP, "patience": AUTO_PATIENCE, "min_epochs": 0}
    args = parser.parse_args(["predictor", "train", "--output", "p.keras"])
    assert args.epochs == {"epochs": 12, "patience": None, "min_epochs": 0}
    args = parser.parse_args(["crop", "train", "--model", "m", "--output", "c.keras",
                              "--epochs", "auto:20:3:8"])
    assert args.epochs == {"epochs": 20, "patience": 3, "min_epochs": 8}
    with pytest.raises(SystemExit):
        parser.parse_args(["crop", "train", "--model", "m", "--output", "c.keras",
                           "--epochs", "often"])


def test_crop_classifier_stops_early_on_validation_crops(colour_split):
    from tfedge.crop import CropTrainConfig, train_crop_classifier

    config = TrainConfig(epochs=2, patience=1, batch_size=16, steps_per_epoch=2,
                         bn_recalibration_batches=1)
    _, result = train_crop_classifier("resnet10_025", colour_split,
                                      crop_config=CropTrainConfig(resolution=32, copies=1),
                                      config=config, val=colour_split.take(16))
    assert result.epochs_run == len(result.history) == 2  # patience 1 cannot stop before the cap
    assert "val_top1" in result.history[0] and result.val.count == 16
