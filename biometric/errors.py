"""Face-specific refusals (each a `DomainError`, so the one error middleware renders them)."""

from __future__ import annotations

from workflow.errors import DomainError


class LockedOut(DomainError):
    """Too many failed face verifications: locked for the rest of the window."""

    status = 429
    code = "face_locked_out"


class FaceMismatch(DomainError):
    """The face does not match the enrolled reference (or differs between frames)."""

    status = 403
    code = "face_mismatch"


class LivenessFailed(DomainError):
    """The frames do not show the requested head movement (or are copies of one photo)."""

    status = 403
    code = "liveness_failed"


class TicketRejected(DomainError):
    """A signing ticket that is expired, already used, or bound to something else."""

    status = 403
    code = "face_ticket_invalid"
