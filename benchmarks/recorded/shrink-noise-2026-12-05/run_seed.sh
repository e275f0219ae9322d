#!/usr/bin/env bash
# #15 at the full data size, seeds 1 and 2: train the base (converged, --epochs 50 --patience 5,
# as #19's full-size base) and run compound and the two best baselines of seed 0 and of the
# recorded runs (bn, l1) at 25%, then at 50%. Usage: run_seed.sh SEED
S=$1
R=/work/main/runs/benchmarks/s20
cd /work/wt_s20
export PYTHONPATH=/work/wt_s20 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
/work/main/.venv/bin/python benchmarks/shrink.py --seeds $S --epochs 50 --patience 5 --reuse-bases \
    --crop-methods none --targets 0.25 --methods compound bn l1 \
    --output-dir $R/a_s$S >> $R/a_s$S.out 2>> $R/a_s$S.log
mkdir -p $R/h_s$S
for ext in keras keras.json; do ln -f $R/a_s$S/shrink_full_base_seed$S.$ext $R/h_s$S/shrink_full_base_seed$S.$ext; done
/work/main/.venv/bin/python benchmarks/shrink.py --seeds $S --epochs 50 --patience 5 --reuse-bases \
    --crop-methods none --targets 0.5 --methods compound bn l1 \
    --output-dir $R/h_s$S >> $R/h_s$S.out 2>> $R/h_s$S.log
