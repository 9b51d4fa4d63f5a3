"""Speakers and channels a clip did not come with: speed, rooms, microphones, narrowband lines.

Speech Commands is ~2,000 people at close, mostly laptop or phone microphones. People the
model has never heard differ in vocal tract and pace; they also speak across rooms and through
headsets. Each function here maps a 16-kHz float waveform to another of the same length, so
``kws_train.augment.Augmenter`` can draw them per clip and ``python -m kws_train.channels``
can make test streams with the same effects (seeded apart from training):

- ``speed``: resampling, as Kaldi's speed perturbation: tempo, pitch and formants together.
- ``RoomBank`` / ``reverberate``: room impulse responses simulated by pyroomacoustics
  (image-source shoeboxes, MIT), the direct path kept in place so labels keep their times.
- ``colour``: a microphone's response: a high-pass and a few peaking bands.
- ``narrowband``: 8 kHz with G.711 u-law (a phone line, a Bluetooth headset's CVSD/SCO link),
  optionally the 300-3,400 Hz telephone band, back to 16 kHz.

    python -m kws_train.channels IN.wav OUT.wav --narrowband [--telephone] [--room RT60] [--seed N]

copies IN.csv (``kws make-stream``'s labels) beside OUT.wav, so ``kws eval-stream`` scores it.
"""

from __future__ import annotations

import argparse
import shutil
import sys

import numpy as np
import soxr
from scipy import signal

from kws.audio.files import read_audio, write_wav
from kws.config import load_config
from kws.data.noise import rms
from kws.data.speech_commands import fit_length
from kws.eval.testaudio import labels_path
from kws.writes import staged_together

NARROW_RATE = 8000


def speed(wave: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """``wave`` played ``factor`` times faster (pitch and formants up by ``factor``), centred
    in the same length: the word stays where it was."""
    out = soxr.resample(wave, sample_rate * factor, sample_rate).astype(np.float32)
    if len(out) >= len(wave):
        start = (len(out) - len(wave)) // 2
        return out[start:start + len(wave)]
    return fit_length(np.pad(out, ((len(wave) - len(out)) // 2, 0)), len(wave))


def room_impulse(rt60: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One simulated room's impulse response: a random shoebox with reverberation time about
    ``rt60`` s, talker and microphone at random places; starts at the direct path, peak 1."""
    import pyroomacoustics as pra  # a training dependency; imported where rooms are made

    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    absorption, order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, 60))
    source, mic = (rng.uniform(0.5, dims - 0.5) for _ in range(2))
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float64)
    peak = int(np.argmax(np.abs(rir)))
    return (rir[peak:] / abs(rir[peak])).astype(np.float32)


class RoomBank:
    """``count`` impulse responses, reverberation times log-uniform in ``rt60``, made once."""

    def __init__(self, count: int, rt60: tuple[float, float], seed: int, sample_rate: int):
        rng = np.random.default_rng(seed)
        self.impulses = [room_impulse(float(np.exp(rng.uniform(*np.log(rt60)))), rng, sample_rate)
                         for _ in range(count)]

    def pick(self, rng: np.random.Generator) -> np.ndarray:
        return self.impulses[rng.integers(len(self.impulses))]


def reverberate(wave: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """``wave`` heard through ``impulse`` at the same RMS, cut to its length."""
    out = signal.fftconvolve(wave, impulse)[:len(wave)]
    return (out * (rms(wave) / max(rms(out), 1e-9))).astype(np.float32)


def _peaking(freq: float, gain_db: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook peaking biquad."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / sample_rate
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def colour(wave: np.ndarray, rng: np.random.Generator, gain_db: float, sample_rate: int) -> np.ndarray:
    """A random microphone: high-pass at 50-400 Hz, then two peaking bands of +-``gain_db``
    between 150 Hz and 6 kHz; RMS kept (level is the gain augmentation's job)."""
    sos = signal.butter(2, rng.uniform(50, 400), "highpass", fs=sample_rate, output="sos")
    out = signal.sosfilt(sos, wave)
    for _ in range(2):
        freq = float(np.exp(rng.uniform(np.log(150), np.log(6000))))
        b, a = _peaking(freq, rng.uniform(-gain_db, gain_db), rng.uniform(0.5, 2.0), sample_rate)
        out = signal.lfilter(b, a, out)
    return (out * (rms(wave) / max(rms(out), 1e-9))).astype(np.float32)


def ulaw(wave: np.ndarray) -> np.ndarray:
    """G.711 u-law: companded to 8 bits and back (the quantisation a phone line adds)."""
    mu = 255.0
    x = np.clip(wave, -1.0, 1.0)
    coded = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127
    return (np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu).astype(np.float32)


def narrowband(wave: np.ndarray, sample_rate: int, telephone: bool = False) -> np.ndarray:
    """``wave`` through an 8-kHz u-law link (optionally the 300-3,400 Hz telephone band), back at
    ``sample_rate``: what a Bluetooth headset's voice link or a phone line delivers."""
    low = soxr.resample(wave, sample_rate, NARROW_RATE)
    if telephone:
        low = signal.sosfilt(signal.butter(4, [300, 3400], "bandpass", fs=NARROW_RATE, output="sos"), low)
    return fit_length(soxr.resample(ulaw(low), NARROW_RATE, sample_rate).astype(np.float32), len(wave))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kws_train.channels",
                                     description="Put a test stream through a headset link and/or a room.")
    parser.add_argument("input", help="WAV made by kws make-stream (its labels: the .csv beside it)")
    parser.add_argument("output", help="WAV to write; the labels are copied beside it")
    parser.add_argument("--narrowband", action="store_true", help="8 kHz u-law, back to 16 kHz")
    parser.add_argument("--telephone", action="store_true", help="with --narrowband: 300-3,400 Hz")
    parser.add_argument("--room", type=float, metavar="RT60", help="reverberation time in seconds")
    parser.add_argument("--seed", type=int, default=1000, help="room seed (training uses others)")
    args = parser.parse_args(argv)
    labels = labels_path(args.input)
    if not labels.is_file():
        parser.error(f"{labels}: no labels beside {args.input} (kws make-stream writes them)")
    rate = load_config().audio.sample_rate
    wave = read_audio(args.input, rate)
    if args.room:
        wave = reverberate(wave, room_impulse(args.room, np.random.default_rng(args.seed), rate))
    if args.narrowband:
        wave = narrowband(wave, rate, args.telephone)
    # Both replaced, or neither, as kws make-stream writes a stream and its labels.
    with staged_together([args.output, labels_path(args.output)]) as (wav, csv):
        write_wav(wav, np.clip(wave, -1, 1), rate)
        shutil.copyfile(labels, csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
