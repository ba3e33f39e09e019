"""Final terms, the contract and its signatures (seed steps 5 and 6): issue, revise, sign."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from biometric.tickets import spending
from models.enterprises import Enterprise
from models.financing import Contract, Financing, Signature
from models.people import User
from workflow import attorney
from workflow.errors import Conflict, InvalidInput
from workflow.financing import esign, money
from workflow.financing.bodies import IssueContractBody, ReviseContractBody, SignBody
from workflow.financing.esign import ContractServices
from workflow.financing.parties import party_of
from workflow.financing.table import PARTY_LABELS, SIGNING_ORDER, signing_party
from workflow.financing.transition import Acting, begin, china_today, commit, now
from workflow.ledger import digest


def _services(services: ContractServices | None) -> ContractServices:
    if services is None:
        raise RuntimeError("contract use cases need ContractServices (Deps.contracts); pass services=")
    return services


@dataclass(frozen=True)
class ContractTerms:
    """The terms the platform fixes; amounts in fen, rates as fractions."""

    annual_rate: Decimal
    advance_rate: Decimal
    financing_amount: int
    fee_rate: Decimal

    @property
    def fee_amount(self) -> int:
        """Fee on the financed amount, rounded half-up to the fen."""
        return money.fee(self.financing_amount, self.fee_rate)


def check_terms(f: Financing, terms: ContractTerms) -> None:
    """Refuse terms that break the advance limit or exceed what the supplier asked for.

    Decision: the financed amount must not exceed face × advance rate (the credit rule) NOR the requested
    amount (the supplier never pays interest on money it did not ask for).
    """
    limit = money.advance_limit(f.face_amount, terms.advance_rate)
    if terms.financing_amount > limit:
        raise InvalidInput(
            f"融资金额（{money.format_yuan(terms.financing_amount)} 元）超过票面金额 × 融资比例"
            f"（{money.format_yuan(f.face_amount)} × {money.rate_text(terms.advance_rate)} = {money.format_yuan(limit)} 元）",
            code="advance_limit_exceeded", details={"limit": money.format_yuan(limit)},
        )
    if terms.financing_amount > f.requested_amount:
        raise InvalidInput(
            f"融资金额（{money.format_yuan(terms.financing_amount)} 元）超过资产方申请的金额"
            f"（{money.format_yuan(f.requested_amount)} 元）", code="exceeds_requested",
        )
    if f.due_date <= china_today():
        raise Conflict(f"应收账款已于 {f.due_date.isoformat()} 到期，不能再出具合同", code="due_date_past")


def _terms_document(f: Financing, version: int, terms: ContractTerms) -> dict[str, Any]:
    return {
        "financing": f.id, "version": version, "supplier": f.supplier_id, "core": f.core_id, "funder": f.funder_id,
        "invoice_no": f.invoice_no, "contract_no": f.contract_no, "face_amount": f.face_amount,
        "financing_amount": terms.financing_amount, "annual_rate": str(terms.annual_rate),
        "advance_rate": str(terms.advance_rate), "fee_rate": str(terms.fee_rate), "fee_amount": terms.fee_amount,
        "due_date": f.due_date.isoformat(), "convention": money.CONVENTION, "signing_order": list(SIGNING_ORDER),
    }


def _values(terms: ContractTerms, version: int) -> dict[str, Any]:
    return {
        "annual_rate": terms.annual_rate, "advance_rate": terms.advance_rate,
        "financing_amount": terms.financing_amount, "fee_rate": terms.fee_rate, "fee_amount": terms.fee_amount,
        "contract_version": version, "signature_count": 0, "signed_at": None,
    }


def _payload(terms: ContractTerms, version: int, sha: str) -> dict[str, Any]:
    return {
        "version": version, "sha256": sha, "financing_amount": money.format_yuan(terms.financing_amount),
        "annual_rate": str(terms.annual_rate), "advance_rate": str(terms.advance_rate),
        "fee_rate": str(terms.fee_rate), "fee_amount": money.format_yuan(terms.fee_amount),
    }


async def _issue(acting: Acting, actor: User, terms: ContractTerms, services: ContractServices, *,
                 reason: str = "") -> Financing:
    f = acting.financing
    check_terms(f, terms)
    version = f.contract_version + 1
    document = _terms_document(f, version, terms)
    pdf = await esign.render(f, version, annual_rate=terms.annual_rate, advance_rate=terms.advance_rate,
                             financing_amount=terms.financing_amount, fee_rate=terms.fee_rate,
                             fee_amount=terms.fee_amount, issue_date=china_today(), grace_days=services.grace_days,
                             font=services.font)
    sha = await services.storage.put(pdf)  # content-addressed: an aborted attempt leaves only a harmless blob
    moment = now()
    voided: list[int] = []

    async def write(conn) -> None:  # noqa: ANN001
        if f.contract_version:
            await Contract.filter(financing_id=f.id, version=f.contract_version).using_db(conn).update(
                voided_at=moment, void_reason=reason
            )
            voided.extend(await Signature.filter(financing_id=f.id, contract_version=f.contract_version, voided=False)
                          .using_db(conn).values_list("id", flat=True))
            await Signature.filter(id__in=voided or [-1]).using_db(conn).update(voided=True)
        doc = await esign.record(conn, sha, len(pdf), enterprise_id=f.funder_id, actor=actor,
                                 filename=esign.pdf_filename(f, version))
        await Contract.create(financing_id=f.id, version=version, terms=document, sha256=sha, document_id=doc.id,
                              issued_by=actor, issued_at=moment, using_db=conn)

    payload = _payload(terms, version, sha) | {"terms_sha256": digest(document)} \
        | ({"reason": reason, "voided_signatures": voided} if reason else {})
    return await commit(acting, "contract_issued", values=_values(terms, version), side=write, payload=payload,
                        duplicate="合同刚被其他运营人员出具或修订，请刷新后重试")


async def issue_contract(actor: User, financing_id: int, body: IssueContractBody, *,
                         enterprise_id: int | None = None, services: ContractServices | None = None) -> Financing:
    """The platform fixes the final rate and amounts and issues contract version 1."""
    acting = await begin(actor, financing_id, "issue_contract", enterprise_id)
    terms = ContractTerms(body.annual_rate, body.advance_rate, body.financing_amount, body.fee_rate)
    return await _issue(acting, actor, terms, _services(services))


async def revise_contract(actor: User, financing_id: int, body: ReviseContractBody, *,
                          enterprise_id: int | None = None, services: ContractServices | None = None) -> Financing:
    """The platform issues a new contract version; every signature collected so far is voided."""
    acting = await begin(actor, financing_id, "revise_contract", enterprise_id)
    reason = body.reason.strip()
    if not reason:
        raise InvalidInput("修订合同必须填写原因，各方将据此重新审阅并签署", code="reason_required")
    f = acting.financing
    terms = ContractTerms(
        body.annual_rate if body.annual_rate is not None else f.annual_rate,
        body.advance_rate if body.advance_rate is not None else f.advance_rate,
        body.financing_amount if body.financing_amount is not None else f.financing_amount,
        body.fee_rate if body.fee_rate is not None else f.fee_rate,
    )
    return await _issue(acting, actor, terms, _services(services), reason=reason)


async def signing_authority(actor: User, enterprise_id: int, f: Financing) -> attorney.SigningAuthority:
    """The hook deciding whether `actor` may sign for the enterprise: its legal representative, or an agent
    under an approved power of attorney covering the amount, the action and today (workflow.attorney)."""
    return await attorney.authority_to_sign(actor, enterprise_id, amount_fen=f.financing_amount or 0, action="sign",
                                            on=china_today())


async def sign(actor: User, financing_id: int, body: SignBody, *, enterprise_id: int | None = None,
               services: ContractServices | None = None) -> Financing:
    """A legal representative or agent signs for their party, in the order funder → supplier → core.

    The signer proves presence with a one-time face-verification ticket bound to them and to this contract
    version; the party's PAdES signature (their own certificate, issued by the platform CA on their first
    signature) is added to the current PDF as an incremental update, which becomes the contract's new revision.
    """
    svc = _services(services)
    acting = await begin(actor, financing_id, "sign", enterprise_id)
    f = acting.financing
    party = party_of(acting.ctx, acting.enterprise_id)
    turn = signing_party(f)
    if party is None or turn is None:
        raise Conflict("合同已签署完成，无需再签", code="already_signed")
    if SIGNING_ORDER.index(party) < f.signature_count:
        raise Conflict(f"贵企业已签署第 {f.contract_version} 版合同，无需重复签署；当前等待{PARTY_LABELS[turn]}签署",
                       code="already_signed", details={"turn": turn})
    if party != turn:
        turn_id = {"funder": f.funder_id, "supplier": f.supplier_id, "core": f.core_id}[turn]
        name = (await Enterprise.get(id=turn_id)).name
        raise Conflict(f"签署顺序为 资金方 → 资产方 → 核心企业，当前应由{PARTY_LABELS[turn]}（{name}）签署，请在其签署后再签",
                       code="not_your_turn", details={"turn": turn, "enterprise_id": turn_id})
    if body.contract_version != f.contract_version:
        raise Conflict(f"合同已修订为第 {f.contract_version} 版，请查看新版合同后再签署", code="contract_revised",
                       details={"contract_version": f.contract_version})
    authority = await signing_authority(actor, acting.enterprise_id, f)
    contract = await Contract.get(financing_id=f.id, version=f.contract_version)
    if contract.document_id is None:
        raise Conflict("该版本合同没有 PDF 文本，请平台运营人员修订合同后再签署", code="contract_pdf_missing")
    # The ticket is used up only once everything else allows the signature (and given back if an outage, not a
    # refusal, stops the signature after that: the client's retry can then still sign).
    async with spending(svc.redis, body.face_ticket, actor.id, esign.contract_ref(f.id, f.contract_version),
                        esign.TICKET_PURPOSE):
        pdf = await svc.storage.get(contract.sha256)
        enterprise = await Enterprise.get(id=acting.enterprise_id)
        person = enterprise.legal_rep_name if authority.kind == "legal_rep" else (actor.display_name or f"用户{actor.id}")
        identity = await esign.signer_identity(svc, actor, enterprise, person_name=person)
        moment = now()
        signed = await esign.add_signature(svc, pdf, party, identity, signed_at=moment,
                                           reason=f"{PARTY_LABELS[party]}签署保理合同第 {contract.version} 版")
        sha = await svc.storage.put(signed)
        count = f.signature_count + 1
        done = count == len(SIGNING_ORDER)

        async def record(conn) -> None:  # noqa: ANN001
            doc = await esign.record(conn, sha, len(signed), enterprise_id=f.funder_id, actor=actor,
                                     filename=esign.pdf_filename(f, contract.version, count))
            moved = await Contract.filter(id=contract.id, sha256=contract.sha256).using_db(conn).update(
                sha256=sha, document_id=doc.id)
            if moved != 1:
                raise Conflict("合同文本刚被他人签署或修订，请刷新后重试", code="stale_contract")
            await Signature.create(financing_id=f.id, contract_version=contract.version, contract_sha256=sha,
                                   signed_over_sha256=contract.sha256, document_id=doc.id, party=party,
                                   enterprise_id=acting.enterprise_id, signer=actor, signed_at=moment,
                                   authority=authority.kind, power_of_attorney_id=authority.poa_id, using_db=conn)

        values: dict[str, Any] = {"signature_count": count} | ({"signed_at": moment} if done else {})
        payload = {"party": party, "enterprise": acting.enterprise_id, "version": contract.version, "sha256": sha,
                   "previous_sha256": contract.sha256, "signer_certificate": identity.fingerprint_sha256,
                   **authority.as_payload()}
        if done:
            payload["contract_sha256"] = sha  # the fully signed contract, fixed in the ledger
        return await commit(acting, "signed" if done else "signing", values=values, side=record,
                            duplicate="贵企业已签署该版本合同，请勿重复签署", payload=payload)
