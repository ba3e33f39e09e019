"""Abuse: hostile XML, hostile uploads, a dead token, a foreign enterprise's ids everywhere, face brute force.

Already covered elsewhere and not repeated here: billion laughs and external entities in plain and safe mode
(tests/test_bot_callback.py), oversize and disguised uploads (tests/test_documents.py), logout revoking a token
(tests/test_login.py), sequential face lock-out with real photos (tests/test_biometric_api.py). These scenarios
extend them: the live limits, every route instead of one, and concurrency.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData

from biometric import tickets
from echain.app import api_router
from echain.keys import DEPS, SETTINGS, SIMULATOR
from models.attorney import PowerOfAttorney
from models.biometrics import FaceAttempt, FaceTemplate
from models.financing import Contract
from models.people import User
from tests.reliability.harness import say
from tests.support.api import ApiClient, pdf_bytes, png_bytes
from tests.support.factories import Cast, advance, make_cast, make_document
from tests.support.wechat_oa import OfficialAccount, message_xml, user_message
from tests.test_bot_wire import BILLION_LAUGHS, EXTERNAL_ENTITY
from wechat.simulator import SIM_MINIAPP_ID, openid_of
from workflow.financing.transition import china_today

SCENARIO = "abuse"
WECHAT_TOKEN = "abuse-token"


@pytest.fixture
def settings(settings):  # noqa: ANN001, ANN201 - the shared fixture, with the Official Account callback switched on
    import dataclasses

    return dataclasses.replace(settings, wechat_token=WECHAT_TOKEN)


async def _cast(api: ApiClient) -> tuple[Cast, dict[str, str]]:
    """The factories' cast, each person logged in through the real login endpoint (`sim:<field>`)."""
    cast = await make_cast(api.app[DEPS].contracts)
    tokens = {}
    for name in ("supplier_admin", "supplier_op", "core_op", "funder_op", "platform", "foreign_admin", "nobody"):
        user: User = getattr(cast, name)
        await User.filter(id=user.id).update(openid=openid_of(name, SIM_MINIAPP_ID))
        tokens[name] = await api.login(name)
    return cast, tokens


# ---- XML ------------------------------------------------------------------------------------------------


async def test_hostile_xml_is_refused_fast(api: ApiClient) -> None:
    oa = OfficialAccount(api.client, WECHAT_TOKEN)
    depth = 64 * 1024 // 7 - 10  # as deep as fits under the 64 KiB limit
    bodies = {
        "billion laughs": BILLION_LAUGHS,
        "external entity": EXTERNAL_ENTITY,
        f"{depth} nested elements": ("<xml>" + "<a>" * depth + "</a>" * depth + "</xml>").encode(),
        "64 KiB + 1": message_xml(user_message("o-x", "text", Content="长" * 22_000)).encode()[: 64 * 1024 + 1]
        + b"x" * (64 * 1024),
        "quadratic attribute": b'<xml a="' + b"&amp;" * 12_000 + b'"/>',
    }
    outcomes = {}
    for name, body in bodies.items():
        started = time.monotonic()
        resp = await oa.post_raw(body)
        took = time.monotonic() - started
        outcomes[name] = f"{resp.status} in {took * 1000:.0f} ms"
        assert 400 <= resp.status < 500 and took < 1, (name, resp.status, await resp.text())
    say(SCENARIO, "xml: tried signed posts to /wechat: " + "; ".join(f"{k} → {v}" for k, v in outcomes.items()))
    say(SCENARIO, "xml: held: every one refused with a 4xx in under a second, no entity expanded or fetched")


# ---- uploads --------------------------------------------------------------------------------------------


async def _upload(api: ApiClient, token: str, enterprise_id: int, data: bytes, filename: str) -> Any:
    form = FormData()
    form.add_field("kind", "invoice")
    form.add_field("file", io.BytesIO(data), filename=filename, content_type="image/png")
    resp = await api.client.post(f"/api/v1/enterprises/{enterprise_id}/documents", data=form,
                                 headers=api.auth(token))
    return resp.status, await resp.json()


