#!/bin/sh
# A shipped model's whole recipe, in rounds, on two CPU cores:
#   1. streams (scripts/streams.sh): validation streams to choose on, training streams to mine
#   2. round 1: train/recipes/NAME.yaml from scratch                     (~45 min on one core)
#   3. mining: the windows of training speech and other words round 1 fires on (~5 min)
#   4. round 2: round 1 fine-tuned with the mined windows, NAME-mined.yaml (~15 min)
#   5. per-word thresholds: at most one error each on the validation streams (commands, the
#      official test speakers' commands, running speech, other words), with the posterior
#      smoothing of decide.yaml, which the bundle keeps with them
#   sh train/recipes/rounds.sh NAME [DATA] [NEGATIVES] [OUT]
# NAME: speakers (models/default: hear people it has never heard), quiet (the previous default),
# quiet-stream (its streamable variant). Each step resumes: after a stop, run the same command
# again; finished steps are kept (delete runs/bundles/NAME1 or NAME2 to redo one). SEED, when
# set, overrides the recipe's train.seed. OUT (default models/default) is replaced by the result.
set -e
NAME=$1
DATA=${2:-../shared/speech_commands}
NEG=${3:-../shared/speech_negatives}
OUT=${4:-models/default}
R=train/recipes V=runs/streams/validation T=runs/streams/training
[ -f $R/$NAME.yaml ] && [ -f $R/$NAME-mined.yaml ] || { echo "no recipe $R/$NAME.yaml + $NAME-mined.yaml" >&2; exit 2; }
sh scripts/streams.sh "$DATA" "$NEG" validation $V
sh scripts/streams.sh "$DATA" "$NEG" training $T
round() {  # RUN CONFIG: kws train, resuming the run's work directory when it has one
    [ -f runs/bundles/$1/metadata.json ] && return 0
    resume=$([ -f runs/$1/state.json ] && echo --resume || true)
    kws train --config "$2" --data "$DATA" ${SEED:+--seed $SEED} --threads 1 $resume \
        --out runs/bundles/$1 --workdir runs/$1 >> runs/$1.log 2>&1
}
round ${NAME}1 $R/$NAME.yaml
[ -f runs/mined-$NAME/mined.json ] || {  # written last: an interrupted mining starts again
    rm -rf runs/mined-$NAME
    python -m kws_train.mine --config $R/float.yaml --model runs/bundles/${NAME}1 \
        --audio $T/speech.wav --audio $T/other.wav --out runs/mined-$NAME --threshold 0.5
}
round ${NAME}2 $R/$NAME-mined.yaml
rm -rf "$OUT.new" && cp -r runs/bundles/${NAME}2 "$OUT.new"
python -m kws_train.thresholds --errors 1 --config $R/decide.yaml --model "$OUT.new" --wav $V/commands.wav \
    --wav $V/official.wav --wav $V/speech.wav --wav $V/other.wav
rm -rf "$OUT" && mv "$OUT.new" "$OUT"
