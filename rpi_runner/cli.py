"""tfedge-pi: run a tfedge bundle on images, videos or a camera (Raspberry Pi or any computer).

Usage:
  tfedge-pi BUNDLE SOURCE [SOURCE ...] [--threads 4] [--human] [--output results.jsonl]
  tfedge-pi BUNDLE SOURCE --benchmark [--repeat 10]
  tfedge-pi BUNDLE picam --human --preview /tmp/preview.jpg

BUNDLE is a bundle folder or .zip written by tfedge-convert. SOURCE is an
image, a folder of images, a quoted glob ('shots/*.jpg'), a video file,
usb[:N] (a USB camera, through OpenCV) or picam[:N] (the Raspberry Pi
camera, through picamera2).

Per frame, the bundle's predictor finds the object, the crop is cut from the
full-resolution frame, and the cascade's stages run until one is confident
enough. Output: one JSON line per frame on stdout (or --output FILE), with
the label, score, exit stage, per-stage and total milliseconds and the box;
--human prints readable lines instead. --benchmark prints a summary (frames,
p50/p90 latency, FPS, exits per stage, time split between decoding,
preprocessing and inference) ending with one JSON line. A frame that cannot
be read (corrupt, truncated, too large) gives an error record and the run
goes on; the exit status is then 1. A bad bundle or option stops the run
with a one-line error and exit status 2.

Needs numpy, pillow and a LiteRT interpreter (pip install ai-edge-litert);
never TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

from PIL import Image

from tfedge.runtime.commandline import EXIT_FAILURE, EXIT_OK, add_common_flags, run_cli
from tfedge.runtime.errors import TfedgeError

from ._output import (FpsWindow, annotate, error_record, frame_record, human_line,
                      human_summary, save_annotated, summarize)
from ._pipeline import EdgePipeline, FrameResult
from ._sources import (DEFAULT_CAMERA_SIZE, DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS,
                       Frame, open_source, parse_sources)

__all__ = ["RunOptions", "RunResult", "run", "build_parser", "main"]

log = logging.getLogger("tfedge.pi")

PROG = "tfedge-pi"
OUTPUT_FORMATS = ("json", "human")
DEFAULT_THREADS = 1
DEFAULT_BENCHMARK_WARMUP = 2  # frames left out of benchmark figures (cold caches)
DEFAULT_GOLDEN_LIMIT = 16
MAX_KEPT_RECORDS = 10_000  # records a run keeps for its summary (memory stays bounded)


@dataclass(frozen=True)
class RunOptions:
    """Everything one run needs (the command line's flags, typed).

    warmup: frames classified but left out of the summary (benchmark mode).
    repeat: passes over file sources (benchmarks over a small folder).
    draft: decode JPEG files in draft mode down to the size the bundle needs.
    golden: write golden vectors for the first ``golden_limit`` frames here.
    """

    bundle: str
    sources: tuple[str, ...]
    threads: int = DEFAULT_THREADS
    output_format: str = "json"
    output: Optional[str] = None
    benchmark: bool = False
    warmup: int = 0
    repeat: int = 1
    max_frames: Optional[int] = None
    annotate_dir: Optional[str] = None
    preview: Optional[str] = None
    camera_size: tuple[int, int] = DEFAULT_CAMERA_SIZE
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
    draft: bool = True
    golden: Optional[str] = None
    golden_limit: int = DEFAULT_GOLDEN_LIMIT

    def __post_init__(self) -> None:
        checks = (("threads", self.threads, 1), ("repeat", self.repeat, 1),
                  ("warmup", self.warmup, 0), ("max_pixels", self.max_pixels, 1),
                  ("max_decoded_bytes", self.max_decoded_bytes, 1),
                  ("golden_limit", self.golden_limit, 1))
        for name, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise TfedgeError(f"--{name.replace('_', '-')} must be a whole number >= {low}, "
                                  f"got {value!r}")
        if self.max_frames is not None and (not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            raise TfedgeError(f"--max-frames must be a whole number >= 1, got {self.max_frames!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise TfedgeError(f"output format {self.output_format!r} is not one of "
                              f"{', '.join(OUTPUT_FORMATS)}")
        w, h = self.camera_size
        if w < 1 or h < 1:
            raise TfedgeError(f"--camera-size must be WIDTHxHEIGHT with both >= 1, got {w}x{h}")


@dataclass
class RunResult:
    """What a run did: frames counted in the summary, error records (warm-up frames included),
    the summary figures, the golden file and the counted records (all of them up to
    :data:`MAX_KEPT_RECORDS` frames; beyond, a uniform sample of that many)."""

    frames: int
    errors: int
    summary: dict[str, Any]
    golden: Optional[str] = None
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)


class _RecordSample:
    """The records a summary is computed from, in bounded memory (a camera runs for days).

    Every record is kept up to ``limit``; beyond, a uniform reservoir sample of
    ``limit`` (seeded: the same run gives the same figures). Counts (frames,
    errors, exits per stage) stay exact; percentiles and means come from the
    sample once there are more frames than ``limit``.
    """

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.kept: list[dict[str, Any]] = []
        self.seen = 0
        self.errors = 0
        self.exits: dict[int, int] = {}
        self._random = random.Random(0)

    def add(self, record: dict[str, Any]) -> None:
        self.seen += 1
        if "error" in record:
            self.errors += 1
        else:
            stage = int(record["exit_stage"])
            self.exits[stage] = self.exits.get(stage, 0) + 1
        if len(self.kept) < self.limit:
            self.kept.append(record)
        else:
            slot = self._random.randrange(self.seen)
            if slot < self.limit:
                self.kept[slot] = record

    def summary(self, num_stages: int, wall_seconds: float) -> dict[str, Any]:
        summary = summarize(self.kept, num_stages, wall_seconds)
        if self.seen > len(self.kept):
            frames = self.seen - self.errors
            histogram = [self.exits.get(i, 0) for i in range(num_stages)]
            summary.update({
                "frames": frames, "errors": self.errors,
                "fps": round(frames / wall_seconds, 2) if wall_seconds > 0 else None,
                "exit_histogram": histogram,
                "exit_rates": [round(c / frames, 4) if frames else 0.0 for c in histogram],
                "summary_sample": len(self.kept)})
        return summary


def _open_text(path: Optional[str], fallback: TextIO) -> tuple[TextIO, bool]:
    if path is None:
        return fallback, False
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A stream of records (a camera may run for hours) is appended line by line, not atomically.
    return open(target, "w", encoding="utf-8"), True


def _process(pipeline: EdgePipeline, frame: Frame, *, trace: bool
             ) -> tuple[dict[str, Any], Optional[FrameResult]]:
    """One frame's record (an error record when it could not be read or classified)."""
    if frame.error is not None or frame.image is None:
        return error_record(frame, frame.error or f"{frame.source}: no image"), None
    try:
        result = pipeline.classify(frame.image, bgr=frame.bgr, trace=trace)
    except TfedgeError as exc:  # bad pixels, or a model that fails on this frame
        return error_record(frame, f"{frame.source}: {exc}"), None
    problem = _non_finite(result)
    if problem:
        return error_record(frame, f"{frame.source}: {problem}: the model's outputs are not "
                                   "numbers on this frame; rebuild the bundle with "
                                   "tfedge-convert"), None
    return frame_record(frame, result), result


def _non_finite(result: FrameResult) -> Optional[str]:
    """What is NaN or infinite in a result (a float model can give NaN on real input)."""
    values = {"score": result.score, "exit score": result.exit_score}
    if result.box is not None:
        values["box"] = next((v for v in result.box if not math.isfinite(v)), 0.0)
    bad = [name for name, value in values.items() if not math.isfinite(float(value))]
    return f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} NaN or infinite" if bad else None


