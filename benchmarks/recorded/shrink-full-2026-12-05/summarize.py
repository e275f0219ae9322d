"""Issue #15's full-image comparison at the full data size, with the fine-tune rule of 884d5b8.

    python benchmarks/recorded/shrink-full-2026-12-05/summarize.py runs/benchmarks/s20 runs/benchmarks/s20g \
        runs/benchmarks/s20g/rebuild.out
    python benchmarks/recorded/shrink-full-2026-12-05/summarize.py \
        benchmarks/recorded/shrink-noise-2026-12-05/logs benchmarks/recorded/shrink-full-2026-12-05/logs \
        benchmarks/recorded/shrink-full-2026-12-05/results/rebuild_full.jsonl

Reads the row lines (``== seed S: METHOD (full) at T: test top-1 X, M MMACs``) of the run logs:

- the first folder (``../shrink-noise-2026-12-05/``'s runs): the baselines, and compound with
  the default (uniform) width allocation and no keep-better-start rule (``a_sS``, ``h_sS``);
- the second (this record's runs, same bases): compound with ``--width-allocation global``
  (``g_sS``; ``g2_s1`` is seed 1's 25% again after 2460330, and replaces ``g_s1``'s), and
  compound with the default allocation at 50% on seed 0 (``u_s0``), both with the rule, and
  (exploratory) compound with the default allocation and ``--importance l1`` at 50% (``l_sS``).

For the first folder's rows it also reads whether the rule would have fired (the validation
top-1 before the final fine-tune, the last search step's or a baseline's one-shot cut's,
above the fine-tuned one's). Where it would not have, the row
stands for compound with the rule too; where it would, the rerun (``u_s0``) does.
Prints test top-1 per method and target (mean, then per seed), each compound variant's margin
over the best baseline on the same seeds, and a JSON line last.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROW = re.compile(r"== seed (\d+): (\w+) \(full\) at ([\d.]+): test top-1 ([\d.]+), ([\d.]+) MMACs")
STEP = re.compile(r"^step \d+: \w+ -> .*?val top-1 ([\d.]+)", re.M)
TUNED = re.compile(r"^fine-tuned .*?val top-1 ([\d.]+)", re.M)
BASELINE_BEFORE = re.compile(r"^\w+ baseline: .*?val top-1 ([\d.]+) before fine-tuning", re.M)
BASELINE_TUNED = re.compile(r"^\w+ baseline fine-tuned .*?val top-1 ([\d.]+)", re.M)

#: What the compound rows of each run folder are called (the baselines keep their names).
FIRST = {"a": "compound_uniform_no_rule", "h": "compound_uniform_no_rule"}
SECOND = {"g": "compound_global", "g2": "compound_global", "u": "compound_uniform",
          "l": "compound_uniform_l1"}


def read_rows(path: Path, compound_name: str, table) -> dict:
    """Add ``path``'s rows to ``table``; return {(seed, target, method): (validation top-1
    before the final fine-tune, after it)} for its rows (from the log lines before each)."""
    text = path.read_text(errors="replace")
    fired, position = {}, 0
    for match in ROW.finditer(text):
        seed, method, target, top1, mmacs = match.groups()
        key = (int(seed), float(target))
        name = compound_name if method == "compound" else method
        table[key[1]][name][key[0]] = (float(top1), float(mmacs) * 1e6)
        before = text[position:match.start()]
        if method == "compound":
            steps, tuned = STEP.findall(before), TUNED.findall(before)
        else:
            steps, tuned = BASELINE_BEFORE.findall(before), BASELINE_TUNED.findall(before)
        if steps and tuned:
            fired[(key[0], key[1], name)] = (float(steps[-1]), float(tuned[-1]))
        position = match.end()
    return fired


def load(first: Path, second: Path):
    table: dict = defaultdict(lambda: defaultdict(dict))
    fired: dict = {}
    for path in sorted(first.glob("*_s*.log")):
        name = FIRST.get(path.stem.rsplit("_s", 1)[0])
        if name is not None:
            fired.update(read_rows(path, name, table))
    # g before g2, so that seed 1's 25% rerun replaces the first one.
    for prefix in ("g", "g2", "u", "l"):
        for path in sorted(second.glob(f"{prefix}_s*.log")):
            read_rows(path, SECOND[prefix], table)
    # Compound with the default allocation and the rule: the rerun where the rule fired, else
    # the row without it (the rule changes nothing where it does not fire).
    for target, methods in table.items():
        old = methods.get("compound_uniform_no_rule", {})
        for seed, value in old.items():
            before, after = fired.get((seed, target, "compound_uniform_no_rule"), (1.0, 0.0))
            if not before > after:
                methods["compound_uniform"].setdefault(seed, value)
    return table, fired


def landings(second: Path) -> dict[str, list]:
    """Each compound search's width steps: MACs over the step's goal (``max(target, 0.7 x the
    MACs before)``, the full run's ``step_macs_fraction``) and the allocation it used. A
    global step under 0.95 of its goal is the coarse landing 2460330 replaced by the uniform
    cut; it shows that the runs from 884d5b8 had none but ``g_s1``'s 25% (rerun as ``g2_s1``)."""
    out = {}
    for path in sorted(second.glob("*/shrink_full_seed*/*.search.json")):
        log = json.loads(path.read_text())
        target, before, steps = log["target_macs"], log["steps"][0]["macs"], []
        for step in log["steps"][1:]:
            if step["dimension"] == "width":
                goal = max(target, math.floor(0.7 * before))
                steps.append((round(step["macs"] / goal, 3), step["detail"]["allocation"]))
            before = step["macs"]
        out[f"{path.parts[-3]}/{path.stem.replace('.search', '')}"] = steps
    return out


def main(first: Path, second: Path, rebuilds: Path | None = None) -> None:
    table, fired = load(first, second)
    print("width steps, MACs / goal (allocation):")
    for run, steps in landings(second).items():
        print(f"  {run:28s} " + ", ".join(f"{r:.3f} ({a})" for r, a in steps))
    would = sorted(f"{m} s{s}@{t:g}" for (s, t, m), (b, a) in fired.items() if b > a)
    out = {"targets": {}, "rule_would_fire_on_rows_without_it": would,
           "rows_checked_for_the_rule": len(fired)}
    print(f"keep-better-start would have fired on {len(would)} of the {len(fired)} rows run "
          f"without it: {', '.join(would) or 'none'}")
    pairs = [v for (_, _, m), v in fired.items() if not m.startswith("compound")]
    if pairs:
        print(f"  its {len(pairs)} baseline rows: validation {min(b for b, _ in pairs):.3f}-"
              f"{max(b for b, _ in pairs):.3f} before the fine-tune, {min(a for _, a in pairs):.3f}-"
              f"{max(a for _, a in pairs):.3f} after, at least {min(a - b for b, a in pairs):+.3f}")
    print("int8 ms of this record's runs (first seed's models, timed beside the base):")
    for path in sorted(second.glob("*_s*.out")):
        last = json.loads(path.read_text().strip().splitlines()[-1])
        print(f"  {path.stem:6s} base {last['base_int8_ms']:.3f}  " + ", ".join(
            f"{r['target']:g}: {r['int8_ms']:.3f}" for r in last["rows"]))
    for target in sorted(table):
        methods = table[target]
        print(f"\n== {target:g} of the base's MACs")
        means = {m: float(np.mean([v[0] for v in b.values()])) for m, b in methods.items()}
        for method in sorted(methods, key=means.get, reverse=True):
            by_seed = methods[method]
            per = " / ".join(f"s{s} {by_seed[s][0]:.4f}" for s in sorted(by_seed))
            mmacs = np.mean([v[1] for v in by_seed.values()]) / 1e6
            print(f"  {method:25s} {means[method]:.4f}  ({per})  {mmacs:.2f} MMACs")
        baselines = {m: b for m, b in methods.items() if not m.startswith("compound")}
        margins = {}
        for variant in sorted(m for m in methods if m.startswith("compound")):
            seeds = sorted(methods[variant])
            full = {m: b for m, b in baselines.items() if set(b) >= set(seeds)}
            if not full:
                continue
            best = max(full, key=lambda m: np.mean([full[m][s][0] for s in seeds]))
            per = {s: round(methods[variant][s][0] - full[best][s][0], 4) for s in seeds}
            margins[variant] = {"best_baseline": best, "seeds": seeds,
                                "mean": round(float(np.mean(list(per.values()))), 4),
                                "per_seed": {str(s): v for s, v in per.items()}}
            print(f"  {variant} - best baseline ({best}) on seeds {seeds}: "
                  f"{margins[variant]['mean']:+.4f} (per seed {per})")
        out["targets"][f"{target:g}"] = {
            "methods": {m: {"top1_mean": round(means[m], 4),
                            "top1_per_seed": {str(s): b[s][0] for s in sorted(b)},
                            "macs_mean": int(np.mean([v[1] for v in b.values()]))}
                        for m, b in methods.items()},
            "compound_minus_best_baseline": margins}
    if rebuilds is not None:
        out["rebuilt_uniform_50"] = summarize_rebuilds(rebuilds, table)
    print(json.dumps(out))


def summarize_rebuilds(path: Path, table) -> dict:
    """``rebuild_full.py``'s lines: the uniform 50% architecture cut from the base in one shot
    and given a baseline's training, against compound as run and ``l1`` (the same channel
    counts, chosen by filter norm instead of |gamma|)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    methods = table[0.5]
    charged = {r["seed"]: methods["compound_uniform_no_rule"][r["seed"]][0] for r in rows}
    l1 = {r["seed"]: methods["l1"][r["seed"]][0] for r in rows}
    rebuilt = {r["seed"]: r["rebuilt"] for r in rows}
    print("\n== the uniform 50% architecture rebuilt from the base (a baseline's training)")
    for name, values in (("rebuilt", rebuilt), ("compound as run", charged), ("l1", l1)):
        per = " / ".join(f"s{s} {values[s]:.4f}" for s in sorted(values))
        print(f"  {name:16s} {np.mean(list(values.values())):.4f}  ({per})")
    print(f"  l1 - rebuilt: {np.mean([l1[s] - rebuilt[s] for s in rebuilt]):+.4f}")
    return {"rebuilt": rebuilt, "charged": charged, "l1": l1}


if __name__ == "__main__":
    rebuild_lines = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    main(Path(sys.argv[1]), Path(sys.argv[2]), rebuild_lines)
