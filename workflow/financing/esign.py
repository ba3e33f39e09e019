"""The contract PDF and its PAdES signatures, as the financing use cases need them (电子签名法 §13).

`ContractServices` is what issuing, revising and signing need from outside: the content-addressed storage,
Redis (face-verification tickets), the platform CA and the master secret. The app builds it once
(`Deps.contracts`) and `workflow.financing.service.act` hands it to the use cases; tests build their own.

All CPU-bound work (rendering, certificate issuing, PKCS#12, PAdES signing and verification) runs in a thread:
the `signing` library refuses to run on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError

import signing
from models.documents import Document
from models.enterprises import Enterprise
from models.financing import Contract, Financing, FinancingAttachment, SignerCredential
from models.people import Membership, User
from workflow.errors import NotFound

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from echain.storage import BlobStorage

DOCUMENT_KIND = "factoring_contract"
TICKET_PURPOSE = "sign_contract"


@dataclass
class ContractServices:
    """What the contract use cases need: storage for PDFs, Redis for tickets, the CA and the master secret."""

    storage: BlobStorage
    redis: Redis
    ca: signing.PlatformCA  # issues signer certificates (the only CA that does)
    secret: str
    grace_days: int = 3
    earlier_cas: tuple[bytes, ...] = ()  # PEM certificates of CAs rotated out: still trusted to verify, never to issue
    font: str = signing.BUILTIN_CJK_FONT  # ECHAIN_CONTRACT_FONT: what signing.register_cjk_font accepts

    @property
    def trust_roots(self) -> tuple[bytes, ...]:
        """What verification trusts: the current CA certificate, then the earlier ones."""
        return (self.ca.cert_pem, *self.earlier_cas)


def contract_ref(financing_id: int, version: int) -> str:
    """What a face-verification ticket for signing this contract version is bound to."""
    return f"financing:{financing_id}:v{version}"


def contract_no(financing: Financing) -> str:
    """The platform's number of the factoring contract (stable across versions)."""
    return f"ECF-{financing.id:08d}"


def pdf_filename(financing: Financing, version: int, signatures: int = 0) -> str:
    """The download name of a contract revision."""
    suffix = f"-signed{signatures}" if signatures else ""
    return f"{contract_no(financing)}-v{version}{suffix}.pdf"


def _party(enterprise: Enterprise) -> signing.Party:
    return signing.Party(enterprise.name, enterprise.uscc)


async def render(financing: Financing, version: int, *, annual_rate: Decimal, advance_rate: Decimal,
                 financing_amount: int, fee_rate: Decimal, fee_amount: int, issue_date: date,
                 grace_days: int = 3, font: str | None = None) -> bytes:
    """The unsigned contract PDF of a version: parties, receivable, final terms, SHA-256 of each attachment."""
    f = financing
    supplier, core, funder = [await Enterprise.get(id=i) for i in (f.supplier_id, f.core_id, f.funder_id)]
    rows = await FinancingAttachment.filter(financing_id=f.id, purpose="material").order_by("id") \
        .prefetch_related("document")
    attachments, seen = [], set()
    for row in rows:
        name = row.document.filename or f"材料 {row.document.id}"
        if name in seen:
            name = f"{name}（材料 {row.document.id}）"
        seen.add(name)
        attachments.append(signing.Attachment(name, row.document.sha256))
    terms = signing.ContractTerms(
        contract_no=contract_no(f), version=version, issue_date=issue_date,
        funder=_party(funder), supplier=_party(supplier), core=_party(core),
        invoice_no=f.invoice_no, trade_contract_no=f.contract_no, face_amount=f.face_amount, due_date=f.due_date,
        advance_rate=advance_rate, financing_amount=financing_amount, annual_rate=annual_rate,
        fee_rate=fee_rate, fee_amount=fee_amount, grace_days=grace_days, attachments=tuple(attachments),
    )
    return await asyncio.to_thread(partial(signing.render_contract, terms, font=font))


async def record(conn, sha: str, size: int, *, enterprise_id: int, actor: User,  # noqa: ANN001 - connection
                 filename: str) -> Document:
    """The factoring_contract document row of a PDF revision already put into storage."""
    return await Document.create(enterprise_id=enterprise_id, kind=DOCUMENT_KIND, sha256=sha,
                                 content_type="application/pdf", size=size, filename=filename,
                                 uploaded_by=actor, using_db=conn)


def signer_passphrase(secret: str, user_id: int, enterprise_id: int) -> bytes:
    """The passphrase of one signer's PKCS#12 (derived per signer; never stored)."""
    return signing.derive_passphrase(secret, context=f"signer:{user_id}:{enterprise_id}")


def person_hash(secret: str, user_id: int) -> str:
    """The pseudonymous person identifier printed in a certificate (keyed, so it reveals nothing)."""
    return hmac.new(secret.encode(), f"signer-person:{user_id}".encode(), hashlib.sha256).hexdigest()[:32]


