"""Compound shrinking against the baselines at 25% and 50% of the base's MACs, full images and crops.

    python benchmarks/shrink.py            # full run: 3 seeds, the benchmark settings (hours)
    python benchmarks/shrink.py --quick    # 1 seed, small splits, resnet10_025 at 64 px (< 20 min)

Per seed:

1. the base (``BASE_MODEL`` at ``resolution`` px; full runs train it to convergence) on
   whole images, and a crop
   base (same family and size) on crops of the objects: the DIC classifier.
   Crops come from the true boxes (``crop_boxes: "true"``, predictor MACs not
   counted) unless ``--predictor`` names a trained box predictor: then the
   predicted boxes, and its MACs count against each target;
2. every method (``compound`` and the baselines ``uniform``, ``resolution``,
   ``l1``, ``bn``, ``hrank``) shrinks the full-image base to each target
   (``inputs: "full"``); ``--crop-methods`` (default: compound only in quick
   mode, all in full mode) shrink the crop base (``inputs: "crop"``);
3. each result gets the same fine-tune (``finetune_epochs``, distillation from
   the model it was shrunk from, BatchNorm re-estimated; compound's scoring
   fine-tunes on its accepted steps count against it) and is scored once on
   the test split; every decision used the validation split. The first seed's
   models are saved under ``shrink_<tag>_models/`` (with sidecars).

Then every model (base and rows of the first seed) is converted to full int8
and timed with the LiteRT interpreter (one thread, warm-up first), all models
interleaved in rounds so the shared machine's drift hits them alike:
``int8_ms`` is the median of ``TIMING_ROUNDS x TIMING_INVOKES`` invocations.

Last line: JSON with ``base_top1``, ``base_macs``, ``rows`` (``method``,
``inputs``, ``target``, ``macs``, ``top1``, ``int8_ms``; full runs add
``top1_spread`` (mean, min, max over seeds), and the environment; the plot
(top-1 against MMACs and against int8 ms) goes to ``shrink[_quick].png`` in
``--output-dir``.

``--cascade-only`` (after a run, same ``--output-dir``): a two-stage cascade
whose first stage is the base compound-shrunk to 25% against one whose first
stage is a registry network of the same MACs trained from scratch
(:func:`cascade_comparison`), both ending in the base, thresholds chosen on
validation at equal expected-MAC budgets; the same ``--sizes``/``--epochs``/``--patience``
as the run. ``--shrunk-stage`` and ``--registry-stage`` choose the two first stages; a
registry stage file already in the folder (a converged peer linked in) is not retrained.
Recorded: benchmarks/recorded/shrink-quick3-2026-12-04/ and shrink-quick4-2026-12-04/ (3
seeds).

``--summarize-only`` (same flags and ``--output-dir`` as a run stopped between seeds): the
last line from the seeds it finished, without training.

``--resume`` (same flags and ``--output-dir`` as a run that was killed): goes on where it
stopped. Bases are reused (a base killed mid-training resumes from its last epoch), and so is
every row the killed run finished: each finished row is written to
``shrink_<tag>_rows/seed<S>_<method>_<inputs>_<target>.json`` with a fingerprint of the run's
settings, the model it shrank and the predictor; a row whose fingerprint differs is run again.
The row in progress when the run was killed goes on from its search's last step (or its
fine-tune's last epoch) when the bases and settings are the ones it began with.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import (FULL_SEEDS, QUICK_SEEDS, REPO, environment, print_result, setup_logging,
                     spread)

from tfedge.runtime.fileio import sha256_file
from tfedge.shrink import DIMENSIONS, TIMING_INVOKES, TIMING_ROUNDS, time_interleaved

log = logging.getLogger("benchmarks.shrink")

METHODS = ("compound", "uniform", "resolution", "l1", "bn", "hrank")
TARGETS = (0.25, 0.5)
#: Compound's width steps use network slimming's allocation in the full run: at the full data
#: size it was at least as accurate as the best baseline at 25% and 50% (3 seeds); the default
#: uniform one was 1.0 under it at 50% (benchmarks/recorded/shrink-full-2026-12-05/).
#: The full run's bases train to convergence (at most 50 epochs, stopped 5 without a better
#: validation top-1, best weights kept), as #19's peers: 4-epoch bases were far from converged.
FULL = dict(model="resnet10_050", resolution=128, train_size=20000, val_size=2000,
            test_size=5000, epochs=50, patience=5, finetune_epochs=2, seeds=FULL_SEEDS,
            width_step=0.1, search_val_size=1000, crop_methods=METHODS, round_to=8,
            object_size=(24, 64), score="finetune", score_finetune_steps=20,
            step_macs_fraction=0.3, resolution_multiple=0, importance="bn",
            width_allocation="global")
QUICK = dict(model="resnet10_025", resolution=64, train_size=4000, val_size=500, test_size=1000,
             epochs=12, finetune_epochs=2, seeds=QUICK_SEEDS, width_step=0.15,
             object_size=(48, 112),
             search_val_size=500, crop_methods=("compound",), round_to=4,
             score="finetune", score_finetune_steps=15, step_macs_fraction=0.3,
             resolution_multiple=16, importance="bn")
#: Compound search settings: candidates scored after a short distillation fine-tune (scored by
#: BatchNorm re-estimation alone it preferred resolution steps that recover less in the final
#: fine-tune); steps sized to save ~30% of the MACs each; the fine-tune steps of the accepted
#: steps are taken off the final fine-tune (SearchConfig.charge_search_steps), so compound
#: trains exactly as many steps as every baseline. Input sides: multiples of the network's
#: total stride (32) in full runs; at 64 px that leaves only 32, so the quick run allows
#: multiples of 16 (48, 32). Width steps choose channels by BatchNorm scale: with the l1
#: criterion (SearchConfig's default) compound inherited l1's weakness at 50% (l1 was the worst
#: width baseline on both quick seeds; see benchmarks/recorded/shrink-quick3-2026-12-04).
#: resnet10_025's narrowest layers have 16 channels: with channels kept in multiples of 8 no
#: width method reaches 25% of its MACs, so the quick run rounds to 4 (every method alike).
#: Quick objects are larger than the benchmark's default (24-64 px): at 64 px, 5 epochs on 3000
#: images of the default left the base at chance (10.7%); 12 epochs on 4000 with 48-112 px
#: objects reached 38% on validation.
IMAGE_SIZE = 128
CALIBRATION_IMAGES = 64
_METHOD_COLOURS = {"compound": "tab:red", "uniform": "tab:blue", "resolution": "tab:olive",
                   "l1": "tab:pink", "bn": "tab:green", "hrank": "tab:purple"}
# Timing: tfedge.shrink._latency.time_interleaved (the runtime's interpreter, one thread,
# models interleaved), TIMING_ROUNDS x TIMING_INVOKES invocations per model.


def _stage(what: str, start: float) -> None:
    log.info("== %s (%.0f s)", what, time.perf_counter() - start)


def row_fingerprint(settings: dict[str, Any], seed: int, method: str, inputs: str,
                    target: float, model_sha256: str, predictor_sha256: str | None) -> str:
    """What a finished row depends on: the run's settings, the model it shrank (its file's
    SHA-256), the predictor's file.

    A resumed run reuses a row only when this matches (code changes are not seen: resume
    with the code that started the run).
    """
    key = {"settings": {k: v for k, v in settings.items() if k != "seeds"}, "seed": seed,
           "method": method, "inputs": inputs, "target": target,
           "model_sha256": model_sha256, "predictor_sha256": predictor_sha256}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finished_row(path: Path, fingerprint: str, model_file: Path | None) -> dict[str, Any] | None:
    """The row a killed run finished, if ``path`` holds one of this fingerprint; with
    ``model_file`` (the first seed's rows are timed), only if that file is the row's model
    (the folder keeps one model per row: another seed's run may have written it since)."""
    saved = _read_json(path)
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        return None
    if model_file is not None and (not model_file.exists() or saved.get("model_sha256")
                                   != sha256_file(model_file)):
        return None
    return saved.get("row")


def _crop_splits(data, resolution: int, predictor_path: Path | None):
    """(train, val, test) crops at ``resolution``, and the predictor's MACs (0: true boxes)."""
    from tfedge.crop import JitterConfig
    from tfedge.crop import materialize_crops

    if predictor_path is None:
        boxes = {"train": data.train.boxes, "val": data.val.boxes, "test": data.test.boxes}
        extra_macs = 0
    else:
        from tfedge.crop import load_predictor, predict_boxes, predictor_macs

        predictor = load_predictor(predictor_path)
        boxes = {key: predict_boxes(predictor, getattr(data, key)) for key in ("val", "test")}
        boxes["train"] = data.train.boxes  # training crops: true boxes, jittered like a predictor
        extra_macs = predictor_macs(predictor)
    train = materialize_crops(data.train, resolution=resolution, boxes=boxes["train"],
                              jitter=JitterConfig())
    val = materialize_crops(data.val, resolution=resolution, boxes=boxes["val"])
    test = materialize_crops(data.test, resolution=resolution, boxes=boxes["test"])
    return train, val, test, extra_macs


def _int8(model, images: np.ndarray) -> bytes:
    from tfedge import convert_to_int8, model_resolution
    from tfedge.data import ImageSplit
    from tfedge.data import make_dataset

    res = model_resolution(model)
    split = ImageSplit(images, np.zeros(len(images), np.int32), None, ("x",))
    batch = np.concatenate([np.asarray(x, np.float32) for x, _ in
                            make_dataset(split, resolution=res, batch_size=64, training=False)])
    return convert_to_int8(model, batch)


def plot(result: dict[str, Any], path: Path) -> None:
    """Test top-1 against MACs (left) and against int8 milliseconds (right), one line per
    method and inputs; the base as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120)
    done = [r for r in result["rows"] if r.get("top1") is not None]
    keys = sorted({(r["method"], r["inputs"]) for r in done})
    for ax, x_key, scale, label in ((axes[0], "macs", 1e6, "MMACs per image"),
                                    (axes[1], "int8_ms", 1.0, "int8 ms per image (1 thread)")):
        for method, inputs in keys:
            rows = sorted((r for r in done if (r["method"], r["inputs"]) == (method, inputs)
                           and r.get(x_key) is not None), key=lambda r: r[x_key])
            if not rows:
                continue
            # One colour per method (twelve lines outrun the default cycle), the marker and
            # line style for the inputs; compound drawn heavier.
            ax.plot([r[x_key] / scale for r in rows], [100 * r["top1"] for r in rows],
                    marker="o" if inputs == "full" else "s",
                    linestyle="--" if inputs == "full" else "-",
                    linewidth=2.4 if method == "compound" else 1.2,
                    color=_METHOD_COLOURS.get(method, "gray"), label=f"{method} ({inputs})")
            spreads = [r.get("top1_spread") for r in rows]
            if all(spreads):
                ax.vlines([r[x_key] / scale for r in rows], [100 * sp["min"] for sp in spreads],
                          [100 * sp["max"] for sp in spreads], alpha=0.4,
                          color=_METHOD_COLOURS.get(method, "gray"))
        base_x = result["base_macs"] / 1e6 if x_key == "macs" else result.get("base_int8_ms")
        if base_x is not None:
            ax.scatter([base_x], [100 * result["base_top1"]], marker="*", s=120, color="black",
                       label="base (full)", zorder=5)
        ax.set_xlabel(label)
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    seeds = len(result.get("seeds") or [])
    fig.suptitle(f"Shrinking {result['base_model']} ({'quick' if result['quick'] else 'full'}, "
                 f"{seeds} seed(s), mean; bars: min-max)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool, output_dir: Path, methods: tuple[str, ...], crop_methods: tuple[str, ...],
        targets: tuple[float, ...], predictor_path: Path | None = None,
        seeds: tuple[int, ...] | None = None,
        overrides: dict[str, Any] | None = None, reuse_bases: bool = False,
        summarize_only: bool = False, resume: bool = False) -> dict[str, Any]:
    """The benchmark (see the module docstring); ``resume`` reuses the bases and the rows a
    killed run of the same settings finished in ``output_dir``."""
    from tfedge import count_macs
    from tfedge.runtime.fileio import atomic_write_json
    from tfedge import (TrainConfig, evaluate_classifier, load_classifier, save_classifier,
                               train_classifier)
    from tfedge.data import BenchmarkConfig, load_dataset
    from tfedge.shrink import run_shrink
    from tfedge.shrink import SearchConfig

    start = time.perf_counter()
    s = {**(QUICK if quick else FULL), **(overrides or {})}
    seeds = tuple(seeds if seeds is not None else s["seeds"])
    tag = "quick" if quick else "full"
    reuse_bases = reuse_bases or resume
    output_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=IMAGE_SIZE, object_size=tuple(s["object_size"]), train_size=s["train_size"],
        val_size=s["val_size"], test_size=s["test_size"], seed=0))
    crops = _crop_splits(data, s["resolution"], predictor_path) if crop_methods else None
    predictor_sha = None if predictor_path is None else sha256_file(predictor_path)
    _stage(f"data: {len(data.train)} train, {len(data.val)} val, {len(data.test)} test", start)

    per_seed: list[dict[str, Any]] = []
    timed_models: dict[str, Any] = {}
    base_macs = None
    if summarize_only:
        # A run stopped between seeds: the seeds it finished (their rows), its first seed's
        # saved models timed as a finished run times them.
        per_seed = json.loads((output_dir / f"shrink_{tag}_seeds.json").read_text())
        seeds = tuple(r["seed"] for r in per_seed)
        base = load_classifier(output_dir / f"shrink_{tag}_base_seed{seeds[0]}.keras")
        base_macs = count_macs(base).macs
        timed_models["base/full"] = (base, data.train.images)
        for row in per_seed[0]["rows"]:
            if "error" in row:
                continue
            key = f"{row['method']}_{row['inputs']}_{row['target']:g}"
            images = (crops[0] if row["inputs"] == "crop" else data.train).images
            timed_models[key.replace("_", "/")] = (
                load_classifier(output_dir / f"shrink_{tag}_models" / f"{key}.keras"), images)
        _stage(f"summarizing {len(per_seed)} finished seed(s) {list(seeds)}", start)
    for seed in seeds if not summarize_only else ():
        config = TrainConfig(epochs=s["epochs"], patience=s.get("patience"), seed=seed)
        base_path = output_dir / f"shrink_{tag}_base_seed{seed}.keras"
        if reuse_bases and base_path.exists():
            base = load_classifier(base_path)
        else:
            base, _ = train_classifier(s["model"], data.train, val=data.val, config=config,
                                       resolution=s["resolution"], output=base_path,
                                       metadata={"dataset": data.name})
        base_top1 = evaluate_classifier(base, data.test).top1
        base_macs = count_macs(base).macs
        _stage(f"seed {seed}: base test top-1 {base_top1:.4f}, {base_macs / 1e6:.2f} MMACs", start)
        record: dict[str, Any] = {"seed": seed, "base_top1": base_top1, "rows": []}
        inputs_list = [("full", base, data.train, data.val, data.test, 0, methods, base_path)]
        if crops is not None:
            crop_train, crop_val, crop_test, extra = crops
            crop_path = output_dir / f"shrink_{tag}_cropbase_seed{seed}.keras"
            if reuse_bases and crop_path.exists():
                crop_base = load_classifier(crop_path)
            else:
                crop_base, _ = train_classifier(
                    s["model"], crop_train, val=crop_val, config=config,
                    resolution=s["resolution"], output=crop_path,
                    metadata={"dataset": data.name, "input": "crop"})
            record["crop_base_top1"] = evaluate_classifier(crop_base, crop_test).top1
            _stage(f"seed {seed}: crop base test top-1 {record['crop_base_top1']:.4f}", start)
            inputs_list.append(("crop", crop_base, crop_train, crop_val, crop_test, extra,
                                crop_methods, crop_path))
        if seed == seeds[0]:
            timed_models["base/full"] = (base, data.train.images)
        # The searches' step logs (and fine-tune backups) resume only on the models and
        # settings they began with: the search's own check sees the base's name and size,
        # not its weights.
        model_sha = {entry[0]: sha256_file(entry[-1]) for entry in inputs_list}
        search_dir = output_dir / f"shrink_{tag}_seed{seed}"
        began = json.loads(json.dumps({"settings": s, "models": model_sha,
                                       "predictor_sha256": predictor_sha}, default=str))
        marker = search_dir / "began_with.json"
        if not (resume and _read_json(marker) == began):
            shutil.rmtree(search_dir, ignore_errors=True)
            atomic_write_json(marker, began)
        for inputs, model, train, val, test, extra_macs, method_list, _ in inputs_list:
            for target in targets:
                budget = int(target * base_macs) - extra_macs
                search = SearchConfig(target_macs=budget, finetune_epochs=s["finetune_epochs"],
                                      round_to=s["round_to"], score=s.get("score", "bn"),
                                      score_finetune_steps=s.get("score_finetune_steps", 20),
                                      importance=s.get("importance", "l1"),
                                      width_allocation=s.get("width_allocation", "uniform"),
                                      dimensions=tuple(s.get("dimensions", DIMENSIONS)),
                                      step_macs_fraction=s.get("step_macs_fraction"),
                                      resolution_multiple=s.get("resolution_multiple", 1),
                                      width_step=s["width_step"], val_size=s["search_val_size"],
                                      min_resolution=min(32, s["resolution"]), seed=seed,
                                      keep_better_start=s.get("keep_better_start", True))
                for method in method_list:
                    key = f"{method}_{inputs}_{target:g}"
                    row_path = output_dir / f"shrink_{tag}_rows" / f"seed{seed}_{key}.json"
                    model_file = output_dir / f"shrink_{tag}_models" / f"{key}.keras"
                    fingerprint = row_fingerprint(s, seed, method, inputs, target,
                                                  model_sha[inputs], predictor_sha)
                    timed = seed == seeds[0]
                    row = (_finished_row(row_path, fingerprint, model_file if timed else None)
                           if resume else None)
                    if row is not None:
                        record["rows"].append(row)
                        if timed:
                            timed_models[key.replace("_", "/")] = (load_classifier(model_file),
                                                                   train.images)
                        _stage(f"seed {seed}: {method} ({inputs}) at {target:g}: test top-1 "
                               f"{row['top1']:.4f}, {row['macs'] / 1e6:.2f} MMACs (finished by "
                               "the run resumed)", start)
                        continue
                    t0 = time.perf_counter()
                    try:
                        result = run_shrink(model, method, budget, train, val, config=search,
                                            output_dir=search_dir, name=key)
                    except Exception as exc:  # noqa: BLE001 - one failed method must not end the table
                        log.error("%s on %s at %g failed: %s: %s", method, inputs, target,
                                  exc.__class__.__name__, exc)
                        record["rows"].append({"method": method, "inputs": inputs,
                                               "target": target, "error": f"{exc.__class__.__name__}: {exc}"})
                        continue
                    top1 = evaluate_classifier(result.model, test).top1
                    row = {"method": method, "inputs": inputs, "target": target,
                           "macs": result.macs + extra_macs, "top1": top1,
                           "val_top1": result.val_top1, "classifier_macs": result.macs,
                           "resolution": result.architecture.get("resolution"),
                           "steps": [{k: st.get(k) for k in ("dimension", "macs", "val_top1",
                                                              "seconds")} for st in result.steps],
                           "seconds": round(time.perf_counter() - t0, 1)}
                    record["rows"].append(row)
                    if timed:
                        timed_models[key.replace("_", "/")] = (result.model, train.images)
                        # Kept for --cascade (shrunk stages of this base; class names in the
                        # sidecar, so `tfedge cascade build` takes them as they are).
                        save_classifier(result.model, model_file,
                                        {"class_names": list(train.class_names),
                                         "dataset": data.name, "input": inputs,
                                         "shrink": result.record()})
                    # After the model: a row on disk names the model it was saved with.
                    atomic_write_json(row_path, {
                        "fingerprint": fingerprint, "row": row,
                        "model_sha256": sha256_file(model_file) if timed else None})
                    _stage(f"seed {seed}: {method} ({inputs}) at {target:g}: test top-1 "
                           f"{top1:.4f}, {row['macs'] / 1e6:.2f} MMACs", start)
        per_seed.append(record)
        # Each seed's rows as soon as they exist (a run stopped early keeps what it measured).
        atomic_write_json(output_dir / f"shrink_{tag}_seeds.json", per_seed)

    # int8 latency, interleaved, first seed's models.
    tflite = {}
    for key, (model, images) in timed_models.items():
        try:
            tflite[key] = _int8(model, images[:CALIBRATION_IMAGES])
        except Exception as exc:  # noqa: BLE001 - report the row without a latency
            log.error("int8 conversion of %s failed: %s: %s", key, exc.__class__.__name__, exc)
    latency = time_interleaved(tflite) if tflite else {}
    _stage(f"int8 latency of {len(latency)} models", start)

    rows = []
    first = per_seed[0]["rows"]
    for row in first:
        if "error" in row:
            rows.append(dict(row))
            continue
        key = (row["method"], row["inputs"], row["target"])
        same = [r for rec in per_seed for r in rec["rows"]
                if (r["method"], r["inputs"], r["target"]) == key and "error" not in r]
        timing = latency.get(f"{row['method']}/{row['inputs']}/{row['target']:g}")
        out = {"method": row["method"], "inputs": row["inputs"], "target": row["target"],
               "macs": int(np.mean([r["macs"] for r in same])),
               "top1": float(np.mean([r["top1"] for r in same])),
               "int8_ms": timing["p50"] if timing else None,
               "int8_ms_p90": timing["p90"] if timing else None,
               "val_top1": float(np.mean([r["val_top1"] for r in same])),
               "resolution": row["resolution"], "seconds": row["seconds"], "steps": row["steps"]}
        out["top1_spread"] = spread([r["top1"] for r in same])
        out["top1_per_seed"] = [r["top1"] for r in same]
        rows.append(out)
    base_timing = latency.get("base/full")
    result = {
        "benchmark": "shrink", "quick": quick, "base_model": s["model"],
        "resolution": s["resolution"], "base_top1": float(np.mean([r["base_top1"] for r in per_seed])),
        "base_top1_spread": spread([r["base_top1"] for r in per_seed]),
        "base_macs": base_macs, "base_int8_ms": base_timing["p50"] if base_timing else None,
        "crop_base_top1": (float(np.mean([r["crop_base_top1"] for r in per_seed]))
                           if crops is not None else None),
        "crop_boxes": None if crops is None else ("true" if predictor_path is None
                                                  else f"predicted by {predictor_path}"),
        "predictor_macs": None if crops is None else crops[3],
        "rows": rows, "targets": list(targets), "overrides": overrides or None,
        "reused_bases": reuse_bases, "seeds": list(seeds), "epochs": s["epochs"],
        "patience": s.get("patience"),
        "finetune_epochs": s["finetune_epochs"], "width_step": s["width_step"],
        "round_to": s["round_to"], "object_size": list(s["object_size"]),
        "score": s.get("score", "bn"), "importance": s.get("importance", "l1"),
        "width_allocation": s.get("width_allocation", "uniform"),
        "dimensions": list(s.get("dimensions", DIMENSIONS)),
        "keep_better_start": s.get("keep_better_start", True),
        "search": {k: s.get(k) for k in ("score_finetune_steps", "step_macs_fraction",
                                         "resolution_multiple", "search_val_size")},
        "budget_note": ("compound's short scoring fine-tunes on its accepted steps are taken off "
                        "its final fine-tune: every row trained the same number of steps"),
        "train_images": len(data.train), "val_images": len(data.val),
        "test_images": len(data.test), "dataset": data.name,
        "timing": {"rounds": TIMING_ROUNDS, "invokes_per_round": TIMING_INVOKES, "threads": 1,
                   "models_from_seed": seeds[0]},
        "notes": ("crop rows use crops at the true boxes (no predictor trained in this run; "
                  "its MACs are not counted)" if crops is not None and predictor_path is None
                  else None),
        **environment()}
    png = output_dir / f"shrink_{tag}.png"
    try:
        plot(result, png)
        result["plot"] = str(png)
    except Exception as exc:  # noqa: BLE001 - the figures matter more than the picture
        log.error("plot failed: %s: %s", exc.__class__.__name__, exc)
    return result


#: Budgets (fractions of the base's MACs, expected per image) at which the two cascades meet.
CASCADE_BUDGETS = (0.5, 0.75)


def cascade_comparison(quick: bool, output_dir: Path, seed: int = 0,
                       shrunk_stage: str = "compound_full_0.25",
                       registry_stage: str = "resnet10_025@32",
                       wait_seconds: float = 0.0,
                       overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A cascade of shrunk stages against one of a registry stage, at equal expected MACs.

    Both are two-stage cascades on whole images ending in the same base (a run of this
    benchmark saved it, and the shrunk model, in ``output_dir``): first stage the base
    shrunk by compound shrinking (``shrunk_stage``, a saved row's model) or a registry
    network trained from scratch with the base's epochs (``registry_stage``, the kind of
    stage the cascade benchmark hand-picks). Built with ``tfedge.cascade.build_cascade``
    from the ``.keras`` files (sidecars carry the class names), thresholds chosen on
    validation in budget mode at each of ``CASCADE_BUDGETS`` x the base's MACs (the same
    exit rule for both), top-1 and expected MACs on test. ``overrides``: the run's data
    sizes and epoch budget (``--sizes``, ``--epochs``, ``--patience``), so the cascades see
    the run's images and a registry stage trained here gets the base's budget. A registry
    stage already in ``output_dir`` (e.g. a converged peer of ``benchmarks/peers.py``,
    linked in) is used as it is.
    """
    from tfedge import TrainConfig, train_classifier
    from tfedge.cascade import (build_cascade, calibrate_cascade, compute_stage_logits,
                                evaluate_cascade)
    from tfedge.data import BenchmarkConfig, load_dataset

    start = time.perf_counter()
    s = {**(QUICK if quick else FULL), **(overrides or {})}
    tag = "quick" if quick else "full"
    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=IMAGE_SIZE, object_size=tuple(s["object_size"]), train_size=s["train_size"],
        val_size=s["val_size"], test_size=s["test_size"], seed=0))
    base_path = output_dir / f"shrink_{tag}_base_seed{seed}.keras"
    shrunk_path = output_dir / f"shrink_{tag}_models" / f"{shrunk_stage}.keras"
    if not base_path.exists():
        raise SystemExit(f"{base_path} does not exist: run benchmarks/shrink.py "
                         f"{'--quick ' if quick else ''}first (it saves the base and rows)")
    name, _, res = registry_stage.partition("@")
    if not name or not res.isdigit():
        raise SystemExit(f"--registry-stage {registry_stage!r}: give NAME@RESOLUTION, "
                         "e.g. resnet10_025@128")
    registry_path = output_dir / f"shrink_{tag}_registry_{name}_r{res}_seed{seed}.keras"
    if not registry_path.exists():
        train_classifier(name, data.train, val=data.val,
                         config=TrainConfig(epochs=s["epochs"], patience=s.get("patience"),
                                            seed=seed),
                         resolution=int(res), output=registry_path,
                         metadata={"dataset": data.name})
    _stage(f"cascade: registry stage {registry_stage} ready", start)
    waited = time.perf_counter()
    while not shrunk_path.exists():  # a run of the rows still going: wait for its model
        if time.perf_counter() - waited > wait_seconds:
            raise SystemExit(f"{shrunk_path} does not exist: run benchmarks/shrink.py "
                             f"{'--quick ' if quick else ''}first (it saves the base and rows)")
        time.sleep(20)
    out: dict[str, Any] = {"shrunk_stage": shrunk_stage, "registry_stage": registry_stage,
                           "seed": seed, "cascades": {}}
    for label, first in (("shrunk", shrunk_path), ("registry", registry_path)):
        spec = build_cascade([first, base_path], criteria="max_softmax")
        val = compute_stage_logits(spec, data.val)
        test = compute_stage_logits(spec, data.test)
        entry: dict[str, Any] = {"stage_macs": list(spec.stage_macs),
                                 "stage_test_top1": list(test.stage_top1()), "budgets": []}
        base_macs = spec.stage_macs[-1]
        for fraction in CASCADE_BUDGETS:
            calibrated, _ = calibrate_cascade(spec, val, mode="budget",
                                              macs_budget=fraction * base_macs)
            ev = evaluate_cascade(calibrated, test)
            entry["budgets"].append({"budget": fraction, "top1": ev.top1,
                                     "expected_macs": ev.expected_macs,
                                     "expected_macs_ratio": ev.expected_macs / base_macs,
                                     "exit_fractions": list(ev.exit_fractions)})
        out["cascades"][label] = entry
        _stage(f"cascade of {label} stages: " + ", ".join(
            f"{b['budget']:g}: top-1 {b['top1']:.4f} at {b['expected_macs_ratio']:.3f}"
            for b in entry["budgets"]), start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, small splits")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        help="methods on full images (default: all)")
    parser.add_argument("--crop-methods", dest="crop_methods", nargs="*", default=None,
                        help="methods on crops (default: compound in --quick, all in full runs; "
                             "'none', or the flag alone, skips crops: no crop base is trained)")
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS),
                        help="MAC targets as ratios of the base's (default 0.25 0.5)")
    parser.add_argument("--predictor", type=Path, default=None,
                        help="a trained box predictor (.keras): crop on its boxes and count its "
                             "MACs (default: true boxes)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--score", type=str, default=None, choices=["bn", "finetune"],
                        help="how compound shrinking scores candidate steps (default bn)")
    parser.add_argument("--sizes", type=int, nargs=3, default=None, metavar=("TRAIN", "VAL", "TEST"),
                        help="override the split sizes (a smoke run; figures not comparable)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the bases' epochs (the cap, with --patience)")
    parser.add_argument("--patience", type=int, default=None,
                        help="train the bases to convergence: stop after this many epochs "
                             "without a better validation top-1, best weights restored "
                             "(default: fixed epochs)")
    parser.add_argument("--finetune-epochs", dest="finetune_epochs", type=int, default=None,
                        help="override the fine-tune epochs")
    parser.add_argument("--reuse-bases", dest="reuse_bases", action="store_true",
                        help="load the bases an earlier run of the same settings saved in "
                             "--output-dir instead of training them again")
    parser.add_argument("--resume", action="store_true",
                        help="go on with a killed run of the same flags and --output-dir: "
                             "reuse its bases (resumed from their last epoch) and every row it "
                             "finished (same settings, model and predictor)")
    parser.add_argument("--step-fraction", dest="step_macs_fraction", type=float, default=None,
                        help="override the MAC fraction one compound step saves")
    parser.add_argument("--importance", type=str, default=None,
                        help="channel criterion of compound's width steps (default bn)")
    parser.add_argument("--width-allocation", dest="width_allocation", default=None,
                        choices=["uniform", "global"],
                        help="how compound's width steps share a cut between layers (default: "
                             "global in full runs, network slimming's one BatchNorm-scale "
                             "threshold; uniform in --quick)")
    parser.add_argument("--dimensions", nargs="+", default=None, choices=list(DIMENSIONS),
                        help="the dimensions compound's search may shrink (default all three)")
    parser.add_argument("--score-steps", dest="score_steps", type=int, default=None,
                        help="override the distillation steps that score each compound candidate")
    parser.add_argument("--always-finetuned", dest="always_finetuned", action="store_true",
                        help="every row keeps its fine-tuned model even when the model the "
                             "fine-tune started from scored higher on validation (the rule "
                             "before 2026-12-05: SearchConfig.keep_better_start=False)")
    parser.add_argument("--wait-minutes", dest="wait_minutes", type=float, default=0.0,
                        help="with --cascade-only: wait this long for the shrunk stage a "
                             "running benchmark is still producing")
    parser.add_argument("--summarize-only", dest="summarize_only", action="store_true",
                        help="no training: the last line of a run stopped between seeds, from "
                             "the seeds it finished (shrink_<tag>_seeds.json and the first "
                             "seed's models in --output-dir; same flags as that run)")
    parser.add_argument("--cascade-only", dest="cascade_only", action="store_true",
                        help="only compare a cascade of shrunk stages with a registry-stage "
                             "cascade, on the base and rows an earlier run saved in --output-dir")
    parser.add_argument("--shrunk-stage", dest="shrunk_stage", default="compound_full_0.25",
                        help="with --cascade-only: the saved row whose model is the first "
                             "stage (METHOD_INPUTS_TARGET; default %(default)s)")
    parser.add_argument("--registry-stage", dest="registry_stage", default="resnet10_025@32",
                        help="with --cascade-only: the registry network NAME@RESOLUTION it is "
                             "compared with, trained here with the base's epochs unless "
                             "shrink_<tag>_registry_NAME_rRES_seedS.keras is in --output-dir "
                             "(default %(default)s)")
    parser.add_argument("--output-dir", dest="output_dir", type=Path,
                        default=REPO / "runs" / "benchmarks" / "shrink")
    args = parser.parse_args()
    setup_logging()
    start = time.perf_counter()
    overrides = _overrides(args)
    if args.cascade_only:
        result = {"benchmark": "shrink-cascade", "quick": args.quick,
                  "cascade": cascade_comparison(args.quick, args.output_dir,
                                                (args.seeds or [0])[0],
                                                shrunk_stage=args.shrunk_stage,
                                                registry_stage=args.registry_stage,
                                                wait_seconds=args.wait_minutes * 60.0,
                                                overrides=overrides),
                  **environment()}
        result["wall_seconds"] = time.perf_counter() - start
        print_result(result)
        return
    s = QUICK if args.quick else FULL
    methods = _method_list(parser, "--methods", args.methods)
    crop_methods = _method_list(parser, "--crop-methods", s["crop_methods"]
                                if args.crop_methods is None else args.crop_methods)
    result = run(args.quick, args.output_dir, methods, crop_methods,
                 tuple(args.targets), args.predictor, tuple(args.seeds) if args.seeds else None,
                 overrides, reuse_bases=args.reuse_bases, summarize_only=args.summarize_only,
                 resume=args.resume)
    result["wall_seconds"] = time.perf_counter() - start
    print_result(result)


