"""Submitting a financing application and withdrawing it (seed step 2)."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.documents import Document
from models.enterprises import Enterprise
from models.financing import FinancedInvoice, Financing, FinancingAttachment
from models.people import User
from workflow import ledger, outbox
from workflow.access import enterprise_for_member
from workflow.documents import DOCUMENT_KINDS
from workflow.errors import Conflict, InvalidInput
from workflow.financing.attachments import MATERIAL_KINDS
from workflow.financing.bodies import FinancingInput, WithdrawBody
from workflow.financing.money import format_yuan
from workflow.financing.table import FINANCING
from workflow.financing.transition import begin, china_today, commit, subject
from workflow.onboarding import ONBOARDING


def _invoice_taken(invoice_no: str) -> Conflict:
    return Conflict(f"发票 {invoice_no} 已用于另一笔未撤回的融资，同一张发票不能重复融资", code="invoice_in_use")


async def _check_enterprises(actor: User, data: FinancingInput) -> tuple[Enterprise, Enterprise]:
    supplier, _ = await enterprise_for_member(actor, data.supplier_id, FINANCING.transition("submit").member_roles)
    if supplier.status != "approved":
        state = ONBOARDING.state_labels.get(supplier.status, supplier.status)
        raise Conflict(f"贵企业尚未通过平台审核（当前状态：{state}），审核通过后才能发起融资", code="enterprise_not_approved")
    if not supplier.is_supplier:
        raise Conflict("贵企业未开通“资产方（供应商）”业务角色，请由企业管理员在企业资料中选择该角色并通过审核后再发起融资",
                       code="not_supplier")
    if data.core_id == data.supplier_id:
        raise InvalidInput("核心企业不能是资产方自己，请选择应收账款的付款方", code="same_enterprise")
    core = await Enterprise.get_or_none(id=data.core_id)
    if core is None or core.status != "approved" or not core.is_core:
        # One answer for "no such id", "not approved" and "not a core enterprise": nothing to probe.
        raise Conflict("所选核心企业不存在或尚未通过平台审核成为核心企业，请确认后重新选择", code="core_not_eligible")
    return supplier, core


async def _check_attachments(supplier_id: int, ids: list[int]) -> list[int]:
    wanted = list(dict.fromkeys(ids))
    docs = {d.id: d for d in await Document.filter(id__in=wanted)}
    foreign = [i for i in wanted if i not in docs or docs[i].enterprise_id != supplier_id]
    if foreign:
        raise InvalidInput(f"附件材料 {'、'.join(map(str, foreign))} 不存在或不是贵企业上传的，请先以资产方身份上传后再选择",
                           code="attachment_not_owned", details={"document_ids": foreign})
    wrong = [d for d in docs.values() if d.kind not in MATERIAL_KINDS]
    if wrong:
        # Identity documents must never be attached: every party of the financing could download them.
        kinds = "、".join(f"{d.id}（{DOCUMENT_KINDS.get(d.kind, d.kind)}）" for d in wrong)
        allowed = "、".join(DOCUMENT_KINDS[k] for k in MATERIAL_KINDS)
        raise InvalidInput(f"附件材料 {kinds} 不能用作融资附件；融资附件只能是：{allowed}", code="attachment_kind",
                           details={"document_ids": [d.id for d in wrong]})
    return wanted


async def create_financing(actor: User, data: FinancingInput) -> Financing:
    """A supplier's operator or admin submits a financing against a receivable owed by a core enterprise."""
    supplier, core = await _check_enterprises(actor, data)
    if data.requested_amount > data.face_amount:
        raise InvalidInput(f"申请融资金额（{format_yuan(data.requested_amount)} 元）不能超过票面金额"
                           f"（{format_yuan(data.face_amount)} 元）", code="requested_exceeds_face")
    if data.due_date <= china_today():
        raise InvalidInput("应收账款到期日须晚于今天；已到期的应收账款不能融资", code="due_date_past")
    attachment_ids = await _check_attachments(supplier.id, data.attachment_ids)
    if await FinancedInvoice.exists(supplier_id=supplier.id, invoice_no=data.invoice_no):
        raise _invoice_taken(data.invoice_no)
    try:
        async with in_transaction() as conn:
            financing = await Financing.create(
                supplier=supplier, core=core, status="submitted", invoice_no=data.invoice_no,
                contract_no=data.contract_no, face_amount=data.face_amount, requested_amount=data.requested_amount,
                due_date=data.due_date, created_by=actor, using_db=conn,
            )
            # The unique (supplier, invoice_no) row is what stops two concurrent submissions of one invoice.
            await FinancedInvoice.create(supplier=supplier, invoice_no=data.invoice_no, financing=financing, using_db=conn)
            for document_id in attachment_ids:
                await FinancingAttachment.create(financing=financing, document_id=document_id, purpose="material",
                                                 using_db=conn)
            await ledger.append(conn, actor=f"user:{actor.id}", subject=subject(financing.id), action="submit", payload={
                "to": "submitted", "supplier": supplier.id, "core": core.id, "invoice_no": data.invoice_no,
                "contract_no": data.contract_no, "face_amount": format_yuan(data.face_amount),
                "requested_amount": format_yuan(data.requested_amount), "due_date": data.due_date.isoformat(),
                "attachments": attachment_ids,
            })
            await outbox.record(conn, subject(financing.id), financing.version, "submit")
    except IntegrityError as exc:
        raise _invoice_taken(data.invoice_no) from exc
    return await Financing.get(id=financing.id)


async def withdraw(actor: User, financing_id: int, body: WithdrawBody | None = None, *,
                   enterprise_id: int | None = None) -> Financing:
    """The supplier withdraws before confirmation; the invoice becomes usable again."""
    acting = await begin(actor, financing_id, "withdraw", enterprise_id)
    reason = body.reason if body else ""

    async def release_invoice(conn) -> None:  # noqa: ANN001
        await FinancedInvoice.filter(financing_id=financing_id).using_db(conn).delete()

    return await commit(acting, "withdrawn", values={"withdrawal_reason": reason}, payload={"reason": reason},
                        side=release_invoice)
