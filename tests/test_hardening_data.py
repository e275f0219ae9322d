"""Hardening of the data side (issue #18): odd entries in class folders, unusable output
paths, folder-dataset previews, and benchmark scripts that fail in one line.

Every case here was a traceback or a hang before its fix. Anything that could hang
runs in a subprocess or a daemon thread with a time limit, so a regression fails
instead of blocking the suite.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tfedge import TfedgeError
from tfedge.data import FileSplit, load_class_folders, load_dataset

REPO = Path(__file__).resolve().parent.parent
HANG_LIMIT_S = 20  # far above what any of these takes; a FIFO opened by mistake never returns
CLASSES = ("cat", "dog")


def _run(*args: str, env_extra: dict | None = None, timeout: int = 120):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def _tfedge(*args: str, **kw):
    return _run("-m", "tfedge.cli", *args, **kw)


def _assert_one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _within(seconds: float, func, *args):
    """``func(*args)`` on a daemon thread; fails (instead of hanging) past ``seconds``."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{func.__name__} still blocked after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _images(root: Path, per_class: int = 3, size: int = 16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _odd_entries(root: Path) -> dict[str, str]:
    """A symlink loop, a dangling symlink and a FIFO named as images; the reason each gets."""
    os.symlink("loop.jpg", root / "cat" / "loop.jpg")          # points at itself
    os.symlink("nowhere.jpg", root / "cat" / "dangling.jpg")
    os.mkfifo(root / "dog" / "x.jpg")
    os.symlink(".", root / "dog" / "self")                     # a folder loop: a sub-folder
    os.mkfifo(root / "dog" / "notes.txt")                      # not image-named: ignored
    return {str(root / "cat" / "loop.jpg"): "symlink loop",
            str(root / "cat" / "dangling.jpg"): "dangling symlink",
            str(root / "dog" / "x.jpg"): "FIFO"}


# --------------------------------------------------------------------------- #12, #13: odd entries


def test_symlink_loops_dangling_links_and_fifos_are_skipped_and_counted(tmp_path, caplog):
    root = _images(tmp_path / "d")
    expected = _odd_entries(root)
    caplog.set_level(logging.INFO)
    dataset = _within(HANG_LIMIT_S, load_dataset, root)
    every_path = set(dataset.train.paths) | set(dataset.val.paths)
    assert len(every_path) == 6 and not every_path & set(expected)
    assert {path: reason for path, reason in dataset.skipped}.keys() == expected.keys()
    for path, reason in dataset.skipped:
        assert expected[path] in reason, reason
    assert dataset.info["skipped_files"] == 3
    for path in expected:  # named one per line, then counted: never a silent skip
        assert f"skipped {path}:" in caplog.text
    assert "skipped 3 image-named entries" in caplog.text


def test_a_class_folder_of_only_odd_entries_says_they_were_skipped(tmp_path):
    root = _images(tmp_path / "d")
    (root / "bird").mkdir()
    os.mkfifo(root / "bird" / "a.png")
    with pytest.raises(TfedgeError, match=r"bird: class folder holds no images .*\(1 skipped"):
        _within(HANG_LIMIT_S, load_class_folders, root)


def test_a_symlink_loop_among_the_class_folders_is_left_out(tmp_path, caplog):
    root = _images(tmp_path / "d")
    os.symlink("zebra", root / "zebra")
    caplog.set_level(logging.WARNING)
    split = load_class_folders(root)
    assert split.class_names == CLASSES
    assert caplog.text.count("zebra: skipped, not a class folder: a symlink loop") == 1


