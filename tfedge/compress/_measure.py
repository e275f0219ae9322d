"""The ablation's measurements: every row's top-1, MACs, parameters, int8 size and int8 ms.

Rows, in the paper's shape (EdgeCompress, TCAD 2023, Table "ablation"):

* ``base``: the base classifier on whole images;
* ``crop``: foreground predictor (+ refiner, when the run trained one: its passes
  count in MACs and milliseconds, its file in the size) + crop classifier
  (dynamic image cropping only);
* ``shrink``: the base shrunk on whole images to the crop pipeline's MACs
  (compound shrinking only), and each baseline (``shrink:<method>``);
* ``crop+shrink``: predictor + the cheapest shrunk crop classifier;
* ``crop+shrink+cascade``: the calibrated cascade; its int8 top-1 and exits
  come from running the verified bundle with the device runtime.

Top-1 is measured on the test split (float Keras models; the cascade also int8).
Milliseconds are int8 inference per frame with the runtime's LiteRT interpreter,
one thread, every model timed interleaved in one run
(:func:`tfedge.shrink._latency.time_interleaved`, the median): a pipeline's
figure is the sum of its models' medians, the cascade's weighted by the share
of frames that reach each stage. Pre-processing (decode, resize, crop) is not
included.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from .._quiet import quiet_tensorflow

__all__ = ["measure", "reach_fractions", "grid_indices"]

log = logging.getLogger("tfedge.compress")


class _Cost(NamedTuple):
    macs: int
    params: int


def reach_fractions(exit_rates) -> list[float]:
    """Share of frames that run each stage: 1 for the first, then 1 - the exits before it."""
    rates = [float(r) for r in exit_rates]
    reach, left = [], 1.0
    for r in rates:
        reach.append(max(left, 0.0))
        left -= r
    return reach


def _file_bytes(bundle, entry) -> bytes:
    return Path(bundle.model_path(entry)).read_bytes()


def grid_indices(total: int, count: int) -> np.ndarray:
    """``count`` image indices spread evenly over a split of ``total`` (class folders are
    sorted by class: the first images would all be one class)."""
    count = min(count, total)
    return np.unique(np.linspace(0, total - 1, count).round().astype(np.int64))


def _grid_images(split, indices: np.ndarray) -> list[np.ndarray]:
    if hasattr(split, "images"):
        return [np.asarray(split.images[i]) for i in indices]
    from ..runtime.image import read_image

    return [read_image(split.paths[i])[0] for i in indices]


def measure(run, paths: Mapping[str, Any], grid_png: Path) -> dict[str, Any]:
    """Every ablation row and the cascade's exits on the test split; draws the image grid."""
    from .._macs import count_macs
    from .._train import evaluate_classifier, model_resolution
    from ..crop import CropConfig, evaluate_crop_pipeline, predict_boxes
    from ..runtime import load_bundle
    from ..runtime.evaluate import evaluate_bundle
    from ..shrink._latency import int8_model_bytes, time_interleaved
    from ._report import draw_grid

    data, test = run.dataset, run.test
    base = run.load_model(paths["base"])
    predictor = run.load_predictor(paths["predictor"])
    locator = run.locator(paths["predictor"], paths.get("refiner"))
    crop = run.load_model(paths["crop"])
    stages = [run.load_model(p) for p in paths["stages"]]
    shrunk_bases = {m: run.load_model(p) for m, p in paths["shrink_only"].items()}
    cascade = run.results["cascade"]["evaluation"]
    split_name = "test" if data.test is not None else "val"

    log.info("      measuring on %d %s images: float top-1 of every row", len(test), split_name)
    base_top1 = evaluate_classifier(base, test).top1
    test_boxes = predict_boxes(locator, test)
    crop_eval, _ = evaluate_crop_pipeline(locator, crop, test, crop=CropConfig(),
                                          predicted_boxes=test_boxes)
    refined = None
    if locator is not predictor:
        # The crop row is the refined pipeline; what the predictor alone would give, beside it.
        plain_eval, _ = evaluate_crop_pipeline(predictor, crop, test, crop=CropConfig())
        refined = {"top1": crop_eval.top1_predicted, "macs": crop_eval.pipeline_macs,
                   "boxes": crop_eval.boxes, "passes": locator.passes,
                   "predictor_only": {"top1": plain_eval.top1_predicted,
                                      "macs": plain_eval.pipeline_macs,
                                      "boxes": plain_eval.boxes}}
    shrunk_top1 = {m: evaluate_classifier(model, test).top1 for m, model in shrunk_bases.items()}

    log.info("      int8: the bundle on the device runtime, whole-image models converted")
    with load_bundle(paths["bundle"]) as bundle:
        bundle_eval = evaluate_bundle(bundle, test)
        predictor_bytes = _file_bytes(bundle, bundle.predictor)
        refiner_bytes = (_file_bytes(bundle, bundle.refiner)
                         if getattr(bundle, "refiner", None) is not None else None)
        stage_bytes = [_file_bytes(bundle, s) for s in bundle.stages]
        manifest_version = bundle.version
    with quiet_tensorflow():
        base_bytes = int8_model_bytes(base, data.train, count=64)
        shrunk_bytes = {m: int8_model_bytes(model, data.train, count=64)
                        for m, model in shrunk_bases.items()}
    tflite = {"base": base_bytes, "predictor": predictor_bytes,
              **({"refiner": refiner_bytes} if refiner_bytes is not None else {}),
              **{f"stage{k}": b for k, b in enumerate(stage_bytes)},
              **{f"shrink:{m}": b for m, b in shrunk_bytes.items()}}
    log.info("      timing %d int8 models interleaved (one thread)", len(tflite))
    ms = {k: v["p50"] for k, v in time_interleaved(tflite).items()}
    sizes = {k: len(v) for k, v in tflite.items()}
    box_cost = count_macs(predictor)
    if refiner_bytes is not None:
        # The 'predictor' part of every row is what finds the box: predictor + refiner passes.
        ref_cost = count_macs(locator.refiner)
        box_cost = _Cost(box_cost.macs + locator.passes * ref_cost.macs,
                         box_cost.params + ref_cost.params)
        sizes["predictor"] += sizes["refiner"]
        ms["predictor"] += locator.passes * ms["refiner"]

    macs = {"base": count_macs(base), "predictor": box_cost,
            **{f"stage{k}": count_macs(m) for k, m in enumerate(stages)},
            **{f"shrink:{m}": count_macs(model) for m, model in shrunk_bases.items()}}
    last = f"stage{len(stages) - 1}"
    reach = reach_fractions(bundle_eval.exit_rates)

    def row(method: str, top1: float, parts: list[str], note: str, mac_total=None,
            ms_total=None, int8_top1=None) -> dict[str, Any]:
        return {"method": method, "top1": float(top1),
                "macs": int(mac_total if mac_total is not None
                            else sum(macs[p].macs for p in parts)),
                "params": int(sum(macs[p].params for p in parts)),
                "int8_bytes": int(sum(sizes[p] for p in parts)),
                "int8_ms": float(ms_total if ms_total is not None else sum(ms[p] for p in parts)),
                "int8_top1": None if int8_top1 is None else float(int8_top1),
                "models": parts, "note": note}

    rows = [row("base", base_top1, ["base"],
                f"{base.name} on whole {model_resolution(base)}-px images"
                if not run.config.base_is_file else "the given classifier on whole images"),
            row("crop", crop_eval.top1_predicted, ["predictor", last],
                ("predictor + refiner" if refined else "predictor")
                + f" + crop classifier at {run.config.crop_resolution} px")]
    for method in shrunk_bases:
        rows.append(row("shrink" if method == "compound" else f"shrink:{method}",
                        shrunk_top1[method], [f"shrink:{method}"],
                        ("compound shrinking" if method == "compound" else f"{method} baseline")
                        + " of the base on whole images, to the crop pipeline's MACs"))
    rows.append(row("crop+shrink", cascade["stages"][0]["top1"], ["predictor", "stage0"],
                    "predictor + the cheapest shrunk crop classifier"))
    stage_parts = [f"stage{k}" for k in range(len(stages))]
    rows.append(row("crop+shrink+cascade", cascade["top1"], ["predictor", *stage_parts],
                    f"{len(stages)}-stage early-exit cascade (MACs and ms are the expected "
                    "per frame)", mac_total=cascade["expected_macs"],
                    ms_total=ms["predictor"] + sum(r * ms[p] for r, p in zip(reach, stage_parts)),
                    int8_top1=bundle_eval.top1))

    pick = grid_indices(len(test), run.config.preview_count)
    true_boxes = None if test.boxes is None else np.asarray(test.boxes)[pick]
    draw_grid(grid_png, _grid_images(test, pick), labels=np.asarray(test.labels)[pick],
              predictions=bundle_eval.predictions[pick], exits=bundle_eval.exit_stages[pick],
              true_boxes=true_boxes, predicted_boxes=bundle_eval.boxes[pick],
              windows=bundle_eval.windows[pick], class_names=list(data.class_names))
    return {
        "split": split_name, "images": len(test), "rows": rows,
        "timings_ms": ms, "timing": "int8, LiteRT interpreter, 1 thread, median of 200 "
                                   "invocations per model, models interleaved",
        "box_iou": crop_eval.boxes, "crop_oracle_top1": crop_eval.top1_oracle,
        "refined": refined,
        "cascade": {"float_top1": cascade["top1"], "int8_top1": bundle_eval.top1,
                    "float_exit_fractions": cascade["exit_fractions"],
                    "int8_exit_fractions": list(bundle_eval.exit_rates),
                    "exit_top1": cascade["exit_top1"], "expected_macs": cascade["expected_macs"],
                    "int8_mean_macs": bundle_eval.mean_macs, "stages": cascade["stages"],
                    "curve": cascade.get("curve", []), "thresholds": cascade["thresholds"]},
        "bundle": {"path": str(paths["bundle"]), "manifest_version": manifest_version,
                   "refiner_in_bundle": refiner_bytes is not None},
        "grid": grid_png.name,
    }
