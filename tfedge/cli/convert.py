"""tfedge-convert: turn Keras classifiers into int8 TFLite deployment bundles, and check bundles.

Usage:
  tfedge-convert classifier --model M.keras --output BUNDLE_DIR [--zip]
                 [--data benchmark|PATH ...] [--calibration-size 500] [--check-size 2000]
                 [--tolerance 1.0] [--io-dtype int8|uint8]
      Convert one classifier to a full-integer int8 .tflite model, calibrated on
      training images and checked against the float model on validation images,
      and write a one-stage bundle (manifest.json + stage0.tflite + labels.txt;
      with --zip also BUNDLE_DIR.zip). Fails (exit 1, nothing written) when int8
      top-1 is more than --tolerance points below float top-1.
  tfedge-convert cascade --cascade cascade.json --output BUNDLE_DIR [--zip]
                 [--calibration-size 500] [--check-size 2000] [--float-thresholds]
                 [--check-split val|test] [--tolerance 1.0] [--io-dtype int8|uint8]
      Convert a calibrated cascade (tfedge cascade build + calibrate): the
      foreground predictor (if any), its refiner (if the cascade has one) and
      every stage to int8, each calibrated on what it sees deployed (whole
      images / predicted crops / refiner windows), solve the exit thresholds
      again on the int8 scores of the split they were calibrated on (unless
      --float-thresholds), and write one bundle. The data is the one
      cascade.json records (data flags given must name the same). Fails
      (exit 1, nothing written) when the int8 cascade's top-1 on held-out
      images is more than --tolerance points below the float cascade's.
  Both take --qat [--qat-images 2000] [--qat-epochs 1] [--qat-learning-rate 1e-4]
  [--qat-fallback]: quantisation-aware training (tfedge.qat, the qat extra) of each
  classifier before conversion; a model QAT cannot train (the box predictor)
  stops the conversion unless --qat-fallback quantises it post-training.
  tfedge-convert inspect BUNDLE
      Print what a bundle (folder or .zip) holds: predictor, refiner,
      stages, sizes, MACs, accuracies, tensor specs.
  tfedge-convert verify BUNDLE
      Check a bundle's integrity (every file's size and SHA-256), load every
      model with a LiteRT interpreter, compare its tensors with the manifest
      and run it once on zeros. Exit 0 when all is well.

Every command prints its figures on stdout with one JSON object as the last
line; progress goes to stderr. Bad input ends with a one-line error naming the
fix (exit status 2). The bundle format is documented in docs/bundle.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from tfedge.cli._shell import EXIT_FAILURE, EXIT_OK, add_common_flags, run_cli
from tfedge.runtime.bundle import check_bundle_destination
from tfedge.runtime.errors import TfedgeError
from tfedge.cli._data_flags import add_data_flags, dataset_from_args
from tfedge.qat import QatConfig

log = logging.getLogger("tfedge.convert")

__all__ = ["main", "build_parser"]

PROG = "tfedge-convert"
QAT_DEFAULTS = QatConfig()
ZIP_SUFFIX = ".zip"
_MIB = 2 ** 20


def _print_json(obj: Any) -> None:
    # Strict JSON: NaN/Infinity are not JSON (the bundle reader refuses them too).
    print(json.dumps(obj, sort_keys=True, allow_nan=False))


def _spec_text(spec) -> str:
    quant = (f" scale {spec.scale:.6g} zero point {spec.zero_point}" if spec.scale else " float")
    return f"{spec.dtype} {list(spec.shape)}{quant}"


def _size_text(count: int) -> str:
    return f"{count / _MIB:.2f} MiB" if count >= _MIB else f"{count / 1024:.1f} KiB"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _bundle_output(args: argparse.Namespace, example: str) -> tuple[Path, Optional[Path]]:
    """The bundle folder ``--output`` names, and the zip beside it when ``--zip`` asks."""
    output = Path(args.output)
    if output.suffix == ZIP_SUFFIX:
        raise TfedgeError(f"--output {args.output!r} names a zip: give the bundle folder "
                          f"(e.g. {example}) and add --zip for BUNDLE_DIR.zip too")
    # Checked before any conversion work, and again when the bundle is written.
    check_bundle_destination(output)
    return output, (Path(str(output) + ZIP_SUFFIX) if args.zip else None)


# --------------------------------------------------------------------------- classifier


def cmd_classifier(args: argparse.Namespace) -> int:
    from tfedge._convert import ConversionCheckError, convert_classifier_bundle

    output, zip_path = _bundle_output(args, "bundles/mymodel")
    qat = _qat_config(args)
    if not args.model.endswith(".keras"):
        raise TfedgeError(f"--model must be a .keras file, got {args.model!r}: train one with "
                          "'tfedge train'")
    if not Path(args.model).is_file():
        raise TfedgeError(f"model file {args.model!r} does not exist: train one with "
                          "'tfedge train' or pass the path of a .keras file")
    if args.labels_from_model:  # unlabelled photos: the float model's top-1 are the labels
        from tfedge.pretrained.pseudo_labels import model_labelled_dataset

        dataset = model_labelled_dataset(args.model, args.labels_from_model, seed=args.seed)
    else:
        dataset = dataset_from_args(args)
    check = dataset.split(args.check_split)
    try:
        path, metrics = convert_classifier_bundle(
            args.model, dataset.train, check, output, name=args.name, zip_path=zip_path,
            **_conversion_kwargs(args, dataset, qat))
    except ConversionCheckError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        m = exc.metrics
        _print_json({"bundle": None, "passed": False, "error": str(exc),
                     "stages": [{"float_top1": m.get("float_top1"),
                                 "int8_top1": m.get("int8_top1")}]})
        return EXIT_FAILURE
    print(f"{path}: stage {metrics['name']!r} {_size_text(metrics['bytes'])}, "
          f"{metrics['macs'] / 1e6:.1f} MMACs, {args.io_dtype} input/output, "
          f"{metrics['quantization']['method'].upper()}")
    print(f"  float top-1 {metrics['float_top1']:.4f}  int8 top-1 {metrics['int8_top1']:.4f}  "
          f"agreement {metrics['agreement']:.4f}  ({metrics['count']} {args.check_split} images, "
          f"{metrics['calibration_images']} calibration images)")
    if zip_path is not None:
        print(f"  zip: {zip_path}")
    _print_json({"bundle": str(path), "zip": str(zip_path) if zip_path else None, "passed": True,
                 "stages": [{"name": metrics["name"], "float_top1": metrics["float_top1"],
                             "int8_top1": metrics["int8_top1"], "bytes": metrics["bytes"],
                             "quantization": metrics["quantization"]["method"]}]})
    return EXIT_OK


# --------------------------------------------------------------------------- cascade


def _thresholds_text(thresholds) -> str:
    """``0.812, -``: each stage's threshold, ``-`` for the last stage's none."""
    return ", ".join("-" if t is None else f"{t:.6g}" for t in thresholds)


def cmd_cascade(args: argparse.Namespace) -> int:
    from tfedge._convert import ConversionCheckError
    from tfedge.cascade._cascade import load_cascade
    from tfedge.cascade._convert import convert_cascade_bundle

    output, zip_path = _bundle_output(args, "bundles/mycascade")
    qat = _qat_config(args)
    spec = load_cascade(args.cascade)
    if not spec.calibrated:
        raise TfedgeError(f"{args.cascade} has no thresholds yet: run 'tfedge cascade calibrate "
                          f"--cascade {args.cascade}' first")
    from tfedge.cascade._convert import threshold_split_of
    from tfedge.cli._data_flags import cascade_dataset

    dataset = cascade_dataset(args, spec, args.cascade)
    check = dataset.split(args.check_split)
    calibrated_on = (spec.calibration or {}).get("split")
    if calibrated_on == args.check_split:
        log.warning("the thresholds were calibrated on the %r split, which the conversion also "
                    "checks on: its figures are not held out (use --check-split test)",
                    calibrated_on)
    # The thresholds solved again on the int8 pipeline's scores of their own split, so the
    # bundle's operating point is the float one's (tfedge.cascade._int8).
    threshold_split = None if args.float_thresholds else threshold_split_of(spec, dataset)
    try:
        path, metrics = convert_cascade_bundle(
            spec, dataset.train, check, output, zip_path=zip_path, refiner=args.refiner,
            threshold_split=threshold_split, **_conversion_kwargs(args, dataset, qat))
    except ConversionCheckError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        m = exc.metrics
        _print_json({"bundle": None, "passed": False, "error": str(exc),
                     "top1": m.get("top1"), "float_top1": m.get("float_top1"),
                     "stages": [{"float_top1": s.get("float_top1"),
                                 "int8_top1": s.get("int8_top1")} for s in m.get("stages", [])]})
        return EXIT_FAILURE
    has_refiner = metrics.get("refiner") is not None
    print(f"{path}: {spec.num_stages} stage(s)"
          f"{' + predictor' if spec.predictor is not None else ''}"
          f"{' + refiner (manifest v2)' if has_refiner else ''}, {_size_text(metrics['bytes'])}, "
          f"{args.io_dtype} input/output")
    print(f"  float cascade top-1 {metrics['float_top1']:.4f} at "
          f"{metrics['float_mean_macs'] / 1e6:.2f} MMACs; int8 cascade top-1 "
          f"{metrics['top1']:.4f} at {metrics['mean_macs'] / 1e6:.2f} MMACs "
          f"({metrics['check_images']} {args.check_split} images, agreement "
          f"{metrics['agreement']:.4f})")
    print("  exits: " + ", ".join(f"{r:.3f}" for r in metrics["exit_rates"]))
    print("  thresholds: " + _thresholds_text(metrics["thresholds"])
          + (f" (solved again on the int8 scores of the {calibrated_on} split; float "
             f"{_thresholds_text(metrics['float_thresholds'])})"
             if metrics.get("threshold_source") == "int8" else " (the float ones)"))
    if has_refiner:
        r = metrics["refiner"]
        print(f"  refiner: int8 vs float box IoU {r['float_int8_mean_iou']:.4f}"
              + (f", box mean IoU {r['mean_iou']:.4f} (float {r['float_mean_iou']:.4f})"
                 if "mean_iou" in r else ""))
    if zip_path is not None:
        print(f"  zip: {zip_path}")
    _print_json({"bundle": str(path), "zip": str(zip_path) if zip_path else None, "passed": True,
                 "top1": metrics["top1"], "float_top1": metrics["float_top1"],
                 "mean_macs": metrics["mean_macs"], "float_mean_macs": metrics["float_mean_macs"],
                 "exit_rates": metrics["exit_rates"], "agreement": metrics["agreement"],
                 "thresholds": metrics["thresholds"],
                 "float_thresholds": metrics["float_thresholds"],
                 "threshold_source": metrics.get("threshold_source"),
                 "refiner": has_refiner,
                 "stages": [{"name": st.name, "float_top1": m["float_top1"],
                             "int8_top1": m["int8_top1"],
                             "quantization": m["quantization"]["method"]}
                            for st, m in zip(spec.stages, metrics["stages"])]})
    return EXIT_OK


# --------------------------------------------------------------------------- inspect / verify


def _load(args: argparse.Namespace):
    from tfedge.runtime.bundle import load_bundle

    if not (math.isfinite(args.max_file_mb) and args.max_file_mb > 0):
        raise TfedgeError(f"--max-file-mb must be a number > 0, got {args.max_file_mb}")
    return load_bundle(args.bundle, max_file_bytes=int(args.max_file_mb * _MIB))


def _entry_summary(bundle, entry) -> dict[str, Any]:
    from tfedge.runtime.bundle import PredictorEntry, RefinerEntry

    out: dict[str, Any] = {"file": entry.file, "bytes": bundle.files[entry.file].bytes,
                           "resolution": entry.resolution, "macs": entry.macs,
                           "input": entry.input.to_json(), "metrics": dict(entry.metrics)}
    if isinstance(entry, RefinerEntry):
        out.update({"output": [o.to_json() for o in entry.outputs],
                    "box_format": entry.box_format, "window": dict(entry.window),
                    "passes": entry.passes})
    elif isinstance(entry, PredictorEntry):
        out.update({"output": [o.to_json() for o in entry.outputs],
                    "box_format": entry.box_format, "crop": dict(entry.crop)})
    else:
        out.update({"name": entry.name, "output": entry.output.to_json(),
                    "criterion": entry.criterion, "threshold": entry.threshold,
                    "accumulate_weight": entry.accumulate_weight})
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    with _load(args) as bundle:
        labels = ", ".join(bundle.labels[:8]) + (" ..." if len(bundle.labels) > 8 else "")
        pre = bundle.preprocessing
        print(f"{args.bundle}: tfedge-bundle v{bundle.version}, created {bundle.created_utc} by "
              f"tfedge {bundle.tfedge_version}")
        print(f"  labels ({len(bundle.labels)}): {labels}")
        print(f"  preprocessing: {pre['color']}, pixels {pre['pixel_range']}, {pre['resize']} "
              "resize")
        p = bundle.predictor
        if p is None:
            print("  predictor: none (whole image)")
        else:
            print(f"  predictor: {p.file} {_size_text(bundle.files[p.file].bytes)}, "
                  f"{p.resolution}x{p.resolution}, {p.macs / 1e6:.2f} MMACs, boxes "
                  f"{p.box_format}, crop {json.dumps(dict(p.crop), sort_keys=True)}")
            print(f"    input {_spec_text(p.input)}; output "
                  f"{'; '.join(_spec_text(o) for o in p.outputs)}")
        r = getattr(bundle, "refiner", None)
        if r is not None:
            print(f"  refiner: {r.file} {_size_text(bundle.files[r.file].bytes)}, "
                  f"{r.resolution}x{r.resolution}, {r.passes} pass(es) x {r.macs / 1e6:.2f} "
                  f"MMACs, boxes {r.box_format}, window "
                  f"{json.dumps(dict(r.window), sort_keys=True)}")
            print(f"    input {_spec_text(r.input)}; output "
                  f"{'; '.join(_spec_text(o) for o in r.outputs)}")
            figures = "  ".join(f"{k} {_fmt(v)}" for k, v in sorted(r.metrics.items())
                                if k in ("mean_iou", "float_mean_iou", "float_int8_mean_iou"))
            if figures:
                print(f"    {figures}")
        for i, s in enumerate(bundle.stages):
            rule = ("always exits" if s.threshold is None
                    else f"exits when {s.criterion} {'<=' if s.criterion == 'entropy' else '>='} "
                         f"{s.threshold:g}")
            acc = f", accumulates {s.accumulate_weight:g} x previous logits" \
                if s.accumulate_weight else ""
            print(f"  stage {i} {s.name!r}: {s.file} {_size_text(bundle.files[s.file].bytes)}, "
                  f"{s.resolution}x{s.resolution}, {s.macs / 1e6:.2f} MMACs, {rule}{acc}")
            print(f"    input {_spec_text(s.input)}; output {_spec_text(s.output)}")
            figures = "  ".join(f"{k} {_fmt(v)}" for k, v in sorted(s.metrics.items())
                                if k in ("float_top1", "int8_top1", "agreement", "count"))
            if figures:
                print(f"    {figures}")
        if bundle.metrics:
            print("  metrics: " + "  ".join(f"{k} {_fmt(v)}"
                                            for k, v in sorted(bundle.metrics.items())))
        print(f"  total model bytes: {_size_text(bundle.total_model_bytes())}")
        _print_json({
            "bundle": str(args.bundle), "version": bundle.version,
            "created_utc": bundle.created_utc, "tfedge_version": bundle.tfedge_version,
            "labels": list(bundle.labels), "preprocessing": dict(bundle.preprocessing),
            "predictor": _entry_summary(bundle, p) if p is not None else None,
            "refiner": _entry_summary(bundle, r) if r is not None else None,
            "locator_macs": bundle.locator_macs,
            "stages": [_entry_summary(bundle, s) for s in bundle.stages],
            "metrics": dict(bundle.metrics), "model_bytes": bundle.total_model_bytes()})
    return EXIT_OK


_VERIFY_RANDOM_INPUTS = 3
_VERIFY_SEED = 0


def _verify_probes(spec) -> list:
    """Inputs ``verify`` runs besides zeros: the dtype's extremes and seeded random values."""
    import numpy as np

    rng = np.random.default_rng(_VERIFY_SEED)
    if np.issubdtype(np.dtype(spec.dtype), np.integer):
        info = np.iinfo(spec.dtype)
        low, high = int(info.min), int(info.max)
        randoms = [rng.integers(low, high, size=spec.shape, endpoint=True).astype(spec.dtype)
                   for _ in range(_VERIFY_RANDOM_INPUTS)]
    else:
        low, high = 0.0, 255.0  # raw pixels, as bundles feed float models
        randoms = [rng.uniform(low, high, size=spec.shape).astype(spec.dtype)
                   for _ in range(_VERIFY_RANDOM_INPUTS)]
    extremes = [np.full(spec.shape, value, dtype=spec.dtype) for value in (low, high)]
    return extremes + randoms


