"""Database: Tortoise configuration, schema creation, and the connection lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.transactions import in_transaction

from models import MODEL_MODULES

if TYPE_CHECKING:
    from echain.migrations import Outcome


async def _keep_session(connection: Any) -> None:
    """What the PostgreSQL pool runs when a connection comes back, instead of asyncpg's reset query.

    asyncpg's default sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;` on every
    release — a round trip after every query outside a transaction (bench/api.py counted 5 of the list endpoint's
    10 statements). We keep no session state: no session-level advisory locks (migrations take
    pg_advisory_xact_lock), cursors, LISTEN or SET. asyncpg still rolls back a transaction left open before this
    runs (Connection._reset).
    """


def _connection(database_url: str) -> str | dict[str, Any]:
    """The URL as is, or for PostgreSQL its expanded form with the pool's release hook."""
    if not database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return database_url
    config = expand_db_url(database_url)
    config["credentials"]["reset"] = _keep_session
    return config


def orm_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config for one database URL."""
    return {
        "connections": {"default": _connection(database_url)},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def _ensure_sqlite_dir(database_url: str) -> None:
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://").split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def connect(database_url: str) -> None:
    """Open the ORM for this process (global context: handlers run in other tasks)."""
    _ensure_sqlite_dir(database_url)
    # Tortoise caches each model's INSERT/UPDATE SQL keyed by connection name and table, not by dialect: a process
    # that opens SQLite and later PostgreSQL (the test suite runs the demo on SQLite) would reuse "?" placeholders
    # on PostgreSQL. Start every connection with an empty cache.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=orm_config(database_url), _enable_global_fallback=True)


async def disconnect() -> None:
    """Close every connection the ORM holds."""
    await Tortoise.close_connections()


async def migrate() -> Outcome:
    """Apply the pending migration files (models/migrations/) and create the ledger's head row (idempotent)."""
    from echain.migrations import migrate as apply_migrations

    return await apply_migrations()


async def create_schema() -> None:
    """Build the models' schema directly, without migration records: only for throw-away test databases.

    Applying the migration files costs about a second per fresh database (tortoise re-renders its model state
    for every operation); generate_schemas takes milliseconds. tests/test_migrations.py proves both give the same
    schema, so the per-test fixture uses this path.
    """
    from workflow.ledger import ensure_head  # the domain needs the ORM open first

    await Tortoise.generate_schemas(safe=True)
    await ensure_head()


@asynccontextmanager
async def database(database_url: str) -> AsyncIterator[None]:
    """Connected for the duration of the block."""
    await connect(database_url)
    try:
        yield
    finally:
        await disconnect()


async def ping() -> None:
    """Run a trivial query; raises when the database cannot be reached."""
    async with in_transaction() as conn:
        await conn.execute_query("SELECT 1")
