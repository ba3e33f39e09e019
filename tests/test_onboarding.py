"""Enterprise onboarding through the API: validation, four-element check, documents, review, members."""

from models.enterprises import Enterprise, FourElementCheck
from tests.support.api import enterprise_body, new_resident_id, new_uscc, pdf_bytes, png_bytes
from workflow.identifiers import make_uscc


async def test_register_masks_id_and_makes_creator_admin(api):
    token = await api.login("alice")
    rep_id = new_resident_id("19850615")
    e = await api.register(token, legal_rep_id=rep_id, business_roles=["supplier", "core"])
    assert e["status"] == "draft" and e["kyc_outcome"] == "match"
    assert e["legal_rep_id_masked"] == rep_id[:3] + "*" * 11 + rep_id[-4:]
    assert rep_id not in str(e)
    assert e["business_roles"] == ["core", "supplier"]
    me = await api.call("GET", "/api/v1/me", token, 200)
    assert me["enterprises"][0]["member_roles"] == ["admin"]
    assert me["enterprises"][0]["counts"]["members"] == 1


async def test_id_number_is_encrypted_at_rest(api):
    token = await api.login("alice")
    rep_id = new_resident_id()
    e = await api.register(token, legal_rep_id=rep_id)
    row = await Enterprise.get(id=e["id"])
    # What a database dump would hold: no column carries the plain number.
    dumped = " ".join(str(getattr(row, f)) for f in row._meta.fields_map)
    assert rep_id not in dumped
    assert row.legal_rep_id_enc.startswith("v1:")
    assert len(row.legal_rep_id_hash) == 64


async def test_bad_uscc_check_character_is_422_with_precise_message(api):
    token = await api.login("alice")
    good = make_uscc("91370100MA0000001")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    body = await api.call("POST", "/api/v1/enterprises", token, 422, json=enterprise_body(uscc=bad))
    assert body["error"]["code"] == "validation_failed"
    assert "统一社会信用代码" in body["error"]["message"] and "校验" in body["error"]["message"]
    assert body["error"]["details"]["fields"][0]["field"] == "uscc"


async def test_bad_id_check_digit_and_missing_fields(api):
    token = await api.login("alice")
    rid = new_resident_id()
    bad = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    body = await api.call("POST", "/api/v1/enterprises", token, 422, json=enterprise_body(legal_rep_id=bad))
    assert "身份证号码" in body["error"]["message"] and "校验" in body["error"]["message"]
    body = await api.call("POST", "/api/v1/enterprises", token, 422, json={"name": "某公司"})
    fields = {f["field"] for f in body["error"]["details"]["fields"]}
    assert {"uscc", "legal_rep_name", "legal_rep_id", "contact_name", "contact_phone"} <= fields
    assert "统一社会信用代码为必填项" in body["error"]["message"]


async def test_unknown_field_and_bad_role_rejected(api):
    token = await api.login("alice")
    body = await api.call("POST", "/api/v1/enterprises", token, 422, json=enterprise_body(extra="x"))
    assert "不支持的字段" in body["error"]["message"]
    body = await api.call("POST", "/api/v1/enterprises", token, 422, json=enterprise_body(business_roles=["bank"]))
    assert "业务角色" in body["error"]["message"]


async def test_duplicate_uscc_is_409(api):
    token = await api.login("alice")
    code = new_uscc()
    await api.register(token, uscc=code)
    body = await api.call("POST", "/api/v1/enterprises", await api.login("bob"), 409, json=enterprise_body(uscc=code))
    assert body["error"]["code"] == "uscc_taken"


