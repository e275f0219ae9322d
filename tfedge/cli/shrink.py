"""``tfedge shrink``: compress a trained classifier to a MAC budget (compound shrinking or a baseline).

    tfedge shrink --model base.keras --output small.keras --target-macs 0.5
    tfedge shrink --model base.keras --output small.keras --target-macs 20M --method l1
    tfedge shrink --model base.keras --output small.keras --target-ms 0.5   # int8 latency

The output is an ordinary tfedge classifier (``.keras`` + JSON sidecar with the
class names and resolution), so it goes wherever a classifier goes: crop
training, cascade stages, conversion. Its sidecar also records the shrink
(method, every step, the architecture) and the base model's path and sha256.
Compound shrinking logs each step to ``<output stem>.search.json`` beside the
output; started again with the same flags, it resumes from the last step.

:func:`register` adds the command to ``tfedge``'s sub-parsers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from .._errors import TfedgeError
from ._shell import parse_macs

__all__ = ["register", "parse_target", "cmd_shrink"]

log = logging.getLogger("tfedge.shrink")

_HASH_CHUNK = 1 << 20


def parse_target(text: str) -> float:
    """``--target-macs``: a ratio below 1 (``0.5``) or absolute MACs (``20000000``, ``20M``, ``1.5G``)."""
    value = parse_macs(text, "--target-macs", "the base's MACs")
    if value == 1:
        raise TfedgeError("--target-macs 1 keeps the whole base: give a ratio below 1 "
                          "(e.g. 0.5) or a MAC count below the base's")
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_from_args(args: argparse.Namespace):
    from ..shrink._search import SearchConfig

    return SearchConfig(
        target_macs_ratio=0.5, width_step=args.width_step, depth_step=args.depth_step,
        resolution_step=args.resolution_step, min_resolution=args.min_resolution,
        importance=args.importance, width_allocation=args.width_allocation, score=args.score,
        round_to=args.round_to, protect=tuple(args.protect), mode=args.mode,
        dimensions=tuple(args.dimensions), val_size=args.search_val_size,
        calibration_size=args.calibration_size, bn_batches=args.bn_batches,
        batch_size=args.batch_size, finetune_epochs=args.finetune_epochs,
        learning_rate=args.learning_rate, distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature, seed=args.seed,
        step_macs_fraction=args.step_fraction, resolution_multiple=args.resolution_multiple,
        score_finetune_steps=args.score_finetune_steps, target_ms=args.target_ms,
        keep_better_start=not args.always_finetuned)


def cmd_shrink(args: argparse.Namespace) -> int:
    from ._data_flags import dataset_from_args

    # Everything the user can get wrong is checked before TensorFlow and the data load.
    from ..shrink._baselines import check_method

    check_method(args.method)
    if (args.target_macs is None) == (args.target_ms is None):
        raise TfedgeError("give exactly one target: --target-macs (a ratio such as 0.5, or a "
                          "count such as 20M) or --target-ms (int8 milliseconds, e.g. 0.5)")
    if args.target_ms is not None and args.method != "compound":
        raise TfedgeError(f"--target-ms works with --method compound only (the {args.method} "
                          "baseline has a MAC knob): use --target-macs for baselines")
    if args.width_allocation != "uniform" and args.method != "compound":
        raise TfedgeError(f"--width-allocation shapes compound shrinking's width steps; the "
                          f"{args.method} baseline has its own allocation (the bn baseline is "
                          "the global one): leave it out, or use --method compound")
    target = parse_target(args.target_macs) if args.target_macs is not None else None
    config = _config_from_args(args)  # checks --importance, --score, steps and sizes
    base_path, output = Path(args.model), Path(args.output)
    if output.suffix != ".keras":
        raise TfedgeError(f"--output must end in .keras, got {args.output!r}")
    if not base_path.is_file():
        raise TfedgeError(f"--model {args.model!r} does not exist: pass a .keras classifier "
                          "(e.g. one 'tfedge train' wrote)")
    if output.resolve() == base_path.resolve():
        raise TfedgeError("--output is the base model itself: write the shrunk model elsewhere")

    from .._macs import count_macs
    from .._train import (check_outputs, evaluate_classifier, load_classifier, read_sidecar,
                         save_classifier, with_model_classes)
    from ..shrink._baselines import run_shrink

    base = load_classifier(base_path)
    base_meta = read_sidecar(base_path)
    class_names = base_meta.get("class_names")
    base_macs = count_macs(base).macs
    if target is not None and target >= 1 and target >= base_macs:
        raise TfedgeError(f"--target-macs {args.target_macs} is not below the base's "
                          f"{base_macs:,d} MACs: give a smaller count or a ratio below 1")
    dataset = dataset_from_args(args)
    train = with_model_classes(dataset.train, class_names)
    val = with_model_classes(dataset.val, class_names)
    check_outputs(base, train.num_classes, str(base_path))
    if target is None:  # an int8 latency target: compound shrinking measures every step
        from ..shrink._search import compound_search

        result = compound_search(base, train, val, config, output_dir=output.parent,
                                 name=output.stem)
    else:
        result = run_shrink(base, args.method, target, train, val, config=config,
                            output_dir=output.parent, name=output.stem)
    # Keep what the base's sidecar says about its inputs (a crop classifier stays one); the
    # data is this run's (its fine-tune trained on it), so conversion can name it.
    inherited = {k: base_meta[k] for k in ("crop", "input") if k in base_meta}
    meta = {**inherited, "class_names": list(train.class_names), "dataset": dataset.name,
            "dataset_info": dataset.info,
            "shrink": result.record(),
            "base_model": {"path": str(base_path.resolve()), "sha256": _sha256(base_path),
                           "macs": base_macs},
            "teacher": str(base_path)}
    save_classifier(result.model, output, meta)
    log.info("wrote %s: %.2f MMACs (%.1f%% of the base), val top-1 %.4f", output,
             result.macs / 1e6, 100.0 * result.macs / base_macs, result.val_top1 or float("nan"))
    if not result.reached:  # said here too: a resumed search does not repeat its warning
        got, wanted = ((f"{result.int8_ms:.3f} int8 ms", f"{result.target_ms:.3f} ms")
                       if result.target_ms is not None else
                       (f"{result.macs / 1e6:.2f} MMACs", f"{result.target_macs / 1e6:.2f} MMACs"))
        log.warning("%s is above the target: %s against %s (nothing could shrink further; "
                    "lower --min-resolution or --round-to, or allow more --dimensions)",
                    output, got, wanted)
    summary: dict[str, Any] = {
        "model": str(output), "method": args.method, "macs": result.macs, "base_macs": base_macs,
        "macs_ratio": result.macs / base_macs, "target_macs": result.target_macs,
        "reached": result.reached, "val_top1": result.val_top1,
        "target_ms": result.target_ms, "int8_ms": result.int8_ms,
        "base_int8_ms": result.base_int8_ms,
        "base_val_top1": result.steps[0]["val_top1"], "steps": len(result.steps),
        "finetune_kept": result.steps[-1].get("kept"),
        "resolution": result.architecture.get("resolution"),
        "search_log": str(output.parent / f"{output.stem}.search.json")
        if args.method == "compound" else None}
    if args.evaluate_test and dataset.test is not None:
        summary["test_top1"] = evaluate_classifier(
            result.model, with_model_classes(dataset.test, class_names)).top1
    print(json.dumps(summary, sort_keys=True))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``shrink`` to ``tfedge``'s sub-parsers (``build_parser``'s ``add_subparsers()``)."""
    from ._data_flags import add_data_flags

    p = subparsers.add_parser(
        "shrink", help="shrink a classifier to a MAC budget (depth, width, resolution)",
        description="Compress a trained .keras classifier to a MAC target: compound shrinking "
                    "(one measured depth/width/resolution step at a time, validation split "
                    "only) or a baseline, then fine-tune with distillation from the base. "
                    "The last line is JSON with 'macs' and 'val_top1'.")
    p.add_argument("--model", required=True, type=str, help="the base .keras classifier")
    p.add_argument("--output", required=True, type=str, help="where to write the shrunk .keras")
    p.add_argument("--target-macs", dest="target_macs", default=None, type=str,
                   help="MAC budget: a ratio of the base's below 1 (0.5) or a count (20M, 2e7)")
    p.add_argument("--target-ms", dest="target_ms", default=None, type=float,
                   help="instead of --target-macs: int8 milliseconds per image (one thread), "
                        "each candidate converted and timed with the runtime's interpreter, "
                        "interleaved with the base (compound only)")
    p.add_argument("--method", type=str, default="compound",
                   help="compound (default), uniform, resolution, l1, bn or hrank")
    p.add_argument("--importance", type=str, default="bn",
                   help="channel criterion of width steps: bn (BatchNorm scale, default), l1, "
                        "l2, hrank, taylor")
    p.add_argument("--width-allocation", dest="width_allocation", default="uniform",
                   choices=["uniform", "global"],
                   help="how a width step shares its cut between layers: uniform (every layer "
                        "keeps the same fraction, default) or global (one threshold on the "
                        "BatchNorm scales of all layers, as network slimming; with --importance "
                        "bn)")
    p.add_argument("--score", type=str, default="bn",
                   help="how candidate steps are scored: bn (re-estimate BatchNorm, default) or "
                        "finetune (a few distillation steps each; slower)")
    p.add_argument("--finetune-epochs", dest="finetune_epochs", type=int, default=5,
                   help="epochs of the final distillation fine-tune (0: none)")
    p.add_argument("--always-finetuned", dest="always_finetuned", action="store_true",
                   help="keep the fine-tuned model even when the model the fine-tune started "
                        "from scores higher on validation (default: keep the better one; the "
                        "log and the step record say which)")
    p.add_argument("--round-to", dest="round_to", type=int, default=8,
                   help="channel counts stay multiples of this (default 8, fastest for int8)")
    p.add_argument("--protect", type=str, nargs="*", default=[],
                   help="layer names whose channels are never removed (e.g. the stem)")
    p.add_argument("--mode", type=str, default="coupled", choices=["coupled", "inner"],
                   help="prune every coupled channel group, or bottleneck insides only")
    p.add_argument("--dimensions", type=str, nargs="+", default=["depth", "width", "resolution"],
                   help="dimensions compound shrinking may use (default: all three)")
    p.add_argument("--width-step", dest="width_step", type=float, default=0.1,
                   help="fraction of channels one width step removes (default 0.1)")
    p.add_argument("--depth-step", dest="depth_step", type=int, default=1,
                   help="residual blocks one depth step removes (default 1)")
    p.add_argument("--resolution-step", dest="resolution_step", type=float, default=16,
                   help="pixels (>= 1) or a fraction (< 1) one resolution step removes")
    p.add_argument("--step-fraction", dest="step_fraction", type=float, default=None,
                   help="size width and resolution steps to save about this fraction of the "
                        "MACs each (e.g. 0.3; default: --width-step and --resolution-step)")
    p.add_argument("--resolution-multiple", dest="resolution_multiple", type=int, default=1,
                   help="input sides the search may choose are multiples of this (0: the "
                        "network's total stride; default 1: any side)")
    p.add_argument("--score-finetune-steps", dest="score_finetune_steps", type=int, default=20,
                   help="distillation steps per candidate with --score finetune (taken off the "
                        "final fine-tune for the accepted steps)")
    p.add_argument("--min-resolution", dest="min_resolution", type=int, default=32,
                   help="smallest input side the search may choose (default 32)")
    p.add_argument("--search-val-size", dest="search_val_size", type=int, default=1000,
                   help="validation images each candidate step is scored on (default 1000)")
    p.add_argument("--calibration-size", dest="calibration_size", type=int, default=128,
                   help="training images for activation-based criteria (hrank, taylor)")
    p.add_argument("--bn-batches", dest="bn_batches", type=int, default=8,
                   help="training batches that re-estimate BatchNorm per candidate (0: keep "
                        "the model's statistics everywhere, fine-tunes with BatchNorm frozen: "
                        "for a pretrained model and few images)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=1e-3,
                   help="peak learning rate of the fine-tune (default 1e-3)")
    p.add_argument("--distill-alpha", dest="distill_alpha", type=float, default=0.7)
    p.add_argument("--distill-temperature", dest="distill_temperature", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the fine-tune")
    p.add_argument("--evaluate-test", dest="evaluate_test", action="store_true",
                   help="also report the shrunk model's top-1 on the test split (after all "
                        "decisions)")
    add_data_flags(p)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    if float(args.resolution_step).is_integer() and args.resolution_step >= 1:
        args.resolution_step = int(args.resolution_step)
    return cmd_shrink(args)
