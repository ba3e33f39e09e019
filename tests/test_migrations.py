"""Versioned migrations: the files build exactly the models' schema, upgrades keep rows, old databases are adopted.

Runs on the suite's database: PostgreSQL when ECHAIN_TEST_DATABASE_URL is set (CI's second run), else SQLite.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from tortoise import Tortoise

from echain import db, dbschema, migrations
from echain.settings import Settings
from tests.support.cli import run_cli

PG_URL = os.environ.get("ECHAIN_TEST_DATABASE_URL", "")
ON_PG = PG_URL.startswith("postgres")
MIGRATIONS_DIR = Path(migrations.__file__).resolve().parents[1] / "models" / "migrations"
FILES = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))

# The unique constraints the money-safety rules stand on (README "Safety") and the composite index of the powers
# of attorney: stated here so that a migration tool dropping them fails even if generate_schemas dropped them too.
REQUIRED_INDEXES = {
    "signatures": (("financing_id", "contract_version", "party"), True),
    "financed_invoices": (("supplier_id", "invoice_no"), True),
    "financing_approvals": (("financing_id", "approver_id", "decision"), True),
    "allocations": (("financing_id", "funder_id"), True),
    "contracts": (("financing_id", "version"), True),
    "notifications": (("subject", "version", "user_id"), True),
    "ledger_entries": (("prev_hash",), True),
    "powers_of_attorney": (("enterprise_id", "agent_id", "status"), False),
}


class Databases:
    """Empty databases one after another: new SQLite files, or the one PostgreSQL database wiped."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path, self.count = tmp_path, 0

    def next_url(self) -> str:
        """The URL of an empty database (PostgreSQL: wiped when `fresh` connects)."""
        self.count += 1
        return PG_URL if ON_PG else f"sqlite://{self.tmp_path / f'db{self.count}.sqlite3'}"

    @asynccontextmanager
    async def fresh(self, url: str | None = None) -> AsyncIterator[str]:
        """Connected to an empty database."""
        url = url or self.next_url()
        async with db.database(url):
            if ON_PG:
                await _conn().execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            yield url


@pytest.fixture
def databases(tmp_path: Path) -> Databases:
    return Databases(tmp_path)


def _conn():  # noqa: ANN202
    return Tortoise.get_connection("default")


async def _schema() -> dbschema.Schema:
    conn = _conn()
    return await dbschema.describe(lambda sql, values: conn.execute_query_dict(sql, values or None),
                                   conn.capabilities.dialect)


async def _rows(sql: str) -> list[dict]:
    return await _conn().execute_query_dict(sql)