async def test_sandbox_mismatch_is_recorded_and_blocks_submission(api):
    token = await api.login("alice")
    e = await api.register(token, name="四要素不一致测试有限公司")
    assert e["kyc_outcome"] == "mismatch"
    checks = await FourElementCheck.filter(enterprise_id=e["id"])
    assert [c.outcome for c in checks] == ["mismatch"] and checks[0].provider == "sandbox"
    for kind in ("business_license", "id_card_front", "id_card_back"):
        await api.upload(token, e["id"], kind, png_bytes())
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/confirm", token, 200)
    body = await api.call("POST", f"/api/v1/enterprises/{e['id']}/submit", token, 409)
    assert "四要素核验未通过" in body["error"]["message"]
    # Fixing the name re-runs the check; info must be confirmed again before submitting.
    e = await api.call("PUT", f"/api/v1/enterprises/{e['id']}", token, 200, json={"name": "四要素一致测试有限公司"})
    assert e["kyc_outcome"] == "match" and e["info_confirmed"] is False
    assert e["missing_for_review"] == ["请先确认企业信息"]
    assert await FourElementCheck.filter(enterprise_id=e["id"]).count() == 2


async def test_submit_lists_everything_missing(api):
    token = await api.login("alice")
    e = await api.register(token, business_roles=[])
    body = await api.call("POST", f"/api/v1/enterprises/{e['id']}/submit", token, 409)
    missing = body["error"]["details"]["missing"]
    assert "请至少选择一个业务角色（核心企业、资产方、资金方）" in missing
    assert "请先确认企业信息" in missing
    assert {"请上传营业执照", "请上传法定代表人身份证人像面", "请上传法定代表人身份证国徽面"} <= set(missing)


async def test_full_review_cycle_reject_then_approve(api):
    token, op = await api.login("alice"), await api.operator()
    e = await api.register(token, business_roles=["supplier", "funder"])
    for kind in ("business_license", "id_card_front", "id_card_back"):
        await api.upload(token, e["id"], kind, png_bytes())
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/confirm", token, 200)
    e = await api.call("POST", f"/api/v1/enterprises/{e['id']}/submit", token, 200)
    assert e["status"] == "pending_review"
    pending = await api.call("GET", "/api/v1/admin/enterprises/pending", op, 200)
    assert [p["id"] for p in pending["items"]] == [e["id"]]
    # Editing is closed while under review.
    body = await api.call("PUT", f"/api/v1/enterprises/{e['id']}", token, 409, json={"contact_name": "王五"})
    assert "待平台审核" in body["error"]["message"]
    body = await api.call("POST", f"/api/v1/admin/enterprises/{e['id']}/review", op, 422, json={"decision": "reject"})
    assert body["error"]["code"] == "reason_required"
    e = await api.call("POST", f"/api/v1/admin/enterprises/{e['id']}/review", op, 200,
                       json={"decision": "reject", "reason": "营业执照照片不清晰"})
    assert e["status"] == "rejected" and e["review_reason"] == "营业执照照片不清晰"
    await api.upload(token, e["id"], "business_license", pdf_bytes(), "licence.pdf")
    await api.call("PUT", f"/api/v1/enterprises/{e['id']}", token, 200, json={"contact_phone": "13900139000"})
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/confirm", token, 200)
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/submit", token, 200)
    e = await api.call("POST", f"/api/v1/admin/enterprises/{e['id']}/review", op, 200, json={"decision": "approve"})
    assert e["status"] == "approved"
    # Approving twice is a state conflict naming the current state.
    body = await api.call("POST", f"/api/v1/admin/enterprises/{e['id']}/review", op, 409, json={"decision": "approve"})
    assert "审核通过" in body["error"]["message"] and body["error"]["code"] == "invalid_state"


async def test_only_operators_review_and_see_pending(api):
    token = await api.login("alice")
    e = await api.register(token)
    body = await api.call("POST", f"/api/v1/admin/enterprises/{e['id']}/review", token, 403, json={"decision": "approve"})
    assert body["error"]["code"] == "platform_operator_required"
    await api.call("GET", "/api/v1/admin/enterprises/pending", token, 403)


