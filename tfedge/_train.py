"""The training engine, and training and evaluation of classifiers, on one device or many.

One custom training loop, :func:`run_training`, trains every model tfedge
makes: classifiers here, the box predictor and its refiner
(:mod:`tfedge.crop._predictor_training`, with their own loss, outputs and
data, given as a :class:`TrainingTask`). It serves every ``tf.distribute``
strategy: Keras 3's ``Model.fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras #20585), and a single loop keeps the behaviour the same
everywhere:

* ``strategy='default'`` (one device), ``'mirrored'`` (all local devices),
  ``'multi-worker'`` (the cluster in ``TF_CONFIG``; every worker runs the same
  command).
* Each epoch ends with a backup (model, optimiser, epoch counter) under
  ``backup_dir``; a killed run started again with the same arguments resumes
  from the last finished epoch, with the same data order as an uninterrupted
  run, and the backup is deleted when training finishes (what Keras'
  ``BackupAndRestore`` does for ``fit``). A backup written with another
  model, dataset or setting is refused, not resumed (``run.json`` in it).
  Multi-worker runs need ``backup_dir`` on a file system every worker sees.
* Optional early stopping (``TrainConfig.patience``, ``--epochs auto``):
  stop when the validation score has not improved for ``patience`` epochs,
  keep the best epoch's weights (backed up too, so a resumed run ends the
  same), ``epochs`` being the cap, never before epoch ``min_epochs`` (slow
  starters). The learning-rate schedule still spans
  the cap, so a run stopped early ends at a higher rate than a fixed run of
  that length would. The sidecar records ``epochs_used``, ``best_epoch``,
  ``best_val_score`` and ``stop_reason``. A classifier still at chance on
  validation when training ends gets a warning naming the fix
  (:func:`chance_warning`): early stopping alone cannot tell a plateau from a
  model that never started.
* Optional knowledge distillation: ``loss = (1 - alpha) * CE(labels) +
  alpha * T^2 * KL(teacher_T || student_T)``; the teacher sees the same
  augmented images, resized to its own resolution.
* After training, BatchNorm statistics are re-estimated on un-augmented
  training images (short schedules leave them far from the data the model
  is evaluated on), then the model is written atomically, with a JSON sidecar
  holding what a later step needs (class names, resolution, metrics).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from ._errors import ModelConfigError, TfedgeError
from ._image import first_line
from ._io import atomic_path, atomic_write_json, private_tempdir, sha256_file
from .data._tfdata import NO_AUGMENT, AugmentConfig, make_dataset
from .data._types import Split

__all__ = [
    "TrainConfig", "TrainResult", "EvalResult", "train_classifier", "evaluate_classifier",
    "predict_logits", "recalibrate_batchnorm", "load_classifier", "save_classifier",
    "ends_in_softmax", "with_logits", "check_outputs", "with_new_head",
    "make_strategy", "STRATEGIES", "with_model_classes",
    "TrainingTask", "EarlyStopping", "LoopResult", "run_training", "parse_epochs",
    "AUTO_EPOCHS_CAP", "AUTO_PATIENCE", "above_chance", "chance_warning", "FAMILY_RECIPES",
    "scratch_recipe", "recipe_with_choices", "describe_fields",
]

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi-worker")
OPTIMIZERS = ("adamw", "sgd")
SIDECAR_SUFFIX = ".json"
_SIDECAR_DIGEST = "keras_sha256"  # the sidecar's record of the model file it describes
# Batches used to re-estimate BatchNorm statistics after training.
DEFAULT_BN_RECALIBRATION_BATCHES = 32



@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field has a default that works for the built-in benchmark."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9  # for sgd
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    seed: int = 0
    augment: Optional[AugmentConfig] = field(default_factory=AugmentConfig)  # None: none
    distill_alpha: float = 0.7
    distill_temperature: float = 4.0
    strategy: str = "default"
    steps_per_epoch: Optional[int] = None  # None: one pass over the training split
    bn_recalibration_batches: int = DEFAULT_BN_RECALIBRATION_BATCHES
    # Early stopping: None trains exactly ``epochs`` epochs; N stops when validation
    # top-1 has not improved (by more than ``min_delta``) for N epochs, restores the best
    # epoch's weights, and makes ``epochs`` the cap (``--epochs auto``). ``min_epochs``:
    # early stopping never stops before this epoch (slow starters, e.g. MobileNetV2 from
    # scratch, sit at chance for 10+ epochs before they learn).
    patience: Optional[int] = None
    min_delta: float = 0.0
    min_epochs: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TfedgeError(f"epochs must be >= 1, got {self.epochs}")
        _check_patience(self.patience, self.min_delta, self.min_epochs, self.epochs)
        if self.batch_size < 1:
            raise TfedgeError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise TfedgeError(
                f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if not self.learning_rate > 0:
            raise TfedgeError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise TfedgeError(
                f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise TfedgeError(f"distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if not self.distill_temperature > 0:
            raise TfedgeError(
                f"distill_temperature must be > 0, got {self.distill_temperature}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise TfedgeError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise TfedgeError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def to_dict(self) -> dict[str, Any]:
        return without_default_min_epochs(dataclasses.asdict(self))


@dataclass(frozen=True)
class EvalResult:
    top1: float
    top5: float
    loss: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainResult:
    model_path: Optional[Path]
    epochs_run: int
    resumed_from_epoch: int
    train_seconds: float
    history: tuple[dict[str, float], ...]
    val: Optional[EvalResult]
    stop_reason: str = "epochs"          # 'epochs', 'patience' (early stopping) or 'interrupted'
    best_epoch: Optional[int] = None     # with early stopping: the epoch whose weights were kept


# --------------------------------------------------------------------------- epoch budgets

#: ``--epochs auto``: at most this many epochs ...
AUTO_EPOCHS_CAP = 50
#: ... stopping when validation accuracy has not improved for this many.
AUTO_PATIENCE = 5


#: TrainConfig fields that work better than the defaults for a family trained from scratch:
#: MobileNetV2 stayed at chance under the default AdamW on the built-in benchmark (learning
#: rate 0.002 and 0.0005, 8 epochs) and learned with SGD (recorded/peers-conv3-2026-12-04).
FAMILY_RECIPES: dict[str, dict[str, Any]] = {
    "mobilenetv2": {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 4e-5},
}


def scratch_recipe(model: str) -> dict[str, Any]:
    """The :data:`FAMILY_RECIPES` fields for training registry model ``model`` from scratch
    (``{}``: the :class:`TrainConfig` defaults)."""
    for family, recipe in FAMILY_RECIPES.items():
        if str(model).startswith(family):
            return dict(recipe)
    return {}


def describe_fields(fields: Mapping[str, Any]) -> str:
    """``"optimizer sgd, learning_rate 0.05"``: config fields as a log reads them."""
    return ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                     for key, value in fields.items())


def recipe_with_choices(model: str, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """The optimiser fields to train ``model`` with: ``chosen`` (what the user set; None
    values count as unset) over the family's :func:`scratch_recipe`.

    The recipe applies to a registry name trained from scratch, not to a ``.keras`` file
    being fine-tuned, and not at all once the user picked another optimiser (the recipe's
    learning rate belongs to its own optimiser). The result holds only fields that were
    chosen or come from the recipe; the rest keep the :class:`TrainConfig` defaults.
    """
    chosen = {key: value for key, value in chosen.items() if value is not None}
    recipe = {} if str(model).endswith(".keras") else scratch_recipe(model)
    if not recipe or chosen.get("optimizer", recipe.get("optimizer")) != recipe.get("optimizer"):
        return chosen
    return {**recipe, **chosen}


def chance_ceiling(num_classes: int) -> float:
    """The top-1 below which a classifier has not started learning.

    1.5x chance (``1 / classes``), but never more than a tenth of the way from chance to
    perfect, so two classes need 0.55, not 0.75 (a slow starter cut by early stopping
    scored 0.106 on 10 classes; the ceiling there is 0.15).
    """
    chance = 1.0 / max(int(num_classes), 1)
    return min(1.5 * chance, chance + 0.1 * (1.0 - chance))


def above_chance(top1: float, num_classes: int) -> bool:
    """Whether ``top1`` is clearly above guessing (:func:`chance_ceiling`)."""
    return top1 >= chance_ceiling(num_classes)


def chance_warning(top1: float, num_classes: int, stop_reason: str, *,
                   optimizer: Optional[str] = None, depthwise: bool = False) -> Optional[str]:
    """What to tell a user whose trained classifier is still at chance, or None if it is not.

    ``depthwise``: the model has depthwise convolutions (MobileNet-like); trained from
    scratch under AdamW (``optimizer``) such a model stayed at chance on the built-in
    benchmark where SGD with momentum learned, so the warning names that recipe.
    """
    if num_classes < 2 or above_chance(top1, num_classes):
        return None
    said = (f"validation top-1 {top1:.3f} is at chance level ({1 / num_classes:.3f} for "
            f"{num_classes} classes): the model has not started learning")
    if stop_reason == "patience":
        said = (f"{said}, and early stopping ended it; give slow starters a minimum number of "
                "epochs (--epochs auto:CAP:PATIENCE:MIN, TrainConfig.min_epochs) or check the "
                "labels and learning rate")
    else:
        said = (f"{said}; train longer (--epochs, or --epochs auto), or check the labels and "
                "learning rate")
    if depthwise and optimizer == "adamw":
        flags = " ".join(f"--{key.replace('_', '-')} {value:g}" if isinstance(value, float)
                         else f"--{key.replace('_', '-')} {value}"
                         for key, value in FAMILY_RECIPES["mobilenetv2"].items())
        said += ("; depthwise (MobileNet-like) models from scratch may not start under AdamW: "
                 f"try {flags} (on the built-in benchmark MobileNetV2 learned with it, where "
                 "under AdamW, at learning rate 0.002 or 0.0005, it stayed at chance for 8 "
                 "epochs)")
    return said


def _has_depthwise(model) -> bool:
    """Whether ``model`` (or a model nested in it) has a DepthwiseConv2D layer."""
    for layer in getattr(model, "layers", ()):
        if type(layer).__name__ == "DepthwiseConv2D" or _has_depthwise(layer):
            return True
    return False


def _check_patience(patience: Optional[int], min_delta: float, min_epochs: int = 0,
                    epochs: Optional[int] = None) -> None:
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 1):
        raise TfedgeError(f"patience must be a whole number >= 1 (or None: a fixed number of "
                          f"epochs), got {patience!r}")
    if not min_delta >= 0:
        raise TfedgeError(f"min_delta must be >= 0, got {min_delta!r}")
    if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 0:
        raise TfedgeError(f"min_epochs must be a whole number >= 0, got {min_epochs!r}")
    if min_epochs and patience is None:
        raise TfedgeError(f"min_epochs={min_epochs} only applies with early stopping: set a "
                          "patience too (e.g. --epochs auto:CAP:PATIENCE:MIN)")
    if epochs is not None and min_epochs > epochs:
        raise TfedgeError(f"min_epochs ({min_epochs}) is above the epoch cap ({epochs}): lower "
                          "it or raise the cap")


def without_default_min_epochs(config: dict[str, Any]) -> dict[str, Any]:
    """A config record without ``min_epochs`` when it is 0 (the default): records, backups
    and cached steps written before the field existed keep matching."""
    if config.get("min_epochs") == 0:
        config = {k: v for k, v in config.items() if k != "min_epochs"}
    return config


def parse_epochs(text: Union[str, int]) -> dict[str, Any]:
    """An ``--epochs`` value as config fields: ``{'epochs': N, 'patience': P or None,
    'min_epochs': M}``.

    ``'12'``: exactly 12 epochs. ``'auto'``: early stopping on validation
    accuracy, patience :data:`AUTO_PATIENCE`, at most :data:`AUTO_EPOCHS_CAP`
    epochs; ``'auto:CAP'``, ``'auto:CAP:PATIENCE'`` and
    ``'auto:CAP:PATIENCE:MIN'`` set those (``MIN``: never stop before that
    epoch). Usable as an argparse ``type=`` (a bad value raises
    ``argparse.ArgumentTypeError``).
    """
    import argparse

    value = str(text).strip().lower()
    parts = value.split(":")
    try:
        if parts[0] != "auto":
            if len(parts) != 1:
                raise ValueError
            epochs, patience, min_epochs = int(value), None, 0
        elif len(parts) > 4:
            raise ValueError
        else:
            epochs = int(parts[1]) if len(parts) > 1 else AUTO_EPOCHS_CAP
            patience = int(parts[2]) if len(parts) > 2 else AUTO_PATIENCE
            min_epochs = int(parts[3]) if len(parts) > 3 else 0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid epochs {text!r}: give a whole number (e.g. 12), or 'auto' (stop when "
            f"validation accuracy stalls for {AUTO_PATIENCE} epochs, at most "
            f"{AUTO_EPOCHS_CAP}), 'auto:CAP', 'auto:CAP:PATIENCE' or "
            "'auto:CAP:PATIENCE:MIN'") from None
    if epochs < 1 or (patience is not None and patience < 1) or not 0 <= min_epochs <= epochs:
        raise argparse.ArgumentTypeError(
            f"invalid epochs {text!r}: the number of epochs and the patience must be >= 1, "
            "the minimum between 0 and the cap")
    return {"epochs": epochs, "patience": patience, "min_epochs": min_epochs}


# --------------------------------------------------------------------------- helpers


def make_strategy(name: str):
    """The ``tf.distribute`` strategy called ``name`` (one of :data:`STRATEGIES`)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise TfedgeError(
                "strategy 'multi-worker' needs the cluster in the TF_CONFIG environment "
                "variable (see README, 'Training on several machines'), or use --strategy default")
        _configure_coordination_service()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TfedgeError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")


