"""The page of `kws serve --http` (``kws.web``), through aiohttp's test client on localhost.

The live view is the detector of `kws replay`: a WebSocket fed the committed spoken stream
gets replay's detections, at the model's rate and at a browser's (resampled as replay
resamples a file at that rate). Every wait is on a message (``stopped`` after a stop) and
bounded by ``TIMEOUT``, never a sleep. The real browser's test is tests/test_web_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from conftest import run_kws
from kws.bundle import load_bundle
from kws.config import load_config
from kws.serve import load_models
from kws.web import enrol as enrol_module
from kws.web.server import make_app, make_page

TIMEOUT = 60.0  # seconds; generous on a busy two-core machine, never reached when things work
THRESHOLD = 0.6  # as tests/test_serve.py: every spoken word fires on the tiny model
BLOCK = 2048  # samples per message, as the page's AudioWorklet sends them


def replay(wav, bundle, *args: str) -> list[tuple[str, float]]:
    result = run_kws("replay", str(wav), "--model", str(bundle), "--json", "--threshold", str(THRESHOLD), *args)
    return [(d["word"], d["time"]) for d in map(json.loads, result.stdout.splitlines()) if "word" in d]


def assert_same(found, expected, tolerance=0.0015):
    assert [w for w, _ in found] == [w for w, _ in expected], (found, expected)
    for (_, t), (_, t_ref) in zip(found, expected):
        assert abs(t - t_ref) <= tolerance, (found, expected)


@pytest.fixture(scope="module")
def reference(spoken, tiny_bundle):
    """``(int16 samples, [(word, seconds)])``: the spoken file as `kws replay` hears it."""
    found = replay(spoken[2], tiny_bundle)
    assert [w for w, _ in found] == [w for w, _, _ in spoken[1]]  # the tiny model hears them all
    return sf.read(spoken[2], dtype="int16")[0], found


def page_for(tiny_bundle, folder, token=None, **enrol):
    config = load_config()
    return make_page(config, load_models(config, [str(tiny_bundle)], THRESHOLD), folder, token, **enrol)


@pytest.fixture
def page(tiny_bundle, tmp_path):
    return page_for(tiny_bundle, tmp_path / "models")


def serving(page, body):
    """Run ``body(client)`` against the page's app served in this event loop."""
    async def main():
        async with TestClient(TestServer(make_app(page))) as client:
            return await asyncio.wait_for(body(client), TIMEOUT)

    return asyncio.run(main())


async def stream(client, audio: np.ndarray, rate=16000, fmt="s16", thresholds=None, path="/ws") -> list[dict]:
    """Start, (thresholds,) audio in blocks, stop: every message until ``stopped``."""
    async with client.ws_connect(path) as ws:
        await ws.send_json({"type": "start", "rate": rate, "format": fmt})
        messages = [await ws.receive_json()]
        if thresholds:
            await ws.send_json({"type": "thresholds", "thresholds": thresholds})
        for start in range(0, len(audio), BLOCK):
            await ws.send_bytes(audio[start:start + BLOCK].tobytes())
        await ws.send_json({"type": "stop"})
        while messages[-1]["type"] != "stopped":
            messages.append(await ws.receive_json())
        return messages


def detections(messages) -> list[tuple[str, float]]:
    return [(m["word"], m["time"]) for m in messages if m["type"] == "detection"]


def test_the_live_view_gives_replays_detections(page, reference):
    samples, expected = reference
    messages = serving(page, lambda client: stream(client, samples))
    assert messages[0] == {"type": "ready", "model": "tiny_bundle", "words": ["yes", "no", "up", "stop"],
                           "thresholds": dict.fromkeys(["yes", "no", "up", "stop"], THRESHOLD), "rate": 16000,
                           "model_rate": 16000}
    assert_same(detections(messages), expected)
    # each word's score about ten times a second: every 0.1 s of audio, or every block when longer
    scores = [m for m in messages if m["type"] == "scores"]
    gaps = np.diff([m["time"] for m in scores[:-1]])  # the last: the stop's
    assert 0.1 - 1e-6 <= gaps.min() and gaps.max() <= BLOCK / 16000 + 1e-3, gaps
    assert set(scores[-1]["scores"]) == {"yes", "no", "up", "stop"}


