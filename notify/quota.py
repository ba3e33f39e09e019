"""Subscribe-message quota: one send per acceptance the mini-program reported (wx.requestSubscribeMessage).

Counts change only through conditional updates (`remaining = remaining ± 1 WHERE …`), so concurrent sends never
take the same acceptance twice, on SQLite and PostgreSQL alike.
https://developers.weixin.qq.com/miniprogram/dev/framework/open-ability/subscribe-message.html
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from models.notifications import SubscribeQuota

MAX_REMAINING = 1000  # far above any real use; stops a broken client from growing the counter for ever


async def _row(user_id: int, template_id: str) -> SubscribeQuota:
    row = await SubscribeQuota.get_or_none(user_id=user_id, template_id=template_id)
    if row is not None:
        return row
    try:
        return await SubscribeQuota.create(user_id=user_id, template_id=template_id)
    except IntegrityError:  # created concurrently by another request
        return await SubscribeQuota.get(user_id=user_id, template_id=template_id)


async def accept(user_id: int, template_id: str, count: int = 1) -> int:
    """Add `count` acceptances; returns what remains."""
    row = await _row(user_id, template_id)
    await SubscribeQuota.filter(id=row.id).update(
        remaining=F("remaining") + count, accepted_total=F("accepted_total") + count
    )
    await SubscribeQuota.filter(id=row.id, remaining__gt=MAX_REMAINING).update(remaining=MAX_REMAINING)
    return await remaining(user_id, template_id)


async def remaining(user_id: int, template_id: str) -> int:
    """Sends still allowed for the template."""
    values = await SubscribeQuota.filter(user_id=user_id, template_id=template_id).values_list("remaining", flat=True)
    return values[0] if values else 0


async def take(user_id: int, template_id: str) -> bool:
    """Use one acceptance; False when none is left."""
    return await SubscribeQuota.filter(user_id=user_id, template_id=template_id, remaining__gt=0).update(
        remaining=F("remaining") - 1
    ) == 1


async def give_back(user_id: int, template_id: str) -> None:
    """Return an acceptance a send did not use (WeChat refused the message for another reason)."""
    await SubscribeQuota.filter(user_id=user_id, template_id=template_id).update(remaining=F("remaining") + 1)


async def exhausted(user_id: int, template_id: str) -> None:
    """WeChat says none is left (43101): believe it over our count."""
    await SubscribeQuota.filter(user_id=user_id, template_id=template_id).update(remaining=0)
