#!/usr/bin/env bash
# After run.sh: rebuild the 50% compound architectures of the s20 runs from their bases.
R=/work/main/runs/benchmarks/s20g
B=/work/main/runs/benchmarks/s20
while pgrep -f "s20g/run.sh" >/dev/null; do sleep 30; done
cd /work/wt_g
export PYTHONPATH=/work/wt_g TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
/work/main/.venv/bin/python $R/rebuild_full.py $B/a_s0:0:0.5 $B/h_s1:1:0.5 $B/h_s2:2:0.5 \
    >> $R/rebuild.out 2>> $R/rebuild.log
