"""Powers of attorney (授权委托书): who may sign for an enterprise besides its legal representative.

Seed: "必须由法人本人签章，或经法人授权专人出具授权委托书后签章". An enterprise's admin or legal representative
grants an agent member a power of attorney (the uploaded 授权委托书 plus its scope: an amount ceiling, a date
range and the financing actions it covers); the platform reviews it; the enterprise may revoke it at any time.
`authority_to_sign` is the one check the sign action runs: it says whether a person signs as legal
representative or as agent under which power, or refuses with the precise reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field
from tortoise.transactions import in_transaction

from models.attorney import PowerOfAttorney
from models.documents import Document
from models.people import Membership, User
from workflow import ledger
from workflow.access import enterprise_for_member, require_operator
from workflow.documents import DOCUMENT_KINDS
from workflow.errors import Conflict, Forbidden, InvalidInput, NotFound
from workflow.financing.bodies import ActionBody, Yuan
from workflow.financing.money import format_yuan
from workflow.financing.table import FINANCING
from workflow.financing.transition import china_date, china_today, now
from workflow.machine import Machine, Transition
from workflow.roles import MEMBER_ROLES

ATTORNEY = Machine(
    name="power_of_attorney",
    state_labels={"pending_review": "待平台审核", "approved": "审核通过", "rejected": "审核驳回", "revoked": "已撤销"},
    transitions=[
        Transition("create", "出具授权委托书", (), "pending_review", "enterprise", ("admin", "legal_rep")),
        Transition("approve", "审核通过", ("pending_review",), "approved", "platform"),
        Transition("reject", "审核驳回", ("pending_review",), "rejected", "platform"),
        Transition("revoke", "撤销授权", ("pending_review", "approved"), "revoked", "enterprise", ("admin", "legal_rep")),
    ],
)

DOCUMENT_KIND = "power_of_attorney"
AGENT_ROLE = "agent"
LEGAL_REP_ROLE = "legal_rep"


class PowerOfAttorneyInput(ActionBody):
    """A new power of attorney: the agent, the signed document, and its scope."""

    agent_user_id: int = Field(title="被授权人（代理人）用户ID", gt=0)
    document_id: int = Field(title="授权委托书文件ID", gt=0)
    max_amount: Yuan = Field(title="授权金额上限（元）")
    valid_from: date = Field(title="授权有效期起始日")
    valid_to: date = Field(title="授权有效期截止日")
    actions: list[str] = Field(default_factory=lambda: ["sign"], title="授权事项", min_length=1, max_length=10)


@dataclass(frozen=True)
class SigningAuthority:
    """How a person may sign for an enterprise: as its legal representative, or as agent under `poa_id`."""

    kind: Literal["legal_rep", "agent"]
    poa_id: int | None = None

    def as_payload(self) -> dict[str, Any]:
        """What a ledger entry records about the signer's authority."""
        return {"authority": self.kind, "power_of_attorney": self.poa_id}


# ---- labels ------------------------------------------------------------------------------------------------


def agent_actions() -> list[str]:
    """The financing actions an agent may take at all (those whose member roles include agent)."""
    return [t.action for t in FINANCING.transitions if AGENT_ROLE in t.member_roles]


def action_label(action: str) -> str:
    """The Chinese label of a financing action (the name itself when unknown)."""
    try:
        return FINANCING.transition(action).label
    except KeyError:
        return action


def _actions_text(actions: list[str]) -> str:
    return "、".join(f"“{action_label(a)}”" for a in actions) or "（无）"


def standing(poa: PowerOfAttorney, on: date | None = None) -> tuple[str, str]:
    """The power's standing on a day, as (code, Chinese label): its status, or expired / not yet valid."""
    on = on or china_today()
    if poa.status == "approved":
        if on > poa.valid_to:
            return "expired", "已过期"
        if on < poa.valid_from:
            return "not_yet_valid", "未到生效日"
        return "in_force", "有效"
    return poa.status, ATTORNEY.state_labels[poa.status]


