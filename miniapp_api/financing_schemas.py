"""Response models of the financing endpoints; amounts leave as yuan strings ("1234.56"), never floats."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from echain.api import parse_model
from models.enterprises import Enterprise
from models.financing import Financing
from workflow.financing import queries
from workflow.financing.money import CONVENTION, format_yuan, rate_text
from workflow.financing.table import FINANCING, PARTY_LABELS


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else format_yuan(fen)


def _rate(value: Any) -> str | None:
    return None if value is None else str(value)


class PartyOut(BaseModel):
    """An enterprise taking part in a financing."""

    id: int
    name: str

    @classmethod
    def of(cls, e: Enterprise | None) -> PartyOut | None:
        """From the model (None stays None)."""
        return None if e is None else cls(id=e.id, name=e.name)


class FinancingOut(BaseModel):
    """A financing as a list shows it."""

    id: int
    status: str
    status_label: str
    supplier: PartyOut
    core: PartyOut
    funder: PartyOut | None
    invoice_no: str
    contract_no: str
    face_amount: str = Field(description="票面金额（元）")
    requested_amount: str = Field(description="申请融资金额（元）")
    financing_amount: str | None = Field(description="合同融资金额（元）")
    due_date: date
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, f: Financing) -> FinancingOut:
        """From a model whose supplier, core and funder are fetched."""
        return cls(
            id=f.id, status=f.status, status_label=FINANCING.state_labels[f.status],
            supplier=PartyOut.of(f.supplier), core=PartyOut.of(f.core), funder=PartyOut.of(f.funder),
            invoice_no=f.invoice_no, contract_no=f.contract_no, face_amount=format_yuan(f.face_amount),
            requested_amount=format_yuan(f.requested_amount), financing_amount=_yuan(f.financing_amount),
            due_date=f.due_date, created_at=f.created_at, updated_at=f.updated_at,
        )


class FinancingPage(BaseModel):
    """One page, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[FinancingOut]
    next_cursor: str | None


class FinancingListQuery(BaseModel):
    """Filters and paging of the financing list."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(None, title="状态（多个用逗号分隔）", max_length=400)
    perspective: Literal["supplier", "core", "funder"] | None = Field(None, title="视角（以哪种身份参与）")
    counterparty_id: int | None = Field(None, title="对方企业ID", gt=0)
    created_from: date | None = Field(None, title="创建日期起（含）")
    created_to: date | None = Field(None, title="创建日期止（含）")
    cursor: str | None = Field(None, title="翻页游标", max_length=200)
    limit: int = Field(20, title="每页条数", ge=1, le=100)

    def filters(self) -> queries.FinancingFilters:
        """The domain's filter object (status split on commas)."""
        statuses = [s.strip() for s in self.status.split(",") if s.strip()] if self.status else None
        return parse_model(queries.FinancingFilters, {
            "status": statuses, "perspective": self.perspective, "counterparty_id": self.counterparty_id,
            "created_from": self.created_from, "created_to": self.created_to,
        })


class ActingQuery(BaseModel):
    """Which of the caller's enterprises acts (only needed when several could)."""

    model_config = ConfigDict(extra="forbid")

    enterprise_id: int | None = Field(None, title="以哪个企业的身份操作（企业ID）", gt=0)


class NextActionOut(BaseModel):
    """Something the caller may do now."""

    action: str
    label: str
    enterprise_id: int | None
    party: str
    path: str = Field(description="执行该操作的接口路径")


class StepOut(BaseModel):
    """Who the financing waits for."""

    party: str
    party_label: str
    enterprise_id: int | None
    member_roles: list[str]
    action: str
    label: str


class MoneyOut(BaseModel):
    """Principal, interest and fees, with the day-count convention."""

    principal: str
    interest: str
    fee: str
    total_due: str
    days: int
    disbursed_on: date
    due_date: date
    annual_rate: str
    annual_rate_text: str
    advance_rate: str | None
    fee_rate: str
    convention: str = CONVENTION


class AttachmentOut(BaseModel):
    """A document attached to the financing (download at /api/v1/documents/{document_id})."""

    document_id: int
    purpose: str
    kind: str
    filename: str
    content_type: str
    sha256: str


class AllocationOut(BaseModel):
    """An offer of the asset to a funder."""

    funder_id: int
    status: str


class ApprovalOut(BaseModel):
    """A core-enterprise approval decision."""

    approver_id: int
    decision: str
    comment: str
    created_at: datetime


class ContractOut(BaseModel):
    """The current contract version; its PDF: GET `pdf_path`, its signatures checked: GET `verification_path`."""

    id: int
    version: int
    sha256: str  # of the current PDF revision (changes with each signature)
    pdf_path: str
    verification_path: str
    issued_at: datetime
    terms: dict[str, Any]


class SignatureOut(BaseModel):
    """A party's signature on the current contract version."""

    party: str
    party_label: str
    enterprise_id: int
    signer_id: int
    signed_at: datetime


