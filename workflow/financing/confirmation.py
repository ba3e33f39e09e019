"""Confirmation of the receivable by the core enterprise (确权, seed step 3): claim, approve, reject.

Under 民法典 §546 an assignment binds the debtor only once it is notified; the core enterprise's
confirmation is that notice and its acknowledgement of the debt, hence a quorum of distinct approvers.
"""

from __future__ import annotations

from models.financing import FinancedInvoice, Financing, FinancingApproval
from models.people import User
from workflow.errors import Conflict, InvalidInput
from workflow.financing.bodies import ApproveBody, RejectBody
from workflow.financing.policy import required_approvers, tiers_for
from workflow.financing.transition import begin, commit, retry_when_stale

_ALREADY_APPROVED = "您已同意过该笔融资的确权，同一审批人只能同意一次；请等待其他审批人审批"


async def claim(actor: User, financing_id: int, *, enterprise_id: int | None = None) -> Financing:
    """The core enterprise takes the application up; the approval quorum is fixed now."""
    acting = await begin(actor, financing_id, "claim", enterprise_id)
    f = acting.financing
    needed = required_approvers(await tiers_for(f.core_id), f.face_amount)
    return await commit(acting, "claimed", values={"approvals_required": needed, "approval_count": 0},
                        payload={"approvals_required": needed})


async def approve(actor: User, financing_id: int, body: ApproveBody | None = None, *,
                  enterprise_id: int | None = None) -> Financing:
    """One approver agrees; the financing is confirmed once the quorum of distinct approvers is reached."""
    return await retry_when_stale(lambda: _approve(actor, financing_id, body, enterprise_id))


async def _approve(actor: User, financing_id: int, body: ApproveBody | None, enterprise_id: int | None) -> Financing:
    acting = await begin(actor, financing_id, "approve", enterprise_id)
    f = acting.financing
    if await FinancingApproval.exists(financing_id=f.id, approver_id=actor.id, decision="approve"):
        raise Conflict(_ALREADY_APPROVED, code="already_approved")
    count = f.approval_count + 1
    needed = f.approvals_required or 1
    target = "confirmed" if count >= needed else "claimed"
    comment = body.comment if body else ""

    async def record(conn) -> None:  # noqa: ANN001
        await FinancingApproval.create(financing_id=f.id, approver=actor, enterprise_id=acting.enterprise_id,
                                       decision="approve", comment=comment, using_db=conn)

    return await commit(acting, target, values={"approval_count": count}, side=record, duplicate=_ALREADY_APPROVED,
                        payload={"approvals": count, "approvals_required": needed, "comment": comment})


async def reject(actor: User, financing_id: int, body: RejectBody, *, enterprise_id: int | None = None) -> Financing:
    """The core enterprise refuses to confirm; a reason is required and the invoice is released."""
    acting = await begin(actor, financing_id, "reject", enterprise_id)
    reason = body.reason.strip()
    if not reason:
        raise InvalidInput("驳回时必须填写原因，以便资产方了解情况并修改后重新发起", code="reason_required")
    f = acting.financing

    async def record(conn) -> None:  # noqa: ANN001
        await FinancingApproval.create(financing_id=f.id, approver=actor, enterprise_id=acting.enterprise_id,
                                       decision="reject", comment=reason, using_db=conn)
        await FinancedInvoice.filter(financing_id=f.id).using_db(conn).delete()

    return await commit(acting, "rejected", values={"rejection_reason": reason}, side=record,
                        payload={"reason": reason}, duplicate="该笔融资已被驳回")
