"""Converged base, crop pipeline and cascade against well-trained small peers at equal latency.

    python benchmarks/peers.py            # full run: 3 seeds, full splits, every peer (many hours)
    python benchmarks/peers.py --quick    # 1 seed, small splits, 2 peers, epoch cap 8 (~30 min)

Issue #19. Every classifier gets the same recipe (``TrainConfig`` defaults)
trained to convergence: early stopping on validation top-1 (``--epochs
auto`` style: ``patience`` epochs without improvement, best weights
restored, at most ``epochs``), except that ``--peer-recipe`` may give a peer
family its own optimiser and early stopping, and MobileNetV2 peers train
with SGD unless it says otherwise (``tfedge.FAMILY_RECIPES``: from scratch
they stay at chance under the default AdamW here; a family's own recipe only
makes the peer stronger, never the cascade). Per seed:

1. the base: ``resnet10_050`` on full 128-px images;
2. the cascade of ``benchmarks/cascade.py`` (its predictor and stages
   trained here with early stopping, then :func:`cascade.run_seed` with
   ``reuse``: calibration on validation, test figures, the int8 bundle);
3. the crop pipeline: the cascade's predictor and its last stage alone (no
   exit). ``--refiner``: a refiner (``cascade.REFINER_EPOCHS`` epochs) looks
   again at the predictor's boxes, the stages train and calibrate on the
   refined crops, and its passes count in MACs and int8 ms;
4. the peers: registry models at widths and resolutions (``--peers``), each
   on full images resized to its resolution.

Then, on the first seed's models, every int8 model is timed in one process,
interleaved (A, B, C, ..., A, B, C, ...), one thread (BENCHMARKS.md).
Classifier rows time one inference at the model's resolution; the crop
pipeline adds the predictor's inference; the cascade's figure is its expected
inference time over the test split's exits (predictor + stage 0 + the share
that goes on x stage 1). Resizing and cropping are left out of every row.

Last line: JSON with ``rows: [{name, top1_mean, top1_min, top1_max, macs,
int8_ms, int8_bytes, epochs, ...}]``, the checks of issue #19 and the
environment; ``peers_top1_vs_ms.png`` beside the models is the plot.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import (FULL_SEEDS, QUICK_SEEDS, REPO, BenchmarkError, environment, print_result,
                     reusable_sidecar, run_main, setup_logging, spread)
from tfedge import FAMILY_RECIPES
from cascade import BASE_MODEL, BASE_RESOLUTION, DEFAULT_STAGES, PREDICTOR, _parse_stages
import cascade as cascade_benchmark

log = logging.getLogger("benchmarks.peers")

FULL_PEERS = ("mobilenetv2_035@96,mobilenetv2_035@128,mobilenetv2_050@96,mobilenetv2_050@128,"
              "mobilenetv2_075@96,mobilenetv2_075@128,resnet10_025@96,resnet10_025@128,"
              "resnet10_050@96,resnet18_025@128")
QUICK_PEERS = "mobilenetv2_035@96,resnet10_025@128"
#: ``epochs`` is the cap, ``patience`` the early stop (classifiers); the predictor has its own.
#: ``min_epochs``: no early stop before that epoch. MobileNetV2 from scratch sits at chance
#: for its first ~750 steps here (recorded/peers-conv1-2026-12-04): 10 epochs of the full
#: size's 312 steps cover that three times over.
FULL = dict(train_size=20000, val_size=2000, test_size=5000, epochs=50, patience=5,
            min_epochs=10, predictor_epochs=40, predictor_patience=5)
QUICK = dict(train_size=4000, val_size=500, test_size=1000, epochs=8, patience=2,
             min_epochs=0, predictor_epochs=8, predictor_patience=2)
#: Timing: rounds x invocations per model per round, after a warm-up.
TIMING_ROUNDS = 8
TIMING_PER_ROUND = 40
TIMING_WARMUP = 20
CALIBRATION_IMAGES = 300
#: Issue #19's bars.
PEER_LATENCY_WINDOW = 0.10
TARGET_PEER_GAIN_POINTS = 3.0
TARGET_BASE_GAIN_POINTS = 1.0
TARGET_MACS_FRACTION = 0.50
_POINTS = 100.0


#: What ``--peer-recipe`` may set for a peer family: its optimiser and its early stopping,
#: never the data, the epoch cap or the seed (those stay the run's, for every row).
RECIPE_FIELDS = {"optimizer": str, "learning_rate": float, "weight_decay": float,
                 "label_smoothing": float, "patience": int, "min_epochs": int}
#: Compared when a peer is reused, with or without a recipe: a file trained with another
#: optimiser is another recipe. Early stopping is compared only where a recipe sets it.
OPTIMISER_FIELDS = ("optimizer", "learning_rate", "weight_decay", "label_smoothing")


def parse_recipes(texts: list[str]) -> dict[str, dict[str, Any]]:
    """``--peer-recipe PREFIX:KEY=VALUE,...`` (repeatable) -> ``{prefix: {field: value}}``.

    A peer whose registry name starts with ``PREFIX`` trains with those
    :class:`tfedge.TrainConfig` fields (:data:`RECIPE_FIELDS`).
    """
    recipes: dict[str, dict[str, Any]] = {}
    example = "(e.g. mobilenetv2:optimizer=sgd,learning_rate=0.05,weight_decay=4e-5)"
    for text in texts:
        prefix, sep, body = text.partition(":")
        if not sep or not prefix.strip() or not body.strip():
            raise BenchmarkError(f"--peer-recipe {text!r} is not PREFIX:KEY=VALUE,... {example}")
        recipe: dict[str, Any] = {}
        for item in body.split(","):
            key, eq, value = (part.strip() for part in item.partition("="))
            if key not in RECIPE_FIELDS or not eq:
                raise BenchmarkError(f"--peer-recipe {text!r}: {item.strip()!r} is not KEY=VALUE "
                                     f"with KEY one of {', '.join(RECIPE_FIELDS)} {example}")
            try:
                recipe[key] = RECIPE_FIELDS[key](value)
            except ValueError:
                raise BenchmarkError(f"--peer-recipe {text!r}: {key} must be a "
                                     f"{RECIPE_FIELDS[key].__name__}, got {value!r}") from None
        if prefix.strip() in recipes:
            raise BenchmarkError(f"--peer-recipe names {prefix.strip()!r} twice: give one "
                                 "recipe per family")
        recipes[prefix.strip()] = recipe
    return recipes


def peer_recipes(texts: list[str], peers: list[tuple[str, int]]) -> dict[str, dict[str, Any]]:
    """The recipes of a run: ``--peer-recipe`` texts, plus the library's ``FAMILY_RECIPES``
    (MobileNetV2 from scratch stays at chance under the common AdamW here and learns with
    SGD) for families the texts do not name and some peer belongs to; early stopping stays
    the run's, and ``--peer-recipe mobilenetv2:optimizer=adamw`` restores the common recipe.
    A given prefix that no peer's name starts with is refused (a typo would otherwise train
    the common recipe silently)."""
    given = parse_recipes(texts)
    unused = [prefix for prefix in given if not any(n.startswith(prefix) for n, _ in peers)]
    if unused:
        raise BenchmarkError(f"--peer-recipe {', '.join(unused)}: no peer's name starts with "
                             f"that (peers: {', '.join(n for n, _ in peers)})")
    defaults = {prefix: dict(recipe) for prefix, recipe in FAMILY_RECIPES.items()
                if prefix not in given and any(n.startswith(prefix) for n, _ in peers)}
    return {**defaults, **given}


def recipe_for(name: str, recipes: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The recipe of the longest prefix of ``name`` that has one (None: the common recipe)."""
    matches = [prefix for prefix in recipes if name.startswith(prefix)]
    return recipes[max(matches, key=len)] if matches else None


