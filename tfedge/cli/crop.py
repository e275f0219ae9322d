"""``tfedge predictor ...`` and ``tfedge crop ...``: the dynamic-cropping commands.

  tfedge predictor list                                   the registered predictor variants
  tfedge predictor train --output P.keras [--predictor NAME] [--teacher T.keras]
                                                          train the foreground predictor
  tfedge predictor refine --predictor P.keras --output R.keras [--refiner NAME]
                                                          train a refiner for P; R.keras then
                                                          works wherever a predictor does
  tfedge crop train --model NAME --predictor P.keras --output C.keras
                                                          train a crop-robust classifier
  tfedge crop evaluate --predictor P.keras --model C.keras [--preview grid.png]
                                                          mean IoU, top-1 on predicted /
                                                          true crops / full images, MACs

:func:`register` registers them on ``tfedge``'s subparsers; each
command is a thin layer over a library function and prints one JSON object
as its last line.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from ._shell import (EXIT_OK, check_input_file, check_output_file, epochs_help,
                     optimizer_fields)
from .._errors import TfedgeError

__all__ = ["register"]

log = logging.getLogger("tfedge")


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, sort_keys=True))


def _add_crop_flags(parser: argparse.ArgumentParser, default: str) -> None:
    """The crop geometry flags; each one left out keeps ``default``'s value."""
    group = parser.add_argument_group("crop geometry", f"each flag left out: {default}")
    group.add_argument("--margin", type=float, default=None,
                       help="each crop side grows by this fraction (library default 0.15)")
    group.add_argument("--no-square", dest="square", action="store_const", const=False,
                       default=None, help="keep the box's aspect ratio instead of a square crop")
    group.add_argument("--min-size", dest="min_size", type=float, default=None,
                       help="smallest crop side, as a fraction of the image's short side "
                            "(library default 0.2)")
    group.add_argument("--scales", type=float, nargs="*", default=None,
                       help="snap crop sides up to these fractions of the short side "
                            "(--scales alone: no snapping)")


def crop_with_overrides(base: Optional[Any], *, margin: Optional[float] = None,
                        square: Optional[bool] = None, min_size: Optional[float] = None,
                        scales: Optional[Sequence[float]] = None):
    """``base`` (a CropConfig, None: the defaults) with each given setting replaced."""
    import dataclasses

    from ..crop.geometry import CropConfig

    given = {key: value for key, value in (("margin", margin), ("square", square),
                                           ("min_size", min_size)) if value is not None}
    if scales is not None:
        given["scales"] = tuple(scales)
    return dataclasses.replace(base if base is not None else CropConfig(), **given)


def _crop_config(args: argparse.Namespace, base: Optional[Any] = None):
    return crop_with_overrides(base, margin=args.margin, square=args.square,
                               min_size=args.min_size, scales=args.scales)


def _check_output(path: str) -> Path:
    return check_output_file(path, "--output", suffix=".keras")


# --------------------------------------------------------------------------- commands


def cmd_predictor_list(args: argparse.Namespace) -> int:
    from .._macs import count_macs
    from ..crop._boxnet import build_predictor, list_predictors

    names = list_predictors()
    rows = {}
    for name in names:
        macs = count_macs(build_predictor(name)).macs if args.macs else None
        rows[name] = macs
        print(name if macs is None else f"{name:24s} {macs / 1e6:6.2f} MMACs")
    _print_json({"predictors": names, **({"macs": rows} if args.macs else {})})
    return EXIT_OK


