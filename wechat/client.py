"""Async client for WeChat's server-side HTTP API (wechatpy only ships a synchronous one).

The same code talks to api.weixin.qq.com in production and to ``wechat.simulator`` offline;
only ``base_url`` differs. One client instance serves one account (Official Account or mini program)
because access tokens, login and message APIs are all per appid.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

WECHAT_API_BASE = "https://api.weixin.qq.com"

UNAVAILABLE_MESSAGE = "微信接口暂时无法访问，请稍后重试"
BAD_RESPONSE_MESSAGE = "微信接口返回了无法识别的数据"

# Codes meaning "this access_token is no good": 40001 invalid/not latest, 40014 invalid, 42001 expired.
TOKEN_REJECTED_CODES = frozenset({40001, 40014, 42001})
# getStableAccessToken: the platform rotates tokens 5 minutes before expiry, so stop using ours then too.
TOKEN_REFRESH_MARGIN = 300.0
# WeChat sometimes labels JSON as text/plain, so both are inspected for an errcode.
_JSON_CONTENT_TYPES = frozenset({"application/json", "text/json", "text/plain", "text/javascript"})

# Chinese texts safe to show end users for errors they can act on; everything else gets a generic one.
_USER_MESSAGES = {
    -1: UNAVAILABLE_MESSAGE,
    40029: "登录凭证无效，请重新登录",
    40163: "登录凭证已被使用，请重新登录",
    43101: "用户尚未订阅该消息通知",
    45015: "用户超过 48 小时未与我们互动，暂时无法发送客服消息",
    45047: "客服消息发送次数已达上限，请等待用户回复后再试",
    40007: "文件不存在或已过期",
}


class WeChatError(Exception):
    """An error answer from WeChat (errcode != 0), or errcode -1 when WeChat could not be reached."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def user_message(self) -> str:
        """A Chinese message suitable for showing to end users."""
        return _USER_MESSAGES.get(self.errcode, "微信服务出现问题，请稍后重试")


class TokenCache(Protocol):
    """Storage for access tokens shared by all workers (WeChat wants one token holder per appid)."""

    async def get(self, key: str) -> tuple[str, float] | None:
        """Return (token, expires_at epoch seconds) or None."""
        ...

    async def set(self, key: str, token: str, expires_at: float) -> None:
        """Store a token until expires_at (epoch seconds)."""
        ...


