"""Answers sent after the callback returned: customer-service messages, within WeChat's window.

客服消息: allowed for 48 hours after the follower's last message, click or follow; outside it WeChat answers
45015, and 45047 when too many were sent for one interaction. A reply that cannot go out is kept in an outbox
and put in front of the next passive reply, when the follower writes again.
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from wechat.client import WeChatClient, WeChatError

log = logging.getLogger("echain.bot.delivery")

WINDOW_SECONDS = 48 * 3600
OUT_OF_WINDOW = frozenset({45015, 45047})  # outside 48 h; too many replies to one interaction
OUTBOX_TTL = 7 * 86400
OUTBOX_MAX = 5
# WeChat does not publish one limit for text; 2048 bytes is the one commonly hit, keep below it.
MAX_TEXT_BYTES = 2000
_CLIP_NOTE = "\n……（内容较多，请在小程序中查看完整信息）"


def clip(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """Text shortened to `limit` UTF-8 bytes, saying so when it was cut."""
    if len(text.encode()) <= limit:
        return text
    room = limit - len(_CLIP_NOTE.encode())
    cut = text.encode()[:room].decode("utf-8", "ignore")
    return cut + _CLIP_NOTE


class Delivery:
    """Tracks each follower's window and sends (or keeps) late answers."""

    def __init__(self, redis: Redis, client: WeChatClient, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.client = client
        self.clock = clock

    @staticmethod
    def _seen_key(openid: str) -> str:
        return f"echain:bot:seen_at:{openid}"

    @staticmethod
    def _outbox_key(openid: str) -> str:
        return f"echain:bot:outbox:{openid}"

    async def interacted(self, openid: str) -> None:
        """The follower wrote, clicked or followed: their 48 h window (re)opens."""
        await self.redis.set(self._seen_key(openid), str(int(self.clock())), ex=WINDOW_SECONDS)

    async def in_window(self, openid: str) -> bool:
        """True while a customer-service message may still reach the follower."""
        raw = await self.redis.get(self._seen_key(openid))
        return raw is not None and self.clock() - int(raw) < WINDOW_SECONDS

    async def send(self, openid: str, text: str) -> bool:
        """Send a text now if WeChat allows it; otherwise keep it for the next reply. True when sent."""
        if not await self.in_window(openid):
            await self.keep(openid, text)
            return False
        payload = {"touser": openid, "msgtype": "text", "text": {"content": clip(text)}}
        try:
            await self.client.send_custom(payload)
        except WeChatError as exc:
            if exc.errcode not in OUT_OF_WINDOW:
                log.warning("customer-service message failed: %s", exc)
            await self.keep(openid, text)
            return False
        return True

    async def keep(self, openid: str, text: str) -> None:
        """Put a text in the follower's outbox (newest OUTBOX_MAX kept for a week)."""
        key = self._outbox_key(openid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, text.encode())
            pipe.ltrim(key, -OUTBOX_MAX, -1)
            pipe.expire(key, OUTBOX_TTL)
            await pipe.execute()

    async def take_kept(self, openid: str) -> list[str]:
        """Everything waiting in the outbox, removed from it."""
        key = self._outbox_key(openid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            items, _ = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else i for i in items]