def test_a_browsers_rate_is_resampled_as_replay_resamples_a_file(page, reference, tiny_bundle, tmp_path):
    """A browser at 44.1 kHz sending float32: replay of a 44.1-kHz file of the same samples."""
    samples, _ = reference
    audio = soxr.resample(samples.astype(np.float32) / 32768, 16000, 44100).astype(np.float32)
    wav = tmp_path / "browser.wav"
    sf.write(wav, audio, 44100, subtype="FLOAT")
    messages = serving(page, lambda client: stream(client, audio, rate=44100, fmt="f32"))
    assert messages[0]["rate"] == 44100
    assert_same(detections(messages), replay(wav, tiny_bundle))


def test_a_slider_changes_what_fires_on_that_connection_only(page, reference):
    samples, expected = reference

    async def body(client):
        return await asyncio.gather(stream(client, samples, thresholds={"yes": 1.0}), stream(client, samples))

    muted, plain = serving(page, body)
    assert {"type": "thresholds", "thresholds": {"yes": 1.0, "no": THRESHOLD, "up": THRESHOLD,
                                                 "stop": THRESHOLD}} in muted
    assert_same(detections(muted), [d for d in expected if d[0] != "yes"])
    assert_same(detections(plain), expected)


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
def test_a_dropped_file_gives_replays_detections(page, reference, tiny_bundle, tmp_path, suffix):
    path = tmp_path / f"spoken{suffix}"
    sf.write(path, reference[0], 16000)

    async def body(client):
        response = await client.post("/api/replay", params={"name": path.name}, data=path.read_bytes())
        assert response.status == 200, await response.text()
        return await response.json()

    result = serving(page, body)
    assert_same([(d["word"], d["time"]) for d in result["detections"]], replay(path, tiny_bundle))
    assert result["seconds"] == pytest.approx(len(reference[0]) / 16000, abs=0.1)  # MP3: its frames' padding
    assert len(result["peaks"]) <= 1000 and max(high for _, high in result["peaks"]) > 0.05


def test_a_bad_message_closes_that_connection_only(page, reference):
    samples, expected = reference

    async def bad(client, message):
        async with client.ws_connect("/ws") as ws:
            if message is not None:
                await ws.send_json({"type": "start", "rate": 16000, "format": "f32"})
                await ws.receive_json()
            await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message or "{not json"))
            error = await ws.receive_json()
            closed = await ws.receive()
            return error, closed.type

    async def body(client):
        good = asyncio.create_task(stream(client, samples))
        results = [await bad(client, m) for m in
                   (None, "[1]", '{"type": "start", "rate": 3}', '{"type": "thresholds", "thresholds": {"yes": 7}}',
                    b"\x00\x01\x02", np.full(100, np.nan, np.float32).tobytes(), '{"type": "launch"}')]
        state = await client.get("/api/state")
        return results, await good, state.status

    results, good, status = serving(page, body)
    for error, closed in results:
        assert error["type"] == "error" and error["message"] and "\n" not in error["message"], error
        assert closed in (WSMsgType.CLOSE, WSMsgType.CLOSED), closed
    assert "not JSON" in results[0][0]["message"] and "sample_rate" in results[2][0]["message"]
    assert_same(detections(good), expected)  # the other browser never noticed
    assert status == 200


def test_a_message_over_the_limit_closes_that_connection(page):
    async def body(client):
        async with client.ws_connect("/ws") as ws:
            await ws.send_json({"type": "start", "rate": 16000})
            await ws.receive_json()
            await ws.send_bytes(bytes(2 << 20))
            return await ws.receive()

    assert serving(page, body).type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.TEXT)


def test_off_localhost_a_token_guards_the_page_and_the_websocket(tiny_bundle, tmp_path):
    page = page_for(tiny_bundle, tmp_path / "models", token="s3cret")

    async def body(client):
        refused = [(await client.get(path)).status for path in ("/", "/api/state", "/static/app.js")]
        with pytest.raises(WSServerHandshakeError) as handshake:
            await client.ws_connect("/ws")
        index = await client.get("/", params={"token": "s3cret"})
        cookie = index.cookies["kws_token"]
        state = await client.get("/api/state")  # the cookie the page got with the token
        async with client.ws_connect("/ws", params={"token": "s3cret"}) as ws:
            await ws.send_json({"type": "start", "rate": 16000})
            ready = await ws.receive_json()
        wrong = await client.get("/api/state", params={"token": "guess"}, cookies={"kws_token": "guess"})
        return refused, handshake.value.status, index.status, cookie, state.status, ready, wrong.status

    refused, handshake, index, cookie, state, ready, wrong = serving(page, body)
    assert refused == [403, 403, 403] and handshake == 403 and wrong == 403
    assert index == 200 and cookie["httponly"] and cookie["samesite"] == "Strict" and state == 200
    assert ready["type"] == "ready"


