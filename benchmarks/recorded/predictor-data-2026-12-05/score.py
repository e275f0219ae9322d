"""Issue #19 d3: held-out-scene box IoU of refiner files (and of the predictors they refine).

    python benchmarks/recorded/predictor-data-2026-12-05/score.py DIR

Scores every ``ref_<variant>_s<seed>.keras`` in DIR (a refiner's file names its predictor)
on the test split of the full benchmark (5,000 images over the 6 held-out photos no
predictor trained on): mean IoU, 10th percentile, share of boxes below IoU 0.5, mean IoU per
photo, and the share of boxes on the wrong object (IoU < 0.5 with the box's centre outside
the true box); for the predictor alone and with its refiner (2 passes). Then, per variant,
the mean and range over seeds. Last line: JSON.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _common import environment, setup_logging, spread  # noqa: E402


def wrong_object_share(boxes, truth, scores) -> float:
    """Share of boxes that miss (IoU < 0.5) with their centre outside the true box."""
    import numpy as np

    cy = (boxes[:, 0] + boxes[:, 2]) / 2
    cx = (boxes[:, 1] + boxes[:, 3]) / 2
    inside = ((cy >= truth[:, 0]) & (cy <= truth[:, 2]) & (cx >= truth[:, 1])
              & (cx <= truth[:, 3]))
    return float(np.mean((scores < 0.5) & ~inside))


def main() -> None:
    folder = Path(sys.argv[1])
    setup_logging()
    from tfedge.crop import load_predictor, predict_boxes
    from tfedge.crop._evaluate import iou, iou_by_background
    from tfedge.data import BenchmarkConfig, benchmark_backgrounds, load_benchmark

    config = BenchmarkConfig()  # the full size: 20,000 / 2,000 / 5,000
    data = load_benchmark(config)
    backgrounds = benchmark_backgrounds(config, "test")
    rows = []
    for path in sorted(folder.glob("ref_*_s*.keras")):
        variant, seed = re.fullmatch(r"ref_(.+)_s(\d+)\.keras", path.name).groups()
        pair = load_predictor(path)
        row = {"variant": variant, "seed": int(seed), "refiner": path.name,
               "predictor": Path(pair.predictor_path).name}
        for stage, model in (("first", pair.predictor), ("refined", pair)):
            boxes = predict_boxes(model, data.test)
            scores = iou(boxes, data.test.boxes)
            summary = iou_by_background(scores, backgrounds)
            row[stage] = {"miou": round(summary["miou"], 4), "p10": round(summary["p10"], 4),
                          "missed": round(summary["missed"], 4),
                          "wrong_object": round(wrong_object_share(boxes, data.test.boxes,
                                                                   scores), 4),
                          "by_photo": {name: round(v["miou"], 3)
                                       for name, v in summary["backgrounds"].items()}}
        print(json.dumps(row), flush=True)
        rows.append(row)
    variants = {}
    for name in sorted({r["variant"] for r in rows}):
        mine = [r for r in rows if r["variant"] == name]
        variants[name] = {f"{stage}_{key}": spread([r[stage][key] for r in mine])
                          for stage in ("first", "refined")
                          for key in ("miou", "p10", "missed", "wrong_object")}
        variants[name]["seeds"] = sorted(r["seed"] for r in mine)
    print(json.dumps({"benchmark": "predictor-data", "dataset": Path(data.path).name,
                      "rows": rows, "variants": variants, **environment()}))


if __name__ == "__main__":
    main()
