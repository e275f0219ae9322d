"""Atomic file writes: an artifact is either complete on disk or absent.

Every temporary is a hidden sibling of its target named ``.NAME.pidPID.XXXX``
(PID: the writing process). A run killed mid-write leaves one behind; the next
write of the same target removes those whose process is gone
(:func:`remove_stale_temporaries`), so kills do not accumulate litter.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from .errors import TfedgeError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_directory",
           "remove_stale_temporaries", "temporary_prefix", "check_replaceable_file",
           "private_tempdir", "remove_stale_private_tempdirs", "PRIVATE_TEMP_PREFIX"]

#: Temporaries without a live writer's PID in their name (written by older tfedge) go
#: once they are this old: a writer touches its temporary while it works.
UNMARKED_TEMPORARY_SECONDS = 3600
_PID_MARK = re.compile(r"^pid(\d+)\.")
_MKSTEMP_NAME = re.compile(r"^(?:old\.)?[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?$")  # tempfile's 8 letters


def temporary_prefix(target: Path) -> str:
    """The name prefix of this process's temporaries for ``target``: ``.NAME.pidPID.``."""
    return f".{target.name}.pid{os.getpid()}."


def _kind_of(mode: int) -> Optional[str]:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_replaceable_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if a file may be written there atomically; else a TfedgeError.

    An atomic write renames its temporary onto the target, so an existing
    folder, FIFO or device there (``--output /dev/null`` run as root) would be
    replaced: refuse it instead, naming what is there.
    """
    target = Path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target  # nothing there, or a dangling link (the link is replaced)
    except OSError as exc:
        raise TfedgeError(f"{str(target)!r} cannot be written ({exc.strerror or exc}): "
                          "choose another path") from exc
    kind = _kind_of(mode)
    if kind is not None:
        raise TfedgeError(f"{str(target)!r} exists and is {kind}, not a file: writing there "
                          "would replace it; choose a file path")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps ``path``'s suffix (or ``suffix``) because some
    writers (Keras' ``model.save``) choose the format from it. On error the
    temporary file is removed and ``path`` is left untouched.
    """
    target = check_replaceable_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=temporary_prefix(target), suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask sets it, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name; swap it into place on success.

    An existing directory at ``path`` is replaced only after the new one is
    complete, and is back in place if the swap fails. Callers check that
    replacing it is what the user wants (see ``tfedge.runtime.bundle``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))
    try:
        # mkdtemp makes a private (0700) folder: publish it as mkdir would.
        os.chmod(tmp, 0o777 & ~_current_umask())
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=temporary_prefix(target) + "old.",
                                        dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)  # put the previous folder back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _writer_is_gone(name: str, target_name: str) -> Optional[bool]:
    """Whether the process that made temporary ``name`` has exited (None: no PID in the name)."""
    match = _PID_MARK.match(name[len(target_name) + 2:])
    if match is None:
        return None
    return _process_is_gone(int(match.group(1)))


def _newest_mtime(candidate: Path) -> float:
    if candidate.is_dir() and not candidate.is_symlink():
        return max([candidate.lstat().st_mtime]
                   + [p.lstat().st_mtime for p in candidate.rglob("*")])
    return candidate.lstat().st_mtime


def remove_stale_temporaries(path: str | os.PathLike,
                             older_than_s: float = UNMARKED_TEMPORARY_SECONDS) -> list[Path]:
    """Delete the temporaries that killed writes left for ``path``; return what was removed.

    Candidates are hidden siblings named ``.NAME.*`` (files of :func:`atomic_path`,
    folders of :func:`atomic_directory`). One goes when the process named in it
    (``.NAME.pidPID.``) has exited, or, without a PID (older tfedge), when its
    newest entry is older than ``older_than_s``: a run still writing keeps touching it.
    """
    target = Path(path)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    now = time.time()
    for candidate in target.parent.glob(f".{glob.escape(target.name)}.*"):
        if candidate.is_symlink():
            continue
        gone = _writer_is_gone(candidate.name, target.name)
        if gone is None and not candidate.is_dir() and not _MKSTEMP_NAME.match(
                candidate.name[len(target.name) + 2:]):
            continue  # an unmarked file not named as tempfile names them: not ours
        if gone is None:
            try:
                gone = now - _newest_mtime(candidate) > older_than_s
            except OSError:
                continue
        if not gone:
            continue
        try:
            if candidate.is_dir():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
        except FileNotFoundError:
            continue  # another writer cleaned it first
        except OSError:
            continue  # not ours to fight over (permissions): leave it
        removed.append(candidate)
    return removed


#: Names of :func:`private_tempdir` folders: ``tfedge-PURPOSE.pidPID.XXXXXXXX``.
PRIVATE_TEMP_PREFIX = "tfedge-"
_PRIVATE_TEMP_NAME = re.compile(r"^tfedge-[a-z0-9_]+\.pid(\d+)\.")
_private_lock = threading.Lock()
_private_depth = 0


def _process_is_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False  # alive (another user's), or a number no process has: keep it
    return False


def remove_stale_private_tempdirs(base: str | os.PathLike) -> list[Path]:
    """Delete the :func:`private_tempdir` folders in ``base`` whose process has exited."""
    removed: list[Path] = []
    try:
        candidates = list(os.scandir(base))
    except OSError:
        return removed
    for entry in candidates:
        match = _PRIVATE_TEMP_NAME.match(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        if not _process_is_gone(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def private_tempdir(purpose: str) -> Iterator[Path]:
    """Send this process's :mod:`tempfile` files into a folder of its own while the block runs.

    TensorFlow and Keras write temporaries through :mod:`tempfile` (the
    converter's SavedModel export, AutoGraph's generated modules) and delete
    them at the end or at exit; a killed process leaves them in the temp dir
    for good. Inside this block they go to ``tfedge-PURPOSE.pidPID.XXXX`` in
    the temp dir instead, removed when the block ends; folders of killed
    processes (PID gone) are removed when the next block starts. Nested
    blocks share the outer folder. ``tempfile.tempdir`` is process-wide: a
    thread making temporaries meanwhile writes there too (and loses them at
    the end of the block), so use it around whole jobs, not in libraries'
    worker threads.
    """
    global _private_depth
    if not re.fullmatch(r"[a-z0-9_]+", purpose):
        raise ValueError(f"purpose must be lowercase letters, digits or '_', got {purpose!r}")
    with _private_lock:
        outer = _private_depth > 0
        if not outer:
            previous = tempfile.tempdir
            base = tempfile.gettempdir()
            remove_stale_private_tempdirs(base)
            folder = Path(tempfile.mkdtemp(
                prefix=f"{PRIVATE_TEMP_PREFIX}{purpose}.pid{os.getpid()}.", dir=base))
            tempfile.tempdir = str(folder)
        _private_depth += 1  # only once the folder exists: a failure above changes nothing
    if outer:
        try:
            yield Path(tempfile.gettempdir())
        finally:
            with _private_lock:
                _private_depth -= 1
        return
    try:
        yield folder
    finally:
        with _private_lock:
            _private_depth -= 1
            tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (files may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
