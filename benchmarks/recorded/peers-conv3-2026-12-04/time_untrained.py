"""Int8 latency of untrained MobileNetV2 variants beside resnet18_025@128 (which runs at the
cascade's time), and of the trained mobilenetv2_050@96 peer, interleaved in one process.

    TF_NUM_INTRAOP_THREADS=2 python benchmarks/recorded/peers-conv3-2026-12-04/time_untrained.py
"""
import numpy as np

import keras
from tfedge import convert_to_int8, count_macs
from tfedge.models import create_model
from tfedge.shrink import time_interleaved

rng = np.random.default_rng(0)
variants = [("resnet18_025", 128)] + [(f"mobilenetv2_{w}", r) for w in ("035", "050", "075")
                                      for r in (96, 128)]
models = {}
for name, res in variants:
    model = create_model(name, resolution=res, num_classes=10)
    models[f"{name}@{res}"] = convert_to_int8(model, rng.uniform(0, 255, (16, res, res, 3)))
    print(f"{name}@{res}: {count_macs(model).mmacs:.1f} MMACs", flush=True)
trained = keras.models.load_model("runs/benchmarks/peers_conv3/peer_mobilenetv2_050_r96_seed0.keras")
models["trained mobilenetv2_050@96"] = convert_to_int8(trained, rng.uniform(0, 255, (16, 96, 96, 3)))
for key, t in time_interleaved(models, rounds=7).items():
    print(f"{key:28s} {t['p50']:.3f} ms")
