"""tfedge compress: step cache, settings, data detection, quiet output, the report (fast tests).

The end-to-end runs are in tests/test_compress_e2e.py (slow).
"""

from __future__ import annotations

import base64
import html.parser
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfedge import TfedgeError
from tfedge.compress import CompressConfig, DataSource, find_voc_boxes, preset
from tfedge.compress._cache import StepCache, canonical_key
from tfedge.compress._measure import grid_indices, reach_fractions
from tfedge.compress._steps import RUN_FILE, check_same_data, read_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- data detection


def test_voc_boxes_next_to_images_in_each_split_are_found(tmp_path):
    _touch(tmp_path / "train" / "cat" / "a.jpg")
    _touch(tmp_path / "train" / "cat" / "a.xml")
    _touch(tmp_path / "test" / "cat" / "b.jpg")
    _touch(tmp_path / "test" / "cat" / "b.xml")
    assert find_voc_boxes(tmp_path) == {"train": str(tmp_path / "train"),
                                        "test": str(tmp_path / "test")}


def test_voc_boxes_in_a_flat_class_tree_and_none_without_xml(tmp_path):
    flat = tmp_path / "flat"
    _touch(flat / "dog" / "a.jpg")
    assert find_voc_boxes(flat) is None
    _touch(flat / "dog" / "a.xml")
    assert find_voc_boxes(flat) == str(flat)


def test_data_source_round_trips_and_describes_itself(tmp_path):
    data, _ = preset("quick")
    again = DataSource.from_dict(json.loads(json.dumps(data.to_dict())))
    assert again.to_dict() == data.to_dict()
    assert "3000/500/1000" in data.describe()
    folder = DataSource(str(tmp_path), boxes="none")
    assert folder.box_source() is None and folder.to_dict()["source"] == str(tmp_path.resolve())


def test_a_run_folder_refuses_other_data(tmp_path):
    data, config = preset("quick")
    (tmp_path / RUN_FILE).write_text(json.dumps({
        "format": "tfedge-compress", "version": 1, "data": data.to_dict(),
        "settings": config.to_dict()}))
    recorded = read_run(tmp_path)
    check_same_data(tmp_path, recorded, data)  # the same data: fine
    with pytest.raises(TfedgeError, match="was compressed from built-in benchmark.*another --output"):
        check_same_data(tmp_path, recorded, DataSource(str(tmp_path)))


