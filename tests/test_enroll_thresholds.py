"""How an enrolment's thresholds are held on negative audio (issue 21): each validation stream
allows its own number of false alarms (none on running speech, one in a hundred other words),
and what a false-alarm count can vouch for is its Poisson 95% bound. Recordings are made up
with known scores, so each answer is known."""

from types import SimpleNamespace

import numpy as np
import pytest

from kws.config import load_config
from kws.eval.scoring import Recording, rate_upper_95
from kws.eval.testaudio import Label
from kws_train.enroll.thresholds import allowances
from kws_train.thresholds import choose

CLASSES = ["_silence_", "_unknown_", "lamp"]
BUNDLE = SimpleNamespace(words=["lamp"], labels=CLASSES)


def _recording(bumps: list[float], word: str) -> Recording:
    """A minute of hops, scoring ``lamp`` at each of ``bumps`` on one labelled ``word`` each."""
    times = np.arange(0, 60, 0.02)
    scores = np.zeros((len(times), len(CLASSES)))
    labels = []
    for i, level in enumerate(bumps):
        start = 5.0 + 10 * i
        scores[(times > start) & (times < start + 0.3), 2] = level
        labels.append(Label(word, start, start + 0.5))
    return Recording(times, scores, [], 60.0, {}, labels)


def test_each_stream_keeps_to_its_own_allowance():
    speech = _recording([0.8], "_negative_")
    others = _recording([0.9, 0.7, 0.6], "water")
    config = load_config()
    # None on speech (above 0.8), one on other words (the 0.9 may fire): 0.81.
    assert choose([speech, others], BUNDLE, config, [0, 1])[0]["lamp"] == pytest.approx(0.81)
    assert choose([speech, others], BUNDLE, config, [0, 0])[0]["lamp"] == pytest.approx(0.91)
    # One allowance for all streams together: the old rule, unchanged.
    assert choose([speech, others], BUNDLE, config, 0)[0]["lamp"] == pytest.approx(0.91)
    assert choose([speech, others], BUNDLE, config, 2)[0]["lamp"] == pytest.approx(0.71)


def test_running_speech_allows_none_and_other_words_one_in_a_hundred():
    def stream(word, n):
        return SimpleNamespace(labels=[Label(word, i, i + 0.5) for i in range(n)] + [Label("lamp", 0, 1)])

    val = {"other people": stream("water", 250), "speech": stream("_negative_", 250), "voices": stream("go", 99)}
    assert allowances(val, ["lamp"]) == [2, 0, 0]


def test_a_false_alarm_count_vouches_only_for_its_poisson_bound():
    assert rate_upper_95(0, 1.0) == pytest.approx(2.996, abs=1e-3)  # the "rule of three"
    assert rate_upper_95(0, 0.1) == pytest.approx(29.96, abs=1e-2)  # 6 minutes bound 30 an hour
    assert rate_upper_95(1, 1.0) == pytest.approx(4.744, abs=1e-3)
    assert rate_upper_95(0, 0.0) == float("inf")


def test_a_few_hard_negatives_never_starve_a_word():
    speech = _recording([0.97], "_negative_")
    commands = _recording([0.95, 0.9, 0.75, 0.6], "lamp")
    config = load_config()
    assert choose([speech, commands], BUNDLE, config, 0)[0]["lamp"] > 0.97  # hears none of the four
    # Kept at half its hits: up to 0.9, where the 0.95 and 0.9 still fire, whatever the speech asks.
    assert choose([speech, commands], BUNDLE, config, 0, keep_hits=0.5)[0]["lamp"] == pytest.approx(0.9)
    assert choose([speech, commands], BUNDLE, config, 0, keep_hits=1.0)[0]["lamp"] <= 0.6
