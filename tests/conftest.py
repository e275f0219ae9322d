"""Shared fixtures: tiny datasets and models so every test runs in seconds."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_CLASSES = ("red", "green", "blue")


def make_colour_split(count: int, size: int = 32, seed: int = 0):
    """A learnable toy split: a coloured square (the class) on grey noise, with its box."""
    from tfedge.data import ImageSplit

    rng = np.random.default_rng(seed)
    images = rng.integers(90, 140, size=(count, size, size, 3), dtype=np.uint8)
    labels = (np.arange(count) % len(TINY_CLASSES)).astype(np.int32)
    boxes = np.zeros((count, 4), np.float32)
    for i in range(count):
        side = int(rng.integers(size // 4, size // 2))
        top, left = (int(v) for v in rng.integers(0, size - side, 2))
        colour = np.zeros(3, np.uint8)
        colour[labels[i]] = 250
        images[i, top:top + side, left:left + side] = colour
        boxes[i] = (top / size, left / size, (top + side) / size, (left + side) / size)
    return ImageSplit(images, labels, boxes, TINY_CLASSES)


@pytest.fixture
def colour_split():
    return make_colour_split(96)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never read or write the user's real dataset cache from tests.
    monkeypatch.setenv("TFEDGE_CACHE", str(tmp_path_factory.mktemp("tfedge-cache")))
