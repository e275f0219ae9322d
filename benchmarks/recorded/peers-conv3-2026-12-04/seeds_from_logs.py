"""Per-seed test top-1 of peers trained with ``tfedge train --evaluate-test``, read from their logs.

    python seeds_from_logs.py runs/exp/mnv2/m050r128_s*.log runs/exp/mnv2/m075r96_s*.log

Each log's last line is the JSON summary ``tfedge train`` prints (``test_top1``,
``epochs``, ``best_epoch``, ``stop_reason``, ``train_seconds``, ``macs``). Logs are
grouped by the model and resolution in their file name (``m<width>r<res>_s<seed>.log``).
A seed with no log is taken from ``peers_seed0_mobilenetv2_sweep.json`` where that run
trained it (``source`` says which), and so is the peer's int8 time (one thread, timed
interleaved with the cascade there). Every group is set beside the crop pipeline and the
cascade of ``peers_3seeds_mobilenetv2_035.json`` (same data, seeds and recipe family),
seed by seed.
The last line is JSON: ``{"peers": [...], "seeds": [...], "crop_per_seed": [...],
"cascade_per_seed": [...]}`` (the last three from that file).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = re.compile(r"m(?P<width>\d+)r(?P<res>\d+)_s(?P<seed>\d+)\.log$")


def summary_line(path: Path) -> dict:
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"{path}: no JSON summary line (the training has not finished)")


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit(__doc__)
    groups: dict[str, dict[int, dict]] = {}
    for p in map(Path, paths):
        m = NAME.search(p.name)
        if m is None:
            raise SystemExit(f"{p}: expected a name like m050r128_s1.log")
        peer = f"mobilenetv2_{m['width']}@{m['res']}"
        groups.setdefault(peer, {})[int(m["seed"])] = summary_line(p)
    sweep = json.loads((HERE / "peers_seed0_mobilenetv2_sweep.json").read_text())
    swept = {r["name"]: r for r in sweep["rows"]}
    for peer, seeds in groups.items():
        row = swept.get(peer)
        for i, seed in enumerate(sweep["seeds"] if row else ()):
            if seed not in seeds:
                budget = row["epochs_budget"][i]
                seeds[seed] = {"test_top1": row["top1_per_seed"][i], "macs": row["macs"],
                               "epochs": budget["epochs_used"], "best_epoch": budget["best_epoch"],
                               "stop_reason": budget["stop_reason"], "train_seconds": None,
                               "source": "peers_seed0_mobilenetv2_sweep.json"}
    ref = json.loads((HERE / "peers_3seeds_mobilenetv2_035.json").read_text())
    by_kind = {r["kind"]: r for r in ref["rows"] if r["kind"] in ("base", "crop", "cascade")}
    swept_ms = {r["kind"]: r["int8_ms"] for r in sweep["rows"] if r["kind"] in ("crop", "cascade")}
    ref_seeds = list(ref["seeds"])
    crop = dict(zip(ref_seeds, by_kind["crop"]["top1_per_seed"]))
    cascade = dict(zip(ref_seeds, by_kind["cascade"]["top1_per_seed"]))
    rows = []
    for peer, seeds in sorted(groups.items()):
        order = sorted(seeds)
        top1 = [seeds[s]["test_top1"] for s in order]
        row = {"name": peer, "seeds": order, "top1_per_seed": top1,
               "top1_mean": statistics.fmean(top1), "top1_min": min(top1), "top1_max": max(top1),
               "macs": seeds[order[0]]["macs"],
               "epochs": [seeds[s]["epochs"] for s in order],
               "best_epoch": [seeds[s]["best_epoch"] for s in order],
               "stop_reason": [seeds[s]["stop_reason"] for s in order],
               "train_minutes": [None if seeds[s]["train_seconds"] is None
                                 else round(seeds[s]["train_seconds"] / 60, 1) for s in order],
               "source": [seeds[s].get("source", "log") for s in order]}
        row["minus_base_points"] = round(100 * (row["top1_mean"] - by_kind["base"]["top1_mean"]), 1)
        if peer in swept:
            row["int8_ms"] = swept[peer]["int8_ms"]
            # time of the crop pipeline / cascade over the peer's, all timed in the sweep's run
            row["int8_ratio"] = {k: round(ms / row["int8_ms"], 3) for k, ms in swept_ms.items()}
        if all(s in crop for s in order):
            row["crop_minus_peer_points"] = [round(100 * (crop[s] - seeds[s]["test_top1"]), 1)
                                             for s in order]
            row["cascade_minus_peer_points"] = [
                round(100 * (cascade[s] - seeds[s]["test_top1"]), 1) for s in order]
        rows.append(row)
        print(f"{peer}: top-1 {row['top1_mean']:.3f} ({row['top1_min']:.3f}-{row['top1_max']:.3f})"
              f" per seed {' / '.join(f'{t:.3f}' for t in top1)}, epochs {row['epochs']}"
              f" (best {row['best_epoch']}), {row['macs'] / 1e6:.1f} M MACs"
              + (f", int8 {row['int8_ms']:.3f} ms" if "int8_ms" in row else ""))
        print(f"  minus the base's mean: {row['minus_base_points']:+.1f} points")
        if "crop_minus_peer_points" in row:
            print(f"  crop pipeline minus peer, per seed: {row['crop_minus_peer_points']}"
                  f" (means {100 * (by_kind['crop']['top1_mean'] - row['top1_mean']):+.1f});"
                  f" cascade minus peer: {row['cascade_minus_peer_points']}"
                  f" (means {100 * (by_kind['cascade']['top1_mean'] - row['top1_mean']):+.1f})")
        if "int8_ratio" in row:
            print(f"  int8 time over the peer's, the sweep's run: {row['int8_ratio']}")
    print(json.dumps({"peers": rows, "seeds": ref_seeds,
                      "crop_per_seed": [crop[s] for s in ref_seeds],
                      "cascade_per_seed": [cascade[s] for s in ref_seeds]}, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
