"""Hide TensorFlow's console chatter (converter capture lists, oneDNN notices) unless debugging.

TensorFlow writes straight to the process's file descriptors, from C++ and from
Python ``print``: the oneDNN notice and the ``absl::InitializeLog`` warning at
import, and, for every int8 conversion, Keras' export summary ("Saved artifact
at ...", an ``Endpoint 'serve'`` block with one ``TensorSpec`` line per
captured variable: hundreds of lines), "Assets written", the converter's
``fully_quantize: 0, inference_type: 6 ...`` line and the ``Identity``
``Truncate`` attribute notice. ``TF_CPP_MIN_LOG_LEVEL`` hides only part of it.

:func:`quiet_tensorflow` silences file descriptors 1 and 2 around a block and
keeps what was written: when the block raises, the captured text goes to
stderr (the chatter may explain the failure); when it succeeds it is dropped.
With debugging on (:func:`set_debug`, the CLIs' ``--debug``, or
``TFEDGE_DEBUG=1``) nothing is hidden. Python ``logging`` records raised
inside the block are held back and re-emitted after it, so tfedge's own
progress lines are never lost.

    from tfedge._quiet import quiet_tensorflow
    with quiet_tensorflow():
        data = converter.convert()
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import tempfile
from typing import Any, Iterator, Optional

__all__ = ["quiet_tensorflow", "import_tensorflow_quietly", "quiet_tensorflow_loggers",
           "quiet_tensorflow_import", "set_debug", "debug_enabled"]

DEBUG_ENV = "TFEDGE_DEBUG"
#: At most this much captured text is replayed to stderr after a failure.
MAX_REPLAY_BYTES = 20000

_debug = False


def set_debug(enabled: bool) -> None:
    """Show (True) or hide (False) TensorFlow's chatter for the rest of the process."""
    global _debug
    _debug = bool(enabled)


def debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class _HoldRecords(logging.Handler):
    """Collects log records during a quiet block, to emit them after it."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: Loggers whose INFO and WARNING records inside a quiet block are chatter ("Assets written
#: to ...", absl's notices); their errors are kept.
_CHATTY_LOGGERS = ("absl", "tensorflow", "keras", "h5py")


def _keep(record: logging.LogRecord) -> bool:
    chatty = any(record.name == n or record.name.startswith(n + ".") for n in _CHATTY_LOGGERS)
    return not chatty or record.levelno >= logging.ERROR


@contextlib.contextmanager
def quiet_tensorflow(enabled: bool = True) -> Iterator[None]:
    """Silence stdout and stderr at the file-descriptor level for the block (see the module doc).

    enabled: False (or debugging on) makes this a no-op.
    """
    if not enabled or debug_enabled():
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:  # no real descriptors (an embedded interpreter): nothing to hide
        yield
        return
    root = logging.getLogger()
    held = _HoldRecords()
    # Our own log lines would go to the silenced stderr: hold them, replay after.
    old_handlers = root.handlers[:]
    root.handlers = [held]
    failed = False
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        except BaseException:
            failed = True
            raise
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            root.handlers = old_handlers
            if failed:
                sink.seek(0)
                text = sink.read()[-MAX_REPLAY_BYTES:].decode("utf-8", "replace")
                if text.strip():
                    sys.stderr.write(text if text.endswith("\n") else text + "\n")
            for record in held.records:
                if _keep(record):
                    root.handle(record)


def import_tensorflow_quietly():
    """``import tensorflow`` without its oneDNN and absl notices (unless debugging); the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_tensorflow():
        import tensorflow as tf
    return tf


def quiet_tensorflow_loggers() -> None:
    """Keep only warnings from TensorFlow's Python loggers (unless debugging).

    TensorFlow logs INFO lines through Python logging, e.g. "Sharding callback
    duration: 96 microseconds" at every checkpoint the training engine's
    per-epoch backup writes; a command that logs its own progress at INFO
    would otherwise pass them on.
    """
    if debug_enabled():
        return
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) too: it would inherit INFO
            logger.setLevel(logging.WARNING)


class _QuietLoader(importlib.abc.Loader):
    """The real loader of ``tensorflow``, running its module code inside :func:`quiet_tensorflow`."""

    def __init__(self, real: Any):
        self._real = real

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module) -> None:
        with quiet_tensorflow():
            self._real.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like: the real loader's
        return getattr(self._real, name)


class _QuietTensorflowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the path finder does, with a loader that imports it quietly."""

    def find_spec(self, name: str, path: Any = None, target: Any = None
                  ) -> Optional[importlib.machinery.ModuleSpec]:
        if name != "tensorflow" or debug_enabled():
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Hide the notices TensorFlow prints when it is first imported (oneDNN, absl's
    ``InitializeLog`` warning), wherever that import happens, unless debugging.

    ``TF_CPP_MIN_LOG_LEVEL`` does not hide them: they are written before TensorFlow's
    logging reads it. The command-line tools call this once at start; TensorFlow itself is
    still imported only when a command needs it.
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorflowFinder)
                                          for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorflowFinder())
