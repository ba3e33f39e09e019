"""Recording committed transitions in the outbox, inside the transition's transaction (see models/outbox.py)."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from models.outbox import OutboxEvent

# Queued rows are kept this long after queuing: longer than an Idempotency-Key lives (echain/idempotency.py, 24 h),
# so a retry whose first answer was lost still finds its transition here.
KEEP_QUEUED = timedelta(days=7)

# Set by the API around a request carrying an Idempotency-Key (its record's id), so the commit can note it.
request_key: ContextVar[str | None] = ContextVar("request_key", default=None)


async def record(conn: BaseDBAsyncClient, subject: str, version: int, action: str) -> None:
    """Add the transition to the outbox in the caller's transaction `conn`."""
    await OutboxEvent.create(subject=subject, version=version, action=action, request_key=request_key.get(),
                             using_db=conn)


async def committed_by(key: str) -> OutboxEvent | None:
    """The transition an earlier attempt of the request `key` committed, if any."""
    return await OutboxEvent.filter(request_key=key).order_by("-id").first()


async def mark_queued(subject: str, version: int) -> None:
    """The notification job of this transition is on the queue: nothing left to drain."""
    await OutboxEvent.filter(subject=subject, version=version, queued_at=None).update(queued_at=datetime.now(UTC))


async def pending(limit: int = 500) -> list[OutboxEvent]:
    """Transitions whose notification job was never queued, oldest first."""
    return await OutboxEvent.filter(queued_at=None).order_by("id").limit(limit)


async def prune(now: datetime | None = None) -> int:
    """Delete rows queued longer than KEEP_QUEUED ago (the ledger keeps the history); returns how many."""
    cutoff = (now or datetime.now(UTC)) - KEEP_QUEUED
    return await OutboxEvent.filter(queued_at__lt=cutoff).delete()
