#!/bin/sh
# Reruns every figure quoted in the README for the shipped model (models/default), writing the
# reports to runs/figures/. DATA is a Speech Commands root (default ../shared/speech_commands).
#   sh scripts/figures.sh [DATA]
set -e
DATA=${1:-../shared/speech_commands}
OUT=runs/figures
mkdir -p $OUT
# Clips: the testing list plus the dataset's official _silence_/ clips.
kws eval --data "$DATA" --split testing --report $OUT/eval --json > $OUT/eval.txt
kws eval --data "$DATA" --split testing --int8 --json > $OUT/eval_int8.txt
# Streaming: a 30-minute stream of the testing split, words 2-4 s apart, 20% unknown words,
# background noise at 20 dB SNR.
kws make-stream --data "$DATA" --split testing --minutes 30 --seed 2 \
    --out $OUT/test30.wav --labels $OUT/test30.csv
for hop in 20 50; do
    kws eval-stream --wav $OUT/test30.wav --labels $OUT/test30.csv --hop-ms $hop \
        --plot $OUT/tradeoff_hop$hop.png --json > $OUT/stream_hop$hop.txt
done
# Latency and cost on one CPU thread, against the naive librosa + Keras loop.
kws bench --wav $OUT/test30.wav --labels $OUT/test30.csv --plot $OUT/bench_latency.png \
    > $OUT/bench.txt
kws bench --wav $OUT/test30.wav --labels $OUT/test30.csv --no-baseline --json > $OUT/bench.json