def _subject(enterprise_id: int) -> str:
    return f"enterprise:{enterprise_id}"


def _actor(user: User) -> str:
    return f"user:{user.id}"


def _scope_payload(poa: PowerOfAttorney) -> dict[str, Any]:
    return {
        "power_of_attorney": poa.id, "agent": poa.agent_id, "document": poa.document_id,
        "max_amount": format_yuan(poa.max_amount), "valid_from": poa.valid_from.isoformat(),
        "valid_to": poa.valid_to.isoformat(), "actions": list(poa.actions),
    }


# ---- use cases ---------------------------------------------------------------------------------------------


async def create(actor: User, enterprise_id: int, data: PowerOfAttorneyInput) -> PowerOfAttorney:
    """The enterprise's admin or legal representative grants an agent member a power; it awaits the platform."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ATTORNEY.transition("create").member_roles)
    actions = _check_actions(data.actions)
    _check_dates(data.valid_from, data.valid_to)
    if data.agent_user_id == actor.id:
        raise InvalidInput("不能为自己出具授权委托书，请由法定代表人或其他管理员出具", code="self_authorisation")
    await _check_agent(enterprise.id, data.agent_user_id)
    await _check_document(enterprise.id, data.document_id)
    async with in_transaction() as conn:
        poa = await PowerOfAttorney.create(
            enterprise_id=enterprise.id, agent_id=data.agent_user_id, document_id=data.document_id,
            max_amount=data.max_amount, valid_from=data.valid_from, valid_to=data.valid_to, actions=actions,
            status=ATTORNEY.transition("create").target, created_by=actor, using_db=conn,
        )
        await ledger.append(conn, actor=_actor(actor), subject=_subject(enterprise.id),
                            action="create_power_of_attorney", payload=_scope_payload(poa))
    return await PowerOfAttorney.get(id=poa.id)


def _check_actions(actions: list[str]) -> list[str]:
    allowed = agent_actions()
    wanted = list(dict.fromkeys(a.strip() for a in actions))
    unknown = [a for a in wanted if a not in FINANCING.actions]
    if unknown:
        raise InvalidInput(f"授权事项无效：{'、'.join(unknown)}；可选：{_actions_text(allowed)}（{'、'.join(allowed)}）",
                           code="invalid_poa_action", details={"allowed": allowed})
    not_for_agents = [a for a in wanted if a not in allowed]
    if not_for_agents:
        raise InvalidInput(f"授权事项{_actions_text(not_for_agents)}不能由授权代理人办理；可授权的事项：{_actions_text(allowed)}",
                           code="invalid_poa_action", details={"allowed": allowed})
    return wanted


def _check_dates(valid_from: date, valid_to: date) -> None:
    if valid_to < valid_from:
        raise InvalidInput(f"授权有效期截止日（{valid_to.isoformat()}）不能早于起始日（{valid_from.isoformat()}）",
                           code="invalid_poa_dates")
    today = china_today()
    if valid_to < today:
        raise InvalidInput(f"授权有效期截止日（{valid_to.isoformat()}）已过，请填写今天（{today.isoformat()}）或以后的日期",
                           code="invalid_poa_dates")


async def _check_agent(enterprise_id: int, agent_user_id: int) -> None:
    member = await Membership.get_or_none(user_id=agent_user_id, enterprise_id=enterprise_id)
    if member is None:
        raise InvalidInput("被授权人不是本企业成员，请先邀请其加入企业并设置为“授权代理人”", code="agent_not_member")
    if AGENT_ROLE not in member.roles:
        raise InvalidInput(f"被授权人须具有“{MEMBER_ROLES[AGENT_ROLE]}”角色，请管理员先在成员管理中设置",
                           code="agent_role_required")


async def _check_document(enterprise_id: int, document_id: int) -> None:
    doc = await Document.get_or_none(id=document_id, enterprise_id=enterprise_id)
    if doc is None:  # another enterprise's document is "not found" here: ids of others are never confirmed
        raise InvalidInput("授权委托书文件不存在或不属于本企业，请先在本企业材料中上传", code="poa_document_not_found")
    if doc.kind != DOCUMENT_KIND:
        raise InvalidInput(f"所选文件的类型为“{DOCUMENT_KINDS.get(doc.kind, doc.kind)}”，"
                           f"请选择类型为“{DOCUMENT_KINDS[DOCUMENT_KIND]}”的文件", code="poa_document_kind")


async def load(actor: User, enterprise_id: int, poa_id: int) -> PowerOfAttorney:
    """One power of attorney, for members of the enterprise and platform operators."""
    await enterprise_for_member(actor, enterprise_id, operator_may_read=True)
    return await _get(enterprise_id, poa_id)


async def _get(enterprise_id: int, poa_id: int) -> PowerOfAttorney:
    poa = await PowerOfAttorney.get_or_none(id=poa_id, enterprise_id=enterprise_id)
    if poa is None:
        raise NotFound("授权委托书不存在", code="poa_not_found")
    return poa


async def list_for(actor: User, enterprise_id: int) -> list[PowerOfAttorney]:
    """An enterprise's powers of attorney, newest first (members and platform operators)."""
    await enterprise_for_member(actor, enterprise_id, operator_may_read=True)
    return await PowerOfAttorney.filter(enterprise_id=enterprise_id).order_by("-id")