def cmd_predictor_train(args: argparse.Namespace) -> int:
    from .._macs import count_macs
    from ._data_flags import dataset_from_args
    from ..crop._boxnet import get_predictor_spec
    from ..crop._gradcam import box_labels
    from ..crop._predictor_training import PredictorTrainConfig, train_predictor, with_box_labels

    output = _check_output(args.output)
    spec = get_predictor_spec(args.predictor, resolution=args.resolution)
    config = PredictorTrainConfig(**args.epochs, batch_size=args.batch_size,
                                  learning_rate=args.learning_rate, seed=args.seed,
                                  steps_per_epoch=args.steps_per_epoch)
    dataset = dataset_from_args(args)
    train = dataset.train
    teacher = None
    if args.teacher:
        from .._train import load_classifier

        teacher = load_classifier(check_input_file(args.teacher, "--teacher"))
    if args.pseudo_boxes and teacher is None:
        raise TfedgeError("--pseudo-boxes needs --teacher (a .keras classifier for Grad-CAM)")
    source = _without_boxes(train) if args.pseudo_boxes else train
    boxes, counts = box_labels(source, teacher, threshold=args.cam_threshold)
    train = with_box_labels(train, boxes)
    model, result = train_predictor(
        spec, train, val=dataset.val, config=config, output=output,
        metadata={"dataset": dataset.name, "box_labels": counts})
    summary = {"predictor": model.name, "output": str(output), "box_labels": counts,
               "macs": count_macs(model).macs, "train_seconds": round(result.train_seconds, 1),
               "epochs": result.epochs_run, "resumed_from_epoch": result.resumed_from_epoch,
               "stop_reason": result.stop_reason, "best_epoch": result.best_epoch,
               "val": result.val}
    _print_json(summary)
    return EXIT_OK


def cmd_predictor_refine(args: argparse.Namespace) -> int:
    import dataclasses

    from ._data_flags import dataset_from_args
    from ..crop._boxnet import get_predictor_spec
    from ..crop._predictor_files import load_predictor
    from ..crop._predictor_inference import predictor_macs
    from ..crop._refine import DEFAULT_REFINER, RefinerTrainConfig, train_refiner
    from ..crop._refined_predictor import DEFAULT_REFINE_WINDOW, RefinedPredictor

    output = _check_output(args.output)
    if Path(args.predictor).resolve() == output.resolve():
        raise TfedgeError("--output is the --predictor file: write the refiner to another file "
                          "(its sidecar names the predictor, which must stay)")
    predictor = load_predictor(check_input_file(args.predictor, "--predictor"))
    if isinstance(predictor, RefinedPredictor):
        raise TfedgeError(f"{args.predictor} is a refiner already: pass the predictor it refines")
    spec = get_predictor_spec(args.refiner or DEFAULT_REFINER)
    window = dataclasses.replace(DEFAULT_REFINE_WINDOW, **{
        k: v for k, v in (("margin", args.margin), ("min_size", args.min_size)) if v is not None})
    base = RefinerTrainConfig()
    config = RefinerTrainConfig(
        window=window, passes=args.passes, predicted_copies=args.predicted_copies,
        jittered_copies=args.jittered_copies,
        train=dataclasses.replace(base.train, **args.epochs, batch_size=args.batch_size,
                                  learning_rate=args.learning_rate, seed=args.seed,
                                  steps_per_epoch=args.steps_per_epoch))
    dataset = dataset_from_args(args)
    pair, result = train_refiner(spec, dataset.train, predictor=predictor, val=dataset.val,
                                 config=config, output=output, predictor_path=args.predictor,
                                 metadata={"dataset": dataset.name})
    _print_json({"refiner": pair.refiner.name, "predictor": args.predictor,
                 "output": str(output), "passes": pair.passes, "window": window.to_dict(),
                 "macs": predictor_macs(pair), "train_seconds": round(result.train_seconds, 1),
                 "windows": result.windows, "val": result.val})
    return EXIT_OK


def _without_boxes(split):
    """The split as if it had no boxes (to train on Grad-CAM boxes alone)."""
    import dataclasses

    return dataclasses.replace(split, boxes=None)


