"""The deployment bundle: one documented contract between converter and devices.

A bundle is a folder (or the same files in a ``.zip``) holding
``manifest.json``, the ``.tflite`` models and ``labels.txt``. The manifest
(format ``tfedge-bundle``, version 1; version 2 when it holds a refiner) is
specified in ``docs/bundle.md``; this
module is its only Python reader and writer, used by ``tfedge-convert``, the
Raspberry Pi runner and the evaluation code. The Android core reads the same
manifest.

Why the checks are strict: a bundle travels (copied to a Pi, unzipped on a
phone) and a half-copied or altered model gives wrong answers without failing.
Every file is listed with its size and SHA-256; every field is checked on
load; every defect is a :class:`~tfedge.BundleError` whose one-line message
names the problem and the fix. Zip archives are checked entry by entry before
anything is extracted (no absolute paths, no ``..``, no links, no
duplicates, size limits).

This module imports numpy and the rest of :mod:`tfedge.runtime` only, never TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import re
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .boxes import BOX_FORMATS, HEATMAP_BOX_FORMAT
from .decision import CRITERIA, PROBABILITY_CRITERIA
from .errors import BundleError, TfedgeError
from .fileio import atomic_directory, atomic_path, sha256_file
from .geometry import CropConfig
from .interpreter import FLOAT_DTYPES, INTEGER_DTYPES, TensorSpec, TfliteModel

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "LABELS_NAME", "CRITERIA", "BOX_FORMATS",
    "HEATMAP_BOX_FORMAT",
    "DEFAULT_PREPROCESSING", "DEFAULT_MAX_FILE_BYTES", "DEFAULT_MAX_TOTAL_BYTES",
    "MAX_MANIFEST_BYTES",
    "TensorSpecEntry", "FileEntry", "StageEntry", "PredictorEntry", "RefinerEntry", "Bundle",
    "write_bundle", "REFINER_VERSION", "SUPPORTED_VERSION",
    "check_bundle_destination", "load_bundle", "check_tensor_specs", "spec_difference",
]

FORMAT_NAME = "tfedge-bundle"
#: The version of a bundle without a refiner: what is written unless a refiner is present,
#: so refiner-free bundles stay byte for byte what earlier tfedge wrote.
FORMAT_VERSION = 1
#: A bundle holding a refiner is version 2, so version-1 readers refuse it (they would
#: ignore the refiner and crop elsewhere).
REFINER_VERSION = 2
#: The newest version this reader understands.
SUPPORTED_VERSION = REFINER_VERSION
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"
DEFAULT_PREPROCESSING: Mapping[str, Any] = {"color": "RGB", "pixel_range": [0, 255],
                                            "resize": "bilinear"}
_PREPROCESSING_CHOICES = {"color": ("RGB",), "resize": ("bilinear",)}
_PIXEL_RANGE = [0, 255]
DEFAULT_MAX_FILE_BYTES = 512 * 2 ** 20  # one model file; the largest ImageNet ResNet-50 int8 is ~26 MB
DEFAULT_MAX_TOTAL_BYTES = 2 * 2 ** 30  # a whole zip, extracted
MAX_MANIFEST_BYTES = 16 * 2 ** 20  # a manifest is a few KB; this only stops absurd files
_MODEL_SUFFIX = ".tflite"
_HASH_CHUNK = 1 << 20
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: the same bundle gives the same zip
_ZIP_FILE_MODE = 0o100644
_ZIP_UNIX = 3
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_NAME_PART = 128  # characters per file-name part (file systems allow 255 bytes)
MAX_NAME_DEPTH = 8  # parts per file name
MAX_MANIFEST_DEPTH = 32  # nesting of JSON arrays and objects (a real manifest has ~5)
MIN_MANIFEST_INT, MAX_MANIFEST_INT = -2 ** 63, 2 ** 63 - 1  # whole numbers: signed 64 bits

_REBUILD = "rebuild the bundle with tfedge-convert"

#: A manifest TensorSpec is exactly :class:`tfedge.runtime.interpreter.TensorSpec`.
TensorSpecEntry = TensorSpec


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class FileEntry:
    """Size and SHA-256 (lowercase hex) of one bundle file."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class StageEntry:
    """One classifier of the cascade (a single classifier is a one-stage cascade).

    ``threshold`` None means the image always exits here (the last stage must
    have None). ``accumulate_weight`` > 0 adds that multiple of the previous
    stage's decision logits to this stage's logits before deciding (0 on the
    first stage). ``file`` is chosen by :func:`write_bundle` when empty.
    """

    name: str
    resolution: int
    macs: int
    input: TensorSpec
    output: TensorSpec
    criterion: str = "max_softmax"
    threshold: Optional[float] = None
    accumulate_weight: float = 0.0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    file: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "resolution": int(self.resolution),
                "macs": int(self.macs), "criterion": self.criterion,
                "threshold": None if self.threshold is None else float(self.threshold),
                "accumulate_weight": float(self.accumulate_weight),
                "input": self.input.to_json(), "output": self.output.to_json(),
                "metrics": _jsonable(dict(self.metrics), f"{self.name} metrics")}


class _BoxModel:
    """What the predictor and refiner entries share: one or more outputs, the box first."""

    outputs: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        if isinstance(self.outputs, TensorSpec):
            object.__setattr__(self, "outputs", (self.outputs,))
        else:
            object.__setattr__(self, "outputs", tuple(self.outputs))

    @property
    def output(self) -> TensorSpec:
        """The box output (the first one)."""
        return self.outputs[0]


@dataclass(frozen=True)
class PredictorEntry(_BoxModel):
    """The foreground predictor of dynamic image cropping.

    It sees the whole image at ``resolution`` and its first output holds one
    box (``box_format``). ``crop`` holds the crop-geometry parameters the
    runner applies to that box (margin, squaring, minimum size...).
    """

    resolution: int
    macs: int
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    crop: Mapping[str, Any] = field(default_factory=dict)
    box_format: str = "yxyx_normalized"
    metrics: Mapping[str, Any] = field(default_factory=dict)
    file: str = ""

    def to_json(self) -> dict[str, Any]:
        outputs = [o.to_json() for o in self.outputs]
        return {"file": self.file, "resolution": int(self.resolution), "macs": int(self.macs),
                "box_format": self.box_format,
                "crop": _jsonable(dict(self.crop), "predictor crop"),
                "input": self.input.to_json(),
                "output": outputs[0] if len(outputs) == 1 else outputs,
                "metrics": _jsonable(dict(self.metrics), "predictor metrics")}


