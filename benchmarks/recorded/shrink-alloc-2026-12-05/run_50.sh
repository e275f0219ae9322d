#!/usr/bin/env bash
# The 50% target on arm A's bases (500-image validation, as arms a/b): compound uniform + bn (h), compound global (i).
R=/work/main/runs/benchmarks/s15
for S in 0 1 2; do
  for ARM in h i; do
    mkdir -p $R/${ARM}_s$S
    for ext in keras keras.json; do ln -f $R/a_s$S/shrink_full_base_seed$S.$ext $R/${ARM}_s$S/shrink_full_base_seed$S.$ext; done
    if [ $ARM = h ]; then EXTRA="--methods compound bn"; else EXTRA="--methods compound --width-allocation global"; fi
    (cd /work/wt_b && PYTHONPATH=/work/wt_b TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1 \
     /work/main/.venv/bin/python benchmarks/shrink.py --sizes 4000 500 1000 --seeds $S \
      --epochs 40 --patience 4 --reuse-bases --crop-methods none --targets 0.5 \
      $EXTRA --output-dir $R/${ARM}_s$S >> $R/${ARM}_s$S.out 2>> $R/${ARM}_s$S.log)
  done
done
