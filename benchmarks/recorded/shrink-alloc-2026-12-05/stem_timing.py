"""int8 ms of the uniform 25% model of seed 0 cut after each of its first layers (global average
pooling and a Dense head added so each converts): which layer the time goes to.

    python benchmarks/recorded/shrink-alloc-2026-12-05/stem_timing.py runs/benchmarks/s15/a_s0
"""
import sys
sys.path.insert(0, "benchmarks")
import keras, numpy as np
from shrink import _int8
from tfedge import load_classifier
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.shrink import time_interleaved
R = sys.argv[1].rstrip("/") + "/"  # e.g. runs/benchmarks/s15/a_s0
data = load_dataset("benchmark", benchmark=BenchmarkConfig(image_size=128, object_size=(24, 64), train_size=4000, val_size=500, test_size=1000, seed=0))
imgs = data.train.images[:64]
m = load_classifier(R + "shrink_full_models/uniform_full_0.25.keras")
print([ (l.name, type(l).__name__) for l in m.layers][:8])
tfl = {}
for name in [l.name for l in m.layers][1:6]:
    sub = keras.Model(m.input, keras.layers.GlobalAveragePooling2D()(m.get_layer(name).output))
    sub = keras.Model(sub.input, keras.layers.Dense(10)(sub.output))
    try:
        tfl[name] = _int8(sub, imgs)
    except Exception as e:
        print(name, e)
print({k: round(v["p50"], 3) for k, v in time_interleaved(tfl).items()})
