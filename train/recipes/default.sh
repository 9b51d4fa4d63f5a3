#!/bin/sh
# Reproduces models/default from the Speech Commands subset: three TC-ResNet8-1.5, two trained
# on whole words only (seeds 0 and 1), one also on partial-word clips (seed 0), one CPU thread
# each; their average as one LiteRT model; then per-word thresholds from a 30-minute
# validation stream. About an hour on two free CPU cores.
#   sh train/recipes/default.sh [DATA]     (DATA defaults to ../shared/speech_commands)
set -e
DATA=${1:-../shared/speech_commands}
mkdir -p runs/streams
member() {  # CONFIG SEED NAME
    kws train --config train/recipes/$1.yaml --data "$DATA" --seed $2 --threads 1 \
        --out runs/bundles/$3 --workdir runs/$3 > runs/$3.log 2>&1
}
member default-whole-words 0 whole-seed0 &
member default 0 partial-seed0 &
wait
member default-whole-words 1 whole-seed1
python -m kws_train.ensemble --config train/recipes/default.yaml --data "$DATA" --out models/default \
    --bundles runs/bundles/whole-seed0 runs/bundles/partial-seed0 runs/bundles/whole-seed1
kws make-stream --data "$DATA" --split validation --minutes 30 --seed 1 \
    --out runs/streams/val30.wav --labels runs/streams/val30.csv
python -m kws_train.thresholds --config train/recipes/thresholds.yaml --model models/default \
    --wav runs/streams/val30.wav --labels runs/streams/val30.csv
