"""What use cases need from the outside world, handed in explicitly (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.asyncio import Redis

if TYPE_CHECKING:
    from echain.pii import PiiCipher
    from echain.storage import BlobStorage
    from wechat.client import WeChatClient
    from workflow.events import EventSink
    from workflow.financing.esign import ContractServices
    from workflow.kyc import FourElementProvider


@dataclass
class Deps:
    """Services a use case may call."""

    redis: Redis
    pii: PiiCipher
    storage: BlobStorage
    kyc: FourElementProvider
    miniapp: WeChatClient
    session_ttl: int = 7 * 24 * 3600
    events: list[EventSink] = field(default_factory=list)  # told after each committed transition
    contracts: ContractServices | None = None  # contract PDFs and e-signatures (issue, revise, sign)
