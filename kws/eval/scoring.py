"""Scoring detections on a labelled stream, and the threshold trade-off from one replay.

Matching rules (``score``), with ``tolerance`` seconds (config ``stream.tolerance_ms``):

- a detection belongs to a labelled command word if it fires after the word's speech starts
  and no later than ``tolerance`` after it ends;
- a word's first detection of the right word is a **hit** (latency: detection time minus end
  of speech); a word with no hit but a detection of another word is **wrong**; else a **miss**;
- every other detection is a **false alarm**: a second detection of one word (one utterance
  must give one detection), a wrong word on a word already hit or already counted wrong, and
  anything on unknown words or background;
- false alarms per hour are per hour of non-command audio: the stream minus the command
  words' speech.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kws.posterior import Trigger
from kws.eval.testaudio import Label


@dataclass
class Score:
    commands: int
    hits: int
    misses: int
    wrong: int
    false_alarms: int
    non_command_hours: float
    latencies: list[float] = field(default_factory=list)
    per_word: dict[str, tuple[int, int]] = field(default_factory=dict)  # word -> (hits, said)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.commands if self.commands else math.nan

    @property
    def miss_rate(self) -> float:
        """Command words not hit (missed or taken for another word)."""
        return 1 - self.hit_rate

    @property
    def fa_per_hour(self) -> float:
        return self.false_alarms / self.non_command_hours if self.non_command_hours else math.nan

    def latency(self, q: float) -> float:
        """Quantile ``q`` (0-1) of hit latency in seconds; NaN without hits."""
        return float(np.quantile(self.latencies, q)) if self.latencies else math.nan

    @classmethod
    def total(cls, scores: list["Score"]) -> "Score":
        """Several streams' scores as one (counts and hours add up)."""
        per_word: dict[str, tuple[int, int]] = {}
        for one in scores:
            for word, (hits, said) in one.per_word.items():
                old = per_word.get(word, (0, 0))
                per_word[word] = (old[0] + hits, old[1] + said)
        return cls(*(sum(getattr(one, name) for one in scores) for name in
                     ("commands", "hits", "misses", "wrong", "false_alarms", "non_command_hours")),
                   latencies=[x for one in scores for x in one.latencies], per_word=per_word)

    def summary(self) -> dict:
        return {"commands": self.commands, "hits": self.hits, "misses": self.misses,
                "wrong": self.wrong, "false_alarms": self.false_alarms,
                "hit_rate": self.hit_rate, "fa_per_hour": self.fa_per_hour,
                "fa_per_hour_upper_95": rate_upper_95(self.false_alarms, self.non_command_hours),
                "non_command_hours": self.non_command_hours,
                "latency_median_s": self.latency(0.5), "latency_p95_s": self.latency(0.95),
                "per_word": {w: {"hits": h, "commands": n} for w, (h, n) in self.per_word.items()}}


def rate_upper_95(count: int, exposure: float) -> float:
    """The 95% upper confidence bound of a Poisson rate seen ``count`` times in ``exposure``
    (hours of audio, or a number of phrases): all that a measured false-alarm figure vouches
    for. None in 6 minutes still allows 30 an hour; bounding 1 an hour takes 3 hours without one.
    """
    from scipy.stats import chi2

    return float(chi2.ppf(0.95, 2 * count + 2) / 2 / exposure) if exposure > 0 else math.inf


def score(detections: list[tuple[float, str]], labels: list[Label], words: list[str],
          duration: float, tolerance: float) -> Score:
    """Score ``(time, word)`` detections against the stream's labels (rules: module docstring)."""
    commands = [lab for lab in labels if lab.word in words]
    starts = np.array([lab.start for lab in commands])
    closes = np.array([lab.end + tolerance for lab in commands])
    hit = np.zeros(len(commands), dtype=bool)
    other = np.zeros(len(commands), dtype=bool)  # another word fired in the window
    latencies = []
    for time, word in sorted(detections):
        candidates = np.flatnonzero((starts < time) & (time <= closes))
        same = [i for i in candidates if commands[i].word == word and not hit[i]]
        if same:
            hit[same[0]] = True
            latencies.append(time - commands[same[0]].end)
        else:
            # One wrong detection makes at most one word wrong: the first not yet hit.
            unhit = [i for i in candidates if not hit[i]]
            if unhit:
                other[unhit[0]] = True
    wrong = int((other & ~hit).sum())
    speech = sum(lab.end - lab.start for lab in commands)
    said = [lab.word for lab in commands]
    per_word = {w: (int(hit[[s == w for s in said]].sum()), said.count(w))
                for w in words if w in said}
    return Score(commands=len(commands), hits=int(hit.sum()),
                 misses=len(commands) - int(hit.sum()) - wrong, wrong=wrong,
                 false_alarms=len(detections) - int(hit.sum()) - wrong,
                 non_command_hours=max(duration - speech, 0.0) / 3600, latencies=latencies,
                 per_word=per_word)


