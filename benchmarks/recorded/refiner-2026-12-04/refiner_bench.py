"""The refiner on device, quick benchmark: a refined-box bundle vs the Python evaluation.

    nice -n 10 .venv/bin/python refiner_bench.py OUT_DIR

Quick benchmark data (4000/500/1000 images at 128 px, seed 0); predictor
boxnet_heat_r96_w8 and refiner boxnet_heat_r64_w6 x2 (window x1.25) trained
EPOCHS epochs each on true boxes; a crop classifier resnet10_025 at 64 px
trained briefly on the refined predictor's crops (one stage). Converted with
tfedge-convert's cascade conversion twice: without the refiner (version 1) and
with it (version 2). Then, on the WHOLE test split: rpi_runner.EdgePipeline
frame by frame vs tfedge.runtime.evaluate.evaluate_bundle (predictions,
windows, boxes), box IoU float / int8 with and without the refiner, sizes and
per-frame milliseconds. Prints one JSON line.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

EPOCHS = 5
CLASSIFIER_EPOCHS = 3


def main(out: Path) -> None:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    from tfedge import count_macs
    from tfedge._train import TrainConfig
    from tfedge.cascade._cascade import CascadeSpec, PredictorConfig, StageConfig
    from tfedge.cascade._convert import convert_cascade_bundle
    from tfedge.crop import (CropConfig, CropTrainConfig, PredictorTrainConfig,
                             RefinerTrainConfig, iou_summary, predict_boxes,
                             train_crop_classifier, train_predictor, train_refiner)
    from tfedge.data import BenchmarkConfig, load_dataset
    from tfedge.runtime.bundle import load_bundle
    from tfedge.runtime.evaluate import evaluate_bundle
    from rpi_runner import EdgePipeline
    import dataclasses

    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=128, train_size=4000, val_size=500, test_size=1000, seed=0))
    log = lambda m: print(f"[{time.perf_counter() - start:6.0f} s] {m}", flush=True)
    log(f"data {data.name}: {len(data.train)}/{len(data.val)}/{len(data.test)}")
    pred_path = out / "predictor.keras"
    if not pred_path.exists():
        train_predictor("boxnet_heat_r96_w8", data.train,
                        config=PredictorTrainConfig(epochs=EPOCHS, seed=0), output=pred_path)
    log("predictor trained")
    ref_path = out / "refiner.keras"
    if not ref_path.exists():
        from tfedge.crop import load_predictor
        predictor = load_predictor(pred_path)
        base = RefinerTrainConfig(passes=2)
        config = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=EPOCHS,
                                                                     seed=0))
        train_refiner("boxnet_heat_r64_w6", data.train, predictor=predictor, config=config,
                      output=ref_path, predictor_path=pred_path)
    log("refiner trained")
    from tfedge.crop import load_predictor
    pair = load_predictor(ref_path)
    cls_path = out / "stage.keras"
    crop = CropConfig()
    if not cls_path.exists():
        train_crop_classifier("resnet10_025", data.train,
                              crop_config=CropTrainConfig(resolution=64, crop=crop),
                              config=TrainConfig(epochs=CLASSIFIER_EPOCHS, seed=0),
                              predictor=pair, output=cls_path)
    log("classifier trained")
    from tfedge._train import load_classifier
    stage_macs = count_macs(load_classifier(cls_path)).macs
    spec = CascadeSpec(stages=(StageConfig("resnet10_025_r64", str(cls_path), 64, stage_macs),),
                       class_names=data.train.class_names,
                       predictor=PredictorConfig(str(pred_path), 96,
                                                 count_macs(pair.predictor).macs, crop))
    results = {}
    for name, refiner in (("plain", None), ("refined", ref_path)):
        t0 = time.perf_counter()
        path, metrics = convert_cascade_bundle(spec, data.train, data.test, out / name,
                                               calibration_size=500, check_size=len(data.test),
                                               tolerance_points=100.0, refiner=refiner)
        log(f"{name} bundle converted in {time.perf_counter() - t0:.0f} s")
        with load_bundle(path) as bundle:
            reference = evaluate_bundle(bundle, data.test)
            log(f"{name}: reference evaluation done")
            with EdgePipeline(bundle, num_threads=1) as pipe:
                frames = [pipe.classify(img) for img in data.test.images]
            log(f"{name}: runner done")
            pred = np.array([f.class_index for f in frames])
            windows = np.array([f.window for f in frames])
            boxes = np.array([f.box for f in frames], np.float32)
            row = {
                "version": bundle.version,
                "agreement": float(np.mean(pred == reference.predictions)),
                "windows_equal": float(np.mean((windows == reference.windows).all(axis=1))),
                "boxes_equal": float(np.mean((boxes == reference.boxes).all(axis=1))),
                "test_images": len(frames),
                "runner_top1": float(np.mean(pred == data.test.labels)),
                "reference_top1": reference.top1, "float_top1": metrics["float_top1"],
                "int8_box_miou": iou_summary(reference.boxes, data.test.boxes)["miou"],
                "file_bytes": {e.file: bundle.files[e.file].bytes for e in bundle.models},
                "predictor_metrics": dict(bundle.predictor.metrics),
                "mean_macs": reference.mean_macs,
                "ms_p50": {k: float(np.median([getattr(f, k) or 0.0 for f in frames]))
                           for k in ("predictor_ms", "refiner_ms", "preprocess_ms", "infer_ms",
                                     "pipeline_ms")},
                "stage_ms_p50": float(np.median([f.stage_ms[0] for f in frames])),
            }
            if bundle.refiner is not None:
                row["refiner_metrics"] = dict(bundle.refiner.metrics)
                row["predictor_boxes_equal"] = float(np.mean(
                    (np.array([f.predictor_box for f in frames], np.float32)
                     == reference.predictor_boxes).all(axis=1)))
                row["int8_predictor_only_miou"] = iou_summary(reference.predictor_boxes,
                                                              data.test.boxes)["miou"]
            results[name] = row
            log(f"{name}: {json.dumps(row)}")
    results["float_box_miou"] = {
        "predictor": iou_summary(predict_boxes(pair.predictor, data.test), data.test.boxes)["miou"],
        "refined": iou_summary(predict_boxes(pair, data.test), data.test.boxes)["miou"]}
    results["wall_seconds"] = time.perf_counter() - start
    results["dataset"] = data.name
    results["epochs"] = {"predictor": EPOCHS, "refiner": EPOCHS, "classifier": CLASSIFIER_EPOCHS}
    print(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
