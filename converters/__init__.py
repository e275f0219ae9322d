"""tfedge-convert: Keras classifiers -> full-integer int8 ``.tflite`` -> deployment bundle.

The command-line tool lives in :mod:`tfedge.cli.convert` (``converters.cli`` re-exports it); the conversion itself is
library code in :mod:`tfedge._convert` and the bundle format in
:mod:`tfedge.runtime.bundle`.
"""

__all__: list[str] = []
