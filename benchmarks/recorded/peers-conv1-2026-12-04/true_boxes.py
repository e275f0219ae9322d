"""Test top-1 of the converged crop stages at the boxes of a predictor (or refiner) file in
runs/benchmarks/peers_conv1, and at the true boxes: python true_boxes.py predictor_seed0.keras"""
import json, logging, sys
logging.basicConfig(level=logging.WARNING)
import tfedge
from tfedge.crop import evaluate_crop_pipeline, load_predictor, trained_crop_config
from tfedge.data import BenchmarkConfig, load_dataset
out = "runs/benchmarks/peers_conv1"
data = load_dataset("benchmark", benchmark=BenchmarkConfig(train_size=4000, val_size=500, test_size=1000))
pred = load_predictor(f"{out}/" + sys.argv[1])
rows = {}
boxes = None
for stage in ("resnet10_025_r64", "resnet10_050_r64"):
    path = f"{out}/stage_{stage}_seed0.keras"
    model = tfedge.load_classifier(path)
    r, boxes = evaluate_crop_pipeline(pred, model, data.test, crop=trained_crop_config([path]),
                                      predicted_boxes=boxes)
    rows[stage] = {"top1_predicted_boxes": r.top1_predicted, "top1_true_boxes": r.top1_oracle,
                   "top1_whole_image": r.top1_full}
    iou = r.boxes
rows["test_boxes"] = iou if isinstance(iou, dict) else getattr(iou, "__dict__", str(iou))
print(json.dumps(rows, default=str))
