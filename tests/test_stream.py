"""Streaming equals non-streaming, as kws_streaming's ``stream_test.py`` checks it.

On real speech (``spoken``), the committed bundle's streaming model, run from a reset over
every frame in order, gives at every hop the window model's posteriors on the window ending
there (float: 1e-5). Its state is explicit: a reset forgets the stream, and the detector's
posteriors do not depend on how the audio was chunked. The ``train`` tests export each
architecture that streams from random weights and check the same on the LiteRT graphs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kws.audio.files import read_audio
from kws.bundle import load_bundle
from kws.config import load_config, with_overrides
from kws.detector import Detector, FeatureWindow, SampleSource, chunks, replay
from kws.inference import Classifier, StreamingClassifier
from kws.posterior import Posterior
from reference import AUDIO, expected

FLOAT_TOLERANCE = 1e-5
# The int8 window model against the float stream: the cost of quantisation, not of streaming.
INT8_TOLERANCE = 0.1


def run_stream(stream: StreamingClassifier, frames: np.ndarray, window: int) -> np.ndarray:
    """Posteriors of the stream at every hop that ends a whole window, from a reset."""
    stream.reset()
    out = [stream(frames[end - stream.step:end]) for end in range(stream.step, len(frames) + 1, stream.step)]
    return np.stack(out[window // stream.step - 1:])


def windows_of(frames: np.ndarray, window: int, step: int) -> np.ndarray:
    return np.stack([frames[end - window:end] for end in range(window, len(frames) + 1, step)])


@pytest.fixture(scope="module")
def spoken_frames(spoken, tiny_bundle):
    return load_bundle(tiny_bundle).frontend().compute(spoken[0])


def test_streaming_model_equals_the_window_model_at_every_hop(spoken_frames, tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    stream = bundle.streaming_classifier()
    frames = spoken_frames
    size = bundle.classifier().input_shape[0]
    windows = windows_of(frames, size, stream.step)
    got = run_stream(stream, frames, size)
    assert len(got) == len(windows) > 500
    np.testing.assert_allclose(got, bundle.classifier().predict(windows), atol=FLOAT_TOLERANCE)
    assert np.abs(got - bundle.classifier(int8=True).predict(windows)).max() < INT8_TOLERANCE
    # Not trivially equal: the windows hear different words.
    assert len(set(got.argmax(axis=1))) >= 4


def test_state_is_explicit_and_a_reset_forgets_the_stream(spoken_frames, tiny_bundle):
    stream = load_bundle(tiny_bundle).streaming_classifier()
    first = run_stream(stream, spoken_frames[:400], 98)
    assert stream.state.any()
    np.testing.assert_array_equal(run_stream(stream, spoken_frames[:400], 98), first)
    # Reset mid-stream (frame 200): one window later the stream is back in step, as the output
    # depends on the window's frames only.
    later = run_stream(stream, spoken_frames[200:400], 98)
    np.testing.assert_array_equal(later, first[-len(later):])


def detector(bundle_path, streaming: bool, int8: bool = False) -> Detector:
    config = load_config(bundle_path.parent / "tiny.yaml")
    config = with_overrides(config, {"detector.streaming": streaming, "detector.int8": int8})
    return Detector.from_bundle(load_bundle(bundle_path, config), config)


def hop_posteriors(det: Detector, audio: np.ndarray, size: int) -> tuple[np.ndarray, list]:
    hops = []
    det.on_hop = lambda now, smoothed: hops.append((now, smoothed))
    found = list(replay(det, chunks(audio, size), pad=True))
    return np.array([p for _, p in hops]), found


def test_detector_streams_when_the_bundle_can_and_detects_as_the_window_model(spoken, tiny_bundle):
    audio = spoken[0]
    streaming, window = detector(tiny_bundle, True), detector(tiny_bundle, False)
    assert isinstance(streaming.classifier, StreamingClassifier)
    assert isinstance(window.classifier, Classifier)
    got, found = hop_posteriors(streaming, audio, 160)
    want, expected = hop_posteriors(window, audio, 160)
    np.testing.assert_allclose(got, want, atol=FLOAT_TOLERANCE)
    assert [(d.word, d.time) for d in found] == [(d.word, d.time) for d in expected]
    assert len(found) >= 4
    # Process calls of any size: the state carries across them, hop for hop.
    sizes = np.random.default_rng(0).integers(1, 4000, 300)
    pieces = np.split(audio, np.cumsum(sizes)[np.cumsum(sizes) < len(audio)])
    ragged = detector(tiny_bundle, True)
    hops = []
    ragged.on_hop = lambda now, smoothed: hops.append(smoothed)
    list(replay(ragged, pieces, pad=True))
    np.testing.assert_array_equal(np.array(hops), got)


def test_the_window_model_runs_where_the_stream_does_not_fit_the_hop(tiny_bundle):
    config = load_config(tiny_bundle.parent / "tiny.yaml")
    config = with_overrides(config, {"detector.hop_ms": 30})  # 3 frames; the stream takes 2
    det = Detector.from_bundle(load_bundle(tiny_bundle, config), config)
    assert isinstance(det.classifier, Classifier)
    # Wired by hand, a mismatched stream is refused rather than run on misaligned windows.
    bundle = load_bundle(tiny_bundle)
    frontend = bundle.frontend()
    with pytest.raises(Exception, match="streaming classifier of 2 frames"):
        Detector(SampleSource(16000, 16000, 16000), FeatureWindow(frontend, 98, 3),
                 bundle.streaming_classifier(), Posterior.from_config(bundle.labels, {}, config))


# --- export, from the Keras model (needs TensorFlow) -------------------------------------------

def random_model(arch: str, seed: int = 0, streamable: bool = True):
    """A window model of ``arch`` with random weights and batch-norm statistics."""
    import keras

    from kws_train.models import build

    config = load_config().train.model_copy(update={"streamable": streamable})
    rng = np.random.default_rng(seed)
    model = build(arch, rng.normal(-50, 10, (16, 98, 40)).astype(np.float32), 6, config)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.3, mean.shape), var * rng.uniform(0.5, 2, var.shape)])
    return model


@pytest.mark.train
@pytest.mark.parametrize("arch", ["tcresnet", "lstm"])
def test_exported_stream_equals_the_exported_window_model(arch, spoken_frames, tmp_path):
    from kws_train import export, stream

    model = random_model(arch)
    frames = spoken_frames[:600]
    info = stream.export(model, 2, tmp_path / "stream.tflite", frames, export.FLOAT_TOLERANCE)
    assert info["step"] == 2 and info["carried"] == (arch == "lstm")
    (tmp_path / "window.tflite").write_bytes(export.to_tflite(model))
    windows = windows_of(frames, 98, 2)
    want = Classifier(tmp_path / "window.tflite", softmax=True).predict(windows)
    got = run_stream(StreamingClassifier(tmp_path / "stream.tflite"), frames, 98)
    if arch == "lstm":
        # From a reset the LSTM starts where the window model does; then it carries its state
        # instead of restarting at every window, and differs.
        np.testing.assert_allclose(got[0], want[0], atol=FLOAT_TOLERANCE)
        assert np.abs(got[1:] - want[1:]).max() > FLOAT_TOLERANCE
    else:
        np.testing.assert_allclose(got, want, atol=FLOAT_TOLERANCE)


@pytest.mark.train
@pytest.mark.parametrize("arch", ["cnn", "dscnn", "bilstm", "tcresnet"])
def test_models_that_cannot_stream_say_why(arch):
    from kws_train.export import logits_model
    from kws_train.stream import NotStreamable, StreamingModel

    # tcresnet here is the paper's (train.streamable: false): same padding from its first layer.
    with pytest.raises(NotStreamable, match="no streaming form|only valid|Bidirectional"):
        StreamingModel(logits_model(random_model(arch, streamable=False)), 2)


@pytest.mark.train
def test_python_m_kws_train_stream_remakes_a_bundles_twin(tiny_bundle, tmp_path):
    # The README's command on a copy of the test bundle without its twin: the twin is made
    # again, checked on real speech, and the copy then detects as the committed bundle does.
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    (copy / "model_stream.tflite").unlink()
    meta = json.loads((copy / "metadata.json").read_text())
    meta.pop("stream")
    (copy / "metadata.json").write_text(json.dumps(meta))
    assert not load_bundle(copy).metadata.get("stream")
    result = subprocess.run([sys.executable, "-m", "kws_train.stream", str(copy), "--wav", str(AUDIO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    stream = load_bundle(copy).metadata["stream"]
    assert (copy / "model_stream.tflite").is_file() and stream["step"] == 2 and stream["max_diff"] < FLOAT_TOLERANCE
    config = with_overrides(load_config(tiny_bundle.parent / "tiny.yaml"), {"detector.model": str(copy)})
    detector = Detector.from_bundle(load_bundle(copy, config), config)
    assert detector.step == 2  # the remade twin runs
    found = [(d.word, round(d.time, 3)) for d in replay(detector, chunks(read_audio(AUDIO, 16000), 1600), pad=True)]
    before = expected("tiny").detections
    assert [w for w, _ in found] == [d["word"] for d in before]
    assert all(abs(t - d["time"]) <= 0.02 for (_, t), d in zip(found, before))
