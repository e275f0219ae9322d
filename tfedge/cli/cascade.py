"""``tfedge cascade build | calibrate | evaluate``: the cascade from the command line.

Usage:
  tfedge cascade build S0.keras S1.keras [--predictor P.keras] --output cascade.json
        [--criterion max_softmax|margin|entropy[,...]] [--accumulate-weight W]
        [--crop-margin 0.15] [--crop-min-size 0.2] [--crop-no-square] [--crop-scales ...]
  tfedge cascade calibrate --cascade cascade.json [--mode accuracy --target last|best|0.85
        [--target-offset POINTS] | --mode budget --macs-budget 0.5|25M] [--split val]
  tfedge cascade evaluate --cascade cascade.json [--split test] [--plot curve.png]

``build`` writes an uncalibrated ``cascade.json`` (stages cheapest first,
MACs counted, crop geometry from the first stage's training sidecar unless
given). ``calibrate`` runs every stage once on the validation split and
chooses the thresholds exactly (see :mod:`tfedge.cascade._calibrate`).
``evaluate`` reports accuracy, expected MACs (predictor included) and the
exit distribution on the test split, and draws the accuracy-versus-MACs
curve (thresholds chosen on validation, measured on test). ``tfedge-convert
cascade --cascade cascade.json --output BUNDLE`` makes the int8 bundle.

``cascade.json`` records the dataset its stages were trained on (``build``
takes it from the data flags, else from the stages' sidecars), so
``calibrate``, ``evaluate`` and ``tfedge-convert cascade`` need no data
flags; given data flags that name other data, they stop with one line naming
both (:func:`cascade_dataset`). ``--predictor`` may be a refiner file
(``tfedge predictor refine``): the stages then see crops at the refined boxes.
Every command prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

from ._data_flags import (_filled, cascade_dataset, dataset_from_args, given_data_flags,
                          source_from_data_flags, unset_data_defaults)
from ._shell import EXIT_OK, EXIT_USAGE, description_of, parse_macs
from .._errors import TfedgeError
from .._train import read_sidecar
from ..cascade._dataset import (check_models_trained_on, dataset_record,
                               dataset_record_from_models, describe_dataset_record)

__all__ = ["register", "cmd_build", "cmd_calibrate", "cmd_evaluate", "cascade_dataset"]

log = logging.getLogger("tfedge.cascade")

_MEGA = 1e6


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, sort_keys=True))


def _build_dataset(args: argparse.Namespace, models: list[str], predictor: Any
                   ) -> tuple[Optional[dict[str, Any]], Any]:
    """``build``'s dataset record and, when the data flags were given, the dataset itself.

    From the flags when given (the stages must have been trained on it); else from the
    stages' (and predictor's) sidecars (:func:`~tfedge.cascade.dataset_record_from_models`).
    """
    files = [*models, *([predictor] if predictor else [])]
    # Read every sidecar first: a broken one stops before any (slow) data generation.
    names = {read_sidecar(p).get("dataset") for p in files} - {None, ""}
    if given_data_flags(args):
        dataset = dataset_from_args(_filled(args))
        check_models_trained_on(files, dataset.name,
                                fix="pass the data flags of the dataset the stages were "
                                    "trained on (or none)")
        return dataset_record(dataset, source_from_data_flags(args)), dataset
    if len(names) > 1:
        log.warning("the models were trained on different datasets (%s): the cascade records "
                    "the first stage's", ", ".join(sorted(names)))
    return dataset_record_from_models(models, predictor), None


def _crop_from_args(args: argparse.Namespace):
    """The crop geometry with the --crop-* flags given; None when none is (build_cascade's default).

    Flags left out keep the geometry the stages were trained with, as build_cascade would.
    """
    from .crop import crop_with_overrides
    from ..crop._classifier_crops import trained_crop_config

    given = (args.crop_margin is not None or args.crop_min_size is not None
             or args.crop_no_square or args.crop_scales)
    if not given:
        return None
    return crop_with_overrides(trained_crop_config(args.models), margin=args.crop_margin,
                               square=False if args.crop_no_square else None,
                               min_size=args.crop_min_size, scales=args.crop_scales)


def _criteria(text: str, count: int) -> Any:
    from ..cascade._decision import check_criterion

    parts = [p.strip() for p in text.split(",") if p.strip()]
    for p in parts:
        check_criterion(p)
    if len(parts) == 1:
        return parts[0]
    if len(parts) != count:
        raise TfedgeError(f"--criterion lists {len(parts)} criteria for {count} stages: give one "
                          "for all, or one per stage separated by commas")
    return parts


def cmd_build(args: argparse.Namespace) -> int:
    from ..cascade._cascade import build_cascade, save_cascade

    output = Path(args.output)
    if output.suffix != ".json":
        raise TfedgeError(f"--output must end in .json, got {args.output!r}")
    for path in [*args.models, *([args.predictor] if args.predictor else [])]:
        if not Path(path).is_file():
            raise TfedgeError(f"model file {path!r} does not exist: train it first or check the "
                              "path")
    if args.accumulate_weight < 0:
        raise TfedgeError(f"--accumulate-weight must be >= 0, got {args.accumulate_weight}")
    crop = _crop_from_args(args)
    class_names = None
    record, dataset = _build_dataset(args, args.models, args.predictor)
    if not read_sidecar(args.models[0]).get("class_names"):
        if dataset is None:
            raise TfedgeError(f"{args.models[0]} has no class names in its sidecar: pass --data "
                              "(the dataset it was trained on) to take them from there")
        class_names = list(dataset.class_names)
    spec = build_cascade(args.models, predictor=args.predictor, crop=crop,
                         criteria=_criteria(args.criterion, len(args.models)),
                         accumulate_weight=args.accumulate_weight, names=args.name,
                         class_names=class_names, dataset=record)
    save_cascade(spec, output)
    for k, s in enumerate(spec.stages):
        print(f"stage {k} {s.name}: {s.resolution} px, {s.macs / _MEGA:.2f} MMACs, {s.criterion}"
              + (f", accumulates {s.accumulate_weight:g} x previous"
                 if s.accumulate_weight else ""))
    if spec.predictor is not None:
        print(f"predictor: {spec.predictor.resolution} px, {spec.predictor.macs / _MEGA:.2f} "
              f"MMACs, crop {json.dumps(spec.predictor.crop.to_dict(), sort_keys=True)}")
    if spec.refiner is not None:
        r = spec.refiner
        print(f"refiner: {r.resolution} px, {r.passes} pass(es) x {r.macs / _MEGA:.2f} MMACs, "
              f"window {json.dumps(r.window.to_dict(), sort_keys=True)}")
    if record is None:
        print("dataset: not recorded (the models' sidecars do not name one): pass the data "
              "flags to calibrate, evaluate and convert")
    else:
        print(f"dataset: {describe_dataset_record(record)}")
    print(f"wrote {output} (not calibrated yet: run 'tfedge cascade calibrate --cascade {output}')")
    _print_json({"cascade": str(output), "calibrated": False,
                 "stages": [{"name": s.name, "resolution": s.resolution, "macs": s.macs,
                             "criterion": s.criterion,
                             "accumulate_weight": s.accumulate_weight} for s in spec.stages],
                 "predictor_macs": spec.predictor_macs,
                 "refiner": spec.refiner.to_json() if spec.refiner is not None else None,
                 "dataset": record})
    return EXIT_OK


def _split(args: argparse.Namespace, spec: Any, name: str):
    dataset = cascade_dataset(args, spec, args.cascade)
    split = dataset.split(name)
    if split is None or len(split) == 0:
        raise TfedgeError(f"the dataset has no {name!r} split: choose another with --split")
    return dataset, split


def _macs_budget(text: str, spec) -> float:
    """``--macs-budget`` in MACs: a ratio (up to 1) of the last stage's MACs, as ``tfedge compress
    --macs-budget`` takes a ratio of the base's, or a count (``25M``)."""
    amount = parse_macs(text, "--macs-budget", "the last stage's MACs")
    if amount > 1:
        return amount
    last = spec.stages[-1]
    budget = amount * last.macs
    log.info("MAC budget: %g x the last stage's (%s) %.2f MMACs = %.2f MMACs per image, "
             "predictor included", amount, last.name, last.macs / _MEGA, budget / _MEGA)
    return budget


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..cascade._cascade import load_cascade, save_cascade
    from ..cascade._evaluate import calibrate_cascade, choose_exit_rule, compute_stage_logits

    spec = load_cascade(args.cascade)
    output = Path(args.output or args.cascade)
    if output.suffix != ".json":
        raise TfedgeError(f"--output must end in .json, got {str(output)!r}")
    if args.mode == "budget" and args.macs_budget is None:
        raise TfedgeError("--mode budget needs --macs-budget (expected MACs per image, predictor "
                          "included): a ratio of the last stage's MACs (e.g. 0.5) or a count "
                          "(e.g. 25M)")
    if args.mode == "accuracy" and args.macs_budget is not None:
        raise TfedgeError("--macs-budget applies to --mode budget: drop it, or add --mode budget")
    macs_budget = None if args.macs_budget is None else _macs_budget(args.macs_budget, spec)
    if args.split == "test":
        log.warning("calibrating on the test split: its figures are then no longer held out; "
                    "report them from another split")
    _, split = _split(args, spec, args.split)
    log.info("running %d stage(s) on %d %s images", spec.num_stages, len(split), args.split)
    val = compute_stage_logits(spec, split, batch_size=args.batch_size)
    target: Any = args.target
    if args.search_rules:
        spec, result, rows = choose_exit_rule(spec, val, mode=args.mode, target=target,
                                              target_offset_points=args.target_offset,
                                              macs_budget=macs_budget, split_name=args.split)
        for row in rows:
            print(f"  {row['criterion']:<11s} weight {row['accumulate_weight']:<4g} {args.split} "
                  f"top-1 {row['val_top1']:.4f} at {row['val_expected_macs'] / _MEGA:.2f} MMACs"
                  f"{'' if row['feasible'] else ' (constraint not met)'}")
        print(f"chosen: {spec.stages[-1].criterion}, accumulate weight "
              f"{spec.stages[-1].accumulate_weight:g}")
    else:
        spec, result = calibrate_cascade(spec, val, mode=args.mode, target=target,
                                         target_offset_points=args.target_offset,
                                         macs_budget=macs_budget, split_name=args.split)
    save_cascade(spec, output)
    print(f"{args.split}: top-1 {result.val_top1:.4f} at {result.val_expected_macs / _MEGA:.2f} "
          f"expected MMACs; exits {', '.join(f'{f:.3f}' for f in result.val_exit_fractions)} "
          f"({result.method}{'' if result.exact else ', local optimum'})")
    print(f"thresholds: {', '.join('-' if t is None else f'{t:.6g}' for t in result.thresholds)}"
          f"{'' if result.feasible else '  (constraint NOT met: closest result)'}")
    print(f"wrote {output}")
    _print_json({"cascade": str(output), **dict(spec.calibration or {})})
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..cascade._cascade import load_cascade, save_cascade
    from ..cascade._evaluate import compute_stage_logits, evaluate_cascade

    spec = load_cascade(args.cascade)
    if not spec.calibrated:
        raise TfedgeError(f"{args.cascade} has no thresholds yet: run 'tfedge cascade calibrate "
                          f"--cascade {args.cascade}' first")
    if args.curve_points < 2:
        raise TfedgeError(f"--curve-points must be >= 2, got {args.curve_points}")
    if args.plot and not args.plot.endswith(".png"):
        raise TfedgeError(f"--plot must end in .png, got {args.plot!r}")
    dataset, split = _split(args, spec, args.split)
    data = compute_stage_logits(spec, split, batch_size=args.batch_size)
    val = None
    if not args.no_curve:
        cal_split = (spec.calibration or {}).get("split", "val")
        val_split = dataset.split(cal_split)
        val = compute_stage_logits(spec, val_split, batch_size=args.batch_size)
    ev = evaluate_cascade(spec, data, val=val, curve_points=args.curve_points)
    print(f"{args.split}: cascade top-1 {ev.top1:.4f} at {ev.expected_macs / _MEGA:.2f} expected "
          f"MMACs ({ev.count} images, predictor {ev.predictor_macs / _MEGA:.2f} MMACs)")
    for k, (s, f, a) in enumerate(zip(ev.stages, ev.exit_fractions, ev.exit_top1)):
        acc = "-" if a is None else f"{a:.4f}"
        print(f"  stage {k} {s['name']}: exits {f:.3f} (top-1 there {acc}); alone top-1 "
              f"{s['top1']:.4f} at {s['alone_macs'] / _MEGA:.2f} MMACs")
    if ev.best_single_stage is not None:
        print(f"  best single stage within the cascade's MACs: {ev.best_single_stage['name']} "
              f"{ev.best_single_stage['top1']:.4f} "
              f"({'beaten' if ev.beats_best_single_stage else 'NOT beaten'})")
    result = {"cascade": str(args.cascade), "split": args.split, **ev.to_dict()}
    if args.plot:
        from ..cascade._plot import plot_tradeoff

        plot_tradeoff(ev, args.plot, title=f"{Path(args.cascade).stem} on {args.split}")
        print(f"wrote {args.plot}")
        result["plot"] = args.plot
    if args.record:
        save_cascade(spec.with_evaluation({k: v for k, v in result.items() if k != "curve"}),
                     args.cascade)
    _print_json(result)
    return EXIT_OK


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cascade build|calibrate|evaluate`` on a ``tfedge`` subparsers object."""
    from ._data_flags import add_data_flags
    from ..cascade._calibrate import DEFAULT_CURVE_POINTS, MODES
    from ..cascade._decision import CRITERIA

    cascade = subparsers.add_parser(
        "cascade", help="build, calibrate and evaluate an early-exit cascade",
        description=description_of(__doc__) + " Run 'tfedge cascade COMMAND --help'.")
    sub = cascade.add_subparsers(title="cascade commands", metavar="COMMAND")
    cascade.set_defaults(func=lambda args: (cascade.print_help(sys.stderr), EXIT_USAGE)[1])

    p = sub.add_parser("build", help="write an uncalibrated cascade.json from .keras stages",
                       description="Describe a cascade: classifiers cheapest first, an optional "
                                   "foreground predictor and crop geometry, one exit criterion "
                                   "per stage.")
    p.add_argument("models", nargs="+", type=str, help=".keras classifiers, cheapest first")
    p.add_argument("--output", required=True, type=str, help="the cascade.json to write")
    p.add_argument("--predictor", type=str, default=None,
                   help="a .keras foreground predictor (tfedge predictor train), or its "
                        "refiner (tfedge predictor refine): stages then classify the crop at "
                        "its (refined) box")
    p.add_argument("--criterion", type=str, default="max_softmax",
                   help=f"exit criterion ({', '.join(CRITERIA)}) for every stage, or one per "
                        "stage separated by commas (default max_softmax)")
    p.add_argument("--accumulate-weight", dest="accumulate_weight", type=float, default=0.0,
                   help="add this multiple of the previous stage's decision logits to each later "
                        "stage's logits before deciding (default 0: none)")
    p.add_argument("--name", action="append", type=str, default=None,
                   help="stage name (repeat once per stage; default: the model file's stem)")
    p.add_argument("--crop-margin", dest="crop_margin", type=float, default=None,
                   help="crop margin around the predicted box (default: as the stage was "
                        "trained, else 0.15)")
    p.add_argument("--crop-min-size", dest="crop_min_size", type=float, default=None,
                   help="smallest crop side, a fraction of the image's short side (default: "
                        "as the stage was trained, else 0.2)")
    p.add_argument("--crop-no-square", dest="crop_no_square", action="store_true",
                   help="keep the box's aspect ratio instead of a square crop")
    p.add_argument("--crop-scales", dest="crop_scales", type=float, nargs="+", default=None,
                   help="snap crop sides up to these fractions of the short side (default: "
                        "as the stage was trained, else none)")
    add_data_flags(p)
    p.set_defaults(func=cmd_build)
    unset_data_defaults(p)

    p = sub.add_parser("calibrate", help="choose the exit thresholds on the validation split",
                       description="Run every stage once on the validation split and choose the "
                                   "thresholds: the fewest expected MACs reaching an accuracy "
                                   "target, or the best accuracy within a MAC budget. Exact for "
                                   "up to three stages.")
    p.add_argument("--cascade", required=True, type=str, help="cascade.json to calibrate")
    p.add_argument("--output", type=str, default=None,
                   help="where to write the calibrated cascade (default: --cascade, in place)")
    p.add_argument("--mode", type=str, default="accuracy", choices=MODES,
                   help="accuracy: reach --target at the fewest MACs; budget: best accuracy "
                        "within --macs-budget")
    p.add_argument("--target", type=str, default="last",
                   help="accuracy target: a fraction (0.85), 'last' (the last stage alone on "
                        "validation, default) or 'best' (the best single stage)")
    p.add_argument("--target-offset", dest="target_offset", type=float, default=0.0,
                   help="points added to --target (e.g. -0.5 to trade half a point for MACs)")
    p.add_argument("--macs-budget", dest="macs_budget", type=str, default=None,
                   help="budget mode: expected MACs per image allowed, predictor included: a "
                        "ratio of the last stage's MACs (0.5) or a count (25M, 2.5e7)")
    p.add_argument("--split", type=str, default="val", choices=["train", "val", "test"],
                   help="the split thresholds are chosen on (default val)")
    p.add_argument("--search-rules", dest="search_rules", action="store_true",
                   help="also choose the exit criterion (max_softmax, margin, entropy) and the "
                        "accumulation weight (0, 0.5, 1) on the same split, by the same objective")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128)
    add_data_flags(p)
    p.set_defaults(func=cmd_calibrate)
    unset_data_defaults(p)

    p = sub.add_parser("evaluate", help="accuracy, expected MACs, exits and the trade-off curve",
                       description="Evaluate the calibrated cascade on a split (default test): "
                                   "top-1, expected MACs (predictor and every stage run), exit "
                                   "fractions, each stage alone, and the accuracy-versus-MACs "
                                   "curve with thresholds chosen on the calibration split.")
    p.add_argument("--cascade", required=True, type=str, help="a calibrated cascade.json")
    p.add_argument("--split", type=str, default="test", choices=["train", "val", "test"])
    p.add_argument("--plot", type=str, default=None, help="write the curve as this PNG")
    p.add_argument("--curve-points", dest="curve_points", type=int, default=DEFAULT_CURVE_POINTS,
                   help=f"MAC budgets on the curve (default {DEFAULT_CURVE_POINTS})")
    p.add_argument("--no-curve", dest="no_curve", action="store_true",
                   help="skip the curve (no second pass over the calibration split)")
    p.add_argument("--record", action="store_true",
                   help="store the figures in cascade.json's 'evaluation' field")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128)
    add_data_flags(p)
    p.set_defaults(func=cmd_evaluate)
    unset_data_defaults(p)
    return cascade
