"""Multiply-accumulate (MAC) and parameter counting, without running the model.

What is counted in ``macs`` (the convention of the published figures:
ResNet-50 4.1 G, ResNet-18 1.8 G, MobileNetV2 300 M at 224 px):

* convolutions (1D/2D/3D, grouped): ``prod(out_spatial) * prod(kernel) *
  (C_in / groups) * C_out``;
* depthwise convolutions: ``prod(out_spatial) * prod(kernel) * C_in *
  depth_multiplier``;
* separable convolutions: the depthwise part plus the 1x1 pointwise part;
* transposed convolutions: ``prod(in_spatial) * prod(kernel) * C_in * C_out``
  (every input pixel is scattered through the whole kernel);
* dense layers: ``in_features * units`` per position (times any leading
  non-batch dimensions).

Not in ``macs`` but in ``elementwise_ops`` (one op per output element, a rough
measure that int8 deployment mostly folds away): biases, fused activations,
BatchNorm and other normalisations, activation layers, pooling (``pool
window`` ops per output, or one per input element for global pooling), merges
(``n_inputs - 1`` per output element) and rescaling. Layers that hold weights
but are none of the above are listed in ``uncounted`` (their parameters are
still counted). ``params`` follows Keras' ``count_params`` (BatchNorm moving
statistics included); ``trainable_params`` is what the published parameter
counts report.

The counter walks the functional graph as :class:`tfedge.graph.ModelGraph`
reads it: every call of every layer (shapes come from the symbolic tensors of
that call), recursing into nested models at the shapes they are called with.
The pure ``*_macs`` functions do the arithmetic and are unit tested.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from tfedge._errors import ModelConfigError

__all__ = [
    "LayerMacs",
    "MacReport",
    "count_macs",
    "macs_of",
    "conv_macs",
    "conv2d_macs",
    "depthwise_conv2d_macs",
    "separable_conv2d_macs",
    "conv2d_transpose_macs",
    "dense_macs",
    "SpecCost",
    "estimate_spec",
]

_MEGA = 1e6
_GIGA = 1e9


# --------------------------------------------------------------------------- pure arithmetic

def _pos(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def conv_macs(out_spatial: Sequence[int], kernel: Sequence[int], c_in: int, c_out: int,
              groups: int = 1) -> int:
    """MACs of an N-D convolution: ``prod(out_spatial) * prod(kernel) * c_in/groups * c_out``."""
    c_in, c_out, groups = _pos(c_in, "c_in"), _pos(c_out, "c_out"), _pos(groups, "groups")
    if c_in % groups or c_out % groups:
        raise ModelConfigError(
            f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    positions = math.prod(_pos(v, "output size") for v in out_spatial)
    taps = math.prod(_pos(k, "kernel size") for k in kernel)
    return positions * taps * (c_in // groups) * c_out


def conv2d_macs(out_h: int, out_w: int, k_h: int, k_w: int, c_in: int, c_out: int,
                groups: int = 1) -> int:
    """MACs of a 2-D convolution: ``out_h * out_w * k_h * k_w * (c_in / groups) * c_out``."""
    return conv_macs((out_h, out_w), (k_h, k_w), c_in, c_out, groups)


def depthwise_conv2d_macs(out_h: int, out_w: int, k_h: int, k_w: int, c_in: int,
                          depth_multiplier: int = 1) -> int:
    """MACs of a depthwise 2-D conv: ``out_h * out_w * k_h * k_w * c_in * depth_multiplier``."""
    m = _pos(depth_multiplier, "depth_multiplier")
    return conv_macs((out_h, out_w), (k_h, k_w), c_in, c_in * m, groups=c_in)


def separable_conv2d_macs(out_h: int, out_w: int, k_h: int, k_w: int, c_in: int, c_out: int,
                          depth_multiplier: int = 1) -> int:
    """Depthwise ``k_h x k_w`` conv plus pointwise 1x1 conv from ``c_in * depth_multiplier``."""
    dw = depthwise_conv2d_macs(out_h, out_w, k_h, k_w, c_in, depth_multiplier)
    return dw + conv2d_macs(out_h, out_w, 1, 1, c_in * depth_multiplier, c_out)


def conv2d_transpose_macs(in_h: int, in_w: int, k_h: int, k_w: int, c_in: int,
                          c_out: int) -> int:
    """MACs of a transposed 2-D conv: ``in_h * in_w * k_h * k_w * c_in * c_out``."""
    return conv_macs((in_h, in_w), (k_h, k_w), c_in, c_out)


def dense_macs(in_features: int, units: int, positions: int = 1) -> int:
    """MACs of a dense layer applied at ``positions`` places: ``positions * in * units``."""
    return _pos(positions, "positions") * _pos(in_features, "in_features") * _pos(units, "units")


# --------------------------------------------------------------------------- specs, no Keras

@dataclass(frozen=True)
class SpecCost:
    """MACs and trainable parameters of a spec, computed without building it."""

    macs: int
    trainable_params: int


_BN_PARAMS_PER_CHANNEL = 2  # gamma and beta (moving statistics are not trainable)


class _Tally:
    def __init__(self) -> None:
        self.macs = 0
        self.params = 0

    def conv(self, out_hw: int, k: int, c_in: int, c_out: int, groups: int = 1) -> None:
        """A bias-free square conv followed by BatchNorm."""
        self.macs += conv_macs((out_hw, out_hw), (k, k), c_in, c_out, groups)
        self.params += k * k * (c_in // groups) * c_out + _BN_PARAMS_PER_CHANNEL * c_out

    def dense(self, c_in: int, units: int) -> None:
        self.macs += dense_macs(c_in, units)
        self.params += c_in * units + units


def estimate_spec(spec: Any) -> SpecCost:
    """MACs and trainable parameters of a ResNet/MobileNetV2/EfficientNet-Lite spec, in pure Python.

    Mirrors the builders layer by layer (a test checks it against
    :func:`count_macs` on built models), so a shrinking search can price
    thousands of candidate specs in milliseconds without TensorFlow.
    """
    from tfedge.models._specs import EfficientNetLiteSpec, MobileNetV2Spec, ResNetSpec

    t = _Tally()
    if isinstance(spec, ResNetSpec):
        hw = spec.resolution
        if spec.stem == "imagenet":
            hw //= 2
            t.conv(hw, 7, 3, spec.stem_width)
            hw //= 2  # 3x3/2 max-pool
        else:
            t.conv(hw, 3, 3, spec.stem_width)
        c = spec.stem_width
        for depth, width, stride in zip(spec.stage_depths, spec.stage_widths,
                                        spec.stage_strides):
            out_c = width * spec.block_expansion
            for b in range(depth):
                s = stride if b == 0 else 1
                out_hw = hw // s
                if s != 1 or c != out_c:
                    t.conv(out_hw, 1, c, out_c)
                if spec.block == "basic":
                    t.conv(out_hw, 3, c, width)
                    t.conv(out_hw, 3, width, out_c)
                else:
                    t.conv(hw, 1, c, width)
                    t.conv(out_hw, 3, width, width)
                    t.conv(out_hw, 1, width, out_c)
                hw, c = out_hw, out_c
    elif isinstance(spec, MobileNetV2Spec):
        hw = spec.resolution // 2
        c = spec.resolved_stem_width
        t.conv(hw, 3, 3, c)
        for depth, width, stride, expansion in zip(
                spec.stage_depths, spec.resolved_stage_widths, spec.stage_strides,
                spec.stage_expansions):
            for b in range(depth):
                out_hw = hw // (stride if b == 0 else 1)
                hidden = c * expansion
                if expansion != 1:
                    t.conv(hw, 1, c, hidden)
                t.conv(out_hw, 3, hidden, hidden, groups=hidden)
                t.conv(out_hw, 1, hidden, width)
                hw, c = out_hw, width
        t.conv(hw, 1, c, spec.resolved_last_width)
        c = spec.resolved_last_width
    elif isinstance(spec, EfficientNetLiteSpec):
        hw = spec.resolution // 2
        c = spec.stem_width
        t.conv(hw, 3, 3, c)
        for depth, width, stride, kernel, expansion in zip(
                spec.stage_depths, spec.stage_widths, spec.stage_strides, spec.stage_kernels,
                spec.stage_expansions):
            for b in range(depth):
                out_hw = hw // (stride if b == 0 else 1)
                hidden = c * expansion
                if expansion != 1:
                    t.conv(hw, 1, c, hidden)
                t.conv(out_hw, kernel, hidden, hidden, groups=hidden)
                t.conv(out_hw, 1, hidden, width)
                hw, c = out_hw, width
        t.conv(hw, 1, c, spec.head_width)
        c = spec.head_width
    else:
        raise ModelConfigError(
            "estimate_spec needs a ResNetSpec, MobileNetV2Spec or EfficientNetLiteSpec, got "
            f"{type(spec).__name__}")
    t.dense(c, spec.num_classes)
    return SpecCost(macs=t.macs, trainable_params=t.params)


# --------------------------------------------------------------------------- report

@dataclass(frozen=True)
class LayerMacs:
    """One layer call: its MACs and parameters (a layer called twice appears twice,
    its parameters only the first time)."""

    name: str
    type: str
    macs: int
    params: int


@dataclass(frozen=True)
class MacReport:
    """MACs and parameters of a model; see the module docstring for what is counted."""

    macs: int
    params: int
    trainable_params: int
    per_layer: tuple[LayerMacs, ...]
    elementwise_ops: int
    uncounted: tuple[str, ...] = ()

    @property
    def mmacs(self) -> float:
        """MACs in millions."""
        return self.macs / _MEGA

    @property
    def gmacs(self) -> float:
        """MACs in billions."""
        return self.macs / _GIGA

    @property
    def mparams(self) -> float:
        """Trainable parameters in millions (the published convention)."""
        return self.trainable_params / _MEGA

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (per-layer rows as dicts)."""
        out = asdict(self)
        out["per_layer"] = [asdict(row) for row in self.per_layer]
        out["uncounted"] = list(self.uncounted)
        return out

    def summary(self, top: int | None = None) -> str:
        """A plain-text table of the layers with the most MACs (all if ``top`` is None)."""
        rows = sorted((r for r in self.per_layer if r.macs or r.params),
                      key=lambda r: -r.macs)[:top]
        width = max([len(r.name) for r in rows] + [5])
        lines = [f"{'layer':<{width}}  {'type':<22} {'MMACs':>10} {'params':>10}"]
        lines += [f"{r.name:<{width}}  {r.type:<22} {r.macs / _MEGA:>10.3f} {r.params:>10d}"
                  for r in rows]
        lines.append(f"total: {self.mmacs:.3f} MMACs, {self.trainable_params:,} trainable "
                     f"parameters ({self.params:,} with BatchNorm statistics)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- graph walk

def _dims(shape: Any, layer_name: str) -> tuple[int, ...]:
    """Non-batch dimensions of a symbolic shape, all known."""
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise ModelConfigError(
            f"layer {layer_name!r} has an unknown size in shape {tuple(shape)}: build the model "
            "with a fixed input resolution to count its MACs")
    return tuple(int(d) for d in dims)


def _split_channels(dims: tuple[int, ...], data_format: str) -> tuple[tuple[int, ...], int]:
    if data_format == "channels_first":
        return dims[1:], dims[0]
    return dims[:-1], dims[-1]


def _elements(dims: Iterable[int]) -> int:
    return math.prod(dims)


class _Counter:
    def __init__(self) -> None:
        import keras

        L = keras.layers
        self.keras = keras
        self.depthwise = tuple(c for c in (getattr(L, "DepthwiseConv1D", None),
                                           getattr(L, "DepthwiseConv2D", None)) if c)
        self.separable = tuple(c for c in (getattr(L, "SeparableConv1D", None),
                                           getattr(L, "SeparableConv2D", None)) if c)
        self.transpose = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
        self.conv = (L.Conv1D, L.Conv2D, L.Conv3D)
        self.norm = tuple(c for c in (L.BatchNormalization, L.LayerNormalization,
                                      getattr(L, "GroupNormalization", None),
                                      getattr(L, "RMSNormalization", None),
                                      getattr(L, "UnitNormalization", None)) if c)
        self.activation = (L.ReLU, L.Activation, L.Softmax, L.LeakyReLU, L.PReLU, L.ELU)
        self.pool = (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D,
                     L.AveragePooling2D, L.AveragePooling3D)
        self.global_pool = (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
                            L.GlobalAveragePooling3D, L.GlobalMaxPooling1D,
                            L.GlobalMaxPooling2D, L.GlobalMaxPooling3D)
        self.merge = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
        self.affine = (L.Rescaling, L.Normalization)
        self.rows: list[LayerMacs] = []
        self.elementwise = 0
        self.uncounted: list[str] = []
        self.seen: set[int] = set()

    def _params_once(self, layer: Any) -> int:
        if id(layer) in self.seen:
            return 0
        self.seen.add(id(layer))
        return int(layer.count_params()) if layer.weights else 0

    def walk(self, graph: Any, prefix: str) -> None:
        for node in graph.nodes:
            if node.is_input or not node.output_shapes:
                continue
            name = prefix + node.layer
            if graph.is_nested(node):
                # a backbone built for any input size is counted at this call's shapes
                self.walk(graph.nested(node), name + "/")
                continue
            layer = graph.layer(node.layer)
            if not isinstance(layer, self.keras.layers.Layer):
                continue  # a bare keras.ops call inside a functional graph: no weights
            ins = [_dims(s, name) for s in node.input_shapes]
            outs = [_dims(s, name) for s in node.output_shapes]
            macs = self._layer(layer, name, ins, outs)
            self.rows.append(LayerMacs(name, type(layer).__name__, macs,
                                       self._params_once(layer)))

    def _bias_and_activation(self, layer: Any, out: tuple[int, ...]) -> None:
        n = _elements(out)
        if getattr(layer, "use_bias", False):
            self.elementwise += n
        act = getattr(layer, "activation", None)
        if act is not None and getattr(act, "__name__", "linear") != "linear":
            self.elementwise += n

    def _layer(self, layer: Any, name: str, ins: list[tuple[int, ...]],
               outs: list[tuple[int, ...]]) -> int:
        out = outs[0]
        fmt = getattr(layer, "data_format", "channels_last")
        if isinstance(layer, self.depthwise + self.separable + self.transpose + self.conv):
            in_spatial, c_in = _split_channels(ins[0], fmt)
            out_spatial, c_out = _split_channels(out, fmt)
            kernel = tuple(layer.kernel_size)
            if isinstance(layer, self.depthwise):
                macs = conv_macs(out_spatial, kernel, c_in, c_in * layer.depth_multiplier,
                                 groups=c_in)
            elif isinstance(layer, self.separable):
                mid = c_in * layer.depth_multiplier
                macs = (conv_macs(out_spatial, kernel, c_in, mid, groups=c_in)
                        + conv_macs(out_spatial, (1,) * len(kernel), mid, c_out))
            elif isinstance(layer, self.transpose):
                macs = conv_macs(in_spatial, kernel, c_in, c_out)
            else:
                macs = conv_macs(out_spatial, kernel, c_in, c_out, getattr(layer, "groups", 1))
            self._bias_and_activation(layer, out)
            return macs
        if isinstance(layer, self.keras.layers.Dense):
            positions = _elements(ins[0][:-1])
            self._bias_and_activation(layer, out)
            return dense_macs(ins[0][-1], layer.units, positions)
        if isinstance(layer, self.norm + self.activation + self.affine):
            self.elementwise += _elements(out)
        elif isinstance(layer, self.pool):
            self.elementwise += _elements(out) * math.prod(layer.pool_size)
        elif isinstance(layer, self.global_pool):
            self.elementwise += _elements(ins[0])
        elif isinstance(layer, self.merge):
            self.elementwise += _elements(out) * (len(ins) - 1)
        elif layer.weights:
            self.uncounted.append(name)
        return 0


def count_macs(model: Any) -> MacReport:
    """Count MACs and parameters of a built Keras functional/Sequential model.

    Needs fixed input sizes (no ``None`` spatial dimensions) and never runs
    the model. See the module docstring for what is counted.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ModelConfigError(
            f"count_macs needs a keras.Model, got {type(model).__name__}: use macs_of for names")
    from tfedge.graph import ModelGraph

    counter = _Counter()
    counter.walk(ModelGraph.from_model(model), "")
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return MacReport(macs=sum(r.macs for r in counter.rows), params=int(model.count_params()),
                     trainable_params=int(trainable), per_layer=tuple(counter.rows),
                     elementwise_ops=counter.elementwise, uncounted=tuple(counter.uncounted))


def macs_of(name_or_spec_or_model: Any, resolution: int | None = None,
            num_classes: int | None = None) -> MacReport:
    """:func:`count_macs` of a model, a spec or a model name (built, never run).

    ``resolution``/``num_classes`` override a spec's or name's values; a
    Keras model is counted as it is.
    """
    import keras

    if isinstance(name_or_spec_or_model, keras.Model):
        if resolution is not None or num_classes is not None:
            raise ModelConfigError(
                "resolution/num_classes cannot change a built model: pass its name or spec")
        return count_macs(name_or_spec_or_model)
    from tfedge.models._registry import create_model

    model = create_model(name_or_spec_or_model, resolution=resolution, num_classes=num_classes)
    return count_macs(model)
