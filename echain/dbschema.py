"""Read a live database's schema (tables, columns, indexes, unique and foreign keys) into one comparable shape."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Runs one query and returns its rows as dicts: a Tortoise client's execute_query_dict, or a sqlite3 wrapper.
Fetch = Callable[[str, list[Any]], Awaitable[list[dict[str, Any]]]]

# Bookkeeping tables, not the models' schema.
IGNORED_TABLES = frozenset({"tortoise_migrations", "sqlite_sequence"})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    """One column as the database reports it."""

    type: str
    not_null: bool
    default: str | None
    primary_key: bool


@dataclass
class Table:
    """One table: columns by name; indexes and foreign keys by what they cover, not by their generated names."""

    columns: dict[str, Column] = field(default_factory=dict)
    indexes: set[tuple[tuple[str, ...], bool]] = field(default_factory=set)  # (columns, unique)
    foreign_keys: set[tuple[tuple[str, ...], str, tuple[str, ...], str]] = field(default_factory=set)


Schema = dict[str, Table]


async def describe(fetch: Fetch, dialect: str, *, pg_schema: str | None = None) -> Schema:
    """The schema of the database behind `fetch` (PostgreSQL: `pg_schema`, default the current one)."""
    if dialect == "sqlite":
        return await _describe_sqlite(fetch)
    if dialect == "postgres":
        return await _describe_postgres(fetch, pg_schema)
    raise ValueError(f"unsupported dialect {dialect!r}")


def differences(expected: Schema, actual: Schema, *, only: set[str] | None = None) -> list[str]:
    """Human-readable differences, empty when equal (restricted to the tables in `only` when given)."""
    out: list[str] = []
    names = set(expected) | set(actual) if only is None else set(only)
    for name in sorted(names):
        want, got = expected.get(name), actual.get(name)
        if want is None or got is None:
            out.append(f"table {name}: {'missing' if got is None else 'unexpected'}")
            continue
        for col in sorted(set(want.columns) | set(got.columns)):
            a, b = want.columns.get(col), got.columns.get(col)
            if a != b:
                out.append(f"{name}.{col}: expected {a}, found {b}")
        for label, a_set, b_set in (("index", want.indexes, got.indexes), ("foreign key", want.foreign_keys, got.foreign_keys)):
            for item in sorted(a_set - b_set):
                out.append(f"{name}: missing {label} {item}")
            for item in sorted(b_set - a_set):
                out.append(f"{name}: unexpected {label} {item}")
    return out


def _quote(name: str) -> str:
    # PRAGMA takes no bound parameters; names come from sqlite_master, checked to be plain identifiers.
    if not _IDENT.match(name):
        raise ValueError(f"unexpected table or index name {name!r}")
    return f'"{name}"'


async def _describe_sqlite(fetch: Fetch) -> Schema:
    schema: Schema = {}
    tables = await fetch("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", [])
    for row in tables:
        name = row["name"]
        if name in IGNORED_TABLES or name.startswith("sqlite_"):
            continue
        table = schema[name] = Table()
        for col in await fetch(f"PRAGMA table_info({_quote(name)})", []):
            table.columns[col["name"]] = Column(
                type=str(col["type"]).lower(),
                not_null=bool(col["notnull"]) or bool(col["pk"]),
                default=None if col["dflt_value"] is None else str(col["dflt_value"]),
                primary_key=bool(col["pk"]),
            )
        for idx in await fetch(f"PRAGMA index_list({_quote(name)})", []):
            if idx["origin"] == "pk":  # an INTEGER PRIMARY KEY has none; others are covered by primary_key above
                continue
            cols = await fetch(f"PRAGMA index_info({_quote(idx['name'])})", [])
            ordered = tuple(c["name"] for c in sorted(cols, key=lambda c: c["seqno"]))
            table.indexes.add((ordered, bool(idx["unique"])))
        fks: dict[int, list[dict[str, Any]]] = {}
        for fk in await fetch(f"PRAGMA foreign_key_list({_quote(name)})", []):
            fks.setdefault(fk["id"], []).append(fk)
        for parts in fks.values():
            parts.sort(key=lambda p: p["seq"])
            table.foreign_keys.add((
                tuple(p["from"] for p in parts),
                parts[0]["table"],
                tuple(p["to"] for p in parts),
                str(parts[0]["on_delete"]).upper(),
            ))
    return schema


_PG_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


async def _describe_postgres(fetch: Fetch, pg_schema: str | None) -> Schema:
    if pg_schema is None:
        pg_schema = (await fetch("SELECT current_schema() AS s", []))[0]["s"]
    schema: Schema = {}
    columns = await fetch(
        "SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, c.numeric_precision,"
        " c.numeric_scale, c.is_nullable, c.column_default"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'"
        " WHERE c.table_schema = $1 ORDER BY c.table_name, c.ordinal_position",
        [pg_schema],
    )
    primary = await fetch(
        "SELECT t.relname AS table_name, a.attname AS column_name FROM pg_index ix"
        " JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(ix.indkey)"
        " WHERE ix.indisprimary AND n.nspname = $1",
        [pg_schema],
    )
    pk_columns = {(r["table_name"], r["column_name"]) for r in primary}
    for col in columns:
        name = col["table_name"]
        if name in IGNORED_TABLES:
            continue
        type_ = col["data_type"]
        if col["character_maximum_length"] is not None:
            type_ += f"({col['character_maximum_length']})"
        elif type_ == "numeric" and col["numeric_precision"] is not None:
            type_ += f"({col['numeric_precision']},{col['numeric_scale']})"
        schema.setdefault(name, Table()).columns[col["column_name"]] = Column(
            type=type_,
            not_null=col["is_nullable"] == "NO",
            default=col["column_default"],
            primary_key=(name, col["column_name"]) in pk_columns,
        )
    indexes = await fetch(
        "SELECT t.relname AS table_name, ix.indisunique AS is_unique,"
        " ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)"
        "       JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS cols"
        " FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = $1 AND NOT ix.indisprimary",
        [pg_schema],
    )
    for idx in indexes:
        if idx["table_name"] in schema:
            schema[idx["table_name"]].indexes.add((tuple(idx["cols"]), bool(idx["is_unique"])))
    fks = await fetch(
        "SELECT t.relname AS table_name, r.relname AS ref_table, c.confdeltype::text AS on_delete,"
        " ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)"
        "       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord) AS cols,"
        " ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)"
        "       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord) AS ref_cols"
        " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE c.contype = 'f' AND n.nspname = $1",
        [pg_schema],
    )
    for fk in fks:
        if fk["table_name"] in schema:
            schema[fk["table_name"]].foreign_keys.add(
                (tuple(fk["cols"]), fk["ref_table"], tuple(fk["ref_cols"]), _PG_ON_DELETE.get(fk["on_delete"], "?"))
            )
    return schema
