"""Money moving (seed steps 7, 8 and maturity): disburse, confirm receipt, report and confirm repayment."""

from __future__ import annotations

from datetime import datetime, timedelta

from models.documents import Document
from models.financing import Disbursement, Financing, FinancingAttachment, Repayment
from models.people import User
from workflow.errors import Conflict, InvalidInput
from workflow.financing import money
from workflow.financing.bodies import DisburseBody, ReportRepaymentBody
from workflow.financing.transition import begin, china_date, commit, now

# Clocks on phones and bank systems drift; a few minutes ahead of ours is not "in the future".
_CLOCK_SKEW = timedelta(minutes=5)


def _not_future(moment: datetime, label: str) -> None:
    if moment > now() + _CLOCK_SKEW:
        raise InvalidInput(f"{label}不能晚于当前时间", code="time_in_future")


async def _own_document(document_id: int, enterprise_id: int | None, kind: str, message: str) -> Document:
    doc = await Document.get_or_none(id=document_id)
    if doc is None or doc.enterprise_id != enterprise_id or doc.kind != kind:
        raise InvalidInput(message, code="invalid_document", details={"document_id": document_id})
    return doc


async def disburse(actor: User, financing_id: int, body: DisburseBody, *, enterprise_id: int | None = None) -> Financing:
    """The winning funder records its payment of exactly the financed amount, with the bank voucher."""
    acting = await begin(actor, financing_id, "disburse", enterprise_id)
    f = acting.financing
    if body.amount != f.financing_amount:
        raise InvalidInput(f"放款金额（{money.format_yuan(body.amount)} 元）须等于合同约定的融资金额"
                           f"（{money.format_yuan(f.financing_amount or 0)} 元）", code="amount_mismatch")
    _not_future(body.disbursed_at, "放款时间")
    disbursed_on = china_date(body.disbursed_at)
    if f.signed_at is not None and disbursed_on < china_date(f.signed_at):
        raise InvalidInput(f"放款时间不能早于合同签署完成之日（{china_date(f.signed_at).isoformat()}）",
                           code="disbursed_before_signing")
    voucher = await _own_document(body.voucher_document_id, acting.enterprise_id, "voucher",
                                  "放款凭证须为贵企业（资金方）上传的“放款凭证”类材料，请先上传银行回单后再提交")
    try:
        q = money.quote(f, disbursed_on)
    except money.AmountError as exc:
        raise InvalidInput(str(exc), code="disbursed_after_due") from exc

    async def record(conn) -> None:  # noqa: ANN001
        # Disbursement.financing is unique: a second payment for one financing cannot even be stored.
        await Disbursement.create(financing_id=f.id, funder_id=acting.enterprise_id, amount=body.amount,
                                  bank_reference=body.bank_reference, disbursed_at=body.disbursed_at,
                                  voucher=voucher, recorded_by=actor, using_db=conn)
        await FinancingAttachment.create(financing_id=f.id, document=voucher, purpose="voucher", using_db=conn)

    return await commit(
        acting, "disbursed", side=record, duplicate="该笔融资已放款，请勿重复放款",
        values={"disbursed_amount": body.amount, "disbursed_at": body.disbursed_at, "bank_reference": body.bank_reference,
                "voucher_id": voucher.id, "interest_days": q.days, "interest_amount": q.interest, "total_due": q.total_due},
        payload={"amount": money.format_yuan(body.amount), "bank_reference": body.bank_reference,
                 "disbursed_at": body.disbursed_at.isoformat(), "voucher": voucher.id, "days": q.days,
                 "interest": money.format_yuan(q.interest), "fee": money.format_yuan(q.fee),
                 "total_due": money.format_yuan(q.total_due), "convention": q.convention},
    )


async def confirm_receipt(actor: User, financing_id: int, *, enterprise_id: int | None = None) -> Financing:
    """The supplier confirms the money arrived."""
    acting = await begin(actor, financing_id, "confirm_receipt", enterprise_id)
    return await commit(acting, "received", values={"received_at": now()}, duplicate="已确认收款，请勿重复提交")


async def report_repayment(actor: User, financing_id: int, body: ReportRepaymentBody, *,
                           enterprise_id: int | None = None) -> Financing:
    """The core enterprise reports paying at least the total due (principal + interest + fee).

    Decision: underpayment is refused, because the funder's confirmation moves the financing to 已结清 and
    there is no partial-repayment state.
    """
    acting = await begin(actor, financing_id, "report_repayment", enterprise_id)
    f = acting.financing
    due = f.total_due or 0
    if body.amount < due:
        raise InvalidInput(
            f"还款金额（{money.format_yuan(body.amount)} 元）不足应还金额 {money.format_yuan(due)} 元"
            f"（本金 {money.format_yuan(f.financing_amount or 0)} 元 + 利息 {money.format_yuan(f.interest_amount or 0)} 元"
            f" + 手续费 {money.format_yuan(f.fee_amount or 0)} 元），请足额还款后再登记", code="repayment_short",
            details={"amount_due": money.format_yuan(due)},
        )
    _not_future(body.paid_at, "还款时间")
    if f.disbursed_at is not None and body.paid_at < f.disbursed_at:
        raise InvalidInput("还款时间不能早于放款时间", code="paid_before_disbursed")
    proof = None
    if body.proof_document_id is not None:
        proof = await _own_document(body.proof_document_id, acting.enterprise_id, "repayment_proof",
                                    "还款凭证须为贵企业（核心企业）上传的“还款凭证”类材料，请先上传后再选择")
    moment = now()

    async def record(conn) -> None:  # noqa: ANN001
        # Repayment.financing is unique: a financing can be repaid once only.
        await Repayment.create(financing_id=f.id, amount=body.amount, amount_due=due, paid_at=body.paid_at, proof=proof,
                               reported_by=actor, reported_at=moment, using_db=conn)
        if proof is not None:
            await FinancingAttachment.create(financing_id=f.id, document=proof, purpose="repayment", using_db=conn)

    return await commit(
        acting, "repayment_reported", side=record, duplicate="该笔融资已登记过还款，请勿重复登记",
        values={"repayment_reported_amount": body.amount, "repayment_reported_at": moment},
        payload={"amount": money.format_yuan(body.amount), "amount_due": money.format_yuan(due),
                 "paid_at": body.paid_at.isoformat(), "proof": proof.id if proof else None},
    )


async def confirm_repayment(actor: User, financing_id: int, *, enterprise_id: int | None = None) -> Financing:
    """The funder confirms the repayment arrived; the financing is settled."""
    acting = await begin(actor, financing_id, "confirm_repayment", enterprise_id)
    f = acting.financing
    moment = now()

    async def record(conn) -> None:  # noqa: ANN001
        done = await Repayment.filter(financing_id=f.id, confirmed_at=None).using_db(conn).update(
            confirmed_by_id=actor.id, confirmed_at=moment
        )
        if done != 1:
            raise Conflict("还款已被确认，请勿重复确认", code="already_done")

    return await commit(acting, "repaid", values={"repaid_at": moment}, side=record, duplicate="还款已被确认，请勿重复确认")
