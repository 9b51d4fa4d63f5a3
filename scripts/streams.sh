#!/bin/sh
# The labelled streams every choice is made on (SPLIT=validation), every figure is reported on
# (SPLIT=testing) and hard negatives are mined from (SPLIT=training); background noise at 20 dB
# SNR; each is made once (an existing one is kept):
#   commands       30 min of the split's command words 2-4 s apart, 20% other words
#   official       10 min of the same, official test speakers only (the harder yardstick)
#   official_8k    the official stream through an 8-kHz u-law link (a Bluetooth headset)
#   official_room  the official stream across a room (simulated, reverberation time 0.5 s)
#   speech         real running speech of the split's readers of NEG
#   other          5 min of other words only (40 min for training)
#   sh scripts/streams.sh DATA NEG SPLIT DIR
set -e
DATA=$1 NEG=$2 SPLIT=$3 DIR=$4
# Seeds as the earlier recipes and figures used them, so their streams are the same.
case $SPLIT in validation) SEED=1 NEG_SEED=3;; testing) SEED=2 NEG_SEED=3;; training) NEG_SEED=5;;
    *) echo "SPLIT: validation, testing or training" >&2; exit 2;; esac
mkdir -p "$DIR"
make() {  # NAME ARGS...: kws make-stream, unless DIR/NAME.wav exists
    name=$1; shift
    [ -f "$DIR/$name.wav" ] || kws make-stream "$@" --out "$DIR/$name.wav"
}
make speech --negatives "$NEG" --split "$SPLIT" --noise "$DATA/_background_noise_" --seed $NEG_SEED
if [ "$SPLIT" = training ]; then
    make other --data "$DATA" --split training --unknown-fraction 1.0 --minutes 40 --seed 6
    exit 0
fi
make other --data "$DATA" --split "$SPLIT" --unknown-fraction 1.0 --minutes 5 --seed $((NEG_SEED + 1))
make commands --data "$DATA" --split "$SPLIT" --minutes 30 --seed $SEED
make official --data "$DATA" --split "$SPLIT" --official --minutes 10 --seed $((SEED + 10))
[ -f "$DIR/official_8k.wav" ] || python -m kws_train.channels "$DIR/official.wav" "$DIR/official_8k.wav" --narrowband
[ -f "$DIR/official_room.wav" ] || python -m kws_train.channels "$DIR/official.wav" "$DIR/official_room.wav" \
    --room 0.5 --seed $((SEED + 1000))
