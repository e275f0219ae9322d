"""The command-line tools as a user runs them: help, JSON output, one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def run(*args: str, env_extra: dict | None = None, timeout: int = 300):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def tfedge(*args: str, **kw):
    return run("-m", "tfedge.cli", *args, **kw)


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_import_tfedge_does_not_import_tensorflow():
    proc = run("-c", "import sys, tfedge, tfedge.data, tfedge.models, tfedge.cli; "
                     "tfedge.get_spec; tfedge.ImageSplit; "
                     "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["tfedge.cli", "tfedge.cli.convert", "rpi_runner.cli"])
def test_every_tool_explains_itself(module):
    proc = run("-m", module, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout.lower()


@pytest.mark.parametrize("command", ["models", "macs", "data", "train", "evaluate",
                                     "predictor", "crop", "cascade", "shrink", "import"])
def test_every_subcommand_has_help(command):
    proc = tfedge(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert command in proc.stdout


@pytest.mark.parametrize("name, resolution, expected", [
    ("resnet50", 224, 4.1e9), ("resnet18", 224, 1.8e9), ("mobilenetv2_100", 224, 300e6)])
def test_macs_command_matches_published_figures(name, resolution, expected):
    proc = tfedge("macs", name, "--resolution", str(resolution))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(result["macs"] - expected) / expected <= 0.03
    assert result["params"] > 0


def test_macs_of_a_saved_model_file(tmp_path):
    from tfedge.models import create_model

    path = tmp_path / "m.keras"
    create_model("resnet10_025", resolution=32, num_classes=3).save(path)
    proc = tfedge("macs", str(path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    from tfedge import macs_of

    assert result["macs"] == macs_of("resnet10_025", resolution=32, num_classes=3).macs
    assert result["uncounted_layers"] == []
    for flag in ("--resolution", "--num-classes"):
        proc = tfedge("macs", str(path), flag, "10")
        assert proc.returncode == 2 and f"{flag} applies to registry names only" in proc.stderr


def test_macs_names_the_layers_it_cannot_count(tmp_path):
    import keras

    inputs = keras.Input((8, 4))
    outputs = keras.layers.MultiHeadAttention(num_heads=1, key_dim=4, name="attention")(inputs,
                                                                                        inputs)
    path = tmp_path / "attention.keras"
    keras.Model(inputs, outputs).save(path)
    proc = tfedge("macs", str(path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["uncounted_layers"] == ["attention"]
    assert "cannot count: attention" in proc.stderr


def test_models_lists_the_registry():
    proc = tfedge("models")
    assert proc.returncode == 0
    names = json.loads(proc.stdout.strip().splitlines()[-1])["models"]
    assert {"resnet18", "resnet50", "mobilenetv2_100"} <= set(names)


def test_unknown_model_is_one_line_error():
    assert_one_line_error(tfedge("macs", "resnt18"), "unknown model 'resnt18'", "resnet18")


def test_indivisible_resolution_is_one_line_error():
    assert_one_line_error(tfedge("macs", "resnet18", "--resolution", "100"),
                          "not divisible by 32", "use 96 or 128")


def test_missing_fashion_mnist_is_one_line_error(tmp_path):
    proc = tfedge("data", "--fashion-mnist", str(tmp_path / "nowhere"), "--train-size", "8",
                  "--val-size", "4", "--test-size", "4", "--image-size", "32",
                  "--object-size", "8", "16", env_extra={"TFEDGE_CACHE": str(tmp_path / "c")})
    assert_one_line_error(proc, "apt-get install dataset-fashion-mnist")


def test_missing_folder_dataset_is_one_line_error(tmp_path):
    proc = tfedge("evaluate", "--model", str(tmp_path / "m.keras"), "--data",
                  str(tmp_path / "nope"))
    assert_one_line_error(proc)


def _folder_dataset(root: Path, count: int = 6, size: int = 32) -> None:
    from PIL import Image

    from conftest import make_colour_split

    split = make_colour_split(count * 3, size=size)
    for i, (image, label) in enumerate(zip(split.images, split.labels)):
        folder = root / split.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"img{i}.png")


def test_malformed_voc_xml_is_one_line_error(tmp_path):
    _folder_dataset(tmp_path / "data")
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    (boxes / "img0.xml").write_text("<annotation><object><bndbox><xmin>abc</xmin>")
    proc = tfedge("data", "--data", str(tmp_path / "data"), "--boxes", str(boxes))
    assert_one_line_error(proc, "img0.xml")


@pytest.mark.parametrize("epochs", ["0", "auto:x", "ten", "auto:5:0"])
def test_train_refuses_a_bad_epoch_budget_before_loading_data(epochs, tmp_path):
    proc = tfedge("train", "--model", "resnet10_025", "--epochs", epochs,
                  "--output", str(tmp_path / "m.keras"), "--data", str(tmp_path / "missing"))
    assert_one_line_error(proc, "epochs")


def test_train_then_evaluate_a_folder_dataset_end_to_end(tmp_path):
    _folder_dataset(tmp_path / "data")
    out = tmp_path / "m.keras"
    proc = tfedge("train", "--model", "resnet10_025", "--resolution", "32", "--epochs", "auto:2:1",
                  "--batch-size", "8", "--data", str(tmp_path / "data"), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] in (1, 2) and summary["macs"] > 0 and out.exists()
    assert summary["stop_reason"] in ("epochs", "patience") and summary["best_epoch"] in (1, 2)
    assert "epoch 1/2" in proc.stderr, "progress is shown"
    proc = tfedge("evaluate", "--model", str(out), "--data", str(tmp_path / "data"),
                  "--split", "val")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.0 <= result["top1"] <= 1.0 and result["count"] >= 3


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_two_worker_training_on_loopback_ends_with_identical_weights(tmp_path):
    import os

    ports = [str(p) for p in _free_ports(2)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    workers = [subprocess.Popen([sys.executable, str(TESTS / "multiworker_worker.py"), str(i),
                                 *ports, str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
               for i in range(2)]
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err[-3000:]
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            worker.kill()
    assert [o["epochs"] for o in outputs] == [2, 2]
    assert [o["wrote_model"] for o in outputs] == [True, False], "only the chief writes"
    assert (tmp_path / "model.keras").exists()
    w0, w1 = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])


def test_train_on_the_benchmark_keeps_an_encoded_names_resolution(monkeypatch):
    import tfedge.cli as cli
    from tfedge.cli import core

    seen = {}
    monkeypatch.setattr(core, "cmd_train", lambda args: seen.setdefault(args.model, args.resolution))
    parser = cli.build_parser()
    for model, expected in (("resnet10_025", 96),
                            ("resnet_basic_d1-1-1-1_w16-32-64-128_s16_r64_c10", None),
                            ("saved.keras", None)):
        args = parser.parse_args(["train", "--model", model, "--output", "m.keras",
                                  "--image-size", "96"])
        args.func(args)
        assert seen[model] == expected, model                    # None: the model's own


@pytest.mark.parametrize("model, flags, expected", [
    # A MobileNetV2 from scratch gets its family's SGD recipe (it stays at chance under AdamW).
    ("mobilenetv2_035", [], {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 4e-5}),
    # A flag the user sets wins over the recipe; the rest of the recipe stays.
    ("mobilenetv2_050", ["--learning-rate", "0.01"],
     {"optimizer": "sgd", "learning_rate": 0.01, "weight_decay": 4e-5}),
    # Another optimiser declines the recipe whole: its learning rate is not AdamW's.
    ("mobilenetv2_050", ["--optimizer", "adamw"],
     {"optimizer": "adamw", "learning_rate": 0.002, "weight_decay": 5e-4}),
    # Other families, and a saved model being fine-tuned, keep the defaults.
    ("resnet10_025", [], {"optimizer": "adamw", "learning_rate": 0.002, "weight_decay": 5e-4}),
    ("mobilenetv2_050.keras", [],
     {"optimizer": "adamw", "learning_rate": 0.002, "weight_decay": 5e-4}),
    ("resnet10_025", ["--optimizer", "sgd", "--weight-decay", "0"],
     {"optimizer": "sgd", "learning_rate": 0.002, "weight_decay": 0.0}),
])
def test_train_picks_the_family_recipe_unless_told_otherwise(model, flags, expected, caplog):
    import tfedge.cli as cli
    from tfedge._train import TrainConfig
    from tfedge.cli import core

    default = TrainConfig()
    assert (default.optimizer, default.learning_rate, default.weight_decay) == (
        "adamw", 0.002, 5e-4), "the expectations above assume these defaults"
    args = cli.build_parser().parse_args(["train", "--model", model, "--output", "m.keras",
                                          *flags])
    with caplog.at_level("INFO", logger="tfedge"):
        config = core._train_config_from_args(args)
    got = {"optimizer": config.optimizer, "learning_rate": config.learning_rate,
           "weight_decay": config.weight_decay}
    assert got == expected
    said = "family's recipe" in caplog.text
    assert said == (model.startswith("mobilenetv2") and not model.endswith(".keras")
                    and "adamw" not in flags), caplog.text


def test_crop_train_gives_a_mobilenetv2_its_family_recipe(monkeypatch):
    from types import SimpleNamespace

    import tfedge.cli as cli
    from tfedge.cli import _data_flags
    from tfedge.crop import _classifier_crops

    seen = {}

    def capture(model, train, *, config, **kwargs):
        seen[model] = config
        raise SystemExit(0)

    data = SimpleNamespace(train=None, val=None, name="stand-in")
    monkeypatch.setattr(_data_flags, "dataset_from_args", lambda args: data)
    monkeypatch.setattr(_classifier_crops, "train_crop_classifier", capture)
    parser = cli.build_parser()
    for model, flags in (("mobilenetv2_035", []), ("resnet10_025", []),
                         ("mobilenetv2_035", ["--learning-rate", "0.01"])):
        args = parser.parse_args(["crop", "train", "--model", model, "--output", "c.keras",
                                  *flags])
        with pytest.raises(SystemExit):
            args.func(args)
        config = seen.pop(model)
        if model.startswith("mobilenetv2"):
            assert config.optimizer == "sgd" and config.weight_decay == 4e-5
            assert config.learning_rate == (0.01 if flags else 0.05)
        else:
            assert (config.optimizer, config.learning_rate) == ("adamw", 0.002)


def test_data_verify_images_lists_unreadable_files(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "d" / name / "a.png")
    (tmp_path / "d" / "dog" / "b.png").write_bytes(b"not an image at all")
    proc = tfedge("data", "--data", str(tmp_path / "d"), "--verify-images")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [u["path"] for u in result["unreadable"]] == [str(tmp_path / "d" / "dog" / "b.png")]
    assert "1 unreadable image(s), 0 skipped entries (not readable files): replace or delete " \
        "them" in proc.stderr
    (tmp_path / "d" / "dog" / "b.png").unlink()
    proc = tfedge("data", "--data", str(tmp_path / "d"), "--verify-images")
    assert proc.returncode == 0 and json.loads(proc.stdout.strip().splitlines()[-1])[
        "unreadable"] == []


@pytest.mark.parametrize("argv, flag", [
    (["predictor", "train", "--output", "{dir}"], "--output"),
    (["predictor", "train", "--output", "{dir}/m.h5"], "--output"),
    (["crop", "train", "--model", "resnet10_025", "--output", "{dir}"], "--output"),
    (["crop", "evaluate", "--predictor", "{dir}", "--model", "m.keras"], "--predictor"),
    (["crop", "evaluate", "--predictor", "p.keras", "--model", "m.keras", "--preview", "{dir}"],
     "--preview"),
])
def test_crop_commands_refuse_unusable_paths_in_one_line(argv, flag, tmp_path):
    proc = tfedge(*[a.format(dir=tmp_path) for a in argv], "--data", str(tmp_path / "missing"))
    assert_one_line_error(proc, flag)


def test_debug_flag_shows_tensorflow_chatter_and_its_absence_hides_it(monkeypatch, capsys):
    # Every command goes through run_cli, which sets tfedge._quiet up from --debug.
    from tfedge import _quiet
    from tfedge.cli import main

    monkeypatch.delenv(_quiet.DEBUG_ENV, raising=False)
    monkeypatch.setattr(_quiet, "_debug", False)
    assert main(["--debug"]) == 2  # no command: help, but the flag took effect first
    assert _quiet.debug_enabled()
    assert main([]) == 2
    assert not _quiet.debug_enabled()
    capsys.readouterr()


@pytest.mark.parametrize("text, value", [("0.5", 0.5), ("1", 1.0), ("25M", 25e6), ("2.5e7", 2.5e7),
                                         ("1000", 1000.0)])
def test_mac_amounts_are_ratios_up_to_1_or_counts(text, value):
    from tfedge.cli._shell import parse_macs

    assert parse_macs(text, "--macs-budget", "the last stage's MACs") == value


@pytest.mark.parametrize("text, fragment", [("50", "not 50"), ("1.5", "neither a ratio"),
                                            ("0", "above 0"), ("half", "not a number")])
def test_mac_amounts_refuse_typos_naming_the_flag(text, fragment):
    from tfedge import TfedgeError
    from tfedge.cli._shell import parse_macs

    with pytest.raises(TfedgeError, match="--macs-budget") as exc:
        parse_macs(text, "--macs-budget", "the last stage's MACs")
    assert fragment in str(exc.value)
