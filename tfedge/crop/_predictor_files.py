"""Predictor files: a ``.keras`` model written atomically with a JSON sidecar that says
what it is (format, spec, how to decode its output); a refiner's file loads as the pair."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from .._errors import TfedgeError
from .._train import read_sidecar, save_model_with_sidecar
from ._boxnet import predictor_spec_of

__all__ = ["PREDICTOR_FORMAT", "save_predictor", "load_predictor", "read_predictor_sidecar"]

PREDICTOR_FORMAT = "tfedge-predictor"


def save_predictor(model: Any, path: Union[str, os.PathLike], metadata: Optional[dict] = None) -> Path:
    """Write ``model`` as a ``.keras`` file atomically, with a JSON sidecar (format, spec, decode)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise TfedgeError(f"predictor files must end in .keras, got {str(path)!r}")
    spec = predictor_spec_of(model)
    meta = {"format": PREDICTOR_FORMAT, "version": 1, "model_name": model.name,
            "spec": spec.to_dict(), "resolution": spec.resolution,
            "output": "box_params (cy, cx, h, w) in [0, 1]; box = (cy - h/2, cx - w/2, "
                      "cy + h/2, cx + w/2) clipped to [0, 1] (tfedge.crop.decode_boxes)",
            "export": "convert tfedge.crop.predictor_export_model(model) to int8; decode its "
                      "outputs with tfedge.crop.geometry.decode_predictor_outputs"}
    meta.update(metadata or {})
    return save_model_with_sidecar(model, path, meta)


def read_predictor_sidecar(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The JSON written beside a predictor (``{}`` when there is none)."""
    return read_sidecar(path)


def load_predictor(path: Union[str, os.PathLike]) -> Any:
    """Load a predictor written by :func:`save_predictor` (checks that it is one).

    A refiner's file (:func:`tfedge.crop.train_refiner`) loads as a
    :class:`~tfedge.crop.RefinedPredictor`: the predictor its sidecar names
    plus the refiner.
    """
    from .._train import load_classifier

    path = Path(path)
    if not path.exists():
        raise TfedgeError(f"predictor file {str(path)!r} does not exist: train one with "
                          "'tfedge predictor train'")
    sidecar = read_predictor_sidecar(path)
    if sidecar.get("role") == "refiner":
        from ._refine import load_refined

        return load_refined(path, sidecar)
    model = load_classifier(path)
    predictor_spec_of(model)  # raises a clear error for a classifier passed by mistake
    return model