def test_another_site_and_another_host_are_refused(page):
    async def body(client):
        other_site = await client.post("/api/save", headers={"Origin": "http://example.com"}, data="{}")
        rebound = await client.get("/api/state", headers={"Host": "example.com"})
        return other_site.status, rebound.status, (await rebound.json())["error"]

    other_site, rebound, message = serving(page, body)
    assert other_site == 403 and rebound == 403 and "localhost" in message


def test_uploads_and_takes_over_their_limits_are_refused(page, monkeypatch):
    page.max_upload = 1000
    monkeypatch.setattr("kws.web.server.MAX_TAKE_BYTES", 500)

    async def body(client):
        upload = await client.post("/api/replay", data=bytes(2000))
        take = await client.post("/api/takes", params={"word": "lights"}, data=bytes(600))
        return upload.status, await upload.json(), take.status

    upload, message, take = serving(page, body)
    assert upload == 413 and "1000 bytes" in message["error"] and take == 413
    assert not (page.models.folder.path / "lights.takes").exists()


def test_takes_are_kept_as_the_models_wav_and_can_be_deleted(page, tmp_path):
    take = tmp_path / "take.wav"
    sf.write(take, 0.3 * np.sin(np.arange(48000) / 10).astype(np.float32), 48000, subtype="PCM_16")
    long_take = tmp_path / "long.wav"
    sf.write(long_take, np.zeros(16000 * 11, np.float32), 16000)

    async def body(client):
        added = await (await client.post("/api/takes", params={"word": "Lights "}, data=take.read_bytes())).json()
        bad = await client.post("/api/takes", params={"word": "lights"}, data=b"not audio at all")
        long = await client.post("/api/takes", params={"word": "lights"}, data=long_take.read_bytes())
        word = await client.post("/api/takes", params={"word": "../etc"}, data=take.read_bytes())
        listed = await (await client.get("/api/takes", params={"word": "lights"})).json()
        gone = await client.delete("/api/takes", params={"word": "lights", "name": "../../x.wav"})
        deleted = await (await client.delete("/api/takes", params={"word": "lights", "name": "lights-01.wav"})).json()
        return added, (bad.status, await bad.json()), long.status, word.status, listed, gone.status, deleted

    added, bad, long, word, listed, gone, deleted = serving(page, body)
    assert added["take"] == {"name": "lights-01.wav", "seconds": 1.0}
    assert bad[0] == 400 and "not audio" in bad[1]["error"] and long == 400 and word == 400 and gone == 400
    assert [t["name"] for t in listed["takes"]] == ["lights-01.wav"] and deleted["takes"] == []
    assert sorted(p.name for p in page.models.folder.path.iterdir()) == ["lights.takes"]


def test_save_writes_a_config_for_a_model_it_did_not_make(page, reference, spoken, tiny_bundle):
    async def body(client):
        response = await client.post("/api/save", json={"model": "tiny_bundle", "thresholds": {"yes": 1.0}})
        return response.status, await response.json()

    status, saved = serving(page, body)
    target = page.models.folder.path / "tiny_bundle.yaml"
    assert status == 200 and saved["saved"] == str(target) and saved["use"] == f"kws listen --config {target}"
    config = load_config(target)
    assert config.posterior.thresholds == {"yes": 1.0, "no": THRESHOLD, "up": THRESHOLD, "stop": THRESHOLD}
    # kws replay with that config: the model and the thresholds the page chose
    result = run_kws("replay", str(spoken[2]), "--config", str(target), "--json")
    found = [(d["word"], d["time"]) for d in map(json.loads, result.stdout.splitlines()) if "word" in d]
    assert [w for w, _ in found] == [w for w, _ in reference[1] if w != "yes"]
    assert load_bundle(tiny_bundle).thresholds != {"yes": 1.0}  # the model itself untouched
    assert page.models.get("tiny_bundle").model.thresholds["yes"] == 1.0  # later connections start there


