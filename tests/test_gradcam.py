"""Grad-CAM pseudo-boxes: the pure map -> box rule, maps from a model, label sources."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tfedge._errors import DatasetError, ModelConfigError
from tfedge.crop._gradcam import box_labels, cam_boxes, default_cam_layer, gradcam_maps

# A box edge found on a map upsampled to 64 cells lands within this of the true edge.
EDGE_TOLERANCE = 1.5 / 64


def _blob(side: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return np.exp(-d2 / (2 * radius ** 2)).astype(np.float32)


def test_cam_box_of_a_sharp_square():
    cam = np.zeros((1, 16, 16), np.float32)
    cam[0, 4:8, 8:14] = 1.0
    box = cam_boxes(cam, threshold=0.5)[0]
    np.testing.assert_allclose(box, [4 / 16, 8 / 16, 8 / 16, 14 / 16], atol=EDGE_TOLERANCE)


def test_cam_box_keeps_only_the_peak_region():
    cam = _blob(16, (4, 4), 2.5) + 0.8 * _blob(16, (12, 12), 2.5)
    cam = (cam / cam.max())[None]
    box = cam_boxes(cam, threshold=0.5)[0]
    assert box[2] < 0.5 and box[3] < 0.5  # the weaker blob at (12, 12) is left out
    both = cam_boxes(cam, threshold=0.05)[0]  # low threshold: the regions merge
    assert both[2] > 0.75 and both[3] > 0.75


def test_cam_box_threshold_sets_the_size():
    cam = _blob(8, (4, 4), 1.5)[None]
    tight, loose = cam_boxes(cam, threshold=0.7)[0], cam_boxes(cam, threshold=0.2)[0]
    assert (loose[2] - loose[0]) > (tight[2] - tight[0]) > 0


def test_empty_map_gives_the_whole_image():
    np.testing.assert_array_equal(cam_boxes(np.zeros((2, 4, 4), np.float32)),
                                  [[0, 0, 1, 1], [0, 0, 1, 1]])


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2])
def test_cam_threshold_must_be_a_fraction(bad):
    with pytest.raises(DatasetError, match="threshold"):
        cam_boxes(np.ones((1, 4, 4), np.float32), threshold=bad)


def test_maps_must_be_3d():
    with pytest.raises(DatasetError, match="shape"):
        cam_boxes(np.ones((4, 4), np.float32))


# --------------------------------------------------------------------------- with a model


@pytest.fixture(scope="module")
def tiny_classifier():
    from tfedge.models import create_model

    return create_model("resnet10_025", resolution=64, num_classes=3)


def test_default_layer_is_the_last_map_of_at_least_8_cells(tiny_classifier):
    name = default_cam_layer(tiny_classifier)
    assert tiny_classifier.get_layer(name).output.shape[1] == 8  # stride 8 of 64 px


def test_gradcam_maps_shape_and_range(tiny_classifier, colour_split):
    split = colour_split.take(10)
    maps = gradcam_maps(tiny_classifier, split, batch_size=4)
    assert maps.shape == (10, 8, 8) and maps.dtype == np.float32
    assert (maps >= 0).all() and (maps <= 1 + 1e-6).all()
    with pytest.raises(ModelConfigError, match="no layer"):
        gradcam_maps(tiny_classifier, split, layer="nope")


def test_a_teacher_with_too_few_classes_is_a_clear_error(colour_split):
    from tfedge.models import create_model

    two_classes = create_model("resnet10_025", resolution=64, num_classes=2)
    with pytest.raises(ModelConfigError, match="3 classes but the Grad-CAM teacher"):
        gradcam_maps(two_classes, colour_split.take(4))
    assert gradcam_maps(two_classes, colour_split.take(4), use_labels=False).shape == (4, 8, 8)


def test_box_labels_sources(tiny_classifier, colour_split):
    split = colour_split.take(12)
    boxes, counts = box_labels(split)
    np.testing.assert_array_equal(boxes, split.boxes)
    assert counts == {"ground_truth": 12, "gradcam": 0}
    unboxed = dataclasses.replace(split, boxes=None)
    with pytest.raises(DatasetError, match="teacher"):
        box_labels(unboxed)
    boxes, counts = box_labels(unboxed, tiny_classifier, batch_size=6)
    assert counts == {"ground_truth": 0, "gradcam": 12}
    assert boxes.shape == (12, 4) and not np.isnan(boxes).any()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


@pytest.mark.slow
def test_trained_teacher_cam_boxes_find_the_object_and_train_a_predictor():
    """Both label paths end to end: a teacher's Grad-CAM boxes overlap the truth and
    a predictor trained on them (no ground truth) predicts boxes near the objects."""
    from conftest import make_colour_split

    from tfedge._train import TrainConfig, train_classifier
    from tfedge.crop._evaluate import iou_summary
    from tfedge.crop._gradcam import gradcam_boxes
    from tfedge.crop import (PredictorTrainConfig, predict_boxes, train_predictor,
                             with_box_labels)

    train = make_colour_split(384, size=64, seed=1)
    val = make_colour_split(64, size=64, seed=2)
    teacher, _ = train_classifier("resnet10_025", train, config=TrainConfig(
        epochs=3, batch_size=32, bn_recalibration_batches=4), resolution=64)
    cam = gradcam_boxes(teacher, val, batch_size=32)
    cam_quality = iou_summary(cam, val.boxes)
    assert cam_quality["miou"] > 0.3
    pseudo = gradcam_boxes(teacher, train, batch_size=64)
    predictor, result = train_predictor("boxnet_heat_r32_w4", with_box_labels(train, pseudo),
                                        val=val, config=PredictorTrainConfig(
                                            epochs=6, batch_size=32, learning_rate=1e-2,
                                            photometric=False, bn_recalibration_batches=4))
    boxes = predict_boxes(predictor, val)
    assert boxes.shape == (len(val), 4)
    # It learned the teacher's boxes (its only labels), and through them the objects.
    assert iou_summary(boxes, cam)["miou"] > 0.4
    assert result.val["miou"] > 0.5 * cam_quality["miou"]
