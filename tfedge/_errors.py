"""Moved to :mod:`tfedge.runtime.errors` (the TensorFlow-free device contract).

This import path stays for existing code. The module object *is*
``tfedge.runtime.errors`` (an alias in ``sys.modules``), so classes (errors
caught with ``except``), functions and test monkeypatches are the same
objects, never copies. New code imports ``tfedge.runtime.errors``.
"""

from __future__ import annotations

import sys

from .runtime import errors as _moved

sys.modules[__name__] = _moved
