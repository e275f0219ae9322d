"""Top-K modes of the heat map, each refined; oracle best-of-K and refiner-scored choice."""
import json, sys
import numpy as np
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.crop import load_predictor
from tfedge.crop._boxnet import predictor_export_model, predictor_spec_of
from tfedge.crop._crop_datasets import window_crops
from tfedge.data._tfdata import make_dataset
from tfedge.data._types import ImageSplit
from tfedge.data._boxes import iou
from tfedge.runtime.geometry import decode_boxes, _cell_centres
from tfedge.runtime.refine import boxes_from_window, merge_refined

R = "runs/benchmarks/peers_full/"  # run from the repository root
pair = load_predictor(R + "refiner_seed0.keras")
res = predictor_spec_of(pair.predictor).resolution
rres = predictor_spec_of(pair.refiner).resolution
pmaps = predictor_export_model(pair.predictor)
rmaps = predictor_export_model(pair.refiner)
data = load_dataset("benchmark", benchmark=BenchmarkConfig(image_size=128, train_size=20000,
                    val_size=2000, test_size=5000, seed=0))

def heat(model, split, r):
    ds = make_dataset(split, resolution=r, batch_size=256, training=False)
    lg, sz = [], []
    for images, _ in ds:
        a, b = model(images, training=False)
        lg.append(np.asarray(a)); sz.append(np.asarray(b))
    return np.concatenate(lg).astype(np.float64), np.concatenate(sz).astype(np.float64)

def softmax(lg):
    p = np.exp(lg - lg.max(-1, keepdims=True)); return p / p.sum(-1, keepdims=True)

def window_mass(prob, m):
    n = prob.shape[-1]; side = int(round(n ** 0.5)); g = prob.reshape(-1, side, side)
    pad = np.pad(g, ((0, 0), (m, m), (m, m)))
    return sum(pad[:, m + dy:m + dy + side, m + dx:m + dx + side]
               for dy in range(-m, m + 1) for dx in range(-m, m + 1)).reshape(len(g), -1)

def local_decode(prob, sz, peak, radius, size_global=False):
    n = prob.shape[-1]; side = int(round(n ** 0.5))
    py, px = np.divmod(peak, side)
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    mask = ((np.abs(yy[None] - py[:, None, None]) <= radius)
            & (np.abs(xx[None] - px[:, None, None]) <= radius)).reshape(len(prob), -1)
    lp = np.where(mask, prob, 0.0); lp /= lp.sum(-1, keepdims=True)
    centre = lp @ _cell_centres(n)
    size = np.einsum("bn,bnc->bc", prob if size_global else lp, sz)
    return decode_boxes(np.concatenate([centre, size], -1).astype(np.float32)), lp

def peaks(prob, k, radius, m):
    n = prob.shape[-1]; side = int(round(n ** 0.5))
    score = window_mass(prob, m) if m else prob.copy()
    out = []
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    for _ in range(k):
        p = score.argmax(-1); out.append(p)
        py, px = np.divmod(p, side)
        sup = ((np.abs(yy[None] - py[:, None, None]) <= 2 * radius)
               & (np.abs(xx[None] - px[:, None, None]) <= 2 * radius)).reshape(len(prob), -1)
        score = np.where(sup, -1.0, score)
    return out

def refine_once(split, boxes):
    crops, windows = window_crops(split, boxes, resolution=rres, window=pair.window, batch_size=256)
    cs = ImageSplit(crops, np.zeros(len(crops), np.int32), None, tuple(split.class_names))
    lg, sz = heat(rmaps, cs, rres)
    prob = softmax(lg)
    inner = decode_boxes(np.concatenate([prob @ _cell_centres(lg.shape[-1]),
                                         np.einsum("bn,bnc->bc", prob, sz)], -1).astype(np.float32))
    new = merge_refined(boxes, boxes_from_window(inner, windows), windows)
    conf = dict(maxlogit=lg.max(-1), maxprob=prob.max(-1), mass1=window_mass(prob, 1).max(-1))
    return new, conf

def stats(b, truth):
    s = iou(b, truth)
    return dict(miou=round(float(s.mean()), 4), p10=round(float(np.percentile(s, 10)), 4),
                missed=round(float(np.mean(s < 0.5)), 4))

split = getattr(data, sys.argv[1] if len(sys.argv) > 1 else "val")
truth = split.boxes
lg, sz = heat(pmaps, split, res)
prob = softmax(lg)
for radius, m, k in [(4, 0, 2), (4, 1, 2), (3, 1, 3), (4, 0, 3)]:
    cands = []
    for j, pk in enumerate(peaks(prob, k, radius, m)):
        first, lp = local_decode(prob, sz, pk, radius, size_global=False)
        b1, c1 = refine_once(split, first)
        b2, c2 = refine_once(split, b1)
        cands.append(dict(first=first, b1=b1, b2=b2, c1=c1, c2=c2,
                          pmass=window_mass(prob, radius).reshape(len(prob), -1)[np.arange(len(prob)), pk]))
    ious = np.stack([iou(c["b2"], truth) for c in cands])
    row = {"radius": radius, "m": m, "k": k, "top1": stats(cands[0]["b2"], truth),
           "oracle": dict(miou=round(float(ious.max(0).mean()), 4), missed=round(float(np.mean(ious.max(0) < 0.5)), 4))}
    for key in ("maxlogit", "maxprob", "mass1"):
        for which in ("c1", "c2"):
            sc = np.stack([c[which][key] for c in cands]); pick = sc.argmax(0)
            chosen = np.stack([c["b2"] for c in cands])[pick, np.arange(len(truth))]
            row[f"{key}_{which}"] = stats(chosen, truth)
    # refiner-score choice with a margin in favour of the predictor's first mode
    print(json.dumps(row), flush=True)
