"""Each WeChat message takes effect once; its retries get the first answer back (Redis).

WeChat retries a callback it got no answer to within 5 s, three attempts in all (接收普通消息: "微信服务器在五秒内
收不到响应会断掉连接，并且重新发起请求，总共重试三次"). The first attempt claims the message; a retry that
arrives while it runs waits briefly for the stored answer.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

PENDING = "\x00pending"
CLAIM_TTL = 120  # a claim whose holder crashed frees itself; by then WeChat has stopped retrying
REPLY_TTL = 3600  # far beyond WeChat's retry period


class Dedup:
    """Claim / complete / release of message ids."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(account: str, message_key: str) -> str:
        """Redis key of one message (scoped by the receiving account)."""
        return f"echain:bot:seen:{account}:{message_key}"

    async def claim(self, key: str) -> str | None:
        """None when this attempt is the first (go ahead); otherwise what is stored (PENDING or the reply)."""
        if await self.redis.set(key, PENDING, nx=True, ex=CLAIM_TTL):
            return None
        stored = await self.redis.get(key)
        return PENDING if stored is None else stored.decode() if isinstance(stored, bytes) else stored

    async def wait_for_reply(self, key: str, within: float, poll: float = 0.1) -> str | None:
        """The stored reply once the first attempt completes, or None if it is still running after `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            stored = await self.redis.get(key)
            value = stored.decode() if isinstance(stored, bytes) else stored
            if value is not None and value != PENDING:
                return value
            await asyncio.sleep(poll)
        return None

    async def complete(self, key: str, reply: str) -> None:
        """Record the answer given (empty string: "success", nothing to show)."""
        await self.redis.set(key, reply, ex=REPLY_TTL)

    async def release(self, key: str) -> None:
        """Forget a claim whose handling failed, so a retry may try again."""
        await self.redis.delete(key)
