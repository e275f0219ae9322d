"""The box refiner: window arithmetic, window crops, training, files, and its use as a predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_colour_split
from tfedge._errors import DatasetError, TfedgeError
from tfedge.crop import CropConfig, crop_and_resize, crop_windows
from tfedge.crop import (PredictorTrainConfig, build_predictor, load_predictor, predict_boxes,
                         predictor_export_model, predictor_spec_of, save_predictor,
                         train_predictor)
from tfedge.crop import (DEFAULT_REFINE_WINDOW, RefinedPredictor, RefinerTrainConfig,
                         predictor_macs, refine_boxes, train_refiner)
from tfedge.crop._crop_datasets import window_crops
from tfedge.crop._predictor_files import save_refiner
from tfedge.runtime.refine import boxes_from_window, boxes_to_window, merge_refined

TINY = "boxnet_heat_r32_w4"


def test_window_coordinates_round_trip_and_mark_objects_outside():
    windows = np.array([[0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 0.5, 0.5]], np.float32)
    boxes = np.array([[0.3, 0.5, 0.5, 0.7], [0.6, 0.6, 0.9, 0.9]], np.float32)
    inner = boxes_to_window(boxes, windows)
    np.testing.assert_allclose(inner[0], [0.25, 0.25, 0.75, 0.75], atol=1e-6)
    assert np.isnan(inner[1]).all()  # the second object lies outside its window
    np.testing.assert_allclose(boxes_from_window(inner[:1], windows[:1]), boxes[:1], atol=1e-6)
    # A box reaching past the window is clipped to it, and maps back to the clipped part.
    part = boxes_to_window(np.array([[0.1, 0.3, 0.4, 0.6]], np.float32), windows[:1])
    np.testing.assert_allclose(part[0], [0.0, 0.0, 0.5, 0.5], atol=1e-6)
    assert np.isnan(boxes_to_window(np.full((1, 4), np.nan, np.float32), windows[:1])).all()


def test_a_box_wider_than_the_window_keeps_its_extent_along_that_axis():
    # 300 x 400 image: the square window is at most 300 px, the object 360 px wide.
    previous = np.array([[0.3, 0.05, 0.7, 0.95]], np.float32)
    windows = crop_windows(previous, 300, 400, DEFAULT_REFINE_WINDOW).astype(np.float32) \
        / np.array([300, 400, 300, 400], np.float32)
    assert windows[0, 3] - windows[0, 1] == pytest.approx(0.75)  # narrower than the box
    inner = boxes_to_window(previous, windows)  # what a perfect refiner would answer
    refined = boxes_from_window(inner, windows)
    assert refined[0, 3] - refined[0, 1] == pytest.approx(0.75)  # cut to the window
    merged = merge_refined(previous, refined, windows)
    np.testing.assert_allclose(merged, previous, atol=1e-6)
    # Along y the window holds the box: there the refined coordinates are taken.
    nudged = refined + np.array([[0.01, 0.0, -0.01, 0.0]], np.float32)
    merged = merge_refined(previous, nudged, windows)
    np.testing.assert_allclose(merged[0, [0, 2]], nudged[0, [0, 2]], atol=1e-6)
    np.testing.assert_allclose(merged[0, [1, 3]], previous[0, [1, 3]], atol=1e-6)


def test_window_crops_are_square_in_pixels_on_files_of_any_size(tmp_path):
    from PIL import Image

    from tfedge.data import FileSplit

    paths = []
    for i, (h, w) in enumerate([(40, 60), (60, 40), (50, 50)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(path)
        paths.append(str(path))
    boxes = np.array([[0.2, 0.2, 0.5, 0.4]] * 3, np.float32)
    split = FileSplit(tuple(paths), np.zeros(3, np.int32), boxes, ("a",))
    crops, windows = window_crops(split, boxes, resolution=16, window=DEFAULT_REFINE_WINDOW)
    assert crops.shape == (3, 16, 16, 3)
    sizes = np.array([(40, 60), (60, 40), (50, 50)], np.float32)
    side_px = (windows[:, 2:] - windows[:, :2]) * sizes
    np.testing.assert_allclose(side_px[:, 0], side_px[:, 1], atol=1e-4)
    refined = refine_boxes(build_predictor(TINY), split, boxes, passes=2)
    assert refined.shape == (3, 4) and np.isfinite(refined).all()


def test_window_crops_match_the_numpy_crop():
    split = make_colour_split(6, size=40, seed=2)
    boxes = split.boxes.copy()
    boxes[1] = (0.0, 0.0, 0.05, 0.05)  # tiny: the minimum size decides the window
    crops, windows = window_crops(split, boxes, resolution=24, window=DEFAULT_REFINE_WINDOW)
    assert crops.shape == (6, 24, 24, 3) and crops.dtype == np.uint8
    expected_windows = crop_windows(boxes, 40, 40, DEFAULT_REFINE_WINDOW) / 40.0
    np.testing.assert_allclose(windows, expected_windows, atol=1e-6)
    for i in range(6):
        ref, _ = crop_and_resize(split.images[i], boxes[i], 24, DEFAULT_REFINE_WINDOW)
        assert np.abs(crops[i].astype(np.float32) - ref).max() <= 0.51
    # Windows around the true boxes hold their whole object.
    inner = boxes_to_window(split.boxes, windows)
    keep = np.arange(6) != 1
    assert not np.isnan(inner[keep]).any()
    np.testing.assert_allclose(boxes_from_window(inner[keep], windows[keep]), split.boxes[keep],
                               atol=1e-5)


def test_config_refuses_what_cannot_work():
    with pytest.raises(TfedgeError, match="passes"):
        RefinerTrainConfig(passes=0)
    with pytest.raises(TfedgeError, match="square"):
        RefinerTrainConfig(window=CropConfig(square=False))
    with pytest.raises(TfedgeError, match="scales"):
        RefinerTrainConfig(window=CropConfig(scales=(0.5, 1.0)))
    with pytest.raises(TfedgeError, match=">= 1"):
        RefinerTrainConfig(predicted_copies=0, jittered_copies=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny predictor, trained briefly, and a refiner trained on its boxes (files on disk)."""
    folder = tmp_path_factory.mktemp("refine")
    train = make_colour_split(256, size=48, seed=3)
    val = make_colour_split(48, size=48, seed=7)
    fast = PredictorTrainConfig(epochs=2, batch_size=16, learning_rate=1e-2,
                                bn_recalibration_batches=2)
    predictor, _ = train_predictor(TINY, train, config=fast, output=folder / "pred.keras")
    config = RefinerTrainConfig(passes=2, train=PredictorTrainConfig(
        epochs=6, batch_size=16, learning_rate=1e-2, bn_recalibration_batches=4,
        augment=RefinerTrainConfig().train.augment))
    pair, result = train_refiner(TINY, train, predictor=predictor, val=val, config=config,
                                 output=folder / "refiner.keras",
                                 predictor_path=folder / "pred.keras")
    return folder, predictor, pair, result, val


