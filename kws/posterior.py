"""From per-hop class posteriors to detection events: smoothing, thresholds, refractory time.

``Posterior`` = ``Smoother`` (moving average of the classifier's posteriors over the last few
hops) followed by ``Trigger`` (the decision). Both are pure: no clocks, no audio, the caller
passes stream time. ``kws eval-stream`` records the smoothed scores of one replay and runs
``Trigger`` alone over them for every threshold of its table.

The trigger rule, per hop, on the smoothed scores:

- a word fires when its score reaches its threshold; if several do, the highest score wins;
- ``_silence_`` and ``_unknown_`` are never reported;
- after a detection nothing fires for ``refractory_ms``, and a word still above its threshold
  when that time ends does not fire either (a 1-second window sees one utterance for about a
  second; in that time a confusable word, ``off`` read as ``up`` while only its vowel is in
  the window, must not become a second detection);
- a word that fired is disarmed until its own score falls below its threshold: a long or
  slowly decaying utterance stays above threshold for longer than any fixed refractory time,
  yet must still give one detection.

Compared with TensorFlow's ``RecognizeCommands`` (``label_wav``/``test_streaming_accuracy``):
it never reports the label that fired last until a *different* label has fired, so "stop ...
stop" said twice in a quiet room is one detection if silence never scores above threshold in
between, and in steady background noise (a fan, a TV) that is the usual case. Users repeat
commands ("next, next", "stop" again because the first was not acted on), so here a word
re-arms as soon as its own score drops, whatever else wins meanwhile; the refractory time and
the re-arming rule together still give one detection per utterance.

Thresholds: a word's threshold comes from ``posterior.thresholds`` in the config (the user's
explicit choice), else from the bundle (tuned for that model), else ``posterior.threshold``.
"""

from __future__ import annotations

import math

import numpy as np

from kws.config import THRESHOLD_RANGE, Config, PosteriorConfig, valid_threshold, with_overrides
from kws.errors import KwsError
from kws.labels import NON_WORDS
from kws.units import ms_to_hops, ms_to_seconds


# The smoothing of a model whose bundle does not say which its thresholds were chosen with.
FALLBACK_SMOOTHING_MS = 250.0


def smoothing_ms(config: Config, bundle_smoothing_ms: float | None) -> float:
    """The smoothing a detector uses: ``posterior.smoothing_ms`` where the config sets one, else
    the one the bundle's thresholds were chosen with (they hold for it), else 250 ms."""
    if config.posterior.smoothing_ms is not None:
        return config.posterior.smoothing_ms
    return FALLBACK_SMOOTHING_MS if bundle_smoothing_ms is None else bundle_smoothing_ms


def word_thresholds(words: list[str], bundle_thresholds: dict[str, float],
                    config: PosteriorConfig) -> dict[str, float]:
    """Each reportable word's threshold: config per-word, then the bundle's, then the default."""
    return {w: config.thresholds.get(w, bundle_thresholds.get(w, config.threshold)) for w in words}


def with_thresholds(config: Config, words: list[str],
                    given: dict[str, float] | float | None) -> Config:
    """``config`` with the user's thresholds laid over ``posterior.thresholds``: one number for
    every word of the model, or per word (``{"up": 0.9}``; the other words keep theirs).

    The one place ``--threshold`` (``kws.cli``) and ``Spotter(thresholds=...)`` (``kws.api``)
    are checked: each above 0 and at most 1, each word one of ``words`` (else a ``KwsError`` naming them)."""
    if given is None:
        return config
    if isinstance(given, (int, float)) and not isinstance(given, bool):  # True is no threshold
        given = {w: given for w in words}
    if not isinstance(given, dict):
        raise KwsError(f"thresholds: a number or a dict of word: number, got {given!r}")
    unknown = sorted(set(given) - set(words))
    if unknown:
        raise KwsError(f"thresholds: {', '.join(unknown)} not among the model's words "
                       f"({', '.join(words)})")
    for word, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid_threshold(value):
            raise KwsError(f"thresholds: {word}: {value!r} is not {THRESHOLD_RANGE}")
    merged = {**config.posterior.thresholds, **{w: float(t) for w, t in given.items()}}
    return with_overrides(config, {"posterior.thresholds": merged})


