"""`kws serve`: the Wyoming wake-word service, through the real `wyoming` client on localhost.

The server runs in the test's own event loop on a port the OS picks (``tcp://127.0.0.1:0``);
every wait is on an event (a reply, a Pong after the last chunk, a closed connection) and
bounded by ``TIMEOUT``, never a sleep. Detections are compared with `kws replay` on the same
file: the same detector, so the same words at the same times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.wake import Detect, Detection, NotDetected

from conftest import run_kws
from kws.config import load_config
from kws.serve import MAX_EVENT_BYTES, Service, load_models, start

TIMEOUT = 60.0  # seconds; generous on a busy two-core machine, never reached when things work
THRESHOLD = "0.6"  # mid-range for the tiny model (as test_replay), so every spoken word fires
HOP = 0.02  # detector.hop_ms of config.yaml, in seconds
CHUNK = 1024  # samples per AudioChunk, as wyoming-satellite sends


@pytest.fixture(scope="module")
def reference(spoken, tiny_bundle):
    """``(int16 samples, [(word, seconds)])``: the spoken file as `kws replay` hears it."""
    found = replay(spoken[2], tiny_bundle)
    assert [w for w, _ in found] == [w for w, _, _ in spoken[1]]  # the tiny model hears them all
    samples, _ = sf.read(spoken[2], dtype="int16")
    return samples, found


def replay(wav, bundle) -> list[tuple[str, float]]:
    result = run_kws("replay", str(wav), "--model", str(bundle), "--json", "--threshold", THRESHOLD)
    return [(d["word"], d["time"]) for d in map(json.loads, result.stdout.splitlines()) if "word" in d]


@pytest.fixture
def service(tiny_bundle):
    return Service(load_models(load_config(), [str(tiny_bundle)], float(THRESHOLD)))


def serving(service: Service, body):
    """Run ``body(port)`` against a server in this event loop; stop the server after."""
    async def main():
        server, uri = await start(service, "tcp://127.0.0.1:0")
        try:
            return await asyncio.wait_for(body(int(uri.rsplit(":", 1)[1])), TIMEOUT)
        finally:
            await server.stop()

    return asyncio.run(main())


async def stream(port: int, audio: bytes, rate=16000, width=2, channels=1, names=None) -> list:
    """Stream ``audio`` in chunks, then AudioStop; every event the server sent, in order.

    The Pong to a Ping sent after AudioStop marks the end: the server handles a connection's
    events in order, so everything it had to say about the stream came before."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        if names is not None:
            await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate, width, channels).event())
        step = CHUNK * width * channels
        for start_byte in range(0, len(audio), step):
            await client.write_event(AudioChunk(rate, width, channels, audio[start_byte:start_byte + step]).event())
            await asyncio.sleep(0)  # let concurrent clients interleave
        await client.write_event(AudioStop().event())
        await client.write_event(Ping().event())
        events = []
        while not Pong.is_type((event := await client.read_event()).type):
            events.append(event)
        return events


def detections(events) -> list[tuple[str, float]]:
    found = [Detection.from_event(e) for e in events if Detection.is_type(e.type)]
    return [(d.name, d.timestamp / 1000) for d in found]


def assert_same(found, expected, tolerance=0.0015):
    assert [w for w, _ in found] == [w for w, _ in expected], (found, expected)
    for (_, t), (_, t_ref) in zip(found, expected):
        assert abs(t - t_ref) <= tolerance, (found, expected)


def describe(service: Service) -> Info:
    async def body(port):
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    return serving(service, body)


def test_describe_lists_every_word_as_a_wake_model(service, tiny_bundle):
    (program,) = describe(service).wake
    assert program.name == "kws" and program.installed and program.version
    assert [m.name for m in program.models] == ["yes", "no", "up", "stop"]
    for model in program.models:
        # Home Assistant lists a wake word by its description: the word, nothing else.
        assert model.description == model.phrase == model.name
        assert model.languages == ["en"] and model.installed and model.version
        assert "Apache-2.0" in model.attribution.name and "Speech Commands" in model.attribution.name
    # Each word's threshold, in the engine's details.
    assert f"model {tiny_bundle.name}: yes 0.60, no 0.60, up 0.60, stop 0.60" in program.description


def test_the_service_is_named_as_announced(tiny_bundle):
    # Home Assistant titles the entry and the wake-word engine with the program's name: with
    # --zeroconf NAME, NAME, so two kws servers are told apart.
    models = load_models(load_config(), [str(tiny_bundle)], float(THRESHOLD))
    (program,) = describe(Service(models, name="kitchen")).wake
    assert program.name == "kitchen"


