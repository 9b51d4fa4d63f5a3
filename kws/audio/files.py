"""Read any audio file soundfile understands into float32 mono at the target rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kws.errors import KwsError


class AudioFileError(KwsError):
    """A file is missing, empty, unreadable or holds invalid samples."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: ``(n, channels)`` or ``(n,)`` -> ``(n,)`` float32."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op when the rates match."""
    if rate == target_rate:
        return samples
    return soxr.resample(samples, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Return the file at ``path`` as float32 mono samples in [-1, 1] at ``sample_rate``.

    Integer WAV of any width, float WAV, FLAC, OGG and every other format libsndfile reads
    are accepted, at any rate and channel count. Raises ``AudioFileError`` (one line naming
    the file) for a missing, empty, unreadable or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as err:
        reason = str(err).split("\n")[0].removeprefix(f"Error opening {str(path)!r}: ")
        raise AudioFileError(f"{path}: not a readable audio file ({reason})") from None
    if samples.shape[0] == 0:
        raise AudioFileError(f"{path}: contains no audio samples")
    if not np.isfinite(samples).all():
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    return resample(to_mono(samples), rate, sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples as 16-bit PCM WAV (what sound cards and paplay expect)."""
    sf.write(path, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
