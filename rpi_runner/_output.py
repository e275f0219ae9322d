"""What the runner prints and draws: per-frame records, human lines, benchmark summaries.

A frame record is one JSON object (one line of output)::

    {"source": "img/cat.jpg", "index": 0, "label": "Trouser", "class": 1, "score": 0.93,
     "exit_stage": 0, "exit_score": 0.93, "box": [0.1, 0.2, 0.8, 0.7],
     "window": [31, 52, 240, 261], "frame_size": [320, 320], "decoded_size": [320, 320],
     "stage_ms": [0.16], "predictor_ms": 0.05, "decode_ms": 0.9, "preprocess_ms": 0.2,
     "infer_ms": 0.21, "pipeline_ms": 0.45, "total_ms": 1.35, "macs": 28000000}

``box`` is the predictor's box (normalised ``ymin, xmin, ymax, xmax``; null
without a predictor), ``window`` the crop in frame pixels ``(y0, x0, y1,
x1)``. ``window`` and ``frame_size`` are in the image's own pixels even when a
JPEG file was decoded smaller (draft decoding, ``decoded_size``: the size the
models' inputs were cut from). ``total_ms`` = ``decode_ms`` (reading the
frame) + ``pipeline_ms`` (preprocessing, inference and decisions). A frame
that could not be read is ``{"source": ..., "index": ..., "error": "one line",
"decode_ms": ...}``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tfedge.runtime.fileio import atomic_path

from ._pipeline import FrameResult
from ._sources import Frame

__all__ = ["frame_record", "scale_window", "error_record", "human_line", "printable", "percentile", "summarize",
           "human_summary", "FpsWindow", "annotate", "save_annotated"]

DEFAULT_FPS_WINDOW = 30  # frames the moving FPS is measured over
_ROUND_MS = 3
_WINDOW_COLOUR = (255, 64, 64)     # the crop the classifiers saw
_BOX_COLOUR = (64, 200, 255)       # the predictor's box
_TEXT_COLOUR = (255, 255, 255)
_TEXT_BACKGROUND = (0, 0, 0)
_TIME_PARTS = ("decode", "preprocess", "inference", "other")
_MIN_FONT_PX = 10
_FONT_FRACTION = 24  # label height: this fraction of the frame's short side


def scale_window(window: Sequence[int], size: Sequence[int], full_size: Sequence[int]
                 ) -> tuple[int, int, int, int]:
    """``window`` ``(y0, x0, y1, x1)`` in a ``size`` ``(H, W)`` frame, in a ``full_size`` one.

    Rounded to the nearest pixel and kept inside the full frame.
    """
    (h, w), (full_h, full_w) = size, full_size
    if min(h, w, full_h, full_w) < 1:
        raise ValueError(f"frame sizes must be positive, got {tuple(size)} and {tuple(full_size)}")
    fy, fx = full_h / h, full_w / w
    y0, x0, y1, x1 = window
    return (min(max(int(round(y0 * fy)), 0), full_h), min(max(int(round(x0 * fx)), 0), full_w),
            min(max(int(round(y1 * fy)), 0), full_h), min(max(int(round(x1 * fx)), 0), full_w))


def frame_record(frame: Frame, result: FrameResult) -> dict[str, Any]:
    """The JSON record of a classified frame (see the module docstring)."""
    record = {"source": frame.source, "index": frame.index, **result.to_json(),
              "decode_ms": round(frame.decode_ms, _ROUND_MS)}
    record["decoded_size"] = list(record["frame_size"])
    if frame.full_size is not None and tuple(frame.full_size) != tuple(result.frame_size):
        record["window"] = list(scale_window(result.window, result.frame_size, frame.full_size))
        record["frame_size"] = [int(v) for v in frame.full_size]
    record["total_ms"] = round(frame.decode_ms + result.pipeline_ms, _ROUND_MS)
    return record


def error_record(frame: Frame, error: str) -> dict[str, Any]:
    """The JSON record of a frame that could not be read or classified."""
    return {"source": frame.source, "index": frame.index, "error": error,
            "decode_ms": round(frame.decode_ms, _ROUND_MS)}


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x1b``...).

    A file name may hold a newline or a terminal escape sequence; a readable
    record must stay one line and must not drive the terminal.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def human_line(record: Mapping[str, Any], num_stages: int, fps: Optional[float] = None) -> str:
    """One readable line per frame (always exactly one line, whatever the file is called)."""
    source = printable(str(record["source"]))
    if "error" in record:
        return f"{source}: ERROR {printable(str(record['error']))}"
    stage = f"stage {record['exit_stage'] + 1}/{num_stages}"
    rate = f"  {fps:.1f} fps" if fps else ""
    return (f"{source}: {printable(str(record['label']))} {record['score']:.2f}  {stage}  "
            f"{record['total_ms']:.2f} ms (infer {record['infer_ms']:.2f}){rate}")


# --------------------------------------------------------------------------- summary


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The ``q``-th percentile (linear interpolation), None for no values."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, _ROUND_MS + 1)


def summarize(records: Iterable[Mapping[str, Any]], num_stages: int, wall_seconds: float
              ) -> dict[str, Any]:
    """Benchmark figures over frame records (error records counted apart).

    ``latency_ms_*`` is per-frame ``total_ms`` (decode + pipeline); ``fps``
    the frames classified per second of wall time; ``exit_histogram`` how
    many frames left at each stage; ``time_split_ms`` the mean time per frame
    spent decoding, preprocessing (resizing and quantising for the predictor,
    the crop and the stages), in inference and in the rest (decisions,
    bookkeeping), and ``time_split`` the same as fractions.
    """
    records = list(records)
    ok = [r for r in records if "error" not in r]
    errors = [r for r in records if "error" in r]
    columns = {key: [float(r[key]) for r in ok]
               for key in ("total_ms", "pipeline_ms", "infer_ms", "preprocess_ms", "decode_ms")}
    histogram = [0] * num_stages
    for r in ok:
        histogram[int(r["exit_stage"])] += 1
    n = len(ok)
    means = {
        "decode": float(np.mean(columns["decode_ms"])) if n else 0.0,
        "preprocess": float(np.mean(columns["preprocess_ms"])) if n else 0.0,
        "inference": float(np.mean(columns["infer_ms"])) if n else 0.0,
    }
    total_mean = float(np.mean(columns["total_ms"])) if n else 0.0
    means["other"] = max(total_mean - sum(means.values()), 0.0)
    denominator = sum(means.values()) or 1.0
    summary: dict[str, Any] = {"frames": n, "errors": len(errors),
                               "wall_seconds": round(wall_seconds, 4),
                               "fps": round(n / wall_seconds, 2) if wall_seconds > 0 else None}
    for key, name in (("total_ms", "latency_ms"), ("pipeline_ms", "pipeline_ms"),
                      ("infer_ms", "infer_ms"), ("preprocess_ms", "preprocess_ms"),
                      ("decode_ms", "decode_ms")):
        summary[f"{name}_p50"] = _rounded(percentile(columns[key], 50))
        summary[f"{name}_p90"] = _rounded(percentile(columns[key], 90))
    summary["exit_histogram"] = histogram
    summary["exit_rates"] = [round(c / n, 4) if n else 0.0 for c in histogram]
    summary["mean_macs"] = float(np.mean([r["macs"] for r in ok])) if n else 0.0
    summary["time_split_ms"] = {k: round(means[k], _ROUND_MS + 1) for k in _TIME_PARTS}
    summary["time_split"] = {k: round(means[k] / denominator, 4) for k in _TIME_PARTS}
    return summary


def human_summary(summary: Mapping[str, Any]) -> list[str]:
    """The benchmark summary as a few readable lines."""
    def ms(key: str) -> str:
        value = summary.get(key)
        return "-" if value is None else f"{value:.3f}"

    split = summary["time_split_ms"]
    lines = [
        f"frames {summary['frames']}  errors {summary['errors']}  "
        f"fps {summary['fps'] if summary['fps'] is not None else '-'}",
        f"latency p50 {ms('latency_ms_p50')} ms  p90 {ms('latency_ms_p90')} ms  "
        f"(inference p50 {ms('infer_ms_p50')} ms, preprocess p50 {ms('preprocess_ms_p50')} ms, "
        f"decode p50 {ms('decode_ms_p50')} ms)",
        # Stages as each frame's line names them, "k/n" (k from 1); the JSON's exit_histogram
        # and exit_stage count from 0, like the bundle's stage list.
        "exits per stage: " + ", ".join(f"stage {i + 1}/{len(summary['exit_histogram'])}: {c}"
                                        for i, c in enumerate(summary["exit_histogram"])),
        "time per frame: " + ", ".join(f"{k} {split[k]:.3f} ms "
                                       f"({summary['time_split'][k] * 100:.0f}%)"
                                       for k in _TIME_PARTS),
    ]
    return lines


@dataclass
class FpsWindow:
    """Frames per second over the last ``size`` frames (a moving window)."""

    size: int = DEFAULT_FPS_WINDOW
    _times: collections.deque = field(default_factory=collections.deque, repr=False)

    def tick(self, now: float) -> None:
        self._times.append(now)
        while len(self._times) > max(self.size, 2):
            self._times.popleft()

    @property
    def fps(self) -> Optional[float]:
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else None


# --------------------------------------------------------------------------- annotation


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable since Pillow 10.1
    except TypeError:
        return ImageFont.load_default()


def annotate(frame_rgb: np.ndarray, result: FrameResult, num_stages: int) -> Image.Image:
    """The frame with the crop window (red), the predictor's box (blue) and the label drawn."""
    image = Image.fromarray(np.ascontiguousarray(frame_rgb), "RGB")
    draw = ImageDraw.Draw(image)
    height, width = frame_rgb.shape[:2]
    line = max(1, int(round(min(height, width) / 200)))
    if result.box is not None:
        ymin, xmin, ymax, xmax = result.box
        draw.rectangle([xmin * width, ymin * height, max(xmax * width - 1, xmin * width),
                        max(ymax * height - 1, ymin * height)], outline=_BOX_COLOUR, width=line)
    y0, x0, y1, x1 = result.window
    draw.rectangle([x0, y0, max(x1 - 1, x0), max(y1 - 1, y0)], outline=_WINDOW_COLOUR, width=line)
    text = f"{result.label} {result.score:.2f} (stage {result.exit_stage + 1}/{num_stages})"
    font = _font(max(_MIN_FONT_PX, min(height, width) // _FONT_FRACTION))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.rectangle([0, 0, right - left + 4, bottom - top + 4], fill=_TEXT_BACKGROUND)
    draw.text((2 - left, 2 - top), text, fill=_TEXT_COLOUR, font=font)
    return image


def save_annotated(image: Image.Image, path: Path) -> Path:
    """Write an annotated frame atomically (a preview reader never sees half a file)."""
    suffix = path.suffix.lower()
    fmt = "JPEG" if suffix in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt)
    return path

