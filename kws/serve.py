"""A Wyoming wake-word service: Home Assistant, wyoming-satellite and other Wyoming clients
stream audio in, and get a ``Detection`` the moment one of the model's words is said.

The protocol is the ``wyoming`` package's (its server, event framing and event classes), as in
``wyoming-openwakeword`` and ``wyoming-microwakeword`` (the three things it does not publish
that kws needs are in ``kws.wyoming_private``); what is kws's is what a connection
runs, the very detector of ``kws replay`` (``Detector.from_bundle``: the same features,
thresholds and refractory rules), so a stream gives here the detections replay gives on the
same audio. Per connection:

- ``Describe`` -> ``Info``: one wake program named as the service is (``--zeroconf NAME``,
  else ``kws``: Home Assistant titles its entry and its wake-word engine with it, so two kws
  servers are told apart), its description listing each word's threshold and model; and a
  ``WakeModel`` per word of each model served, named and described by the word alone (Home
  Assistant lists a wake word by its description; ``Detect`` and ``Detection`` use the name);
- ``Detect(names)`` restricts the connection to those words (unknown names are logged and
  ignored; no names: every word) and ends the stream under way;
- ``AudioStart`` starts a stream at time 0 (a first ``AudioChunk`` without one does too, as
  satellites send); ``AudioChunk`` at any rate, width and channel count: widths become 16 bit
  with wyoming's ``AudioChunkConverter`` as the reference servers do, channels are averaged
  (``kws.audio.files.to_mono``, as replay reads a file: the reference's ``tomono`` adds the two
  channels of stereo, 6 dB louder and clipping, and cannot mix more) and the rate is the
  detector's own (it resamples with soxr, as for a file or a microphone at another rate);
- ``Detection(name=word, timestamp=ms)`` as soon as a word fires, the time in milliseconds of
  this stream's audio; the words not asked for are still decided (a word the model took for
  another must not become a detection of the one asked for) but not reported;
- ``AudioStop`` ends the stream with a window of silence, as replay ends a file (a word cut off
  by the stop is still heard), then ``NotDetected`` when the stream gave no detection.

Staying up: each connection owns its detectors (a LiteRT interpreter each, built in about 2 ms
from the bundle loaded once at start; the model file is memory-mapped, so its bytes are shared),
and every connection runs on the one event loop thread, which is the one core the service
uses: a chunk costs well under a millisecond, and audio is processed in slices of
``SLICE_SECONDS`` with the loop free in between, so a client sending long chunks delays others
by one slice at most. A client that reads nothing blocks only its own writes; TCP keep-alive
ends connections whose peer vanished. A malformed event, an event over ``MAX_EVENT_BYTES``, an
unsupported audio format or any error a connection raises closes that connection with one log
line; nothing a client sends reaches the server itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncServer, AsyncTcpServer, AsyncUnixServer
from wyoming.wake import Detect, Detection, NotDetected

from kws import __version__
from kws.audio.files import to_mono
from kws.bundle import Bundle, load_bundle
from kws.config import Config, with_overrides
from kws.detector import Detector, chunks, end_silence
from kws.errors import KwsError
from kws.posterior import with_thresholds
from kws.resources import find_model, install_hint
from kws.units import seconds_to_samples
from kws.wyoming_private import Connection, Refused, bound_port, read_event

log = logging.getLogger("kws.serve")

MAX_EVENT_BYTES = 1 << 20  # data or payload of one event: 1 MiB is 32 s of 16-kHz 16-bit audio
SLICE_SECONDS = 0.1  # audio processed between two turns of the event loop
RATES = (1000, 384000)  # Hz; the detector's ring holds seconds of audio at the client's rate
MAX_WIDTH = 4  # bytes per sample, as audioop converts
MAX_CHANNELS = 64
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}  # a dead peer: ~90 s
LANGUAGES = ["en"]  # Speech Commands and the synthetic voices of `kws enroll` are English


class ProtocolError(KwsError):
    """What a client sent cannot be served; it closes that connection, never the server."""


@dataclass(frozen=True)
class Model:
    """One bundle served: its words, and the config its detectors are built with."""

    bundle: Bundle
    config: Config  # thresholds laid over, as for `kws replay`
    thresholds: dict[str, float]  # each word's, as its detectors use them
    version: str


def load_models(config: Config, paths: list[str] | None,
                thresholds: dict[str, float] | float | None = None) -> list[Model]:
    """The bundles at ``paths`` (default: ``detector.model`` of the config), each loaded once.

    ``thresholds`` (``--threshold``) and the config's ``posterior.thresholds`` name words of any
    of them; a word no model has, or one that two models share (a ``Detection`` names a word,
    so it must say which model fired), is a ``KwsError``."""
    chosen = thresholds if isinstance(thresholds, dict) else {}
    configured = config.posterior.thresholds
    models = []
    for path in paths or [None]:
        own = config if path is None else \
            with_overrides(config, {"detector.model": str(Path(path).expanduser().resolve())})
        bundle = load_bundle(find_model(own.model_path), own)
        words = bundle.words
        own = with_overrides(own, {"posterior.thresholds": {w: t for w, t in configured.items() if w in words}})
        given = thresholds if not isinstance(thresholds, dict) else \
            {w: t for w, t in chosen.items() if w in words} or None
        own = with_thresholds(own, words, given)
        # One detector now: what would fail for every connection (a model that does not run, a
        # config that does not fit it) fails at start, in one line.
        models.append(Model(bundle, own, Detector.from_bundle(bundle, own).thresholds, model_version(bundle)))
    served = [w for m in models for w in m.bundle.words]
    twice = list(dict.fromkeys(w for i, w in enumerate(served) if w in served[:i]))
    if twice:
        raise KwsError(f"{', '.join(twice)}: a word of more than one model; serve one model per word "
                       f"({', '.join(str(m.bundle.path) for m in models)})")
    unknown = sorted((set(chosen) | set(configured)) - set(served))
    if unknown:
        raise KwsError(f"thresholds: {', '.join(unknown)} not among the served words ({', '.join(served)})")
    return models


def model_version(bundle: Bundle) -> str:
    """A short hash of the bundle's metadata and LiteRT models: changes whenever they do."""
    digest = hashlib.sha256()
    for path in sorted([bundle.path / "metadata.json", *bundle.path.glob("*.tflite")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def attribution(bundle: Bundle) -> Attribution:
    """Who made the model and from which data, under which licences (``Info`` shows it)."""
    meta = bundle.metadata
    enroll = meta.get("enroll") if isinstance(meta.get("enroll"), dict) else None
    commands = "Speech Commands (Warden 2018, CC BY 4.0)"
    if enroll is not None:
        data = [f"synthetic voices ({', '.join(enroll.get('engines') or [])})"]
        if any((enroll.get("recordings") or {}).values()):
            data.append("your recordings")
        if enroll.get("data"):
            data.append(commands)
    else:
        data = [commands]
        negatives = ((meta.get("data") or {}).get("training") or {}).get("negatives") or []
        if any(Path(str(n.get("path", ""))).name == "speech_negatives" for n in negatives):
            data.append("LibriSpeech train-clean-100 (CC BY 4.0)")
    return Attribution(name=f"kws (Apache-2.0), model {bundle.path.name}; data: {'; '.join(data)}",
                       url="https://arxiv.org/abs/1804.03209" if commands in data else "")


def describe(models: list[Model], name: str = "kws") -> Info:
    """The ``Info`` a ``Describe`` gets: one wake program, ``name``, and a ``WakeModel`` per word."""
    words = [WakeModel(name=word, description=word, phrase=word, attribution=attribution(m.bundle),
                       installed=True, languages=LANGUAGES, version=m.version)
             for m in models for word in m.thresholds]
    details = "; ".join(f"model {m.bundle.path.name}: " + ", ".join(f"{w} {t:.2f}" for w, t in m.thresholds.items())
                        for m in models)
    program = WakeProgram(name=name, description=f"kws, streaming offline keyword spotting; thresholds: {details}",
                          attribution=Attribution(name="kws (Apache-2.0)", url=""),
                          installed=True, version=__version__, models=words)
    return Info(wake=[program])


def check_format(rate, width, channels) -> None:
    """``ProtocolError`` unless the audio format is one a stream can take (integers in range:
    the detector's ring holds seconds of audio at ``rate``)."""
    def fits(value, low, high):
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    if not (fits(rate, *RATES) and fits(width, 1, MAX_WIDTH) and fits(channels, 1, MAX_CHANNELS)):
        raise ProtocolError(f"audio format rate={rate!r} width={width!r} channels={channels!r} not "
                            f"served (rate {RATES[0]}-{RATES[1]} Hz, width 1-{MAX_WIDTH} bytes, "
                            f"1-{MAX_CHANNELS} channels)")


class Stream:
    """One stream of a connection, from ``AudioStart`` (or its first chunk) to ``AudioStop``:
    a detector per model with a word asked for, all at the client's rate."""

    def __init__(self, models: list[Model], words: set[str] | None, rate, width, channels):
        check_format(rate, width, channels)
        self.format = (rate, width, channels)
        self.words = words
        self.detectors = [Detector.from_bundle(m.bundle, m.config, input_rate=rate) for m in models
                          if words is None or words & set(m.bundle.words)]
        self._to_16_bit = AudioChunkConverter(width=2)
        self._slice = max(1, seconds_to_samples(SLICE_SECONDS, rate))
        self.detected = False

    def samples(self, chunk: AudioChunk) -> np.ndarray:
        """The chunk as float32 mono at its own rate."""
        if (chunk.rate, chunk.width, chunk.channels) != self.format:
            raise ProtocolError(f"a chunk of rate={chunk.rate!r} width={chunk.width!r} "
                                f"channels={chunk.channels!r} in a stream of rate={self.format[0]} "
                                f"width={self.format[1]} channels={self.format[2]}")
        if len(chunk.audio) % (chunk.width * chunk.channels):
            raise ProtocolError(f"a chunk of {len(chunk.audio)} bytes is not whole samples of "
                                f"{chunk.width} bytes x {chunk.channels} channels")
        pcm = np.frombuffer(self._to_16_bit.convert(chunk).audio, dtype="<i2")
        return to_mono(pcm.reshape(-1, chunk.channels).astype(np.float32) / 32768)

    def slices(self, samples: np.ndarray):
        """``samples`` in pieces of ``SLICE_SECONDS``: the loop runs other connections between."""
        return chunks(samples, self._slice)

    def process(self, samples: np.ndarray) -> list:
        """Push a slice through every detector; the detections of words asked for, in order."""
        found = []
        for detector in self.detectors:
            detector.write(samples)
            found += detector.process()
        return self._reported(found)

    def silence(self) -> np.ndarray:
        """What ends the stream: a window of silence (``end_silence``, the longest of the
        models'), as ``kws replay`` ends a file, so a word cut off by ``AudioStop`` is heard."""
        return np.zeros(max((sum(map(len, end_silence(d))) for d in self.detectors), default=0), np.float32)

    def _reported(self, found: list) -> list:
        found = sorted((d for d in found if self.words is None or d.word in self.words),
                       key=lambda d: d.time)
        self.detected = self.detected or bool(found)
        return found


class _BoundedReader:
    """The connection's ``StreamReader`` as ``kws.wyoming_private.read_event`` reads it, with
    each event's data and payload bounded by ``MAX_EVENT_BYTES`` (a header claiming more would
    make the reader buffer whatever the client sends), and the header line it last read kept:
    when no event comes of it, that line and ``problem`` are what the log says."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader
        self.line = b""
        self.problem = "not a Wyoming event"

    async def readline(self) -> bytes:
        try:
            self.line = await self._reader.readline()
        except ValueError:  # over the reader's limit (64 KiB) without a newline
            self.line = b"(a line over 64 KiB)"
            raise
        return self.line

    async def readexactly(self, n: int) -> bytes:
        if n > MAX_EVENT_BYTES:
            self.problem = f"an event part of {n} bytes, over {MAX_EVENT_BYTES} bytes"
            raise Refused(n)  # read_event gives None: the connection closes
        return await self._reader.readexactly(n)

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class Service:
    """What every connection shares: the models (loaded once), their ``Info`` under the
    service's ``name``, the counters."""

    def __init__(self, models: list[Model], name: str = "kws"):
        self.models = models
        self.info = describe(models, name)
        self.words = {w for m in models for w in m.bundle.words}
        self.connections = 0
        self.detections = 0

    def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> "Handler":
        return Handler(self, reader, writer)


class Handler(Connection):
    """One client connection (see the module docstring for what each event does)."""

    def __init__(self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__(_BoundedReader(reader), writer)
        self.service = service
        service.connections += 1
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else f"client {service.connections}"
        _keep_alive(writer.get_extra_info("socket"))
        self.words: set[str] | None = None
        self.stream: Stream | None = None

    async def run(self) -> None:
        """wyoming's ``AsyncEventHandler.run``, with every way a connection can fail ending in one
        log line (the base class lets errors escape the task, and ends silently on bad JSON). A
        client hanging up between events, whether it closes or resets the connection (Home
        Assistant does either once it has its detection), is how connections end: not a
        problem, logged only with ``--verbose``."""
        try:
            while self.running:
                self.reader.line = b""
                event = await read_event(self.reader)
                if event is None:
                    if self.reader.line:  # a header came, and no event of it
                        log.warning("%s: closed: %s: %.80r", self.peer, self.reader.problem, self.reader.line)
                    else:
                        log.debug("%s: hung up", self.peer)
                    break
                if not await self.handle_event(event):
                    break
        except asyncio.IncompleteReadError:  # the header said more was coming
            log.info("%s: gone mid-event", self.peer)
        except ConnectionError as err:  # reset, or our write found it closed
            log.debug("%s: hung up (%s)", self.peer, type(err).__name__)
        except Exception as err:  # noqa: BLE001 - whatever a client causes ends its connection only
            reason = str(err) if isinstance(err, KwsError) else f"{type(err).__name__}: {err}"
            log.warning("%s: closed: %.200s", self.peer, reason.split("\n")[0])
        finally:
            self.stream = None
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        if AudioChunk.is_type(event.type):  # the common event first
            await self._chunk(AudioChunk.from_event(event))
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self.stream = Stream(self.service.models, self.words, start.rate, start.width, start.channels)
        elif AudioStop.is_type(event.type):
            await self._stop()
        elif Detect.is_type(event.type):
            self.words = self._asked(Detect.from_event(event).names)
            self.stream = None
        elif Describe.is_type(event.type):
            await self.write_event(self.service.info.event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        else:
            log.debug("%s: ignored event %r", self.peer, event.type)
        return True

    def _asked(self, names) -> set[str] | None:
        if not names:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProtocolError(f"detect: names must be a list of words, got {names!r:.80}")
        unknown = sorted(set(names) - self.service.words)
        if unknown:
            log.warning("%s: detect: %s not served (words: %s)", self.peer, ", ".join(unknown),
                        ", ".join(sorted(self.service.words)))
        return set(names) & self.service.words

    async def _chunk(self, chunk: AudioChunk) -> None:
        if self.stream is None:
            self.stream = Stream(self.service.models, self.words, chunk.rate, chunk.width, chunk.channels)
        await self._push(self.stream, self.stream.samples(chunk))

    async def _stop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await self._push(stream, stream.silence())
        if stream is None or not stream.detected:
            await self.write_event(NotDetected().event())

    async def _push(self, stream: Stream, samples: np.ndarray) -> None:
        for piece in stream.slices(samples):
            await self._report(stream.process(piece))
            await asyncio.sleep(0)  # the other connections' turn

    async def _report(self, found: list) -> None:
        for d in found:
            self.service.detections += 1
            log.info("%s: %s %.2f at %.3f s", self.peer, d.word, d.score, d.time)
            await self.write_event(Detection(name=d.word, timestamp=round(d.time * 1000)).event())


def _keep_alive(sock) -> None:
    """TCP keep-alive on a client's socket: a peer that vanished (powered off, unplugged) is
    noticed in about 90 s and its connection closed, instead of held forever."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def server_for(uri: str, zeroconf: bool = False) -> AsyncServer:
    """The (not yet listening) wyoming server for ``uri``; ``KwsError`` for one it cannot serve,
    or cannot announce with ``zeroconf``."""
    import importlib.util

    try:
        server = AsyncServer.from_uri(uri)
    except ValueError as err:
        raise KwsError(f"--uri {uri}: {err}") from None
    if not isinstance(server, (AsyncTcpServer, AsyncUnixServer)):  # stdio: one client, no server
        raise KwsError(f"--uri {uri}: kws serves tcp://HOST:PORT or unix://PATH")
    if zeroconf and not isinstance(server, AsyncTcpServer):
        raise KwsError(f"--zeroconf announces a tcp:// --uri, not {uri}")
    if zeroconf and importlib.util.find_spec("zeroconf") is None:
        raise KwsError(f"--zeroconf needs the zeroconf package: {install_hint('zeroconf')}")
    return server


async def start(service: Service, uri: str, zeroconf: str | None = None) -> tuple[AsyncServer, str]:
    """Start serving at ``uri`` (``tcp://HOST:PORT``, port 0 for any free one, or
    ``unix://PATH``), announced as ``zeroconf`` if given; return the server and the URI it is
    bound to."""
    server = server_for(uri, bool(zeroconf))
    try:
        await server.start(service.handler)
    except OSError as err:
        raise KwsError(f"--uri {uri}: cannot listen there ({err.strerror or err})") from None
    if isinstance(server, AsyncTcpServer):
        server.port = bound_port(server)  # port 0: the one the system chose
        uri = f"tcp://{server.host}:{server.port}"
    if zeroconf:
        try:
            await announce(server, zeroconf)
        except BaseException:
            await server.stop()
            raise
    return server, uri


async def announce(server: AsyncTcpServer, name: str) -> None:
    """Zeroconf (mDNS) ``_wyoming._tcp`` announcement, as the reference servers make it, so
    Home Assistant discovers the service by itself; ``KwsError`` when another service on the
    network has ``name`` (Home Assistant could not tell the two apart)."""
    from wyoming.zeroconf import HomeAssistantZeroconf
    from zeroconf import NonUniqueNameException

    # A wildcard address is no address to announce: wyoming finds the one that reaches the LAN.
    host = None if server.host in ("0.0.0.0", "::", "") else server.host
    try:
        await HomeAssistantZeroconf(port=server.port, name=name, host=host).register_server()
    except NonUniqueNameException:
        raise KwsError(f"--zeroconf {name}: another service on the network is announced under that "
                       "name; give this one its own (--zeroconf kitchen)") from None


def serve_forever(service: Service, uri: str, zeroconf: str | None = None,
                  on_ready=None) -> None:
    """Serve until Ctrl-C or SIGTERM, then close every connection and return (within a
    second: nothing waits for clients). ``on_ready(bound_uri)`` once listening."""
    asyncio.run(_serve(service, uri, zeroconf, on_ready))


async def _serve(service: Service, uri: str, zeroconf: str | None, on_ready) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server, bound = await start(service, uri, zeroconf)
    try:
        if on_ready is not None:
            on_ready(bound)
        await stop.wait()
    finally:
        await server.stop()
