"""The one way a financing changes state: load → authorise → table check → guards → conditional update.

`begin` loads and authorises; `commit` runs, in ONE transaction, the conditional update
`UPDATE financings SET status=…, version=v+1 WHERE id=? AND status=<seen> AND version=<seen>`, the side rows
and the ledger entry, and acts only if exactly one row changed. That, plus the unique constraints on the side
rows, holds on SQLite and PostgreSQL alike (DESIGN.md §3: select_for_update is ignored on SQLite).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.financing import Financing
from models.people import User
from workflow import ledger, outbox
from workflow.errors import Conflict
from workflow.financing.parties import Context, Viewer, acting_enterprise, load_context, viewer_for
from workflow.financing.table import FINANCING
from workflow.machine import Transition

# China has had no daylight saving since 1991: a fixed +08:00 offset is exact and needs no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

SideEffect = Callable[[BaseDBAsyncClient], Awaitable[None]]


def now() -> datetime:
    """The current moment, timezone-aware."""
    return datetime.now(UTC)


def china_date(moment: datetime) -> date:
    """The calendar date of a moment in China (business days and interest days are counted there)."""
    return moment.astimezone(CHINA_TZ).date()


def china_today() -> date:
    """Today's date in China."""
    return china_date(now())


def subject(financing_id: int) -> str:
    """The ledger subject of a financing."""
    return f"financing:{financing_id}"


@dataclass
class Acting:
    """A caller cleared to attempt one action on one financing."""

    viewer: Viewer | None  # None when the system (the scheduler) acts
    ctx: Context
    transition: Transition
    enterprise_id: int | None  # the enterprise the caller acts for; None for platform actions

    @property
    def financing(self) -> Financing:
        """The financing as loaded."""
        return self.ctx.financing

    @property
    def actor(self) -> str:
        """The ledger actor."""
        return f"user:{self.viewer.user.id}" if self.viewer else "system"


async def begin(user: User, financing_id: int, action: str, enterprise_id: int | None = None,
                *, check_state: bool = True) -> Acting:
    """Load the financing, resolve the acting enterprise, and check the table allows `action` now."""
    viewer = await viewer_for(user)
    ctx = await load_context(financing_id)
    t = FINANCING.transition(action)
    acting = acting_enterprise(viewer, ctx, t, enterprise_id)
    if check_state:
        FINANCING.check(action, ctx.financing.status)
    return Acting(viewer, ctx, t, acting)


def stale(t: Transition, fresh: Financing, enterprise_id: int | None) -> Conflict:
    """The 409 for a lost race, as precise as the fresh row allows."""
    if t.action == "subscribe" and fresh.funder_id is not None and fresh.funder_id != enterprise_id:
        return Conflict("该资产已被其他资金方认购", code="already_subscribed")
    label = FINANCING.state_labels[fresh.status]
    if fresh.status == t.target and t.target not in t.sources:
        return Conflict(f"该笔融资已由他人办理“{t.label}”（当前状态为“{label}”），请勿重复提交", code="already_done",
                        details={"state": fresh.status})
    return Conflict(f"融资状态已变化（当前为“{label}”），请刷新后重试", code="stale_financing",
                    details={"state": fresh.status})


async def commit(
    acting: Acting,
    target: str,
    *,
    values: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    side: SideEffect | None = None,
    duplicate: str = "该操作已办理过，请勿重复提交",
) -> Financing:
    """Move the financing to `target` with the side rows and the ledger entry, all or nothing."""
    f = acting.financing
    t = acting.transition
    if target not in t.targets:
        raise ValueError(f"{t.action} cannot lead to {target}")
    try:
        async with in_transaction() as conn:
            # The serialisation point comes first, so every later write in this transaction is ours alone.
            moved = await Financing.filter(id=f.id, status=f.status, version=f.version).using_db(conn).update(
                status=target, version=f.version + 1, updated_at=now(), **(values or {})
            )
            if moved != 1:
                raise stale(t, await Financing.get(id=f.id).using_db(conn), acting.enterprise_id)
            if side is not None:
                await side(conn)
            await ledger.append(conn, actor=acting.actor, subject=subject(f.id), action=t.action,
                                payload={"from": f.status, "to": target, **(payload or {})})
            # Same transaction: the transition's notification can be queued later even if Redis is down now.
            await outbox.record(conn, subject(f.id), f.version + 1, t.action)
    except IntegrityError as exc:
        # Only reachable when a unique constraint catches what the conditional update should have: the
        # constraint is the last line of defence and must still answer in Chinese.
        raise Conflict(duplicate, code="duplicate") from exc
    return await Financing.get(id=f.id)


async def retry_when_stale(attempt: Callable[[], Awaitable[Financing]], tries: int = 3) -> Financing:
    """Run a use case again after it lost a race that left the state as it was (only the version moved).

    For actions that leave the financing in the same state (an approval below quorum, a funder declining),
    two people acting at once are not in conflict; a fresh attempt re-reads everything and re-runs the checks,
    so it is safe: the lost attempt committed nothing.
    """
    for _ in range(tries - 1):
        try:
            return await attempt()
        except Conflict as exc:
            if exc.code != "stale_financing":
                raise
    return await attempt()
