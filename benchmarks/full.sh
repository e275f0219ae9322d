#!/usr/bin/env bash
# Every full benchmark, in the order that lets them share trained models:
# cascade.py trains, per seed, the base model, the predictor and the stages;
# base.py evaluates those base models (--reuse); crop.py reuses seed 0's base
# and trains its predictor and refiner (the cascade's predictor is the faster
# r96 w8, unrefined), or reuses the pair it trained before (the refiner's file
# names its predictor); convert.py and runner.py take seed 0's
# models and bundle. About 2 hours on 2 cores. Each benchmark's stderr goes to
# $OUT/<name>.log and its JSON line to $OUT/<name>.json.
#
#   bash benchmarks/full.sh            # OUT=runs/benchmarks/full
#   bash benchmarks/full.sh crop       # only the named benchmarks (models reused)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/benchmarks/full}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
WANTED=${*:-cascade base crop convert runner}

run() {
  local name=$1
  shift
  case " $WANTED " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $(date -u +%H:%M:%S) benchmarks/$name.py $*"
  "$PY" "benchmarks/$name.py" "$@" 2>"$OUT/$name.log" >"$OUT/$name.out"
  tail -n 1 "$OUT/$name.out" >"$OUT/$name.json"
  echo "== $(date -u +%H:%M:%S) $name done: $OUT/$name.json"
}

BASE="$OUT/base_resnet10_050_seed0.keras"
run cascade --output-dir "$OUT" --reuse
run base --output-dir "$OUT" --reuse
CROP_REFINER="$OUT/crop/crop_full_refiner.keras"
if [[ -f "$CROP_REFINER" ]]; then CROP_REUSE=(--predictor-model "$CROP_REFINER"); else CROP_REUSE=(); fi
run crop --output-dir "$OUT/crop" --base-model "$BASE" --reuse-predictors "$OUT" "${CROP_REUSE[@]}"
run convert --base "$BASE" --cascade "$OUT/cascade_seed0.json"
run runner --base-model "$BASE" --cascade-bundle "$OUT/bundles/cascade_seed0"
