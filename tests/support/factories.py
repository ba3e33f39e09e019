"""Domain-level factories: people, enterprises, documents and financings straight through the ORM and use cases."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from redis.asyncio import Redis

from biometric.tickets import issue_ticket
from echain.storage import LocalBlobStorage
from models.documents import Document
from models.enterprises import Enterprise
from models.financing import Financing
from models.people import Membership, User
from signing import PlatformCA
from tests.support.api import new_uscc
from workflow.financing import actions
from workflow.financing.bodies import (
    AllocateBody,
    DisburseBody,
    FinancingInput,
    IssueContractBody,
    ReportRepaymentBody,
    SignBody,
)
from workflow.financing.esign import TICKET_PURPOSE, ContractServices, contract_ref
from workflow.financing.money import format_yuan
from workflow.financing.transition import china_today, now

_serial = itertools.count(1)


async def make_user(name: str, *, operator: bool = False) -> User:
    """A person (optionally a platform operator)."""
    return await User.create(openid=f"test-{name}-{next(_serial)}", display_name=name, is_platform_operator=operator)


async def make_enterprise(name: str, roles: tuple[str, ...], creator: User, *, status: str = "approved") -> Enterprise:
    """An enterprise in `status` with the given business roles; the creator becomes its admin."""
    enterprise = await Enterprise.create(
        name=name, uscc=new_uscc(), legal_rep_name="张三", legal_rep_id_enc="test-only",
        legal_rep_id_hash=f"hash-{next(_serial)}", legal_rep_id_masked="3701**********0011",
        contact_name="李四", contact_phone="13800138000", is_core="core" in roles, is_supplier="supplier" in roles,
        is_funder="funder" in roles, status=status, kyc_outcome="match", created_by=creator,
    )
    await Membership.create(user=creator, enterprise=enterprise, roles=["admin"])
    return enterprise


async def add_member(enterprise: Enterprise, name: str, *roles: str) -> User:
    """A new person joining the enterprise with member roles."""
    user = await make_user(name)
    await Membership.create(user=user, enterprise=enterprise, roles=list(roles))
    return user


async def make_document(enterprise: Enterprise, uploader: User, kind: str) -> Document:
    """Document metadata (the bytes are irrelevant to the domain)."""
    return await Document.create(enterprise=enterprise, kind=kind, sha256="0" * 64, content_type="application/pdf",
                                 size=10, filename=f"{kind}.pdf", uploaded_by=uploader)


@dataclass
class Cast:
    """Everyone a financing needs, each person holding exactly the roles their name says."""

    supplier: Enterprise
    supplier_admin: User
    supplier_op: User
    supplier_rep: User
    core: Enterprise
    core_op: User
    core_approver: User
    core_approver2: User
    core_rep: User
    funder: Enterprise
    funder_op: User
    funder_rep: User
    funder2: Enterprise
    funder2_op: User
    platform: User
    foreign: Enterprise
    foreign_admin: User
    nobody: User
    services: ContractServices | None = None  # contract PDFs, face tickets and the CA (see contract_services)

    async def material(self) -> Document:
        """A fresh invoice uploaded by the supplier."""
        return await make_document(self.supplier, self.supplier_op, "invoice")


async def make_cast(services: ContractServices | None = None) -> Cast:
    """Approved supplier, core, two funders, a foreign enterprise, a platform operator and a stranger."""
    supplier_admin = await make_user("supplier-admin")
    supplier = await make_enterprise("山东供货有限公司", ("supplier",), supplier_admin)
    core_admin = await make_user("core-admin")
    core = await make_enterprise("济南核心集团有限公司", ("core",), core_admin)
    funder = await make_enterprise("齐鲁保理有限公司", ("funder",), await make_user("funder-admin"))
    funder2 = await make_enterprise("泉城商业保理有限公司", ("funder",), await make_user("funder2-admin"))
    foreign_admin = await make_user("foreign-admin")
    foreign = await make_enterprise("无关贸易有限公司", ("supplier", "core", "funder"), foreign_admin)
    return Cast(
        supplier=supplier, supplier_admin=supplier_admin,
        supplier_op=await add_member(supplier, "supplier-op", "operator"),
        supplier_rep=await add_member(supplier, "supplier-rep", "legal_rep"),
        core=core,
        core_op=await add_member(core, "core-op", "operator"),
        core_approver=await add_member(core, "core-approver", "approver"),
        core_approver2=await add_member(core, "core-approver2", "approver"),
        core_rep=await add_member(core, "core-rep", "legal_rep"),
        funder=funder,
        funder_op=await add_member(funder, "funder-op", "operator"),
        funder_rep=await add_member(funder, "funder-rep", "legal_rep"),
        funder2=funder2,
        funder2_op=await add_member(funder2, "funder2-op", "operator"),
        platform=await make_user("platform", operator=True),
        foreign=foreign, foreign_admin=foreign_admin,
        nobody=await make_user("nobody"),
        services=services,
    )


def financing_input(cast: Cast, attachment_ids: list[int], **overrides: object) -> FinancingInput:
    """A valid application: 1,000,000 yuan face (one approver by default), 800,000 requested, due in 90 days."""
    data: dict[str, object] = {
        "supplier_id": cast.supplier.id, "core_id": cast.core.id, "invoice_no": f"INV{next(_serial):08d}",
        "contract_no": "HT-2025-001", "face_amount": "1000000.00", "requested_amount": "800000.00",
        "due_date": china_today() + timedelta(days=90), "attachment_ids": attachment_ids,
    }
    data.update(overrides)
    return FinancingInput.model_validate(data)


CONTRACT_TERMS = {"annual_rate": Decimal("0.065"), "advance_rate": Decimal("0.8"), "financing_amount": "800000.00",
                  "fee_rate": Decimal("0.005")}

# The order a financing moves through; `advance` stops when the wanted state is reached.
PATH = ("submitted", "claimed", "confirmed", "allocated", "subscribed", "contract_issued", "signing", "signed",
        "disbursed", "received", "repayment_reported", "repaid")


async def submit(cast: Cast, **overrides: object) -> Financing:
    """A new financing submitted by the supplier's operator."""
    doc = await cast.material()
    return await actions.create_financing(cast.supplier_op, financing_input(cast, [doc.id], **overrides))


