"""Who says the words: every installed synthetic voice and the user's recordings, and which of
them are held apart.

Held-apart base voices (``held_apart``) never train: their clips make the validation streams
(thresholds) and the testing streams (the report), so both are scored on voices the head never
heard. Recordings are split the same way (``split_recordings``). The synthesis stages say the
words (``synthesize_words``) and the other words and near-words (``synthesize_others``); clips
are cached on disk (``kws_train.synth``), so a second enrollment of a word is quick.
"""

from __future__ import annotations

import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio
from kws.data.negatives import audio_files
from kws.errors import KwsError
from kws_train import synth
from kws_train.enroll.audio import trim
from kws_train.enroll.job import Job
from kws_train.enroll.words import negative_texts

DEFAULT_ENGINES = [e for e in synth.ENGINES if e != "piper"]  # Piper's voice licence is unclear


def held_apart(all_voices: list[synth.Voice]) -> dict[str, str]:
    """speaker -> ``validation`` or ``testing`` for held-apart base voices; the rest train.

    An engine with three or more base voices gives one in six (at least one) to each of
    validation and testing; one with two gives one to validation; a single voice trains.
    """
    by_engine: dict[str, list[str]] = {}
    for v in all_voices:
        by_engine.setdefault(v.engine, [])
        if v.speaker not in by_engine[v.engine]:
            by_engine[v.engine].append(v.speaker)
    split = {}
    for engine, speakers in by_engine.items():
        order = sorted(speakers, key=lambda s: zlib.crc32(s.encode()))
        n = len(order)
        k = 0 if n == 1 else 1 if n == 2 else max(1, n // 6)
        for s in order[:k]:
            split[s] = "validation"
        if n >= 3:
            for s in order[k:2 * k]:
                split[s] = "testing"
    return split


def split_of(voice: synth.Voice, held: dict[str, str]) -> str:
    return held.get(voice.speaker, "training")


# Fewer voices, fewer people heard (studies/enroll_study.py: 42% of real speakers from espeak-ng
# and flite, against 54% from every engine); the README's `make voices` installs them all.
INSTALL_HINT = "; `make voices` installs every engine and voice"


def engines_used(engines: list[str], voices: list[synth.Voice]) -> tuple[list[str], dict[str, str]]:
    """``(the engines of engines that have voices here, missing voice -> how to get it)``, with a
    warning on stderr for each engine not used and each voice missing, so that neither the
    report nor the user believes in voices that never spoke."""
    used = [e for e in engines if any(v.engine == e for v in voices)]
    status = synth.engine_status()
    missing = synth.missing_voices(engines)
    for engine in engines:
        if engine not in used:
            print(f"kws: warning: speech engine {engine} not used: {status[engine][1] or 'no voices'}"
                  f"{INSTALL_HINT if engine != 'piper' else ''}", file=sys.stderr, flush=True)
        else:
            for voice, how in missing.items():
                if voice.split()[0] == engine:
                    print(f"kws: warning: speech engine {engine} lacks voice {voice.split()[1]} ({how})"
                          f"{INSTALL_HINT}", file=sys.stderr, flush=True)
    return used, missing


def read_recordings(folder: str | Path, word: str, single: bool,
                    sample_rate: int) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """The user's takes of ``word`` (``DIR/<word>/*``, files named ``<word>...``, or with one word
    every audio file in ``DIR``), trimmed of silence and cut to a second; and a note on each take
    skipped (unreadable, silent, too short: why) or doubtful (longer than a second, or several
    bursts of speech where the word has fewer words: not one word said alone)."""
    folder = Path(folder)
    slug = re.sub(r"[^a-z0-9]+", "_", word).strip("_")
    files = audio_files(folder)
    if not single:
        files = [p for p in files if p.parent.name in (slug, word) or p.name.startswith(slug)]
    out, notes = [], []
    for path in files:
        try:
            wave = read_audio(path, sample_rate)
        except KwsError as err:
            notes.append(f"{path}: skipped: {str(err).removeprefix(f'{path}: ')}")
            continue
        if not len(wave) or float(np.max(np.abs(wave))) < 1e-3:
            notes.append(f"{path}: skipped: silent")
            continue
        wave = trim(wave, sample_rate)
        if len(wave) < sample_rate // 10:
            notes.append(f"{path}: skipped: under 0.1 s of sound")
            continue
        if len(wave) > sample_rate:
            notes.append(f"{path}: {len(wave) / sample_rate:.1f} s of sound, longer than a word said alone: "
                         "only its first second is used")
        said = bursts(wave, sample_rate)
        if said > len(word.split()):
            notes.append(f"{path}: {said} bursts of speech for {word!r}: several words?")
        out.append((str(path), wave[:sample_rate]))
    return out, notes


def bursts(wave: np.ndarray, sample_rate: int) -> int:
    """How many stretches of sound ``wave`` holds: 20-ms frames within 25 dB of the loudest,
    gaps under 0.3 s (a stop consonant, a breath inside a word) bridged, 60 ms or longer."""
    frame = sample_rate // 50
    rms = np.sqrt(np.mean(wave[:len(wave) // frame * frame].reshape(-1, frame).astype(np.float64) ** 2, axis=1))
    if not len(rms) or rms.max() <= 0:
        return 0
    loud = rms > rms.max() * 10 ** (-25 / 20)
    runs, gap, length = 0, 0, 0
    for on in loud:
        if on:
            if length == 0 and (runs == 0 or gap >= 15):  # 15 frames: 0.3 s
                runs += 1
            length, gap = length + 1, 0
        else:
            gap += 1
            if gap >= 15:
                length = 0
    return runs


def user_recordings(folder: str | Path, words: list[str],
                    sample_rate: int) -> tuple[dict[str, list[tuple[str, np.ndarray]]], list[str]]:
    """``(word -> the user's takes in folder, notes on the takes)``; a folder without usable audio
    is an input error, found before any long work, naming why takes were skipped."""
    found, notes = {}, []
    for w in words:
        found[w], said = read_recordings(folder, w, len(words) == 1, sample_rate)
        notes += said
    if not any(found.values()):
        why = "; ".join(n.removeprefix(f"{folder}/") for n in notes[:3]) + (" ..." if len(notes) > 3 else "")
        raise KwsError(f"{folder}: no usable recordings (audio files with sound in them"
                       + ("" if len(words) == 1 else ", in DIR/<word>/ or named <word>...") + ")"
                       + (f": {why}" if why else ""))
    return found, notes


def long_takes(job: Job, positives: "Positives") -> list[str]:
    """A note on each take much longer (1.8 times) than the word as the voices say it (their
    median): silence left in, or more than the word."""
    notes = []
    for w, takes in job.recordings.items():
        typical = float(np.median([len(x) for s in positives.waves[w].values() for x in s]))
        for path, wave in takes:
            if typical and len(wave) > 1.8 * typical and len(wave) < job.sr:  # a second: noted already
                notes.append(f"{path}: {len(wave) / job.sr:.2f} s, {len(wave) / typical:.1f} times the word "
                             "as the voices say it: more than the word?")
    return notes


def split_recordings(recs):
    """(training, held apart): one in five held apart when there are at least four."""
    if len(recs) < 4:
        return recs, []
    held = [r for i, r in enumerate(recs) if i % 5 == 4]
    return [r for i, r in enumerate(recs) if i % 5 != 4], held


@dataclass
class Positives:
    """The words said by the synthetic voices."""

    waves: dict[str, dict[str, list[np.ndarray]]]  # word -> split -> clips
    speakers: dict[tuple[str, str], list[str]]     # (word, split) -> speaker of each clip
    per_engine: dict[str, dict]                    # word -> clips per engine (the report)


def synthesize_words(job: Job, bar) -> Positives:
    """Each word in every voice; an error when too few voices, or no training voice, could say it."""
    positives = Positives({}, {}, {})
    for i, w in enumerate(job.words):
        clips = synth.synthesize([w], job.voices, job.cache / "words", job.seed, job.sr)
        bar.advance((i + 1) / len(job.words))
        if len(clips) < max(3, len(job.voices) // 4):
            raise KwsError(f"{w!r}: the speech engines could not say it ({len(clips)} of "
                           f"{len(job.voices)} voices gave a clip of 0.1-1 s)")
        by_split: dict[str, list[np.ndarray]] = {"training": [], "validation": [], "testing": []}
        for clip in sorted(clips, key=lambda c: c.path.name):
            split = split_of(clip.voice, job.held)
            by_split[split].append(read_audio(clip.path, job.sr))
            positives.speakers.setdefault((w, split), []).append(clip.voice.speaker)
        if not by_split["training"]:
            raise KwsError(f"{w!r}: no training voice could say it")
        positives.waves[w] = by_split
        positives.per_engine[w] = dict(clips.per_engine)
    return positives


@dataclass
class Others:
    """Other words and near-words, synthesized: training clips (files, read when augmented) by
    training voices, and waves for the streams by held-apart ones."""

    nears: list[str]                                 # the near-words (the report)
    train: list                                      # synth clips of other words
    near_train: list                                 # synth clips of near-words
    streams: dict[str, list[tuple[str, np.ndarray]]]  # split -> (text, wave) of other words
    stream_nears: list[tuple[str, np.ndarray]]       # (text, wave) of near-words, testing only


def synthesize_others(job: Job, bar) -> Others:
    """Other words and near-words: a few training voices each for training; for the streams,
    other words picked by their own seeded generator and said by held-apart voices."""
    by_split = {s: [v for v in job.voices if split_of(v, job.held) == s]
                for s in ("training", "validation", "testing")}
    train_voices = by_split["training"]
    others, nears = negative_texts(job.words, job.with_commands)
    plan, cache, seed, sr = job.plan, job.cache, job.seed, job.sr
    other_train = synth.synthesize(others, train_voices, cache / "other", seed, sr, per_text=plan.other_voices)
    bar.advance(0.5)
    near_train = synth.synthesize(nears, train_voices, cache / "near", seed, sr,
                                  per_text=plan.near_voices) if nears and plan.near_voices else []
    bar.advance(0.7)
    stream_voices = {"validation": by_split["validation"] or train_voices,
                     "testing": by_split["testing"] or by_split["validation"] or train_voices}
    streams = {}
    for k, (split, voices) in enumerate(stream_voices.items()):
        pick = [others[i] for i in np.random.default_rng([seed, k]).permutation(len(others))[:plan.stream_other_words]]
        said = synth.synthesize(pick, voices, cache / "other", seed + 1 + k, sr, per_text=1)
        streams[split] = [(c.text, read_audio(c.path, sr)) for c in said]
    # Near-words train, but set no threshold: one sound away from the word ("larvin" for
    # "marvin"), they would push it near 1 for words people seldom say. Testing reports them.
    said = synth.synthesize(nears, stream_voices["testing"], cache / "near", seed + 3, sr,
                            per_text=2) if nears else []
    stream_nears = [(c.text, read_audio(c.path, sr)) for c in said]
    bar.advance(1.0)
    return Others(nears, other_train, near_train, streams, stream_nears)
