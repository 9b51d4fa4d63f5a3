"""The page's HTTP and WebSocket server (aiohttp), on the event loop of ``kws serve``.

Routes (JSON in and out; a request kws cannot serve gets ``{"error": one line}`` and a 4xx,
and the server goes on)::

    GET    /                    the page (static/index.html; static/ holds its JS and CSS)
    GET    /api/state           models offered (words, thresholds), enrolment, limits
    GET    /ws                  the live view (kws.web.live: one detector per connection)
    POST   /api/replay?model=M&name=FILE&thresholds={...}
                                a dropped file (the body): detections as kws replay finds them
    POST   /api/save            {"model", "thresholds"}: where listen/replay/serve use them
    GET|POST|DELETE /api/takes?word=W[&name=N]
                                the takes of a word: list, add one (the body, a WAV), delete one
    GET|POST|DELETE /api/enroll {"word", "budget"}: start, follow, cancel ``kws enroll``

Safety, for a server a phone on the LAN can reach:

- bound to localhost unless ``--http`` names another address; there, an access token
  (random, printed in the URL at start, as Jupyter does) is required by every route and the
  WebSocket (``?token=`` or the cookie the page gets with it); on localhost the Host header
  must name localhost (no DNS rebinding), and any request with an ``Origin`` must come from
  the page itself (no other site drives it from the user's browser);
- ``--tls CERT KEY``: https and wss, which browsers require for a microphone off localhost;
- sizes bounded: a WebSocket message ``MAX_MESSAGE_BYTES``, a dropped file
  ``MAX_UPLOAD_BYTES``, a take ``kws.web.enrol.MAX_TAKE_BYTES``;
- writes only in the models folder (``kws.web.models.Folder``); a dropped file lives in a
  temporary folder while it is replayed, and goes with it;
- a bad message closes that WebSocket only; a failing request answers its one line; each
  browser gets its own detector.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from kws.config import Config
from kws.errors import KwsError
from kws.resources import packaged_model
from kws.serve import Model, ProtocolError
from kws.web.enrol import MAX_TAKE_BYTES, MAX_TAKE_SECONDS, Enrolments, Takes, blocker
from kws.web.live import Live
from kws.web.models import Folder, Models, PageError
from kws.web.replay import replay_file

log = logging.getLogger("kws.web")

STATIC = Path(__file__).parent / "static"
MAX_MESSAGE_BYTES = 1 << 20  # one WebSocket message: 5 s of 48-kHz float32 audio
MAX_UPLOAD_BYTES = 64 << 20  # a dropped file: an hour of 16-kHz 16-bit WAV, hours of MP3
SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif", ".au"}  # a dropped file's name keeps these
COOKIE = "kws_token"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


@dataclass
class Page:
    """What every request shares."""

    models: Models
    takes: Takes
    enrolments: Enrolments
    token: str | None  # None: localhost only, no token
    max_upload: int = MAX_UPLOAD_BYTES

    def __post_init__(self):
        self.replays = asyncio.Semaphore(2)  # files replayed at once, each on a thread


PAGE = web.AppKey("page", Page)


def make_page(config: Config, served: list[Model], folder: str | Path, token: str | None = None,
              config_file: str | None = None, **enrol) -> Page:
    """The page's state for the models ``served`` (``kws.serve.load_models``), writing in
    ``folder``; ``enrol``: ``Enrolments``' ``cwd`` and ``extra``."""
    where = Folder(folder, packaged_model() or config.model_path)
    takes = Takes(where, config.audio.sample_rate)
    return Page(Models(config, served, where), takes, Enrolments(where, takes, config, config_file, **enrol), token)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_http(text: str) -> tuple[str, int]:
    """``--http``'s ``[HOST:]PORT`` (``[::1]:PORT`` for IPv6); ``KwsError`` otherwise."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise KwsError(f"--http {text}: expected [HOST:]PORT, e.g. 127.0.0.1:10401")
    return host, int(port)


def tls_context(tls: list[str] | None) -> ssl.SSLContext | None:
    """The server's TLS context from ``--tls CERT KEY``; ``KwsError`` in one line if they do
    not load (README: one openssl command makes a self-signed pair)."""
    if not tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls[0], tls[1])
    except (OSError, ssl.SSLError) as err:
        raise KwsError(f"--tls {tls[0]} {tls[1]}: cannot load the certificate and key "
                       f"({getattr(err, 'strerror', None) or err})") from None
    return context


def make_app(page: Page) -> web.Application:
    app = web.Application(client_max_size=page.max_upload, middlewares=[_errors, _guard(page)])
    app[PAGE] = page
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/ws", _live)
    app.router.add_get("/api/state", _state)
    app.router.add_post("/api/replay", _replay)
    app.router.add_post("/api/save", _save)
    app.router.add_get("/api/takes", _takes)
    app.router.add_post("/api/takes", _add_take)
    app.router.add_delete("/api/takes", _remove_take)
    app.router.add_get("/api/enroll", _job)
    app.router.add_post("/api/enroll", _enroll)
    app.router.add_delete("/api/enroll", _cancel)
    app.on_shutdown.append(_shutdown)
    return app


# -- guards -----------------------------------------------------------------------------------

def _guard(page: Page):
    @web.middleware
    async def guard(request: web.Request, handler):
        if page.token is None:
            if not is_loopback(urlsplit(f"//{request.host}").hostname or ""):
                return _refuse(403, f"host {request.host[:80]!r} is not this machine's: open the page on localhost")
        elif not any(secrets.compare_digest(given.encode(), page.token.encode())
                     for given in (request.query.get("token", ""), request.cookies.get(COOKIE, ""))):
            return _refuse(403, "an access token is required: open the URL kws serve printed at start")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return _refuse(403, f"requests from {origin[:80]!r} are refused: only the page itself may ask")
        response = await handler(request)
        if page.token is not None and request.path == "/" and request.cookies.get(COOKIE) != page.token:
            response.set_cookie(COOKIE, page.token, httponly=True, samesite="Strict", secure=request.secure)
        return response

    return guard


@web.middleware
async def _errors(request: web.Request, handler):
    """A request kws cannot serve answers one line; nothing a client sends stops the server."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except TooLarge as err:
        return _refuse(413, str(err))
    except KwsError as err:  # PageError, a bad threshold, an unreadable file...
        return _refuse(400, str(err))
    except Exception as err:  # noqa: BLE001 - one request fails, the server goes on
        log.warning("%s %s: %s: %.200s", request.method, request.path, type(err).__name__, err)
        return _refuse(500, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


class TooLarge(PageError):
    """A body over its limit."""


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request, limit: int, what: str) -> bytes:
    """The request's body, refused (``TooLarge``) as soon as it passes ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"{what} of {request.content_length} bytes: at most {limit} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"{what} over {limit} bytes")
    return bytes(data)


async def _json(request: web.Request) -> dict:
    return _object(await _body(request, 1 << 16, "a request"), "the request's body")


def _object(text: str | bytes, what: str) -> dict:
    """``text`` as a JSON object, else ``PageError`` naming ``what``."""
    try:
        value = json.loads(text)
    except ValueError:
        raise PageError(f"{what}: not JSON") from None
    if not isinstance(value, dict):
        raise PageError(f"{what}: a JSON object is expected")
    return value


# -- the page ----------------------------------------------------------------------------------

async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={
        "Cache-Control": "no-cache",
        # Nothing from elsewhere: the page works offline, and injected content could not load any.
        "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                                   "img-src 'self' data: blob:; media-src 'self' blob:"})


async def _state(request: web.Request) -> web.Response:
    page: Page = request.app[PAGE]
    models = [{"name": o.name, "words": o.model.bundle.words, "thresholds": o.model.thresholds,
               "path": str(o.model.bundle.path), "own": o.own} for o in page.models.offered()]
    return web.json_response({
        "models": models, "folder": str(page.models.folder.path),
        "enroll": {"blocker": blocker(), "job": page.enrolments.status()},
        "limits": {"upload_bytes": page.max_upload, "take_bytes": MAX_TAKE_BYTES,
                   "take_seconds": MAX_TAKE_SECONDS}})


async def _live(request: web.Request) -> web.WebSocketResponse:
    """One browser's live view (``kws.web.live``); whatever goes wrong closes this one only."""
    page: Page = request.app[PAGE]
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30)
    await ws.prepare(request)
    session = Live(page.models)
    peer = request.remote or "a browser"
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                try:
                    data = json.loads(message.data)
                except ValueError:
                    raise ProtocolError(f"not JSON: {message.data[:80]!r}") from None
                for reply in session.message(data):
                    await ws.send_json(reply)
            elif message.type == WSMsgType.BINARY:
                for piece in session.slices(message.data):
                    for reply in session.feed(piece):
                        await ws.send_json(reply)
                    await asyncio.sleep(0)  # the other connections' turn
            elif message.type == WSMsgType.ERROR:  # e.g. a message over MAX_MESSAGE_BYTES
                raise ProtocolError(f"{ws.exception() or 'a broken message'}")
    except (ConnectionError, asyncio.CancelledError):
        pass
    except Exception as err:  # noqa: BLE001 - a bad message closes this connection, never the server
        reason = str(err) if isinstance(err, KwsError) else f"{type(err).__name__}: {err}"
        reason = reason.split("\n")[0][:300]
        log.warning("%s: live view closed: %s", peer, reason)
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", "message": reason})
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason[:120].encode())
    return ws


