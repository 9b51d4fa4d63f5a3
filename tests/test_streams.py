"""Labelled streams: speech bounds, layout, labels CSV, scoring rules, the threshold sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import TINY_UNKNOWN, TINY_WORDS, run_kws
from kws.audio.files import read_audio
from kws.config import load_config
from kws.errors import KwsError
from kws.posterior import Trigger
from kws.eval.scoring import Recording, replay_trigger, score, sweep
from kws.eval.testaudio import Label, build_stream, read_labels, speech_bounds, write_labels

RATE = 16000
WORDS = ["yes", "no"]


def test_speech_bounds_find_a_tone_in_noise():
    rng = np.random.default_rng(0)
    clip = 0.001 * rng.standard_normal(RATE).astype(np.float32)
    clip[4000:9000] += 0.3 * np.sin(np.arange(5000) * 0.2)
    start, end = speech_bounds(clip, RATE)
    assert abs(start - 4000) <= 160 and abs(end - 9000) <= 160


def test_build_stream_labels_point_at_the_speech():
    config = load_config()
    rng = np.random.default_rng(1)
    tone = np.zeros(RATE, np.float32)
    tone[6000:10000] = 0.5 * np.sin(np.arange(4000) * 0.3)
    noise = [np.random.default_rng(2).standard_normal(RATE * 5).astype(np.float32)]
    audio, labels = build_stream([("yes", "a", tone), ("bird", "b", tone)], noise, config.stream,
                                 RATE, rng)
    low, high = config.stream.gap_seconds
    assert [lab.word for lab in labels] == ["yes", "bird"]
    assert low + 6000 / RATE - 0.02 <= labels[0].start <= high + 6000 / RATE + 0.02
    for lab in labels:
        assert lab.end - lab.start == pytest.approx(0.25, abs=0.02)
        inside = audio[round(lab.start * RATE):round(lab.end * RATE)]
        before = audio[round((lab.start - 0.5) * RATE):round((lab.start - 0.1) * RATE)]
        snr = 20 * np.log10(np.sqrt(np.mean(inside ** 2)) / np.sqrt(np.mean(before ** 2)))
        assert snr == pytest.approx(config.stream.snr_db, abs=1.5)
    assert len(audio) / RATE >= labels[-1].end + low


def test_labels_round_trip_and_errors(tmp_path):
    labels = [Label("yes", 2.5, 3.0, "yes/a.wav"), Label("bird", 6.0, 6.4)]
    write_labels(tmp_path / "l.csv", labels)
    assert read_labels(tmp_path / "l.csv") == labels
    (tmp_path / "bad.csv").write_text("word,begin\nyes,1\n")
    with pytest.raises(KwsError, match="word,start,end"):
        read_labels(tmp_path / "bad.csv")
    with pytest.raises(KwsError, match="no such labels file"):
        read_labels(tmp_path / "missing.csv")


LABELS = [Label("yes", 2.0, 2.5), Label("no", 6.0, 6.5), Label("bird", 10.0, 10.4),
          Label("yes", 14.0, 14.5)]


def test_score_counts_hits_misses_wrong_and_false_alarms():
    detections = [(2.7, "yes"), (2.9, "yes"),   # hit, then a repeat: a false alarm
                  (6.6, "yes"),                  # wrong word on "no"
                  (10.3, "no"),                  # on an unknown word: a false alarm
                  (1.0, "no")]                   # before any word started: a false alarm
    s = score(detections, LABELS, WORDS, duration=3600 + 1.5, tolerance=1.0)
    assert (s.commands, s.hits, s.wrong, s.misses, s.false_alarms) == (3, 1, 1, 1, 3)
    assert s.latencies == [pytest.approx(0.2)]
    assert s.fa_per_hour == pytest.approx(3.0)  # an hour of non-command audio
    assert s.miss_rate == pytest.approx(2 / 3)
    assert s.per_word == {"yes": (1, 2), "no": (0, 1)}


def test_score_tolerance_and_detection_before_word_start():
    assert score([(1.99, "yes")], LABELS, WORDS, 20, 1.0).hits == 0
    assert score([(3.5, "yes")], LABELS, WORDS, 20, 1.0).hits == 1
    assert score([(3.51, "yes")], LABELS, WORDS, 20, 1.0).hits == 0


def test_wrong_then_right_is_a_hit_plus_a_false_alarm():
    s = score([(2.6, "no"), (2.8, "yes")], LABELS, WORDS, 20, 1.0)
    assert (s.hits, s.wrong, s.false_alarms) == (1, 0, 1)
    assert math.isnan(score([], [], WORDS, 20, 1.0).hit_rate)


def test_sweep_from_recorded_scores_equals_running_the_trigger_on_every_hop():
    rng = np.random.default_rng(3)
    classes = ["_silence_", "_unknown_", "yes", "no"]
    times = np.arange(1000) * 0.02
    scores = rng.dirichlet([5, 1, 0.3, 0.3], size=1000)
    thresholds = np.array([math.inf, math.inf, 0.5, 0.5])
    trigger = Trigger(thresholds, 0.3)
    every_hop = [(float(t), classes[i]) for t, s in zip(times, scores)
                 if (i := trigger.update(s, t)) is not None]
    assert every_hop and replay_trigger(times, scores, classes, thresholds, 0.3) == every_hop
    recording = Recording(times, scores, every_hop, 20.0, {}, LABELS)
    rows = sweep([recording, recording], classes, WORDS, [0.5, 0.9], 0.3, 1.0)
    assert rows[0][1].false_alarms + rows[0][1].hits + rows[0][1].wrong == 2 * len(every_hop)
    assert rows[0][1].non_command_hours == 2 * score([], LABELS, WORDS, 20.0, 1.0).non_command_hours
    rows = sweep([recording], classes, WORDS, [0.5, 0.9], 0.3, 1.0)
    assert rows[0][1].false_alarms + rows[0][1].hits + rows[0][1].wrong == len(every_hop)
    assert rows[1][1].false_alarms <= rows[0][1].false_alarms


def test_make_stream_cli(tiny_dataset, tmp_path):
    out, labels_csv = tmp_path / "long.wav", tmp_path / "long.csv"
    result = run_kws("make-stream", "--data", str(tiny_dataset), "--out", str(out),
                     "--labels", str(labels_csv), "--minutes", "0.5", "--unknown-fraction", "0.3")
    labels = read_labels(labels_csv)
    audio = read_audio(out, RATE)
    assert "command words" in result.stderr and result.stdout == ""
    assert 25 <= len(audio) / RATE <= 40 and len(labels) >= 6
    assert {lab.word for lab in labels} <= set(TINY_WORDS + TINY_UNKNOWN)
    assert all(0.1 < lab.end - lab.start <= 1.0 for lab in labels)
    assert all(b.start - a.end >= 2.0 for a, b in zip(labels, labels[1:]))


def test_make_stream_on_a_missing_dataset_is_one_line(tmp_path):
    result = run_kws("make-stream", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.wav"),
                     "--labels", str(tmp_path / "x.csv"), check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