@pytest.mark.slow
def test_refiner_trains_saves_and_loads_as_a_predictor(trained):
    folder, predictor, pair, result, val = trained
    assert isinstance(pair, RefinedPredictor) and pair.passes == 2
    assert 3 * 256 < result.windows <= 4 * 256  # four per image, less any without their object
    assert result.val["refined"]["miou"] > result.val["predictor"]["miou"]
    side = json.loads((folder / "refiner.keras.json").read_text())
    assert side["role"] == "refiner" and side["refines"] == "pred.keras"
    assert side["passes"] == 2 and side["window"]["margin"] == DEFAULT_REFINE_WINDOW.margin
    loaded = load_predictor(folder / "refiner.keras")
    assert isinstance(loaded, RefinedPredictor) and loaded.passes == 2
    boxes = predict_boxes(loaded, val)
    assert boxes.shape == (len(val), 4) and boxes.dtype == np.float32
    np.testing.assert_allclose(boxes, predict_boxes(pair, val), atol=1e-5)
    first = predict_boxes(predictor, val)
    np.testing.assert_allclose(
        boxes, refine_boxes(pair.refiner, val, first, window=pair.window, passes=2), atol=1e-6)
    assert predictor_spec_of(loaded).resolution == 32
    from tfedge._macs import count_macs

    assert predictor_macs(loaded) == count_macs(predictor).macs + 2 * count_macs(pair.refiner).macs


