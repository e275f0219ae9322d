"""Run ``.tflite`` models with a LiteRT interpreter, without TensorFlow.

This module needs only numpy and an interpreter package: ``ai-edge-litert``
(preferred; numpy 2, XNNPACK for int8) or, on old systems, ``tflite-runtime``
(needs ``numpy<2``). It never imports TensorFlow, so the Raspberry Pi runner
and the bundle checks work on a device that has no TensorFlow at all.

Quantisation always comes from each tensor's own parameters (``real = scale *
(q - zero_point)``), for int8 and uint8 tensors alike, never from assumptions
about how the model was converted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .errors import TfedgeError

__all__ = [
    "TensorSpec", "TfliteModel", "load_interpreter", "interpreter_backend", "quantize",
    "dequantize", "InterpreterUnavailableError", "ModelLoadError", "ModelRunError",
    "invoke_checked", "INTEGER_DTYPES",
]

# The interpreter packages tried, in order: (module, pip name).
_BACKENDS = (("ai_edge_litert.interpreter", "ai-edge-litert"),
             ("tflite_runtime.interpreter", "tflite-runtime"))
INTEGER_DTYPES = ("int8", "uint8", "int16")
FLOAT_DTYPES = ("float32",)

ModelSource = Union[str, os.PathLike, bytes, bytearray]


class InterpreterUnavailableError(TfedgeError):
    """No LiteRT interpreter package is installed."""


class ModelLoadError(TfedgeError):
    """A ``.tflite`` file cannot be loaded or run."""


class ModelRunError(TfedgeError):
    """A loaded model failed on one input (e.g. an index computed from the input is out of
    range): that input's result is an error, the other inputs still run."""


def invoke_checked(interpreter: Any, name: str) -> None:
    """``interpreter.invoke()``, its failure a one-line :class:`ModelRunError` naming the model."""
    try:
        interpreter.invoke()
    except (RuntimeError, ValueError) as exc:  # what LiteRT raises when a kernel fails
        text = str(exc).strip().splitlines()
        detail = text[0] if text else exc.__class__.__name__
        raise ModelRunError(f"{name} failed on this input ({detail}): the model is broken for "
                            "such inputs; rebuild it with tfedge-convert") from exc


# --------------------------------------------------------------------------- (de)quantisation


