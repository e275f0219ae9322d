"""Issue #19 d3: predictor boxes on held-out scenes, before/after wider scenes and distractors.

    TFEDGE_SCENE_ROOT=<root with darknet + mate-backgrounds> \
        python benchmarks/recorded/scenes-2026-12-04/run.py [--epochs 8] [--train-size 4000]

Trains ``boxnet_heat_r96_w8`` (the cascade's predictor) three ways, one seed, fixed epochs:

- ``default``: on the default benchmark's training scenes (13 photos), as today;
- ``extended``: on ``BenchmarkConfig(scenes="extended")``'s training scenes (26 photos);
- ``extended+distractors``: the same with ``augment_batch_tf(distractors=True)`` (patched in
  here: PredictorTrainConfig has no field for it yet).

Every predictor is scored on the extended benchmark's test split, whose 12 held-out scenes
none of them trained on (the 6 default held-out photos and 6 new ones), and on the default
test split: mean IoU, 10th percentile, share below 0.5, per scene. Last line: JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _common import environment, setup_logging  # noqa: E402

PREDICTOR = "boxnet_heat_r96_w8"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="default,extended,extended+distractors")
    args = parser.parse_args()
    setup_logging()
    import dataclasses

    import tfedge.crop._box_augment as box_augment
    from tfedge import count_macs, create_model
    from tfedge.crop import PredictorTrainConfig, predict_boxes, train_predictor
    from tfedge.crop._evaluate import iou_by_background
    from tfedge.data import BenchmarkConfig, benchmark_backgrounds, iou, load_dataset

    start = time.perf_counter()
    base = BenchmarkConfig(image_size=128, train_size=args.train_size, val_size=args.val_size,
                           test_size=args.test_size, seed=0)
    ext = dataclasses.replace(base, scenes="extended")
    data = {"default": load_dataset("benchmark", benchmark=base),
            "extended": load_dataset("benchmark", benchmark=ext)}
    tests = {"extended_test": (data["extended"].test, benchmark_backgrounds(ext, "test")),
             "default_test": (data["default"].test, benchmark_backgrounds(base, "test"))}
    base_macs = count_macs(create_model("resnet10_050", resolution=128, num_classes=10)).macs
    original = box_augment.augment_batch_tf
    results = {}
    for variant in args.variants.split(","):
        source = "default" if variant == "default" else "extended"
        box_augment.augment_batch_tf = (functools.partial(original, distractors=True)
                                        if "distractors" in variant else original)
        t0 = time.perf_counter()
        try:
            predictor, _ = train_predictor(PREDICTOR, data[source].train,
                                           config=PredictorTrainConfig(epochs=args.epochs,
                                                                       seed=args.seed))
        finally:
            box_augment.augment_batch_tf = original
        row = {"train_scenes": source, "train_seconds": time.perf_counter() - t0,
               "predictor_macs": count_macs(predictor).macs}
        for name, (split, backgrounds) in tests.items():
            row[name] = iou_by_background(iou(predict_boxes(predictor, split), split.boxes),
                                          backgrounds)
        print(f"{variant}: extended held-out mIoU {row['extended_test']['miou']:.4f} "
              f"p10 {row['extended_test']['p10']:.3f}; default held-out "
              f"{row['default_test']['miou']:.4f} p10 {row['default_test']['p10']:.3f}",
              file=sys.stderr, flush=True)
        results[variant] = row
    print(json.dumps({"benchmark": "scenes", "predictor": PREDICTOR, "epochs": args.epochs,
                      "seed": args.seed, "train_images": args.train_size,
                      "test_images": args.test_size, "base_macs": base_macs,
                      "variants": results, "wall_seconds": time.perf_counter() - start,
                      **environment()}, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
