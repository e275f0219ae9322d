"""Runner (tfedge-pi JSON lines) vs the Python evaluation of the same bundle, per test image."""
import json, sys
import numpy as np
from tfedge.compress import DataSource
from tfedge.runtime import load_bundle
from tfedge.runtime.evaluate import evaluate_bundle

data_dir, bundle_path, records_path = sys.argv[1:4]
test = DataSource(data_dir).load().test
records = {}
for line in open(records_path):
    r = json.loads(line)
    records[str(__import__("pathlib").Path(r["source"]).resolve())] = r
with load_bundle(bundle_path) as bundle:
    ev = evaluate_bundle(bundle, test)
    version, refiner = bundle.version, bundle.refiner is not None
n = len(test.paths)
same_class = same_exit = same_window = same_box = 0
for i, p in enumerate(test.paths):
    r = records[str(__import__("pathlib").Path(p).resolve())]
    same_class += r["class"] == int(ev.predictions[i])
    same_exit += r["exit_stage"] == int(ev.exit_stages[i])
    same_window += list(r["window"]) == [int(v) for v in ev.windows[i]]
    same_box += np.allclose(r["box"], ev.boxes[i], atol=5e-6)
print(json.dumps({"bundle": bundle_path, "manifest_version": version, "refiner": refiner,
                  "images": n, "runner_records": len(records), "same_class": same_class,
                  "same_exit": same_exit, "same_window": same_window, "same_box_1e-5": same_box,
                  "agreement": same_class / n, "python_top1": ev.top1}))
