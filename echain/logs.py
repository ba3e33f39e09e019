"""Logging: one JSON object per line (or readable text in dev), request ids, and redaction of personal data.

`configure()` is called by `echain serve` and `echain worker`. Every line carries the request id of the HTTP
request (or the job id of the worker job) it was written for, through a context variable that aiohttp's request
task and the tasks it spawns inherit. Openids and ID numbers never leave the process in clear: a handler filter
masks them in the message, its arguments and the traceback, wherever the log call came from.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import IO, Any

from aiohttp import web

from echain.settings import LOG_FORMATS

FORMATS = LOG_FORMATS
REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("echain_request_id", default=None)

# GB 11643 resident ID: 17 digits and a check character (digit or X), not part of a longer number.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
# WeChat openids/unionids: 28 URL-safe characters starting with "o" (the simulator's are "o" + 27 of a hash).
_OPENID = re.compile(r"(?<![0-9A-Za-z_-])o[0-9A-Za-z_-]{27}(?![0-9A-Za-z_-])")

# LogRecord attributes that are not "extras" passed by the caller.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id",
                                                                          "taskName"}


def mask_openid(openid: str) -> str:
    """A stable pseudonym for logs: the same openid always gives the same short tag, the openid is not in it."""
    return "o…" + hashlib.sha256(openid.encode()).hexdigest()[:10]


def mask_id_number(match: re.Match[str]) -> str:
    """First 3 and last 4 characters kept, as the API shows ID numbers (110***********123X)."""
    number = match.group(0)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def redact(text: str) -> str:
    """The text with ID numbers and openids masked."""
    if not text:
        return text
    return _OPENID.sub(lambda m: mask_openid(m.group(0)), _ID_NUMBER.sub(mask_id_number, text))


class RedactingFilter(logging.Filter):
    """Masks ID numbers and openids in the message and its arguments (and, once formatted, the traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current request's or job's id, or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record; never drops it."""
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, then the caller's extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler in `fmt` (json or text) with the request-id and redaction filters."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    out.addFilter(RequestIdFilter())
    out.addFilter(RedactingFilter())
    return out


def configure(fmt: str, *, level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Replace the root logger's handlers with one handler in `fmt`."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(fmt, stream))
    root.setLevel(level)


def new_request_id() -> str:
    """A fresh id: 16 hex characters."""
    return secrets.token_hex(8)


def incoming_request_id(value: str | None) -> str:
    """The caller's X-Request-Id when it is sane (≤64 of [A-Za-z0-9._-]), else a fresh one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


_REQUEST_ID_KEY = web.RequestKey("echain_request_id", str)
access_log = logging.getLogger("echain.access")
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})  # probed every few seconds: logged at DEBUG only


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bind the request id for the request's log lines and write one access line at the end."""
    rid = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
    request[_REQUEST_ID_KEY] = rid
    token = request_id_var.set(rid)
    started, status = time.perf_counter(), 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects and the like (the error middleware turns errors into responses)
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    finally:
        access_log.log(logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO,
                       "%s %s %s", request.method, request.rel_url.path, status,
                       extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
        request_id_var.reset(token)


async def _add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    # Before the headers go out: covers streamed responses (SSE) and every error response alike.
    rid = request.get(_REQUEST_ID_KEY)
    if rid:
        response.headers[REQUEST_ID_HEADER] = rid


def install(app: web.Application) -> None:
    """Return the request id on every response (the middleware itself is in create_app's list)."""
    app.on_response_prepare.append(_add_request_id_header)


async def bind_job_id(ctx: dict[str, Any]) -> None:
    """arq on_job_start hook: the job's log lines (arq's own and the job's) carry its job id as request id."""
    request_id_var.set(str(ctx.get("job_id") or new_request_id()))
