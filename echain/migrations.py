"""Versioned schema migrations: apply the files in models/migrations/, adopt old databases, write new files.

Built on tortoise-orm's own migrations (tortoise.migrations, new in 1.x: Django-style autodetector, writer,
executor, recorder) rather than aerich: it ships with the ORM we pin (no new dependency), aerich's own README
now points tortoise-orm >= 1.0 users to it, it reads the models exactly as the ORM does, and the files it writes
are plain Python operations (CreateModel, AddField, ...) rendered per dialect at apply time, so one set of files
serves SQLite and PostgreSQL. What we add around it: one lock and one transaction for the whole run, adoption of
databases made by the old `generate_schemas` path, a fixed SQLite statement splitter, and a check for CI.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor
from tortoise.migrations.graph import MigrationKey
from tortoise.migrations.loader import MigrationLoader
from tortoise.migrations.migration import Migration
from tortoise.migrations.operations import CreateModel
from tortoise.migrations.recorder import MigrationRecorder
from tortoise.migrations.schema_editor import AsyncpgSchemaEditor, SqliteSchemaEditor
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.writer import format_migration_name
from tortoise.transactions import in_transaction

from echain import dbschema
from models import MODEL_MODULES

APP = "models"
MIGRATIONS_MODULE = "models.migrations"
# Any constant works: it only has to be the same in every process that migrates this database.
PG_LOCK_KEY = 0x6563_6861_696E  # "echain"
_PG_PROBE_SCHEMA = "echain_migration_probe"
_SQLITE_LOCK_WAIT = 120.0  # seconds another process may hold the migration lock before we give up


class MigrationError(Exception):
    """The database cannot be migrated as it stands (message for the operator, in Chinese)."""


@dataclass
class Outcome:
    """What one `migrate()` run did."""

    applied: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # recorded as applied without running (fake-initial)


def apps_config(migrations_module: str = MIGRATIONS_MODULE) -> dict[str, dict[str, Any]]:
    """The ORM app with its migrations package (the same app the runtime config registers)."""
    return {APP: {"models": MODEL_MODULES, "default_connection": "default", "migrations": migrations_module}}


class _IndexColumns:
    # tortoise 1.1.9's migration editors take the names in a Meta.indexes entry as column names, so
    # `indexes = (("enterprise", "agent", "status"),)` became an index on the *string* 'enterprise' on SQLite and
    # an error on PostgreSQL. generate_schemas resolved a relation to its column ("enterprise_id") and named the
    # index after the columns: do the same, so an adopted database's index names match what a later migration drops.
    def _get_index_sql(self, model, field_names, safe=False, index_name=None, index_type=None, extra=None):
        columns = self._resolve_fields_to_columns(model, list(field_names))
        return super()._get_index_sql(model, columns, safe, index_name=index_name, index_type=index_type, extra=extra)

    def _index_name_for_model(self, model, index) -> str:
        if index.name:
            return index.name
        index.resolve_expressions(model)
        return self._generate_index_name("idx", model, self._resolve_fields_to_columns(model, list(index.field_names)))


class _PostgresEditor(_IndexColumns, AsyncpgSchemaEditor):
    pass


class _SqliteEditor(_IndexColumns, SqliteSchemaEditor):
    # tortoise 1.1.9 splits a SQLite script on every ";" when it runs inside a transaction, including the ";"
    # inside the /* table comment */ it renders from a model's docstring ("the chain's tip; appends ...") and
    # fails with a syntax error. Split only where SQLite itself says a statement is complete.
    async def _run_sql(self, sql: str) -> None:
        if self.collect_sql or not self.atomic_migration:
            await super()._run_sql(sql)
            return
        for statement in split_sqlite(sql):
            await self.client.execute_query(statement)


def split_sqlite(script: str) -> list[str]:
    """A SQLite script's statements, never cut inside a comment, string or identifier."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        statements.append(pending.strip().removesuffix(";"))
    return statements


class _Executor(MigrationExecutor):
    def _schema_editor(self, atomic: bool = True, collect_sql: bool = False) -> BaseSchemaEditor:
        editor = super()._schema_editor(atomic=atomic, collect_sql=collect_sql)
        fixed = {SqliteSchemaEditor: _SqliteEditor, AsyncpgSchemaEditor: _PostgresEditor}.get(type(editor))
        return fixed(self.connection, atomic=atomic, collect_sql=collect_sql) if fixed else editor


class _NoRecords(MigrationRecorder):
    # The graph is built before the lock is taken: reading applied migrations then would be stale anyway (and on
    # PostgreSQL a failed read inside our transaction would abort it).
    def __init__(self) -> None:
        super().__init__(connection=None)

    async def applied_migrations(self) -> list[MigrationKey]:
        return []


