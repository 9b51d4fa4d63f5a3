"""What an enrolled word is worth on real people, as ``kws listen`` runs it: replay through its
bundle every Speech Commands clip of the word (any split: enrolment never trains on them), the
held-apart clips (validation and testing lists) of every other word, and running speech by the
enrolment bank's testing speakers of a corpus with ``transcripts.tsv`` (speechocean762's build).
Prints people heard, which other words fired, false alarms per hour of speech, and a sweep.

    python studies/enroll_replay.py BUNDLE WORD --data SPEECH_COMMANDS --speech SPEECHOCEAN762 [--out DIR]

The streams are made once into ``--out`` (default ``runs/enroll-replay``) and reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.data.speech_commands import load_noise
from kws.eval.scoring import rate_upper_95, record_stream, replay_trigger, score
from kws.eval.testaudio import NEGATIVE, build_stream, read_labels, write_labels
from kws_train.enroll.bank import speech_recordings

RATE = 16000
SPEECH_UTTERANCES = 700


def make_streams(word: str, data: Path, speech: Path, out: Path, config) -> dict[str, Path]:
    """The word's stream (its clips among other words') and the speech stream, made once."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words, talk = out / f"words-{word}.wav", out / "speech.wav"
    if not words.exists():
        held = set((data / "validation_list.txt").read_text().split()) | \
            set((data / "testing_list.txt").read_text().split())
        clips = [(word, f"sc:{p.name}", read_audio(p, RATE)) for p in sorted((data / word).glob("*.*"))]
        clips += [(rel.split("/")[0], f"sc:{rel}", read_audio(data / rel, RATE))
                  for rel in sorted(held) if not rel.startswith(word + "/")]
        clips = [clips[i] for i in rng.permutation(len(clips))]
        audio, labels = build_stream(clips, load_noise(data, RATE)[0], config.stream, RATE, rng)
        write_wav(words, audio, RATE)
        write_labels(words.with_suffix(".csv"), labels)
    if not talk.exists():
        testing = [r for r in speech_recordings(speech, 0.0) if r.split == "testing"]
        pick = [testing[i] for i in np.random.default_rng(5).permutation(len(testing))[:SPEECH_UTTERANCES]]
        audio, labels = build_stream([(NEGATIVE, r.path.stem, read_audio(r.path, RATE)) for r in pick],
                                     [], config.stream, RATE, rng)
        write_wav(talk, audio, RATE)
        write_labels(talk.with_suffix(".csv"), labels)
    return {"words": words, "speech": talk}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python studies/enroll_replay.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("word")
    parser.add_argument("--data", required=True, type=Path, help="Speech Commands root")
    parser.add_argument("--speech", required=True, type=Path, help="running speech with transcripts.tsv")
    parser.add_argument("--out", type=Path, default=Path("runs/enroll-replay"))
    args = parser.parse_args(argv)
    config = load_config()
    bundle = load_bundle(args.bundle, config)
    config = with_overrides(config, {"words": bundle.words})
    bundle = load_bundle(args.bundle, config)
    streams = make_streams(args.word, args.data, args.speech, args.out, config)
    rec = {name: record_stream(bundle, config, wav, read_labels(wav.with_suffix(".csv")))
           for name, wav in streams.items()}
    tolerance, refractory = config.stream.tolerance_ms / 1000, config.posterior.refractory_ms / 1000
    said: dict[str, int] = {}
    for label in rec["words"].labels:
        said[label.word] = said.get(label.word, 0) + 1

    def at(level: float):
        thresholds = np.array([level if label == args.word else np.inf for label in bundle.labels])
        out = []
        for name in ("words", "speech"):
            r = rec[name]
            fired = replay_trigger(r.times, r.scores, bundle.labels, thresholds, refractory)
            out.append((score(fired, r.labels, [args.word], r.duration, tolerance), fired))
        (words, fired), (speech, _) = out
        which: dict[str, int] = {}
        for label in rec["words"].labels:
            if label.word != args.word and any(label.start < t <= label.end + tolerance for t, _ in fired):
                which[label.word] = which.get(label.word, 0) + 1
        return words, which, speech

    own = bundle.thresholds[args.word]
    words, which, speech = at(own)
    others = sum(n for w, n in said.items() if w != args.word)
    print(f"{args.bundle} at its threshold {own}: real people saying {args.word}: {words.hits}/{words.commands}; "
          f"false alarms on {others} other-word clips: {words.false_alarms} ("
          + ", ".join(f"{w} {n}/{said[w]}" for w, n in sorted(which.items(), key=lambda kv: -kv[1]))
          + f"); speech: {speech.false_alarms} in {speech.non_command_hours * 60:.1f} min "
          f"({speech.fa_per_hour:.1f}/h, < {rate_upper_95(speech.false_alarms, speech.non_command_hours):.1f}/h 95%)")
    for level in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        words, which, speech = at(level)
        print(f"  at {level}: people {words.hits}/{words.commands}, other words {words.false_alarms}, "
              f"speech {speech.false_alarms} ({speech.fa_per_hour:.1f}/h)")


if __name__ == "__main__":
    main()
