"""Final terms, the contract and its signatures (seed steps 5 and 6): issue, revise, sign."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models.enterprises import Enterprise
from models.financing import Contract, Financing, Signature
from models.people import User
from workflow.errors import Conflict, InvalidInput
from workflow.financing import money
from workflow.financing.bodies import IssueContractBody, ReviseContractBody, SignBody
from workflow.financing.parties import party_of
from workflow.financing.table import PARTY_LABELS, SIGNING_ORDER, signing_party
from workflow.financing.transition import Acting, begin, china_today, commit, now
from workflow.ledger import digest


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


async def _issue(acting: Acting, actor: User, terms: ContractTerms, *, reason: str = "") -> Financing:
    f = acting.financing
    check_terms(f, terms)
    version = f.contract_version + 1
    document = _terms_document(f, version, terms)
    sha = digest(document)
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
        await Contract.create(financing_id=f.id, version=version, terms=document, sha256=sha,
                              issued_by=actor, issued_at=moment, using_db=conn)

    payload = _payload(terms, version, sha) | ({"reason": reason, "voided_signatures": voided} if reason else {})
    return await commit(acting, "contract_issued", values=_values(terms, version), side=write, payload=payload,
                        duplicate="合同刚被其他运营人员出具或修订，请刷新后重试")


async def issue_contract(actor: User, financing_id: int, body: IssueContractBody, *,
                         enterprise_id: int | None = None) -> Financing:
    """The platform fixes the final rate and amounts and issues contract version 1."""
    acting = await begin(actor, financing_id, "issue_contract", enterprise_id)
    terms = ContractTerms(body.annual_rate, body.advance_rate, body.financing_amount, body.fee_rate)
    return await _issue(acting, actor, terms)


async def revise_contract(actor: User, financing_id: int, body: ReviseContractBody, *,
                          enterprise_id: int | None = None) -> Financing:
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
    return await _issue(acting, actor, terms, reason=reason)


async def sign(actor: User, financing_id: int, body: SignBody, *, enterprise_id: int | None = None) -> Financing:
    """A legal representative or agent signs for their party, in the order funder → supplier → core."""
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
    contract = await Contract.get(financing_id=f.id, version=f.contract_version)
    count = f.signature_count + 1
    done = count == len(SIGNING_ORDER)
    moment = now()

    async def record(conn) -> None:  # noqa: ANN001
        await Signature.create(financing_id=f.id, contract_version=contract.version, contract_sha256=contract.sha256,
                               party=party, enterprise_id=acting.enterprise_id, signer=actor, signed_at=moment,
                               using_db=conn)

    values: dict[str, Any] = {"signature_count": count} | ({"signed_at": moment} if done else {})
    return await commit(acting, "signed" if done else "signing", values=values, side=record,
                        duplicate="贵企业已签署该版本合同，请勿重复签署",
                        payload={"party": party, "enterprise": acting.enterprise_id, "version": contract.version,
                                 "sha256": contract.sha256})
