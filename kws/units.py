"""Time units: milliseconds, seconds, samples, feature frames and hops, one rule each.

Every conversion in kws goes through these small pure functions (in the spirit of librosa's
``time_to_samples`` and ``frames_to_time``), so there is one rounding rule per conversion:

- a duration becomes the *nearest* whole number of samples (``round``), never truncated;
- a block of audio is at least one sample long (``block_samples``);
- a frame is complete only when all its samples are there (``frame_count``: no padding,
  librosa's ``center=False``); frame ``t`` covers samples ``[t * hop, t * hop + window)``;
- a span of time in hops is the nearest whole number of hops, at least one (``ms_to_hops``).
"""

from __future__ import annotations


def ms_to_samples(ms: float, sample_rate: int) -> int:
    """Samples in ``ms`` milliseconds at ``sample_rate``, rounded to the nearest sample."""
    return round(sample_rate * ms / 1000)


def ms_to_seconds(ms: float) -> float:
    """Milliseconds (how the config states durations) as seconds (how stream time is kept)."""
    return ms / 1000


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    """Samples in ``seconds`` at ``sample_rate``, rounded to the nearest sample."""
    return round(sample_rate * seconds)


def samples_to_seconds(samples: int, sample_rate: int) -> float:
    """Duration of ``samples`` samples at ``sample_rate``, in seconds."""
    return samples / sample_rate


def block_samples(ms: float, sample_rate: int) -> int:
    """Samples in a block of ``ms`` milliseconds (a sound card's or a reader's), at least one."""
    return max(1, ms_to_samples(ms, sample_rate))


def frame_count(n_samples: int, window: int, hop: int) -> int:
    """Frames that ``n_samples`` samples fill completely (no padding)."""
    return 0 if n_samples < window else 1 + (n_samples - window) // hop


def frame_end_seconds(index: int, window: int, hop: int, sample_rate: int) -> float:
    """Seconds from the start of the stream to the end of frame ``index``'s samples."""
    return samples_to_seconds(index * hop + window, sample_rate)


def ms_to_hops(ms: float, hop_ms: float) -> int:
    """How many hops of ``hop_ms`` span ``ms`` milliseconds: the nearest count, at least one."""
    return max(1, round(ms / hop_ms))
