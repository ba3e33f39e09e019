"""Lock-out: 5 failed face verifications within an hour lock the person out for an hour (Redis).

Failures are kept as a sorted set of timestamps (a true sliding window: "5 in any hour", not "5 since the
hour began"). The 5th failure sets a lock key with the window's TTL, so the lock lasts a full hour from the
failure that triggered it. A success clears the failures. Only real verdicts count (face mismatch, failed
liveness, WeChat's "face does not match"); a blurry or faceless photo does not.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from biometric.errors import LockedOut

_PREFIX = "echain:bio:"


@dataclass(frozen=True)
class Lockout:
    """The failure policy (from BiometricConfig)."""

    max_failures: int = 5
    window: int = 3600

    async def remaining(self, redis: Redis, person_id: int) -> int:
        """Seconds the person stays locked out (0 = not locked)."""
        ttl = await redis.pttl(_lock_key(person_id))
        return math.ceil(ttl / 1000) if ttl and ttl > 0 else 0

    async def check(self, redis: Redis, person_id: int) -> None:
        """Raise `LockedOut` with the minutes left while the person is locked."""
        seconds = await self.remaining(redis, person_id)
        if seconds:
            minutes = max(1, math.ceil(seconds / 60))
            raise LockedOut(
                f"人脸核验连续失败 {self.max_failures} 次，为保护您的账户已暂停核验，请 {minutes} 分钟后再试",
                details={"retry_after": seconds},
            )

    async def record_failure(self, redis: Redis, person_id: int) -> int:
        """Count one failure; returns the failures in the current window (locks at `max_failures`)."""
        now = time.time()
        key = _failures_key(person_id)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - self.window)
            pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.zcard(key)
            pipe.expire(key, self.window)
            _, _, count, _ = await pipe.execute()
        if count >= self.max_failures:
            await redis.set(_lock_key(person_id), "1", ex=self.window)
        return int(count)

    async def failures(self, redis: Redis, person_id: int) -> int:
        """Failures within the current window."""
        key = _failures_key(person_id)
        await redis.zremrangebyscore(key, "-inf", time.time() - self.window)
        return int(await redis.zcard(key))

    async def clear(self, redis: Redis, person_id: int) -> None:
        """Forget failures after a success (the lock itself is never lifted early)."""
        await redis.delete(_failures_key(person_id))


def _failures_key(person_id: int) -> str:
    return f"{_PREFIX}failures:{int(person_id)}"


def _lock_key(person_id: int) -> str:
    return f"{_PREFIX}locked:{int(person_id)}"