@pytest.mark.slow
def test_refiner_files_fail_clearly(trained, tmp_path):
    folder, predictor, pair, _, _ = trained
    import shutil

    moved = tmp_path / "alone.keras"
    shutil.copy(folder / "refiner.keras", moved)
    shutil.copy(folder / "refiner.keras.json", tmp_path / "alone.keras.json")
    with pytest.raises(TfedgeError, match="which does not exist: put the predictor back there"):
        load_predictor(moved)
    # The sidecar names a predictor file that now holds another model.
    save_predictor(build_predictor("boxnet_heat_r48_w4"), tmp_path / "pred.keras")
    with pytest.raises(TfedgeError, match="changed after refiner"):
        load_predictor(moved)
    # Predictor and refiner in different folders: the sidecar's relative path finds it.
    (tmp_path / "sub").mkdir()
    elsewhere = tmp_path / "sub" / "r.keras"
    save_refiner(pair, elsewhere, folder / "pred.keras")
    loaded = load_predictor(elsewhere)
    assert isinstance(loaded, RefinedPredictor)
    assert loaded.predictor_path == str((folder / "pred.keras").resolve())
    with pytest.raises(TfedgeError, match="overwrite its own predictor"):
        save_refiner(pair, folder / "pred.keras", folder / "pred.keras")
    with pytest.raises(TfedgeError, match="export its predictor and its refiner separately"):
        predictor_export_model(pair)
    from tfedge._train import save_classifier
    from tfedge.cascade import build_cascade
    from tfedge.models import create_model

    stage = save_classifier(create_model("resnet10_025", resolution=32, num_classes=3),
                            tmp_path / "stage.keras", {"class_names": ["a", "b", "c"]})
    # A cascade takes the refiner file as its predictor: the pair, its passes in the MACs.
    spec = build_cascade([stage], predictor=folder / "refiner.keras")
    assert spec.predictor_path().resolve() == (folder / "pred.keras").resolve()
    assert spec.refiner.passes == pair.passes
    assert spec.predictor_macs == spec.predictor.macs + pair.passes * spec.refiner.macs
    with pytest.raises(TfedgeError, match="already refined"):
        train_refiner(TINY, make_colour_split(8), predictor=pair)
    with pytest.raises(TfedgeError, match="predictor_path"):
        train_refiner(TINY, make_colour_split(8), predictor=predictor, output=tmp_path / "r.keras")


def test_refiner_needs_true_boxes():
    import dataclasses

    split = dataclasses.replace(make_colour_split(8), boxes=None)
    with pytest.raises(DatasetError, match="true boxes"):
        train_refiner(TINY, split, predictor=build_predictor(TINY))


def _boxed_folder_dataset(root):
    """Class folders of coloured squares on noise, with their boxes in a CSV."""
    from PIL import Image

    rows = ["filename,xmin,ymin,xmax,ymax"]
    for split, (n, seed) in {"train": (48, 1), "val": (12, 2)}.items():
        data = make_colour_split(n, size=48, seed=seed)
        for i, (image, label, box) in enumerate(zip(data.images, data.labels, data.boxes)):
            rel = f"{split}/{data.class_names[label]}/{i:03d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / rel)
            y0, x0, y1, x1 = (int(round(v * 48)) for v in box)
            rows.append(f"{rel},{x0},{y0},{x1 - 1},{y1 - 1}")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_cli_refine_then_evaluate_with_the_refiner_as_predictor(tmp_path):
    import subprocess
    import sys

    from test_cli import REPO

    data = _boxed_folder_dataset(tmp_path / "data")
    flags = ["--data", str(data), "--boxes", str(data / "boxes.csv")]

    def tfedge(*args):
        return subprocess.run([sys.executable, "-m", "tfedge.cli", *args], capture_output=True,
                              text=True, cwd=REPO, timeout=600)

    pred, ref, clf = tmp_path / "p.keras", tmp_path / "r.keras", tmp_path / "c.keras"
    proc = tfedge("predictor", "train", "--predictor", TINY, "--epochs", "1", "--batch-size", "8",
                  "--output", str(pred), *flags)
    assert proc.returncode == 0, proc.stderr
    proc = tfedge("predictor", "refine", "--predictor", str(pred), "--refiner", TINY,
                  "--epochs", "1", "--batch-size", "8", "--passes", "3", "--output", str(ref),
                  *flags)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["passes"] == 3 and ref.exists()
    assert set(summary["val"]) == {"predictor", "refined"}
    from tfedge._macs import count_macs

    assert summary["macs"] == 4 * count_macs(build_predictor(TINY)).macs  # predictor + 3 looks
    proc = tfedge("crop", "train", "--model", "resnet10_025", "--resolution", "32", "--epochs", "1",
                  "--batch-size", "8", "--copies", "2", "--predictor", str(ref),
                  "--output", str(clf), *flags)
    assert proc.returncode == 0, proc.stderr
    proc = tfedge("crop", "evaluate", "--predictor", str(ref), "--model", str(clf),
                  "--split", "val", *flags)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["predictor_macs"] == summary["macs"] and result["boxes"]["count"] == 12
    # The refiner is not its own predictor, and a refiner cannot be refined again.
    proc = tfedge("predictor", "refine", "--predictor", str(pred), "--output", str(pred), *flags)
    assert proc.returncode == 2 and "--output is the --predictor file" in proc.stderr
    proc = tfedge("predictor", "refine", "--predictor", str(ref), "--output",
                  str(tmp_path / "r2.keras"), *flags)
    assert proc.returncode == 2 and "is a refiner already" in proc.stderr


