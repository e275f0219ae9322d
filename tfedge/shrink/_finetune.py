"""Fine-tuning a shrunk model with knowledge distillation from the model it came from.

Shrinking removes channels, blocks or pixels the network had learned to use;
a short fine-tune with the uncompressed model as teacher recovers most of the
loss (EdgeCompress fine-tunes every compressed model this way). This is a thin
layer over the project's one training engine (:func:`tfedge._train.train_classifier`,
which already distils from a teacher, backs up each epoch and resumes), so the
fine-tune of compound shrinking and of every baseline is the same code and the
same budget.

After the last epoch the BatchNorm statistics are re-estimated on un-augmented
training images (``recalibrate_batchnorm``): pruned or resized networks see
activations whose statistics no longer match the moving averages they carry,
and short schedules with momentum 0.99-0.999 never catch up (see DESIGN.md,
Known traps). A pretrained model fine-tuned on a few images is the opposite
case: its statistics came from far more data than the fine-tune has, so
``freeze_batchnorm`` keeps them (BatchNorm layers in inference mode while
training, no re-estimation).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .._errors import TfedgeError

__all__ = ["FinetuneConfig", "finetune_with_distillation", "copy_model"]

log = logging.getLogger(__name__)

#: A fine-tune starts from trained weights: a smaller peak rate than training from scratch
#: (tfedge._train.TrainConfig uses 2e-3) keeps what the shrunk network still knows.
DEFAULT_FINETUNE_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class FinetuneConfig:
    """How every shrunk model (compound or baseline) is fine-tuned: one budget for all.

    epochs: passes over the training split (0: BatchNorm re-estimation only).
    distill_alpha, distill_temperature: the distillation loss
        ``(1 - alpha) * CE + alpha * T^2 * KL`` of :class:`tfedge.TrainConfig`.
    augment: train with the engine's default augmentation (else plain resized images).
    bn_recalibration_batches: batches of training images that re-estimate the BatchNorm
        statistics after the fine-tune (0: none).
    freeze_batchnorm: keep the BatchNorm layers' statistics (and scales) as the student
        has them: the layers train in inference mode (``trainable=False`` for the
        fine-tune, restored on the result) and nothing re-estimates them. For a
        pretrained model fine-tuned on few images, whose statistics a small sample
        would ruin.
    """

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = DEFAULT_FINETUNE_LEARNING_RATE
    distill_alpha: float = 0.7
    distill_temperature: float = 4.0
    augment: bool = True
    seed: int = 0
    steps_per_epoch: Optional[int] = None
    bn_recalibration_batches: int = 32
    freeze_batchnorm: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # other TrainConfig fields

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise TfedgeError(f"fine-tune epochs must be a whole number >= 0, got {self.epochs!r}")
        b = self.bn_recalibration_batches
        if isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise TfedgeError(f"bn_recalibration_batches must be a whole number >= 0 (0: keep "
                              f"the statistics), got {b!r}")

    def train_config(self):
        """The :class:`tfedge.TrainConfig` this fine-tune runs with (``epochs >= 1``)."""
        from .._train import TrainConfig
        from ..data import AugmentConfig

        return TrainConfig(epochs=max(1, self.epochs), batch_size=self.batch_size,
                           learning_rate=self.learning_rate, distill_alpha=self.distill_alpha,
                           distill_temperature=self.distill_temperature, seed=self.seed,
                           augment=AugmentConfig() if self.augment else None,
                           steps_per_epoch=self.steps_per_epoch,
                           bn_recalibration_batches=(0 if self.freeze_batchnorm
                                                     else self.bn_recalibration_batches),
                           **self.extra)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def copy_model(model):
    """A new model with the same architecture and weights (the argument is never trained)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _batchnorm_layers(model) -> list:
    import keras

    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found.extend(_batchnorm_layers(layer))
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def finetune_with_distillation(
    student,
    teacher,
    train,
    val=None,
    *,
    epochs: Optional[int] = None,
    config: Optional[FinetuneConfig] = None,
    output: Union[str, os.PathLike, None] = None,
    backup_dir: Union[str, os.PathLike, None] = None,
    metadata: Optional[dict] = None,
):
    """Fine-tune a copy of ``student`` on ``train``, distilling from ``teacher``; return it.

    student: the shrunk Keras classifier (not modified).
    teacher: the model it was shrunk from (a Keras model or ``.keras`` path), or
        None for a plain fine-tune. It may take another resolution: it sees the
        same augmented images resized to its own input.
    epochs: overrides ``config.epochs``; 0 re-estimates the BatchNorm statistics only.
    output: where to write the result with its sidecar (atomically); with
        ``backup_dir`` (default ``<output>.backup``) a killed fine-tune resumes.
    val: a held-out split scored at the end (logged; also in the sidecar).
    """
    from .._train import recalibrate_batchnorm, save_classifier, train_classifier

    config = config or FinetuneConfig()
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    model = copy_model(student)
    if config.epochs == 0:
        # Nothing to train: the shrunk weights as they are, with statistics that fit them
        # (or, frozen, the statistics they came with).
        if not config.freeze_batchnorm:
            recalibrate_batchnorm(model, train, batches=config.bn_recalibration_batches,
                                  batch_size=config.batch_size)
        if output is not None:
            save_classifier(model, output, {"class_names": list(train.class_names),
                                            "finetune": config.to_dict(), **(metadata or {})})
        return model
    log.info("fine-tuning %s for %d epoch(s)%s", model.name, config.epochs,
             " with distillation" if teacher is not None else "")
    frozen = []
    if config.freeze_batchnorm:
        # Keras 3: a non-trainable BatchNormalization normalises with its moving statistics
        # in training too and never updates them.
        frozen = [layer.name for layer in _batchnorm_layers(model) if layer.trainable]
        for layer in _batchnorm_layers(model):
            layer.trainable = False
    trained, _ = train_classifier(
        model, train, val=val, config=config.train_config(), teacher=teacher, output=output,
        backup_dir=backup_dir, metadata={"finetune": config.to_dict(), **(metadata or {})})
    if frozen:
        # The result trains like any model afterwards (its statistics are kept as they are).
        names = set(frozen)
        for layer in _batchnorm_layers(trained):
            if layer.name in names:
                layer.trainable = True
    return trained
