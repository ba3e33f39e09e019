"""The console's two middlewares: errors as Chinese pages with security headers, and the session guard."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from console import csrf
from console.keys import SESSION, USER
from console.render import page
from console.sessions import store
from echain.errors import is_unavailable
from echain.keys import SETTINGS
from models.people import User
from workflow import console_accounts
from workflow.errors import DomainError, Unauthenticated

log = logging.getLogger("echain.console")

LOGIN = "/console/login"
STATIC = "/console/static/"
HOME = "/console/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Scripts and styles only from our own static files (no inline script can run); documents and images from us.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_HTTP_MESSAGES = {404: "页面不存在", 405: "不支持该请求方法", 413: "提交的内容过大"}


def redirect(location: str) -> web.Response:
    """A 303 See Other (after a POST the browser follows with a GET)."""
    return web.Response(status=303, headers={"Location": location})


def _secure(request: web.Request) -> bool:
    return request.config_dict[SETTINGS].env == "production"


@web.middleware
async def pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Use-case refusals and HTTP errors become Chinese pages; every answer gets the security headers."""
    try:
        response = await handler(request)
    except DomainError as exc:
        response = await _error_page(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = await _error_page(request, exc.status, _HTTP_MESSAGES.get(exc.status, "请求有误"))
    except Exception as exc:
        if is_unavailable(exc):  # the API's own test for a lost database or Redis connection
            log.warning("backing service unavailable on %s %s: %r", request.method, request.path, exc)
            response = await _plain_error(503, "服务暂时不可用，请稍后重试")
        else:
            log.exception("unhandled console error on %s %s", request.method, request.path)
            response = await _plain_error(500, "服务器内部错误，请稍后重试")
    if not response.prepared:  # a live event stream has already sent its headers
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)  # a document download sets its own, stricter policy
        if _secure(request):
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


async def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    return await page(request, "error.html", http_status=status, status_code=status, message=message)


async def _plain_error(status: int, message: str) -> web.Response:
    # No template, no session: whatever failed may be what rendering needs.
    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        text=f"<!doctype html><meta charset=utf-8><title>错误</title><p>{message}</p>")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session; require a logged-in platform operator except on the login page and static files;
    check CSRF token and Origin on every unsafe request."""
    sessions = store(request)
    session = await sessions.load(request)
    if session is not None:
        request[SESSION] = session
    if not (request.path == LOGIN or request.path.startswith(STATIC)):
        user = await User.get_or_none(id=session.uid) if session is not None and session.uid else None
        if (user is None or not user.is_platform_operator
                or not await console_accounts.session_current(user.id, session.created)):
            if session is not None and session.authenticated:  # removed, demoted or password reset: end it
                await sessions.delete(session)
                del request[SESSION]
            if request.method == "GET":
                return redirect(f"{LOGIN}?next={quote(request.path_qs, safe='')}")
            raise Unauthenticated("登录已失效，请重新登录后再操作", code="login_required")
        request[USER] = user
    if request.method in csrf.UNSAFE_METHODS:
        await csrf.check(request, request.get(SESSION), require_https=_secure(request))
    return await handler(request)
