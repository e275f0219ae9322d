"""The built-in benchmark: Fashion-MNIST reader, background photos, generator, cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tfedge._errors import DatasetError
from tfedge.data import _backgrounds, _benchmark
from tfedge.data._backgrounds import available_photos, load_photo, split_photos
from tfedge.data._benchmark import (
    BenchmarkConfig,
    BenchmarkData,
    _composite,
    _generate,
    _item_pools,
    benchmark_backgrounds,
    benchmark_cache_path,
    generate_benchmark,
    generate_split,
    load_benchmark,
)
from tfedge.data._fashion import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASS_NAMES,
    load_fashion_mnist,
    parse_idx,
)
from tfedge.data._types import ImageSplit

pytest.importorskip("PIL")
_needs_skimage = pytest.mark.skipif(_backgrounds._package_dir("skimage") is None,
                                    reason="scikit-image (the background photos) is not installed")

SMALL = BenchmarkConfig(image_size=48, object_size=(12, 32), train_size=30, val_size=20,
                        test_size=24, seed=1)
N_TRAIN_ITEMS, N_TEST_ITEMS = 120, 40


# --------------------------------------------------------------------------- fixtures

def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(folder: Path, stem: str, array: np.ndarray) -> None:
    (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(array), mtime=0))


def _garments(rng: np.random.Generator, n: int) -> np.ndarray:
    """Blobs of random size, intensity and texture, some with holes (like a bag's handle)."""
    items = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        h, w = rng.integers(6, 27, size=2)
        r, c = rng.integers(0, 28 - h + 1), rng.integers(0, 28 - w + 1)
        items[i, r:r + h, c:c + w] = rng.integers(1, 256, size=(h, w))
        if i % 3 == 0 and h > 4 and w > 4:
            items[i, r + 2:r + h - 2, c + 2:c + w - 2] = 0
    return items


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST in the real file format (120 train, 40 test items)."""
    folder = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(123)
    _write_idx(folder, "train-images-idx3-ubyte", _garments(rng, N_TRAIN_ITEMS))
    _write_idx(folder, "train-labels-idx1-ubyte", np.arange(N_TRAIN_ITEMS) % 10)
    _write_idx(folder, "t10k-images-idx3-ubyte", _garments(rng, N_TEST_ITEMS))
    _write_idx(folder, "t10k-labels-idx1-ubyte", np.arange(N_TEST_ITEMS) % 10)
    return folder


@pytest.fixture(scope="module")
def fashion(fashion_dir):
    return load_fashion_mnist(fashion_dir)


@pytest.fixture(scope="module")
def photos():
    if _backgrounds._package_dir("skimage") is None:
        pytest.skip("scikit-image (the background photos) is not installed")
    return {name: load_photo(name) for name in available_photos()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- Fashion-MNIST

def test_load_fashion_mnist_from_idx_files(fashion):
    assert fashion.train_images.shape == (N_TRAIN_ITEMS, 28, 28)
    assert fashion.train_images.dtype == np.uint8
    assert fashion.train_labels.shape == (N_TRAIN_ITEMS,) and fashion.train_labels.dtype == np.int32
    assert fashion.test_images.shape == (N_TEST_ITEMS, 28, 28)
    assert fashion.test_labels.dtype == np.int32
    np.testing.assert_array_equal(fashion.test_labels, np.arange(N_TEST_ITEMS) % 10)
    assert fashion.class_names == FASHION_MNIST_CLASS_NAMES and len(fashion.class_names) == 10
    assert not fashion.train_images.flags.writeable


@pytest.mark.skipif(not Path(DEFAULT_FASHION_MNIST_DIR).is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_shapes(monkeypatch):
    monkeypatch.delenv("TFEDGE_FASHION_MNIST", raising=False)
    f = load_fashion_mnist()
    assert f.train_images.shape == (60000, 28, 28) and f.train_images.dtype == np.uint8
    assert f.test_images.shape == (10000, 28, 28)
    assert f.train_labels.shape == (60000,) and f.train_labels.dtype == np.int32
    assert np.bincount(f.test_labels).tolist() == [1000] * 10
    assert f.class_names[0] == "T-shirt/top" and f.class_names[9] == "Ankle boot"


def test_parse_idx_rejects_bad_magic_and_truncation():
    good = _idx_bytes(np.zeros((2, 3, 3), np.uint8))
    assert parse_idx(good, "x", 3).shape == (2, 3, 3)
    with pytest.raises(DatasetError, match="magic"):
        parse_idx(b"\x00\x00\x0d\x03" + good[4:], "some-file", 3)
    with pytest.raises(DatasetError, match="truncated"):
        parse_idx(good[:-1], "some-file", 3)
    with pytest.raises(DatasetError, match="not an IDX"):
        parse_idx(b"\x00", "some-file", 3)


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    missing = tmp_path / "nothing-here"
    with pytest.raises(DatasetError) as err:
        load_fashion_mnist(missing)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg and str(missing) in msg
    assert "--fashion-mnist" in msg and "--allow-download" in msg and "\n" not in msg
    monkeypatch.setenv("TFEDGE_FASHION_MNIST", str(missing))
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist()
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        generate_benchmark(SMALL, fashion_mnist_path=missing)


@pytest.mark.parametrize("damage", ["not-gzip", "bad-magic", "truncated", "missing"])
def test_corrupt_idx_file_is_named(fashion_dir, tmp_path, damage):
    folder = tmp_path / "fm"
    folder.mkdir()
    for f in fashion_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    bad = folder / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    if damage == "not-gzip":
        bad.write_bytes(b"this is not gzip data at all")
    elif damage == "bad-magic":
        bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))
    elif damage == "truncated":
        bad.write_bytes(gzip.compress(raw[:-100]))
    else:
        bad.unlink()
    with pytest.raises(DatasetError) as err:
        load_fashion_mnist(folder)
    assert "t10k-images-idx3-ubyte" in str(err.value)


def test_label_file_out_of_range_is_rejected(fashion_dir, tmp_path):
    folder = tmp_path / "fm"
    folder.mkdir()
    for f in fashion_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    _write_idx(folder, "train-labels-idx1-ubyte", np.full(N_TRAIN_ITEMS, 12))
    with pytest.raises(DatasetError, match="labels"):
        load_fashion_mnist(folder)


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("kwargs, words", [
    (dict(image_size=48, object_size=(12, 64)), "exceeds image_size"),
    (dict(object_size=(40, 30)), "min <= max"),
    (dict(object_size=(2, 30)), "object_size"),
    (dict(object_size=(12,)), "object_size"),
    (dict(image_size=8), "image_size"),
    (dict(image_size=64.0), "image_size"),
    (dict(train_size=0), "train_size"),
    (dict(val_size=-3), "val_size"),
    (dict(test_size=True), "test_size"),
    (dict(seed=-1), "seed"),
    (dict(tint="yes"), "tint"),
])
def test_bad_config_raises_dataset_error(kwargs, words):
    with pytest.raises(DatasetError, match=words):
        BenchmarkConfig(**kwargs)


def test_config_key_and_dict_round_trip():
    cfg = BenchmarkConfig(object_size=[20, 40])  # a JSON list is accepted
    assert cfg.object_size == (20, 40)
    assert BenchmarkConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.key() == BenchmarkConfig(object_size=(20, 40)).key()
    keys = {cfg.key()} | {
        BenchmarkConfig(object_size=(20, 40), **{field: value}).key()
        for field, value in [("image_size", 96), ("tint", False), ("train_size", 5),
                             ("val_size", 5), ("test_size", 5), ("seed", 7)]}
    assert len(keys) == 7 and all(len(k) == 12 for k in keys)
    with pytest.raises(DatasetError, match="unknown benchmark config"):
        BenchmarkConfig.from_dict({"imagesize": 3})


# --------------------------------------------------------------------------- compositing

def test_composite_box_is_exact_and_tight():
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    alpha = np.zeros((9, 7), np.float32)
    alpha[2:8, 1:5] = 0.6
    alpha[5, 6] = 0.05  # a faint isolated pixel still counts
    alpha[3:6, 2:4] = 0.0  # a hole does not matter
    shade = rng.random((9, 7)).astype(np.float32)
    image, full_alpha, box = _composite(background, shade, alpha, np.array([1.0, 0.2, 0.2]), top=10, left=30)
    assert image.dtype == np.uint8 and image.shape == background.shape
    assert box.dtype == np.float32
    np.testing.assert_allclose(box * [40, 50, 40, 50], [12, 31, 18, 37], atol=1e-4)
    assert full_alpha.shape == (40, 50)
    _assert_box_tight(full_alpha, box)
    # Pixels with zero opacity keep the background exactly.
    np.testing.assert_array_equal(image[full_alpha == 0], background[full_alpha == 0])
    assert np.any(image[full_alpha > 0.5] != background[full_alpha > 0.5])
    with pytest.raises(ValueError):
        _composite(background, shade, alpha, np.ones(3), top=35, left=0)


def _assert_box_tight(alpha: np.ndarray, box: np.ndarray) -> None:
    h, w = alpha.shape
    r0, c0, r1, c1 = np.rint(box * [h, w, h, w]).astype(int)
    rows, cols = np.nonzero(alpha > 0)
    assert rows.size > 0
    assert rows.min() == r0 and rows.max() == r1 - 1, (box, rows.min(), rows.max())
    assert cols.min() == c0 and cols.max() == c1 - 1, (box, cols.min(), cols.max())


# --------------------------------------------------------------------------- generation

@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_generated_split_boxes_cover_object_pixels(fashion, photos, split):
    data, trace = _generate(SMALL, split, fashion, photos, with_alpha=True)
    n = SMALL.split_size(split)
    assert isinstance(data, ImageSplit)
    assert data.images.shape == (n, 48, 48, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (n,) and data.labels.dtype == np.int32
    assert data.boxes.shape == (n, 4) and data.boxes.dtype == np.float32
    assert data.class_names == FASHION_MNIST_CLASS_NAMES
    assert np.all((data.labels >= 0) & (data.labels < 10))
    b = data.boxes
    assert np.all((b >= 0) & (b <= 1)) and np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    for i in range(n):
        _assert_box_tight(trace.alphas[i], b[i])
    # Longer box side within the configured object size (the rim may fade by a pixel or two).
    sides = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * SMALL.image_size
    assert np.all(sides <= SMALL.object_size[1]) and np.all(sides >= SMALL.object_size[0] - 3)
    # Labels are the Fashion-MNIST labels of the items used.
    labels = fashion.test_labels if split == "test" else fashion.train_labels
    np.testing.assert_array_equal(data.labels, labels[trace.item_index])


def test_backgrounds_and_items_of_splits_are_disjoint(fashion, photos):
    traces = {s: _generate(SMALL, s, fashion, photos)[1] for s in ("train", "val", "test")}
    train_photos, heldout_photos = split_photos(photos)
    assert set(traces["train"].photo_names) <= set(train_photos)
    assert set(traces["val"].photo_names) <= set(heldout_photos)
    assert set(traces["test"].photo_names) <= set(heldout_photos)
    assert not set(traces["train"].photo_names) & set(traces["test"].photo_names)
    assert len(set(traces["train"].photo_names)) > 3  # varied backgrounds
    pools = _item_pools(fashion, SMALL.seed)
    assert not set(pools["train"][1]) & set(pools["val"][1])
    assert len(pools["train"][1]) + len(pools["val"][1]) == N_TRAIN_ITEMS
    assert set(traces["train"].item_index) <= set(pools["train"][1])
    assert set(traces["val"].item_index) <= set(pools["val"][1])


def test_generation_is_deterministic_and_seeded(fashion_dir):
    a = generate_benchmark(SMALL, fashion_mnist_path=fashion_dir)
    b = generate_benchmark(SMALL, fashion_mnist_path=fashion_dir)
    c = generate_benchmark(BenchmarkConfig(**{**SMALL.to_dict(), "seed": 2, "object_size": (12, 32)}),
                           fashion_mnist_path=fashion_dir)
    assert set(a) == {"train", "val", "test"}
    for split in a:
        assert len(a[split]) == SMALL.split_size(split)
        assert a[split].images.tobytes() == b[split].images.tobytes()
        assert a[split].labels.tobytes() == b[split].labels.tobytes()
        assert a[split].boxes.tobytes() == b[split].boxes.tobytes()
        assert a[split].images.tobytes() != c[split].images.tobytes()
        assert a[split].boxes.tobytes() != c[split].boxes.tobytes()
    n = SMALL.val_size  # splits draw from independent streams
    assert not np.array_equal(a["train"].images[:n], a["val"].images[:n])


def test_gray_mode_makes_gray_objects(fashion, photos):
    cfg = BenchmarkConfig(**{**SMALL.to_dict(), "object_size": (12, 32), "tint": False})
    data, trace = _generate(cfg, "test", fashion, photos, with_alpha=True)
    # Fully opaque object pixels are pure gray.
    opaque = trace.alphas >= 1.0
    px = data.images[opaque].astype(int)
    assert px.size and np.all(np.abs(px[:, 0] - px[:, 1]) <= 1) and np.all(np.abs(px[:, 1] - px[:, 2]) <= 1)


def test_generate_split_public_and_progress(fashion, photos):
    calls = []
    split = generate_split(SMALL, "val", fashion, photos, progress=lambda d, t: calls.append((d, t)))
    assert len(split) == SMALL.val_size
    assert calls and calls[-1] == (SMALL.val_size, SMALL.val_size)
    assert all(d1 < d2 for (d1, _), (d2, _) in zip(calls, calls[1:]))
    with pytest.raises(DatasetError, match="unknown benchmark split"):
        generate_split(SMALL, "validation", fashion, photos)


def test_benchmark_backgrounds_name_each_images_photo(fashion_dir, fashion, photos):
    for split in ("train", "test"):
        names = benchmark_backgrounds(SMALL, split, fashion_mnist_path=fashion_dir)
        assert names == _generate(SMALL, split, fashion, photos)[1].photo_names
        assert len(names) == SMALL.split_size(split)
    with pytest.raises(DatasetError, match="unknown benchmark split"):
        benchmark_backgrounds(SMALL, "validation", fashion_mnist_path=fashion_dir)


# --------------------------------------------------------------------------- photos

@_needs_skimage
def test_available_photos_are_real_rgb_arrays():
    names = available_photos()
    assert names == sorted(names) and len(names) >= 10
    for synthetic in ("chessboard_GRAY", "color", "horse", "logo", "phantom"):
        assert synthetic not in names
    cam = load_photo("camera")  # a grayscale photograph comes back as RGB
    assert cam.dtype == np.uint8 and cam.ndim == 3 and cam.shape[2] == 3
    assert np.array_equal(cam[..., 0], cam[..., 1])
    with pytest.raises(DatasetError, match="unknown background photo 'nope'"):
        load_photo("nope")


@_needs_skimage
def test_photo_split_is_stable_and_about_70_30():
    names = available_photos()
    train, heldout = split_photos(names)
    assert train and heldout and not set(train) & set(heldout)
    assert sorted(train + heldout) == names
    # Near-duplicate views of one scene stay together.
    assert ("motorcycle_left" in train) == ("motorcycle_right" in train)
    # Adding photos never moves existing ones.
    train2, heldout2 = split_photos(names + ["new_photo_a", "new_photo_b"])
    assert set(train) <= set(train2) and set(heldout) <= set(heldout2)
    many = [f"photo{i}" for i in range(2000)]
    frac = len(split_photos(many)[1]) / len(many)
    assert 0.26 < frac < 0.34


def test_missing_scikit_image_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_backgrounds, "_package_dir", lambda package: None)
    with pytest.raises(DatasetError, match=r"pip install 'tfedge\[train\]'"):
        available_photos()


# --------------------------------------------------------------------------- cache

def test_cache_round_trip_and_hit(fashion_dir, tmp_path, monkeypatch):
    data = load_benchmark(SMALL, cache_dir=tmp_path, fashion_mnist_path=fashion_dir, progress=False)
    assert isinstance(data, BenchmarkData)
    path = benchmark_cache_path(SMALL, tmp_path)
    assert data.path == path and path.name == f"fashion-on-photos-{SMALL.key()}"
    assert path.parent == tmp_path / "datasets"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["config"] == SMALL.to_dict() and meta["class_names"] == list(FASHION_MNIST_CLASS_NAMES)
    for split in ("train", "val", "test"):
        assert meta["splits"][split]["count"] == SMALL.split_size(split)
        for f in ("images.npy", "labels.npy", "boxes.npy"):
            assert meta["splits"][split]["sha256"][f] == _sha(path / split / f)
    assert not set(meta["photos"]["train"]) & set(meta["photos"]["heldout"])
    # Same arrays as in-memory generation.
    fresh = generate_benchmark(SMALL, fashion_mnist_path=fashion_dir)
    for split in fresh:
        cached = data.split(split)
        assert cached.images.tobytes() == fresh[split].images.tobytes()
        assert cached.boxes.tobytes() == fresh[split].boxes.tobytes()
        assert cached.labels.tobytes() == fresh[split].labels.tobytes()
    # Second load: a cache hit (nothing generated), images memory-mapped read-only.
    monkeypatch.setattr(_benchmark, "_write_cache", _fail)
    again = load_benchmark(SMALL, cache_dir=tmp_path, fashion_mnist_path=fashion_dir, verify_checksums=True)
    assert isinstance(again.train.images, np.memmap) and not again.train.images.flags.writeable
    assert again.test.images.shape == (SMALL.test_size, 48, 48, 3)
    assert again.val.labels.dtype == np.int32 and again.val.boxes.dtype == np.float32


def _fail(*args, **kwargs):
    raise AssertionError("the cache should have been used")


def test_cache_files_identical_across_cache_dirs(fashion_dir, tmp_path):
    a = load_benchmark(SMALL, cache_dir=tmp_path / "a", fashion_mnist_path=fashion_dir, progress=False)
    b = load_benchmark(SMALL, cache_dir=tmp_path / "b", fashion_mnist_path=fashion_dir, progress=False)
    files = sorted(p.relative_to(a.path) for p in a.path.rglob("*.npy"))
    assert len(files) == 9
    for rel in files:
        assert _sha(a.path / rel) == _sha(b.path / rel)
    assert (a.path / "meta.json").read_bytes() == (b.path / "meta.json").read_bytes()


@pytest.mark.parametrize("damage", ["corrupt-meta", "missing-meta", "other-config", "short-array",
                                    "wrong-labels"])
def test_damaged_cache_is_regenerated(fashion_dir, tmp_path, damage):
    first = load_benchmark(SMALL, cache_dir=tmp_path, fashion_mnist_path=fashion_dir, progress=False)
    path = first.path
    good_meta = (path / "meta.json").read_bytes()
    good_images = _sha(path / "train" / "images.npy")
    del first
    if damage == "corrupt-meta":
        (path / "meta.json").write_text("{not json")
    elif damage == "missing-meta":
        (path / "meta.json").unlink()
    elif damage == "other-config":
        meta = json.loads(good_meta)
        meta["config"]["seed"] = 99
        (path / "meta.json").write_text(json.dumps(meta))
    elif damage == "wrong-labels":  # right shape and dtype, out-of-range values
        np.save(path / "train" / "labels.npy", np.full(SMALL.train_size, 77, np.int32))
    else:
        np.save(path / "train" / "images.npy", np.zeros((3, 48, 48, 3), np.uint8))
    calls = []
    again = load_benchmark(SMALL, cache_dir=tmp_path, fashion_mnist_path=fashion_dir,
                           progress=lambda d, t: calls.append(d))
    assert calls, "a damaged cache must be regenerated, not used"
    assert (path / "meta.json").read_bytes() == good_meta
    assert _sha(path / "train" / "images.npy") == good_images
    assert len(again.train) == SMALL.train_size


def test_temporaries_of_killed_generations_are_removed(tmp_path):
    import os
    import time

    from tfedge._io import remove_stale_temporaries

    target = tmp_path / "fashion-on-photos-abc"
    stale, fresh, other = (tmp_path / ".fashion-on-photos-abc.x1", tmp_path /
                           ".fashion-on-photos-abc.x2", tmp_path / ".something-else.x3")
    for folder in (stale, fresh, other):
        (folder / "train").mkdir(parents=True)
        (folder / "train" / "images.npy").write_bytes(b"partial")
    old = time.time() - 2 * 24 * 3600
    for p in (stale, stale / "train", stale / "train" / "images.npy", other):
        os.utime(p, (old, old))
    assert remove_stale_temporaries(target, 24 * 3600) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists()


def test_cache_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TFEDGE_CACHE", str(tmp_path / "c"))
    assert benchmark_cache_path(SMALL) == tmp_path / "c" / "datasets" / f"fashion-on-photos-{SMALL.key()}"
    monkeypatch.delenv("TFEDGE_CACHE")
    assert benchmark_cache_path(SMALL) == Path("~/.cache/tfedge").expanduser() / "datasets" / \
        f"fashion-on-photos-{SMALL.key()}"


def test_progress_printed_to_stderr(fashion_dir, tmp_path, capsys):
    load_benchmark(SMALL, cache_dir=tmp_path, fashion_mnist_path=fashion_dir)
    err = capsys.readouterr().err
    total = SMALL.train_size + SMALL.val_size + SMALL.test_size
    assert f"{total}/{total}" in err and 2 <= err.count("\n") <= 12


def test_cache_that_cannot_be_written_is_a_one_line_error(fashion_dir, tmp_path, monkeypatch):
    """A cache folder under a file, or a full disk: the fix in one line, not an OSError (#11)."""
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DatasetError, match=r"cannot write the benchmark cache .*--cache-dir") as info:
        load_benchmark(SMALL, cache_dir=tmp_path / "a_file", fashion_mnist_path=fashion_dir,
                       progress=False)
    assert "\n" not in str(info.value)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "c" / "images.npy"))

    monkeypatch.setattr(_benchmark, "_write_cache", full_disk)
    with pytest.raises(DatasetError, match="No space left on device.*MB free"):
        load_benchmark(SMALL, cache_dir=tmp_path / "c", fashion_mnist_path=fashion_dir,
                       progress=False)