async def _replay(request: web.Request) -> web.Response:
    page: Page = request.app[PAGE]
    offered = page.models.get(request.query["model"]) if "model" in request.query else page.models.first()
    thresholds = _thresholds(request.query.get("thresholds"))
    suffix = Path(request.query.get("name", "")).suffix.lower()
    data = await _body(request, page.max_upload, "a file")
    if not data:
        raise PageError("the file is empty")
    async with page.replays:
        with tempfile.TemporaryDirectory(prefix="kws-page-") as folder:
            path = Path(folder) / f"dropped{suffix if suffix in SUFFIXES else ''}"
            path.write_bytes(data)
            result = await asyncio.to_thread(replay_file, path, offered.model, thresholds)
    return web.json_response({"model": offered.name, **result})


def _thresholds(text: str | None) -> dict | None:
    return _object(text, "thresholds") if text else None


async def _save(request: web.Request) -> web.Response:
    data = await _json(request)
    thresholds = data.get("thresholds")
    if not isinstance(thresholds, dict) or not thresholds:
        raise PageError("save: thresholds, an object of word: threshold, is expected")
    return web.json_response(request.app[PAGE].models.save(data.get("model"), thresholds))


def _word(request: web.Request) -> str:
    return request.app[PAGE].models.folder.word(request.query.get("word", ""))


