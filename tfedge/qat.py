"""Quantisation-aware training (QAT): the one module that touches tensorflow-model-optimization.

tfmot only knows Keras 2 (the ``tf-keras`` package), and importing it sets
``TF_USE_LEGACY_KERAS`` for the whole process, while tfedge trains with
Keras 3. So QAT never runs in the caller's process: :func:`qat_int8` writes
the job (the Keras 3 ``.keras`` model and the labelled fine-tuning images) to
a temporary folder and runs ``python -m tfedge.qat`` on it. That child
rebuilds the model layer by layer in tf-keras, copies the weights (and checks
the copy computes the same logits), wraps it with tfmot's default 8-bit
scheme, fine-tunes it, pins the input's quantisation to raw pixels
``[0, 255]`` (the same input contract as post-training quantisation: int8
input is ``pixel - 128``, uint8 input the pixel) and converts it to a
full-integer ``.tflite``. The caller checks the result exactly as it checks
post-training quantisation.

Supported models are built from the layers in :data:`QAT_LAYERS` (every
classifier of the tfedge registry is). Anything else (the foreground
predictor's heatmap decoding, a user's custom layer) gets a reason from
:func:`qat_support_problem`, and the converters fall back to post-training
quantisation only when the user allows it (``--qat-fallback``).

Install: ``pip install -e ".[qat]"`` then ``pip install --no-deps
tf-keras==2.21.0 tensorflow-model-optimization==0.8.1`` (``bash
scripts/setup.sh`` does both): as ordinary dependencies they would pull the
full ``tensorflow`` wheel over ``tensorflow-cpu``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._errors import TfedgeError

__all__ = ["QatConfig", "QAT_LAYERS", "QAT_INSTALL", "qat_missing_packages",
           "qat_support_problem", "qat_int8"]

log = logging.getLogger(__name__)

#: Keras layer classes the tf-keras rebuild and tfmot's default 8-bit scheme handle.
QAT_LAYERS = frozenset({
    "InputLayer", "Rescaling", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
    "Activation", "Add", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "Dense", "Dropout", "Flatten", "ZeroPadding2D",
})
QAT_INSTALL = ('pip install -e ".[qat]" && pip install --no-deps tf-keras==2.21.0 '
               "tensorflow-model-optimization==0.8.1 (or run: bash scripts/setup.sh)")
#: The tf-keras copy must compute the same logits as the Keras 3 model.
_REBUILD_TOLERANCE = 1e-3
_PIXEL_RANGE = (0.0, 255.0)
_PROGRESS_PREFIX = "qat: "
_STDERR_LINES_KEPT = 30


@dataclass(frozen=True)
class QatConfig:
    """How long and how hard to fine-tune with fake quantisation.

    A short fine-tune of an already trained model: ``images`` labelled
    examples (drawn from the training split, preprocessed as the model sees
    them in deployment), ``epochs`` passes at ``learning_rate`` (Adam).
    ``fallback`` allows post-training quantisation for a model QAT cannot
    handle (the reason is logged and stored in the bundle's metrics).
    """

    epochs: float = 1.0
    images: int = 2000
    learning_rate: float = 1e-4
    batch_size: int = 32
    fallback: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("images", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise TfedgeError(f"QAT {name} must be a whole number >= 1, got {value!r}")
        for name in ("epochs", "learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not np.isfinite(value) or value <= 0:
                raise TfedgeError(f"QAT {name} must be a number > 0, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def qat_missing_packages() -> Optional[str]:
    """``None`` when tf-keras and tfmot are importable, else what is missing and how to install."""
    missing = [name for module, name in (("tf_keras", "tf-keras"),
                                         ("tensorflow_model_optimization",
                                          "tensorflow-model-optimization"),
                                         ("tree", "dm-tree"))
               if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return (f"quantisation-aware training needs {', '.join(missing)}, which are not installed: "
            f"{QAT_INSTALL}")


def qat_support_problem(model) -> Optional[str]:
    """``None`` when QAT can handle ``model`` (a Keras 3 model), else the reason it cannot."""
    import keras

    if not isinstance(model, keras.Model) or type(model).__name__ != "Functional":
        return (f"model {getattr(model, 'name', model)!r} is not a Keras functional model; "
                "QAT rebuilds functional models only")
    unsupported = sorted({type(layer).__name__ for layer in model.layers
                          if type(layer).__name__ not in QAT_LAYERS})
    if unsupported:
        return (f"model {model.name!r} has layers QAT does not handle ({', '.join(unsupported)}); "
                f"QAT supports {', '.join(sorted(QAT_LAYERS))}")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return f"model {model.name!r} has several inputs or outputs; QAT needs one of each"
    return None


def _as_pixels(images: np.ndarray, resolution: int, what: str) -> np.ndarray:
    """Raw pixels checked as for post-training quantisation, stored as uint8 for the child."""
    from ._int8 import _check_pixels

    return np.clip(np.rint(_check_pixels(images, resolution, what)), 0, 255).astype(np.uint8)


def qat_int8(model, images: np.ndarray, labels: np.ndarray, calibration: np.ndarray, *,
             io_dtype: str = "int8", config: Optional[QatConfig] = None) -> tuple[bytes, dict]:
    """Fine-tune ``model`` with fake quantisation and convert it to a full-integer ``.tflite``.

    ``images``/``labels``: the fine-tuning examples (raw pixels at the model's
    resolution, as the model sees them in deployment); ``calibration``: raw
    pixels for the converter's representative dataset. Runs in a child
    process (see the module docstring). Returns the ``.tflite`` bytes and a
    record (``method``, the config, the rebuild's largest logit difference,
    the fine-tuning loss and accuracy). Raises :class:`TfedgeError` when the
    packages are missing, the model is unsupported or the child fails.
    """
    from ._int8 import _check_io_dtype
    from ._train import model_resolution

    config = config or QatConfig()
    _check_io_dtype(io_dtype)
    problem = qat_missing_packages() or qat_support_problem(model)
    if problem:
        raise TfedgeError(problem)
    resolution = model_resolution(model)
    images = _as_pixels(images, resolution, "QAT images")
    calibration = _as_pixels(calibration, resolution, "representative images")
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(images) or len(images) == 0:
        raise TfedgeError(f"QAT needs as many labels as images (got {len(labels)} and "
                          f"{len(images)}), and at least one image")
    with tempfile.TemporaryDirectory(prefix="tfedge-qat-") as tmp:
        job = Path(tmp)
        model.save(job / "model.keras")
        np.save(job / "images.npy", images)
        np.save(job / "labels.npy", labels)
        np.save(job / "calibration.npy", calibration)
        (job / "job.json").write_text(json.dumps({"io_dtype": io_dtype,
                                                  "config": config.to_dict()}))
        _run_child(job)
        record = json.loads((job / "result.json").read_text())
        data = (job / "model.tflite").read_bytes()
    return data, {"method": "qat", **record}


def _run_child(job: Path) -> None:
    package_root = str(Path(__file__).resolve().parent.parent)
    # The child's TensorFlow temporaries (SavedModel export, AutoGraph files) go inside the
    # job folder, which is removed with it (and lies in the caller's private temp folder).
    child_tmp = job / "tmp"
    child_tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(child_tmp),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                       os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "tfedge.qat", str(job)]
    tail: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            if line.startswith(_PROGRESS_PREFIX):
                log.info("%s", line[len(_PROGRESS_PREFIX):])
            elif line:
                tail.append(line)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0 or not (job / "model.tflite").is_file():
        reason = next((line[len("qat-error: "):] for line in reversed(tail)
                       if line.startswith("qat-error: ")), None)
        detail = reason or "\n".join(tail)[-2000:]
        raise TfedgeError(f"quantisation-aware training failed (exit {code}): {detail}")


# --------------------------------------------------------------------------- the child process


def _progress(message: str) -> None:
    print(_PROGRESS_PREFIX + message, file=sys.stderr, flush=True)


def _tf_keras_config(layer_cls, config: dict) -> dict:
    """The Keras 3 layer config cut down to what the tf-keras class takes.

    Initialisers, regularisers and constraints are dropped (the weights are
    copied; nothing is regularised during the short fine-tune), dtype
    policies become plain dtype names.
    """
    accepted = set(inspect.signature(layer_cls.__init__).parameters) | {"name", "trainable"}
    out = {}
    for key, value in config.items():
        if key.endswith(("_initializer", "_regularizer", "_constraint")) or key not in accepted:
            continue
        out[key] = value
    dtype = config.get("dtype")
    if isinstance(dtype, dict):
        out["dtype"] = dtype.get("config", {}).get("name", "float32")
    elif isinstance(dtype, str):
        out["dtype"] = dtype
    return out


def _rebuild_in_tf_keras(model):
    """A tf-keras functional copy of a Keras 3 functional model, with its weights.

    Walks :class:`tfedge.graph.ModelGraph` (every layer call, inputs first);
    a layer called more than once gets one tf-keras twin, called as often.
    """
    import tf_keras

    from .graph import ModelGraph

    graph = ModelGraph.from_model(model)
    tensors: dict[Any, Any] = {}  # TensorRef -> its tf-keras twin tensor
    twins: dict[str, Any] = {}
    for node in graph.nodes:
        if node.is_input:
            ref = node.outputs[0]
            tensors[ref] = tf_keras.Input(shape=tuple(node.output_shapes[0][1:]),
                                          dtype=graph.tensor(ref).dtype, name=node.layer)
            continue
        twin = twins.get(node.layer)
        if twin is None:
            cls = getattr(tf_keras.layers, node.class_name)
            twin = twins[node.layer] = cls(**_tf_keras_config(cls,
                                                              graph.layer(node.layer).get_config()))
        args = [tensors[ref] for ref in node.inputs]
        out = twin(args if len(args) > 1 else args[0])
        for ref, t2 in zip(node.outputs, out if isinstance(out, (list, tuple)) else [out]):
            tensors[ref] = t2
    rebuilt = tf_keras.Model([tensors[ref] for ref in graph.inputs],
                             [tensors[ref] for ref in graph.outputs], name=model.name)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            rebuilt.get_layer(layer.name).set_weights(weights)
    return rebuilt


def _output_only_config():
    """A QuantizeConfig that fake-quantises a layer's output only (for Rescaling)."""
    import tensorflow_model_optimization as tfmot

    quant = tfmot.quantization.keras

    class OutputOnlyQuantizeConfig(quant.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quant.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return OutputOnlyQuantizeConfig


def _quantize_model(rebuilt):
    import tensorflow_model_optimization as tfmot
    import tf_keras

    quant = tfmot.quantization.keras
    output_only = _output_only_config()

    def annotate(layer):
        if isinstance(layer, tf_keras.layers.InputLayer):
            return layer
        if isinstance(layer, tf_keras.layers.Rescaling):
            return quant.quantize_annotate_layer(layer, quantize_config=output_only())
        return quant.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(rebuilt, clone_function=annotate)
    annotated.set_weights(rebuilt.get_weights())
    with quant.quantize_scope({"OutputOnlyQuantizeConfig": output_only}):
        return quant.quantize_apply(annotated)


def _pin_input_quantizer(qat_model) -> None:
    """Fix the input fake-quant range to raw pixels [0, 255] (int8 input = pixel - 128)."""
    pinned = 0
    for layer in qat_model.layers:
        if type(layer).__name__ != "QuantizeLayer":
            continue
        for var in layer.weights:
            short = var.name.split("/")[-1].split(":")[0]
            if short.endswith("_min"):
                var.assign(_PIXEL_RANGE[0])
                pinned += 1
            elif short.endswith("_max"):
                var.assign(_PIXEL_RANGE[1])
                pinned += 1
    if pinned != 2:
        raise RuntimeError(f"expected one input quantiser (min, max), found {pinned} variables")


def _child_main(job: Path) -> None:
    import keras
    import tensorflow as tf
    import tf_keras

    from ._int8 import _int8_converter, _pin_input_range

    spec = json.loads((job / "job.json").read_text())
    config = QatConfig(**spec["config"])
    model = keras.models.load_model(job / "model.keras", compile=False)
    images = np.load(job / "images.npy")
    labels = np.load(job / "labels.npy")
    # As in post-training quantisation, the calibration images span [0, 255] exactly; else the
    # converter re-quantises the input (a float DEQUANTIZE/QUANTIZE pair) to their narrower range.
    calibration = _pin_input_range(np.load(job / "calibration.npy").astype(np.float32))

    rebuilt = _rebuild_in_tf_keras(model)
    probe = calibration[:16]
    difference = float(np.max(np.abs(np.asarray(model(probe, training=False))
                                      - rebuilt(probe, training=False).numpy())))
    if not difference <= _REBUILD_TOLERANCE:
        raise RuntimeError(f"the tf-keras rebuild of {model.name!r} differs from the model by "
                           f"{difference:.3g} in its logits")
    _progress(f"rebuilt {model.name} in tf-keras (largest logit difference {difference:.2g}); "
              f"fine-tuning {config.epochs:g} epoch(s) on {len(images)} images")

    tf_keras.utils.set_random_seed(config.seed)
    qat_model = _quantize_model(rebuilt)
    qat_model.compile(optimizer=tf_keras.optimizers.Adam(config.learning_rate),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    steps_per_epoch = max(1, int(np.ceil(len(images) / config.batch_size)))
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    data = (tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True).repeat()
            .map(lambda x, y: (tf.cast(x, tf.float32), y))
            .batch(config.batch_size).take(total_steps))

    class Progress(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            _progress(f"fine-tune pass {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, "
                      f"accuracy {logs.get('accuracy', float('nan')):.4f}")

    epochs = max(1, int(np.ceil(config.epochs)))
    history = qat_model.fit(data, epochs=epochs, steps_per_epoch=int(np.ceil(total_steps / epochs)),
                            verbose=0, callbacks=[Progress()])
    _pin_input_quantizer(qat_model)

    def representative():
        for i in range(len(calibration)):
            yield [calibration[i:i + 1]]

    data_bytes = _int8_converter(qat_model, representative, spec["io_dtype"]).convert()
    (job / "result.json").write_text(json.dumps({
        "config": config.to_dict(), "rebuild_max_logit_difference": difference,
        "finetune_loss": [float(v) for v in history.history.get("loss", [])],
        "finetune_accuracy": [float(v) for v in history.history.get("accuracy", [])],
        "finetune_images": int(len(images)), "finetune_steps": int(total_steps),
    }))
    tmp = job / "model.tflite.tmp"
    tmp.write_bytes(data_bytes)
    tmp.replace(job / "model.tflite")
    _progress(f"converted: {len(data_bytes)} bytes")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tfedge.qat JOB_FOLDER (written by tfedge.qat.qat_int8)",
              file=sys.stderr)
        return 2
    try:
        _child_main(Path(argv[0]))
    except Exception as exc:  # reported to the parent in one line, traceback above it
        import traceback

        traceback.print_exc()
        print(f"qat-error: {type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
