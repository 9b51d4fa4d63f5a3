"""Random perturbations for training, in numpy: waveform (speed, room, shift, noise, microphone,
narrowband link, gain) and features (vocal-tract length, SpecAugment).

Evaluation never calls these; silence clips (``silence``) are the one thing both use, so they
live in ``kws.data.noise`` (``NoiseBed``, which ``Augmenter`` extends).
"""

from __future__ import annotations

import numpy as np

from kws.config import AugmentConfig, FeatureConfig
from kws_train import channels
from kws.data.noise import NoiseBed
from kws.data.noise import rms as _rms
from kws.units import ms_to_samples


class Augmenter(NoiseBed):
    """Draws silence clips and perturbs word clips; parameters from ``train.augment``."""

    def __init__(self, params: AugmentConfig, noises: list[np.ndarray], sample_rate: int,
                 mel_hz: np.ndarray | None = None, seed: int = 0):
        """``mel_hz``: the centre frequencies of the features' mel bands (log-mel features
        only); without it, vocal-tract-length warping is off."""
        super().__init__(params, noises, sample_rate)
        self.sample_rate = sample_rate
        self.max_shift = ms_to_samples(params.time_shift_ms, sample_rate)
        self.mel_hz = mel_hz
        self.rooms = channels.RoomBank(params.rooms, params.room_rt60, seed, sample_rate) \
            if params.room_probability else None

    def partial(self, wave: np.ndarray, bounds: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Only the head or the tail of the word in ``bounds``, at the window's edge.

        A stream's window slides over every word: these clips (labelled ``_unknown_``) teach
        the model that a word entering or leaving the window is not yet, or no longer, the
        word. Without them most false alarms on streams came just after a word's end.
        """
        start, end = bounds
        keep = max(1, round((end - start) * rng.uniform(*self.params.partial_keep)))
        out = np.zeros_like(wave)
        if rng.random() < 0.5:
            out[:keep] = wave[end - keep:end]
        else:
            out[-keep:] = wave[start:start + keep]
        return self.waveform(out, rng, shift=False)

    def embedded(self, wave: np.ndarray, bounds: tuple[int, int], context: np.ndarray,
                 gap: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """The word in ``bounds`` with running speech from ``context`` just before, after or both.

        A command is a word said on its own: the same word inside a sentence must not fire.
        These clips (labelled ``_unknown_``) show the model the word with speech ``gap``
        samples away, at a level within 6 dB of the word's.
        """
        start, end = bounds
        word = wave[start:end]
        out = np.zeros_like(wave)
        length = len(wave)
        at = int(rng.integers(0, max(1, length - len(word) + 1)))
        out[at:at + len(word)] = word
        level = _rms(word) * 10 ** (rng.uniform(-6, 6) / 20)
        side = rng.integers(3)  # 0: speech before, 1: after, 2: both
        if side != 1 and at > gap[0]:
            stop = at - int(rng.integers(gap[0], min(gap[1], at) + 1))
            out[:stop] = self._speech(context, stop, level, rng)
        if side != 0 and length - at - len(word) > gap[0]:
            begin = at + len(word) + int(rng.integers(gap[0], min(gap[1], length - at - len(word)) + 1))
            out[begin:] = self._speech(context, length - begin, level, rng)
        return self.waveform(out, rng, shift=False)

    @staticmethod
    def _speech(context: np.ndarray, length: int, level: float, rng: np.random.Generator) -> np.ndarray:
        start = int(rng.integers(0, max(1, len(context) - length)))
        piece = np.resize(context[start:start + length], length)
        return piece * (level / max(_rms(piece), 1e-6))

    def waveform(self, wave: np.ndarray, rng: np.random.Generator, shift: bool = True) -> np.ndarray:
        """Speaker (speed), room, time shift (zero fill), background noise at a random SNR,
        microphone, narrowband link, then a random gain: in the order sound meets them."""
        p, sr = self.params, self.sample_rate
        if rng.random() < p.speed_probability:
            wave = channels.speed(wave, rng.uniform(*p.speed), sr)
        if self.rooms is not None and rng.random() < p.room_probability:
            wave = channels.reverberate(wave, self.rooms.pick(rng))
        out = np.zeros_like(wave)
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1)) if shift and self.max_shift else 0
        if shift >= 0:
            out[shift:] = wave[:len(wave) - shift]
        else:
            out[:shift] = wave[-shift:]
        if rng.random() < p.noise_probability:
            snr_db = rng.uniform(*p.noise_snr_db)
            level = max(_rms(out), 1e-4) / 10 ** (snr_db / 20)
            out = out + level * self.noise(len(out), rng)
        if rng.random() < p.colour_probability:
            out = channels.colour(out, rng, p.colour_db, sr)
        if rng.random() < p.narrowband_probability:
            out = channels.narrowband(out, sr, telephone=rng.random() < 1 / 3)
        out = out * 10 ** (rng.uniform(*p.gain_db) / 20)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def spectrogram(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Vocal-tract-length warping, then SpecAugment: time and frequency bands set to the
        clip's mean level."""
        p = self.params
        out = features.copy()
        if self.mel_hz is not None and rng.random() < p.vtlp_probability:
            out = vtlp(out, self.mel_hz, rng.uniform(*p.vtlp))
        fill = features.mean()
        frames, bins = out.shape
        for _ in range(p.specaugment_time_masks):
            width = int(rng.integers(0, p.specaugment_time_width + 1))
            start = int(rng.integers(0, max(1, frames - width + 1)))
            out[start:start + width] = fill
        for _ in range(p.specaugment_freq_masks):
            width = int(rng.integers(0, p.specaugment_freq_width + 1))
            start = int(rng.integers(0, max(1, bins - width + 1)))
            out[:, start:start + width] = fill
        return out



def mel_centres(params: FeatureConfig) -> np.ndarray | None:
    """Centre frequencies of the front end's mel bands (Slaney, as ``kws.features.mel_basis``);
    None for MFCC features, whose axis is not frequency."""
    if params.kind != "log_mel":
        return None
    from librosa import mel_frequencies

    return mel_frequencies(params.n_mels + 2, fmin=params.fmin, fmax=params.fmax)[1:-1]


def vtlp(features: np.ndarray, mel_hz: np.ndarray, alpha: float) -> np.ndarray:
    """Log-mel ``(frames, bands)`` as a vocal tract ``alpha`` times shorter would give it: band
    ``k`` takes the level found at ``mel_hz[k] / alpha`` (linear between bands, edges held), so
    formants move up by ``alpha`` and timing stays (VTLP, Jaitly and Hinton 2013)."""
    position = np.interp(mel_hz / alpha, mel_hz, np.arange(len(mel_hz)))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(mel_hz) - 1)
    weight = (position - low).astype(features.dtype)
    return features[:, low] * (1 - weight) + features[:, high] * weight
