"""The system's own transition: marking financings overdue once due date + grace has passed."""

from __future__ import annotations

from datetime import date, timedelta

from models.financing import Financing
from workflow.errors import Conflict
from workflow.financing.parties import Context
from workflow.financing.table import FINANCING
from workflow.financing.transition import Acting, commit, now

DEFAULT_GRACE_DAYS = 3


async def mark_overdue_due(today: date, grace_days: int = DEFAULT_GRACE_DAYS) -> int:
    """Mark every received financing overdue whose due date + grace lies before `today`; idempotent.

    Returns how many financings this call moved. Each moves in its own transaction with the same conditional
    update as a person's action, so a repayment reported meanwhile simply wins and the financing is skipped.
    """
    if grace_days < 0:
        raise ValueError("grace_days must not be negative")
    t = FINANCING.transition("mark_overdue")
    cutoff = today - timedelta(days=grace_days)  # overdue when today > due_date + grace, i.e. due_date < cutoff
    moved = 0
    for financing in await Financing.filter(status__in=t.sources, due_date__lt=cutoff).order_by("id"):
        acting = Acting(None, Context(financing), t, None)
        try:
            await commit(acting, t.target, values={"overdue_at": now()},
                         payload={"due_date": financing.due_date.isoformat(), "grace_days": grace_days,
                                  "today": today.isoformat()})
        except Conflict:
            continue  # the financing changed in between (repayment reported): nothing to mark
        moved += 1
    return moved