def _budget(path: Path) -> dict[str, Any]:
    """What the sidecar says about the training budget a model used."""
    from tfedge import above_chance, read_sidecar

    meta = read_sidecar(path)
    cap = (meta.get("train_config") or {}).get("epochs")
    used = meta.get("epochs_used", meta.get("epochs"))
    # Learned: the kept weights score clearly above chance on validation (a slow starter
    # cut by patience at epoch 5 kept epoch 1's 0.106 of 10 classes). Classifiers only:
    # a box predictor's score is an IoU, with no chance level.
    score = meta.get("best_val_score")
    classes = meta.get("num_classes")
    learned = None if score is None or not classes else above_chance(score, classes)
    # Converged: early stopping ended it before the cap (a patience stop on the cap's last
    # epoch is the budget running out as much as a plateau), having learned.
    budget = {"epochs_used": used, "cap": cap, "best_epoch": meta.get("best_epoch"),
              "stop_reason": meta.get("stop_reason"),
              "converged": meta.get("stop_reason") == "patience" and used is not None
              and cap is not None and used < cap and learned is not False}
    if learned is not None:
        budget["above_chance"] = learned
    return budget


def _train_config(sizes: dict, seed: int, recipe: dict[str, Any] | None = None):
    from tfedge import TrainConfig

    settings = {"patience": sizes["patience"], "min_epochs": sizes["min_epochs"],
                **(recipe or {})}
    try:
        return TrainConfig(epochs=sizes["epochs"], seed=seed, **settings)
    except ValueError as exc:
        if not recipe:
            raise
        raise BenchmarkError(f"--peer-recipe {recipe}: {exc}") from None


