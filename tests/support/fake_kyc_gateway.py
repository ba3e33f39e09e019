"""A fake four-element verification gateway speaking the protocol of `workflow.kyc.HttpGatewayProvider`.

It authenticates like the real one (key id, HMAC signature compared in constant time, timestamp skew,
single-use nonces), records every request, signs its responses, and can be switched into failure modes
through `FakeGatewayState.mode` so tests can exercise error handling:

- "normal": answer honestly (uscc in `mismatches` → "mismatch", else "match")
- "500": answer HTTP 500 without a signature
- "slow": sleep `state.delay` seconds, then answer normally
- "tamper_signature": answer normally but with a corrupted X-Gateway-Signature
- "business_error": answer {"code": 1001, "message": …} (signed)
- "unbound_response": sign the response over a different nonce, as a recorded response replayed later would be

Set `state.response_secret` to sign responses with a different secret than the one requests are checked with.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from workflow.kyc import VERIFY_PATH, sign_request, verify_signature

Mode = Literal["normal", "500", "slow", "tamper_signature", "business_error", "unbound_response"]

REQUIRED_FIELDS = ("request_id", "timestamp", "enterprise_name", "uscc", "legal_rep_name", "legal_rep_id")


@dataclass
class FakeGatewayState:
    """Configuration and observations of one fake gateway instance."""

    key_id: str
    secret: str
    mismatches: set[str]
    mode: Mode = "normal"
    delay: float = 5.0
    max_skew: int = 300
    clock: Callable[[], float] = time.time
    response_secret: str | None = None
    seen_nonces: set[str] = field(default_factory=set)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # every request: headers, body
    requests: list[dict[str, Any]] = field(default_factory=list)  # authenticated payloads
    rejections: list[str] = field(default_factory=list)


GATEWAY_STATE = web.AppKey("fake_kyc_gateway_state", FakeGatewayState)


def create_fake_gateway_app(
    key_id: str, secret: str, mismatches: set[str] | None = None, *, mode: Mode = "normal", delay: float = 5.0
) -> web.Application:
    """Build the fake gateway app; its state is at `app[GATEWAY_STATE]`."""
    app = web.Application()
    app[GATEWAY_STATE] = FakeGatewayState(key_id, secret, set(mismatches or ()), mode=mode, delay=delay)
    app.router.add_post(VERIFY_PATH, _verify)
    return app


async def _verify(request: web.Request) -> web.Response:
    state = request.app[GATEWAY_STATE]
    body = await request.read()
    state.received.append((dict(request.headers), body))
    rejection = _authenticate(state, request.headers, body)
    if rejection:
        state.rejections.append(rejection)
        return web.json_response({"code": 401, "message": rejection}, status=401)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return web.json_response({"code": 400, "message": "请求体应为JSON对象"}, status=400)
    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing:
        return web.json_response({"code": 400, "message": f"缺少字段：{'、'.join(missing)}"}, status=400)
    state.requests.append(payload)
    return await _answer(state, payload, request.headers["X-Echain-Nonce"])


def _authenticate(state: FakeGatewayState, headers: Mapping[str, str], body: bytes) -> str | None:
    """Return a Chinese rejection reason, or None when the request is authentic and fresh."""
    key_id = headers.get("X-Echain-Key-Id", "")
    timestamp = headers.get("X-Echain-Timestamp", "")
    nonce = headers.get("X-Echain-Nonce", "")
    signature = headers.get("X-Echain-Signature", "")
    if not (key_id and timestamp and nonce and signature):
        return "缺少签名请求头"
    if not hmac.compare_digest(key_id.encode(), state.key_id.encode()):
        return "未知的密钥ID"
    # Signature before anything else that depends on the headers' values (they are only trusted once signed).
    if not verify_signature(state.secret, timestamp, nonce, body, signature):
        return "签名无效"
    if not timestamp.isdigit() or abs(state.clock() - int(timestamp)) > state.max_skew:
        return "时间戳超出允许范围"
    if nonce in state.seen_nonces:
        return "随机数已被使用（疑似重放请求）"
    state.seen_nonces.add(nonce)
    return None


async def _answer(state: FakeGatewayState, payload: dict[str, Any], nonce: str) -> web.Response:
    if state.mode == "500":
        return web.Response(status=500, text="internal error")
    if state.mode == "slow":
        await asyncio.sleep(state.delay)
    if state.mode == "business_error":
        result: dict[str, Any] = {"code": 1001, "message": "数据源维护中"}
    elif payload["uscc"] in state.mismatches:
        result = {
            "code": 0,
            "result": "mismatch",
            "reference": _reference(payload),
            "message": "法定代表人信息不一致",
        }
    else:
        result = {"code": 0, "result": "match", "reference": _reference(payload), "message": "四要素一致"}
    return _signed(state, result, nonce)


def _signed(state: FakeGatewayState, result: dict[str, Any], nonce: str) -> web.Response:
    body = json.dumps(result, ensure_ascii=False).encode("utf-8")
    timestamp = str(int(state.clock()))
    if state.mode == "unbound_response":
        nonce = "nonce-of-an-earlier-request"
    signature = sign_request(state.response_secret or state.secret, timestamp, nonce, body)
    if state.mode == "tamper_signature":
        signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    headers = {"X-Gateway-Timestamp": timestamp, "X-Gateway-Signature": signature}
    return web.Response(body=body, headers=headers, content_type="application/json", charset="utf-8")


def _reference(payload: dict[str, Any]) -> str:
    return f"gw-{payload['request_id']}"