def cmd_verify(args: argparse.Namespace) -> int:
    import numpy as np

    from tfedge.runtime.bundle import check_tensor_specs
    from tfedge.runtime.interpreter import TfliteModel, interpreter_backend

    if args.threads < 1:
        raise TfedgeError(f"--threads must be >= 1, got {args.threads}")
    with _load(args) as bundle:
        models = check_tensor_specs(bundle, lambda path: TfliteModel(path, args.threads))
        results = []
        for entry in bundle.models:
            model = models[entry.file]
            zeros = np.zeros(model.input_spec.shape, dtype=model.input_spec.dtype)
            start = time.perf_counter()
            raw = model.run_raw_all(zeros)
            seconds = time.perf_counter() - start
            # Zeros alone miss models that fail on some inputs (an index computed from the
            # input, out of range): also the extremes and a few seeded random inputs.
            for probe in _verify_probes(model.input_spec):
                for out in model.run_raw_all(probe):
                    if not np.all(np.isfinite(out)):
                        raise TfedgeError(f"{entry.file}: output holds NaN or infinity on a "
                                          f"valid input (values {float(np.min(probe)):g} to "
                                          f"{float(np.max(probe)):g}): rebuild the bundle with "
                                          "tfedge-convert")
            for out, spec in zip(raw, model.output_specs):
                if tuple(out.shape) != tuple(spec.shape):
                    raise TfedgeError(f"{entry.file}: output shape {list(out.shape)} differs from "
                                      f"its tensor spec {list(spec.shape)}: rebuild the bundle "
                                      "with tfedge-convert")
                if not np.all(np.isfinite(out)):
                    raise TfedgeError(f"{entry.file}: output holds NaN or infinity on a zero "
                                      "input: rebuild the bundle with tfedge-convert")
            print(f"{entry.file}: ok ({_size_text(bundle.files[entry.file].bytes)}, input "
                  f"{_spec_text(model.input_spec)}, ran in {seconds * 1e3:.1f} ms)")
            results.append({"file": entry.file, "ok": True, "seconds": round(seconds, 6)})
        print(f"{args.bundle}: ok ({len(bundle.files)} files verified, {len(results)} models run "
              f"with {interpreter_backend()})")
        _print_json({"bundle": str(args.bundle), "ok": True, "backend": interpreter_backend(),
                     "files": len(bundle.files), "models": results})
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _add_conversion_flags(p: argparse.ArgumentParser, tolerance_of: str) -> None:
    """Calibration, accuracy-check and data flags shared by 'classifier' and 'cascade'."""
    from tfedge._convert import (DEFAULT_BATCH_SIZE, DEFAULT_CALIBRATION_SIZE, DEFAULT_CHECK_SIZE,
                                 DEFAULT_TOLERANCE_POINTS, IO_DTYPES)

    p.add_argument("--calibration-size", dest="calibration_size", type=int,
                   default=DEFAULT_CALIBRATION_SIZE,
                   help=f"training images used to calibrate (default {DEFAULT_CALIBRATION_SIZE})")
    p.add_argument("--check-size", dest="check_size", type=int, default=DEFAULT_CHECK_SIZE,
                   help=f"held-out images for the accuracy check (default {DEFAULT_CHECK_SIZE})")
    p.add_argument("--check-split", dest="check_split", type=str, default="val",
                   choices=["val", "test"], help="the held-out split to check on (default val)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_POINTS,
                   help=f"largest allowed {tolerance_of}, in percentage points "
                        f"(default {DEFAULT_TOLERANCE_POINTS:g})")
    p.add_argument("--io-dtype", dest="io_dtype", type=str, default="int8", choices=IO_DTYPES,
                   help="input/output type: int8 (feed pixel - 128) or uint8 (feed raw pixels)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--seed", type=int, default=0, help="seed of the image draws")
    qat = p.add_argument_group("quantisation-aware training (needs the qat extra)")
    qat.add_argument("--qat", action="store_true",
                     help="fine-tune each classifier with fake quantisation before converting "
                          "(tensorflow-model-optimization, in a child process)")
    # Defaults None: QatConfig's own defaults apply, and a flag given without --qat is noticed.
    qat.add_argument("--qat-epochs", dest="qat_epochs", type=float, default=None,
                     help=f"fine-tuning passes over the QAT images (default {QAT_DEFAULTS.epochs:g})")
    qat.add_argument("--qat-images", dest="qat_images", type=int, default=None,
                     help=f"training images to fine-tune on (default {QAT_DEFAULTS.images})")
    qat.add_argument("--qat-learning-rate", dest="qat_learning_rate", type=float, default=None,
                     help=f"Adam learning rate of the fine-tune (default "
                          f"{QAT_DEFAULTS.learning_rate:g})")
    qat.add_argument("--qat-fallback", dest="qat_fallback", action="store_true", default=None,
                     help="quantise a model QAT cannot handle (e.g. the box predictor) "
                          "post-training instead of stopping")
    add_data_flags(p)


