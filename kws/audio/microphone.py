"""Live capture: pick an input device, open it, and hand each block to the detector's ring.

``sounddevice`` is imported on first use, not at module import: it loads PortAudio, which may
be missing (``kws replay`` must work without it), and it enumerates devices once, at import,
so the audio server's address (``PULSE_SERVER``) must be set before that moment.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from kws.errors import KwsError

from time import monotonic as _monotonic  # noqa: E402 (cheap enough for the audio callback)


class MicrophoneError(KwsError):
    """No usable input device: PortAudio missing, no device, bad ``--device``, or it went away."""


# Seconds the audio system gets to answer a question (list devices, open, close a stream).
# A stalled audio server (PulseAudio stopped) never answers: PortAudio's calls block forever.
AUDIO_TIMEOUT = 5.0
# Set once a PortAudio call was abandoned on a thread of its own (it may never return): the
# process must then end with os._exit, since PortAudio's exit handler would block as well.
abandoned = threading.Event()

T = TypeVar("T")


def with_timeout(what: str, call: Callable[[], T], timeout: float | None = None) -> T:
    """``call()`` on a daemon thread; ``MicrophoneError`` if it has not returned in ``timeout``
    seconds (the call is left behind, and ``abandoned`` is set)."""
    timeout = AUDIO_TIMEOUT if timeout is None else timeout
    result: list = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            error.append(err)

    # sounddevice points fd 2 at /dev/null while PortAudio starts (and puts it back after): a
    # call left hanging there would take kws's own error message with it.
    try:
        stderr = os.dup(2)
    except OSError:
        stderr = None
    thread = threading.Thread(target=target, name=f"kws-audio-{what}", daemon=True)
    thread.start()
    try:
        thread.join(timeout)
    finally:  # also on Ctrl-C while waiting: the call is left behind all the same
        alive = thread.is_alive()
        if alive:
            abandoned.set()
        if stderr is not None:
            if alive:
                os.dup2(stderr, 2)
            os.close(stderr)
    if alive:
        raise MicrophoneError(f"the audio system did not answer within {timeout:g} s ({what}); "
                              "is the audio server (PulseAudio, PipeWire) stalled?")
    if error:
        raise error[0]
    return result[0]


def _import_sounddevice():
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError('PortAudio library not found')
        raise MicrophoneError(f"cannot use the sound card: {err} "
                              "(install it with `apt-get install libportaudio2`)") from None
    return sounddevice


def import_sounddevice():
    """The ``sounddevice`` module, or a ``MicrophoneError`` saying how to install PortAudio.

    Importing it starts PortAudio, which asks the audio server for its devices: bounded by
    ``AUDIO_TIMEOUT``."""
    import sys

    if "sounddevice" in sys.modules and sys.modules["sounddevice"] is not None \
            and hasattr(sys.modules["sounddevice"], "query_devices"):
        return sys.modules["sounddevice"]
    return with_timeout("starting PortAudio", _import_sounddevice)


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    host_api: str
    channels: int
    default_rate: int
    is_default: bool

    def __str__(self) -> str:
        return f"[{self.index}] {self.name} ({self.host_api})"


def input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order; none is an error."""
    sd = import_sounddevice()

    def query() -> list[InputDevice]:
        default = sd.default.device[0]
        return [InputDevice(index=info["index"], name=info["name"],
                            host_api=sd.query_hostapis(info["hostapi"])["name"],
                            channels=info["max_input_channels"],
                            default_rate=int(info["default_samplerate"]),
                            is_default=info["index"] == default)
                for info in sd.query_devices() if info["max_input_channels"] > 0]

    devices = with_timeout("listing devices", query)
    if not devices:
        raise MicrophoneError("no input device found: is a microphone connected, and the audio server "
                              "(PulseAudio, PipeWire) running?")
    return devices