# TensorFlow's default (10 s) ends a whole multi-worker run when one worker is
# starved of CPU for a few seconds, as happens on small shared machines.
COORDINATION_HEARTBEAT_TIMEOUT_MS = 120_000


def _configure_coordination_service() -> None:
    """Set up multi-worker coordination as MultiWorkerMirroredStrategy would, with a longer
    heartbeat timeout; the strategy keeps a service that is already configured."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    try:
        from tensorflow.core.protobuf import coordination_config_pb2
    except ImportError:  # a TensorFlow that moved it: keep TensorFlow's own settings
        log.warning("cannot set the coordination heartbeat timeout with this TensorFlow; "
                    "using its default")
        return
    cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    jobs = [job for job in ("chief", "worker") if job in cluster.jobs]
    if not jobs:
        return
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{jobs[0]}/replica:0/task:0",
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(
            name=job, num_tasks=cluster.num_tasks(job)) for job in jobs],
        heartbeat_timeout_in_ms=COORDINATION_HEARTBEAT_TIMEOUT_MS)


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def model_resolution(model) -> int:
    """The square input resolution a classifier expects."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise ModelConfigError("classifiers must have exactly one input, got "
                               f"{len(shape)}: wrap the model so it takes one image tensor")
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise ModelConfigError(
            f"classifier input must be (batch, N, N, 3) with a fixed N, got {shape}: "
            "build it with a fixed square input size")
    return int(shape[1])