@dataclass(frozen=True)
class RefinerEntry(_BoxModel):
    """The refiner (manifest version 2): a second look at the predictor's box.

    Per pass it sees the square ``window`` (crop-geometry parameters, always
    square, no scales) of the frame around the current box at ``resolution``
    and predicts the object's box inside that window (``box_format``, as the
    predictor's), which :mod:`tfedge.runtime.refine` maps back into the
    frame. ``passes`` looks per frame; ``macs`` are one look's.
    """

    resolution: int
    macs: int
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    window: Mapping[str, Any] = field(default_factory=dict)
    passes: int = 1
    box_format: str = "yxyx_normalized"
    metrics: Mapping[str, Any] = field(default_factory=dict)
    file: str = ""

    def to_json(self) -> dict[str, Any]:
        outputs = [o.to_json() for o in self.outputs]
        return {"file": self.file, "resolution": int(self.resolution), "macs": int(self.macs),
                "passes": int(self.passes), "box_format": self.box_format,
                "window": _jsonable(dict(self.window), "refiner window"),
                "input": self.input.to_json(),
                "output": outputs[0] if len(outputs) == 1 else outputs,
                "metrics": _jsonable(dict(self.metrics), "refiner metrics")}


ModelEntry = Union[StageEntry, PredictorEntry, RefinerEntry]


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked bundle. ``root`` is the folder its files are in.

    For a bundle read from a zip, ``root`` is a private temporary folder that
    lives as long as this object (or until :meth:`close`).
    """

    root: Path
    source: Path
    version: int
    created_utc: str
    tfedge_version: str
    labels: tuple[str, ...]
    preprocessing: Mapping[str, Any]
    predictor: Optional[PredictorEntry]
    stages: tuple[StageEntry, ...]
    metrics: Mapping[str, Any]
    files: Mapping[str, FileEntry]
    manifest: Mapping[str, Any] = field(repr=False, compare=False)
    _keepalive: Any = field(default=None, repr=False, compare=False)
    refiner: Optional[RefinerEntry] = None

    @property
    def locator_macs(self) -> int:
        """MACs of finding the box per frame: predictor + passes x refiner (0 without either)."""
        macs = self.predictor.macs if self.predictor is not None else 0
        if self.refiner is not None:
            macs += self.refiner.passes * self.refiner.macs
        return macs

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def models(self) -> tuple[ModelEntry, ...]:
        """Every model entry: the predictor and refiner (if any) first, then the stages."""
        return (((self.predictor,) if self.predictor is not None else ())
                + ((self.refiner,) if self.refiner is not None else ()) + self.stages)

    def model_path(self, entry: ModelEntry) -> Path:
        return self.root / entry.file

    def read_model(self, entry: ModelEntry) -> bytes:
        return self.model_path(entry).read_bytes()

    def total_model_bytes(self) -> int:
        return sum(self.files[e.file].bytes for e in self.models)

    def close(self) -> None:
        """Delete the temporary folder of a bundle read from a zip (no-op otherwise)."""
        if self._keepalive is not None:
            self._keepalive.cleanup()

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- small helpers


def _fail(message: str, fix: str = _REBUILD) -> BundleError:
    return BundleError(f"{message}: {fix}")


def _jsonable(obj: Any, what: str) -> Any:
    """``obj`` with numpy scalars/arrays made plain; NaN and infinity rejected."""
    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, np.ndarray):
            return convert(value.tolist())
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, Path):
            return str(value)
        return value

    plain = convert(obj)
    try:
        json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{what} cannot be stored in manifest.json ({exc}): use plain "
                          "numbers, strings, lists and dicts, with no NaN or infinity") from exc
    return plain


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_relative_name(name: Any, where: str) -> str:
    """A file name inside a bundle: relative, '/'-separated, no '..', no odd characters,
    each part at most :data:`MAX_NAME_PART` characters (file systems refuse longer ones)."""
    if not isinstance(name, str) or not name:
        raise _fail(f"manifest.json: {where} must be a file name, got {name!r}")
    parts = name.split("/")
    if any(not _SAFE_COMPONENT.fullmatch(p) for p in parts) or name == MANIFEST_NAME:
        raise _fail(f"manifest.json: {where} {name!r} is not a plain relative file name "
                    "(letters, digits, '._-', no '..' or leading '/')")
    if any(len(p) > MAX_NAME_PART for p in parts) or len(parts) > MAX_NAME_DEPTH:
        raise _fail(f"manifest.json: {where} {name[:40]!r}... is longer than bundles allow "
                    f"(at most {MAX_NAME_DEPTH} folders deep, {MAX_NAME_PART} characters each)")
    return name


def _folder_clash(names: Sequence[str], folders: Sequence[str] = ()) -> Optional[str]:
    """A file name that is also a folder (of another name, or in ``folders``), or None."""
    implied = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    implied.update(folders)
    return next((n for n in sorted(names) if n in implied), None)


def _timestamp_utc() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds.org) pins the timestamp for identical rebuilds.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch and epoch.isdigit()
           else _dt.datetime.now(_dt.timezone.utc))
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tfedge_version() -> str:
    # The parent package is always imported before its runtime, so its version is read
    # from sys.modules: importing it here would break the runtime's "nothing outside" rule.
    version_string = getattr(sys.modules.get("tfedge"), "__version__", None)
    if version_string:
        return str(version_string)
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("tfedge")
    except (ImportError, PackageNotFoundError):
        return "0+unknown"


def _human_bytes(count: int) -> str:
    return f"{count / 2 ** 20:.1f} MiB" if count >= 2 ** 20 else f"{count} bytes"


# --------------------------------------------------------------------------- manifest parsing


class _Reader:
    """Typed access to one JSON object, with error messages naming the field's path."""

    def __init__(self, obj: Any, where: str):
        if not isinstance(obj, dict):
            raise _fail(f"manifest.json: {where or 'the manifest'} must be a JSON object, "
                        f"got {type(obj).__name__}")
        self.obj = obj
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str) -> Any:
        if key not in self.obj:
            raise _fail(f"manifest.json: missing field '{self.path(key)}'")
        return self.obj[key]

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value:
            raise _fail(f"manifest.json: '{self.path(key)}' must be a non-empty string, "
                        f"got {value!r}")
        return value

    def integer(self, key: str, minimum: int = 0) -> int:
        value = self.get(key)
        if not _is_int(value) or value < minimum:
            raise _fail(f"manifest.json: '{self.path(key)}' must be a whole number >= {minimum}, "
                        f"got {value!r}")
        return int(value)

    def number(self, key: str, minimum: float = 0.0) -> float:
        value = self.get(key)
        if not _is_number(value) or value < minimum:
            raise _fail(f"manifest.json: '{self.path(key)}' must be a number >= {minimum}, "
                        f"got {value!r}")
        return float(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if not isinstance(value, dict):
            raise _fail(f"manifest.json: '{self.path(key)}' must be a JSON object, got "
                        f"{type(value).__name__}")
        return value

    def choice(self, key: str, choices: Sequence[str]) -> str:
        value = self.get(key)
        if value not in choices:
            raise _fail(f"manifest.json: '{self.path(key)}' is {value!r}, expected one of "
                        f"{', '.join(choices)}", fix="rebuild the bundle with tfedge-convert, "
                        "or upgrade tfedge if a newer one wrote it")
        return value


def _parse_tensor_spec(obj: Any, where: str) -> TensorSpec:
    r = _Reader(obj, where)
    shape = r.get("shape")
    if not isinstance(shape, list) or not shape or not all(_is_int(s) and s >= 1 for s in shape):
        raise _fail(f"manifest.json: '{where}.shape' must be a list of positive whole numbers, "
                    f"got {shape!r}")
    dtype = r.choice("dtype", INTEGER_DTYPES + FLOAT_DTYPES)
    scale = r.number("scale")
    zero_point = r.get("zero_point")
    if not _is_int(zero_point):
        raise _fail(f"manifest.json: '{where}.zero_point' must be a whole number, "
                    f"got {zero_point!r}")
    if dtype in INTEGER_DTYPES:
        info = np.iinfo(dtype)
        if scale <= 0 or not info.min <= zero_point <= info.max:
            raise _fail(f"manifest.json: '{where}' is a {dtype} tensor with scale {scale} and "
                        f"zero point {zero_point}: quantised tensors need scale > 0 and a zero "
                        f"point in [{info.min}, {info.max}]")
    return TensorSpec(shape=tuple(shape), dtype=dtype, scale=scale, zero_point=int(zero_point))


def _check_image_input(spec: TensorSpec, resolution: int, where: str) -> None:
    expected = (1, resolution, resolution, 3)
    if tuple(spec.shape) != expected:
        raise _fail(f"manifest.json: '{where}.input.shape' is {list(spec.shape)} but "
                    f"resolution {resolution} needs {list(expected)}")


def _parse_stage(obj: Any, index: int, count: int, num_labels: int) -> StageEntry:
    where = f"stages[{index}]"
    r = _Reader(obj, where)
    name = r.string("name")
    file = _check_relative_name(r.get("file"), f"'{where}.file'")
    if not file.endswith(_MODEL_SUFFIX):
        raise _fail(f"manifest.json: '{where}.file' {file!r} must end in {_MODEL_SUFFIX}")
    resolution = r.integer("resolution", minimum=1)
    macs = r.integer("macs")
    criterion = r.choice("criterion", CRITERIA)
    threshold = r.get("threshold")
    last = index == count - 1
    if threshold is None:
        if not last:
            raise _fail(f"manifest.json: '{where}.threshold' is null (always exit) but "
                        f"{count - 1 - index} stage(s) follow it and could never run",
                        fix="give it a threshold, or drop the later stages and rebuild")
    else:
        if last:
            raise _fail(f"manifest.json: '{where}.threshold' is {threshold!r} but the last stage "
                        "must have threshold null (every image exits there)")
        threshold = r.number("threshold")
        if criterion in PROBABILITY_CRITERIA and threshold > 1.0:
            raise _fail(f"manifest.json: '{where}.threshold' {threshold} is above 1 but "
                        f"criterion {criterion} compares a probability")
    accumulate = r.number("accumulate_weight")
    if index == 0 and accumulate != 0.0:
        raise _fail(f"manifest.json: '{where}.accumulate_weight' is {accumulate} but the first "
                    "stage has no earlier logits to accumulate: it must be 0")
    spec_in = _parse_tensor_spec(r.get("input"), f"{where}.input")
    _check_image_input(spec_in, resolution, where)
    spec_out = _parse_tensor_spec(r.get("output"), f"{where}.output")
    if len(spec_out.shape) != 2 or spec_out.shape[0] != 1 or spec_out.shape[1] != num_labels:
        raise _fail(f"manifest.json: '{where}.output.shape' is {list(spec_out.shape)} but the "
                    f"bundle has {num_labels} labels (expected [1, {num_labels}])",
                    fix="write labels matching the model's classes and rebuild the bundle")
    metrics = r.mapping("metrics")
    return StageEntry(name=name, resolution=resolution, macs=macs, input=spec_in,
                      output=spec_out, criterion=criterion, threshold=threshold,
                      accumulate_weight=accumulate, metrics=metrics, file=file)


def _check_heatmap_outputs(outputs: tuple[TensorSpec, ...], where: str) -> None:
    """A heat map is two outputs: centre logits ``(1, N)`` and sizes ``(1, N, 2)``, N square."""
    shapes = sorted((list(o.shape) for o in outputs), key=len)
    ok = (len(shapes) == 2 and len(shapes[0]) == 2 and len(shapes[1]) == 3
          and shapes[1][:2] == shapes[0] and shapes[1][2] == 2 and shapes[0][1] > 0
          and round(shapes[0][1] ** 0.5) ** 2 == shapes[0][1])
    if not ok:
        raise _fail(f"manifest.json: '{where}.output' shapes {shapes} do not form a heat map "
                    f"({HEATMAP_BOX_FORMAT!r} needs centre logits (1, N) and sizes (1, N, 2), "
                    "N a square number): rebuild the bundle with tfedge-convert")


_CROP_KEYS = ("margin", "square", "min_size", "scales")


def _check_crop(crop: Mapping[str, Any], where: str = "predictor.crop") -> CropConfig:
    """``predictor.crop`` must be a valid CropConfig, every key known (no silent defaults)."""
    unknown = sorted(set(crop) - set(_CROP_KEYS))
    if unknown:
        raise _fail(f"manifest.json: '{where}' has unknown keys {unknown} (known: "
                    f"{list(_CROP_KEYS)})")
    try:
        return CropConfig.from_dict(dict(crop))
    except (TfedgeError, TypeError, ValueError) as exc:
        raise _fail(f"manifest.json: '{where}' is invalid ({exc})") from None


def _parse_predictor(obj: Any) -> PredictorEntry:
    where = "predictor"
    r = _Reader(obj, where)
    file, resolution, macs, box_format, spec_in, outputs = _parse_box_model(r, where)
    crop = r.mapping("crop")
    _check_crop(crop)
    metrics = r.mapping("metrics")
    return PredictorEntry(resolution=resolution, macs=macs, input=spec_in, outputs=outputs,
                          crop=crop, box_format=box_format, metrics=metrics, file=file)


def _parse_refiner(obj: Any) -> RefinerEntry:
    """The version-2 ``refiner``: a box model like the predictor, plus its window and passes."""
    where = "refiner"
    r = _Reader(obj, where)
    file, resolution, macs, box_format, spec_in, outputs = _parse_box_model(r, where)
    window = r.mapping("window")
    config = _check_crop(window, f"{where}.window")
    if not config.square or config.scales:
        raise _fail(f"manifest.json: '{where}.window' must be square with no scales (the "
                    f"refiner's input is square and its box is mapped back from the exact "
                    f"window), got square={config.square} scales={list(config.scales)}")
    passes = r.integer("passes", minimum=1)
    metrics = r.mapping("metrics")
    return RefinerEntry(resolution=resolution, macs=macs, input=spec_in, outputs=outputs,
                        window=window, passes=passes, box_format=box_format, metrics=metrics,
                        file=file)


def _parse_box_model(r: "_Reader", where: str
                     ) -> tuple[str, int, int, str, TensorSpec, tuple[TensorSpec, ...]]:
    """The fields a predictor and a refiner share: file, resolution, MACs, box format, tensors."""
    file = _check_relative_name(r.get("file"), f"'{where}.file'")
    if not file.endswith(_MODEL_SUFFIX):
        raise _fail(f"manifest.json: '{where}.file' {file!r} must end in {_MODEL_SUFFIX}")
    resolution = r.integer("resolution", minimum=1)
    macs = r.integer("macs")
    box_format = r.choice("box_format", BOX_FORMATS)
    spec_in = _parse_tensor_spec(r.get("input"), f"{where}.input")
    _check_image_input(spec_in, resolution, where)
    raw_out = r.get("output")
    if isinstance(raw_out, list):
        if not raw_out:
            raise _fail(f"manifest.json: '{where}.output' is an empty list")
        outputs = tuple(_parse_tensor_spec(o, f"{where}.output[{i}]") for i, o in enumerate(raw_out))
    else:
        outputs = (_parse_tensor_spec(raw_out, f"{where}.output"),)
    if box_format == HEATMAP_BOX_FORMAT:
        _check_heatmap_outputs(outputs, where)
    elif outputs[0].shape[-1] != 4:
        raise _fail(f"manifest.json: '{where}.output' shape {list(outputs[0].shape)} must end "
                    "in 4 (one box: ymin, xmin, ymax, xmax)")
    return file, resolution, macs, box_format, spec_in, outputs


def _parse_files(obj: Any) -> dict[str, FileEntry]:
    r = _Reader(obj, "")
    raw = r.mapping("files")
    files: dict[str, FileEntry] = {}
    for name, value in raw.items():
        _check_relative_name(name, "'files' entry")
        fr = _Reader(value, f"files[{name!r}]")
        digest = fr.get("sha256")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise _fail(f"manifest.json: 'files[{name!r}].sha256' must be 64 lowercase hex "
                        f"digits, got {digest!r}")
        files[name] = FileEntry(sha256=digest, bytes=fr.integer("bytes"))
    clash = _folder_clash(list(files))
    if clash is not None:
        raise _fail(f"manifest.json: 'files' lists {clash!r} both as a file and as a folder "
                    "of other files")
    return files


def _parse_manifest(obj: Any) -> dict[str, Any]:
    """Check a manifest's structure; return its parts. Files on disk are not read here."""
    r = _Reader(obj, "")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt != FORMAT_NAME:
        raise BundleError(f"manifest.json: format is {fmt!r}, not {FORMAT_NAME!r}: this is not a "
                          "tfedge bundle; build one with tfedge-convert")
    version = r.get("version")
    if not _is_int(version) or version < 1:
        raise _fail(f"manifest.json: 'version' must be a whole number >= 1, got {version!r}")
    if version > SUPPORTED_VERSION:
        raise BundleError(f"bundle version {version} is newer than this tfedge supports "
                          f"({SUPPORTED_VERSION}): upgrade tfedge")
    created = r.string("created_utc")
    tfedge_version = r.string("tfedge_version")
    labels = r.get("labels")
    if not isinstance(labels, list) or not labels:
        raise _fail(f"manifest.json: 'labels' must be a non-empty list of strings, got {labels!r}")
    for i, label in enumerate(labels):
        # One line by str.splitlines' rules too (form feeds, U+2028 ...): labels.txt is read so.
        if not isinstance(label, str) or not label.strip() or label.splitlines() != [label]:
            raise _fail(f"manifest.json: 'labels[{i}]' must be a non-empty one-line string, "
                        f"got {label!r}")
    labels_file = _check_relative_name(r.get("labels_file"), "'labels_file'")
    pre = r.mapping("preprocessing")
    pr = _Reader(pre, "preprocessing")
    for key, choices in _PREPROCESSING_CHOICES.items():
        pr.choice(key, choices)
    if pr.get("pixel_range") != _PIXEL_RANGE:
        raise _fail(f"manifest.json: 'preprocessing.pixel_range' is {pre['pixel_range']!r}, "
                    f"version {version} bundles feed raw pixels {_PIXEL_RANGE}")
    raw_predictor = r.get("predictor")
    predictor = None if raw_predictor is None else _parse_predictor(raw_predictor)
    raw_refiner = obj.get("refiner")
    refiner = None
    if raw_refiner is not None:
        if version < REFINER_VERSION:
            raise _fail(f"manifest.json: a version {version} manifest holds a 'refiner', which "
                        f"needs version {REFINER_VERSION} (older readers would ignore it and "
                        "crop elsewhere)")
        if predictor is None:
            raise _fail("manifest.json: 'refiner' refines the predictor's box but 'predictor' "
                        "is null")
        refiner = _parse_refiner(raw_refiner)
    raw_stages = r.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise _fail("manifest.json: 'stages' must be a non-empty list (at least one classifier)")
    stages = tuple(_parse_stage(s, i, len(raw_stages), len(labels))
                   for i, s in enumerate(raw_stages))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise _fail(f"manifest.json: stage names must be unique, got {names}")
    metrics = r.mapping("metrics")
    files = _parse_files(obj)
    referenced = ([labels_file] + ([predictor.file] if predictor else [])
                  + ([refiner.file] if refiner else []) + [s.file for s in stages])
    if len(set(referenced)) != len(referenced):
        raise _fail(f"manifest.json: the labels file and the models must be different files, "
                    f"got {referenced}")
    for name in referenced:
        if name not in files:
            raise _fail(f"manifest.json: {name!r} is used but not listed under 'files'")
    return {"version": int(version), "created_utc": created, "tfedge_version": tfedge_version,
            "labels": tuple(labels), "labels_file": labels_file, "preprocessing": pre,
            "predictor": predictor, "refiner": refiner, "stages": stages, "metrics": metrics,
            "files": files}


# --------------------------------------------------------------------------- writing


def _assign_files(stages: Sequence[StageEntry],
                  predictor: Optional[PredictorEntry]) -> tuple[list[StageEntry], Optional[PredictorEntry]]:
    named = [s if s.file else dataclasses.replace(s, file=f"stage{i}{_MODEL_SUFFIX}")
             for i, s in enumerate(stages)]
    if predictor is not None and not predictor.file:
        predictor = dataclasses.replace(predictor, file=f"predictor{_MODEL_SUFFIX}")
    return named, predictor


def _assign_refiner_file(refiner: Optional[RefinerEntry]) -> Optional[RefinerEntry]:
    if refiner is not None and not refiner.file:
        refiner = dataclasses.replace(refiner, file=f"refiner{_MODEL_SUFFIX}")
    return refiner


def _zip_bytes_entries(zf: zipfile.ZipFile, contents: Mapping[str, bytes]) -> None:
    order = [MANIFEST_NAME] + sorted(n for n in contents if n != MANIFEST_NAME)
    for name in order:
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = _ZIP_FILE_MODE << 16
        info.create_system = _ZIP_UNIX
        zf.writestr(info, contents[name])


def check_bundle_destination(directory: Union[str, os.PathLike]) -> Path:
    """``directory`` as a Path, if a bundle may be written there; else a :class:`BundleError`.

    Writing a bundle replaces the whole folder, so the folder must be new,
    empty, or an earlier bundle (its ``manifest.json`` names the format):
    pointing ``--output`` at a folder of other files must not delete them.
    """
    target = Path(directory)
    if target.name in ("", ".", ".."):
        raise BundleError(f"bundle folder {str(directory)!r} names the current or parent "
                          "folder: give a new folder, e.g. bundles/mymodel")
    if not target.exists():
        return target
    if not target.is_dir():
        raise BundleError(f"bundle folder {str(directory)!r} exists and is not a folder: "
                          "choose another path")
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return target
    manifest = target / MANIFEST_NAME
    try:
        is_bundle = json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        is_bundle = False
    if not is_bundle:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise BundleError(f"{str(directory)!r} is a folder of other files ({shown}), not a "
                          "tfedge bundle: writing a bundle there would delete them; choose a "
                          "new or empty folder")
    return target


def write_bundle(
    directory: Union[str, os.PathLike],
    *,
    labels: Sequence[str],
    stages: Sequence[tuple[StageEntry, bytes]],
    predictor: Optional[tuple[PredictorEntry, bytes]] = None,
    metrics: Optional[Mapping[str, Any]] = None,
    preprocessing: Optional[Mapping[str, Any]] = None,
    zip_path: Union[str, os.PathLike, None] = None,
    created_utc: Optional[str] = None,
    refiner: Optional[tuple[RefinerEntry, bytes]] = None,
) -> Path:
    """Write a bundle folder at ``directory`` (and a ``.zip`` of it at ``zip_path``).

    ``stages`` pairs each :class:`StageEntry` with its ``.tflite`` bytes;
    entries with an empty ``file`` are named ``stage0.tflite``, ``stage1.tflite``
    ... and the predictor ``predictor.tflite``. Sizes and hashes are computed
    here. The manifest is checked with the same code that loads bundles, so an
    invalid bundle is never written. Both outputs are written atomically (an
    existing bundle is replaced only once the new one is complete; a folder
    holding anything else is refused, see :func:`check_bundle_destination`);
    the zip's entries are in a fixed order with fixed timestamps.

    ``refiner`` (with a ``predictor``): the predictor's refiner, named
    ``refiner.tflite``; only then is the manifest version 2 (a bundle without
    one is version 1, byte for byte what earlier tfedge wrote).
    """
    check_bundle_destination(directory)
    if refiner is not None and predictor is None:
        raise BundleError("a refiner refines the predictor's box: pass predictor=(entry, bytes) "
                          "with refiner=")
    if not stages:
        raise BundleError("a bundle needs at least one stage: pass stages=[(StageEntry, bytes)]")
    entries, model_bytes = zip(*[(e, bytes(b)) for e, b in stages])
    pred_entry, pred_bytes = (predictor[0], bytes(predictor[1])) if predictor is not None \
        else (None, None)
    named, pred_entry = _assign_files(entries, pred_entry)
    ref_entry, ref_bytes = ((_assign_refiner_file(refiner[0]), bytes(refiner[1]))
                            if refiner is not None else (None, None))
    labels = [str(label) for label in labels]
    contents: dict[str, bytes] = {LABELS_NAME: ("\n".join(labels) + "\n").encode("utf-8")}
    for entry, data in list(zip(named, model_bytes)) + (
            [(pred_entry, pred_bytes)] if pred_entry is not None else []) + (
            [(ref_entry, ref_bytes)] if ref_entry is not None else []):
        if entry.file in contents:
            raise BundleError(f"two bundle files are both named {entry.file!r}: give each stage "
                              "its own file name (or leave file empty)")
        contents[entry.file] = data
    manifest = {
        "format": FORMAT_NAME,
        "version": REFINER_VERSION if ref_entry is not None else FORMAT_VERSION,
        "created_utc": created_utc or _timestamp_utc(),
        "tfedge_version": _tfedge_version(),
        "labels": labels,
        "labels_file": LABELS_NAME,
        "preprocessing": _jsonable(dict(preprocessing or DEFAULT_PREPROCESSING), "preprocessing"),
        "predictor": pred_entry.to_json() if pred_entry is not None else None,
        "stages": [s.to_json() for s in named],
        "metrics": _jsonable(dict(metrics or {}), "metrics"),
        **({"refiner": ref_entry.to_json()} if ref_entry is not None else {}),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in sorted(contents.items())},
    }
    _parse_manifest(manifest)
    contents[MANIFEST_NAME] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    try:  # what the JSON must obey to be read back (nesting depth, 64-bit whole numbers)
        _loads_manifest(contents[MANIFEST_NAME])
    except BundleError as exc:
        problem = str(exc).rsplit(f": {_REBUILD}", 1)[0]
        raise BundleError(f"readers would refuse this manifest ({problem}): store metrics as "
                          "plain numbers, strings, lists and dicts, nested less deeply") from None

    target = Path(directory)
    # Order (a kill can come at any point): the new folder and zip are written in full under
    # temporary names; then the old zip goes, the folder swaps in, and the zip is renamed in.
    # So the pair on disk is old+old, old+none, new+none or new+new: never a new folder next
    # to an old zip that also verifies. Temporaries of killed writes go on the next write.
    zip_writer = atomic_path(zip_path) if zip_path is not None else contextlib.nullcontext()
    with zip_writer as tmp_zip:
        with atomic_directory(target) as tmp:
            for name, data in contents.items():
                path = tmp / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())  # complete on disk before the folder is swapped in
            if tmp_zip is not None:
                with open(tmp_zip, "wb") as f:
                    with zipfile.ZipFile(f, "w") as zf:
                        _zip_bytes_entries(zf, contents)
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(zip_path)
    return target


