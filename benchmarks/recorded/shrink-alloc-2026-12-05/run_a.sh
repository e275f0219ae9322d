#!/usr/bin/env bash
# #15 full-image 25% rerun, arm A (compound as recorded, uniform allocation) + every baseline; trains the base.
S=$1
cd /work/wt_a
export PYTHONPATH=/work/wt_a TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
exec /work/main/.venv/bin/python benchmarks/shrink.py --sizes 4000 500 1000 --seeds $S \
    --epochs 40 --patience 4 --reuse-bases --crop-methods none --targets 0.25 \
    --output-dir /work/main/runs/benchmarks/s15/a_s$S >> /work/main/runs/benchmarks/s15/a_s$S.out 2>> /work/main/runs/benchmarks/s15/a_s$S.log