def check_reusable(path: Path, dataset: str, config: Any, recipe: dict[str, Any] | None) -> None:
    """Refuse to reuse a model of other data, cap or seed, or trained with another optimiser
    (or early stopping, where ``recipe`` sets it) than ``config``: its row would carry figures
    of a recipe the JSON line does not name."""
    wanted = {"min_epochs": 0, **config.to_dict()}  # a min_epochs of 0 is left out of records
    keys = [*OPTIMISER_FIELDS, *(k for k in ("patience", "min_epochs") if recipe and k in recipe)]
    reusable_sidecar(path, dataset=dataset, epochs=config.epochs, seed=config.seed,
                     settings={k: wanted[k] for k in keys},
                     fix="give the --peer-recipe it was trained with")


def _train_full_image(name: str, res: int, path: Path, data: Any, sizes: dict, seed: int,
                      reuse: bool, recipe: dict[str, Any] | None = None) -> Path:
    from tfedge import train_classifier

    config = _train_config(sizes, seed, recipe)
    if reuse and path.exists():
        check_reusable(path, data.name, config, recipe)
        return path
    log.info("== seed %d: %s at %d px, at most %d epochs (patience %d)%s", seed, name, res,
             sizes["epochs"], config.patience, f", recipe {recipe}" if recipe else "")
    train_classifier(name, data.train, val=data.val, config=config,
                     output=path, resolution=res, metadata={"dataset": data.name})
    return path


def _train_cascade_parts(seed: int, sizes: dict, stages: list[tuple[str, int]], data: Any,
                         out: Path, reuse: bool, refiner_epochs: int | None) -> None:
    """Predictor (refiner) and stages with early stopping, where cascade.run_seed(reuse=True)
    looks; with a refiner the stages train on refined crops."""
    from tfedge.crop import (CropConfig, CropTrainConfig, PredictorTrainConfig, load_predictor,
                             train_predictor, train_crop_classifier)

    pred_path = out / f"predictor_seed{seed}.keras"
    if reuse and pred_path.exists():
        predictor = load_predictor(pred_path)
    else:
        log.info("== seed %d: predictor %s, at most %d epochs", seed, PREDICTOR,
                 sizes["predictor_epochs"])
        predictor, _ = train_predictor(
            PREDICTOR, data.train, val=data.val,
            config=PredictorTrainConfig(epochs=sizes["predictor_epochs"],
                                        patience=sizes["predictor_patience"], seed=seed),
            output=pred_path, metadata={"dataset": data.name})
    locator = predictor
    if refiner_epochs is not None:
        locator = load_predictor(cascade_benchmark.train_or_reuse_refiner(
            seed, refiner_epochs, predictor, pred_path, data, out, reuse))
    for name, res in stages:
        path = cascade_benchmark.stage_path(out, name, res, seed, refiner_epochs is not None)
        if reuse and path.exists():
            continue
        log.info("== seed %d: stage %s at %d px on %scrops, at most %d epochs", seed, name, res,
                 "refined " if refiner_epochs is not None else "", sizes["epochs"])
        train_crop_classifier(name, data.train,
                              crop_config=CropTrainConfig(resolution=res, crop=CropConfig()),
                              config=_train_config(sizes, seed), predictor=locator,
                              output=path, metadata={"dataset": data.name}, val=data.val)


