"""The hash chain: append inside the caller's transaction, verify the whole chain.

Each entry's hash covers its sequence number, the previous hash, time, actor, subject, action and the digest
of its payload, so altering, removing or reordering any stored entry breaks verification. Appends advance a
single head row with a conditional update (`… WHERE seq = <seen>`): concurrent writers serialise on that row
and can never fork the chain, on SQLite and PostgreSQL alike (DESIGN.md §3: select_for_update is ignored on
SQLite).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from models.ledger import LedgerEntry, LedgerHead

GENESIS = "0" * 64
_HEAD_ID = 1
_MAX_RETRIES = 1000


def canonical_json(data: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def digest(data: Any) -> str:
    """SHA-256 hex of the canonical JSON of `data`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(seq: int, prev_hash: str, created_at: datetime, actor: str, subject: str, action: str, payload_digest: str) -> str:
    """The hash that links one entry to the chain."""
    return digest([seq, prev_hash, _timestamp(created_at), actor, subject, action, payload_digest])


async def ensure_head(conn: BaseDBAsyncClient | None = None) -> None:
    """Create the head row once (called by migrate)."""
    await LedgerHead.get_or_create(id=_HEAD_ID, defaults={"seq": 0, "hash": GENESIS}, using_db=conn)


async def append(
    conn: BaseDBAsyncClient, *, actor: str, subject: str, action: str, payload: dict[str, Any]
) -> LedgerEntry:
    """Add one entry in the caller's transaction `conn`; never forks under concurrency."""
    payload = json.loads(canonical_json(payload))  # what is stored is exactly what is digested
    payload_digest = digest(payload)
    created_at = datetime.now(UTC)
    for _ in range(_MAX_RETRIES):
        head = await LedgerHead.get(id=_HEAD_ID).using_db(conn)
        seq = head.seq + 1
        new_hash = entry_hash(seq, head.hash, created_at, actor, subject, action, payload_digest)
        moved = await LedgerHead.filter(id=_HEAD_ID, seq=head.seq).using_db(conn).update(seq=seq, hash=new_hash)
        if moved == 1:
            return await LedgerEntry.create(
                seq=seq,
                prev_hash=head.hash,
                hash=new_hash,
                created_at=created_at,
                actor=actor,
                subject=subject,
                action=action,
                payload=payload,
                payload_digest=payload_digest,
                using_db=conn,
            )
    raise RuntimeError("ledger head kept moving; gave up appending")


@dataclass
class Verification:
    """The outcome of checking the whole chain."""

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str = ""


async def verify(batch: int = 1000) -> Verification:
    """Recompute every link; report the first entry that does not fit."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = await LedgerEntry.filter(seq__gt=last_seq).order_by("seq").limit(batch)
        if not rows:
            break
        for row in rows:
            problem = _check(row, expected_seq, prev_hash)
            if problem:
                return Verification(False, count, row.seq, problem)
            prev_hash, expected_seq, count = row.hash, expected_seq + 1, count + 1
        last_seq = rows[-1].seq
    head = await LedgerHead.get_or_none(id=_HEAD_ID)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != count or head_hash != prev_hash:
        return Verification(False, count, count + 1, f"链尾缺失：链头记录到第 {head_seq} 条，实际只有 {count} 条")
    return Verification(True, count)


def _check(row: LedgerEntry, expected_seq: int, prev_hash: str) -> str:
    if row.seq != expected_seq:
        return f"序号不连续：应为第 {expected_seq} 条，实际为第 {row.seq} 条（记录被删除或调换）"
    if row.prev_hash != prev_hash:
        return "前一哈希不匹配（记录被删除、调换或篡改）"
    if digest(row.payload) != row.payload_digest:
        return "内容摘要不匹配（内容被篡改）"
    recomputed = entry_hash(row.seq, row.prev_hash, row.created_at, row.actor, row.subject, row.action, row.payload_digest)
    if recomputed != row.hash:
        return "哈希不匹配（记录被篡改）"
    return ""


async def entries_for(subject: str) -> list[LedgerEntry]:
    """The chain entries about one subject, oldest first (timelines)."""
    return await LedgerEntry.filter(subject=subject).order_by("seq")
