"""``tfedge compress`` and ``tfedge demo``: the whole method in one resumable command.

  tfedge compress --data mydata --output runs/mine      # class folders, boxes found next to images
  tfedge compress --output runs/mine                    # continue / re-check that run, same data
  tfedge compress --model base.keras --data mydata --output runs/mine   # start from a trained base
  tfedge demo --preset quick                            # the built-in benchmark, < 15 minutes

Every step is cached in the output folder and skipped when its inputs are
unchanged; a killed run started again resumes. The report is
``OUTPUT/report/report.html`` (with ``summary.json``), the int8 bundle
``OUTPUT/bundle.zip``. The last line on stdout is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Optional

from .._errors import TfedgeError
from ._shell import EXIT_OK, description_of

__all__ = ["register", "cmd_compress", "cmd_demo"]

log = logging.getLogger("tfedge.compress")

#: Benchmark flags and the BenchmarkConfig field each sets.
_BENCHMARK_FLAGS = {"image_size": "image_size", "train_size": "train_size",
                    "val_size": "val_size", "test_size": "test_size"}
#: Setting flags (None: the recorded value, else the default) -> CompressConfig field.
_SETTINGS = ("model", "resolution", "epochs", "batch_size", "predictor", "predictor_epochs",
             "refiner", "refiner_epochs", "crop_resolution", "crop_copies", "shrink_targets",
             "shrink_finetune_epochs", "shrink_only", "baselines", "calibration",
             "accuracy_drop_points", "macs_budget", "tolerance_points", "seed")


def _print_table(summary: dict[str, Any]) -> None:
    print(f"{'method':<22}{'top-1':>8}{'int8 top-1':>12}{'MMACs':>9}{'params':>11}"
          f"{'int8 KB':>9}{'int8 ms':>9}")
    for r in summary["ablation"]:
        int8 = "" if r.get("int8_top1") is None else f"{r['int8_top1']:.4f}"
        print(f"{r['method']:<22}{r['top1']:>8.4f}{int8:>12}{r['macs'] / 1e6:>9.2f}"
              f"{r['params']:>11,d}{r['int8_bytes'] / 1024:>9.0f}{r['int8_ms']:>9.3f}")
    for line in summary["reading"]:
        print(line)


def _result_json(result) -> dict[str, Any]:
    return {"run": str(result.run_dir), "report": str(result.report),
            "bundle": str(result.bundle), "seconds": round(result.seconds, 1),
            "steps_run": result.steps_run, "steps_cached": result.steps_cached,
            "ablation": [{k: r[k] for k in ("method", "top1", "int8_top1", "macs", "params",
                                            "int8_bytes", "int8_ms")}
                         for r in result.summary["ablation"]]}


def _finish(result) -> int:
    _print_table(result.summary)
    print(f"report: {result.report}")
    print(json.dumps(_result_json(result), sort_keys=True))
    return EXIT_OK


def _data_from_args(args: argparse.Namespace, recorded: Optional[dict]):
    from ..compress import DataSource

    given = args.data is not None or args.boxes is not None or any(
        getattr(args, flag) is not None for flag in _BENCHMARK_FLAGS) \
        or args.data_seed is not None
    if not given:
        return None if recorded is not None else DataSource("benchmark")
    source = args.data or (recorded["data"]["source"] if recorded else "benchmark")
    old = DataSource.from_dict(recorded["data"]) if recorded else None
    bench = dict(old.benchmark or {}) if old is not None and old.is_benchmark else {}
    bench.update({field: getattr(args, flag) for flag, field in _BENCHMARK_FLAGS.items()
                  if getattr(args, flag) is not None})
    seed = args.data_seed if args.data_seed is not None else (old.seed if old else 0)
    boxes = args.boxes or (old.boxes if old is not None else "auto")
    return DataSource(source, boxes=boxes, benchmark=bench or None, seed=seed)


def _config_from_args(args: argparse.Namespace, recorded: Optional[dict], defaults: dict):
    from ..compress import CompressConfig

    fields = dict(defaults)
    if recorded is not None:
        fields.update(recorded["settings"])
    for name in _SETTINGS:
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if fields.get("macs_budget") is not None and args.calibration is None \
            and args.macs_budget is not None:
        fields["calibration"] = "budget"
    fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items()}
    return CompressConfig(**fields)


def _progress(line: str) -> None:
    log.info("%s", line)


def _check_output_folder(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise TfedgeError(f"--output {path!r} is a file: pass a folder for the run")
    return out


def cmd_compress(args: argparse.Namespace) -> int:
    from .._quiet import quiet_tensorflow_loggers, set_debug
    from ..compress import read_run, run_compress

    set_debug(args.debug)
    quiet_tensorflow_loggers()
    out = _check_output_folder(args.output)
    recorded = read_run(out)
    data = _data_from_args(args, recorded)
    config = _config_from_args(args, recorded, {})
    return _finish(run_compress(out, data, config, progress=_progress))


def cmd_demo(args: argparse.Namespace) -> int:
    from .._quiet import quiet_tensorflow_loggers, set_debug
    from ..compress import preset, read_run, run_compress

    set_debug(args.debug)
    quiet_tensorflow_loggers()
    out = _check_output_folder(args.output or f"runs/demo_{args.preset}")
    data, config = preset(args.preset)
    recorded = read_run(out)
    if recorded is not None and recorded["data"] != data.to_dict():
        raise TfedgeError(f"{out} holds a run on other data than the {args.preset} preset: "
                          "pass another --output folder")
    log.info("demo (%s preset): tfedge compress on the built-in benchmark", args.preset)
    return _finish(run_compress(out, data, config, progress=_progress))


def _targets(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ratios "
                                         "(e.g. 0.3,0.6)") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one ratio (e.g. 0.35)")
    return values


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(subparsers: Any) -> None:
    """Register ``compress`` and ``demo``."""
    from ..compress import PRESETS, CALIBRATION_MODES

    p = subparsers.add_parser(
        "compress", help="the whole method: base -> crop -> shrink -> cascade -> int8 bundle "
                         "-> report (cached, resumable)",
        description=description_of(__doc__) + " Flags left out keep the values the "
                    "output folder recorded (else the defaults), so a run is continued "
                    "with 'tfedge compress --output DIR' alone.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, type=str, help="the run folder")
    g = p.add_argument_group("data (recorded in OUTPUT/compress.json)")
    g.add_argument("--data", type=str, default=None,
                   help="'benchmark' (default) or a folder of class folders "
                        "(root/<class>/ or root/{train,val,test}/<class>/)")
    g.add_argument("--boxes", type=str, default=None,
                   help="'auto' (default: VOC .xml files next to the images), 'none' (learn "
                        "Grad-CAM pseudo-boxes), or a VOC folder / CSV file")
    g.add_argument("--image-size", dest="image_size", type=int, default=None)
    g.add_argument("--train-size", dest="train_size", type=int, default=None)
    g.add_argument("--val-size", dest="val_size", type=int, default=None)
    g.add_argument("--test-size", dest="test_size", type=int, default=None)
    g.add_argument("--data-seed", dest="data_seed", type=int, default=None)
    g = p.add_argument_group("steps")
    g.add_argument("--model", type=str, default=None,
                   help="registry name to train as the base (default resnet10_050) or a "
                        ".keras classifier to start from")
    g.add_argument("--resolution", type=int, default=None, help="base input side (default 128)")
    g.add_argument("--epochs", type=int, default=None,
                   help="epochs of the base and the crop classifier (default 4)")
    g.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    g.add_argument("--predictor", type=str, default=None,
                   help="predictor variant (default boxnet_heat_r96_w8)")
    g.add_argument("--predictor-epochs", dest="predictor_epochs", type=int, default=None)
    g.add_argument("--refiner", action="store_true", default=None,
                   help="also train a refiner: the crop classifier, the stages and the bundle "
                        "(manifest version 2) then use the refined boxes")
    g.add_argument("--refiner-epochs", dest="refiner_epochs", type=int, default=None)
    g.add_argument("--crop-resolution", dest="crop_resolution", type=int, default=None,
                   help="crop classifier input side (default 64)")
    g.add_argument("--crop-copies", dest="crop_copies", type=int, default=None)
    g.add_argument("--shrink-targets", dest="shrink_targets", type=_targets, default=None,
                   help="MAC ratios of the crop classifier, one cascade stage each "
                        "(default 0.35)")
    g.add_argument("--shrink-finetune-epochs", dest="shrink_finetune_epochs", type=int,
                   default=None)
    g.add_argument("--no-shrink-only", dest="shrink_only", action="store_false", default=None,
                   help="skip the ablation's whole-image shrink of the base")
    g.add_argument("--baselines", type=_names, default=None,
                   help="comma-separated tfedge.shrink baselines for the ablation (e.g. "
                        "uniform,l1)")
    g.add_argument("--calibration", choices=CALIBRATION_MODES, default=None,
                   help="'accuracy': the last stage's validation top-1 less --accuracy-drop "
                        "at the fewest MACs (default); 'budget': the best top-1 within "
                        "--macs-budget")
    g.add_argument("--accuracy-drop", dest="accuracy_drop_points", type=float, default=None,
                   help="points of validation top-1 the cascade may give up (default 0.5)")
    g.add_argument("--macs-budget", dest="macs_budget", type=float, default=None,
                   help="budget mode: a ratio of the base's MACs (e.g. 0.25)")
    g.add_argument("--tolerance", dest="tolerance_points", type=float, default=None,
                   help="most int8 top-1 may lose against float, in points (default 2)")
    g.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_compress)

    p = subparsers.add_parser(
        "demo", help="tfedge compress on the built-in benchmark (--preset quick|full)",
        description="Run the whole method on the built-in benchmark and write the report. "
                    "quick: 3,000 training images, under 15 minutes on 2 cores; full: the "
                    "benchmark settings (20,000 images; hours). A second run reuses the cache.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--output", type=str, default=None,
                   help="the run folder (default runs/demo_<preset>)")
    p.set_defaults(func=cmd_demo)
