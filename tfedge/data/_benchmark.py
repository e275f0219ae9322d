"""The built-in benchmark "fashion-on-photos": real objects on real photographs.

Each image is a random crop of a real photograph with one Fashion-MNIST item
pasted at a random position and scale. The exact box of the item is known, so
the dataset has the spatial redundancy (lots of background around one object)
that dynamic image cropping removes, and its boxes train the foreground
predictor without any labelling.

Splits:
- ``train`` and ``val`` take their items from disjoint subsets of
  Fashion-MNIST's training set, ``test`` from its test set;
- ``train`` uses the training photos, ``val`` and ``test`` the held-out photos,
  so the test scenes are never seen in training (see :mod:`._backgrounds`).

Everything is a pure function of :class:`BenchmarkConfig`: the random numbers
come from ``numpy.random.SeedSequence((seed, split))``, never from a global
generator, and Pillow's resampling is deterministic, so one config gives the
same bytes on every run. :func:`load_benchmark` caches the arrays as ``.npy``
files (memory-mapped on load) in a folder named by :meth:`BenchmarkConfig.key`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from .._errors import DatasetError
from .._io import atomic_directory, atomic_write_json, remove_stale_temporaries, sha256_file
from ._backgrounds import SCENE_SETS, available_photos, load_photo, split_photos
from ._fashion import FashionMNIST, load_fashion_mnist
from ._types import ImageSplit

__all__ = [
    "BENCHMARK_NAME",
    "GENERATOR_VERSION",
    "SPLITS",
    "BenchmarkConfig",
    "BenchmarkData",
    "benchmark_backgrounds",
    "generate_split",
    "generate_benchmark",
    "load_benchmark",
    "benchmark_cache_path",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

BENCHMARK_NAME = "fashion-on-photos"
# Bump whenever the generator's output for a given config changes: old caches
# then stop matching and are rebuilt.
GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
_SPLIT_STREAM = {"train": 1, "val": 2, "test": 3}  # SeedSequence stream per split
_PARTITION_STREAM = 0  # stream that splits Fashion-MNIST's train items into train/val pools

CACHE_ENV = "TFEDGE_CACHE"
DEFAULT_CACHE_DIR = "~/.cache/tfedge"
META_FILE = "meta.json"
_ARRAY_FILES = ("images.npy", "labels.npy", "boxes.npy")

# Config limits.
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 1024
MIN_OBJECT_SIDE = 4

# Backgrounds: a square crop whose side is this fraction of the photo's short side.
MIN_CROP_FRACTION = 0.3
MAX_CROP_FRACTION = 1.0
# Fraction of Fashion-MNIST's training items kept for the val split (10,000 of 60,000).
VAL_POOL_FRACTION = 1.0 / 6.0

# Objects. An item pixel's opacity ramps from 0 to 1 over its first
# ALPHA_RAMP intensity levels: the whole garment is opaque, its anti-aliased
# rim is soft. Resampled opacities below ALPHA_CUTOFF are set to exactly 0 so
# the box is the extent of visible pixels, not of resampling dust.
ALPHA_RAMP = 16.0
ALPHA_CUTOFF = 1.0 / 32.0
# Shading: darkest item pixels keep this fraction of the tint, so dark garments
# stay visible on dark photos.
SHADE_FLOOR = 0.25
# Tint drawn in HSV: any hue, moderate saturation, bright.
TINT_SATURATION = (0.2, 0.9)
TINT_VALUE = (0.6, 1.0)

_MAX_U8 = 255.0
# A generation's temporary folder untouched this long belongs to a killed run.
STALE_TEMPORARY_SECONDS = 24 * 3600
_PROGRESS_STEPS = 10

ProgressFn = Callable[[int, int], None]
Progress = Union[ProgressFn, bool, None]


# --------------------------------------------------------------------------- config

def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that determines the generated arrays.

    image_size: square image side in pixels. object_size: (min, max) of the
    pasted item's longer side in pixels. tint: colour each item with a random
    tint (else gray). *_size: examples per split. seed: the only source of
    randomness. scenes: the background photos, ``'default'`` (scikit-image's
    and scikit-learn's) or ``'extended'`` (19 more from other offline
    packages, docs/data.md); left out of :meth:`to_dict` (and so of the cache
    key) while ``'default'``, so the default datasets keep their bytes and keys.
    """

    image_size: int = 128
    object_size: tuple[int, int] = (24, 64)
    tint: bool = True
    train_size: int = 20000
    val_size: int = 2000
    test_size: int = 5000
    seed: int = 0
    scenes: str = "default"

    def __post_init__(self) -> None:
        if self.scenes not in SCENE_SETS:
            raise DatasetError(f"benchmark scenes={self.scenes!r} is invalid: choose one of "
                               f"{', '.join(SCENE_SETS)}")
        size = self.image_size
        if not _is_int(size) or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
            raise DatasetError(
                f"benchmark image_size={size!r} is invalid: use an integer from "
                f"{MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}")
        obj = self.object_size
        if (not isinstance(obj, (tuple, list)) or len(obj) != 2
                or not all(_is_int(v) for v in obj)):
            raise DatasetError(
                f"benchmark object_size={obj!r} is invalid: give two integers (min, max) "
                "for the object's longer side in pixels, e.g. (24, 64)")
        lo, hi = int(obj[0]), int(obj[1])
        if not MIN_OBJECT_SIDE <= lo <= hi:
            raise DatasetError(
                f"benchmark object_size={tuple(obj)!r} is invalid: need "
                f"{MIN_OBJECT_SIDE} <= min <= max")
        if hi > size:
            raise DatasetError(
                f"benchmark object_size max {hi} exceeds image_size {size}: lower the "
                f"object size or raise image_size to at least {hi}")
        object.__setattr__(self, "object_size", (lo, hi))
        object.__setattr__(self, "image_size", int(size))
        if not isinstance(self.tint, (bool, np.bool_)):
            raise DatasetError(f"benchmark tint={self.tint!r} is invalid: use True or False")
        object.__setattr__(self, "tint", bool(self.tint))
        for field in ("train_size", "val_size", "test_size"):
            value = getattr(self, field)
            if not _is_int(value) or value < 1:
                raise DatasetError(f"benchmark {field}={value!r} is invalid: use an integer >= 1")
            object.__setattr__(self, field, int(value))
        if not _is_int(self.seed) or self.seed < 0:
            raise DatasetError(f"benchmark seed={self.seed!r} is invalid: use an integer >= 0")
        object.__setattr__(self, "seed", int(self.seed))

    def split_size(self, split: str) -> int:
        _check_split(split)
        return int(getattr(self, f"{split}_size"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (object_size as a list)."""
        d = dataclasses.asdict(self)
        d["object_size"] = list(self.object_size)
        if d["scenes"] == "default":  # the datasets made before the field keep their keys
            del d["scenes"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchmarkConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DatasetError(
                f"unknown benchmark config field(s) {', '.join(unknown)}: use only {', '.join(sorted(names))}")
        kwargs = dict(d)
        if "object_size" in kwargs and isinstance(kwargs["object_size"], list):
            kwargs["object_size"] = tuple(kwargs["object_size"])
        return cls(**kwargs)

    def key(self) -> str:
        """A short hash of every field and the generator version (the cache folder's name)."""
        payload = json.dumps({"config": self.to_dict(), "generator_version": GENERATOR_VERSION,
                              "name": BENCHMARK_NAME}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _check_split(split: str) -> None:
    if split not in _SPLIT_STREAM:
        raise DatasetError(f"unknown benchmark split {split!r}: choose one of {', '.join(SPLITS)}")


@dataclass(frozen=True)
class BenchmarkData:
    """The three splits of a generated (usually cached) benchmark."""

    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    config: BenchmarkConfig
    path: Optional[Path]

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    def split(self, name: str) -> ImageSplit:
        _check_split(name)
        return getattr(self, name)


# --------------------------------------------------------------------------- pure pieces

def _composite(background: np.ndarray, shade: np.ndarray, alpha: np.ndarray,
               colour: np.ndarray, top: int, left: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste one object onto a background; return (image, alpha, box).

    background: ``(S, S, 3)`` uint8. shade, alpha: ``(h, w)`` float32 in [0, 1],
    the resized item's intensity and opacity. colour: ``(3,)`` RGB in [0, 1].
    The patch's top-left corner goes to (top, left) and must lie fully inside.
    The returned alpha is the full ``(S, S)`` float32 opacity map and box the
    exact tight normalised box (ymin, xmin, ymax, xmax), max-exclusive, of the
    pixels with alpha > 0.
    """
    height, width = background.shape[:2]
    h, w = alpha.shape
    if not (0 <= top and top + h <= height and 0 <= left and left + w <= width):
        raise ValueError(f"object patch {h}x{w} at ({top}, {left}) leaves the {height}x{width} image")
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    if rows.size == 0:
        raise ValueError("object patch has no opaque pixel")
    image = background.copy()
    region = image[top:top + h, left:left + w].astype(np.float32)
    a = alpha[:, :, None]
    obj = colour[None, None, :].astype(np.float32) * (
        SHADE_FLOOR + (1.0 - SHADE_FLOOR) * shade[:, :, None]) * _MAX_U8
    mixed = region * (1.0 - a) + obj * a
    image[top:top + h, left:left + w] = np.clip(mixed + 0.5, 0, _MAX_U8).astype(np.uint8)
    full_alpha = np.zeros((height, width), np.float32)
    full_alpha[top:top + h, left:left + w] = alpha
    box = np.array([(top + rows[0]) / height, (left + cols[0]) / width,
                    (top + rows[-1] + 1) / height, (left + cols[-1] + 1) / width], np.float32)
    return image, full_alpha, box


def _tight_bbox(items: np.ndarray) -> np.ndarray:
    """(N, 4) int (r0, c0, r1, c1), max-exclusive, of each item's nonzero pixels."""
    mask = items > 0
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    side = items.shape[1]
    empty = ~rows.any(axis=1)
    r0 = np.argmax(rows, axis=1)
    r1 = side - np.argmax(rows[:, ::-1], axis=1)
    c0 = np.argmax(cols, axis=1)
    c1 = items.shape[2] - np.argmax(cols[:, ::-1], axis=1)
    out = np.stack([r0, c0, r1, c1], axis=1)
    out[empty] = (0, 0, side, items.shape[2])
    return out


def _object_shape(bbox_hw: np.ndarray, long_side: np.ndarray) -> np.ndarray:
    """(N, 2) int (h, w): the item's tight box scaled so its longer side is ``long_side``."""
    hw = bbox_hw.astype(np.float64)
    scale = long_side / hw.max(axis=1)
    return np.maximum(1, np.rint(hw * scale[:, None])).astype(np.int64)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all in [0, 1]; returns (N, 3) float32."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([
        np.stack([v, t, p], 1), np.stack([q, v, p], 1), np.stack([p, v, t], 1),
        np.stack([p, q, v], 1), np.stack([t, p, v], 1), np.stack([v, p, q], 1)], 0)
    return table[i, np.arange(h.shape[0])].astype(np.float32)


def _draw_items(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """``count`` items from ``pool``: without replacement while the pool lasts."""
    reps = math.ceil(count / pool.size)
    order = np.concatenate([rng.permutation(pool.size) for _ in range(reps)])[:count]
    return pool[order]


def _item_pools(fashion: FashionMNIST, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (images, index pool): train/val disjoint within Fashion-MNIST's train set."""
    n_train = fashion.train_images.shape[0]
    if n_train < 2 or fashion.test_images.shape[0] < 1:
        raise DatasetError(
            f"Fashion-MNIST has {n_train} train and {fashion.test_images.shape[0]} test items: "
            "need at least 2 and 1; point --fashion-mnist at the full dataset")
    perm = np.random.default_rng(np.random.SeedSequence([seed, _PARTITION_STREAM])).permutation(n_train)
    n_val = max(1, int(round(n_train * VAL_POOL_FRACTION)))
    pools = {
        "train": (fashion.train_images, np.sort(perm[n_val:])),
        "val": (fashion.train_images, np.sort(perm[:n_val])),
        "test": (fashion.test_images, np.arange(fashion.test_images.shape[0])),
    }
    out = {}
    for split, (images, pool) in pools.items():
        # An all-black item has nothing to paste (Fashion-MNIST has none; a damaged copy might).
        visible = pool[images[pool].reshape(pool.size, -1).max(axis=1) > 0]
        if visible.size == 0:
            raise DatasetError(
                f"Fashion-MNIST has no visible item for the {split} split: all are black; "
                "point --fashion-mnist at the original files")
        out[split] = (images, visible)
    return out


# --------------------------------------------------------------------------- generation

@dataclass(frozen=True)
class _SplitPlan:
    """Every random choice for one split, drawn up front (vectorised)."""

    photo_names: tuple[str, ...]
    photo_index: np.ndarray   # (N,) index into photo_names
    crop_fraction: np.ndarray  # (N,)
    crop_pos: np.ndarray      # (N, 2) in [0, 1): where the crop sits in the photo
    flip: np.ndarray          # (N,) bool: mirror the background
    item_source: np.ndarray   # (N, 28, 28) uint8 array the items come from (shared)
    item_index: np.ndarray    # (N,)
    long_side: np.ndarray     # (N,) object's longer side in px
    object_pos: np.ndarray    # (N, 2) in [0, 1): where the object sits
    colour: np.ndarray        # (N, 3) float32

    def backgrounds(self) -> tuple[str, ...]:
        """The photo name of each image, in order."""
        return tuple(self.photo_names[j] for j in self.photo_index)


@dataclass(frozen=True)
class _Trace:
    """What the generator chose per image; for tests and debugging."""

    photo_names: tuple[str, ...]  # per image
    item_index: np.ndarray        # index into the Fashion-MNIST part the split uses
    alphas: Optional[np.ndarray]  # (N, S, S) float32 when requested


def _photo_sets(photo_names: list[str]) -> dict[str, list[str]]:
    train, heldout = split_photos(photo_names)
    if not train or not heldout:
        raise DatasetError(
            f"background photos {', '.join(sorted(photo_names))} give {len(train)} training and "
            f"{len(heldout)} held-out photos: both sets need one; install scikit-image "
            "(pip install 'tfedge[train]') so all its photos are available")
    return {"train": train, "val": heldout, "test": heldout}


def _plan(config: BenchmarkConfig, split: str, fashion: FashionMNIST,
          photo_names: list[str]) -> _SplitPlan:
    n = config.split_size(split)
    names = _photo_sets(photo_names)[split]
    images, pool = _item_pools(fashion, config.seed)[split]
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _SPLIT_STREAM[split]]))
    lo, hi = config.object_size
    item_index = _draw_items(rng, pool, n)
    photo_index = rng.integers(0, len(names), size=n)
    crop_fraction = rng.uniform(MIN_CROP_FRACTION, MAX_CROP_FRACTION, size=n)
    crop_pos = rng.random((n, 2))
    flip = rng.random(n) < 0.5
    long_side = rng.integers(lo, hi + 1, size=n)
    object_pos = rng.random((n, 2))
    hue = rng.random(n)
    sat = rng.uniform(*TINT_SATURATION, size=n)
    val = rng.uniform(*TINT_VALUE, size=n)
    colour = _hsv_to_rgb(hue, sat, val) if config.tint else np.ones((n, 3), np.float32)
    return _SplitPlan(tuple(names), photo_index, crop_fraction, crop_pos, flip, images,
                      item_index, long_side, object_pos, colour)


def _prepared_photos(names: tuple[str, ...], photos: Mapping[str, np.ndarray], image_size: int) -> list:
    """Pillow images shrunk so the smallest crop is about ``image_size`` pixels.

    Larger photos would only make every resize slower without adding detail.
    """
    from PIL import Image

    target_short = math.ceil(image_size / MIN_CROP_FRACTION)
    out = []
    for name in names:
        if name not in photos:
            raise DatasetError(f"background photo {name!r} is missing from the photos given")
        arr = np.asarray(photos[name])
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise DatasetError(f"background photo {name!r} must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
        img = Image.fromarray(arr, "RGB")
        short = min(img.size)
        if short > target_short:
            scale = target_short / short
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.LANCZOS)
        out.append(img)
    return out


def _render(plan: _SplitPlan, config: BenchmarkConfig, photos: Mapping[str, np.ndarray],
            images_out: np.ndarray, labels_out: np.ndarray, boxes_out: np.ndarray,
            item_labels: np.ndarray, alphas_out: Optional[np.ndarray] = None,
            progress: Optional[ProgressFn] = None, done_before: int = 0, total: int = 0) -> None:
    """Draw every image of a split into the given arrays (which may be memory-mapped files)."""
    from PIL import Image

    size = config.image_size
    sources = _prepared_photos(plan.photo_names, photos, size)
    n = plan.item_index.shape[0]
    items = plan.item_source[plan.item_index]
    bbox = _tight_bbox(items)
    shapes = _object_shape(bbox[:, 2:] - bbox[:, :2], plan.long_side)
    step = max(1, n // _PROGRESS_STEPS)
    for i in range(n):
        # Background: a square crop at a random place and scale, resized to size x size.
        src = sources[plan.photo_index[i]]
        side = plan.crop_fraction[i] * min(src.size)
        x0 = plan.crop_pos[i, 1] * (src.width - side)
        y0 = plan.crop_pos[i, 0] * (src.height - side)
        bg_img = src.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        if plan.flip[i]:
            bg_img = bg_img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        background = np.asarray(bg_img)
        # Object: the item's tight crop resized to (h, w), opacity and shade separately.
        r0, c0, r1, c1 = bbox[i]
        crop = items[i, r0:r1, c0:c1].astype(np.float32)
        h, w = int(shapes[i, 0]), int(shapes[i, 1])
        alpha = np.asarray(Image.fromarray(np.minimum(crop / ALPHA_RAMP, 1.0), "F").resize(
            (w, h), Image.Resampling.BILINEAR), dtype=np.float32)
        if alpha.max() >= ALPHA_CUTOFF:  # else a faint item shrunk to dust: keep every trace of it
            alpha = np.where(alpha < ALPHA_CUTOFF, 0.0, alpha)
        alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
        shade = np.asarray(Image.fromarray(crop / _MAX_U8, "F").resize(
            (w, h), Image.Resampling.BILINEAR), dtype=np.float32)
        shade = np.clip(shade, 0.0, 1.0)
        top = int(plan.object_pos[i, 0] * (size - h + 1))
        left = int(plan.object_pos[i, 1] * (size - w + 1))
        image, full_alpha, box = _composite(background, shade, alpha, plan.colour[i], top, left)
        images_out[i] = image
        boxes_out[i] = box
        labels_out[i] = item_labels[plan.item_index[i]]
        if alphas_out is not None:
            alphas_out[i] = full_alpha
        if progress is not None and ((i + 1) % step == 0 or i + 1 == n):
            progress(done_before + i + 1, total)


def _labels_for(fashion: FashionMNIST, split: str) -> np.ndarray:
    return fashion.test_labels if split == "test" else fashion.train_labels


def _generate(config: BenchmarkConfig, split: str, fashion: FashionMNIST,
              photos: Mapping[str, np.ndarray], with_alpha: bool = False,
              progress: Optional[ProgressFn] = None, done_before: int = 0,
              total: int = 0) -> tuple[ImageSplit, _Trace]:
    _check_split(split)
    plan = _plan(config, split, fashion, list(photos))
    n, size = config.split_size(split), config.image_size
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty((n,), np.int32)
    boxes = np.empty((n, 4), np.float32)
    alphas = np.empty((n, size, size), np.float32) if with_alpha else None
    _render(plan, config, photos, images, labels, boxes, _labels_for(fashion, split), alphas,
            progress, done_before, total or n)
    trace = _Trace(plan.backgrounds(), plan.item_index, alphas)
    return ImageSplit(images, labels, boxes, tuple(fashion.class_names)), trace


def generate_split(config: BenchmarkConfig, split: str, fashion: FashionMNIST,
                   photos: Mapping[str, np.ndarray],
                   progress: Optional[ProgressFn] = None) -> ImageSplit:
    """Generate one split in memory.

    photos: name -> ``(H, W, 3)`` uint8 array, all the background photos
    (usually every name of :func:`available_photos`); the split picks its own
    side of :func:`split_photos` from them.
    """
    return _generate(config, split, fashion, photos, progress=progress)[0]


def benchmark_backgrounds(config: BenchmarkConfig, split: str,
                          fashion_mnist_path: Optional[str | os.PathLike] = None,
                          allow_download: bool = False) -> tuple[str, ...]:
    """The background photo of every image of ``split``, in order.

    For scores per scene (a held-out photo unlike every training photo shows
    up here, where a mean hides it). Cheap: it replays the split's random
    draws without rendering an image, so it matches the cached arrays of the
    same config.
    """
    _check_split(split)
    fashion = load_fashion_mnist(fashion_mnist_path, allow_download=allow_download)
    plan = _plan(config, split, fashion, available_photos(config.scenes))
    return plan.backgrounds()


class _StderrProgress:
    """Prints one line to stderr each time another tenth of the work is done."""

    def __init__(self, label: str = BENCHMARK_NAME) -> None:
        self.label = label
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = done * _PROGRESS_STEPS // max(total, 1)
        if tenth > self.last_tenth:
            self.last_tenth = tenth
            print(f"{self.label}: generated {done}/{total} images ({100 * done // max(total, 1)}%)",
                  file=sys.stderr, flush=True)


def _progress_fn(progress: Progress) -> Optional[ProgressFn]:
    if progress is True:
        return _StderrProgress()
    if progress is None or progress is False:
        return None
    if not callable(progress):
        raise DatasetError(f"progress={progress!r} is invalid: pass True, False or a callable(done, total)")
    return progress


def _load_sources(fashion_mnist_path: Optional[str | os.PathLike], allow_download: bool,
                  scenes: str = "default") -> tuple[FashionMNIST, dict[str, np.ndarray]]:
    fashion = load_fashion_mnist(fashion_mnist_path, allow_download=allow_download)
    photos = {name: load_photo(name) for name in available_photos(scenes)}
    return fashion, photos


def generate_benchmark(config: BenchmarkConfig, fashion_mnist_path: Optional[str | os.PathLike] = None,
                       allow_download: bool = False, progress: Progress = None) -> dict[str, ImageSplit]:
    """Generate all three splits in memory (no cache); see :func:`load_benchmark`."""
    fashion, photos = _load_sources(fashion_mnist_path, allow_download, config.scenes)
    report = _progress_fn(progress)
    total = config.train_size + config.val_size + config.test_size
    out: dict[str, ImageSplit] = {}
    done = 0
    for split in SPLITS:
        out[split] = _generate(config, split, fashion, photos, progress=report,
                               done_before=done, total=total)[0]
        done += config.split_size(split)
    return out


# --------------------------------------------------------------------------- cache

def default_cache_dir() -> Path:
    """``$TFEDGE_CACHE``, else ``~/.cache/tfedge``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def benchmark_cache_path(config: BenchmarkConfig, cache_dir: Optional[str | os.PathLike] = None) -> Path:
    """The folder holding ``config``'s cached arrays: ``<cache>/datasets/fashion-on-photos-<key>``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "datasets" / f"{BENCHMARK_NAME}-{config.key()}"


def _write_cache(config: BenchmarkConfig, target: Path, fashion: FashionMNIST,
                 photos: Mapping[str, np.ndarray], progress: Optional[ProgressFn]) -> None:
    """Render straight into memory-mapped .npy files in a temporary folder, then swap it in."""
    size = config.image_size
    total = config.train_size + config.val_size + config.test_size
    photo_names = sorted(photos)
    sets = _photo_sets(photo_names)
    with atomic_directory(target) as tmp:
        splits_meta: dict[str, Any] = {}
        done = 0
        for split in SPLITS:
            n = config.split_size(split)
            folder = tmp / split
            folder.mkdir()
            images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8,
                                               shape=(n, size, size, 3))
            labels = np.empty((n,), np.int32)
            boxes = np.empty((n, 4), np.float32)
            plan = _plan(config, split, fashion, photo_names)
            _render(plan, config, photos, images, labels, boxes, _labels_for(fashion, split),
                    progress=progress, done_before=done, total=total)
            images.flush()
            del images
            np.save(folder / "labels.npy", labels)
            np.save(folder / "boxes.npy", boxes)
            done += n
            splits_meta[split] = {
                "count": n,
                "sha256": {f: sha256_file(folder / f) for f in _ARRAY_FILES},
                "class_counts": np.bincount(labels, minlength=len(fashion.class_names)).tolist(),
            }
        meta = {
            "name": BENCHMARK_NAME,
            "generator_version": GENERATOR_VERSION,
            "key": config.key(),
            "config": config.to_dict(),
            "class_names": list(fashion.class_names),
            "image_size": [size, size],
            "box_format": "normalised (ymin, xmin, ymax, xmax), max-exclusive",
            "photos": {"train": sets["train"], "heldout": sets["test"]},
            "splits": splits_meta,
        }
        atomic_write_json(tmp / META_FILE, meta)


def _read_cache(config: BenchmarkConfig, path: Path, verify_checksums: bool
                ) -> tuple[Optional[BenchmarkData], str]:
    """The cached data, or None and why it cannot be used."""
    meta_path = path / META_FILE
    if not meta_path.is_file():
        return None, "meta.json is missing"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"meta.json is unreadable ({exc})"
    if not isinstance(meta, dict):
        return None, "meta.json is not an object"
    if meta.get("generator_version") != GENERATOR_VERSION:
        return None, f"generator version {meta.get('generator_version')!r} != {GENERATOR_VERSION}"
    if meta.get("config") != config.to_dict():
        return None, "its config does not match"
    class_names = meta.get("class_names")
    if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
        return None, "meta.json has no class names"
    photos = meta.get("photos")
    try:
        current = split_photos(available_photos(config.scenes))
    except DatasetError:
        current = None  # cannot tell without scikit-image; the arrays are still complete
    if current is not None and (not isinstance(photos, dict)
                                or [photos.get("train"), photos.get("heldout")] != list(current)):
        return None, "it was built from a different set of background photos"
    size = config.image_size
    splits: dict[str, ImageSplit] = {}
    for split in SPLITS:
        n = config.split_size(split)
        info = (meta.get("splits") or {}).get(split) if isinstance(meta.get("splits"), dict) else None
        if not isinstance(info, dict) or info.get("count") != n:
            return None, f"meta.json has no valid entry for split {split!r}"
        folder = path / split
        try:
            # Labels and boxes are small: always hashed. Images (large) only when asked.
            for f in _ARRAY_FILES if verify_checksums else ("labels.npy", "boxes.npy"):
                if sha256_file(folder / f) != info.get("sha256", {}).get(f):
                    return None, f"{split}/{f} does not match its checksum"
            images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
            labels = np.load(folder / "labels.npy", allow_pickle=False)
            boxes = np.load(folder / "boxes.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            return None, f"{split} arrays are unreadable ({exc})"
        if images.shape != (n, size, size, 3) or images.dtype != np.uint8:
            return None, f"{split}/images.npy has shape {images.shape} {images.dtype}"
        if labels.shape != (n,) or labels.dtype != np.int32:
            return None, f"{split}/labels.npy has shape {labels.shape} {labels.dtype}"
        if boxes.shape != (n, 4) or boxes.dtype != np.float32:
            return None, f"{split}/boxes.npy has shape {boxes.shape} {boxes.dtype}"
        if n and (labels.min() < 0 or labels.max() >= len(class_names)):
            return None, f"{split}/labels.npy holds labels outside 0..{len(class_names) - 1}"
        try:
            splits[split] = ImageSplit(images, labels, boxes, tuple(class_names))
        except DatasetError as exc:
            return None, f"{split} arrays are inconsistent ({exc})"
    return BenchmarkData(splits["train"], splits["val"], splits["test"], config, path), ""


def load_benchmark(config: BenchmarkConfig = BenchmarkConfig(), cache_dir: Optional[str | os.PathLike] = None,
                   fashion_mnist_path: Optional[str | os.PathLike] = None, allow_download: bool = False,
                   progress: Progress = True, verify_checksums: bool = False) -> BenchmarkData:
    """The benchmark for ``config``, from the cache or generated into it.

    Images come back memory-mapped (read-only), labels and boxes in memory. A
    cache folder that is incomplete, made for another config or generator
    version, or whose labels or boxes do not match their checksums is
    rebuilt, never used. ``verify_checksums`` also re-hashes the images
    against meta.json (slower: reads everything). Leftovers of a generation
    that was killed (hidden temporary folders over a day old) are removed.
    """
    if not isinstance(config, BenchmarkConfig):
        raise DatasetError(f"config must be a BenchmarkConfig, got {type(config).__name__}")
    path = benchmark_cache_path(config, cache_dir)
    if path.exists():
        data, reason = _read_cache(config, path, verify_checksums)
        if data is not None:
            logger.info("using cached %s at %s", BENCHMARK_NAME, path)
            return data
        logger.warning("cached %s at %s cannot be used (%s): regenerating it", BENCHMARK_NAME, path, reason)
    for stale in remove_stale_temporaries(path, STALE_TEMPORARY_SECONDS):
        logger.info("removed %s, left by a generation that was killed", stale)
    fashion, photos = _load_sources(fashion_mnist_path, allow_download, config.scenes)
    try:
        _write_cache(config, path, fashion, photos, _progress_fn(progress))
    except OSError as exc:  # a cache path under a file, no permission, a full disk
        images_mb = (config.train_size + config.val_size + config.test_size) \
            * config.image_size ** 2 * 3 / 2 ** 20
        raise DatasetError(f"cannot write the benchmark cache at {path} ({exc.strerror or exc}): "
                           f"pass --cache-dir (or set ${CACHE_ENV}) to a writable folder with "
                           f"{images_mb:.0f} MB free") from None
    data, reason = _read_cache(config, path, verify_checksums=False)
    if data is None:
        raise DatasetError(f"the benchmark just written to {path} cannot be read back ({reason}): "
                           "check the disk and remove the folder")
    return data