def _resized(images: np.ndarray, res: int) -> np.ndarray:
    from tfedge.runtime.geometry import resize_bilinear

    if images.shape[1] == res:
        return np.asarray(images, np.float32)
    return np.stack([resize_bilinear(np.asarray(im), res, res) for im in images])


def _int8_classifier(path: Path, data: Any) -> tuple[bytes, float]:
    """The classifier's int8 bytes (calibrated on training images) and its int8 test top-1."""
    from tfedge import convert_to_int8, load_classifier, model_resolution
    from tfedge.runtime.interpreter import TfliteModel

    model = load_classifier(path)
    res = model_resolution(model)
    tflite = convert_to_int8(model, _resized(data.train.images[:CALIBRATION_IMAGES], res))
    interpreter = TfliteModel(tflite)
    correct = 0
    for start in range(0, len(data.test), 256):
        batch = _resized(data.test.images[start:start + 256], res)
        logits = interpreter.run(batch)
        correct += int((np.argmax(logits, axis=-1) == data.test.labels[start:start + 256]).sum())
    return tflite, correct / len(data.test)


def time_interleaved(models: dict[str, tuple[bytes, np.ndarray]], *, rounds: int = TIMING_ROUNDS,
                     per_round: int = TIMING_PER_ROUND, warmup: int = TIMING_WARMUP
                     ) -> dict[str, dict[str, float]]:
    """Median and p90 ms of one int8 inference per model, models interleaved round by round.

    models: name -> (tflite bytes, float pixels ``(K, R, R, 3)`` at its input size); each
    invocation takes the next of the K images (one thread, already quantised).
    """
    from tfedge.runtime.interpreter import TfliteModel

    loaded = {}
    for name, (tflite, images) in models.items():
        model = TfliteModel(tflite, num_threads=1)
        codes = model.quantize_input(images)
        for i in range(warmup):
            model.run_raw_all(codes[i % len(codes)][None])
        loaded[name] = (model, codes)
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(rounds):
        for name, (model, codes) in loaded.items():
            for i in range(per_round):
                frame = codes[(r * per_round + i) % len(codes)][None]
                t0 = time.perf_counter()
                model.run_raw_all(frame)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: {"ms_p50": float(np.median(t)), "ms_p90": float(np.percentile(t, 90)),
                   "count": len(t)} for name, t in times.items()}


def cascade_expected_ms(predictor_ms: float, stage_ms: list[float],
                        exit_fractions: list[float]) -> float:
    """Expected inference ms per frame: the predictor, then each stage for the frames reaching it."""
    if len(stage_ms) != len(exit_fractions):
        raise ValueError(f"{len(stage_ms)} stage timings for {len(exit_fractions)} exit fractions")
    reaching, total = 1.0, predictor_ms
    for ms, exits in zip(stage_ms, exit_fractions):
        total += reaching * ms
        reaching -= exits
    return total


def best_peer_near(rows: list[dict], name: str, window: float = PEER_LATENCY_WINDOW
                   ) -> dict | None:
    """The most accurate peer row whose int8 ms is within ``window`` of row ``name``'s."""
    target = next(r for r in rows if r["name"] == name)
    near = [r for r in rows if r.get("kind") == "peer"
            and abs(r["int8_ms"] - target["int8_ms"]) <= window * target["int8_ms"]]
    return max(near, key=lambda r: r["top1_mean"]) if near else None


