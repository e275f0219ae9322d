"""Issue 18's runtime and runner defects, one regression test each (TF-free, fast).

Every case was a traceback, a hang, silent wrong output or a lost artifact
before its fix; each test names the issue item it holds to. Bundles come from
the committed golden bundle (``tests/golden/bundle``), so nothing here needs
TensorFlow.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rpi_runner import cli as runner_cli
from rpi_runner import _pipeline
from rpi_runner._output import human_line, printable
from rpi_runner._sources import parse_sources
from tfedge.runtime import bundle as bundle_module
from tfedge.runtime import fileio
from tfedge.runtime import image as image_module
from tfedge.runtime.bundle import MANIFEST_NAME, load_bundle, write_bundle
from tfedge.runtime.errors import BundleError, TfedgeError
from tfedge.runtime.folder_entries import entry_skip_kind
from tfedge.runtime.image import ImageReadError, read_image

GOLDEN_BUNDLE = Path(__file__).resolve().parent / "golden" / "bundle"


# --------------------------------------------------------------------------- helpers


def _copy_bundle(tmp_path: Path, name: str = "bundle") -> Path:
    target = tmp_path / name
    shutil.copytree(GOLDEN_BUNDLE, target)
    return target


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST_NAME).read_text())


def _zip_folder(folder: Path, zip_path: Path, extra: dict | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return zip_path


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _frames(folder: Path, count: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(count):
        path = folder / f"f{i}.png"
        Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _strict_json_lines(text: str) -> list[dict]:
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name} in the output")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


def _finishes(function, seconds: float = 20.0):
    """Run ``function`` in a thread; fail (instead of hanging) if it does not return in time."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (a hang)"
    return outcome


# --------------------------------------------------------------------------- 1, 7: the manifest


@pytest.mark.parametrize("where", ["metrics", "stage_metrics"])
def test_item1_a_manifest_nested_5000_deep_is_a_one_line_error(tmp_path, where):
    path = _copy_bundle(tmp_path)
    manifest = _manifest(path)
    if where == "metrics":
        manifest["metrics"]["deep"] = "PLACEHOLDER"
    else:
        manifest["stages"][0]["metrics"]["deep"] = "PLACEHOLDER"
    text = json.dumps(manifest).replace('"PLACEHOLDER"', "[" * 5000 + "1" + "]" * 5000)
    (path / MANIFEST_NAME).write_text(text)
    with pytest.raises(BundleError, match=r"nests arrays and objects 500\d deep, over the 32") \
            as exc:
        load_bundle(path)
    _one_line(exc)
    archive = _zip_folder(path, tmp_path / "deep.zip")
    with pytest.raises(BundleError, match="deep") as exc:
        load_bundle(archive)
    _one_line(exc)


def test_item1_the_runner_and_inspect_exit_2_without_a_traceback(tmp_path, capsys):
    from tfedge.cli import convert as convert_cli

    path = _copy_bundle(tmp_path)
    manifest = _manifest(path)
    manifest["metrics"]["deep"] = _nested(40)
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    frames = _frames(tmp_path / "frames", 1)
    assert runner_cli.main([str(path), str(frames[0])]) == 2
    assert "deep" in capsys.readouterr().err
    assert convert_cli.main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_item7_nan_and_infinity_in_a_manifest_are_refused(tmp_path, capsys, constant):
    from tfedge.cli import convert as convert_cli

    path = _copy_bundle(tmp_path)
    text = json.dumps(_manifest(path)).replace('"metrics": {', f'"metrics": {{"x": {constant}, ', 1)
    (path / MANIFEST_NAME).write_text(text)
    with pytest.raises(BundleError, match=f"{constant.lstrip('-')} is not a JSON number") as exc:
        load_bundle(path)
    _one_line(exc)
    assert convert_cli.main(["inspect", str(path)]) == 2
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out


