"""What kind of thing a path is, asked without ever blocking or raising.

A class folder can hold anything a file system can: a symlink looping onto
itself, a dangling symlink, a FIFO named ``x.jpg`` (opening it blocks until a
writer appears, forever), a socket or a device. Each must become a counted,
named skip, never a traceback or a hang; and an output path that is a folder
or a device must be refused before anything is written over it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

__all__ = ["DIRECTORY", "REGULAR_FILE", "OTHER", "entry_kind", "not_a_regular_file",
           "writable_file_problem"]

DIRECTORY = "directory"
REGULAR_FILE = "file"
OTHER = "other"

PathLike = Union[str, os.PathLike]


def _mode_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _stat_failure(exc: OSError, is_link: bool) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if is_link and exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "a dangling symlink (its target does not exist)"
    return f"cannot be read ({exc.strerror or exc})"


def entry_kind(entry: os.DirEntry) -> tuple[str, Optional[str]]:
    """``(DIRECTORY | REGULAR_FILE | OTHER, reason)`` of a directory entry, following symlinks.

    ``reason`` (None unless OTHER) says in words why the entry is not a
    file or folder: a symlink loop, a dangling symlink, a FIFO, a socket,
    a device. Never raises, never opens the entry. Plain entries cost no
    system call (the kind comes with the directory listing).
    """
    try:
        if entry.is_dir():
            return DIRECTORY, None
        if entry.is_file():
            return REGULAR_FILE, None
    except OSError as exc:  # is_dir/is_file raise on a symlink loop
        return OTHER, _stat_failure(exc, _is_symlink(entry))
    # Neither: a dangling symlink (is_dir/is_file say False on ENOENT), a FIFO, a socket, a device.
    try:
        return OTHER, _mode_name(entry.stat().st_mode)
    except OSError as exc:
        return OTHER, _stat_failure(exc, _is_symlink(entry))


def _is_symlink(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def not_a_regular_file(path: PathLike) -> Optional[str]:
    """Why ``path`` is not a regular file to read (None if it is one); never opens it.

    Checked before an image or box file is opened: ``open`` on a FIFO blocks.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return _stat_failure(exc, os.path.islink(path))
    return None if stat.S_ISREG(mode) else _mode_name(mode)


def writable_file_problem(path: PathLike) -> Optional[str]:
    """Why a file cannot be written (atomically) at ``path``, or None if it can.

    Refused: an empty path, a path that exists and is not a regular file (a
    folder, a FIFO, a device: an atomic rename would replace it), a parent
    that is a file, and a folder this process cannot create files in (tried
    for real with an empty temporary file, so read-only file systems and
    permissions are caught whoever runs it). Missing parent folders are fine:
    writers create them.
    """
    text = os.fspath(path)
    if not text:
        return "the path is empty: name a file"
    target = Path(text)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            mode = None  # a parent is a file: found below
        else:
            return _stat_failure(exc, os.path.islink(target))
    if mode is not None and stat.S_ISDIR(mode):
        return "it is a folder: name a file inside it"
    if mode is not None and not stat.S_ISREG(mode):
        return f"it exists and is {_mode_name(mode)}: name a new or regular file"
    ancestor = target.parent
    while True:
        try:
            ancestor_mode = os.stat(ancestor).st_mode
            break
        except FileNotFoundError:
            if ancestor.parent == ancestor:
                return "no existing folder above it: name a file in an existing folder"
            ancestor = ancestor.parent
        except OSError as exc:
            if exc.errno != errno.ENOTDIR:
                return f"{ancestor} {_stat_failure(exc, os.path.islink(ancestor))}"
            ancestor = ancestor.parent
    if not stat.S_ISDIR(ancestor_mode):
        return f"{ancestor} is not a folder: name a file inside a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".tfedge-write-check.", dir=ancestor)
    except OSError as exc:
        return f"cannot create files in {ancestor} ({exc.strerror or exc}): choose a writable place"
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None
