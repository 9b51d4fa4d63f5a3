#!/bin/sh
# A shipped model's whole recipe, in rounds, on two CPU cores:
#   1. streams (scripts/streams.sh): validation streams to choose on, training streams to mine
#   2. round 1: train/recipes/NAME.yaml                                  (~45 min on one core)
#   3. mining: the windows of training speech and other words round 1 fires on (~5-10 min)
#   4. round 2: round 1 fine-tuned with the mined windows, NAME-mined.yaml (~15 min)
#   5. per-word thresholds: at most one error each on the validation streams (commands, the
#      official test speakers' commands, running speech, other words), none above the level
#      keeping 90% of the word's hits, with the posterior smoothing of decide.yaml, which the
#      bundle keeps with them
#   6. for models/default, the enrolment bank of its backbone (kws_train.enroll.make_bank)
#   [TEACHERS=DIR] sh train/recipes/rounds.sh NAME DATA NEG [OUT] [MORE]
# NAME: distill (models/default: the speakers model taught by KWT-1; run speakers first, it
# starts from runs/bundles/speakers2; TEACHERS, a folder with kwt1/kwt1.tflite and its
# labels.txt), speakers (the previous default), quiet,
# quiet-stream. DATA: a Speech Commands root; NEG: a folder of running speech.
# MORE (default ~/.cache/kws-negatives/speechocean762, built by
# build_speechocean762.sh, train/README.md): a second corpus of running speech with a
# folder per speaker and train/ and test/ halves; its train half is mined, the validation
# speakers of its test half join the threshold streams (skipped where it is missing). Each step
# resumes: after a stop, run the same command again; finished steps are kept (delete
# runs/bundles/NAME1 or NAME2 to redo one). SEED, when set, overrides the recipe's train.seed.
# OUT (default models/default) is replaced by the result.
set -e
USAGE="usage: sh train/recipes/rounds.sh NAME DATA NEG [OUT] [MORE]"
NAME=${1:?$USAGE}
DATA=${2:?$USAGE}
NEG=${3:?$USAGE}
OUT=${4:-models/default}
MORE=${5:-${XDG_CACHE_HOME:-$HOME/.cache}/kws-negatives/speechocean762}
R=train/recipes V=runs/streams/validation T=runs/streams/training
[ -f $R/$NAME.yaml ] && [ -f $R/$NAME-mined.yaml ] || { echo "no recipe $R/$NAME.yaml + $NAME-mined.yaml" >&2; exit 2; }
# The recipes name their inputs as runs/inputs/*, links to this command's arguments.
mkdir -p runs/inputs
ln -sfn "$(realpath "$NEG")" runs/inputs/negatives
[ ! -d "$MORE" ] || ln -sfn "$(realpath "$MORE")" runs/inputs/more
[ -z "$TEACHERS" ] || ln -sfn "$(realpath "$TEACHERS")" runs/inputs/teachers
sh scripts/streams.sh "$DATA" "$NEG" validation $V
sh scripts/streams.sh "$DATA" "$NEG" training $T
MINE_MORE= SPEECH_MORE=
if [ -d "$MORE/train" ] && [ -d "$MORE/test" ]; then
    [ -f $V/speech_more.wav ] || kws make-stream --negatives "$MORE/test" --split validation \
        --noise "$DATA/_background_noise_" --seed 3 --out $V/speech_more.wav
    MINE_MORE="--audio $MORE/train" SPEECH_MORE="--wav $V/speech_more.wav"
fi
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
        --audio $T/speech.wav --audio $T/other.wav $MINE_MORE --out runs/mined-$NAME --threshold 0.5
}
round ${NAME}2 $R/$NAME-mined.yaml
rm -rf "$OUT.new" && cp -r runs/bundles/${NAME}2 "$OUT.new"
python -m kws_train.thresholds --errors 1 --keep-hits 0.9 --config $R/decide.yaml --model "$OUT.new" \
    --wav $V/commands.wav --wav $V/official.wav --wav $V/speech.wav --wav $V/other.wav $SPEECH_MORE
rm -rf "$OUT" && mv "$OUT.new" "$OUT"
[ "$OUT" != models/default ] || python -m kws_train.enroll.make_bank --base "$OUT" --speech "$NEG" "$MORE" --words "$DATA"  # 6. the enrolment bank of this backbone (train/enroll/bank.npz)
