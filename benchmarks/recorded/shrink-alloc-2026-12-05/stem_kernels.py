"""int8 ms of a lone stem (convolution, BatchNorm, ReLU, pooled to a Dense head) at 128 px, one
thread, interleaved: which kernel shape is slow on this machine.

    python benchmarks/recorded/shrink-alloc-2026-12-05/stem_kernels.py
"""
import sys; sys.path.insert(0, "benchmarks")
import numpy as np, keras
from shrink import _int8
from tfedge.shrink import time_interleaved
rng = np.random.default_rng(0)
imgs = rng.integers(0, 255, (32, 128, 128, 3)).astype(np.uint8)
def net(cin_pad, k, cout, stride=2):
    x = keras.Input((128, 128, 3))
    h = keras.layers.Rescaling(1/255.)(x)
    if cin_pad:  # a fourth, zero input channel
        h = keras.layers.Concatenate()([h, keras.layers.Lambda(lambda t: t[..., :1] * 0)(h)])
    h = keras.layers.Conv2D(cout, k, strides=stride, padding="same", use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h); h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(10)(h))
tfl = {}
for name, args in {"c3_k7_o8": (0, 7, 8), "c3_k7_o32": (0, 7, 32), "c3_k3_o8": (0, 3, 8), "c3_k3_o32": (0, 3, 32), "c4_k7_o8": (1, 7, 8), "c4_k3_o32": (1, 3, 32)}.items():
    try:
        tfl[name] = _int8(net(*args), imgs)
    except Exception as e:
        print(name, "failed", e)
print({k: round(v["p50"], 3) for k, v in time_interleaved(tfl).items()})