def replay_trigger(times: np.ndarray, scores: np.ndarray, classes: list[str],
                   thresholds: np.ndarray, refractory: float) -> list[tuple[float, str]]:
    """The detections ``Trigger`` makes from recorded smoothed ``scores`` ``(hops, classes)``.

    Hops where every class is below its threshold only re-arm words, so after the first of a
    run the rest can be skipped without changing the result: a long stream's sweep then costs
    time only where something scores high.
    """
    above = (scores >= thresholds).any(axis=1)
    keep = above | np.concatenate([[True], above[:-1]])
    trigger = Trigger(thresholds, refractory)
    out = []
    for t, s in zip(times[keep], scores[keep]):
        best = trigger.update(s, t)
        if best is not None:
            out.append((float(t), classes[best]))
    return out


@dataclass
class Recording:
    """One replay of a labelled stream: every hop's time and smoothed posteriors, the detections."""

    times: np.ndarray  # stream seconds of each hop
    scores: np.ndarray  # (hops, classes) smoothed posteriors
    detections: list[tuple[float, str]]
    duration: float  # seconds of audio
    thresholds: dict[str, float]  # each word's threshold in the replay
    labels: list[Label]


def rescore(recordings: list[Recording], classes: list[str], words: list[str],
            thresholds: np.ndarray, refractory: float, tolerance: float) -> Score:
    """The summed score of ``recordings`` re-decided with per-class ``thresholds``."""
    return Score.total([score(replay_trigger(rec.times, rec.scores, classes, thresholds, refractory),
                              rec.labels, words, rec.duration, tolerance) for rec in recordings])


def sweep(recordings: list[Recording], classes: list[str], words: list[str], levels: list[float],
          refractory: float, tolerance: float) -> list[tuple[float, Score]]:
    """``(threshold, Score)`` for each of ``levels`` given to every word of ``words`` at once.

    With one word, this is that word's trade-off (a DET curve): scored as the only word, its
    firing on another command word counts as a false alarm too.
    """
    reported = np.array([c in words for c in classes])
    return [(level, rescore(recordings, classes, words, np.where(reported, level, math.inf),
                            refractory, tolerance)) for level in levels]


def record_stream(bundle, config, wav, labels: list[Label], progress: bool = False) -> Recording:
    """Replay ``wav`` through the live ``Detector`` once, recording what every hop saw.

    ``replay_trigger`` and ``sweep`` then re-decide over the recording for any thresholds
    without running the model again. The stream ends with a window of silence, as ``kws
    replay`` pads it, so a word at its very end is heard.
    """
    import sys

    from tqdm import tqdm

    from kws.audio.files import read_blocks
    from kws.detector import Detector, end_silence, replay

    rate, frames, blocks = read_blocks(wav, config.audio.block_ms)
    detector = Detector.from_bundle(bundle, config, input_rate=rate)
    times, scores, found = [], [], []
    detector.on_hop = lambda t, smoothed: (times.append(t), scores.append(smoothed))
    with tqdm(total=round(frames / rate), unit="s", desc="replaying", file=sys.stderr,
              disable=None if progress else True, leave=False) as bar:
        for block in blocks:
            found += [(d.time, d.word) for d in replay(detector, [block])]
            bar.update(len(block) / rate)
        found += [(d.time, d.word) for d in replay(detector, end_silence(detector))]
    return Recording(np.array(times), np.array(scores), found, frames / rate, detector.thresholds,
                     labels)
