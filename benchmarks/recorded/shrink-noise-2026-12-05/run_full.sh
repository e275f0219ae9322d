#!/usr/bin/env bash
# #15 at the full data size (20,000 / 2,000 / 5,000), seed 0, on the converged base of #19's
# full-size peers run (resnet10_050@128, test 0.6946), hard-linked as the shrink benchmark's base.
# Arm a: every method at 25% and 50% as the benchmark runs them; arm f: compound with the global
# width allocation searching depth and width only. Full-image rows only (no crop base trained).
R=/work/main/runs/benchmarks/s20
cd /work/wt_s20
export PYTHONPATH=/work/wt_s20 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p $R/f_s0
for ext in keras keras.json; do ln -f $R/a_s0/shrink_full_base_seed0.$ext $R/f_s0/shrink_full_base_seed0.$ext; done
/work/main/.venv/bin/python benchmarks/shrink.py --seeds 0 --epochs 50 --patience 5 --reuse-bases \
    --crop-methods none --targets 0.25 0.5 --methods compound bn l1 uniform resolution hrank \
    --output-dir $R/a_s0 >> $R/a_s0.out 2>> $R/a_s0.log
/work/main/.venv/bin/python benchmarks/shrink.py --seeds 0 --epochs 50 --patience 5 --reuse-bases \
    --crop-methods none --targets 0.25 0.5 --methods compound --width-allocation global \
    --dimensions depth width --output-dir $R/f_s0 >> $R/f_s0.out 2>> $R/f_s0.log
