"""The financing lifecycle at the domain level, against the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from echain import db, validation
from models.financing import (
    Allocation,
    Contract,
    Disbursement,
    FinancedInvoice,
    Financing,
    FinancingApproval,
    Repayment,
    Signature,
)
from tests.support.factories import (
    CONTRACT_TERMS,
    Cast,
    add_member,
    advance,
    contract_services,
    disburse_body,
    face_ticket,
    financing_input,
    make_cast,
    make_document,
    make_enterprise,
    make_user,
    sign_as,
    submit,
)
from workflow import documents, ledger
from workflow.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from workflow.financing import actions, money, policy, queries, scheduler
from workflow.financing.attachments import readable_via_financing
from workflow.financing.bodies import (
    ACTION_BODIES,
    AllocateBody,
    ApproveBody,
    DeclineBody,
    DisburseBody,
    IssueContractBody,
    PolicyInput,
    RejectBody,
    ReportRepaymentBody,
    ReviseContractBody,
    SignBody,
    WithdrawBody,
)
from workflow.financing.table import FINANCING, markdown_table, who_acts_next
from workflow.financing.transition import china_today, now

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def cast(database_url: str, redis_clean: str, tmp_path: Path) -> AsyncIterator[Cast]:
    """Everyone a financing needs, on a fresh database kept open for the test (no app around it)."""
    redis = Redis.from_url(redis_clean)
    try:
        async with db.database(database_url):
            yield await make_cast(contract_services(redis, tmp_path))
    finally:
        await redis.aclose()


async def _refresh(f: Financing) -> Financing:
    return await Financing.get(id=f.id)


# ---- the whole lifecycle ---------------------------------------------------------------------------------


async def test_happy_path_through_every_action_to_repaid(cast: Cast):
    f = await submit(cast)
    assert f.status == "submitted" and f.face_amount == 100_000_000 and f.requested_amount == 80_000_000
    assert [s.action for s in who_acts_next(f)] == ["claim"]

    f = await actions.claim(cast.core_op, f.id)
    assert (f.status, f.approvals_required) == ("claimed", 1)
    f = await actions.approve(cast.core_approver, f.id, ApproveBody(comment="贸易背景真实"))
    assert f.status == "confirmed"

    f = await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=[cast.funder.id, cast.funder2.id]))
    assert f.status == "allocated"
    f = await actions.subscribe(cast.funder_op, f.id)
    assert (f.status, f.funder_id) == ("subscribed", cast.funder.id)
    statuses = dict(await Allocation.filter(financing_id=f.id).values_list("funder_id", "status"))
    assert statuses == {cast.funder.id: "won", cast.funder2.id: "lost"}

    f = await actions.issue_contract(cast.platform, f.id, IssueContractBody.model_validate(CONTRACT_TERMS), services=cast.services)
    assert (f.status, f.contract_version, f.financing_amount, f.fee_amount) == ("contract_issued", 1, 80_000_000, 400_000)
    assert f.annual_rate == Decimal("0.065")
    for signer, state in ((cast.funder_rep, "signing"), (cast.supplier_rep, "signing"), (cast.core_rep, "signed")):
        f = await sign_as(cast, signer, f.id, 1)
        assert f.status == state
    assert await Signature.filter(financing_id=f.id, voided=False).count() == 3

    voucher = await make_document(cast.funder, cast.funder_op, "voucher")
    f = await actions.disburse(cast.funder_op, f.id, disburse_body(f, voucher.id))
    assert f.status == "disbursed" and f.disbursed_amount == 80_000_000 and f.interest_days == 90
    # 800,000 × 6.5 % × 90 / 360 = 13,000.00 yuan; fee 800,000 × 0.5 % = 4,000.00 yuan
    assert (f.interest_amount, f.total_due) == (1_300_000, 80_000_000 + 1_300_000 + 400_000)

    f = await actions.confirm_receipt(cast.supplier_op, f.id)
    assert f.status == "received"
    f = await actions.report_repayment(cast.core_op, f.id, ReportRepaymentBody(amount="817000.00", paid_at=now()))
    assert f.status == "repayment_reported"
    f = await actions.confirm_repayment(cast.funder_op, f.id)
    assert f.status == "repaid" and f.repaid_at is not None
    assert who_acts_next(f) == []

    repayment = await Repayment.get(financing_id=f.id)
    assert (repayment.amount, repayment.amount_due, repayment.confirmed_by_id) == (81_700_000, 81_700_000, cast.funder_op.id)
    history = await queries.timeline(f)
    assert [e.action for e in history] == [
        "submit", "claim", "approve", "allocate", "subscribe", "issue_contract", "sign", "sign", "sign",
        "disburse", "confirm_receipt", "report_repayment", "confirm_repayment",
    ]
    assert history[-1].from_state == "repayment_reported" and history[-1].to_state == "repaid"
    assert history[9].payload["interest"] == "13000.00" and history[9].payload["convention"] == money.CONVENTION
    result = await ledger.verify()
    assert result.ok, result.reason


# ---- confirmation (确权) ------------------------------------------------------------------------------------


async def test_small_amount_is_confirmed_by_one_approver(cast: Cast):
    f = await advance(cast, "claimed", face_amount="1000000.00", requested_amount="800000.00")
    assert f.approvals_required == 1
    f = await actions.approve(cast.core_approver, f.id)
    assert f.status == "confirmed"


async def test_large_amount_needs_two_distinct_approvers(cast: Cast):
    f = await advance(cast, "claimed", face_amount="1000000.01", requested_amount="900000.00")
    assert f.approvals_required == 2
    f = await actions.approve(cast.core_approver, f.id, ApproveBody(comment="同意"))
    assert (f.status, f.approval_count) == ("claimed", 1)
    with pytest.raises(Conflict) as err:
        await actions.approve(cast.core_approver, f.id)
    assert err.value.code == "already_approved" and "只能同意一次" in err.value.message
    # The first approver no longer sees it as a to-do; the second one does.
    assert [t.action for t in await queries.todos(cast.core_approver)] == []
    assert [(t.financing.id, t.action) for t in await queries.todos(cast.core_approver2)] == [(f.id, "approve")]
    f = await actions.approve(cast.core_approver2, f.id)
    assert (f.status, f.approval_count) == ("confirmed", 2)
    assert await FinancingApproval.filter(financing_id=f.id, decision="approve").count() == 2


async def test_two_approvers_at_the_same_moment_both_count(cast: Cast):
    f = await advance(cast, "claimed", face_amount="2000000.00", requested_amount="1000000.00")
    results = await asyncio.gather(actions.approve(cast.core_approver, f.id), actions.approve(cast.core_approver2, f.id))
    assert {r.status for r in results} <= {"claimed", "confirmed"}
    f = await _refresh(f)
    assert (f.status, f.approval_count) == ("confirmed", 2)


async def test_configured_policy_tiers_and_quorum_fixed_at_claim(cast: Cast):
    tiers = PolicyInput.model_validate({"tiers": [{"up_to": "100000.00", "approvers": 1},
                                                  {"up_to": "5000000.00", "approvers": 2},
                                                  {"up_to": None, "approvers": 3}]})
    await policy.set_policy(cast.core.created_by, cast.core.id, tiers)  # the core's admin
    assert policy.required_approvers((await policy.tiers_for(cast.core.id)), 100_000_00) == 1
    assert policy.required_approvers((await policy.tiers_for(cast.core.id)), 100_000_01) == 2
    assert policy.required_approvers((await policy.tiers_for(cast.core.id)), 500_000_001) == 3
    f = await advance(cast, "claimed")  # 1,000,000 yuan → second tier
    assert f.approvals_required == 2
    # A later policy change does not move the goalposts of a financing already under approval.
    await policy.set_policy(cast.core.created_by, cast.core.id, PolicyInput.model_validate(
        {"tiers": [{"up_to": None, "approvers": 1}]}))
    f = await actions.approve(cast.core_approver, f.id)
    assert f.status == "claimed"
    with pytest.raises(Forbidden):
        await policy.set_policy(cast.core_op, cast.core.id, tiers)
    with pytest.raises(ValidationError, match="最后一档"):
        PolicyInput.model_validate({"tiers": [{"up_to": "100.00", "approvers": 1}]})
    with pytest.raises(ValidationError, match="从小到大"):
        PolicyInput.model_validate({"tiers": [{"up_to": "100.00", "approvers": 1}, {"up_to": "50.00", "approvers": 2},
                                              {"approvers": 3}]})
    assert policy.describe(policy.DEFAULT_TIERS) == ["不超过 1000000.00 元：需 1 名不同审批人同意",
                                                     "超过 1000000.00 元：需 2 名不同审批人同意"]


async def test_reject_needs_a_reason_and_releases_the_invoice(cast: Cast):
    f = await advance(cast, "claimed")
    with pytest.raises(ValidationError):
        RejectBody(reason="   ")
    with pytest.raises(InvalidInput) as err:
        await actions.reject(cast.core_approver, f.id, RejectBody.model_construct(reason="  "))
    assert err.value.code == "reason_required"
    f = await actions.reject(cast.core_op, f.id, RejectBody(reason="发票与贸易合同金额不符"))
    assert (f.status, f.rejection_reason) == ("rejected", "发票与贸易合同金额不符")
    with pytest.raises(Conflict) as err:
        await actions.claim(cast.core_op, f.id)
    assert err.value.code == "invalid_state" and "确权已驳回" in err.value.message
    # The same invoice may back a corrected application.
    again = await submit(cast, invoice_no=f.invoice_no)
    assert again.status == "submitted"


async def test_withdraw_then_the_invoice_can_be_used_again_but_never_twice_at_once(cast: Cast):
    f = await submit(cast)
    with pytest.raises(Conflict) as err:
        await submit(cast, invoice_no=f.invoice_no)
    assert err.value.code == "invoice_in_use"
    f = await actions.withdraw(cast.supplier_op, f.id, WithdrawBody(reason="客户已直接付款"))
    assert f.status == "withdrawn" and not await FinancedInvoice.exists(financing_id=f.id)
    assert (await submit(cast, invoice_no=f.invoice_no)).status == "submitted"


# ---- allocation and subscription ---------------------------------------------------------------------------


async def test_all_funders_decline_then_the_platform_reallocates(cast: Cast):
    f = await advance(cast, "confirmed")
    f = await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=[cast.funder.id, cast.funder2.id]))
    with pytest.raises(Conflict) as err:
        await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=[cast.funder2.id]))
    assert err.value.code == "allocation_open"
    assert {(s.party, s.enterprise_id, s.action) for s in await queries.waiting_for(f)} == {
        ("funder", cast.funder.id, "subscribe"), ("funder", cast.funder2.id, "subscribe")}
    await actions.decline(cast.funder_op, f.id, DeclineBody(reason="额度不足"))
    with pytest.raises(Conflict) as err:
        await actions.decline(cast.funder_op, f.id)
    assert err.value.code == "allocation_declined"
    with pytest.raises(Conflict) as err:
        await actions.subscribe(cast.funder_op, f.id)
    assert err.value.code == "allocation_declined"
    f = await actions.decline(cast.funder2_op, f.id)
    assert f.status == "allocated"
    assert [(t.action, t.enterprise_id) for t in await queries.todos(cast.platform)] == [("allocate", None)]
    # Re-allocation, including to a funder that declined before.
    f = await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=[cast.funder.id]))
    assert await Allocation.get(financing_id=f.id, funder_id=cast.funder.id).values_list("status", flat=True) == "allocated"
    f = await actions.subscribe(cast.funder_op, f.id)
    assert f.funder_id == cast.funder.id
    statuses = dict(await Allocation.filter(financing_id=f.id).values_list("funder_id", "status"))
    assert statuses == {cast.funder.id: "won", cast.funder2.id: "declined"}


async def test_allocation_refuses_ineligible_funders(cast: Cast):
    f = await advance(cast, "confirmed")
    pending = await make_enterprise("待审核资金方", ("funder",), await make_user("x"), status="pending_review")
    for ids in ([pending.id], [cast.core.id], [cast.supplier.id], [999_999]):
        with pytest.raises(InvalidInput):
            await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=ids))
    with pytest.raises(Forbidden) as err:
        await actions.allocate(cast.core_op, f.id, AllocateBody(funder_ids=[cast.funder.id]))
    assert err.value.code == "platform_operator_required"


async def test_subscribe_by_a_funder_not_allocated_is_refused(cast: Cast):
    f = await advance(cast, "allocated")  # allocated to cast.funder only
    with pytest.raises(NotFound):  # funder2 may not even learn the financing exists
        await actions.subscribe(cast.funder2_op, f.id)
    # An enterprise that was allocated and lost hears why.
    f = await actions.subscribe(cast.funder_op, f.id)
    assert f.status == "subscribed"


async def test_fifty_concurrent_subscriptions_have_exactly_one_winner(cast: Cast):
    f = await advance(cast, "confirmed")
    funders, operators = [], []
    admin = await make_user("funders-admin")
    for i in range(50):
        funder = await make_enterprise(f"资金方{i:02d}", ("funder",), admin)
        funders.append(funder.id)
        operators.append(await add_member(funder, f"op{i}", "operator"))
    await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=funders))
    results = await asyncio.gather(*(actions.subscribe(op, f.id) for op in operators), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Financing)]
    losers = [r for r in results if not isinstance(r, Financing)]
    assert len(winners) == 1, [r for r in results if not isinstance(r, Conflict | Financing)]
    assert len(losers) == 49 and all(isinstance(r, Conflict) for r in losers)
    assert {r.message for r in losers} == {"该资产已被其他资金方认购"}
    f = await _refresh(f)
    assert f.status == "subscribed" and f.funder_id == winners[0].funder_id
    statuses = await Allocation.filter(financing_id=f.id).values_list("status", flat=True)
    assert sorted(statuses).count("won") == 1 and statuses.count("lost") == 49
    assert (await ledger.verify()).ok


# ---- the contract and its signatures ----------------------------------------------------------------------


async def test_signing_out_of_order_is_refused_naming_whose_turn(cast: Cast):
    f = await advance(cast, "contract_issued")
    with pytest.raises(Conflict) as err:
        await sign_as(cast, cast.supplier_rep, f.id, 1)
    assert err.value.code == "not_your_turn"
    assert "当前应由资金方（齐鲁保理有限公司）签署" in err.value.message
    f = await sign_as(cast, cast.funder_rep, f.id, 1)
    with pytest.raises(Conflict) as err:
        await sign_as(cast, cast.funder_rep, f.id, 1)
    assert err.value.code == "already_signed"
    with pytest.raises(Conflict) as err:
        await sign_as(cast, cast.core_rep, f.id, 1)
    assert "当前应由资产方（供应商）（山东供货有限公司）签署" in err.value.message
    with pytest.raises(Forbidden) as err:  # right party, but an operator is not a signatory
        await sign_as(cast, cast.supplier_op, f.id, 1)
    assert err.value.code == "member_role_required" and "法定代表人" in err.value.message
    assert [(t.action, t.enterprise_id) for t in await queries.todos(cast.supplier_rep)] == [("sign", cast.supplier.id)]
    assert await queries.todos(cast.core_rep) == []


async def test_revise_contract_voids_signatures_and_restarts_signing(cast: Cast):
    f = await advance(cast, "signing")
    f = await sign_as(cast, cast.supplier_rep, f.id, 1)
    assert f.signature_count == 2
    f = await actions.revise_contract(cast.platform, f.id, ReviseContractBody(reason="利率调整", annual_rate=Decimal("0.06")), services=cast.services)
    assert (f.status, f.contract_version, f.signature_count, f.annual_rate) == ("contract_issued", 2, 0, Decimal("0.06"))
    assert f.financing_amount == 80_000_000  # unchanged terms are kept
    assert await Signature.filter(financing_id=f.id, voided=True).count() == 2
    old, new = await Contract.filter(financing_id=f.id).order_by("version")
    assert old.voided_at is not None and old.void_reason == "利率调整" and new.voided_at is None
    assert old.sha256 != new.sha256
    with pytest.raises(Conflict) as err:  # a stale screen cannot sign the revised contract unseen
        await sign_as(cast, cast.funder_rep, f.id, 1)
    assert err.value.code == "contract_revised" and "第 2 版" in err.value.message
    for signer in (cast.funder_rep, cast.supplier_rep, cast.core_rep):
        f = await sign_as(cast, signer, f.id, 2)
    assert f.status == "signed"
    with pytest.raises(Conflict) as err:
        await actions.revise_contract(cast.platform, f.id, ReviseContractBody(reason="太晚了"), services=cast.services)
    assert err.value.code == "invalid_state"


async def test_contract_terms_respect_the_advance_limit_and_the_request(cast: Cast):
    f = await advance(cast, "subscribed")
    too_much = IssueContractBody.model_validate(CONTRACT_TERMS | {"advance_rate": "0.7"})  # limit 700,000
    with pytest.raises(InvalidInput) as err:
        await actions.issue_contract(cast.platform, f.id, too_much, services=cast.services)
    assert err.value.code == "advance_limit_exceeded" and "700000.00" in err.value.message
    over_request = IssueContractBody.model_validate(CONTRACT_TERMS | {"advance_rate": "0.9", "financing_amount": "850000"})
    with pytest.raises(InvalidInput) as err:
        await actions.issue_contract(cast.platform, f.id, over_request, services=cast.services)
    assert err.value.code == "exceeds_requested"
    with pytest.raises(ValidationError) as invalid:
        IssueContractBody.model_validate(CONTRACT_TERMS | {"annual_rate": "0.0650001"})
    assert "最终年化利率（小数，如 0.065 表示 6.5%）最多保留6位小数" in validation.describe(invalid.value, IssueContractBody)[0]
    with pytest.raises(ValidationError):  # 6.5 meant as a percentage is refused, not read as 650 %
        IssueContractBody.model_validate(CONTRACT_TERMS | {"annual_rate": "6.5"})


# ---- money moving -----------------------------------------------------------------------------------------


async def test_disbursement_guards(cast: Cast):
    f = await advance(cast, "signed")
    voucher = await make_document(cast.funder, cast.funder_op, "voucher")
    wrong = disburse_body(f, voucher.id).model_copy(update={"amount": 79_999_999})
    with pytest.raises(InvalidInput) as err:
        await actions.disburse(cast.funder_op, f.id, wrong)
    assert err.value.code == "amount_mismatch" and "800000.00" in err.value.message
    foreign_voucher = await make_document(cast.supplier, cast.supplier_op, "voucher")
    with pytest.raises(InvalidInput) as err:
        await actions.disburse(cast.funder_op, f.id, disburse_body(f, foreign_voucher.id))
    assert err.value.code == "invalid_document"
    not_a_voucher = await make_document(cast.funder, cast.funder_op, "other")
    with pytest.raises(InvalidInput):
        await actions.disburse(cast.funder_op, f.id, disburse_body(f, not_a_voucher.id))
    with pytest.raises(InvalidInput) as err:
        await actions.disburse(cast.funder_op, f.id, disburse_body(f, voucher.id, at=now() + timedelta(days=1)))
    assert err.value.code == "time_in_future"
    with pytest.raises(InvalidInput) as err:
        await actions.disburse(cast.funder_op, f.id, disburse_body(f, voucher.id, at=now() - timedelta(days=3)))
    assert err.value.code == "disbursed_before_signing"
    f = await actions.disburse(cast.funder_op, f.id, disburse_body(f, voucher.id))
    with pytest.raises(Conflict):
        await actions.disburse(cast.funder_op, f.id, disburse_body(f, voucher.id))
    assert await Disbursement.filter(financing_id=f.id).count() == 1


async def test_fifty_concurrent_disbursements_of_twenty_financings_pay_each_once(cast: Cast):
    financings = [await advance(cast, "signed") for _ in range(20)]
    vouchers = {f.id: await make_document(cast.funder, cast.funder_op, "voucher") for f in financings}
    attempts = [actions.disburse(cast.funder_op, f.id, disburse_body(f, vouchers[f.id].id))
                for _ in range(50) for f in financings]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    unexpected = [r for r in results if not isinstance(r, Financing | Conflict)]
    assert not unexpected, unexpected[:3]
    assert sum(isinstance(r, Financing) for r in results) == 20
    assert await Disbursement.all().count() == 20
    for f in financings:
        fresh = await _refresh(f)
        assert fresh.status == "disbursed" and fresh.version == f.version + 1
    entries = [e for e in await ledger.entries_for(f"financing:{financings[0].id}") if e.action == "disburse"]
    assert len(entries) == 1
    assert (await ledger.verify()).ok


async def test_repayment_must_cover_the_total_due(cast: Cast):
    f = await advance(cast, "received")
    short = money.format_yuan(f.total_due - 1)
    with pytest.raises(InvalidInput) as err:
        await actions.report_repayment(cast.core_op, f.id, ReportRepaymentBody(amount=short, paid_at=now()))
    assert err.value.code == "repayment_short" and "817000.00" in err.value.message
    proof = await make_document(cast.supplier, cast.supplier_op, "repayment_proof")  # not the core's own
    body = ReportRepaymentBody(amount="817000.00", paid_at=now(), proof_document_id=proof.id)
    with pytest.raises(InvalidInput):
        await actions.report_repayment(cast.core_op, f.id, body)
    own = await make_document(cast.core, cast.core_op, "repayment_proof")
    f = await actions.report_repayment(cast.core_op, f.id, body.model_copy(update={"proof_document_id": own.id}))
    assert f.status == "repayment_reported"
    # The funder (a party) may read the core's proof through the financing; the foreign admin may not.
    assert await readable_via_financing(cast.funder_op, own.id)
    assert not await readable_via_financing(cast.foreign_admin, own.id)


async def test_overdue_scheduler_is_idempotent(cast: Cast):
    f = await advance(cast, "received")
    due = f.due_date
    assert await scheduler.mark_overdue_due(due + timedelta(days=3)) == 0  # still inside the grace period
    assert await scheduler.mark_overdue_due(due + timedelta(days=4)) == 1
    assert await scheduler.mark_overdue_due(due + timedelta(days=4)) == 0
    assert await scheduler.mark_overdue_due(due + timedelta(days=40), grace_days=0) == 0
    f = await _refresh(f)
    assert f.status == "overdue" and f.overdue_at is not None
    entry = (await ledger.entries_for(f"financing:{f.id}"))[-1]
    assert (entry.actor, entry.action, entry.payload["grace_days"]) == ("system", "mark_overdue", 3)
    # Repayment is still possible from overdue.
    f = await advance(cast, "repaid", f)
    assert f.status == "repaid"
    with pytest.raises(Forbidden) as err:
        await actions.perform(cast.platform, f.id, "mark_overdue")
    assert err.value.code == "system_action"


# ---- who may do what ---------------------------------------------------------------------------------------

ROLES = ("supplier_op", "supplier_rep", "core_op", "core_approver", "funder_op", "funder_rep", "platform",
         "foreign_admin", "nobody")
OUTSIDERS = ("foreign_admin", "nobody")

# action → (state the financing must be in, roles that may act)
MATRIX: dict[str, tuple[str, tuple[str, ...]]] = {
    "submit": ("", ("supplier_op",)),
    "withdraw": ("submitted", ("supplier_op",)),
    "claim": ("submitted", ("core_op",)),
    "approve": ("claimed", ("core_approver",)),
    "reject": ("claimed", ("core_approver", "core_op")),
    "allocate": ("confirmed", ("platform",)),
    "subscribe": ("allocated", ("funder_op",)),
    "decline": ("allocated", ("funder_op",)),
    "issue_contract": ("subscribed", ("platform",)),
    "revise_contract": ("contract_issued", ("platform",)),
    "sign": ("contract_issued", ("funder_rep",)),
    "disburse": ("signed", ("funder_op",)),
    "confirm_receipt": ("disbursed", ("supplier_op",)),
    "report_repayment": ("received", ("core_op",)),
    "confirm_repayment": ("repayment_reported", ("funder_op",)),
    "mark_overdue": ("received", ()),
}


async def _body(cast: Cast, action: str, f: Financing | None):
    if action == "submit":
        return financing_input(cast, [(await cast.material()).id])
    if action == "disburse":
        return disburse_body(f, (await make_document(cast.funder, cast.funder_op, "voucher")).id)
    if action == "report_repayment":
        return ReportRepaymentBody(amount=money.format_yuan(f.total_due), paid_at=now())
    bodies = {
        "withdraw": WithdrawBody(), "approve": ApproveBody(), "reject": RejectBody(reason="材料不全"),
        "allocate": AllocateBody(funder_ids=[cast.funder.id]), "decline": DeclineBody(),
        "issue_contract": IssueContractBody.model_validate(CONTRACT_TERMS),
        "revise_contract": ReviseContractBody(reason="更正合同条款"),
    }
    return bodies.get(action)


async def _attempt(cast: Cast, who: str, action: str, f: Financing | None):
    user = getattr(cast, who)
    body = await _body(cast, action, f)
    if action == "sign":
        body = SignBody(contract_version=1, face_ticket=await face_ticket(cast, user, f.id, 1))
    if action == "submit":
        return await actions.create_financing(user, body)
    return await actions.perform(user, f.id, action, body, services=cast.services)


def _expected_refusal(who: str, action: str, state: str) -> tuple[type[DomainError], str | None]:
    if action == "mark_overdue":
        return Forbidden, "system_action"
    if who in OUTSIDERS:
        return NotFound, None
    if who.startswith("funder") and state in ("submitted", "claimed", "confirmed"):
        return NotFound, None  # no funder takes part before the platform allocates
    if action == "submit":  # a person outside the supplier enterprise cannot even see it
        return (Forbidden, "member_role_required") if who == "supplier_rep" else (NotFound, None)
    if action == "sign" and who == "supplier_rep":  # right role, wrong turn
        return Conflict, "not_your_turn"
    return Forbidden, None


@pytest.mark.parametrize("action", list(MATRIX))
async def test_authorisation_matrix(cast: Cast, action: str):
    state, allowed = MATRIX[action]
    f = await advance(cast, state) if state else None
    for who in ROLES:
        if who in allowed:
            continue
        kind, code = _expected_refusal(who, action, state)
        with pytest.raises(DomainError) as err:
            await _attempt(cast, who, action, f)
        assert type(err.value) is kind, (who, action, err.value.code, err.value.message)
        assert code is None or err.value.code == code, (who, action, err.value.code)
        if f is not None:
            assert (await _refresh(f)).version == f.version, (who, action)  # nothing moved
    for who in allowed:
        target = await advance(cast, state) if state else None
        result = await _attempt(cast, who, action, target)
        assert result.status in FINANCING.transition(action).targets, (who, action)


async def test_a_member_of_several_acting_enterprises_must_choose(cast: Cast):
    f = await advance(cast, "confirmed")
    await actions.allocate(cast.platform, f.id, AllocateBody(funder_ids=[cast.funder.id, cast.funder2.id]))
    both = await add_member(cast.funder, "two-hats", "operator")
    from models.people import Membership

    await Membership.create(user=both, enterprise=cast.funder2, roles=["operator"])
    with pytest.raises(InvalidInput) as err:
        await actions.subscribe(both, f.id)
    assert err.value.code == "enterprise_ambiguous"
    with pytest.raises(NotFound):
        await actions.subscribe(both, f.id, enterprise_id=cast.core.id)
    f = await actions.subscribe(both, f.id, enterprise_id=cast.funder2.id)
    assert f.funder_id == cast.funder2.id
    with pytest.raises(Conflict) as err:
        await actions.subscribe(cast.funder_op, f.id)
    assert err.value.message == "该资产已被其他资金方认购"


async def test_perform_checks_the_body(cast: Cast):
    f = await submit(cast)
    with pytest.raises(InvalidInput) as err:
        await actions.perform(cast.core_op, f.id, "claim", ApproveBody())
    assert err.value.code == "unexpected_body"
    f = await actions.perform(cast.core_op, f.id, "claim")
    with pytest.raises(InvalidInput) as err:
        await actions.perform(cast.core_approver, f.id, "reject")
    assert err.value.code == "body_required"
    f = await actions.perform(cast.core_approver, f.id, "approve")  # every ApproveBody field is optional
    assert f.status == "confirmed"
    with pytest.raises(NotFound):
        await actions.perform(cast.platform, f.id, "teleport")
    with pytest.raises(InvalidInput):
        await actions.perform(cast.platform, f.id, "submit")
    with pytest.raises(NotFound):
        await actions.perform(cast.platform, 987_654, "claim")


# ---- submission ---------------------------------------------------------------------------------------------


async def test_submission_checks_enterprises_amounts_dates_and_attachments(cast: Cast):
    doc = await cast.material()
    pending_admin = await make_user("pending-admin")
    pending = await make_enterprise("审核中供货商", ("supplier",), pending_admin, status="pending_review")
    with pytest.raises(Conflict) as err:
        await actions.create_financing(pending_admin, financing_input(cast, [doc.id], supplier_id=pending.id))
    assert err.value.code == "enterprise_not_approved" and "待平台审核" in err.value.message
    with pytest.raises(Conflict) as err:  # a funder enterprise is not a core enterprise
        await actions.create_financing(cast.supplier_op, financing_input(cast, [doc.id], core_id=cast.funder.id))
    assert err.value.code == "core_not_eligible"
    with pytest.raises(InvalidInput) as err:
        await actions.create_financing(cast.supplier_op, financing_input(cast, [doc.id], core_id=cast.supplier.id))
    assert err.value.code == "same_enterprise"
    with pytest.raises(InvalidInput) as err:
        await actions.create_financing(cast.supplier_op, financing_input(cast, [doc.id], requested_amount="1000000.01"))
    assert err.value.code == "requested_exceeds_face"
    with pytest.raises(InvalidInput) as err:
        await actions.create_financing(cast.supplier_op, financing_input(cast, [doc.id], due_date=china_today() - timedelta(days=1)))
    assert err.value.code == "due_date_past"
    core_doc = await make_document(cast.core, cast.core_op, "invoice")
    with pytest.raises(InvalidInput) as err:
        await actions.create_financing(cast.supplier_op, financing_input(cast, [doc.id, core_doc.id]))
    assert err.value.code == "attachment_not_owned" and str(core_doc.id) in err.value.message
    id_card = await make_document(cast.supplier, cast.supplier_op, "id_card_front")
    with pytest.raises(InvalidInput) as err:
        await actions.create_financing(cast.supplier_op, financing_input(cast, [id_card.id]))
    assert err.value.code == "attachment_kind" and "身份证人像面" in err.value.message
    with pytest.raises(ValidationError, match="最多保留两位小数"):
        financing_input(cast, [doc.id], face_amount="100.001")
    with pytest.raises(ValidationError, match="字符串"):
        financing_input(cast, [doc.id], face_amount=100.5)


# ---- reads: lists, to-dos, documents --------------------------------------------------------------------------


async def test_lists_show_each_party_only_its_own_financings(cast: Cast):
    first = await advance(cast, "subscribed")
    second = await advance(cast, "submitted")
    other_supplier = await make_enterprise("另一家供货商", ("supplier",), await make_user("other-admin"))
    other_op = await add_member(other_supplier, "other-op", "operator")
    doc = await make_document(other_supplier, other_op, "invoice")
    third = await actions.create_financing(other_op, financing_input(cast, [doc.id], supplier_id=other_supplier.id))

    async def ids(user, **filters):
        page = await queries.list_financings(user, queries.FinancingFilters(**filters))
        return [f.id for f in page.items]

    assert await ids(cast.supplier_op) == [second.id, first.id]
    assert await ids(cast.core_op) == [third.id, second.id, first.id]
    assert await ids(cast.funder_op) == [first.id]
    assert await ids(cast.funder2_op) == []
    assert await ids(cast.platform) == [third.id, second.id, first.id]
    assert await ids(cast.foreign_admin) == [] and await ids(cast.nobody) == []
    assert await ids(cast.core_op, status=["submitted"]) == [third.id, second.id]
    assert await ids(cast.core_op, counterparty_id=other_supplier.id) == [third.id]
    assert await ids(cast.core_op, perspective="supplier") == []
    assert await ids(cast.funder_op, perspective="funder") == [first.id]
    today = china_today()
    assert await ids(cast.platform, created_from=today - timedelta(days=1), created_to=today + timedelta(days=1)) == [
        third.id, second.id, first.id]
    assert await ids(cast.platform, created_to=today - timedelta(days=2)) == []
    with pytest.raises(NotFound):
        await queries.get_financing(cast.foreign_admin, first.id)
    with pytest.raises(NotFound):
        await queries.get_financing(cast.funder2_op, second.id)
    assert (await queries.get_financing(cast.funder_op, first.id)).id == first.id
    assert await queries.todos(cast.foreign_admin) == [] and await queries.todos(cast.nobody) == []
    with pytest.raises(ValidationError):
        queries.FinancingFilters(status=["flying"])


async def test_keyset_pagination_walks_every_visible_financing_once(cast: Cast):
    made = [(await submit(cast)).id for _ in range(7)]
    seen, cursor = [], None
    while True:
        page = await queries.list_financings(cast.core_op, cursor=cursor, limit=3)
        seen += [f.id for f in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(made, reverse=True)
    with pytest.raises(InvalidInput) as err:
        await queries.list_financings(cast.core_op, cursor="not-a-cursor")
    assert err.value.code == "invalid_cursor"
    with pytest.raises(InvalidInput):
        await queries.list_financings(cast.core_op, limit=0)


async def test_todos_and_next_actions_follow_the_table(cast: Cast):
    f = await submit(cast)
    assert [(t.financing.id, t.action) for t in await queries.todos(cast.core_op)] == [(f.id, "claim")]
    assert await queries.todos(cast.supplier_op) == []  # withdrawing is possible, but nobody waits for it
    assert [a.action for a in await queries.next_actions(cast.supplier_op, f)] == ["withdraw"]
    assert [a.action for a in await queries.next_actions(cast.core_op, f)] == ["claim"]
    assert await queries.next_actions(cast.core_approver, f) == []
    f = await advance(cast, "claimed", f)
    assert [a.action for a in await queries.next_actions(cast.core_approver, f)] == ["approve", "reject"]
    assert [a.action for a in await queries.next_actions(cast.core_op, f)] == ["reject"]
    f = await advance(cast, "confirmed", f)
    assert [(t.action, t.party_label) for t in await queries.todos(cast.platform)] == [("allocate", "平台运营")]
    f = await advance(cast, "allocated", f)
    assert [a.action for a in await queries.next_actions(cast.funder_op, f)] == ["subscribe", "decline"]
    with pytest.raises(NotFound):
        await queries.next_actions(cast.funder2_op, f)
    detail = await queries.detail(cast.funder_op, f.id)
    assert [a.funder_id for a in detail.allocations] == [cast.funder.id] and detail.contract is None
    f = await advance(cast, "signed", f)
    detail = await queries.detail(cast.supplier_op, f.id)
    assert detail.contract.version == 1 and len(detail.signatures) == 3 and detail.allocations == []
    assert detail.quote.principal == 80_000_000 and detail.quote.convention == money.CONVENTION
    assert [s.action for s in detail.waiting_for] == ["disburse"]
    assert [(t.action, t.enterprise_id) for t in await queries.todos(cast.funder_op)] == [("disburse", cast.funder.id)]


async def test_parties_may_download_documents_of_their_financing(cast: Cast, tmp_path: Path):
    stored = {}

    class Storage:
        async def get(self, sha: str) -> bytes:
            return stored[sha]

    deps = SimpleNamespace(storage=Storage())
    f = await advance(cast, "allocated")
    invoice_id = (await f.attachments.all())[0].document_id
    doc = await documents.Document.get(id=invoice_id)
    stored[doc.sha256] = b"%PDF-1.4"
    assert (await documents.fetch(deps, cast.core_op, invoice_id)).data == b"%PDF-1.4"
    assert (await documents.fetch(deps, cast.funder_op, invoice_id)).data  # allocated funder reads the material
    for outsider in (cast.funder2_op, cast.foreign_admin, cast.nobody):
        with pytest.raises(NotFound):
            await documents.fetch(deps, outsider, invoice_id)
    # A voucher is for the principals only: an allocated funder that lost the race may not read it.
    await actions.allocate(cast.platform, (f := await advance(cast, "confirmed")).id,
                           AllocateBody(funder_ids=[cast.funder.id, cast.funder2.id]))
    f = await advance(cast, "disbursed", await _refresh(f))
    voucher_id = f.voucher_id
    assert await readable_via_financing(cast.supplier_op, voucher_id)
    assert not await readable_via_financing(cast.funder2_op, voucher_id)
    material = (await f.attachments.filter(purpose="material"))[0].document_id
    assert await readable_via_financing(cast.funder2_op, material)


# ---- money math -----------------------------------------------------------------------------------------------


def test_yuan_parsing_is_exact():
    assert money.parse_yuan("1234.56") == 123456
    assert money.parse_yuan("1234.5") == 123450
    assert money.parse_yuan(" 0.01 ") == 1
    assert money.parse_yuan("100000000000") == money.MAX_FEN
    assert money.format_yuan(123456) == "1234.56" and money.format_yuan(5) == "0.05"
    cases = {
        "1.234": "最多保留两位小数", "-5": "不能为负数", "0": "必须大于 0", "0.00": "必须大于 0",
        "1e5": "格式不正确", "1,000": "格式不正确", "": "格式不正确", ".5": "格式不正确", "１２": "格式不正确",
        "100000000000.01": "过大",
    }
    for text, message in cases.items():
        with pytest.raises(money.AmountError, match=message):
            money.parse_yuan(text)
    for not_text in (12.5, 12, None, True):
        with pytest.raises(money.AmountError, match="字符串"):
            money.parse_yuan(not_text)


def test_interest_counts_actual_days_over_360_first_day_not_last():
    assert money.interest_days(date(2024, 2, 1), date(2024, 3, 1)) == 29  # leap year: 29 February counts
    assert money.interest_days(date(2023, 2, 1), date(2023, 3, 1)) == 28
    assert money.interest_days(date(2024, 1, 1), date(2025, 1, 1)) == 366
    # 1,000,000.00 × 6 % × 29 / 360 = 4,833.333… → 4,833.33
    assert money.interest(100_000_000, Decimal("0.06"), 29) == 483_333
    # 100.00 × 3.6 % × 5 / 360 = 0.05 exactly; 100.00 × 1.8 % × 5 / 360 = 0.025 → half-up 0.03
    assert money.interest(10_000, Decimal("0.036"), 5) == 5
    assert money.interest(10_000, Decimal("0.018"), 5) == 3
    assert money.fee(101, Decimal("0.005")) == 1  # 0.505 fen → 1 fen
    assert money.fee(99, Decimal("0.005")) == 0  # 0.495 fen → 0 fen
    assert money.advance_limit(100_000_001, Decimal("0.8")) == 80_000_000  # 80,000,000.8 fen, rounded down


def test_quote_states_the_convention():
    terms = money.Terms(financing_amount=80_000_000, annual_rate=Decimal("0.065"), fee_rate=Decimal("0.005"),
                        due_date=date(2024, 3, 1))
    q = money.quote(terms, date(2024, 2, 1))
    assert (q.principal, q.days, q.fee) == (80_000_000, 29, 400_000)
    assert q.interest == 418_889  # 800,000 × 6.5 % × 29 / 360 = 4,188.888… → 4,188.89
    assert q.total_due == 80_000_000 + 418_889 + 400_000
    assert q.convention == "按实际天数/360 计息，计头不计尾"
    with pytest.raises(money.AmountError, match="须早于到期日"):
        money.quote(terms, date(2024, 3, 1))
    assert money.rate_text(Decimal("0.065000")) == "6.5%"


# ---- the table and its documentation ------------------------------------------------------------------------


def test_docs_lifecycle_is_generated_from_the_table():
    assert (ROOT / "docs" / "lifecycle.md").read_text(encoding="utf-8") == markdown_table()


def test_action_bodies_match_the_table():
    people_actions = [a for a in FINANCING.actions if a not in ("submit", "mark_overdue")]
    assert list(ACTION_BODIES) == people_actions
    for action, model in ACTION_BODIES.items():
        declared = FINANCING.transition(action).body
        assert (model.__name__ if model else None) == declared, action
        for name, info in (model.model_fields.items() if model else ()):
            assert info.title, f"{model.__name__}.{name} lacks a Chinese title"
    assert set(actions.HANDLERS) == set(ACTION_BODIES)
    assert FINANCING.terminal_states == ["rejected", "withdrawn", "repaid"]
    schema = DisburseBody.model_json_schema()
    assert schema["properties"]["amount"]["type"] == "string"


async def test_jobs_run_due_cli_marks_overdue(cast: Cast, database_url: str, tmp_path: Path):
    from echain.settings import Settings
    from tests.support.cli import run_cli

    f = await advance(cast, "received")
    # The receivable fell due long ago: push its due date into the past, as time would.
    await Financing.filter(id=f.id).update(due_date=china_today() - timedelta(days=10))
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    result = await run_cli(settings, "jobs", "run-due")
    assert result.returncode == 0, result.stderr
    assert "1 笔融资标记为逾期" in result.stdout
    assert (await _refresh(f)).status == "overdue"
    again = await run_cli(settings, "jobs", "run-due")
    assert "0 笔融资标记为逾期" in again.stdout


async def test_the_long_running_worker_runs_due_transitions_every_hour(cast: Cast, tmp_path: Path):
    from echain.settings import Settings
    from echain.worker import SCHEDULE, WorkerSettings, run_due, worker_options

    # `echain worker` (not --burst) and `arq echain.worker.WorkerSettings` carry the hourly job; burst runs do not.
    assert worker_options(scheduled=True)["cron_jobs"] == SCHEDULE == WorkerSettings.cron_jobs
    assert "cron_jobs" not in worker_options()
    (job,) = SCHEDULE
    assert job.name == "run_due" and job.unique and job.minute == 7 and job.coroutine is run_due
    f = await advance(cast, "received")
    await Financing.filter(id=f.id).update(due_date=china_today() - timedelta(days=10))
    ctx = {"settings": Settings(data_dir=tmp_path, overdue_grace_days=3)}
    assert await run_due(ctx) == 1 and (await _refresh(f)).status == "overdue"
    assert await run_due(ctx) == 0
