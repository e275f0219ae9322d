"""The classifier commands: ``models``, ``macs``, ``data``, ``train`` and ``evaluate``.

Each is a thin layer over a library function; :func:`register` adds them to
``tfedge``'s sub-parsers. Flag defaults come from the library's config
dataclasses (:class:`tfedge.TrainConfig`), not repeated literals.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from .._errors import TfedgeError
from ._data_flags import dataset_from_args
from ._shell import (EXIT_FAILURE, EXIT_OK, check_input_file, check_output_file,
                     optimizer_fields)

log = logging.getLogger("tfedge")

__all__ = ["register"]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, sort_keys=True))


# --------------------------------------------------------------------------- commands


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import get_spec, list_models

    names = list_models()
    for name in names:
        print(f"{name:20s} {get_spec(name).name}")
    _print_json({"models": names})
    return EXIT_OK


def cmd_macs(args: argparse.Namespace) -> int:
    from .._macs import count_macs, macs_of

    target = args.model
    if target.endswith(".keras"):
        check_input_file(target, "model")
        for flag, value in (("--resolution", args.resolution),
                            ("--num-classes", args.num_classes)):
            if value is not None:
                raise TfedgeError(f"{flag} applies to registry names only: a saved model has "
                                  "a fixed input size and class count")
        from .._train import load_classifier

        report = count_macs(load_classifier(target))
        name = target
    else:
        from ..models import get_spec

        # Validate the name and knobs before TensorFlow loads (seconds, and noisy).
        spec = get_spec(target, resolution=args.resolution, num_classes=args.num_classes)
        report = macs_of(spec)
        name = target
    if args.per_layer:
        for layer in report.per_layer:
            if layer.macs or layer.params:
                print(f"{layer.name:40s} {layer.type:22s} {layer.macs:>14,d} {layer.params:>11,d}")
    print(f"{name}: {report.macs / 1e6:,.1f} MMACs ({report.macs / 1e9:.3f} GMACs), "
          f"{report.params / 1e6:.2f} M parameters")
    if report.uncounted:
        log.warning("%s: the MAC count leaves out layers it cannot count: %s", name,
                    ", ".join(report.uncounted))
    _print_json({"model": name, "macs": report.macs, "params": report.params,
                 "trainable_params": report.trainable_params,
                 "uncounted_layers": list(report.uncounted)})
    return EXIT_OK


def cmd_data(args: argparse.Namespace) -> int:
    if args.preview:  # before the data is built (half a minute for the default benchmark)
        check_output_file(args.preview, "--preview")
    dataset = dataset_from_args(args)
    summary = {"name": dataset.name, "classes": list(dataset.class_names),
               "train": len(dataset.train), "val": len(dataset.val),
               "test": len(dataset.test) if dataset.test is not None else 0,
               "boxes": dataset.has_boxes, **{k: v for k, v in dataset.info.items() if k == "path"}}
    if args.preview:
        from ..data import save_preview

        save_preview(dataset.train, args.preview, count=args.preview_count)
        summary["preview"] = str(args.preview)
    for key in ("train", "val", "test"):
        print(f"{key:5s}: {summary[key]:>6d} images")
    # Entries the loader left out (symlink loops, dangling symlinks, FIFOs) are counted, and
    # fail --verify-images as undecodable files do: the user named them as images.
    skipped = list(dataset.skipped)
    if skipped:
        print(f"skipped: {len(skipped):>4d} image-named entries that are not readable files")
    summary["skipped"] = [{"path": path, "reason": reason} for path, reason in skipped]
    unreadable = _verify_images(dataset, len(skipped)) if args.verify_images else []
    if args.verify_images:
        summary["unreadable"] = [{"path": path, "reason": reason} for path, reason in unreadable]
    _print_json(summary)
    return EXIT_FAILURE if args.verify_images and (unreadable or skipped) else EXIT_OK


def _verify_images(dataset, skipped: int = 0) -> list[tuple[str, str]]:
    """Decode every image as training will; log each one that fails, then both counts."""
    from ..data._tfdata import unreadable_images

    bad = []
    for key in ("train", "val", "test"):
        split = getattr(dataset, key)
        if split is None or len(split) == 0:
            continue
        found = unreadable_images(split, progress=lambda done, total, key=key: log.info(
            "verifying %s: %d/%d images decoded", key, done, total))
        for path, reason in found:
            log.error("unreadable: %s", reason)
        bad += found
    log.info("%d unreadable image(s), %d skipped entr%s (not readable files)%s", len(bad), skipped,
             "y" if skipped == 1 else "ies", ": replace or delete them" if bad or skipped else "")
    return bad


def _train_config_from_args(args: argparse.Namespace):
    from .._train import TrainConfig
    from ..data import AugmentConfig

    optimizer = optimizer_fields(args.model, optimizer=args.optimizer,
                                 learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                                 opt_out="--optimizer adamw")
    return TrainConfig(**args.epochs, batch_size=args.batch_size, **optimizer,
                       label_smoothing=args.label_smoothing, seed=args.seed,
                       augment=AugmentConfig() if args.augment else None,
                       distill_alpha=args.distill_alpha,
                       distill_temperature=args.distill_temperature, strategy=args.strategy,
                       steps_per_epoch=args.steps_per_epoch)


def cmd_train(args: argparse.Namespace) -> int:
    from .._macs import count_macs
    from .._train import evaluate_classifier, train_classifier

    config = _train_config_from_args(args)  # validate flags before loading anything big
    output = check_output_file(args.output, "--output", suffix=".keras")
    for flag, value in (("--model", args.model), ("--teacher", args.teacher)):
        if value is not None and value.endswith(".keras"):
            check_input_file(value, flag)
    dataset = dataset_from_args(args)
    model, result = train_classifier(
        args.model, dataset.train, val=dataset.val, config=config, teacher=args.teacher,
        output=output, resolution=args.resolution, new_head=args.new_head,
        metadata={"dataset": dataset.name, "dataset_info": dataset.info})
    report = count_macs(model)
    summary = {"model": model.name, "output": str(output), "epochs": result.epochs_run,
               "stop_reason": result.stop_reason, "best_epoch": result.best_epoch,
               "resumed_from_epoch": result.resumed_from_epoch,
               "train_seconds": round(result.train_seconds, 1), "macs": report.macs,
               "params": report.params,
               "val_top1": result.val.top1 if result.val else None,
               "skipped_files": len(dataset.skipped)}
    if args.evaluate_test and dataset.test is not None:
        summary["test_top1"] = evaluate_classifier(model, dataset.test).top1
    _print_json(summary)
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .._macs import count_macs
    from .._train import evaluate_classifier, load_classifier, read_sidecar, with_model_classes

    model = load_classifier(check_input_file(args.model, "--model"))
    dataset = dataset_from_args(args)
    split = with_model_classes(dataset.split(args.split),
                               read_sidecar(args.model).get("class_names"))
    result = evaluate_classifier(model, split, batch_size=args.batch_size)
    report = count_macs(model)
    print(f"{args.model} on {dataset.name}/{args.split}: top-1 {result.top1:.4f}, "
          f"top-5 {result.top5:.4f} ({result.count} images), {report.macs / 1e6:.1f} MMACs")
    _print_json({"model": args.model, "split": args.split, **result.to_dict(),
                 "macs": report.macs, "params": report.params})
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def register(subparsers: Any) -> None:
    """Add ``models``, ``macs``, ``data``, ``train`` and ``evaluate`` to ``tfedge``'s sub-parsers."""
    from .._train import FAMILY_RECIPES, OPTIMIZERS, STRATEGIES, TrainConfig, parse_epochs
    from ._data_flags import add_data_flags
    from ._shell import epochs_help

    default = TrainConfig()
    p = subparsers.add_parser("models", help="list the registered model variants")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("macs", help="count the MACs and parameters of a model",
                       description="Count multiply-accumulates (convolutions and dense layers; "
                                   "BN, activations, pooling and additions are not MACs) and "
                                   "parameters. The last line is JSON with 'macs' and 'params'.")
    p.add_argument("model", type=str, help="a registry name (see 'tfedge models') or a .keras file")
    p.add_argument("--resolution", type=int, default=None,
                   help="input side in pixels (registry names only; default: the variant's)")
    p.add_argument("--num-classes", dest="num_classes", type=int, default=None,
                   help="classifier outputs (registry names only; default 1000)")
    p.add_argument("--per-layer", dest="per_layer", action="store_true",
                   help="print every layer's MACs and parameters")
    p.set_defaults(func=cmd_macs)

    p = subparsers.add_parser("data", help="build (and cache) a dataset and print its summary",
                       description="Generate the built-in benchmark (cached by its parameters) "
                                   "or index a folder dataset, and print its summary.")
    add_data_flags(p)
    p.add_argument("--preview", type=str, default=None,
                   help="write a PNG grid of training images with their boxes")
    p.add_argument("--preview-count", dest="preview_count", type=int, default=32)
    p.add_argument("--verify-images", dest="verify_images", action="store_true",
                   help="decode every image file as training will and list the ones that fail "
                        "(exit status 1 if any): run it once before a long training run")
    p.set_defaults(func=cmd_data)

    p = subparsers.add_parser("train", help="train a classifier (optionally distilled from a teacher)",
                       description="Train a registry model (or fine-tune a .keras file) on a "
                                   "dataset. A killed run resumes from its last epoch when "
                                   "started again with the same flags.")
    p.add_argument("--model", required=True, type=str,
                   help="registry name (e.g. resnet18_050) or a .keras file to fine-tune")
    p.add_argument("--output", required=True, type=str, help="where to write the .keras model")
    p.add_argument("--resolution", type=int, default=None,
                   help="input side in pixels (default: the dataset's image size for the "
                        "benchmark, else the variant's)")
    p.add_argument("--new-head", dest="new_head", action="store_true",
                   help="replace the .keras model's final Dense layer by a new one for this "
                        "data's classes (transfer learning, e.g. from 'tfedge import')")
    p.add_argument("--teacher", type=str, default=None, help="a .keras classifier to distil from")
    p.add_argument("--epochs", type=parse_epochs, default=str(default.epochs), help=epochs_help())
    p.add_argument("--batch-size", dest="batch_size", type=int, default=default.batch_size)
    # None: the default, or the family's recipe for a registry model trained from scratch.
    mobilenet = FAMILY_RECIPES["mobilenetv2"]
    p.add_argument("--optimizer", type=str, default=None, choices=list(OPTIMIZERS),
                   help=f"default: {default.optimizer}; {mobilenet['optimizer']} for MobileNetV2 "
                        "from scratch (tfedge.FAMILY_RECIPES)")
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=None,
                   help=f"default: {default.learning_rate:g} ({mobilenet['learning_rate']:g} "
                        "for MobileNetV2 from scratch)")
    p.add_argument("--weight-decay", dest="weight_decay", type=float, default=None,
                   help=f"default: {default.weight_decay:g} ({mobilenet['weight_decay']:g} "
                        "for MobileNetV2 from scratch)")
    p.add_argument("--label-smoothing", dest="label_smoothing", type=float,
                   default=default.label_smoothing)
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train on the plain resized images")
    p.add_argument("--distill-alpha", dest="distill_alpha", type=float,
                   default=default.distill_alpha,
                   help="weight of the distillation loss (with --teacher)")
    p.add_argument("--distill-temperature", dest="distill_temperature", type=float,
                   default=default.distill_temperature)
    p.add_argument("--strategy", type=str, default=default.strategy, choices=list(STRATEGIES),
                   help="tf.distribute strategy; multi-worker reads the cluster from TF_CONFIG")
    p.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int, default=None)
    p.add_argument("--seed", type=int, default=default.seed, help="seed of the data order and augmentation")
    p.add_argument("--evaluate-test", dest="evaluate_test", action="store_true",
                   help="also report top-1 on the test split")
    add_data_flags(p)
    p.set_defaults(func=_train_with_default_resolution)

    p = subparsers.add_parser("evaluate", help="evaluate a classifier on a dataset split")
    p.add_argument("--model", required=True, type=str, help="a .keras classifier")
    p.add_argument("--split", type=str, default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128)
    add_data_flags(p)
    p.set_defaults(func=cmd_evaluate)


def _train_with_default_resolution(args: argparse.Namespace) -> int:
    from ..models._specs import is_spec_name

    # A registry name trains at the benchmark's image size; an encoded name (``..._r64_c10``)
    # and a saved model carry their own resolution.
    if (args.resolution is None and args.data == "benchmark"
            and not args.model.endswith(".keras") and not is_spec_name(args.model)):
        args.resolution = args.image_size
    return cmd_train(args)
