"""Training, evaluation, resume-after-kill, distillation and BN re-estimation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tfedge import TfedgeError
from tfedge._train import (TrainConfig, accuracy_from_logits, ends_in_softmax, evaluate_classifier,
                           load_classifier, read_sidecar, recalibrate_batchnorm, train_classifier,
                           with_logits, with_new_head)

from conftest import make_colour_split

TINY_MODEL = "resnet10_025"
QUICK = dict(batch_size=16, augment=None, bn_recalibration_batches=2)


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_train_writes_model_and_sidecar_that_load_back(tmp_path, colour_split):
    out = tmp_path / "m.keras"
    model, result = train_classifier(TINY_MODEL, colour_split, val=colour_split.take(32),
                                     config=TrainConfig(epochs=1, **QUICK), output=out,
                                     resolution=32)
    assert out.exists() and result.model_path == out
    assert not (tmp_path / "m.keras.backup").exists(), "backup must be removed after success"
    meta = read_sidecar(out)
    assert meta["class_names"] == list(colour_split.class_names)
    assert meta["resolution"] == 32 and meta["num_classes"] == 3
    assert result.val is not None and result.val.count == 32
    loaded = load_classifier(out)
    x = colour_split.images[:4].astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".m.keras*")), "no temporary files left behind"


def test_augment_none_trains_on_whole_unflipped_images(monkeypatch, colour_split):
    import tfedge._train as train_module
    from tfedge.data._tfdata import NO_AUGMENT, AugmentConfig

    seen = []
    real = train_module.make_dataset

    def spy(*args, **kwargs):
        if kwargs.get("training"):
            seen.append(kwargs.get("augment"))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "make_dataset", spy)
    for augment, expected in ((None, NO_AUGMENT), (AugmentConfig(), AugmentConfig())):
        seen.clear()
        train_classifier(TINY_MODEL, colour_split.take(32), resolution=32,
                         config=TrainConfig(epochs=1, steps_per_epoch=1, batch_size=16,
                                            augment=augment, bn_recalibration_batches=1))
        assert seen == [expected]                                # --no-augment means none


def test_both_optimizers_apply_weight_decay():
    from tfedge._train import _make_optimizer

    for name in ("adamw", "sgd"):
        optimizer = _make_optimizer(TrainConfig(optimizer=name, weight_decay=3e-4), 10)
        assert optimizer.weight_decay == pytest.approx(3e-4), name


def test_labels_follow_the_models_class_order(colour_split):
    from tfedge._train import with_model_classes

    names = colour_split.class_names                             # 3 classes
    keep = colour_split.labels != 0
    # A test folder without the first class: its folders number the other two 0 and 1.
    partial = dataclasses.replace(colour_split, images=colour_split.images[keep],
                                  labels=colour_split.labels[keep] - 1,
                                  boxes=None, class_names=names[1:])
    aligned = with_model_classes(partial, names)
    assert aligned.class_names == names
    np.testing.assert_array_equal(aligned.labels, colour_split.labels[keep])
    assert with_model_classes(colour_split, None) is colour_split
    with pytest.raises(TfedgeError, match=r"not trained on: \['extra'\]"):
        with_model_classes(dataclasses.replace(partial, class_names=(names[1], "extra")), names)


def test_training_learns_a_learnable_task(tmp_path):
    train = make_colour_split(192, seed=1)
    test = make_colour_split(60, seed=2)
    model, _ = train_classifier(TINY_MODEL, train,
                                config=TrainConfig(epochs=6, batch_size=16, augment=None,
                                                   learning_rate=3e-3),
                                resolution=32)
    assert evaluate_classifier(model, test).top1 >= 0.9


def test_killed_run_resumes_from_its_last_epoch(tmp_path, colour_split):
    config = TrainConfig(epochs=3, **QUICK)
    out = tmp_path / "m.keras"
    _, first = train_classifier(TINY_MODEL, colour_split, config=config, output=out,
                                resolution=32, stop_after_epochs=1)
    assert first.model_path is None and not out.exists()
    assert (tmp_path / "m.keras.backup").is_dir()
    resumed, second = train_classifier(TINY_MODEL, colour_split, config=config, output=out,
                                       resolution=32)
    assert second.resumed_from_epoch == 1 and second.epochs_run == 3
    assert len(second.history) == 2 and out.exists()
    uninterrupted, _ = train_classifier(TINY_MODEL, colour_split, config=config,
                                        output=tmp_path / "u.keras", resolution=32)
    for a, b in zip(_weights(resumed), _weights(uninterrupted)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_backup_of_another_run_is_not_resumed(tmp_path, colour_split):
    out = tmp_path / "m.keras"
    train_classifier(TINY_MODEL, colour_split, config=TrainConfig(epochs=3, **QUICK), output=out,
                     resolution=32, stop_after_epochs=1)
    with pytest.raises(TfedgeError, match=r"made by another run \(it differs in epochs, "
                                          r"learning_rate\): delete .*m.keras.backup"):
        train_classifier(TINY_MODEL, colour_split, output=out, resolution=32,
                         config=TrainConfig(epochs=4, learning_rate=1e-3, **QUICK))
    with pytest.raises(TfedgeError, match=r"differs in model"):
        train_classifier("resnet10_050", colour_split, output=out, resolution=32,
                         config=TrainConfig(epochs=3, **QUICK))
    _, resumed = train_classifier(TINY_MODEL, colour_split, output=out, resolution=32,
                                  config=TrainConfig(epochs=3, **QUICK))
    assert resumed.resumed_from_epoch == 1


def test_distillation_from_a_teacher_at_another_resolution(tmp_path, colour_split):
    teacher, _ = train_classifier(TINY_MODEL, colour_split, config=TrainConfig(epochs=1, **QUICK),
                                  output=tmp_path / "teacher.keras", resolution=64)
    student, result = train_classifier(
        TINY_MODEL, colour_split, config=TrainConfig(epochs=1, distill_alpha=0.5, **QUICK),
        teacher=tmp_path / "teacher.keras", resolution=32)
    assert student.input_shape[1] == 32
    assert np.isfinite(result.history[-1]["loss"])


def test_teacher_with_other_classes_is_rejected(tmp_path, colour_split):
    from tfedge.models import create_model

    teacher = create_model(TINY_MODEL, resolution=32, num_classes=5)
    with pytest.raises(TfedgeError, match="teacher outputs 5 classes"):
        train_classifier(TINY_MODEL, colour_split, config=TrainConfig(epochs=1, **QUICK),
                         teacher=teacher, resolution=32)


def test_bn_recalibration_sets_statistics_to_the_data_average(colour_split):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.99, name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    features = keras.Model(inputs, model.get_layer("conv").output)
    used = recalibrate_batchnorm(model, colour_split, batches=3, batch_size=32)
    assert used == 3
    batch_means = [np.asarray(features(colour_split.images[i * 32:(i + 1) * 32]
                                       .astype("float32"))).mean(axis=(0, 1, 2))
                   for i in range(3)]
    np.testing.assert_allclose(model.get_layer("bn").moving_mean, np.mean(batch_means, axis=0),
                               rtol=1e-4, atol=1e-4)
    assert model.get_layer("bn").momentum == 0.99, "momentum restored"


def test_accuracy_from_logits_reference_numbers():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    result = accuracy_from_logits(logits, np.array([0, 2, 2, 1]))
    assert result.top1 == 0.5 and result.top5 == 1.0 and result.count == 4
    expected = -np.mean([np.log(np.exp(2) / (np.exp(2) + np.exp(1) + 1)),
                         np.log(np.exp(1) / (1 + np.exp(3) + np.exp(1))),
                         np.log(np.exp(5) / (np.exp(1) + 1 + np.exp(5))), np.log(1 / 3)])
    assert result.loss == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(strategy="tpu"), "unknown strategy 'tpu'"),
    (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'"),
    (dict(distill_alpha=2.0), "distill_alpha must be in"),
])
def test_bad_train_config_is_rejected(kwargs, message):
    with pytest.raises(TfedgeError, match=message):
        TrainConfig(**kwargs)


def test_dataset_with_more_classes_than_model_outputs_is_rejected(colour_split):
    from tfedge.models import create_model

    model = create_model(TINY_MODEL, resolution=32, num_classes=2)
    with pytest.raises(TfedgeError, match="has 2 outputs but the data has 3 classes"):
        train_classifier(model, colour_split, config=TrainConfig(epochs=1, **QUICK))


def test_multi_worker_without_tf_config_says_what_to_set(colour_split, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TfedgeError, match="TF_CONFIG"):
        train_classifier(TINY_MODEL, colour_split,
                         config=TrainConfig(epochs=1, strategy="multi-worker", **QUICK),
                         resolution=32)


def test_load_classifier_errors_name_the_fix(tmp_path):
    with pytest.raises(TfedgeError, match="does not exist"):
        load_classifier(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TfedgeError, match="cannot load"):
        load_classifier(bad)
    (tmp_path / "m.h5").write_bytes(b"")
    with pytest.raises(TfedgeError, match="not a .keras model file"):
        load_classifier(tmp_path / "m.h5")


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_softmax_classifiers_are_used_by_their_logits(tmp_path, colour_split):
    """keras.applications classifiers end in a softmax. tfedge's losses, distillation, exit
    rule and bundles apply softmax themselves: on probabilities they trained a squashed loss
    (and conversion refused the model only at the very end)."""
    import keras

    app = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=3,
                                         alpha=0.35)
    path = tmp_path / "app.keras"
    app.save(path)
    x = colour_split.images[:4].astype("float32")
    loaded = load_classifier(path)
    assert ends_in_softmax(app) and not ends_in_softmax(loaded)
    np.testing.assert_allclose(_softmax(np.asarray(loaded(x))), np.asarray(app(x)), atol=1e-6)

    inputs = keras.Input((32, 32, 3))
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs))
    for head in (keras.layers.Softmax(), keras.layers.Activation("softmax")):
        model = keras.Model(inputs, head(logits))
        stripped = with_logits(model)
        assert ends_in_softmax(model), "the given model is never changed"
        assert stripped.output_shape == (None, 3) and not ends_in_softmax(stripped)
        np.testing.assert_allclose(_softmax(np.asarray(stripped(x))), np.asarray(model(x)),
                                   atol=1e-6)
    assert with_logits(loaded) is loaded  # logits already: the same model

    # Training an in-memory softmax model trains (and writes) its logits.
    out = tmp_path / "trained.keras"
    train_classifier(app, colour_split.take(32), output=out,
                     config=TrainConfig(epochs=1, steps_per_epoch=1, batch_size=16, augment=None,
                                        bn_recalibration_batches=1))
    assert ends_in_softmax(app)
    assert not ends_in_softmax(keras.models.load_model(out, compile=False))


def test_a_given_classifier_whose_outputs_are_not_the_classes_is_refused(tmp_path, colour_split):
    import keras

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(inputs)))
    path = tmp_path / "five.keras"
    model.save(path)
    for given in (model, str(path)):
        with pytest.raises(TfedgeError, match="has 5 outputs but the data has 3 classes: train "
                                              "it with a new head"):
            train_classifier(given, colour_split.take(16), config=TrainConfig(epochs=1, **QUICK))


def test_new_head_replaces_the_final_dense_layer_and_keeps_the_body(tmp_path, colour_split):
    import keras

    inputs = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="body")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1000, name="head")(features),
                        name="tiny_c1000")
    replaced = with_new_head(model, 3)
    assert replaced.output_shape == (None, 3) and replaced.name == "tiny_c3"
    assert replaced.get_layer("head") is not model.get_layer("head")
    np.testing.assert_array_equal(replaced.get_layer("body").get_weights()[0],
                                  model.get_layer("body").get_weights()[0])
    out = tmp_path / "t.keras"
    trained, _ = train_classifier(model, colour_split.take(16), new_head=True, output=out,
                                  config=TrainConfig(epochs=1, **QUICK))
    assert trained.output_shape == (None, 3) and read_sidecar(out)["num_classes"] == 3
    with pytest.raises(TfedgeError, match="registry model .* is built for the data's classes"):
        train_classifier(TINY_MODEL, colour_split.take(16), new_head=True, resolution=32,
                         config=TrainConfig(epochs=1, **QUICK))
    pooled = keras.Model(inputs, features)
    with pytest.raises(TfedgeError, match="ends in GlobalAveragePooling2D"):
        with_new_head(pooled, 3)


def test_corrupt_sidecar_is_reported(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "m.keras.json").write_text("{oops")
    with pytest.raises(TfedgeError, match="not valid JSON"):
        read_sidecar(tmp_path / "m.keras")
    (tmp_path / "m.keras.json").write_text(json.dumps({"a": 1}))
    assert read_sidecar(tmp_path / "m.keras") == {"a": 1}
