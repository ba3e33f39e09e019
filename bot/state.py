"""Conversation state per follower in Redis: one JSON record with a TTL, read and written under a per-user lock.

Keys (aiogram's layout, spelled out):
- `echain:bot:conv:<openid>`  → {"state": ..., "data": {...}}, expires CONVERSATION_TTL after the last step;
- `echain:bot:lock:<openid>`  → the per-user lock, so two messages of one person never interleave.
The state is loaded only after the lock is taken (`ConversationStore.session`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import LockError

IDLE = "idle"
CONVERSATION_TTL = 30 * 60  # an abandoned flow is forgotten after half an hour
LOCK_TIMEOUT = 60  # the lock frees itself if its holder dies
LOCK_WAIT = 30  # how long a message waits for the previous one of the same person


class Busy(Exception):
    """The person's previous message is still being handled."""


@dataclass
class Conversation:
    """Where a person is in a flow, and what they entered so far."""

    state: str = IDLE
    data: dict[str, Any] = field(default_factory=dict)

    def go(self, state: str, **data: Any) -> None:
        """Move to `state`, keeping the collected data and adding `data`."""
        self.state = state
        self.data.update(data)

    def reset(self) -> None:
        """Back to idle, everything entered forgotten."""
        self.state, self.data = IDLE, {}


class ConversationStore:
    """Loads and saves conversations; `session` is the only way to get one for changing."""

    def __init__(self, redis: Redis, ttl: int = CONVERSATION_TTL) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def key(openid: str) -> str:
        """Redis key of a person's conversation."""
        return f"echain:bot:conv:{openid}"

    async def load(self, openid: str) -> Conversation:
        """The stored conversation (idle when none or expired)."""
        raw = await self.redis.get(self.key(openid))
        if raw is None:
            return Conversation()
        record = json.loads(raw)
        return Conversation(record.get("state", IDLE), record.get("data", {}))

    async def save(self, openid: str, conv: Conversation) -> None:
        """Store the conversation (idle ones are deleted rather than kept)."""
        if conv.state == IDLE and not conv.data:
            await self.redis.delete(self.key(openid))
            return
        record = json.dumps({"state": conv.state, "data": conv.data}, ensure_ascii=False)
        await self.redis.set(self.key(openid), record, ex=self.ttl)

    async def clear(self, openid: str) -> None:
        """Forget the conversation."""
        await self.redis.delete(self.key(openid))

    @asynccontextmanager
    async def session(self, openid: str, wait: float = LOCK_WAIT) -> AsyncIterator[Conversation]:
        """Take the person's lock, then load; save on normal exit, release the lock in any case."""
        lock = self.redis.lock(f"echain:bot:lock:{openid}", timeout=LOCK_TIMEOUT, blocking_timeout=wait)
        if not await lock.acquire():
            raise Busy(openid)
        try:
            conv = await self.load(openid)
            yield conv
            await self.save(openid, conv)
        finally:
            try:
                await lock.release()
            except LockError:  # expired while we worked: someone else may hold it now; nothing to undo
                pass
