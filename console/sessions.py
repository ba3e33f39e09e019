"""Console sessions: kept server-side in Redis, named by a random id in an HttpOnly, SameSite=Strict cookie.

The cookie holds only the session id (never the API bearer token); Redis keys are a digest of the id, so a
leaked key list cannot be replayed as cookies. A session carries its CSRF token and one-shot flash messages.
Anonymous sessions exist only so the login form has a CSRF token; logging in replaces the session with a new
id (no fixation), logging out deletes it. Sessions end after `idle` seconds without a request, and at the
latest `MAX_AGE` seconds after login.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from echain.keys import REDIS, SETTINGS

COOKIE = "echain_console"
COOKIE_PATH = "/console"
MAX_AGE = 12 * 3600  # an operator logs in again at least once per working day
ANONYMOUS_TTL = 15 * 60  # a login form left open longer than this simply gets a fresh token


@dataclass
class Session:
    """One browser's console session."""

    sid: str
    csrf: str
    uid: int | None = None  # the logged-in operator (models.User id); None before login
    created: float = field(default_factory=time.time)
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) shown on the next page

    @property
    def authenticated(self) -> bool:
        """True once an operator logged in with this session."""
        return self.uid is not None

    def record(self) -> str:
        """What Redis keeps."""
        return json.dumps({"uid": self.uid, "csrf": self.csrf, "created": self.created,
                           "flashes": self.flashes}, ensure_ascii=False)


def _key(sid: str) -> str:
    return "echain:console:session:" + hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """Creates, loads, saves and deletes console sessions in Redis."""

    def __init__(self, redis: Redis, *, idle: int, secure: bool) -> None:
        self.redis = redis
        self.idle = idle
        self.secure = secure  # production: the cookie only travels over HTTPS

    async def new(self, uid: int | None = None) -> Session:
        """A fresh session with its own id and CSRF token."""
        session = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), uid=uid)
        await self.save(session)
        return session

    async def load(self, request: web.Request) -> Session | None:
        """The session named by the request's cookie, if it still exists; refreshes its idle timer."""
        sid = request.cookies.get(COOKIE, "")
        if not sid or len(sid) > 100:
            return None
        raw = await self.redis.get(_key(sid))
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        session = Session(sid=sid, csrf=data["csrf"], uid=data.get("uid"), created=data.get("created", 0.0),
                          flashes=[tuple(f) for f in data.get("flashes", [])])
        if session.authenticated and time.time() - session.created > MAX_AGE:
            await self.delete(session)
            return None
        await self.redis.expire(_key(sid), self._ttl(session))
        return session

    async def save(self, session: Session) -> None:
        """Write the session (its idle timer starts again)."""
        await self.redis.set(_key(session.sid), session.record(), ex=self._ttl(session))

    async def delete(self, session: Session) -> None:
        """End the session at once."""
        await self.redis.delete(_key(session.sid))

    def _ttl(self, session: Session) -> int:
        return self.idle if session.authenticated else min(self.idle, ANONYMOUS_TTL)

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        """Point the browser at `session` (a session cookie: it ends with the browser, Redis ends it earlier)."""
        response.set_cookie(COOKIE, session.sid, path=COOKIE_PATH, httponly=True, samesite="Strict",
                            secure=self.secure)

    def clear_cookie(self, response: web.StreamResponse) -> None:
        """Make the browser forget the session id."""
        response.del_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=self.secure)


def store(request: web.Request) -> SessionStore:
    """The session store for this app's Redis and settings (cheap: built per request)."""
    settings = request.config_dict[SETTINGS]
    return SessionStore(request.config_dict[REDIS], idle=settings.console_idle_timeout,
                        secure=settings.env == "production")
