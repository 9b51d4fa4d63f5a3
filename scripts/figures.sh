#!/bin/sh
# Reruns every figure quoted in the README for the shipped model (models/default), writing the
# reports to runs/figures/. DATA is a Speech Commands root (default ../shared/speech_commands),
# NEG a folder of real running speech (default ../shared/speech_negatives).
#   sh scripts/figures.sh [DATA] [NEG]
# Nothing here was used to choose anything: the streams are the testing split of Speech
# Commands and the testing readers of NEG (kws.data.negatives), which training and threshold
# selection never hear.
set -e
DATA=${1:-../shared/speech_commands}
NEG=${2:-../shared/speech_negatives}
OUT=runs/figures
mkdir -p $OUT
# Clips: the testing list plus the dataset's official _silence_/ clips; the float model, then
# the int8 one (kws eval alone scores the one kws listen runs, int8 when the bundle has it).
kws eval --data "$DATA" --split testing --report $OUT/eval --float --json > $OUT/eval.txt
kws eval --data "$DATA" --split testing --int8 --json > $OUT/eval_int8.txt
# Streams, background noise at 20 dB SNR: commands (30 min of the testing split, words 2-4 s
# apart, 20% unknown words), real running speech of held-out readers, and other words only.
kws make-stream --data "$DATA" --split testing --minutes 30 --seed 2 --out $OUT/test30.wav
kws make-stream --negatives "$NEG" --split testing --noise "$DATA/_background_noise_" --seed 3 \
    --out $OUT/speech_test.wav
kws make-stream --data "$DATA" --split testing --unknown-fraction 1.0 --minutes 5 --seed 4 \
    --out $OUT/other_test.wav
kws eval-stream --wav $OUT/test30.wav --wav $OUT/speech_test.wav --wav $OUT/other_test.wav \
    --plot $OUT/tradeoff.png --json > $OUT/streams.txt
kws eval-stream --wav $OUT/test30.wav --hop-ms 50 --plot $OUT/tradeoff_hop50.png --json \
    > $OUT/stream_hop50.txt
# Latency and cost on one CPU thread, against the naive librosa + Keras loop.
kws bench --wav $OUT/test30.wav --labels $OUT/test30.csv --plot $OUT/bench_latency.png \
    > $OUT/bench.txt
kws bench --wav $OUT/test30.wav --labels $OUT/test30.csv --no-baseline --json > $OUT/bench.json
# CPU per second of audio against microWakeWord and openWakeWord (pip install -e '.[peers]';
# openWakeWord only where its models are installed), in one run.
kws bench --peers --no-baseline --minutes 1 --hops 20 --peer-seconds 300 > $OUT/bench_peers.txt
