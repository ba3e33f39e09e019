"""Idempotency-Key for state-changing requests: a retry with the same key and body replays the first answer.

The key is scoped to the caller and the route, so two people cannot collide. A record is claimed with
SET NX before the work starts: a concurrent duplicate gets a 409 instead of doing the work twice. A server
error or an unavailable backing service releases the key, so the client can retry. Money movements are
additionally guarded in the database (conditional updates and unique constraints), so even a lost Redis
record can never pay twice: the retry then meets a 409.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from redis.asyncio import Redis

from workflow.errors import Conflict, InvalidInput

HEADER = "Idempotency-Key"
TTL_SECONDS = 24 * 3600
_PENDING = "pending"


@dataclass
class StoredResponse:
    """A response recorded for replay."""

    status: int
    body: str


class IdempotencyGuard:
    """One request's claim on an idempotency key."""

    def __init__(self, redis: Redis, scope: str, key: str, body: bytes) -> None:
        if not key or len(key) > 128 or not key.isprintable():
            raise InvalidInput("Idempotency-Key 应为 1–128 个可见字符", code="invalid_idempotency_key")
        self.redis = redis
        self.redis_key = "echain:idem:" + hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
        self.fingerprint = hashlib.sha256(body).hexdigest()

    async def claim(self) -> StoredResponse | None:
        """Claim the key; returns the stored response when this is a replay."""
        record = json.dumps({"state": _PENDING, "fp": self.fingerprint})
        if await self.redis.set(self.redis_key, record, nx=True, ex=TTL_SECONDS):
            return None
        raw = await self.redis.get(self.redis_key)
        if raw is None:  # expired between the two calls: treat as new
            return await self.claim()
        stored = json.loads(raw)
        if stored["fp"] != self.fingerprint:
            raise InvalidInput("该 Idempotency-Key 已用于内容不同的请求，请为新请求使用新的键", code="idempotency_key_reused")
        if stored["state"] == _PENDING:
            raise Conflict("相同的请求正在处理中，请稍后重试", code="request_in_progress")
        return StoredResponse(stored["status"], stored["body"])

    async def complete(self, status: int, body: str) -> None:
        """Record the final answer for replay (server errors release the key instead)."""
        if status >= 500:
            await self.release()
            return
        record = json.dumps({"state": "done", "fp": self.fingerprint, "status": status, "body": body})
        await self.redis.set(self.redis_key, record, ex=TTL_SECONDS)

    async def release(self) -> None:
        """Forget the claim so the client may retry."""
        await self.redis.delete(self.redis_key)
