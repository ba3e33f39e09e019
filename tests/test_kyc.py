"""Tests for workflow.kyc: sandbox provider, request signing, and the HTTP provider against a fake gateway."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.support.fake_kyc_gateway import GATEWAY_STATE, FakeGatewayState, create_fake_gateway_app
from workflow.identifiers import IdentifierError, make_resident_id
from workflow.kyc import (
    VERIFY_PATH,
    FourElementProvider,
    FourElementRequest,
    HttpGatewayProvider,
    SandboxProvider,
    build_request,
    sign_request,
    verify_signature,
)

KEY_ID = "echain-test"
SECRET = "gateway-shared-secret"
USCC = "91350100M000100Y43"
MISMATCH_USCC = "91440300708461136T"
LEGAL_REP_ID = make_resident_id("44030419900307123")


def make_request(
    enterprise_name: str = "福州示例供应链有限公司", uscc: str = USCC, request_id: str = "req-1"
) -> FourElementRequest:
    return FourElementRequest(
        enterprise_name=enterprise_name,
        uscc=uscc,
        legal_rep_name="张三",
        legal_rep_id=LEGAL_REP_ID,
        request_id=request_id,
    )


# --------------------------------------------------------------------------------------------------
# Request model
# --------------------------------------------------------------------------------------------------


def test_build_request_normalises_input() -> None:
    request = build_request(
        enterprise_name=" 福州示例供应链有限公司 ",
        uscc="91350100m000100y43",
        legal_rep_name="张三",
        legal_rep_id=LEGAL_REP_ID.lower(),
    )
    assert (request.enterprise_name, request.uscc, request.legal_rep_id) == (
        "福州示例供应链有限公司",
        USCC,
        LEGAL_REP_ID.upper(),
    )
    assert re.fullmatch(r"[0-9a-f]{32}", request.request_id)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"enterprise_name": "  "}, "enterprise_name", "请填写企业名称（与营业执照一致）"),
        ({"uscc": "91350100M000100Y4"}, "uscc", "统一社会信用代码应为18位，当前为17位"),
        ({"legal_rep_name": "张"}, "legal_rep_name", "姓名应为2–30个字符，当前为1个"),
        ({"legal_rep_id": "11010519491231002Y"}, "legal_rep_id", "身份证号码第18位应为数字或X，当前为“Y”"),
    ],
)
def test_build_request_names_the_bad_field(overrides: dict[str, str], field: str, message: str) -> None:
    values = {
        "enterprise_name": "示例公司",
        "uscc": USCC,
        "legal_rep_name": "张三",
        "legal_rep_id": LEGAL_REP_ID,
    }
    with pytest.raises(IdentifierError) as info:
        build_request(**(values | overrides))
    assert (info.value.field, info.value.message) == (field, message)


def test_request_repr_hides_the_id_number() -> None:
    assert LEGAL_REP_ID not in repr(make_request())


# --------------------------------------------------------------------------------------------------
# Sandbox
# --------------------------------------------------------------------------------------------------


async def test_sandbox_match_is_deterministic() -> None:
    provider = SandboxProvider()
    first = await provider.verify(make_request())
    second = await provider.verify(make_request())
    assert first.outcome == "match" and first.matched
    assert first.provider == "sandbox"
    assert first.detail == "企业名称、统一社会信用代码、法定代表人姓名及身份证号码四项一致（沙箱模拟）"
    assert re.fullmatch(r"sandbox-[0-9a-f]{16}", first.reference)
    assert first.reference == second.reference
    assert first.reference != (await provider.verify(make_request(request_id="req-2"))).reference
    assert first.checked_at.utcoffset() == timedelta(0)
    assert first.checked_at.tzinfo is UTC


async def test_sandbox_reference_is_sha256_of_request_fields() -> None:
    request = make_request()
    fields = "\x1f".join(
        [
            request.request_id,
            request.enterprise_name,
            request.uscc,
            request.legal_rep_name,
            request.legal_rep_id,
        ]
    )
    result = await SandboxProvider().verify(request)
    assert result.reference == "sandbox-" + hashlib.sha256(fields.encode()).hexdigest()[:16]


async def test_sandbox_mismatch_on_marker_names_the_legal_representative() -> None:
    result = await SandboxProvider().verify(make_request(enterprise_name="信息不一致测试有限公司"))
    assert result.outcome == "mismatch" and not result.matched
    assert result.detail.startswith("法定代表人信息不一致")


async def test_sandbox_error_marker() -> None:
    result = await SandboxProvider().verify(make_request(enterprise_name="核验异常测试有限公司"))
    assert result.outcome == "error"
    assert "稍后重试" in result.detail


def test_providers_satisfy_the_protocol() -> None:
    class NoName:
        async def verify(self, request: FourElementRequest) -> None: ...

    assert isinstance(SandboxProvider(), FourElementProvider)
    assert not isinstance(NoName(), FourElementProvider)


# --------------------------------------------------------------------------------------------------
# Signing helpers
# --------------------------------------------------------------------------------------------------


def test_sign_request_matches_the_documented_construction() -> None:
    body = b'{"a":1}'
    expected = hmac.new(
        SECRET.encode(), f"1700000000\nabc\n{hashlib.sha256(body).hexdigest()}".encode(), hashlib.sha256
    ).hexdigest()
    assert sign_request(SECRET, 1700000000, "abc", body) == expected
    assert sign_request(SECRET.encode(), "1700000000", "abc", body) == expected


def test_verify_signature_rejects_any_change() -> None:
    body = b'{"a":1}'
    signature = sign_request(SECRET, "1700000000", "abc", body)
    assert verify_signature(SECRET, "1700000000", "abc", body, signature)
    assert not verify_signature(SECRET, "1700000001", "abc", body, signature)
    assert not verify_signature(SECRET, "1700000000", "abd", body, signature)
    assert not verify_signature(SECRET, "1700000000", "abc", b'{"a":2}', signature)
    assert not verify_signature("other", "1700000000", "abc", body, signature)
    assert not verify_signature(SECRET, "1700000000", "abc", body, "签名")  # non-ASCII must not raise


# --------------------------------------------------------------------------------------------------
# HTTP provider against the fake gateway
# --------------------------------------------------------------------------------------------------


@pytest.fixture
async def gateway(aiohttp_server: Callable) -> TestServer:
    return await aiohttp_server(create_fake_gateway_app(KEY_ID, SECRET, {MISMATCH_USCC}, delay=1.0))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def state_of(gateway: TestServer) -> FakeGatewayState:
    return gateway.app[GATEWAY_STATE]


def http_provider(gateway: TestServer, session: aiohttp.ClientSession, **kwargs) -> HttpGatewayProvider:
    options = {"key_id": KEY_ID, "secret": SECRET} | kwargs
    return HttpGatewayProvider(session, str(gateway.make_url("/")), **options)


async def test_gateway_match(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    provider = http_provider(gateway, session)
    assert isinstance(provider, FourElementProvider)
    result = await provider.verify(make_request())
    assert (result.outcome, result.reference, result.detail) == ("match", "gw-req-1", "四要素一致")
    assert result.provider == "gateway"
    assert result.checked_at.tzinfo is UTC
    [recorded] = state_of(gateway).requests
    assert recorded["uscc"] == USCC
    assert recorded["legal_rep_id"] == LEGAL_REP_ID
    assert recorded["enterprise_name"] == "福州示例供应链有限公司"
    assert abs(recorded["timestamp"] - time.time()) < 5


async def test_gateway_mismatch(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    result = await http_provider(gateway, session).verify(make_request(uscc=MISMATCH_USCC))
    assert (result.outcome, result.detail) == ("mismatch", "法定代表人信息不一致")


async def test_wrong_secret_is_rejected_by_gateway(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    result = await http_provider(gateway, session, secret="not-the-secret").verify(make_request())
    assert result.outcome == "error"
    assert result.detail == "核验网关拒绝了请求（HTTP 401）：平台的网关密钥或签名配置有误，请联系平台运维"
    assert result.reference == "req-1"
    assert state_of(gateway).rejections == ["签名无效"]
    assert state_of(gateway).requests == []


async def test_unknown_key_id_is_rejected(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    result = await http_provider(gateway, session, key_id="someone-else").verify(make_request())
    assert result.outcome == "error"
    assert state_of(gateway).rejections == ["未知的密钥ID"]


async def test_stale_timestamp_is_rejected(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    provider = http_provider(gateway, session, clock=lambda: time.time() - 301)
    result = await provider.verify(make_request())
    assert result.outcome == "error"
    assert state_of(gateway).rejections == ["时间戳超出允许范围"]


async def test_replayed_nonce_is_rejected(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    provider = http_provider(gateway, session, nonce_factory=lambda: "fixed-nonce")
    first = await provider.verify(make_request())
    replay = await provider.verify(make_request())
    assert first.outcome == "match"
    assert replay.outcome == "error"
    assert state_of(gateway).rejections == ["随机数已被使用（疑似重放请求）"]
    assert len(state_of(gateway).requests) == 1


async def test_raw_replay_gets_401_json(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    body = b'{"request_id":"r","timestamp":1,"enterprise_name":"e","uscc":"u","legal_rep_name":"n","legal_rep_id":"i"}'
    timestamp = str(int(time.time()))
    headers = {
        "X-Echain-Key-Id": KEY_ID,
        "X-Echain-Timestamp": timestamp,
        "X-Echain-Nonce": "n-1",
        "X-Echain-Signature": sign_request(SECRET, timestamp, "n-1", body),
    }
    url = gateway.make_url(VERIFY_PATH)
    async with session.post(url, data=body, headers=headers) as response:
        assert response.status == 200
    async with session.post(url, data=body, headers=headers) as response:
        assert response.status == 401
        assert await response.json() == {"code": 401, "message": "随机数已被使用（疑似重放请求）"}


async def test_body_changed_in_transit_is_rejected(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    timestamp = str(int(time.time()))
    headers = {
        "X-Echain-Key-Id": KEY_ID,
        "X-Echain-Timestamp": timestamp,
        "X-Echain-Nonce": "n-2",
        "X-Echain-Signature": sign_request(SECRET, timestamp, "n-2", b'{"uscc":"A"}'),
    }
    async with session.post(gateway.make_url(VERIFY_PATH), data=b'{"uscc":"B"}', headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["message"] == "签名无效"


async def test_gateway_500_is_an_error_result(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    state_of(gateway).mode = "500"
    result = await http_provider(gateway, session).verify(make_request())
    assert (result.outcome, result.detail) == ("error", "核验网关内部错误（HTTP 500），请稍后重试")


async def test_gateway_timeout_is_an_error_result(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    state_of(gateway).mode = "slow"
    started = time.monotonic()
    result = await http_provider(gateway, session, timeout=0.2).verify(make_request())
    assert (result.outcome, result.detail) == ("error", "核验网关超过0.2秒未响应，请稍后重试")
    assert time.monotonic() - started < 1.0


async def test_tampered_response_signature_is_an_error(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    state_of(gateway).mode = "tamper_signature"
    result = await http_provider(gateway, session).verify(make_request())
    assert (result.outcome, result.detail) == ("error", "核验网关响应签名无效")
    assert len(state_of(gateway).requests) == 1  # the gateway did answer; we refused to trust it


async def test_response_signed_with_another_secret_is_an_error(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    state_of(gateway).response_secret = "impostor-secret"
    result = await http_provider(gateway, session).verify(make_request())
    assert (result.outcome, result.detail) == ("error", "核验网关响应签名无效")


async def test_response_bound_to_another_nonce_is_an_error(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    # A genuine, correctly signed response recorded for an earlier request must not satisfy this one.
    state_of(gateway).mode = "unbound_response"
    result = await http_provider(gateway, session).verify(make_request())
    assert (result.outcome, result.detail) == ("error", "核验网关响应签名无效")


async def test_business_error_code_is_an_error_result(
    gateway: TestServer, session: aiohttp.ClientSession
) -> None:
    state_of(gateway).mode = "business_error"
    result = await http_provider(gateway, session).verify(make_request())
    assert (result.outcome, result.detail) == ("error", "核验网关返回错误（代码1001）：数据源维护中")


async def test_unreachable_gateway_is_an_error_result(session: aiohttp.ClientSession) -> None:
    provider = HttpGatewayProvider(session, "http://127.0.0.1:1", KEY_ID, SECRET, timeout=2)
    result = await provider.verify(make_request())
    assert result.outcome == "error"
    assert result.detail.startswith("无法连接核验网关（")


async def test_request_is_signed_as_documented(gateway: TestServer, session: aiohttp.ClientSession) -> None:
    provider = http_provider(gateway, session, nonce_factory=lambda: "nonce-x", clock=lambda: 1_900_000_000.7)
    state_of(gateway).clock = lambda: 1_900_000_010.0
    result = await provider.verify(make_request())
    assert result.outcome == "match"
    [(headers, body)] = state_of(gateway).received
    assert headers["X-Echain-Key-Id"] == KEY_ID
    assert headers["X-Echain-Timestamp"] == "1900000000"
    assert headers["X-Echain-Nonce"] == "nonce-x"
    assert headers["X-Echain-Signature"] == sign_request(SECRET, "1900000000", "nonce-x", body)
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {
        "request_id": "req-1",
        "timestamp": 1900000000,
        "enterprise_name": "福州示例供应链有限公司",
        "uscc": USCC,
        "legal_rep_name": "张三",
        "legal_rep_id": LEGAL_REP_ID,
    }
