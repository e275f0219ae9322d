"""What every tfedge command-line tool shares, without TensorFlow: exit codes, one-line errors.

A tool builds an ``argparse`` parser whose subcommands set ``func`` (a
callable taking the parsed namespace and returning an exit code), then calls
:func:`run_cli`. A :class:`~tfedge.TfedgeError` (bad input the user can fix)
is printed as one line, ``<prog>: error: <message>``, with exit status 2 and
no traceback; ``--debug`` shows the traceback.

The device runner (``tfedge-pi``) uses this module directly. The training
tools' ``tfedge.cli._shell`` adds one thing on top: recognising an unreadable image
that tf.data wrapped in its own exception (``translate`` here).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Optional, Sequence

from .errors import TfedgeError

__all__ = ["EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED", "add_common_flags",
           "run_cli"]

EXIT_OK = 0
EXIT_FAILURE = 1  # the job ran and failed a check it was asked to make
EXIT_USAGE = 2  # bad input: the message says the fix
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="log more detail")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks (and TensorFlow's own logging)")


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ logging is noise for a command-line user; keep errors only.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None, *,
            translate: Optional[Callable[[BaseException], Optional[str]]] = None,
            prepare: Optional[Callable[[argparse.Namespace], None]] = None) -> int:
    """Parse ``argv``, run the chosen ``func``, and turn user errors into one line and status 2.

    ``translate(exc)``: for any other exception, a one-line message when it is
    really a user error in disguise (None: re-raise it).
    ``prepare(args)``: called once the arguments are parsed, before the command runs.
    """
    args = parser.parse_args(argv)
    if prepare is not None:
        prepare(args)
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
    except TfedgeError as exc:
        if debug:
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - only a translatable user error is caught
        line = translate(exc) if translate is not None else None
        if line is None or debug:
            raise
        print(f"{parser.prog}: error: {line}", file=sys.stderr)
        return EXIT_USAGE