@pytest.mark.parametrize("member, phrase", [
    ('"x": 1, "x": 2', "the key 'x' appears twice in one object"),
    ('"x": 1e999', "the number 1e999 is too large for a double"),
    ('"x": -2e308', "the number -2e308 is too large for a double"),
    ('"x": 9223372036854775808', "does not fit in 64 bits"),
])
def test_a_manifest_that_readers_could_read_differently_is_refused(tmp_path, member, phrase):
    # Python keeps the last of two equal keys and reads 1e999 as infinity; the Android
    # reader (org.json) kept the first and cannot hold either: both refuse all of these.
    path = _copy_bundle(tmp_path)
    text = "{" + member + ", " + json.dumps(_manifest(path))[1:]  # unknown top-level fields
    (path / MANIFEST_NAME).write_text(text)
    with pytest.raises(BundleError, match="manifest.json is not valid JSON") as exc:
        load_bundle(path)
    assert phrase in _one_line(exc)


def test_the_extremes_readers_can_hold_are_accepted(tmp_path):
    path = _copy_bundle(tmp_path)
    text = ('{"lo": -9223372036854775808, "hi": 9223372036854775807, "big": 1.7e308, '
            '"tiny": 1e-400, ' + json.dumps(_manifest(path))[1:])
    (path / MANIFEST_NAME).write_text(text)
    manifest = load_bundle(path).manifest
    assert manifest["lo"] == -2 ** 63 and manifest["hi"] == 2 ** 63 - 1
    assert manifest["big"] == 1.7e308 and manifest["tiny"] == 0.0


def test_a_file_name_with_a_trailing_newline_is_refused(tmp_path):
    # re's '$' matches before a final newline: the name check must match the whole name.
    path = _copy_bundle(tmp_path)
    manifest = _manifest(path)
    manifest["labels_file"] = "labels.txt\n"
    manifest["files"]["labels.txt\n"] = manifest["files"].pop("labels.txt")
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="is not a plain relative file name"):
        load_bundle(path)


def test_the_writer_refuses_metrics_the_reader_would_refuse(tmp_path):
    source = load_bundle(GOLDEN_BUNDLE)
    stages = [(s, source.read_model(s)) for s in source.stages]
    for metrics, phrase in (({"deep": _nested(40)}, "deep"),
                            ({"huge": 2 ** 64}, "does not fit in 64 bits")):
        with pytest.raises(BundleError, match="readers would refuse this manifest") as exc:
            write_bundle(tmp_path / "b", labels=source.labels, stages=stages, metrics=metrics)
        assert phrase in _one_line(exc)
    assert not (tmp_path / "b").exists()


def test_item7_inspect_prints_strict_json(tmp_path, capsys):
    from tfedge.cli import convert as convert_cli

    assert convert_cli.main(["inspect", str(GOLDEN_BUNDLE)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert _strict_json_lines(last)[0]["stages"]


# --------------------------------------------------------------------------- 2, 3, 4: zips


@pytest.mark.parametrize("order", ["file_first", "folder_first"])
def test_item2_a_zip_holding_a_file_and_a_folder_of_the_same_name_is_refused(tmp_path, order):
    path = _copy_bundle(tmp_path)
    entries = [("x", b"file"), ("x/y", b"inside")]
    if order == "folder_first":
        entries.reverse()
    archive = _zip_folder(path, tmp_path / "clash.zip", dict(entries))
    dest = tmp_path / "out"
    with pytest.raises(BundleError, match="both a file and a folder") as exc:
        load_bundle(archive, extract_to=dest)
    _one_line(exc)
    assert not dest.exists() or not any(dest.iterdir())


def test_item2_a_manifest_listing_a_file_and_a_folder_of_the_same_name_is_refused(tmp_path):
    path = _copy_bundle(tmp_path)
    manifest = _manifest(path)
    entry = dict(manifest["files"]["labels.txt"])
    manifest["files"]["stage0.tflite/x"] = entry
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="both as a file and as a folder") as exc:
        load_bundle(path)
    _one_line(exc)


def test_zip_damage_found_by_fuzzing_is_a_one_line_error(tmp_path):
    # atheris (benchmarks/robustness.py --atheris) found both: an entry with an empty name
    # (IndexError in zipfile's is_dir) and a central directory asking for zip version 8.4
    # (NotImplementedError when opening).
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr(zipfile.ZipInfo(""), b"x")
    with pytest.raises(BundleError, match="has an empty name") as exc:
        load_bundle(empty)
    _one_line(exc)
    data = bytearray(_zip_folder(GOLDEN_BUNDLE, tmp_path / "b.zip").read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 6] = 84  # "version needed to extract": 8.4
    (tmp_path / "v84.zip").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="not a readable zip file") as exc:
        load_bundle(tmp_path / "v84.zip")
    _one_line(exc)