def test_a_foreign_json_is_not_taken_for_a_run(tmp_path):
    (tmp_path / RUN_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(TfedgeError, match="not a tfedge compress record"):
        read_run(tmp_path)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("fields, message", [
    ({"shrink_targets": (0.3, 1.2)}, "shrink target 1.2"),
    ({"calibration": "budget"}, "macs_budget"),
    ({"calibration": "fastest"}, "unknown"),
    ({"epochs": 0}, "epochs must be"),
    ({"baselines": ("magic",)}, "unknown baseline"),
])
def test_bad_settings_are_one_line_errors(fields, message):
    with pytest.raises(TfedgeError, match=message):
        CompressConfig(**fields)


def test_presets_quick_is_small_and_full_is_the_benchmark():
    quick_data, quick = preset("quick")
    full_data, full = preset("full")
    assert quick_data.benchmark_config().train_size == 3000
    assert full_data.benchmark_config().train_size == 20000
    assert quick.epochs == full.epochs == 4 and full.refiner and len(full.shrink_targets) == 2
    with pytest.raises(TfedgeError, match="unknown preset"):
        preset("medium")


# --------------------------------------------------------------------------- step cache


def test_step_cache_skips_only_unchanged_steps(tmp_path):
    cache = StepCache(tmp_path)
    out = _touch(tmp_path / "model.keras", "weights v1")
    inputs = {"data": "abc", "epochs": 4, "upstream": "f00"}
    assert cache.lookup("train", inputs) is None
    cache.save("train", inputs, [out], {"val_top1": 0.5}, 1.0)
    assert cache.lookup("train", inputs)["result"] == {"val_top1": 0.5}
    # Same inputs in another key order: still the same step.
    assert cache.lookup("train", dict(reversed(list(inputs.items())))) is not None
    changed = {**inputs, "epochs": 5}
    assert cache.lookup("train", changed) is None
    assert "epochs" in cache.why_stale("train", changed)
    out.write_text("weights edited by hand")  # an output that changed since: run again
    assert cache.lookup("train", inputs) is None
    out.unlink()
    assert cache.lookup("train", inputs) is None
    assert cache.why_stale("train", inputs) == "an output file changed or is missing"


def test_step_cache_records_folders_and_absent_outputs(tmp_path):
    cache = StepCache(tmp_path)
    folder = tmp_path / "bundle"
    _touch(folder / "a.tflite", "a")
    record = cache.save("bundle", {"k": 1}, [folder, tmp_path / "never_written.keras"], {}, 0.1)
    assert cache.output_hash(record, folder) is not None
    assert cache.output_hash(record, tmp_path / "never_written.keras") is None
    _touch(folder / "b.tflite", "b")
    assert cache.lookup("bundle", {"k": 1}) is None


def test_canonical_key_depends_on_values_not_order():
    assert canonical_key({"a": 1, "b": [1, 2]}) == canonical_key({"b": [1, 2], "a": 1})
    assert canonical_key({"a": 1}) != canonical_key({"a": 2})


# --------------------------------------------------------------------------- arithmetic


def test_reach_fractions_from_exit_rates():
    assert reach_fractions([0.7, 0.3]) == pytest.approx([1.0, 0.3])
    assert reach_fractions([0.5, 0.25, 0.25]) == pytest.approx([1.0, 0.5, 0.25])
    assert reach_fractions([1.0]) == [1.0]


def test_grid_indices_spread_over_the_split():
    assert grid_indices(100, 4).tolist() == [0, 33, 66, 99]
    assert grid_indices(3, 16).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- quiet output


def test_quiet_hides_descriptor_output_and_keeps_our_log_lines(capfd, caplog):
    from tfedge._quiet import quiet_tensorflow

    caplog.set_level(logging.INFO)
    with quiet_tensorflow():
        os.write(1, b"  140146038108048: TensorSpec(shape=(), dtype=tf.resource)\n")
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
        logging.getLogger("tfedge.test").info("converting stage 0")
        logging.getLogger("absl").info("Assets written to: /tmp/x/assets")
    out, err = capfd.readouterr()
    assert "TensorSpec" not in out + err and "oneDNN" not in out + err
    messages = [r.getMessage() for r in caplog.records]
    assert "converting stage 0" in messages
    assert not any("Assets written" in m for m in messages)


def test_quiet_replays_the_chatter_when_the_block_fails(capfd):
    from tfedge._quiet import quiet_tensorflow

    with pytest.raises(RuntimeError):
        with quiet_tensorflow():
            os.write(2, b"converter: unsupported op FOO\n")
            raise RuntimeError("conversion failed")
    assert "unsupported op FOO" in capfd.readouterr().err


def test_quiet_is_off_when_debugging(capfd, monkeypatch):
    from tfedge import _quiet

    monkeypatch.setattr(_quiet, "_debug", True)
    with _quiet.quiet_tensorflow():
        os.write(2, b"visible chatter\n")
    assert "visible chatter" in capfd.readouterr().err


def test_tensorflow_info_lines_are_dropped_unless_debugging(monkeypatch):
    from tfedge import _quiet

    logger = logging.getLogger("tensorflow")
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setattr(_quiet, "_debug", True)
    _quiet.quiet_tensorflow_loggers()
    assert logger.level == logging.NOTSET  # debugging: left as it was
    monkeypatch.setattr(_quiet, "_debug", False)
    monkeypatch.delenv(_quiet.DEBUG_ENV, raising=False)
    _quiet.quiet_tensorflow_loggers()
    assert logger.level == logging.WARNING  # "Sharding callback duration" (INFO) is gone
    assert logger.isEnabledFor(logging.WARNING)


def test_quiet_tensorflow_import_in_a_fresh_process():
    # What every CLI sets up (tfedge.cli._shell.run_cli): the oneDNN and absl notices of the
    # first 'import tensorflow', wherever it happens (here inside keras), are gone; the import
    # works and gives the one module.
    code = ("import sys\nfrom tfedge._quiet import quiet_tensorflow_import, "
            "import_tensorflow_quietly\nquiet_tensorflow_import()\nimport keras\n"
            "import tensorflow as tf\nassert import_tensorflow_quietly() is tf\n"
            "assert sys.modules['tensorflow'] is tf and tf.constant(2).numpy() == 2\n"
            "print('ok', tf.__version__)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr


# --------------------------------------------------------------------------- the report


def _fake_measured(tmp_path: Path) -> dict:
    from tfedge.compress._report import draw_grid

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    draw_grid(tmp_path / "report" / "grid.png", images, labels=np.array([0, 1, 2, 0]),
              predictions=np.array([0, 1, 1, 0]), exits=np.array([0, 0, 1, 1]),
              true_boxes=np.array([[0.1, 0.1, 0.5, 0.5]] * 4, np.float32),
              predicted_boxes=np.array([[0.2, 0.1, 0.6, 0.5]] * 4, np.float32),
              windows=np.array([[2, 2, 20, 20]] * 4), class_names=["a", "b", "c"])

    def row(method, top1, macs, ms, int8_top1=None):
        return {"method": method, "top1": top1, "macs": macs, "params": 1000, "int8_bytes": 4096,
                "int8_ms": ms, "int8_top1": int8_top1, "models": [], "note": "n"}

    stages = [{"name": "stage_35", "macs": 5e6, "alone_macs": 7e6, "top1": 0.6, "resolution": 48},
              {"name": "crop", "macs": 2e7, "alone_macs": 2.2e7, "top1": 0.7, "resolution": 64}]
    return {"split": "test", "images": 1000, "grid": "grid.png", "timing": "int8, 1 thread",
            "rows": [row("base", 0.5, 8e7, 0.6), row("crop", 0.7, 2.2e7, 0.2),
                     row("shrink", 0.45, 2.2e7, 0.2), row("crop+shrink", 0.6, 7e6, 0.1),
                     row("crop+shrink+cascade", 0.68, 1.1e7, 0.13, 0.675)],
            "box_iou": {"miou": 0.7}, "refined": None,
            "cascade": {"float_top1": 0.68, "int8_top1": 0.675, "stages": stages,
                        "float_exit_fractions": [0.7, 0.3], "int8_exit_fractions": [0.68, 0.32],
                        "exit_top1": [0.7, 0.6], "expected_macs": 1.1e7,
                        "curve": [{"expected_macs": 8e6, "top1": 0.62},
                                  {"expected_macs": 2e7, "top1": 0.7}], "thresholds": [0.8, None]},
            "bundle": {"path": "b.zip", "manifest_version": 1, "refiner_in_bundle": False}}


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src"))


def _run_record(tmp_path: Path) -> dict:
    return {"run_dir": str(tmp_path), "settings": CompressConfig().to_dict(),
            "data": {"name": "demo", "fingerprint": "f", "source": {}, "sizes": {
                "train": 3000, "val": 500, "test": 1000}},
            "steps": {"verify": {"ok": True}}, "steps_run": ["base"], "steps_cached": [],
            "artifacts": {"base.keras": "0" * 64}}


def test_report_is_self_contained_with_every_image_embedded(tmp_path):
    from tfedge.compress._report import write_report

    summary = write_report(tmp_path / "report", run_record=_run_record(tmp_path),
                           measured=_fake_measured(tmp_path))
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    parser = _Images()
    parser.feed(page)
    assert len(parser.sources) == 3  # accuracy vs MACs, exits, grid
    for src in parser.sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    for name in ("accuracy_vs_macs.png", "exits.png", "grid.png", "summary.json"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "report" / "summary.json").read_text())
    methods = [r["method"] for r in saved["ablation"]]
    assert methods == ["base", "crop", "shrink", "crop+shrink", "crop+shrink+cascade"]
    for r in saved["ablation"]:
        assert all(isinstance(r[k], (int, float)) for k in ("top1", "macs", "int8_ms"))
    assert any("under-trained" in line for line in summary["reading"])
    assert "crop+shrink+cascade" in page and "0.6800" in page
    assert "on the held-out split" in page


def test_report_says_when_its_figures_are_not_held_out(tmp_path):
    """A folder without a test split is measured on val, where early stopping and the
    thresholds were chosen: the report must not call that held out."""
    from tfedge.compress._report import write_report

    measured = {**_fake_measured(tmp_path), "split": "val"}
    write_report(tmp_path / "report", run_record=_run_record(tmp_path), measured=measured)
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "held-out split" not in page
    assert "on the val split, which is not held out" in page and "test/ class folders" in page


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no headless chromium installed (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(tmp_path):
    from tfedge.compress._report import write_report

    write_report(tmp_path / "report", run_record=_run_record(tmp_path),
                 measured=_fake_measured(tmp_path))
    page = tmp_path / "report" / "report.html"
    # Every image must have decoded: naturalWidth is 0 for a missing or broken one.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace(
        "</body>", "<script>window.onload=function(){var b=[].slice.call(document.images)"
                   ".filter(function(i){return !i.complete||i.naturalWidth===0}).length;"
                   "document.title='broken='+b+' of '+document.images.length;}</script></body>"))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<title>broken=0 of 3</title>" in done.stdout


