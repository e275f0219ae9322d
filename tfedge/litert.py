"""Moved to :mod:`tfedge.runtime.interpreter` (the TensorFlow-free device contract).

This import path stays for existing code. The module object *is*
``tfedge.runtime.interpreter`` (an alias in ``sys.modules``), so classes (errors
caught with ``except``), functions and test monkeypatches are the same
objects, never copies. New code imports ``tfedge.runtime.interpreter``.
"""

from __future__ import annotations

import sys

from .runtime import interpreter as _moved

sys.modules[__name__] = _moved
