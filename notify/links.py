"""Where a person can be reached outside the mini-program: their Official Account openid."""

from __future__ import annotations

from models.wechat_links import WeChatLink


async def oa_openid_for(user_id: int) -> str | None:
    """The person's Official Account openid (bound through the bot), or None when they never linked one."""
    values = await WeChatLink.filter(user_id=user_id).values_list("oa_openid", flat=True)
    return values[0] if values else None