@contextmanager
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[str]) -> Iterator[tuple[str, Path]]:
    """A migrations package under tmp_path holding copies of the given real migration files."""
    name = f"echain_migtest_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for stem in files:
        shutil.copy(MIGRATIONS_DIR / f"{stem}.py", package / f"{stem}.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield name, package
    finally:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


def test_the_migration_files_are_numbered_in_order():
    assert FILES and FILES[0] == "0001_initial"
    assert [int(f[:4]) for f in FILES] == list(range(1, len(FILES) + 1))


async def test_migrations_build_exactly_the_models_schema(databases: Databases):
    """No drift: the migration files and generate_schemas give the same tables, columns, indexes and keys."""
    async with databases.fresh():
        outcome = await db.migrate()
        assert outcome.applied == FILES and outcome.adopted == []
        migrated = await _schema()
        assert await migrations.applied_names() == FILES
        assert (await _rows("SELECT seq FROM ledger_head")) == [{"seq": 0}]  # migrate ends with ensure_head
        again = await db.migrate()
        assert again.applied == [] and again.adopted == []
        assert await migrations.applied_names() == FILES
    async with databases.fresh():
        await db.create_schema()
        generated = await _schema()
    assert dbschema.differences(generated, migrated) == []
    assert len(migrated) >= 26
    for table, index in REQUIRED_INDEXES.items():
        assert index in migrated[table].indexes, f"{table} lacks {index}"
    assert migrated["users"].columns["openid"].not_null and not migrated["users"].columns["unionid"].not_null


async def test_models_have_no_changes_without_a_migration():
    """What `echain migrate --check` runs in CI: the autodetector finds nothing to write."""
    async with migrations.models_loaded():
        assert await migrations.pending_changes() == []


async def test_the_check_notices_a_model_change_and_makemigrations_writes_it(tmp_path, monkeypatch):
    """With the newest file missing, --check reports the change and makemigrations writes the next file."""
    with migrations_copy(tmp_path, monkeypatch, FILES[:-1]) as (module, package):
        async with migrations.models_loaded():
            changes = await migrations.pending_changes(module)
            assert changes and all(line.startswith(f"{len(FILES):04d}_") for line in changes)
            if len(FILES) == 1:
                assert any("Create model User" in line for line in changes)
            paths = await migrations.make_migrations("recreated", module)
            assert [p.name for p in paths] == [f"{len(FILES):04d}_recreated.py"]
            assert paths[0].parent == package
            assert await migrations.pending_changes(module) == []
        assert "echain makemigrations" in paths[0].read_text()


async def test_a_legacy_database_is_adopted_and_keeps_its_rows(databases: Databases):
    """A database built by the old generate_schemas path: migrate records the migrations without running them."""
    async with databases.fresh():
        await db.create_schema()
        await _conn().execute_script(
            "INSERT INTO users (openid, display_name, is_platform_operator, created_at)"
            " VALUES ('legacy-a', '老用户甲', TRUE, '2025-01-02 03:04:05+00:00'),"
            " ('legacy-b', '老用户乙', FALSE, '2025-01-02 03:04:06+00:00')"
        )
        before = await _rows("SELECT id, openid, display_name, is_platform_operator FROM users ORDER BY id")
        outcome = await db.migrate()
        assert outcome.adopted == FILES and outcome.applied == []
        assert await migrations.applied_names() == FILES
        assert await _rows("SELECT id, openid, display_name, is_platform_operator FROM users ORDER BY id") == before
        assert [r["display_name"] for r in before] == ["老用户甲", "老用户乙"]
        again = await db.migrate()
        assert again.adopted == [] and again.applied == []


async def test_a_legacy_database_that_differs_is_refused_untouched(databases: Databases):
    """Built by an older code version (here: lacking one index): migrate stops and records nothing."""
    async with databases.fresh():
        await db.create_schema()
        index = (await _rows(
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'powers_of_attorney'"
            " AND indexdef LIKE '%agent_id%'" if ON_PG else
            "SELECT name FROM sqlite_master WHERE tbl_name = 'powers_of_attorney' AND sql LIKE '%agent_id%'"
            " AND type = 'index'"
        ))[0]["name"]
        await _conn().execute_script(f'DROP INDEX "{index}"')
        with pytest.raises(migrations.MigrationError) as err:
            await db.migrate()
        assert "无法自动接管" in str(err.value)
        assert "powers_of_attorney: missing index (('enterprise_id', 'agent_id', 'status'), False)" in str(err.value)
        assert await migrations.applied_names() == []


async def test_an_upgrade_keeps_existing_rows(databases: Databases, tmp_path, monkeypatch):
    """Apply the files up to the one before the newest, add rows, apply the rest plus one more: rows stay.

    The extra migration (a nullable column, written here) keeps the test a real upgrade while the history has a
    single file; each new real file then also runs on top of rows written before it.
    """
    previous = FILES[-2] if len(FILES) > 1 else FILES[-1]
    with migrations_copy(tmp_path, monkeypatch, FILES) as (module, package):
        extra = f"{len(FILES) + 1:04d}_test_user_note"
        (package / f"{extra}.py").write_text(
            "from tortoise import fields, migrations\n"
            "from tortoise.migrations import operations as ops\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = [('models', '{FILES[-1]}')]\n"
            "    operations = [ops.AddField(model_name='User', name='test_note',"
            " field=fields.CharField(max_length=32, null=True))]\n"
        )
        async with databases.fresh():
            first = await migrations.migrate(migrations_module=module, target=previous)
            assert first.applied == FILES[: FILES.index(previous) + 1]
            await _conn().execute_script(
                "INSERT INTO users (openid, display_name, is_platform_operator, created_at)"
                " VALUES ('kept-1', '张三', FALSE, '2025-03-04 05:06:07+00:00');"
                "INSERT INTO enterprises (name, uscc, legal_rep_name, legal_rep_id_enc, legal_rep_id_hash,"
                " legal_rep_id_masked, contact_name, contact_phone, is_core, is_supplier, is_funder, status,"
                " kyc_outcome, review_reason, version, created_by_id, created_at)"
                " SELECT '某某供应商有限公司', '91350100M000100Y43', '李四', 'enc', 'hash', '110***********123X',"
                " '王五', '13800000000', FALSE, TRUE, FALSE, 'approved', 'match', '', 3, id,"
                " '2025-03-04 05:06:07+00:00' FROM users WHERE openid = 'kept-1'"
            )
            users = await _rows("SELECT id, openid, display_name FROM users ORDER BY id")
            enterprises = await _rows("SELECT id, name, uscc, status FROM enterprises ORDER BY id")
            head = await _rows("SELECT id, seq, hash FROM ledger_head")
            rest = await migrations.migrate(migrations_module=module)
            assert rest.applied == FILES[FILES.index(previous) + 1:] + [extra]
            assert await _rows("SELECT id, openid, display_name FROM users ORDER BY id") == users
            assert await _rows("SELECT id, name, uscc, status FROM enterprises ORDER BY id") == enterprises
            assert await _rows("SELECT id, seq, hash FROM ledger_head") == head
            assert await _rows("SELECT test_note FROM users") == [{"test_note": None}]
            schema = await _schema()
            assert schema["users"].columns["test_note"].not_null is False
            assert (await migrations.migrate(migrations_module=module)).applied == []


async def test_a_failing_migration_leaves_the_database_as_it_was(databases: Databases, tmp_path, monkeypatch):
    """The whole run is one transaction: a failure in the last migration undoes every table the run created."""
    with migrations_copy(tmp_path, monkeypatch, FILES) as (module, package):
        (package / f"{len(FILES) + 1:04d}_test_fails.py").write_text(
            "from tortoise import fields, migrations\n"
            "from tortoise.migrations import operations as ops\n\n\n"
            "def fail(apps, editor):\n"
            "    raise RuntimeError('data step failed')\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = [('models', '{FILES[-1]}')]\n"
            "    operations = [ops.AddField(model_name='User', name='test_note',"
            " field=fields.CharField(max_length=32, null=True)), ops.RunPython(fail)]\n"
        )
        async with databases.fresh():
            with pytest.raises(RuntimeError, match="data step failed"):
                await migrations.migrate(migrations_module=module)
            assert await _schema() == {}
            assert await migrations.applied_names() == []


async def test_two_migrators_at_once_apply_each_migration_once(databases: Databases, tmp_path):
    """Two `echain migrate` processes wait on the migration lock together; once it is free exactly one applies."""
    url = databases.next_url()
    async with databases.fresh(url):
        pass
    settings = Settings(env="dev", data_dir=tmp_path / "data", database_url=url)
    async with _holding_migration_lock(url):
        procs = [asyncio.create_task(run_cli(settings, "migrate")) for _ in range(2)]
        await asyncio.sleep(8)  # both start up and block on the lock (a migrate alone takes ~3 s here)
        assert not any(p.done() for p in procs), [p.result().stderr for p in procs if p.done()]
    results = await asyncio.gather(*procs)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    outputs = sorted(r.stdout for r in results)
    assert sum("已执行迁移 0001_initial" in out for out in outputs) == 1
    assert sum("没有待执行的迁移" in out for out in outputs) == 1
    async with db.database(url):
        rows = await _rows("SELECT name FROM tortoise_migrations ORDER BY id")
    assert [r["name"] for r in rows] == FILES


@asynccontextmanager
async def _holding_migration_lock(url: str) -> AsyncIterator[None]:
    # Take the very lock `echain migrate` takes, from outside the ORM.
    if ON_PG:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(f"SELECT pg_advisory_xact_lock({migrations.PG_LOCK_KEY})")
            yield
            await tx.rollback()
        finally:
            await conn.close()
        return
    path = url.removeprefix("sqlite://")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # as Tortoise opens it; switching modes later needs the lock
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def test_the_migrate_command_reports_and_checks(databases: Databases, tmp_path):
    """`echain migrate` on an empty database, again (nothing to do), and `--check` without any database."""
    url = databases.next_url()
    async with databases.fresh(url):
        pass
    settings = Settings(env="dev", data_dir=tmp_path / "data", database_url=url)
    first = await run_cli(settings, "migrate")
    assert first.returncode == 0, first.stderr
    assert all(f"已执行迁移 {name}" in first.stdout for name in FILES) and "数据库已就绪" in first.stdout
    second = await run_cli(settings, "migrate")
    assert second.returncode == 0 and "没有待执行的迁移" in second.stdout
    check = await run_cli(settings, "migrate", "--check", database_url="sqlite:///nonexistent/dir/never.sqlite3")
    assert check.returncode == 0, check.stderr
    assert "模型与迁移文件一致" in check.stdout


def test_sqlite_statements_split_only_at_statement_ends():
    script = "CREATE TABLE a (x INT) /* the chain's tip; appends */;\nCREATE INDEX i ON a (x);  "
    assert migrations.split_sqlite(script) == [
        "CREATE TABLE a (x INT) /* the chain's tip; appends */;",
        "CREATE INDEX i ON a (x);",
    ]


def test_migration_files_pass_the_linter():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment")
    result = subprocess.run([str(ruff), "check", "--no-cache", str(MIGRATIONS_DIR)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_postgresql_pool_skips_the_reset_round_trip_and_sqlite_urls_stay_as_they_are() -> None:
    from echain.db import _keep_session, orm_config

    pg = orm_config("postgres://root@127.0.0.1:5432/test")["connections"]["default"]
    assert pg["engine"] == "tortoise.backends.asyncpg" and pg["credentials"]["database"] == "test"
    assert pg["credentials"]["reset"] is _keep_session  # no "RESET ALL" after every query (bench/api.py)
    assert orm_config("sqlite:///tmp/x.sqlite3")["connections"]["default"] == "sqlite:///tmp/x.sqlite3"
