"""A small asyncio TCP proxy a fault test owns: forward to a real server, cut every connection, restore.

It runs on its own event loop in a background thread, so it keeps forwarding while the test's loop (or a
synchronous test) is busy, and a cut lands in the middle of whatever the app is doing at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    """Listen on 127.0.0.1:<port> and forward each connection to (host, port) until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted in total (a test can check traffic really went through the proxy)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._refusing = False
        self._stalled = False

    def start(self) -> TcpProxy:
        """Start listening on a free port (kept across cut/restore)."""
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (as a dead server or a broken network would)."""
        self._call(self._cut())

    def stall(self) -> None:
        """Keep every connection open but forward nothing (a hung server or a black-holed network)."""
        self._stalled = True

    def restore(self) -> None:
        """Accept and forward again."""
        self._refusing = self._stalled = False

    def stop(self) -> None:
        """Close everything and stop the thread."""
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def refusing(self) -> bool:
        """True between cut() and restore()."""
        return self._refusing

    def _call(self, coro) -> None:  # noqa: ANN001 - a coroutine
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        self._refusing = True
        for writer in list(self._pipes):
            writer.transport.abort()  # RST rather than FIN: the peer sees a broken connection, not a clean close
        self._pipes.clear()

    async def _close(self) -> None:
        self._stalled = False  # let held pumps run into their aborted connections and finish
        await self._cut()
        await asyncio.sleep(0.1)
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self._stalled:  # noqa: ASYNC110 - the flag is set from another thread; polling is simplest
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._pipes.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[TcpProxy]:
    """A started proxy, stopped at the end of the block."""
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
