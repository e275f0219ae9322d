#!/usr/bin/env bash
# The first launch of arm A (seeds 1, 2) would train a crop base after the full base ('--crop-methods
# none' was not understood before the fix): stop it once its base is saved, start again reusing it.
S=$1
R=/work/main/runs/benchmarks/s15
until grep -q "seed $S: base test top-1" $R/a_s$S.log 2>/dev/null; do sleep 20; done
pkill -f "output-dir $R/a_s$S\$"
sleep 5
rm -rf $R/a_s$S/shrink_full_cropbase_seed$S.keras.backup
exec bash $R/run_a.sh $S
