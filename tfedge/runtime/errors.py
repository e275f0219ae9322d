"""User-facing errors.

Every error a user can cause (a missing dataset, a malformed file, an unknown
model name) is a :class:`TfedgeError`. Its message names the problem and the
fix on one line; the command-line tools print it without a traceback and exit
with status 2.
"""

from __future__ import annotations

__all__ = ["TfedgeError", "DatasetError", "ModelConfigError", "BundleError"]


class TfedgeError(ValueError):
    """Bad input that the user can fix; the message says how."""


class DatasetError(TfedgeError):
    """A dataset is missing, malformed or inconsistent."""


class ModelConfigError(TfedgeError):
    """A model name, knob or resolution is not valid."""


class BundleError(TfedgeError):
    """A deployment bundle is malformed, altered or incompatible."""