async def test_foreign_user_cannot_see_or_touch_an_enterprise(api):
    owner, stranger = await api.login("alice"), await api.login("mallory")
    e = await api.register(owner)
    eid = e["id"]
    for method, path, kw in [
        ("GET", f"/api/v1/enterprises/{eid}", {}),
        ("PUT", f"/api/v1/enterprises/{eid}", {"json": {"contact_name": "坏人"}}),
        ("POST", f"/api/v1/enterprises/{eid}/confirm", {}),
        ("POST", f"/api/v1/enterprises/{eid}/submit", {}),
        ("POST", f"/api/v1/enterprises/{eid}/verification", {}),
        ("GET", f"/api/v1/enterprises/{eid}/documents", {}),
        ("GET", f"/api/v1/enterprises/{eid}/members", {}),
        ("POST", f"/api/v1/enterprises/{eid}/invitations", {"json": {"roles": ["operator"]}}),
    ]:
        body = await api.call(method, path, stranger, 404, **kw)
        assert body["error"]["code"] == "enterprise_not_found", path
    await api.upload(stranger, eid, "other", png_bytes(), expect=404)


async def test_invitation_is_one_time_and_roles_are_enforced(api):
    admin, bob, carol = await api.login("alice"), await api.login("bob"), await api.login("carol")
    e = await api.register(admin)
    inv = await api.call("POST", f"/api/v1/enterprises/{e['id']}/invitations", admin, 201, json={"roles": ["operator"]})
    member = await api.call("POST", "/api/v1/invitations/accept", bob, 200, json={"code": inv["code"]})
    assert member["roles"] == ["operator"]
    body = await api.call("POST", "/api/v1/invitations/accept", carol, 409, json={"code": inv["code"]})
    assert body["error"]["code"] == "invitation_used"
    await api.call("POST", "/api/v1/invitations/accept", carol, 404, json={"code": "wrong-code"})
    # An operator is a member (can read) but not an admin (cannot edit or invite).
    await api.call("GET", f"/api/v1/enterprises/{e['id']}", bob, 200)
    body = await api.call("PUT", f"/api/v1/enterprises/{e['id']}", bob, 403, json={"contact_name": "王五"})
    assert "管理员" in body["error"]["message"]
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/invitations", bob, 403, json={"roles": ["admin"]})
    members = await api.call("GET", f"/api/v1/enterprises/{e['id']}/members", bob, 200)
    assert sorted(m["roles"][0] for m in members["items"]) == ["admin", "operator"]


async def test_last_admin_cannot_be_removed(api):
    admin = await api.login("alice")
    e = await api.register(admin)
    me = await api.call("GET", "/api/v1/me", admin, 200)
    uid = me["user"]["id"]
    body = await api.call("PUT", f"/api/v1/enterprises/{e['id']}/members/{uid}", admin, 409, json={"roles": ["operator"]})
    assert body["error"]["code"] == "last_admin"
    m = await api.call("PUT", f"/api/v1/enterprises/{e['id']}/members/{uid}", admin, 200,
                       json={"roles": ["admin", "legal_rep"]})
    assert m["roles"] == ["admin", "legal_rep"]


async def test_me_shows_multi_role_view_and_operator_counts(api):
    alice, op = await api.login("alice"), await api.operator()
    await api.onboard(alice, op, business_roles=["supplier"])
    e2 = await api.register(alice, business_roles=["core", "funder"])
    for kind in ("business_license", "id_card_front", "id_card_back"):
        await api.upload(alice, e2["id"], kind, png_bytes())
    await api.call("POST", f"/api/v1/enterprises/{e2['id']}/confirm", alice, 200)
    await api.call("POST", f"/api/v1/enterprises/{e2['id']}/submit", alice, 200)
    me = await api.call("GET", "/api/v1/me", alice, 200)
    assert [x["enterprise"]["status"] for x in me["enterprises"]] == ["approved", "pending_review"]
    assert me["enterprises"][1]["enterprise"]["business_roles"] == ["core", "funder"]
    assert me["enterprises"][1]["counts"]["documents"] == 3
    assert me["platform"] is None
    op_me = await api.call("GET", "/api/v1/me", op, 200)
    assert op_me["platform"] == {"pending_reviews": 1}


async def test_bad_path_id_is_404_not_500(api):
    token = await api.login("alice")
    await api.call("GET", "/api/v1/enterprises/abc", token, 404)
    await api.call("GET", "/api/v1/enterprises/99999999999999999999999", token, 404)
    await api.call("GET", "/api/v1/enterprises/424242", token, 404)