def _sidecar(path: Path) -> Path:
    return path.with_suffix(path.suffix + SIDECAR_SUFFIX)


def save_classifier(model, path: Union[str, os.PathLike], metadata: Optional[dict] = None) -> Path:
    """Write ``model`` as a ``.keras`` file atomically, with a JSON sidecar of metadata."""
    path = Path(path)
    if path.suffix != ".keras":
        raise TfedgeError(f"model files must end in .keras, got {str(path)!r}")
    meta = {"format": "tfedge-classifier", "version": 1, "model_name": model.name,
            "resolution": model_resolution(model), "num_classes": int(model.output_shape[-1])}
    meta.update(metadata or {})
    return save_model_with_sidecar(model, path, meta)


def save_model_with_sidecar(model, path: Union[str, os.PathLike], meta: dict[str, Any]) -> Path:
    """Write ``model`` to ``path`` atomically, then ``meta`` beside it with the model's digest."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
        # The two files cannot be renamed at once: a kill between them leaves the new model
        # next to the old sidecar. Its digest of the model lets read_sidecar refuse that pair.
        meta = {**meta, _SIDECAR_DIGEST: sha256_file(tmp)}
    atomic_write_json(_sidecar(path), meta)
    return path


def load_classifier(path: Union[str, os.PathLike]):
    """Load a classifier saved by :func:`save_classifier` (or any ``.keras`` file)."""
    import keras

    path = Path(path)
    if not path.exists():
        raise TfedgeError(f"model file {str(path)!r} does not exist: train one with "
                          "'tfedge train' or pass the path of a .keras file")
    if path.suffix != ".keras":
        raise TfedgeError(f"{str(path)!r} is not a .keras model file: save Keras models "
                          "with model.save('name.keras')")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise TfedgeError(f"cannot load {str(path)!r} as a Keras model ({exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}): re-save it with "
                          "Keras 3 model.save") from exc
    return with_logits(model, str(path))


def check_outputs(model, num_classes: int, where: str = "") -> None:
    """Stop when a given classifier's outputs are not the data's classes: trained as it is,
    the extra outputs were never a label and conversion refused the model at the end."""
    outputs = int(model.output_shape[-1])
    if outputs != int(num_classes):
        raise ModelConfigError(
            f"{where or model.name} has {outputs} outputs but the data has {num_classes} "
            f"classes: train it with a new head (tfedge train --new-head), give it a head of "
            f"{num_classes} (keras.applications models take classes={num_classes}), or train "
            "a registry model (--model resnet10_050)")


def with_new_head(model, num_classes: int, where: str = ""):
    """``model`` with its final Dense layer replaced by a new one of ``num_classes`` logits
    (the same name, fresh weights); everything before it is kept, weights included."""
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        raise ModelConfigError(f"a new head replaces the final Dense layer, but "
                               f"{where or model.name} ends in {type(last).__name__} "
                               f"{last.name!r}: end it in Dense(classes)")
    head = keras.layers.Dense(int(num_classes), name=last.name)
    # A registry name ends in its class count (..._c1000): say the new one.
    name = re.sub(r"_c\d+$", f"_c{int(num_classes)}", model.name)
    replaced = keras.Model(_inputs_of(model), head(last.input), name=name)
    log.info("%s: head %r (%d outputs) replaced by a new Dense layer of %d classes",
             where or model.name, last.name, int(last.units), int(num_classes))
    return replaced


def _inputs_of(model):
    """The model's input tensor(s) in the structure it is called with (one tensor, not a list
    of one: Keras warns on every call otherwise)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def ends_in_softmax(model) -> bool:
    """Whether the model's output is a softmax (probabilities) rather than logits."""
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    if last is None:
        return False
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def with_logits(model, where: str = ""):
    """``model`` itself, or, when it ends in a softmax (``keras.applications`` classifiers
    do), a copy whose output is the logits before it.

    tfedge's losses, distillation, exit rule and bundles all apply softmax themselves:
    on probabilities they would train a squashed loss and confidences without a word.
    ``where`` names the model in the log line. The given model is never changed.
    """
    import keras

    if not ends_in_softmax(model):
        return model
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax) or isinstance(last, keras.layers.Activation):
        logits = keras.Model(_inputs_of(model), last.input, name=model.name)
    else:  # Dense(..., activation="softmax"): the same layer without its activation
        logits = keras.models.clone_model(model)
        logits.set_weights(model.get_weights())
        logits.layers[-1].activation = keras.activations.get("linear")
    log.info("%s ends in a softmax (layer %r): tfedge uses the logits before it (its losses, "
             "exit rule and bundles apply softmax themselves)", where or model.name, last.name)
    return logits


