"""Separate consent to face processing (PIPL §28–29: biometric data is sensitive personal information and
needs its own consent, not a clause in the general terms), and its withdrawal with deletion (PIPL §15, §47).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from biometric import tickets
from biometric.service import Biometrics
from models.biometrics import BiometricConsent, FaceTemplate
from models.people import User
from workflow import ledger
from workflow.access import require_operator
from workflow.errors import Conflict, Forbidden, InvalidInput, NotFound

CONSENT_VERSION = "face-v1"
CONSENT_TEXT = (
    "人脸信息处理单独同意书\n"
    "1. 处理目的：在您以法定代表人或授权代理人身份电子签署合同前，核验是您本人操作。\n"
    "2. 处理方式：您上传的自拍照仅在本次核验过程中使用，核验结束后立即删除，不保存任何照片；"
    "平台仅以加密方式保存从您身份证人像或经审核的参考照片中提取的人脸特征值（128 个数字，无法还原为照片）。\n"
    "3. 保存期限：至您撤回同意或注销账户时止；撤回后人脸特征值立即删除，之后的签署须改用其他核验方式。\n"
    "4. 必要性与影响：人脸信息属于敏感个人信息，一旦泄露可能危及人身、财产安全。您可以拒绝，拒绝不影响"
    "平台其他功能，但需要人脸核验的签署将无法进行。\n"
    "5. 您可以随时在“我的-人脸核验”中撤回同意并删除人脸特征值。"
)
CONSENT_TEXT_SHA256 = hashlib.sha256(CONSENT_TEXT.encode("utf-8")).hexdigest()


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


async def active_consent(user: User) -> BiometricConsent | None:
    """The person's standing consent, if any."""
    return await BiometricConsent.filter(user_id=user.id, withdrawn_at__isnull=True).order_by("-id").first()


async def require_consent(user: User) -> BiometricConsent:
    """Refuse face processing without a standing consent to the current text."""
    consent = await active_consent(user)
    if consent is None:
        raise Forbidden("请先阅读并单独同意《人脸信息处理单独同意书》后再进行人脸核验",
                        code="biometric_consent_required")
    if consent.version != CONSENT_VERSION:
        raise Forbidden("人脸信息处理同意书已更新，请重新阅读并同意", code="biometric_consent_outdated",
                        details={"version": CONSENT_VERSION})
    return consent


async def grant(user: User, version: str) -> BiometricConsent:
    """Record consent to exactly the text the person was shown (`version` must be the current one)."""
    if version != CONSENT_VERSION:
        raise Conflict("同意书版本已更新，请重新阅读最新版本后再同意", code="consent_version_mismatch",
                       details={"version": CONSENT_VERSION})
    current = await active_consent(user)
    if current is not None and current.version == version:
        return current  # idempotent: consenting twice records nothing new
    async with in_transaction() as conn:
        if current is not None:  # an older text: close it, the new consent replaces it
            await BiometricConsent.filter(id=current.id).using_db(conn).update(withdrawn_at=now())
        consent = await BiometricConsent.create(user_id=user.id, version=version, text_sha256=CONSENT_TEXT_SHA256,
                                                granted_at=now(), using_db=conn)
        await ledger.append(conn, actor=f"user:{user.id}", subject=f"user:{user.id}",
                            action="biometric_consent_granted",
                            payload={"consent": consent.id, "version": version, "text_sha256": CONSENT_TEXT_SHA256})
    return consent


@dataclass
class Withdrawal:
    """What withdrawing removed."""

    consent_withdrawn: bool
    templates_deleted: int
    tickets_revoked: int


async def withdraw(bio: Biometrics, user: User, *, actor: User | None = None, reason: str = "") -> Withdrawal:
    """Withdraw consent and delete every face template (and pending review photo) of the person at once.

    `actor` None: the person themselves. Otherwise a platform operator deleting on the person's request made
    elsewhere (customer service) or after they left their enterprise: `reason` is required, and the ledger
    records who, whose and why even when nothing was left to delete (proof the request was handled).
    """
    from biometric.enrollment import drop_review_photos  # enrollment imports this module

    if actor is not None:
        require_operator(actor)
        if not reason.strip():
            raise InvalidInput("请填写删除原因", code="reason_required")
    async with in_transaction() as conn:
        closed = await BiometricConsent.filter(user_id=user.id, withdrawn_at__isnull=True).using_db(conn).update(
            withdrawn_at=now())
        template_ids = await FaceTemplate.filter(user_id=user.id).using_db(conn).values_list("id", flat=True)
        deleted = await FaceTemplate.filter(user_id=user.id).using_db(conn).delete()
        if actor is not None:  # template ids only, never an encoding
            await ledger.append(conn, actor=f"user:{actor.id}", subject=f"user:{user.id}",
                                action="biometric_data_deleted_by_operator",
                                payload={"templates_deleted": sorted(template_ids), "consent_withdrawn": bool(closed),
                                         "reason": reason.strip()})
        elif closed or deleted:
            await ledger.append(conn, actor=f"user:{user.id}", subject=f"user:{user.id}",
                                action="biometric_consent_withdrawn",
                                payload={"templates_deleted": sorted(template_ids)})
    await drop_review_photos(bio, template_ids)
    revoked = await tickets.revoke_tickets(bio.redis, user.id)
    return Withdrawal(bool(closed), int(deleted), revoked)


async def withdraw_for(bio: Biometrics, operator: User, user_id: int, reason: str) -> Withdrawal:
    """An operator withdraws another person's consent and deletes their face data (the same use case as the
    person's own withdrawal); repeating it removes nothing more and is not an error."""
    require_operator(operator)  # before the look-up: others cannot probe which user ids exist
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise NotFound("用户不存在", code="user_not_found")
    return await withdraw(bio, user, actor=operator, reason=reason)
