"""Issue #15's crop rows at the full data size: compound shrinking on cropped inputs (DIC+CS).

    python benchmarks/recorded/shrink-crop-full-2026-12-05/summarize.py runs/benchmarks/s20c \
        benchmarks/recorded/shrink-full-2026-12-05/summary.txt
    python benchmarks/recorded/shrink-crop-full-2026-12-05/summarize.py \
        benchmarks/recorded/shrink-crop-full-2026-12-05/logs benchmarks/recorded/shrink-full-2026-12-05/summary.txt

Reads the crop runs' logs (``c_sS.log``: ``== seed S: base test top-1 ...``, ``== seed S:
crop base test top-1 ...`` and ``== seed S: METHOD (crop) at T: test top-1 X, M MMACs``; the
MMACs include the predictor and refiner) and the full-image comparison on the same three
bases (the last line of ``../shrink-full-2026-12-05/summary.txt``). Prints, per target:

- every crop method's test top-1 (mean, per seed) and compound's margin over the best crop
  baseline on the same seeds (the method's own contribution, same inputs);
- compound on crops against the best full-image baseline (DIC+CS against a baseline that
  neither crops nor searches: the paper's comparison, aim >= +3 points);
- compound on crops against the base, where its MACs are <= 40% of the base's;

and a JSON line last.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

BASE = re.compile(r"== seed (\d+): base test top-1 ([\d.]+), ([\d.]+) MMACs")
CROP_BASE = re.compile(r"== seed (\d+): crop base test top-1 ([\d.]+)")
ROW = re.compile(r"== seed (\d+): (\w+) \(crop\) at ([\d.]+): test top-1 ([\d.]+), ([\d.]+) MMACs")
FULL_BASELINES = ("uniform", "resolution", "l1", "bn", "hrank")


def load_crop_runs(folder: Path):
    base, crop_base, rows = {}, {}, defaultdict(lambda: defaultdict(dict))
    for path in sorted(folder.glob("c_s*.log")):
        text = path.read_text(errors="replace")
        for seed, top1, mmacs in BASE.findall(text):
            base[int(seed)] = (float(top1), float(mmacs) * 1e6)
        for seed, top1 in CROP_BASE.findall(text):
            crop_base[int(seed)] = float(top1)
        for seed, method, target, top1, mmacs in ROW.findall(text):
            rows[float(target)][method][int(seed)] = (float(top1), float(mmacs) * 1e6)
    return base, crop_base, rows


def mean_over(by_seed: dict, seeds) -> float:
    return float(np.mean([by_seed[s] for s in seeds]))


def main(folder: Path, full_summary: Path) -> None:
    base, crop_base, rows = load_crop_runs(folder)
    full = json.loads(full_summary.read_text().strip().splitlines()[-1])["targets"]
    base_macs = np.mean([m for _, m in base.values()])
    print("base (full images): " + " / ".join(f"s{s} {base[s][0]:.4f}" for s in sorted(base))
          + f"  {base_macs / 1e6:.2f} MMACs")
    print("crop base: " + " / ".join(f"s{s} {crop_base[s]:.4f}" for s in sorted(crop_base))
          + (f"  mean {np.mean(list(crop_base.values())):.4f}" if crop_base else ""))
    out: dict = {"base_top1": {str(s): v[0] for s, v in sorted(base.items())},
                 "base_macs": int(base_macs) if base else None,
                 "crop_base_top1": {str(s): v for s, v in sorted(crop_base.items())},
                 "targets": {}}
    for target in sorted(rows):
        methods = rows[target]
        compound = methods.get("compound", {})
        seeds = sorted(compound)
        print(f"\n== {target:g} of the base's MACs, crops (seeds {seeds})")
        entry: dict = {"methods": {}}
        for method in sorted(methods, key=lambda m: -np.mean([v[0] for v in methods[m].values()])):
            by_seed = methods[method]
            per = " / ".join(f"s{s} {by_seed[s][0]:.4f}" for s in sorted(by_seed))
            ratio = np.mean([v[1] for v in by_seed.values()]) / base_macs
            print(f"  {method:10s} {np.mean([v[0] for v in by_seed.values()]):.4f}  ({per})  "
                  f"{ratio:.3f} of the base's MACs")
            entry["methods"][method] = {"top1_per_seed": {str(s): v[0] for s, v in by_seed.items()},
                                        "macs_ratio": round(float(ratio), 4)}
        if not seeds:
            out["targets"][f"{target:g}"] = entry
            continue
        top1 = {s: compound[s][0] for s in seeds}
        crop_baselines = {m: {s: v[0] for s, v in b.items()} for m, b in methods.items()
                          if m != "compound" and set(b) >= set(seeds)}
        if crop_baselines:
            best = max(crop_baselines, key=lambda m: mean_over(crop_baselines[m], seeds))
            margin = {s: top1[s] - crop_baselines[best][s] for s in seeds}
            print(f"  compound - best crop baseline ({best}): {np.mean(list(margin.values())):+.4f}"
                  f" (per seed " + ", ".join(f"{v:+.4f}" for v in margin.values()) + ")")
            entry["compound_minus_best_crop_baseline"] = {
                "baseline": best, "mean": round(float(np.mean(list(margin.values()))), 4),
                "per_seed": {str(s): round(v, 4) for s, v in margin.items()}}
        full_methods = full[f"{target:g}"]["methods"]
        full_base = {m: {int(s): v for s, v in full_methods[m]["top1_per_seed"].items()}
                     for m in FULL_BASELINES if m in full_methods}
        full_base = {m: b for m, b in full_base.items() if set(b) >= set(seeds)}
        best_full = max(full_base, key=lambda m: mean_over(full_base[m], seeds))
        margin = {s: top1[s] - full_base[best_full][s] for s in seeds}
        print(f"  compound on crops - best full-image baseline ({best_full}, "
              f"{mean_over(full_base[best_full], seeds):.4f}): {np.mean(list(margin.values())):+.4f}"
              f" (per seed " + ", ".join(f"{v:+.4f}" for v in margin.values()) + ")")
        entry["compound_minus_best_full_baseline"] = {
            "baseline": best_full, "mean": round(float(np.mean(list(margin.values()))), 4),
            "per_seed": {str(s): round(v, 4) for s, v in margin.items()}}
        ratio = np.mean([compound[s][1] for s in seeds]) / base_macs
        over_base = {s: top1[s] - base[s][0] for s in seeds}
        print(f"  compound on crops at {ratio:.3f} of the base's MACs - base: "
              f"{np.mean(list(over_base.values())):+.4f} (per seed "
              + ", ".join(f"{v:+.4f}" for v in over_base.values()) + ")")
        entry["compound_minus_base"] = {
            "macs_ratio": round(float(ratio), 4),
            "mean": round(float(np.mean(list(over_base.values()))), 4),
            "per_seed": {str(s): round(v, 4) for s, v in over_base.items()}}
        out["targets"][f"{target:g}"] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
