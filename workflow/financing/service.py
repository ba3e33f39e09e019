"""The entry points' door to the financing use cases: act, then tell the outside after commit."""

from __future__ import annotations

from pydantic import BaseModel

from echain import metrics
from models.financing import Financing
from models.people import User
from workflow.deps import Deps
from workflow.events import TransitionEvent, emit_all
from workflow.financing import actions
from workflow.financing.bodies import FinancingInput
from workflow.financing.table import FINANCING


def event_for(financing: Financing, action: str, actor: str) -> TransitionEvent:
    """The event announcing that `action` brought the financing to its current state."""
    return TransitionEvent(
        subject=f"financing:{financing.id}", action=action, label=FINANCING.transition(action).label,
        status=financing.status, status_label=FINANCING.state_labels[financing.status],
        version=financing.version, actor=actor,
    )


async def submit(deps: Deps, actor: User, data: FinancingInput) -> Financing:
    """Create a financing (发起融资) and announce it."""
    financing = await actions.create_financing(actor, data)
    metrics.transition("submit")
    await emit_all(deps.events, event_for(financing, "submit", f"user:{actor.id}"))
    return financing


async def act(deps: Deps, actor: User, financing_id: int, action: str, body: BaseModel | None = None, *,
              enterprise_id: int | None = None) -> Financing:
    """Perform one action from the table and announce the committed result."""
    financing = await actions.perform(actor, financing_id, action, body, enterprise_id=enterprise_id,
                                      services=deps.contracts)
    metrics.transition(action)  # committed: perform() returns after its transaction
    await emit_all(deps.events, event_for(financing, action, f"user:{actor.id}"))
    return financing
