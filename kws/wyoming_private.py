"""The private parts of ``wyoming`` that ``kws serve`` relies on, all of them, in one place.

``kws.serve`` uses wyoming's server, framing and event classes through their public names, and
these three things wyoming does not publish (pinned ``wyoming>=1.10,<2`` in pyproject.toml):

1. **Stopping a connection.** ``AsyncServer.stop`` ends each connection through its handler's
   ``stop``, which clears the handler's private running flag (``_is_running``) that wyoming's
   own read loop checks. ``Connection`` keeps a flag of its own, set by that same ``stop``, so
   kws's loop (``kws.serve.Handler.run``) never reads wyoming's.
2. **The bound port.** wyoming keeps its asyncio server private (``AsyncTcpServer._server``);
   the port the system chose for ``tcp://HOST:0`` is only known from its socket: ``bound_port``.
3. **Refusing an event.** ``wyoming.event.async_read_event`` returns None when reading raises
   ``ValueError`` (it catches it, as for a line that is not JSON): a reader that refuses an
   event (kws bounds each event's size) raises ``Refused``, and the connection ends as it does
   on a bad header: ``read_event``.

``tests/test_wyoming_private.py`` checks each against the installed wyoming: a release that
changes one fails there, not in a user's Home Assistant.
"""

from __future__ import annotations

import asyncio

from wyoming.event import Event, async_read_event
from wyoming.server import AsyncEventHandler, AsyncTcpServer


class Refused(ValueError):
    """Raised by a reader that will not read an event; ``read_event`` then gives None."""


async def read_event(reader) -> Event | None:
    """The next event from ``reader`` (a ``StreamReader`` or one like it), or None at the end of
    the stream, on a malformed event, or when the reader raised ``Refused``."""
    return await async_read_event(reader)


class Connection(AsyncEventHandler):
    """wyoming's per-connection handler, with whether it should go on reading (``running``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__(reader, writer)
        self.running = True

    async def stop(self) -> None:
        """Called by wyoming's ``AsyncServer.stop`` for every connection: end this one."""
        self.running = False
        await super().stop()


def bound_port(server: AsyncTcpServer) -> int:
    """The port a started ``server`` listens on (the system's choice for port 0)."""
    return server._server.sockets[0].getsockname()[1]