async def test_hostile_uploads(api: ApiClient, settings, tmp_path: Path) -> None:  # noqa: ANN001
    cast, tokens = await _cast(api)
    token, eid = tokens["supplier_admin"], cast.supplier.id
    limit = api.app[SETTINGS].upload_max_bytes
    polyglots = {
        "PDF carrying HTML and script": b"%PDF-1.4\n<html><script>alert(document.cookie)</script></html>\n%%EOF",
        "PNG with a ZIP appended": png_bytes() + b"PK\x03\x04" + b"\x00" * 26 + b"evil.js",
    }
    refused = {
        "HTML named .png": (b"<!doctype html><script>alert(1)</script>", "x.png"),
        "SVG with script": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.svg"),
        "oversize PNG": (png_bytes() + b"\x00" * (limit + 1), "big.png"),
        "empty file": (b"", "empty.pdf"),
    }
    for name, (data, filename) in refused.items():
        status, body = await _upload(api, token, eid, data, filename)
        assert status in (413, 415, 422), (name, status, body)
        assert re.search("[\u4e00-\u9fff]", body["error"]["message"]), body
    stored = []
    for name, data in polyglots.items():
        status, doc = await _upload(api, token, eid, data, "poly.bin")
        assert status == 201, (name, status, doc)
        resp = await api.client.get(f"/api/v1/documents/{doc['id']}", headers=api.auth(token))
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Disposition"].startswith("attachment")
        assert resp.headers["Content-Type"].split(";")[0] in ("application/pdf", "image/png")
        stored.append(f"{name} → stored as {resp.headers['Content-Type'].split(';')[0]}, served as attachment, nosniff")
    # (raw CR, LF or NUL in a name cannot even be sent: aiohttp's client refuses them; percent-encoded they can)
    names = ["../../../../etc/passwd.png", "..\\..\\windows\\win.ini.png", "/abs/path.png", "a/b/../c.png",
             "%2e%2e%2f%2e%2e%2fx.png", "%0d%0aSet-Cookie:%20a=b.png", "nul%00byte.png", "." * 300 + ".png"]
    before = await asyncio.to_thread(_tree, tmp_path)
    for filename in names:
        status, doc = await _upload(api, token, eid, png_bytes(), filename)
        assert status == 201, (filename, status, doc)
        kept = doc.get("filename", "")
        assert not set(kept) & set("/\\\r\n\x00") and ".." not in kept, (filename, kept)
        resp = await api.client.get(f"/api/v1/documents/{doc['id']}", headers=api.auth(token))
        disposition = resp.headers["Content-Disposition"]
        assert "\r" not in disposition and "\n" not in disposition and "Set-Cookie" not in resp.headers
    created = await asyncio.to_thread(_tree, tmp_path) - before
    blobs = api.app[SETTINGS].data_dir / "blobs"
    assert all(p.is_relative_to(blobs) for p in created), created  # nothing written outside the blob store
    say(SCENARIO, f"uploads: tried {len(refused)} disguised or oversize files, {len(polyglots)} polyglots, "
                  f"{len(names)} traversal / header-injection file names")
    say(SCENARIO, "uploads: held: disguised and oversize refused (413/415/422, Chinese); " + "; ".join(stored)
                  + "; every name reduced to a plain base name, nothing written outside the blob store")


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


# ---- a logged-out token ----------------------------------------------------------------------------------


async def test_logged_out_token_is_dead_on_every_route(api: ApiClient) -> None:
    token = await api.login("leaver")
    await api.call("POST", "/api/v1/auth/logout", token, 204)
    tried = 0
    for op in api_router().operations:
        if not op.auth:
            continue
        path = re.sub(r"{\w+}", "1", op.path)
        resp = await api.client.request(op.method, path, headers=api.auth(token), json={})
        assert resp.status == 401, (op.method, path, resp.status, await resp.text())
        assert (await resp.json())["error"]["code"] == "session_expired"
        tried += 1
    say(SCENARIO, f"logout: tried the logged-out token on all {tried} authenticated operations")
    say(SCENARIO, "logout: held: 401 session_expired on every one (logging out again included)")


