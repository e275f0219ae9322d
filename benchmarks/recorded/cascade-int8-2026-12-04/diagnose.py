"""Where the int8 cascade loses against float: box/crop shift, stage quantisation, thresholds.

    python benchmarks/recorded/cascade-int8-2026-12-04/diagnose.py CASCADE_JSON CAL_SIZE \
        TRAIN_SIZE VAL_SIZE TEST_SIZE > diagnosis.json

On one calibrated cascade (here the one benchmarks/cascade.py --weak-predictor trained) it
converts the predictor once and every stage twice: A, calibrated on the float predictor's
crops (the converter before issue #18 item 17) and B, on the int8 predictor's device crops
(after). Per split: the float cascade, the float stages on the int8 predictor's boxes (the
crop shift alone), int8 A and B with the float thresholds, per-stage top-1 and agreement on
the same crops, box IoUs, stage-0 score quantiles; then thresholds re-solved on the int8 val
logits (recal_A, recal_B) measured on test.
"""
import json, sys, time
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.cascade import load_cascade, compute_stage_logits
from tfedge.cascade._evaluate import stage_logits_on_crops
from tfedge.cascade._convert import run_int8_cascade, _crops, _whole_images
from tfedge.cascade._int8 import device_crops, recalibrate_thresholds, device_boxes
from tfedge.runtime.decision import simulate_cascade
from tfedge.runtime.interpreter import TfliteModel
from tfedge._convert import quantize_int8, _subset
from tfedge._train import load_classifier
from tfedge.crop import load_predictor, predict_boxes, predictor_export_model
from tfedge.data._boxes import iou

cascade_path = sys.argv[1]
cal_size = int(sys.argv[2]) if len(sys.argv) > 2 else 500
spec = load_cascade(cascade_path)
sizes = dict(train_size=int(sys.argv[3]), val_size=int(sys.argv[4]), test_size=int(sys.argv[5]))
data = load_dataset("benchmark", benchmark=BenchmarkConfig(image_size=128, seed=0, **sizes))
models = [load_classifier(spec.stage_path(k)) for k in range(spec.num_stages)]
predictor = load_predictor(spec.predictor_path())
crop = spec.predictor.crop
cal = _subset(data.train, cal_size, 0)
t0 = time.time()
export = predictor_export_model(predictor)
pbytes, _ = quantize_int8(export, np.concatenate(_whole_images(cal, spec.predictor.resolution, 64)))
ptfl = TfliteModel(pbytes)
fboxes = predict_boxes(predictor, cal, batch_size=64)
stA = [TfliteModel(quantize_int8(m, np.concatenate(_crops(cal, s.resolution, fboxes, crop, 64)))[0])
       for m, s in zip(models, spec.stages)]
_, dcrops = device_crops(cal, [s.resolution for s in spec.stages], predictor=ptfl, crop=crop)
stB = [TfliteModel(quantize_int8(m, c)[0]) for m, c in zip(models, dcrops)]
print("converted in", time.time() - t0, file=sys.stderr)

def run(split, stages, thresholds):
    d, o = run_int8_cascade(split, stages=stages, resolutions=[s.resolution for s in spec.stages],
                            criteria=spec.criteria, weights=spec.weights, thresholds=thresholds,
                            stage_macs=spec.stage_macs, predictor=ptfl,
                            predictor_resolution=spec.predictor.resolution,
                            predictor_macs=spec.predictor_macs, crop=crop)
    return d, o

def sim(logits, labels, thr):
    return simulate_cascade(logits, labels, criteria=spec.criteria, weights=spec.weights,
                            thresholds=thr, stage_macs=spec.stage_macs,
                            predictor_macs=spec.predictor_macs)

def fmt(o):
    return {"top1": round(o.top1, 4), "macs": round(o.expected_macs / 1e6, 3),
            "exit": [round(x, 3) for x in o.exit_fractions],
            "exit_top1": [None if np.isnan(a) else round(a, 4) for a in o.stage_top1]}

res = {"thresholds_float": list(spec.thresholds), "criteria": list(spec.criteria),
       "weights": list(spec.weights), "calibration": {k: spec.calibration.get(k) for k in
       ("mode", "target_accuracy", "macs_budget", "val_top1", "val_expected_macs")},
       "cal_size": cal_size}
for name, split in (("val", data.val), ("test", data.test)):
    f = compute_stage_logits(spec, split, models=models, predictor=predictor)
    dA, oA = run(split, stA, spec.thresholds)
    dB, oB = run(split, stB, spec.thresholds)
    # float stages on the int8 predictor's boxes (crop shift alone)
    fq = stage_logits_on_crops(models, split, dA.boxes, crop)
    r = {"float": fmt(sim(f.logits, f.labels, spec.thresholds)),
         "float_stages_int8_boxes": fmt(sim(fq, f.labels, spec.thresholds)),
         "int8_A_floatcrops_cal": fmt(oA), "int8_B_devicecrops_cal": fmt(oB),
         "stage_top1_float": [round(x, 4) for x in f.stage_top1()],
         "stage_top1_float_on_int8_boxes": [round(float(np.mean(z.argmax(1) == f.labels)), 4) for z in fq],
         "stage_top1_int8A": [round(x, 4) for x in dA.stage_top1()],
         "stage_top1_int8B": [round(x, 4) for x in dB.stage_top1()],
         "agreement_A_vs_float_same_crops": [round(float(np.mean(a.argmax(1) == b.argmax(1))), 4) for a, b in zip(dA.logits, fq)],
         "agreement_B_vs_float_same_crops": [round(float(np.mean(a.argmax(1) == b.argmax(1))), 4) for a, b in zip(dB.logits, fq)],
         "box_iou_int8_vs_float": round(float(np.mean(iou(dA.boxes, f.boxes))), 4),
         "box_iou_float_vs_truth": round(float(np.nanmean(iou(f.boxes, split.boxes))), 4),
         "box_iou_int8_vs_truth": round(float(np.nanmean(iou(dA.boxes, split.boxes))), 4)}
    # stage-0 score distributions: float vs int8 on the same images
    from tfedge.runtime.decision import accumulate_logits, criterion_scores
    sf = criterion_scores(accumulate_logits(f.logits, spec.weights)[0], spec.criteria[0])
    sA = criterion_scores(accumulate_logits(dA.logits, spec.weights)[0], spec.criteria[0])
    sB = criterion_scores(accumulate_logits(dB.logits, spec.weights)[0], spec.criteria[0])
    r["stage0_score_quantiles_float"] = [round(float(q), 4) for q in np.quantile(sf, [.1, .25, .5, .75, .9])]
    r["stage0_score_quantiles_int8A"] = [round(float(q), 4) for q in np.quantile(sA, [.1, .25, .5, .75, .9])]
    r["stage0_score_quantiles_int8B"] = [round(float(q), 4) for q in np.quantile(sB, [.1, .25, .5, .75, .9])]
    res[name] = r
    if name == "val":
        valA, valB, valF = dA, dB, f
    else:
        for tag, vd, td in (("A", valA, dA), ("B", valB, dB)):
            rc = recalibrate_thresholds(spec, vd.logits, vd.labels)
            res[f"recal_{tag}"] = {"thresholds": list(rc.thresholds), "val": round(rc.val_top1, 4),
                                   "val_macs": round(rc.val_expected_macs / 1e6, 3), "feasible": rc.feasible,
                                   "test": fmt(sim(td.logits, td.labels, rc.thresholds))}
print(json.dumps(res, indent=1))
