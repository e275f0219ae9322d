#!/usr/bin/env bash
# Compound variants at full 25% on arm A's bases, 1,000-image search split. Jobs: NAME:SEED; extra flags per NAME below.
R=/work/main/runs/benchmarks/s15
for job in "$@"; do
  ARM=${job%%:*}; S=${job##*:}
  case $ARM in
    e) EXTRA="--width-allocation global --score-steps 8";;
    f) EXTRA="--width-allocation global --dimensions depth width";;
    g) EXTRA="--dimensions depth width";;
  esac
  mkdir -p $R/${ARM}_s$S
  for ext in keras keras.json; do ln -f $R/a_s$S/shrink_full_base_seed$S.$ext $R/${ARM}_s$S/shrink_full_base_seed$S.$ext; done
  (cd /work/wt_b && PYTHONPATH=/work/wt_b TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1 \
   /work/main/.venv/bin/python benchmarks/shrink.py --sizes 4000 2000 1000 --seeds $S \
    --epochs 40 --patience 4 --reuse-bases --crop-methods none --targets 0.25 \
    --methods compound $EXTRA --output-dir $R/${ARM}_s$S >> $R/${ARM}_s$S.out 2>> $R/${ARM}_s$S.log)
done