def _draw(frame: Frame, result: FrameResult, num_stages: int, folder: Optional[Path],
          preview: Optional[str]) -> None:
    """Write the annotated frame into ``folder`` and/or over the ``preview`` file."""
    if folder is None and not preview:
        return
    picture = annotate(frame.rgb(), result, num_stages)
    if folder is not None:
        stem = Path(frame.source).stem or "frame"
        save_annotated(picture, folder / f"{frame.index:06d}_{stem}.png")
    if preview:
        save_annotated(picture, Path(preview))


def run(options: RunOptions, stdout: Optional[TextIO] = None) -> RunResult:
    """Classify every frame of the sources with the bundle; print records or a summary.

    Per-frame records go to ``options.output`` (a JSON-lines file) or, unless
    benchmarking, to ``stdout``; in benchmark mode ``stdout`` gets the summary
    lines and one final JSON object. ``stdout`` defaults to ``sys.stdout``.
    """
    stdout = sys.stdout if stdout is None else stdout
    from ._golden import golden_case, write_golden

    spec = parse_sources(options.sources)
    # Pillow refuses images over twice its MAX_IMAGE_PIXELS before --max-pixels is consulted.
    if Image.MAX_IMAGE_PIXELS is not None and options.max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = options.max_pixels
    if spec.skipped:
        log.warning("skipped %d entries that are not image files: %s", len(spec.skipped),
                    ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in
                              spec.skipped_counts().items()))
    pipeline = EdgePipeline(options.bundle, num_threads=options.threads)
    try:
        num_stages = pipeline.num_stages
        log.info("%s: %s (%d thread%s); source: %s", options.bundle, pipeline.describe(),
                 options.threads, "s" if options.threads != 1 else "", spec.describe())
        draft = pipeline.draft_short_side if options.draft else None
        source = open_source(spec, max_pixels=options.max_pixels, draft_short_side=draft,
                             max_decoded_bytes=options.max_decoded_bytes,
                             repeat=options.repeat, camera_size=options.camera_size)
        annotate_dir = Path(options.annotate_dir) if options.annotate_dir else None
        if annotate_dir is not None:
            annotate_dir.mkdir(parents=True, exist_ok=True)
        # JSON records: to --output, else to stdout unless humans or a benchmark summary read it.
        human = options.output_format == "human" and not options.benchmark
        json_to_stdout = options.output is None and not human and not options.benchmark
        sink, close_sink = _open_text(options.output, stdout)
        write_json = options.output is not None or json_to_stdout
        fps = FpsWindow()
        records = _RecordSample(MAX_KEPT_RECORDS)
        cases: list[dict[str, Any]] = []
        all_errors = 0
        start = time.perf_counter()
        seen = 0
        try:
            with source:
                frames = islice(source, options.max_frames) if options.max_frames else source
                for n, frame in enumerate(frames):
                    seen = n + 1
                    trace = options.golden is not None and len(cases) < options.golden_limit
                    record, result = _process(pipeline, frame, trace=trace)
                    if result is not None:
                        if trace:
                            cases.append(golden_case(frame, result, pipeline))
                        _draw(frame, result, num_stages, annotate_dir, options.preview)
                    fps.tick(time.perf_counter())
                    all_errors += "error" in record
                    if n >= options.warmup:
                        records.add(record)
                    elif n == options.warmup - 1:
                        start = time.perf_counter()  # the figures begin after the warm-up
                    if write_json:
                        print(json.dumps(record, sort_keys=True), file=sink, flush=True)
                    if human:
                        print(human_line(record, num_stages, fps.fps), file=stdout, flush=True)
        except KeyboardInterrupt:
            # Cameras run until Ctrl-C: the summary and golden vectors below must survive it
            # (the source was released by its own with-block).
            log.info("interrupted after %d frames: finishing with them", seen)
        finally:
            if close_sink:
                sink.close()
        if options.benchmark and seen and not records.seen:
            raise TfedgeError(f"all {seen} frames were warm-up (--warmup {options.warmup}), so "
                              "there is nothing to time: pass more images or --repeat N")
        wall = time.perf_counter() - start if records.seen else 0.0
        summary = records.summary(num_stages, wall)
        summary.update({"bundle": str(options.bundle), "threads": options.threads,
                        "stages": num_stages, "predictor": pipeline.predictor is not None,
                        "warmup_frames": options.warmup, "skipped": spec.skipped_counts()})
        golden = None
        if options.golden is not None:
            if not cases:
                raise TfedgeError("no frame was classified, so there are no golden vectors to "
                                  "write: pass readable images")
            write_golden(options.golden, pipeline, cases)
            golden = str(options.golden)
            log.info("golden vectors of %d frames: %s", len(cases), golden)
        if options.benchmark:
            for line in human_summary(summary):
                print(line, file=stdout)
            print(json.dumps(summary, sort_keys=True), file=stdout, flush=True)
        else:
            log.info("%d frames, %d errors; latency p50 %s ms, inference p50 %s ms",
                     summary["frames"], summary["errors"], summary["latency_ms_p50"],
                     summary["infer_ms_p50"])
        return RunResult(frames=summary["frames"], errors=all_errors, summary=summary,
                         golden=golden, records=records.kept)
    finally:
        pipeline.close()