_QAT_FLAGS = {"epochs": "--qat-epochs", "images": "--qat-images",
              "learning_rate": "--qat-learning-rate", "fallback": "--qat-fallback"}


def _qat_config(args: argparse.Namespace):
    """The QatConfig the flags ask for (None without --qat); fails early when tfmot is missing."""
    given = {field: getattr(args, f"qat_{field}") for field in _QAT_FLAGS
             if getattr(args, f"qat_{field}") is not None}
    if not args.qat:
        if given:
            flag = _QAT_FLAGS[next(iter(given))]
            raise TfedgeError(f"{flag} only applies with --qat: add --qat or drop {flag}")
        return None
    from tfedge.qat import qat_missing_packages

    missing = qat_missing_packages()
    if missing:
        raise TfedgeError(missing)
    return dataclasses.replace(QAT_DEFAULTS, seed=args.seed, **given)


def _conversion_kwargs(args: argparse.Namespace, dataset: Any, qat: Any) -> dict[str, Any]:
    """The settings 'classifier' and 'cascade' pass to their converter alike."""
    return dict(extra_metrics={"dataset": dataset.name, "check_split": args.check_split},
                io_dtype=args.io_dtype, calibration_size=args.calibration_size,
                check_size=args.check_size, tolerance_points=args.tolerance,
                batch_size=args.batch_size, seed=args.seed, qat=qat)