# --------------------------------------------------------------------------- reading


_MAX_FS_NAME_BYTES = 255  # NAME_MAX on Linux, macOS and Android
#: What zipfile raises for damaged archives and entries besides BadZipFile (found by fuzzing):
#: lzma/bz2 streams cut short (EOFError, LZMAError), bad headers (struct.error, ValueError).
try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # a Python built without liblzma: zipfile cannot read LZMA entries then
    _LZMAError = EOFError
_DAMAGED_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, struct.error, _LZMAError,
                NotImplementedError)


def _check_zip_entry_name(name: str) -> None:
    shown = name if len(name) <= 80 else name[:60] + "..." + name[-10:]
    bad = None
    if not name:
        bad = "has an empty name"
    elif "\\" in name:
        bad = "contains a backslash"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        bad = "is an absolute path"
    elif any(part == ".." for part in name.split("/")):
        bad = "climbs out of the bundle with '..'"
    elif "\x00" in name:
        bad = "contains a NUL byte"
    elif any(len(part.encode("utf-8", "surrogatepass")) > _MAX_FS_NAME_BYTES
             for part in name.split("/")):
        bad = f"has a part longer than the {_MAX_FS_NAME_BYTES} bytes file systems allow"
    if bad:
        raise BundleError(f"zip entry {shown!r} {bad} and could write outside the bundle: "
                          "refusing it; rebuild the zip with tfedge-convert --zip")


