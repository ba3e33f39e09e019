"""Subscribe-message acceptances reported by the mini-program (wx.requestSubscribeMessage), and the quota left."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from echain.api import ApiRouter, Call
from echain.keys import SETTINGS
from notify import quota
from workflow.errors import InvalidInput

router = ApiRouter()
TAG = "消息通知"
# wx.requestSubscribeMessage takes at most 3 template ids per call.
MAX_TEMPLATES = 3


class SubscriptionReport(BaseModel):
    """The result of one wx.requestSubscribeMessage call."""

    model_config = ConfigDict(extra="forbid")

    template_ids: list[str] = Field(title="本次请求订阅的模板ID", min_length=1, max_length=MAX_TEMPLATES)
    accepted: list[str] = Field(default_factory=list, title="用户选择“允许”的模板ID", max_length=MAX_TEMPLATES)


class TemplateQuota(BaseModel):
    """How many more notices one template may bring the caller."""

    template_id: str
    remaining: int = Field(description="剩余可发送次数（每次“允许”增加一次）")


class SubscriptionsOut(BaseModel):
    """The templates to request and the caller's quota for each."""

    template_ids: list[str] = Field(description="小程序应通过 wx.requestSubscribeMessage 请求订阅的模板ID")
    quotas: list[TemplateQuota]


def _templates(call: Call) -> list[str]:
    template_id = call.app[SETTINGS].subscribe_template_id
    return [template_id] if template_id else []


async def _overview(call: Call) -> SubscriptionsOut:
    templates = _templates(call)
    return SubscriptionsOut(template_ids=templates,
                            quotas=[TemplateQuota(template_id=t, remaining=await quota.remaining(call.user.id, t))
                                    for t in templates])


@router.get("/api/v1/notifications/subscriptions", summary="订阅消息模板与剩余次数", tag=TAG,
            response=SubscriptionsOut)
async def subscriptions(call: Call) -> SubscriptionsOut:
    """Which templates to ask for, and how many notices each may still bring."""
    return await _overview(call)


@router.post("/api/v1/notifications/subscriptions", summary="上报订阅消息授权结果", tag=TAG,
             body=SubscriptionReport, response=SubscriptionsOut, errors=(422,), idempotent=True)
async def report_subscriptions(call: Call) -> SubscriptionsOut:
    """Each template the person allowed adds one notice to their quota (one message per acceptance)."""
    body: SubscriptionReport = call.body
    known = set(_templates(call))
    unknown = sorted({*body.template_ids, *body.accepted} - known)
    if unknown:
        raise InvalidInput(f"未知的订阅消息模板：{'、'.join(unknown)}", code="unknown_template")
    stray = sorted(set(body.accepted) - set(body.template_ids))
    if stray:
        raise InvalidInput(f"同意的模板不在本次请求的模板中：{'、'.join(stray)}", code="invalid_subscription")
    for template_id in sorted(set(body.accepted)):
        await quota.accept(call.user.id, template_id)
    return await _overview(call)