def test_odd_entries_in_a_voc_folder_and_a_fifo_csv_never_block(tmp_path):
    root = _images(tmp_path / "d")
    voc = tmp_path / "voc"
    (voc / "cat").mkdir(parents=True)
    (voc / "cat" / "0.xml").write_text("<annotation><size><width>20</width><height>16</height></size>"
                               "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                               "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    os.symlink("1.xml", voc / "1.xml")
    os.mkfifo(voc / "cat" / "2.xml")
    split = _within(HANG_LIMIT_S, lambda: load_class_folders(root, boxes=voc))
    assert int((~np.isnan(split.boxes).any(axis=1)).sum()) == 1  # cat/0.png
    os.mkfifo(tmp_path / "boxes.csv")
    with pytest.raises(TfedgeError, match="box CSV is a FIFO"):
        _within(HANG_LIMIT_S, lambda: load_class_folders(root, boxes=tmp_path / "boxes.csv"))


def test_a_dataset_root_that_is_a_symlink_loop_or_dangling_says_so(tmp_path):
    os.symlink("loop", tmp_path / "loop")
    os.symlink("nowhere", tmp_path / "dangling")
    with pytest.raises(TfedgeError, match="'.*loop' is a symlink loop"):
        load_dataset(tmp_path / "loop")
    with pytest.raises(TfedgeError, match="'.*dangling' is a dangling symlink"):
        load_dataset(tmp_path / "dangling")
    with pytest.raises(TfedgeError, match="'.*absent' does not exist"):
        load_dataset(tmp_path / "absent")


def test_reading_a_fifo_or_a_loop_as_an_image_is_an_error_not_a_hang(tmp_path):
    from tfedge.data._tfdata import read_file_image, unreadable_images

    root = _images(tmp_path / "d")
    expected = _odd_entries(root)
    with pytest.raises(TfedgeError, match="FIFO"):
        _within(HANG_LIMIT_S, read_file_image, root / "dog" / "x.jpg")
    with pytest.raises(TfedgeError, match="symlink loop"):
        _within(HANG_LIMIT_S, read_file_image, root / "cat" / "loop.jpg")
    # A FileSplit built by hand (not by the loader) still names each instead of blocking.
    split = FileSplit(tuple(expected) + (str(root / "cat" / "0.png"),),
                      np.zeros(4, np.int32), None, CLASSES)
    bad = _within(HANG_LIMIT_S, unreadable_images, split)
    assert sorted(path for path, _ in bad) == sorted(expected)


def test_not_a_regular_file_names_each_kind(tmp_path):
    from tfedge.data._files import not_a_regular_file

    root = _images(tmp_path / "d")
    _odd_entries(root)
    assert not_a_regular_file(root / "cat" / "0.png") is None
    assert "symlink loop" in not_a_regular_file(root / "cat" / "loop.jpg")
    assert "dangling symlink" in not_a_regular_file(root / "cat" / "dangling.jpg")
    assert "FIFO" in not_a_regular_file(root / "dog" / "x.jpg")
    assert "folder" in not_a_regular_file(root / "dog")


def test_cli_verify_images_counts_odd_entries_instead_of_crashing_or_hanging(tmp_path):
    root = _images(tmp_path / "d")
    expected = _odd_entries(root)
    proc = _tfedge("data", "--data", str(root), "--verify-images", timeout=HANG_LIMIT_S * 3)
    assert proc.returncode == 1, proc.stderr        # they were named as images: not a pass
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["train"] + summary["val"] == 6 and summary["unreadable"] == []
    assert sorted(s["path"] for s in summary["skipped"]) == sorted(expected)
    assert "0 unreadable image(s), 3 skipped entries" in proc.stderr
    assert "skipped:    3" in proc.stdout
    # Without --verify-images the skips are reported and the command succeeds.
    proc = _tfedge("data", "--data", str(root), timeout=HANG_LIMIT_S * 3)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout.strip().splitlines()[-1])["skipped"]) == 3


@pytest.mark.slow
def test_cli_trains_on_a_folder_with_odd_entries(tmp_path):
    root = _images(tmp_path / "d", size=32)
    _odd_entries(root)
    out = tmp_path / "m.keras"
    proc = _tfedge("train", "--model", "resnet10_025", "--resolution", "32", "--epochs", "1",
                   "--batch-size", "4", "--data", str(root), "--output", str(out),
                   timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and "skipped 3 image-named entries" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["skipped_files"] == 3


# --------------------------------------------------------------------------- #11: output paths


def test_writable_file_problem_refuses_what_cannot_take_a_file(tmp_path):
    from tfedge.data._files import writable_file_problem

    (tmp_path / "a_file").write_text("x")
    os.mkfifo(tmp_path / "fifo.png")
    assert writable_file_problem(tmp_path / "new" / "deeper" / "p.png") is None  # made on write
    assert writable_file_problem(tmp_path / "a_file") is None                   # replaced
    assert "folder" in writable_file_problem(tmp_path)
    assert "FIFO" in writable_file_problem(tmp_path / "fifo.png")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "socket.png"))
        assert "socket" in writable_file_problem(tmp_path / "socket.png")
    assert "is not a folder" in writable_file_problem(tmp_path / "a_file" / "p.png")
    assert "is not a folder" in writable_file_problem(tmp_path / "a_file" / "x" / "p.png")
    assert "cannot create files" in writable_file_problem("/proc/tfedge-test.png")
    assert "empty" in writable_file_problem("")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tfedge")], "probe left"


