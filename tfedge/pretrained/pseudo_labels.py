"""Unlabelled photos labelled by a model's own predictions (pseudo-labels).

Offline there are no ImageNet labels. What a pretrained model can still be
checked against is itself: the float model's top-1 on a photo is the label a
compressed copy (int8, shrunk, cascaded) should reproduce. These helpers turn
a folder of unlabelled photos (or the photos bundled with scikit-image and
scikit-learn) into labelled splits whose labels are a model's top-1, so every
tool that wants labels (int8 conversion checks, compound shrinking's
validation, cascade calibration) can run on them. Every "top-1" measured on
such splits is *agreement with that model*, never accuracy: say so.

* :func:`model_top1` -- a model's top-1 class on images (resized to its input);
* :func:`pseudo_labelled_split` -- an :class:`~tfedge.data.ImageSplit` labelled by it;
* :func:`split_photos` -- whole photos into a training and a held-out group;
* :func:`model_labelled_dataset` -- a :class:`~tfedge.data.Dataset` from a photo
  folder: ``train`` = the photos plus random crops (calibration), ``val`` =
  ``test`` = other random crops (the check), labelled by a model's top-1.

Importing this module needs numpy only; labelling needs TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from tfedge._errors import DatasetError, TfedgeError

__all__ = ["LABELS_ARE", "model_top1", "pseudo_labelled_split", "split_photos", "resized_photos",
           "model_labelled_dataset", "DEFAULT_CALIBRATION_CROPS", "DEFAULT_CHECK_CROPS"]

#: What a split labelled here measures; put it next to every figure computed on one.
LABELS_ARE = "the float model's own top-1 (agreement with it, not accuracy)"
DEFAULT_CALIBRATION_CROPS = 64
DEFAULT_CHECK_CROPS = 64
#: Crops of the check split use a seed this far from the calibration crops' seed.
_CHECK_SEED_OFFSET = 1
_PREDICT_BATCH = 16


def resized_photos(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` photos resized bilinearly (Pillow) to ``resolution`` square, as
    the pseudo-labels were computed (unchanged when already that size)."""
    if images.shape[1] == resolution and images.shape[2] == resolution:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(np.asarray(im, np.uint8)).resize(
        (resolution, resolution), Image.BILINEAR), dtype=np.uint8) for im in images])


