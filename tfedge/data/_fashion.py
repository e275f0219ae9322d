"""Fashion-MNIST, read from its four gzipped IDX files without TensorFlow.

The benchmark's objects are Fashion-MNIST items. The files come from the
Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``)
or any folder the user points at; Keras' downloader is used only when the user
explicitly allows a download, so nothing reaches the network by default.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import DatasetError

__all__ = [
    "FashionMNIST",
    "load_fashion_mnist",
    "parse_idx",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_ENV",
    "DEFAULT_FASHION_MNIST_DIR",
]

FASHION_MNIST_ENV = "TFEDGE_FASHION_MNIST"
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"
FASHION_MNIST_CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
ITEM_SIDE = 28  # Fashion-MNIST items are 28x28 grayscale

# IDX header: two zero bytes, a type code, the number of dimensions, then one
# big-endian uint32 per dimension. Fashion-MNIST only uses unsigned bytes.
_IDX_UBYTE = 0x08
_IMAGES_NDIM = 3
_LABELS_NDIM = 1

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_NOT_FOUND = (
    "Fashion-MNIST not found at {path}: install it with 'apt-get install "
    "dataset-fashion-mnist' (Debian/Ubuntu), pass --fashion-mnist PATH (or set "
    f"${FASHION_MNIST_ENV}) to a folder holding the four IDX .gz files, or add "
    "--allow-download to fetch it with Keras")


@dataclass(frozen=True)
class FashionMNIST:
    """The whole dataset in memory (about 55 MB); arrays are read-only."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) int32
    test_images: np.ndarray   # (10000, 28, 28) uint8
    test_labels: np.ndarray   # (10000,) int32
    class_names: tuple[str, ...] = FASHION_MNIST_CLASS_NAMES

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            images, labels = getattr(self, f"{part}_images"), getattr(self, f"{part}_labels")
            if images.ndim != 3 or images.shape[1:] != (ITEM_SIDE, ITEM_SIDE) or images.dtype != np.uint8:
                raise DatasetError(
                    f"Fashion-MNIST {part} images must be (N, {ITEM_SIDE}, {ITEM_SIDE}) uint8, "
                    f"got {images.shape} {images.dtype}: point --fashion-mnist at the original files")
            if labels.shape != (images.shape[0],):
                raise DatasetError(
                    f"Fashion-MNIST {part} has {images.shape[0]} images but labels of shape "
                    f"{labels.shape}: point --fashion-mnist at the original files")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise DatasetError(
                    f"Fashion-MNIST {part} labels must lie in 0..{len(self.class_names) - 1}, "
                    f"got {int(labels.min())}..{int(labels.max())}: the label file is corrupt")


def parse_idx(data: bytes, name: str, ndim: int) -> np.ndarray:
    """Parse one uncompressed IDX blob of unsigned bytes with ``ndim`` dimensions.

    ``name`` is only used in error messages, so the user knows which file is bad.
    """
    fix = "re-install or re-download it"
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{name} is not an IDX file (only {len(data)} bytes): {fix}")
    zero, dtype_code, file_ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != _IDX_UBYTE or file_ndim != ndim:
        raise DatasetError(
            f"{name} has a bad IDX magic number 0x{data[:4].hex()} (expected "
            f"0x0000{_IDX_UBYTE:02x}{ndim:02x}): {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DatasetError(
            f"{name} holds {len(data) - header} data bytes but its header {dims} needs "
            f"{expected}: the file is truncated or corrupt, {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_file(folder: Path, stem: str, ndim: int) -> np.ndarray:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            break
    else:
        raise DatasetError(_NOT_FOUND.format(path=folder / f"{stem}.gz"))
    try:
        raw = candidate.read_bytes()
        if candidate.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{candidate} cannot be read ({exc}): re-install or re-download it") from exc
    return parse_idx(raw, str(candidate), ndim)


def _default_path() -> str:
    return os.environ.get(FASHION_MNIST_ENV) or DEFAULT_FASHION_MNIST_DIR


def _folder_signature(folder: Path) -> tuple:
    """Names, sizes and modification times: a changed file misses the cache."""
    sig = []
    for stem in _FILES.values():
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                st = candidate.stat()
                sig.append((candidate.name, st.st_size, st.st_mtime_ns))
    return tuple(sig)


@functools.lru_cache(maxsize=2)
def _load_folder(folder: str, signature: tuple) -> FashionMNIST:
    del signature  # only part of the cache key
    root = Path(folder)
    arrays = {}
    for key, stem in _FILES.items():
        ndim = _IMAGES_NDIM if key.endswith("images") else _LABELS_NDIM
        arr = _read_idx_file(root, stem, ndim)
        if key.endswith("labels"):
            arr = arr.astype(np.int32)
        arr.flags.writeable = False
        arrays[key] = arr
    return FashionMNIST(**arrays)


def _load_with_keras() -> FashionMNIST:
    import keras  # lazy: only when the user allowed a download

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    arrays = dict(train_images=np.asarray(x_train, np.uint8), train_labels=np.asarray(y_train, np.int32),
                  test_images=np.asarray(x_test, np.uint8), test_labels=np.asarray(y_test, np.int32))
    for arr in arrays.values():
        arr.flags.writeable = False
    return FashionMNIST(**arrays)


def load_fashion_mnist(path: str | os.PathLike | None = None, allow_download: bool = False) -> FashionMNIST:
    """Load Fashion-MNIST from a folder holding the four IDX files (``.gz`` or plain).

    ``path`` defaults to ``$TFEDGE_FASHION_MNIST``, else the Debian package's
    folder. When the files are absent, Keras downloads them only if
    ``allow_download`` is true; otherwise a :class:`DatasetError` says how to
    install them. A corrupt file is never replaced by a download.
    """
    folder = Path(path) if path is not None else Path(_default_path())
    present = folder.is_dir() and any(
        (folder / f"{stem}.gz").is_file() or (folder / stem).is_file() for stem in _FILES.values())
    if not present:
        if allow_download:
            return _load_with_keras()
        raise DatasetError(_NOT_FOUND.format(path=folder))
    folder = folder.resolve()
    return _load_folder(str(folder), _folder_signature(folder))
