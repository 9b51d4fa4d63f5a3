"""What ``kws.wyoming_private`` assumes of the installed ``wyoming`` (pinned ``>=1.10,<2``): a
release that changes any of it fails here, each test naming the part."""

from __future__ import annotations

import asyncio
import json

from wyoming.server import AsyncTcpServer

from kws.wyoming_private import Connection, Refused, bound_port, read_event

TIMEOUT = 60.0  # seconds; never reached when things work


class Script:
    """A reader as ``read_event`` reads one: ``readline`` then ``readexactly``, from ``lines``
    (bytes, or an exception to raise)."""

    def __init__(self, *lines):
        self.lines = list(lines)

    async def _next(self):
        item = self.lines.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def readline(self):
        return await self._next()

    async def readexactly(self, n):
        return await self._next()


def test_a_reader_refusing_an_event_ends_the_stream():
    header = json.dumps({"type": "audio-chunk", "payload_length": 10**9}).encode() + b"\n"
    assert asyncio.run(read_event(Script(header, Refused(10**9)))) is None
    assert asyncio.run(read_event(Script(ValueError("line over the reader's limit")))) is None
    # ... and only then: an event read whole is an event.
    good = json.dumps({"type": "ping", "data": {"text": "x"}}).encode() + b"\n"
    assert asyncio.run(read_event(Script(good))).type == "ping"


def test_the_bound_port_and_stopping_every_connection():
    async def main():
        up, done, stopped = asyncio.Event(), asyncio.Event(), []

        class Recorded(Connection):
            async def handle_event(self, event):
                return True

            async def run(self):
                up.set()
                while self.running and await read_event(self.reader) is not None:
                    pass
                stopped.append(self.running)
                done.set()

        server = AsyncTcpServer("127.0.0.1", 0)
        await server.start(Recorded)
        port = bound_port(server)  # the system's choice for port 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await up.wait()  # the connection is being served
        await server.stop()  # wyoming calls each connection's stop...
        end = await reader.read()  # ... which closes it
        writer.close()
        await done.wait()
        return port, end, stopped

    port, end, stopped = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert port > 0 and end == b""
    assert stopped == [False]  # its loop ended because stop said so