# --------------------------------------------------------------------------- command line


def _camera_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") \
            from None
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("bundle", type=str, help="a bundle folder or .zip (tfedge-convert)")
    parser.add_argument("sources", nargs="+", type=str, metavar="SOURCE",
                        help="image, folder, quoted glob, video, usb[:N] or picam[:N]")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"interpreter threads per model (default {DEFAULT_THREADS})")
    parser.add_argument("--human", action="store_true", help="readable lines instead of JSON")
    parser.add_argument("--output", type=str, default=None,
                        help="write the JSON records to this file (JSON lines)")
    parser.add_argument("--benchmark", action="store_true",
                        help="print a timing summary instead of per-frame records")
    parser.add_argument("--warmup", type=int, default=None,
                        help="frames left out of the figures (default "
                             f"{DEFAULT_BENCHMARK_WARMUP} with --benchmark, else 0)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pass over image files this many times (benchmarks)")
    parser.add_argument("--max-frames", dest="max_frames", type=int, default=None,
                        help="stop after this many frames (cameras run until Ctrl-C otherwise)")
    parser.add_argument("--annotate", dest="annotate_dir", type=str, default=None,
                        help="write each frame with its box and label drawn into this folder "
                             "(JPEG files at their decoded size: see --no-draft)")
    parser.add_argument("--preview", type=str, default=None,
                        help="keep the latest annotated frame in this file (.jpg or .png)")
    parser.add_argument("--camera-size", dest="camera_size", type=_camera_size,
                        default=DEFAULT_CAMERA_SIZE, metavar="WxH",
                        help="camera frame size (default %dx%d)" % DEFAULT_CAMERA_SIZE)
    parser.add_argument("--max-pixels", dest="max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"largest image accepted (default {DEFAULT_MAX_PIXELS}); larger "
                             "ones, e.g. decompression bombs, give an error record")
    parser.add_argument("--max-decoded-mb", dest="max_decoded_mb", type=float,
                        default=DEFAULT_MAX_DECODED_BYTES / 2 ** 20,
                        help="largest decoded image accepted, in MiB (default "
                             f"{DEFAULT_MAX_DECODED_BYTES // 2 ** 20}; a 16-bit or float image "
                             "takes 2-4 bytes per pixel)")
    parser.add_argument("--no-draft", dest="draft", action="store_false",
                        help="decode JPEG files at full size (default: JPEG draft decoding, "
                             "never below the size the bundle's models need)")
    parser.add_argument("--golden", type=str, default=None,
                        help="write golden vectors (every tensor of the first frames) to this "
                             "JSON file, for the Android core's tests")
    parser.add_argument("--golden-limit", dest="golden_limit", type=int,
                        default=DEFAULT_GOLDEN_LIMIT,
                        help=f"frames in the golden file (default {DEFAULT_GOLDEN_LIMIT})")
    add_common_flags(parser)
    parser.set_defaults(func=cmd_run)
    return parser


def _mib_to_bytes(mib: float) -> int:
    if not (math.isfinite(mib) and mib > 0):
        raise TfedgeError(f"--max-decoded-mb must be a number > 0, got {mib}")
    return int(mib * 2 ** 20)


def options_from_args(args: argparse.Namespace) -> RunOptions:
    warmup = args.warmup if args.warmup is not None else (
        DEFAULT_BENCHMARK_WARMUP if args.benchmark else 0)
    return RunOptions(
        bundle=args.bundle, sources=tuple(args.sources), threads=args.threads,
        output_format="human" if args.human else "json", output=args.output,
        benchmark=args.benchmark, warmup=warmup, repeat=args.repeat, max_frames=args.max_frames,
        annotate_dir=args.annotate_dir, preview=args.preview, camera_size=args.camera_size,
        max_pixels=args.max_pixels, max_decoded_bytes=_mib_to_bytes(args.max_decoded_mb),
        draft=args.draft, golden=args.golden,
        golden_limit=args.golden_limit)


def cmd_run(args: argparse.Namespace) -> int:
    result = run(options_from_args(args))
    return EXIT_FAILURE if result.errors else EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
