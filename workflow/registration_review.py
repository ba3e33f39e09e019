"""What a platform operator sees before deciding on a registration: data, documents, four-element checks."""

from __future__ import annotations

from dataclasses import dataclass

from models.documents import Document
from models.enterprises import Enterprise, FourElementCheck
from models.people import User
from workflow import onboarding
from workflow.access import load_enterprise, require_operator


@dataclass
class ReviewSheet:
    """One enterprise as the reviewer sees it (the ID number only ever masked, as stored)."""

    enterprise: Enterprise
    documents: list[Document]
    checks: list[FourElementCheck]  # newest first
    missing: list[str]  # what would block a submission (normally empty for a submitted enterprise)

    @property
    def latest_check(self) -> FourElementCheck | None:
        """The four-element result the enterprise stands on."""
        return self.checks[0] if self.checks else None


async def review_sheet(actor: User, enterprise_id: int) -> ReviewSheet:
    """The enterprise, its documents (newest first) and its four-element checks; operators only."""
    require_operator(actor)
    enterprise = await load_enterprise(enterprise_id)
    documents = await Document.filter(enterprise_id=enterprise.id).order_by("-id")
    checks = await FourElementCheck.filter(enterprise_id=enterprise.id).order_by("-checked_at", "-id")
    return ReviewSheet(enterprise, documents, checks, await onboarding.missing_for_review(enterprise))
