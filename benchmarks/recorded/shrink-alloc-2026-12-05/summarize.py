"""Issue #15's full-image comparison with compound's two width allocations, 3 seeds.

    python benchmarks/recorded/shrink-alloc-2026-12-05/summarize.py runs/benchmarks/s15 [--target 0.5]

reads, per seed S, ``a_sS/shrink_full_seeds.json`` (every method, compound with
``width_allocation="uniform"``, on the base that run trained) and, on the same base (hard-linked),
``b_sS`` (compound, ``width_allocation="global"``), ``c_sS`` and ``d_sS`` (uniform and global,
the search deciding on 1,000 validation images instead of 500: ``--sizes 4000 2000 1000``, the
same training and test images), ``e_sS`` (global, 1,000, 8 scoring steps instead of 20) and
``f_sS`` (global, 1,000, ``--dimensions depth width``); with ``--target 0.5``, ``h_sS``
(compound uniform and bn) and ``i_sS`` (compound global). Prints a table, times seed 0's models
in int8 interleaved in this one process at 25% (one thread; the runs' own timings came from
different processes), and prints a JSON line last.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

#: Each run folder's compound row, by the name it gets in the table, per MAC target. At 50%
#: (``--target 0.5``): ``h_sS`` compound (uniform) and bn, ``i_sS`` compound (global), the
#: search on 500 validation images as in ``a``/``b``.
ARMS_BY_TARGET = {
    0.25: {"a": "compound", "b": "compound_global", "c": "compound_val1000",
           "d": "compound_global_val1000", "e": "compound_global_val1000_score8",
           "f": "compound_global_val1000_no_resolution"},
    0.5: {"h": "compound", "i": "compound_global"},
}
TARGET = float(sys.argv[sys.argv.index("--target") + 1]) if "--target" in sys.argv else 0.25
ARMS = ARMS_BY_TARGET[TARGET]
ORDER = (*ARMS.values(), "uniform", "resolution", "l1", "bn", "hrank")


def _rows(root: Path, arm: str, seed: int) -> list[dict]:
    path = root / f"{arm}_s{seed}" / "shrink_full_seeds.json"
    rows = json.loads(path.read_text())[0]["rows"]
    out = []
    for r in rows:
        if "error" in r or r["inputs"] != "full" or r["target"] != TARGET:
            continue
        name = ARMS[arm] if r["method"] == "compound" else r["method"]
        out.append({**r, "name": name})
    return out


def main(root: Path) -> None:
    first = next(iter(ARMS))
    seeds = sorted(int(p.name[3:]) for p in root.glob(f"{first}_s*") if p.is_dir()
                   and all((root / f"{arm}_s{p.name[3:]}" / "shrink_full_seeds.json").exists()
                           for arm in ARMS))
    table: dict[str, dict[int, dict]] = {}
    bases = {}
    for s in seeds:
        bases[s] = json.loads((root / f"{first}_s{s}" / "shrink_full_seeds.json").read_text()
                              )[0]["base_top1"]
        for arm in ARMS:
            for r in _rows(root, arm, s):
                table.setdefault(r["name"], {})[s] = r
    print(f"seeds {seeds}; base test top-1 " + " / ".join(f"{bases[s]:.3f}" for s in seeds)
          + f" (mean {np.mean(list(bases.values())):.3f})")
    print(f"{'method':<38} {'top-1 mean':>10} {'min':>6} {'max':>6}  per seed{'':<14} "
          f"{'MMACs':>6}  steps (seed: dimensions)")
    summary = []
    for name in ORDER:
        per = table.get(name, {})
        if len(per) != len(seeds):
            continue
        top = [per[s]["top1"] for s in seeds]
        macs = float(np.mean([per[s]["macs"] for s in seeds]))
        paths = {s: [st["dimension"] for st in per[s]["steps"][1:-1]] for s in seeds} \
            if name.startswith("compound") else {}
        print(f"{name:<38} {np.mean(top):>10.3f} {min(top):>6.3f} {max(top):>6.3f}  "
              + " / ".join(f"{t:.3f}" for t in top) + f"  {macs / 1e6:>6.2f}  "
              + "; ".join(f"{s}: {','.join(p)}" for s, p in paths.items()))
        summary.append({"method": name, "top1_mean": float(np.mean(top)), "top1_min": min(top),
                        "top1_max": max(top), "top1_per_seed": top, "macs_mean": macs,
                        "macs_per_seed": [per[s]["macs"] for s in seeds],
                        "val_top1_per_seed": [per[s]["val_top1"] for s in seeds],
                        "paths": paths or None})
    best = max((r for r in summary if not r["method"].startswith("compound")),
               key=lambda r: r["top1_mean"])
    for r in summary:
        if r["method"].startswith("compound"):
            diff = [a - b for a, b in zip(r["top1_per_seed"], best["top1_per_seed"])]
            print(f"{r['method']} - best baseline ({best['method']}): "
                  f"{100 * (r['top1_mean'] - best['top1_mean']):+.1f} points on the mean; per seed "
                  + " / ".join(f"{100 * d:+.1f}" for d in diff))
    timing = (_time_seed0(root, seeds[0]) if "--no-timing" not in sys.argv and TARGET == 0.25
              else {})
    for r in summary:
        r["int8_ms_seed0"] = timing.get(r["method"])
    if timing:
        print("int8 ms (seed", seeds[0], "models, one thread, interleaved): "
              + ", ".join(f"{k} {v:.3f}" for k, v in timing.items()))
    print(json.dumps({"seeds": seeds, "base_top1_per_seed": [bases[s] for s in seeds],
                      "best_baseline": best["method"], "rows": summary}))


def _time_seed0(root: Path, seed: int) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from shrink import _int8  # benchmarks/shrink.py's converter, same calibration

    from tfedge import load_classifier
    from tfedge.data import BenchmarkConfig, load_dataset
    from tfedge.shrink import time_interleaved

    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=128, object_size=(24, 64), train_size=4000, val_size=500, test_size=1000,
        seed=0))
    images = data.train.images[:64]
    files = {"base": root / f"a_s{seed}" / f"shrink_full_base_seed{seed}.keras"}
    for path in sorted((root / f"a_s{seed}" / "shrink_full_models").glob("*_full_0.25.keras")):
        files[path.name.split("_full_")[0]] = path
    for arm, name in ARMS.items():
        files[name] = root / f"{arm}_s{seed}" / "shrink_full_models" / "compound_full_0.25.keras"
    tflite = {name: _int8(load_classifier(p), images) for name, p in files.items()}
    return {k: v["p50"] for k, v in time_interleaved(tflite).items()}


if __name__ == "__main__":
    main(Path(sys.argv[1]))
