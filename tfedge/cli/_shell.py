"""What every tfedge training-side command-line tool shares: logging, error handling, exit codes.

The parsing, logging and exit codes are ``tfedge.runtime.commandline``'s (the
device runner uses that module directly): a subcommand's ``func`` returns an
exit code, and a :class:`~tfedge.TfedgeError` (bad input the user can fix) is
printed as one line, ``<prog>: error: <message>``, with exit status 2 and no
traceback; ``--debug`` shows the traceback. This module adds the user errors
in disguise (:func:`user_error_line`): an ``OSError`` that names a file (a
full disk, a path that cannot be written: the file and the system's reason
are what the user needs, not our stack) and an unreadable training image that
tf.data wrapped in its own exception.

Commands check their paths with :func:`check_output_file` and
:func:`check_input_file` before any long work, so a bad ``--output`` fails in
the first second, not after training, and a FIFO never blocks a reader.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Optional, Sequence

from .._errors import TfedgeError
from ..runtime.commandline import (EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
                                  add_common_flags)
from ..runtime.commandline import run_cli as _run_cli

__all__ = ["EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED", "add_common_flags",
           "check_input_file", "check_output_file", "description_of", "epochs_help",
           "optimizer_fields", "parse_macs", "run_cli", "user_error_line"]


def check_output_file(path: str | os.PathLike, flag: str, suffix: Optional[str] = None) -> Path:
    """``path`` as a Path if a file can be written there, else a one-line :class:`TfedgeError`.

    ``flag`` names the option in the message (``--output``); ``suffix`` is the
    extension the file must have (``.keras``). Refuses a folder, an existing
    FIFO or device, a parent that is a file, and a place this process cannot
    create files in (see :func:`tfedge.data._files.writable_file_problem`).
    """
    from ..data._files import writable_file_problem

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
    from ..data._files import not_a_regular_file

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


def run_cli(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` and run the chosen command; user errors end as one line, status 2.

    TensorFlow's chatter (its import notices, converter capture lists, "Assets written", INFO
    lines of its Python loggers) is hidden for every command unless ``--debug``
    (:mod:`tfedge._quiet`).
    """
    return _run_cli(parser, argv, translate=_disguised_user_error, prepare=_quiet_unless_debug)


def _quiet_unless_debug(args: argparse.Namespace) -> None:
    from .._quiet import quiet_tensorflow_import, quiet_tensorflow_loggers, set_debug

    set_debug(bool(getattr(args, "debug", False)))
    quiet_tensorflow_loggers()
    quiet_tensorflow_import()


def user_error_line(exc: BaseException) -> Optional[str]:
    """The one-line message of an error the user can fix, or None for a bug (keep its traceback).

    User-fixable: a :class:`TfedgeError`, an ``OSError`` naming its file (a
    full disk, a path that cannot be written), and an unreadable training
    image that ``tf.data`` wrapped in its own error. For tools that do not
    go through :func:`run_cli` (the benchmark scripts).
    """
    if isinstance(exc, TfedgeError):
        return " ".join(str(exc).splitlines())
    return _disguised_user_error(exc)


def _disguised_user_error(exc: BaseException) -> Optional[str]:
    if isinstance(exc, OSError):
        return _os_error_line(exc)
    return _unreadable_image_line(exc)


def _unreadable_image_line(exc: BaseException) -> Optional[str]:
    """The one-line message of an unreadable training image that tf.data wrapped, if it is one."""
    from ..data._tfdata import UNREADABLE_IMAGE

    for line in str(exc).splitlines():
        at = line.find(UNREADABLE_IMAGE)
        if at >= 0:
            return line[at:].removeprefix("tfedge: ")
    return None


def optimizer_fields(model: str, *, opt_out: str = "", **chosen) -> dict:
    """The optimiser fields of a training command: the flags the user set (None: unset) over
    the family recipe of a registry model trained from scratch
    (:func:`tfedge._train.recipe_with_choices`), saying on the log what the recipe chose
    and, with ``opt_out``, the flag that declines it."""
    import logging

    from .._train import describe_fields, recipe_with_choices

    fields = recipe_with_choices(model, chosen)
    from_recipe = {key: value for key, value in fields.items() if chosen.get(key) is None}
    if from_recipe:
        logging.getLogger("tfedge").info(
            "training %s from scratch with its family's recipe: %s (tfedge.FAMILY_RECIPES%s)",
            model, describe_fields(from_recipe),
            f"; {opt_out} for the default" if opt_out else "")
    return fields


def description_of(doc: str) -> str:
    """A module docstring's first paragraph as ``--help`` shows it (no reST ``literal`` marks)."""
    return doc.split("\n\n")[0].replace("``", "")


def epochs_help() -> str:
    """The help text of an ``--epochs`` flag that takes :func:`tfedge._train.parse_epochs`."""
    from .._train import AUTO_EPOCHS_CAP, AUTO_PATIENCE

    return (f"a number of epochs, or 'auto': stop when the validation score has not improved "
            f"for {AUTO_PATIENCE} epochs (at most {AUTO_EPOCHS_CAP}) and keep the best epoch's "
            "weights; 'auto:CAP', 'auto:CAP:PATIENCE' or 'auto:CAP:PATIENCE:MIN' set those (MIN: "
            "never stop before that epoch, for slow starters)")


_MAC_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmg]?)\s*$", re.IGNORECASE)
_MAC_SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
#: Below this an absolute count is surely a mistyped ratio (50 for 0.5): no CNN has so few MACs.
MIN_ABSOLUTE_MACS = 1000


def parse_macs(text: str, flag: str, of: str) -> float:
    """A MAC amount given on the command line: a ratio of ``of`` up to 1 (``0.5``) or a MAC
    count (``20000000``, ``20M``, ``2e7``, ``500k``, ``1.5G``).

    Returns the ratio (``<= 1``) or the count (``>= MIN_ABSOLUTE_MACS``); the caller
    multiplies a ratio by its reference. ``flag`` and ``of`` (e.g. ``"the base's MACs"``)
    name both in the errors, which also refuse the ambiguous middle (``50`` meant as 0.5).
    """
    match = _MAC_AMOUNT.match(str(text))
    if not match:
        raise TfedgeError(f"{flag} {text!r} is not a number: give a ratio of {of} (e.g. 0.5) "
                          "or a MAC count (e.g. 20M)")
    value = float(match.group(1)) * _MAC_SUFFIXES[match.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise TfedgeError(f"{flag} {text!r} must be above 0: e.g. 0.5 or 20M")
    if 1 < value < MIN_ABSOLUTE_MACS:
        raise TfedgeError(f"{flag} {text} is neither a ratio of {of} up to 1 nor a plausible "
                          "MAC count: write a ratio as 0.5 (not 50), a count as 20M")
    return value