def disburse_body(financing: Financing, voucher_id: int, *, at: datetime | None = None) -> DisburseBody:
    """The exact disbursement the contract calls for."""
    return DisburseBody(amount=format_yuan(financing.financing_amount or 0),
                        bank_reference=f"BANK{next(_serial):010d}", disbursed_at=at or now(),
                        voucher_document_id=voucher_id)


async def step(cast: Cast, f: Financing) -> Financing:
    """Take the one awaited step that moves `f` along PATH."""
    fid = f.id
    match f.status:
        case "submitted":
            return await actions.claim(cast.core_op, fid)
        case "claimed":
            approver = cast.core_approver2 if f.approval_count else cast.core_approver
            return await actions.approve(approver, fid)
        case "confirmed":
            return await actions.allocate(cast.platform, fid, AllocateBody(funder_ids=[cast.funder.id]))
        case "allocated":
            return await actions.subscribe(cast.funder_op, fid)
        case "subscribed":
            return await actions.issue_contract(cast.platform, fid, IssueContractBody.model_validate(CONTRACT_TERMS),
                                                services=cast.services)
        case "contract_issued" | "signing":
            signer = (cast.funder_rep, cast.supplier_rep, cast.core_rep)[f.signature_count]
            return await sign_as(cast, signer, fid, f.contract_version)
        case "signed":
            voucher = await make_document(cast.funder, cast.funder_op, "voucher")
            return await actions.disburse(cast.funder_op, fid, disburse_body(f, voucher.id))
        case "disbursed":
            return await actions.confirm_receipt(cast.supplier_op, fid)
        case "received" | "overdue":
            body = ReportRepaymentBody(amount=format_yuan(f.total_due or 0), paid_at=now())
            return await actions.report_repayment(cast.core_op, fid, body)
        case "repayment_reported":
            return await actions.confirm_repayment(cast.funder_op, fid)
    raise AssertionError(f"no step from {f.status}")


async def advance(cast: Cast, state: str, f: Financing | None = None, **overrides: object) -> Financing:
    """A financing (new unless given) moved along PATH until it is in `state`."""
    f = f or await submit(cast, **overrides)
    while f.status != state:
        f = await step(cast, f)
    return f


def days_from_today(days: int) -> date:
    """A date relative to today in China."""
    return china_today() + timedelta(days=days)


# ---- contracts and e-signatures --------------------------------------------------------------------------


@functools.cache
def shared_test_ca() -> PlatformCA:
    """One platform CA for the whole test session (generating one per test would only cost time)."""
    return PlatformCA.generate(common_name="echain 测试根证书")


def contract_services(redis: Redis, root: Path, secret: str = "test-secret-key") -> ContractServices:
    """What the contract use cases need, on the test Redis and a blob store under `root`."""
    return ContractServices(storage=LocalBlobStorage(root / "blobs"), redis=redis, ca=shared_test_ca(), secret=secret)


async def face_ticket(cast: Cast, user: User, financing_id: int, version: int, *, ttl: float | None = None) -> str:
    """A signing ticket as face verification would issue it (the face check itself is tested in
    tests/test_biometric*): bound to the person, `financing:{id}:v{version}` and purpose sign_contract."""
    assert cast.services is not None
    extra = {} if ttl is None else {"ttl": ttl}
    issued = await issue_ticket(cast.services.redis, user.id, contract_ref(financing_id, version), TICKET_PURPOSE,
                                **extra)
    return issued.ticket


async def sign_as(cast: Cast, signer: User, financing_id: int, version: int, *, ticket: str | None = None,
                  enterprise_id: int | None = None) -> Financing:
    """`signer` passes face verification and signs contract `version` (a fresh ticket unless one is given)."""
    ticket = ticket or await face_ticket(cast, signer, financing_id, version)
    return await actions.sign(signer, financing_id, SignBody(contract_version=version, face_ticket=ticket),
                              enterprise_id=enterprise_id, services=cast.services)
