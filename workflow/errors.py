"""Domain errors: each carries a stable code and a Chinese message; the HTTP layer maps kinds to status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every refusal a use case can give; `status` is the HTTP status it maps to."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidInput(DomainError):
    """Well-formed request whose content is wrong (bad checksum, bad amount)."""

    status = 422
    code = "invalid_input"


class Unauthenticated(DomainError):
    """No valid login."""

    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    """Logged in, but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know it exists."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The request clashes with the current state (wrong status, duplicate, lost race)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    """Upload over the configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    """Upload or body of a type we do not accept."""

    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(DomainError):
    """A backing service (database, Redis, WeChat) cannot be reached right now."""

    status = 503
    code = "service_unavailable"
