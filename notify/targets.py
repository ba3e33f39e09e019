"""Who must be told after a transition: the people behind each step the table says is awaited now."""

from __future__ import annotations

from dataclasses import dataclass

from models.financing import Financing, FinancingApproval
from models.people import Membership, User
from workflow.financing.queries import waiting_for
from workflow.financing.table import FINANCING, Step

SUBJECT_PREFIX = "financing:"


@dataclass(frozen=True)
class Recipient:
    """One person to tell, and the step they are asked to take."""

    user_id: int
    step: Step
    # The same party was already waiting before this event (e.g. the second approver of three approved):
    # these people were told when the wait began, so they are told again only if that never reached them.
    repeat: bool


def financing_id(subject: str) -> int | None:
    """The financing id in a subject like "financing:42", else None (other subjects are not notified)."""
    raw = subject.removeprefix(SUBJECT_PREFIX)
    return int(raw) if subject.startswith(SUBJECT_PREFIX) and raw.isdigit() else None


async def current_financing(subject: str, version: int) -> Financing | None:
    """The financing the event is about, if it is still in the state the event produced.

    A newer transition makes the event stale: that transition's own job tells whoever is awaited then.
    """
    fid = financing_id(subject)
    financing = await Financing.get_or_none(id=fid) if fid is not None else None
    return financing if financing is not None and financing.version == version else None


def same_party_loop(event_action: str, status: str, step: Step) -> bool:
    """True when the event left the state as it was for the step's party (approve below quorum, decline)."""
    if event_action not in FINANCING.actions:
        return False
    t = FINANCING.transition(event_action)
    return status in t.sources and step.party == t.party


async def people_for(step: Step) -> list[int]:
    """Users who may take the step: platform operators, or the enterprise's members with one of its roles."""
    if step.party == "platform":
        return list(await User.filter(is_platform_operator=True).order_by("id").values_list("id", flat=True))
    if step.enterprise_id is None:
        return []
    rows = await Membership.filter(enterprise_id=step.enterprise_id).order_by("user_id").values_list("user_id", "roles")
    wanted = set(step.member_roles)
    return [user_id for user_id, roles in rows if wanted & set(roles or ())]


async def recipients(financing: Financing, event_action: str) -> list[Recipient]:
    """Everyone awaited now, once each (their first awaited step), approvers who already approved left out."""
    approved: set[int] = set()
    if financing.status == "claimed":
        approved = set(await FinancingApproval.filter(financing_id=financing.id, decision="approve")
                       .values_list("approver_id", flat=True))
    out: dict[int, Recipient] = {}
    for step in await waiting_for(financing):
        repeat = same_party_loop(event_action, financing.status, step)
        for user_id in await people_for(step):
            if user_id in out or (step.action == "approve" and user_id in approved):
                continue
            out[user_id] = Recipient(user_id, step, repeat)
    return list(out.values())