# --------------------------------------------------------------------------- the refiner in a bundle


@pytest.mark.slow
def test_cascade_bundle_holds_the_int8_refiner_calibrated_on_its_own_windows(tmp_path,
                                                                            monkeypatch):
    """tfedge-convert cascade --refiner: a version-2 bundle whose refiner was calibrated on
    windows around the int8 predictor's boxes, whose stages were calibrated on crops at the int8
    refined boxes, and which the runner and the batch evaluation run identically."""
    pytest.importorskip("ai_edge_litert")
    import keras

    import tfedge._convert as convert_module
    from rpi_runner import EdgePipeline
    from tfedge._convert import _subset
    from tfedge._macs import count_macs
    from tfedge._train import save_classifier
    from tfedge.cascade._cascade import CascadeSpec, PredictorConfig, StageConfig
    from tfedge.cascade._convert import _refined_device_crops, convert_cascade_bundle
    from tfedge.cascade._int8 import device_boxes
    from tfedge.runtime.bundle import load_bundle
    from tfedge.runtime.evaluate import evaluate_bundle
    from tfedge.runtime.interpreter import TfliteModel

    train, test = make_colour_split(48, size=40, seed=0), make_colour_split(20, size=40, seed=2)
    keras.utils.set_random_seed(0)
    save_predictor(build_predictor(TINY), tmp_path / "pred.keras")
    predictor = load_predictor(tmp_path / "pred.keras")
    refiner_model = build_predictor(TINY)
    pair = RefinedPredictor(predictor, refiner_model, DEFAULT_REFINE_WINDOW, 2,
                            str(tmp_path / "pred.keras"))
    save_refiner(pair, tmp_path / "refiner.keras", tmp_path / "pred.keras")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    stage = keras.Model(inputs, keras.layers.Dense(len(train.class_names))(
        keras.layers.GlobalAveragePooling2D()(x)), name="tiny_stage")
    save_classifier(stage, tmp_path / "stage.keras", {"class_names": list(train.class_names)})
    crop = CropConfig(margin=0.2)
    spec = CascadeSpec(stages=(StageConfig("tiny_stage", "stage.keras", 16, 5000),),
                       class_names=train.class_names,
                       predictor=PredictorConfig("pred.keras", 32,
                                                 count_macs(predictor).macs, crop),
                       root=tmp_path)
    representative = []
    real_quantize = convert_module.quantize_int8

    def recording_quantize(model, rep, **kwargs):
        data, record = real_quantize(model, rep, **kwargs)
        representative.append((rep.copy(), data))
        return data, record

    monkeypatch.setattr(convert_module, "quantize_int8", recording_quantize)
    path, metrics = convert_cascade_bundle(spec, train, test, tmp_path / "bundle",
                                           calibration_size=12, check_size=20,
                                           tolerance_points=100.0,
                                           refiner=tmp_path / "refiner.keras")
    assert len(representative) == 3  # predictor, refiner, the stage
    cal = _subset(train, 12, 0)
    pred_tfl = TfliteModel(representative[0][1])
    first, _ = window_crops(cal, device_boxes(cal, pred_tfl), resolution=32,
                            window=DEFAULT_REFINE_WINDOW)
    refiner_rep = representative[1][0]
    assert refiner_rep.shape == (24, 32, 32, 3)  # two passes of windows per image
    np.testing.assert_array_equal(refiner_rep[:12], first.astype(np.float32))
    with load_bundle(path) as bundle:
        assert bundle.version == 2 and bundle.manifest["version"] == 2
        ref = bundle.refiner
        assert (ref.passes, ref.resolution) == (2, 32)
        assert dict(ref.window) == DEFAULT_REFINE_WINDOW.to_dict()
        assert ref.macs == count_macs(refiner_model).macs
        assert bundle.read_model(ref) == representative[1][1]
        assert {"float_int8_mean_iou", "mean_iou", "float_mean_iou",
                "calibration_windows"} <= set(ref.metrics)
        from tfedge.cascade._convert import Int8Refiner

        int8_refiner = Int8Refiner(TfliteModel(representative[1][1]), 32, ref.macs,
                                   DEFAULT_REFINE_WINDOW, 2, ref.box_format)
        _, stage_rep = _refined_device_crops(cal, [16], pred_tfl, int8_refiner, crop)
        np.testing.assert_array_equal(representative[2][0], stage_rep[0])
        reference = evaluate_bundle(bundle, test)
        assert reference.top1 == pytest.approx(metrics["top1"])
        assert reference.mean_macs == pytest.approx(
            bundle.predictor.macs + 2 * ref.macs + bundle.stages[0].macs)
        with EdgePipeline(bundle) as pipe:
            results = [pipe.classify(image) for image in test.images]
        assert [r.class_index for r in results] == reference.predictions.tolist()
        assert [list(r.window) for r in results] == reference.windows.tolist()
        assert np.array_equal([r.box for r in results], reference.boxes)
        assert np.array_equal([r.predictor_box for r in results], reference.predictor_boxes)