def _round_half_away(values: np.ndarray) -> np.ndarray:
    # TFLite's kernels round half away from zero (std::round), numpy rounds half to even.
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Real values -> the integer tensor ``dtype`` (``q = round(x / scale) + zero_point``).

    Rounds half away from zero, as TFLite does, and clips to the dtype's range
    (a value outside the calibrated range saturates instead of wrapping). A
    float ``dtype`` returns ``x`` as that dtype unchanged.
    """
    try:
        dtype = np.dtype(dtype).name
    except TypeError:
        dtype = str(dtype)
    values = np.asarray(x, dtype=np.float64)
    if dtype in FLOAT_DTYPES:
        return values.astype(dtype)
    if dtype not in INTEGER_DTYPES:
        raise TfedgeError(f"cannot quantise to {dtype!r}: tensors must be one of "
                          f"{', '.join(INTEGER_DTYPES + FLOAT_DTYPES)}")
    if not np.isfinite(scale) or scale <= 0:
        raise TfedgeError(f"quantisation scale must be a positive number, got {scale}: the "
                          "tensor is not quantised (convert the model with full-integer "
                          "quantisation)")
    info = np.iinfo(dtype)
    q = _round_half_away(values / float(scale)) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """An integer tensor -> float32 real values (``scale * (q - zero_point)``).

    A scale of 0 marks a float tensor (TFLite's convention): its values are
    returned as float32 unchanged.
    """
    values = np.asarray(q)
    if scale == 0:
        return values.astype(np.float32)
    return (float(scale) * (values.astype(np.float64) - int(zero_point))).astype(np.float32)


# --------------------------------------------------------------------------- interpreter


def _interpreter_class() -> tuple[Any, str]:
    for module_name, _ in _BACKENDS:
        try:
            module = __import__(module_name, fromlist=["Interpreter"])
        except ImportError:
            continue
        interpreter = getattr(module, "Interpreter", None)
        if interpreter is not None:
            return interpreter, module_name.split(".")[0]
    raise InterpreterUnavailableError(
        "no LiteRT interpreter: pip install ai-edge-litert (or tflite-runtime on 32-bit/old "
        "systems)")


def interpreter_backend() -> str:
    """The name of the interpreter package :func:`load_interpreter` uses."""
    return _interpreter_class()[1]


def _describe(model: ModelSource) -> str:
    if isinstance(model, (bytes, bytearray)):
        return f"<{len(model)} bytes of model>"
    return str(model)


def load_interpreter(model: ModelSource, num_threads: int = 1):
    """A LiteRT interpreter for ``model`` (a path or the file's bytes), tensors allocated.

    Tries ``ai_edge_litert`` first, then ``tflite_runtime``.
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) \
            or num_threads < 1:
        raise TfedgeError(f"num_threads must be a whole number >= 1, got {num_threads!r}")
    interpreter_cls, backend = _interpreter_class()
    if isinstance(model, (bytes, bytearray)):
        kwargs: dict[str, Any] = {"model_content": bytes(model)}
    else:
        path = Path(model)
        if not path.is_file():
            raise ModelLoadError(f"model file {str(path)!r} does not exist: check the path "
                                 "(or the bundle it came from)")
        kwargs = {"model_path": str(path)}
    try:
        interpreter = interpreter_cls(num_threads=int(num_threads), **kwargs)
        interpreter.allocate_tensors()
    except (ImportError, AttributeError) as exc:
        # tflite-runtime built against numpy 1 imports under numpy 2, then fails here.
        raise InterpreterUnavailableError(
            f"the {backend} interpreter cannot start ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}): with tflite-runtime install "
            "'numpy<2', or pip install ai-edge-litert") from exc
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelLoadError(f"cannot load {_describe(model)} as a TFLite model ({first}): "
                             "rebuild it with tfedge-convert") from exc
    return interpreter


@dataclass(frozen=True)
class TensorSpec:
    """Shape, element type and quantisation of one model input or output.

    ``scale == 0`` (with ``zero_point == 0``) marks a float tensor.
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in INTEGER_DTYPES and self.scale > 0

    def to_json(self) -> dict[str, Any]:
        return {"shape": [int(s) for s in self.shape], "dtype": self.dtype,
                "scale": float(self.scale), "zero_point": int(self.zero_point)}

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> "TensorSpec":
        """The spec of a tensor from an interpreter's ``get_input_details()`` entry."""
        scale, zero_point = details.get("quantization", (0.0, 0))
        params = details.get("quantization_parameters") or {}
        scales = np.asarray(params.get("scales", []))
        if scales.size > 1:
            raise ModelLoadError(
                f"tensor {details.get('name')!r} is quantised per channel: model inputs and "
                "outputs must be quantised per tensor (convert with tfedge-convert)")
        return cls(shape=tuple(int(s) for s in details["shape"]),
                   dtype=np.dtype(details["dtype"]).name, scale=float(scale),
                   zero_point=int(zero_point))


class TfliteModel:
    """One ``.tflite`` model: its tensor specs, and float in -> float out inference.

    ``run`` quantises inputs and dequantises outputs with each tensor's own
    parameters, so the same code serves int8, uint8 and float models. A batch
    larger than the model's batch dimension runs one image at a time (the
    interpreter keeps its fixed shapes, which XNNPACK prefers).
    """

    def __init__(self, model: ModelSource, num_threads: int = 1):
        self.source = _describe(model)
        self.interpreter = load_interpreter(model, num_threads=num_threads)
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        self.input_specs = tuple(TensorSpec.from_details(d) for d in self._inputs)
        self.output_specs = tuple(TensorSpec.from_details(d) for d in self._outputs)

    def __repr__(self) -> str:
        return (f"TfliteModel({self.source}, inputs={list(self.input_specs)}, "
                f"outputs={list(self.output_specs)})")

    @property
    def input_spec(self) -> TensorSpec:
        """The spec of the model's only input."""
        if len(self.input_specs) != 1:
            raise ModelLoadError(f"{self.source} has {len(self.input_specs)} inputs: tfedge "
                                 "models take exactly one image tensor")
        return self.input_specs[0]

    @property
    def output_spec(self) -> TensorSpec:
        """The spec of the model's only output (see ``output_specs`` for several)."""
        if len(self.output_specs) != 1:
            raise ModelLoadError(f"{self.source} has {len(self.output_specs)} outputs: use "
                                 "run_all() and output_specs")
        return self.output_specs[0]

    # -- inference

    def _batches(self, x: np.ndarray) -> tuple[list[np.ndarray], bool]:
        """Split ``x`` into arrays of the input's exact shape; report whether it lacked a batch axis."""
        shape = self.input_spec.shape
        if x.shape == shape:
            return [x], False
        if x.ndim == len(shape) - 1 and (1,) + x.shape == shape:
            return [x[None]], True
        if x.ndim == len(shape) and shape[0] == 1 and x.shape[1:] == shape[1:]:
            return [x[i:i + 1] for i in range(x.shape[0])], False
        raise TfedgeError(f"{self.source} takes input of shape {list(shape)}, got "
                          f"{list(x.shape)}: resize the images to {list(shape[1:])}")

    def _invoke(self, q: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self._inputs[0]["index"], q)
        invoke_checked(self.interpreter, self.source)
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self._outputs]

    def run_raw_all(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every output, in its stored dtype, for an input already in the input's dtype."""
        x = np.asarray(x)
        spec = self.input_spec
        if x.dtype.name != spec.dtype:
            raise TfedgeError(f"{self.source} takes {spec.dtype} input, got {x.dtype.name}: use "
                              "run() to quantise float values")
        parts, unbatched = self._batches(x)
        outs = [self._invoke(p) for p in parts]
        merged = tuple(np.concatenate([o[k] for o in outs]) for k in range(len(self._outputs)))
        if unbatched:
            merged = tuple(m[0] for m in merged)
        return merged

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """The only output in its stored dtype (int8/uint8 codes), input already quantised."""
        _ = self.output_spec
        return self.run_raw_all(x)[0]

    def quantize_input(self, x: np.ndarray, *, quantized: Optional[bool] = None) -> np.ndarray:
        """``x`` in the input tensor's dtype.

        ``quantized=None`` decides by dtype: an array already in the input's
        integer dtype is taken as quantised codes, anything else (float pixels,
        uint8 pixels for an int8 model) as real values to quantise.
        """
        x = np.asarray(x)
        spec = self.input_spec
        if quantized is None:
            quantized = spec.dtype in INTEGER_DTYPES and x.dtype.name == spec.dtype
        if quantized:
            if x.dtype.name != spec.dtype:
                raise TfedgeError(f"quantized input must be {spec.dtype}, got {x.dtype.name}")
            return x
        if spec.dtype in INTEGER_DTYPES:
            return quantize(x, spec.scale, spec.zero_point, spec.dtype)
        return x.astype(spec.dtype)

    def run_all(self, x: np.ndarray, *, quantized: Optional[bool] = None) -> tuple[np.ndarray, ...]:
        """Every output as float32 real values (see :meth:`quantize_input` for ``x``)."""
        raw = self.run_raw_all(self.quantize_input(x, quantized=quantized))
        return tuple(dequantize(r, s.scale, s.zero_point) for r, s in zip(raw, self.output_specs))

    def run(self, x: np.ndarray, *, quantized: Optional[bool] = None) -> np.ndarray:
        """The only output as float32 real values.

        ``x``: ``(H, W, 3)``, ``(1, H, W, 3)`` or ``(N, H, W, 3)`` raw float
        pixels (quantised with the input's own scale and zero point), or codes
        already in the input's integer dtype.
        """
        _ = self.output_spec
        return self.run_all(x, quantized=quantized)[0]

