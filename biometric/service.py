"""What the face use cases need, handed in explicitly (the biometric counterpart of workflow.deps.Deps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from biometric.config import BiometricConfig
from biometric.lockout import Lockout

if TYPE_CHECKING:
    from biometric.pool import FacePool
    from biometric.wechat_face import FaceVerifyProvider
    from echain.pii import PiiCipher
    from echain.storage import BlobStorage
    from workflow.deps import Deps


@dataclass
class Biometrics:
    """Services a face use case may call."""

    redis: Redis
    pii: PiiCipher
    storage: BlobStorage
    pool: FacePool
    config: BiometricConfig = field(default_factory=BiometricConfig)
    wechat: FaceVerifyProvider | None = None  # WeChat's own face verification (mini-program)

    @property
    def lockout(self) -> Lockout:
        """The failure policy."""
        return Lockout(self.config.max_failures, self.config.failure_window)

    @classmethod
    def from_deps(cls, deps: Deps, pool: FacePool, config: BiometricConfig,
                  wechat: FaceVerifyProvider | None = None) -> Biometrics:
        """Share the app's Redis, cipher and blob storage."""
        return cls(redis=deps.redis, pii=deps.pii, storage=deps.storage, pool=pool, config=config, wechat=wechat)
