#!/bin/sh
# Reproduces models/default from the Speech Commands subset: two TC-ResNet8-1.5 (seeds 0 and
# 1, one CPU thread each, side by side), their average as one model, then per-word thresholds
# from a 30-minute validation stream. About 40 min on two CPU cores.
#   sh train/recipes/default.sh [DATA]     (DATA defaults to ../shared/speech_commands)
set -e
DATA=${1:-../shared/speech_commands}
RECIPE=train/recipes/default.yaml
mkdir -p runs/streams
for seed in 0 1; do
    kws train --config $RECIPE --data "$DATA" --seed $seed --threads 1 \
        --out runs/bundles/default-seed$seed --workdir runs/default-seed$seed > runs/default-seed$seed.log 2>&1 &
done
wait
python -m train.ensemble --config $RECIPE --data "$DATA" --out models/default \
    --bundles runs/bundles/default-seed0 runs/bundles/default-seed1
kws make-stream --data "$DATA" --split validation --minutes 30 --seed 1 \
    --out runs/streams/val30.wav --labels runs/streams/val30.csv
python -m train.thresholds --model models/default --wav runs/streams/val30.wav --labels runs/streams/val30.csv