def _extract_zip(path: Path, dest: Path, max_file_bytes: int, max_total_bytes: int) -> None:
    try:
        zf = zipfile.ZipFile(path)
    # zipfile's own refusals of damaged archives: BadZipFile, NotImplementedError ("zip file
    # version 8.4"), ValueError (undecodable names), EOFError, struct.error (short records).
    except _DAMAGED_ZIP + (OSError,) as exc:
        raise BundleError(f"{path}: not a readable zip file ({exc}): {_REBUILD} --zip") from exc
    with zf:
        seen: set[str] = set()
        total = 0
        files = []
        for info in zf.infolist():
            name = info.filename
            _check_zip_entry_name(name)
            if name.rstrip("/") in seen:
                raise BundleError(f"zip entry {name!r} appears twice (an archive could hide a "
                                  f"file that way): {_REBUILD} --zip")
            seen.add(name.rstrip("/"))
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BundleError(f"zip entry {name!r} is a symbolic link: bundles hold plain "
                                  f"files only; {_REBUILD} --zip")
            if info.flag_bits & 0x1:
                raise BundleError(f"zip entry {name!r} is encrypted: bundles are not encrypted; "
                                  f"{_REBUILD} --zip")
            if info.is_dir():
                continue
            if name.split("/")[-1] == MANIFEST_NAME:
                if info.file_size > MAX_MANIFEST_BYTES:
                    raise BundleError(f"zip entry {name!r} is {_human_bytes(info.file_size)}, over "
                                      f"the {_human_bytes(MAX_MANIFEST_BYTES)} a manifest may be: "
                                      f"this is not a tfedge bundle; {_REBUILD} --zip")
            elif info.file_size > max_file_bytes:
                raise BundleError(f"zip entry {name!r} is {_human_bytes(info.file_size)}, over the "
                                  f"{_human_bytes(max_file_bytes)} limit per file: raise "
                                  "max_file_bytes (--max-file-mb) if the model really is this big")
            total += info.file_size
            if total > max_total_bytes:
                raise BundleError(f"{path}: the zip holds over {_human_bytes(max_total_bytes)} "
                                  "uncompressed: raise max_total_bytes if the bundle really is "
                                  "this big")
            files.append(info)
        names = [i.filename for i in files]
        clash = _folder_clash(names, sorted(seen - set(names)))
        if clash is not None:
            raise BundleError(f"zip entry {clash!r} is both a file and a folder (an archive could "
                              f"hide a file that way): {_REBUILD} --zip")
        if MANIFEST_NAME in names:
            prefix = ""
        else:
            tops = {n.split("/")[0] for n in names if n.count("/") == 1
                    and n.endswith("/" + MANIFEST_NAME)}
            if len(tops) != 1:
                raise BundleError(f"{path}: no {MANIFEST_NAME} at the top of the zip (or in one "
                                  "top-level folder): this is not a tfedge bundle; build one "
                                  "with tfedge-convert --zip")
            prefix = tops.pop() + "/"
        by_name = {info.filename: info for info in files}
        # The manifest first: only the files it lists are extracted (never the rest of the zip).
        manifest_info = by_name[prefix + MANIFEST_NAME]
        manifest_text = _read_zip_entry(zf, manifest_info, MAX_MANIFEST_BYTES)
        listed = _parse_manifest(_loads_manifest(manifest_text))["files"]
        for name in listed:
            if prefix + name not in by_name:
                raise BundleError(f"{name}: listed in {MANIFEST_NAME} but missing from the zip: "
                                  f"{_REBUILD} --zip")
        try:
            (dest / MANIFEST_NAME).write_bytes(manifest_text)
            for name in listed:
                _extract_zip_entry(zf, by_name[prefix + name], dest / name)
        except OSError as exc:  # a full or read-only temporary file system
            raise BundleError(f"cannot extract the bundle into {dest} ({exc.strerror or exc}): "
                              "free space there, or point TMPDIR at a file system with room "
                              "for the bundle") from exc