def build_parser() -> argparse.ArgumentParser:
    from tfedge.runtime.bundle import DEFAULT_MAX_FILE_BYTES

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Run '{PROG} COMMAND --help' for a command's flags.")
    add_common_flags(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser(
        "classifier", help="convert a .keras classifier into a one-stage int8 bundle",
        description="Convert a classifier to a full-integer int8 .tflite model (calibrated on "
                    "training images, preprocessed as at evaluation), check its top-1 against "
                    "the float model on held-out images, and write a bundle folder.")
    p.add_argument("--model", required=True, type=str, help="a .keras classifier")
    p.add_argument("--output", required=True, type=str, help="the bundle folder to write")
    p.add_argument("--zip", action="store_true", help="also write OUTPUT.zip (same files)")
    p.add_argument("--name", type=str, default=None,
                   help="the stage's name in the manifest (default: the model's name)")
    p.add_argument("--labels-from-model", dest="labels_from_model", type=str, default=None,
                   metavar="PHOTO_DIR",
                   help="calibrate and check on this folder of unlabelled photos (plus 64 "
                        "random crops each way) labelled with the float model's own top-1; "
                        "'top-1' is then agreement with it (replaces --data)")
    _add_conversion_flags(p, "top-1 drop")
    p.set_defaults(func=cmd_classifier)

    p = sub.add_parser(
        "cascade", help="convert a calibrated cascade (predictor + stages) into one int8 bundle",
        description="Convert the predictor and every stage of a calibrated cascade.json to "
                    "full-integer int8 (each calibrated on what it sees deployed), check the int8 "
                    "cascade's top-1 against the float cascade on held-out images, and write one "
                    "bundle carrying the calibrated thresholds.")
    p.add_argument("--cascade", required=True, type=str,
                   help="a calibrated cascade.json ('tfedge cascade calibrate')")
    p.add_argument("--output", required=True, type=str, help="the bundle folder to write")
    p.add_argument("--zip", action="store_true", help="also write OUTPUT.zip (same files)")
    p.add_argument("--refiner", default=None, type=str,
                   help="a refiner of the cascade's predictor ('tfedge predictor refine'; "
                        "default: the cascade's own, if it was built with one): the bundle "
                        "(manifest version 2) then refines every box before cropping")
    p.add_argument("--float-thresholds", dest="float_thresholds", action="store_true",
                   help="keep the float cascade's thresholds instead of solving them again on "
                        "the int8 scores of the split they were calibrated on")
    _add_conversion_flags(p, "drop of the int8 cascade's top-1 below the float cascade's")
    p.set_defaults(func=cmd_cascade)
    from tfedge.cli._data_flags import unset_data_defaults

    unset_data_defaults(p)  # the data cascade.json records, unless flags are given

    default_mb = DEFAULT_MAX_FILE_BYTES / _MIB
    for name, func, text in (
            ("inspect", cmd_inspect, "print what a bundle holds"),
            ("verify", cmd_verify, "check a bundle's files and run each model once")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("bundle", type=str, help="a bundle folder or .zip")
        p.add_argument("--max-file-mb", dest="max_file_mb", type=float, default=default_mb,
                       help=f"largest file accepted, in MiB (default {default_mb:g})")
        if name == "verify":
            p.add_argument("--threads", type=int, default=1, help="interpreter threads")
        p.set_defaults(func=func)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
