"""Powers of attorney endpoints: an enterprise grants, the platform reviews, the enterprise revokes."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from echain.api import ApiRouter, Call
from miniapp_api.schemas import ReviewIn, Strict
from models.attorney import PowerOfAttorney
from workflow import attorney
from workflow.attorney import ATTORNEY, PowerOfAttorneyInput
from workflow.financing.money import format_yuan

router = ApiRouter()
TAG = "授权委托书"


class PowerOfAttorneyOut(BaseModel):
    """A power of attorney; amounts are yuan strings, dates are China calendar dates (both ends inclusive)."""

    id: int
    enterprise_id: int
    enterprise_name: str
    agent_user_id: int
    agent_name: str
    document_id: int
    max_amount: str = Field(description="授权金额上限，单位元")
    valid_from: date
    valid_to: date
    actions: list[str]
    action_labels: list[str]
    status: str = Field(description="pending_review / approved / rejected / revoked")
    status_label: str
    standing: str = Field(description="今天的效力：in_force / expired / not_yet_valid，或未生效时同 status")
    standing_label: str
    review_reason: str
    reviewed_at: datetime | None
    revoke_reason: str
    revoked_at: datetime | None
    created_by: int
    created_at: datetime
    version: int

    @classmethod
    def of(cls, poa: PowerOfAttorney) -> PowerOfAttorneyOut:
        """From the model (enterprise and agent prefetched)."""
        standing, standing_label = attorney.standing(poa)
        return cls(
            id=poa.id, enterprise_id=poa.enterprise_id, enterprise_name=poa.enterprise.name,
            agent_user_id=poa.agent_id, agent_name=poa.agent.display_name, document_id=poa.document_id,
            max_amount=format_yuan(poa.max_amount), valid_from=poa.valid_from, valid_to=poa.valid_to,
            actions=list(poa.actions), action_labels=[attorney.action_label(a) for a in poa.actions],
            status=poa.status, status_label=ATTORNEY.state_labels[poa.status],
            standing=standing, standing_label=standing_label,
            review_reason=poa.review_reason, reviewed_at=poa.reviewed_at,
            revoke_reason=poa.revoke_reason, revoked_at=poa.revoked_at,
            created_by=poa.created_by_id, created_at=poa.created_at, version=poa.version,
        )


class PowerOfAttorneyList(BaseModel):
    """Several powers of attorney."""

    items: list[PowerOfAttorneyOut]


class RevokeIn(Strict):
    """Why the power is withdrawn (optional)."""

    reason: str = Field("", title="撤销原因", max_length=500)


async def _out(poa: PowerOfAttorney) -> PowerOfAttorneyOut:
    await poa.fetch_related("enterprise", "agent")
    return PowerOfAttorneyOut.of(poa)


async def _list(powers: list[PowerOfAttorney]) -> PowerOfAttorneyList:
    return PowerOfAttorneyList(items=[await _out(p) for p in powers])


@router.post("/api/v1/enterprises/{enterprise_id}/powers-of-attorney", summary="出具授权委托书（待平台审核）", tag=TAG,
             body=PowerOfAttorneyInput, response=PowerOfAttorneyOut, status=201, errors=(403,), idempotent=True)
async def create_power_of_attorney(call: Call) -> PowerOfAttorneyOut:
    """The enterprise's admin or legal representative authorises an agent member, with the uploaded 授权委托书
    (material kind power_of_attorney), an amount ceiling, a validity period and the actions covered."""
    return await _out(await attorney.create(call.user, call.ids["enterprise_id"], call.body))


@router.get("/api/v1/enterprises/{enterprise_id}/powers-of-attorney", summary="授权委托书列表", tag=TAG,
            response=PowerOfAttorneyList)
async def list_powers_of_attorney(call: Call) -> PowerOfAttorneyList:
    """Newest first; for members of the enterprise and platform operators."""
    return await _list(await attorney.list_for(call.user, call.ids["enterprise_id"]))


@router.get("/api/v1/enterprises/{enterprise_id}/powers-of-attorney/{poa_id}", summary="授权委托书详情", tag=TAG,
            response=PowerOfAttorneyOut)
async def get_power_of_attorney(call: Call) -> PowerOfAttorneyOut:
    """For members of the enterprise and platform operators."""
    return await _out(await attorney.load(call.user, call.ids["enterprise_id"], call.ids["poa_id"]))


@router.post("/api/v1/enterprises/{enterprise_id}/powers-of-attorney/{poa_id}/revoke", summary="撤销授权委托书", tag=TAG,
             body=RevokeIn, response=PowerOfAttorneyOut, errors=(403, 409), idempotent=True)
async def revoke_power_of_attorney(call: Call) -> PowerOfAttorneyOut:
    """The enterprise's admin or legal representative; the agent can no longer sign under it from now on."""
    poa = await attorney.revoke(call.user, call.ids["enterprise_id"], call.ids["poa_id"], call.body.reason)
    return await _out(poa)


@router.get("/api/v1/admin/powers-of-attorney/pending", summary="待审核授权委托书（平台运营）", tag=TAG,
            response=PowerOfAttorneyList, errors=(403,))
async def pending_powers_of_attorney(call: Call) -> PowerOfAttorneyList:
    """Oldest first."""
    return await _list(await attorney.pending_reviews(call.user))


@router.post("/api/v1/admin/powers-of-attorney/{poa_id}/review", summary="审核授权委托书（通过/驳回）", tag=TAG,
             body=ReviewIn, response=PowerOfAttorneyOut, errors=(403, 409), idempotent=True)
async def review_power_of_attorney(call: Call) -> PowerOfAttorneyOut:
    """A rejection needs a reason; the enterprise then issues a new one."""
    poa = await attorney.review(call.user, call.ids["poa_id"], call.body.decision, call.body.reason)
    return await _out(poa)
