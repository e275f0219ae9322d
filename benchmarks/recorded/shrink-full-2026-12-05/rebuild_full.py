"""#15 at the full data size: rebuild each 50% compound architecture of runs/benchmarks/s20 (and
s20g) from its base in one shot and give it exactly a baseline's training (as the recorded
shrink-noise rebuild.py at 4,000 images). Usage: rebuild_full.py FOLDER:SEED:TARGET ...
Prints one JSON line per folder."""
import importlib.util
import json
import sys
import time
from pathlib import Path

from tfedge import evaluate_classifier, load_classifier, recalibrate_batchnorm
from tfedge.data import BenchmarkConfig, load_dataset
from tfedge.shrink import SearchConfig, finetune_with_distillation

spec = importlib.util.spec_from_file_location(
    "rebuild", "/work/main/benchmarks/recorded/shrink-noise-2026-12-05/rebuild.py")
rebuild_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rebuild_module)

data = load_dataset("benchmark", benchmark=BenchmarkConfig(
    image_size=128, object_size=(24, 64), train_size=20000, val_size=2000, test_size=5000, seed=0))
for item in sys.argv[1:]:
    folder, seed, target = item.split(":")
    folder, seed = Path(folder), int(seed)
    base = load_classifier(folder / f"shrink_full_base_seed{seed}.keras")
    sidecar = folder / "shrink_full_models" / f"compound_full_{float(target):g}.keras.json"
    arch = json.loads(sidecar.read_text())["shrink"]["architecture"]
    seeds_json = folder / "shrink_full_seeds.json"  # absent where a run was stopped: see its log
    charged = None if not seeds_json.exists() else next(
        r["top1"] for r in json.loads(seeds_json.read_text())[0]["rows"]
        if r["method"] == "compound" and r["target"] == float(target))
    model = rebuild_module.rebuild(base, arch)
    config = SearchConfig(target_macs=arch["macs"], finetune_epochs=2, round_to=8, seed=seed)
    start = time.perf_counter()
    recalibrate_batchnorm(model, data.train, batches=config.bn_batches, batch_size=config.batch_size)
    tuned = finetune_with_distillation(model, base, data.train, config=config.finetune())
    print(json.dumps({"folder": str(folder), "seed": seed, "target": float(target),
                      "macs": arch["macs"], "resolution": arch["resolution"],
                      "widths": arch["widths"], "charged": charged,
                      "rebuilt": evaluate_classifier(tuned, data.test).top1,
                      "seconds": round(time.perf_counter() - start)}), flush=True)
