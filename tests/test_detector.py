"""The streaming detector in-process: incremental windows, chunking, resampling, losses, hooks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soxr

from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.detector import Detector, FeatureWindow, SampleSource, StageTimings, chunks, replay
from kws.features import FrontEnd
from kws.labels import labels_for
from kws.posterior import Posterior
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


def test_detector_runs_the_stages_it_is_given():
    """Known stages, no model: a classifier that says "yes" while the newest frames are loud.

    A one-second tone in silence fires once, a hop or so after the tone reaches the window's
    newest frame, whatever the chunking and the input rate."""
    config = load_config()
    basis = np.full((config.features.n_mels, 241), 1e-3, np.float32)  # any fixed filterbank
    labels = labels_for(["yes", "no"])

    def classifier(window):
        loud = window[-5:].mean() > -40  # dB
        return np.array([0, 1 - loud, loud, 0], np.float32)

    def detector(input_rate):
        frontend = FrontEnd(config.features, RATE, basis)
        return Detector(SampleSource(2 * input_rate, input_rate, RATE), FeatureWindow(frontend, 98, 2),
                        classifier, Posterior(labels, {"yes": 0.5, "no": 0.5}, 1, 1.0))

    t = np.arange(4 * RATE) / RATE
    audio = np.where((t >= 2) & (t < 3), 0.5 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)
    for size in (37, 160, 4096):
        found = list(replay(detector(RATE), chunks(audio, size)))
        assert [d.word for d in found] == ["yes"] and 2.0 < found[0].time < 2.1, found
    at_48k = soxr.resample(audio, RATE, 48000).astype(np.float32)
    found = list(replay(detector(48000), chunks(at_48k, 480)))
    assert [d.word for d in found] == ["yes"] and 2.0 < found[0].time < 2.1, found


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
    assert len(seen) == len(detector.timings.classifier) == len(detector.timings.posterior)
    assert len(detector.timings.features) == calls
    # Every 20-ms hop of the stream from the first on (the lead-in's silence fills the window
    # before it), none of the lead-in's: stream time starts at the first sample.
    times = np.array([t for t, _ in seen])
    np.testing.assert_allclose(times, 0.02 * np.arange(1, len(times) + 1), atol=1e-9)
    assert len(audio) / RATE - 0.02 < times[-1] <= len(audio) / RATE
    # The models give logits and the runtime takes the softmax in float: sums are 1 to float precision.
    assert all(abs(s.sum() - 1) < 1e-5 for _, s in seen)


def test_a_score_is_the_crossing_hops_anywhere_in_the_stream(setup, spoken):
    """``Detection.score`` is the word's smoothed score at the hop it fired, the first hop of its
    run at or above its threshold; in the first second as later. The stream cut 1 s in puts
    its first word (yes, 1.5-2.0 s) in the cut's first second, where the first hops used to be
    averaged alone: that word fired at the first full window with its bare posterior (0.99),
    and at its threshold (0.70) a second later in the stream."""
    bundle, config, audio = setup
    cut = round(1.0 * RATE)

    def heard(samples):
        detector = Detector.from_bundle(bundle, config)
        times, scores = [], []
        detector.on_hop = lambda t, smoothed: (times.append(t), scores.append(smoothed))
        found = list(replay(detector, chunks(samples, 160), pad=True))
        for d in found:
            i, word = times.index(d.time), bundle.labels.index(d.word)
            threshold = detector.thresholds[d.word]
            assert i > 0 and scores[i - 1][word] < threshold <= scores[i][word] == d.score, (d, i)
        return found

    whole, first = heard(audio), heard(audio[cut:])
    assert spoken[1][0][0] == whole[0].word == first[0].word == "yes" and first[0].time < 1.0
    assert first[0].time + cut / RATE == pytest.approx(whole[0].time, abs=0.05)
    assert first[0].score == pytest.approx(whole[0].score, abs=0.05)


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


def test_stream_time_counts_lost_samples(spoken, tiny_bundle):
    audio, labels, _ = spoken
    config = with_overrides(load_config(tiny_bundle.parent / "tiny.yaml"),
                            {"detector.model": str(tiny_bundle)})
    bundle = load_bundle(tiny_bundle, config)
    lead = np.zeros(round(2.5 * RATE), np.float32)  # 2.5 s into a 2-s ring: 0.5 s is lost
    stream = np.concatenate([lead, audio[:round((labels[1][2] + 1.5) * RATE)]])
    reference = list(replay(Detector.from_bundle(bundle, config), chunks(stream, 160)))
    lossy = Detector.from_bundle(bundle, config)
    lossy.write(stream[:len(lead)])
    found = lossy.process()
    assert lossy.lost_samples == round(0.5 * RATE)
    found += list(replay(lossy, chunks(stream[len(lead):], 160)))
    assert [d.word for d in found] == [d.word for d in reference] == ["yes", "no"]
    for got, want in zip(found, reference):
        assert got.time == pytest.approx(want.time, abs=0.03)  # was 0.5 s early