async def _executor(connection: BaseDBAsyncClient, migrations_module: str) -> _Executor:
    executor = _Executor(connection, apps_config(migrations_module))
    executor.loader = MigrationLoader(executor.loader.apps_config, _NoRecords())
    await executor.loader.build_graph()
    return executor


async def migrate(*, migrations_module: str = MIGRATIONS_MODULE, target: str | None = None) -> Outcome:
    """Apply every pending migration (up to `target`, a migration name) under one lock, in one transaction."""
    from workflow.ledger import ensure_head  # the domain needs the ORM open first

    connection = Tortoise.get_connection("default")
    executor = await _executor(connection, migrations_module)
    plan = executor._full_plan()
    if target is not None:
        names = [key.name for key in plan]
        if target not in names:
            raise MigrationError(f"没有名为 {target} 的迁移")
        plan = plan[: names.index(target) + 1]
    outcome = Outcome()
    async with _locked_transaction(connection) as txn:
        recorder = MigrationRecorder(txn)
        await _ensure_recorder_table(recorder, _editor(executor, txn, atomic=True))
        applied = {key for key in await recorder.applied_migrations() if key.app_label == APP}
        if not applied and await _has_model_tables(executor, txn, plan):
            for key in await _adoptable(executor, txn, plan):
                await recorder.record_applied(key.app_label, key.name)
                applied.add(key)
                outcome.adopted.append(key.name)
        state = await executor._project_state(applied)
        for key in plan:
            if key in applied:
                continue
            # apply() advances `state` in place: it is the schema every later migration starts from.
            state = await _migration(executor, key).apply(state, schema_editor=_editor(executor, txn, atomic=True))
            # Recorded in the same transaction: a crash can never leave a migration applied but unrecorded.
            await recorder.record_applied(key.app_label, key.name)
            applied.add(key)
            outcome.applied.append(key.name)
        await ensure_head(txn)
    return outcome


async def _ensure_recorder_table(recorder: MigrationRecorder, editor: BaseSchemaEditor) -> None:
    # Not recorder.ensure_schema(): it runs execute_script, and Python's sqlite3 executescript() COMMITs first,
    # which would end our locked transaction on SQLite before anything was applied.
    sql = editor._get_model_sql_data(recorder.model).table_sql.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)
    await editor._run_sql(sql)


def _editor(executor: _Executor, txn: BaseDBAsyncClient, *, atomic: bool) -> BaseSchemaEditor:
    editor = executor._schema_editor(atomic=atomic)
    editor.client = txn
    return editor


def _migration(executor: _Executor, key: MigrationKey) -> Migration:
    migration = executor.loader.graph.nodes[key]
    if not isinstance(migration, Migration):
        raise MigrationError(f"缺少迁移文件 {key.app_label}.{key.name}")
    return migration