def test_save_preview_to_an_unusable_path_is_a_one_line_error(tmp_path):
    from tfedge.data import save_preview
    from tfedge.data._types import ImageSplit

    # Never a system path such as /dev/null here: code without the check replaces it.
    split = ImageSplit(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.int32), None, CLASSES)
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "p.png").write_bytes(b"")
    for bad in (tmp_path, tmp_path / "fifo.png", tmp_path / "p.png" / "q.png"):
        with pytest.raises(TfedgeError, match="cannot write the preview") as info:
            save_preview(split, bad)
        assert "\n" not in str(info.value)
    assert (tmp_path / "fifo.png").is_fifo()


@pytest.mark.parametrize("make_bad, fragment", [
    (lambda t: t / "folder.png", "it is a folder"),
    (lambda t: t / "a_file" / "p.png", "is not a folder"),
    (lambda t: t / "fifo.png", "is a FIFO"),
    (lambda t: Path("/proc/tfedge-test.png"), "cannot create files in /proc"),
])
def test_cli_data_preview_to_an_unusable_path_is_a_one_line_error(tmp_path, make_bad, fragment):
    root = _images(tmp_path / "d")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "a_file").write_text("x")
    os.mkfifo(tmp_path / "fifo.png")
    bad = make_bad(tmp_path)
    proc = _tfedge("data", "--data", str(root), "--preview", str(bad))
    _assert_one_line_error(proc, "--preview", fragment)


def test_cli_train_output_that_cannot_be_written_fails_before_training(tmp_path):
    root = _images(tmp_path / "d")
    (tmp_path / "m.keras").mkdir()
    proc = _tfedge("train", "--model", "resnet10_025", "--data", str(root),
                   "--output", str(tmp_path / "m.keras"))
    _assert_one_line_error(proc, "--output", "it is a folder")
    assert "epoch" not in proc.stderr
    (tmp_path / "f").write_text("x")
    proc = _tfedge("train", "--model", "resnet10_025", "--data", str(root),
                   "--output", str(tmp_path / "f" / "m.keras"))
    _assert_one_line_error(proc, "--output", "is not a folder")


@pytest.mark.parametrize("command", [
    ["macs", "{model}"],
    ["evaluate", "--model", "{model}", "--data", "{data}"],
    ["train", "--model", "{model}", "--output", "{out}", "--data", "{data}"],
    ["train", "--model", "resnet10_025", "--teacher", "{model}", "--output", "{out}",
     "--data", "{data}"],
])
def test_cli_model_file_that_is_a_fifo_or_a_folder_is_a_one_line_error(tmp_path, command):
    root = _images(tmp_path / "d")
    os.mkfifo(tmp_path / "fifo.keras")       # a reader blocks on it forever
    (tmp_path / "folder.keras").mkdir()
    for model, fragment in (("fifo.keras", "is a FIFO"), ("folder.keras", "is a folder")):
        args = [a.format(model=tmp_path / model, data=root, out=tmp_path / "out.keras")
                for a in command]
        proc = _tfedge(*args, timeout=HANG_LIMIT_S * 3)
        _assert_one_line_error(proc, str(tmp_path / model), fragment)


def test_os_errors_naming_a_file_become_one_line_errors(tmp_path):
    import argparse

    from tfedge.cli._shell import run_cli, user_error_line

    assert user_error_line(OSError(28, "No space left on device", "/x/cache")) == \
        "/x/cache: No space left on device"
    assert user_error_line(OSError("no file named: a bug")) is None
    assert user_error_line(RuntimeError("a bug")) is None
    assert user_error_line(TfedgeError("two\nlines")) == "two lines"

    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--debug", action="store_true")

    def full_disk(args):
        raise OSError(28, "No space left on device", str(tmp_path / "out"))

    parser.set_defaults(func=full_disk)
    assert run_cli(parser, []) == 2
    with pytest.raises(OSError):
        run_cli(parser, ["--debug"])


# --------------------------------------------------------------------------- #16: folder previews


def test_box_preview_of_a_folder_dataset(tmp_path):
    """The folder branch of save_box_preview lost ``sub`` (UnboundLocalError)."""
    from tfedge.crop._evaluate import save_box_preview
    from tfedge.crop.geometry import CropConfig

    root = _images(tmp_path / "d")
    split = load_class_folders(root)
    split = FileSplit(split.paths, split.labels,
                      np.tile(np.float32([[0.1, 0.1, 0.8, 0.9]]), (len(split), 1)),
                      split.class_names)
    predicted = np.tile(np.float32([[0.2, 0.2, 0.7, 0.7]]), (len(split), 1))
    for order, crop in (("first", None), ("worst", CropConfig())):
        png = tmp_path / f"{order}.png"
        shown = save_box_preview(split, predicted, png, count=4, order=order, crop=crop)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(shown) == 4


