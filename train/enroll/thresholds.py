"""Thresholds chosen on validation streams, then the report's figures on testing streams.

Both kinds of stream are built the same way (``Streams``): the held-apart voices saying the
words among other words and Speech Commands clips, and the held-apart split of the negative
speech; testing adds the held-apart recordings, near-words and people saying the word in
Speech Commands. Each stream is replayed once through the bundle's live ``Detector``
(``kws.eval.scoring.record_stream``); thresholds are then chosen, and streams scored, on those
recordings. No testing stream is seen by any choice, so the report says how the bundle does on
voices and speech it never met. Every stream has its own seeded generator: what it holds does
not depend on what was drawn before it.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.bundle import load_bundle, merge_metadata
from kws.config import with_overrides
from kws.eval.testaudio import pick_negatives
from kws_train.enroll.job import Job
from kws_train.enroll.negatives import Negatives
from kws_train.enroll.report import per_voice
from kws_train.enroll.voices import Others, Positives, split_recordings


@dataclass
class Verdict:
    """The thresholds, what set them, and the scores of the streams (summaries)."""

    thresholds: dict[str, float]
    hardest: dict[str, list]  # word -> its hardest negatives on the validation streams
    testing: dict
    total: dict               # of all testing streams together
    validation: dict


def choose_and_test(job: Job, staging: Path, positives: Positives, others: Others, neg: Negatives,
                    bar) -> Verdict:
    """Thresholds chosen on the validation streams and written into the bundle at ``staging``;
    then the testing streams (``bar``'s ``testing`` stage), all scored at those thresholds."""
    bundle = load_bundle(staging, job.config)
    config = with_overrides(job.config, {"words": bundle.words})
    with tempfile.TemporaryDirectory(prefix="kws-enroll-streams-") as folder:
        streams = Streams(job, positives, others, neg, Path(folder))
        val = streams.record("validation", bundle, config, bar)
        thresholds, hardest = choose_thresholds(staging, val, bundle, config, job.words)
        bundle = load_bundle(staging, config)
        bar.stage("testing")
        test = streams.record("testing", bundle, config, bar)
    testing, total = score_streams(test, bundle, config, thresholds, by_voice=True)
    validation, _ = score_streams(val, bundle, config, thresholds)
    return Verdict(thresholds, hardest, testing, total.summary(), validation)


@dataclass
class Streams:
    """The clips of the validation and testing streams, and the folder their audio goes to."""

    job: Job
    positives: Positives
    others: Others
    neg: Negatives
    folder: Path

    def record(self, split: str, bundle, config, bar) -> dict:
        """name -> the ``Recording`` of each stream of ``split`` replayed through ``bundle``."""
        from kws.eval.scoring import record_stream
        from kws.eval.testaudio import build_stream, write_labels

        job = self.job
        streams = self._clips(split)
        out = {}
        for k, (name, clips) in enumerate(streams.items()):
            audio, labels = build_stream(clips, self.neg.noises, config.stream, job.sr,
                                         np.random.default_rng([job.seed, k, len(split)]))
            wav = self.folder / f"{split}-{name}.wav"
            write_wav(wav, audio, job.sr)
            write_labels(wav.with_suffix(".csv"), labels)
            out[name] = record_stream(bundle, config, wav, labels)
            bar.advance((k + 1) / len(streams))
        return out

    def _clips(self, split: str) -> dict:
        """name -> clips for ``build_stream``: the held-apart voices' words among synthetic other
        words; people saying other words (Speech Commands); the negative speech of ``split``,
        and for validation the training split's too (heard in training, but minutes more of
        real speech to hold the thresholds); testing only: the held-apart recordings,
        near-words and people saying the word in Speech Commands."""
        job, neg, sr = self.job, self.neg, self.job.sr
        rng = np.random.default_rng([job.seed, 7, len(split)])
        clips = []
        for w in job.words:
            speakers = self.positives.speakers.get((w, split), [])
            for wave, speaker in zip(self.positives.waves[w][split], speakers):
                for _ in range(job.plan.stream_repeats):
                    clips.append((w, f"synthetic:{speaker}", wave))
        for text, wave in self.others.streams[split]:
            clips.append((text, f"synthetic:{text}", wave))
        streams = {"voices": [clips[i] for i in rng.permutation(len(clips))]}
        if neg.sc_streams[split]:
            streams["other people"] = [(f, f"speech_commands:{f}", wave) for f, wave in neg.sc_streams[split]]
        for name, files in (("speech", neg.speech_files[split]),
                            ("seen speech", neg.speech_files["training"] if split == "validation" else [])):
            if files:
                streams[name] = pick_negatives(files, None, sr, rng, lambda p: read_audio(p, sr))
        if split == "testing":
            streams.update(self._testing_only(rng))
        return streams

    def _testing_only(self, rng: np.random.Generator) -> dict:
        job, neg = self.job, self.neg
        streams = {}
        recs = [(w, path, wave) for w in job.words for path, wave in split_recordings(job.recordings.get(w, []))[1]]
        if recs:
            streams["recordings"] = recs
        if self.others.stream_nears:
            streams["near_words"] = [(text, f"synthetic:{text}", wave) for text, wave in self.others.stream_nears]
        if neg.sc_real:
            real = [(w, "speech_commands", wave) for w, wave in neg.sc_real]
            real += [(f, f"speech_commands:{f}", wave) for f, wave in neg.sc_streams["testing"][:len(real)]]
            streams["people"] = [real[i] for i in rng.permutation(len(real))]
        return streams


# False alarms on other words that each word may make on validation: one in a hundred, a quarter
# of the product's limit (5 among 124 phrases), leaving room for what testing adds. On running
# speech none: minutes of it cannot tell 2 an hour from 0.
OTHER_WORD_RATE = 0.01


def other_words(labels: list, words: list[str]) -> int:
    """How many of a stream's ``labels`` are words other than ``words`` (not running speech or
    silence, whose labels start with ``_``)."""
    return sum(lab.word not in words and not lab.word.startswith("_") for lab in labels)


def allowances(val: dict, words: list[str]) -> list[int]:
    """The false alarms each word may make on each validation recording of ``val``: a rate per
    word, as a wake word's false accepts are (two words may fire twice as often)."""
    return [0 if "speech" in name else int(OTHER_WORD_RATE * other_words(rec.labels, words))
            for name, rec in val.items()]


def choose_thresholds(staging: Path, val: dict, bundle, config, words: list[str]) -> tuple[dict, dict]:
    """``(thresholds, hardest negatives of each enrolled word)`` from the validation recordings
    ``val``, both written into the bundle at ``staging``."""
    from kws_train.thresholds import choose

    tolerance = config.stream.tolerance_ms / 1000
    allowed = allowances(val, words)
    thresholds, chosen_score = choose(list(val.values()), bundle, config, allowed)
    hardest = {w: hardest_negatives(list(val.values()), bundle.labels, w, tolerance) for w in words}
    merge_metadata(staging, thresholds=thresholds, threshold_selection={
        "rule": f"each word's lowest level with at most {OTHER_WORD_RATE:g} false alarms per other word "
                "on the validation streams of other words, and none on running speech",
        "streams": {name: round(rec.duration / 60, 2) for name, rec in val.items()},
        "allowed_false_alarms": dict(zip(val, allowed)),
        "hardest_negatives": hardest, **chosen_score})
    return thresholds, hardest


def hardest_negatives(recordings, labels: list[str], word: str, tolerance: float, top: int = 3) -> list:
    """The ``top`` highest smoothed scores of ``word`` away from its own utterances, each with
    the label (other word, speech file) it came on: what set the word's threshold."""
    column = labels.index(word)
    found = []
    for rec in recordings:
        mine = [(lab.start, lab.end + tolerance) for lab in rec.labels if lab.word == word]
        for lab in rec.labels:
            if lab.word == word:
                continue
            at = (rec.times > lab.start) & (rec.times <= lab.end + tolerance)
            for a, b in mine:
                at &= ~((rec.times > a) & (rec.times <= b))
            if at.any():
                found.append((float(rec.scores[at, column].max()), lab.word, lab.source))
    found.sort(reverse=True)
    return [{"score": round(sc, 4), "text": text, "source": src} for sc, text, src in found[:top]]


def score_streams(recordings: dict, bundle, config, thresholds: dict, by_voice: bool = False):
    """``(name -> summary, their total Score)`` of the recordings at ``thresholds``; with
    ``by_voice``, the ``voices`` stream's hits per voice too."""
    from kws.eval.scoring import Score, replay_trigger, score

    tolerance = config.stream.tolerance_ms / 1000
    refractory = config.posterior.refractory_ms / 1000
    th = np.array([thresholds.get(lab, math.inf) for lab in bundle.labels])
    results, scores = {}, []
    for name, rec in recordings.items():
        dets = replay_trigger(rec.times, rec.scores, bundle.labels, th, refractory)
        scores.append(score(dets, rec.labels, bundle.words, rec.duration, tolerance))
        results[name] = scores[-1].summary()
        results[name]["minutes"] = round(rec.duration / 60, 2)
        results[name]["other_words"] = other_words(rec.labels, bundle.words)
        if by_voice and name == "voices":
            results[name]["per_voice"] = per_voice(rec, dets, bundle.words, tolerance)
    return results, Score.total(scores)
