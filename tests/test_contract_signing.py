"""The factoring contract as a PDF with PAdES signatures: issued, signed after face verification, verified.

Domain tests get signing tickets straight from biometric.tickets.issue_ticket (the face check itself is tested
in tests/test_biometric*); the HTTP test at the end goes through WeChat face verification in the simulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

import signing
from biometric.errors import TicketRejected
from echain import db
from echain.keys import DEPS, SIMULATOR
from models.documents import Document
from models.financing import Contract, Signature, SignerCredential
from models.ledger import LedgerEntry
from tests.support.api import ApiClient
from tests.support.cli import run_cli
from tests.support.factories import (
    Cast,
    advance,
    contract_services,
    face_ticket,
    make_cast,
    shared_test_ca,
    sign_as,
)
from workflow.errors import Conflict
from workflow.financing import actions, esign
from workflow.financing.bodies import ReviseContractBody


@pytest.fixture
async def cast(database_url: str, redis_clean: str, tmp_path: Path) -> AsyncIterator[Cast]:
    redis = Redis.from_url(redis_clean)
    try:
        async with db.database(database_url):
            yield await make_cast(contract_services(redis, tmp_path))
    finally:
        await redis.aclose()


async def _pdf(cast: Cast, financing_id: int, version: int | None = None) -> tuple[Contract, bytes]:
    query = Contract.filter(financing_id=financing_id)
    contract = await (query.filter(version=version).first() if version else query.order_by("-version").first())
    return contract, await cast.services.storage.get(contract.sha256)


async def _verify(pdf: bytes) -> signing.VerificationReport:
    return await asyncio.to_thread(signing.verify, pdf, shared_test_ca().cert_pem)


# ---- issuing ----------------------------------------------------------------------------------------------


async def test_issue_renders_the_contract_pdf_and_stores_it_by_sha256(cast: Cast):
    f = await advance(cast, "contract_issued")
    contract, pdf = await _pdf(cast, f.id)
    assert pdf.startswith(b"%PDF") and contract.sha256 == hashlib.sha256(pdf).hexdigest()
    doc = await Document.get(id=contract.document_id)
    assert (doc.kind, doc.sha256, doc.content_type, doc.enterprise_id) == (
        "factoring_contract", contract.sha256, "application/pdf", cast.funder.id)
    report = await _verify(pdf)
    assert report.signatures == () and set(report.unsigned_fields) == set(signing.SIGNATURE_FIELDS.values())
    entry = await LedgerEntry.filter(action="issue_contract").order_by("-id").first()
    assert entry.payload["sha256"] == contract.sha256 and entry.payload["terms_sha256"]


async def test_the_contract_font_setting_embeds_an_installed_cjk_font(cast: Cast):
    from signing.fonts import find_system_cjk_font

    builtin = (await _pdf(cast, (await advance(cast, "contract_issued")).id))[1]
    assert b"/STSong-Light" in builtin and b"/FontFile2" not in builtin  # not embedded: viewers substitute
    if find_system_cjk_font() is None:
        pytest.skip("no CJK TrueType font installed (Debian: fonts-wqy-zenhei) to embed")
    assert cast.services is not None
    cast.services = dataclasses.replace(cast.services, font="auto")  # what ECHAIN_CONTRACT_FONT=auto gives
    embedded = (await _pdf(cast, (await advance(cast, "contract_issued")).id))[1]
    assert b"/FontFile2" in embedded and b"/STSong-Light" not in embedded  # a TrueType subset, embedded
    assert (await _verify(embedded)).unsigned_fields  # still a well-formed contract with its signature fields


async def test_a_contract_font_that_cannot_be_used_stops_start_up(aiohttp_client, settings, tmp_path: Path):  # noqa: ANN001
    from echain.app import create_app

    bad = tmp_path / "not-a-font.ttf"
    bad.write_bytes(b"not a font")
    with pytest.raises(ValueError):
        await aiohttp_client(create_app(dataclasses.replace(settings, contract_font=str(bad))))


# ---- signing ----------------------------------------------------------------------------------------------


async def test_three_signers_in_order_then_the_contract_verifies(cast: Cast):
    f = await advance(cast, "contract_issued")
    first, _ = await _pdf(cast, f.id)
    revisions = [first.sha256]
    for signer in (cast.funder_rep, cast.supplier_rep, cast.core_rep):
        f = await sign_as(cast, signer, f.id, 1)
        revisions.append((await Contract.get(id=first.id)).sha256)
    assert f.status == "signed" and len(set(revisions)) == 4
    contract, pdf = await _pdf(cast, f.id)
    report = await _verify(pdf)
    assert report.intact and not report.tampered, report.summary
    assert [s.field_name for s in report.signatures] == ["Sig_funder", "Sig_supplier", "Sig_core"]
    assert all(s.ok and s.signed_at is not None for s in report.signatures)
    # Each signature row keeps the revision it produced and the one it was applied to.
    rows = await Signature.filter(financing_id=f.id).order_by("id")
    assert [(r.signed_over_sha256, r.contract_sha256) for r in rows] == list(zip(revisions[:-1], revisions[1:], strict=True))
    assert all(r.authority == "legal_rep" for r in rows)
    # One certificate per signer (person + enterprise), its key stored only encrypted.
    creds = await SignerCredential.all().order_by("id")
    assert [(c.user_id, c.enterprise_id) for c in creds] == [
        (cast.funder_rep.id, cast.funder.id), (cast.supplier_rep.id, cast.supplier.id), (cast.core_rep.id, cast.core.id)]
    assert [s.signer_cert_sha256 for s in report.signatures] == [c.cert_sha256 for c in creds]
    with pytest.raises(signing.SignerKeyError):
        signing.SignerIdentity.from_pkcs12(bytes(creds[0].pkcs12), b"wrong")
    # The fully signed contract's SHA-256 is fixed in the ledger by the final signature.
    final = await LedgerEntry.filter(action="sign").order_by("-id").first()
    assert final.payload["to"] == "signed" and final.payload["contract_sha256"] == contract.sha256
    # The verification the API serves, as a platform operator.
    out = await esign.verification(cast.services, cast.platform, contract.id)
    assert out["intact"] and out["matches_record"]
    assert [s["organization"] for s in out["signatures"]] == [cast.funder.name, cast.supplier.name, cast.core.name]
    assert [s["signer"] for s in out["signatures"]] == [e.legal_rep_name for e in (cast.funder, cast.supplier, cast.core)]


async def test_wrong_order_is_refused_without_using_up_the_ticket(cast: Cast):
    f = await advance(cast, "contract_issued")
    ticket = await face_ticket(cast, cast.supplier_rep, f.id, 1)
    with pytest.raises(Conflict) as err:
        await sign_as(cast, cast.supplier_rep, f.id, 1, ticket=ticket)
    assert err.value.code == "not_your_turn"
    f = await sign_as(cast, cast.funder_rep, f.id, 1)
    f = await sign_as(cast, cast.supplier_rep, f.id, 1, ticket=ticket)  # still valid: the refusal kept it
    assert f.signature_count == 2


async def test_reused_expired_and_foreign_tickets_are_refused(cast: Cast):
    f = await advance(cast, "contract_issued")
    # Another person's ticket (the supplier's rep passed face verification, the funder's rep tries to use it).
    theirs = await face_ticket(cast, cast.supplier_rep, f.id, 1)
    with pytest.raises(TicketRejected) as err:
        await sign_as(cast, cast.funder_rep, f.id, 1, ticket=theirs)
    assert err.value.code == "face_ticket_mismatch" and "签署人" in err.value.message
    # Expired.
    stale = await face_ticket(cast, cast.funder_rep, f.id, 1, ttl=0.05)
    await asyncio.sleep(0.2)
    with pytest.raises(TicketRejected) as err:
        await sign_as(cast, cast.funder_rep, f.id, 1, ticket=stale)
    assert err.value.code == "face_ticket_expired" and "过期" in err.value.message
    # Garbage.
    with pytest.raises(TicketRejected) as err:
        await sign_as(cast, cast.funder_rep, f.id, 1, ticket="not-a-ticket")
    assert err.value.code == "face_ticket_invalid"
    # Used once, then reused by the next signature of the same person elsewhere.
    ticket = await face_ticket(cast, cast.funder_rep, f.id, 1)
    f = await sign_as(cast, cast.funder_rep, f.id, 1, ticket=ticket)
    g = await advance(cast, "contract_issued")
    with pytest.raises(TicketRejected) as err:  # bound to another contract
        await sign_as(cast, cast.funder_rep, g.id, 1, ticket=ticket)
    assert err.value.code in ("face_ticket_used", "face_ticket_mismatch")
    again = await face_ticket(cast, cast.supplier_rep, f.id, 1)
    await sign_as(cast, cast.supplier_rep, f.id, 1, ticket=again)
    f = await actions.revise_contract(cast.platform, f.id, ReviseContractBody(reason="利率调整"), services=cast.services)
    with pytest.raises(TicketRejected) as err:
        await sign_as(cast, cast.funder_rep, f.id, 2, ticket=ticket)
    assert err.value.code == "face_ticket_used" and "已使用" in err.value.message
    assert f.signature_count == 0


async def test_revise_voids_signatures_and_starts_a_new_pdf(cast: Cast):
    f = await advance(cast, "signing")
    v1, _ = await _pdf(cast, f.id, 1)
    f = await actions.revise_contract(cast.platform, f.id, ReviseContractBody(reason="利率调整", annual_rate=Decimal("0.06")),
                                      services=cast.services)
    v2, pdf2 = await _pdf(cast, f.id, 2)
    assert v2.document_id != v1.document_id and v2.sha256 != v1.sha256
    assert (await _verify(pdf2)).signatures == ()  # the new version starts unsigned
    old_ticket = await face_ticket(cast, cast.funder_rep, f.id, 1)
    with pytest.raises(Conflict):  # a ticket for (and a screen showing) version 1 cannot sign version 2
        await sign_as(cast, cast.funder_rep, f.id, 1, ticket=old_ticket)
    with pytest.raises(TicketRejected):
        await sign_as(cast, cast.funder_rep, f.id, 2, ticket=old_ticket)
    for signer in (cast.funder_rep, cast.supplier_rep, cast.core_rep):
        f = await sign_as(cast, signer, f.id, 2)
    _, signed = await _pdf(cast, f.id, 2)
    report = await _verify(signed)
    assert f.status == "signed" and report.intact and len(report.signatures) == 3
    assert await Signature.filter(financing_id=f.id, contract_version=1, voided=True).count() == 1


async def test_concurrent_signatures_cannot_fork_the_pdf(cast: Cast):
    f = await advance(cast, "contract_issued")
    t1 = await face_ticket(cast, cast.funder_rep, f.id, 1)
    t2 = await face_ticket(cast, cast.funder_rep, f.id, 1)
    results = await asyncio.gather(sign_as(cast, cast.funder_rep, f.id, 1, ticket=t1),
                                   sign_as(cast, cast.funder_rep, f.id, 1, ticket=t2), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))
    contract, pdf = await _pdf(cast, f.id)
    assert len((await _verify(pdf)).signatures) == 1
    assert await Signature.filter(financing_id=f.id).count() == 1


# ---- over HTTP, with WeChat face verification ----------------------------------------------------------------


def _path(fid: int, action: str) -> str:
    return f"/api/v1/financings/{fid}/actions/{action}"


async def _wechat_ticket(api: ApiClient, token: str, enterprise_id: int, contract_ref: str) -> str:
    """What the mini-program does before signing: WeChat face verification of the legal representative."""
    body = {"enterprise_id": enterprise_id, "purpose": "sign_contract", "contract_ref": contract_ref}
    session = await api.call("POST", "/api/v1/biometrics/wechat/sessions", token, 201, json=body)
    api.app[SIMULATOR].face_finish(session["verify_id"], 10000)  # the person completed wx.requestFacialVerify
    passed = await api.call("POST", "/api/v1/biometrics/wechat/verifications", token, 201,
                            json={"verify_id": session["verify_id"]})
    assert passed["contract_ref"] == contract_ref
    return passed["ticket"]


@pytest.fixture
async def signed_over_http(api: ApiClient) -> dict[str, Any]:
    op = await api.operator()
    w: dict[str, Any] = {"op": op}
    for key, roles in (("supplier", ["supplier"]), ("core", ["core"]), ("funder", ["funder"])):
        admin = await api.login(f"{key}-admin")
        e = await api.onboard(admin, op, business_roles=roles)
        w[key], w[f"{key}_id"] = admin, e["id"]
        w[f"{key}_rep"] = await api.add_member(admin, e["id"], f"{key}-rep", ["legal_rep"])
    approver = await api.add_member(w["core"], w["core_id"], "core-approver", ["approver"])
    f = await api.financing(w["supplier"], w["supplier_id"], w["core_id"])
    fid = f["id"]
    await api.call("POST", _path(fid, "claim"), w["core"], 200)
    await api.call("POST", _path(fid, "approve"), approver, 200, json={})
    await api.call("POST", _path(fid, "allocate"), op, 200, json={"funder_ids": [w["funder_id"]]})
    await api.call("POST", _path(fid, "subscribe"), w["funder"], 200)
    f = await api.call("POST", _path(fid, "issue_contract"), op, 200, json={
        "annual_rate": "0.065", "advance_rate": "0.8", "financing_amount": "400000.00", "fee_rate": "0.005"})
    contract = f["contract"]
    ref = f"financing:{fid}:v{contract['version']}"
    # Without a ticket the signature is refused by validation; with a fresh one from WeChat it goes through.
    await api.call("POST", _path(fid, "sign"), w["funder_rep"], 422, json={"contract_version": 1})
    for key in ("funder", "supplier", "core"):
        ticket = await _wechat_ticket(api, w[f"{key}_rep"], w[f"{key}_id"], ref)
        f = await api.call("POST", _path(fid, "sign"), w[f"{key}_rep"], 200,
                           json={"contract_version": 1, "face_ticket": ticket})
        if key == "funder":  # the same ticket cannot sign twice
            again = await api.call("POST", _path(fid, "sign"), w["supplier_rep"], 403,
                                   json={"contract_version": 1, "face_ticket": ticket})
            assert again["error"]["code"] in ("face_ticket_used", "face_ticket_mismatch")
    assert f["status"] == "signed"
    w |= {"financing": f, "contract": f["contract"]}
    return w


async def test_sign_over_http_with_wechat_face_then_verify_and_download(api: ApiClient, signed_over_http, settings,
                                                                      tmp_path: Path):
    w = signed_over_http
    contract = w["contract"]
    report = await api.call("GET", contract["verification_path"], w["core_rep"], 200)
    assert report["intact"] and not report["tampered"] and report["matches_record"]
    assert [s["field"] for s in report["signatures"]] == ["Sig_funder", "Sig_supplier", "Sig_core"]
    assert all(s["intact"] and s["signer"] and s["signed_at"] for s in report["signatures"])
    assert (await api.call("GET", contract["verification_path"], w["op"], 200))["intact"]
    outsider = await api.login("outsider")
    await api.call("GET", contract["verification_path"], outsider, 404)
    await api.call("GET", contract["pdf_path"], outsider, 404)
    resp = await api.client.get(contract["pdf_path"], headers=api.auth(w["supplier_rep"]))
    assert resp.status == 200 and resp.content_type == "application/pdf"
    pdf = await resp.read()
    assert hashlib.sha256(pdf).hexdigest() == contract["sha256"] == report["sha256"]

    # The CLI: the downloaded file verifies; one changed byte anywhere is reported as tampered (exit 1).
    good = tmp_path / "contract.pdf"
    good.write_bytes(pdf)
    ok = await run_cli(settings, "contract", "verify", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "完整" in ok.stdout and "Sig_core" in ok.stdout
    for position in (len(pdf) // 3, len(pdf) - 10):
        changed = bytearray(pdf)
        changed[position] ^= 0x01
        bad = tmp_path / f"tampered-{position}.pdf"
        bad.write_bytes(bytes(changed))
        result = await run_cli(settings, "contract", "verify", str(bad))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "篡改" in result.stdout

    # The endpoint: a one-byte change to the stored file is reported as tampered.
    storage = api.app[DEPS].contracts.storage
    path = storage.path(contract["sha256"])
    changed = bytearray(path.read_bytes())
    changed[len(changed) // 2] ^= 0x01
    path.write_bytes(bytes(changed))
    report = await api.call("GET", contract["verification_path"], w["funder_rep"], 200)
    assert report["tampered"] and not report["intact"] and not report["matches_record"]
    assert "篡改" in report["summary"]


async def test_agent_signs_only_within_an_approved_power_of_attorney(cast: Cast):
    from datetime import timedelta

    from models.attorney import PowerOfAttorney
    from tests.support.factories import add_member, make_document
    from workflow.errors import Forbidden
    from workflow.financing.transition import china_today

    f = await advance(cast, "contract_issued")
    agent = await add_member(cast.funder, "funder-agent", "agent")
    with pytest.raises(Forbidden) as err:  # an agent without any power of attorney
        await sign_as(cast, agent, f.id, 1)
    assert err.value.code == "poa_missing"
    doc = await make_document(cast.funder, cast.funder_op, "power_of_attorney")
    today = china_today()
    poa = await PowerOfAttorney.create(
        enterprise=cast.funder, agent=agent, document=doc, max_amount=f.financing_amount - 1,
        valid_from=today - timedelta(days=1), valid_to=today + timedelta(days=30), actions=["sign"],
        status="approved", created_by=cast.funder_rep,
    )
    ticket = await face_ticket(cast, agent, f.id, 1)
    with pytest.raises(Forbidden) as err:  # one fen over the authorised amount
        await sign_as(cast, agent, f.id, 1, ticket=ticket)
    assert err.value.code == "poa_amount_exceeded" and "超出授权范围" in err.value.message
    await PowerOfAttorney.filter(id=poa.id).update(max_amount=f.financing_amount)
    f = await sign_as(cast, agent, f.id, 1, ticket=ticket)  # the refusal did not use up the ticket
    signature = await Signature.get(financing_id=f.id, party="funder")
    assert f.signature_count == 1 and signature.signer_id == agent.id
    assert signature.authority == "agent" and signature.power_of_attorney_id == poa.id