def _row(name: str, kind: str, top1s: list[float], macs: int, budgets: list[dict],
         **extra: Any) -> dict:
    s = spread(top1s)
    used = [b["epochs_used"] for b in budgets]
    return {"name": name, "kind": kind, "top1_mean": s["mean"], "top1_min": s["min"],
            "top1_max": s["max"], "top1_per_seed": top1s, "macs": int(macs),
            "epochs": used, "epochs_budget": budgets,
            "converged": all(b["converged"] for b in budgets), **extra}


PLOT_DPI = 120
#: Characters per line of a point's label (the cascade's name runs to 80).
LABEL_WIDTH = 44
#: Where a point's label may go, in points from the point (dx, dy, alignment), tried in
#: order: right of it, then below, above, further out, then to its left.
LABEL_OFFSETS = ((4, 3, "left"), (4, -10, "left"), (4, 12, "left"), (4, -20, "left"),
                 (4, 22, "left"), (-4, 3, "right"), (-4, -10, "right"), (-4, 12, "right"),
                 (4, -30, "left"), (4, 32, "left"))


def place_labels(ax, renderer, points: list[tuple[float, float, str]], fontsize: float = 7):
    """Annotate each ``(x, y, text)`` at the first of :data:`LABEL_OFFSETS` whose box lies
    inside the axes and overlaps no label placed before it and no other point (the last
    offset if every one fails). Returns the labels' boxes in display coordinates."""
    marker = 4.0  # half a marker's side, in display pixels at the figure's dpi
    disc = [ax.transData.transform((x, y)) for x, y, _ in points]
    placed = []
    for i, (x, y, text) in enumerate(points):
        for dx, dy, align in LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                                fontsize=fontsize, ha=align)
            box = label.get_window_extent(renderer)
            hits_point = any(j != i and box.x0 - marker <= px <= box.x1 + marker
                             and box.y0 - marker <= py <= box.y1 + marker
                             for j, (px, py) in enumerate(disc))
            inside = (ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1
                      and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1)
            if inside and not hits_point and not any(box.overlaps(b) for b in placed):
                break
            if (dx, dy, align) != LABEL_OFFSETS[-1]:
                label.remove()
        placed.append(box)
    return placed


def plot_rows(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Drawn at the dpi it is saved at, so the label boxes measured below are the file's.
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=PLOT_DPI)
    colours = {"base": "black", "peer": "tab:blue", "crop": "tab:orange", "cascade": "tab:red"}
    for r in rows:
        err = [[r["top1_mean"] - r["top1_min"]], [r["top1_max"] - r["top1_mean"]]]
        ax.errorbar([r["int8_ms"]], [r["top1_mean"]], yerr=err, fmt="o",
                    color=colours.get(r["kind"], "gray"), capsize=3)
    ax.set_xlabel("int8 inference ms per frame (1 thread, interleaved, this machine)")
    ax.set_ylabel("test top-1 (mean, min-max over seeds)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    # Labels last, where the axes' limits and position are final: their boxes are then the
    # ones the file shows.
    place_labels(ax, fig.canvas.get_renderer(),
                 [(r["int8_ms"], r["top1_mean"], textwrap.fill(r["name"], LABEL_WIDTH))
                  for r in rows])
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)


