"""The bundle contract (tfedge.runtime.bundle) and the TF-free LiteRT helpers (.interpreter).

Fast: model files are fake bytes, except where a real interpreter is needed
(those tests build a tiny .tflite with TensorFlow and are skipped without it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfedge.runtime.bundle import (DEFAULT_PREPROCESSING, FORMAT_NAME, FORMAT_VERSION,
                                   MANIFEST_NAME, Bundle, PredictorEntry, StageEntry,
                                   check_bundle_destination, check_tensor_specs, load_bundle,
                                   spec_difference, write_bundle)
from tfedge.runtime.errors import BundleError, TfedgeError
from tfedge.runtime.interpreter import (InterpreterUnavailableError, TensorSpec, dequantize,
                                        load_interpreter, quantize)

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["cat", "dog", "bird"]
STAGE0 = b"\x00fake tflite stage 0" * 10
STAGE1 = b"\x01fake tflite stage 1" * 20
PREDICTOR = b"\x02fake predictor" * 5


def _spec(shape, dtype="int8", scale=1.0, zero_point=-128) -> TensorSpec:
    return TensorSpec(shape=tuple(shape), dtype=dtype, scale=scale, zero_point=zero_point)


def _stage(name: str, res: int, threshold=None, accumulate=0.0) -> StageEntry:
    return StageEntry(name=name, resolution=res, macs=1000 * res, input=_spec((1, res, res, 3)),
                      output=_spec((1, len(LABELS)), scale=0.05, zero_point=3),
                      criterion="max_softmax", threshold=threshold, accumulate_weight=accumulate,
                      metrics={"float_top1": 0.8, "int8_top1": np.float32(0.79)})


def _predictor() -> PredictorEntry:
    return PredictorEntry(resolution=16, macs=500, input=_spec((1, 16, 16, 3)),
                          outputs=_spec((1, 4), scale=1 / 256, zero_point=-128),
                          crop={"margin": 0.1, "square": True, "min_size": 0.2},
                          metrics={"mean_iou": 0.7})


def _write(tmp_path: Path, *, zip_name=None, predictor=True, **kwargs) -> Path:
    return write_bundle(
        tmp_path / "bundle", labels=LABELS,
        stages=[(_stage("small", 16, threshold=0.9), STAGE0),
                (_stage("big", 32, accumulate=0.5), STAGE1)],
        predictor=(_predictor(), PREDICTOR) if predictor else None,
        metrics={"top1": 0.81, "mean_macs": 20000},
        zip_path=tmp_path / zip_name if zip_name else None, **kwargs)


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST_NAME).read_text())


def _rewrite_manifest(path: Path, manifest: dict) -> None:
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert ": " in message  # problem: fix
    return message


# --------------------------------------------------------------------------- round trip


def test_directory_round_trip(tmp_path):
    path = _write(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [MANIFEST_NAME, "labels.txt", "predictor.tflite", "stage0.tflite", "stage1.tflite"])
    bundle = load_bundle(path)
    assert isinstance(bundle, Bundle)
    assert bundle.version == FORMAT_VERSION
    assert bundle.labels == tuple(LABELS)
    assert (path / "labels.txt").read_text() == "cat\ndog\nbird\n"
    assert dict(bundle.preprocessing) == dict(DEFAULT_PREPROCESSING)
    assert [s.name for s in bundle.stages] == ["small", "big"]
    assert [s.file for s in bundle.stages] == ["stage0.tflite", "stage1.tflite"]
    assert bundle.stages[0].threshold == pytest.approx(0.9)
    assert bundle.stages[1].threshold is None
    assert bundle.stages[1].accumulate_weight == 0.5
    assert bundle.stages[0].input == _spec((1, 16, 16, 3))
    assert bundle.stages[0].output == _spec((1, 3), scale=0.05, zero_point=3)
    assert bundle.stages[0].metrics["int8_top1"] == pytest.approx(0.79)
    assert bundle.predictor is not None and bundle.predictor.file == "predictor.tflite"
    assert bundle.predictor.output == _spec((1, 4), scale=1 / 256, zero_point=-128)
    assert dict(bundle.predictor.crop) == {"margin": 0.1, "square": True, "min_size": 0.2}
    assert bundle.read_model(bundle.stages[1]) == STAGE1
    assert bundle.read_model(bundle.predictor) == PREDICTOR
    assert bundle.model_path(bundle.stages[0]) == path / "stage0.tflite"
    assert bundle.files["stage0.tflite"].bytes == len(STAGE0)
    assert bundle.files["stage0.tflite"].sha256 == hashlib.sha256(STAGE0).hexdigest()
    assert MANIFEST_NAME not in bundle.files
    assert bundle.total_model_bytes() == len(STAGE0) + len(STAGE1) + len(PREDICTOR)
    assert [e.file for e in bundle.models] == ["predictor.tflite", "stage0.tflite", "stage1.tflite"]
    manifest = _manifest(path)
    assert manifest["format"] == FORMAT_NAME and manifest["version"] == 1
    assert manifest["stages"][0]["input"] == {"shape": [1, 16, 16, 3], "dtype": "int8",
                                              "scale": 1.0, "zero_point": -128}
    assert manifest["created_utc"].endswith("Z")


def test_zip_round_trip_and_determinism(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    path = _write(tmp_path, zip_name="b.zip")
    zip_path = tmp_path / "b.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert names[0] == MANIFEST_NAME
    assert names[1:] == sorted(names[1:])
    first = zip_path.read_bytes()
    write_bundle(tmp_path / "again", labels=LABELS,
                 stages=[(_stage("small", 16, threshold=0.9), STAGE0),
                         (_stage("big", 32, accumulate=0.5), STAGE1)],
                 predictor=(_predictor(), PREDICTOR), metrics={"top1": 0.81, "mean_macs": 20000},
                 zip_path=tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == first  # same inputs, same bytes

    from_dir = load_bundle(path)
    with load_bundle(zip_path) as from_zip:
        root = from_zip.root
        assert root.is_dir() and root != path
        assert from_zip.stages == from_dir.stages
        assert from_zip.predictor == from_dir.predictor
        assert from_zip.read_model(from_zip.stages[0]) == STAGE0
    assert not root.exists()  # the temporary folder goes with the bundle

    target = tmp_path / "extracted"
    extracted = load_bundle(zip_path, extract_to=target)
    assert extracted.root == target and (target / "stage1.tflite").read_bytes() == STAGE1


def test_zip_of_a_bundle_folder_is_accepted(tmp_path):
    path = _write(tmp_path)
    zip_path = tmp_path / "folder.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("mybundle/", b"")
        for f in sorted(path.iterdir()):
            zf.write(f, f"mybundle/{f.name}")
        zf.writestr("__MACOSX/._junk", b"x")
    bundle = load_bundle(zip_path)
    assert bundle.read_model(bundle.stages[0]) == STAGE0


def test_single_stage_without_predictor(tmp_path):
    path = write_bundle(tmp_path / "one", labels=LABELS, stages=[(_stage("only", 16), STAGE0)])
    bundle = load_bundle(path)
    assert bundle.predictor is None and len(bundle.stages) == 1
    assert _manifest(path)["predictor"] is None
    assert dict(bundle.metrics) == {}


def test_rewrite_replaces_an_existing_bundle(tmp_path):
    path = _write(tmp_path)
    write_bundle(path, labels=LABELS, stages=[(_stage("only", 16), STAGE1)])
    bundle = load_bundle(path)
    assert len(bundle.stages) == 1 and bundle.read_model(bundle.stages[0]) == STAGE1
    assert not (path / "predictor.tflite").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_folder_of_other_files_is_never_replaced(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "base.keras").write_bytes(b"weights")
    with pytest.raises(BundleError) as exc:
        write_bundle(work, labels=LABELS, stages=[(_stage("only", 16), STAGE1)])
    assert "base.keras" in _one_line(exc) and "new or empty folder" in str(exc.value)
    assert [p.name for p in work.iterdir()] == ["base.keras"]
    (work / MANIFEST_NAME).write_text("{not json")          # a broken manifest is not a bundle
    with pytest.raises(BundleError, match="not a tfedge bundle"):
        write_bundle(work, labels=LABELS, stages=[(_stage("only", 16), STAGE1)])
    for name in (".", "..", "bundles/.."):
        with pytest.raises(BundleError, match="current or parent folder"):
            check_bundle_destination(name)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="not a folder"):
        check_bundle_destination(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    write_bundle(empty, labels=LABELS, stages=[(_stage("only", 16), STAGE1)])
    assert list(load_bundle(empty).labels) == list(LABELS)


def test_bundle_folders_are_readable_by_others_as_mkdir_makes_them(tmp_path):
    previous = os.umask(0o022)  # the usual umask; under 0o077 mkdir makes 0700 folders too
    try:
        path = _write(tmp_path)
        plain = tmp_path / "plain"
        plain.mkdir()
    finally:
        os.umask(previous)
    assert (path.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777) == 0o755


def test_a_failed_swap_puts_the_previous_bundle_back(tmp_path, monkeypatch):
    import tfedge._io as io_module

    path = _write(tmp_path)
    before = sorted(p.name for p in path.iterdir())
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name.startswith(f".{path.name}.") and ".old." not in Path(src).name:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(io_module.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(path, labels=LABELS, stages=[(_stage("only", 16), STAGE1)])
    assert sorted(p.name for p in path.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- defects


def test_flipped_byte_is_a_hash_mismatch(tmp_path):
    path = _write(tmp_path)
    data = bytearray((path / "stage0.tflite").read_bytes())
    data[5] ^= 0xFF
    (path / "stage0.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError) as exc:
        load_bundle(path)
    assert _one_line(exc) == ("stage0.tflite: SHA-256 mismatch (file altered or corrupt): "
                              "rebuild the bundle with tfedge-convert")
    assert load_bundle(path, verify_hashes=False).stages[0].file == "stage0.tflite"


def test_truncated_file_is_a_size_mismatch(tmp_path):
    path = _write(tmp_path)
    (path / "stage1.tflite").write_bytes(STAGE1[:-1])
    with pytest.raises(BundleError, match=r"^stage1\.tflite: .*bytes but manifest\.json says") as exc:
        load_bundle(path, verify_hashes=False)
    _one_line(exc)


def test_missing_file(tmp_path):
    path = _write(tmp_path)
    (path / "predictor.tflite").unlink()
    with pytest.raises(BundleError, match=r"^predictor\.tflite: listed in manifest\.json but "
                                          r"missing") as exc:
        load_bundle(path)
    _one_line(exc)


def test_missing_manifest_and_missing_path(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path / "empty")
    (tmp_path / "x.bin").write_bytes(b"hello")
    with pytest.raises(BundleError, match="neither a folder nor a zip"):
        load_bundle(tmp_path / "x.bin")


def test_future_version(tmp_path):
    path = _write(tmp_path)
    manifest = _manifest(path)
    from tfedge.runtime.bundle import SUPPORTED_VERSION

    manifest["version"] = SUPPORTED_VERSION + 1
    _rewrite_manifest(path, manifest)
    with pytest.raises(BundleError) as exc:
        load_bundle(path)
    assert _one_line(exc) == (f"bundle version {SUPPORTED_VERSION + 1} is newer than this tfedge "
                              f"supports ({SUPPORTED_VERSION}): upgrade tfedge")


def test_unknown_format(tmp_path):
    path = _write(tmp_path)
    manifest = _manifest(path)
    manifest["format"] = "something-else"
    _rewrite_manifest(path, manifest)
    with pytest.raises(BundleError, match="format is 'something-else', not 'tfedge-bundle'") as exc:
        load_bundle(path)
    _one_line(exc)


@pytest.mark.parametrize("drop, field", [
    (("stages", 0, "resolution"), "stages[0].resolution"),
    (("stages", 1, "input"), "stages[1].input"),
    (("stages",), "stages"),
    (("labels",), "labels"),
    (("files",), "files"),
    (("predictor", "crop"), "predictor.crop"),
    (("stages", 0, "input", "zero_point"), "stages[0].input.zero_point"),
])
def test_missing_field(tmp_path, drop, field):
    path = _write(tmp_path)
    manifest = _manifest(path)
    obj = manifest
    for key in drop[:-1]:
        obj = obj[key]
    del obj[drop[-1]]
    _rewrite_manifest(path, manifest)
    with pytest.raises(BundleError) as exc:
        load_bundle(path)
    assert _one_line(exc) == (f"manifest.json: missing field '{field}': rebuild the bundle "
                              "with tfedge-convert")


def test_invalid_json(tmp_path):
    path = _write(tmp_path)
    (path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON") as exc:
        load_bundle(path)
    _one_line(exc)


def test_last_stage_threshold_must_be_null(tmp_path):
    path = _write(tmp_path)
    manifest = _manifest(path)
    manifest["stages"][1]["threshold"] = 0.5
    _rewrite_manifest(path, manifest)
    with pytest.raises(BundleError, match=r"stages\[1\]\.threshold.*last stage must have "
                                          "threshold null") as exc:
        load_bundle(path)
    _one_line(exc)
    with pytest.raises(BundleError, match="last stage"):
        write_bundle(tmp_path / "x", labels=LABELS, stages=[(_stage("a", 16, threshold=0.5), STAGE0)])


def test_null_threshold_before_the_last_stage(tmp_path):
    with pytest.raises(BundleError, match=r"stages\[0\]\.threshold' is null.*could never run"):
        write_bundle(tmp_path / "x", labels=LABELS,
                     stages=[(_stage("a", 16), STAGE0), (_stage("b", 32), STAGE1)])


def test_labels_count_must_match_output(tmp_path):
    with pytest.raises(BundleError, match=r"output\.shape' is \[1, 3\] but the bundle has 4 "
                                          "labels") as exc:
        write_bundle(tmp_path / "x", labels=LABELS + ["fish"], stages=[(_stage("a", 16), STAGE0)])
    _one_line(exc)
    assert not (tmp_path / "x").exists()  # an invalid bundle is never written


def test_labels_file_must_agree(tmp_path):
    path = _write(tmp_path)
    manifest = _manifest(path)
    (path / "labels.txt").write_text("cat\ndog\nfish\n")
    data = (path / "labels.txt").read_bytes()
    manifest["files"]["labels.txt"] = {"sha256": hashlib.sha256(data).hexdigest(),
                                       "bytes": len(data)}
    _rewrite_manifest(path, manifest)
    with pytest.raises(BundleError, match="labels.txt and the labels in manifest.json disagree"):
        load_bundle(path)


@pytest.mark.parametrize("mutate, pattern", [
    (lambda m: m["stages"][0].update(criterion="vibes"), r"criterion' is 'vibes'"),
    (lambda m: m["stages"][0].update(threshold=1.5), "above 1"),
    (lambda m: m["stages"][0].update(accumulate_weight=0.3), "first stage has no earlier logits"),
    (lambda m: m["stages"][0].update(resolution=17), r"input\.shape' is \[1, 16, 16, 3\] but "
                                                     "resolution 17"),
    (lambda m: m["stages"][0].update(macs=-1), "macs' must be a whole number >= 0"),
    (lambda m: m["stages"][0]["input"].update(dtype="int4"), "dtype' is 'int4'"),
    (lambda m: m["stages"][0]["input"].update(scale=0.0), "quantised tensors need scale > 0"),
    (lambda m: m["stages"][1].update(name="small"), "stage names must be unique"),
    (lambda m: m["stages"][0].update(file="../../etc/passwd"), "not a plain relative file name"),
    (lambda m: m["stages"][0].update(file="/abs.tflite"), "not a plain relative file name"),
    (lambda m: m["stages"][0].update(file="other.tflite"), "'other.tflite' is used but not listed"),
    (lambda m: m["predictor"].update(box_format="xywh"), "box_format' is 'xywh'"),
    (lambda m: m["predictor"].update(box_format="heatmap_cyxhw"), "do not form a heat map"),
    (lambda m: m["predictor"]["crop"].update(square="yes"), "predictor.crop' is invalid"),
    (lambda m: m["predictor"]["crop"].update(min_size=0.0), "predictor.crop' is invalid"),
    (lambda m: m["predictor"]["crop"].update(marg1n=0.2), r"unknown keys \['marg1n'\]"),
    (lambda m: m.update(labels=["cat", "dog\x0cbird", "bird"]), "one-line string"),
    (lambda m: m.update(labels=["cat", "dog\u2028x", "bird"]), "one-line string"),
    (lambda m: m["preprocessing"].update(color="BGR"), "color' is 'BGR'"),
    (lambda m: m["preprocessing"].update(pixel_range=[-1, 1]), "pixel_range"),
    (lambda m: m.update(stages=[]), "at least one classifier"),
    (lambda m: m["files"]["stage0.tflite"].update(sha256="abc"), "64 lowercase hex"),
])
def test_invalid_fields(tmp_path, mutate, pattern):
    path = _write(tmp_path)
    manifest = _manifest(path)
    mutate(manifest)
    _rewrite_manifest(path, manifest)
    with pytest.raises(BundleError, match=pattern) as exc:
        load_bundle(path)
    _one_line(exc)


def test_unknown_fields_are_ignored(tmp_path):
    path = _write(tmp_path)
    manifest = _manifest(path)
    manifest["future_field"] = {"x": 1}
    manifest["stages"][0]["future_stage_field"] = 3
    _rewrite_manifest(path, manifest)
    assert load_bundle(path).stages[0].name == "small"


def test_oversized_file(tmp_path):
    path = _write(tmp_path, zip_name="b.zip")
    limit = len(STAGE1) - 1
    with pytest.raises(BundleError, match=r"^stage1\.tflite: .* over the .* limit per file") as exc:
        load_bundle(path, max_file_bytes=limit)
    _one_line(exc)
    with pytest.raises(BundleError, match=r"zip entry 'stage1\.tflite' is .* over the .* limit") as exc:
        load_bundle(tmp_path / "b.zip", max_file_bytes=limit)
    _one_line(exc)
    with pytest.raises(BundleError, match="uncompressed"):
        load_bundle(tmp_path / "b.zip", max_total_bytes=len(STAGE1))


def _zip_with(tmp_path: Path, extra: zipfile.ZipInfo | str, data: bytes = b"evil") -> Path:
    path = _write(tmp_path)
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(path.iterdir()):
            zf.write(f, f.name)
        zf.writestr(extra, data)
    return zip_path


@pytest.mark.parametrize("name, pattern", [
    ("../evil", "climbs out of the bundle"),
    ("sub/../../evil", "climbs out of the bundle"),
    ("/evil", "is an absolute path"),
    ("C:/evil", "is an absolute path"),
    ("..\\evil", "backslash"),
])
def test_zip_slip_entries_are_refused(tmp_path, name, pattern):
    zip_path = _zip_with(tmp_path, zipfile.ZipInfo(name))
    dest = tmp_path / "out" / "deep"
    with pytest.raises(BundleError, match=pattern) as exc:
        load_bundle(zip_path, extract_to=dest)
    _one_line(exc)
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not dest.exists() or not any(dest.iterdir())  # nothing extracted at all


def test_zip_symlink_and_duplicate_entries_are_refused(tmp_path):
    link = zipfile.ZipInfo("link.tflite")
    link.external_attr = (0o120777 << 16)
    with pytest.raises(BundleError, match="symbolic link"):
        load_bundle(_zip_with(tmp_path / "a", link, b"/etc/passwd"))
    with pytest.warns(UserWarning):  # zipfile warns about the duplicate name it writes
        dup = _zip_with(tmp_path / "b", "stage0.tflite", b"other bytes")
    with pytest.raises(BundleError, match="appears twice"):
        load_bundle(dup)


def test_corrupt_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "bad.zip")


def test_zip_with_a_compression_python_cannot_read_is_a_clear_error(tmp_path):
    import struct

    path = _write(tmp_path)
    with zipfile.ZipFile(tmp_path / "b.zip", "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(path.iterdir()):
            zf.write(f, f.name)
    raw = bytearray((tmp_path / "b.zip").read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # method: Deflate64
        at = raw.find(signature)
        while at >= 0:
            struct.pack_into("<H", raw, at + offset, 9)
            at = raw.find(signature, at + 4)
    (tmp_path / "b.zip").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="uses a compression Python cannot read") as exc:
        load_bundle(tmp_path / "b.zip")
    _one_line(exc)


def test_directory_bundle_symlink_escape_is_refused(tmp_path):
    path = _write(tmp_path)
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(STAGE0)
    (path / "stage0.tflite").unlink()
    os.symlink(outside, path / "stage0.tflite")
    with pytest.raises(BundleError, match="links outside the bundle folder"):
        load_bundle(path)


def test_non_json_metrics_are_refused(tmp_path):
    with pytest.raises(BundleError, match="no NaN or infinity"):
        write_bundle(tmp_path / "x", labels=LABELS, stages=[(_stage("a", 16), STAGE0)],
                     metrics={"top1": float("nan")})
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- tensor specs


class _FakeModel:
    def __init__(self, inputs, outputs):
        self.input_specs = tuple(inputs)
        self.output_specs = tuple(outputs)


def test_check_tensor_specs_with_a_fake_loader(tmp_path):
    bundle = load_bundle(_write(tmp_path))
    specs = {e.file: e for e in bundle.models}

    def loader(path):
        entry = specs[Path(path).name]
        outs = entry.outputs if isinstance(entry, PredictorEntry) else (entry.output,)
        return _FakeModel([entry.input], outs)

    loaded = check_tensor_specs(bundle, loader)
    assert sorted(loaded) == ["predictor.tflite", "stage0.tflite", "stage1.tflite"]

    def wrong(path):
        model = loader(path)
        if Path(path).name == "stage1.tflite":
            return _FakeModel([_spec((1, 32, 32, 3), dtype="uint8", zero_point=0)],
                              model.output_specs)
        return model

    with pytest.raises(BundleError, match=r"^stage1\.tflite input dtype is uint8 but the "
                                          "manifest says int8") as exc:
        check_tensor_specs(bundle, wrong)
    _one_line(exc)


def test_spec_difference():
    a = _spec((1, 4), scale=0.1, zero_point=2)
    assert spec_difference([a], [a], "x") is None
    assert spec_difference([a], [_spec((1, 4), scale=0.1 * (1 + 1e-9), zero_point=2)], "x") is None
    assert "shape" in spec_difference([a], [_spec((1, 5), scale=0.1, zero_point=2)], "x")
    assert "scale" in spec_difference([a], [_spec((1, 4), scale=0.2, zero_point=2)], "x")
    assert "zero point" in spec_difference([a], [_spec((1, 4), scale=0.1, zero_point=3)], "x")
    assert "2 tensors" in spec_difference([a], [a, a], "x")


# --------------------------------------------------------------------------- litert helpers


def test_quantize_rounds_half_away_and_clips():
    x = np.array([-1000.0, -128.5, -0.5, 0.0, 0.5, 1.5, 2.5, 126.6, 1000.0])
    q = quantize(x, 1.0, 0, "int8")
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -128, -1, 0, 1, 2, 3, 127, 127]
    # int8 input of a tfedge model: scale 1, zero point -128 -> pixel - 128
    pixels = np.array([0.0, 1.0, 127.0, 128.0, 255.0])
    assert quantize(pixels, 1.0, -128, "int8").tolist() == [-128, -127, -1, 0, 127]
    assert quantize(pixels, 1.0, 0, "uint8").tolist() == [0, 1, 127, 128, 255]
    assert quantize(np.array([-3.0, 300.0]), 1.0, 0, "uint8").tolist() == [0, 255]
    assert quantize(np.array([0.26]), 0.1, 5, "uint8").tolist() == [8]
    f = quantize(np.array([1.25]), 0.0, 0, "float32")
    assert f.dtype == np.float32 and f.tolist() == [1.25]
    with pytest.raises(TfedgeError, match="scale must be a positive number"):
        quantize(np.zeros(2), 0.0, 0, "int8")
    with pytest.raises(TfedgeError, match="cannot quantise"):
        quantize(np.zeros(2), 1.0, 0, "int4")


def test_dequantize_and_round_trip():
    q = np.array([-128, -3, 0, 127], np.int8)
    assert dequantize(q, 0.5, -3).tolist() == [-62.5, 0.0, 1.5, 65.0]
    assert dequantize(q, 0.5, -3).dtype == np.float32
    assert dequantize(np.array([1.5], np.float32), 0.0, 0).tolist() == [1.5]
    rng = np.random.default_rng(0)
    for dtype, zp in (("int8", -7), ("uint8", 131)):
        scale = 0.037
        x = rng.uniform(-4.0, 4.0, 1000)
        back = dequantize(quantize(x, scale, zp, dtype), scale, zp)
        assert np.max(np.abs(back - x)) <= scale / 2 + 1e-6


def test_missing_interpreter_is_a_clear_error(monkeypatch):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InterpreterUnavailableError) as exc:
        load_interpreter(b"whatever")
    assert str(exc.value) == ("no LiteRT interpreter: pip install ai-edge-litert (or "
                              "tflite-runtime on 32-bit/old systems)")
    assert isinstance(exc.value, TfedgeError)


def test_bad_model_bytes_are_a_clear_error():
    pytest.importorskip("ai_edge_litert")
    from tfedge.runtime.interpreter import ModelLoadError

    with pytest.raises(ModelLoadError, match="rebuild it with tfedge-convert") as exc:
        load_interpreter(b"not a flatbuffer at all" * 4)
    assert "\n" not in str(exc.value)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_interpreter("/nonexistent/model.tflite")
    with pytest.raises(TfedgeError, match="num_threads"):
        load_interpreter(b"x", num_threads=0)


def test_bundle_and_litert_do_not_import_tensorflow():
    code = ("import sys, tfedge.bundle, tfedge.litert; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
            "assert 'keras' not in sys.modules, 'keras imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bundle_reads_with_tensorflow_unimportable(tmp_path):
    """A device without TensorFlow: importing it fails, loading a bundle still works."""
    path = _write(tmp_path)
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from tfedge.bundle import load_bundle\n"
            f"b = load_bundle({str(path)!r})\n"
            "print(len(b.stages))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


def test_heatmap_predictor_round_trips(tmp_path):
    entry = PredictorEntry(resolution=16, macs=500, input=_spec((1, 16, 16, 3)),
                           outputs=(_spec((1, 16, 2), scale=1 / 256, zero_point=-128),
                                    _spec((1, 16), scale=0.1, zero_point=0)),
                           crop={"margin": 0.1}, box_format="heatmap_cyxhw")
    path = write_bundle(tmp_path / "b", labels=LABELS,
                        stages=[(_stage("small", 16, threshold=None), STAGE0)],
                        predictor=(entry, b"pred"))
    with load_bundle(path, verify_hashes=False) as bundle:
        assert bundle.predictor.box_format == "heatmap_cyxhw"
        assert [list(o.shape) for o in bundle.predictor.outputs] == [[1, 16, 2], [1, 16]]
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["predictor"]["output"][1]["shape"] = [1, 15]  # not a square grid
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="do not form a heat map"):
        load_bundle(path, verify_hashes=False)
