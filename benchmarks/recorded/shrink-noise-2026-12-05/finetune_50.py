"""Did the final fine-tune cost compound shrinking accuracy at 50% on the full data size?

    python benchmarks/recorded/shrink-noise-2026-12-05/finetune_50.py BASE.keras [LEARNING_RATES]

BASE: seed 0's full-size base (#19's ``runs/benchmarks/peers_full/base_resnet10_050_seed0.keras``,
the one ``run_full.sh`` hard-links). Repeats the benchmark's compound search at 50% of its MACs
(the full run's settings, seed 0) without the final fine-tune (BatchNorm re-estimation only),
scores that model on the test split, then gives it the final fine-tune the benchmark gave it
(2 epochs of the 292 steps left after the 2 x 20 charged) at each learning rate (default 3e-4;
the benchmark's is 1e-3) and scores each. One JSON line per result.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from tfedge import count_macs, evaluate_classifier, load_classifier
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.shrink import SearchConfig, compound_search, finetune_with_distillation


def main(base_path: str, rates: str = "0.0003") -> None:
    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=128, object_size=(24, 64), train_size=20000, val_size=2000, test_size=5000,
        seed=0))
    base = load_classifier(base_path)
    config = SearchConfig(target_macs=int(0.5 * count_macs(base).macs), finetune_epochs=0,
                          round_to=8, score="finetune", score_finetune_steps=20,
                          importance="bn", step_macs_fraction=0.3, resolution_multiple=0,
                          width_step=0.1, val_size=1000, min_resolution=32, seed=0)
    result = compound_search(base, data.train, data.val, config, progress=True)
    print(json.dumps({"steps": [(s["dimension"], s["macs"], s["val_top1"]) for s in result.steps]}),
          flush=True)
    print(json.dumps({"search_only_test": evaluate_classifier(result.model, data.test).top1}),
          flush=True)
    final = dataclasses.replace(config, finetune_epochs=2).finetune()
    for rate in (float(r) for r in rates.split(",")):
        tuned = finetune_with_distillation(
            result.model, base, data.train,
            config=dataclasses.replace(final, steps_per_epoch=292, learning_rate=rate))
        print(json.dumps({"lr": rate, "val": evaluate_classifier(tuned, data.val).top1,
                          "test": evaluate_classifier(tuned, data.test).top1}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
