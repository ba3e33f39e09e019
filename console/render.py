"""Rendering console pages: the Jinja environment, display filters, and the context every page gets."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from console.keys import SESSION, USER
from console.sessions import store
from workflow.financing.money import format_yuan, rate_text
from workflow.financing.table import FINANCING, PARTY_LABELS
from workflow.financing.transition import CHINA_TZ

TEMPLATES = Path(__file__).parent / "templates"


def yuan(fen: int | None) -> str:
    """Fen as yuan with thousands separators ("1,234.56"); "—" for none."""
    if fen is None:
        return "—"
    whole, _, cents = format_yuan(fen).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents}"


def percent(rate: Decimal | str | None) -> str:
    """A rate fraction as a percentage ("6.5%"); "—" for none."""
    return "—" if rate is None or rate == "" else rate_text(Decimal(str(rate)))


def china_time(moment: datetime | date | None) -> str:
    """A moment in China time to the minute; dates as they are."""
    if moment is None:
        return "—"
    if isinstance(moment, datetime):
        return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return moment.isoformat()


def setup(app: web.Application) -> None:
    """Jinja2 with autoescaping for every template of the console sub-application."""
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                               undefined=jinja2.StrictUndefined)
    env.filters.update(yuan=yuan, percent=percent, china_time=china_time,
                       state_label=lambda s: FINANCING.state_labels.get(s, s),
                       party_label=lambda p: PARTY_LABELS.get(p, p))


async def page(request: web.Request, template: str, http_status: int = 200, **context: Any) -> web.Response:
    """Render a page with the operator, the CSRF token and the pending flash messages."""
    session = request.get(SESSION)
    flashes: list[tuple[str, str]] = []
    if session is not None and session.flashes:
        flashes, session.flashes = session.flashes, []
        await store(request).save(session)
    base = {"operator": request.get(USER), "csrf_token": session.csrf if session else "", "flashes": flashes,
            "path": request.path}
    response = aiohttp_jinja2.render_template(template, request, base | context, status=http_status)
    response.headers["Cache-Control"] = "no-store"  # pages carry personal data and CSRF tokens
    return response


async def flash(request: web.Request, kind: str, message: str) -> None:
    """Remember a message for the next page this browser renders (kind: success or error)."""
    session = request.get(SESSION)
    if session is not None:
        session.flashes.append((kind, message))
        await store(request).save(session)
