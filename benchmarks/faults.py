"""Fault injection: kill bundle writing, conversion and training at random points (kill -9).

    python benchmarks/faults.py --quick                 # 10 kills each, a few minutes
    python benchmarks/faults.py --kills 50              # 50 kills each
    python benchmarks/faults.py --kinds bundle --kills 50

A child process repeats one job in a loop (``bundle``: ``write_bundle`` of a
bundle folder and its zip with 2 MiB models, a new version each time;
``convert``: ``tfedge-convert classifier --zip`` of a tiny model; ``train``:
``tfedge train`` of a tiny model, 2 epochs, the same arguments each time so a
killed run resumes) and is killed with SIGKILL. Kills cycle through modes:
``anywhere`` (a random delay over the measured iteration time: TensorFlow's
own work mostly), ``in_write`` (the moment one of tfedge's atomic-write
temporaries appears next to the artifacts, plus 0-20 ms) and a kind-specific
one (``in_tf_temp``: while the converter's SavedModel export is in the temp
dir; ``in_backup``: while TensorFlow writes the per-epoch backup;
``after_epoch``: just after an epoch's backup is complete, and the next run
is then left to finish once, to show it resumes from that epoch). After
every kill:

* ``half_written``: an artifact at its real path that exists but does not
  load (``load_bundle`` with hashes for bundles and zips; Keras
  ``load_model`` for the trained model);
* ``stale_pairs``: a pair on disk that disagrees and is read without
  complaint: the bundle folder and the zip with different manifests; the
  trained model and a sidecar (``m.keras.json``) written for another model
  that ``read_sidecar`` accepts (``stale_pairs_refused``: such a sidecar that
  it refuses, as it must);
* ``child_failures``: a child that exited by itself (e.g. refusing to resume);
* ``resume_mismatches`` (training): a run started on a backup of epoch N that
  did not report ``resumed_from_epoch`` N (``resumes_checked`` counts the runs
  checked, ``resumed_runs`` those that resumed from an epoch > 0);
* after the last kill one clean run of the job: ``left_behind`` counts the
  temporaries of killed writes (``.NAME.*`` next to the artifacts) still
  there, plus everything left in the children's private TMPDIR
  (``tmp_left_names``): TensorFlow's SavedModel exports and AutoGraph modules
  go to a ``tfedge-*.pidPID.*`` folder there (``tfedge.runtime.fileio.private_tempdir``)
  that the next run removes once its process is gone.

Last line: one JSON object per kind with ``kills``, ``half_written``,
``stale_pairs``, ``left_behind``, ``child_failures``, ``resume_mismatches``
(all must be 0), ``verified_after_kill`` (artifacts that existed and loaded),
``kills_by_mode``, ``kills_during_write`` (a temporary of the killed child's
own atomic writes existed at the kill) and the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
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
WRITE_KILL_DELAY_S = 0.02  # after a watched file appears: lands inside that write
POLL_S = 0.002
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


def _train_job(work: Path, iteration: int) -> str:
    import contextlib
    import io

    from tfedge.cli import main as tfedge_main

    # The same arguments every time: a killed run started again must resume its backup.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = tfedge_main(["train", "--model", "resnet10_025", "--resolution",
                            str(IMAGE_SIDE), "--epochs", "2", "--batch-size", "8", "--data",
                            str(work.parent / "data"), "--output", str(work / "m.keras"),
                            "--seed", "0"])
    if code != 0:
        raise SystemExit(f"training failed with status {code}")
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return f"resumed={summary['resumed_from_epoch']}"


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
        note = JOBS[kind](work, iteration)
        _say(f"done {iteration} {note or ''}".rstrip())
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


class _Child:
    """A child process and the lines it printed (read by a thread, so waits never block)."""

    def __init__(self, kind: str, work: Path, once: bool = False):
        tmp = work / "tmp"
        tmp.mkdir(exist_ok=True)
        argv = [sys.executable, __file__, "--child", kind, str(work)] + (["--once"] if once else [])
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, cwd=REPO,
                                        env=dict(os.environ, TMPDIR=str(tmp),
                                                 TF_CPP_MIN_LOG_LEVEL="3"))
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.strip())
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def wait_line(self, prefix: str, timeout: float, after: int = 0) -> Optional[float]:
        """Seconds until a line starting with ``prefix`` (from index ``after``); None: never."""
        start = time.perf_counter()
        with self._changed:
            while True:
                if any(line.startswith(prefix) for line in self.lines[after:]):
                    return time.perf_counter() - start
                if "<eof>" in self.lines:
                    return None
                left = timeout - (time.perf_counter() - start)
                if left <= 0:
                    return None
                self._changed.wait(left)

    def kill(self) -> Optional[int]:
        """SIGKILL; the exit status if it had already ended by itself, else None."""
        status = self.process.poll()
        if status is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return status


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check(kind: str, work: Path) -> dict[str, int]:
    """What the artifacts at their real paths look like after a kill."""
    found = {"half_written": 0, "stale_pairs": 0, "stale_pairs_refused": 0,
             "verified_after_kill": 0}
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
        model, sidecar = work / "m.keras", work / "m.keras.json"
        if model.exists():
            import keras

            try:
                keras.models.load_model(model, compile=False)
                found["verified_after_kill"] += 1
            except Exception:  # noqa: BLE001 - any failure to load is a half-written file
                found["half_written"] += 1
        if model.exists() and sidecar.exists():
            from tfedge import TfedgeError, read_sidecar

            recorded = json.loads(sidecar.read_text()).get("keras_sha256")
            if recorded is not None and recorded != _sha256(model):
                try:
                    read_sidecar(model)
                    found["stale_pairs"] += 1  # read without complaint: silently wrong metadata
                except TfedgeError:
                    found["stale_pairs_refused"] += 1
    return found


def _temporaries(work: Path) -> list[str]:
    return sorted(p.name for p in work.iterdir() if p.name.startswith("."))


def _backup_epoch(work: Path) -> Optional[int]:
    """The epoch of the training backup's checkpoint (0: a backup with none; None: no backup)."""
    backup = work / "m.keras.backup"
    if not backup.is_dir():
        return None
    state = backup / "checkpoint"
    if not state.exists():
        return 0
    for line in state.read_text().splitlines():
        if line.startswith("model_checkpoint_path:"):
            return int(line.split("ckpt-")[-1].rstrip('"'))
    return 0


