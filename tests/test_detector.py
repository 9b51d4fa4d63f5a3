"""The streaming detector in-process: incremental windows, chunking, resampling, losses, hooks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soxr

from kws.bundle import load_bundle
from kws.config import load_config
from kws.detector import Detector, FeatureWindow, StageTimings, chunks, replay
from kws.features import FrontEnd
from kws.eval.scoring import replay_trigger

RATE = 16000


def test_feature_window_is_the_batch_features_of_the_latest_second():
    config = load_config()
    frontend = FrontEnd(config.features, RATE)
    audio = np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32)
    everything = frontend.compute(audio)
    fw = FeatureWindow(frontend, 98, 2)
    due = []
    sizes = np.random.default_rng(1).integers(1, 900, size=200)
    start = 0
    for size in sizes:
        for frame in fw.push(audio[start:start + size]):
            if fw.append(frame):
                due.append(fw.count)
                np.testing.assert_array_equal(fw.latest, everything[fw.count - 98:fw.count])
        start += size
    assert due == list(range(98, len(everything) + 1, 2))
    assert fw.end_time == pytest.approx(((len(everything) - 1) * 160 + 480) / RATE)


@pytest.fixture(scope="module")
def stream(spoken):
    return spoken


@pytest.fixture(scope="module")
def setup(tiny_bundle, stream):
    config = load_config()
    return load_bundle(tiny_bundle, config), config, stream[0]


def detect(bundle, config, audio, size, rate=RATE):
    return list(replay(Detector.from_bundle(bundle, config, input_rate=rate), chunks(audio, size)))


def test_chunk_size_does_not_change_detections(setup):
    bundle, config, audio = setup
    reference = detect(bundle, config, audio, 160)
    assert reference
    for size in (37, 441, 4096, 16000):  # up to the ring's capacity (2 s)
        assert detect(bundle, config, audio, size) == reference


def test_resampled_input_gives_the_same_words_at_the_same_times(setup):
    bundle, config, audio = setup
    reference = detect(bundle, config, audio, 160)
    at_44k = soxr.resample(audio, RATE, 44100).astype(np.float32)
    resampled = detect(bundle, config, at_44k, 441, rate=44100)
    assert [d.word for d in resampled] == [d.word for d in reference]
    for a, b in zip(resampled, reference):
        assert a.time == pytest.approx(b.time, abs=0.05)


def test_a_consumer_that_falls_behind_loses_samples_and_carries_on(setup):
    bundle, config, audio = setup
    detector = Detector.from_bundle(bundle, config)
    capacity = detector.source.ring.capacity
    detector.write(audio[:capacity + 1000])
    assert detector.lost_samples == 1000
    assert detector.wait(0) and detector.process() is not None
    assert not detector.wait(0)
    detector.write(audio[:RATE])
    detector.process()
    assert detector.lost_samples == 1000


def test_stage_timings_and_hop_hook_see_every_hop(setup):
    bundle, config, audio = setup
    detector = Detector.from_bundle(bundle, config)
    detector.timings = StageTimings()
    seen = []
    detector.on_hop = lambda t, smoothed: seen.append((t, smoothed.copy()))
    calls = len(list(chunks(audio, 160)))
    list(replay(detector, chunks(audio, 160)))
    frames = detector.window.count
    hops = (frames - 98) // detector.window.hop_frames + 1
    assert len(seen) == len(detector.timings.classifier) == len(detector.timings.posterior) == hops
    assert len(detector.timings.features) == calls
    assert seen[0][0] == pytest.approx(1.0, abs=0.02)  # the first full window
    # Posteriors: the int8 model outputs them in steps of 1/256, so sums are 1 within ~0.02.
    assert all(abs(s.sum() - 1) < 0.05 for _, s in seen)


def test_trigger_over_recorded_scores_reproduces_the_detections(setup):
    # eval-stream's threshold table relies on this: scores recorded once, triggers re-run.
    bundle, config, audio = setup
    detector = Detector.from_bundle(bundle, config)
    times, scores = [], []
    detector.on_hop = lambda t, smoothed: (times.append(t), scores.append(smoothed))
    found = [(d.time, d.word) for d in replay(detector, chunks(audio, 160))]
    trigger = detector.posterior.trigger
    assert replay_trigger(np.array(times), np.array(scores), bundle.labels, trigger.thresholds,
                          trigger.refractory) == found


def test_detector_path_never_imports_tensorflow_or_librosa(tiny_bundle, stream):
    code = ("import sys; from kws.cli import main; "
            f"main(['replay', {str(stream[2])!r}, '--model', {str(tiny_bundle)!r}]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'librosa', 'train', 'kws_train')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
