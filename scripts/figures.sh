#!/bin/sh
# Reruns every figure quoted in the README and docs/results.md for the shipped model
# (models/default), writing the reports to runs/figures/. DATA is a Speech Commands root, NEG a
# folder of real running speech split by speaker (kws.data.negatives; the README says where
# to get both).
#   sh scripts/figures.sh DATA NEG [MORE]
# MORE (optional): a second corpus of running speech with a folder per speaker and a test/ half
# (speechocean762, ../shared/speech_negatives/README.md); its testing speakers make a stream of
# an hour or more, enough to say something about false alarms per hour.
# The README's table of what kws measures quotes docs/results.md, where these reports' figures
# go; tests/test_readme.py holds each of its figures to docs/results.md and its command to one
# run here, so update docs/results.md, then the README's table.
# Nothing here was used to choose anything: the streams are the testing split of Speech
# Commands and the testing readers of NEG (kws.data.negatives), which training and threshold
# selection never hear.
set -e
DATA=${1:?usage: sh scripts/figures.sh DATA NEG (a Speech Commands root, a folder of running speech)}
NEG=${2:?usage: sh scripts/figures.sh DATA NEG (a Speech Commands root, a folder of running speech)}
MORE=${3:-}
OUT=runs/figures
mkdir -p $OUT
# Clips: the testing list plus the dataset's official _silence_/ clips, and apart the official
# test speakers' clips among them (official_test_testing_list.txt); the float model, then the
# int8 one (kws eval alone scores the one kws listen runs, int8 when the bundle has it).
kws eval --data "$DATA" --split testing --report $OUT/eval --float --json > $OUT/eval.txt
kws eval --data "$DATA" --split testing --int8 --json > $OUT/eval_int8.txt
# Streams of the testing split (scripts/streams.sh), background noise at 20 dB SNR: commands
# (30 min, words 2-4 s apart, 20% unknown words), the official test speakers' commands (10 min)
# close up, through an 8-kHz u-law headset link and across a room (RT60 0.5 s), real running
# speech of held-out readers, and other words only.
S=$OUT/streams
sh scripts/streams.sh "$DATA" "$NEG" testing $S
if [ -n "$MORE" ]; then
    [ -f $S/speech_more.wav ] || kws make-stream --negatives "$MORE/test" --split testing \
        --noise "$DATA/_background_noise_" --seed 3 --out $S/speech_more.wav
# (flush left: tests/test_readme.py reads figures.sh's kws commands by their first word)
kws eval-stream --wav $S/speech_more.wav --json > $OUT/speech_more.txt
fi
kws eval-stream --wav $S/commands.wav --wav $S/speech.wav --wav $S/other.wav \
    --plot $OUT/tradeoff.png --json > $OUT/streams.txt
kws eval-stream --wav $S/official.wav --wav $S/official_8k.wav --wav $S/official_room.wav \
    --wav $S/speech.wav --wav $S/other.wav --plot $OUT/official.png --json > $OUT/official.txt
kws eval-stream --wav $S/commands.wav --hop-ms 50 --plot $OUT/tradeoff_hop50.png --json \
    > $OUT/stream_hop50.txt
# Latency and cost on one CPU thread, against the naive librosa + Keras loop.
kws bench --wav $S/commands.wav --labels $S/commands.csv --plot $OUT/bench_latency.png \
    > $OUT/bench.txt
kws bench --wav $S/commands.wav --labels $S/commands.csv --no-baseline --json > $OUT/bench.json
# CPU per second of audio against microWakeWord and openWakeWord (pip install -e '.[peers]';
# openWakeWord only where its models are installed), in one run.
kws bench --peers --no-baseline --minutes 1 --hops 20 --peer-seconds 300 > $OUT/bench_peers.txt
