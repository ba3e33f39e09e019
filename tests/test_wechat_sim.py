"""The real WeChatClient against the real WeChat simulator, over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from wechat.client import MemoryTokenCache, WeChatClient, WeChatError
from wechat.simulator import (
    SIM_APP_ID,
    SIM_APP_SECRET,
    SIM_MINIAPP_ID,
    SIM_MINIAPP_SECRET,
    SimulatorState,
    start_simulator,
)

STABLE = "/cgi-bin/stable_token"
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
CUSTOM = "/cgi-bin/message/custom/send"


@dataclass
class Sim:
    base_url: str
    state: SimulatorState
    http: aiohttp.ClientSession

    async def post(self, path: str, body: Any, **params: str) -> dict[str, Any]:
        async with self.http.post(self.base_url + path, json=body, params=params) as resp:
            return await resp.json()

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        async with self.http.get(self.base_url + path, params=params) as resp:
            return await resp.json()

    def client(
        self, app_id: str = SIM_MINIAPP_ID, secret: str = SIM_MINIAPP_SECRET, **kw: Any
    ) -> WeChatClient:
        return WeChatClient(self.http, self.base_url, app_id, secret, **kw)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim(http: aiohttp.ClientSession) -> AsyncIterator[Sim]:
    runner, base_url, state = await start_simulator()
    yield Sim(base_url, state, http)
    await runner.cleanup()


@pytest.fixture
def mini(sim: Sim) -> WeChatClient:
    return sim.client()


@pytest.fixture
def oa(sim: Sim) -> WeChatClient:
    return sim.client(SIM_APP_ID, SIM_APP_SECRET)


def text_message(openid: str, content: str = "您的融资申请已受理") -> dict[str, Any]:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


def subscribe_message(openid: str, template_id: str = "TPL_LOAN") -> dict[str, Any]:
    return {"touser": openid, "template_id": template_id, "data": {"thing1": {"value": "融资审批通过"}}}


# --- access tokens ---------------------------------------------------------------------------------


async def test_token_fetched_once_for_several_sends(sim: Sim, mini: WeChatClient) -> None:
    openid = sim.state.openid_for("alice")
    sim.state.record_interaction(openid)
    for _ in range(3):
        assert (await mini.send_custom(text_message(openid)))["errcode"] == 0
    assert len(sim.state.calls_to(STABLE)) == 1
    sends = sim.state.calls_to(CUSTOM)
    assert len(sends) == 3
    assert len({c.query["access_token"] for c in sends}) == 1


async def test_shared_token_cache_serves_second_client(sim: Sim) -> None:
    cache = MemoryTokenCache()
    first = await sim.client(token_cache=cache).access_token()
    second = await sim.client(token_cache=cache).access_token()
    assert first == second
    assert len(sim.state.calls_to(STABLE)) == 1
    cached = await cache.get(f"wechat:access_token:{SIM_MINIAPP_ID}")
    assert cached is not None and cached[0] == first


async def test_concurrent_first_calls_fetch_one_token(sim: Sim, mini: WeChatClient) -> None:
    tokens = await asyncio.gather(*(mini.access_token() for _ in range(5)))
    assert len(set(tokens)) == 1
    assert len(sim.state.calls_to(STABLE)) == 1


async def test_stable_token_is_stable_until_forced(sim: Sim) -> None:
    creds = {"grant_type": "client_credential", "appid": SIM_MINIAPP_ID, "secret": SIM_MINIAPP_SECRET}
    first = await sim.post(STABLE, creds)
    again = await sim.post(STABLE, creds)
    assert set(first) == {"access_token", "expires_in"}  # success carries no errcode, like WeChat
    assert again["access_token"] == first["access_token"]
    assert 7190 <= first["expires_in"] <= 7200
    forced = await sim.post(STABLE, {**creds, "force_refresh": True})
    assert forced["access_token"] != first["access_token"]
    # The forced refresh invalidated the previous token.
    stale = await sim.post(TEMPLATE, subscribe_message("o1"), access_token=first["access_token"])
    assert stale["errcode"] == 40001


async def test_stable_token_rotates_in_last_five_minutes(sim: Sim) -> None:
    old = sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET)
    sim.state.advance(7200 - 200)
    new = sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET)
    assert new.token != old.token
    assert sim.state.expires_in(new) == 7200
    assert sim.state.check_token(old.token).app_id == SIM_APP_ID  # old one still valid until it expires


async def test_force_refresh_within_30_seconds_does_not_rotate(sim: Sim) -> None:
    first = sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET, force_refresh=True)
    second = sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET, force_refresh=True)
    assert second.token == first.token
    sim.state.advance(31)
    assert sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET, force_refresh=True).token != first.token


async def test_cgi_bin_token_rotates_and_is_isolated_from_stable(sim: Sim) -> None:
    stable = sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET).token
    params = {"grant_type": "client_credential", "appid": SIM_APP_ID, "secret": SIM_APP_SECRET}
    first = await sim.get("/cgi-bin/token", **params)
    second = await sim.get("/cgi-bin/token", **params)
    assert first["access_token"] != second["access_token"]
    assert first["expires_in"] == 7200
    menu = {"button": [{"type": "click", "name": "融资", "key": "LOAN"}]}
    assert (await sim.post("/cgi-bin/menu/create", menu, access_token=first["access_token"]))[
        "errcode"
    ] == 40001
    assert (await sim.post("/cgi-bin/menu/create", menu, access_token=second["access_token"]))["errcode"] == 0
    assert (await sim.post("/cgi-bin/menu/create", menu, access_token=stable))["errcode"] == 0


async def test_token_endpoints_reject_bad_credentials(sim: Sim) -> None:
    base = {"grant_type": "client_credential", "appid": SIM_APP_ID, "secret": SIM_APP_SECRET}
    assert (await sim.get("/cgi-bin/token", **{**base, "appid": "wxnope"}))["errcode"] == 40013
    assert (await sim.get("/cgi-bin/token", **{**base, "secret": "wrong"}))["errcode"] == 40001
    assert (await sim.get("/cgi-bin/token", **{**base, "grant_type": "x"}))["errcode"] == 40002
    assert (await sim.post(STABLE, {**base, "secret": "wrong"}))["errcode"] == 40125
    assert (await sim.post(STABLE, {**base, "appid": ""}))["errcode"] == 41002


async def test_client_surfaces_wrong_secret(sim: Sim) -> None:
    client = sim.client(SIM_APP_ID, "wrong-secret")
    with pytest.raises(WeChatError) as err:
        await client.send_template(subscribe_message(sim.state.openid_for("bob", SIM_APP_ID)))
    assert err.value.errcode == 40125
    assert sim.state.calls_to(TEMPLATE) == []


async def test_http_shape_errors(sim: Sim) -> None:
    assert (await sim.get(STABLE))["errcode"] == 43002  # stable_token is POST-only
    assert (await sim.post(CUSTOM, text_message("o1")))["errcode"] == 41001  # no access_token
    token = sim.state.stable_token(SIM_MINIAPP_ID, SIM_MINIAPP_SECRET).token
    async with sim.http.post(
        f"{sim.base_url}{CUSTOM}", data=b"not json", params={"access_token": token}
    ) as r:
        assert (await r.json())["errcode"] == 47001


# --- refresh and retry -----------------------------------------------------------------------------


async def test_token_invalidated_elsewhere_is_refreshed_and_retried(sim: Sim, oa: WeChatClient) -> None:
    openid = sim.state.openid_for("carol", SIM_APP_ID)
    await oa.access_token()
    # Another server force-refreshes the stable token, invalidating ours.
    sim.state.stable_token(SIM_APP_ID, SIM_APP_SECRET, force_refresh=True)
    result = await oa.send_template(subscribe_message(openid))
    assert result["errcode"] == 0 and isinstance(result["msgid"], int)
    sends = sim.state.calls_to(TEMPLATE)
    assert [c.errcode for c in sends] == [40001, 0]
    assert [c.body["force_refresh"] for c in sim.state.calls_to(STABLE)] == [False, True]
    assert len(sim.state.messages_to(openid)) == 1


async def test_expired_token_is_refreshed_and_retried(sim: Sim, mini: WeChatClient) -> None:
    openid = sim.state.openid_for("dave")
    await mini.access_token()
    sim.state.advance(7201)  # the simulator's clock runs ahead of the client's cache
    sim.state.record_interaction(openid)
    await mini.send_custom(text_message(openid))
    assert [c.errcode for c in sim.state.calls_to(CUSTOM)] == [42001, 0]
    assert len(sim.state.calls_to(STABLE)) == 2


async def test_refresh_and_retry_happens_only_once(sim: Sim, mini: WeChatClient) -> None:
    sim.state.fail_next(SUBSCRIBE, 40001, "invalid credential", times=2)
    with pytest.raises(WeChatError) as err:
        await mini.send_subscribe(subscribe_message(sim.state.openid_for("erin")))
    assert err.value.errcode == 40001
    assert len(sim.state.calls_to(SUBSCRIBE)) == 2
    assert [c.body["force_refresh"] for c in sim.state.calls_to(STABLE)] == [False, True]


async def test_other_errors_are_not_retried(sim: Sim, mini: WeChatClient) -> None:
    sim.state.fail_next(SUBSCRIBE, -1, "system error")
    with pytest.raises(WeChatError) as err:
        await mini.send_subscribe(subscribe_message(sim.state.openid_for("erin")))
    assert (err.value.errcode, err.value.errmsg) == (-1, "system error")
    assert len(sim.state.calls_to(SUBSCRIBE)) == 1


# --- mini-program login ----------------------------------------------------------------------------


async def test_jscode2session_sim_name_is_deterministic(sim: Sim, mini: WeChatClient) -> None:
    first = await mini.code_to_session("sim:alice")
    again = await mini.code_to_session("sim:alice")
    other = await mini.code_to_session("sim:bob")
    assert first["openid"] == again["openid"] == sim.state.openid_for("alice", SIM_MINIAPP_ID)
    assert len(first["openid"]) == 28 and first["openid"].startswith("o")
    assert other["openid"] != first["openid"]
    assert first["session_key"] != again["session_key"]
    assert len(base64.b64decode(first["session_key"])) == 16
    assert first["unionid"] == again["unionid"] == sim.state.unionid_for("alice")
    assert first["unionid"] != first["openid"]
    # Same person, other account: different openid (openids are per appid), same unionid.
    assert sim.state.openid_for("alice", SIM_APP_ID) != first["openid"]


async def test_unionid_omitted_when_disabled(http: aiohttp.ClientSession) -> None:
    runner, base_url, _ = await start_simulator(unionid=False)
    try:
        session = await WeChatClient(http, base_url, SIM_MINIAPP_ID, SIM_MINIAPP_SECRET).code_to_session(
            "sim:a"
        )
    finally:
        await runner.cleanup()
    assert "unionid" not in session and session["openid"].startswith("o")


async def test_issued_code_is_single_use(sim: Sim, mini: WeChatClient) -> None:
    code = (await sim.post("/sim/wx-login", {"name": "alice"}))["code"]
    session = await mini.code_to_session(code)
    assert session["openid"] == sim.state.openid_for("alice")
    with pytest.raises(WeChatError) as err:
        await mini.code_to_session(code)
    assert err.value.errcode == 40163
    assert err.value.user_message == "登录凭证已被使用，请重新登录"


async def test_issued_code_expires_after_five_minutes(sim: Sim, mini: WeChatClient) -> None:
    code = sim.state.issue_login_code("alice")
    sim.state.advance(301)
    with pytest.raises(WeChatError) as err:
        await mini.code_to_session(code)
    assert err.value.errcode == 40029


async def test_unknown_code_rejected(mini: WeChatClient) -> None:
    with pytest.raises(WeChatError) as err:
        await mini.code_to_session("0a1b2c3d4e5f")
    assert (err.value.errcode, err.value.errmsg) == (40029, "invalid code")


async def test_jscode2session_needs_mini_program_credentials(sim: Sim) -> None:
    with pytest.raises(WeChatError) as wrong_secret:
        await sim.client(SIM_MINIAPP_ID, "wrong").code_to_session("sim:alice")
    with pytest.raises(WeChatError) as official_account:
        await sim.client(SIM_APP_ID, SIM_APP_SECRET).code_to_session("sim:alice")
    assert wrong_secret.value.errcode == 40125
    assert official_account.value.errcode == 40013


# --- messages --------------------------------------------------------------------------------------


async def test_subscribe_requires_quota(sim: Sim, mini: WeChatClient) -> None:
    openid = sim.state.openid_for("frank")
    with pytest.raises(WeChatError) as refused:
        await mini.send_subscribe(subscribe_message(openid))
    assert refused.value.errcode == 43101
    accepted = await sim.post(
        "/sim/subscribe-accept", {"openid": openid, "template_id": "TPL_LOAN", "count": 1}
    )
    assert accepted["quota"] == 1
    result = await mini.send_subscribe(subscribe_message(openid))
    assert result["errcode"] == 0 and result["msgid"]
    with pytest.raises(WeChatError) as used_up:
        await mini.send_subscribe(subscribe_message(openid))
    assert used_up.value.errcode == 43101
    assert [m.payload["template_id"] for m in sim.state.messages_to(openid)] == ["TPL_LOAN"]


async def test_subscribe_with_official_account_token_is_unauthorized(sim: Sim, oa: WeChatClient) -> None:
    openid = sim.state.openid_for("frank")
    sim.state.add_subscribe_quota(openid, "TPL_LOAN")
    with pytest.raises(WeChatError) as err:
        await oa.send_subscribe(subscribe_message(openid))
    assert err.value.errcode == 48001


async def test_template_send_validates_body(sim: Sim, oa: WeChatClient) -> None:
    openid = sim.state.openid_for("gina", SIM_APP_ID)
    with pytest.raises(WeChatError) as err:
        await oa.send_template({"touser": openid, "data": {}})
    assert err.value.errcode == 40037
    assert sim.state.messages_to(openid) == []


async def test_custom_message_window(sim: Sim, mini: WeChatClient) -> None:
    openid = sim.state.openid_for("henry")
    with pytest.raises(WeChatError) as never:
        await mini.send_custom(text_message(openid))
    assert never.value.errcode == 45015
    sim.state.record_interaction(openid, when=sim.state.now() - 49 * 3600)
    with pytest.raises(WeChatError) as stale:
        await mini.send_custom(text_message(openid))
    assert stale.value.errcode == 45015
    assert (await sim.post("/sim/user-interaction", {"openid": openid}))["openid"] == openid
    for _ in range(5):
        await mini.send_custom(text_message(openid))
    with pytest.raises(WeChatError) as limit:
        await mini.send_custom(text_message(openid))
    assert limit.value.errcode == 45047
    sim.state.record_interaction(openid)  # the user writes again: a fresh allowance
    await mini.send_custom(text_message(openid))
    assert len(sim.state.messages_to(openid)) == 6


async def test_calls_recorded_with_bodies(sim: Sim, mini: WeChatClient) -> None:
    openid = sim.state.openid_for("ivy")
    sim.state.add_subscribe_quota(openid, "TPL_LOAN")
    payload = subscribe_message(openid)
    await mini.send_subscribe(payload)
    (call,) = sim.state.calls_to(SUBSCRIBE)
    assert call.method == "POST" and call.body == payload and call.errcode == 0
    assert call.query["access_token"] == await mini.access_token()
    listed = (await sim.get("/sim/calls"))["calls"]
    assert [c["path"] for c in listed] == [STABLE, SUBSCRIBE]
    assert listed[1]["body"]["data"]["thing1"]["value"] == "融资审批通过"
    async with sim.http.delete(f"{sim.base_url}/sim/calls") as resp:
        assert (await resp.json())["cleared"] == 2
    assert sim.state.calls == []


# --- media -----------------------------------------------------------------------------------------


async def test_media_round_trip_raw_and_multipart(sim: Sim, mini: WeChatClient) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    async with sim.http.post(
        f"{sim.base_url}/sim/media", data=png, params={"content_type": "image/png"}
    ) as r:
        raw_id = (await r.json())["media_id"]
    form = aiohttp.FormData()
    form.add_field("media", b"%PDF-1.7 invoice", filename="invoice.pdf", content_type="application/pdf")
    async with sim.http.post(f"{sim.base_url}/sim/media", data=form) as r:
        form_id = (await r.json())["media_id"]
    assert await mini.get_media(raw_id) == (png, "image/png")
    assert await mini.get_media(form_id) == (b"%PDF-1.7 invoice", "application/pdf")
    assert sim.state.calls_to("/cgi-bin/media/get")[0].query["media_id"] == raw_id


async def test_invalid_and_expired_media(sim: Sim, mini: WeChatClient) -> None:
    with pytest.raises(WeChatError) as unknown:
        await mini.get_media("no-such-media")
    assert unknown.value.errcode == 40007
    media_id = sim.state.add_media(b"hello", "text/plain")
    assert await mini.get_media(media_id) == (b"hello", "text/plain")
    sim.state.advance(3 * 86400 + 1)
    with pytest.raises(WeChatError) as expired:
        await mini.get_media(media_id)
    assert expired.value.errcode == 40007


# --- menu ------------------------------------------------------------------------------------------

VALID_MENU = {
    "button": [
        {"type": "view", "name": "我的融资", "url": "https://example.com/loans"},
        {
            "name": "服务",
            "sub_button": [
                {"type": "click", "name": "联系客服", "key": "CONTACT"},
                {
                    "type": "miniprogram",
                    "name": "小程序",
                    "url": "https://example.com",
                    "appid": SIM_MINIAPP_ID,
                    "pagepath": "pages/index",
                },
            ],
        },
    ]
}


async def test_menu_create_stores_valid_menu(sim: Sim, oa: WeChatClient) -> None:
    await oa.create_menu(VALID_MENU)
    assert sim.state.menu == VALID_MENU


@pytest.mark.parametrize(
    ("menu", "errcode"),
    [
        ({"button": []}, 40016),
        ({"button": [{"type": "click", "name": f"b{i}", "key": "K"} for i in range(4)]}, 40016),
        ({"menu": []}, 40016),
        ({"button": [{"name": "多", "sub_button": [{"type": "click", "name": "s", "key": "K"}] * 6}]}, 40023),
        ({"button": [{"type": "teleport", "name": "x"}]}, 40017),
        ({"button": [{"type": "click", "name": "融资服务中心入口", "key": "K"}]}, 40018),  # 24 bytes > 16
        ({"button": [{"type": "click", "name": "x"}]}, 40019),
        ({"button": [{"type": "view", "name": "x"}]}, 40020),
        ({"button": [{"name": "p", "sub_button": [{"type": "bogus", "name": "s"}]}]}, 40024),
    ],
)
async def test_menu_create_validation(sim: Sim, oa: WeChatClient, menu: dict[str, Any], errcode: int) -> None:
    with pytest.raises(WeChatError) as err:
        await oa.create_menu(menu)
    assert err.value.errcode == errcode
    assert sim.state.menu is None


# --- transport failures ----------------------------------------------------------------------------


async def test_unreachable_wechat_raises_minus_one(http: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # grab a free port, then close it so nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = WeChatClient(http, f"http://127.0.0.1:{port}", SIM_MINIAPP_ID, SIM_MINIAPP_SECRET)
    with pytest.raises(WeChatError) as err:
        await client.code_to_session("sim:alice")
    assert err.value.errcode == -1
    assert err.value.errmsg == "微信接口暂时无法访问，请稍后重试"
    assert isinstance(err.value.__cause__, aiohttp.ClientError)


async def test_timeout_raises_minus_one(http: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/sns/jscode2session", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = runner.addresses[0][1]
        client = WeChatClient(
            http, f"http://127.0.0.1:{port}", SIM_MINIAPP_ID, SIM_MINIAPP_SECRET, timeout=0.2
        )
        with pytest.raises(WeChatError) as err:
            await client.code_to_session("sim:alice")
    finally:
        release.set()
        await runner.cleanup()
    assert err.value.errcode == -1 and isinstance(err.value.__cause__, TimeoutError)


async def test_http_error_status_is_an_error(sim: Sim, http: aiohttp.ClientSession) -> None:
    client = WeChatClient(http, sim.base_url + "/nowhere", SIM_MINIAPP_ID, SIM_MINIAPP_SECRET)
    with pytest.raises(WeChatError) as err:
        await client.access_token()
    assert err.value.errcode == -1
