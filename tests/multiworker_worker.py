"""One worker of the two-worker training test (run by tests/test_cli.py in a subprocess).

usage: multiworker_worker.py INDEX PORT0 PORT1 OUTPUT_DIR
Trains a tiny model with strategy 'multi-worker' and saves this worker's final
weights to OUTPUT_DIR/weights<INDEX>.npz.
"""

import json
import os
import sys
from pathlib import Path

index, port0, port1, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
    "task": {"type": "worker", "index": index}})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from conftest import make_colour_split  # noqa: E402
from tfedge._train import TrainConfig, train_classifier  # noqa: E402

split = make_colour_split(64)
model, result = train_classifier(
    "resnet10_025", split, resolution=32, output=out_dir / "model.keras",
    config=TrainConfig(epochs=2, batch_size=16, steps_per_epoch=2, augment=None,
                       strategy="multi-worker", bn_recalibration_batches=1))
np.savez(out_dir / f"weights{index}.npz", *model.get_weights())
print(json.dumps({"worker": index, "epochs": result.epochs_run,
                  "wrote_model": result.model_path is not None}))
