#!/bin/sh
# A bundle's streaming twin against its window model, on the test streams of figures.sh (run
# that first: it makes runs/figures/streams/commands.wav, speech.wav, other.wav), and the
# cost of both against microWakeWord and openWakeWord. Reports land in runs/streaming/.
#   sh scripts/streaming.sh BUNDLE
set -e
MODEL=$1
FIG=runs/figures/streams
OUT=runs/streaming
mkdir -p $OUT
# Streams scored three ways: the twin (what kws runs), the float window model (the twin's
# exact reference) and the int8 window model (what runs without a twin).
kws eval-stream --model "$MODEL" --wav $FIG/commands.wav \
    --wav $FIG/speech.wav --wav $FIG/other.wav --plot $OUT/tradeoff_stream.png --json > $OUT/streams_stream.txt
for mode in window window-float; do
    kws --config train/recipes/$mode.yaml eval-stream --model "$MODEL" --wav $FIG/commands.wav \
        --wav $FIG/speech.wav --wav $FIG/other.wav --plot $OUT/tradeoff_$mode.png --json > $OUT/streams_$mode.txt
done
# Detections of kws replay on the commands stream, word and time, each way: the same lists?
kws replay --model "$MODEL" --json $FIG/commands.wav > $OUT/replay_stream.jsonl
kws --config train/recipes/window-float.yaml replay --model "$MODEL" --json $FIG/commands.wav > $OUT/replay_window_float.jsonl
kws --config train/recipes/window.yaml replay --model "$MODEL" --json $FIG/commands.wav > $OUT/replay_window.jsonl
python3 -c 'import json, sys
found = [{(d["word"], d["time"]) for d in map(json.loads, open(f))} for f in sys.argv[1:]]
for name, other in zip(("float window", "int8 window"), found[1:]):
    print(f"streaming vs {name}: {len(found[0])} and {len(other)} detections, "
          f"{len(found[0] - other)} only streaming, {len(other - found[0])} only window")' \
    $OUT/replay_stream.jsonl $OUT/replay_window_float.jsonl $OUT/replay_window.jsonl > $OUT/replay_same.txt
# CPU per second of audio: kws with the twin, with the window model, and the peers, in one run.
kws bench --model "$MODEL" --peers --no-baseline --minutes 1 --hops 20 --peer-seconds 300 > $OUT/bench_peers.txt