def find_input_device(query: int | str | None = None) -> InputDevice:
    """The device ``query`` names (an index, or a case-insensitive name substring); default: the
    system's default input. An exact name wins over substrings, so ``pulse`` is not ambiguous
    just because another device is called ``pulse monitor``."""
    devices = input_devices()
    if query is None:
        chosen = [d for d in devices if d.is_default]
        if not chosen:
            raise MicrophoneError("no default input device; choose one with --device "
                                  "(`kws devices` lists them)")
        return chosen[0]
    query = str(query)
    if query.strip().isdigit():
        chosen = [d for d in devices if d.index == int(query)]
        if not chosen:
            raise MicrophoneError(f"no input device has index {query} (see `kws devices`)")
        return chosen[0]
    wanted = query.lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    matches = exact or [d for d in devices if wanted in d.name.lower()]
    if not matches:
        raise MicrophoneError(f"no input device matches {query!r} (see `kws devices`)")
    if len(matches) > 1:
        names = ", ".join(str(d) for d in matches)
        raise MicrophoneError(f"{query!r} matches several input devices: {names}")
    return matches[0]


def opens_at(device: InputDevice, rate: int) -> bool:
    """Whether ``device`` records mono float32 at ``rate`` (PortAudio's check, bounded by
    ``AUDIO_TIMEOUT``): a device's default rate is not always one it opens at, and a rate it
    does not advertise may open all the same (PulseAudio's default device resamples)."""
    sd = import_sounddevice()

    def check() -> bool:
        try:
            sd.check_input_settings(device=device.index, channels=1, dtype="float32",
                                    samplerate=rate)
        except sd.PortAudioError:
            return False
        return True

    return with_timeout("checking the device's rates", check)


# The rates ``kws devices`` tries, with each device's default: the model's and the usual ones.
COMMON_RATES = (16000, 44100, 48000)


def open_rates(device: InputDevice, rates=COMMON_RATES) -> list[int]:
    """Which of ``rates`` and the device's default rate ``device`` really opens at, ascending."""
    return [rate for rate in sorted({*rates, device.default_rate}) if opens_at(device, rate)]


def capture_rate(device: InputDevice, wanted: int) -> int:
    """``wanted`` if the device records mono at that rate, else the device's own default rate
    (the detector then resamples)."""
    return wanted if opens_at(device, wanted) else device.default_rate


class Microphone:
    """A mono float32 input stream whose callback passes each block to ``write``.

    The callback runs on PortAudio's audio thread, which must never wait: it counts overflows
    the driver reports and calls ``write`` (a ring-buffer copy), nothing else. Everything
    else happens on the thread that polls ``device_lost`` and drains the ring.
    """

    def __init__(self, device: InputDevice, rate: int, block_samples: int,
                 write: Callable[[np.ndarray], object]):
        sd = import_sounddevice()
        self.device = device
        self.rate = rate
        self.overflows = 0  # callbacks whose status said the driver dropped input
        self.last_audio: float | None = None  # time.monotonic() of the last callback
        self._write = write
        self._finished = threading.Event()
        self._closing = False
        self._portaudio_error = sd.PortAudioError
        self.closed_cleanly = True  # False when close() gave up waiting for PortAudio
        try:
            # On the caller's thread (see ``start``); a stalled server was caught by the bounded
            # device lookup before this.
            self._stream = sd.InputStream(
                samplerate=rate, blocksize=block_samples, device=device.index, channels=1,
                dtype="float32", callback=self._callback, finished_callback=self._finished.set)
        except (sd.PortAudioError, ValueError) as err:
            raise self._error("open", err) from None

    def _error(self, action: str, err: Exception) -> MicrophoneError:
        return MicrophoneError(f"cannot {action} input device {self.device} at {self.rate} Hz: "
                               f"{str(err).splitlines()[0]}")

    def _callback(self, indata: np.ndarray, frames: int, time, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.last_audio = _monotonic()
        self._write(indata[:, 0])

    @property
    def device_lost(self) -> bool:
        """The stream ended without being asked to: the device was unplugged or the audio
        server went away."""
        return self._finished.is_set() and not self._closing

    def start(self) -> None:
        try:
            # On the caller's thread: PortAudio's ALSA stream started from a thread that then
            # ends does not always notice the server going away.
            self._stream.start()
        except self._portaudio_error as err:
            raise self._error("start", err) from None

    def close(self, timeout: float = 1.0) -> None:
        """Close the stream; if PortAudio has not closed it within ``timeout`` seconds (a
        stalled audio server), stop waiting: ``closed_cleanly`` turns False."""
        self._closing = True
        try:
            with_timeout("closing the stream", lambda: self._stream.close(ignore_errors=True),
                         timeout)
        except MicrophoneError:
            self.closed_cleanly = False

    def __enter__(self) -> "Microphone":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
