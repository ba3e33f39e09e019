"""Log in, log out."""

from __future__ import annotations

import logging

from aiohttp import web

from console.keys import SESSION
from console.middleware import HOME, redirect
from console.render import page
from console.sessions import store
from echain.keys import REDIS
from workflow import console_accounts
from workflow.errors import Unauthenticated

log = logging.getLogger("echain.console")


def safe_next(target: object) -> str:
    """Where to go after login: a console path only (never another site, never a protocol-relative URL)."""
    if not isinstance(target, str) or not target.startswith("/console/") or "//" in target or "\\" in target:
        return HOME
    return target


async def login_form(request: web.Request) -> web.Response:
    """The login page; it opens an anonymous session so the form carries a CSRF token."""
    session = request.get(SESSION)
    if session is not None and session.authenticated:
        return redirect(safe_next(request.query.get("next")))
    fresh = session is None
    if fresh:
        session = await store(request).new()
        request[SESSION] = session
    response = await page(request, "login.html", next=safe_next(request.query.get("next")), username="", error="")
    if fresh:
        store(request).set_cookie(response, session)
    return response


async def login(request: web.Request) -> web.Response:
    """Check username and password; on success a new session replaces the anonymous one (no fixation)."""
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(form.get("next"))
    try:
        user = await console_accounts.authenticate(request.config_dict[REDIS], username, password)
    except (Unauthenticated, console_accounts.LockedOut) as exc:
        log.info("console login refused (%s)", exc.code)
        return await page(request, "login.html", http_status=exc.status, next=target, username=username, error=exc.message)
    sessions = store(request)
    old = request.get(SESSION)
    if old is not None:
        await sessions.delete(old)
    session = await sessions.new(uid=user.id)
    log.info("console login: user %s", user.id)
    response = redirect(target)
    sessions.set_cookie(response, session)
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session at once and forget its cookie."""
    sessions = store(request)
    await sessions.delete(request[SESSION])
    response = redirect("/console/login")
    sessions.clear_cookie(response)
    return response
