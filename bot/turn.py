"""What one step of a conversation works on, and what it answers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.context import Bot
from bot.state import Conversation
from models.people import User

Job = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Turn:
    """One incoming message of one follower, with their conversation loaded under their lock."""

    bot: Bot
    openid: str
    conv: Conversation
    user: User | None  # None until the follower is linked to a mini-program account


@dataclass
class Outcome:
    """The passive reply (None: answer "success") and background jobs to start once the lock is released."""

    text: str | None = None
    jobs: list[Job] = field(default_factory=list)
