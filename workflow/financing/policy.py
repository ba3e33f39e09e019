"""Approval policies: how many distinct approvers a core enterprise needs to confirm a receivable."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.financing import ApprovalPolicy
from models.people import User
from workflow import ledger
from workflow.access import enterprise_for_member
from workflow.errors import Conflict
from workflow.financing.bodies import PolicyInput
from workflow.financing.money import format_yuan

# Used when a core enterprise configured nothing: up to 1,000,000 yuan one approver, above that two.
DEFAULT_TIERS: list[dict[str, int | None]] = [
    {"up_to_fen": 100_000_000, "approvers": 1},
    {"up_to_fen": None, "approvers": 2},
]


def required_approvers(tiers: list[dict], face_amount: int) -> int:
    """Distinct approvers needed for a receivable of `face_amount` fen (the core's exposure is the face)."""
    for tier in tiers:
        if tier["up_to_fen"] is None or face_amount <= tier["up_to_fen"]:
            return int(tier["approvers"])
    return int(tiers[-1]["approvers"])  # a stored policy always ends unbounded; be safe if it does not


async def tiers_for(core_id: int, conn=None) -> list[dict]:  # noqa: ANN001 - tortoise connection
    """The core enterprise's tiers, or the default ones."""
    policy = await ApprovalPolicy.get_or_none(enterprise_id=core_id).using_db(conn)
    return policy.tiers if policy else DEFAULT_TIERS


def describe(tiers: list[dict]) -> list[str]:
    """Each tier as a Chinese sentence."""
    lines, lower = [], None
    for tier in tiers:
        n = tier["approvers"]
        if tier["up_to_fen"] is None:
            lines.append(f"{'超过 ' + format_yuan(lower) + ' 元' if lower else '任意金额'}：需 {n} 名不同审批人同意")
        else:
            lines.append(f"不超过 {format_yuan(tier['up_to_fen'])} 元：需 {n} 名不同审批人同意")
            lower = tier["up_to_fen"]
    return lines


async def set_policy(actor: User, enterprise_id: int, data: PolicyInput) -> ApprovalPolicy:
    """A core enterprise's admin replaces its approval tiers (financings already claimed keep theirs)."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ("admin",))
    if not enterprise.is_core:
        raise Conflict("只有核心企业需要设置确权审批策略；请先在企业资料中选择“核心企业”角色并通过审核",
                       code="not_core_enterprise")
    tiers = [{"up_to_fen": t.up_to, "approvers": t.approvers} for t in data.tiers]
    try:
        async with in_transaction() as conn:
            updated = await ApprovalPolicy.filter(enterprise_id=enterprise_id).using_db(conn).update(
                tiers=tiers, updated_by_id=actor.id
            )
            if not updated:
                await ApprovalPolicy.create(enterprise_id=enterprise_id, tiers=tiers, updated_by=actor, using_db=conn)
            await ledger.append(conn, actor=f"user:{actor.id}", subject=f"enterprise:{enterprise_id}",
                                action="set_approval_policy", payload={"tiers": tiers})
    except IntegrityError as exc:  # two admins saved at once: the other one's policy stands
        raise Conflict("审批策略刚被其他管理员修改，请刷新后重试", code="stale_policy") from exc
    return await ApprovalPolicy.get(enterprise_id=enterprise_id)


async def view_policy(actor: User, enterprise_id: int) -> list[dict]:
    """The tiers in force for an enterprise the actor belongs to (operators may read any)."""
    await enterprise_for_member(actor, enterprise_id, operator_may_read=True)
    return await tiers_for(enterprise_id)