class Logged(logging.Handler):
    """kws.serve's log records, and an event for each (the server runs in the test's loop)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.new = asyncio.Event()

    def emit(self, record):
        self.records.append(record)
        self.new.set()

    async def until(self, test) -> None:
        while not test(self.records):
            self.new.clear()
            await self.new.wait()


def test_a_client_hanging_up_is_no_problem(service, reference):
    # As Home Assistant does once it has its detection: it closes the connection, or resets it
    # with kws's events unread. Neither is logged as a problem; --verbose shows it.
    samples, _ = reference
    logged = Logged()

    async def hang_up(port, abort: bool):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(AUDIO_START + b"".join(chunk_line(samples[i:i + CHUNK])
                                            for i in range(0, len(samples) - CHUNK, CHUNK)))
        await writer.drain()
        assert json.loads(await reader.readline())["type"] == "detection"  # the first word
        if abort:
            writer.transport.abort()  # a reset: the rest of kws's events unread
        else:
            writer.close()
            await writer.wait_closed()

    async def body(port):
        for abort in (False, True):
            await hang_up(port, abort)
        await logged.until(lambda records: sum("hung up" in r.getMessage() for r in records) == 2)
        return await stream(port, np.zeros(CHUNK, np.int16).tobytes())  # the server still serves

    log = logging.getLogger("kws.serve")
    log.addHandler(logged)
    level = log.level
    log.setLevel(logging.DEBUG)
    try:
        assert [e.type for e in serving(service, body)] == [NotDetected().event().type]
    finally:
        log.removeHandler(logged)
        log.setLevel(level)
    said = [(r.levelno, r.getMessage()) for r in logged.records]
    hung_up = [level for level, line in said if "hung up" in line]  # the last client's too, if in time
    assert len(hung_up) >= 2 and set(hung_up) == {logging.DEBUG}, said
    assert all(" at " in line for level, line in said if level >= logging.INFO), said  # detections only


def test_streamed_words_are_replays_detections(service, reference):
    samples, expected = reference
    events = serving(service, lambda port: stream(port, samples.tobytes()))
    assert_same(detections(events), expected)
    assert not any(NotDetected.is_type(e.type) for e in events)


def test_any_rate_width_and_channels_as_replay_reads_that_file(service, reference, tiny_bundle, tmp_path):
    # 48 kHz stereo, 32-bit: the server converts the width with wyoming's converter, averages
    # the channels and resamples as replay does for the same file.
    import soxr

    samples, _ = reference
    wide = soxr.resample(samples.astype(np.float32) / 32768, 16000, 48000) * 0.9
    stereo = np.stack([wide, 0.5 * wide], axis=1)
    path = tmp_path / "stereo48k.wav"
    sf.write(path, stereo, 48000, subtype="PCM_32")
    pcm, _ = sf.read(path, dtype="int32")
    events = serving(service, lambda port: stream(port, pcm.tobytes(), rate=48000, width=4, channels=2))
    assert_same(detections(events), replay(path, tiny_bundle), tolerance=HOP)


def test_detect_names_restrict_the_connection(service, reference, caplog):
    samples, expected = reference
    with caplog.at_level(logging.WARNING, logger="kws.serve"):
        events = serving(service, lambda port: stream(port, samples.tobytes(), names=["yes", "stop", "marvin"]))
    assert_same(detections(events), [(w, t) for w, t in expected if w in ("yes", "stop")])
    assert any("marvin not served" in r.getMessage() for r in caplog.records)


def test_no_word_heard_is_not_detected(service):
    silence = np.zeros(16000 * 2, np.int16).tobytes()
    events = serving(service, lambda port: stream(port, silence))
    assert [e.type for e in events] == [NotDetected().event().type]


def test_eight_clients_at_once_each_get_their_own_streams_detections(service, reference, spoken):
    # Client k streams the file up to the middle of the gap after word k: a different stream
    # each, interleaved chunk by chunk; the detector is causal, so each gets replay's first k words.
    samples, expected = reference
    ends = [int((end + 0.75) * 16000) for _, _, end in spoken[1]]

    async def body(port):
        return await asyncio.gather(*(stream(port, samples[:end].tobytes()) for end in ends))

    for k, events in enumerate(serving(service, body), start=1):
        assert_same(detections(events), expected[:k])


def test_vanished_and_garbage_clients_leave_the_server_serving(service, reference, caplog):
    samples, expected = reference
    header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}}
    bad = {  # what each sends -> the word its one log line holds
        "garbage": (b"\x00\xff\xfenot json at all\n", "not a Wyoming event"),
        "huge payload": (json.dumps({**header, "payload_length": 10 * MAX_EVENT_BYTES}).encode() + b"\n",
                         f"over {MAX_EVENT_BYTES} bytes: "),
        "no type": (b'{"data": {}}\n', "KeyError"),
        "absurd format": (json.dumps({"type": "audio-start", "data": {"rate": 10**9, "width": 2,
                                                                      "channels": 1}}).encode() + b"\n",
                          "not served"),
        "text rate": (json.dumps({"type": "audio-start", "data": {"rate": "fast", "width": 2,
                                                                  "channels": 1}}).encode() + b"\n",
                      "not served"),
        "half samples": (json.dumps({**header, "payload_length": 3}).encode() + b"\n\x01\x02\x03",
                         "not whole samples"),
    }

    async def closed_after(port, data: bytes) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        closed = await reader.read() == b""  # the server closes: EOF, nothing sent back
        writer.close()
        return closed

    async def vanish_mid_stream(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pieces = [chunk_line(samples[i:i + CHUNK]) for i in range(0, 20 * CHUNK, CHUNK)]
        writer.write(AUDIO_START + b"".join(pieces))
        await writer.drain()
        writer.transport.abort()  # gone without a word, mid-stream

    async def body(port):
        long_client = asyncio.create_task(stream(port, samples.tobytes()))  # streams throughout
        await vanish_mid_stream(port)
        closed = {name: await closed_after(port, data) for name, (data, _) in bad.items()}
        return closed, await long_client, await stream(port, samples.tobytes())

    with caplog.at_level(logging.INFO, logger="kws.serve"):
        closed, during, after = serving(service, body)
    assert closed == {name: True for name in bad}
    assert_same(detections(during), expected)
    assert_same(detections(after), expected)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == len(bad), problems  # one line per bad client, none for the others
    for (_, word), line in zip(bad.values(), problems):
        assert word in line and "\n" not in line, (word, line)


AUDIO_START = json.dumps({"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}).encode() + b"\n"


def chunk_line(samples: np.ndarray) -> bytes:
    """One AudioChunk as wyoming frames it (header line, then the payload)."""
    payload = samples.astype("<i2").tobytes()
    header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
              "payload_length": len(payload)}
    return json.dumps(header).encode() + b"\n" + payload


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_stops_on_a_signal_with_a_client_mid_stream(tiny_bundle, sig):
    # Nothing waits for clients: the client here never hangs up, yet the command exits, and
    # closes the client's connection on the way (the client reads the end of it).
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kws", "serve", "--uri", "tcp://127.0.0.1:0", "--model", str(tiny_bundle),
            stderr=asyncio.subprocess.PIPE)
        try:
            while b"serving on" not in (line := await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)):
                assert line, "kws serve ended before serving"
            port = int(line.split(b"tcp://127.0.0.1:")[1].split()[0])
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(AudioStart(16000, 2, 1).event())
                await client.write_event(AudioChunk(16000, 2, 1, bytes(2 * CHUNK)).event())
                await client.write_event(Ping().event())
                assert Pong.is_type((await client.read_event()).type)  # mid-stream now
                proc.send_signal(sig)
                code = await asyncio.wait_for(proc.wait(), TIMEOUT)
                closed = await asyncio.wait_for(client.read_event(), TIMEOUT) is None
                return code, closed, (await proc.stderr.read()).decode()
        finally:
            if proc.returncode is None:
                proc.kill()

    code, closed, rest = asyncio.run(main())
    assert code == 0 and closed and "stopped after" in rest and "Traceback" not in rest, rest


@pytest.mark.parametrize("args, message", [
    (["--threshold", "marvin=0.5"], "marvin not among the served words"),
    (["--uri", "http://localhost:10400"], "--uri http://localhost:10400"),
    (["--model", "{tiny}"], "yes, no, up, stop: a word of more than one model"),
    (["--uri", "unix:///tmp/kws.sock", "--zeroconf"], "--zeroconf announces a tcp:// --uri"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_bundle, args, message):
    args = [a.replace("{tiny}", str(tiny_bundle)) for a in args]
    result = run_kws("serve", "--model", str(tiny_bundle), *args, check=False, timeout=TIMEOUT)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_zeroconf_without_its_package_says_what_to_install(tiny_bundle):
    code = ("import sys; sys.modules['zeroconf'] = None\n"
            "from kws.cli import main\n"
            f"sys.exit(main(['serve', '--model', {str(tiny_bundle)!r}, '--zeroconf']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    # A clone's install line, as the README gives it (kws is on no package index).
    assert result.stderr == "kws: error: --zeroconf needs the zeroconf package: pip install -e '.[zeroconf]'\n"
