"""Fault injection: kill bundle writing, conversion and training at random points (kill -9).

    python benchmarks/faults.py --quick                 # 10 kills each, a few minutes
    python benchmarks/faults.py --kills 50              # 50 kills each
    python benchmarks/faults.py --kinds bundle --kills 50

A child process repeats one job in a loop (``bundle``: ``write_bundle`` of a
bundle folder and its zip with 2 MiB models, a new version each time;
``convert``: ``tfedge-convert classifier --zip`` of a tiny model; ``train``:
``tfedge train`` of a tiny model, 2 epochs) and is killed with SIGKILL after
a random delay drawn over its measured iteration time, so kills land in
file writes, fsyncs, renames, zip writing and TensorFlow's own work alike.
After every kill:

* ``half_written``: an artifact at its real path that exists but does not
  load (``load_bundle`` with hashes for bundles and zips; Keras
  ``load_model`` for the trained model);
* ``stale_pairs``: the bundle folder and the zip both exist and their
  manifests differ (a new folder next to an old zip, both verifying);
* after the last kill one clean run of the job: ``left_behind`` counts the
  temporaries of killed writes (``.NAME.*`` next to the artifacts) that are
  still there, i.e. that the next write did not remove.

``tmp_left_by_tensorflow`` (informational) counts entries the killed children
left in their private TMPDIR (TensorFlow's converter and Keras write there;
a killed process cannot clean it).

Last line: one JSON object per kind with ``kills``, ``half_written``,
``stale_pairs``, ``left_behind`` (all must be 0), ``verified_after_kill``
(artifacts that existed and loaded) and the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, environment, print_result, run_main, setup_logging  # noqa: E402

KINDS = ("bundle", "convert", "train")
QUICK_KILLS = 10
FULL_KILLS = 50
MODEL_BYTES = 2 * 2 ** 20
READY_TIMEOUT_S = 600
CLASSES = ("a", "b", "c")
IMAGE_SIDE = 32


# --------------------------------------------------------------------------- child jobs


def _say(text: str) -> None:
    print(text, flush=True)


def _bundle_job(work: Path, iteration: int) -> None:
    from tfedge.runtime.bundle import load_bundle, write_bundle

    source = load_bundle(REPO / "tests" / "golden" / "bundle")
    rng = random.Random(iteration)
    padding = bytes(rng.randrange(256) for _ in range(64)) * (MODEL_BYTES // 64)
    stages = [(s, source.read_model(s) + padding) for s in source.stages]
    write_bundle(work / "b", labels=source.labels, stages=stages,
                 predictor=(source.predictor, source.read_model(source.predictor)),
                 metrics={"version": iteration}, zip_path=work / "b.zip")


def _convert_job(work: Path, iteration: int) -> None:
    from tfedge.cli.convert import main as convert_main

    code = convert_main(["classifier", "--model", str(work.parent / "model.keras"),
                         "--output", str(work / "b"), "--zip", "--data", str(work.parent / "data"),
                         "--calibration-size", "8", "--check-size", "9", "--tolerance", "100"])
    if code != 0:
        raise SystemExit(f"conversion failed with status {code}")


def _train_job(work: Path, iteration: int) -> None:
    from tfedge.cli import main as tfedge_main

    code = tfedge_main(["train", "--model", "resnet10_025", "--resolution", str(IMAGE_SIDE),
                        "--epochs", "2", "--batch-size", "8", "--data", str(work.parent / "data"),
                        "--output", str(work / "m.keras"), "--seed", str(iteration)])
    if code != 0:
        raise SystemExit(f"training failed with status {code}")


JOBS = {"bundle": _bundle_job, "convert": _convert_job, "train": _train_job}


def child(kind: str, work: Path, once: bool) -> None:
    """Repeat one job forever (until killed); ``once``: a single clean run."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    if kind != "bundle":
        import tensorflow  # noqa: F401 - imported before 'ready', so kills land in the job
    _say("ready")
    iteration = 0
    while True:
        JOBS[kind](work, iteration)
        _say(f"done {iteration}")
        iteration += 1
        if once:
            return


# --------------------------------------------------------------------------- parent


def _prepare(base: Path, kinds: list[str]) -> None:
    """A tiny folder dataset and (for conversion) a tiny trained model, once."""
    if not {"convert", "train"} & set(kinds):
        return
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split_index, count in ((0, 12), (1, 6)):
        for c, name in enumerate(CLASSES):
            folder = base / "data" / ("train" if split_index == 0 else "val") / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 80, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
                pixels[..., c] += 150
                Image.fromarray(pixels).save(folder / f"{i}.png")
    if "convert" in kinds:
        done = subprocess.run([sys.executable, "-m", "tfedge.cli", "train", "--model", "resnet10_025",
                               "--resolution", str(IMAGE_SIDE), "--epochs", "1", "--batch-size",
                               "8", "--data", str(base / "data"), "--output",
                               str(base / "model.keras")], capture_output=True, text=True,
                              cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if done.returncode != 0:
            raise RuntimeError(f"training the tiny model failed: {done.stderr[-2000:]}")


def _spawn(kind: str, work: Path, once: bool = False) -> subprocess.Popen:
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    argv = [sys.executable, __file__, "--child", kind, str(work)] + (["--once"] if once else [])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=REPO, env=dict(os.environ, TMPDIR=str(tmp),
                                               TF_CPP_MIN_LOG_LEVEL="3"))