def _read_zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """An entry's bytes, never more than its header's size or ``limit`` (a lying header)."""
    try:
        with zf.open(info) as src:
            data = src.read(min(info.file_size, limit) + 1)
    except NotImplementedError as exc:  # e.g. Deflate64, written by some zip tools
        raise BundleError(f"zip entry {info.filename!r} uses a compression Python cannot "
                          f"read ({exc}): {_REBUILD} --zip, or zip the folder with "
                          "'zip -r'") from exc
    except _DAMAGED_ZIP + (OSError,) as exc:
        raise BundleError(f"zip entry {info.filename!r} is corrupt ({exc}): "
                          f"{_REBUILD} --zip") from exc
    if len(data) > min(info.file_size, limit):
        raise BundleError(f"zip entry {info.filename!r} holds more bytes than its header says: "
                          f"{_REBUILD} --zip")
    return data


def _extract_zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zf.open(info) as src, open(out, "wb") as dst:
            for chunk in iter(lambda: src.read(_HASH_CHUNK), b""):
                written += len(chunk)
                if written > info.file_size:
                    raise BundleError(f"zip entry {info.filename!r} holds more bytes than "
                                      f"its header says: {_REBUILD} --zip")
                dst.write(chunk)
    except NotImplementedError as exc:  # e.g. Deflate64, written by some zip tools
        raise BundleError(f"zip entry {info.filename!r} uses a compression Python cannot "
                          f"read ({exc}): {_REBUILD} --zip, or zip the folder with "
                          "'zip -r'") from exc
    except _DAMAGED_ZIP as exc:  # its own file's errors (a full disk) are the caller's
        raise BundleError(f"zip entry {info.filename!r} is corrupt ({exc}): "
                          f"{_REBUILD} --zip") from exc


