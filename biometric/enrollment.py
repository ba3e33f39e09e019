"""Enrollment: the reference face a person's selfies are compared with.

Two sources:
- the portrait on the ID card image (Document kind `id_card_front`) that the person's enterprise uploaded
  and the platform reviewed during onboarding; the person must be that enterprise's legal representative
  or agent. Active at once.
- a reference photo the person uploads; it waits for a platform operator's approval. So that the operator
  can look at it, the normalised photo (downsized to 1280 px, re-encoded: no EXIF/GPS) is kept AES-GCM
  encrypted in Redis with a 72-hour TTL and deleted as soon as the operator decides. Nothing else of any
  image is kept: only the 128-d encoding, encrypted, in `FaceTemplate.encoding_enc`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from tortoise.transactions import in_transaction

from biometric import quality
from biometric.consent import now, require_consent
from biometric.pipeline import FaceAnalysis, is_finite_encoding
from biometric.service import Biometrics
from models.biometrics import FaceTemplate
from models.documents import Document
from models.enterprises import Enterprise
from models.people import Membership, User
from workflow import ledger
from workflow.access import require_operator
from workflow.documents import sniff_type
from workflow.errors import Conflict, Forbidden, InvalidInput, NotFound, UnsupportedMediaType

SOURCES = {"id_card": "身份证人像", "reference_photo": "参考照片"}
ENROLLING_ROLES = ("legal_rep", "agent")
REVIEW_PREFIX = "echain:bio:review:"  # + template id: the encrypted photo awaiting review


def template_context(user_id: int) -> str:
    """AEAD context of a template: bound to its owner, so a template moved to another row fails to decrypt."""
    return f"biometric.face_template:{int(user_id)}"


def review_context(template_id: int) -> str:
    """AEAD context of a pending review photo (Redis key REVIEW_PREFIX + template id): bound to its template."""
    return f"biometric.review_photo:{int(template_id)}"


def seal_encoding(bio: Biometrics, user_id: int, encoding: Iterable[float]) -> bytes:
    """The encrypted form of a 128-d encoding."""
    vector = np.asarray(list(encoding), dtype="<f8")
    if vector.shape != (128,):
        raise ValueError("a face encoding has 128 dimensions")
    return bio.pii.encrypt_bytes(vector.tobytes(), context=template_context(user_id))


def load_encoding(bio: Biometrics, template: FaceTemplate) -> np.ndarray:
    """Decrypt a template's encoding."""
    raw = bio.pii.decrypt_bytes(bytes(template.encoding_enc), context=template_context(template.user_id))
    return np.frombuffer(raw, dtype="<f8").copy()


async def active_template(user: User) -> FaceTemplate | None:
    """The approved reference in use (the newest)."""
    return await FaceTemplate.filter(user_id=user.id, approved=True).order_by("-id").first()


async def pending_template(user: User) -> FaceTemplate | None:
    """A reference photo awaiting an operator."""
    return await FaceTemplate.filter(user_id=user.id, approved=False).order_by("-id").first()


# ---- from the ID card ----------------------------------------------------------------------------


async def enroll_from_id_card(bio: Biometrics, user: User, document_id: int) -> FaceTemplate:
    """Take the reference from an ID-card portrait the person's (approved) enterprise uploaded."""
    await require_consent(user)
    doc = await Document.get_or_none(id=document_id)
    member = await Membership.get_or_none(user_id=user.id, enterprise_id=doc.enterprise_id) if doc else None
    if doc is None or member is None:
        raise NotFound("文件不存在", code="document_not_found")
    if doc.kind != "id_card_front":
        raise InvalidInput("请选择“身份证人像面”材料录入人脸", code="not_an_id_card")
    if not set(ENROLLING_ROLES) & set(member.roles):
        raise Forbidden("只有该企业的法定代表人或授权代理人可以用身份证人像录入人脸", code="member_role_required")
    enterprise = await Enterprise.get(id=doc.enterprise_id)
    if enterprise.status != "approved":
        raise Conflict("企业尚未通过平台审核，其身份证材料暂不能用于录入人脸", code="enterprise_not_approved")
    if doc.content_type not in ("image/jpeg", "image/png"):
        raise UnsupportedMediaType("该身份证材料不是 JPEG/PNG 照片，请改用参考照片录入", code="unsupported_image")
    try:
        data = await bio.storage.get(doc.sha256)
    except KeyError as exc:
        raise NotFound("文件内容已丢失，请重新上传身份证人像面", code="document_missing") from exc
    analysis = await bio.pool.encode_reference(data)
    del data  # the image is not needed beyond this request
    _check_reference(analysis)
    async with in_transaction() as conn:
        replaced = await FaceTemplate.filter(user_id=user.id).using_db(conn).values_list("id", flat=True)
        await FaceTemplate.filter(user_id=user.id).using_db(conn).delete()
        template = await FaceTemplate.create(
            user_id=user.id, source="id_card", document_id=doc.id, approved=True, approved_at=now(),
            encoding_enc=seal_encoding(bio, user.id, analysis.encoding or ()), using_db=conn,
        )
        await ledger.append(conn, actor=f"user:{user.id}", subject=f"user:{user.id}", action="face_template_enrolled",
                            payload={"template": template.id, "source": "id_card", "document": doc.id,
                                     "replaced": sorted(replaced)})
    await drop_review_photos(bio, replaced)
    return template


# ---- from a reference photo (operator approves) ----------------------------------------------------


