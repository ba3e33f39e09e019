"""Who is who in a financing: the caller's memberships, visibility, and which enterprise acts for them.

Rules (authorisation lives here, not in views):
- a caller who is neither a platform operator nor a member of the supplier, the core enterprise, the funder
  or an allocated funder gets 404 for the financing: nobody can probe which ids exist;
- a caller who can see the financing but belongs to the wrong party gets 403 naming the party needed;
- right party, wrong member role: 403 naming the roles needed;
- platform actions need a platform operator; system actions are refused to everybody (the scheduler calls
  its own function).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tortoise.expressions import Q, Subquery

from models.financing import Allocation, Financing
from models.people import Membership, User
from workflow.access import require_operator
from workflow.errors import Forbidden, InvalidInput, NotFound
from workflow.financing.table import PARTY_LABELS, SIGNING_ORDER, party_enterprise, signing_party
from workflow.machine import Transition
from workflow.roles import MEMBER_ROLES


def not_found() -> NotFound:
    """The one answer for a financing the caller may not know about."""
    return NotFound("融资不存在，请确认融资编号，或确认您所在企业是该笔融资的参与方", code="financing_not_found")


@dataclass
class Viewer:
    """A person and the member roles they hold in each of their enterprises."""

    user: User
    roles: dict[int, list[str]] = field(default_factory=dict)  # enterprise id → member roles

    @property
    def enterprise_ids(self) -> list[int]:
        """Every enterprise the person belongs to."""
        return list(self.roles)


async def viewer_for(user: User) -> Viewer:
    """Load the person's memberships once per request."""
    rows = await Membership.filter(user_id=user.id).values_list("enterprise_id", "roles")
    return Viewer(user, {eid: list(roles or []) for eid, roles in rows})


@dataclass
class Context:
    """A financing as loaded for one decision, with its allocations (funder id → allocation status)."""

    financing: Financing
    allocations: dict[int, str] = field(default_factory=dict)

    @property
    def open_funders(self) -> list[int]:
        """Allocated funders that have not declined (they may still subscribe)."""
        return [f for f, status in self.allocations.items() if status == "allocated"]


async def load_context(financing_id: int) -> Context:
    """The financing and its allocations, or a 404."""
    financing = await Financing.get_or_none(id=financing_id)
    if financing is None:
        raise not_found()
    rows = await Allocation.filter(financing_id=financing_id).values_list("funder_id", "status")
    return Context(financing, dict(rows))


def party_ids(ctx: Context) -> set[int]:
    """Every enterprise that may see this financing."""
    f = ctx.financing
    return {f.supplier_id, f.core_id, *([f.funder_id] if f.funder_id else []), *ctx.allocations}


def can_see(viewer: Viewer, ctx: Context) -> bool:
    """Platform operators see everything; others only financings their enterprises take part in."""
    return viewer.user.is_platform_operator or bool(party_ids(ctx) & set(viewer.roles))


def require_visible(viewer: Viewer, ctx: Context) -> None:
    """404 unless the viewer may see the financing."""
    if not can_see(viewer, ctx):
        raise not_found()


def visible_filter(viewer: Viewer) -> Q:
    """A query filter selecting the financings the viewer may see (all for platform operators)."""
    if viewer.user.is_platform_operator:
        return Q()
    ids = viewer.enterprise_ids or [-1]  # an empty IN list is not valid SQL everywhere
    allocated = Subquery(Allocation.filter(funder_id__in=ids).values("financing_id"))
    return Q(supplier_id__in=ids) | Q(core_id__in=ids) | Q(funder_id__in=ids) | Q(id__in=allocated)


def party_of(ctx: Context, enterprise_id: int) -> str | None:
    """Which party an enterprise plays in the financing (funder also while merely allocated)."""
    f = ctx.financing
    if enterprise_id == f.supplier_id:
        return "supplier"
    if enterprise_id == f.core_id:
        return "core"
    if enterprise_id == f.funder_id or (f.funder_id is None and enterprise_id in ctx.allocations):
        return "funder"
    return None


def _candidates(ctx: Context, t: Transition) -> list[int]:
    f = ctx.financing
    if t.party == "signatories":
        return [e for e in (party_enterprise(f, p) for p in SIGNING_ORDER) if e is not None]
    if t.party == "funder" and "allocated" in t.sources:
        # Subscribing and declining belong to every allocated funder, even after one has won (the losers
        # must hear "already subscribed", not "you are not the funder").
        return list(ctx.allocations)
    enterprise = party_enterprise(f, t.party)
    return [enterprise] if enterprise is not None else []


def acting_enterprise(viewer: Viewer, ctx: Context, t: Transition, enterprise_id: int | None = None) -> int | None:
    """The enterprise the viewer acts for in `t` (None for platform actions), or the refusal.

    `enterprise_id` picks one when the person belongs to several enterprises that could act.
    """
    require_visible(viewer, ctx)
    if t.party == "system":
        raise Forbidden(f"“{t.label}”由系统定时任务自动执行，不能手工发起", code="system_action")
    if t.party == "platform":
        require_operator(viewer.user)
        return None
    candidates = _candidates(ctx, t)
    mine = [e for e in candidates if e in viewer.roles]
    if enterprise_id is not None:
        if enterprise_id not in viewer.roles:
            raise NotFound("企业不存在", code="enterprise_not_found")
        mine = [e for e in mine if e == enterprise_id]
    if not mine:
        party = PARTY_LABELS[t.party]
        raise Forbidden(f"“{t.label}”只能由本笔融资的{party}办理；您所在的企业在本笔融资中不是{party}",
                        code="wrong_party", details={"party": t.party})
    able = [e for e in mine if set(viewer.roles[e]) & set(t.member_roles)]
    if not able:
        names = "、".join(MEMBER_ROLES[r] for r in t.member_roles)
        raise Forbidden(f"“{t.label}”需要以下成员角色之一：{names}；请联系企业管理员为您分配角色", code="member_role_required",
                        details={"roles": list(t.member_roles)})
    if len(able) == 1:
        return able[0]
    if t.party == "signatories":
        turn = party_enterprise(ctx.financing, signing_party(ctx.financing) or "")
        return turn if turn in able else able[0]
    raise InvalidInput("您同时在多家可办理此操作的企业任职，请指定以哪家企业的身份办理", code="enterprise_ambiguous",
                       details={"enterprise_ids": able})