async def pending_reviews(actor: User) -> list[PowerOfAttorney]:
    """Powers awaiting the platform, oldest first."""
    require_operator(actor)
    return await PowerOfAttorney.filter(status="pending_review").order_by("created_at", "id")


async def review(actor: User, poa_id: int, decision: Literal["approve", "reject"], reason: str = "") -> PowerOfAttorney:
    """A platform operator approves or rejects (a rejection needs a reason)."""
    require_operator(actor)
    poa = await PowerOfAttorney.get_or_none(id=poa_id)
    if poa is None:
        raise NotFound("授权委托书不存在", code="poa_not_found")
    reason = reason.strip()
    if decision == "reject" and not reason:
        raise InvalidInput("驳回时必须填写原因，以便企业修改后重新出具", code="reason_required")
    return await _transition(actor, poa, decision, {"reason": reason},
                             reviewed_by_id=actor.id, reviewed_at=now(), review_reason=reason)


async def revoke(actor: User, enterprise_id: int, poa_id: int, reason: str = "") -> PowerOfAttorney:
    """The enterprise's admin or legal representative withdraws a power; it stops working at once."""
    await enterprise_for_member(actor, enterprise_id, ATTORNEY.transition("revoke").member_roles)
    poa = await _get(enterprise_id, poa_id)
    reason = reason.strip()
    return await _transition(actor, poa, "revoke", {"reason": reason},
                             revoked_by_id=actor.id, revoked_at=now(), revoke_reason=reason)


async def _transition(actor: User, poa: PowerOfAttorney, action: str, payload: dict[str, Any],
                      **values: object) -> PowerOfAttorney:
    t = ATTORNEY.check(action, poa.status)
    async with in_transaction() as conn:
        # Conditional update: of a review and a revocation racing, exactly one lands.
        moved = await PowerOfAttorney.filter(id=poa.id, status=poa.status, version=poa.version).using_db(conn).update(
            status=t.target, version=poa.version + 1, **values
        )
        if moved != 1:
            raise Conflict("授权委托书状态已变化，请刷新后重试", code="stale_power_of_attorney")
        await ledger.append(conn, actor=_actor(actor), subject=_subject(poa.enterprise_id),
                            action=f"{action}_power_of_attorney",
                            payload={"power_of_attorney": poa.id, "from": poa.status, "to": t.target, **payload})
    return await PowerOfAttorney.get(id=poa.id)


# ---- the check the sign action runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    rank: int  # how far the power got through the checks: the furthest one explains the refusal best
    message: str
    code: str
    details: dict[str, Any]


