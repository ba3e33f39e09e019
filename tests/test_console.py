"""The operator console over HTTP: login, sessions, CSRF, and each action through the page forms."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis.asyncio import Redis

from console.charts import Bar, bar_chart
from console.csrf import origin_allowed
from console.sessions import COOKIE, SessionStore
from echain.keys import DEPS, REDIS
from models.attorney import PowerOfAttorney
from models.console_accounts import ConsoleAccount
from models.enterprises import Enterprise
from models.financing import Contract, Financing
from models.ledger import LedgerEntry
from models.people import User
from tests.support.api import ApiClient, new_resident_id, png_bytes
from tests.support.cli import run_cli
from tests.support.console import PASSWORD, console_login, csrf_of, make_operator
from tests.support.factories import (
    PATH,
    add_member,
    advance,
    contract_services,
    make_cast,
    make_document,
    step,
    submit,
)
from workflow import attorney
from workflow.attorney import PowerOfAttorneyInput
from workflow.console_accounts import MAX_FAILURES, authenticate, create_operator
from workflow.errors import Conflict, InvalidInput, Unauthenticated
from workflow.financing import actions, service
from workflow.financing.table import FINANCING
from workflow.financing.transition import china_today


def _session_key(sid: str) -> str:
    return "echain:console:session:" + hashlib.sha256(sid.encode()).hexdigest()


def _sid(client) -> str:  # noqa: ANN001
    cookies = {c.key: c.value for c in client.session.cookie_jar}
    return cookies.get(COOKIE, "")


async def _follow(client, resp) -> str:  # noqa: ANN001
    """The page a 303 leads to."""
    assert resp.status == 303, await resp.text()
    page = await client.get(resp.headers["Location"])
    assert page.status == 200
    return await page.text()


@pytest.fixture
async def operator(client):  # noqa: ANN001
    """A console operator account (the app is started, so the database is open)."""
    return await make_operator()


# ---- accounts -----------------------------------------------------------------------------------------------


async def test_operator_account_is_a_platform_operator_with_an_argon2id_hash(client, operator):
    user = await User.get(id=operator.user_id)
    assert user.is_platform_operator and user.display_name == "运营小王"
    assert operator.password_hash.startswith("$argon2id$") and PASSWORD not in operator.password_hash
    entry = await LedgerEntry.filter(subject=f"user:{user.id}").first()
    assert entry.action == "create_console_operator" and entry.payload == {"username": "ops.alice"}
    with pytest.raises(InvalidInput, match="至少需要 12 个字符"):
        await create_operator("ops.bob", "short-pass")
    with pytest.raises(Conflict, match="已存在"):
        await create_operator("OPS.Alice", PASSWORD)  # names are case-insensitive
    with pytest.raises(InvalidInput, match="用户名"):
        await create_operator("a b", PASSWORD)


async def test_lock_out_after_five_failures_in_the_window(client, operator):
    redis: Redis = client.app[REDIS]
    for _ in range(MAX_FAILURES):
        with pytest.raises(Unauthenticated, match="用户名或密码错误"):
            await authenticate(redis, "ops.alice", "wrong password!!")
    with pytest.raises(Exception, match="登录失败次数过多") as info:
        await authenticate(redis, "ops.alice", PASSWORD)  # even the right password, until the window ends
    assert info.value.status == 429
    ttl = await redis.ttl("echain:console:login-failures:" + hashlib.sha256(b"ops.alice").hexdigest())
    assert 0 < ttl <= 15 * 60
    # Another username is unaffected; an unknown one gets the same generic answer as a wrong password.
    with pytest.raises(Unauthenticated, match="用户名或密码错误"):
        await authenticate(redis, "nobody.here", PASSWORD)


async def test_cli_creates_an_operator_from_an_environment_variable(client, settings, monkeypatch):
    monkeypatch.setenv("CONSOLE_TEST_PASSWORD", "a-long-enough-passphrase")
    done = await run_cli(settings, "admin", "create-operator", "ops.cli", "--password-env", "CONSOLE_TEST_PASSWORD",
                         "--name", "命令行运营")
    assert done.returncode == 0, done.stderr
    assert "已创建运营人员 ops.cli" in done.stdout and "a-long-enough-passphrase" not in done.stdout + done.stderr
    account = await ConsoleAccount.get(username="ops.cli").prefetch_related("user")
    assert account.user.is_platform_operator and account.user.display_name == "命令行运营"
    await console_login(client, "ops.cli", "a-long-enough-passphrase")
    monkeypatch.setenv("CONSOLE_TEST_PASSWORD", "too-short")
    refused = await run_cli(settings, "admin", "create-operator", "ops.cli2", "--password-env", "CONSOLE_TEST_PASSWORD")
    assert refused.returncode == 1 and "至少需要 12 个字符" in refused.stderr


async def test_a_password_reset_ends_open_sessions_and_only_the_new_password_works(client, settings, operator,
                                                                                  monkeypatch):
    await console_login(client)
    assert (await client.get("/console/", allow_redirects=False)).status == 200
    monkeypatch.setenv("CONSOLE_NEW_PASSWORD", "another-long-passphrase")
    done = await run_cli(settings, "admin", "set-password", "ops.alice", "--password-env", "CONSOLE_NEW_PASSWORD")
    assert done.returncode == 0, done.stderr
    assert "已重设运营人员 ops.alice 的密码" in done.stdout and "another-long" not in done.stdout + done.stderr
    # The session opened with the old password is over; the old password no longer logs in, the new one does.
    assert (await client.get("/console/", allow_redirects=False)).status == 303
    with pytest.raises(Unauthenticated):
        await authenticate(client.app[REDIS], "ops.alice", PASSWORD)
    await console_login(client, "ops.alice", "another-long-passphrase")
    entry = await LedgerEntry.filter(action="reset_console_password").get()
    assert entry.payload == {"username": "ops.alice"} and entry.actor == "cli"
    missing = await run_cli(settings, "admin", "set-password", "nobody", "--password-env", "CONSOLE_NEW_PASSWORD")
    assert missing.returncode == 1 and "没有用户名为 nobody 的运营人员" in missing.stderr


# ---- login, sessions, logout --------------------------------------------------------------------------------


async def test_anonymous_visitors_are_sent_to_login(client):
    resp = await client.get("/console/financings?status=confirmed", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=%2Fconsole%2Ffinancings%3Fstatus%3Dconfirmed"
    bare = await client.get("/console", allow_redirects=False)
    assert bare.status == 303 and bare.headers["Location"] == "/console/login?next=%2Fconsole"
    post = await client.post("/console/registrations/1/review", data={"decision": "approve"})
    assert post.status == 401 and "登录已失效" in await post.text()


async def test_a_lost_redis_shows_a_chinese_503_page(aiohttp_client, settings, tmp_path):  # noqa: ANN001
    import dataclasses

    from echain.app import create_app
    from tests.reliability.harness import OwnRedis

    redis = OwnRedis(tmp_path / "own-redis").start()  # our own server: stopping it touches nothing shared
    try:
        client = await aiohttp_client(create_app(dataclasses.replace(
            settings, redis_url=f"redis://127.0.0.1:{redis.port}/0")))
        await make_operator()
        await console_login(client)
        redis.stop()
        page = await client.get("/console/", allow_redirects=False)
        assert page.status == 503 and "服务暂时不可用" in await page.text()
    finally:
        redis.stop()


async def test_login_rotates_the_session_and_logout_ends_it(client, operator):
    redis: Redis = client.app[REDIS]
    form = await client.get("/console/login")
    assert "运营人员登录" in await form.text()
    cookie = form.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # dev over plain http; production sets it (test below)
    anonymous = _sid(client)
    resp = await client.post("/console/login", allow_redirects=False, data={
        "csrf_token": csrf_of(await form.text()), "username": "OPS.alice ", "password": PASSWORD,
        "next": "/console/ledger"})
    assert resp.status == 303 and resp.headers["Location"] == "/console/ledger"
    session = _sid(client)
    assert session and session != anonymous  # a new id after login: no session fixation
    assert await redis.exists(_session_key(anonymous)) == 0
    assert 0 < await redis.ttl(_session_key(session)) <= 30 * 60  # idle timeout (ECHAIN_CONSOLE_IDLE_TIMEOUT)
    assert "wx" not in session and await redis.get(_session_key(session)) is not None
    home = await client.get("/console/")
    text = await home.text()
    assert home.status == 200 and "业务概览" in text and "运营小王" in text
    assert home.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["Content-Security-Policy"]
    out = await client.post("/console/logout", data={"csrf_token": csrf_of(text)}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/console/login"
    assert await redis.exists(_session_key(session)) == 0
    again = await client.get("/console/", allow_redirects=False)
    assert again.status == 303 and again.headers["Location"].startswith("/console/login")


async def test_login_failures_get_one_generic_message_then_lock(client, operator):
    for username in ("ops.alice", "nobody"):
        form = await client.get("/console/login")
        resp = await client.post("/console/login", data={
            "csrf_token": csrf_of(await form.text()), "username": username, "password": "not the password"})
        assert resp.status == 401 and "用户名或密码错误" in await resp.text()
    for _ in range(MAX_FAILURES - 1):
        form = await client.get("/console/login")
        await client.post("/console/login", data={"csrf_token": csrf_of(await form.text()), "username": "ops.alice",
                                                  "password": "still wrong"})
    form = await client.get("/console/login")
    locked = await client.post("/console/login", data={"csrf_token": csrf_of(await form.text()),
                                                       "username": "ops.alice", "password": PASSWORD})
    assert locked.status == 429 and "登录失败次数过多" in await locked.text()


async def test_login_next_only_goes_to_console_pages(client, operator):
    form = await client.get("/console/login?next=//evil.example/")
    assert 'name="next" value="/console/"' in await form.text()
    resp = await client.post("/console/login", allow_redirects=False, data={
        "csrf_token": csrf_of(await form.text()), "username": "ops.alice", "password": PASSWORD,
        "next": "https://evil.example/"})
    assert resp.headers["Location"] == "/console/"


async def test_csrf_token_and_origin_are_checked_on_every_post(client, operator):
    form = await client.get("/console/login")
    no_token = await client.post("/console/login", data={"username": "ops.alice", "password": PASSWORD})
    assert no_token.status == 403 and "安全校验失败" in await no_token.text()
    token = await console_login(client)
    for data, headers in (({}, {}), ({"csrf_token": "forged"}, {}),
                          ({"csrf_token": token}, {"Origin": "https://evil.example"}),
                          ({"csrf_token": token}, {"Origin": "null"}),
                          ({"csrf_token": token}, {"Origin": f"http://{client.server.host}.evil.example"})):
        resp = await client.post("/console/logout", data=data, headers=headers, allow_redirects=False)
        assert resp.status == 403, (data, headers)
        assert "请求" in await resp.text()
    # Still logged in: none of the refused posts logged the operator out.
    assert (await client.get("/console/", allow_redirects=False)).status == 200
    same_origin = f"http://{client.server.host}:{client.server.port}"
    ok = await client.post("/console/logout", data={"csrf_token": token}, headers={"Origin": same_origin},
                           allow_redirects=False)
    assert ok.status == 303
    del form


def test_origin_check_behind_a_proxy_and_in_production():
    behind_proxy = make_mocked_request("POST", "/console/logout", headers={
        "Host": "console.example.com", "Origin": "https://console.example.com:8443"})
    assert origin_allowed(behind_proxy, require_https=True)  # nginx passes Host without the port
    plain = make_mocked_request("POST", "/console/logout", headers={
        "Host": "console.example.com", "Origin": "http://console.example.com"})
    assert origin_allowed(plain, require_https=False) and not origin_allowed(plain, require_https=True)
    other = make_mocked_request("POST", "/console/logout", headers={
        "Host": "console.example.com", "Origin": "https://console.example.com.evil.example"})
    assert not origin_allowed(other, require_https=True)


async def test_production_cookie_is_secure(client):
    store = SessionStore(client.app[REDIS], idle=60, secure=True)
    session = await store.new()
    response = web.Response()
    store.set_cookie(response, session)
    header = response.cookies[COOKIE].output()
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Strict" in header


async def test_a_demoted_operator_is_logged_out(client, operator):
    await console_login(client)
    await User.filter(id=operator.user_id).update(is_platform_operator=False)
    resp = await client.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")


# ---- registrations ------------------------------------------------------------------------------------------


async def _pending_enterprise(api: ApiClient, name: str = "山东待审核贸易有限公司") -> tuple[dict, str]:
    token = await api.login("applicant")
    rep_id = new_resident_id()
    e = await api.register(token, name=name, legal_rep_id=rep_id)
    for kind in ("business_license", "id_card_front", "id_card_back"):
        await api.upload(token, e["id"], kind, png_bytes())
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/confirm", token, 200)
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/submit", token, 200)
    return e, rep_id


async def test_review_registration_through_the_forms(client, api, operator):
    e, rep_id = await _pending_enterprise(api)
    token = await console_login(client)
    listing = await (await client.get("/console/registrations")).text()
    assert "山东待审核贸易有限公司" in listing and e["legal_rep_id_masked"] in listing and rep_id not in listing
    page = await (await client.get(f"/console/registrations/{e['id']}")).text()
    assert e["legal_rep_id_masked"] in page and rep_id not in page
    assert "一致" in page and "sandbox" in page  # the four-element result and its record
    doc_ids = re.findall(r'<img src="/console/documents/(\d+)"', page)
    assert len(doc_ids) == 3
    image = await client.get(f"/console/documents/{doc_ids[0]}")
    assert image.status == 200 and image.content_type == "image/png"
    assert image.headers["Content-Disposition"].startswith("inline")
    assert image.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert await image.read() == png_bytes()
    # A rejection without a reason is refused with the use case's own message, shown on the page.
    resp = await client.post(f"/console/registrations/{e['id']}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "reject", "reason": "  "})
    assert "驳回时必须填写原因" in await _follow(client, resp)
    assert (await Enterprise.get(id=e["id"])).status == "pending_review"
    resp = await client.post(f"/console/registrations/{e['id']}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "approve"})
    assert resp.headers["Location"] == "/console/registrations"
    after = await _follow(client, resp)
    assert "已审核通过：山东待审核贸易有限公司" in after and "暂无待审核的企业" in after
    approved = await Enterprise.get(id=e["id"])
    assert approved.status == "approved" and approved.reviewed_by_id == operator.user_id
    entry = await LedgerEntry.filter(subject=f"enterprise:{e['id']}").order_by("-seq").first()
    assert entry.action == "approve" and entry.actor == f"user:{operator.user_id}"
    # Reviewing again: the onboarding table's own 409, in Chinese, on the page.
    resp = await client.post(f"/console/registrations/{e['id']}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "reject", "reason": "资料不清晰"})
    assert "当前状态为“审核通过”" in await _follow(client, resp)


async def test_reject_registration_with_a_reason(client, api, operator):
    e, _ = await _pending_enterprise(api)
    token = await console_login(client)
    resp = await client.post(f"/console/registrations/{e['id']}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "reject", "reason": "营业执照照片模糊"})
    assert "已驳回：山东待审核贸易有限公司（原因：营业执照照片模糊）" in await _follow(client, resp)
    rejected = await Enterprise.get(id=e["id"])
    assert rejected.status == "rejected" and rejected.review_reason == "营业执照照片模糊"


async def test_bad_ids_and_unknown_pages_are_chinese_pages(client, operator):
    await console_login(client)
    for path in ("/console/registrations/999999", "/console/registrations/abc", "/console/nowhere",
                 "/console/financings/424242"):
        resp = await client.get(path)
        assert resp.status == 404 and resp.content_type == "text/html", path
        assert "不存在" in await resp.text()


# ---- powers of attorney -------------------------------------------------------------------------------------


async def test_approve_and_reject_powers_of_attorney(client, operator):
    cast = await make_cast()
    agent = await add_member(cast.supplier, "supplier-agent", "agent")
    powers = []
    for _ in range(2):
        doc = await make_document(cast.supplier, cast.supplier_admin, "power_of_attorney")
        powers.append(await attorney.create(cast.supplier_admin, cast.supplier.id, PowerOfAttorneyInput(
            agent_user_id=agent.id, document_id=doc.id, max_amount="500000.00", valid_from=china_today(),
            valid_to=china_today() + timedelta(days=90), actions=["sign"])))
    token = await console_login(client)
    listing = await (await client.get("/console/attorneys")).text()
    assert listing.count("审核通过") == 2 and "500,000.00 元" in listing and "山东供货有限公司" in listing
    resp = await client.post(f"/console/attorneys/{powers[0].id}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "approve"})
    assert f"授权委托书 {powers[0].id} 已通过" in await _follow(client, resp)
    resp = await client.post(f"/console/attorneys/{powers[1].id}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "reject"})
    assert "驳回时必须填写原因" in await _follow(client, resp)
    assert (await PowerOfAttorney.get(id=powers[1].id)).status == "pending_review"
    resp = await client.post(f"/console/attorneys/{powers[1].id}/review", allow_redirects=False,
                             data={"csrf_token": token, "decision": "reject", "reason": "授权期限过长"})
    assert f"授权委托书 {powers[1].id} 已驳回" in await _follow(client, resp)
    statuses = [p.status for p in await PowerOfAttorney.filter(id__in=[p.id for p in powers]).order_by("id")]
    assert statuses == ["approved", "rejected"]


# ---- allocation and pricing ---------------------------------------------------------------------------------


async def test_allocate_then_price_through_the_forms(client, operator):
    cast = await make_cast()
    f = await advance(cast, "confirmed")
    token = await console_login(client)
    todo = await (await client.get("/console/allocations")).text()
    assert f'/console/financings/{f.id}"' in todo and "分配资产" in todo
    page = await (await client.get(f"/console/financings/{f.id}")).text()
    offered = re.findall(r'name="funder_ids" value="(\d+)"', page)
    # Approved funders only, never the financing's own supplier or core enterprise.
    assert str(cast.funder.id) in offered and str(cast.funder2.id) in offered
    assert str(cast.supplier.id) not in offered and str(cast.core.id) not in offered
    path = f"/console/financings/{f.id}/actions/allocate"
    empty = await client.post(path, data={"csrf_token": token}, allow_redirects=False)
    assert "资金方企业ID为必填项" in await _follow(client, empty)  # the API's body model, the API's message
    resp = await client.post(path, allow_redirects=False,
                             data=[("csrf_token", token), ("funder_ids", str(cast.funder.id)),
                                   ("funder_ids", str(cast.funder2.id))])
    assert "已分配资产：融资" in await _follow(client, resp)
    f = await Financing.get(id=f.id)
    assert f.status == "allocated"
    await actions.subscribe(cast.funder_op, f.id)
    pricing = await (await client.get("/console/pricing")).text()
    assert f'/console/financings/{f.id}"' in pricing
    page = await (await client.get(f"/console/financings/{f.id}")).text()
    assert 'name="advance_rate" inputmode="decimal" value="0.8"' in page
    assert 'name="financing_amount" inputmode="decimal" value="800000.00"' in page
    path = f"/console/financings/{f.id}/actions/issue_contract"
    terms = {"csrf_token": token, "annual_rate": "0.065", "advance_rate": "0.8", "fee_rate": "0.005"}
    over = await client.post(path, data=terms | {"financing_amount": "900000.00"}, allow_redirects=False)
    assert "超过票面金额 × 融资比例" in await _follow(client, over)
    bad_rate = await client.post(path, data=terms | {"annual_rate": "6.5", "financing_amount": "800000.00"},
                                 allow_redirects=False)
    assert "最终年化利率" in await _follow(client, bad_rate)
    resp = await client.post(path, data=terms | {"financing_amount": "800000.00"}, allow_redirects=False)
    done = await _follow(client, resp)
    assert "已出具合同" in done and "合同已出具待签署" in done
    f = await Financing.get(id=f.id)
    assert (f.status, f.financing_amount, str(f.annual_rate)) == ("contract_issued", 80_000_000, "0.065000")
    contract = await Contract.get(financing_id=f.id, version=1)
    verification = await client.get(f"/console/contracts/{contract.id}/verification")
    text = await verification.text()
    assert verification.status == 200 and contract.sha256 in text and "尚未签署" in text
    pdf = await client.get(f"/console/contracts/{contract.id}/pdf")
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF-")
    timeline = await (await client.get(f"/console/financings/{f.id}")).text()
    for label in ("发起融资", "领用", "审批同意", "分配资产", "认购", "出具合同"):
        assert f"<strong>{label}</strong>" in timeline
    assert '<span class="actor">运营小王</span>' in timeline and '<span class="actor">funder-op</span>' in timeline


async def test_console_refuses_what_the_table_refuses(client, operator):
    cast = await make_cast()
    f = await advance(cast, "submitted")
    token = await console_login(client)
    resp = await client.post(f"/console/financings/{f.id}/actions/allocate", allow_redirects=False,
                             data={"csrf_token": token, "funder_ids": str(cast.funder.id)})
    assert "当前状态为“待核心企业领用”，不能分配资产" in await _follow(client, resp)
    claim = await client.post(f"/console/financings/{f.id}/actions/claim", data={"csrf_token": token},
                              allow_redirects=False)
    assert "只能由本笔融资的核心企业办理" in await _follow(client, claim)
    assert (await Financing.get(id=f.id)).status == "submitted"
    unknown = await client.post(f"/console/financings/{f.id}/actions/mark_overdue", data={"csrf_token": token})
    assert unknown.status == 404


# ---- dashboard, live events, ledger -------------------------------------------------------------------------


async def test_dashboard_counts_amounts_chart_and_overdue(client, operator):
    cast = await make_cast()
    await advance(cast, "submitted")
    await advance(cast, "confirmed")
    await advance(cast, "confirmed")
    late = await advance(cast, "confirmed")
    # Overdue needs a received financing past its due date: set the date as the scheduler would find it.
    await Financing.filter(id=late.id).update(status="overdue", due_date=china_today() - timedelta(days=10))
    await console_login(client)
    page = await (await client.get("/console/")).text()
    row = re.search(r'<tr data-state="confirmed">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r'class="num">([^<]*)<', row) == ["2", "2,000,000.00", "0.00"]
    assert "<svg" in page and "各状态融资笔数" in page and 'data-value="2"' in page
    overdue = re.search(r'<table class="data" id="overdue">(.*?)</table>', page, re.S).group(1)
    assert f'/console/financings/{late.id}"' in overdue and ">10<" in overdue and "已标记逾期" in overdue
    assert '<strong>2</strong><span>待分配资产</span>' in page


async def test_live_events_stream_for_the_console(client, operator):
    cast = await make_cast()
    f = await advance(cast, "submitted")
    await console_login(client)
    resp = await client.get(f"/console/financings/{f.id}/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    first = await resp.content.readuntil(b"\n\n")
    assert b"event: snapshot" in first and "待核心企业领用".encode() in first
    # A transition committed while the page is open arrives as a transition event.
    await service.act(client.app[DEPS], cast.core_op, f.id, "claim")
    second = b": keepalive\n\n"
    while second.startswith(b":"):  # comments keep the connection open; skip them
        second = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 20)
    assert b"event: transition" in second and "确权审批中".encode() in second
    resp.close()


async def test_ledger_page_reports_the_chain(client, operator):
    await console_login(client)
    page = await (await client.get("/console/ledger")).text()
    count = await LedgerEntry.all().count()
    assert f"校验通过：哈希链完整，共 {count} 条记录" in page
    await LedgerEntry.filter(seq=1).update(action="tampered")
    page = await (await client.get("/console/ledger")).text()
    assert "校验失败：第 1 条记录有问题" in page


async def test_every_state_of_a_financing_renders(client, operator, tmp_path):
    cast = await make_cast(contract_services(client.app[REDIS], tmp_path))
    f = await submit(cast)
    await console_login(client)
    seen = []
    while True:
        page = await client.get(f"/console/financings/{f.id}")
        text = await page.text()
        assert page.status == 200, text
        assert f'id="status">{FINANCING.state_labels[f.status]}<' in text
        seen.append(f.status)
        if f.status == PATH[-1]:
            break
        f = await step(cast, f)
    assert list(dict.fromkeys(seen)) == list(PATH)  # "signing" twice: one signature at a time
    assert "应还总额" in text and "<strong>确认还款</strong>" in text
    listing = await (await client.get("/console/financings?status=repaid")).text()
    assert f'/console/financings/{f.id}"' in listing
    bad = await client.get("/console/financings?status=bogus")
    assert bad.status == 422 and "未知的状态" in await bad.text()
    dashboard = await (await client.get("/console/")).text()
    assert re.search(r'<tr data-state="repaid">\s*<td>.*?</td>\s*<td class="num">1</td>', dashboard, re.S)


async def test_sessions_end_twelve_hours_after_login(client, operator):
    await console_login(client)
    redis: Redis = client.app[REDIS]
    key = _session_key(_sid(client))
    record = json.loads(await redis.get(key))
    record["created"] -= 13 * 3600
    await redis.set(key, json.dumps(record), ex=600)
    resp = await client.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    assert await redis.exists(key) == 0


# ---- the SVG chart ------------------------------------------------------------------------------------------


def test_chart_escapes_labels_and_draws_proportional_bars():
    svg = str(bar_chart([Bar("<script>alert(1)</script>", 50, "50 & more"), Bar("已确权", 100, "100"),
                         Bar("空", 0, "0")], title='A "quoted" <title>', width=600))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "50 &amp; more" in svg
    root = ET.fromstring(svg)  # well-formed XML despite the hostile text
    ns = {"s": "http://www.w3.org/2000/svg"}
    widths = [float(r.get("width")) for r in root.findall("s:rect", ns)]
    assert widths[1] == 600 - 150 - 130  # the largest value fills the plot
    assert widths[0] == pytest.approx(widths[1] / 2) and widths[2] == 0
    assert root.find("s:title", ns).text == 'A "quoted" <title>'


def test_chart_with_nothing_to_show():
    svg = str(bar_chart([Bar("已放款", 0, "0 笔")], title="空"))
    assert 'width="0.0"' in svg and ET.fromstring(svg) is not None
