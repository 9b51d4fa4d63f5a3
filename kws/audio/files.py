"""Read any audio file soundfile understands into float32 mono at the target rate."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from kws.errors import KwsError
from kws.quiet import quiet_c_stderr
from kws.units import block_samples


class AudioFileError(KwsError):
    """A file is missing, empty, unreadable or holds invalid samples."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: ``(n, channels)`` or ``(n,)`` -> ``(n,)`` float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples
    return samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op when the rates match."""
    if rate == target_rate:
        return samples
    return soxr.resample(samples, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Return the file at ``path`` as float32 mono samples in [-1, 1] at ``sample_rate``.

    Integer WAV of any width, float WAV, FLAC, OGG and every other format libsndfile reads
    are accepted, at any rate and channel count; ``-`` reads such a file from stdin. Raises
    ``AudioFileError`` (one line naming the file) for a missing, empty, unreadable or non-finite file.
    """
    with _open(path) as f:
        samples, rate = _checked(path, f, -1), f.samplerate
    return resample(to_mono(samples), rate, sample_rate)


def read_blocks(path: str | Path, block_ms: float) -> tuple[int, int, Iterator[np.ndarray]]:
    """Stream a file as float32 mono blocks of ``block_ms`` at its own rate, in fixed memory.

    Returns ``(rate, total frames, blocks)``. Opening errors are raised here, read errors
    while iterating; both are ``AudioFileError`` as in ``read_audio``. The file is read a
    second or more at a time and cut into blocks: reading and checking 10-ms blocks one by
    one took a quarter of a whole replay's CPU.
    """
    f = _open(path)
    size = block_samples(block_ms, f.samplerate)
    piece = size * max(1, f.samplerate // size)

    def blocks() -> Iterator[np.ndarray]:
        with f:
            while len(samples := to_mono(_checked(path, f, piece))):
                for start in range(0, len(samples), size):
                    yield samples[start:start + size]

    return f.samplerate, f.frames, blocks()


STDIN = "-"
# Formats libsndfile recognises only with the rate, width and channels given by hand.
HEADERLESS = {".raw", ".pcm", ".s16", ".u8", ".f32", ".sln"}
# Decoders (mpg123 in libsndfile) print warnings of their own to fd 2, many per broken frame.
NOISY = {".mp3", ".mpga", ".mp2"}


def _source(path: Path):
    """What ``sf.SoundFile`` reads: the path, or the bytes of stdin (``-``), a pipe or a device
    (``/dev/stdin``), which libsndfile cannot seek in."""
    if str(path) == STDIN:
        return io.BytesIO(sys.stdin.buffer.read()), "standard input"
    if path.is_dir():
        raise AudioFileError(f"{path}: is a directory, not an audio file")
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if not path.is_file():  # a pipe, /dev/stdin, a FIFO: read it whole
        try:
            with open(path, "rb") as f:
                return io.BytesIO(f.read()), str(path)
        except OSError as err:
            raise AudioFileError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.suffix.lower() in HEADERLESS:
        raise AudioFileError(f"{path}: headerless raw audio cannot be read (its rate, sample "
                             "format and channels are unknown); convert it to WAV, e.g. "
                             f"`sox -t raw -r 16000 -e signed -b 16 -c 1 {path} out.wav`")
    return path, str(path)


@contextlib.contextmanager
def _decoder_quiet(path: Path):
    """Keep a decoder's own stderr chatter (mpg123's warnings) off the terminal; its errors
    still arrive as exceptions."""
    if path.suffix.lower() not in NOISY:
        yield
        return
    with quiet_c_stderr():
        yield


class _QuietFile(sf.SoundFile):
    """A ``SoundFile`` whose reads keep a noisy decoder's stderr quiet."""

    def read(self, *args, **kwargs):
        with _decoder_quiet(self._kws_path):
            return super().read(*args, **kwargs)


def _open(path: str | Path) -> sf.SoundFile:
    path = Path(path)
    source, name = _source(path)
    try:
        with _decoder_quiet(path):
            f = _QuietFile(source)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError, TypeError) as err:
        if isinstance(err, TypeError):  # soundfile: "No format specified" for RAW
            raise AudioFileError(f"{name}: headerless raw audio cannot be read; convert it to "
                                 "WAV (e.g. with sox)") from None
        raise _unreadable(path, err) from None
    f._kws_path = path
    if f.frames == 0:
        f.close()
        raise AudioFileError(f"{name}: contains no audio samples")
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
    reason = re.sub(r"^Error opening .*?: ", "", str(err))
    name = "standard input" if str(path) == STDIN else path
    return AudioFileError(f"{name}: not a readable audio file ({reason})")


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples as 16-bit PCM WAV (what sound cards and paplay expect)."""
    sf.write(path, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