def test_save_writes_the_thresholds_of_a_bundle_of_the_folder(page):
    folder = page.models.folder.path
    folder.mkdir()
    shutil.copytree(page.models.first().model.bundle.path, folder / "mine")

    async def body(client):
        state = await (await client.get("/api/state")).json()
        response = await client.post("/api/save", json={"model": "mine", "thresholds": {"up": 0.8, "no": 0.7}})
        bad = await client.post("/api/save", json={"model": "mine", "thresholds": {"down": 0.8}})
        return state, await response.json(), (bad.status, await bad.json())

    state, saved, bad = serving(page, body)
    assert [(m["name"], m["own"]) for m in state["models"]] == [("tiny_bundle", False), ("mine", True)]
    assert saved["use"] == f"kws listen --model {folder / 'mine'}"
    assert load_bundle(folder / "mine").thresholds == {**load_bundle(page.models.first().model.bundle.path).thresholds,
                                                      "up": 0.8, "no": 0.7}
    assert bad[0] == 400 and "down" in bad[1]["error"]


def test_the_models_folder_is_never_the_shipped_models(tiny_bundle):
    from kws.errors import KwsError
    from kws.resources import packaged_model

    shipped = packaged_model().resolve()
    for folder in (shipped, shipped.parent, shipped.parent.parent, shipped.parent / "mine"):
        with pytest.raises(KwsError, match="shipped model"):
            page_for(tiny_bundle, folder)


def test_without_the_training_extras_the_page_says_so_and_the_rest_works(page, reference, monkeypatch):
    def missing(*names):
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(enrol_module, "require_extras", missing)

    async def body(client):
        state = await (await client.get("/api/state")).json()
        refused = await client.post("/api/enroll", json={"word": "lights"})
        return state, refused.status, await refused.json(), await stream(client, reference[0])

    state, status, refused, messages = serving(page, body)
    line = state["enroll"]["blocker"]
    assert "training extras" in line and "tensorflow" in line and "\n" not in line
    assert status == 400 and refused["error"] == line
    assert_same(detections(messages), reference[1])


def test_json_progress_lines_are_the_jobs_progress():
    assert enrol_module._progress('{"stage": "exporting", "done": 0.5}') == ("exporting", 0.5)
    assert enrol_module._progress("70/72 hits") is None and enrol_module._progress('{"stage": 1}') is None


def test_twenty_browsers_at_once_each_get_their_own_detections(page, reference):
    """Twenty live views at once (20 tabs), each with its own thresholds: each gets exactly the
    detections its thresholds give. (scripts/web_tabs.py measures the server's memory.)"""
    samples, expected = reference
    muted = [None, "yes", "no", "up", "stop"]

    async def body(client):
        return await asyncio.gather(*(stream(client, samples, thresholds={muted[i % 5]: 1.0} if i % 5 else None)
                                      for i in range(20)))

    for i, messages in enumerate(serving(page, body)):
        assert_same(detections(messages), [d for d in expected if d[0] != muted[i % 5]])


def test_the_command_serves_the_page_over_tls_without_the_wyoming_port(tiny_bundle, tmp_path):
    """`kws serve --http HOST:0 --tls CERT KEY`: the README's openssl line makes the pair; off
    localhost the URL printed carries the token."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj",
                    "/CN=kws", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "kws", "serve", "--http", "0.0.0.0:0", "--tls",
                               str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), "--model", str(tiny_bundle),
                               "--models", str(tmp_path / "models")], stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while "page at" not in (line := server.stderr.readline()):
            assert line, "".join(lines)
            lines.append(line)
        url = line.split("page at ")[1].split()[0]
        assert url.startswith("https://") and "?token=" in url and "serving on" not in "".join(lines)
        port, token = url.split(":")[2].split("/")[0], url.split("?token=")[1]

        async def fetch():
            import aiohttp

            async with aiohttp.ClientSession() as session:
                base = f"https://127.0.0.1:{port}"
                refused = await session.get(f"{base}/api/state", ssl=False)
                state = await session.get(f"{base}/api/state", params={"token": token}, ssl=False)
                return refused.status, state.status

        assert asyncio.run(asyncio.wait_for(fetch(), TIMEOUT)) == (403, 200)
    finally:
        server.terminate()
        server.wait(TIMEOUT)
    assert server.returncode == 0


@pytest.mark.parametrize("args, message", [
    (["--http", "nowhere"], "--http nowhere: expected [HOST:]PORT"),
    (["--tls", "a", "b"], "--tls is for the page: give --http too"),
    (["--http", "0", "--tls", "missing.pem", "missing.key"], "cannot load the certificate"),
    (["--http", "0", "--zeroconf"], "--zeroconf announces the Wyoming port"),
])
def test_bad_page_options_are_one_line(tiny_bundle, args, message):
    result = run_kws("serve", "--model", str(tiny_bundle), *args, check=False, timeout=TIMEOUT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