def _read_manifest(root: Path) -> Any:
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{root}: no {MANIFEST_NAME}: this is not a tfedge bundle folder; build "
                          "one with tfedge-convert")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST_NAME} is {_human_bytes(path.stat().st_size)}, over the "
                          f"{_human_bytes(MAX_MANIFEST_BYTES)} limit: {_REBUILD}")
    return _loads_manifest(path.read_bytes())


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Readers differ on which of two equal keys counts (Python the last, others the first):
    # a manifest that means two things is refused.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"the key {key[:60]!r} appears twice in one object")
        obj[key] = value
    return obj


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a double")
    return value


def _int64(text: str) -> int:
    # Every whole number a manifest holds (sizes, MACs, shapes) fits; readers in other
    # languages hold no wider ones.
    value = int(text)
    if not MIN_MANIFEST_INT <= value <= MAX_MANIFEST_INT:
        raise ValueError(f"the whole number {text[:40]} does not fit in 64 bits")
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS = (ord("["), ord("{"))
_CLOSERS = (ord("]"), ord("}"))


def _loads_manifest(data: bytes) -> Any:
    """Strict JSON, nested at most :data:`MAX_MANIFEST_DEPTH` deep.

    Refused besides what JSON itself forbids: NaN and Infinity, a key twice in
    one object, numbers that overflow a double, whole numbers beyond 64 bits
    (``docs/bundle.md``, "Reading rules"; the Android core refuses the same).
    """
    try:
        text = data.decode("utf-8")
        depth = _nesting_depth(text)
        if depth > MAX_MANIFEST_DEPTH:
            raise BundleError(f"{MANIFEST_NAME} nests arrays and objects {depth} deep, over the "
                              f"{MAX_MANIFEST_DEPTH} a manifest may: {_REBUILD}")
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                          parse_int=_int64, object_pairs_hook=_refuse_duplicate_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError included
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{MANIFEST_NAME} is not valid JSON ({str(exc)[:200]}): "
                          f"{_REBUILD}") from exc


