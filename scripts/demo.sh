#!/usr/bin/env bash
# Set up (if needed) and run the tfedge pipeline on the built-in benchmark:
#   data -> base classifier -> int8 bundle -> checked bundle -> on-device runner.
# Everything lands in runs/demo/. About 10 minutes on 2 cores; DEMO_EPOCHS and
# DEMO_TRAIN_SIZE make it longer and more accurate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

OUT=runs/demo
EPOCHS="${DEMO_EPOCHS:-4}"
TRAIN_SIZE="${DEMO_TRAIN_SIZE:-6000}"
DATA=(--train-size "$TRAIN_SIZE" --val-size 1000 --test-size 2000)
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$OUT"
BIN=.venv/bin

echo "== 1/5 built-in benchmark (fashion-on-photos, 128 px; cached after the first run)"
"$BIN/tfedge" data "${DATA[@]}" --preview "$OUT/benchmark_preview.png" | tail -n 1

echo "== 2/5 base classifier: resnet10_050 on full 128-px images, $EPOCHS epochs"
"$BIN/tfedge" train --model resnet10_050 --epochs "$EPOCHS" "${DATA[@]}" \
  --output "$OUT/base.keras" --evaluate-test | tail -n 1

echo "== 3/5 full-int8 bundle, int8 top-1 checked against float"
rm -rf "$OUT/base_bundle" "$OUT/base_bundle.zip"
"$BIN/tfedge-convert" classifier --model "$OUT/base.keras" "${DATA[@]}" \
  --output "$OUT/base_bundle" --zip --tolerance 2.0 | tail -n 1

echo "== 4/5 bundle integrity"
"$BIN/tfedge-convert" verify "$OUT/base_bundle.zip" | tail -n 1

if [ -f rpi_runner/cli.py ]; then
  echo "== 5/5 Raspberry Pi runner (no TensorFlow) on 200 test images"
  "$BIN/python" - "$OUT" <<'PY'
import sys
from pathlib import Path
from PIL import Image
from tfedge.data import BenchmarkConfig, load_benchmark
out = Path(sys.argv[1]) / "test_images"
out.mkdir(parents=True, exist_ok=True)
cfg = BenchmarkConfig(train_size=int(__import__("os").environ.get("DEMO_TRAIN_SIZE", 6000)),
                      val_size=1000, test_size=2000)
test = load_benchmark(cfg, progress=False).test
for i in range(200):
    Image.fromarray(test.images[i]).save(out / f"{i:04d}_{test.labels[i]}.jpg", quality=95)
PY
  "$BIN/tfedge-pi" "$OUT/base_bundle.zip" "$OUT/test_images" --benchmark | tail -n 1
fi
echo "== done: see $OUT/ (benchmark_preview.png, base.keras, base_bundle.zip)"
