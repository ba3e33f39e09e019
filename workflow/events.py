"""What happened, told to the outside after the change committed (live pages now, notifications later)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("echain.events")


@dataclass(frozen=True)
class TransitionEvent:
    """One committed transition of a subject (e.g. a financing)."""

    subject: str  # "financing:42"
    action: str
    label: str
    status: str
    status_label: str
    version: int
    actor: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


class EventSink(Protocol):
    """Somewhere committed transitions are sent."""

    async def emit(self, event: TransitionEvent) -> None:
        """Deliver one event; must not raise for delivery trouble."""
        ...


async def emit_all(sinks: list[EventSink], event: TransitionEvent) -> None:
    """Send to every sink; a failing sink is logged, never undoes the committed change."""
    for sink in sinks:
        try:
            await sink.emit(event)
        except Exception:  # noqa: BLE001 - the transition already committed; delivery is best effort
            log.exception("event sink %r failed for %s %s", sink, event.subject, event.action)