# ---- a foreign enterprise's ids in every route ---------------------------------------------------------------


async def _victim_ids(api: ApiClient, cast: Cast) -> dict[str, int]:
    """Real records of the supplier (and its financing) for every path parameter name."""
    f = await advance(cast, "signing")
    contract = await Contract.filter(financing_id=f.id).order_by("-version").first()
    assert contract is not None
    doc = await make_document(cast.supplier, cast.supplier_admin, "invoice")
    poa = await PowerOfAttorney.create(enterprise=cast.supplier, agent=cast.supplier_op, document=doc,
                                       max_amount=100_000_000, valid_from=china_today(),
                                       valid_to=china_today() + timedelta(days=30), actions=["sign"],
                                       created_by=cast.supplier_admin)
    template = await FaceTemplate.create(user=cast.supplier_rep, source="reference_photo", document=doc,
                                         encoding_enc=b"not-a-real-encoding")
    return {"financing_id": f.id, "enterprise_id": cast.supplier.id, "document_id": doc.id,
            "contract_id": contract.id, "user_id": cast.supplier_op.id, "poa_id": poa.id, "template_id": template.id}


async def test_a_foreign_enterprise_gets_nothing_on_any_route(api: ApiClient) -> None:
    cast, tokens = await _cast(api)
    ids = await _victim_ids(api, cast)
    answers: dict[str, int] = {}
    for op in api_router().operations:
        names = re.findall(r"{(\w+)}", op.path)
        if not names or op.path.startswith("/api/v1/admin/"):
            continue  # admin routes refuse anyone who is not a platform operator (tested with the operator below)
        path = op.path.format(**{n: ids[n] for n in names})
        for who in ("foreign_admin", "nobody"):
            kw: dict[str, Any] = {}
            if op.multipart:
                form = FormData()
                form.add_field("kind", "invoice")
                form.add_field("file", io.BytesIO(pdf_bytes()), filename="x.pdf", content_type="application/pdf")
                kw["data"] = form
            elif op.method in ("POST", "PUT"):
                kw["json"] = _plausible_body(op.operation_id, cast)
            resp = await api.client.request(op.method, path, headers=api.auth(tokens[who]), **kw)
            text = await resp.text()
            assert resp.status < 500 and not 200 <= resp.status < 300, (who, op.method, path, resp.status, text)
            if op.method in ("GET", "DELETE") or op.operation_id.startswith("financing_"):
                assert resp.status in (403, 404), (who, op.method, path, resp.status, text)
            assert str(ids.get(names[0])) not in text or resp.status == 422, (who, path, text)  # nothing echoed
            answers[f"{op.method} {op.path} as {who}"] = resp.status
    # Admin routes: a foreign enterprise's admin is not a platform operator.
    for op in api_router().operations:
        if op.path.startswith("/api/v1/admin/"):
            path = re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), op.path)
            resp = await api.client.request(op.method, path, headers=api.auth(tokens["foreign_admin"]), json={})
            assert resp.status in (403, 404, 422), (op.path, resp.status)
            answers[f"{op.method} {op.path} as foreign_admin"] = resp.status
    by_status: dict[int, int] = {}
    for status in answers.values():
        by_status[status] = by_status.get(status, 0) + 1
    say(SCENARIO, f"foreign ids: tried {len(answers)} calls: every route with a path id, with the victim's real "
                  "ids, as a foreign enterprise's admin and as a person of no enterprise")
    say(SCENARIO, f"foreign ids: held: never 2xx, never 5xx, answers {dict(sorted(by_status.items()))}")