class DisbursementOut(BaseModel):
    """The funder's payment."""

    amount: str
    bank_reference: str
    disbursed_at: datetime
    voucher_document_id: int


class RepaymentOut(BaseModel):
    """The core enterprise's payment at maturity."""

    amount: str
    amount_due: str
    paid_at: datetime
    confirmed_at: datetime | None


class TimelineOut(BaseModel):
    """One recorded step, from the ledger."""

    at: datetime
    action: str
    label: str
    actor: str
    from_state: str | None
    to_state: str | None


class FinancingDetailOut(FinancingOut):
    """Everything the caller may see about one financing, and what they may do next."""

    approvals_required: int | None
    approval_count: int
    rejection_reason: str
    attachments: list[AttachmentOut]
    allocations: list[AllocationOut]
    approvals: list[ApprovalOut]
    contract: ContractOut | None
    signatures: list[SignatureOut]
    disbursement: DisbursementOut | None
    repayment: RepaymentOut | None
    money: MoneyOut | None
    timeline: list[TimelineOut]
    next_actions: list[NextActionOut]
    waiting_for: list[StepOut]

    @classmethod
    def build(cls, d: queries.FinancingDetail, timeline: list[queries.TimelineEntry]) -> FinancingDetailOut:
        """From the domain's detail view."""
        f = d.financing
        return cls(
            **FinancingOut.of(f).model_dump(),
            approvals_required=f.approvals_required, approval_count=f.approval_count,
            rejection_reason=f.rejection_reason,
            attachments=[AttachmentOut(document_id=a.document_id, purpose=a.purpose, kind=a.document.kind,
                                       filename=a.document.filename, content_type=a.document.content_type,
                                       sha256=a.document.sha256) for a in d.attachments],
            allocations=[AllocationOut(funder_id=a.funder_id, status=a.status) for a in d.allocations],
            approvals=[ApprovalOut(approver_id=a.approver_id, decision=a.decision, comment=a.comment,
                                   created_at=a.created_at) for a in d.approvals],
            contract=None if d.contract is None else ContractOut(
                id=d.contract.id, pdf_path=f"/api/v1/contracts/{d.contract.id}/pdf",
                verification_path=f"/api/v1/contracts/{d.contract.id}/verification", version=d.contract.version, sha256=d.contract.sha256, issued_at=d.contract.issued_at,
                terms=d.contract.terms),
            signatures=[SignatureOut(party=s.party, party_label=PARTY_LABELS[s.party], enterprise_id=s.enterprise_id,
                                     signer_id=s.signer_id, signed_at=s.signed_at) for s in d.signatures],
            disbursement=None if d.disbursement is None else DisbursementOut(
                amount=format_yuan(d.disbursement.amount), bank_reference=d.disbursement.bank_reference,
                disbursed_at=d.disbursement.disbursed_at, voucher_document_id=d.disbursement.voucher_id),
            repayment=None if d.repayment is None else RepaymentOut(
                amount=format_yuan(d.repayment.amount), amount_due=format_yuan(d.repayment.amount_due),
                paid_at=d.repayment.paid_at, confirmed_at=d.repayment.confirmed_at),
            money=None if d.quote is None else MoneyOut(
                principal=format_yuan(d.quote.principal), interest=format_yuan(d.quote.interest),
                fee=format_yuan(d.quote.fee), total_due=format_yuan(d.quote.total_due), days=d.quote.days,
                disbursed_on=d.quote.disbursed_on, due_date=d.quote.due_date, annual_rate=str(d.quote.annual_rate),
                annual_rate_text=rate_text(d.quote.annual_rate), advance_rate=_rate(f.advance_rate),
                fee_rate=str(d.quote.fee_rate), convention=d.quote.convention),
            timeline=[TimelineOut(at=t.at, action=t.action, label=t.label, actor=t.actor, from_state=t.from_state,
                                  to_state=t.to_state) for t in timeline],
            next_actions=[NextActionOut(action=a.action, label=a.label, enterprise_id=a.enterprise_id, party=a.party,
                                        path=action_path(f.id, a.action)) for a in d.next_actions],
            waiting_for=[StepOut(party=s.party, party_label=PARTY_LABELS[s.party], enterprise_id=s.enterprise_id,
                                 member_roles=list(s.member_roles), action=s.action, label=s.label)
                         for s in d.waiting_for],
        )


def action_path(financing_id: int, action: str) -> str:
    """The endpoint that performs `action` on a financing."""
    return f"/api/v1/financings/{financing_id}/actions/{action}"


class TodoOut(BaseModel):
    """A financing waiting for the caller, and what to do."""

    financing: FinancingOut
    action: str
    label: str
    enterprise_id: int | None
    party: str
    party_label: str
    path: str


class TodoList(BaseModel):
    """The caller's 待办 across all their enterprises and roles."""

    items: list[TodoOut]


class PolicyOut(BaseModel):
    """A core enterprise's approval tiers."""

    enterprise_id: int
    tiers: list[dict[str, Any]]
    description: list[str]
