"""Content-addressed blob storage: bytes are stored once under their SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobStorage(Protocol):
    """Where uploaded bytes live; callers only ever see the digest."""

    async def put(self, data: bytes) -> str:
        """Store bytes; return their SHA-256 hex."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The bytes stored under this digest (KeyError if absent)."""
        ...


class LocalBlobStorage:
    """Blobs as files under `root/ab/cd/<sha256>`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where a digest's file lives (validated: no path tricks possible)."""
        if not _SHA256.match(sha256):
            raise KeyError(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, data: bytes) -> str:
        """Store bytes; identical content is written once."""
        sha = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self.path(sha), data)
        return sha

    async def get(self, sha256: str) -> bytes:
        """Read stored bytes, checking they still hash to their name."""
        path = self.path(sha256)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise KeyError(sha256) from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise KeyError(f"{sha256} is corrupted")
        return data

    async def read_raw(self, sha256: str) -> bytes:
        """The stored bytes WITHOUT the integrity check (only to show how a corrupted file differs)."""
        try:
            return await asyncio.to_thread(self.path(sha256).read_bytes)
        except FileNotFoundError as exc:
            raise KeyError(sha256) from exc

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