def test_item3_a_300_character_entry_name_is_a_one_line_error(tmp_path):
    path = _copy_bundle(tmp_path)
    archive = _zip_folder(path, tmp_path / "long.zip", {"a" * 300: b"x"})
    with pytest.raises(BundleError, match="longer than the 255 bytes") as exc:
        load_bundle(archive)
    assert "a" * 100 not in _one_line(exc)  # the name is shortened in the message
    manifest = _manifest(path)
    manifest["files"]["b" * 300 + ".tflite"] = dict(manifest["files"]["labels.txt"])
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="longer than bundles allow") as exc:
        load_bundle(path)
    _one_line(exc)


def test_item4_only_the_files_the_manifest_lists_are_extracted(tmp_path):
    path = _copy_bundle(tmp_path)
    archive = _zip_folder(path, tmp_path / "extra.zip",
                          {"junk.bin": os.urandom(4096), "sub/more.bin": b"x" * 100})
    dest = tmp_path / "out"
    with load_bundle(archive, extract_to=dest) as bundle:
        assert sorted(p.name for p in dest.rglob("*")) == sorted(
            [MANIFEST_NAME, *bundle.files])


def test_item4_a_full_file_system_during_extraction_is_a_one_line_error(tmp_path, monkeypatch):
    real_open = open

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).startswith(str(tmp_path / "out")):
            return real_open("/dev/full", mode, *args, **kwargs)  # every write: ENOSPC
        return real_open(file, mode, *args, **kwargs)

    archive = _zip_folder(_copy_bundle(tmp_path), tmp_path / "b.zip")
    monkeypatch.setattr(bundle_module, "open", open_on_a_full_disk, raising=False)
    with pytest.raises(BundleError, match="No space left on device.*free space") as exc:
        load_bundle(archive, extract_to=tmp_path / "out")
    _one_line(exc)


