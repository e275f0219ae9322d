#!/usr/bin/env bash
# Exploratory, after the 50% rebuilds showed that l1 and uniform compound cut the same channel
# counts and differ only in which channels: compound with the uniform allocation and
# --importance l1 at 50%, seeds 0-2 (2460330).
R=/work/main/runs/benchmarks/s20g
B=/work/main/runs/benchmarks/s20
cd /work/wt_g2
export PYTHONPATH=/work/wt_g2 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 PYTHONUNBUFFERED=1
for s in 0 1 2; do
    d=l_s$s
    [ -s $R/$d.out ] && grep -q '"rows"' $R/$d.out && continue
    mkdir -p $R/$d
    for ext in keras keras.json; do ln -f $B/a_s$s/shrink_full_base_seed$s.$ext $R/$d/shrink_full_base_seed$s.$ext; done
    /work/main/.venv/bin/python benchmarks/shrink.py --seeds $s --epochs 50 --patience 5 --reuse-bases \
        --crop-methods none --methods compound --importance l1 --targets 0.5 \
        --output-dir $R/$d >> $R/$d.out 2>> $R/$d.log
done