def _method_list(parser: argparse.ArgumentParser, flag: str, names) -> tuple[str, ...]:
    """The methods a flag names ('none' alone: no methods), refused before any training when
    one is unknown (a typo once trained a crop base for nothing)."""
    names = tuple(names)
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        parser.error(f"{flag}: unknown method(s) {', '.join(unknown)}: choose from "
                     f"{', '.join(METHODS)}, or 'none'")
    return names


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the flags change (the rest come from QUICK or FULL)."""
    overrides: dict[str, Any] = {}
    if args.sizes:
        overrides.update(zip(("train_size", "val_size", "test_size"), args.sizes))
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.patience is not None:
        overrides["patience"] = args.patience
    if args.finetune_epochs is not None:
        overrides["finetune_epochs"] = args.finetune_epochs
    if args.score is not None:
        overrides["score"] = args.score
    if args.step_macs_fraction is not None:
        overrides["step_macs_fraction"] = args.step_macs_fraction
    if args.importance is not None:
        overrides["importance"] = args.importance
    if args.width_allocation is not None:
        overrides["width_allocation"] = args.width_allocation
    if args.dimensions is not None:
        overrides["dimensions"] = list(args.dimensions)
    if args.score_steps is not None:
        overrides["score_finetune_steps"] = args.score_steps
    if args.always_finetuned:
        overrides["keep_better_start"] = False
    return overrides


if __name__ == "__main__":
    main()
