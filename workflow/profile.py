"""The caller's own view: every enterprise and role they hold, with dashboard counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from models.documents import Document
from models.enterprises import Enterprise
from models.financing import Financing
from models.people import Invitation, Membership, User
from workflow.financing import queries


@dataclass
class EnterpriseView:
    """One enterprise as seen by one of its members."""

    enterprise: Enterprise
    member_roles: list[str]
    counts: dict[str, int]
    role_counts: dict[str, dict[str, int]]  # business role → {"active": financings in progress, "todos": waiting}


@dataclass
class Overview:
    """Everything the "me" page shows."""

    user: User
    enterprises: list[EnterpriseView]
    pending_reviews: int | None  # only for platform operators


async def overview(user: User) -> Overview:
    """Collect the person's enterprises, roles and counts in a few queries."""
    memberships = await Membership.filter(user_id=user.id).prefetch_related("enterprise").order_by("id")
    waiting = Counter((t.enterprise_id, t.party) for t in await queries.todos(user))
    views = [
        EnterpriseView(m.enterprise, m.roles, await _counts(m.enterprise, m.roles),
                       await _role_counts(m.enterprise, waiting))
        for m in memberships
    ]
    pending = await Enterprise.filter(status="pending_review").count() if user.is_platform_operator else None
    return Overview(user, views, pending)


async def _role_counts(enterprise: Enterprise, waiting: Counter) -> dict[str, dict[str, int]]:
    """Per business role: financings in progress with this enterprise in that role, and the caller's to-dos."""
    column = {"supplier": "supplier_id", "core": "core_id", "funder": "funder_id"}
    out = {}
    for role in enterprise.business_roles:
        active = await Financing.filter(status__in=queries.ACTIVE_STATES, **{column[role]: enterprise.id}).count()
        out[role] = {"active": active, "todos": waiting[(enterprise.id, role)]}
    return out


async def _counts(enterprise: Enterprise, roles: list[str]) -> dict[str, int]:
    counts = {
        "members": await Membership.filter(enterprise_id=enterprise.id).count(),
        "documents": await Document.filter(enterprise_id=enterprise.id).count(),
    }
    if "admin" in roles:
        counts["open_invitations"] = await Invitation.filter(enterprise_id=enterprise.id, used_at=None).count()
    return counts
