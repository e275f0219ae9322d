#!/usr/bin/env bash
# Set up (if needed) and run the whole EdgeCompress method on the built-in benchmark:
#   base classifier -> foreground predictor -> crop classifier -> compound shrinking
#   -> calibrated early-exit cascade -> int8 bundle checked against float -> report,
# then check the bundle and run it with the on-device runner (no TensorFlow).
# Everything lands in runs/demo/ (report: runs/demo/report/report.html). The quick preset
# takes about 15 minutes on 2 idle cores; a second run reuses every cached step (under a
# minute). DEMO_PRESET=full runs the benchmark settings (hours).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PRESET="${DEMO_PRESET:-quick}"
OUT="${DEMO_OUTPUT:-runs/demo}"
BIN=.venv/bin
export TF_CPP_MIN_LOG_LEVEL=2

echo "== 1/3 tfedge demo --preset $PRESET (every step cached in $OUT; a killed run resumes)"
"$BIN/tfedge" demo --preset "$PRESET" --output "$OUT" | grep -v '^{'

echo "== 2/3 bundle integrity (tfedge-convert verify)"
"$BIN/tfedge-convert" verify "$OUT/bundle.zip" | tail -n 2 | head -n 1

echo "== 3/3 Raspberry Pi runner (tfedge-pi, no TensorFlow) on 200 test images"
"$BIN/python" - "$OUT" "$PRESET" <<'PY'
import sys
from pathlib import Path
from PIL import Image
from tfedge.compress import preset
out = Path(sys.argv[1]) / "test_images"
if not (out.is_dir() and len(list(out.glob("*.jpg"))) >= 200):
    out.mkdir(parents=True, exist_ok=True)
    data, _ = preset(sys.argv[2])
    test = data.load().test
    for i in range(200):
        Image.fromarray(test.images[i]).save(out / f"{i:04d}_{test.labels[i]}.jpg", quality=95)
PY
"$BIN/tfedge-pi" "$OUT/bundle.zip" "$OUT/test_images" --benchmark --human
echo "== done: open $OUT/report/report.html (ablation, accuracy vs MACs, exits, test images)"
