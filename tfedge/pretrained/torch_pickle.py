"""Read a PyTorch state dict (``torch.save`` file) into numpy arrays, without torch.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file
names. This reader only resolves an allow-list of globals (the ordered dict,
the tensor-rebuild helpers and the typed storage classes a state dict is made
of), each mapped to a numpy stand-in; any other global (``os.system``, a model
class, ...) stops the load with a :class:`PickleSecurityError` naming it,
before anything is called.

Both on-disk formats are read:

* the legacy stream (torch < 1.6, ``_use_new_zipfile_serialization=False``):
  a magic-number pickle, a protocol pickle, a system-info pickle, the object
  pickle (tensors refer to storages by key), the list of storage keys, then
  each storage as an int64 element count followed by its raw bytes;
* the zip archive (torch >= 1.6): ``<root>/data.pkl`` plus one raw file per
  storage under ``<root>/data/<key>``.

Tensors come back as C-contiguous numpy arrays (copies, never views of the
file), in the dtype of their storage.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np

from tfedge._errors import TfedgeError

__all__ = ["PickleSecurityError", "TorchPickleError", "load_state_dict", "ALLOWED_GLOBALS"]

#: First pickle of a legacy ``torch.save`` stream.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_INT64 = struct.Struct("<q")

#: Typed storage classes and the dtype of their elements (little-endian, as saved on x86/ARM).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class TorchPickleError(TfedgeError):
    """The file is not a PyTorch state dict this reader understands."""


class PickleSecurityError(TorchPickleError):
    """The pickle names a global outside the allow-list: loading it could run code."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: only its dtype matters."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass
class _Storage:
    """A storage whose bytes may arrive after the object pickle (legacy format)."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _LazyTensor:
    """What ``_rebuild_tensor_v2`` returns: materialised once every storage is read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def materialise(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise TorchPickleError(f"storage {self.storage.key!r} has no data in the file: the "
                                   "file is truncated or not a torch.save file")
        if not self.size:
            return np.array(data[self.offset], copy=True)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or any(s < 0 for s in self.stride) or min(self.size) < 0 \
                or (min(self.size) > 0 and last >= data.size):
            raise TorchPickleError(f"a tensor of shape {self.size} at offset {self.offset} "
                                   f"does not fit storage {self.storage.key!r} of {data.size} "
                                   "elements: the file is corrupt")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size,
            strides=tuple(s * data.itemsize for s in self.stride), writeable=False)
        return np.ascontiguousarray(view).copy()


def _rebuild_tensor_v2(storage: _Storage, storage_offset: int, size: tuple, stride: tuple,
                       requires_grad: bool = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _LazyTensor:
    if not isinstance(storage, _Storage):
        raise TorchPickleError("a tensor refers to something that is not a storage: the file "
                               "is corrupt or not a state dict")
    return _LazyTensor(storage, int(storage_offset), tuple(int(n) for n in size),
                       tuple(int(s) for s in stride))


def _rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: Any = None) -> Any:
    return data


#: ``(module, name)`` -> what the unpickler gets instead. Nothing else resolves.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storages: dict[str, _Storage] | None,
                 zip_reader: Any = None) -> None:
        super().__init__(file)
        self._storages = storages
        self._zip_reader = zip_reader

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS))
            raise PickleSecurityError(
                f"the pickle refers to global '{module}.{name}', which a state dict of tensors "
                f"never needs: refusing to load it (allowed: {allowed})") from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
            raise PickleSecurityError(f"the pickle holds a persistent object of kind {kind!r} "
                                      "(only tensor storages are allowed): save a state_dict, "
                                      "not a whole model")
        if len(pid) < 5 or not isinstance(pid[1], _StorageType):
            raise TorchPickleError(f"unsupported storage reference {pid[:3]!r}: save the "
                                   "weights with a typed storage (torch.save of a state_dict)")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if len(pid) > 5 and pid[5] is not None:
            raise TorchPickleError(f"storage {key!r} is a view of another storage (pre-1.0 "
                                   "torch.save): re-save the state dict with a recent torch")
        storage = self._storages.get(key) if self._storages is not None else None
        if storage is None:
            storage = _Storage(key, storage_type.dtype, numel)
            if self._zip_reader is not None:
                storage.data = self._zip_reader(key, storage.dtype, numel)
            if self._storages is not None:
                self._storages[key] = storage
        return storage


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_exact(f: BinaryIO, count: int, what: str) -> bytes:
    data = f.read(count)
    if len(data) != count:
        raise TorchPickleError(f"the file ends inside {what} ({len(data)} of {count} bytes): "
                               "it is truncated; reinstall the package that ships it")
    return data


def _load_legacy(f: BinaryIO) -> Any:
    def small() -> Any:
        return _RestrictedUnpickler(f, None).load()

    if small() != LEGACY_MAGIC:
        raise TorchPickleError("not a torch.save file (wrong magic number)")
    protocol = small()
    if protocol != LEGACY_PROTOCOL:
        raise TorchPickleError(f"unsupported torch.save protocol {protocol!r} (expected "
                               f"{LEGACY_PROTOCOL})")
    sys_info = small()
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise TorchPickleError("the file was saved on a big-endian machine: not supported")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, None).load()
    if not isinstance(keys, list):
        raise TorchPickleError("the storage key list is missing: the file is corrupt")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise TorchPickleError(f"the file holds storage {key!r} that no tensor uses: corrupt")
        (numel,) = _INT64.unpack(_read_exact(f, _INT64.size, "a storage size"))
        if numel != storage.numel:
            raise TorchPickleError(f"storage {key!r} has {numel} elements on disk but "
                                   f"{storage.numel} in the pickle: the file is corrupt")
        raw = _read_exact(f, numel * storage.dtype.itemsize, f"storage {key!r}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _materialise(obj)


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise TorchPickleError(f"{path}: a zip without exactly one data.pkl is not a "
                                   "torch.save file")
        root = pkl[0][:-len("data.pkl")]

        def read_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            member = f"{root}data/{key}"
            try:
                raw = archive.read(member)
            except KeyError:
                raise TorchPickleError(f"{path}: storage {member!r} is missing") from None
            if len(raw) < numel * dtype.itemsize:
                raise TorchPickleError(f"{path}: storage {member!r} is truncated")
            return np.frombuffer(raw[:numel * dtype.itemsize], dtype=dtype)

        with archive.open(pkl[0]) as f:
            obj = _RestrictedUnpickler(io.BytesIO(f.read()), {}, read_storage).load()
    return _materialise(obj)


def load_state_dict(path: Union[str, os.PathLike]) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``'d state dict as ``{name: numpy array}``.

    Raises :class:`PickleSecurityError` for a pickle naming any global outside
    :data:`ALLOWED_GLOBALS`, :class:`TorchPickleError` for anything else that
    is not a flat state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise TorchPickleError(f"weights file {str(path)!r} does not exist")
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            with open(path, "rb") as f:
                obj = _load_legacy(f)
    except TfedgeError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as exc:
        raise TorchPickleError(f"{path}: not a readable torch.save file "
                               f"({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchPickleError(f"{path}: expected a state dict of tensors, got "
                               f"{type(obj).__name__}")
    return {str(k): v for k, v in obj.items()}
