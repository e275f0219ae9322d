"""Compound shrinking against ``bn`` on the same converged bases with new seeds for everything
after the base: does the recorded 25% tie hold out of sample, and how large is one fine-tune's
noise?

    python benchmarks/recorded/shrink-noise-2026-12-05/pairs.py runs/benchmarks/s15 \
        [--base-seeds 0,1,2] [--repeats 1,2,3] [--target 0.25]
    python benchmarks/recorded/shrink-noise-2026-12-05/pairs.py \
        --from benchmarks/recorded/shrink-noise-2026-12-05/results/pairs_25.jsonl [--with-runs runs/benchmarks/s15]

Bases: ``<runs>/a_s<S>/shrink_full_base_seed<S>.keras`` of ``../shrink-alloc-2026-12-05/``
(resnet10_050 at 128 px, converged on 4,000 images). For base seed S and repeat k, seed
``100 k + S`` drives the search's scoring fine-tunes, the BatchNorm batches and the final
fine-tune of both methods. Compound runs the variant that came closest there (``f``: the
global width allocation, depth and width only, 1,000 search images, every other setting as
``benchmarks/shrink.py``'s full run); ``bn`` is network slimming, fine-tuned the same way.
One JSON line per pair, then the paired summary (mean difference and its standard error).
``--from`` summarizes recorded pair lines; ``--with-runs`` adds the earlier record's pairs
(``bn`` of ``a_sS``, compound of ``f_sS``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from tfedge import count_macs, evaluate_classifier, load_classifier
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.shrink import SearchConfig, run_shrink


def search_config(budget: int, seed: int) -> SearchConfig:
    """benchmarks/shrink.py's full-run compound settings with arm f's three changes."""
    return SearchConfig(target_macs=budget, finetune_epochs=2, round_to=8, score="finetune",
                        score_finetune_steps=20, importance="bn", width_allocation="global",
                        dimensions=("depth", "width"), step_macs_fraction=0.3,
                        resolution_multiple=0, width_step=0.1, val_size=1000, min_resolution=32,
                        seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--base-seeds", default="0,1,2")
    parser.add_argument("--repeats", default="1,2,3")
    parser.add_argument("--target", type=float, default=0.25)
    args = parser.parse_args()
    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=128, object_size=(24, 64), train_size=4000, val_size=2000, test_size=1000,
        seed=0))
    pairs = []
    for k in (int(x) for x in args.repeats.split(",")):
        for s in (int(x) for x in args.base_seeds.split(",")):
            seed = 100 * k + s
            base = load_classifier(args.runs / f"a_s{s}" / f"shrink_full_base_seed{s}.keras")
            budget = int(args.target * count_macs(base).macs)
            config = search_config(budget, seed)
            row = {"base_seed": s, "seed": seed, "target": args.target}
            for method in ("bn", "compound"):
                start = time.perf_counter()
                result = run_shrink(base, method, budget, data.train, data.val, config=config,
                                    progress=False)
                row[method] = evaluate_classifier(result.model, data.test).top1
                row[f"{method}_macs"] = result.macs
                row[f"{method}_seconds"] = round(time.perf_counter() - start)
                if method == "compound":
                    row["path"] = [st["dimension"] for st in result.steps[1:-1]]
            pairs.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps(summary(pairs, args.target)))


def summary(pairs: list[dict], target: float) -> dict:
    """Mean difference (compound - bn) and its standard error over the pairs, and the spread
    of ``bn`` between fine-tune seeds on each base (standard deviation)."""
    diff = np.array([p["compound"] - p["bn"] for p in pairs])
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else None
    by_base: dict[int, list[float]] = {}
    for p in pairs:
        by_base.setdefault(p["base_seed"], []).append(p["bn"])
    return {"pairs": len(pairs), "target": target,
            "bn_mean": float(np.mean([p["bn"] for p in pairs])),
            "compound_mean": float(np.mean([p["compound"] for p in pairs])),
            "difference_mean": float(diff.mean()), "difference_se": se,
            "compound_ahead": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
            "bn_sd_per_base": {str(s): round(float(np.std(v, ddof=1)), 4)
                               for s, v in sorted(by_base.items()) if len(v) > 1}}


def recorded_pairs(runs: Path, target: float) -> list[dict]:
    """``../shrink-alloc-2026-12-05/``'s own pairs: ``bn`` from ``a_sS``, compound from ``f_sS``."""
    pairs = []
    for folder in sorted(p for p in runs.glob("f_s*") if p.is_dir()):
        s = int(folder.name[3:])

        def top1(arm: str, method: str) -> float:
            rows = json.loads((runs / f"{arm}_s{s}" / "shrink_full_seeds.json").read_text())[0]["rows"]
            return next(r["top1"] for r in rows if r["method"] == method and r["target"] == target)

        pairs.append({"base_seed": s, "seed": s, "bn": top1("a", "bn"),
                      "compound": top1("f", "compound")})
    return pairs


def summarize_recorded() -> None:
    """``--from PAIRS.jsonl [--with-runs RUNS]``: the summary of recorded pair lines, with the
    earlier record's three pairs added when its run folders are given."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="source", type=Path, required=True)
    parser.add_argument("--with-runs", type=Path)
    parser.add_argument("--target", type=float, default=0.25)
    args = parser.parse_args()
    pairs = [json.loads(line) for line in args.source.open() if line.startswith('{"base_seed"')]
    if args.with_runs is not None:
        pairs += recorded_pairs(args.with_runs, args.target)
    print(json.dumps(summary(pairs, args.target)))


if __name__ == "__main__":
    summarize_recorded() if "--from" in sys.argv else main()
