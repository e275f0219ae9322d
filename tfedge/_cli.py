"""What every tfedge command-line tool shares: logging, error handling, exit codes.

A tool builds an ``argparse`` parser whose subcommands set ``func`` (a
callable taking the parsed namespace and returning an exit code), then calls
:func:`run_cli`. A :class:`~tfedge.TfedgeError` (bad input the user can fix)
is printed as one line, ``<prog>: error: <message>``, with exit status 2 and
no traceback; ``--debug`` shows the traceback. So is an ``OSError`` that
names a file (a full disk, a path that cannot be written): the file and the
system's reason are what the user needs, not our stack.

Commands check their output paths with :func:`check_output_file` before any
long work, so a bad ``--output`` fails in the first second, not after training.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from ._errors import TfedgeError

__all__ = ["EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED", "add_common_flags",
           "check_input_file", "check_output_file", "run_cli", "user_error_line"]

EXIT_OK = 0
EXIT_FAILURE = 1  # the job ran and failed a check it was asked to make
EXIT_USAGE = 2  # bad input: the message says the fix
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="log more detail")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks (and TensorFlow's own logging)")


def check_output_file(path: str | os.PathLike, flag: str, suffix: Optional[str] = None) -> Path:
    """``path`` as a Path if a file can be written there, else a one-line :class:`TfedgeError`.

    ``flag`` names the option in the message (``--output``); ``suffix`` is the
    extension the file must have (``.keras``). Refuses a folder, an existing
    FIFO or device, a parent that is a file, and a place this process cannot
    create files in (see :func:`tfedge.data._files.writable_file_problem`).
    """
    from .data._files import writable_file_problem

    text = os.fspath(path)
    if suffix is not None and Path(text).suffix != suffix:
        raise TfedgeError(f"{flag} must end in {suffix}, got {text!r}")
    problem = writable_file_problem(text)
    if problem is not None:
        raise TfedgeError(f"{flag} {text!r} cannot be written: {problem}")
    return Path(text)


def check_input_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a Path, unless it exists and is not a regular file (a one-line error).

    A FIFO given as a model file would block its reader forever; a folder or a
    symlink loop gives a loader's traceback. A missing path is left to the
    loader, whose message says how to make the file.
    """
    from .data._files import not_a_regular_file

    text = os.fspath(path)
    if os.path.lexists(text):
        problem = not_a_regular_file(text)
        if problem is not None:
            raise TfedgeError(f"{flag} {text!r} is {problem}: pass a regular file")
    return Path(text)


def _os_error_line(exc: OSError) -> Optional[str]:
    """One line for an OSError that names its file (None for one that names none: a bug)."""
    if exc.filename is None or not exc.strerror:
        return None
    names = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{names}: {exc.strerror}"


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ logging is noise for a command-line user; keep errors only.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if not debug:
        _quiet_tensorflow()
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(message)s", stream=sys.stderr)
    func: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - only user-fixable errors are caught (user_error_line)
        line = user_error_line(exc)
        if line is None or debug:
            raise
        print(f"{parser.prog}: error: {line}", file=sys.stderr)
        return EXIT_USAGE


def user_error_line(exc: BaseException) -> Optional[str]:
    """The one-line message of an error the user can fix, or None for a bug (keep its traceback).

    User-fixable: a :class:`TfedgeError`, an ``OSError`` naming its file (a
    full disk, a path that cannot be written), and an unreadable training
    image that ``tf.data`` wrapped in its own error.
    """
    if isinstance(exc, TfedgeError):
        return " ".join(str(exc).split("\n"))
    if isinstance(exc, OSError):
        return _os_error_line(exc)
    return _unreadable_image_line(exc)


def _unreadable_image_line(exc: BaseException) -> Optional[str]:
    """The one-line message of an unreadable training image that tf.data wrapped, if it is one."""
    from .data._pipeline import UNREADABLE_IMAGE

    for line in str(exc).splitlines():
        at = line.find(UNREADABLE_IMAGE)
        if at >= 0:
            return line[at:].removeprefix("tfedge: ")
    return None