async def signer_identity(services: ContractServices, user: User, enterprise: Enterprise, *,
                          person_name: str) -> signing.SignerIdentity:
    """The signer's certificate and key: loaded, or issued by the platform CA on the first signature (and again
    once the stored one has expired or was issued by a CA that has since been rotated out)."""
    passphrase = signer_passphrase(services.secret, user.id, enterprise.id)
    row = await SignerCredential.get_or_none(user_id=user.id, enterprise_id=enterprise.id)
    if row is not None:
        identity = await asyncio.to_thread(signing.SignerIdentity.from_pkcs12, bytes(row.pkcs12), passphrase)
        current = services.ca.issued(identity.certificate)
        if current and identity.not_after > datetime.now(identity.not_after.tzinfo):
            return identity
        await SignerCredential.filter(id=row.id).delete()  # expired or from an earlier CA: issue a fresh one below

    def issue() -> tuple[signing.SignerIdentity, bytes]:
        identity = services.ca.issue_signer(person_name, person_hash(services.secret, user.id), enterprise.name,
                                            enterprise.uscc)
        return identity, identity.to_pkcs12(passphrase)

    identity, blob = await asyncio.to_thread(issue)
    try:
        await SignerCredential.create(user_id=user.id, enterprise_id=enterprise.id,
                                      cert_sha256=identity.fingerprint_sha256, cert_pem=identity.cert_pem.decode(),
                                      pkcs12=blob, not_after=identity.not_after)
    except IntegrityError:  # a concurrent first signature issued one first: use that one
        row = await SignerCredential.get(user_id=user.id, enterprise_id=enterprise.id)
        return await asyncio.to_thread(signing.SignerIdentity.from_pkcs12, bytes(row.pkcs12), passphrase)
    return identity


async def add_signature(services: ContractServices, pdf: bytes, party: str, identity: signing.SignerIdentity, *,
                        reason: str, signed_at: datetime) -> bytes:
    """`pdf` with the party's PAdES signature added as an incremental update (in a thread)."""
    field = signing.SIGNATURE_FIELDS[party]
    cert_pem = services.ca.cert_pem
    return await asyncio.to_thread(signing.sign, pdf, field, identity, cert_pem, reason=reason,
                                   location="echain", signed_at=signed_at)


async def verify(trust_roots: tuple[bytes, ...], pdf: bytes) -> signing.VerificationReport:
    """Every signature and the document's integrity against these CA certificates (in a thread)."""
    return await asyncio.to_thread(signing.verify, pdf, trust_roots)


def report_dict(report: signing.VerificationReport) -> dict:
    """A verification report as plain JSON-able data (API and CLI)."""
    return {
        "sha256": report.sha256,
        "intact": report.intact,
        "tampered": report.tampered,
        "summary": report.summary,
        "error": report.error,
        "unsigned_fields": list(report.unsigned_fields),
        "signatures": [
            {
                "field": s.field_name, "signer": s.signer_name, "organization": s.signer_organization,
                "signed_at": s.signed_at.isoformat() if s.signed_at else None, "intact": s.intact,
                "valid": s.valid, "trusted": s.trusted, "ok": s.ok, "summary": s.summary,
                "problems": list(s.problems),
            }
            for s in report.signatures
        ],
    }


# ---- reading a contract -----------------------------------------------------------------------------------


@dataclass
class ContractPdf:
    """A contract version's current PDF revision, for a caller cleared to read it."""

    contract: Contract
    financing: Financing
    data: bytes


async def readable_pdf(services: ContractServices, actor: User, contract_id: int) -> ContractPdf:
    """The current PDF of a contract, for the financing's parties (supplier, core, funder) and operators."""
    contract = await Contract.get_or_none(id=contract_id).prefetch_related("financing")
    missing = NotFound("合同不存在，或您所在企业不是该合同的签约方", code="contract_not_found")
    if contract is None:
        raise missing
    f = contract.financing
    if not actor.is_platform_operator:
        parties = [i for i in (f.supplier_id, f.core_id, f.funder_id) if i]
        if not await Membership.exists(user_id=actor.id, enterprise_id__in=parties):
            raise missing
    if contract.document_id is None:
        raise NotFound("该版本合同没有 PDF 文本", code="contract_pdf_missing")
    try:
        data = await services.storage.get(contract.sha256)
    except KeyError as exc:
        raise NotFound("合同文件内容已丢失", code="contract_pdf_missing") from exc
    return ContractPdf(contract, f, data)


async def verification(services: ContractServices, actor: User, contract_id: int) -> dict:
    """Each signature of the contract's current PDF (signer, time, intact) and the document's integrity, checked
    against the platform CA (current or earlier: `services.trust_roots`) and against the SHA-256 the platform
    recorded (a changed stored file is tampered)."""
    contract = await Contract.get_or_none(id=contract_id)
    try:
        pdf = await readable_pdf(services, actor, contract_id)
        data, contract = pdf.data, pdf.contract
    except NotFound as exc:
        if contract is None or exc.code != "contract_pdf_missing" or contract.document_id is None:
            raise
        raw = getattr(services.storage, "read_raw", None)  # the stored file no longer hashes to its record
        try:
            data = await raw(contract.sha256) if raw is not None else b""
        except KeyError:
            raise exc from None
    report = await verify(services.trust_roots, data)
    out = report_dict(report)
    recorded = hashlib.sha256(data).hexdigest() == contract.sha256
    out |= {"contract_id": contract.id, "financing_id": contract.financing_id, "version": contract.version,
            "recorded_sha256": contract.sha256, "matches_record": recorded,
            "voided": contract.voided_at is not None}
    if not recorded:
        out["intact"], out["tampered"] = False, True
        out["summary"] = "文件已被篡改：存储的合同文件与平台记录的 SHA-256 不一致；" + report.summary
    return out
