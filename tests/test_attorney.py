"""Powers of attorney: granted by the enterprise, reviewed by the platform, checked when an agent signs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from models.attorney import PowerOfAttorney
from models.people import User
from tests.support.api import ApiClient, pdf_bytes, png_bytes
from workflow import ledger
from workflow.attorney import SigningAuthority, agent_actions, authority_to_sign
from workflow.errors import Forbidden
from workflow.financing.transition import china_today

TODAY = china_today()


@dataclass
class Firm:
    """An approved enterprise and its people (tokens), each holding the roles their name says."""

    id: int
    admin: str
    rep: str
    agent: str
    clerk: str  # member role operator only
    agent_id: int
    document_id: int  # an uploaded 授权委托书


async def _user(api: ApiClient, token: str) -> User:
    return await User.get(id=(await api.call("GET", "/api/v1/me", token, 200))["user"]["id"])


async def _firm(api: ApiClient, operator: str, prefix: str) -> Firm:
    admin = await api.login(f"{prefix}-admin")
    e = await api.onboard(admin, operator)
    rep = await api.add_member(admin, e["id"], f"{prefix}-rep", ["legal_rep"])
    agent = await api.add_member(admin, e["id"], f"{prefix}-agent", ["agent"])
    clerk = await api.add_member(admin, e["id"], f"{prefix}-clerk", ["operator"])
    doc = await api.upload(admin, e["id"], "power_of_attorney", pdf_bytes(), "授权委托书.pdf")
    return Firm(e["id"], admin, rep, agent, clerk, (await _user(api, agent)).id, doc["id"])


@pytest.fixture
async def world(api: ApiClient) -> dict[str, Any]:
    """A platform operator, our enterprise and a foreign one."""
    operator = await api.operator()
    return {"operator": operator, "firm": await _firm(api, operator, "ours"), "foreign": await _firm(api, operator, "them")}


def _body(firm: Firm, **overrides: Any) -> dict[str, Any]:
    return {
        "agent_user_id": firm.agent_id, "document_id": firm.document_id, "max_amount": "500000.00",
        "valid_from": TODAY.isoformat(), "valid_to": (TODAY + timedelta(days=180)).isoformat(), "actions": ["sign"],
    } | overrides


def _path(firm: Firm, suffix: str = "") -> str:
    return f"/api/v1/enterprises/{firm.id}/powers-of-attorney{suffix}"


async def _create(api: ApiClient, firm: Firm, token: str | None = None, **overrides: Any) -> dict[str, Any]:
    return await api.call("POST", _path(firm), token or firm.admin, 201, json=_body(firm, **overrides))


async def _review(api: ApiClient, operator: str, poa_id: int, decision: str = "approve", reason: str = "",
                  expect: int = 200) -> dict[str, Any]:
    return await api.call("POST", f"/api/v1/admin/powers-of-attorney/{poa_id}/review", operator, expect,
                          json={"decision": decision, "reason": reason})


async def _refused(api: ApiClient, token: str, firm: Firm, *, amount: int = 40_000_000, action: str = "sign",
                   on=TODAY) -> Forbidden:  # noqa: ANN001
    with pytest.raises(Forbidden) as info:
        await authority_to_sign(await _user(api, token), firm.id, amount_fen=amount, action=action, on=on)
    return info.value


# ---- the whole flow ----------------------------------------------------------------------------------------


async def test_create_approve_sign_then_revoke(api: ApiClient, world: dict[str, Any]):
    firm, operator = world["firm"], world["operator"]
    poa = await _create(api, firm)
    assert poa["status"] == "pending_review" and poa["status_label"] == "待平台审核"
    assert poa["max_amount"] == "500000.00" and poa["actions"] == ["sign"] and poa["action_labels"] == ["签署合同"]
    assert poa["agent_user_id"] == firm.agent_id and poa["document_id"] == firm.document_id
    assert (await PowerOfAttorney.get(id=poa["id"])).max_amount == 50_000_000  # stored in fen

    pending = await api.call("GET", "/api/v1/admin/powers-of-attorney/pending", operator, 200)
    assert [p["id"] for p in pending["items"]] == [poa["id"]]
    # Members of every role see the enterprise's powers, the agent included.
    for token in (firm.agent, firm.clerk, firm.rep, operator):
        listed = await api.call("GET", _path(firm), token, 200)
        assert [p["id"] for p in listed["items"]] == [poa["id"]]
    assert (await api.call("GET", _path(firm, f"/{poa['id']}"), firm.agent, 200))["id"] == poa["id"]
    # The operator reviewing it may read the uploaded document.
    await api.call("GET", f"/api/v1/documents/{firm.document_id}", operator, 200)

    approved = await _review(api, operator, poa["id"])
    assert approved["status"] == "approved" and approved["standing"] == "in_force"
    assert (await api.call("GET", "/api/v1/admin/powers-of-attorney/pending", operator, 200))["items"] == []

    agent = await _user(api, firm.agent)
    authority = await authority_to_sign(agent, firm.id, amount_fen=50_000_000, action="sign", on=TODAY)
    assert authority == SigningAuthority(kind="agent", poa_id=poa["id"])
    assert authority.as_payload() == {"authority": "agent", "power_of_attorney": poa["id"]}
    # Both ends of the validity period are inclusive.
    for day in (TODAY, TODAY + timedelta(days=180)):
        assert (await authority_to_sign(agent, firm.id, amount_fen=1, action="sign", on=day)).poa_id == poa["id"]

    revoked = await api.call("POST", _path(firm, f"/{poa['id']}/revoke"), firm.rep, 200, json={"reason": "代理人离职"})
    assert revoked["status"] == "revoked" and revoked["revoke_reason"] == "代理人离职"
    refusal = await _refused(api, firm.agent, firm)
    assert refusal.code == "poa_revoked"
    assert refusal.message == f"授权委托书已于 {TODAY.isoformat()} 被撤销，不能再代表企业签署"

    entries = await ledger.entries_for(f"enterprise:{firm.id}")
    poa_entries = [e for e in entries if e.action.endswith("_power_of_attorney")]
    assert [e.action for e in poa_entries] == [
        "create_power_of_attorney", "approve_power_of_attorney", "revoke_power_of_attorney"]
    assert poa_entries[0].payload["max_amount"] == "500000.00" and poa_entries[0].payload["actions"] == ["sign"]
    assert poa_entries[2].payload["reason"] == "代理人离职"
    assert (await ledger.verify()).ok


async def test_legal_rep_signs_in_person_without_a_power(api: ApiClient, world: dict[str, Any]):
    firm = world["firm"]
    rep = await _user(api, firm.rep)
    authority = await authority_to_sign(rep, firm.id, amount_fen=10**12, action="sign", on=TODAY)
    assert authority == SigningAuthority(kind="legal_rep", poa_id=None)
    # The legal representative may also issue the power of attorney.
    poa = await _create(api, firm, firm.rep)
    assert poa["status"] == "pending_review"


# ---- each refusal ------------------------------------------------------------------------------------------


async def test_each_refusal_has_its_precise_reason(api: ApiClient, world: dict[str, Any]):
    firm, operator = world["firm"], world["operator"]

    missing = await _refused(api, firm.agent, firm)
    assert missing.code == "poa_missing" and "法定代表人" in missing.message

    poa = await _create(api, firm)
    pending = await _refused(api, firm.agent, firm)
    assert pending.code == "poa_not_approved" and pending.message.startswith("授权委托书未经平台审核通过")

    await _review(api, operator, poa["id"], "reject", "委托书未加盖公章")
    rejected = await _refused(api, firm.agent, firm)
    assert rejected.code == "poa_not_approved" and "委托书未加盖公章" in rejected.message

    poa = await _create(api, firm)
    await _review(api, operator, poa["id"])
    end = TODAY + timedelta(days=180)
    expired = await _refused(api, firm.agent, firm, on=end + timedelta(days=1))
    assert expired.code == "poa_expired"
    assert expired.message == (f"授权委托书有效期为 {TODAY.isoformat()} 至 {end.isoformat()}，"
                               f"{(end + timedelta(days=1)).isoformat()} 不在有效期内")
    early = await _refused(api, firm.agent, firm, on=TODAY - timedelta(days=1))
    assert early.code == "poa_not_yet_valid"

    over = await _refused(api, firm.agent, firm, amount=100_000_000)
    assert over.code == "poa_amount_exceeded"
    assert over.message == "授权委托书金额上限为 500000.00 元，本笔融资金额 1000000.00 元超出授权范围"
    assert over.details["max_amount"] == "500000.00"
    # Exactly at the ceiling is covered.
    ok = await authority_to_sign(await _user(api, firm.agent), firm.id, amount_fen=50_000_000, action="sign", on=TODAY)
    assert ok.kind == "agent"

    other = await _refused(api, firm.agent, firm, action="disburse")
    assert other.code == "poa_action_not_covered"
    assert other.message == "授权委托书的授权事项为“签署合同”，不包括“放款”"

    clerk = await _refused(api, firm.clerk, firm)
    assert clerk.code == "signing_authority_required"
    stranger = await _refused(api, world["foreign"].agent, firm)
    assert stranger.code == "not_a_member"
    # Our agent holds no power for the foreign enterprise: no borrowing across enterprises.
    assert (await _refused(api, firm.agent, world["foreign"])).code == "not_a_member"


async def test_not_yet_valid_says_today(api: ApiClient, world: dict[str, Any]):
    firm = world["firm"]
    start, end = TODAY + timedelta(days=10), TODAY + timedelta(days=40)
    poa = await _create(api, firm, valid_from=start.isoformat(), valid_to=end.isoformat())
    approved = await _review(api, world["operator"], poa["id"])
    assert approved["standing"] == "not_yet_valid" and approved["standing_label"] == "未到生效日"
    refusal = await _refused(api, firm.agent, firm)
    assert refusal.code == "poa_not_yet_valid"
    assert refusal.message == (f"授权委托书有效期为 {start.isoformat()} 至 {end.isoformat()}，"
                               f"今天（{TODAY.isoformat()}）不在有效期内")


async def test_a_covering_power_wins_over_others_and_the_best_reason_is_given(api: ApiClient, world: dict[str, Any]):
    firm, operator = world["firm"], world["operator"]
    small = await _create(api, firm, max_amount="1000.00")
    await _review(api, operator, small["id"])
    await _create(api, firm, max_amount="9000000.00")  # newer but still pending
    # Of an approved power that is too small and a pending one, the amount is the reason that explains most.
    refusal = await _refused(api, firm.agent, firm, amount=500_000)
    assert refusal.code == "poa_amount_exceeded" and refusal.details["power_of_attorney"] == small["id"]
    big = await _create(api, firm, max_amount="2000000.00")
    await _review(api, operator, big["id"])
    authority = await authority_to_sign(await _user(api, firm.agent), firm.id, amount_fen=500_000, action="sign", on=TODAY)
    assert authority.poa_id == big["id"]


async def test_agent_role_removed_means_no_signing(api: ApiClient, world: dict[str, Any]):
    firm = world["firm"]
    poa = await _create(api, firm)
    await _review(api, world["operator"], poa["id"])
    await api.call("PUT", f"/api/v1/enterprises/{firm.id}/members/{firm.agent_id}", firm.admin, 200,
                   json={"roles": ["operator"]})
    assert (await _refused(api, firm.agent, firm)).code == "signing_authority_required"


# ---- review ------------------------------------------------------------------------------------------------


async def test_only_platform_operators_review(api: ApiClient, world: dict[str, Any]):
    firm, operator = world["firm"], world["operator"]
    poa = await _create(api, firm)
    for token in (firm.admin, firm.rep, firm.agent):
        body = await _review(api, token, poa["id"], expect=403)
        assert body["error"]["code"] == "platform_operator_required"
    body = await api.call("GET", "/api/v1/admin/powers-of-attorney/pending", firm.admin, 403)
    assert body["error"]["code"] == "platform_operator_required"
    body = await _review(api, operator, poa["id"], "reject", expect=422)
    assert body["error"]["code"] == "reason_required"
    body = await _review(api, operator, 999999, expect=404)
    assert body["error"]["code"] == "poa_not_found"
    await _review(api, operator, poa["id"])
    body = await _review(api, operator, poa["id"], expect=409)
    assert body["error"]["code"] == "invalid_state" and "审核通过" in body["error"]["message"]


async def test_concurrent_decisions_land_once(api: ApiClient, world: dict[str, Any]):
    firm, operator = world["firm"], world["operator"]
    poa = await _create(api, firm)
    second = await api.operator("operator-2")
    results = await asyncio.gather(
        api.call("POST", f"/api/v1/admin/powers-of-attorney/{poa['id']}/review", operator, json={"decision": "approve"}),
        api.call("POST", f"/api/v1/admin/powers-of-attorney/{poa['id']}/review", second,
                 json={"decision": "reject", "reason": "材料不清晰"}),
        api.call("POST", f"/api/v1/admin/powers-of-attorney/{poa['id']}/review", operator, json={"decision": "approve"}),
    )
    landed = [r for r in results if "status" in r]
    assert len(landed) == 1, results
    assert all(r["error"]["code"] in ("stale_power_of_attorney", "invalid_state") for r in results if "error" in r)
    row = await PowerOfAttorney.get(id=poa["id"])
    assert row.status == landed[0]["status"] and row.version == 2
    entries = [e for e in await ledger.entries_for(f"enterprise:{firm.id}") if e.action.endswith("_power_of_attorney")]
    assert len(entries) == 2


# ---- who may create, see and revoke ------------------------------------------------------------------------


async def test_foreign_enterprise_cannot_see_create_or_revoke(api: ApiClient, world: dict[str, Any]):
    firm, foreign = world["firm"], world["foreign"]
    poa = await _create(api, firm)
    for method, suffix, body in (("GET", "", None), ("GET", f"/{poa['id']}", None),
                                 ("POST", "", _body(firm)), ("POST", f"/{poa['id']}/revoke", {})):
        answer = await api.call(method, _path(firm, suffix), foreign.admin, 404, json=body)
        assert answer["error"]["code"] == "enterprise_not_found"
    # A power of one enterprise is not reachable through another enterprise's path.
    answer = await api.call("GET", _path(foreign, f"/{poa['id']}"), foreign.admin, 404)
    assert answer["error"]["code"] == "poa_not_found"
    await api.call("POST", _path(foreign, f"/{poa['id']}/revoke"), foreign.admin, 404, json={})
    assert (await PowerOfAttorney.get(id=poa["id"])).status == "pending_review"


async def test_only_admin_or_legal_rep_creates_and_revokes(api: ApiClient, world: dict[str, Any]):
    firm = world["firm"]
    for token in (firm.agent, firm.clerk):
        body = await api.call("POST", _path(firm), token, 403, json=_body(firm))
        assert body["error"]["code"] == "member_role_required"
    poa = await _create(api, firm)
    for token in (firm.agent, firm.clerk, world["operator"]):
        await api.call("POST", _path(firm, f"/{poa['id']}/revoke"), token, 403 if token != world["operator"] else 404,
                       json={})
    # A pending power can be withdrawn by the admin; a revoked or rejected one cannot be revoked again.
    await api.call("POST", _path(firm, f"/{poa['id']}/revoke"), firm.admin, 200)
    body = await api.call("POST", _path(firm, f"/{poa['id']}/revoke"), firm.admin, 409, json={})
    assert body["error"]["code"] == "invalid_state"


async def test_agent_must_be_a_member_with_the_agent_role(api: ApiClient, world: dict[str, Any]):
    firm, foreign = world["firm"], world["foreign"]
    body = await api.call("POST", _path(firm), firm.admin, 422, json=_body(firm, agent_user_id=foreign.agent_id))
    assert body["error"]["code"] == "agent_not_member"
    clerk_id = (await _user(api, firm.clerk)).id
    body = await api.call("POST", _path(firm), firm.admin, 422, json=_body(firm, agent_user_id=clerk_id))
    assert body["error"]["code"] == "agent_role_required" and "授权代理人" in body["error"]["message"]
    # Nobody authorises themselves, even an admin who also holds the agent role.
    admin_id = (await _user(api, firm.admin)).id
    await api.call("PUT", f"/api/v1/enterprises/{firm.id}/members/{admin_id}", firm.admin, 200,
                   json={"roles": ["admin", "agent"]})
    body = await api.call("POST", _path(firm), firm.admin, 422, json=_body(firm, agent_user_id=admin_id))
    assert body["error"]["code"] == "self_authorisation"


async def test_document_must_be_our_power_of_attorney(api: ApiClient, world: dict[str, Any]):
    firm, foreign = world["firm"], world["foreign"]
    body = await api.call("POST", _path(firm), firm.admin, 422, json=_body(firm, document_id=foreign.document_id))
    assert body["error"]["code"] == "poa_document_not_found"
    license_doc = await api.upload(firm.admin, firm.id, "business_license", png_bytes())
    body = await api.call("POST", _path(firm), firm.admin, 422, json=_body(firm, document_id=license_doc["id"]))
    assert body["error"]["code"] == "poa_document_kind"
    assert body["error"]["message"] == "所选文件的类型为“营业执照”，请选择类型为“授权委托书”的文件"


async def test_scope_is_validated(api: ApiClient, world: dict[str, Any]):
    firm = world["firm"]
    assert agent_actions() == ["sign"]  # read from the financing transition table
    cases = {
        "invalid_poa_action": [_body(firm, actions=["fly"]), _body(firm, actions=["disburse"])],
        "invalid_poa_dates": [
            _body(firm, valid_from=TODAY.isoformat(), valid_to=(TODAY - timedelta(days=1)).isoformat()),
            _body(firm, valid_from=(TODAY - timedelta(days=30)).isoformat(),
                  valid_to=(TODAY - timedelta(days=1)).isoformat()),
        ],
        "validation_failed": [_body(firm, max_amount=500000), _body(firm, max_amount="0"),
                              _body(firm, max_amount="1.234"), _body(firm, actions=[]), _body(firm, extra=1)],
    }
    for code, bodies in cases.items():
        for body in bodies:
            answer = await api.call("POST", _path(firm), firm.admin, 422, json=body)
            assert answer["error"]["code"] == code, (body, answer)
    answer = await api.call("POST", _path(firm), firm.admin, 422, json=_body(firm, actions=["disburse"]))
    assert answer["error"]["message"] == "授权事项“放款”不能由授权代理人办理；可授权的事项：“签署合同”"
    # Actions default to signing; duplicates collapse.
    body = _body(firm)
    del body["actions"]
    assert (await api.call("POST", _path(firm), firm.admin, 201, json=body))["actions"] == ["sign"]
    assert (await _create(api, firm, actions=["sign", "sign"]))["actions"] == ["sign"]
    assert await PowerOfAttorney.filter(enterprise_id=firm.id).count() == 2


async def test_create_is_idempotent_with_a_key(api: ApiClient, world: dict[str, Any]):
    firm = world["firm"]
    headers = {"Idempotency-Key": "poa-create-1"}
    first = await api.call("POST", _path(firm), firm.admin, 201, json=_body(firm), headers=headers)
    again = await api.call("POST", _path(firm), firm.admin, 201, json=_body(firm), headers=headers)
    assert first["id"] == again["id"]
    assert await PowerOfAttorney.filter(enterprise_id=firm.id).count() == 1


async def test_openapi_documents_the_endpoints(api: ApiClient):
    spec = await api.call("GET", "/api/openapi.json", None, 200)
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/enterprises/{enterprise_id}/powers-of-attorney"])
    assert "post" in paths["/api/v1/admin/powers-of-attorney/{poa_id}/review"]
    assert "post" in paths["/api/v1/enterprises/{enterprise_id}/powers-of-attorney/{poa_id}/revoke"]
    assert "get" in paths["/api/v1/admin/powers-of-attorney/pending"]
