"""Float vs full-int8 top-1 of the base model and every cascade stage.

    python benchmarks/convert.py --base runs/benchmarks/base_resnet10_050_seed0.keras \
        --cascade runs/benchmarks/cascade_quick/cascade_seed0.json [--quick]

Each model is converted with the same code ``tfedge-convert`` uses
(calibration on training images, the accuracy check on held-out images) and
measured on the inputs it sees in deployment: the base model on whole images,
cascade stages on crops of the true boxes at their own resolution (the
predictor's crops are the cascade benchmark's business; here the question is
what quantisation alone costs). Without ``--base``/``--cascade`` it uses what
``benchmarks/base.py`` and ``benchmarks/cascade.py`` left under ``runs/``.

With ``--qat`` each model is also fine-tuned with fake quantisation
(``QAT_IMAGES`` more training images or crops, ``QAT_EPOCHS`` epoch, the
``tfedge.qat`` route ``tfedge-convert --qat`` takes) and checked on the same
images: ``qat_int8_top1`` and ``qat_drop_points`` next to the post-training
figures.

The last line is JSON: ``{"stages": [{"name", "float_top1", "int8_top1",
"bytes", "drop_points"}], ...}``; the issue's target is every ``drop_points`` <= 1.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _common import (REPO, BenchmarkError, environment, print_result, run_main, setup_logging,
                     trained_seed)

log = logging.getLogger("benchmarks.convert")

RUNS = REPO / "runs" / "benchmarks"
DEFAULT_BASE = RUNS / "base_resnet10_050_seed0.keras"
DEFAULT_CASCADES = (RUNS / "cascade" / "cascade_seed0.json",
                    RUNS / "cascade_quick" / "cascade_seed0.json")
FULL = dict(calibration=500, check=5000)
QUICK = dict(calibration=300, check=1000)
TOLERANCE_POINTS = 1.0
QAT_IMAGES = 2000
QAT_EPOCHS = 1.0


def _row(name: str, metrics: dict, nbytes: int, macs: int | None) -> dict:
    drop = 100.0 * (metrics["float_top1"] - metrics["int8_top1"])
    return {"name": name, "float_top1": metrics["float_top1"], "int8_top1": metrics["int8_top1"],
            "agreement": metrics.get("agreement"), "bytes": nbytes, "macs": macs,
            "drop_points": round(drop, 3), "within_tolerance": drop <= TOLERANCE_POINTS}


def _qat_columns(model, pool, check, sizes: dict) -> dict:
    """QAT int8 top-1 of ``model``: fine-tuned on ``QAT_IMAGES`` of ``pool``, same check images."""
    from tfedge import convert_classifier
    from tfedge.qat import QatConfig

    _, metrics = convert_classifier(model, pool, check, calibration_size=sizes["calibration"],
                                    check_size=sizes["check"], tolerance_points=100.0,
                                    qat=QatConfig(images=QAT_IMAGES, epochs=QAT_EPOCHS))
    return {"qat_int8_top1": metrics["int8_top1"],
            "qat_drop_points": round(100.0 * (metrics["float_top1"] - metrics["int8_top1"]), 3),
            "qat_images": QAT_IMAGES, "qat_epochs": QAT_EPOCHS}


def run(base: Path | None, cascade: Path | None, quick: bool, qat: bool = False) -> dict:
    from tfedge import convert_classifier, count_macs, load_classifier
    from tfedge.cascade import load_cascade
    from tfedge.crop import materialize_crops
    from tfedge.data import BenchmarkConfig, load_dataset

    sizes = QUICK if quick else FULL
    data = load_dataset("benchmark", benchmark=BenchmarkConfig())
    # The test split is the held-out set here: nothing is tuned on it.
    calibration, check = data.train.take(sizes["calibration"]), data.test.take(sizes["check"])
    qat_pool = data.train.take(sizes["calibration"] + QAT_IMAGES) if qat else None
    rows = []
    if base is not None:
        model = load_classifier(base)
        log.info("== base %s", base)
        tflite, metrics = convert_classifier(model, calibration, check,
                                             calibration_size=sizes["calibration"],
                                             check_size=sizes["check"], tolerance_points=100.0)
        rows.append({"role": "base", **_row(model.name, metrics, len(tflite),
                                            count_macs(model).macs), "seed": trained_seed(base)})
        if qat:
            rows[-1].update(_qat_columns(model, qat_pool, check, sizes))
    if cascade is not None:
        spec = load_cascade(cascade)
        for index, stage in enumerate(spec.stages):
            model = load_classifier(spec.stage_path(index))
            log.info("== stage %d %s at %d px (true-box crops)", index, stage.name,
                     stage.resolution)
            crop = spec.predictor.crop if spec.predictor is not None else None
            kwargs = {"crop": crop} if crop is not None else {}
            calib_crops = materialize_crops(calibration, resolution=stage.resolution,
                                            boxes=calibration.boxes, **kwargs)
            check_crops = materialize_crops(check, resolution=stage.resolution,
                                            boxes=check.boxes, **kwargs)
            tflite, metrics = convert_classifier(model, calib_crops, check_crops,
                                                 calibration_size=sizes["calibration"],
                                                 check_size=sizes["check"],
                                                 tolerance_points=100.0)
            rows.append({"role": f"stage{index}", **_row(stage.name, metrics, len(tflite),
                                                         stage.macs),
                         "seed": trained_seed(spec.stage_path(index))})
            if qat:
                pool_crops = materialize_crops(qat_pool, resolution=stage.resolution,
                                               boxes=qat_pool.boxes, **kwargs)
                rows[-1].update(_qat_columns(model, pool_crops, check_crops, sizes))
    for row in rows:
        log.info("%-8s %-40s float %.4f  int8 %.4f  drop %+.2f pts  %d bytes%s", row["role"],
                 row["name"][:40], row["float_top1"], row["int8_top1"], row["drop_points"],
                 row["bytes"], f"  QAT int8 {row['qat_int8_top1']:.4f}" if qat else "")
    return {"benchmark": "convert", "quick": quick, "stages": rows,
            "all_within_tolerance": all(r["within_tolerance"] for r in rows),
            "tolerance_points": TOLERANCE_POINTS, "calibration_images": sizes["calibration"],
            "check_images": sizes["check"], "base": str(base) if base else None,
            "cascade": str(cascade) if cascade else None, **environment()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=None, help="the base .keras classifier")
    parser.add_argument("--cascade", type=Path, default=None, help="a cascade.json")
    parser.add_argument("--quick", action="store_true", help="fewer check images")
    parser.add_argument("--qat", action="store_true",
                        help=f"also quantisation-aware training ({QAT_IMAGES} images, "
                             f"{QAT_EPOCHS:g} epoch): qat_int8_top1 per model")
    args = parser.parse_args()
    setup_logging()
    base = args.base or (DEFAULT_BASE if DEFAULT_BASE.exists() else None)
    cascade = args.cascade or next((p for p in DEFAULT_CASCADES if p.exists()), None)
    if base is None and cascade is None:
        raise BenchmarkError("nothing to convert: run benchmarks/base.py and "
                         "benchmarks/cascade.py first, or pass --base / --cascade")
    print_result(run(base, cascade, args.quick, args.qat))


if __name__ == "__main__":
    run_main(main)
