"""Decode experiment (#19): global soft-argmax vs soft-argmax around the heat map's mode.

Inference only, on peers_full's seed-0 predictor and refiner, val + test splits (held-out photos).
"""
import json, sys
import numpy as np
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.crop import load_predictor, refine_boxes
from tfedge.crop._boxnet import predictor_export_model, predictor_spec_of
from tfedge.data._tfdata import make_dataset
from tfedge.data._boxes import iou
from tfedge.runtime.geometry import decode_boxes, _cell_centres

R = "runs/benchmarks/peers_full/"  # run from the repository root
pair = load_predictor(R + "refiner_seed0.keras")
maps = predictor_export_model(pair.predictor)
res = predictor_spec_of(pair.predictor).resolution
data = load_dataset("benchmark", benchmark=BenchmarkConfig(image_size=128, train_size=20000,
                    val_size=2000, test_size=5000, seed=0))

def heat(split):
    ds = make_dataset(split, resolution=res, batch_size=256, training=False)
    lg, sz = [], []
    for images, _ in ds:
        a, b = maps(images, training=False)
        lg.append(np.asarray(a)); sz.append(np.asarray(b))
    return np.concatenate(lg).astype(np.float64), np.concatenate(sz).astype(np.float64)

def decode(lg, sz, radius=None, mass_radius=None):
    n = lg.shape[-1]; side = int(round(n ** 0.5))
    prob = np.exp(lg - lg.max(-1, keepdims=True)); prob /= prob.sum(-1, keepdims=True)
    if radius is not None:
        g = prob.reshape(-1, side, side)
        if mass_radius:
            m = mass_radius
            pad = np.pad(g, ((0, 0), (m, m), (m, m)))
            score = sum(pad[:, m + dy:m + dy + side, m + dx:m + dx + side]
                        for dy in range(-m, m + 1) for dx in range(-m, m + 1))
        else:
            score = g
        peak = score.reshape(len(g), -1).argmax(-1)
        py, px = np.divmod(peak, side)
        yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        mask = ((np.abs(yy[None] - py[:, None, None]) <= radius)
                & (np.abs(xx[None] - px[:, None, None]) <= radius)).reshape(len(g), -1)
        prob = np.where(mask, prob, 0.0); prob /= prob.sum(-1, keepdims=True)
    centre = prob @ _cell_centres(n)
    size = np.einsum("bn,bnc->bc", prob, sz)
    return decode_boxes(np.concatenate([centre, size], -1).astype(np.float32))

def stats(b, truth):
    s = iou(b, truth)
    cy = (b[:, 0] + b[:, 2]) / 2; cx = (b[:, 1] + b[:, 3]) / 2
    outside = (cy < truth[:, 0]) | (cy > truth[:, 2]) | (cx < truth[:, 1]) | (cx > truth[:, 3])
    return dict(miou=round(float(s.mean()), 4), p10=round(float(np.percentile(s, 10)), 4),
                missed=round(float(np.mean(s < 0.5)), 4),
                wrong=round(float(np.mean((s < 0.5) & outside)), 4))

variants = [("global", {}), ("r1", dict(radius=1)), ("r2", dict(radius=2)), ("r3", dict(radius=3)),
            ("r4", dict(radius=4)), ("r2m1", dict(radius=2, mass_radius=1)),
            ("r3m1", dict(radius=3, mass_radius=1)), ("r3m2", dict(radius=3, mass_radius=2))]
for name in sys.argv[1:] or ["val"]:
    split = getattr(data, name)
    lg, sz = heat(split)
    for vname, kw in variants:
        first = decode(lg, sz, **kw)
        refined = refine_boxes(pair.refiner, split, first, window=pair.window, passes=pair.passes)
        print(json.dumps({"split": name, "variant": vname, "first": stats(first, split.boxes),
                          "refined": stats(refined, split.boxes)}), flush=True)
