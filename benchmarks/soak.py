"""tfedge-pi soak: 100,000 frames from a looping source; resident memory must not grow.

    python benchmarks/soak.py                  # 100,000 frames, the golden bundle
    python benchmarks/soak.py --frames 20000 --bundle mybundle.zip

Runs the runner's own ``run()`` (JSON records, as a camera run would print
them, written to a sink that discards them) over a folder of small frames
passed again and again (``--repeat``), with one corrupt frame among them so
error records are exercised too. The process's resident memory (VmRSS) is
read every ``--every`` frames; ``rss_growth_mb`` is the last reading minus the
one after the first ``--settle`` frames (caches, interpreter arenas and the
allocator settle by then). Target (issue 18): growth under 5 MB.

Last line: one JSON object with ``frames``, ``errors``, ``rss_growth_mb`` (last
minus first reading), ``rss_max_growth_mb`` (largest minus first: a busy
machine may swap pages out and lower the last reading),
``rss_start_mb``, ``rss_end_mb``, the readings, frames per second and the environment.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, environment, print_result, run_main, setup_logging  # noqa: E402

GOLDEN_BUNDLE = REPO / "tests" / "golden" / "bundle"
DEFAULT_FRAMES = 100_000
DEFAULT_EVERY = 10_000
DEFAULT_SETTLE = 10_000
TARGET_GROWTH_MB = 5.0
FRAME_FILES = 8


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CountingSink:
    """A text stream that discards records and reads the memory every ``every`` records."""

    def __init__(self, every: int):
        self.every = every
        self.lines = 0
        self.readings: list[tuple[int, float]] = []

    def write(self, text: str) -> int:
        for _ in range(text.count("\n")):
            self.lines += 1
            if self.lines % self.every == 0:
                self.readings.append((self.lines, round(rss_mb(), 2)))
        return len(text)

    def flush(self) -> None:
        pass


def make_frames(folder: Path, count: int, seed: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count - 1):
        path = folder / f"frame{i}.png"
        size = (int(rng.integers(40, 97)), int(rng.integers(40, 97)), 3)
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(path)
        paths.append(path)
    broken = folder / "broken.jpg"  # an error record every pass
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    paths.append(broken)
    return paths


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rpi_runner.cli import RunOptions
    from rpi_runner.cli import run as run_frames

    folder = Path(tempfile.mkdtemp(prefix="tfedge-soak-"))
    try:
        make_frames(folder, FRAME_FILES, args.seed)
        sink = CountingSink(args.every)
        options = RunOptions(bundle=str(args.bundle), sources=(str(folder),),
                             repeat=math.ceil(args.frames / FRAME_FILES), max_frames=args.frames)
        start = time.perf_counter()
        result = run_frames(options, stdout=sink)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    settled = [mb for n, mb in sink.readings if n >= args.settle]
    growth = settled[-1] - settled[0] if len(settled) >= 2 else float("nan")
    # The largest reading over the first: the kernel may swap pages out of a process on a
    # busy machine (its RSS drops), so the end-minus-start figure alone could hide growth.
    max_growth = max(settled) - settled[0] if len(settled) >= 2 else float("nan")
    return {"frames": sink.lines, "classified": result.frames, "errors": result.errors,
            "rss_growth_mb": round(growth, 2), "rss_max_growth_mb": round(max_growth, 2),
            "target_growth_mb": TARGET_GROWTH_MB,
            "met": bool(max(growth, max_growth) < TARGET_GROWTH_MB),
            "rss_start_mb": settled[0] if settled else None,
            "rss_end_mb": settled[-1] if settled else None, "readings": sink.readings,
            "settle_frames": args.settle, "fps": round(sink.lines / seconds, 1),
            "seconds": round(seconds, 1), "bundle": str(args.bundle), "seed": args.seed,
            "environment": environment()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--bundle", type=Path, default=GOLDEN_BUNDLE)
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY,
                        help="frames between memory readings")
    parser.add_argument("--settle", type=int, default=DEFAULT_SETTLE,
                        help="frames before the first reading that counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=str, default=None, help="also write the JSON here")
    args = parser.parse_args()
    setup_logging()
    print_result(run(args), output=args.output)


if __name__ == "__main__":
    run_main(main)
