"""Test helpers for the operator console: an operator account, CSRF tokens read from pages, logging in."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from models.console_accounts import ConsoleAccount
from workflow.console_accounts import create_operator

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_operator(username: str = "ops.alice", password: str = PASSWORD) -> ConsoleAccount:
    """A console operator (a platform-operator person with a username and password)."""
    return await create_operator(username, password, "运营小王")


def csrf_of(html: str) -> str:
    """The CSRF token a console page embeds in its forms."""
    found = _CSRF.search(html)
    assert found, "page carries no CSRF token"
    return found.group(1)


async def console_login(client: TestClient, username: str = "ops.alice", password: str = PASSWORD) -> str:
    """Log in through the login form; returns the new session's CSRF token (read from the dashboard)."""
    form = await client.get("/console/login")
    assert form.status == 200, await form.text()
    resp = await client.post("/console/login", allow_redirects=False, data={
        "csrf_token": csrf_of(await form.text()), "username": username, "password": password, "next": "/console/",
    })
    assert resp.status == 303, await resp.text()
    home = await client.get("/console/")
    assert home.status == 200
    return csrf_of(await home.text())
