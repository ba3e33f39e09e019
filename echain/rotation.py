"""Rotating ECHAIN_SECRET_KEY: everything derived from the old master secret is re-keyed under the new one.

What the master secret protects, and what happens to each (`echain rotate-secret`):

| What | Where | Rotation |
|---|---|---|
| Legal representative's ID number (AES-GCM) and its keyed look-up hash | `enterprises` | re-encrypted, hash recomputed |
| Face templates (AES-GCM, bound to the owner) | `face_templates` | re-encrypted |
| Signer keys: PKCS#12 under a per-signer passphrase | `signer_credentials` | re-wrapped (same key and certificate) |
| Platform CA key, when its passphrase is derived (no ECHAIN_CA_KEY_PASSPHRASE) | CA key file | re-encrypted in place |
| Login sessions (the WeChat session_key inside, AES-GCM) | Redis `echain:session:*` | re-encrypted; unreadable ones dropped |
| Reference photos awaiting review (AES-GCM, 72 h) | Redis `echain:bio:review:*` | re-encrypted, TTL kept |
| Open invitation codes (keyed hash of a code we never stored) | `invitations` | cannot be recomputed: counted, must be reissued |

Not covered because nothing is kept: the pseudonymous person hash in signer certificates is computed when a
certificate is issued, so certificates issued after the rotation carry a different one for the same person.

Every value is tried under the new secret first, so rows already rotated are recognised and left alone: the
command is resumable after an interruption and a rerun changes nothing. Rows are processed in batches of
`BATCH` by id, one transaction per batch, each row with a conditional update on the value it read. Run it
with the app and worker stopped (they hold only one secret); start them with the new secret afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from redis.asyncio import Redis
from tortoise.models import Model
from tortoise.transactions import in_transaction

import signing
from biometric.enrollment import REVIEW_PREFIX, review_context, template_context
from echain.contract_ca import ca_passphrase
from echain.pii import PiiCipher, PiiError
from echain.settings import Settings
from models.biometrics import FaceTemplate
from models.enterprises import Enterprise
from models.financing import SignerCredential
from models.people import Invitation
from signing.ca import CA_KEY_FILE, replace_file
from workflow.financing.esign import signer_passphrase
from workflow.onboarding import ID_CONTEXT

BATCH = 200
SESSION_PREFIX = "echain:session:"  # workflow.accounts keeps one JSON record per bearer token here
SESSION_KEY_CONTEXT = "wechat.session_key"


class RotationError(Exception):
    """Rotation cannot start (wrong old secret, same secret twice); the message is Chinese."""


@dataclass
class Tally:
    """What rotation did to one kind of secret-derived data."""

    label: str
    rotated: int = 0  # re-keyed now
    current: int = 0  # already under the new secret
    unreadable: int = 0  # under neither secret: left as is
    note: str = ""


@dataclass
class RotationReport:
    """Counts per kind of data; `ok` when nothing was unreadable."""

    tallies: list[Tally] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.unreadable == 0 for t in self.tallies)

    @property
    def rotated(self) -> int:
        return sum(t.rotated for t in self.tallies)


@dataclass
class Keys:
    """The old and the new secret, and a PII cipher for each."""

    old_secret: str
    new_secret: str

    def __post_init__(self) -> None:
        if self.old_secret == self.new_secret:
            raise RotationError("新旧 ECHAIN_SECRET_KEY 相同，无需轮换")
        try:
            self.old, self.new = PiiCipher(self.old_secret), PiiCipher(self.new_secret)
        except ValueError as exc:
            raise RotationError(str(exc)) from None

    def reseal(self, value: Any, context: str, *, binary: bool = False) -> tuple[str, Any, Any]:
        """("current" | "rotated" | "unreadable", plaintext, value under the new secret) of one AES-GCM value."""
        with contextlib.suppress(PiiError):
            return "current", _open(self.new, value, context, binary), value
        try:
            plain = _open(self.old, value, context, binary)
        except PiiError:
            return "unreadable", None, value
        sealed = self.new.encrypt_bytes(plain, context=context) if binary else self.new.encrypt(plain, context=context)
        return "rotated", plain, sealed


def _open(cipher: PiiCipher, value: Any, context: str, binary: bool) -> Any:
    return cipher.decrypt_bytes(value, context=context) if binary else cipher.decrypt(value, context=context)


async def rotate_secret(settings: Settings, old_secret: str, redis: Redis) -> RotationReport:
    """Re-key every secret-derived value from `old_secret` to `settings.secret_key`; see the module doc."""
    keys = Keys(old_secret, settings.secret_key)
    await _preflight(keys)
    report = RotationReport()
    report.tallies.append(await _enterprises(keys))
    report.tallies.append(await _face_templates(keys))
    report.tallies.append(await _signer_credentials(keys))
    report.tallies.append(await asyncio.to_thread(_ca_key, settings, keys))
    report.tallies.append(await _sessions(keys, redis))
    report.tallies.append(await _review_photos(keys, redis))
    report.tallies.append(await _invitations())
    return report


async def _preflight(keys: Keys) -> None:
    """Refuse to start when sampled ID numbers open under neither secret: the old secret is probably wrong."""
    sample = await Enterprise.all().order_by("id").limit(20).values_list("legal_rep_id_enc", flat=True)
    readable = [t for t in sample if keys.reseal(t, ID_CONTEXT)[0] != "unreadable"]
    if sample and not readable:
        raise RotationError("用旧密钥和新密钥都无法解密已有的身份证号：请检查 --old-secret-env 指向的旧密钥是否正确")


async def _batches(model: type[Model], work: Callable[[Any, Any], Awaitable[None]]) -> None:
    """Call `work(row, conn)` for every row by ascending id, one transaction per batch."""
    last = 0
    while True:
        rows = await model.filter(id__gt=last).order_by("id").limit(BATCH)
        if not rows:
            return
        async with in_transaction() as conn:
            for row in rows:
                await work(row, conn)
        last = rows[-1].id


async def _enterprises(keys: Keys) -> Tally:
    tally = Tally("企业法定代表人身份证号（密文与检索哈希）")

    async def work(row: Enterprise, conn: Any) -> None:
        state, plain, token = keys.reseal(row.legal_rep_id_enc, ID_CONTEXT)
        if state == "unreadable":
            tally.unreadable += 1
            return
        digest = keys.new.lookup_hash(plain, context=ID_CONTEXT)
        if state == "current" and row.legal_rep_id_hash == digest:
            tally.current += 1
            return
        await Enterprise.filter(id=row.id, legal_rep_id_enc=row.legal_rep_id_enc).using_db(conn).update(
            legal_rep_id_enc=token, legal_rep_id_hash=digest)
        tally.rotated += 1

    await _batches(Enterprise, work)
    return tally


async def _face_templates(keys: Keys) -> Tally:
    tally = Tally("人脸特征模板")

    async def work(row: FaceTemplate, conn: Any) -> None:
        state, _, blob = keys.reseal(bytes(row.encoding_enc), template_context(row.user_id), binary=True)
        if state == "rotated":
            await FaceTemplate.filter(id=row.id, encoding_enc=bytes(row.encoding_enc)).using_db(conn).update(
                encoding_enc=blob)
        _count(tally, state)

    await _batches(FaceTemplate, work)
    return tally


async def _signer_credentials(keys: Keys) -> Tally:
    tally = Tally("签署人证书私钥（PKCS#12）")

    def rewrap(blob: bytes, user_id: int, enterprise_id: int) -> tuple[str, bytes]:
        new_pp = signer_passphrase(keys.new_secret, user_id, enterprise_id)
        with contextlib.suppress(signing.SignerKeyError):
            signing.SignerIdentity.from_pkcs12(blob, new_pp)
            return "current", blob
        try:
            identity = signing.SignerIdentity.from_pkcs12(blob, signer_passphrase(keys.old_secret, user_id,
                                                                                  enterprise_id))
        except signing.SignerKeyError:
            return "unreadable", blob
        return "rotated", identity.to_pkcs12(new_pp)  # same key and certificate, new wrapping

    async def work(row: SignerCredential, conn: Any) -> None:
        state, blob = await asyncio.to_thread(rewrap, bytes(row.pkcs12), row.user_id, row.enterprise_id)
        if state == "rotated":
            await SignerCredential.filter(id=row.id, pkcs12=bytes(row.pkcs12)).using_db(conn).update(pkcs12=blob)
        _count(tally, state)

    await _batches(SignerCredential, work)
    return tally


def _ca_key(settings: Settings, keys: Keys) -> Tally:
    """Re-encrypt the platform CA key when its passphrase is derived from the master secret (blocking)."""
    tally = Tally("平台 CA 私钥")
    if settings.ca_key_passphrase:
        tally.note = "口令由 ECHAIN_CA_KEY_PASSPHRASE 配置，与主密钥无关，未改动"
        return tally
    path = Path(settings.ca_key_file) if settings.ca_key_file else settings.data_dir / "ca" / CA_KEY_FILE
    if not path.exists():
        tally.note = f"{path} 不存在（服务首次启动时才创建），无需处理"
        return tally
    pem = path.read_bytes()
    new_pp = ca_passphrase(settings.with_(secret_key=keys.new_secret))
    if _opens(pem, new_pp):
        tally.current = 1
        return tally
    old_pp = ca_passphrase(settings.with_(secret_key=keys.old_secret))
    if not _opens(pem, old_pp):
        tally.unreadable = 1
        return tally
    key = serialization.load_pem_private_key(pem, password=old_pp)
    replace_file(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(new_pp)))
    tally.rotated = 1
    return tally


def _opens(pem: bytes, passphrase: bytes) -> bool:
    try:
        serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError):
        return False
    return True


async def _sessions(keys: Keys, redis: Redis) -> Tally:
    tally = Tally("登录会话（Redis，内含加密的微信 session_key）", note="无法解密的会话已删除，对应用户需重新登录")
    async for name in redis.scan_iter(match=SESSION_PREFIX + "*", count=500):
        raw, ttl = await redis.get(name), await redis.pttl(name)
        if raw is None:
            continue  # expired meanwhile
        record = json.loads(raw)
        state, _, token = keys.reseal(record.get("sk", ""), SESSION_KEY_CONTEXT)
        if state == "rotated":
            record["sk"] = token
            await redis.set(name, json.dumps(record), px=ttl if ttl > 0 else None, xx=True)
        elif state == "unreadable":
            await redis.delete(name)
        _count(tally, state)
    return tally


async def _review_photos(keys: Keys, redis: Redis) -> Tally:
    tally = Tally("待审核参考照片（Redis，72 小时内删除）")
    async for name in redis.scan_iter(match=REVIEW_PREFIX + "*", count=500):
        suffix = (name.decode() if isinstance(name, bytes) else name).removeprefix(REVIEW_PREFIX)
        raw, ttl = await redis.get(name), await redis.pttl(name)
        if raw is None or not suffix.isdigit():
            continue
        state, _, blob = keys.reseal(raw, review_context(int(suffix)), binary=True)
        if state == "rotated":
            await redis.set(name, blob, px=ttl if ttl > 0 else None, xx=True)
        _count(tally, state)
    return tally


async def _invitations() -> Tally:
    open_count = await Invitation.filter(used_at=None, expires_at__gt=datetime.now(UTC)).count()
    note = (f"{open_count} 个未使用的邀请码只存有旧密钥下的哈希，轮换后无法再被接受，请企业管理员重新发出邀请"
            if open_count else "没有未使用的邀请码")
    return Tally("企业成员邀请码", note=note)


def _count(tally: Tally, state: str) -> None:
    setattr(tally, state, getattr(tally, state) + 1)
