"""Architectures as data: frozen, validated, JSON-safe specs (no TensorFlow needed).

A spec fully determines a network's topology; :func:`tfedge.models._registry.create_model`
turns it into a Keras model. Compound shrinking edits a spec (fewer blocks,
fewer channels, lower resolution) with :meth:`with_changes` and rebuilds.

Each spec has a ``name`` that *encodes* the whole configuration, so a model's
name alone recovers its architecture (``spec_from_name``), including from a
saved ``.keras`` file:

* ``resnet_basic_d2-2-2-2_w64-128-256-512_s64_r224_c1000``: block type,
  ``d`` blocks per stage, ``w`` inner widths per stage, ``s`` stem width
  (``s16small`` = the small 3x3/1 stem), ``r`` input resolution, ``c`` classes;
* ``mobilenetv2_m1p0_d1-2-3-4-3-3-1_e6_l1280_r224_c1000``: ``m`` width
  multiplier (``p`` = decimal point), ``d`` blocks per stage, optional ``w``
  explicit stage widths and ``s`` explicit stem width, ``e`` expansion,
  ``l`` base width of the last 1x1 conv, ``r`` resolution, ``c`` classes;
* ``efficientnetlite_d1-2-2-3-3-4-1_w16-24-40-80-112-192-320_s32_h1280_r224_c1000``:
  ``d`` blocks per stage, ``w`` output widths per stage, ``s`` stem width,
  ``h`` width of the head's 1x1 conv, ``r`` resolution, ``c`` classes.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from typing import Any, ClassVar, Mapping, Union

from tfedge._channels import round_channels
from tfedge._errors import ModelConfigError

__all__ = [
    "ResNetSpec",
    "MobileNetV2Spec",
    "EfficientNetLiteSpec",
    "efficientnet_lite_scaling",
    "ModelSpec",
    "spec_from_dict",
    "spec_from_name",
    "is_spec_name",
    "check_resolution",
    "ResolutionError",
    "MODEL_NAME_SEPARATOR",
]

#: ``build_model(spec, name="teacher")`` names the model ``teacher__<spec.name>``;
#: :func:`spec_from_name` reads the part after the last separator.
MODEL_NAME_SEPARATOR = "__"

_RESNET_BLOCKS = ("basic", "bottleneck")
_RESNET_STEMS = ("imagenet", "small")
#: Channel expansion of a block's output over its inner width.
_RESNET_BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
#: Downsampling of each stem: 7x7/2 conv + 3x3/2 max-pool, or 3x3/1 conv.
_RESNET_STEM_STRIDE = {"imagenet": 4, "small": 1}
#: Every ResNet stage after the first halves the resolution.
_RESNET_STAGE_STRIDE = 2

_MBV2_NUM_STAGES = 7
_MBV2_DEFAULT_DEPTHS = (1, 2, 3, 4, 3, 3, 1)
_MBV2_BASE_WIDTHS = (16, 24, 32, 64, 96, 160, 320)
_MBV2_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
_MBV2_BASE_STEM_WIDTH = 32
_MBV2_STEM_STRIDE = 2
_MBV2_DEFAULT_LAST_WIDTH = 1280
_MBV2_DEFAULT_EXPANSION = 6
_CHANNEL_DIVISOR = 8

#: EfficientNet-Lite (Tan & Le 2019; the "lite" variants drop squeeze-excite and use
#: ReLU6): the seven MBConv stages of EfficientNet-B0.
_EFFL_NUM_STAGES = 7
_EFFL_DEFAULT_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_EFFL_BASE_WIDTHS = (16, 24, 40, 80, 112, 192, 320)
_EFFL_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
_EFFL_STAGE_KERNELS = (3, 3, 5, 3, 5, 5, 3)
_EFFL_STAGE_EXPANSIONS = (1, 6, 6, 6, 6, 6, 6)
_EFFL_STEM_WIDTH = 32
_EFFL_STEM_STRIDE = 2
_EFFL_HEAD_WIDTH = 1280
#: Smallest input: one cell after the five stride-2 steps needs no less.
_EFFL_MIN_RESOLUTION = 32

_INT_LIST = r"\d+(?:-\d+)*"
_RESNET_NAME_RE = re.compile(
    rf"resnet_(?P<block>basic|bottleneck)_d(?P<d>{_INT_LIST})_w(?P<w>{_INT_LIST})"
    rf"_s(?P<s>\d+)(?P<small>small)?_r(?P<r>\d+)_c(?P<c>\d+)")
_MBV2_NAME_RE = re.compile(
    rf"mobilenetv2_m(?P<m>[0-9pen]+)_d(?P<d>{_INT_LIST})(?:_w(?P<w>{_INT_LIST}))?"
    rf"(?:_s(?P<s>\d+))?_e(?P<e>\d+)_l(?P<l>\d+)_r(?P<r>\d+)_c(?P<c>\d+)")
_EFFL_NAME_RE = re.compile(
    rf"efficientnetlite_d(?P<d>{_INT_LIST})_w(?P<w>{_INT_LIST})_s(?P<s>\d+)_h(?P<h>\d+)"
    rf"_r(?P<r>\d+)_c(?P<c>\d+)")


# --------------------------------------------------------------------------- validation

def _as_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ModelConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_int_tuple(values: Any, what: str, why: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ModelConfigError(f"{what} must be a sequence of positive integers, got {values!r}")
    out = tuple(values)
    if not out:
        raise ModelConfigError(f"{what} is empty: give at least one stage")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ModelConfigError(f"{what} must be positive integers, got {out!r}: {why}")
    return tuple(int(v) for v in out)


def _choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ModelConfigError(f"{what} {value!r} is not valid: choose one of {', '.join(choices)}")
    return str(value)


class ResolutionError(ModelConfigError):
    """The input resolution is not a multiple of the network's output stride.

    Carries ``resolution`` and ``output_stride`` so that callers who know a
    friendlier model name (the registry) can restate the error with it.
    """

    def __init__(self, message: str, resolution: int, output_stride: int) -> None:
        super().__init__(message)
        self.resolution = resolution
        self.output_stride = output_stride


def check_resolution(resolution: Any, output_stride: int, label: str) -> int:
    """Validate an input resolution against a network's total downsampling.

    Raises a :class:`ModelConfigError` that names the two nearest valid
    resolutions, e.g. ``resolution 100 is not divisible by 32, the output
    stride of resnet18: use 96 or 128``.
    """
    res = _as_int(resolution, "resolution")
    if res % output_stride:
        lower = res // output_stride * output_stride
        upper = lower + output_stride
        fix = f"use {lower} or {upper}" if lower else f"use {upper} or more"
        raise ResolutionError(
            f"resolution {res} is not divisible by {output_stride}, "
            f"the output stride of {label}: {fix}", res, output_stride)
    return res


def _join(values: tuple[int, ...]) -> str:
    return "-".join(str(v) for v in values)


def _split(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("-"))


def _encode_float(value: float) -> str:
    """``0.75 -> '0p75'``; lossless because ``repr`` round-trips floats."""
    return repr(float(value)).replace(".", "p").replace("-", "n").replace("+", "")


def _decode_float(text: str) -> float:
    return float(text.replace("p", ".").replace("n", "-"))


# --------------------------------------------------------------------------- base

class _SpecBase:
    """Shared behaviour of all specs (dict/name round trips, validated edits)."""

    family: ClassVar[str]

    @property
    def name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def output_stride(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists) with a ``family`` key; see :func:`spec_from_dict`."""
        out: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Inverse of :meth:`to_dict`; unknown keys are an error (no silent drops)."""
        if not isinstance(data, Mapping):
            raise ModelConfigError(f"a {cls.__name__} dict must be a mapping, got {type(data).__name__}")
        data = dict(data)
        family = data.pop("family", cls.family)
        if family != cls.family:
            raise ModelConfigError(
                f"family {family!r} does not match {cls.__name__}: use spec_from_dict to dispatch")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelConfigError(
                f"unknown {cls.__name__} keys {unknown}: valid keys are {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except TypeError as exc:  # missing required fields
            raise ModelConfigError(f"incomplete {cls.__name__} dict: {exc}") from None

    def with_changes(self, **changes: Any):
        """A copy with some fields replaced, validated like a new spec."""
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ModelConfigError(
                f"{type(self).__name__} has no knob {', '.join(unknown)}: "
                f"choose from {', '.join(names)}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------- ResNet

@dataclasses.dataclass(frozen=True)
class ResNetSpec(_SpecBase):
    """A ResNet v1.5 (stride on the 3x3 conv of a bottleneck).

    Knobs: ``block`` ('basic' = two 3x3 convs, ResNet-18/34; 'bottleneck' =
    1x1-3x3-1x1 with 4x output expansion, ResNet-50/101), ``stage_depths``
    (blocks per stage; any number of stages, each after the first halves the
    resolution), ``stage_widths`` (each stage's inner width), ``stem_width``,
    ``resolution`` (square input side, a multiple of :attr:`output_stride`),
    ``num_classes`` and ``stem`` ('imagenet' = 7x7/2 conv + 3x3/2 max-pool;
    'small' = one 3x3/1 conv for tiny inputs such as 32 px).
    """

    family: ClassVar[str] = "resnet"

    block: str
    stage_depths: tuple[int, ...]
    stage_widths: tuple[int, ...]
    stem_width: int
    resolution: int = 224
    num_classes: int = 1000
    stem: str = "imagenet"

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        put("block", _choice(self.block, "block", _RESNET_BLOCKS))
        put("stem", _choice(self.stem, "stem", _RESNET_STEMS))
        depths = _as_int_tuple(self.stage_depths, "stage_depths",
                               "every stage needs at least 1 block")
        widths = _as_int_tuple(self.stage_widths, "stage_widths",
                               "every stage needs at least 1 channel")
        if len(widths) != len(depths):
            raise ModelConfigError(
                f"stage_widths has {len(widths)} entries but stage_depths has {len(depths)}: "
                "give one width per stage")
        put("stage_depths", depths)
        put("stage_widths", widths)
        put("stem_width", _as_int(self.stem_width, "stem_width"))
        put("num_classes", _as_int(self.num_classes, "num_classes"))
        label = f"this ResNet ({self.stem} stem, {len(depths)} stages)"
        put("resolution", check_resolution(self.resolution, self.output_stride, label))

    @property
    def name(self) -> str:
        small = "small" if self.stem == "small" else ""
        return (f"resnet_{self.block}_d{_join(self.stage_depths)}_w{_join(self.stage_widths)}"
                f"_s{self.stem_width}{small}_r{self.resolution}_c{self.num_classes}")

    @property
    def block_expansion(self) -> int:
        """Output channels of a block divided by its inner width (1 or 4)."""
        return _RESNET_BLOCK_EXPANSION[self.block]

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return (1,) + (_RESNET_STAGE_STRIDE,) * (len(self.stage_depths) - 1)

    @property
    def stage_out_widths(self) -> tuple[int, ...]:
        """Channels leaving each stage (inner width x block expansion)."""
        return tuple(w * self.block_expansion for w in self.stage_widths)

    @property
    def output_stride(self) -> int:
        """Total downsampling from input to the last feature map."""
        return _RESNET_STEM_STRIDE[self.stem] * math.prod(self.stage_strides)

    @property
    def feature_width(self) -> int:
        """Channels entering the classifier."""
        return self.stage_out_widths[-1]


# --------------------------------------------------------------------------- MobileNetV2

@dataclasses.dataclass(frozen=True)
class MobileNetV2Spec(_SpecBase):
    """A MobileNetV2 (Sandler et al. 2018), laid out as Keras/torchvision do.

    Knobs: ``width_multiplier`` (scales every width; widths are rounded to a
    multiple of 8 as the reference ``_make_divisible``), ``stage_depths``
    (blocks in each of the 7 inverted-residual stages), ``stage_widths``
    (explicit output channels per stage, overriding the multiplier; None =
    ``(16, 24, 32, 64, 96, 160, 320) x multiplier``), ``expansion`` (hidden
    width factor of stages 2-7; stage 1 uses 1 as in the paper),
    ``last_width`` (base width of the final 1x1 conv, scaled only when the
    multiplier exceeds 1, as in the reference), ``resolution``, ``num_classes``
    and ``stem_width`` (None = ``32 x multiplier`` rounded).
    """

    family: ClassVar[str] = "mobilenetv2"

    width_multiplier: float = 1.0
    stage_depths: tuple[int, ...] = _MBV2_DEFAULT_DEPTHS
    stage_widths: tuple[int, ...] | None = None
    expansion: int = _MBV2_DEFAULT_EXPANSION
    last_width: int = _MBV2_DEFAULT_LAST_WIDTH
    resolution: int = 224
    num_classes: int = 1000
    stem_width: int | None = None

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        m = self.width_multiplier
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not (
                math.isfinite(m) and m > 0):
            raise ModelConfigError(
                f"width_multiplier must be a positive number such as 0.5 or 1.0, got {m!r}")
        put("width_multiplier", float(m))
        depths = _as_int_tuple(self.stage_depths, "stage_depths",
                               "every stage needs at least 1 block")
        if len(depths) != _MBV2_NUM_STAGES:
            raise ModelConfigError(
                f"stage_depths has {len(depths)} entries, MobileNetV2 has {_MBV2_NUM_STAGES} "
                f"stages: give 7 depths, e.g. {_MBV2_DEFAULT_DEPTHS}")
        put("stage_depths", depths)
        if self.stage_widths is not None:
            widths = _as_int_tuple(self.stage_widths, "stage_widths",
                                   "every stage needs at least 1 channel")
            if len(widths) != _MBV2_NUM_STAGES:
                raise ModelConfigError(
                    f"stage_widths has {len(widths)} entries, MobileNetV2 has "
                    f"{_MBV2_NUM_STAGES} stages: give 7 widths or None to use the multiplier")
            put("stage_widths", widths)
        if self.stem_width is not None:
            put("stem_width", _as_int(self.stem_width, "stem_width"))
        put("expansion", _as_int(self.expansion, "expansion"))
        put("last_width", _as_int(self.last_width, "last_width"))
        put("num_classes", _as_int(self.num_classes, "num_classes"))
        put("resolution", check_resolution(self.resolution, self.output_stride, "MobileNetV2"))

    @property
    def name(self) -> str:
        widths = "" if self.stage_widths is None else f"_w{_join(self.stage_widths)}"
        stem = "" if self.stem_width is None else f"_s{self.stem_width}"
        return (f"mobilenetv2_m{_encode_float(self.width_multiplier)}_d{_join(self.stage_depths)}"
                f"{widths}{stem}_e{self.expansion}_l{self.last_width}"
                f"_r{self.resolution}_c{self.num_classes}")

    @property
    def output_stride(self) -> int:
        return _MBV2_STEM_STRIDE * math.prod(_MBV2_STAGE_STRIDES)

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return _MBV2_STAGE_STRIDES

    @property
    def stage_expansions(self) -> tuple[int, ...]:
        """Hidden-width factor per stage: 1 for the first stage, ``expansion`` after."""
        return (1,) + (self.expansion,) * (_MBV2_NUM_STAGES - 1)

    @property
    def resolved_stage_widths(self) -> tuple[int, ...]:
        """Output channels of each stage after the multiplier and rounding."""
        if self.stage_widths is not None:
            return self.stage_widths
        return tuple(round_channels(w * self.width_multiplier, _CHANNEL_DIVISOR)
                     for w in _MBV2_BASE_WIDTHS)

    @property
    def resolved_stem_width(self) -> int:
        if self.stem_width is not None:
            return self.stem_width
        return round_channels(_MBV2_BASE_STEM_WIDTH * self.width_multiplier, _CHANNEL_DIVISOR)

    @property
    def resolved_last_width(self) -> int:
        """Channels of the final 1x1 conv: only multipliers above 1 widen it (reference rule)."""
        if self.width_multiplier > 1.0:
            return round_channels(self.last_width * self.width_multiplier, _CHANNEL_DIVISOR)
        return self.last_width

    @property
    def feature_width(self) -> int:
        return self.resolved_last_width


# --------------------------------------------------------------------------- EfficientNet-Lite

@dataclasses.dataclass(frozen=True)
class EfficientNetLiteSpec(_SpecBase):
    """An EfficientNet-Lite (the edge variant of EfficientNet-B0..B4).

    Seven stages of MBConv blocks (1x1 expand -> kxk depthwise -> 1x1 linear
    project, residual when the shape allows) with the fixed kernel sizes
    ``(3, 3, 5, 3, 5, 5, 3)``, expansions ``(1, 6, 6, 6, 6, 6, 6)`` and strides
    ``(1, 2, 2, 2, 1, 2, 1)`` of EfficientNet-B0, but ReLU6 everywhere and no
    squeeze-excite (both for int8 on edge accelerators), a stem and head that
    the compound scaling leaves fixed, and TensorFlow 'same' padding (pad
    ``total // 2`` before, the rest after), which the published weights assume.

    Knobs: ``stage_depths`` (blocks per stage), ``stage_widths`` (output
    channels per stage), ``stem_width``, ``head_width`` (the 1x1 conv before
    pooling), ``resolution`` and ``num_classes``. 'same' padding takes any
    resolution of at least 32 px (feature maps are ``ceil(side / stride)``),
    so Lite1's 240 px and Lite2's 260 px are valid although not multiples of
    the output stride 32.
    """

    family: ClassVar[str] = "efficientnetlite"

    stage_depths: tuple[int, ...] = _EFFL_DEFAULT_DEPTHS
    stage_widths: tuple[int, ...] = _EFFL_BASE_WIDTHS
    stem_width: int = _EFFL_STEM_WIDTH
    head_width: int = _EFFL_HEAD_WIDTH
    resolution: int = 224
    num_classes: int = 1000

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        for what, values in (("stage_depths", self.stage_depths),
                             ("stage_widths", self.stage_widths)):
            out = _as_int_tuple(values, what, "every stage needs at least 1 block and channel")
            if len(out) != _EFFL_NUM_STAGES:
                raise ModelConfigError(
                    f"{what} has {len(out)} entries, EfficientNet-Lite has {_EFFL_NUM_STAGES} "
                    f"stages: give 7 values, e.g. {_EFFL_DEFAULT_DEPTHS}")
            put(what, out)
        put("stem_width", _as_int(self.stem_width, "stem_width"))
        put("head_width", _as_int(self.head_width, "head_width"))
        put("num_classes", _as_int(self.num_classes, "num_classes"))
        put("resolution", _as_int(self.resolution, "resolution (at least 32 px)",
                                  _EFFL_MIN_RESOLUTION))

    @property
    def name(self) -> str:
        return (f"efficientnetlite_d{_join(self.stage_depths)}_w{_join(self.stage_widths)}"
                f"_s{self.stem_width}_h{self.head_width}_r{self.resolution}_c{self.num_classes}")

    @property
    def output_stride(self) -> int:
        return _EFFL_STEM_STRIDE * math.prod(_EFFL_STAGE_STRIDES)

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return _EFFL_STAGE_STRIDES

    @property
    def stage_kernels(self) -> tuple[int, ...]:
        return _EFFL_STAGE_KERNELS

    @property
    def stage_expansions(self) -> tuple[int, ...]:
        return _EFFL_STAGE_EXPANSIONS

    @property
    def feature_width(self) -> int:
        return self.head_width


def efficientnet_lite_scaling(width: float, depth: float, resolution: int) -> EfficientNetLiteSpec:
    """The spec of EfficientNet-Lite at compound coefficients (``width``, ``depth``).

    As the reference builder: stage widths scaled and rounded to multiples of 8
    (never more than 10% down), inner stages' depths scaled and rounded up;
    the stem, the head and the depths of the first and last stages stay fixed.
    """
    widths = tuple(round_channels(w * width, _CHANNEL_DIVISOR) for w in _EFFL_BASE_WIDTHS)
    depths = tuple(d if s in (0, _EFFL_NUM_STAGES - 1) else math.ceil(d * depth - 1e-9)
                   for s, d in enumerate(_EFFL_DEFAULT_DEPTHS))
    return EfficientNetLiteSpec(stage_depths=depths, stage_widths=widths, resolution=resolution)


ModelSpec = Union[ResNetSpec, MobileNetV2Spec, EfficientNetLiteSpec]

_FAMILIES: dict[str, type] = {ResNetSpec.family: ResNetSpec,
                              MobileNetV2Spec.family: MobileNetV2Spec,
                              EfficientNetLiteSpec.family: EfficientNetLiteSpec}


def spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """Rebuild any spec from :meth:`to_dict` output, dispatching on ``family``."""
    if not isinstance(data, Mapping) or "family" not in data:
        raise ModelConfigError(
            f"a model spec dict needs a 'family' key ({', '.join(_FAMILIES)}), got {data!r}")
    family = data["family"]
    if family not in _FAMILIES:
        raise ModelConfigError(
            f"unknown model family {family!r}: choose one of {', '.join(_FAMILIES)}")
    return _FAMILIES[family].from_dict(data)


def _parse(name: str) -> ModelSpec | None:
    m = _RESNET_NAME_RE.fullmatch(name)
    if m:
        return ResNetSpec(block=m["block"], stage_depths=_split(m["d"]),
                          stage_widths=_split(m["w"]), stem_width=int(m["s"]),
                          resolution=int(m["r"]), num_classes=int(m["c"]),
                          stem="small" if m["small"] else "imagenet")
    m = _MBV2_NAME_RE.fullmatch(name)
    if m:
        try:
            mult = _decode_float(m["m"])
        except ValueError:
            return None
        return MobileNetV2Spec(
            width_multiplier=mult, stage_depths=_split(m["d"]),
            stage_widths=_split(m["w"]) if m["w"] else None,
            stem_width=int(m["s"]) if m["s"] else None, expansion=int(m["e"]),
            last_width=int(m["l"]), resolution=int(m["r"]), num_classes=int(m["c"]))
    m = _EFFL_NAME_RE.fullmatch(name)
    if m:
        return EfficientNetLiteSpec(
            stage_depths=_split(m["d"]), stage_widths=_split(m["w"]), stem_width=int(m["s"]),
            head_width=int(m["h"]), resolution=int(m["r"]), num_classes=int(m["c"]))
    return None


def spec_from_name(name: str) -> ModelSpec:
    """Parse an encoded spec name (also ``prefix__<encoded name>`` model names).

    The encoded name must be canonical: ``spec_from_name(s.name) == s`` and
    ``spec_from_name(n).name == n``.
    """
    if not isinstance(name, str):
        raise ModelConfigError(f"a model name must be a string, got {type(name).__name__}")
    encoded = name.rsplit(MODEL_NAME_SEPARATOR, 1)[-1]
    spec = _parse(encoded)
    if spec is None or spec.name != encoded:
        raise ModelConfigError(
            f"{name!r} is not an encoded model name: expected e.g. "
            "'resnet_basic_d2-2-2-2_w64-128-256-512_s64_r224_c1000' or "
            "'mobilenetv2_m1p0_d1-2-3-4-3-3-1_e6_l1280_r224_c1000'")
    return spec


def is_spec_name(name: str) -> bool:
    """True if ``name`` parses with :func:`spec_from_name` (invalid knobs count as False)."""
    try:
        spec_from_name(name)
    except ModelConfigError:
        return False
    return True
