"""Enterprise four-element verification (企业四要素核验).

The four elements are enterprise name, unified social credit code, legal representative's name and the
legal representative's ID number. A provider checks them against the registry (via a licensed data gateway)
and returns a `FourElementResult`. Providers never raise for gateway trouble: they return outcome "error"
with a Chinese explanation, and the caller records that result like any other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

import aiohttp

from workflow.identifiers import IdentifierError, validate_person_name, validate_resident_id, validate_uscc

__all__ = [
    "FourElementProvider",
    "FourElementRequest",
    "FourElementResult",
    "HttpGatewayProvider",
    "Outcome",
    "SandboxProvider",
    "build_request",
    "sign_request",
    "verify_signature",
]

log = logging.getLogger(__name__)

Outcome = Literal["match", "mismatch", "error"]
VERIFY_PATH = "/v1/verify/four-elements"


@dataclass(frozen=True, slots=True)
class FourElementRequest:
    """The four elements to verify; `legal_rep_id` is left out of repr so it never reaches a log line."""

    enterprise_name: str
    uscc: str
    legal_rep_name: str
    legal_rep_id: str = field(repr=False)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class FourElementResult:
    """A provider's verdict; `detail` is Chinese text that can be shown to the user."""

    provider: str
    reference: str
    outcome: Outcome
    detail: str
    checked_at: datetime

    @property
    def matched(self) -> bool:
        """True only when all four elements were confirmed."""
        return self.outcome == "match"


@runtime_checkable
class FourElementProvider(Protocol):
    """Anything that can verify the four elements."""

    name: str

    async def verify(self, request: FourElementRequest) -> FourElementResult:
        """Verify the four elements; return outcome "error" instead of raising for provider trouble."""
        ...


def build_request(
    *, enterprise_name: str, uscc: str, legal_rep_name: str, legal_rep_id: str, request_id: str | None = None
) -> FourElementRequest:
    """Validate and normalise user input into a request; raise `IdentifierError` naming the bad field."""
    name = enterprise_name.strip() if isinstance(enterprise_name, str) else ""
    if not name:
        raise IdentifierError("enterprise_name", "请填写企业名称（与营业执照一致）")
    if len(name) > 100:
        raise IdentifierError("enterprise_name", f"企业名称不能超过100个字符，当前为{len(name)}个")
    return FourElementRequest(
        enterprise_name=name,
        uscc=validate_uscc(uscc, field="uscc"),
        legal_rep_name=validate_person_name(legal_rep_name, field="legal_rep_name"),
        legal_rep_id=validate_resident_id(legal_rep_id, field="legal_rep_id"),
        request_id=request_id or uuid.uuid4().hex,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Sandbox
# --------------------------------------------------------------------------------------------------

SANDBOX_MISMATCH_MARKER = "不一致"
SANDBOX_ERROR_MARKER = "核验异常"


class SandboxProvider:
    """Deterministic provider for development, demos and tests; no network.

    - Enterprise name contains "不一致" → outcome "mismatch", reported on the legal representative
      (the documented way to make the sandbox report a mismatch).
    - Enterprise name contains "核验异常" → outcome "error", as if the gateway were unavailable.
    - Anything else → outcome "match".

    The reference is "sandbox-" + the first 16 hex digits of SHA-256 over the request fields, so the same
    request always yields the same reference.
    """

    name = "sandbox"

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock

    async def verify(self, request: FourElementRequest) -> FourElementResult:
        """Return the documented deterministic verdict for *request*."""
        outcome, detail = self._verdict(request.enterprise_name)
        return FourElementResult(self.name, self._reference(request), outcome, detail, self._clock())

    @staticmethod
    def _verdict(enterprise_name: str) -> tuple[Outcome, str]:
        if SANDBOX_ERROR_MARKER in enterprise_name:
            return "error", "核验服务暂时不可用，请稍后重试（沙箱模拟）"
        if SANDBOX_MISMATCH_MARKER in enterprise_name:
            return (
                "mismatch",
                "法定代表人信息不一致：法定代表人姓名或身份证号码与该企业登记信息不符（沙箱模拟）",
            )
        return "match", "企业名称、统一社会信用代码、法定代表人姓名及身份证号码四项一致（沙箱模拟）"

    @staticmethod
    def _reference(request: FourElementRequest) -> str:
        fields = (
            request.request_id,
            request.enterprise_name,
            request.uscc,
            request.legal_rep_name,
            request.legal_rep_id,
        )
        # U+001F (unit separator) does not occur in validated fields, so field boundaries stay unambiguous.
        digest = hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()
        return "sandbox-" + digest[:16]


# --------------------------------------------------------------------------------------------------
# Request signing (shared by the HTTP client and the fake gateway in tests)
# --------------------------------------------------------------------------------------------------


def sign_request(secret: str | bytes, timestamp: str | int, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over "{timestamp}\\n{nonce}\\n{sha256hex(body)}"."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = f"{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes, timestamp: str | int, nonce: str, body: bytes, signature: str
) -> bool:
    """Check a `sign_request` signature in constant time."""
    expected = sign_request(secret, timestamp, nonce, body)
    # Compare bytes: compare_digest raises TypeError for non-ASCII str, and the header is attacker-controlled.
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))


