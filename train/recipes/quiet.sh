#!/bin/sh
# Reproduces models/default ("stay quiet while people talk") from Speech Commands and real
# running speech (LibriSpeech readers in ../shared/speech_negatives), on two CPU cores:
#   1. streams of held-apart audio: negatives split by reader (training / validation / testing)
#   2. round 1: TC-ResNet8-1.5 with running speech and commands embedded in it as _unknown_
#   3. hard-negative mining: the windows of training speech and other words round 1 fires on
#   4. round 2: round 1 fine-tuned with the mined windows too (last epoch kept)
#   5. per-word thresholds: at most one error each on the validation streams (commands, speech,
#      other words); --errors 0 trades 8 points of hits for no error at all
#   sh train/recipes/quiet.sh [DATA] [NEGATIVES] [ROUND1.yaml] [OUT]   (about 1.5 h on two free cores)
# ROUND1 defaults to train/recipes/quiet.yaml (the shipped model); quiet-stream.yaml is the
# streamable variant. OUT (default models/default) is replaced by the result.
set -e
DATA=${1:-../shared/speech_commands}
NEG=${2:-../shared/speech_negatives}
ROUND1=${3:-train/recipes/quiet.yaml}
OUT=${4:-models/default}
S=runs/streams
mkdir -p $S
stream() {  # NAME ARGS...
    name=$1; shift
    [ -f $S/$name.wav ] || kws make-stream "$@" --out $S/$name.wav
}
NOISE="--noise $DATA/_background_noise_"
stream commands_validation --data "$DATA" --split validation --minutes 30 --seed 1
stream speech_validation --negatives "$NEG" --split validation $NOISE --seed 3
stream other_validation --data "$DATA" --split validation --unknown-fraction 1.0 --minutes 5 --seed 4
stream speech_training --negatives "$NEG" --split training $NOISE --seed 5
stream other_training --data "$DATA" --split training --unknown-fraction 1.0 --minutes 40 --seed 6

rm -rf runs/bundles/quiet1 runs/bundles/quiet2 runs/quiet1 runs/quiet2 runs/mined
kws train --config "$ROUND1" --data "$DATA" --threads 1 \
    --out runs/bundles/quiet1 --workdir runs/quiet1 > runs/quiet1.log 2>&1
python -m kws_train.mine --config train/recipes/float.yaml --model runs/bundles/quiet1 --audio $S/speech_training.wav \
    --audio $S/other_training.wav --out runs/mined --threshold 0.5
kws train --config train/recipes/quiet-mined.yaml --data "$DATA" \
    --threads 1 --out runs/bundles/quiet2 --workdir runs/quiet2 > runs/quiet2.log 2>&1
rm -rf "$OUT.new" && cp -r runs/bundles/quiet2 "$OUT.new"
python -m kws_train.thresholds --errors 1 --model "$OUT.new" --wav $S/commands_validation.wav \
    --wav $S/speech_validation.wav --wav $S/other_validation.wav
rm -rf "$OUT" && mv "$OUT.new" "$OUT"