def test_cli_data_preview_of_a_folder_dataset(tmp_path):
    root = _images(tmp_path / "d")
    png = tmp_path / "p.png"
    proc = _tfedge("data", "--data", str(root), "--preview", str(png), "--preview-count", "4")
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(proc.stdout.strip().splitlines()[-1])["preview"] == str(png)


@pytest.mark.slow  # 18-28 s (TensorFlow in a subprocess); test_box_preview_of_a_folder_dataset is fast
def test_cli_crop_evaluate_with_preview_on_a_folder_dataset(tmp_path):
    """What crashed after printing its results (#16): the whole command, on class folders."""
    from tfedge.crop import build_predictor, save_predictor
    from tfedge.models import create_model

    root = _images(tmp_path / "d", per_class=4, size=32)
    boxes = tmp_path / "boxes.csv"   # the folder branch with true boxes: IoU and 'worst' order
    boxes.write_text("filename,xmin,ymin,xmax,ymax\n" + "".join(
        f"{name}/{i}.png,2,3,20,25\n" for name in CLASSES for i in range(4)))
    save_predictor(build_predictor("boxnet_heat_r32_w4"), tmp_path / "p.keras")
    create_model("resnet10_025", resolution=32, num_classes=2).save(tmp_path / "m.keras")
    png = tmp_path / "boxes.png"
    proc = _tfedge("crop", "evaluate", "--predictor", str(tmp_path / "p.keras"),
                   "--model", str(tmp_path / "m.keras"), "--data", str(root), "--split", "val",
                   "--boxes", str(boxes), "--preview", str(png), "--preview-count", "2",
                   "--preview-order", "worst", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["preview"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["count"] == 2 and summary["boxes"]["count"] == 2
    assert 0.0 <= summary["boxes"]["miou"] <= 1.0 and summary["top1_oracle"] is not None


# --------------------------------------------------------------------------- #18: benchmark scripts


@pytest.mark.parametrize("script, args", [
    ("runner.py", ["--quick"]), ("base.py", ["--quick"]), ("cascade.py", ["--quick"]),
    ("crop.py", ["--quick"]), ("convert.py", ["--base", "/nonexistent/base.keras"]),
])
def test_benchmark_scripts_end_a_missing_input_in_one_line(tmp_path, script, args):
    empty = tmp_path / "no-fashion-mnist"
    empty.mkdir()
    proc = _run(str(REPO / "benchmarks" / script), *args,
                env_extra={"TFEDGE_FASHION_MNIST": str(empty), "TFEDGE_CACHE": str(tmp_path / "c"),
                           "TFEDGE_DEBUG": ""})
    line = _assert_one_line_error(proc)
    assert line.startswith(f"{script}: error: ")
    assert (str(empty) in line and "apt-get install" in line) or "/nonexistent/base.keras" in line
    assert proc.stdout == ""


# --------------------------------------------------------------------------- #19: IoU per background


def test_iou_by_background_hand_values():
    from tfedge.crop._evaluate import iou_by_background

    ious = [0.9, 0.7, np.nan, 0.2, 0.4, 1.0]
    backgrounds = ["moon", "moon", "moon", "grass", "grass", "coffee"]
    out = iou_by_background(ious, backgrounds)
    assert out["count"] == 5 and out["miou"] == pytest.approx(3.2 / 5)
    assert out["p10"] == pytest.approx(np.percentile([0.9, 0.7, 0.2, 0.4, 1.0], 10))
    assert out["missed"] == pytest.approx(2 / 5)                    # 0.2 and 0.4 miss
    assert list(out["backgrounds"]) == ["coffee", "grass", "moon"]   # sorted, NaN row dropped
    assert out["backgrounds"]["moon"] == {"count": 2, "miou": pytest.approx(0.8),
                                          "p10": pytest.approx(0.72), "missed": 0.0}
    assert out["backgrounds"]["grass"]["missed"] == 1.0
    assert out["worst"] == "grass" and out["worst_miou"] == pytest.approx(0.3)
    assert json.loads(json.dumps(out)) == out


def test_iou_by_background_rejects_mismatched_or_empty_input():
    from tfedge.crop._evaluate import iou_by_background

    with pytest.raises(TfedgeError, match="one entry per image"):
        iou_by_background([0.5, 0.6], ["moon"])
    with pytest.raises(TfedgeError, match="every true box is unknown"):
        iou_by_background([np.nan], ["moon"])
