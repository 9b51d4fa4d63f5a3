"""``kws enroll``: a spotter for the user's own words, trained on this machine in minutes.

Transfer learning on the shipped model: its trained layers up to the pooled embedding (each
TC-ResNet member's input to its ``posteriors`` layer, concatenated) are a frozen backbone;
embeddings of augmented clips are computed once, and only a small head is trained over
``[_silence_, _unknown_, *words]`` (plus the ten Speech Commands words with
``--with-commands``). Backbone and head are exported as one Keras model through
``kws_train.export`` (LiteRT float and int8, logits), so the bundle is like any other.

Data
----
* positives: the word in every installed synthetic voice (``kws_train.synth``; Piper only when
  asked for with ``--engines``), base voices held apart for validation (thresholds) and
  testing (the report); the user's recordings when given, some held apart for the report;
  all augmented (placement in the window, speed, noise, gain, SpecAugment);
* negatives (``_unknown_``): other words and near-words of the new word, synthesized;
  Speech Commands clips of other words (``--data``, optional); windows of running speech
  (``--negatives``, training split only); the head or tail of the word alone;
* ``_silence_``: background noise at the training loudness range.

Thresholds: each word's lowest level with no error on validation streams (held-apart voices,
other words, the validation split of the negative speech; ``kws_train.thresholds.choose``),
aiming at no more than 0.5 false alarms per hour. The report (``enroll_report.json`` and
``enroll_report.txt`` in the bundle) scores testing streams no choice has seen.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kws.audio.files import read_audio, write_wav
from kws.bundle import bundle_writer, check_bundle_target, load_bundle, merge_metadata
from kws.config import Config, with_overrides
from kws.data.negatives import audio_files, negative_files
from kws.errors import KwsError
from kws.eval.testaudio import pick_negatives
from kws.features import FrontEnd
from kws.labels import SILENCE, UNKNOWN, labels_for
from kws.writes import to_json
from kws_train import synth

COMMANDS = list(synth.COMMANDS)
DEFAULT_ENGINES = [e for e in synth.ENGINES if e != "piper"]  # Piper's voice licence is unclear


@dataclass(frozen=True)
class Budget:
    """How much data and training an enrollment spends."""

    pitches: tuple = synth.PITCHES        # personas per base voice: pitch x rate
    rates: tuple = synth.RATES
    copies: int = 12                      # augmented copies of each training positive clip
    recording_copies: int = 40            # ... of each training recording
    other_voices: int = 3                 # voices per other word / near-word (training)
    near_voices: int = 10
    speech_commands: int = 3000           # Speech Commands clips of other words
    command_clips: int = 400              # per command with --with-commands
    speech_windows: int = 3000            # one-second windows of negative running speech
    partial_fraction: float = 0.5         # head/tail-of-word clips per positive example
    silence_fraction: float = 0.1         # of all examples
    epochs: int = 40                      # of the head alone, on fixed embeddings
    tune_epochs: int = 5                  # then of the last block of each member and the head
    tune_rate: float = 1e-4
    stream_other_words: int = 120         # other-word clips in each validation/testing stream
    stream_repeats: int = 2               # each held-apart positive clip said this often


BUDGETS = {
    "normal": Budget(),
    # Seconds, not minutes: for tests and a first look.
    "tiny": Budget(pitches=(0.88, 1.12), rates=(0.85, 1.15), copies=6, recording_copies=10,
                   other_voices=1, near_voices=3, speech_commands=300, command_clips=60,
                   speech_windows=300, epochs=15, tune_epochs=3, stream_other_words=20, stream_repeats=1),
}


# --------------------------------------------------------------------------- words

def clean_word(word: str) -> str:
    """The word or phrase as the engines get it; one line of error for what cannot be one."""
    text = " ".join(str(word).strip().lower().split())
    if not text:
        raise KwsError("empty word: give the word or short phrase to enroll, e.g. kws enroll computer")
    if not re.fullmatch(r"[a-z][a-z' ]*", text):
        raise KwsError(f"{word!r}: a word to enroll is letters (and spaces or ') only")
    if len(text.split()) > 4 or len(text) > 30:
        raise KwsError(f"{word!r}: too long to say within one second; enroll a word or a short phrase")
    if text in (SILENCE, UNKNOWN):
        raise KwsError(f"{word!r} is a reserved label")
    return text


ONSETS = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "w", "sh", "ch", "st"]
VOWELS = "aeiou"


def sounds(text: str) -> str:
    """A rough phonetic key: spellings of one sound made equal (``komputer`` is ``computer``)."""
    key = text.replace(" ", "")
    for a, b in (("ck", "k"), ("ph", "f"), ("wr", "r"), ("kn", "n"), ("qu", "kw"), ("x", "ks"),
                 ("ce", "se"), ("ci", "si"), ("cy", "sy"), ("c", "k"), ("z", "s"), ("y", "i")):
        key = key.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", key)


def near_words(word: str, count: int = 14) -> list[str]:
    """Words that sound close to ``word`` but are not it: another onset, the head or the tail
    alone, the first or last syllable dropped, and for a phrase each of its words alone."""
    out: dict[str, None] = {}
    words = word.split()
    if len(words) > 1:
        for w in words:
            out.setdefault(w, None)
        out.setdefault(" ".join(words[:-1]), None)
    main = max(words, key=len)
    m = re.match(r"([^aeiouy]*)(.*)", main)
    onset, rest = m.group(1), m.group(2)
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    for new in rng.permutation(ONSETS):
        if new != onset and rest:
            out.setdefault(word.replace(main, new + rest, 1), None)
        if len(out) >= count // 2:
            break
    vowels = [i for i, c in enumerate(main) if c in VOWELS]
    if len(vowels) >= 2:  # head and tail around the second vowel group
        cut = vowels[1]
        out.setdefault(main[:cut].rstrip(VOWELS) or main[:cut], None)
        out.setdefault(main[cut - 1:], None)
    if len(main) >= 4:
        out.setdefault(main[:-2], None)
        out.setdefault(main[1:], None)
    out.setdefault(main + "ing" if not main.endswith("e") else main[:-1] + "ing", None)
    result = [w for w in out if w and sounds(w) != sounds(word) and len(w.replace(" ", "")) >= 2]
    return result[:count]


# --------------------------------------------------------------------------- voices

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


# --------------------------------------------------------------------------- progress

class Progress:
    """One bar over the whole enrollment, in estimated seconds of work, with the time left.

    Drawn on a terminal only (tqdm's ``disable=None``), and cleared when done, so an error
    after it is still the one line on stderr."""

    def __init__(self, stages: dict[str, float], enabled: bool = True):
        from tqdm import tqdm

        self.stages = stages
        self.bar = tqdm(total=sum(stages.values()), unit="s", file=sys.stderr,
                        disable=None if enabled else True, leave=False, dynamic_ncols=True,
                        bar_format="{desc:<28}{percentage:3.0f}%|{bar}| {elapsed} elapsed, "
                                   "about {remaining} left")
        self.current, self.done_in_stage = None, 0.0
        self.seconds: dict[str, float] = {}  # measured time of each stage
        self._started = time.monotonic()

    def stage(self, name: str) -> None:
        self.finish_stage()
        self.current, self.done_in_stage = name, 0.0
        self._started = time.monotonic()
        self.bar.set_description_str(name)

    def advance(self, fraction: float) -> None:
        """The current stage is ``fraction`` done."""
        target = self.stages[self.current] * min(1.0, fraction)
        if target > self.done_in_stage:
            self.bar.update(target - self.done_in_stage)
            self.done_in_stage = target

    def finish_stage(self) -> None:
        if self.current is not None:
            self.advance(1.0)
            self.seconds[self.current] = round(time.monotonic() - self._started, 1)

    def close(self) -> None:
        self.finish_stage()
        self.bar.close()

    def write(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)


# --------------------------------------------------------------------------- audio

def _place(word: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``word`` at a random place inside a ``length`` window (cut to fit)."""
    word = word[:length]
    out = np.zeros(length, np.float32)
    at = int(rng.integers(0, length - len(word) + 1))
    out[at:at + len(word)] = word
    return out


def _speed(wave: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    import soxr

    if abs(factor - 1.0) < 1e-3:
        return wave
    return soxr.resample(wave, sample_rate, sample_rate / factor).astype(np.float32)


def _trim(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    out = synth.trim(wave, sample_rate)
    return out if len(out) else wave


def read_recordings(folder: str | Path, word: str, single: bool, sample_rate: int) -> list[tuple[str, np.ndarray]]:
    """The user's takes of ``word``: ``DIR/<word>/*``, files named ``<word>...``, or with one word
    every audio file in ``DIR``; trimmed of silence. Unreadable or silent files are skipped."""
    folder = Path(folder)
    slug = re.sub(r"[^a-z0-9]+", "_", word).strip("_")
    files = audio_files(folder)
    if not single:
        files = [p for p in files if p.parent.name in (slug, word) or p.name.startswith(slug)]
    out = []
    for path in files:
        try:
            wave = read_audio(path, sample_rate)
        except KwsError:
            continue
        if not len(wave) or float(np.max(np.abs(wave))) < 1e-3:
            continue
        wave = _trim(wave, sample_rate)
        if len(wave) < sample_rate // 10:
            continue
        out.append((str(path), wave[:sample_rate]))
    return out


# --------------------------------------------------------------------------- the model

def backbone(model):
    """``(prefix, suffix)`` per ensemble member: ``prefix`` maps features to the input of the
    member's last block (its last stride-2 convolutions), ``suffix`` that block up to the
    pooled embedding (the input of its ``posteriors`` Dense layer). Both frozen; the suffix
    may be fine-tuned (``Budget.tune_epochs``)."""
    import keras

    found = []

    def visit(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                visit(layer)
            elif layer.name == "posteriors" and isinstance(layer, keras.layers.Dense):
                strided = [c for c in m.layers if isinstance(c, keras.layers.Conv1D) and c.strides[0] > 1]
                i = len(found)
                if strided:
                    cut = strided[-1].input
                    pair = (keras.Model(m.inputs, cut, name=f"prefix{i}"),
                            keras.Model(cut, layer.input, name=f"suffix{i}"))
                else:  # not a TC-ResNet: the whole body is the prefix
                    pair = (keras.Model(m.inputs, layer.input, name=f"prefix{i}"), None)
                found.append(pair)

    visit(model)
    if not found:
        raise KwsError("the base model has no Dense layer named 'posteriors' to start from")
    for prefix, suffix in found:
        prefix.trainable = False
        if suffix is not None:
            suffix.trainable = False
    return found


@dataclass
class Enrolled:
    """The Keras models of an enrollment; all share the same layers (weights)."""

    full: object      # features -> posteriors: what is exported
    prefix: object    # features -> activations at the last blocks' input (a list)
    suffix: object    # those activations -> embedding
    head: object      # embedding -> posteriors
    tune: object      # activations -> posteriors (fine-tuning the last blocks and the head)


def build_model(pairs, frames: int, dim: int, classes: int, hidden: int = 128) -> Enrolled:
    """Backbone + a new head (Dense ``hidden`` ReLU, dropout, Dense softmax ``posteriors``)."""
    import keras

    hidden_layer = keras.layers.Dense(hidden, activation="relu", name="head_hidden")
    drop = keras.layers.Dropout(0.3, name="head_dropout")
    out_layer = keras.layers.Dense(classes, activation="softmax", name="posteriors")
    concat = keras.layers.Concatenate(name="embedding") if len(pairs) > 1 else None

    def tail(acts):
        embs = [suffix(a, training=False) if suffix is not None else a
                for a, (_, suffix) in zip(acts, pairs)]
        return concat(embs) if concat is not None else embs[0]

    inputs = keras.Input(shape=(frames, dim), name="features")
    acts = [prefix(inputs, training=False) for prefix, _ in pairs]
    emb = tail(acts)
    full = keras.Model(inputs, out_layer(drop(hidden_layer(emb))), name="enrolled")
    prefix_model = keras.Model(inputs, acts, name="prefixes")
    act_inputs = [keras.Input(shape=a.shape[1:], name=f"activations{i}") for i, a in enumerate(acts)]
    act_emb = tail(act_inputs)
    suffix_model = keras.Model(act_inputs, act_emb, name="suffixes")
    emb_in = keras.Input(shape=(emb.shape[-1],), name="embedding_in")
    head = keras.Model(emb_in, out_layer(drop(hidden_layer(emb_in))), name="head")
    tune = keras.Model(act_inputs, out_layer(drop(hidden_layer(act_emb))), name="tune")
    return Enrolled(full, prefix_model, suffix_model, head, tune)


@dataclass
class Examples:
    """Waves of one label kind waiting for features: (wave, label index, augment?)."""

    waves: list = field(default_factory=list)
    labels: list = field(default_factory=list)

    def add(self, wave: np.ndarray, label: int) -> None:
        self.waves.append(np.asarray(wave, np.float32))
        self.labels.append(label)


def check_inputs(words: list[str], out: str | Path, recordings: str | Path | None,
                 with_commands: bool, data: str | Path | None) -> list[str]:
    """The cheap checks, before TensorFlow loads: cleaned words, or a one-line KwsError."""
    if not words:
        raise KwsError("give at least one word to enroll")
    cleaned = [clean_word(w) for w in words]
    if len(set(cleaned)) != len(cleaned):
        raise KwsError("a word is given twice")
    if with_commands:
        clash = [w for w in cleaned if w in COMMANDS]
        if clash:
            raise KwsError(f"{clash[0]!r} is already one of the ten commands kept by --with-commands")
        if data is None or not Path(data).is_dir():
            raise KwsError("--with-commands needs the Speech Commands folder (--data DIR)")
    check_bundle_target(out)
    if recordings is not None:
        folder = Path(recordings)
        if not folder.is_dir():
            raise KwsError(f"{folder}: no such folder of recordings")
    return cleaned


def enroll(config: Config, words: list[str], out: str | Path, *, recordings: str | Path | None = None,
           with_commands: bool = False, data: str | Path | None = None,
           negatives: str | Path | None = None, engines: list[str] | None = None,
           budget: str = "normal", seed: int = 0, cache: str | Path | None = None,
           base: str | Path | None = None, progress: bool = True, threads: int = 0,
           tune_epochs: int | None = None) -> dict:
    """Enroll ``words`` and write the bundle ``out``; returns the report."""
    started = time.monotonic()
    words = check_inputs(words, out, recordings, with_commands, data)
    if Path(base or config.model_path).resolve() == Path(out).resolve():
        raise KwsError(f"{out}: that is the base model; write the enrolled bundle elsewhere")
    if budget not in BUDGETS:
        raise KwsError(f"unknown budget {budget!r} (choose {', '.join(BUDGETS)})")
    plan = BUDGETS[budget]
    if tune_epochs is not None:
        if not 0 <= tune_epochs <= 100:
            raise KwsError("--tune-epochs must be between 0 and 100")
        plan = replace(plan, tune_epochs=tune_epochs)
    sr, length = config.audio.sample_rate, config.audio.clip_samples
    data = Path(data) if data is not None and Path(data).is_dir() else None
    negatives = Path(negatives) if negatives is not None and Path(negatives).is_dir() else None
    cache = Path(cache) if cache else Path(tempfile.gettempdir()) / "kws-enroll-cache"
    engines = list(engines) if engines else DEFAULT_ENGINES
    all_voices = synth.voices(engines, plan.pitches, plan.rates)
    if not all_voices:
        raise KwsError(f"no speech engine installed for {', '.join(engines)} ({synth.engine_summary(engines)})")
    engines = _engines_used(engines, all_voices)
    held = held_apart(all_voices)
    rng = np.random.default_rng(seed)

    # Recordings before any long work: a folder without usable audio is an input error.
    user: dict[str, list[tuple[str, np.ndarray]]] = {}
    if recordings is not None:
        for w in words:
            user[w] = read_recordings(recordings, w, len(words) == 1, sr)
        if not any(user.values()):
            raise KwsError(f"{recordings}: no usable recordings (audio files with sound in them"
                           + ("" if len(words) == 1 else ", in DIR/<word>/ or named <word>...") + ")")

    stages = {"synthesizing the words": 0.15 * len(words) * len(all_voices),
              "synthesizing other words": 40.0, "loading negatives": 10.0,
              "loading the base model": 12.0, "computing embeddings": 0.0, "training the head": 15.0,
              "fine-tuning the last block": 0.0,
              "exporting": 60.0, "choosing thresholds": 40.0, "testing": 25.0}
    bar = Progress(stages, progress)
    # The whole bundle, thresholds and report included, is built in one staging folder: the
    # previous bundle at ``out`` stays usable until this one is complete (kws.writes).
    with bundle_writer(out) as staging:
        try:
            report = _enroll(config, words, Path(out), staging, user, with_commands, data, negatives,
                             engines, plan, budget, seed, cache, base, all_voices, held, rng, bar,
                             threads, sr, length)
        finally:
            bar.close()
        report["seconds"] = round(time.monotonic() - started, 1)
        report["stage_seconds"] = bar.seconds
        _write_report(staging, report)
    return report


def _enroll(config, words, out, staging, user, with_commands, data, negatives, engines, plan, budget_name,
            seed, cache, base, all_voices, held, rng, bar, threads, sr, length) -> dict:
    labels = labels_for(words + (COMMANDS if with_commands else []))
    index = {label: i for i, label in enumerate(labels)}
    silence_label, unknown_label = index[SILENCE], index[UNKNOWN]

    # ---- positives from the synthetic voices
    bar.stage("synthesizing the words")
    positives: dict[str, dict[str, list[np.ndarray]]] = {}
    speakers: dict[tuple[str, str], list[str]] = {}  # (word, split) -> speaker of each clip
    per_engine = {}
    for i, w in enumerate(words):
        clips = synth.synthesize([w], all_voices, cache / "words", seed, sr)
        bar.advance((i + 1) / len(words))
        if len(clips) < max(3, len(all_voices) // 4):
            raise KwsError(f"{w!r}: the speech engines could not say it ({len(clips)} of "
                           f"{len(all_voices)} voices gave a clip of 0.1-1 s)")
        by_split: dict[str, list[np.ndarray]] = {"training": [], "validation": [], "testing": []}
        for clip in sorted(clips, key=lambda c: c.path.name):
            wave = read_audio(clip.path, sr)
            by_split[split_of(clip.voice, held)].append(wave)
            speakers.setdefault((w, split_of(clip.voice, held)), []).append(clip.voice.speaker)
        if not by_split["training"]:
            raise KwsError(f"{w!r}: no training voice could say it")
        positives[w] = by_split
        per_engine[w] = dict(clips.per_engine)

    # ---- synthetic other words and near-words (training voices; held-apart ones for streams)
    bar.stage("synthesizing other words")
    train_voices = [v for v in all_voices if split_of(v, held) == "training"]
    val_voices = [v for v in all_voices if split_of(v, held) == "validation"]
    test_voices = [v for v in all_voices if split_of(v, held) == "testing"]
    taken = set(words) | (set(COMMANDS) if with_commands else set())

    def allowed(text: str) -> bool:
        return text not in taken and not any(re.search(rf"\b{re.escape(w)}\b", text) for w in taken)

    others = [w for w in synth.negative_words() + ([] if with_commands else COMMANDS) if allowed(w)]
    nears = [n for w in words for n in near_words(w) if allowed(n)]
    other_train = synth.synthesize(others, train_voices, cache / "other", seed, sr,
                                   per_text=plan.other_voices)
    bar.advance(0.5)
    near_train = synth.synthesize(nears, train_voices, cache / "near", seed, sr,
                                  per_text=plan.near_voices) if nears else []
    bar.advance(0.7)
    stream_voices = {"validation": val_voices or train_voices, "testing": test_voices or val_voices or train_voices}
    stream_others = {}
    for k, (split, voices) in enumerate(stream_voices.items()):
        pick = [others[i] for i in np.random.default_rng([seed, k]).permutation(len(others))[:plan.stream_other_words]]
        said = synth.synthesize(pick, voices, cache / "other", seed + 1 + k, sr, per_text=1)
        stream_others[split] = [(c.text, read_audio(c.path, sr)) for c in said]
    # Near-words train, but set no threshold: one sound away from the word ("larvin" for
    # "marvin"), they would push it near 1 for words people seldom say. Testing reports them.
    said = synth.synthesize(nears, stream_voices["testing"], cache / "near", seed + 3, sr,
                            per_text=2) if nears else []
    stream_nears = [(c.text, read_audio(c.path, sr)) for c in said]
    bar.advance(1.0)

    # ---- real negatives: Speech Commands, running speech, noise
    bar.stage("loading negatives")
    from kws.data.speech_commands import list_clips, load_noise
    from kws_train.augment import Augmenter

    noises = load_noise(data, sr)[0] if data else []
    augmenter = Augmenter(config.train.augment, noises, sr)
    sc_train, sc_commands, sc_stream = [], {}, {"validation": [], "testing": []}
    sc_real: list[tuple[str, np.ndarray]] = []  # people saying an enrolled word (testing split)
    if data:
        keep = [c for c in COMMANDS if c in labels]
        for split in ("training", "validation", "testing"):
            listed = list_clips(data, keep or ["yes"], split, unknown_fraction=1.0, seed=seed)
            by_folder: dict[str, list[Path]] = {}
            for path in listed.paths:
                by_folder.setdefault(path.parent.name, []).append(path)
            if split == "training":
                other = [p for f, ps in by_folder.items() if f not in taken for p in ps]
                for p in [other[i] for i in rng.permutation(len(other))[:plan.speech_commands]]:
                    sc_train.append(read_audio(p, sr))
                for c in keep:
                    ps = by_folder.get(c, [])
                    sc_commands[c] = [read_audio(ps[i], sr) for i in rng.permutation(len(ps))[:plan.command_clips]]
            else:
                if split == "testing":
                    # Every clip of an enrolled word, whatever its split: none trains or sets
                    # a threshold (the enrolled words are left out of the negatives).
                    from kws.data.negatives import audio_files
                    for w in words:
                        ps = audio_files(data / w) if (data / w).is_dir() else []
                        sc_real += [(w, read_audio(ps[i], sr)) for i in rng.permutation(len(ps))[:150]]
                folders = sorted(f for f in by_folder if f not in set(words))
                n = plan.stream_other_words + (len(keep) * plan.stream_other_words // 4)
                pool = [(f, p) for f in folders for p in by_folder[f]]
                for j in rng.permutation(len(pool))[:n]:
                    f, p = pool[j]
                    sc_stream[split].append((f, read_audio(p, sr)))
            bar.advance(0.3 if split == "training" else 0.45 if split == "validation" else 0.6)
    speech_train = []
    speech_files = {"validation": [], "testing": []}
    if negatives:
        holdout = config.train.negatives.holdout
        files = negative_files(negatives, "training", holdout)
        for p in files:
            try:
                speech_train.append(read_audio(p, sr))
            except KwsError:
                continue
        speech_files = {s: negative_files(negatives, s, holdout) for s in speech_files}
    bar.advance(1.0)

    # ---- examples
    examples = Examples()
    pos_count = 0
    for w in words:
        label = index[w]
        # Every engine gets the same share of the positives: espeak's 12 robotic base voices
        # would otherwise outweigh pico's two natural ones six to one.
        engines_of = [s_.split("_")[0] for s_ in speakers[(w, "training")]]
        per_engine_clips = {e: engines_of.count(e) for e in set(engines_of)}
        share = len(engines_of) / len(per_engine_clips)
        for wave, engine in zip(positives[w]["training"], engines_of):
            copies = max(2, round(plan.copies * share / per_engine_clips[engine]))
            for _ in range(copies):
                examples.add(_positive(wave, augmenter, rng, sr, length), label)
                pos_count += 1
        train_recs = _split_recordings(user.get(w, []))[0]
        for _, wave in train_recs:
            for _ in range(plan.recording_copies):
                examples.add(_positive(wave, augmenter, rng, sr, length), label)
                pos_count += 1
    for c, waves in sc_commands.items():
        for wave in waves:
            examples.add(augmenter.waveform(_fit(wave, length), rng), index[c])
    # head or tail of the word alone: not yet, or no longer, the word
    word_waves = [wv for w in words for wv in positives[w]["training"]] + \
                 [wv for w in words for _, wv in _split_recordings(user.get(w, []))[0]]
    for _ in range(round(plan.partial_fraction * pos_count)):
        wave = word_waves[rng.integers(len(word_waves))]
        examples.add(_partial(wave, augmenter, rng, length), unknown_label)
    for clip, repeats in [(c, 1) for c in other_train] + [(c, 2) for c in near_train]:
        wave = read_audio(clip.path, sr)
        for _ in range(repeats):
            examples.add(augmenter.waveform(_place(wave, length, rng), rng, shift=False), unknown_label)
    for wave in sc_train:
        examples.add(augmenter.waveform(_fit(wave, length), rng), unknown_label)
    if speech_train:
        sizes = np.array([max(len(f), length) for f in speech_train], float)
        for _ in range(plan.speech_windows):
            f = speech_train[rng.choice(len(speech_train), p=sizes / sizes.sum())]
            at = int(rng.integers(0, max(1, len(f) - length + 1)))
            examples.add(augmenter.waveform(_fit(f[at:at + length], length), rng), unknown_label)
    for _ in range(round(plan.silence_fraction * len(examples.labels))):
        examples.add(augmenter.silence(length, rng), silence_label)
    counts = np.bincount(examples.labels, minlength=len(labels))

    # ---- base model and embeddings
    bar.stage("loading the base model")
    import keras
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    # The same seed gives the same bundle: seeded, and TensorFlow's ops (multi-threaded
    # reductions) made deterministic; without that a threshold moved between runs (0.88, 0.91).
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    base_bundle = load_bundle(base or config.model_path, config)
    if not (base_bundle.path / "model.keras").is_file():
        raise KwsError(f"{base_bundle.path}: the base bundle has no model.keras to start from")
    frontend = base_bundle.frontend()
    base_model = keras.models.load_model(base_bundle.path / "model.keras", compile=False)
    frames = frontend.num_frames(length)
    pairs = backbone(base_model)
    model = build_model(pairs, frames, frontend.dim, len(labels))
    full, head = model.full, model.head

    bar.stage("computing embeddings")
    n = len(examples.labels)
    bar.stages["computing embeddings"] = 0.0012 * n
    bar.stages["fine-tuning the last block"] = 0.002 * n * plan.tune_epochs
    bar.bar.total = sum(bar.stages.values())
    a_train = _activations(examples.waves, frontend, model.prefix, augmenter, rng, bar, spec=True)
    y_train = np.array(examples.labels, np.int32)
    del examples
    # validation clips: held-apart voices' words, other words, silence
    val_waves, val_y = [], []
    for w in words:
        for wave in positives[w]["validation"]:
            val_waves.append(_place(wave, length, rng))
            val_y.append(index[w])
    for _, wave in stream_others["validation"]:
        val_waves.append(_place(wave, length, rng))
        val_y.append(unknown_label)
    for _ in range(max(10, len(val_waves) // 10)):
        val_waves.append(augmenter.silence(length, rng))
        val_y.append(silence_label)
    a_val = _activations(val_waves, frontend, model.prefix, None, rng, None, spec=False)
    y_val = np.array(val_y, np.int32)
    x_train = model.suffix.predict(a_train, batch_size=512, verbose=0)
    x_val = model.suffix.predict(a_val, batch_size=512, verbose=0)

    # ---- the head
    bar.stage("training the head")
    weights = {i: float(len(y_train) / (len(labels) * max(1, c))) for i, c in enumerate(counts)}
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    epochs = plan.epochs

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar.advance((epoch + 1) / epochs)

    history = head.fit(x_train, y_train, batch_size=128, epochs=epochs, verbose=0, class_weight=weights,
                       validation_data=(x_val, y_val), callbacks=[Tick()], shuffle=True)
    tuned = plan.tune_epochs if all(suffix is not None for _, suffix in pairs) else 0
    if tuned:
        # Then the last block of every member too, slowly, with the head that now fits it.
        bar.stage("fine-tuning the last block")
        for _, suffix in pairs:
            suffix.trainable = True
        model.tune.compile(optimizer=keras.optimizers.Adam(plan.tune_rate),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        epochs = tuned
        tune_history = model.tune.fit(a_train, y_train, batch_size=64, epochs=tuned, verbose=0,
                                      class_weight=weights, validation_data=(a_val, y_val),
                                      callbacks=[Tick()], shuffle=True)
        history.history["loss"] += tune_history.history["loss"]
        for _, suffix in pairs:
            suffix.trainable = False
    val_pred = model.tune.predict(a_val, batch_size=512, verbose=0).argmax(1)
    recall = {labels[c]: float((val_pred[y_val == c] == c).mean()) for c in np.unique(y_val)}

    # ---- export and write the bundle
    bar.stage("exporting")
    from kws_train import export

    with tempfile.TemporaryDirectory(prefix="kws-enroll-") as tmpname:
        tmp = Path(tmpname)
        calib_waves = [_place(w_, length, rng) for w in words for w_ in positives[w]["training"][:60]]
        calib_waves += [augmenter.silence(length, rng) for _ in range(30)]
        calib_waves += [_place(read_audio(c.path, sr), length, rng) for c in list(other_train)[:150]]
        calibration = np.stack([frontend.compute(w_) for w_ in calib_waves]).astype(np.float32)
        bar.advance(0.3)
        check = np.stack([frontend.compute(w_) for w_ in val_waves[:64]]).astype(np.float32)
        litert, checks = export.litert_models(full, tmp, check, calibration, config.hop_frames)
        max_diff = checks["litert_vs_keras_max_diff"]
        bar.advance(0.9)
        training = {"arch": "enrolled head on " + str(base_bundle.metadata.get("arch", "?")),
                    "base": str(base_bundle.path), "budget": budget_name, "seed": seed,
                    "parameters": int(full.count_params()), "head_parameters": int(head.count_params()),
                    "epochs": plan.epochs, "tune_epochs": tuned,
                    "examples": {labels[i]: int(c) for i, c in enumerate(counts)},
                    "final_loss": float(history.history["loss"][-1]),
                    "validation_clip_recall": recall, "litert_vs_keras_max_diff": max_diff}
        enroll_meta = {"words": words, "with_commands": with_commands, "engines": engines,
                       "voices": len(all_voices), "held_apart_voices": held,
                       "clips_per_engine": per_engine,
                       "recordings": {w: len(r) for w, r in user.items()},
                       "data": str(data) if data else None,
                       "negatives": str(negatives) if negatives else None,
                       "near_words": nears}
        export.fill_bundle(staging, keras.Model(full.inputs, full.outputs), litert, frontend, labels,
                           config.audio.clip_seconds, {}, [], arch=training["arch"],
                           training=training, enroll=enroll_meta, stream=checks["stream"])

    # ---- thresholds on validation streams, report on testing streams
    bar.stage("choosing thresholds")
    from kws.eval.scoring import Score, record_stream, score
    from kws.eval.testaudio import build_stream, write_labels
    from kws_train.thresholds import choose

    bundle = load_bundle(staging, config)
    config = with_overrides(config, {"words": bundle.words})
    tolerance = config.stream.tolerance_ms / 1000
    with tempfile.TemporaryDirectory(prefix="kws-enroll-streams-") as stream_name:
        stream_dir = Path(stream_name)

        def recordings_of(split):
            streams = _streams(split, words, positives, speakers, user, stream_others[split],
                               sc_stream.get(split, []), sc_real if split == "testing" else [],
                               stream_nears if split == "testing" else [],
                               speech_files.get(split, []), plan, seed, sr)
            out_recs = {}
            for k, (name, (clips_, negative_stream)) in enumerate(streams.items()):
                audio, labs = build_stream(clips_, noises, config.stream, sr,
                                           np.random.default_rng([seed, k, len(split)]))
                wav = stream_dir / f"{split}-{name}.wav"
                write_wav(wav, audio, sr)
                write_labels(wav.with_suffix(".csv"), labs)
                out_recs[name] = record_stream(bundle, config, wav, labs)
                bar.advance((k + 1) / len(streams))
            return out_recs

        val = recordings_of("validation")
        thresholds, chosen_score = choose(list(val.values()), bundle, config)
        hardest = {w: hardest_negatives(list(val.values()), bundle.labels, w, tolerance) for w in words}
        merge_metadata(staging, thresholds=thresholds, threshold_selection={
            "rule": "each word's lowest level with no error on the validation streams "
                    "(held-apart voices, other words, validation split of the negative speech)",
            "streams": {name: round(rec.duration / 60, 2) for name, rec in val.items()},
            "hardest_negatives": hardest, **chosen_score})
        bundle = load_bundle(staging, config)

        bar.stage("testing")
        test = recordings_of("testing")
        refractory = config.posterior.refractory_ms / 1000
        th = np.array([thresholds.get(lab, math.inf) for lab in bundle.labels])
        from kws.eval.scoring import replay_trigger
        results = {}
        for name, rec in test.items():
            dets = replay_trigger(rec.times, rec.scores, bundle.labels, th, refractory)
            results[name] = score(dets, rec.labels, bundle.words, rec.duration, tolerance).summary()
            results[name]["minutes"] = round(rec.duration / 60, 2)
            if name == "voices":
                results[name]["per_voice"] = per_voice(rec, dets, bundle.words, tolerance)
        val_results = {}
        for name, rec in val.items():
            dets = replay_trigger(rec.times, rec.scores, bundle.labels, th, refractory)
            val_results[name] = score(dets, rec.labels, bundle.words, rec.duration, tolerance).summary()
            val_results[name]["minutes"] = round(rec.duration / 60, 2)
        total = Score.total([score(replay_trigger(r.times, r.scores, bundle.labels, th, refractory),
                                   r.labels, bundle.words, r.duration, tolerance) for r in test.values()])
    return {"bundle": str(out), "words": words, "labels": labels, "thresholds": thresholds,
            "hardest_negatives": hardest,
            "budget": budget_name, "engines": engines, "training": training, "enroll": enroll_meta,
            "testing": results, "testing_total": total.summary(), "validation": val_results}


def _engines_used(engines: list[str], voices: list[synth.Voice]) -> list[str]:
    """The engines of ``engines`` that have voices here; a warning on stderr for each other
    one, so that neither the report nor the user believes in voices that never spoke."""
    used = [e for e in engines if any(v.engine == e for v in voices)]
    status = synth.engine_status()
    for engine in engines:
        if engine not in used:
            print(f"kws: warning: speech engine {engine} not used: {status[engine][1] or 'no voices'}",
                  file=sys.stderr, flush=True)
    return used


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    from kws.data.speech_commands import fit_length

    return fit_length(np.asarray(wave, np.float32), length)


def _positive(wave, augmenter, rng, sr, length):
    wave = _speed(wave, float(rng.uniform(0.88, 1.12)), sr)
    return augmenter.waveform(_place(wave, length, rng), rng, shift=False)


def _partial(wave, augmenter, rng, length):
    keep = max(1, round(len(wave) * rng.uniform(0.25, 0.6)))
    piece = wave[:keep] if rng.random() < 0.5 else wave[-keep:]
    return augmenter.waveform(_place(piece, length, rng), rng, shift=False)


def _split_recordings(recs):
    """(training, held apart): one in five held apart when there are at least four."""
    if len(recs) < 4:
        return recs, []
    held = [r for i, r in enumerate(recs) if i % 5 == 4]
    return [r for i, r in enumerate(recs) if i % 5 != 4], held


def _activations(waves, frontend: FrontEnd, prefix, augmenter, rng, bar, spec: bool) -> list[np.ndarray]:
    """The prefix model's outputs (one array per member) for ``waves``, in batches."""
    frames = frontend.num_frames(len(waves[0]))
    out: list[list[np.ndarray]] = []
    batch = 512
    for start in range(0, len(waves), batch):
        chunk = waves[start:start + batch]
        x = np.empty((len(chunk), frames, frontend.dim), np.float32)
        for i, w in enumerate(chunk):
            f = frontend.compute(w)
            x[i] = augmenter.spectrogram(f, rng) if spec and augmenter is not None and rng.random() < 0.5 else f
        got = prefix.predict(x, batch_size=batch, verbose=0)
        out.append(got if isinstance(got, list) else [got])
        if bar is not None:
            bar.advance((start + len(chunk)) / len(waves))
    return [np.concatenate([o[k] for o in out]).astype(np.float32) for k in range(len(out[0]))]


def _streams(split, words, positives, speakers, user, others, sc_clips, sc_real, nears, speech_files,
             plan, seed, sr) -> dict:
    """name -> (clips for build_stream, is negative): the held-apart voices' words among other
    words; the negative speech of ``split``; the held-apart recordings and people saying the
    word in Speech Commands (testing only)."""
    rng = np.random.default_rng([seed, 7, len(split)])
    clips = []
    for w in words:
        for wave, speaker in zip(positives[w][split], speakers.get((w, split), [])):
            for _ in range(plan.stream_repeats):
                clips.append((w, f"synthetic:{speaker}", wave))
    for text, wave in others:
        clips.append((text, f"synthetic:{text}", wave))
    for folder, wave in sc_clips:
        clips.append((folder, f"speech_commands:{folder}", wave))
    order = rng.permutation(len(clips))
    streams = {"voices": ([clips[i] for i in order], False)}
    if speech_files:
        picked = pick_negatives(speech_files, None, sr, rng, lambda p: read_audio(p, sr))
        streams["speech"] = (picked, True)
    if split == "testing":
        recs = [(w, path, wave) for w in words for path, wave in _split_recordings(user.get(w, []))[1]]
        if recs:
            streams["recordings"] = (recs, False)
        if nears:
            streams["near_words"] = ([(text, f"synthetic:{text}", wave) for text, wave in nears], True)
        if sc_real:
            real = [(w, "speech_commands", wave) for w, wave in sc_real]
            real += [(f, f"speech_commands:{f}", wave) for f, wave in sc_clips[:len(real)]]
            streams["people"] = ([real[i] for i in rng.permutation(len(real))], False)
    return streams


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


def per_voice(rec, detections, words, tolerance) -> dict:
    """Hits per source of the word clips in a stream (``synthetic:<speaker>``, a file...)."""
    out: dict[str, list[int]] = {}
    for lab in rec.labels:
        if lab.word in words:
            hit = any(w == lab.word and lab.start < t <= lab.end + tolerance for t, w in detections)
            counts = out.setdefault(lab.source.split(":")[-1], [0, 0])
            counts[0] += hit
            counts[1] += 1
    return {k: {"hits": h, "said": n} for k, (h, n) in sorted(out.items())}


def _write_report(out: Path, report: dict) -> None:
    (out / "enroll_report.json").write_text(to_json(report, indent=1) + "\n")
    (out / "enroll_report.txt").write_text(format_report(report) + "\n")


def format_report(r: dict) -> str:
    lines = [f"enrolled {', '.join(r['words'])} -> {r['bundle']} in {r.get('seconds', 0):.0f} s "
             f"(budget {r['budget']}, engines {', '.join(r['engines'])})",
             "thresholds: " + ", ".join(f"{w} {t:g}" for w, t in r["thresholds"].items())]
    if r.get("stage_seconds"):
        lines.append("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["stage_seconds"].items()))
    hardest = r.get("hardest_negatives") or {}
    for w, rows in hardest.items():
        lines.append(f"closest negatives of {w!r} (set its threshold): "
                     + ", ".join(f"{x['text']} {x['score']:.3f}" for x in rows))
    held = r["enroll"]["held_apart_voices"]
    lines.append("held-apart voices: " + ", ".join(f"{s} ({v})" for s, v in sorted(held.items())))
    for title, block in (("testing (never used to choose anything)", r["testing"]),
                         ("validation (thresholds chosen here)", r["validation"])):
        lines.append(title + ":")
        for name, s in block.items():
            hits = f"{s['hits']}/{s['commands']} hits ({s['hit_rate']:.0%}), " if s["commands"] else ""
            lines.append(f"  {name:10s} {s['minutes']:5.1f} min: {hits}{s['false_alarms']} false alarms "
                         f"({s['fa_per_hour']:.1f} per hour of non-word audio)")
            if s.get("per_voice"):
                lines.append("    per voice: " + ", ".join(f"{v} {c['hits']}/{c['said']}"
                                                         for v, c in s["per_voice"].items()))
    return "\n".join(lines)


def summary_line(report: dict) -> str:
    t = report["testing"]
    parts = []
    if "voices" in t:
        parts.append(f"held-apart voices {t['voices']['hits']}/{t['voices']['commands']} hits, "
                     f"{t['voices']['false_alarms']} false alarms on other words")
    if "speech" in t:
        parts.append(f"{t['speech']['fa_per_hour']:.1f} false alarms/hour on {t['speech']['minutes']:.1f} min "
                     "of held-apart speech")
    if "people" in t:
        parts.append(f"people in Speech Commands {t['people']['hits']}/{t['people']['commands']} hits")
    if "recordings" in t:
        parts.append(f"held-apart recordings {t['recordings']['hits']}/{t['recordings']['commands']} hits")
    return "; ".join(parts)