def _watchers(kind: str, work: Path) -> dict[str, Any]:
    """Kill modes other than 'anywhere': name -> whether the watched write is under way."""
    def in_write() -> bool:  # one of tfedge's atomic-write temporaries of the artifacts exists
        return any(p.name.startswith(".") for p in work.iterdir())

    def in_tf_temp() -> bool:  # the converter's SavedModel export folder exists
        return any(p.is_dir() for d in (work / "tmp").glob("tfedge-*") for p in d.iterdir())

    def in_backup() -> bool:  # TensorFlow is writing a checkpoint (ckpt-N_temp/)
        return any((work / "m.keras.backup").glob("*_temp*"))

    def after_epoch() -> bool:  # an epoch's backup is complete: the next run must resume it
        try:
            return (_backup_epoch(work) or 0) >= 1
        except ValueError:  # the state file read mid-write
            return False

    extra = {"convert": {"in_tf_temp": in_tf_temp},
             "train": {"in_backup": in_backup, "after_epoch": after_epoch}}
    return {"in_write": in_write, **extra.get(kind, {})}


def _wait_for(condition, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        try:
            if condition():
                return True
        except OSError:  # a folder vanished while listing it
            pass
        time.sleep(POLL_S)
    return False


def _count_resume(totals: dict[str, int], child: _Child, expected: int) -> None:
    """If the child's first run finished, it must have resumed from the backup's epoch."""
    done = [line for line in child.lines if line.startswith("done ")]
    if done:
        resumed = int(done[0].split("resumed=")[1])
        totals["resumes_checked"] += 1
        totals["resumed_runs"] += int(resumed > 0)
        totals["resume_mismatches"] += int(resumed != expected)


def run_kind(kind: str, kills: int, base: Path, rng: random.Random) -> dict[str, Any]:
    work = base / kind
    work.mkdir()
    totals = {"kills": 0, "half_written": 0, "stale_pairs": 0, "stale_pairs_refused": 0,
              "verified_after_kill": 0, "no_artifact_yet": 0, "temporaries_seen_after_kills": 0,
              "kills_during_write": 0, "child_failures": 0, "resumes_checked": 0,
              "resumed_runs": 0, "resume_mismatches": 0, "private_tmp_dirs_seen_after_kills": 0}
    watchers = _watchers(kind, work)
    modes = ["anywhere"] + list(watchers)
    by_mode = {mode: 0 for mode in modes}
    watched_missed = 0
    iteration_s: Optional[float] = None
    start = time.perf_counter()
    for k in range(kills):
        expected_resume = _backup_epoch(work) if kind == "train" else None
        child = _Child(kind, work)
        if child.wait_line("ready", READY_TIMEOUT_S) is None:
            child.kill()
            raise RuntimeError(f"{kind} child never became ready")
        if iteration_s is None:  # measure one iteration, then kill the next ones
            iteration_s = child.wait_line("done", READY_TIMEOUT_S) or 1.0
        if expected_resume:  # a backup of a finished epoch: let this run show it resumes
            child.wait_line("done", READY_TIMEOUT_S)
            _count_resume(totals, child, expected_resume)
            expected_resume = None
        mode = modes[k % len(modes)]
        if mode == "anywhere":
            time.sleep(rng.uniform(0.0, 1.5 * iteration_s))
        elif _wait_for(watchers[mode], 3 * iteration_s + 10):
            time.sleep(rng.uniform(0.0, WRITE_KILL_DELAY_S))
        else:
            watched_missed += 1
        mine = f".pid{child.process.pid}."  # this child's, not those a killed one left
        during_write = any(mine in name for name in _temporaries(work)) or any(
            mine in p.name for p in (work / "m.keras.backup").glob(".*"))
        status = child.kill()
        if status is not None:
            totals["child_failures"] += 1
            log_failure = f"{kind} child exited by itself with status {status}"
            print(log_failure, file=sys.stderr, flush=True)
        totals["kills"] += 1
        by_mode[mode] += 1
        totals["kills_during_write"] += int(during_write)
        if expected_resume is not None:
            _count_resume(totals, child, expected_resume)
        found = _check(kind, work)
        for key, value in found.items():
            totals[key] += value
        if not any((work / name).exists() for name in ("b", "b.zip", "m.keras")):
            totals["no_artifact_yet"] += 1
        totals["temporaries_seen_after_kills"] += len(_temporaries(work))
        totals["private_tmp_dirs_seen_after_kills"] += len(list((work / "tmp").glob("tfedge-*")))
    # The next run must clean up after all the kills: one clean run, then nothing left.
    expected_resume = _backup_epoch(work) if kind == "train" else None
    child = _Child(kind, work, once=True)
    child.process.wait(timeout=READY_TIMEOUT_S)
    child.wait_line("<eof>", 10)
    if expected_resume is not None:
        _count_resume(totals, child, expected_resume)
    left = _temporaries(work)
    tmp_left = sorted(p.name for p in (work / "tmp").iterdir())
    final = _check(kind, work)
    return {**totals, "left_behind": len(left) + len(tmp_left), "left_names": left[:10],
            "tmp_left_names": tmp_left[:10], "kills_by_mode": by_mode,
            "watched_write_not_seen": watched_missed,
            "clean_run_ok": child.process.returncode == 0 and final["half_written"] == 0,
            "iteration_s": round(iteration_s or 0, 3),
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
                       + r["child_failures"] + r["resume_mismatches"] + (not r["clean_run_ok"])
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
