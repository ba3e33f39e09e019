"""Database: Tortoise configuration, schema creation, and the connection lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.transactions import in_transaction

from models import MODEL_MODULES

if TYPE_CHECKING:
    from echain.migrations import Outcome


def orm_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config for one database URL."""
    return {
        "connections": {"default": database_url},
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