def read_sidecar(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The metadata saved beside model file ``path`` (``{}`` when there is none): class
    names, resolution, training budget, dataset. Refuses a sidecar written for another
    version of the model file."""
    side = _sidecar(Path(path))
    if not side.exists():
        return {}
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise TfedgeError(f"{side}: not valid JSON ({exc.msg} at line {exc.lineno}): "
                          "delete it or write it again") from exc
    digest = meta.get(_SIDECAR_DIGEST) if isinstance(meta, dict) else None
    if isinstance(digest, str) and Path(path).is_file() and sha256_file(path) != digest:
        raise TfedgeError(f"{side} was written for another version of {str(path)!r} (a run "
                          "killed between writing the two?): train again, or delete the "
                          "sidecar to use the model without its metadata")
    return meta


def with_model_classes(split: Split, class_names: Optional[Sequence[str]]) -> Split:
    """``split`` with its labels renumbered in the order of a model's ``class_names``.

    Class folders are numbered by sorted name, so a test folder without one
    of the training classes numbers the rest differently: scoring it as-is
    compares the wrong classes. None (a model without class names) returns
    ``split`` unchanged; a class the model does not know is an error.
    """
    if class_names is None or tuple(class_names) == tuple(split.class_names):
        return split
    index = {name: k for k, name in enumerate(class_names)}
    unknown = [name for name in split.class_names if name not in index]
    if unknown:
        raise TfedgeError(f"the dataset has classes the model was not trained on: {unknown} "
                          f"(the model knows {list(class_names)}): evaluate on data with the "
                          "model's classes")
    mapping = np.array([index[name] for name in split.class_names], np.int32)
    return dataclasses.replace(split, labels=mapping[np.asarray(split.labels)],
                               class_names=tuple(class_names))


def _check_labels(model, split: Split) -> None:
    num_outputs = int(model.output_shape[-1])
    if split.num_classes > num_outputs:
        raise TfedgeError(
            f"the dataset has {split.num_classes} classes but model {model.name!r} outputs "
            f"{num_outputs}: build the model with num_classes={split.num_classes}")


def _without_sync_bn(model):
    """A copy of ``model`` (same weights) whose BatchNorm layers are not synchronised."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization) and config.get("synchronized"):
            config["synchronized"] = False
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


# --------------------------------------------------------------------------- evaluation


def predict_logits(model, split: Split, *, batch_size: int = 128,
                   resolution: Optional[int] = None) -> np.ndarray:
    """Logits for every example of ``split`` (full image resized to the model's input)."""
    res = resolution or model_resolution(model)
    ds = make_dataset(split, resolution=res, batch_size=batch_size, training=False)
    outputs = []
    for images, _ in ds:
        outputs.append(np.asarray(model(images, training=False)))
    if not outputs:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    return np.concatenate(outputs).astype(np.float32)


def accuracy_from_logits(logits: np.ndarray, labels: np.ndarray) -> EvalResult:
    """Top-1, top-5 and mean cross-entropy of ``logits`` against integer ``labels``."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        raise TfedgeError("cannot evaluate on an empty split: check the dataset")
    top1 = float(np.mean(np.argmax(logits, axis=1) == labels))
    k = min(5, logits.shape[1])
    topk = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    top5 = float(np.mean(np.any(topk == labels[:, None], axis=1)))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-np.mean(log_probs[np.arange(n), labels]))
    return EvalResult(top1=top1, top5=top5, loss=loss, count=n)


def evaluate_classifier(model, split: Split, *, batch_size: int = 128) -> EvalResult:
    """Accuracy of ``model`` on ``split``, full images resized to the model's input."""
    _check_labels(model, split)
    return accuracy_from_logits(predict_logits(model, split, batch_size=batch_size), split.labels)


def recalibrate_batchnorm(model, split: Split, *, batches: int = DEFAULT_BN_RECALIBRATION_BATCHES,
                          batch_size: int = 64) -> int:
    """Re-estimate every BatchNorm layer's moving statistics on ``split``.

    Each layer's moving mean and variance become the plain average over
    ``batches`` batches of un-augmented images (momentum ``i / (i + 1)`` at
    batch ``i``), which is what the model sees at evaluation. Returns the number
    of batches used. Weights other than the BN statistics are not changed.
    """
    import keras

    bn_layers = [layer for layer in _all_layers(model)
                 if isinstance(layer, keras.layers.BatchNormalization)]
    if not bn_layers or batches < 1:
        return 0
    saved = [layer.momentum for layer in bn_layers]
    res = model_resolution(model)
    ds = make_dataset(split, resolution=res, batch_size=batch_size, training=False)
    used = 0
    try:
        for images, _ in ds.take(batches):
            for layer in bn_layers:
                layer.momentum = used / (used + 1.0)
            model(images, training=True)  # eager: each call reads the new momentum
            used += 1
    finally:
        for layer, momentum in zip(bn_layers, saved):
            layer.momentum = momentum
    return used


def _all_layers(model):
    # Note: tfedge.graph (issue #14 d3) is meant to be the one Keras graph walker; this
    # walk over nested models could use it once it lands.
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
        yield layer


# --------------------------------------------------------------------------- training


def _lr_schedule(config: TrainConfig, steps_per_epoch: int):
    """Linear warm-up then cosine decay to zero, as a function of the global step."""
    import keras
    import tensorflow as tf

    total = float(config.epochs * steps_per_epoch)
    warmup = float(max(1, round(config.warmup_epochs * steps_per_epoch)))
    base = float(config.learning_rate)

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = base * (step + 1.0) / warmup
            progress = tf.clip_by_value((step - warmup) / tf.maximum(total - warmup, 1.0), 0.0, 1.0)
            cosine = 0.5 * base * (1.0 + tf.cos(math.pi * progress))
            return tf.where(step < warmup, warm, cosine)

        def get_config(self):
            return {"base": base, "warmup_steps": warmup, "total_steps": total}

    return WarmupCosine()


_RUN_FILE = "run.json"  # in the backup folder: what run the backup belongs to


def _run_fingerprint(student, resolution: int, train: Split, config: TrainConfig,
                     teacher) -> dict[str, Any]:
    """What must match for a backup to be resumed: the model, the data and the settings."""
    teacher_id = (str(Path(teacher).resolve()) if isinstance(teacher, (str, os.PathLike))
                  else getattr(teacher, "name", None))
    fingerprint = {"model": student.name, "resolution": int(resolution),
                   "outputs": int(student.output_shape[-1]), "train_size": len(train),
                   "class_names": list(train.class_names), "config": config.to_dict(),
                   "teacher": teacher_id}
    return json.loads(json.dumps(fingerprint, default=str))  # as it reads back from JSON


def _check_same_run(backup_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to resume a backup that another model, dataset or setting wrote."""
    path = backup_dir / _RUN_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("%s has no readable %s (an older backup?): resuming without checking that "
                    "it is the same run", backup_dir, _RUN_FILE)
        return
    differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if "config" in differ:
        old, new = saved.get("config") or {}, fingerprint["config"]
        differ.remove("config")
        differ += sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differ:
        raise TfedgeError(f"the backup in {backup_dir} was made by another run (it differs in "
                          f"{', '.join(differ)}): delete {backup_dir} to start over, or rerun "
                          "with the original settings")


def _make_optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    schedule = _lr_schedule(config, steps_per_epoch)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)


def _resolve_model(model_or_name, num_classes: int, resolution: Optional[int],
                   synchronized_bn: bool, new_head: bool = False):
    """Build (or copy) the student inside the current strategy scope."""
    import keras

    from .models import build_model, get_spec

    given = isinstance(model_or_name, keras.Model)
    if given or (isinstance(model_or_name, (str, os.PathLike))
                 and str(model_or_name).endswith(".keras")):
        where = "" if given else str(model_or_name)
        model = with_logits(model_or_name) if given else load_classifier(model_or_name)
        if new_head:
            model = with_new_head(model, num_classes, where)
        check_outputs(model, num_classes, where)
        if given and synchronized_bn:
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            return copy
        return model
    if new_head:
        raise TfedgeError("a new head replaces the head of a given .keras classifier; a "
                          f"registry model ({model_or_name!r}) is built for the data's classes")
    overrides = {"num_classes": num_classes}
    if resolution is not None:
        overrides["resolution"] = resolution
    if isinstance(model_or_name, str):
        spec = get_spec(model_or_name, **overrides)
    else:
        spec = model_or_name.with_changes(**overrides)
    return build_model(spec, synchronized_bn=synchronized_bn)


# --------------------------------------------------------------------------- the engine


@dataclass
class TrainingTask:
    """What one training run optimises; :func:`run_training` owns the loop around it.

    Build it inside the strategy's scope (the model, optimiser and ``state``
    must be created there).

    model: the Keras model whose weights are trained, backed up and returned.
    optimizer: a Keras optimiser; its schedule sets the learning rate per step.
    dataset_fn: ``epoch -> tf.data.Dataset`` of batches that repeats; seed it by
        the epoch's index, so a resumed run sees the batches an uninterrupted
        one would have.
    loss_fn: ``(targets, outputs) -> scalar``, the mean loss over one replica's
        batch (the engine divides by the number of replicas, so the summed
        gradients are those of the global mean).
    steps_per_epoch, global_batch_size: the epoch's length; the batch counts
        images for the throughput and the per-example metrics.
    forward: ``inputs -> outputs`` in training mode (default
        ``model(inputs, training=True)``): e.g. a view of the same layers that
        also exposes intermediate outputs an auxiliary loss needs.
    prepare_fn: ``batch -> (inputs, targets)``, run in the step before the
        gradient tape (batch augmentation, a teacher's logits). Default: the
        batch is ``(inputs, targets)``.
    metrics_fn: ``(targets, outputs) -> {name: sum over the replica's
        examples}``; each is reported per epoch as its mean per example.
    variables: what the optimiser updates (default ``model.trainable_variables``).
    state: more trackable objects to back up with the model (an auxiliary head,
        a ``tf.random.Generator`` whose stream must continue after a resume).
    name: how the log names the run (``'predictor'``, ...).
    """

    model: Any
    optimizer: Any
    dataset_fn: Callable[[int], Any]
    loss_fn: Callable[[Any, Any], Any]
    steps_per_epoch: int
    global_batch_size: int
    forward: Optional[Callable[[Any], Any]] = None
    prepare_fn: Optional[Callable[[Any], tuple[Any, Any]]] = None
    metrics_fn: Optional[Callable[[Any, Any], dict[str, Any]]] = None
    variables: Optional[Sequence[Any]] = None
    state: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor()`` (higher is better) has not improved for ``patience`` epochs.

    An improvement is a score above the best by more than ``min_delta``; the
    best epoch's weights are restored when training ends. ``monitor_name``
    is the score's key in the history (e.g. ``'val_top1'``). No stop before
    epoch ``min_epochs``.
    """

    monitor: Callable[[], float]
    patience: int
    min_delta: float = 0.0
    monitor_name: str = "val_score"
    min_epochs: int = 0  # never stop before this epoch


@dataclass(frozen=True)
class LoopResult:
    """What :func:`run_training` did.

    epochs_run: the last epoch finished (counting those of a resumed run).
    stop_reason: ``'epochs'`` (the budget ran out), ``'patience'`` (early
        stopping) or ``'interrupted'`` (``stop_after_epochs``; the backup stays).
    best_epoch, best_score: with early stopping, the epoch whose weights were
        restored and its score; else None.
    """

    history: tuple[dict[str, float], ...]
    resumed_from: int
    epochs_run: int
    train_seconds: float
    stop_reason: str
    best_epoch: Optional[int] = None
    best_score: Optional[float] = None

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == STOP_INTERRUPTED


STOP_EPOCHS = "epochs"
STOP_PATIENCE = "patience"
STOP_INTERRUPTED = "interrupted"
_BEST_PREFIX = "best-"  # in the backup folder: best-<epoch>.npz, the best weights so far


@private_tempdir("train")  # TensorFlow's temporaries (AutoGraph modules) go when a kill ends it
def run_training(task: TrainingTask, *, epochs: int, strategy: Any = None,
                 backup_dir: Union[str, os.PathLike, None] = None,
                 fingerprint: Optional[dict[str, Any]] = None,
                 stop_after_epochs: Optional[int] = None,
                 early_stopping: Optional[EarlyStopping] = None) -> LoopResult:
    """Train ``task`` for up to ``epochs`` epochs: the one loop every tfedge model trains with.

    strategy: a ``tf.distribute`` strategy (default: the current one); the
        task must have been built in its scope.
    backup_dir: per-epoch backups (model, optimiser, ``task.state``, epoch and
        early-stopping state). A run started again with the same task resumes
        after the last finished epoch; the folder is deleted when training
        ends. ``fingerprint`` (JSON data: model, data, settings) is stored
        with it, and a backup with another fingerprint is refused.
    stop_after_epochs: stop after this many epochs of this call, keeping the
        backup, as if killed (to test resuming).
    early_stopping: stop when its score has not improved for ``patience``
        epochs, and restore the best epoch's weights (with a backup, those
        weights are backed up too, so a resumed run ends the same).
    """
    import tensorflow as tf

    default_strategy = tf.distribute.get_strategy()
    strategy = strategy or default_strategy
    chief = _is_chief(strategy)
    model, optimizer = task.model, task.optimizer
    variables = list(task.variables if task.variables is not None else model.trainable_variables)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        if not getattr(optimizer, "built", True):
            optimizer.build(variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        best_epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        best_score_var = tf.Variable(-math.inf, dtype=tf.float64, trainable=False,
                                     name="best_score")
        stopped_var = tf.Variable(False, trainable=False, name="stopped_early")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var,
                                         best_epoch=best_epoch_var, best_score=best_score_var,
                                         stopped_early=stopped_var, **task.state)

    manager = None
    resumed_from = 0
    write_dir = None
    best_weights = None
    if backup_dir is not None:
        backup_dir = Path(backup_dir)
        # Every worker must save (saving is collective); only the chief's copy is kept.
        write_dir = backup_dir if chief else Path(tempfile.mkdtemp(prefix="tfedge-backup-"))
        manager = tf.train.CheckpointManager(checkpoint, str(write_dir), max_to_keep=1)
        latest = tf.train.latest_checkpoint(str(backup_dir))
        if latest:
            if fingerprint is not None:
                _check_same_run(backup_dir, fingerprint)
            try:
                checkpoint.restore(latest).expect_partial()
            except (ValueError, tf.errors.OpError) as exc:
                raise TfedgeError(f"the backup in {backup_dir} does not fit this model "
                                  f"({first_line(exc)}): delete {backup_dir} to start over, "
                                  "or rerun with the original settings") from None
            resumed_from = int(epoch_var.numpy())
            if early_stopping is not None and int(best_epoch_var.numpy()):
                best_weights = _read_best_weights(backup_dir, int(best_epoch_var.numpy()))
            log.info("resuming from %s (epoch %d of %d done)", latest, resumed_from, epochs)
        elif chief:
            write_dir.mkdir(parents=True, exist_ok=True)
            if fingerprint is not None:
                atomic_write_json(write_dir / _RUN_FILE, fingerprint)

    forward = task.forward or (lambda inputs: model(inputs, training=True))
    prepare = task.prepare_fn or (lambda batch: batch)

    def replica_step(batch):
        inputs, targets = prepare(batch)
        with tf.GradientTape() as tape:
            outputs = forward(inputs)
            loss = task.loss_fn(targets, outputs)
            if replicas > 1:
                loss = loss / replicas
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        metrics = task.metrics_fn(targets, outputs) if task.metrics_fn else {}
        return loss, metrics

    @tf.function
    def train_step(iterator):
        loss, metrics = strategy.run(replica_step, args=(next(iterator),))
        total = lambda value: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        return total(loss), {key: total(value) for key, value in metrics.items()}

    label = f"{task.name} epoch" if task.name else "epoch"
    steps, batch = task.steps_per_epoch, task.global_batch_size
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    epochs_this_call = 0
    stop_reason = STOP_PATIENCE if bool(stopped_var.numpy()) else STOP_EPOCHS
    for epoch in range(resumed_from, epochs):
        if stop_reason == STOP_PATIENCE:
            break
        ds = task.dataset_fn(epoch)
        if strategy is not default_strategy:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = \
                tf.data.experimental.AutoShardPolicy.DATA
            ds = strategy.experimental_distribute_dataset(ds.with_options(options))
        iterator = iter(ds)
        t0 = time.perf_counter()
        loss_sum = 0.0
        sums: dict[str, float] = {}
        report_every = max(1, steps // 5)
        for step in range(steps):
            loss, metrics = train_step(iterator)
            loss_sum += float(loss)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            if (step + 1) % report_every == 0 and step + 1 < steps:
                log.debug("  %s %d/%d  step %d/%d  loss %.4f  %.0f img/s", label, epoch + 1,
                          epochs, step + 1, steps, loss_sum / (step + 1),
                          (step + 1) * batch / (time.perf_counter() - t0))
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": loss_sum / steps,
                  **{key: value / (steps * batch) for key, value in sums.items()},
                  "seconds": seconds, "images_per_second": steps * batch / seconds}
        epoch_var.assign(epoch + 1)
        if early_stopping is not None:
            score = float(early_stopping.monitor())
            record[early_stopping.monitor_name] = score
            if score > float(best_score_var.numpy()) + early_stopping.min_delta:
                best_score_var.assign(score)
                best_epoch_var.assign(epoch + 1)
                best_weights = [np.asarray(w) for w in model.get_weights()]
                if manager is not None and chief:
                    _write_best_weights(write_dir, epoch + 1, best_weights)
            elif (epoch + 1 - int(best_epoch_var.numpy()) >= early_stopping.patience
                  and epoch + 1 >= early_stopping.min_epochs):
                stopped_var.assign(True)
                stop_reason = STOP_PATIENCE
        history.append(record)
        if manager is not None:
            manager.save(checkpoint_number=epoch + 1)
            if early_stopping is not None and chief:
                _prune_best_weights(write_dir, int(best_epoch_var.numpy()))
        extras = "".join(f"  {key} {record[key]:.4f}" for key in record
                         if key not in ("epoch", "loss", "seconds", "images_per_second"))
        log.info("%s %d/%d  loss %.4f%s  %.0f img/s  %.0fs", label, epoch + 1, epochs,
                 record["loss"], extras, record["images_per_second"], seconds)
        if stop_reason == STOP_PATIENCE:
            log.info("%s: no better %s for %d epochs; stopping after epoch %d (best: epoch %d, "
                     "%.4f)", task.name or "training", early_stopping.monitor_name,
                     early_stopping.patience, epoch + 1, int(best_epoch_var.numpy()),
                     float(best_score_var.numpy()))
            break
        epochs_this_call += 1
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs \
                and epoch + 1 < epochs:
            log.info("stopping after %d epochs as asked; run again to resume", epochs_this_call)
            return LoopResult(tuple(history), resumed_from, epoch + 1,
                              time.perf_counter() - start, STOP_INTERRUPTED,
                              _or_none(best_epoch_var), _score_or_none(best_score_var))
    train_seconds = time.perf_counter() - start
    best_epoch = best_score = None
    if early_stopping is not None:
        best_epoch, best_score = _or_none(best_epoch_var), _score_or_none(best_score_var)
        if best_weights is not None and best_epoch != int(epoch_var.numpy()):
            log.info("restoring the weights of epoch %d (%s %.4f)", best_epoch,
                     early_stopping.monitor_name, best_score)
            model.set_weights(best_weights)
    if manager is not None:
        if chief and backup_dir is not None:
            shutil.rmtree(backup_dir, ignore_errors=True)
        if write_dir is not None and write_dir != backup_dir:
            shutil.rmtree(write_dir, ignore_errors=True)
    return LoopResult(tuple(history), resumed_from, int(epoch_var.numpy()), train_seconds,
                      stop_reason, best_epoch, best_score)


def _or_none(var) -> Optional[int]:
    value = int(var.numpy())
    return value or None


def _score_or_none(var) -> Optional[float]:
    value = float(var.numpy())
    return value if math.isfinite(value) else None


def _write_best_weights(folder: Path, epoch: int, weights: Sequence[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{_BEST_PREFIX}{epoch}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *weights)


def _read_best_weights(folder: Path, epoch: int) -> list[np.ndarray]:
    path = folder / f"{_BEST_PREFIX}{epoch}.npz"
    try:
        with np.load(path) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError) as exc:
        raise TfedgeError(f"the backup in {folder} names epoch {epoch} as the best but "
                          f"{path.name} is missing or unreadable ({first_line(exc)}): delete "
                          f"{folder} to start over") from None


def _prune_best_weights(folder: Path, keep_epoch: int) -> None:
    for path in folder.glob(f"{_BEST_PREFIX}*.npz"):
        if path.name != f"{_BEST_PREFIX}{keep_epoch}.npz":
            path.unlink(missing_ok=True)


def default_backup_dir(output: Optional[Path]) -> Optional[Path]:
    """Where a run writing ``output`` keeps its per-epoch backup (None without an output)."""
    return None if output is None else output.with_name(output.name + ".backup")


# --------------------------------------------------------------------------- classifiers


@private_tempdir("train")
def train_classifier(
    model: Any,
    train: Split,
    *,
    val: Optional[Split] = None,
    config: TrainConfig = TrainConfig(),
    teacher: Any = None,
    output: Union[str, os.PathLike, None] = None,
    backup_dir: Union[str, os.PathLike, None] = None,
    resolution: Optional[int] = None,
    metadata: Optional[dict] = None,
    stop_after_epochs: Optional[int] = None,
    new_head: bool = False,
):
    """Train a classifier on ``train``; return ``(model, TrainResult)``.

    model: a registry name (``'resnet18_050'``), a model spec, a Keras model, or
        the path of a ``.keras`` file. Names and specs are built with the
        dataset's number of classes and ``resolution`` (if given).
    val: scored after training; with ``config.patience`` also after every
        epoch, to stop early (required then).
    teacher: a Keras classifier or ``.keras`` path to distil from (optional).
    output: where to write the trained ``.keras`` model (atomically) and its
        JSON sidecar. Only the chief worker writes.
    backup_dir: where per-epoch backups go (default: ``<output>.backup``); a
        run started again with the same arguments resumes from the last one.
    stop_after_epochs: stop (keeping the backup) after this many epochs of this
        call, as if killed; used to test resuming.
    new_head: replace a given model's final Dense layer by a new one for this data's
        classes (transfer learning, e.g. from ``tfedge import``), seeded like the rest.
    """
    import keras
    import tensorflow as tf

    strategy = make_strategy(config.strategy)
    distributed = config.strategy != "default"
    global_batch = config.batch_size
    steps_per_epoch = config.steps_per_epoch or max(1, len(train) // global_batch)
    if len(train) == 0:
        raise TfedgeError("the training split is empty: check the dataset path and its classes")
    if config.patience is not None and (val is None or len(val) == 0):
        raise TfedgeError("early stopping (patience, --epochs auto) needs a validation split: "
                          "give val data, or a fixed number of epochs")

    output = Path(output) if output is not None else None
    if backup_dir is None:
        backup_dir = default_backup_dir(output)
    chief = _is_chief(strategy)

    # Same seed, same initial weights: runs are reproducible and a resumed run
    # matches an uninterrupted one.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        student = _resolve_model(model, train.num_classes, resolution,
                                 synchronized_bn=config.strategy == "multi-worker",
                                 new_head=new_head)
        _check_labels(student, train)
        res = model_resolution(student)
        if resolution is not None and resolution != res:
            raise TfedgeError(
                f"the model takes {res}-px input but resolution {resolution} was asked for: "
                "drop --resolution when fine-tuning a saved model, or train a registry name")
        optimizer = _make_optimizer(config, steps_per_epoch)

    teacher_model = None
    if teacher is not None:
        teacher_model = load_classifier(teacher) if isinstance(teacher, (str, os.PathLike)) else teacher
        _check_labels(teacher_model, train)
        if int(teacher_model.output_shape[-1]) != int(student.output_shape[-1]):
            raise TfedgeError(
                f"teacher outputs {teacher_model.output_shape[-1]} classes, student "
                f"{student.output_shape[-1]}: distil between models of the same label set")
        teacher_res = model_resolution(teacher_model)

    num_classes = int(student.output_shape[-1])
    smoothing = float(config.label_smoothing)
    alpha = float(config.distill_alpha) if teacher_model is not None else 0.0
    temperature = float(config.distill_temperature)

    def prepare(batch):
        images, labels = batch
        teacher_logits = None
        if teacher_model is not None:
            t_in = images if teacher_res == res else tf.image.resize(images, (teacher_res, teacher_res))
            teacher_logits = tf.stop_gradient(teacher_model(t_in, training=False))
        return images, (labels, teacher_logits)

    def loss_fn(targets, logits):
        labels, teacher_logits = targets
        one_hot = tf.one_hot(labels, num_classes)
        if smoothing:
            one_hot = one_hot * (1.0 - smoothing) + smoothing / num_classes
        hard = tf.nn.softmax_cross_entropy_with_logits(one_hot, logits)
        if teacher_logits is None:
            return tf.reduce_mean(hard)
        t_prob = tf.nn.softmax(teacher_logits / temperature)
        s_logp = tf.nn.log_softmax(logits / temperature)
        kl = tf.reduce_sum(t_prob * (tf.math.log(t_prob + 1e-8) - s_logp), axis=-1)
        return tf.reduce_mean((1.0 - alpha) * hard + alpha * temperature ** 2 * kl)

    def metrics_fn(targets, logits):
        labels = tf.cast(targets[0], tf.int32)
        correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
        return {"train_top1": tf.reduce_sum(tf.cast(correct, tf.float32))}

    def dataset_fn(epoch):
        # Seeding each epoch's data by its index makes a resumed run see the same
        # batches an uninterrupted one would have.
        return make_dataset(train, resolution=res, batch_size=global_batch, training=True,
                            augment=config.augment or NO_AUGMENT,
                            seed=config.seed * 1000 + epoch, repeat=True, drop_remainder=True)

    def evaluated_copy():
        final = _without_sync_bn(student) if distributed else student
        if config.bn_recalibration_batches:
            recalibrate_batchnorm(final, train, batches=config.bn_recalibration_batches)
        return final

    early = None
    if config.patience is not None:
        early = EarlyStopping(lambda: evaluate_classifier(evaluated_copy(), val).top1,
                              config.patience, config.min_delta, "val_top1",
                              min_epochs=config.min_epochs)
    with strategy.scope():
        task = TrainingTask(student, optimizer, dataset_fn, loss_fn, steps_per_epoch,
                            global_batch, prepare_fn=prepare, metrics_fn=metrics_fn)
    loop = run_training(task, epochs=config.epochs, strategy=strategy, backup_dir=backup_dir,
                        fingerprint=_run_fingerprint(student, res, train, config, teacher),
                        stop_after_epochs=stop_after_epochs, early_stopping=early)
    if loop.interrupted:
        return student, TrainResult(None, loop.epochs_run, loop.resumed_from,
                                    loop.train_seconds, loop.history, None)

    final = evaluated_copy()
    val_result = evaluate_classifier(final, val) if val is not None and len(val) else None
    if val_result is not None:
        log.info("validation top-1 %.4f (%d images)", val_result.top1, val_result.count)
        warning = chance_warning(val_result.top1, len(train.class_names), loop.stop_reason,
                                 optimizer=config.optimizer, depthwise=_has_depthwise(final))
        if warning:
            log.warning("%s", warning)

    if output is not None and chief:
        meta = {"class_names": list(train.class_names), "train_config": config.to_dict(),
                "train_seconds": loop.train_seconds, **budget_record(loop),
                "val": val_result.to_dict() if val_result else None,
                "teacher": str(teacher) if isinstance(teacher, (str, os.PathLike)) else None}
        meta.update(metadata or {})
        save_classifier(final, output, meta)
        log.info("wrote %s", output)
    return final, TrainResult(output if chief else None, loop.epochs_run, loop.resumed_from,
                              loop.train_seconds, loop.history, val_result,
                              loop.stop_reason, loop.best_epoch)


def budget_record(loop: LoopResult) -> dict[str, Any]:
    """The sidecar's record of how many epochs a run used and why it stopped."""
    return {"epochs": loop.epochs_run, "epochs_used": loop.epochs_run,
            "stop_reason": loop.stop_reason, "best_epoch": loop.best_epoch,
            "best_val_score": loop.best_score}
