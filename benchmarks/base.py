"""Base classifier on the built-in benchmark: full 128-px images, no cropping.

    python benchmarks/base.py            # full run: 3 seeds, full splits
    python benchmarks/base.py --quick    # one seed, small splits (< 10 minutes on 2 cores)

Prints, as its last line, one JSON object with ``top1`` (test split; mean over
seeds), ``top1_spread``, ``macs``, ``params``, ``epochs``, ``train_seconds``
and the environment record. Every later benchmark compares against this model
at the same training budget.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from _common import (FULL_SEEDS, QUICK_SEEDS, REPO, environment, print_result,
                     reusable_sidecar, run_main, setup_logging, spread)

log = logging.getLogger("benchmarks.base")

BASE_MODEL = "resnet10_050"
#: Full: the whole default benchmark, 4 epochs (the budget of the issues' calibration runs).
FULL = dict(train_size=20000, val_size=2000, test_size=5000, epochs=4)
QUICK = dict(train_size=4000, val_size=500, test_size=1000, epochs=5)


def run(quick: bool, model: str, epochs: int | None, output_dir: Path, reuse: bool = False) -> dict:
    from tfedge import count_macs
    from tfedge.data import BenchmarkConfig, load_dataset
    from tfedge import (TrainConfig, evaluate_classifier, load_classifier,
                               train_classifier)

    sizes = QUICK if quick else FULL
    epochs = epochs or sizes["epochs"]
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=128, train_size=sizes["train_size"], val_size=sizes["val_size"],
        test_size=sizes["test_size"], seed=0))
    top1s, val_top1s, seconds = [], [], []
    macs = params = None
    for seed in seeds:
        log.info("== base %s, seed %d, %d epochs on %d images", model, seed, epochs, len(data.train))
        out = output_dir / f"base_{model}_seed{seed}.keras"
        if reuse and out.exists():
            meta = reusable_sidecar(out, dataset=data.name, epochs=epochs, seed=seed)
            log.info("reusing %s (trained in %.0f s)", out, meta["train_seconds"])
            trained = load_classifier(out)
            val_top1, train_seconds = meta["val"]["top1"], meta["train_seconds"]
        else:
            trained, result = train_classifier(
                model, data.train, val=data.val, config=TrainConfig(epochs=epochs, seed=seed),
                output=out, resolution=128, metadata={"dataset": data.name})
            val_top1 = result.val.top1 if result.val else float("nan")
            train_seconds = result.train_seconds
        test = evaluate_classifier(trained, data.test)
        report = count_macs(trained)
        macs, params = report.macs, report.params
        top1s.append(test.top1)
        val_top1s.append(val_top1)
        seconds.append(train_seconds)
        log.info("seed %d: test top-1 %.4f, val top-1 %.4f, %.0f s", seed, test.top1,
                 val_top1s[-1], train_seconds)
    return {"benchmark": "base", "quick": quick, "model": model, "resolution": 128,
            "top1": spread(top1s)["mean"], "top1_spread": spread(top1s),
            "val_top1": spread(val_top1s)["mean"], "macs": macs, "params": params,
            "epochs": epochs, "train_seconds": spread(seconds)["mean"], "seeds": list(seeds),
            "train_images": len(data.train), "test_images": len(data.test),
            "dataset": data.name, **environment()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, small splits")
    parser.add_argument("--model", type=str, default=BASE_MODEL)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output-dir", dest="output_dir", type=Path,
                        default=REPO / "runs" / "benchmarks")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate base_<model>_seed<N>.keras already in --output-dir (as "
                             "benchmarks/cascade.py leaves them) instead of training again")
    args = parser.parse_args()
    setup_logging()
    start = time.perf_counter()
    result = run(args.quick, args.model, args.epochs, args.output_dir, args.reuse)
    result["wall_seconds"] = time.perf_counter() - start
    print_result(result)


if __name__ == "__main__":
    run_main(main)
