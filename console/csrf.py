"""CSRF protection: a per-session token on every form, compared in constant time, plus an Origin check.

SameSite=Strict already keeps the cookie off cross-site requests in current browsers; the token covers older
ones and same-site attackers, and the Origin check refuses a form posted from any other origin outright.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web

from console.sessions import Session
from workflow.errors import Forbidden

FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_allowed(request: web.Request, *, require_https: bool) -> bool:
    """True when the Origin header is absent or names this very host (and https in production)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # older browsers and same-origin navigations may omit it; the token still decides
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) and anything unparsable
    if require_https and parts.scheme != "https":
        return False
    # Hostnames, not host:port: a proxy may pass `Host: $host` (no port) while the browser's Origin names the
    # port it used (deploy/nginx.conf listens on 8080). The token and SameSite=Strict still bind the session.
    return parts.hostname == urlsplit(f"//{request.host}").hostname


def token_matches(session: Session | None, submitted: object) -> bool:
    """Constant-time comparison of the submitted token with the session's."""
    if session is None or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())


async def check(request: web.Request, session: Session | None, *, require_https: bool) -> None:
    """Refuse (403, in Chinese) an unsafe request without this session's token or from another origin."""
    if not origin_allowed(request, require_https=require_https):
        raise Forbidden("请求来源不符，已拒绝。请直接在控制台页面上操作。", code="csrf_origin")
    form = await request.post()
    if not token_matches(session, form.get(FIELD)):
        raise Forbidden("页面已过期或请求无效（安全校验失败），请刷新页面后重试。", code="csrf_failed")