def cmd_crop_train(args: argparse.Namespace) -> int:
    from .._macs import count_macs
    from .._train import TrainConfig
    from ._data_flags import dataset_from_args
    from ..crop._evaluate import evaluate_crop_pipeline
    from ..crop._classifier_crops import CropTrainConfig, train_crop_classifier
    from ..crop._crop_datasets import JitterConfig
    from ..crop._predictor_files import load_predictor

    output = _check_output(args.output)
    jitter = None if args.no_jitter else JitterConfig(shift=args.jitter_shift,
                                                      scale=args.jitter_scale)
    crop_config = CropTrainConfig(resolution=args.resolution, crop=_crop_config(args),
                                  jitter=jitter, copies=args.copies,
                                  predicted_copies=args.predicted_copies if args.predictor else 0)
    config = TrainConfig(**args.epochs, batch_size=args.batch_size, seed=args.seed,
                         **optimizer_fields(args.model, learning_rate=args.learning_rate))
    predictor = (load_predictor(check_input_file(args.predictor, "--predictor"))
                 if args.predictor else None)
    dataset = dataset_from_args(args)
    model, result = train_crop_classifier(
        args.model, dataset.train, crop_config=crop_config, config=config, predictor=predictor,
        val=dataset.val if config.patience is not None else None,
        output=output, metadata={"dataset": dataset.name,
                                 "predictor": args.predictor})
    summary = {"model": model.name, "output": str(output), "macs": count_macs(model).macs,
               "train_seconds": round(result.train_seconds, 1), "epochs": result.epochs_run,
               "stop_reason": result.stop_reason, "best_epoch": result.best_epoch}
    if predictor is not None:
        evaluation, _ = evaluate_crop_pipeline(predictor, model, dataset.val,
                                               crop=crop_config.crop)
        summary["val"] = evaluation.to_dict()
    _print_json(summary)
    return EXIT_OK


def cmd_crop_evaluate(args: argparse.Namespace) -> int:
    from .._train import load_classifier, read_sidecar, with_model_classes
    from ._data_flags import dataset_from_args
    from ..crop._evaluate import evaluate_crop_pipeline, save_box_preview
    from ..crop._classifier_crops import trained_crop_config
    from ..crop._predictor_files import load_predictor

    if args.preview:  # before the evaluation, not after it
        check_output_file(args.preview, "--preview")
    predictor = load_predictor(check_input_file(args.predictor, "--predictor"))
    classifier = load_classifier(check_input_file(args.model, "--model"))
    # Crop as the classifier was trained to see (its sidecar), unless a flag says otherwise.
    crop = _crop_config(args, trained_crop_config([args.model]))
    dataset = dataset_from_args(args)
    split = with_model_classes(dataset.split(args.split),
                               read_sidecar(args.model).get("class_names"))
    result, boxes = evaluate_crop_pipeline(predictor, classifier, split, crop=crop,
                                           batch_size=args.batch_size)
    summary = {"predictor": args.predictor, "model": args.model, "split": args.split,
               **result.to_dict()}
    if args.preview:
        save_box_preview(split, boxes, args.preview, count=args.preview_count,
                         order=args.preview_order)
        summary["preview"] = str(args.preview)
    print(f"{dataset.name}/{args.split}: top-1 {result.top1_predicted:.4f} on predicted crops"
          + ("" if result.top1_oracle is None else f", {result.top1_oracle:.4f} on true crops")
          + f", {result.top1_full:.4f} on full images; "
          + ("" if result.boxes is None else f"mean IoU {result.boxes['miou']:.4f}; ")
          + f"{result.pipeline_macs / 1e6:.2f} MMACs")
    _print_json(summary)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _add_boxnet_training_flags(parser: argparse.ArgumentParser) -> None:
    """Epochs, batch, learning rate, steps and seed of a boxnet (predictor or refiner)."""
    from .._train import parse_epochs
    from ..crop._predictor_training import PredictorTrainConfig

    default = PredictorTrainConfig()
    parser.add_argument("--epochs", type=parse_epochs, default=str(default.epochs),
                        help=epochs_help())
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=default.batch_size)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float,
                        default=default.learning_rate)
    parser.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int,
                        default=default.steps_per_epoch)
    parser.add_argument("--seed", type=int, default=default.seed)


