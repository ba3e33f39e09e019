"""The transactional outbox keeps queued rows long enough for idempotent retries, then prunes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from echain import db
from models.outbox import OutboxEvent
from workflow import outbox


async def test_prune_removes_only_rows_queued_longer_ago_than_kept(database_url: str) -> None:
    async with db.database(database_url):
        now = datetime(2026, 11, 29, 12, tzinfo=UTC)
        old = now - outbox.KEEP_QUEUED - timedelta(minutes=1)
        recent = now - outbox.KEEP_QUEUED + timedelta(minutes=1)
        await OutboxEvent.create(subject="financing:1", version=1, action="submit", queued_at=old)
        await OutboxEvent.create(subject="financing:1", version=2, action="claim", queued_at=recent)
        await OutboxEvent.create(subject="financing:1", version=3, action="approve", queued_at=None)  # never queued
        assert outbox.KEEP_QUEUED > timedelta(hours=24)  # outlives an Idempotency-Key (echain/idempotency.py)
        assert await outbox.prune(now) == 1
        assert sorted(await OutboxEvent.all().values_list("version", flat=True)) == [2, 3]
        assert await outbox.prune(now) == 0