def _nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, outside strings (no recursion)."""
    bare = _JSON_STRING.sub("", text).encode("utf-8")
    codes = np.frombuffer(bare, dtype=np.uint8).astype(np.int64)
    steps = (np.isin(codes, _OPENERS).astype(np.int64) - np.isin(codes, _CLOSERS))
    return int(np.cumsum(steps).max(initial=0))


def _check_files(root: Path, files: Mapping[str, FileEntry], max_file_bytes: int,
                 verify_hashes: bool) -> None:
    real_root = os.path.realpath(root)
    for name, entry in files.items():
        path = root / name
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise BundleError(f"{name}: links outside the bundle folder: bundles hold plain "
                              f"files only; {_REBUILD}")
        if not path.is_file():
            raise BundleError(f"{name}: listed in {MANIFEST_NAME} but missing from the bundle: "
                              "copy the whole bundle folder (or zip), or rebuild it with "
                              "tfedge-convert")
        size = path.stat().st_size
        if size > max_file_bytes:
            raise BundleError(f"{name}: {_human_bytes(size)} is over the "
                              f"{_human_bytes(max_file_bytes)} limit per file: raise "
                              "max_file_bytes (--max-file-mb) if the model really is this big")
        if size != entry.bytes:
            raise BundleError(f"{name}: {size} bytes but {MANIFEST_NAME} says {entry.bytes} "
                              f"(file altered or truncated): {_REBUILD}")
        if verify_hashes and sha256_file(path, _HASH_CHUNK) != entry.sha256:
            raise BundleError(f"{name}: SHA-256 mismatch (file altered or corrupt): {_REBUILD}")


def _special_file_kind(path: Path) -> Optional[str]:
    """What ``path`` is when it is neither a folder nor a regular file, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def load_bundle(
    path: Union[str, os.PathLike],
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    verify_hashes: bool = True,
    extract_to: Union[str, os.PathLike, None] = None,
) -> Bundle:
    """Read and check a bundle folder or ``.zip``.

    Every file listed in the manifest must be present with the listed size
    (and SHA-256 when ``verify_hashes``). A zip is checked entry by entry,
    then extracted into ``extract_to`` (an empty or new folder) or a private
    temporary folder that lives as long as the returned :class:`Bundle`.
    Tensor specs against the real models are checked by
    :func:`check_tensor_specs` (it needs an interpreter).
    """
    source = Path(path)
    if not source.exists():
        raise BundleError(f"bundle {str(source)!r} does not exist: pass a bundle folder or .zip "
                          "written by tfedge-convert")
    keepalive = None
    kind = _special_file_kind(source)
    if kind is not None:  # opening a FIFO blocks, /dev/zero never ends: never open them
        raise BundleError(f"bundle {str(source)!r} is {kind}, not a bundle folder or .zip: pass "
                          "a bundle written by tfedge-convert")
    if source.is_dir():
        root = source
    elif zipfile.is_zipfile(source):
        if extract_to is not None:
            root = Path(extract_to)
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise BundleError(f"extract_to {str(root)!r} is not an empty folder: pass a new "
                                  "or empty folder")
            root.mkdir(parents=True, exist_ok=True)
        else:
            keepalive = tempfile.TemporaryDirectory(prefix="tfedge-bundle-")
            root = Path(keepalive.name)
        try:
            _extract_zip(source, root, max_file_bytes, max_total_bytes)
        except BaseException:
            if keepalive is not None:
                keepalive.cleanup()
            raise
    else:
        raise BundleError(f"{str(source)!r} is neither a folder nor a zip file: pass a bundle "
                          "folder or .zip written by tfedge-convert")
    try:
        manifest = _read_manifest(root)
        parts = _parse_manifest(manifest)
        _check_files(root, parts["files"], max_file_bytes, verify_hashes)
        label_lines = (root / parts["labels_file"]).read_text(encoding="utf-8").splitlines()
        if tuple(label_lines) != parts["labels"]:
            raise BundleError(f"{parts['labels_file']} and the labels in {MANIFEST_NAME} "
                              f"disagree: {_REBUILD}")
    except BaseException:
        if keepalive is not None:
            keepalive.cleanup()
        raise
    return Bundle(root=root, source=source, version=parts["version"],
                  created_utc=parts["created_utc"], tfedge_version=parts["tfedge_version"],
                  labels=parts["labels"], preprocessing=parts["preprocessing"],
                  predictor=parts["predictor"], stages=parts["stages"],
                  metrics=parts["metrics"], files=parts["files"], manifest=manifest,
                  _keepalive=keepalive, refiner=parts["refiner"])