@asynccontextmanager
async def _locked_transaction(connection: BaseDBAsyncClient) -> AsyncIterator[BaseDBAsyncClient]:
    """One transaction that only one process at a time can be in, whichever database it is."""
    if connection.capabilities.dialect == "postgres":
        async with in_transaction(connection.connection_name) as txn:
            # Transaction-scoped: released by the commit or rollback, even if this process dies.
            await txn.execute_query(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            yield txn
        return
    async with in_transaction(connection.connection_name) as txn:
        # Tortoise opens SQLite transactions DEFERRED: two migrators could both read "nothing applied" and both
        # apply. Swap the still-empty transaction for an IMMEDIATE one, which takes the write lock now and waits
        # (busy timeout) while another process holds it.
        (row,) = await txn.execute_query_dict("PRAGMA busy_timeout")
        await txn.execute_query(f"PRAGMA busy_timeout = {int(_SQLITE_LOCK_WAIT * 1000)}")
        try:
            await txn.execute_query("COMMIT")
            await txn.execute_query("BEGIN IMMEDIATE")
        finally:
            await txn.execute_query(f"PRAGMA busy_timeout = {int(next(iter(row.values())))}")
        yield txn


async def _has_model_tables(executor: _Executor, txn: BaseDBAsyncClient, plan: list[MigrationKey]) -> bool:
    """True when tables the migrations create already exist: a database made by the old generate_schemas path."""
    # Table names straight from the CreateModel operations: rendering the migration state costs ~0.5 s.
    tables = {
        op.options.get("table") or op.name.lower()
        for key in plan
        for op in _migration(executor, key).operations
        if isinstance(op, CreateModel)
    }
    existing = await dbschema.describe(_fetch(txn), txn.capabilities.dialect)
    return bool(tables & set(existing))


async def _adoptable(executor: _Executor, txn: BaseDBAsyncClient, plan: list[MigrationKey]) -> list[MigrationKey]:
    """The longest run of migrations whose result equals the existing schema; refuse when even the first differs.

    The migrations are applied for real to a scratch database (PostgreSQL: a schema inside this transaction, rolled
    back; SQLite: an in-memory database) and both are read back the same way, so "equal" means equal as stored.
    """
    dialect = txn.capabilities.dialect
    existing = await dbschema.describe(_fetch(txn), dialect)
    matched, first_diff = 0, []
    async with _scratch(executor, txn) as (scratch, describe_scratch):
        state = await executor._project_state(set())
        for count, key in enumerate(plan, start=1):
            editor = executor._schema_editor(atomic=True)
            editor.client = scratch
            state = await _migration(executor, key).apply(state, schema_editor=editor)
            expected = await describe_scratch()
            diff = dbschema.differences(expected, existing, only=set(expected))
            if not diff:
                matched = count
            elif count == 1:
                first_diff = diff
    if not matched:
        details = "\n".join(f"  - {line}" for line in first_diff[:30])
        raise MigrationError(
            f"数据库中已有数据表，但没有迁移记录，且现有结构与 {plan[0].name} 不一致，无法自动接管。"
            f"请先按以下差异手工修正数据库（或从备份恢复）后再运行 echain migrate：\n{details}"
        )
    return plan[:matched]


@asynccontextmanager
async def _scratch(executor: _Executor, txn: BaseDBAsyncClient) -> AsyncIterator[tuple[BaseDBAsyncClient, Any]]:
    if txn.capabilities.dialect == "postgres":
        # Read the real schema first (done by the caller): while search_path names the probe, PostgreSQL prints
        # the real tables' sequence defaults schema-qualified.
        await txn.execute_script(
            f'SAVEPOINT echain_probe; CREATE SCHEMA "{_PG_PROBE_SCHEMA}"; SET LOCAL search_path TO "{_PG_PROBE_SCHEMA}";'
        )
        try:
            yield txn, lambda: dbschema.describe(_fetch(txn), "postgres", pg_schema=_PG_PROBE_SCHEMA)
        finally:
            await txn.execute_script("ROLLBACK TO SAVEPOINT echain_probe; RELEASE SAVEPOINT echain_probe;")
        return
    from tortoise.backends.sqlite import SqliteClient

    scratch = SqliteClient(":memory:", connection_name="echain_migration_probe")
    await scratch.create_connection(with_db=True)
    try:
        yield scratch, lambda: dbschema.describe(_fetch(scratch), "sqlite")
    finally:
        await scratch.close()


def _fetch(client: BaseDBAsyncClient) -> dbschema.Fetch:
    async def fetch(sql: str, values: list[Any]) -> list[dict[str, Any]]:
        return await client.execute_query_dict(sql, values or None)

    return fetch


@asynccontextmanager
async def models_loaded() -> AsyncIterator[None]:
    """The ORM's models registered without opening any database (enough for makemigrations and --check)."""
    from echain.db import orm_config

    await Tortoise.init(config=orm_config("sqlite://:memory:"), init_connections=False)
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def pending_changes(migrations_module: str = MIGRATIONS_MODULE) -> list[str]:
    """Model changes no migration file covers yet, one line per operation (empty: files and models agree)."""
    writers = await MigrationAutodetector(Tortoise.apps, apps_config(migrations_module)).changes()
    return [f"{writer.name}: {op.describe()}" for writer in writers for op in writer.operations]


async def make_migrations(name: str | None = None, migrations_module: str = MIGRATIONS_MODULE) -> list[Path]:
    """Write the next migration file(s) from the model changes; returns the files written (none: no changes)."""
    writers = await MigrationAutodetector(Tortoise.apps, apps_config(migrations_module)).changes()
    paths = []
    for writer in writers:
        if name:
            writer.name = format_migration_name(int(writer.name.split("_", 1)[0]), name)
        path = writer.path()
        path.write_text(_HEADER.format(name=writer.name) + writer.as_string(), encoding="utf-8")
        paths.append(path)
    return paths


_HEADER = (
    '"""Migration {name}: written by `echain makemigrations` from the models (add data steps with RunPython)."""\n'
    "# ruff: noqa: I001 - import order as tortoise's writer emits it\n\n"
)


async def applied_names(connection: BaseDBAsyncClient | None = None) -> list[str]:
    """Names of the migrations recorded in this database, in the order they were applied."""
    connection = connection or Tortoise.get_connection("default")
    return [key.name for key in await MigrationRecorder(connection).applied_migrations() if key.app_label == APP]