async def _takes(request: web.Request) -> web.Response:
    word = _word(request)
    return web.json_response({"word": word, "takes": request.app[PAGE].takes.list(word)})


async def _add_take(request: web.Request) -> web.Response:
    page: Page = request.app[PAGE]
    word = _word(request)
    take = page.takes.add(word, await _body(request, MAX_TAKE_BYTES, "a take"))
    return web.json_response({"word": word, "take": take, "takes": page.takes.list(word)})


async def _remove_take(request: web.Request) -> web.Response:
    page: Page = request.app[PAGE]
    word = _word(request)
    page.takes.remove(word, request.query.get("name"))
    return web.json_response({"word": word, "takes": page.takes.list(word)})


async def _job(request: web.Request) -> web.Response:
    return web.json_response({"job": request.app[PAGE].enrolments.status()})


async def _enroll(request: web.Request) -> web.Response:
    page: Page = request.app[PAGE]
    data = await _json(request)
    job = await page.enrolments.start(page.models.folder.word(data.get("word", "")), data.get("budget", "normal"))
    return web.json_response({"job": job.status()})


async def _cancel(request: web.Request) -> web.Response:
    page: Page = request.app[PAGE]
    page.enrolments.cancel()
    return web.json_response({"job": page.enrolments.status()})


async def _shutdown(app: web.Application) -> None:
    await app[PAGE].enrolments.close()


# -- serving -----------------------------------------------------------------------------------

async def start(page: Page, http: str, tls: list[str] | None = None) -> tuple[web.AppRunner, str]:
    """Serve the page at ``http`` (``[HOST:]PORT``; port 0: any free one); return the runner
    (``await runner.cleanup()`` stops it) and the URL to open, with the token if one is needed."""
    host, port = parse_http(http)
    context = tls_context(tls)
    runner = web.AppRunner(make_app(page), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise KwsError(f"--http {http}: cannot listen there ({err.strerror or err})") from None
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = _lan_address()
    query = f"?token={page.token}" if page.token else ""
    return runner, f"{'https' if context else 'http'}://{shown}:{site.port}/{query}"


def new_token(host: str) -> str | None:
    """A fresh access token where the page is reachable from other machines, else None."""
    return None if is_loopback(host) else secrets.token_urlsafe(16)


def _lan_address() -> str:
    """This machine's address on the network (the one its default route uses); no packet is
    sent. ``localhost`` when there is no network."""
    import socket

    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routed by the default route, never reached
            return sock.getsockname()[0]
        except OSError:
            return "localhost"


def serve_forever(page: Page, http: str, tls: list[str] | None, service=None, uri: str | None = None,
                  zeroconf: str | None = None, on_ready=None) -> None:
    """Serve the page, and the Wyoming service at ``uri`` beside it if given, on one event
    loop until Ctrl-C or SIGTERM; ``on_ready(page_url, wyoming_uri)`` once both listen."""
    asyncio.run(_serve(page, http, tls, service, uri, zeroconf, on_ready))


async def _serve(page, http, tls, service, uri, zeroconf, on_ready) -> None:
    import signal

    from kws import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    wyoming, bound = (await serve.start(service, uri, zeroconf)) if uri else (None, None)
    try:
        runner, url = await start(page, http, tls)
        try:
            if on_ready is not None:
                on_ready(url, bound)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        if wyoming is not None:
            await wyoming.stop()
