"""Latency benchmark: the streaming path against the tutorials' naive loop, in one run.

Ours: ``Detector`` (incremental features, LiteRT, posterior). The baseline, as the TensorFlow
tutorials do it: at every hop, recompute the whole one-second log-mel spectrogram with
librosa and call Keras ``model.predict``. Both run on one CPU thread (the process is pinned to
one core, every library is told to use one thread), so the ratios compare work, not cores.

Each ``measure_*`` function returns a plain dict of numbers (seconds unless named ``_ms``);
``kws bench`` prints them as a table, as JSON, and as a histogram PNG.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from kws.bundle import Bundle
from kws.config import Config, with_overrides
from kws.detector import Detector, StageTimings, chunks
from kws.errors import KwsError
from kws.units import ms_to_samples, ms_to_seconds

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS", "NUMBA_NUM_THREADS")


def baseline_missing() -> str | None:
    """The first package the naive baseline needs that is not installed, or None (found
    without importing it: TensorFlow takes seconds to import)."""
    import importlib.util

    for name in ("tensorflow", "keras", "librosa"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def pin_to_one_core() -> int:
    """Run this process (and what it starts) on one CPU with one thread per library; return the CPU."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    for name in THREAD_ENV:
        os.environ[name] = "1"
    return cpu


def stats_ms(seconds: list[float] | np.ndarray) -> dict:
    """p50, p95, p99, max and mean of durations, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    if ms.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": int(ms.size), "p50": p50, "p95": p95, "p99": p99, "max": ms.max(), "mean": ms.mean()}


def measure_hops(bundle: Bundle, config: Config, audio: np.ndarray, hop_ms: float) -> dict:
    """Per-hop cost of each stage at ``hop_ms``: audio is pushed one hop at a time.

    With one hop of audio per ``process`` call, each call is exactly one hop's work: its
    feature frames, one classifier run, one posterior update. Calls that complete no hop
    are left out.
    """
    config = with_overrides(config, {"detector.hop_ms": hop_ms})
    detector = Detector.from_bundle(bundle, config)
    detector.timings = timings = StageTimings()
    totals = []
    for chunk in chunks(audio, ms_to_samples(hop_ms, config.audio.sample_rate)):
        detector.write(chunk)
        before = len(timings.classifier)
        start = time.perf_counter()
        detector.process()
        elapsed = time.perf_counter() - start
        if len(timings.classifier) > before:
            totals.append(elapsed)
    skip = len(timings.features) - len(totals)
    return {"hop_ms": hop_ms, "features": stats_ms(timings.features[skip:]),
            "classifier": stats_ms(timings.classifier), "posterior": stats_ms(timings.posterior),
            "total": stats_ms(totals), "_totals": totals}


def measure_real_time_factor(bundle: Bundle, config: Config, audio: np.ndarray) -> dict:
    """CPU seconds per second of audio for the whole path, as fast as possible: sound-card
    blocks written one by one, processed whenever a hop is waiting, as ``kws listen`` does."""
    detector = Detector.from_bundle(bundle, config)
    cpu, wall = time.process_time(), time.perf_counter()
    for block in chunks(audio, config.audio.block_samples):
        detector.write(block)
        if detector.ready():
            detector.process()
    detector.process()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    seconds = len(audio) / config.audio.sample_rate
    return {"audio_s": seconds, "cpu_s": cpu, "wall_s": wall, "rtf": cpu / seconds,
            "speed_x": seconds / wall}


def measure_live_cpu(bundle: Bundle, config: Config, audio: np.ndarray) -> dict:
    """CPU share of live listening: a producer thread delivers blocks at the sound card's pace
    while the consumer waits and processes, as ``kws listen`` does (minus PortAudio)."""
    detector = Detector.from_bundle(bundle, config)
    block = config.audio.block_samples
    rate = config.audio.sample_rate
    done = threading.Event()

    def produce():
        start = time.perf_counter()
        for i, piece in enumerate(chunks(audio, block)):
            time.sleep(max(0.0, start + i * block / rate - time.perf_counter()))
            detector.write(piece)
        done.set()

    cpu, wall = time.process_time(), time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    # Until the producer is done and less than a hop is left: a hop that is not a whole number of
    # blocks leaves a few samples that no hop will ever take.
    while not done.is_set() or detector.ready():
        if detector.wait(0.05):
            detector.process()
    producer.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"seconds": wall, "cpu_s": cpu, "cpu_share": cpu / wall, "lost_samples": detector.lost_samples}


def measure_detection_latency(bundle: Bundle, config: Config, wav: Path, labels) -> dict:
    """Stream seconds from the end of each spoken command to its detection (hits only)."""
    from kws.eval.scoring import record_stream, score

    rec = record_stream(bundle, config, wav, labels)
    return score(rec.detections, labels, bundle.words, rec.duration,
                 ms_to_seconds(config.stream.tolerance_ms)).summary()


# Run first in every timed child: report the child's own peak RSS (VmHWM) on exit. ru_maxrss
# would not do: it survives exec, so a child of a large parent reports the parent's peak.
_PEAK = ("import atexit, sys\n"
         "atexit.register(lambda: sys.stderr.write('\\nkws-peak-kb ' + [l.split()[1] for l in "
         "open('/proc/self/status') if l.startswith('VmHWM')][0] + '\\n'))\n")


def measure_startup(model: Path, config_file: str | None, runs: int = 3) -> dict:
    """Whole-process time of ``kws replay`` on a one-second file (imports, model load, first
    windows), and the peak resident memory of such a process."""
    from kws.audio.files import write_wav

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "one_second.wav"
        write_wav(wav, np.zeros(16000, np.float32), 16000)
        argv = ["kws", *(["--config", config_file] if config_file else []),
                "replay", str(wav), "--model", str(model)]
        code = f"import runpy, sys\nsys.argv = {argv!r}\nrunpy.run_module('kws', run_name='__main__')\n"
        return _time_python(code, runs)


def _time_python(code: str, runs: int) -> dict:
    """Median wall time of ``runs`` runs of ``python -c code``, and the largest peak RSS."""
    times, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.run([sys.executable, "-c", _PEAK + code], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        lines = child.stderr.strip().splitlines()
        if child.returncode != 0 or not lines or not lines[-1].startswith("kws-peak-kb "):
            last = [line for line in lines if not line.startswith("kws-peak-kb")][-1:]
            raise KwsError(f"benchmark child process failed: {last[0] if last else child.returncode}")
        peaks.append(int(lines[-1].split()[1]) / 1024)
    return {"seconds": float(np.median(times)), "peak_rss_mb": max(peaks)}


class NaiveBaseline:
    """The tutorials' loop: full librosa log-mel of the last second + Keras ``predict``, every hop."""

    def __init__(self, bundle: Bundle, config: Config):
        from kws.quiet import quiet_tensorflow

        with quiet_tensorflow():  # its start-up log would bury the report
            import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
        import librosa

        self._librosa = librosa
        self.model = keras.saving.load_model(bundle.path / "model.keras", compile=False)
        self.features = bundle.feature_config
        self.rate = bundle.sample_rate
        self.window = ms_to_samples(self.features.window_ms, self.rate)
        self.hop = ms_to_samples(self.features.stride_ms, self.rate)
        self.clip = config.audio.clip_samples

    def __call__(self, last_second: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Posteriors for one window; also the seconds spent on features and on the model."""
        start = time.perf_counter()
        f = self.features
        mel = self._librosa.feature.melspectrogram(
            y=last_second, sr=self.rate, n_fft=self.window, hop_length=self.hop, center=False,
            n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax)
        db = self._librosa.power_to_db(mel, top_db=None)
        if f.kind == "mfcc":
            db = self._librosa.feature.mfcc(S=db, n_mfcc=f.n_mfcc, norm="ortho")
        mid = time.perf_counter()
        probs = self.model.predict(db.T[None].astype(np.float32), verbose=0)[0]
        return probs, mid - start, time.perf_counter() - mid


def measure_naive(baseline: NaiveBaseline, audio: np.ndarray, hop_ms: float, hops: int) -> dict:
    """Per-hop cost of the baseline over the first ``hops`` hops after one full window."""
    hop = ms_to_samples(hop_ms, baseline.rate)
    features, model, totals = [], [], []
    baseline(audio[:baseline.clip])  # first call builds Keras' predict function
    for i in range(hops):
        end = baseline.clip + i * hop
        _, f, m = baseline(audio[end - baseline.clip:end])
        features.append(f)
        model.append(m)
        totals.append(f + m)
    return {"hop_ms": hop_ms, "features": stats_ms(features), "classifier": stats_ms(model),
            "total": stats_ms(totals), "_totals": totals}


def naive_startup(model: Path, runs: int = 3) -> dict:
    """Process time to import TensorFlow and librosa and load the Keras model."""
    code = ("import keras, librosa\n"
            f"keras.saving.load_model({str(model / 'model.keras')!r}, compile=False)\n")
    return _time_python(code, runs)
