"""tfedge-pi on the built-in benchmark: cascade vs base latency, preprocessing cost, parity.

    python benchmarks/runner.py --quick                       # quick splits, bundles found/built
    python benchmarks/runner.py --cascade-bundle B1 --base-bundle B2

Runs ``tfedge-pi --benchmark``-style timing (``python -m rpi_runner``, one
thread) on the cascade bundle (predictor + stages) and on the base model's
bundle, interleaved in rounds (cascade, base, cascade, base, ...) because this
machine is shared, on camera-like frames: test images resized to 640x480 and
stored as JPEG files (quality 90). Then parity: the runner's predictions on the
test split written as PNG files are compared with the Python evaluation of the
same bundle on the arrays (:func:`rpi_runner.evaluate_bundle`, the training
side's preprocessing functions in numpy) and, where it exists, with the
training side's own bundle evaluation (``tfedge.cascade.evaluate_bundle``,
tf.data and ``tf.image.resize``): ``training_eval_agreement``.

Bundles: ``--base-bundle``; else ``--base-model``, converted with tfedge-convert into
``bundles/`` beside it; else ``runs/benchmarks/bundles/base_<model>``, converted
from ``runs/benchmarks/base_<model>_seed0.keras`` (benchmarks/base.py --quick)
when missing. ``--cascade-bundle``, else
``runs/benchmarks/bundles/cascade`` or ``runs/benchmarks/cascade[_quick]/bundles/
cascade_seed0`` (benchmarks/cascade.py), else a *proxy*: the intended
architectures untrained (boxnet predictor, resnet10_025 at 64 px, resnet10_050
at 96 px, stage-0 threshold at the 30th percentile of validation scores). A
proxy's timing and parity are meaningful, its accuracy is not; the JSON names
which bundles were used (``cascade_kind``).

Last line: one JSON object with ``frames``, ``cascade_infer_ms_p50``,
``base_infer_ms_p50``, ``ratio`` (cascade / base), ``preprocess_ms_p50``
(cascade, from a raw 640x480 RGB frame: predictor input + crop + stage
inputs), ``decode_ms_p50`` (JPEG files), ``agreement`` (cascade; also
``base_agreement``), the targets and whether they were met, and the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from _common import REPO, BenchmarkError, environment, print_result, run_main, setup_logging

log = logging.getLogger("benchmarks.runner")

BASE_MODEL = "resnet10_050"
FULL = dict(train_size=20000, val_size=2000, test_size=5000)
QUICK = dict(train_size=4000, val_size=500, test_size=1000)
IMAGE_SIZE = 128
FRAME_SIZE = (640, 480)             # (width, height) of the camera-like frames
JPEG_QUALITY = 90
TIMING_FRAMES = 250                 # distinct frames: enough for the test split's exit mix
ROUNDS = 4                          # cascade/base alternations
REPEAT = 1                          # passes per round
WARMUP = 3                          # frames left out of each subprocess's figures
TARGET_RATIO = 0.35
TARGET_PREPROCESS_FACTOR = 2.0      # preprocess p50 <= this x cascade inference p50
TARGET_AGREEMENT = 0.995
PROXY_THRESHOLD_QUANTILE = 0.3      # proxy cascade: ~70% of images leave at stage 0
PROXY_STAGES = (("resnet10_025", 64), ("resnet10_050", 96))
PROXY_CALIBRATION = 128
BUNDLES = REPO / "runs" / "benchmarks" / "bundles"


def _data(quick: bool):
    from tfedge.data import BenchmarkConfig, load_dataset

    sizes = QUICK if quick else FULL
    return load_dataset("benchmark", benchmark=BenchmarkConfig(image_size=IMAGE_SIZE, seed=0,
                                                               **sizes))


# --------------------------------------------------------------------------- bundles


def _convert_base(model: Path, output: Path, quick: bool) -> Path:
    from tfedge.cli.convert import main as convert_main

    sizes = QUICK if quick else FULL
    log.info("converting %s into %s with tfedge-convert", model, output)
    args = ["classifier", "--model", str(model), "--output", str(output),
            "--calibration-size", "500", "--check-size", "500", "--image-size", str(IMAGE_SIZE),
            "--train-size", str(sizes["train_size"]), "--val-size", str(sizes["val_size"]),
            "--test-size", str(sizes["test_size"])]
    rc = convert_main(args)
    if rc != 0:
        raise BenchmarkError(f"tfedge-convert failed (exit {rc}) on {model}")
    return output


def _base_bundle(args: argparse.Namespace) -> tuple[Path, str]:
    if args.base_bundle:
        return Path(args.base_bundle), "given"
    if args.base_model:  # named: its own bundle, never one found from another run
        model = Path(args.base_model)
        output = model.parent / "bundles" / model.name.removesuffix(".keras")
        if (output / "manifest.json").is_file():
            return output, "found"
        if not model.is_file():
            raise BenchmarkError(f"no base model {model}: run benchmarks/base.py first")
        return _convert_base(model, output, args.quick), "converted"
    default = BUNDLES / f"base_{BASE_MODEL}"
    if (default / "manifest.json").is_file():
        return default, "found"
    model = REPO / "runs" / "benchmarks" / f"base_{BASE_MODEL}_seed0.keras"
    if not model.is_file():
        raise BenchmarkError(f"no base bundle and no base model {model}: run benchmarks/base.py "
                         "--quick first, or pass --base-bundle / --base-model")
    return _convert_base(model, default, args.quick), "converted"


def _proxy_cascade(data, output: Path) -> Path:
    """Untrained predictor + two stages of the intended sizes (timing and parity only)."""
    import keras

    from rpi_runner import EdgePipeline
    from tfedge import convert_to_int8, count_macs, create_model
    from tfedge.bundle import PredictorEntry, StageEntry, write_bundle
    from tfedge.crop import DEFAULT_PREDICTOR, build_predictor, get_predictor_spec
    from tfedge.crop.geometry import CropConfig, crop_and_resize, resize_bilinear
    from tfedge.litert import TfliteModel

    log.info("no cascade bundle: building an untrained proxy cascade in %s", output)
    keras.utils.set_random_seed(0)
    labels = list(data.class_names)
    train = data.train
    idx = np.arange(min(PROXY_CALIBRATION, len(train)))
    images, boxes = train.images[idx], train.boxes[idx]
    # The boxnet head outputs (cy, cx, h, w); a fixed linear layer turns it into the
    # contract's (ymin, xmin, ymax, xmax).
    spec = get_predictor_spec(DEFAULT_PREDICTOR)
    boxnet = build_predictor(spec)
    to_yxyx = keras.layers.Dense(4, use_bias=False, trainable=False, name="to_yxyx")
    predictor = keras.Model(boxnet.input, to_yxyx(boxnet.output), name="proxy_predictor")
    to_yxyx.set_weights([np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0],
                                   [0, -0.5, 0, 0.5]], np.float32)])
    r = spec.resolution
    pdata = convert_to_int8(predictor, np.stack([resize_bilinear(im, r, r) for im in images]))
    pmodel = TfliteModel(pdata)
    crop = CropConfig()
    pentry = PredictorEntry(resolution=r, macs=int(count_macs(boxnet).macs),
                            input=pmodel.input_spec, outputs=pmodel.output_specs,
                            crop=crop.to_dict(), metrics={"proxy": "untrained"})
    stages = []
    for k, (name, res) in enumerate(PROXY_STAGES):
        model = create_model(name, resolution=res, num_classes=len(labels))
        calib = np.stack([crop_and_resize(im, box, res, crop)[0] for im, box in zip(images, boxes)])
        tflite = convert_to_int8(model, calib)
        t = TfliteModel(tflite)
        stages.append((StageEntry(name=f"{name}_r{res}", resolution=res,
                                  macs=int(count_macs(model).macs), input=t.input_spec,
                                  output=t.output_spec, accumulate_weight=0.5 if k else 0.0,
                                  metrics={"proxy": "untrained"}), tflite))
    probe = write_bundle(output.with_name(output.name + "_probe"), labels=labels,
                         stages=stages[:1], predictor=(pentry, pdata))
    with EdgePipeline(probe) as pipe:
        scores = [pipe.classify(im).exit_score for im in data.val.images[:200]]
    threshold = float(np.quantile(scores, PROXY_THRESHOLD_QUANTILE))
    shutil.rmtree(probe, ignore_errors=True)
    first, first_bytes = stages[0]
    stages[0] = (dataclasses.replace(first, threshold=threshold), first_bytes)
    return write_bundle(output, labels=labels, stages=stages, predictor=(pentry, pdata),
                        metrics={"proxy": "untrained architectures, for timing and parity only"})


def _cascade_bundle(args: argparse.Namespace, data) -> tuple[Optional[Path], str]:
    if args.cascade_bundle:
        return Path(args.cascade_bundle), "given"
    for candidate in (BUNDLES / "cascade",
                      REPO / "runs" / "benchmarks" / ("cascade_quick" if args.quick else "cascade")
                      / "bundles" / "cascade_seed0"):
        if (candidate / "manifest.json").is_file():
            return candidate, "found"
    if args.no_proxy:
        return None, "missing"
    proxy = BUNDLES / "proxy_cascade"
    if (proxy / "manifest.json").is_file() and not args.rebuild_proxy:
        return proxy, "proxy-untrained"
    return _proxy_cascade(data, proxy), "proxy-untrained"


# --------------------------------------------------------------------------- runs


def _write_frames(images: np.ndarray, folder: Path, camera_like: bool) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        picture = Image.fromarray(image)
        if camera_like:
            picture.resize(FRAME_SIZE, Image.BILINEAR).save(folder / f"{i:05d}.jpg",
                                                            quality=JPEG_QUALITY)
        else:
            picture.save(folder / f"{i:05d}.png")


def _runner(bundle: Path, folder: Path, records: Path, *, benchmark: bool, repeat: int = 1,
            warmup: int = 0) -> Optional[dict[str, Any]]:
    """Run ``python -m rpi_runner`` (one thread); return its summary JSON (benchmark mode)."""
    cmd = [sys.executable, "-m", "rpi_runner", str(bundle), str(folder), "--threads", "1",
           "--output", str(records), "--repeat", str(repeat), "--warmup", str(warmup)]
    if benchmark:
        cmd.append("--benchmark")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise BenchmarkError(f"tfedge-pi failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) if benchmark else None


def _records(path: Path, warmup: int) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in lines[warmup:] if "error" not in r]


def _timing(cascade: Path, base: Path, folder: Path, work: Path) -> dict[str, Any]:
    """Both bundles on the same frames, alternating (cascade, base) for ROUNDS rounds."""
    from rpi_runner._output import summarize

    runs: dict[str, list[dict[str, Any]]] = {"cascade": [], "base": []}
    walls: dict[str, float] = {"cascade": 0.0, "base": 0.0}
    stages: dict[str, int] = {}
    for round_ in range(ROUNDS):
        for name, bundle in (("cascade", cascade), ("base", base)):
            out = work / f"{name}_{round_}.jsonl"
            summary = _runner(bundle, folder, out, benchmark=True, repeat=REPEAT, warmup=WARMUP)
            runs[name].extend(_records(out, WARMUP))
            walls[name] += summary["wall_seconds"]
            stages[name] = summary["stages"]
    return {name: summarize(records, stages[name], walls[name]) for name, records in runs.items()}


def _agreement(bundle: Path, split, folder: Path, work: Path, name: str) -> dict[str, Any]:
    from rpi_runner import agreement, evaluate_bundle

    out = work / f"parity_{name}.jsonl"
    _runner(bundle, folder, out, benchmark=False)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    runner_pred = [r.get("class", -1) for r in records]
    start = time.perf_counter()
    reference = evaluate_bundle(bundle, split)
    log.info("%s: Python evaluation of %d images in %.1f s", name, reference.count,
             time.perf_counter() - start)
    out = {"agreement": agreement(runner_pred, reference.predictions),
           "top1": reference.top1, "exit_rates": list(reference.exit_rates),
           "mean_macs": reference.mean_macs, "images": reference.count,
           "runner_errors": sum("error" in r for r in records)}
    out.update(_training_side_agreement(bundle, split, runner_pred, name))
    return out


def _training_side_agreement(bundle: Path, split, runner_pred: list[int], name: str
                             ) -> dict[str, Any]:
    """The runner against tfedge.cascade.evaluate_bundle (tf.data preprocessing), if present."""
    try:
        from rpi_runner import agreement
        from tfedge.bundle import load_bundle
        from tfedge.cascade import evaluate_bundle as training_evaluation
    except ImportError as exc:
        log.info("no training-side bundle evaluation (%s)", exc)
        return {}
    with load_bundle(bundle) as loaded:
        _, outcome = training_evaluation(loaded, split)
    value = agreement(runner_pred, outcome.prediction)
    log.info("%s: runner vs tfedge.cascade.evaluate_bundle agreement %.4f", name, value)
    return {"training_eval_agreement": value, "training_eval_top1": float(outcome.top1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = _data(args.quick)
    base, base_kind = _base_bundle(args)
    cascade, cascade_kind = _cascade_bundle(args, data)
    test = data.test
    count = min(args.agreement_size or len(test), len(test))
    parity_split = test.take(count)
    with tempfile.TemporaryDirectory(prefix="tfedge-runner-bench-") as tmp:
        work = Path(tmp)
        frames = work / "frames"
        _write_frames(test.images[:args.frames], frames, camera_like=True)
        pngs = work / "pngs"
        _write_frames(parity_split.images, pngs, camera_like=False)
        result: dict[str, Any] = {"benchmark": "runner", "quick": args.quick,
                                  "base_bundle": str(base), "base_kind": base_kind,
                                  "cascade_bundle": str(cascade) if cascade else None,
                                  "cascade_kind": cascade_kind, "threads": 1,
                                  "frame_size": list(FRAME_SIZE), "jpeg_quality": JPEG_QUALITY,
                                  "parity_images": count, "dataset": data.name}
        base_parity = _agreement(base, parity_split, pngs, work, "base")
        result["base_agreement"] = base_parity["agreement"]
        result["base_top1"] = base_parity["top1"]
        result["base_training_eval_agreement"] = base_parity.get("training_eval_agreement")
        if cascade is None:
            log.warning("no cascade bundle: pass --cascade-bundle (or drop --no-proxy)")
            timing = None
        else:
            cascade_parity = _agreement(cascade, parity_split, pngs, work, "cascade")
            result.update({"agreement": cascade_parity["agreement"],
                           "cascade_top1": cascade_parity["top1"],
                           "cascade_exit_rates": cascade_parity["exit_rates"],
                           "cascade_mean_macs": cascade_parity["mean_macs"],
                           "training_eval_agreement":
                               cascade_parity.get("training_eval_agreement")})
            timing = _timing(cascade, base, frames, work)
    if timing is not None:
        c, b = timing["cascade"], timing["base"]
        ratio = c["infer_ms_p50"] / b["infer_ms_p50"]
        for part in (c, b):
            part.pop("errors", None)
        result.update({
            "frames": c["frames"], "base_frames": b["frames"],
            "cascade_infer_ms_p50": round(c["infer_ms_p50"], 4),
            "base_infer_ms_p50": round(b["infer_ms_p50"], 4), "ratio": round(ratio, 4),
            "preprocess_ms_p50": round(c["preprocess_ms_p50"], 4),
            "base_preprocess_ms_p50": round(b["preprocess_ms_p50"], 4),
            "decode_ms_p50": round(c["decode_ms_p50"], 4),
            "base_decode_ms_p50": round(b["decode_ms_p50"], 4),
            "cascade": c, "base": b,
            "targets": {"ratio": TARGET_RATIO, "preprocess_vs_infer": TARGET_PREPROCESS_FACTOR,
                        "agreement": TARGET_AGREEMENT},
            "met": {"ratio": ratio <= TARGET_RATIO,
                    "preprocess": c["preprocess_ms_p50"]
                    <= TARGET_PREPROCESS_FACTOR * c["infer_ms_p50"],
                    "agreement": result["agreement"] >= TARGET_AGREEMENT
                    and result["base_agreement"] >= TARGET_AGREEMENT},
        })
    result.update(environment())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the quick splits (those benchmarks/base.py --quick trains on)")
    parser.add_argument("--cascade-bundle", dest="cascade_bundle", type=str, default=None)
    parser.add_argument("--base-bundle", dest="base_bundle", type=str, default=None)
    parser.add_argument("--base-model", dest="base_model", type=str, default=None,
                        help="convert this base .keras (into bundles/ beside it) instead of "
                             f"using runs/benchmarks/bundles/base_{BASE_MODEL}")
    parser.add_argument("--no-proxy", dest="no_proxy", action="store_true",
                        help="without a cascade bundle, skip the cascade instead of a proxy")
    parser.add_argument("--rebuild-proxy", dest="rebuild_proxy", action="store_true",
                        help="rebuild the proxy cascade even if one was built before")
    parser.add_argument("--frames", type=int, default=TIMING_FRAMES,
                        help=f"distinct 640x480 JPEG frames timed per round (default "
                             f"{TIMING_FRAMES}; {ROUNDS} rounds)")
    parser.add_argument("--agreement-size", dest="agreement_size", type=int, default=None,
                        help="test images for parity (default: the whole test split)")
    args = parser.parse_args()
    setup_logging()
    start = time.perf_counter()
    result = run(args)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    print_result(result)


if __name__ == "__main__":
    run_main(main)
