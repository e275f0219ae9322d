"""What a folder entry really is, before anything opens it: the runner's own scan.

A folder of images can hold anything a file system can: a FIFO named
``x.jpg`` (opening it blocks until a writer comes), a symlink whose target is
gone, a symlink loop (``stat`` fails with ELOOP), a device. The runner skips
those, and counts them by :data:`SKIP_KINDS` so its summary says what it left
out instead of skipping silently. (The training side has its own scan in
``tfedge.data``; the runtime imports nothing from there.)
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional, Union

__all__ = ["SKIP_KINDS", "entry_skip_kind"]

#: Why an entry that looks like an image (by its name) is not read, as summary keys.
SKIP_KINDS = ("fifo", "dangling_symlink", "symlink_loop", "device", "socket", "folder",
              "unreadable")


def entry_skip_kind(path: Union[str, os.PathLike]) -> Optional[str]:
    """None when ``path`` is (or links to) a regular file; else one of :data:`SKIP_KINDS`.

    Only ``stat`` and ``lstat`` are called: nothing is opened.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink_loop"
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            is_link = False
        if is_link and exc.errno == errno.ENOENT:
            return "dangling_symlink"
        return "unreadable"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISDIR(mode):
        return "folder"
    return "unreadable"