class MemoryTokenCache:
    """Process-local TokenCache."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}

    async def get(self, key: str) -> tuple[str, float] | None:
        """Return (token, expires_at) or None."""
        return self._items.get(key)

    async def set(self, key: str, token: str, expires_at: float) -> None:
        """Store a token."""
        self._items[key] = (token, expires_at)


class RedisTokenCache:
    """TokenCache in Redis, shared by every web and worker process, with one refresher at a time.

    A refresh can invalidate the token the other processes hold (cgi-bin/token always does; stable_token with
    force_refresh does), so WeChatClient asks WeChat only while holding `refresh_lock`: a Redis SET NX with an
    expiry (redis-py's Lock), released by a compare-and-delete, so a crashed holder blocks others at most
    LOCK_TIMEOUT seconds.
    """

    LOCK_TIMEOUT = 30.0  # longer than one stable_token request (the client's timeout is 10 s)
    LOCK_WAIT = 30.0

    def __init__(self, redis: Redis, prefix: str = "echain:") -> None:
        self._redis = redis
        self._prefix = prefix

    @classmethod
    def for_api(cls, redis: Redis, base_url: str) -> RedisTokenCache:
        """The cache every process talking to `base_url` shares (tokens of one simulator mean nothing to another)."""
        if base_url.rstrip("/") == WECHAT_API_BASE:
            return cls(redis)
        return cls(redis, prefix=f"echain:{hashlib.sha256(base_url.encode()).hexdigest()[:12]}:")

    async def get(self, key: str) -> tuple[str, float] | None:
        """Return (token, expires_at) or None."""
        raw = await self._redis.get(self._prefix + key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return str(data["token"]), float(data["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None

    async def set(self, key: str, token: str, expires_at: float) -> None:
        """Store a token; Redis drops it when it expires."""
        ttl = max(1, int(expires_at - time.time()))
        await self._redis.set(self._prefix + key, json.dumps({"token": token, "expires_at": expires_at}), ex=ttl)

    @contextlib.asynccontextmanager
    async def refresh_lock(self, key: str) -> AsyncIterator[None]:
        """Held while fetching a token for `key`; waits for another process's refresh to finish."""
        from redis.exceptions import LockError

        lock = self._redis.lock(f"{self._prefix}{key}:refresh", timeout=self.LOCK_TIMEOUT, sleep=0.05,
                                blocking_timeout=self.LOCK_WAIT)
        if not await lock.acquire():
            raise WeChatError(-1, UNAVAILABLE_MESSAGE)
        try:
            yield
        finally:
            with contextlib.suppress(LockError):  # expired meanwhile: someone else may hold it now
                await lock.release()


def _fresh_token(entry: tuple[str, float] | None) -> str | None:
    """The cached token if it is not within the refresh margin of expiry."""
    # Wall-clock time, not monotonic: expires_at may be shared across processes through the cache.
    if entry is None or entry[1] - TOKEN_REFRESH_MARGIN <= time.time():
        return None
    return entry[0]


def _parse_json(data: bytes) -> dict[str, Any] | None:
    try:
        # strict=False: WeChat may put raw control characters inside strings.
        result = json.loads(data.decode("utf-8", "replace"), strict=False)
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


def _checked(result: dict[str, Any] | None) -> dict[str, Any]:
    """Return a successful WeChat result or raise WeChatError; success may omit errcode entirely."""
    if result is None:
        raise WeChatError(-1, BAD_RESPONSE_MESSAGE)
    errcode = int(result.get("errcode") or 0)
    if errcode != 0:
        raise WeChatError(errcode, str(result.get("errmsg", "")))
    return result


def _api_result(data: bytes, content_type: str) -> dict[str, Any] | None:
    """The JSON answer in a response that may also be a binary file (media/get), else None."""
    if content_type not in _JSON_CONTENT_TYPES:
        return None
    result = _parse_json(data)
    return result if result is not None and "errcode" in result else None


class WeChatClient:
    """Async client for one WeChat account."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        app_id: str,
        app_secret: str,
        token_cache: TokenCache | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self._cache: TokenCache = token_cache if token_cache is not None else MemoryTokenCache()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token_lock = asyncio.Lock()

    @property
    def token_cache_key(self) -> str:
        """Cache key of this account's access token."""
        return f"wechat:access_token:{self.app_id}"

    # --- public API ----------------------------------------------------------------------------------

    async def code_to_session(self, js_code: str) -> dict[str, Any]:
        """Exchange a wx.login code for {"openid", "session_key", "unionid"?} (mini program only)."""
        params = {
            "appid": self.app_id,
            "secret": self._secret,
            "js_code": js_code,
            "grant_type": "authorization_code",
        }
        data, _ = await self._fetch("GET", "/sns/jscode2session", params=params)
        return _checked(_parse_json(data))

    async def access_token(self) -> str:
        """Return a cached access token, fetching one via stable_token when missing or near expiry."""
        token = _fresh_token(await self._cache.get(self.token_cache_key))
        if token is not None:
            return token
        async with self._token_lock, self._refresh_guard():
            # Another task (or process) may have fetched a token while we waited for the lock.
            token = _fresh_token(await self._cache.get(self.token_cache_key))
            return token if token is not None else await self._fetch_token(force_refresh=False)

    async def send_template(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an Official Account template message; returns {"errcode": 0, "msgid", ...}."""
        return await self._post_json("/cgi-bin/message/template/send", payload)

    async def send_subscribe(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a mini-program subscribe message (needs the user's prior acceptance)."""
        return await self._post_json("/cgi-bin/message/subscribe/send", payload)

    async def send_custom(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a customer-service message (only within 48 h of the user's last message)."""
        return await self._post_json("/cgi-bin/message/custom/send", payload)

    async def get_media(self, media_id: str) -> tuple[bytes, str]:
        """Download temporary media; returns (bytes, content_type)."""
        data, content_type = await self._authed("GET", "/cgi-bin/media/get", params={"media_id": media_id})
        # media/get answers with the file itself on success and a JSON errcode body on failure.
        result = _api_result(data, content_type)
        if result is not None:
            _checked(result)
        return data, content_type

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Replace the Official Account's custom menu."""
        await self._post_json("/cgi-bin/menu/create", menu)

    async def user_info(self, openid: str) -> dict[str, Any]:
        """An Official Account follower's info: {"subscribe", "openid", "unionid"?, ...} (cgi-bin/user/info)."""
        data, _ = await self._authed("GET", "/cgi-bin/user/info", params={"openid": openid, "lang": "zh_CN"})
        return _checked(_parse_json(data))

    async def get_verify_id(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Mini-program face verification: open a session (getVerifyId) → {"verify_id", "expires_in"}."""
        return await self._post_json("/cityservice/face/identify/getverifyid", payload)

    async def query_verify_info(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Mini-program face verification: the server-side verdict (queryVerifyInfo) → {"verify_ret"}."""
        return await self._post_json("/cityservice/face/identify/queryverifyinfo", payload)

    # --- access token ----------------------------------------------------------------------------------

    async def _fetch_token(self, *, force_refresh: bool) -> str:
        # stable_token rather than cgi-bin/token: the latter invalidates the token every other
        # process holds, while stable_token returns the same one until it is near expiry.
        body = {
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self._secret,
            "force_refresh": force_refresh,
        }
        data, _ = await self._fetch("POST", "/cgi-bin/stable_token", body=body)
        result = _checked(_parse_json(data))
        token, expires_in = result.get("access_token"), result.get("expires_in")
        if not isinstance(token, str) or not isinstance(expires_in, int | float):
            raise WeChatError(-1, BAD_RESPONSE_MESSAGE)
        await self._cache.set(self.token_cache_key, token, time.time() + expires_in)
        return token

    def _refresh_guard(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The cache's cross-process refresh lock when it has one (RedisTokenCache), else nothing more."""
        lock = getattr(self._cache, "refresh_lock", None)
        return lock(self.token_cache_key) if lock is not None else contextlib.nullcontext()

    async def _refresh_after_rejection(self, rejected: str) -> str:
        async with self._token_lock, self._refresh_guard():
            cached = _fresh_token(await self._cache.get(self.token_cache_key))
            if cached is not None and cached != rejected:
                # Someone already replaced the token; forcing again would invalidate theirs
                # (and force_refresh is limited to 20 calls a day).
                return cached
            logger.info("WeChat rejected access token for %s; forcing a refresh", self.app_id)
            return await self._fetch_token(force_refresh=True)

    # --- HTTP ------------------------------------------------------------------------------------------

    async def _post_json(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        data, _ = await self._authed("POST", path, body=payload)
        return _checked(_parse_json(data))

    async def _authed(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> tuple[bytes, str]:
        """Call with the access token; on a rejected token refresh once and retry once."""
        token = await self.access_token()
        data, content_type = await self._fetch(
            method, path, params={**(params or {}), "access_token": token}, body=body
        )
        result = _api_result(data, content_type)
        if result is None or result.get("errcode") not in TOKEN_REJECTED_CODES:
            return data, content_type
        token = await self._refresh_after_rejection(token)
        return await self._fetch(method, path, params={**(params or {}), "access_token": token}, body=body)

    async def _fetch(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> tuple[bytes, str]:
        """Send one request; return (body bytes, content type). Never logs params (they hold secrets)."""
        # ensure_ascii=False: WeChat shows \\uXXXX escapes literally in menus and messages (wechatpy does the same).
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        try:
            async with self._session.request(
                method,
                self._base_url + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                content = await resp.read()
                if resp.status != 200:
                    logger.warning("WeChat %s %s answered HTTP %s", method, path, resp.status)
                    raise WeChatError(-1, UNAVAILABLE_MESSAGE)
                return content, resp.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("WeChat %s %s failed: %s", method, path, type(exc).__name__)
            raise WeChatError(-1, UNAVAILABLE_MESSAGE) from exc
