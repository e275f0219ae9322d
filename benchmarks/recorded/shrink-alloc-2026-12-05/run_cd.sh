#!/usr/bin/env bash
# Compound at full 25% on arm A's bases, its search deciding on 1,000 validation images instead of 500
# (--sizes 4000 2000 1000: same train and test splits; search_val_size 1000). ARM c: uniform, d: global.
R=/work/main/runs/benchmarks/s15
for job in "$@"; do
  ARM=${job%%:*}; S=${job##*:}
  mkdir -p $R/${ARM}_s$S
  for ext in keras keras.json; do ln -f $R/a_s$S/shrink_full_base_seed$S.$ext $R/${ARM}_s$S/shrink_full_base_seed$S.$ext; done
  ALLOC=uniform; [ $ARM = d ] && ALLOC=global
  (cd /work/wt_b && PYTHONPATH=/work/wt_b TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1 \
   /work/main/.venv/bin/python benchmarks/shrink.py --sizes 4000 2000 1000 --seeds $S \
    --epochs 40 --patience 4 --reuse-bases --crop-methods none --targets 0.25 \
    --methods compound --width-allocation $ALLOC \
    --output-dir $R/${ARM}_s$S >> $R/${ARM}_s$S.out 2>> $R/${ARM}_s$S.log)
done
