"""Resolution surgery: the same weights at a new input size.

Works on a functional model with one fixed-size image input: the input's
``batch_shape`` is edited in the config, the model rebuilt and every weight
copied. A layer whose weights depend on the spatial size (a Dense after a
Flatten of a feature map, a Reshape of fixed spatial size) cannot follow and
stops with :class:`ShrinkError` naming it. A registry model (its name encodes
its architecture, see :func:`tfedge.models.spec_of`) gets the name of the
same architecture at the new resolution; saved with
:func:`tfedge._train.save_classifier`, the sidecar's ``resolution`` comes
from the model's input, so both stay consistent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._groups import ShrinkError

__all__ = ["set_resolution", "renamed_for_resolution", "total_stride", "allowed_sides"]


def renamed_for_resolution(name: str, size: int) -> str:
    """``name`` with its encoded resolution replaced, for registry names (marked shrunk when the
    family does not accept that size); other names unchanged."""
    from .._errors import ModelConfigError
    from ..models._specs import MODEL_NAME_SEPARATOR, is_spec_name, spec_from_name
    from ._surgery import shrunk_name

    if not is_spec_name(name):
        return name
    try:
        spec = dataclasses.replace(spec_from_name(name), resolution=int(size))
    except ModelConfigError:  # a size the family's builder refuses: no registry name fits
        return shrunk_name(name)
    head, sep, _ = name.rpartition(MODEL_NAME_SEPARATOR)
    return f"{head}{sep}{spec.name}"


def set_resolution(model: Any, size: int) -> Any:
    """A new model taking ``size x size`` images, with the same layers and weights."""
    from ..graph import ModelGraph

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"resolution must be a positive integer, got {size!r}")
    graph = ModelGraph.from_model(model)
    if len(graph.inputs) != 1:
        raise ShrinkError(f"model {model.name!r} has {len(graph.inputs)} inputs: set_resolution "
                          "needs one image input")
    shape = graph.shape(graph.inputs[0])
    if len(shape) != 4:
        raise ShrinkError(f"model {model.name!r} input has shape {shape}: set_resolution needs "
                          "(batch, height, width, channels)")
    config = graph.editable_config()
    input_name = graph.inputs[0].layer
    for entry in config["layers"]:
        if entry["config"]["name"] == input_name:
            entry["config"]["batch_shape"] = [shape[0], size, size, shape[3]]
    try:
        new = graph.rebuild(config)
    except Exception as exc:  # Keras raises many types for a shape that does not fit
        raise ShrinkError(f"model {model.name!r} cannot take {size}x{size} inputs "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    new.name = renamed_for_resolution(model.name, size)
    for layer in new.layers:
        if not layer.weights:
            continue
        old = model.get_layer(layer.name)
        for w_new, w_old in zip(layer.weights, old.weights):
            if tuple(w_new.shape) != tuple(w_old.shape):
                raise ShrinkError(
                    f"layer {layer.name!r} ({type(layer).__name__}) has weights of shape "
                    f"{tuple(w_old.shape)} that depend on the input size: at {size}x{size} it "
                    f"needs {tuple(w_new.shape)}; use global pooling before it")
        layer.set_weights(old.get_weights())
    return new


def total_stride(model: Any) -> int:
    """How many input pixels one pixel of the network's coarsest feature map spans (a power of 2).

    Input side over the smallest spatial side of any layer output, rounded to
    the nearest power of two (``same`` padding rounds feature maps up, so a
    64 px input of a stride-32 network ends at 2x2 and a 48 px one also at
    2x2). Sides that are multiples of it keep every downsampling exact.
    """
    import math

    from .._train import model_resolution

    side = model_resolution(model)
    smallest = side
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # multi-output or unbuilt layers: not feature maps
            continue
        if len(shape) == 4 and shape[1]:
            smallest = min(smallest, int(shape[1]))
    return int(2 ** round(math.log2(side / max(1, smallest))))


def allowed_sides(current: int, minimum: int, multiple: int) -> list[int]:
    """The input sides below ``current`` a resolution step may choose, ascending: multiples of
    ``multiple`` (1: any side) from ``minimum`` up."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple!r}")
    first = -(-max(1, minimum) // multiple) * multiple
    return list(range(first, current, multiple))