# --------------------------------------------------------------------------------------------------
# HTTP gateway
# --------------------------------------------------------------------------------------------------


class _GatewayFailure(Exception):
    """Internal: the gateway call failed; `detail` is the Chinese text recorded in the result."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class HttpGatewayProvider:
    """Four-element verification through the signed HTTP gateway.

    Request: POST {base_url}/v1/verify/four-elements, JSON body, headers X-Echain-Key-Id, X-Echain-Timestamp
    (unix seconds), X-Echain-Nonce and X-Echain-Signature = `sign_request(secret, timestamp, nonce, body)`.
    Response: JSON {"code": 0, "result": "match"|"mismatch", "reference": …, "message": …}, signed by the
    gateway with the same secret over (X-Gateway-Timestamp, *our request nonce*, response body) in
    X-Gateway-Signature. Using our nonce binds the response to this request, so a recorded response cannot
    be replayed against a later request.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        key_id: str,
        secret: str | bytes,
        timeout: float = 10,
        *,
        name: str = "gateway",
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = lambda: secrets.token_hex(16),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.name = name
        self._session = session
        self._url = base_url.rstrip("/") + VERIFY_PATH
        self._key_id = key_id
        self._secret = secret
        self._timeout = timeout
        self._clock = clock
        self._nonce_factory = nonce_factory
        self._now = now

    def __repr__(self) -> str:
        return f"HttpGatewayProvider(url={self._url!r}, key_id={self._key_id!r})"

    async def verify(self, request: FourElementRequest) -> FourElementResult:
        """Call the gateway; any transport, protocol or signature problem becomes outcome "error"."""
        try:
            outcome, reference, detail = await self._call(request)
        except _GatewayFailure as failure:
            log.warning("four-element gateway error for request %s: %s", request.request_id, failure.detail)
            outcome, reference, detail = "error", request.request_id, failure.detail
        return FourElementResult(self.name, reference, outcome, detail, self._now())

    async def _call(self, request: FourElementRequest) -> tuple[Outcome, str, str]:
        timestamp = str(int(self._clock()))
        nonce = self._nonce_factory()
        body = _request_body(request, timestamp)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Echain-Key-Id": self._key_id,
            "X-Echain-Timestamp": timestamp,
            "X-Echain-Nonce": nonce,
            "X-Echain-Signature": sign_request(self._secret, timestamp, nonce, body),
        }
        status, response_headers, raw = await self._post(body, headers)
        if status != 200:
            raise _GatewayFailure(_http_error_detail(status))
        signature = response_headers.get("X-Gateway-Signature", "")
        response_timestamp = response_headers.get("X-Gateway-Timestamp", "")
        if not (
            signature
            and response_timestamp
            and verify_signature(self._secret, response_timestamp, nonce, raw, signature)
        ):
            raise _GatewayFailure("核验网关响应签名无效")
        return _parse_response(raw, request.request_id)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self._timeout)
            ) as response:
                return response.status, response.headers, await response.read()
        except TimeoutError:
            # aiohttp raises TimeoutError subclasses (ServerTimeoutError is also a ClientError): check first.
            raise _GatewayFailure(f"核验网关超过{self._timeout:g}秒未响应，请稍后重试") from None
        except aiohttp.ClientError as exc:
            raise _GatewayFailure(f"无法连接核验网关（{type(exc).__name__}），请稍后重试") from None


def _request_body(request: FourElementRequest, timestamp: str) -> bytes:
    payload = {
        "request_id": request.request_id,
        "timestamp": int(timestamp),
        "enterprise_name": request.enterprise_name,
        "uscc": request.uscc,
        "legal_rep_name": request.legal_rep_name,
        "legal_rep_id": request.legal_rep_id,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _http_error_detail(status: int) -> str:
    if status in (401, 403):
        return f"核验网关拒绝了请求（HTTP {status}）：平台的网关密钥或签名配置有误，请联系平台运维"
    if status == 429:
        return "核验网关请求过于频繁（HTTP 429），请稍后重试"
    if status >= 500:
        return f"核验网关内部错误（HTTP {status}），请稍后重试"
    return f"核验网关返回了意外的HTTP状态码{status}，请联系平台运维"


def _parse_response(raw: bytes, request_id: str) -> tuple[Outcome, str, str]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _GatewayFailure("核验网关响应不是有效的JSON") from None
    if not isinstance(data, dict):
        raise _GatewayFailure("核验网关响应格式错误")
    message = str(data.get("message") or "")[:200]
    if data.get("code") != 0:
        raise _GatewayFailure(f"核验网关返回错误（代码{data.get('code')}）：{message or '无说明'}")
    reference = str(data.get("reference") or request_id)
    result = data.get("result")
    if result == "match":
        return "match", reference, message or "企业名称、统一社会信用代码、法定代表人姓名及身份证号码四项一致"
    if result == "mismatch":
        return (
            "mismatch",
            reference,
            message or "四要素核验不一致，请核对企业名称、统一社会信用代码及法定代表人信息",
        )
    raise _GatewayFailure(f"核验网关返回了无法识别的核验结果“{str(result)[:20]}”")
