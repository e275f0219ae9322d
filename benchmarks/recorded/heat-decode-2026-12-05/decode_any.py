"""decode_radius_wide.py for any predictor: whole grid against r4/r5/r6/r8, on val and test.

    python benchmarks/recorded/heat-decode-2026-12-05/decode_any.py PREDICTOR.keras [REFINER.keras]

With a refiner's file (whose sidecar names its predictor) the refined boxes are scored too.
"""
import json
import sys

import numpy as np

from tfedge.crop import load_predictor, refine_boxes
from tfedge.crop._boxnet import predictor_export_model, predictor_spec_of
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.data._boxes import iou
from tfedge.data._tfdata import make_dataset
from tfedge.runtime.geometry import _cell_centres, decode_boxes

loaded = load_predictor(sys.argv[-1])
predictor = getattr(loaded, "predictor", loaded)
pair = loaded if predictor is not loaded else None
maps = predictor_export_model(predictor)
res = predictor_spec_of(predictor).resolution
data = load_dataset("benchmark", benchmark=BenchmarkConfig(image_size=128, train_size=20000,
                    val_size=2000, test_size=5000, seed=0))


def heat(split):
    lg, sz = [], []
    for images, _ in make_dataset(split, resolution=res, batch_size=256, training=False):
        a, b = maps(images, training=False)
        lg.append(np.asarray(a))
        sz.append(np.asarray(b))
    return np.concatenate(lg).astype(np.float64), np.concatenate(sz).astype(np.float64)


def decode(lg, sz, radius=None):
    n = lg.shape[-1]
    side = int(round(n ** 0.5))
    prob = np.exp(lg - lg.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    if radius is not None:
        py, px = np.divmod(prob.argmax(-1), side)
        yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        mask = ((np.abs(yy[None] - py[:, None, None]) <= radius)
                & (np.abs(xx[None] - px[:, None, None]) <= radius)).reshape(len(prob), -1)
        prob = np.where(mask, prob, 0.0)
        prob /= prob.sum(-1, keepdims=True)
    centre = prob @ _cell_centres(n)
    size = np.einsum("bn,bnc->bc", prob, sz)
    return decode_boxes(np.concatenate([centre, size], -1).astype(np.float32))


def stats(b, truth):
    s = iou(b, truth)
    cy, cx = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    outside = (cy < truth[:, 0]) | (cy > truth[:, 2]) | (cx < truth[:, 1]) | (cx > truth[:, 3])
    return dict(miou=round(float(s.mean()), 4), p10=round(float(np.percentile(s, 10)), 4),
                missed=round(float(np.mean(s < 0.5)), 4),
                wrong=round(float(np.mean((s < 0.5) & outside)), 4))


for name in ("val", "test"):
    split = getattr(data, name)
    lg, sz = heat(split)
    for vname, radius in (("global", None), ("r4", 4), ("r5", 5), ("r6", 6), ("r8", 8)):
        first = decode(lg, sz, radius)
        row = {"predictor": predictor.name, "file": sys.argv[-1], "split": name,
               "variant": vname, "first": stats(first, split.boxes)}
        if pair is not None:
            refined = refine_boxes(pair.refiner, split, first, window=pair.window,
                                   passes=pair.passes)
            row["refined"] = stats(refined, split.boxes)
        print(json.dumps(row), flush=True)
