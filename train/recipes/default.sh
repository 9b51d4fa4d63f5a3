#!/bin/sh
# Reproduces models/default from the Speech Commands subset: two TC-ResNet8-1.5 (one trained on
# whole words only, one also on partial-word clips; one CPU thread each, side by side), their
# average as one LiteRT model, then per-word thresholds from a 30-minute validation stream.
# About 40 min on two free CPU cores.
#   sh train/recipes/default.sh [DATA]     (DATA defaults to ../shared/speech_commands)
set -e
DATA=${1:-../shared/speech_commands}
mkdir -p runs/streams
for member in default-whole-words default; do
    kws train --config train/recipes/$member.yaml --data "$DATA" --seed 0 --threads 1 \
        --out runs/bundles/$member --workdir runs/$member > runs/$member.log 2>&1 &
done
wait
python -m train.ensemble --config train/recipes/default.yaml --data "$DATA" --out models/default \
    --bundles runs/bundles/default-whole-words runs/bundles/default
kws make-stream --data "$DATA" --split validation --minutes 30 --seed 1 \
    --out runs/streams/val30.wav --labels runs/streams/val30.csv
python -m train.thresholds --model models/default --wav runs/streams/val30.wav --labels runs/streams/val30.csv