def test_conversion_refuses_a_refiner_of_another_predictor(tmp_path):
    from tfedge.cascade._cascade import CascadeSpec, PredictorConfig, StageConfig
    from tfedge.cascade._convert import _load_refiner
    for name in ("a.keras", "b.keras"):
        save_predictor(build_predictor(TINY), tmp_path / name)
    pair = RefinedPredictor(load_predictor(tmp_path / "a.keras"), build_predictor(TINY))
    save_refiner(pair, tmp_path / "r.keras", tmp_path / "a.keras")
    stage = (StageConfig("s", "s.keras", 16, 1),)
    spec = CascadeSpec(stages=stage, class_names=("a", "b"),
                       predictor=PredictorConfig("b.keras", 32, 1), root=tmp_path)
    with pytest.raises(TfedgeError, match="refines .*a.keras.*but the cascade's predictor"):
        _load_refiner(tmp_path / "r.keras", spec)
    with pytest.raises(TfedgeError, match="plain predictor, not a refiner"):
        _load_refiner(tmp_path / "b.keras", spec)
    plain = CascadeSpec(stages=stage, class_names=("a", "b"), root=tmp_path)
    with pytest.raises(TfedgeError, match="the cascade has no predictor"):
        _load_refiner(tmp_path / "r.keras", plain)
    assert _load_refiner(tmp_path / "r.keras", dataclasses_replace(
        spec, predictor=PredictorConfig("a.keras", 32, 1))).refiner is not None


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_refinement_names_are_one_object_wherever_they_are_read():
    # The pair's type, inference and files live below the predictor modules (so imports
    # flow one way); the refiner's trainer and the public package must hand out those very
    # objects, or isinstance checks and `except` clauses would split in two.
    import tfedge.crop as crop
    from tfedge.crop import _predictor_files, _predictor_inference, _refine, _refined_predictor

    for name, home in (("RefinedPredictor", _refined_predictor),
                       ("DEFAULT_REFINE_WINDOW", _refined_predictor),
                       ("REFINER_ROLE", _refined_predictor),
                       ("refine_boxes", _predictor_inference),
                       ("save_refiner", _predictor_files)):
        assert getattr(_refine, name) is getattr(home, name), name
    assert crop.RefinedPredictor is _refined_predictor.RefinedPredictor
    assert crop.refine_boxes is _predictor_inference.refine_boxes
    assert crop.predictor_macs is _predictor_inference.predictor_macs