def _day_text(on: date) -> str:
    return f"今天（{on.isoformat()}）" if on == china_today() else f"{on.isoformat()} "


def _refusal(poa: PowerOfAttorney, amount_fen: int, action: str, on: date) -> _Refusal | None:
    """Why this power does not cover the act, or None when it does."""
    details: dict[str, Any] = {"power_of_attorney": poa.id}
    if poa.status == "revoked":
        when = f"已于 {china_date(poa.revoked_at).isoformat()} " if isinstance(poa.revoked_at, datetime) else "已"
        return _Refusal(0, f"授权委托书{when}被撤销，不能再代表企业签署", "poa_revoked", details)
    if poa.status == "rejected":
        why = f"（驳回原因：{poa.review_reason}）" if poa.review_reason else ""
        return _Refusal(0, f"授权委托书未经平台审核通过：已被驳回{why}", "poa_not_approved", details)
    if poa.status != "approved":
        return _Refusal(1, "授权委托书未经平台审核通过（当前待平台审核），审核通过后方可代表企业签署",
                        "poa_not_approved", details)
    if not poa.valid_from <= on <= poa.valid_to:
        code = "poa_not_yet_valid" if on < poa.valid_from else "poa_expired"
        return _Refusal(2, f"授权委托书有效期为 {poa.valid_from.isoformat()} 至 {poa.valid_to.isoformat()}，"
                           f"{_day_text(on)}不在有效期内", code,
                        details | {"valid_from": poa.valid_from.isoformat(), "valid_to": poa.valid_to.isoformat()})
    if action not in poa.actions:
        return _Refusal(3, f"授权委托书的授权事项为{_actions_text(list(poa.actions))}，不包括“{action_label(action)}”",
                        "poa_action_not_covered", details | {"actions": list(poa.actions)})
    if amount_fen > poa.max_amount:
        return _Refusal(4, f"授权委托书金额上限为 {format_yuan(poa.max_amount)} 元，本笔融资金额 {format_yuan(amount_fen)} 元"
                           "超出授权范围", "poa_amount_exceeded",
                        details | {"max_amount": format_yuan(poa.max_amount), "amount": format_yuan(amount_fen)})
    return None


async def authority_to_sign(user: User, enterprise_id: int, *, amount_fen: int, action: str, on: date) -> SigningAuthority:
    """How `user` may take `action` (e.g. "sign") for the enterprise on day `on`, for `amount_fen`.

    A legal representative signs in person; an agent needs an approved power of attorney whose dates, actions
    and amount ceiling cover the act. Anything else raises Forbidden with the precise Chinese reason.
    """
    FINANCING.transition(action)  # an unknown action is a programming error: KeyError
    member = await Membership.get_or_none(user_id=user.id, enterprise_id=enterprise_id)
    if member is None:
        raise Forbidden("您不是该企业的成员，不能代表该企业签署", code="not_a_member")
    roles = set(member.roles or [])
    if LEGAL_REP_ROLE in roles:
        return SigningAuthority("legal_rep", None)
    if AGENT_ROLE not in roles:
        raise Forbidden("必须由法定代表人本人签章，或由持经平台审核通过的授权委托书的授权代理人签章",
                        code="signing_authority_required")
    powers = await PowerOfAttorney.filter(enterprise_id=enterprise_id, agent_id=user.id).order_by("-id")
    if not powers:
        raise Forbidden("您尚无本企业出具的授权委托书：必须由法定代表人本人签章，或经法定代表人出具授权委托书后由代理人签章",
                        code="poa_missing")
    best: _Refusal | None = None
    for poa in powers:  # newest first: among equally good refusals, the newest power explains it
        refusal = _refusal(poa, amount_fen, action, on)
        if refusal is None:
            return SigningAuthority("agent", poa.id)
        if best is None or refusal.rank > best.rank:
            best = refusal
    assert best is not None
    raise Forbidden(best.message, code=best.code, details=best.details)
