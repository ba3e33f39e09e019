"""Typed keys of the console: the session and the logged-in operator on each request."""

from __future__ import annotations

from aiohttp import web

from console.sessions import Session
from models.people import User

SESSION = web.RequestKey("console_session", Session)
USER = web.RequestKey("console_user", User)