def _wait_line(process: subprocess.Popen, prefix: str, timeout: float) -> Optional[float]:
    """Seconds until the child prints a line starting with ``prefix`` (None: it did not)."""
    start = time.perf_counter()
    assert process.stdout is not None
    while time.perf_counter() - start < timeout:
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            return None
        line = process.stdout.readline()
        if not line:
            return None
        if line.startswith(prefix):
            return time.perf_counter() - start
    return None


def _check(kind: str, work: Path) -> dict[str, int]:
    """What the artifacts at their real paths look like after a kill."""
    found = {"half_written": 0, "stale_pairs": 0, "verified_after_kill": 0}
    if kind in ("bundle", "convert"):
        from tfedge.runtime.bundle import load_bundle
        from tfedge.runtime.errors import BundleError

        manifests = {}
        for path in (work / "b", work / "b.zip"):
            if not path.exists():
                continue
            try:
                with load_bundle(path) as bundle:
                    manifests[path.name] = json.dumps(dict(bundle.manifest), sort_keys=True)
                found["verified_after_kill"] += 1
            except BundleError:
                found["half_written"] += 1
        if len(manifests) == 2 and manifests["b"] != manifests["b.zip"]:
            found["stale_pairs"] += 1
    else:
        model = work / "m.keras"
        if model.exists():
            import keras

            try:
                keras.models.load_model(model, compile=False)
                found["verified_after_kill"] += 1
            except Exception:  # noqa: BLE001 - any failure to load is a half-written file
                found["half_written"] += 1
    return found


def _temporaries(work: Path) -> list[str]:
    return sorted(p.name for p in work.iterdir() if p.name.startswith("."))


def run_kind(kind: str, kills: int, base: Path, rng: random.Random) -> dict[str, Any]:
    work = base / kind
    work.mkdir()
    totals = {"kills": 0, "half_written": 0, "stale_pairs": 0, "verified_after_kill": 0,
              "no_artifact_yet": 0, "temporaries_seen_after_kills": 0}
    iteration_s: Optional[float] = None
    start = time.perf_counter()
    for k in range(kills):
        process = _spawn(kind, work)
        if _wait_line(process, "ready", READY_TIMEOUT_S) is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"{kind} child never became ready")
        if iteration_s is None:  # measure one iteration, then kill the next ones at random
            iteration_s = _wait_line(process, "done", READY_TIMEOUT_S) or 1.0
        time.sleep(rng.uniform(0.0, 1.5 * iteration_s))
        process.send_signal(signal.SIGKILL)
        process.wait()
        totals["kills"] += 1
        found = _check(kind, work)
        for key, value in found.items():
            totals[key] += value
        if not any((work / name).exists() for name in ("b", "b.zip", "m.keras")):
            totals["no_artifact_yet"] += 1
        totals["temporaries_seen_after_kills"] += len(_temporaries(work))
    # The next write must clean up after all the kills: one clean run, then nothing left.
    process = _spawn(kind, work, once=True)
    process.wait(timeout=READY_TIMEOUT_S)
    left = _temporaries(work)
    tmp_left = sorted(p.name for p in (work / "tmp").iterdir())
    final = _check(kind, work)
    return {**totals, "left_behind": len(left), "left_names": left[:10],
            "clean_run_ok": process.returncode == 0 and final["half_written"] == 0,
            "tmp_left_by_tensorflow": len(tmp_left), "iteration_s": round(iteration_s or 0, 3),
            "seconds": round(time.perf_counter() - start, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    kills = args.kills or (QUICK_KILLS if args.quick else FULL_KILLS)
    kinds = args.kinds or list(KINDS)
    base = Path(tempfile.mkdtemp(prefix="tfedge-faults-"))
    rng = random.Random(args.seed)
    try:
        _prepare(base, kinds)
        results = {kind: run_kind(kind, kills, base, rng) for kind in kinds}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    must_be_zero = sum(r["half_written"] + r["stale_pairs"] + r["left_behind"]
                       for r in results.values())
    return {"kinds": results, "failures": must_be_zero, "seed": args.seed, "kills_per_kind": kills,
            "quick": bool(args.quick), "environment": environment()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), "--once" in sys.argv)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_KILLS} kills per kind")
    parser.add_argument("--kills", type=int, default=None,
                        help=f"kills per kind (default {FULL_KILLS})")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=str, default=None, help="also write the JSON here")
    args = parser.parse_args()
    setup_logging()
    print_result(run(args), output=args.output)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), "--once" in sys.argv)
    else:
        run_main(main)