def _plausible_body(operation_id: str, cast: Cast) -> dict[str, Any]:
    """A body that passes validation where easy, so the refusal is about who asks, not about the body."""
    bodies: dict[str, dict[str, Any]] = {
        "financing_allocate": {"funder_ids": [cast.funder.id]},
        "financing_reject": {"reason": "x"},
        "financing_issue_contract": {"annual_rate": "0.065", "advance_rate": "0.8", "financing_amount": "800000.00",
                                     "fee_rate": "0.005"},
        "financing_revise_contract": {"reason": "x"},
        "financing_sign": {"contract_version": 1, "face_ticket": "t"},
        "financing_disburse": {"amount": "800000.00", "bank_reference": "B1", "disbursed_at": "2025-01-01T00:00:00Z",
                               "voucher_document_id": 1},
        "financing_report_repayment": {"amount": "1.00", "paid_at": "2025-01-01T00:00:00Z"},
        "set_policy": {"tiers": [{"up_to": None, "approvers": 1}]},
        "invite": {"roles": ["operator"]},
        "set_member_roles": {"roles": ["operator"]},
        "review": {"decision": "approve"},
        "revoke_power_of_attorney": {"reason": "x"},
    }
    return bodies.get(operation_id, {})


# ---- face verification brute force -------------------------------------------------------------------------


async def _legal_rep(api: ApiClient, name: str) -> tuple[str, int]:
    """A legal representative (real encrypted ID number: WeChat face sessions need it) with face consent."""
    operator = await api.operator(f"{name}-op")
    admin = await api.login(f"{name}-admin")
    enterprise = await api.onboard(admin, operator)
    rep = await api.add_member(admin, enterprise["id"], name, ["legal_rep"])
    from biometric import consent

    await api.call("POST", "/api/v1/biometrics/consent", rep, 201, json={"version": consent.CONSENT_VERSION})
    return rep, enterprise["id"]


async def test_face_brute_force_locks_out_even_in_parallel(api: ApiClient) -> None:
    sim = api.app[SIMULATOR]
    body = {"purpose": "sign_contract", "contract_ref": "financing:1:v1"}
    rep, eid = await _legal_rep(api, "bruteforce-rep")
    attempts = 12
    sessions = []
    for _ in range(attempts):
        s = await api.call("POST", "/api/v1/biometrics/wechat/sessions", rep, 201, json=body | {"enterprise_id": eid})
        sim.face_finish(s["verify_id"], 10004)  # WeChat: not the same person
        sessions.append(s["verify_id"])
    # Bursts: every remaining session at once, again and again until none is left waiting its turn.
    statuses: list[int] = []
    waiting = sessions
    while waiting:
        results = await asyncio.gather(*(
            api.client.post("/api/v1/biometrics/wechat/verifications", json={"verify_id": v}, headers=api.auth(rep))
            for v in waiting))
        statuses += [r.status for r in results if r.status != 409]
        waiting = [v for v, r in zip(waiting, results, strict=True) if r.status == 409]
    statuses.sort()
    judged = await FaceAttempt.filter(outcome="mismatch").count()
    assert all(s in (403, 429) for s in statuses), statuses
    locked = await api.call("POST", "/api/v1/biometrics/wechat/sessions", rep, 429, json=body | {"enterprise_id": eid})
    assert locked["error"]["code"] == "face_locked_out" and "分钟后再试" in locked["error"]["message"]
    say(SCENARIO, f"face: tried {attempts} failing WeChat face verifications of one person in parallel bursts "
                  f"(verdict answers {statuses}; the rest 409 while another was being judged)")
    assert judged <= 5, f"{judged} failing verdicts were evaluated; the lock-out allows 5 per hour"
    # No ticket came out of any of it.
    assert not await tickets.revoke_tickets(api.app[DEPS].redis, (await FaceAttempt.first()).user_id)
    say(SCENARIO, f"face: held: only {judged} verdicts evaluated (limit 5), the rest refused 429; then locked out "
                  "with a Chinese message; no ticket issued")
