"""Issue #15's full-image comparison at the full data size (20,000 / 2,000 / 5,000 images).

    python benchmarks/recorded/shrink-noise-2026-12-05/summarize_full.py runs/benchmarks/s20

reads the row lines (``== seed S: METHOD (full) at T: test top-1 X, M MMACs``) of every
``*_sS.log`` in the folder: seed 0's run (``a_s0``: every method at 25%, then compound, bn and
l1 at 50% before it was stopped), seeds 1 and 2 (``a_sS``: compound, bn, l1 at 25%;
``h_sS``: the same at 50%, on the same base). The logs, not ``shrink_full_seeds.json``,
because the benchmark writes that file once a seed has every row, and seed 0's run was stopped
early. Prints test top-1 per method and target (mean, then per seed), compound's margin over
the best baseline run on the same seeds, and a JSON line last.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


ROW = re.compile(r"== seed (\d+): (\w+) \(full\) at ([\d.]+): test top-1 ([\d.]+), ([\d.]+) MMACs")


#: Run folders read, and what their compound rows are called (``f``: compound with the global
#: width allocation searching depth and width only, started after seed 0 and stopped for the
#: CPU before its first row).
ARMS = {"a": "", "h": "", "f": "_global_depth_width"}


def load(runs: Path) -> dict:
    """{target: {method: {seed: (top1, macs)}}} over every run log in ``runs``."""
    table: dict = defaultdict(lambda: defaultdict(dict))
    for path in sorted(runs.glob("*_s*.log")):
        suffix = ARMS.get(path.stem.rsplit("_s", 1)[0])
        if suffix is None:
            continue
        for match in ROW.finditer(path.read_text(errors="replace")):
            seed, method, target, top1, mmacs = match.groups()
            table[float(target)][method + suffix][int(seed)] = (float(top1), float(mmacs) * 1e6)
    return table


def main(runs: Path) -> None:
    table = load(runs)
    out = {"targets": {}}
    for target in sorted(table):
        methods = table[target]
        seeds = sorted(methods.get("compound", {}))
        print(f"\n== {target:g} of the base's MACs (compound on seeds {seeds})")
        means = {m: float(np.mean([v[0] for v in b.values()])) for m, b in methods.items()}
        for method in sorted(methods, key=means.get, reverse=True):
            by_seed = methods[method]
            per = " / ".join(f"s{s} {by_seed[s][0]:.4f}" for s in sorted(by_seed))
            mmacs = np.mean([v[1] for v in by_seed.values()]) / 1e6
            print(f"  {method:11s} {means[method]:.4f}  ({per})  {mmacs:.2f} MMACs"
                  + ("" if set(by_seed) >= set(seeds) else "  [not on every seed]"))
        # Baselines only (not compound's variants), and only those run on compound's seeds.
        full = {m: b for m, b in methods.items()
                if not m.startswith("compound") and set(b) >= set(seeds)}
        margins = {}
        if seeds and full:
            best = max(full, key=lambda m: np.mean([full[m][s][0] for s in seeds]))
            margins = {s: round(methods["compound"][s][0] - full[best][s][0], 4) for s in seeds}
            mean_margin = float(np.mean(list(margins.values())))
            print(f"  compound - best baseline on every seed ({best}): {mean_margin:+.4f} "
                  f"(per seed {margins})")
        out["targets"][f"{target:g}"] = {
            "seeds": seeds,
            "methods": {m: {"top1_mean": means[m],
                            "top1_per_seed": {str(s): b[s][0] for s in sorted(b)},
                            "macs_mean": int(np.mean([v[1] for v in b.values()]))}
                        for m, b in methods.items()},
            "compound_minus_best_baseline": {str(s): v for s, v in margins.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