def model_top1(model: Any, images: np.ndarray, *, batch_size: int = _PREDICT_BATCH) -> np.ndarray:
    """``(N,)`` int32: ``model``'s top-1 class on ``images`` (uint8 RGB, resized to its input)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise TfedgeError(f"images must be a non-empty (N, H, W, 3) array, got shape "
                          f"{images.shape}")
    resolution = int(model.input_shape[1])
    logits = model.predict(resized_photos(images, resolution).astype(np.float32), verbose=0,
                           batch_size=batch_size)
    return np.argmax(logits, axis=-1).astype(np.int32)


def pseudo_labelled_split(model: Any, images: np.ndarray, class_names: Sequence[str], *,
                          batch_size: int = _PREDICT_BATCH):
    """``images`` as an :class:`~tfedge.data.ImageSplit` whose labels are ``model``'s top-1.

    The images keep their size (consumers resize them to each model's input).
    """
    from tfedge.data._types import ImageSplit

    names = tuple(str(n) for n in class_names)
    outputs = int(model.output_shape[-1])
    if len(names) != outputs:
        raise TfedgeError(f"got {len(names)} class names for a model with {outputs} outputs: "
                          "pass the names the model was trained with")
    labels = model_top1(model, images, batch_size=batch_size)
    return ImageSplit(np.asarray(images, np.uint8), labels, None, names)


def split_photos(photos: Sequence[Any], held_out: Sequence[str]) -> tuple[list, list]:
    """``(training photos, held-out photos)``: ``held_out`` names go to the second list.

    Whole photos are held out (not crops of them) so an agreement measured on
    the held-out group is not measured on scenes the fine-tune saw.
    """
    wanted = set(held_out)
    known = {p.name for p in photos}
    unknown = sorted(wanted - known)
    if unknown:
        raise DatasetError(f"held-out photos {unknown} are not among the photos "
                           f"({', '.join(sorted(known))}): name photos that exist")
    train = [p for p in photos if p.name not in wanted]
    test = [p for p in photos if p.name in wanted]
    if not train or not test:
        raise DatasetError(f"holding out {sorted(wanted)} leaves {len(train)} training and "
                           f"{len(test)} held-out photos: each group needs at least one")
    return train, test


def _class_names_of(model_path: Path) -> list[str]:
    from tfedge._train import read_sidecar

    names = read_sidecar(model_path).get("class_names")
    if not names:
        raise TfedgeError(f"{model_path} has no class names in its sidecar ({model_path}.json): "
                          "save it with tfedge (e.g. 'tfedge import') so its labels are known")
    return [str(n) for n in names]


def model_labelled_dataset(model: Union[str, os.PathLike, Any],
                           photos: Union[str, os.PathLike, Sequence[Any], None] = None, *,
                           class_names: Optional[Sequence[str]] = None,
                           calibration_crops: int = DEFAULT_CALIBRATION_CROPS,
                           check_crops: int = DEFAULT_CHECK_CROPS, seed: int = 0):
    """A :class:`~tfedge.data.Dataset` from unlabelled photos, labelled by ``model``'s top-1.

    model: a Keras classifier or a ``.keras`` path (class names from its sidecar).
    photos: a folder of images, a list of :class:`~tfedge.pretrained.photos.Photo`,
        or None for the photos bundled with scikit-image/scikit-learn.
    train (the calibration images): each photo's central square plus
    ``calibration_crops`` random crops; val and test (the check images):
    ``check_crops`` other random crops (the central squares when 0). All at
    the model's input resolution; ``info['labels']`` says what the labels are.
    """
    from tfedge.data._load import Dataset
    from tfedge.pretrained.photos import (augmented_crops, bundled_photos, load_photos,
                                          photos_in)

    for flag, value in (("calibration_crops", calibration_crops), ("check_crops", check_crops)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TfedgeError(f"{flag} must be a whole number >= 0, got {value!r}")
    source = "bundled photos"
    if isinstance(model, (str, os.PathLike)):
        from tfedge._train import load_classifier

        path = Path(model)
        if not path.is_file():
            raise TfedgeError(f"model file {str(path)!r} does not exist: pass a .keras classifier")
        if class_names is None:
            class_names = _class_names_of(path)
        model = load_classifier(path)
    if class_names is None:
        raise TfedgeError("class_names are needed for a model given as an object: pass them")
    if photos is None:
        photo_list = bundled_photos()
    elif isinstance(photos, (str, os.PathLike)):
        photo_list = photos_in(photos)
        source = str(photos)
    else:
        photo_list = list(photos)
        source = "given photos"
    resolution = int(model.input_shape[1])
    views = load_photos(photo_list, resolution)
    calibration = views
    if calibration_crops:
        calibration = np.concatenate([views, augmented_crops(photo_list, resolution,
                                                             calibration_crops, seed=seed)])
    check = (augmented_crops(photo_list, resolution, check_crops, seed=seed + _CHECK_SEED_OFFSET)
             if check_crops else views)
    train = pseudo_labelled_split(model, calibration, class_names)
    held = pseudo_labelled_split(model, check, class_names)
    info = {"labels": LABELS_ARE, "photos": source, "photo_count": len(photo_list),
            "calibration_crops": calibration_crops, "check_crops": check_crops, "seed": seed,
            "resolution": resolution}
    return Dataset(name=f"photos labelled by {model.name}", train=train, val=held, test=held,
                   class_names=tuple(str(n) for n in class_names), info=info)