async def submit_reference_photo(bio: Biometrics, user: User, data: bytes) -> FaceTemplate:
    """Encode an uploaded reference photo; it becomes active once a platform operator approves it."""
    await require_consent(user)
    if not data:
        raise InvalidInput("上传的照片是空的", code="empty_file")
    if sniff_type(data) not in ("image/jpeg", "image/png"):
        raise UnsupportedMediaType("只接受 JPEG 或 PNG 格式的照片", code="unsupported_image")
    analysis = await bio.pool.encode_reference(data, preview=True)
    _check_reference(analysis)
    async with in_transaction() as conn:
        stale = await FaceTemplate.filter(user_id=user.id, approved=False).using_db(conn).values_list("id", flat=True)
        await FaceTemplate.filter(user_id=user.id, approved=False).using_db(conn).delete()
        template = await FaceTemplate.create(
            user_id=user.id, source="reference_photo", approved=False,
            encoding_enc=seal_encoding(bio, user.id, analysis.encoding or ()), using_db=conn,
        )
        await ledger.append(conn, actor=f"user:{user.id}", subject=f"user:{user.id}", action="face_reference_submitted",
                            payload={"template": template.id, "replaced": sorted(stale)})
    await drop_review_photos(bio, stale)
    sealed = bio.pii.encrypt_bytes(analysis.preview or b"", context=review_context(template.id))
    await bio.redis.set(REVIEW_PREFIX + str(template.id), sealed, ex=bio.config.review_photo_ttl)
    return template


@dataclass
class PendingReference:
    """One reference photo waiting for review."""

    template: FaceTemplate
    user: User
    photo_available: bool


async def pending_references(bio: Biometrics, operator: User) -> list[PendingReference]:
    """Reference photos awaiting approval, oldest first (operators only)."""
    require_operator(operator)
    templates = await FaceTemplate.filter(approved=False).order_by("id").prefetch_related("user")
    result = []
    for t in templates:
        result.append(PendingReference(t, t.user, bool(await bio.redis.exists(REVIEW_PREFIX + str(t.id)))))
    return result


async def review_photo(bio: Biometrics, operator: User, template_id: int) -> bytes:
    """The normalised reference photo for the reviewing operator (JPEG)."""
    require_operator(operator)
    template = await _pending(template_id)
    sealed = await bio.redis.get(REVIEW_PREFIX + str(template.id))
    if sealed is None:
        raise NotFound("审核期已过，照片已删除；请让用户重新上传参考照片", code="review_photo_expired")
    return bio.pii.decrypt_bytes(sealed, context=review_context(template.id))


async def approve_reference(bio: Biometrics, operator: User, template_id: int) -> FaceTemplate:
    """Make a reviewed reference photo the person's active template (replacing any earlier one)."""
    require_operator(operator)
    template = await _pending(template_id)
    if not await bio.redis.exists(REVIEW_PREFIX + str(template.id)):
        raise Conflict("审核期已过，照片已删除，无法核对；请让用户重新上传参考照片", code="review_photo_expired")
    if template.user_id == operator.id:
        raise Forbidden("不能审核自己的参考照片", code="self_review")
    async with in_transaction() as conn:
        moved = await FaceTemplate.filter(id=template.id, approved=False).using_db(conn).update(
            approved=True, approved_by_id=operator.id, approved_at=now())
        if not moved:
            raise Conflict("该参考照片已被处理", code="already_reviewed")
        replaced = await FaceTemplate.filter(user_id=template.user_id).exclude(id=template.id).using_db(conn).values_list(
            "id", flat=True)
        await FaceTemplate.filter(id__in=list(replaced)).using_db(conn).delete()
        await ledger.append(conn, actor=f"user:{operator.id}", subject=f"user:{template.user_id}",
                            action="face_template_approved",
                            payload={"template": template.id, "replaced": sorted(replaced)})
    await drop_review_photos(bio, [template.id])
    return await FaceTemplate.get(id=template.id)


async def reject_reference(bio: Biometrics, operator: User, template_id: int, reason: str) -> None:
    """Refuse a reference photo: its encoding and photo are deleted at once."""
    require_operator(operator)
    template = await _pending(template_id)
    async with in_transaction() as conn:
        deleted = await FaceTemplate.filter(id=template.id, approved=False).using_db(conn).delete()
        if not deleted:
            raise Conflict("该参考照片已被处理", code="already_reviewed")
        await ledger.append(conn, actor=f"user:{operator.id}", subject=f"user:{template.user_id}",
                            action="face_template_rejected", payload={"template": template.id, "reason": reason})
    await drop_review_photos(bio, [template.id])


async def drop_review_photos(bio: Biometrics, template_ids: Iterable[int]) -> None:
    """Delete review photos now (they would expire anyway)."""
    keys = [REVIEW_PREFIX + str(i) for i in template_ids]
    if keys:
        await bio.redis.delete(*keys)


async def _pending(template_id: int) -> FaceTemplate:
    template = await FaceTemplate.get_or_none(id=template_id, approved=False)
    if template is None:
        raise NotFound("待审核的参考照片不存在（可能已处理或已被用户删除）", code="reference_not_found")
    return template


def _check_reference(analysis: FaceAnalysis) -> None:
    quality.raise_for_status(analysis, reference=True)
    if not is_finite_encoding(analysis.encoding):
        raise InvalidInput("照片无法提取人脸特征，请更换照片", code="face_bad_image")
