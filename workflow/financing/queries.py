"""Reading financings: lists with keyset pagination, details, what the caller may do, to-dos, timelines."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tortoise.expressions import Q, Subquery

from models.financing import (
    Allocation,
    Contract,
    Disbursement,
    Financing,
    FinancingApproval,
    FinancingAttachment,
    Repayment,
    Signature,
)
from models.people import User
from workflow import ledger
from workflow.errors import InvalidInput
from workflow.financing import money
from workflow.financing.parties import (
    Context,
    Viewer,
    load_context,
    require_visible,
    viewer_for,
    visible_filter,
)
from workflow.financing.table import FINANCING, PARTY_LABELS, Step, who_acts_next
from workflow.financing.transition import CHINA_TZ, china_date, china_today

MAX_LIMIT = 100
_CURSOR_PREFIX = "f1:"
ACTIVE_STATES = tuple(s for s in FINANCING.state_labels if s not in FINANCING.terminal_states)


class FinancingFilters(BaseModel):
    """List filters; every one optional."""

    model_config = ConfigDict(extra="forbid")

    status: list[str] | None = Field(None, title="状态", max_length=len(FINANCING.state_labels))
    perspective: Literal["supplier", "core", "funder"] | None = Field(None, title="视角（以哪种身份参与）")
    counterparty_id: int | None = Field(None, title="对方企业ID", gt=0)
    created_from: date | None = Field(None, title="创建日期起（含）")
    created_to: date | None = Field(None, title="创建日期止（含）")

    @field_validator("status")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = [s for s in value or () if s not in FINANCING.state_labels]
        if unknown:
            raise ValueError(f"未知的状态：{'、'.join(unknown)}；可选：{'、'.join(FINANCING.state_labels)}")
        return value


@dataclass
class Page:
    """One page of financings, newest first; `next_cursor` is None on the last page."""

    items: list[Financing]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    """An opaque cursor pointing after `last_id`."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor points after, or a 422."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX):].isdigit():
        raise InvalidInput("翻页游标无效，请从第一页重新加载", code="invalid_cursor")
    return int(text[len(_CURSOR_PREFIX):])


def _china_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=CHINA_TZ)


def _perspective(viewer: Viewer, perspective: str) -> Q:
    ids = viewer.enterprise_ids or [-1]
    if perspective == "supplier":
        return Q(supplier_id__in=ids)
    if perspective == "core":
        return Q(core_id__in=ids)
    return Q(funder_id__in=ids) | Q(id__in=Subquery(Allocation.filter(funder_id__in=ids).values("financing_id")))


async def list_financings(actor: User, filters: FinancingFilters | None = None, cursor: str | None = None,
                          limit: int = 20) -> Page:
    """The financings the caller may see, newest first (keyset on id, which grows with created_at)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"每页条数须在 1 到 {MAX_LIMIT} 之间", code="invalid_limit")
    filters = filters or FinancingFilters()
    viewer = await viewer_for(actor)
    query = Financing.filter(visible_filter(viewer))
    if filters.perspective:
        query = query.filter(_perspective(viewer, filters.perspective))
    if filters.status:
        query = query.filter(status__in=filters.status)
    if filters.counterparty_id:
        c = filters.counterparty_id
        query = query.filter(Q(supplier_id=c) | Q(core_id=c) | Q(funder_id=c))
    if filters.created_from:
        query = query.filter(created_at__gte=_china_midnight(filters.created_from))
    if filters.created_to:
        query = query.filter(created_at__lt=_china_midnight(filters.created_to + timedelta(days=1)))
    if cursor:
        query = query.filter(id__lt=decode_cursor(cursor))
    rows = await query.order_by("-id").limit(limit + 1)
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items, encode_cursor(items[-1].id) if more else None)


async def get_financing(actor: User, financing_id: int) -> Financing:
    """One financing the caller may see, or a 404."""
    viewer = await viewer_for(actor)
    ctx = await load_context(financing_id)
    require_visible(viewer, ctx)
    return ctx.financing


@dataclass
class NextAction:
    """An action the caller may take now, and for which enterprise (None: as platform operator)."""

    action: str
    label: str
    enterprise_id: int | None
    party: str
    body: str | None


def _mine(viewer: Viewer, step: Step) -> bool:
    if step.party == "platform":
        return viewer.user.is_platform_operator
    if step.enterprise_id is None or step.enterprise_id not in viewer.roles:
        return False
    return bool(set(viewer.roles[step.enterprise_id]) & set(step.member_roles))


def _available(viewer: Viewer, ctx: Context, approved_by_me: bool, *, include_optional: bool) -> list[NextAction]:
    steps = who_acts_next(ctx.financing, ctx.open_funders, include_optional=include_optional)
    out = []
    for step in steps:
        if not _mine(viewer, step) or (step.action == "approve" and approved_by_me):
            continue
        t = FINANCING.transition(step.action)
        out.append(NextAction(step.action, t.label, step.enterprise_id, step.party, t.body))
    return out


async def next_actions(actor: User, financing: Financing) -> list[NextAction]:
    """Every action the caller may take on the financing right now (optional ones included)."""
    viewer = await viewer_for(actor)
    ctx = await load_context(financing.id)
    require_visible(viewer, ctx)
    approved = ctx.financing.status == "claimed" and await FinancingApproval.exists(
        financing_id=financing.id, approver_id=actor.id, decision="approve"
    )
    return _available(viewer, ctx, approved, include_optional=True)


async def waiting_for(financing: Financing) -> list[Step]:
    """Who must act next on the financing (for notifications), allocations loaded from the database."""
    ctx = await load_context(financing.id)
    return who_acts_next(ctx.financing, ctx.open_funders)


@dataclass
class Todo:
    """A financing waiting for the caller."""

    financing: Financing
    action: str
    label: str
    enterprise_id: int | None
    party: str
    party_label: str


async def todos(actor: User) -> list[Todo]:
    """Across all the caller's enterprises and roles, the financings awaiting them, oldest first."""
    viewer = await viewer_for(actor)
    if not viewer.roles and not actor.is_platform_operator:
        return []
    financings = await Financing.filter(visible_filter(viewer), status__in=ACTIVE_STATES).order_by("id")
    allocated_ids = [f.id for f in financings if f.status == "allocated"]
    allocations: dict[int, dict[int, str]] = {}
    for fid, funder, status in await Allocation.filter(financing_id__in=allocated_ids or [-1]).values_list(
        "financing_id", "funder_id", "status"
    ):
        allocations.setdefault(fid, {})[funder] = status
    claimed = [f.id for f in financings if f.status == "claimed"]
    approved = set(await FinancingApproval.filter(financing_id__in=claimed or [-1], approver_id=actor.id,
                                                  decision="approve").values_list("financing_id", flat=True))
    out = []
    for f in financings:
        ctx = Context(f, allocations.get(f.id, {}))
        for a in _available(viewer, ctx, f.id in approved, include_optional=False):
            out.append(Todo(f, a.action, a.label, a.enterprise_id, a.party, PARTY_LABELS[a.party]))
    return out