# --------------------------------------------------------------------------- tensor specs


def spec_difference(expected: Sequence[TensorSpec], actual: Sequence[TensorSpec],
                    what: str) -> Optional[str]:
    """One line describing the first difference between two lists of specs, or None."""
    if len(expected) != len(actual):
        return f"{what}: the model has {len(actual)} tensors, the manifest lists {len(expected)}"
    for i, (e, a) in enumerate(zip(expected, actual)):
        name = what if len(expected) == 1 else f"{what} {i}"
        if tuple(e.shape) != tuple(a.shape):
            return f"{name} shape is {list(a.shape)} but the manifest says {list(e.shape)}"
        if e.dtype != a.dtype:
            return f"{name} dtype is {a.dtype} but the manifest says {e.dtype}"
        if not math.isclose(e.scale, a.scale, rel_tol=1e-6, abs_tol=0.0):
            return f"{name} scale is {a.scale!r} but the manifest says {e.scale!r}"
        if e.zero_point != a.zero_point:
            return f"{name} zero point is {a.zero_point} but the manifest says {e.zero_point}"
    return None


def check_tensor_specs(bundle: Bundle,
                       model_loader: Optional[Callable[[Path], Any]] = None) -> dict[str, Any]:
    """Load every model of ``bundle`` and check its tensors against the manifest.

    ``model_loader(path)`` returns an object with ``input_specs`` and
    ``output_specs`` (default: :class:`tfedge.runtime.interpreter.TfliteModel`, one
    thread). Returns the loaded models keyed by file name, so a caller (the
    runner) can use them without loading twice.
    """
    if model_loader is None:
        model_loader = TfliteModel
    loaded: dict[str, Any] = {}
    for entry in bundle.models:
        model = model_loader(bundle.model_path(entry))
        outputs = (entry.outputs if isinstance(entry, (PredictorEntry, RefinerEntry))
                   else (entry.output,))
        problem = (spec_difference((entry.input,), tuple(model.input_specs), f"{entry.file} input")
                   or spec_difference(outputs, tuple(model.output_specs), f"{entry.file} output"))
        if problem:
            raise BundleError(f"{problem} (model and manifest disagree): {_REBUILD}")
        loaded[entry.file] = model
    return loaded

