"""tfedge.runtime: the device contract, importable with numpy, Pillow and a LiteRT interpreter.

Everything a device needs to run a tfedge bundle exactly as the training side
evaluated it, and nothing from the training side (no TensorFlow, no Keras, no
``tfedge.data``). The Raspberry Pi runner (``rpi_runner``) stands on this
package alone; the Android core mirrors it, held to it by the golden vectors
in ``tests/golden/``. The training side imports it; it imports nothing from
the training side (``tests/test_architecture.py`` enforces both).

Read in this order:

* :mod:`~tfedge.runtime.bundle`      the manifest (``docs/bundle.md``): schema, reader,
                                     writer-side checks, zip safety;
* :mod:`~tfedge.runtime.interpreter` a LiteRT interpreter, (de)quantisation with each
                                     tensor's own parameters;
* :mod:`~tfedge.runtime.preprocess`  frame -> quantised model input (bilinear, half-pixel);
* :mod:`~tfedge.runtime.boxes`       predictor outputs -> one normalised box;
* :mod:`~tfedge.runtime.geometry`    box -> crop window in frame pixels (numpy);
* :mod:`~tfedge.runtime.decision`    THE early-exit rule (criteria, thresholds,
                                     accumulation), per frame and in batches;
* :mod:`~tfedge.runtime.evaluate`    a bundle on a split of images, the reference route;
* :mod:`~tfedge.runtime.golden`      the plain-JSON array encoding of golden vectors;
* helpers: :mod:`~tfedge.runtime.errors`, :mod:`~tfedge.runtime.fileio` (atomic writes),
  :mod:`~tfedge.runtime.image` (one image decoder), :mod:`~tfedge.runtime.folder_entries`
  (what a folder entry is before it is opened: FIFOs, dangling and looping symlinks),
  :mod:`~tfedge.runtime.commandline` (exit codes and one-line errors of every command).

Names below load on first use, so ``import tfedge.runtime`` costs nothing but
the error classes.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import BundleError, DatasetError, ModelConfigError, TfedgeError

_LAZY = {
    # the bundle contract
    **{name: "tfedge.runtime.bundle" for name in (
        "Bundle", "StageEntry", "PredictorEntry", "FileEntry", "load_bundle", "write_bundle",
        "check_tensor_specs", "check_bundle_destination", "FORMAT_NAME", "FORMAT_VERSION")},
    # running models
    **{name: "tfedge.runtime.interpreter" for name in (
        "TensorSpec", "TfliteModel", "load_interpreter", "interpreter_backend", "quantize",
        "dequantize", "InterpreterUnavailableError", "ModelLoadError")},
    # pixels, boxes, crops
    "prepare_input": "tfedge.runtime.preprocess", "resize_window": "tfedge.runtime.preprocess",
    "quantize_pixels": "tfedge.runtime.preprocess",
    "decode_box": "tfedge.runtime.boxes", "predictor_values": "tfedge.runtime.boxes",
    "BOX_FORMATS": "tfedge.runtime.boxes",
    "CropConfig": "tfedge.runtime.geometry", "crop_window": "tfedge.runtime.geometry",
    "crop_and_resize": "tfedge.runtime.geometry", "resize_bilinear": "tfedge.runtime.geometry",
    "read_image": "tfedge.runtime.image", "ImageReadError": "tfedge.runtime.image",
    # the early-exit rule
    **{name: "tfedge.runtime.decision" for name in (
        "CRITERIA", "StageDecision", "decide_stage", "cascade_exits", "accumulate_logits",
        "criterion_scores", "simulate_cascade", "CascadeOutcome")},
    # a bundle on a split
    "evaluate_bundle": "tfedge.runtime.evaluate", "BundleEvaluation": "tfedge.runtime.evaluate",
}

__all__ = ["BundleError", "DatasetError", "ModelConfigError", "TfedgeError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfedge.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
