"""The platform's view of the whole pipeline: counts and amounts per state, what waits for the platform, overdue.

Operator-only reads for the console's dashboard and work lists. What waits for the platform is derived from the
transition table (`who_acts_next`), never from a second list of states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tortoise.functions import Count, Sum

from models.enterprises import Enterprise
from models.financing import Allocation, Financing
from models.people import User
from workflow.access import require_operator
from workflow.financing.parties import Context
from workflow.financing.table import FINANCING, who_acts_next
from workflow.financing.transition import china_today


@dataclass(frozen=True)
class StateFigures:
    """How many financings are in one state and what they add up to (fen)."""

    state: str
    label: str
    count: int
    face_amount: int
    financing_amount: int  # contract amounts (0 for those without a contract yet)


async def summary(actor: User) -> list[StateFigures]:
    """Every state of the table in declaration order, with count, face amount and contract amount."""
    require_operator(actor)
    rows = await Financing.annotate(n=Count("id"), face=Sum("face_amount"), financed=Sum("financing_amount")) \
        .group_by("status").values("status", "n", "face", "financed")
    by_state = {r["status"]: r for r in rows}
    out = []
    for state, label in FINANCING.state_labels.items():
        r = by_state.get(state, {})
        out.append(StateFigures(state, label, int(r.get("n") or 0), int(r.get("face") or 0),
                                int(r.get("financed") or 0)))
    return out


async def _contexts(financings: list[Financing]) -> list[Context]:
    ids = [f.id for f in financings if f.status == "allocated"]
    allocations: dict[int, dict[int, str]] = {}
    rows = await Allocation.filter(financing_id__in=ids or [-1]).values_list("financing_id", "funder_id", "status")
    for fid, funder, status in rows:
        allocations.setdefault(fid, {})[funder] = status
    return [Context(f, allocations.get(f.id, {})) for f in financings]


async def awaiting_platform(actor: User, action: str) -> list[Financing]:
    """Financings whose next step is the platform's `action` (e.g. allocate, issue_contract), oldest first."""
    require_operator(actor)
    t = FINANCING.transition(action)
    candidates = await Financing.filter(status__in=t.sources).order_by("id").prefetch_related("supplier", "core")
    return [ctx.financing for ctx in await _contexts(candidates)
            if any(s.party == "platform" and s.action == action
                   for s in who_acts_next(ctx.financing, ctx.open_funders))]


@dataclass(frozen=True)
class Overdue:
    """A received financing past its due date: marked overdue by the scheduler, or still within grace."""

    financing: Financing
    days_past_due: int
    marked: bool


async def overdue(actor: User, today: date | None = None) -> list[Overdue]:
    """Financings past their due date and not repaid, most overdue first."""
    require_operator(actor)
    today = today or china_today()
    marked = FINANCING.transition("mark_overdue")
    rows = await Financing.filter(status__in=(marked.target, *marked.sources), due_date__lt=today) \
        .order_by("due_date", "id").prefetch_related("supplier", "core", "funder")
    return [Overdue(f, (today - f.due_date).days, f.status == marked.target) for f in rows]


async def funder_candidates(actor: User, financing: Financing) -> list[Enterprise]:
    """Approved funders the operator may offer this asset to (the allocate use case checks the same again)."""
    require_operator(actor)
    return await Enterprise.filter(status="approved", is_funder=True) \
        .exclude(id__in=[financing.supplier_id, financing.core_id]).order_by("name", "id")
