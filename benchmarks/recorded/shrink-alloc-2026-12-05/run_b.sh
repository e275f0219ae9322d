#!/usr/bin/env bash
# #15 full-image 25% rerun, arm B: compound with width_allocation global, on arm A's base of the same seed.
S=$1
R=/work/main/runs/benchmarks/s15
until grep -q "seed $S: base test top-1" $R/a_s$S.log 2>/dev/null; do sleep 30; done
mkdir -p $R/b_s$S
for ext in keras keras.json; do ln -f $R/a_s$S/shrink_full_base_seed$S.$ext $R/b_s$S/shrink_full_base_seed$S.$ext; done
cd /work/wt_b
export PYTHONPATH=/work/wt_b TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
exec /work/main/.venv/bin/python benchmarks/shrink.py --sizes 4000 500 1000 --seeds $S \
    --epochs 40 --patience 4 --reuse-bases --crop-methods none --targets 0.25 \
    --methods compound --width-allocation global \
    --output-dir $R/b_s$S >> $R/b_s$S.out 2>> $R/b_s$S.log
