#!/usr/bin/env bash
# Replaces run.sh/run2.sh after 2460330 (a coarse global width landing takes the uniform cut):
# waits for g_s1 (started by run.sh at 884d5b8), then from 2460330: compound with the global
# allocation at 25% on seed 1 again (g2_s1; its 884d5b8 search had landed at 18.6%), seed 2 at
# 25% and 50%, compound with the default allocation at 50% on seed 0 (u_s0), then the rebuilds.
R=/work/main/runs/benchmarks/s20g
B=/work/main/runs/benchmarks/s20
while pgrep -f "output-dir $R/g_s1" >/dev/null; do sleep 20; done
cd /work/wt_g2
export PYTHONPATH=/work/wt_g2 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
run() {  # run DIR SEED ARGS...
    local d=$1 s=$2; shift 2
    [ -s $R/$d.out ] && grep -q '"rows"' $R/$d.out && return
    mkdir -p $R/$d
    for ext in keras keras.json; do ln -f $B/a_s$s/shrink_full_base_seed$s.$ext $R/$d/shrink_full_base_seed$s.$ext; done
    /work/main/.venv/bin/python benchmarks/shrink.py --seeds $s --epochs 50 --patience 5 --reuse-bases \
        --crop-methods none --methods compound --output-dir $R/$d "$@" >> $R/$d.out 2>> $R/$d.log
}
run g2_s1 1 --targets 0.25 --width-allocation global
run g_s2 2 --targets 0.25 0.5 --width-allocation global
run u_s0 0 --targets 0.5
/work/main/.venv/bin/python $R/rebuild_full.py $B/a_s0:0:0.5 $B/h_s1:1:0.5 $B/h_s2:2:0.5 \
    >> $R/rebuild.out 2>> $R/rebuild.log
