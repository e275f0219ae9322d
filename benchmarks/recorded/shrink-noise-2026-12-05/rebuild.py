"""Does compound shrinking lose to ``bn`` at 25% because of its architecture or its training?

    python benchmarks/recorded/shrink-noise-2026-12-05/rebuild.py runs/benchmarks/s15 [ARMS] [SEEDS]
    python benchmarks/recorded/shrink-noise-2026-12-05/rebuild.py --from \
        benchmarks/recorded/shrink-noise-2026-12-05/results/rebuild_*.jsonl

For each compound run of ``../shrink-alloc-2026-12-05/`` (run folders ``<arm>_s<seed>``, default
arms a-f at 25% and h, i at 50%), rebuild the architecture the search ended with directly from
the base's weights (the same dropped blocks and input side, each channel group cut to the same
width keeping its largest-|gamma| channels) and give it exactly a baseline's training: BatchNorm
re-estimation, then the same 2-epoch distillation fine-tune with the same seed. Compound's own
row (``charged``) spent most of that budget on the short fine-tunes of its intermediate steps
(at 25%, 100 of 124 steps, so its final architecture trained 24 steps). Prints one JSON line per
run, then the summary lines (``--from``: only the summary, of recorded row lines).
Deterministic: the bn baseline through this harness reproduces the recorded rows exactly.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from tfedge import (count_macs, evaluate_classifier, load_classifier, model_resolution,
                    recalibrate_batchnorm)
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.shrink import (SearchConfig, drop_blocks, finetune_with_distillation,
                           find_channel_groups, make_importance, prune_channels, set_resolution)

#: The 25% arms whose search decided on 500 validation images (the others: 1,000 of 2,000).
SMALL_VAL_ARMS = set("abhi")
TARGET_OF = {**{a: 0.25 for a in "abcdef"}, "h": 0.5, "i": 0.5}


def rebuild(base, arch):
    """The searched architecture, cut from ``base`` in one shot."""
    model = drop_blocks(base, arch["dropped_blocks"]) if arch["dropped_blocks"] else base
    if arch["resolution"] != model_resolution(base):
        model = set_resolution(model, arch["resolution"])
    groups = [g for g in find_channel_groups(model) if g.prunable]
    scores = make_importance("bn")(model, groups, None)
    keep = {g.name: sorted(np.argsort(-scores[g.name], kind="stable")[:arch["widths"].get(g.name, g.size)]
                           .tolist()) for g in groups}
    model = prune_channels(model, keep)
    if count_macs(model).macs != arch["macs"]:
        raise SystemExit(f"rebuilt {count_macs(model).macs:,d} MACs, the search had {arch['macs']:,d}")
    return model


def main(runs: Path, arms: str = "abcdefhi", seeds: str = "0,1,2") -> None:
    done = []
    datasets = {}
    for seed in (int(s) for s in seeds.split(",")):
        for arm in arms.replace(",", ""):
            val_size = 500 if arm in SMALL_VAL_ARMS else 2000
            if val_size not in datasets:
                datasets[val_size] = load_dataset("benchmark", benchmark=BenchmarkConfig(
                    image_size=128, object_size=(24, 64), train_size=4000, val_size=val_size,
                    test_size=1000, seed=0))
            data, target = datasets[val_size], TARGET_OF[arm]
            folder = runs / f"{arm}_s{seed}"
            base = load_classifier(folder / f"shrink_full_base_seed{seed}.keras")
            sidecar = folder / "shrink_full_models" / f"compound_full_{target:g}.keras.json"
            arch = json.loads(sidecar.read_text())["shrink"]["architecture"]
            rows = json.loads((folder / "shrink_full_seeds.json").read_text())[0]["rows"]
            charged = next(r["top1"] for r in rows if r["method"] == "compound")
            model = rebuild(base, arch)
            config = SearchConfig(target_macs=arch["macs"], finetune_epochs=2, round_to=8, seed=seed)
            start = time.perf_counter()
            recalibrate_batchnorm(model, data.train, batches=config.bn_batches,
                                  batch_size=config.batch_size)
            tuned = finetune_with_distillation(model, base, data.train, config=config.finetune())
            row = {"arm": arm, "seed": seed, "target": target, "macs": arch["macs"],
                   "resolution": arch["resolution"], "dropped_blocks": arch["dropped_blocks"],
                   "charged": charged, "rebuilt": evaluate_classifier(tuned, data.test).top1,
                   "seconds": round(time.perf_counter() - start)}
            done.append(row)
            print(json.dumps(row), flush=True)
    summarize(done)


def summarize(done: list[dict]) -> None:
    """The mean per arm (one JSON line), then rebuilt minus charged per target, overall and
    by the input side the search ended at, with how many runs got better / worse / equal."""
    by_arm = defaultdict(list)
    for row in done:
        by_arm[(row["target"], row["arm"])].append(row)
    summary = {f"{arm}@{target:g}": {"charged": round(float(np.mean([r["charged"] for r in rs])), 4),
                                     "rebuilt": round(float(np.mean([r["rebuilt"] for r in rs])), 4),
                                     "n": len(rs)}
               for (target, arm), rs in sorted(by_arm.items())}
    print(json.dumps({"summary": summary}))
    slices = defaultdict(list)
    for row in done:
        slices[f"{row['target']:g}"].append(row)
        slices[f"{row['target']:g}@{row['resolution']}px"].append(row)
    out = {}
    for name, rows in sorted(slices.items()):
        gain = [r["rebuilt"] - r["charged"] for r in rows]
        out[name] = {"charged": round(float(np.mean([r["charged"] for r in rows])), 4),
                     "rebuilt": round(float(np.mean([r["rebuilt"] for r in rows])), 4),
                     "mean_gain": round(float(np.mean(gain)), 4), "better": sum(x > 0 for x in gain),
                     "worse": sum(x < 0 for x in gain), "equal": sum(x == 0 for x in gain)}
    print(json.dumps({"rebuilt_minus_charged": out}))


if __name__ == "__main__":
    if sys.argv[1] == "--from":
        # Summarize recorded row lines (results/rebuild_*.jsonl) without running anything.
        summarize([json.loads(line) for path in sys.argv[2:] for line in open(path)
                   if line.startswith('{"arm"')])
    else:
        main(Path(sys.argv[1]), *sys.argv[2:4])
