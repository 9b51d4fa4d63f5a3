"""Read any audio file soundfile understands into float32 mono at the target rate."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from kws.errors import KwsError
from kws.units import block_samples


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
    with _open(path) as f:
        samples, rate = _checked(path, f, -1), f.samplerate
    return resample(to_mono(samples), rate, sample_rate)


def read_blocks(path: str | Path, block_ms: float) -> tuple[int, int, Iterator[np.ndarray]]:
    """Stream a file as float32 mono blocks of ``block_ms`` at its own rate, in fixed memory.

    Returns ``(rate, total frames, blocks)``. Opening errors are raised here, read errors
    while iterating; both are ``AudioFileError`` as in ``read_audio``.
    """
    f = _open(path)
    size = block_samples(block_ms, f.samplerate)

    def blocks() -> Iterator[np.ndarray]:
        with f:
            while len(block := _checked(path, f, size)):
                yield to_mono(block)

    return f.samplerate, f.frames, blocks()


def _open(path: str | Path) -> sf.SoundFile:
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as err:
        raise _unreadable(path, err) from None
    if f.frames == 0:
        f.close()
        raise AudioFileError(f"{path}: contains no audio samples")
    return f


def _checked(path: str | Path, f: sf.SoundFile, frames: int) -> np.ndarray:
    """Read ``frames`` (-1: all the rest) as float32 ``(n, channels)``; reject bad samples."""
    try:
        samples = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as err:
        raise _unreadable(path, err) from None
    if not np.isfinite(samples).all():
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    return samples


def _unreadable(path: str | Path, err: Exception) -> AudioFileError:
    reason = str(err).removeprefix(f"Error opening {str(path)!r}: ")
    return AudioFileError(f"{path}: not a readable audio file ({reason})")


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples as 16-bit PCM WAV (what sound cards and paplay expect)."""
    sf.write(path, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
