"""One error middleware: every failure leaves as `{"error": {"code", "message"}}` with a Chinese message."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from asyncpg.exceptions import OperatorInterventionError, PostgresConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.exceptions import DBConnectionError

from echain.api import error_response
from workflow.errors import DomainError

log = logging.getLogger("echain.errors")

# aiohttp's own HTTP exceptions (unknown route, wrong method, body too large) in Chinese.
_HTTP_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求有误"),
    404: ("not_found", "请求的地址不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("payload_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
}


# A lost connection to Redis or the database. asyncpg's (SQLSTATE class 08, server shutting down) pass through
# tortoise untranslated.
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, DBConnectionError, ConnectionError, PostgresConnectionError,
                OperatorInterventionError)


def is_unavailable(exc: BaseException) -> bool:
    """True when a lost connection caused `exc`: then the rollback that follows fails too (asyncpg raises
    "cannot call Transaction.rollback(): the underlying connection is closed"), hiding the cause in the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNAVAILABLE):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Map domain errors, aiohttp errors and crashes to the JSON error shape."""
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_MESSAGES.get(exc.status, ("http_error", exc.reason))
        return error_response(exc.status, code, message)
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("backing service unavailable on %s %s: %r", request.method, request.path, exc)
            return error_response(503, "service_unavailable", "服务暂时不可用，请稍后重试")
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "服务器内部错误，请稍后重试")