def run(sizes: dict, seeds: tuple[int, ...], stages: list[tuple[str, int]],
        peers: list[tuple[str, int]], out: Path, reuse: bool, quick: bool,
        refiner_epochs: int | None = None,
        recipes: dict[str, dict[str, Any]] | None = None) -> dict:
    from tfedge import count_macs, evaluate_classifier, load_classifier
    from tfedge.data import BenchmarkConfig, load_dataset
    from tfedge.runtime.bundle import load_bundle

    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=BASE_RESOLUTION, train_size=sizes["train_size"], val_size=sizes["val_size"],
        test_size=sizes["test_size"], seed=0))
    classifiers = [(f"base {BASE_MODEL}@{BASE_RESOLUTION}", "base", BASE_MODEL, BASE_RESOLUTION)]
    classifiers += [(f"{n}@{r}", "peer", n, r) for n, r in peers]
    scores: dict[str, dict[str, list]] = {}
    cascade_rows = []
    for seed in seeds:
        for label, kind, name, res in classifiers:
            path = out / (f"base_{name}_seed{seed}.keras" if kind == "base"
                          else f"peer_{name}_r{res}_seed{seed}.keras")
            recipe = recipe_for(name, recipes or {}) if kind == "peer" else None
            _train_full_image(name, res, path, data, sizes, seed, reuse, recipe)
            model = load_classifier(path)
            entry = scores.setdefault(label, {"top1": [], "budget": [], "paths": [],
                                              "macs": count_macs(model).macs,
                                              "recipe": recipe})
            entry["top1"].append(evaluate_classifier(model, data.test).top1)
            entry["budget"].append(_budget(path))
            entry["paths"].append(path)
            log.info("seed %d: %s test top-1 %.4f, %s", seed, label, entry["top1"][-1],
                     entry["budget"][-1])
        _train_cascade_parts(seed, sizes, stages, data, out, reuse, refiner_epochs)
        row = cascade_benchmark.run_seed(seed, sizes, stages, PREDICTOR, data, out, reuse=True,
                                         refiner_epochs=refiner_epochs)
        row["budgets"] = {"predictor": _budget(out / f"predictor_seed{seed}.keras"),
                          **{f"{n}_r{r}": _budget(cascade_benchmark.stage_path(
                              out, n, r, seed, refiner_epochs is not None)) for n, r in stages}}
        cascade_rows.append(row)

    # Int8: every model of the first seed, timed interleaved in this one process.
    first = seeds[0]
    timing_inputs: dict[str, tuple[bytes, np.ndarray]] = {}
    int8_top1: dict[str, float] = {}
    sizes_bytes: dict[str, int] = {}
    for label, _, _, res in classifiers:
        tflite, top1 = _int8_classifier(scores[label]["paths"][0], data)
        timing_inputs[label] = (tflite, _resized(data.test.images[:64], res))
        int8_top1[label], sizes_bytes[label] = top1, len(tflite)
    if not cascade_rows[0]["conversion_passed"]:
        raise BenchmarkError(f"seed {first}'s int8 cascade bundle failed its check, nothing to "
                             f"time: {cascade_rows[0]['int8_conversion']}")
    bundle_dir = Path(cascade_rows[0]["bundle"])
    with load_bundle(bundle_dir) as bundle:
        pred, refiner = bundle.predictor, bundle.refiner
        timing_inputs["predictor"] = (bundle.read_model(pred),
                                      _resized(data.test.images[:64], pred.resolution))
        sizes_bytes["predictor"] = len(bundle.read_model(pred))
        if refiner is not None:
            # Timed on whole images at its input size: the window's pixels cost the same.
            timing_inputs["refiner"] = (bundle.read_model(refiner),
                                        _resized(data.test.images[:64], refiner.resolution))
            sizes_bytes["predictor"] += len(bundle.read_model(refiner))
        stage_names = []
        for k, stage in enumerate(bundle.stages):
            key = f"stage{k} {stage.name}"
            stage_names.append(key)
            timing_inputs[key] = (bundle.read_model(stage),
                                  _resized(data.test.images[:64], stage.resolution))
            sizes_bytes[key] = len(bundle.read_model(stage))
        cascade_bytes = bundle.total_model_bytes()
    log.info("== timing %d int8 models interleaved, %d x %d invocations each",
             len(timing_inputs), TIMING_ROUNDS, TIMING_PER_ROUND)
    timing = time_interleaved(timing_inputs)

    rows = []
    for label, kind, name, res in classifiers:
        e = scores[label]
        rows.append(_row(label, kind, e["top1"], e["macs"], e["budget"],
                         int8_ms=timing[label]["ms_p50"], int8_ms_p90=timing[label]["ms_p90"],
                         int8_bytes=sizes_bytes[label], int8_top1_seed0=int8_top1[label],
                         resolution=res, model=name,
                         **({"recipe": e["recipe"]} if e["recipe"] else {})))
    c0 = cascade_rows[0]
    last = c0["stages"][-1]
    # Finding the box: the predictor, then each of the refiner's passes.
    locator_ms = timing["predictor"]["ms_p50"] + (
        refiner.passes * timing["refiner"]["ms_p50"] if refiner is not None else 0.0)
    locator_name = PREDICTOR + (f" + refiner x{refiner.passes}" if refiner is not None else "")
    crop_ms = locator_ms + timing[stage_names[-1]]["ms_p50"]
    rows.append(_row(f"crop: {locator_name} + {last['name']}", "crop",
                     [r["stages"][-1]["top1"] for r in cascade_rows], last["alone_macs"],
                     [r["budgets"][f"{stages[-1][0]}_r{stages[-1][1]}"] for r in cascade_rows],
                     int8_ms=crop_ms, int8_bytes=sizes_bytes["predictor"]
                     + sizes_bytes[stage_names[-1]], predictor_epochs=[
                         r["budgets"]["predictor"]["epochs_used"] for r in cascade_rows]))
    cascade_ms = cascade_expected_ms(locator_ms,
                                     [timing[k]["ms_p50"] for k in stage_names],
                                     c0["exit_fractions"])
    rows.append(_row(f"cascade: {locator_name}, " + " -> ".join(s["name"] for s in c0["stages"]),
                     "cascade",
                     [r["cascade_top1"] for r in cascade_rows],
                     spread([r["cascade_expected_macs"] for r in cascade_rows])["mean"],
                     [b for r in cascade_rows for k, b in r["budgets"].items()
                      if k != "predictor"],
                     int8_ms=cascade_ms, int8_bytes=cascade_bytes,
                     int8_top1_per_seed=[r["int8_cascade_top1"] for r in cascade_rows],
                     exit_fractions_seed0=c0["exit_fractions"], predictor_epochs=[
                         r["budgets"]["predictor"]["epochs_used"] for r in cascade_rows]))
    plot = out / "peers_top1_vs_ms.png"
    plot_rows(rows, plot, f"peers benchmark{' (quick)' if quick else ''}, seeds "
              f"{', '.join(map(str, seeds))}, {len(data.test)} test images")

    base = rows[0]
    casc = rows[-1]
    peer = best_peer_near(rows, casc["name"])
    checks = {
        "cascade_gain_vs_base_points": (casc["top1_mean"] - base["top1_mean"]) * _POINTS,
        "cascade_macs_fraction": casc["macs"] / base["macs"],
        "cascade_at_most_50pct_macs_and_plus_1_point": bool(
            casc["macs"] <= TARGET_MACS_FRACTION * base["macs"]
            and (casc["top1_mean"] - base["top1_mean"]) * _POINTS >= TARGET_BASE_GAIN_POINTS),
        "crop_gain_vs_base_points": (rows[-2]["top1_mean"] - base["top1_mean"]) * _POINTS,
        "best_peer_within_10pct_latency": None if peer is None else peer["name"],
        "cascade_gain_vs_that_peer_points": None if peer is None
        else (casc["top1_mean"] - peer["top1_mean"]) * _POINTS,
        "cascade_beats_that_peer_by_3_points": None if peer is None
        else (casc["top1_mean"] - peer["top1_mean"]) * _POINTS >= TARGET_PEER_GAIN_POINTS,
        "all_converged": all(r["converged"] for r in rows),
    }
    return {"benchmark": "peers", "quick": quick, "seeds": list(seeds), "rows": rows,
            "checks": checks, "timing": timing, "timed_seed": first,
            "epochs_cap": sizes["epochs"], "patience": sizes["patience"],
            "predictor_epochs_cap": sizes["predictor_epochs"],
            "predictor_patience": sizes["predictor_patience"], "refiner_epochs": refiner_epochs,
            "cascade_per_seed": [{k: r[k] for k in ("seed", "cascade_top1",
                                                    "cascade_expected_macs", "exit_fractions",
                                                    "int8_cascade_top1", "calibration_mode",
                                                    "budgets", "stages", "base_top1")}
                                 for r in cascade_rows],
            "plot": str(plot), "train_images": len(data.train), "val_images": len(data.val),
            "test_images": len(data.test), "dataset": data.name}


