"""Mini-program login through the WeChat simulator: tokens, reuse, logout, session_key secrecy."""

import json

from echain.keys import REDIS, SIMULATOR


async def test_login_creates_person_once_and_returns_token(api):
    first = await api.call("POST", "/api/v1/auth/login", json={"code": "sim:alice"}, expect=200)
    again = await api.call("POST", "/api/v1/auth/login", json={"code": "sim:alice"}, expect=200)
    other = await api.call("POST", "/api/v1/auth/login", json={"code": "sim:bob"}, expect=200)
    assert first["created"] is True and again["created"] is False
    assert first["user"]["id"] == again["user"]["id"] != other["user"]["id"]
    assert first["token"] != again["token"]
    me = await api.call("GET", "/api/v1/me", first["token"], 200)
    assert me["user"]["id"] == first["user"]["id"]


async def test_session_key_never_leaves_the_server(api):
    body = await api.call("POST", "/api/v1/auth/login", json={"code": "sim:alice"}, expect=200)
    assert "session_key" not in json.dumps(body)
    # Stored encrypted even in Redis.
    sim = api.app[SIMULATOR]
    keys = await api.app[REDIS].keys("echain:session:*")
    stored = b"".join([await api.app[REDIS].get(k) for k in keys])
    for call in sim.calls_to("/sns/jscode2session"):
        assert call.errcode in (0, None)
    assert b"session_key" not in stored and b'"sk": "v1:' in stored


async def test_issued_code_is_single_use(api):
    code = api.app[SIMULATOR].issue_login_code("carol")
    await api.call("POST", "/api/v1/auth/login", json={"code": code}, expect=200)
    body = await api.call("POST", "/api/v1/auth/login", json={"code": code}, expect=401)
    assert body["error"]["code"] == "invalid_login_code"
    assert "已被使用" in body["error"]["message"]


async def test_unknown_code_is_401_in_chinese(api):
    body = await api.call("POST", "/api/v1/auth/login", json={"code": "no-such-code"}, expect=401)
    assert body["error"]["message"] == "登录凭证无效，请重新打开小程序登录"


async def test_missing_code_is_422_naming_the_field(api):
    body = await api.call("POST", "/api/v1/auth/login", json={}, expect=422)
    assert body["error"]["message"] == "登录凭证 code为必填项"


async def test_non_json_body_is_415_and_broken_json_400(api):
    resp = await api.client.post("/api/v1/auth/login", data="code=x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await api.client.post("/api/v1/auth/login", data="{broken", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


async def test_logout_revokes_the_token(api):
    token = await api.login("dave")
    await api.call("GET", "/api/v1/me", token, 200)
    await api.call("POST", "/api/v1/auth/logout", token, 204)
    body = await api.call("GET", "/api/v1/me", token, 401)
    assert body["error"]["code"] == "session_expired"


async def test_missing_or_bad_bearer_is_401(api):
    assert (await api.call("GET", "/api/v1/me", expect=401))["error"]["code"] == "login_required"
    assert (await api.call("GET", "/api/v1/me", "forged-token", 401))["error"]["code"] == "session_expired"


async def test_oversize_json_body_is_413(api):
    resp = await api.client.post("/api/v1/auth/login", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                                 headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
