#!/usr/bin/env bash
# #15 at the full data size on the s20 bases: compound with the global width allocation at 25%
# and 50% (seeds 0-2), then compound with the default (uniform) allocation at 50% on seed 0,
# both with the final fine-tune's keep-better-start rule (884d5b8). Resumable per seed folder.
R=/work/main/runs/benchmarks/s20g
B=/work/main/runs/benchmarks/s20
cd /work/wt_g
export PYTHONPATH=/work/wt_g TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
run() {  # run DIR SEED ARGS...
    local d=$1 s=$2; shift 2
    [ -s $R/$d.out ] && grep -q '"rows"' $R/$d.out && return
    mkdir -p $R/$d
    for ext in keras keras.json; do ln -f $B/a_s$s/shrink_full_base_seed$s.$ext $R/$d/shrink_full_base_seed$s.$ext; done
    /work/main/.venv/bin/python benchmarks/shrink.py --seeds $s --epochs 50 --patience 5 --reuse-bases \
        --crop-methods none --methods compound --output-dir $R/$d "$@" >> $R/$d.out 2>> $R/$d.log
}
for s in 0 1 2; do run g_s$s $s --targets 0.25 0.5 --width-allocation global; done
run u_s0 0 --targets 0.5
