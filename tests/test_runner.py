"""tfedge-pi, the on-device runner (rpi_runner), on tiny bundles built here.

Bundles are built once per session by training nothing: tiny Keras models
with random weights (Rescaling first, as tfedge models), converted to full
int8 with tfedge._convert and written with tfedge.bundle.write_bundle: a
one-stage bundle, a uint8 one, and a two-stage cascade with a predictor. The
pure parts (early-exit rules, resize and quantisation, box decoding, source
parsing, image decoding) are tested with hand numbers.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rpi_runner._golden import decode_array
from rpi_runner._output import (FpsWindow, human_line, human_summary, percentile, scale_window,
                                summarize)
from rpi_runner._pipeline import EdgePipeline, agreement, decode_box, evaluate_bundle
from tfedge.runtime.preprocess import (draft_request, needed_short_side, prepare_input,
                                       quantize_pixels, resize_window)
from rpi_runner._sources import (FrameError, PiCameraSource, SourceSpec, decode_image,
                                 decode_image_sized, open_source, parse_sources)
from rpi_runner.cli import RunOptions, main, run
from tfedge.runtime.decision import (confidence_score, decide_stage, decision_logits,
                                     passes_threshold, softmax)
from tfedge.runtime.errors import BundleError, TfedgeError
from tfedge.runtime.geometry import crop_window, resize_bilinear
from tfedge.runtime.interpreter import TensorSpec, quantize

REPO = Path(__file__).resolve().parents[1]
LABELS = ("red", "green", "blue")
FRAME_H, FRAME_W = 40, 48        # test frames: not square, not the models' sizes
PREDICTOR_RES = 24
STAGE_RES = (16, 24)
CROP = {"margin": 0.1, "square": True, "min_size": 0.3, "scales": []}
RECORD_FIELDS = {"source", "index", "label", "class", "score", "exit_stage", "exit_score", "box",
                 "window", "frame_size", "decoded_size", "stage_ms", "predictor_ms", "decode_ms",
                 "preprocess_ms", "infer_ms", "pipeline_ms", "total_ms", "macs"}


# --------------------------------------------------------------------------- fixtures


def _frames(count: int, seed: int, height: int = FRAME_H, width: int = FRAME_W) -> np.ndarray:
    """Noise with one saturated coloured square each (something for the models to react to)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 160, (count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        side = int(rng.integers(min(height, width) // 4, min(height, width) // 2))
        top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
        frames[i, top:top + side, left:left + side] = 0
        frames[i, top:top + side, left:left + side, i % 3] = 250
    return frames


def _classifier(res: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((res, res, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # Large random weights: peaked, varied softmax outputs, so early exit has something to decide.
    outputs = keras.layers.Dense(len(LABELS),
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    return keras.Model(inputs, outputs, name=f"tiny_r{res}")


def _predictor():
    """Outputs a valid yxyx box: ymin, xmin in [0, 0.5], ymax, xmax in [0.5, 1]."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((PREDICTOR_RES, PREDICTOR_RES, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4, activation="sigmoid")(x)
    affine = keras.layers.Dense(4, trainable=False, name="to_box")
    outputs = affine(x)
    affine.set_weights([np.eye(4, dtype=np.float32) * 0.5,
                        np.array([0.0, 0.0, 0.5, 0.5], np.float32)])
    return keras.Model(inputs, outputs, name="tiny_predictor")


def _convert(model, io_dtype: str = "int8") -> bytes:
    from tfedge._convert import convert_to_int8

    res = int(model.input_shape[1])
    calibration = np.stack([resize_bilinear(f, res, res) for f in _frames(24, seed=11)])
    return convert_to_int8(model, calibration, io_dtype=io_dtype)


def _stage(name: str, res: int, data: bytes, **kwargs):
    from tfedge.runtime.bundle import StageEntry
    from tfedge.runtime.interpreter import TfliteModel

    model = TfliteModel(data)
    return StageEntry(name=name, resolution=res, macs=1000 * res, input=model.input_spec,
                      output=model.output_spec, **kwargs), data


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from tfedge.runtime.bundle import PredictorEntry, write_bundle
    from tfedge.runtime.interpreter import TfliteModel

    root = tmp_path_factory.mktemp("bundles")
    small = _convert(_classifier(STAGE_RES[0], seed=1))
    large = _convert(_classifier(STAGE_RES[1], seed=2))
    small_uint8 = _convert(_classifier(STAGE_RES[0], seed=1), io_dtype="uint8")
    predictor = _convert(_predictor())
    pmodel = TfliteModel(predictor)
    pentry = PredictorEntry(resolution=PREDICTOR_RES, macs=500, input=pmodel.input_spec,
                            outputs=pmodel.output_specs, crop=CROP)
    out = {
        "single": write_bundle(root / "single", labels=LABELS,
                               stages=[_stage("small", STAGE_RES[0], small)]),
        "uint8": write_bundle(root / "uint8", labels=LABELS,
                              stages=[_stage("small_u8", STAGE_RES[0], small_uint8)]),
    }
    # The cascade's threshold: the median stage-0 score on the test frames, so both stages exit.
    probe = write_bundle(root / "probe", labels=LABELS,
                         stages=[_stage("small", STAGE_RES[0], small)],
                         predictor=(pentry, predictor))
    with EdgePipeline(probe) as pipe:
        scores = [pipe.classify(f).exit_score for f in _frames(24, seed=3)]
    threshold = float(np.median(scores))
    out["cascade"] = write_bundle(
        root / "cascade", labels=LABELS, predictor=(pentry, predictor), zip_path=root / "c.zip",
        stages=[_stage("small", STAGE_RES[0], small, threshold=threshold),
                _stage("large", STAGE_RES[1], large, accumulate_weight=0.5)])
    out["cascade_zip"] = root / "c.zip"
    return out


@pytest.fixture(scope="session")
def cascade(bundles):
    with EdgePipeline(bundles["cascade"]) as pipe:
        yield pipe


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --------------------------------------------------------------------------- early exit (pure)


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([1000.0, 1000.0, 998.0]))
    assert np.isclose(p.sum(), 1.0)
    e = np.exp([0.0, 0.0, -2.0])
    np.testing.assert_allclose(p, e / e.sum())


def test_confidence_scores_by_hand():
    p = np.array([0.7, 0.2, 0.1])
    assert confidence_score(p, "max_softmax") == pytest.approx(0.7)
    assert confidence_score(p, "margin") == pytest.approx(0.5)
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    assert confidence_score(p, "entropy") == pytest.approx(expected)   # 0.8018 nats
    assert confidence_score(np.array([1.0, 0.0]), "entropy") == 0.0    # 0 ln 0 counts as 0
    assert confidence_score(np.array([1.0]), "margin") == 1.0
    with pytest.raises(BundleError, match="unknown early-exit criterion 'top5'"):
        confidence_score(p, "top5")


def test_thresholds_by_criterion():
    assert passes_threshold(0.85, "max_softmax", 0.85)       # >= exits
    assert not passes_threshold(0.8499, "max_softmax", 0.85)
    assert passes_threshold(0.3, "margin", 0.3)
    assert not passes_threshold(0.29, "margin", 0.3)
    assert passes_threshold(0.5, "entropy", 0.5)             # <= exits
    assert not passes_threshold(0.51, "entropy", 0.5)
    assert passes_threshold(0.0, "max_softmax", None)        # null threshold: always exits
    assert passes_threshold(9.0, "entropy", None)


def test_logit_accumulation_by_hand():
    z0, z1, z2 = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([0.0, 1.0])
    d0 = decision_logits(z0, None, 0.7)                       # first stage: z_0 alone
    np.testing.assert_array_equal(d0, [1.0, 2.0])
    d1 = decision_logits(z1, d0, 0.5)                         # [0.5 + 0.5, -1 + 1]
    np.testing.assert_array_equal(d1, [1.0, 0.0])
    d2 = decision_logits(z2, d1, 2.0)                         # [0 + 2, 1 + 0]: d_(k-1), not z
    np.testing.assert_array_equal(d2, [2.0, 1.0])
    np.testing.assert_array_equal(decision_logits(z2, d1, 0.0), z2)
    with pytest.raises(BundleError, match="differ in length"):
        decision_logits(np.zeros(3), np.zeros(2), 1.0)


def test_decide_stage():
    d = decide_stage(np.array([2.0, 0.0, 0.0]), None, criterion="max_softmax", threshold=0.7)
    p0 = np.exp(2) / (np.exp(2) + 2)                           # 0.787
    assert d.class_index == 0 and d.exits and d.score == pytest.approx(p0)
    assert d.probability == pytest.approx(p0)
    d = decide_stage(np.array([2.0, 0.0, 0.0]), None, criterion="max_softmax", threshold=0.8)
    assert not d.exits
    # Accumulation can change the class: [0, 1] + 1.0 * [3, 0] = [3, 1].
    d = decide_stage(np.array([0.0, 1.0]), np.array([3.0, 0.0]), criterion="entropy",
                     threshold=None, accumulate_weight=1.0)
    assert d.class_index == 0 and d.exits


# --------------------------------------------------------------------------- preprocessing (pure)


@pytest.mark.parametrize("shape,window,out", [
    ((480, 640, 3), (0, 0, 480, 640), (64, 64)),        # whole frame, downscale
    ((480, 640, 3), (37, 101, 301, 365), (24, 24)),     # a crop
    ((480, 640, 3), (0, 300, 200, 640), (24, 24)),      # a crop at the top right corner
    ((480, 640, 3), (250, 0, 480, 230), (96, 96)),      # at the bottom left, upscaled
    ((40, 48, 3), (5, 7, 20, 22), (64, 32)),            # upscale, not square
    ((1, 1, 3), (0, 0, 1, 1), (16, 16)),                # one pixel
    ((3, 1000, 3), (0, 0, 3, 1000), (16, 16)),          # a sliver
])
def test_fast_resize_is_bit_identical_to_geometry(shape, window, out):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    y0, x0, y1, x1 = window
    expected = resize_bilinear(frame[y0:y1, x0:x1], *out)
    got = resize_window(frame, window, *out)
    assert got.dtype == np.float32 and got.shape == out + (3,)
    np.testing.assert_array_equal(got, expected)
    # A BGR frame gives the RGB result.
    np.testing.assert_array_equal(resize_window(np.ascontiguousarray(frame[..., ::-1]), window,
                                                *out, bgr=True), expected)


def test_float_input_is_fed_contiguous():
    frame = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    q = prepare_input(frame, (5, 10, 45, 50), TensorSpec((1, 16, 16, 3), "float32", 0.0, 0))
    assert q.dtype == np.float32 and q.shape == (1, 16, 16, 3) and q.flags.c_contiguous
    np.testing.assert_array_equal(q[0], resize_bilinear(frame[5:45, 10:50], 16, 16))


def test_fast_resize_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    frame = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    expected = tf.image.resize(frame[3:40, 9:60], (24, 24), antialias=False).numpy()
    np.testing.assert_allclose(resize_window(frame, (3, 9, 40, 60), 24, 24), expected, atol=1e-3)


@pytest.mark.parametrize("dtype,scale,zero_point", [("int8", 1.0, -128), ("uint8", 1.0, 0),
                                                    ("int8", 0.75, -3), ("uint8", 2.5, 7)])
def test_quantize_pixels_equals_litert_quantize(dtype, scale, zero_point):
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.uniform(0, 255, 5000), np.arange(0, 255.5, 0.5),
                             np.nextafter(np.arange(0.5, 255, 1.0), 0)]).astype(np.float32)
    spec = TensorSpec((1, 1, values.size, 1), dtype, scale, zero_point)
    got = quantize_pixels(values, spec)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, quantize(values, scale, zero_point, dtype))
    if scale == 1.0:                                           # the converter's contract
        np.testing.assert_array_equal(got.astype(int),
                                      np.floor(values.astype(np.float64) + 0.5) + zero_point)


def test_float_input_is_fed_unchanged():
    values = np.array([0.25, 254.5], np.float32)
    out = quantize_pixels(values, TensorSpec((1, 2), "float32", 0.0, 0))
    np.testing.assert_array_equal(out, values)


def test_draft_size_rules():
    # Cascade: the smallest crop (0.2 of the short side) must still hold 128 px.
    assert needed_short_side([64, 128], predictor_resolution=64, min_crop_fraction=0.2) == 640
    assert needed_short_side([128]) == 128                      # whole image
    assert needed_short_side([32], predictor_resolution=96, min_crop_fraction=0.5) == 96
    assert draft_request(4000, 3000, 640) == (854, 640)
    assert draft_request(640, 480, 640) == (640, 480)           # already small enough


def test_decode_box_formats():
    np.testing.assert_allclose(decode_box(np.array([[0.1, -0.2, 0.9, 1.3]]), "yxyx_normalized"),
                               [0.1, 0.0, 0.9, 1.0])
    np.testing.assert_allclose(decode_box(np.array([0.5, 0.5, 0.4, 0.2]), "cyxhw_normalized"),
                               [0.3, 0.4, 0.7, 0.6], atol=1e-6)
    with pytest.raises(BundleError, match="box_format 'xywh'"):
        decode_box(np.zeros(4), "xywh")
    with pytest.raises(BundleError, match="holds 2 values"):
        decode_box(np.zeros(2), "yxyx_normalized")


def test_heatmap_outputs_decode_in_float_in_either_order():
    from rpi_runner import predictor_values

    logits = np.full((1, 16), -20.0, np.float32)
    logits[0, 5] = 20.0                                 # row 1, column 1 of a 4 x 4 grid
    sizes = np.zeros((1, 16, 2), np.float32)
    sizes[0, 5] = (0.5, 0.25)
    for outputs in ([logits, sizes], [sizes, logits]):
        values = predictor_values(outputs, "heatmap_cyxhw")
        np.testing.assert_allclose(values, [0.375, 0.375, 0.5, 0.25], atol=1e-6)
    np.testing.assert_allclose(decode_box(values, "heatmap_cyxhw"),
                               [0.125, 0.25, 0.625, 0.5], atol=1e-6)
    with pytest.raises(BundleError, match="two outputs"):
        predictor_values([logits], "heatmap_cyxhw")
    np.testing.assert_allclose(predictor_values([np.arange(6.0)], "cyxhw_normalized"),
                               [0, 1, 2, 3])


# --------------------------------------------------------------------------- sources (pure)


def test_parse_sources(tmp_path):
    a = _png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    b = _png(tmp_path / "b.jpg", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    spec = parse_sources([str(tmp_path)])
    assert spec.kind == "files" and spec.paths == (str(a), str(b))
    assert parse_sources([str(tmp_path / "*.jpg")]).paths == (str(b),)
    assert parse_sources([str(b), str(a)]).paths == (str(b), str(a))
    assert parse_sources(["usb:2"]) == SourceSpec("usb", device=2)
    assert parse_sources(["/dev/video1"]) == SourceSpec("usb", device=1)
    assert parse_sources(["picam"]) == SourceSpec("picamera", device=0)
    assert parse_sources(["picamera:1"]) == SourceSpec("picamera", device=1)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert parse_sources([str(video)]) == SourceSpec("video", paths=(str(video),))
    with pytest.raises(TfedgeError, match="must be the only source"):
        parse_sources(["usb:0", str(a)])
    with pytest.raises(TfedgeError, match="does not exist: pass an image"):
        parse_sources([str(tmp_path / "missing.png")])
    with pytest.raises(TfedgeError, match="matches no files"):
        parse_sources([str(tmp_path / "*.bmp")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TfedgeError, match="holds no images"):
        parse_sources([str(empty)])


def _truncated_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(_frames(1, seed=5)[0]).save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def _bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header declares a huge image (the data is never decoded)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8), "L").save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8                                   # signature, then length + "IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_decode_corrupt_truncated_and_bomb(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(os.urandom(300))
    with pytest.raises(FrameError, match="junk.jpg: cannot read the image"):
        decode_image(tmp_path / "junk.jpg")
    with pytest.raises(FrameError, match="cut.jpg: cannot read the image .*truncated"):
        decode_image(_truncated_jpeg(tmp_path / "cut.jpg"))
    # Over our limit (64 MP by default), under Pillow's: refused from the header.
    with pytest.raises(FrameError, match=r"10000x10000 = 100000000 pixels, over the limit .*"
                                         r"decompression bomb"):
        decode_image(_bomb_png(tmp_path / "bomb.png", 10_000, 10_000))
    # Over Pillow's own limit: its DecompressionBombError becomes an error of the same kind.
    with pytest.raises(FrameError, match="decompression bomb"):
        decode_image(_bomb_png(tmp_path / "huge.png"), max_pixels=10 ** 12)


def test_decode_modes(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = decode_image(_png(tmp_path / "l.png", gray, "L"))
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 1], gray)

    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    out = decode_image(_png(tmp_path / "rgba.png", rgba, "RGBA"))
    assert out.shape == (3, 4, 3) and np.all(out[..., 0] == 200)          # alpha dropped

    deep = np.full((3, 4), 0x1234, np.uint16)
    deep[0, 0] = 0xFFFF
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = decode_image(tmp_path / "deep.png")
    assert out.shape == (3, 4, 3) and out[1, 1, 0] == 0x12 and out[0, 0, 2] == 0xFF

    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))                    # pure red in CMYK
    cmyk.save(tmp_path / "cmyk.jpg", "JPEG", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    out = decode_image(tmp_path / "cmyk.jpg")
    assert out.shape == (6, 8, 3)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60 and out[..., 2].mean() < 60

    palette = Image.fromarray(gray, "L").convert("P")
    palette.save(tmp_path / "p.gif")
    assert decode_image(tmp_path / "p.gif").shape == (3, 4, 3)


def test_decode_applies_exif_rotation(tmp_path):
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:8, :8] = (255, 0, 0)                                 # red at the stored top-left
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6                                             # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", "JPEG", quality=100, exif=exif.tobytes())
    out = decode_image(tmp_path / "rotated.jpg")
    assert out.shape == (30, 20, 3)                              # portrait now
    corner = out[1:7, -7:-1, 0].mean()                           # stored top-left -> top-right
    assert corner > 200 and out[1:7, 1:7, 0].mean() < 50


def test_decode_jpeg_draft_never_goes_below_the_needed_size(tmp_path):
    Image.fromarray(_frames(1, seed=4, height=600, width=800)[0]).save(tmp_path / "big.jpg",
                                                                        quality=90)
    full = decode_image(tmp_path / "big.jpg")
    assert full.shape == (600, 800, 3)
    small = decode_image(tmp_path / "big.jpg", draft_short_side=100)
    assert small.shape == (150, 200, 3)                          # 1/4: 1/8 would be 75 < 100
    assert decode_image(tmp_path / "big.jpg", draft_short_side=640).shape == (600, 800, 3)


def test_decode_reports_the_full_size_of_a_draft_decoded_rotated_jpeg(tmp_path):
    image = Image.fromarray(_frames(1, seed=4, height=600, width=800)[0])
    exif = Image.Exif()
    exif[0x0112] = 6                                             # quarter turn: axes swap
    image.save(tmp_path / "big.jpg", quality=90, exif=exif.tobytes())
    small, full_size = decode_image_sized(tmp_path / "big.jpg", draft_short_side=100)
    assert small.shape == (200, 150, 3) and full_size == (800, 600)
    same, size = decode_image_sized(tmp_path / "big.jpg")
    assert same.shape == (800, 600, 3) and size == (800, 600)


def test_scale_window_maps_decoded_pixels_to_the_file():
    assert scale_window((10, 20, 110, 120), (150, 200), (600, 800)) == (40, 80, 440, 480)
    assert scale_window((0, 0, 75, 100), (75, 100), (601, 799)) == (0, 0, 601, 799)
    assert scale_window((3, 5, 7, 9), (40, 48), (40, 48)) == (3, 5, 7, 9)
    with pytest.raises(ValueError, match="positive"):
        scale_window((0, 0, 1, 1), (0, 10), (10, 10))


def test_file_source_records_errors_and_goes_on(tmp_path):
    good = _png(tmp_path / "good.png", _frames(1, seed=1)[0])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with open_source(parse_sources([str(bad), str(good)])) as source:
        frames = list(source)
    assert [f.error is None for f in frames] == [False, True]
    assert "bad.png: cannot read the image" in frames[0].error
    assert frames[1].image.shape == (FRAME_H, FRAME_W, 3) and frames[1].decode_ms > 0


def test_picamera2_missing_names_apt_and_venv(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(TfedgeError) as info:
        open_source(SourceSpec("picamera"))
    message = str(info.value)
    assert "sudo apt install python3-picamera2" in message
    assert "--system-site-packages" in message and "\n" not in message


class _FakePicamera2:
    """Stands in for picamera2.Picamera2 and records what the runner did with it."""

    log: list = []

    def __init__(self, num=0):
        self.log.append(("open", num))

    def create_video_configuration(self, main):
        self.log.append(("config", main["size"], main["format"]))
        return main

    def configure(self, config):
        pass

    def start(self):
        self.log.append("start")

    def capture_array(self, name):
        frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
        frame[..., 0] = 255                                      # B of BGR
        return frame

    def stop(self):
        self.log.append("stop")

    def close(self):
        self.log.append("close")


def test_picamera_is_released_when_the_consumer_stops(monkeypatch):
    _FakePicamera2.log = []
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=_FakePicamera2))
    source = open_source(SourceSpec("picamera", device=1), camera_size=(48, 40))
    assert isinstance(source, PiCameraSource)
    with source:
        frames = iter(source)
        first = next(frames)
        assert first.bgr and first.rgb()[0, 0, 2] == 255          # BGR -> RGB
        with pytest.raises(RuntimeError):
            for _ in frames:
                raise RuntimeError("consumer failed")
    assert _FakePicamera2.log[:3] == [("open", 1), ("config", (48, 40), "RGB888"), "start"]
    assert _FakePicamera2.log[-2:] == ["stop", "close"]


class _FakeCapture:
    """Stands in for cv2.VideoCapture (a USB camera) and records what the runner did."""

    log: list = []

    def __init__(self, target):
        self.log.append(("open", target))

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.log.append(("set", prop, value))

    def read(self):
        return True, np.zeros((FRAME_H, FRAME_W, 3), np.uint8)

    def release(self):
        self.log.append("release")


def test_usb_camera_is_released_when_the_consumer_stops(monkeypatch):
    _FakeCapture.log = []
    fake = types.SimpleNamespace(VideoCapture=_FakeCapture, CAP_PROP_FRAME_WIDTH=3,
                                 CAP_PROP_FRAME_HEIGHT=4)
    monkeypatch.setitem(sys.modules, "cv2", fake)
    with open_source(parse_sources(["usb:3"]), camera_size=(48, 40)) as source:
        for n, frame in enumerate(source):
            assert frame.bgr and frame.source == "usb:3" and frame.index == n
            if n == 2:
                break                                            # e.g. --max-frames
    assert _FakeCapture.log == [("open", 3), ("set", 3, 48), ("set", 4, 40), "release"]


def test_usb_camera_warming_up_is_waited_for_and_a_dead_one_is_an_error(monkeypatch):
    import rpi_runner._sources as sources

    class Warming(_FakeCapture):
        reads = 0

        def read(self):
            type(self).reads += 1
            return (True, np.zeros((FRAME_H, FRAME_W, 3), np.uint8)) if self.reads > 3 \
                else (False, None)

    class Dead(_FakeCapture):
        def read(self):
            return False, None

    monkeypatch.setattr(sources, "USB_RETRY_SECONDS", 0.0)
    for capture, frames in ((Warming, 2), (Dead, None)):
        fake = types.SimpleNamespace(VideoCapture=capture, CAP_PROP_FRAME_WIDTH=3,
                                     CAP_PROP_FRAME_HEIGHT=4)
        monkeypatch.setitem(sys.modules, "cv2", fake)
        with open_source(parse_sources(["usb:1"])) as source:
            if frames is None:
                with pytest.raises(TfedgeError, match="usb:1: it opened but gave no frame in 30"):
                    next(iter(source))
            else:
                got = [f for _, f in zip(range(frames), source)]
                assert [f.index for f in got] == [0, 1] and Warming.reads == 5


def test_opencv_missing_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(TfedgeError, match="opencv-python-headless"):
        open_source(SourceSpec("usb", device=0))


# --------------------------------------------------------------------------- summaries (pure)


def test_summary_and_fps_window():
    records = [{"total_ms": t, "pipeline_ms": t - 1, "infer_ms": 0.5, "preprocess_ms": 0.25,
                "decode_ms": 1.0, "exit_stage": s, "macs": 100}
               for t, s in ((2.0, 0), (3.0, 1), (4.0, 0))] + [{"error": "x", "decode_ms": 1.0}]
    s = summarize(records, num_stages=2, wall_seconds=0.5)
    assert s["frames"] == 3 and s["errors"] == 1 and s["fps"] == 6.0
    assert s["latency_ms_p50"] == 3.0 and s["latency_ms_p90"] == pytest.approx(3.8)
    assert s["exit_histogram"] == [2, 1]
    assert s["time_split_ms"] == {"decode": 1.0, "preprocess": 0.25, "inference": 0.5,
                                  "other": 1.25}
    assert sum(s["time_split"].values()) == pytest.approx(1.0)
    # The human lines name a stage as the frame lines do: "k/n", the JSON's index + 1.
    assert "exits per stage: stage 1/2: 2, stage 2/2: 1" in human_summary(s)
    frame = {**records[1], "source": "a.png", "label": "cat", "score": 0.9}
    assert "stage 2/2" in human_line(frame, num_stages=2)
    assert percentile([], 50) is None
    window = FpsWindow(size=3)
    for t in (0.0, 1.0, 1.5, 2.0):
        window.tick(t)
    assert window.fps == pytest.approx(2 / 1.0)                  # last 3 ticks span 1 s


# --------------------------------------------------------------------------- pipeline


def test_single_stage_pipeline(bundles):
    frames = _frames(6, seed=8)
    with EdgePipeline(bundles["single"]) as pipe:
        assert pipe.predictor is None and pipe.num_stages == 1
        for frame in frames:
            r = pipe.classify(frame)
            assert r.label in LABELS and r.exit_stage == 0 and r.box is None
            assert r.window == (0, 0, FRAME_H, FRAME_W) and len(r.stage_ms) == 1
            assert 0 < r.score <= 1 and r.predictor_ms is None and r.macs == 1000 * STAGE_RES[0]
            assert r.pipeline_ms >= r.infer_ms + r.preprocess_ms * 0.99
    reference = evaluate_bundle(bundles["single"], frames)
    with EdgePipeline(bundles["single"]) as pipe:
        assert [pipe.classify(f).class_index for f in frames] == reference.predictions.tolist()


def test_cascade_pipeline_matches_the_reference_evaluation(bundles, cascade):
    from tfedge.data._types import ImageSplit

    frames = _frames(24, seed=3)
    labels = (np.arange(24) % 3).astype(np.int32)
    results = [cascade.classify(f) for f in frames]
    reference = evaluate_bundle(bundles["cascade_zip"], ImageSplit(frames, labels, None, LABELS))
    assert agreement([r.class_index for r in results], reference.predictions) == 1.0
    assert [r.exit_stage for r in results] == reference.exit_stages.tolist()
    assert [r.window for r in results] == [tuple(w) for w in reference.windows.tolist()]
    assert set(reference.exit_stages.tolist()) == {0, 1}         # both stages take images
    # JPEG draft decoding keeps the smallest crop (0.3 of the short side) >= 24 px.
    assert cascade.draft_short_side == 80
    assert sum(reference.exit_rates) == pytest.approx(1.0)
    assert reference.top1 == pytest.approx(np.mean(reference.predictions == labels))
    for r in results:
        assert len(r.stage_ms) == r.exit_stage + 1 and r.predictor_ms is not None
        assert r.macs == 500 + sum(1000 * STAGE_RES[k] for k in range(r.exit_stage + 1))
        ymin, xmin, ymax, xmax = r.box
        assert 0 <= ymin <= 0.5 <= ymax <= 1 and 0 <= xmin <= 0.5 <= xmax <= 1
        h, w = FRAME_H, FRAME_W
        expected = crop_window(np.array(r.box), h, w, _crop_config())
        assert r.window == tuple(int(v) for v in expected)


def _crop_config():
    from tfedge.runtime.geometry import CropConfig

    return CropConfig.from_dict(CROP)


def test_cascade_trace_follows_the_contract(cascade):
    frame = _frames(1, seed=9)[0]
    r = cascade.classify(frame, trace=True)
    t = r.trace
    assert t.predictor_input.dtype == np.int8 and t.predictor_input.shape == (1, 24, 24, 3)
    # int8 input with scale 1, zero point -128: q = pixel - 128 of the bilinear resize.
    expected = np.floor(resize_bilinear(frame, 24, 24) + 0.5) - 128
    np.testing.assert_array_equal(t.predictor_input[0], expected)
    for k, st in enumerate(t.stages):
        spec = cascade.stages[k].output
        np.testing.assert_allclose(st.logits, spec.scale * (st.raw_output.astype(float) -
                                                            spec.zero_point).reshape(-1),
                                   rtol=1e-6)
    assert r.class_index == t.stages[-1].decision.class_index


def test_stages_sharing_an_input_prepare_it_once_and_see_the_same_crop(bundles, tmp_path):
    from tfedge.runtime.bundle import load_bundle, write_bundle

    with load_bundle(bundles["cascade"]) as source:
        predictor = (source.predictor, source.read_model(source.predictor))
        small = source.read_model(source.stages[0])
    shared = write_bundle(
        tmp_path / "shared", labels=LABELS, predictor=predictor,
        stages=[_stage("small_a", STAGE_RES[0], small, threshold=1.0),   # never exits
                _stage("small_b", STAGE_RES[0], small, accumulate_weight=0.5)])
    with EdgePipeline(shared) as pipe:
        for frame in _frames(4, seed=12):
            r = pipe.classify(frame, trace=True)
            assert r.exit_stage == 1 and len(r.stage_ms) == 2
            first, second = (st.input for st in r.trace.stages)
            y0, x0, y1, x1 = r.window
            res = STAGE_RES[0]
            expected = np.floor(resize_bilinear(frame[y0:y1, x0:x1], res, res) + 0.5) - 128
            np.testing.assert_array_equal(first[0], expected)
            assert second is first          # prepared once, fed to both


def test_uint8_bundle_and_bgr_frames(bundles):
    frames = _frames(5, seed=10)
    with EdgePipeline(bundles["uint8"]) as pipe, EdgePipeline(bundles["single"]) as ref:
        assert pipe.stages[0].input.dtype == "uint8"
        for frame in frames:
            r = pipe.classify(frame, trace=True)
            q = r.trace.stages[0].input
            assert q.dtype == np.uint8
            np.testing.assert_array_equal(q[0], np.floor(resize_bilinear(frame, 16, 16) + 0.5))
            bgr = np.ascontiguousarray(frame[..., ::-1])
            assert pipe.classify(bgr, bgr=True).class_index == r.class_index
            assert ref.classify(frame).class_index == r.class_index   # same float model


def test_pipeline_rejects_bad_frames(cascade):
    with pytest.raises(TfedgeError, match=r"\(height, width, 3\) uint8"):
        cascade.classify(np.zeros((8, 8), np.uint8))
    with pytest.raises(TfedgeError, match=r"\(height, width, 3\) uint8"):
        cascade.classify(np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 1000, 3), (1000, 3, 3), (17, 5, 3)])
def test_odd_frame_sizes_are_classified(cascade, shape):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    r = cascade.classify(frame)
    y0, x0, y1, x1 = r.window
    assert 0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1] and r.label in LABELS


# --------------------------------------------------------------------------- command line


def _write_frames(folder: Path, count: int, seed: int = 12) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [_png(folder / f"img{i:02d}.png", f) for i, f in enumerate(_frames(count, seed))]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.strip().splitlines()]


def test_cli_json_lines(bundles, tmp_path, capsys):
    paths = _write_frames(tmp_path / "imgs", 4)
    assert main([str(bundles["cascade"]), str(tmp_path / "imgs"), "--threads", "2"]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert len(records) == 4
    for path, record in zip(paths, records):
        assert set(record) == RECORD_FIELDS
        assert record["source"] == str(path) and record["label"] in LABELS
        assert len(record["stage_ms"]) == record["exit_stage"] + 1
        assert record["total_ms"] == pytest.approx(record["decode_ms"] + record["pipeline_ms"],
                                                   abs=2e-3)
    # The runner on PNG files agrees with the reference evaluation on the arrays.
    reference = evaluate_bundle(bundles["cascade"], _frames(4, seed=12))
    assert [r["class"] for r in records] == reference.predictions.tolist()


def test_cli_output_file_and_human_mode(bundles, tmp_path, capsys):
    _write_frames(tmp_path / "imgs", 2)
    out = tmp_path / "res" / "out.jsonl"
    assert main([str(bundles["single"]), str(tmp_path / "imgs" / "*.png"), "--output",
                 str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert [r["index"] for r in _json_lines(out.read_text())] == [0, 1]
    assert main([str(bundles["single"]), str(tmp_path / "imgs"), "--human", "--output",
                 str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "img00.png: " in lines[0] and "stage 1/1" in lines[0]
    assert " ms (infer " in lines[0]
    assert len(_json_lines(out.read_text())) == 2                # JSON still goes to the file


def test_cli_benchmark_summary(bundles, tmp_path, capsys):
    _write_frames(tmp_path / "imgs", 3)
    assert main([str(bundles["cascade"]), str(tmp_path / "imgs"), "--benchmark", "--repeat",
                 "3", "--warmup", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["frames"] == 8 and summary["errors"] == 0 and summary["fps"] > 0
    for key in ("latency_ms_p50", "latency_ms_p90", "infer_ms_p50", "preprocess_ms_p50",
                "decode_ms_p50", "pipeline_ms_p50"):
        assert summary[key] > 0, key
    assert sum(summary["exit_histogram"]) == 8 and len(summary["exit_histogram"]) == 2
    assert set(summary["time_split"]) == {"decode", "preprocess", "inference", "other"}
    assert summary["stages"] == 2 and summary["predictor"] is True and summary["threads"] == 1
    assert any(line.startswith("latency p50") for line in out[:-1])


def test_cli_annotate_and_preview(bundles, tmp_path, capsys):
    _write_frames(tmp_path / "imgs", 2)
    preview = tmp_path / "preview.jpg"
    assert main([str(bundles["cascade"]), str(tmp_path / "imgs"), "--annotate",
                 str(tmp_path / "ann"), "--preview", str(preview)]) == 0
    written = sorted((tmp_path / "ann").iterdir())
    assert [p.name for p in written] == ["000000_img00.png", "000001_img01.png"]
    with Image.open(written[0]) as im:
        assert im.size == (FRAME_W, FRAME_H) and im.format == "PNG"
        drawn = np.asarray(im.convert("RGB"))
    original = _frames(2, seed=12)[0]
    assert np.any(drawn != original)                             # box and label were drawn
    with Image.open(preview) as im:
        assert im.format == "JPEG" and im.size == (FRAME_W, FRAME_H)


def test_cli_robustness_each_bad_frame_is_an_error_record(bundles, tmp_path, capsys):
    folder = tmp_path / "mixed"
    _write_frames(folder, 1)
    (folder / "corrupt.jpg").write_bytes(os.urandom(500))
    _truncated_jpeg(folder / "truncated.jpg")
    _bomb_png(folder / "bomb.png")
    _png(folder / "tiny.png", np.full((1, 1, 3), 200, np.uint8))
    _png(folder / "sliver.png", np.full((3, 1000, 3), 90, np.uint8))
    _png(folder / "gray.png", np.full((20, 30), 77, np.uint8), "L")
    _png(folder / "alpha.png", np.full((20, 30, 4), 77, np.uint8), "RGBA")
    Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(folder / "deep.png")
    Image.new("CMYK", (30, 20), (10, 200, 30, 0)).save(folder / "cmyk.jpg", "JPEG")
    assert main([str(bundles["cascade"]), str(folder)]) == 1     # some frames failed
    records = {Path(r["source"]).name: r for r in _json_lines(capsys.readouterr().out)}
    assert len(records) == 10
    errors = {name for name, r in records.items() if "error" in r}
    assert errors == {"corrupt.jpg", "truncated.jpg", "bomb.png"}
    assert "decompression bomb" in records["bomb.png"]["error"]
    assert "truncated" in records["truncated.jpg"]["error"]
    for name in ("tiny.png", "sliver.png", "gray.png", "alpha.png", "deep.png", "cmyk.jpg"):
        assert records[name]["label"] in LABELS, name
    assert records["sliver.png"]["frame_size"] == [3, 1000]


def test_cli_golden_vectors(bundles, tmp_path, capsys):
    _write_frames(tmp_path / "imgs", 3)
    golden = tmp_path / "golden.json"
    assert main([str(bundles["cascade"]), str(tmp_path / "imgs"), "--golden", str(golden),
                 "--golden-limit", "2"]) == 0
    records = _json_lines(capsys.readouterr().out)
    data = json.loads(golden.read_text())
    assert data["format"] == "tfedge-golden" and data["version"] == 1
    assert data["manifest"]["format"] == "tfedge-bundle" and len(data["cases"]) == 2
    manifest_stages = data["manifest"]["stages"]
    for case, record in zip(data["cases"], records):
        frame = decode_array(case["frame"])
        assert frame.dtype == np.uint8 and frame.shape == (FRAME_H, FRAME_W, 3)
        assert case["window"] == record["window"] and case["result"]["class"] == record["class"]
        q = decode_array(case["predictor"]["input"])
        np.testing.assert_array_equal(q[0], np.floor(resize_bilinear(frame, 24, 24) + 0.5) - 128)
        assert len(case["stages"]) == record["exit_stage"] + 1
        for k, st in enumerate(case["stages"]):
            raw = decode_array(st["output"])
            spec = manifest_stages[k]["output"]
            np.testing.assert_allclose(st["logits"], spec["scale"] * (raw.reshape(-1).astype(float)
                                                                      - spec["zero_point"]),
                                       rtol=1e-6)
            assert st["exits"] == (k == record["exit_stage"])
        assert base64.b64decode(case["stages"][0]["input"]["data"])


def test_cli_draft_decoded_jpeg_reports_windows_in_the_files_pixels(bundles, cascade, tmp_path,
                                                                     capsys):
    frame = _frames(1, seed=5, height=480, width=640)[0]
    Image.fromarray(frame).save(tmp_path / "shot.jpg", quality=95)
    assert main([str(bundles["cascade"]), str(tmp_path / "shot.jpg")]) == 0
    (record,) = _json_lines(capsys.readouterr().out)
    # The cascade needs a short side of 80 px: 480 px decodes at 1/4 (1/8 would be 60).
    assert record["decoded_size"] == [120, 160] and record["frame_size"] == [480, 640]
    decoded = decode_image(tmp_path / "shot.jpg", draft_short_side=cascade.draft_short_side)
    expected = scale_window(cascade.classify(decoded).window, (120, 160), (480, 640))
    assert record["window"] == list(expected)
    assert main([str(bundles["cascade"]), str(tmp_path / "shot.jpg"), "--no-draft"]) == 0
    (full,) = _json_lines(capsys.readouterr().out)
    assert full["decoded_size"] == full["frame_size"] == [480, 640]


def test_cli_ctrl_c_still_writes_the_summary_and_golden_vectors(bundles, tmp_path, capsys,
                                                               monkeypatch):
    import rpi_runner.cli as cli
    from rpi_runner._sources import Frame, FrameSource

    class InterruptedCamera(FrameSource):
        spec = SourceSpec("picamera")

        def __iter__(self):
            for i, image in enumerate(_frames(5, seed=6)):
                yield Frame(source="picam:0", index=i, image=image)
            raise KeyboardInterrupt                              # what Ctrl-C does mid-capture

    monkeypatch.setattr(cli, "open_source", lambda spec, **kwargs: InterruptedCamera())
    golden = tmp_path / "golden.json"
    assert main([str(bundles["cascade"]), "picam", "--benchmark", "--golden", str(golden)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 3 and summary["warmup_frames"] == 2
    assert len(json.loads(golden.read_text())["cases"]) == 5


def test_cli_benchmark_of_warm_up_frames_only_is_an_error(bundles, tmp_path, capsys):
    _write_frames(tmp_path / "imgs", 2)
    assert main([str(bundles["single"]), str(tmp_path / "imgs"), "--benchmark"]) == 2
    assert "all 2 frames were warm-up" in _one_line_error(capsys)
    assert main([str(bundles["single"]), str(tmp_path / "imgs"), "--benchmark", "--repeat",
                 "2"]) == 0


def test_cli_bad_bundle_is_one_line_exit_2(bundles, tmp_path, capsys):
    image = _png(tmp_path / "a.png", _frames(1, seed=1)[0])
    assert main([str(tmp_path / "nothing"), str(image)]) == 2
    assert _one_line_error(capsys).startswith("tfedge-pi: error: bundle ")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in bundles["single"].iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = bytearray((broken / "stage0.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "stage0.tflite").write_bytes(bytes(data))
    assert main([str(broken), str(image)]) == 2
    assert "SHA-256 mismatch" in _one_line_error(capsys)
    assert main([str(bundles["single"]), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in _one_line_error(capsys)


def test_cli_missing_interpreter_names_the_install(bundles, tmp_path, capsys, monkeypatch):
    import tfedge.runtime.interpreter

    monkeypatch.setattr(tfedge.runtime.interpreter, "_BACKENDS",
                        (("no_such_litert.interpreter", "x"),))
    image = _png(tmp_path / "a.png", _frames(1, seed=1)[0])
    assert main([str(bundles["single"]), str(image)]) == 2
    line = _one_line_error(capsys)
    assert "no LiteRT interpreter" in line and "pip install ai-edge-litert" in line


def test_cli_video_file_through_opencv(bundles, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (FRAME_W, FRAME_H))
    frames = _frames(4, seed=13)
    for f in frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))         # OpenCV writes BGR
    writer.release()
    assert main([str(bundles["single"]), str(path)]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert all(r["frame_size"] == [FRAME_H, FRAME_W] for r in records)
    # MJPG is lossy: compare with the reference run on the decoded frames, in RGB order.
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        decoded.append(bgr[..., ::-1])
    capture.release()
    reference = evaluate_bundle(bundles["single"], np.stack(decoded))
    assert [r["class"] for r in records] == reference.predictions.tolist()


def test_run_options_validation(bundles):
    with pytest.raises(TfedgeError, match="--threads must be a whole number >= 1"):
        RunOptions(bundle=str(bundles["single"]), sources=("x",), threads=0)
    with pytest.raises(TfedgeError, match="--max-frames"):
        RunOptions(bundle="b", sources=("x",), max_frames=0)


def test_run_api_with_max_frames(bundles, tmp_path):
    _write_frames(tmp_path / "imgs", 3)
    sink = io.StringIO()
    result = run(RunOptions(bundle=str(bundles["single"]), sources=(str(tmp_path / "imgs"),),
                            max_frames=2), stdout=sink)
    assert result.frames == 2 and result.errors == 0 and len(sink.getvalue().splitlines()) == 2


def test_runner_never_imports_tensorflow(bundles, tmp_path):
    image = _png(tmp_path / "a.png", _frames(1, seed=1)[0])
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):\n"
        "            raise ImportError('TensorFlow is blocked in this test: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rpi_runner.cli import main\n"
        f"rc = main([{str(bundles['cascade_zip'])!r}, {str(image)!r}])\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print('LOADED', loaded)\n"
        "sys.exit(rc)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[0])["label"] in LABELS
    assert lines[-1] == "LOADED []"


def test_emulation_script_parses():
    proc = subprocess.run(["bash", "-n", str(REPO / "rpi_runner" / "emulate.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TFEDGE_EMULATE") != "1",
                    reason="emulated Raspberry Pi run: root, the Debian mirror and PyPI, ~6-10 "
                           "minutes the first time; set TFEDGE_EMULATE=1 to run it")
def test_emulated_raspberry_pi_matches_x86(bundles, tmp_path):
    images = tmp_path / "images"
    _write_frames(images, 6)
    proc = subprocess.run(["bash", str(REPO / "rpi_runner" / "emulate.sh"), "--work",
                           str(tmp_path / "work"), "--python", sys.executable,
                           str(bundles["cascade"]), str(images)],
                          capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["identical"] and summary["frames"] == 6 and summary["tensors_compared"] > 0