def test_item4_a_manifest_write_on_a_full_disk_is_a_one_line_error(tmp_path, monkeypatch):
    archive = _zip_folder(_copy_bundle(tmp_path), tmp_path / "b.zip")

    def full(self, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(BundleError, match="No space left on device") as exc:
        load_bundle(archive)
    _one_line(exc)


# --------------------------------------------------------------------------- 8: special files


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_item8_a_fifo_or_dev_zero_as_the_bundle_is_an_error_not_a_hang(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "bundle.zip"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
        if not path.exists():
            pytest.skip("no /dev/zero")
    outcome = _finishes(lambda: load_bundle(path), seconds=10)
    assert isinstance(outcome.get("error"), BundleError), outcome
    assert "not a bundle folder or .zip" in str(outcome["error"])


# --------------------------------------------------------------------------- 5, 6: frames


class _FailingOnBrightInput:
    """A LiteRT interpreter stand-in that fails when the input is bright (input-dependent)."""

    def __init__(self, interpreter, mode: str):
        self._interpreter = interpreter
        self._mode = mode
        self._bright = False

    def set_tensor(self, index, value):
        self._bright = float(np.mean(value.astype(np.float64))) > 40.0
        return self._interpreter.set_tensor(index, value)

    def invoke(self):
        if self._bright and self._mode == "raise":
            raise RuntimeError("tensorflow/lite/kernels/gather.cc:158 Gather index out of "
                               "bounds\nNode number 3 (GATHER) failed to invoke.")
        return self._interpreter.invoke()

    def get_tensor(self, index):
        value = self._interpreter.get_tensor(index)
        if self._bright and self._mode == "nan":
            return np.full(value.shape, np.nan, dtype=np.float32)
        return value

    def __getattr__(self, name):
        return getattr(self._interpreter, name)


def _dark_and_bright_frames(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    dark, bright = folder / "a_dark.png", folder / "b_bright.png"
    Image.fromarray(np.full((20, 20, 3), 0, np.uint8)).save(dark)
    Image.fromarray(np.full((20, 20, 3), 250, np.uint8)).save(bright)
    return dark, bright


@pytest.mark.parametrize("mode", ["raise", "nan"])
def test_items5_6_a_model_failing_or_giving_nan_on_a_frame_is_an_error_record(
        tmp_path, monkeypatch, capsys, mode):
    real_init = _pipeline._Model.__init__

    def init(self, model):
        real_init(self, model)
        if self.name.startswith("stage"):
            self.interpreter = _FailingOnBrightInput(self.interpreter, mode)
    monkeypatch.setattr(_pipeline._Model, "__init__", init)
    if mode == "nan":  # a float output: NaN dequantises to NaN
        real_dequantize = _pipeline.dequantize
        monkeypatch.setattr(_pipeline, "dequantize",
                            lambda q, s, z: real_dequantize(q, 0 if q.dtype == np.float32
                                                            else s, z))
    dark, bright = _dark_and_bright_frames(tmp_path / "frames")
    code = runner_cli.main([str(GOLDEN_BUNDLE), str(dark), str(bright)])
    captured = capsys.readouterr()
    records = _strict_json_lines(captured.out)
    assert code == 1 and "Traceback" not in captured.err
    assert [("error" in r) for r in records] == [False, True]
    expected = "failed on this input" if mode == "raise" else "NaN or infinite"
    assert expected in records[1]["error"] and "\n" not in records[1]["error"]


def test_item5_verify_runs_more_than_zeros(monkeypatch, capsys):
    from tfedge.cli import convert as convert_cli
    from tfedge.runtime import interpreter as interpreter_module

    real_init = interpreter_module.TfliteModel.__init__

    def init(self, model, num_threads=1):
        real_init(self, model, num_threads)
        if str(self.source).endswith("stage1.tflite"):
            self.interpreter = _FailingOnBrightInput(self.interpreter, "raise")
    monkeypatch.setattr(interpreter_module.TfliteModel, "__init__", init)
    assert convert_cli.main(["verify", str(GOLDEN_BUNDLE)]) == 2
    err = capsys.readouterr().err
    assert "stage1.tflite failed on this input (tensorflow/lite/kernels/gather.cc" in err
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- 9: decoded bytes


def test_item9_decoded_bytes_are_bounded_per_mode(tmp_path):
    gray16 = tmp_path / "g16.png"
    Image.fromarray(np.full((64, 64), 40000, np.uint16)).save(gray16)
    floats = tmp_path / "f.tif"
    Image.fromarray(np.full((64, 64), 0.5, np.float32)).save(floats)
    gray8 = tmp_path / "g8.png"
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(gray8)
    limit = 64 * 64 * 2  # room for 2 bytes per pixel
    assert read_image(gray8, max_decoded_bytes=limit)[0].shape == (64, 64, 3)
    assert read_image(gray16, max_decoded_bytes=limit)[0][0, 0, 0] == 40000 >> 8
    with pytest.raises(ImageReadError, match=r"64x64 F pixels, 0 MiB decoded, over the limit"):
        read_image(floats, max_decoded_bytes=limit)


def _reference_gray(values: np.ndarray, mode: str) -> np.ndarray:
    """The conversion rules of to_uint8_rgb, on the whole image at once (float64)."""
    if mode == "F":
        values = values.astype(np.float64)
        finite = values[np.isfinite(values)]
        top = float(finite.max()) if finite.size else 0.0
        scaled = values * 255 if top <= 1.0 else values
        return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    values = values.astype(np.int64)
    if mode == "I;16" or values.max() > 255:
        values = np.clip(values, 0, 65535) >> 8
    return np.clip(values, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["float01", "float255", "int_small", "int_wide", "uint16"])
def test_item9_banded_conversion_matches_the_whole_image_rules(monkeypatch, kind):
    monkeypatch.setattr(image_module, "_BAND_PIXELS", 50)  # many bands of a few rows
    rng = np.random.default_rng(5)
    values = {
        "float01": rng.random((37, 23)).astype(np.float32),
        "float255": (rng.random((37, 23)) * 300).astype(np.float32),
        "int_small": rng.integers(-3, 250, (37, 23)).astype(np.int32),
        "int_wide": rng.integers(0, 70000, (37, 23)).astype(np.int32),
        "uint16": rng.integers(0, 65535, (37, 23)).astype(np.uint16),
    }[kind]
    if kind.startswith("float"):
        values[0, 0], values[5, 5], values[36, 22] = np.nan, np.inf, -np.inf
        values[20:, :] *= 0.5  # the largest finite value sits in an early band
    picture = Image.fromarray(values)
    out = image_module.to_uint8_rgb(picture)
    expected = _reference_gray(np.asarray(picture), picture.mode)
    assert out.shape == (37, 23, 3) and np.array_equal(out, np.repeat(expected[:, :, None], 3, 2))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["png16", "tiff_float"])
def test_item9_an_8192_square_16_bit_or_float_image_peaks_under_640_mb(tmp_path, kind):
    make = f"""
import sys, numpy as np
from PIL import Image
if {kind!r} == "png16":
    a = np.zeros((8192, 8192), np.uint16); a[::7, ::5] = 40000
    Image.fromarray(a).save(sys.argv[1])
else:
    a = np.zeros((8192, 8192), np.float32); a[::3, ::7] = 0.5
    Image.fromarray(a).save(sys.argv[1], compression="tiff_adobe_deflate")
"""
    # VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's (pytest's) peak.
    measure = """
import sys
from pathlib import Path
from tfedge.runtime.image import read_image
pixels, _ = read_image(sys.argv[1])
hwm = [line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")]
print(pixels.shape, int(hwm[0].split()[1]) / 1024)
"""
    # Made in one process, read in a fresh one: the peak is the decoder's alone
    # (before the fix 1.3 GB for the PNG and 2.9 GB for the TIFF).
    path = tmp_path / ("x.png" if kind == "png16" else "x.tif")
    subprocess.run([sys.executable, "-c", make, str(path)], check=True, timeout=300)
    done = subprocess.run([sys.executable, "-c", measure, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(8192, 8192, 3)" in done.stdout
    peak_mb = float(done.stdout.split()[-1])
    assert peak_mb < 640, peak_mb


# --------------------------------------------------------------------------- 10: --human


def test_item10_human_lines_stay_one_line_per_frame(tmp_path, capsys):
    folder = tmp_path / "frames"
    paths = _frames(folder, 2)
    odd = folder / "evil\nname\x1b[31m.png"
    paths[1].rename(odd)
    assert runner_cli.main([str(GOLDEN_BUNDLE), str(folder), "--human"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and any("evil\\nname\\x1b[31m.png: " in line for line in lines)
    assert not any("\x1b" in line for line in lines)
    record = {"source": "a\nb", "error": "x\ny"}
    assert human_line(record, 2) == "a\\nb: ERROR x\\ny"
    assert printable("plain é") == "plain é"


# --------------------------------------------------------------------------- 13: skipped entries


def test_item13_the_runner_counts_the_entries_it_skips(tmp_path, capsys):
    folder = tmp_path / "frames"
    _frames(folder, 1)
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    assert entry_skip_kind(folder / "pipe.jpg") == "fifo"
    assert entry_skip_kind(folder / "loop.png") == "symlink_loop"
    spec = parse_sources([str(folder)])
    assert spec.skipped_counts() == {"dangling_symlink": 1, "fifo": 1, "symlink_loop": 1}
    outcome = _finishes(lambda: runner_cli.run(runner_cli.RunOptions(
        bundle=str(GOLDEN_BUNDLE), sources=(str(folder),), benchmark=True),
        stdout=io.StringIO()))
    result = outcome["value"]
    assert result.frames == 1 and result.summary["skipped"] == {
        "dangling_symlink": 1, "fifo": 1, "symlink_loop": 1}
    with pytest.raises(TfedgeError, match="is a fifo, not an image file"):
        parse_sources([str(folder / "pipe.jpg")])


def test_item13_a_fifo_image_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "x.jpg")
    outcome = _finishes(lambda: read_image(tmp_path / "x.jpg"), seconds=10)
    assert isinstance(outcome.get("error"), ImageReadError)
    assert "FIFO" in str(outcome["error"])


# --------------------------------------------------------------------------- 14, 15: writes


def _write_version(folder: Path, archive: Path, top1: float) -> None:
    source = load_bundle(GOLDEN_BUNDLE)
    write_bundle(folder, labels=source.labels, stages=[
        (s, source.read_model(s)) for s in source.stages],
        predictor=(source.predictor, source.read_model(source.predictor)),
        metrics={"top1": top1}, zip_path=archive)


def test_item14_a_kill_between_the_folder_swap_and_the_zip_never_leaves_a_stale_pair(
        tmp_path, monkeypatch):
    folder, archive = tmp_path / "b", tmp_path / "b.zip"
    _write_version(folder, archive, 0.1)
    real_replace = os.replace

    class Killed(BaseException):
        pass

    def replace(src, dst):
        if Path(dst) == archive:  # the last step: the new zip renamed into place
            raise Killed()
        return real_replace(src, dst)
    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(Killed):
        _write_version(folder, archive, 0.2)
    monkeypatch.undo()
    assert load_bundle(folder).metrics["top1"] == 0.2
    assert not archive.exists()  # the old zip went before the new folder came
    _write_version(folder, archive, 0.3)
    with load_bundle(archive) as zipped:
        assert zipped.manifest == load_bundle(folder).manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "b.zip"]


def test_item14_a_failed_write_keeps_the_old_pair(tmp_path, monkeypatch):
    folder, archive = tmp_path / "b", tmp_path / "b.zip"
    _write_version(folder, archive, 0.1)
    monkeypatch.setattr(bundle_module, "_zip_bytes_entries",
                        lambda zf, contents: (_ for _ in ()).throw(OSError(28, "disk full")))
    with pytest.raises(OSError):
        _write_version(folder, archive, 0.2)
    monkeypatch.undo()
    with load_bundle(archive) as zipped:
        assert zipped.metrics["top1"] == load_bundle(folder).metrics["top1"] == 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "b.zip"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_item15_temporaries_of_killed_writes_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "m.keras"
    dead = tmp_path / f".m.keras.pid{_dead_pid()}.abcd1234.keras"
    alive = tmp_path / f".m.keras.pid{os.getppid()}.efgh5678.keras"  # our parent is running
    unmarked_old = tmp_path / ".m.keras.ijkl9012.keras"
    unmarked_new = tmp_path / ".m.keras.mnop3456.keras"
    not_ours = tmp_path / ".m.keras.notes"
    for path in (dead, alive, unmarked_old, unmarked_new, not_ours):
        path.write_bytes(b"partial")
    os.utime(unmarked_old, (1, 1))
    os.utime(not_ours, (1, 1))
    folder_tmp = tmp_path / f".b.zip.pid{_dead_pid()}.qrst7890.zip"
    folder_tmp.write_bytes(b"partial zip")
    fileio.atomic_write_bytes(target, b"model")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["m.keras", alive.name, unmarked_new.name, not_ours.name,
                           folder_tmp.name])
    _write_version(tmp_path / "b", tmp_path / "b.zip", 0.5)
    assert not folder_tmp.exists()


def test_private_tempdir_holds_tempfile_use_and_removes_what_killed_runs_left(tmp_path,
                                                                          monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"tfedge-convert.pid{_dead_pid()}.abcd1234"
    (dead / "tmpexport").mkdir(parents=True)
    alive = tmp_path / f"tfedge-train.pid{os.getppid()}.efgh5678"
    alive.mkdir()
    other = tmp_path / "tmp_not_ours"
    other.mkdir()
    with fileio.private_tempdir("convert") as folder:
        assert not dead.exists()  # its process is gone
        assert folder.parent == tmp_path and folder.name.startswith(f"tfedge-convert.pid{os.getpid()}.")
        made = Path(tempfile.mkdtemp())  # what TensorFlow's converter does
        with fileio.private_tempdir("train") as inner:  # nested: the same folder
            assert inner == folder
        assert made.parent == folder and tempfile.gettempdir() == str(folder)
    assert not folder.exists() and tempfile.gettempdir() == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


def test_a_model_next_to_the_sidecar_of_another_run_is_refused(tmp_path):
    # A kill between the model's rename and the sidecar's write leaves a new model next to
    # the old sidecar: its class names and resolution would be read as the new model's.
    keras = pytest.importorskip("keras")
    from tfedge._train import read_sidecar, save_classifier

    def tiny(units):
        inputs = keras.Input((8, 8, 3))
        return keras.Model(inputs, keras.layers.Dense(units)(keras.layers.Flatten()(inputs)))
    path = tmp_path / "m.keras"
    save_classifier(tiny(2), path, {"class_names": ["a", "b"]})
    assert read_sidecar(path)["class_names"] == ["a", "b"]
    old_sidecar = (tmp_path / "m.keras.json").read_bytes()
    save_classifier(tiny(3), path, {"class_names": ["a", "b", "c"]})
    (tmp_path / "m.keras.json").write_bytes(old_sidecar)  # what the kill leaves
    with pytest.raises(TfedgeError, match="was written for another version of"):
        read_sidecar(path)


@pytest.mark.parametrize("target", ["/dev/null", "fifo", "folder"])
def test_atomic_writes_refuse_a_target_that_is_not_a_regular_file(tmp_path, target):
    if target == "fifo":
        path = tmp_path / "out.json"
        os.mkfifo(path)
    elif target == "folder":
        path = tmp_path / "out.json"
        path.mkdir()
    else:
        path = Path(target)
    before = os.stat(path).st_mode
    with pytest.raises(TfedgeError, match="exists and is .*, not a file") as exc:
        fileio.atomic_write_bytes(path, b"{}")
    _one_line(exc)
    assert os.stat(path).st_mode == before
    if target != "/dev/null":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_long_run_keeps_a_bounded_sample_with_exact_counts():
    sample = runner_cli._RecordSample(limit=10)
    for i in range(25):
        record = {"error": "x"} if i % 5 == 0 else {
            "exit_stage": i % 2, "total_ms": 1.0, "pipeline_ms": 1.0, "infer_ms": 0.5,
            "preprocess_ms": 0.2, "decode_ms": 0.1, "macs": 10}
        sample.add(record)
    summary = sample.summary(num_stages=2, wall_seconds=2.0)
    assert len(sample.kept) == 10 and summary["summary_sample"] == 10
    assert summary["frames"] == 20 and summary["errors"] == 5 and summary["fps"] == 10.0
    assert summary["exit_histogram"] == [10, 10]


def test_verify_refuses_nan_outputs_on_valid_inputs(monkeypatch, capsys):
    from tfedge.cli import convert as convert_cli
    from tfedge.runtime import interpreter as interpreter_module

    real_invoke = interpreter_module.TfliteModel._invoke

    def invoke(self, q):
        outs = real_invoke(self, q)
        if str(self.source).endswith("stage0.tflite") and int(q.max()) == 127:
            return [np.full(o.shape, np.nan, np.float32) for o in outs]
        return outs
    monkeypatch.setattr(interpreter_module.TfliteModel, "_invoke", invoke)
    assert convert_cli.main(["verify", str(GOLDEN_BUNDLE)]) == 2
    assert "stage0.tflite: output holds NaN or infinity on a valid input" in \
        capsys.readouterr().err