@dataclass
class TimelineEntry:
    """One recorded step of a financing's history."""

    at: datetime
    action: str
    label: str
    actor: str
    from_state: str | None
    to_state: str | None
    payload: dict[str, Any]


async def timeline(financing: Financing) -> list[TimelineEntry]:
    """The financing's history from the ledger, oldest first (call get_financing first for access)."""
    out = []
    for e in await ledger.entries_for(f"financing:{financing.id}"):
        label = FINANCING.transition(e.action).label if e.action in FINANCING.actions else e.action
        out.append(TimelineEntry(e.created_at, e.action, label, e.actor, e.payload.get("from"), e.payload.get("to"),
                                 e.payload))
    return out


@dataclass
class FinancingDetail:
    """Everything one caller may see about one financing."""

    financing: Financing
    state_label: str
    attachments: list[FinancingAttachment]
    allocations: list[Allocation]
    approvals: list[FinancingApproval]
    contract: Contract | None
    signatures: list[Signature]
    disbursement: Disbursement | None
    repayment: Repayment | None
    quote: money.Quote | None
    next_actions: list[NextAction] = field(default_factory=list)
    waiting_for: list[Step] = field(default_factory=list)


async def detail(actor: User, financing_id: int) -> FinancingDetail:
    """A financing with its side rows, trimmed to what the caller's party may see."""
    viewer = await viewer_for(actor)
    ctx = await load_context(financing_id)
    require_visible(viewer, ctx)
    f = ctx.financing
    mine = set(viewer.roles)
    operator = actor.is_platform_operator
    principal = operator or bool(mine & {f.supplier_id, f.core_id, f.funder_id})
    attachments = await FinancingAttachment.filter(financing_id=f.id).prefetch_related("document").order_by("id")
    if not principal:  # an allocated funder that has not won sees the application material only
        attachments = [a for a in attachments if a.purpose == "material"]
    allocations = await Allocation.filter(financing_id=f.id).order_by("id")
    if not operator:  # funders never learn who else was offered the asset
        allocations = [a for a in allocations if a.funder_id in mine]
    approvals = await FinancingApproval.filter(financing_id=f.id).order_by("id") if (operator or f.core_id in mine) else []
    contract = await Contract.get_or_none(financing_id=f.id, version=f.contract_version) if principal else None
    signatures = await Signature.filter(financing_id=f.id, contract_version=f.contract_version).order_by("id") \
        if principal else []
    disbursement = await Disbursement.get_or_none(financing_id=f.id) if principal else None
    repayment = await Repayment.get_or_none(financing_id=f.id) if principal else None
    quote = None
    if principal and f.financing_amount is not None:
        start = china_date(f.disbursed_at) if f.disbursed_at else china_today()
        try:
            quote = money.quote(f, start)
        except money.AmountError:
            quote = None  # due date already reached before disbursement: nothing meaningful to show
    approved = f.status == "claimed" and await FinancingApproval.exists(
        financing_id=f.id, approver_id=actor.id, decision="approve"
    )
    return FinancingDetail(
        f, FINANCING.state_labels[f.status], attachments, allocations, approvals, contract, signatures, disbursement,
        repayment, quote, _available(viewer, ctx, approved, include_optional=True),
        who_acts_next(f, ctx.open_funders),
    )
