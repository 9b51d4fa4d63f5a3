"""Thresholds chosen on validation streams, then the report's figures on testing streams.

Both kinds of stream are built the same way (``Streams``): the held-apart voices saying the
words among other words and Speech Commands clips, and the held-apart split of the negative
speech; testing adds the held-apart recordings, near-words and people saying the word in
Speech Commands. Each stream is replayed once through the bundle's live ``Detector``
(``kws.eval.scoring.record_stream``); thresholds are then chosen, and streams scored, on those
recordings. No testing stream is seen by any choice, so the report says how the bundle does on
voices and speech it never met. Every stream has its own seeded generator: what it holds does
not depend on what was drawn before it.

The bank's held-apart rows (``kws_train.enroll.bank``) are streams too (``bank_streams``):
activations, not audio, so they are scored by the trained Keras model (float, not int8). A
recording's windows, half a second apart, have their posteriors interpolated to the detector's
hop and smoothed as it smooths; a run of hops above a threshold is one false alarm, as in a
stream. Checked on 600 held-apart recordings of speechocean762 and an enrolled "marvin": the
detector's smoothed score reached 0.5 / 0.7 / 0.8 in 17 / 2 / 0 of them, this approximation in
18 / 5 / 1, the raw windows in 23 / 15 / 7: it errs on the side of false alarms, the raw
windows far more. A word clip is one window, its centred one, unsmoothed: about the peak a
stream gives it, so its false alarms are if anything overcounted.
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
from kws.posterior import smoothing_ms
from kws.eval.scoring import Recording
from kws.eval.testaudio import NEGATIVE, Label, pick_negatives
from kws_train.enroll.bank import SPLITS, Bank
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
                    bank_posteriors: np.ndarray | None, bar) -> Verdict:
    """Thresholds chosen on the validation streams and written into the bundle at ``staging``;
    then the testing streams (``bar``'s ``testing`` stage), all scored at those thresholds.
    ``bank_posteriors``: the trained model's posteriors of every row of ``neg.bank``."""
    bundle = load_bundle(staging, job.config)
    config = with_overrides(job.config, {"words": bundle.words})
    with tempfile.TemporaryDirectory(prefix="kws-enroll-streams-") as folder:
        streams = Streams(job, positives, others, neg, Path(folder))
        val = streams.record("validation", bundle, config, bar)
        smoothing = smoothing_ms(config, bundle.smoothing_ms) / 1000
        if neg.bank is not None:
            val.update(bank_streams(job, neg.bank, bank_posteriors, "validation", smoothing))
        thresholds, hardest = choose_thresholds(staging, val, bundle, config, job.words)
        bundle = load_bundle(staging, config)
        bar.stage("testing")
        test = streams.record("testing", bundle, config, bar)
        if neg.bank is not None:
            test.update(bank_streams(job, neg.bank, bank_posteriors, "testing", smoothing))
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
            streams["other people"] = neg.sc_streams[split]
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
            real = neg.sc_real + neg.sc_streams["testing"][:len(neg.sc_real)]
            streams["people"] = [real[i] for i in rng.permutation(len(real))]
        return streams


# Between two recordings of a bank stream: longer than the refractory time and the tolerance,
# so a detection belongs to one recording.
BANK_GAP_SECONDS = 5.0


def bank_streams(job: Job, bank: Bank, posteriors: np.ndarray, split: str,
                 smoothing: float) -> dict[str, Recording]:
    """The bank's rows of ``split`` as recordings scored by ``posteriors``: its running speech,
    its other words (the bundle's words left out), and in testing its people saying an enrolled
    word, from every split (those rows never train). ``smoothing``: the detector's, seconds."""
    hop = job.config.detector.hop_ms / 1000
    streams = {}
    speech = bank.rows(split, "speech")
    if len(speech):
        streams["speech (bank)"] = bank_recording(bank, posteriors, speech, hop, smoothing)
    words = bank.rows(split, "word", job.taken)
    if len(words):
        streams["other people (bank)"] = bank_recording(bank, posteriors, words, hop, smoothing)
    if split == "testing":
        said = np.concatenate([bank.rows(s, "word") for s in SPLITS])
        said = said[np.isin(bank.words(said), job.words)]
        if len(said):
            streams["people (bank)"] = bank_recording(bank, posteriors, said, hop, smoothing)
    return streams


def bank_recording(bank: Bank, posteriors: np.ndarray, rows: np.ndarray, hop: float,
                   smoothing: float) -> Recording:
    """``rows`` laid out as one stream: each word clip alone, one hop; each speech recording's
    windows in order, their posteriors interpolated every ``hop`` seconds and averaged over the
    last ``smoothing`` seconds (the first window's held before it); silence between. Its
    duration is the audio the windows cover."""
    clip = float(bank.meta.get("clip_seconds", 1.0))
    taps = max(1, round(smoothing / hop))
    groups: dict[int, list[int]] = {}
    for r in rows:  # a speech recording's windows together; each word clip alone
        groups.setdefault(int(bank.source[r]) if bank.source[r] >= 0 else -1 - int(r), []).append(int(r))
    times, scores, labels, t, covered = [], [], [], 0.0, 0.0
    for group in groups.values():
        group.sort(key=lambda r: bank.offset[r])
        ends = bank.offset[group].astype(np.float64) + clip
        span = float(ends[-1])
        word = bank.names[bank.label[group[0]]]
        source = f"bank:{bank.speakers[bank.speaker[group[0]]]}"
        if word == NEGATIVE:
            grid = np.arange(ends[0], ends[-1] + hop / 2, hop)
            fine = np.stack([np.interp(grid, ends, posteriors[group, c]) for c in range(posteriors.shape[1])], 1)
            held = np.concatenate([np.repeat(fine[:1], taps - 1, 0), fine])
            total = np.cumsum(held, 0)
            smoothed = (total[taps - 1:] - np.concatenate([np.zeros((1, fine.shape[1])), total[:-taps]])) / taps
            times.append(t + grid)
            scores.append(smoothed)
            labels.append(Label(NEGATIVE, t, t + span, source))
        else:
            # The clip's speech taken as its middle half: the detection, at the window's end,
            # falls within the tolerance after it.
            times.append(np.array([t + span]))
            scores.append(posteriors[group[:1]])
            labels.append(Label(word, t + clip / 4, t + 3 * clip / 4, source))
        # A hop of silence between recordings re-arms the trigger, as the gaps of a stream do.
        times.append(np.array([t + span + BANK_GAP_SECONDS / 2]))
        scores.append(np.eye(1, posteriors.shape[1]))
        covered += span
        t += span + BANK_GAP_SECONDS
    return Recording(np.concatenate(times), np.concatenate(scores), [], covered, {}, labels)


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
        results[name]["people"] = len({who for lab in rec.labels if (who := speaker_of(lab.source))})
        results[name]["fired_on"] = fired_on(rec, dets, bundle.words, tolerance)
        if by_voice and name == "voices":
            results[name]["per_voice"] = per_voice(rec, dets, bundle.words, tolerance)
    return results, Score.total(scores)


def speaker_of(source: str) -> str | None:
    """The real person behind a stream label's ``source``; None for a synthetic voice."""
    kind, _, rest = source.partition(":")
    if kind == "synthetic":
        return None
    if kind == "bank":
        return rest
    if kind == "speech_commands":
        return rest.rsplit("/", 1)[-1].split("_nohash_")[0] or None
    return Path(source).stem.split("-")[0]  # a file: its reader (kws.data.negatives), a user's take


def fired_on(rec, detections, words: list[str], tolerance: float) -> dict[str, dict[str, int]]:
    """Other words (not ``words``, not running speech) that a detection fell on: word ->
    ``{"fired", "said"}``, most fired first: the near words people will meet."""
    said: dict[str, list[int]] = {}
    for lab in rec.labels:
        if lab.word in words or lab.word.startswith("_"):
            continue
        counts = said.setdefault(lab.word, [0, 0])
        counts[0] += any(lab.start < t <= lab.end + tolerance for t, _ in detections)
        counts[1] += 1
    fired = sorted(((w, c) for w, c in said.items() if c[0]), key=lambda x: (-x[1][0], x[0]))
    return {w: {"fired": f, "said": n} for w, (f, n) in fired}