def _parse_models(text: str, flag: str) -> list[tuple[str, int]]:
    try:
        return _parse_stages(text)
    except BenchmarkError:
        raise BenchmarkError(f"{flag} {text!r} is not NAME@RESOLUTION,... "
                             "(e.g. mobilenetv2_035@96,resnet10_025@128)") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 4000/500/1000 images, 2 peers, epoch cap 8 (patience 2)")
    parser.add_argument("--peers", type=str, default=None,
                        help=f"NAME@RESOLUTION,... (default full: {FULL_PEERS}; quick: "
                             f"{QUICK_PEERS})")
    parser.add_argument("--peer-recipe", dest="peer_recipe", action="append", default=[],
                        metavar="PREFIX:KEY=VALUE,...",
                        help="peers whose name starts with PREFIX train with these TrainConfig "
                             f"fields ({', '.join(RECIPE_FIELDS)}); repeatable. Default: "
                             + "; ".join(f"{family}:" + ",".join(f"{k}={v:g}" if isinstance(
                                 v, float) else f"{k}={v}" for k, v in recipe.items())
                                 for family, recipe in FAMILY_RECIPES.items())
                             + " (replaced for a family this flag names)")
    parser.add_argument("--stages", type=str, default=DEFAULT_STAGES)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="the epoch cap of classifiers")
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--min-epochs", dest="min_epochs", type=int, default=None,
                        help="no early stop before this epoch (default full 10, quick 0)")
    parser.add_argument("--predictor-epochs", dest="predictor_epochs", type=int, default=None)
    for split in ("train", "val", "test"):
        parser.add_argument(f"--{split}-size", dest=f"{split}_size", type=int, default=None,
                            help=f"images in the {split} split (default: the mode's)")
    parser.add_argument("--output-dir", dest="output_dir", type=Path, default=None,
                        help="default runs/benchmarks/peers[_quick]")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse models already in --output-dir (same data, cap and seed)")
    parser.add_argument("--refiner", action="store_true",
                        help=f"the crop pipeline and cascade with a refiner "
                             f"({cascade_benchmark.REFINER_EPOCHS} epochs): stages trained and "
                             "calibrated on refined crops, its passes in MACs and int8 ms")
    args = parser.parse_args()
    setup_logging()
    start = time.perf_counter()
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("epochs", "patience", "min_epochs", "predictor_epochs", "train_size",
                "val_size", "test_size"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    seeds = tuple(args.seeds) if args.seeds else (QUICK_SEEDS if args.quick else FULL_SEEDS)
    peers = _parse_models(args.peers or (QUICK_PEERS if args.quick else FULL_PEERS), "--peers")
    recipes = peer_recipes(args.peer_recipe, peers)
    for recipe in recipes.values():
        _train_config(sizes, 0, recipe)  # a bad value stops here, not after hours of training
    stages = _parse_models(args.stages, "--stages")
    out = args.output_dir or REPO / "runs" / "benchmarks" / ("peers_quick" if args.quick
                                                             else "peers")
    refiner_epochs = cascade_benchmark.REFINER_EPOCHS if args.refiner else None
    result = run(sizes, seeds, stages, peers, out, args.reuse, args.quick, refiner_epochs,
                 recipes)
    result.update(environment(), wall_seconds=time.perf_counter() - start, sizes=sizes,
                  peer_recipes=recipes)
    print_result(result)


if __name__ == "__main__":
    run_main(main)