def register(subparsers: Any) -> None:
    """Register ``predictor {list,train,refine}`` and ``crop {train,evaluate}`` subcommands."""
    from ._data_flags import add_data_flags
    from .._train import TrainConfig, parse_epochs
    from ..crop._boxnet import DEFAULT_PREDICTOR
    from ..crop._classifier_crops import CropTrainConfig
    from ..crop._crop_datasets import JitterConfig
    from ..crop._gradcam import DEFAULT_CAM_THRESHOLD
    from ..crop._refine import DEFAULT_REFINER, RefinerTrainConfig
    from ..crop._refined_predictor import DEFAULT_REFINE_WINDOW

    refiner, crops, jitter, train = (RefinerTrainConfig(), CropTrainConfig(), JitterConfig(),
                                     TrainConfig())

    predictor = subparsers.add_parser(
        "predictor", help="the foreground predictor of dynamic cropping (list, train, refine)",
        description="A tiny CNN that sees a low-resolution image and predicts one box.")
    pred_sub = predictor.add_subparsers(title="predictor commands", metavar="COMMAND")

    p = pred_sub.add_parser("list", help="list the registered predictor variants")
    p.add_argument("--macs", action="store_true", help="also count each variant's MACs")
    p.set_defaults(func=cmd_predictor_list)

    p = pred_sub.add_parser(
        "train", help="train a foreground predictor on boxes (or Grad-CAM pseudo-boxes)",
        description="Train on the dataset's boxes; images without a box get a pseudo-box from "
                    "the --teacher's Grad-CAM. The last line is JSON with the validation IoU.")
    p.add_argument("--output", required=True, type=str, help="where to write the .keras predictor")
    p.add_argument("--predictor", default=DEFAULT_PREDICTOR, type=str,
                   help=f"variant name (default {DEFAULT_PREDICTOR}; 'tfedge predictor list')")
    p.add_argument("--resolution", type=int, default=None,
                   help="predictor input side (multiple of 16; default: the variant's)")
    p.add_argument("--teacher", type=str, default=None,
                   help="a .keras classifier whose Grad-CAM labels images without boxes")
    p.add_argument("--pseudo-boxes", dest="pseudo_boxes", action="store_true",
                   help="ignore the dataset's boxes and train on the teacher's Grad-CAM boxes")
    p.add_argument("--cam-threshold", dest="cam_threshold", type=float,
                   default=DEFAULT_CAM_THRESHOLD,
                   help="Grad-CAM strong-region threshold, a fraction of the map's peak")
    _add_boxnet_training_flags(p)
    add_data_flags(p)
    p.set_defaults(func=cmd_predictor_train)

    p = pred_sub.add_parser(
        "refine", help="train a refiner: a second, closer look at a predictor's box",
        description="Train a small boxnet on windows around --predictor's boxes (and jittered "
                    "true boxes) to find the object's box inside them. The refiner's file "
                    "names its predictor and works wherever a predictor file does (crop "
                    "train / evaluate). The last line is JSON with the validation IoU with "
                    "and without it.")
    p.add_argument("--predictor", required=True, type=str, help="the .keras predictor to refine")
    p.add_argument("--output", required=True, type=str, help="where to write the .keras refiner")
    p.add_argument("--refiner", default=None, type=str,
                   help=f"variant name (default {DEFAULT_REFINER}; 'tfedge predictor list')")
    p.add_argument("--passes", type=int, default=refiner.passes,
                   help="looks per image at inference")
    p.add_argument("--margin", type=float, default=None,
                   help=f"the window's side is the box's longer side times 1 + MARGIN "
                        f"(default {DEFAULT_REFINE_WINDOW.margin:g})")
    p.add_argument("--min-size", dest="min_size", type=float, default=None,
                   help=f"smallest window side, a fraction of the short side "
                        f"(default {DEFAULT_REFINE_WINDOW.min_size:g})")
    p.add_argument("--predicted-copies", dest="predicted_copies", type=int,
                   default=refiner.predicted_copies,
                   help="training windows per image around the predictor's boxes")
    p.add_argument("--jittered-copies", dest="jittered_copies", type=int,
                   default=refiner.jittered_copies,
                   help="training windows per image around jittered true boxes")
    _add_boxnet_training_flags(p)
    add_data_flags(p)
    p.set_defaults(func=cmd_predictor_refine)

    crop = subparsers.add_parser(
        "crop", help="the crop pipeline: train a crop-robust classifier, evaluate",
        description="Classifiers that see only the predicted crop.")
    crop_sub = crop.add_subparsers(title="crop commands", metavar="COMMAND")

    p = crop_sub.add_parser(
        "train", help="train a classifier on jittered / predicted crops",
        description="Train on crops that look like the predictor's (jittered true boxes and "
                    "the predictor's own boxes), at --resolution.")
    p.add_argument("--model", required=True, type=str,
                   help="registry name (e.g. resnet10_050) or a .keras file to fine-tune")
    p.add_argument("--output", required=True, type=str, help="where to write the .keras model")
    p.add_argument("--predictor", type=str, default=None,
                   help="a .keras predictor: adds its crops to training and scores val with it")
    p.add_argument("--resolution", type=int, default=crops.resolution,
                   help=f"crop side in pixels (default {crops.resolution})")
    p.add_argument("--copies", type=int, default=crops.copies,
                   help="crops per training image in the pool")
    p.add_argument("--predicted-copies", dest="predicted_copies", type=int,
                   default=crops.predicted_copies,
                   help="of those, crops at the predictor's boxes (with --predictor)")
    p.add_argument("--jitter-shift", dest="jitter_shift", type=float, default=jitter.shift)
    p.add_argument("--jitter-scale", dest="jitter_scale", type=float, default=jitter.scale)
    p.add_argument("--no-jitter", dest="no_jitter", action="store_true",
                   help="crop at the exact true boxes")
    p.add_argument("--epochs", type=parse_epochs, default=str(train.epochs), help=epochs_help())
    p.add_argument("--batch-size", dest="batch_size", type=int, default=train.batch_size)
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=None,
                   help=f"default: {train.learning_rate:g}, or the family recipe's for a "
                        "registry model trained from scratch (tfedge.FAMILY_RECIPES)")
    p.add_argument("--seed", type=int, default=train.seed)
    _add_crop_flags(p, "the library default")
    add_data_flags(p)
    p.set_defaults(func=cmd_crop_train)

    p = crop_sub.add_parser(
        "evaluate", help="score predictor + classifier: IoU, top-1 (predicted/true/full), MACs",
        description="Mean IoU and IoU percentiles of the predicted boxes; top-1 on predicted "
                    "crops, on ground-truth crops and on full images at the classifier's "
                    "resolution; predictor + classifier MACs.")
    p.add_argument("--predictor", required=True, type=str,
                   help="a .keras predictor (or refiner: 'tfedge predictor refine')")
    p.add_argument("--model", required=True, type=str, help="a .keras classifier of crops")
    p.add_argument("--split", type=str, default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128)
    p.add_argument("--preview", type=str, default=None,
                   help="write a PNG grid of images with true (green) and predicted (red) boxes")
    p.add_argument("--preview-count", dest="preview_count", type=int, default=32)
    p.add_argument("--preview-order", dest="preview_order", choices=["first", "worst"],
                   default="first", help="show the first images or the worst-IoU ones")
    _add_crop_flags(p, "as --model was trained (its .keras.json), else the library default")
    add_data_flags(p)
    p.set_defaults(func=cmd_crop_evaluate)
