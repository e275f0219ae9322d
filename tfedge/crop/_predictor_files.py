"""Predictor files: a ``.keras`` model written atomically with a JSON sidecar that says
what it is (format, spec, how to decode its output).

A refiner's file is a predictor file too (:func:`save_refiner`): its sidecar
names the predictor it refines (path, model name, SHA-256), its window and
passes, and :func:`load_predictor` on it returns the
:class:`~tfedge.crop.RefinedPredictor` pair.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from .._errors import TfedgeError
from .._io import sha256_file
from .._train import load_classifier, read_sidecar, save_model_with_sidecar
from ._boxnet import predictor_spec_of
from ._refined_predictor import REFINER_ROLE, RefinedPredictor
from .geometry import CropConfig

__all__ = ["PREDICTOR_FORMAT", "save_predictor", "load_predictor", "read_predictor_sidecar",
           "save_refiner", "load_refined"]

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
    path = Path(path)
    if not path.exists():
        raise TfedgeError(f"predictor file {str(path)!r} does not exist: train one with "
                          "'tfedge predictor train'")
    sidecar = read_predictor_sidecar(path)
    if sidecar.get("role") == REFINER_ROLE:
        return load_refined(path, sidecar)
    model = load_classifier(path)
    predictor_spec_of(model)  # raises a clear error for a classifier passed by mistake
    return model


# --------------------------------------------------------------------------- refiner files


def save_refiner(pair: RefinedPredictor, path: Union[str, os.PathLike],
                 predictor_path: Union[str, os.PathLike], metadata: Optional[dict] = None) -> Path:
    """Write ``pair.refiner`` like a predictor, its sidecar naming ``predictor_path``.

    The path is stored relative to the refiner's folder when it can be, so
    the two files move together.
    """
    path = Path(path)
    target = Path(predictor_path)
    _check_pairing(path, target)
    try:
        stored = os.path.relpath(target.resolve(), path.resolve().parent)
    except ValueError:  # another drive (Windows)
        stored = str(target.resolve())
    meta = {"role": REFINER_ROLE, "refines": stored, "refines_model": pair.predictor.name,
            "refines_sha256": sha256_file(target), "window": pair.window.to_dict(),
            "passes": pair.passes}
    meta.update(metadata or {})
    return save_predictor(pair.refiner, path, meta)


def _check_pairing(refiner_path: Path, predictor_path: Path) -> None:
    if not predictor_path.exists():
        raise TfedgeError(f"predictor file {str(predictor_path)!r} does not exist: save the "
                          "predictor before its refiner")
    if refiner_path.resolve() == predictor_path.resolve():
        raise TfedgeError(f"the refiner would overwrite its own predictor {str(predictor_path)!r}: "
                          "write the refiner to another file")


def _refines(path: Path, sidecar: dict[str, Any]) -> Optional[Path]:
    """The predictor file a refiner's sidecar names (None if it is not a refiner's)."""
    if sidecar.get("role") != REFINER_ROLE or not isinstance(sidecar.get("refines"), str):
        return None
    first = Path(sidecar["refines"])
    return first if first.is_absolute() else (path.resolve().parent / first).resolve()


def load_refined(path: Path, sidecar: dict[str, Any]) -> RefinedPredictor:
    """The pair a refiner file describes (called by :func:`load_predictor`)."""
    first = _refines(path, sidecar)
    if first is None:
        raise TfedgeError(f"{path}.json: a refiner's sidecar must name the predictor it refines "
                          "('refines'): train it again with 'tfedge predictor refine'")
    if not first.exists():
        raise TfedgeError(f"refiner {str(path)!r} refines {str(first)!r}, which does not exist: "
                          "put the predictor back there, or train the refiner again")
    if read_predictor_sidecar(first).get("role") == REFINER_ROLE:
        raise TfedgeError(f"refiner {str(path)!r} names a refiner ({first}) as its predictor: "
                          "a refiner refines a plain predictor; train it again")
    expected = sidecar.get("refines_sha256")
    if expected and sha256_file(first) != expected:
        raise TfedgeError(f"predictor {str(first)!r} changed after refiner {str(path)!r} was "
                          "trained on its boxes: train the refiner again ('tfedge predictor "
                          "refine')")
    predictor = load_predictor(first)
    expected = sidecar.get("refines_model")
    if expected and predictor.name != expected:
        raise TfedgeError(f"refiner {str(path)!r} was trained for predictor {expected!r}, but "
                          f"{str(first)!r} holds {predictor.name!r}: train the refiner again")
    refiner = load_classifier(path)
    predictor_spec_of(refiner)
    try:
        window = CropConfig.from_dict(dict(sidecar["window"]))
        passes = sidecar["passes"]
        if isinstance(passes, bool) or not isinstance(passes, int):
            raise TypeError(f"passes {passes!r} is not a whole number")
        return RefinedPredictor(predictor, refiner, window, passes, str(first))
    except (KeyError, TfedgeError, TypeError, ValueError) as exc:
        raise TfedgeError(f"{path}.json: invalid or missing window or passes ({exc}): train the "
                          "refiner again") from exc