def parse_thresholds(text: str) -> dict[str, float] | float:
    """``--threshold``: ``0.8`` (every word) or ``up=0.9,off=0.8`` (per word), each in (0, 1];
    ``ValueError`` with a one-line reason otherwise."""
    text = text.strip()
    if "=" not in text:
        return _threshold_value(text, "threshold")
    out: dict[str, float] = {}
    for part in text.split(","):
        word, sep, value = part.partition("=")
        word = word.strip()
        if not sep or not word:
            raise ValueError(f"{part.strip()!r}: expected WORD=VALUE (e.g. up=0.9,off=0.8)")
        if word in out:
            raise ValueError(f"{word} given twice")
        out[word] = _threshold_value(value.strip(), word)
    return out


def _threshold_value(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not valid_threshold(value):
        raise ValueError(f"{what}: {text} is not {THRESHOLD_RANGE}")
    return value


class Smoother:
    """Moving average of the last ``length`` posterior vectors (fewer at the start: the
    detector first feeds it the silence before the stream, ``Posterior.lead_in``, so every
    hop of a stream is averaged over ``length``)."""

    def __init__(self, num_classes: int, length: int):
        self._history = np.zeros((length, num_classes), dtype=np.float64)
        self._sum = np.zeros(num_classes, dtype=np.float64)
        self._count = 0

    @property
    def length(self) -> int:
        return len(self._history)

    def update(self, probs: np.ndarray) -> np.ndarray:
        """Add one posterior vector; return the current average (a fresh array)."""
        slot = self._count % len(self._history)
        # Subtract the leaving row, add the new one: O(classes) per hop whatever the length.
        self._sum += probs - self._history[slot]
        self._history[slot] = probs
        self._count += 1
        return (self._sum / min(self._count, len(self._history))).astype(np.float32)


class Trigger:
    """The decision rule of the module docstring, over smoothed scores.

    ``thresholds`` has one entry per class; ``inf`` for classes that are never reported.
    """

    def __init__(self, thresholds: np.ndarray, refractory: float):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.refractory = refractory
        self._armed = np.ones(len(self.thresholds), dtype=bool)
        self._last = -math.inf

    def update(self, scores: np.ndarray, time: float) -> int | None:
        """The index of the class that fires at ``time`` (seconds), or None."""
        over = scores >= self.thresholds
        if time - self._last < self.refractory:
            # Whatever scores high this soon belongs to the utterance that just fired.
            self._armed = ~over
            return None
        self._armed |= ~over
        over &= self._armed
        if not over.any():
            return None
        best = int(np.argmax(np.where(over, scores, -np.inf)))
        self._armed[best] = False
        self._last = time
        return best


class Posterior:
    """Smoothing then triggering; ``update`` turns one hop's posteriors into ``(word, score)``."""

    def __init__(self, labels: list[str], thresholds: dict[str, float], smoothing_hops: int,
                 refractory: float):
        self.labels = labels
        self.smoother = Smoother(len(labels), smoothing_hops)
        self.trigger = Trigger(np.array([thresholds.get(label, math.inf) for label in labels]),
                               refractory)
        self.smoothed = np.zeros(len(labels), dtype=np.float32)  # after the last update

    @classmethod
    def from_config(cls, labels: list[str], bundle_thresholds: dict[str, float],
                    config: Config, bundle_smoothing_ms: float | None = None) -> "Posterior":
        """The config's posterior for a model whose bundle chose ``bundle_thresholds`` (and
        ``bundle_smoothing_ms``, the smoothing they were chosen with): the user's own settings
        win, then the bundle's, then the defaults."""
        words = [label for label in labels if label not in NON_WORDS]
        post = config.posterior
        return cls(labels, word_thresholds(words, bundle_thresholds, post),
                   ms_to_hops(smoothing_ms(config, bundle_smoothing_ms), config.detector.hop_ms),
                   ms_to_seconds(post.refractory_ms))

    def lead_in(self, probs: np.ndarray) -> None:
        """Feed the smoother one hop of the silence heard before the stream; nothing fires."""
        self.smoothed = self.smoother.update(probs)

    def update(self, probs: np.ndarray, time: float) -> tuple[str, float] | None:
        """Feed one hop; return ``(word, smoothed score)`` if a word fires at ``time``: the
        word's score at this hop, the one compared with its threshold (``Detection.score``)."""
        self.smoothed = self.smoother.update(probs)
        best = self.trigger.update(self.smoothed, time)
        return None if best is None else (self.labels[best], float(self.smoothed[best]))