# --------------------------------------------------------------------------- command line


def test_cli_refuses_a_file_as_the_run_folder(tmp_path, capsys):
    from tfedge.cli import main

    target = _touch(tmp_path / "not_a_folder")
    assert main(["compress", "--output", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_cli_demo_refuses_a_run_of_other_data(tmp_path, capsys):
    from tfedge.cli import main

    data, config = preset("full")
    (tmp_path / RUN_FILE).write_text(json.dumps({
        "format": "tfedge-compress", "version": 1, "data": data.to_dict(),
        "settings": config.to_dict()}))
    assert main(["demo", "--preset", "quick", "--output", str(tmp_path)]) == 2
    assert "other data than the quick preset" in capsys.readouterr().err


def test_cli_compress_refuses_other_data_in_a_recorded_run(tmp_path, capsys):
    from tfedge.cli import main

    data, config = preset("quick")
    (tmp_path / RUN_FILE).write_text(json.dumps({
        "format": "tfedge-compress", "version": 1, "data": data.to_dict(),
        "settings": config.to_dict()}))
    other = tmp_path / "mydata"
    other.mkdir()
    assert main(["compress", "--output", str(tmp_path), "--data", str(other)]) == 2
    assert "was compressed from built-in benchmark" in capsys.readouterr().err


@pytest.mark.parametrize("model, optimizer", [("mobilenetv2_035", "sgd"),
                                              ("resnet10_025", "adamw")])
def test_a_mobilenetv2_base_trains_with_its_family_recipe(tmp_path, monkeypatch, model,
                                                           optimizer):
    # Under the default AdamW a MobileNetV2 from scratch stays at chance: compress gives it
    # SGD (tfedge.scratch_recipe); other families keep the defaults.
    import tfedge
    import tfedge._train
    from test_compress_e2e import TINY, make_voc_folder

    from tfedge.compress import run_compress

    class Trained(Exception):
        pass

    def capture(*args, config=None, **kwargs):
        raise Trained(config)

    monkeypatch.setattr(tfedge._train, "train_classifier", capture)
    root = make_voc_folder(tmp_path / "data", boxes=True)
    with pytest.raises(Trained) as trained:
        run_compress(tmp_path / "run", DataSource(str(root)),
                     CompressConfig(**{**TINY, "model": model}))
    config = trained.value.args[0]
    assert config.optimizer == optimizer
    default = tfedge.TrainConfig()
    assert config.learning_rate == (0.05 if optimizer == "sgd" else default.learning_rate)
    assert tfedge.scratch_recipe(model) == ({"optimizer": "sgd", "learning_rate": 0.05,
                                             "weight_decay": 4e-5} if optimizer == "sgd" else {})
