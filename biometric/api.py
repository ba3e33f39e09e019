"""Face endpoints (consent, enrollment, challenge, verification, WeChat 人脸核身, operator review).

Wiring (echain/app.py): include `router` in `api_router()` and append `biometrics_context` to
`app.cleanup_ctx` after `_deps` (it starts and warms the `FacePool`, and closes it on shutdown).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from biometric import consent, enrollment, verification
from biometric.config import BiometricConfig
from biometric.pool import FacePool
from biometric.schemas import (
    ChallengeOut,
    ConsentIn,
    ConsentOut,
    EnrollFromDocumentIn,
    ErasureIn,
    ErasureOut,
    PendingReferenceList,
    PendingReferenceOut,
    RejectIn,
    StatusOut,
    TemplateOut,
    VerificationOut,
    WeChatResultIn,
    WeChatSessionIn,
    WeChatSessionOut,
    WithdrawalOut,
)
from biometric.service import Biometrics
from biometric.wechat_face import WeChatFaceProvider
from echain.api import ApiRouter, Call
from echain.keys import DEPS, SETTINGS
from miniapp_api.uploads import read_upload
from workflow.errors import DomainError, InvalidInput, PayloadTooLarge, UnsupportedMediaType

BIOMETRICS = web.AppKey("biometrics", Biometrics)
FACE_POOL = web.AppKey("face_pool", FacePool)  # preset before start-up to share a pool (tests)
BIOMETRIC_CONFIG = web.AppKey("biometric_config", BiometricConfig)  # preset to override the settings

MAX_FRAMES = 6

router = ApiRouter()
TAG = "人脸核验"
ADMIN_TAG = "平台运营"


async def biometrics_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: start and warm the face process pool (production; elsewhere on first use), build
    `Biometrics`; close the pool at exit."""
    config = app.get(BIOMETRIC_CONFIG) or BiometricConfig.from_settings(app[SETTINGS])
    pool = app.get(FACE_POOL)
    owned = pool is None
    if pool is None:
        pool = FacePool(config.pool_size, lazy=not config.warm_at_startup)
        if config.warm_at_startup:
            await pool.start()
        app[FACE_POOL] = pool
    deps = app[DEPS]
    app[BIOMETRICS] = Biometrics.from_deps(deps, pool, config, wechat=WeChatFaceProvider(deps.miniapp))
    try:
        yield
    finally:
        if owned:
            await pool.close()


def _bio(call: Call) -> Biometrics:
    return call.app[BIOMETRICS]


# ---- the person's own standing ---------------------------------------------------------------------


@router.get("/api/v1/biometrics/me", summary="我的人脸核验状态", tag=TAG, response=StatusOut)
async def biometric_status(call: Call) -> StatusOut:
    """Consent (with the text to show), the active reference, a pending reference photo, lock-out."""
    bio, user = _bio(call), call.user
    given = await consent.active_consent(user)
    active, pending = await enrollment.active_template(user), await enrollment.pending_template(user)
    return StatusOut(
        consent_version=consent.CONSENT_VERSION, consent_text=consent.CONSENT_TEXT,
        consent=ConsentOut.of(given) if given else None,
        template=TemplateOut.of(active) if active else None,
        pending_reference=TemplateOut.of(pending) if pending else None,
        locked_seconds=await bio.lockout.remaining(bio.redis, user.id),
        recent_failures=await bio.lockout.failures(bio.redis, user.id),
    )


@router.post("/api/v1/biometrics/consent", summary="单独同意人脸信息处理", tag=TAG, body=ConsentIn,
             response=ConsentOut, status=201, errors=(409,))
async def grant_consent(call: Call) -> ConsentOut:
    """Separate consent (PIPL §29) to the text version shown; consenting again is a no-op."""
    return ConsentOut.of(await consent.grant(call.user, call.body.version))


@router.delete("/api/v1/biometrics/me", summary="撤回同意并删除人脸信息", tag=TAG, response=WithdrawalOut)
async def withdraw_consent(call: Call) -> WithdrawalOut:
    """Deletes every face template and pending photo at once and revokes unused signing tickets;
    face verification is refused afterwards until the person consents and enrolls again."""
    result = await consent.withdraw(_bio(call), call.user)
    return WithdrawalOut(consent_withdrawn=result.consent_withdrawn, templates_deleted=result.templates_deleted,
                         tickets_revoked=result.tickets_revoked)


# ---- enrollment ------------------------------------------------------------------------------------


@router.post("/api/v1/biometrics/enrollment", summary="用身份证人像录入人脸", tag=TAG, body=EnrollFromDocumentIn,
             response=TemplateOut, status=201, errors=(403, 409, 413, 415))
async def enroll_from_document(call: Call) -> TemplateOut:
    """From an `id_card_front` document of an approved enterprise where the caller is legal
    representative or agent; exactly one face; only the encrypted 128-d encoding is kept. Active at once."""
    return TemplateOut.of(await enrollment.enroll_from_id_card(_bio(call), call.user, call.body.document_id))


@router.post("/api/v1/biometrics/enrollment/photo", summary="上传参考照片录入人脸（待平台审核）", tag=TAG,
             response=TemplateOut, status=201, errors=(403, 413, 415),
             multipart={"file": "本人正面人像，JPEG 或 PNG，仅一张人脸"})
async def enroll_from_photo(call: Call) -> TemplateOut:
    """Pending until a platform operator approves it; the photo itself is deleted on the decision
    (or after 72 hours), only the encrypted encoding is kept."""
    bio = _bio(call)
    upload = await read_upload(call.request, bio.config.selfie_max_bytes)
    return TemplateOut.of(await enrollment.submit_reference_photo(bio, call.user, upload.data))


# ---- verification ----------------------------------------------------------------------------------


@router.post("/api/v1/biometrics/liveness/challenges", summary="获取转头动作指令", tag=TAG, response=ChallengeOut,
             status=201, errors=(403, 409, 429))
async def create_challenge(call: Call) -> ChallengeOut:
    """A random head-turn sequence with a single-use id, valid 2 minutes."""
    return ChallengeOut.of(await verification.start_challenge(_bio(call), call.user))


@router.post("/api/v1/biometrics/verifications", summary="人脸核验（换取签署凭证）", tag=TAG,
             response=VerificationOut, status=201, errors=(403, 409, 413, 415, 429, 503),
             multipart={"challenge_id": "动作指令编号", "purpose": "用途：sign_contract / sign_authorization",
                        "contract_ref": "合同标识，如 financing:42:v2",
                        "file": "按动作顺序依次上传的照片（字段 file 重复：正脸、第 1 个动作、第 2 个动作…），JPEG 或 PNG"})
async def verify_faces(call: Call) -> VerificationOut:
    """Same person in every frame, matching the reference, turning as asked, no copied frames.
    5 failures within an hour pause verification for an hour. Photos are not stored."""
    bio = _bio(call)
    fields, frames = await read_frames(call.request, bio.config.selfie_max_bytes)
    purpose, contract_ref = fields.get("purpose", ""), fields.get("contract_ref", "")
    result = await verification.verify_selfies(bio, call.user, fields.get("challenge_id", ""), frames, purpose,
                                               contract_ref)
    return VerificationOut(ticket=result.ticket, expires_in=result.expires_in, purpose=result.purpose,
                           contract_ref=result.contract_ref)


@router.post("/api/v1/biometrics/wechat/sessions", summary="发起微信人脸核身", tag=TAG, body=WeChatSessionIn,
             response=WeChatSessionOut, status=201, errors=(403, 429, 503))
async def start_wechat_face(call: Call) -> WeChatSessionOut:
    """For the enterprise's legal representative (name and ID number on file); pass verify_id to
    wx.requestFacialVerify, then ask for the result."""
    body = call.body
    session = await verification.start_wechat(_bio(call), call.user, body.enterprise_id, body.purpose,
                                              body.contract_ref)
    return WeChatSessionOut(verify_id=session.verify_id, expires_in=session.expires_in)


@router.post("/api/v1/biometrics/wechat/verifications", summary="查询微信人脸核身结果（换取签署凭证）", tag=TAG,
             body=WeChatResultIn, response=VerificationOut, status=201, errors=(403, 409, 429, 503))
async def finish_wechat_face(call: Call) -> VerificationOut:
    """The verdict comes from WeChat's server (queryVerifyInfo), never from the client; only
    verify_ret 10000 passes."""
    result = await verification.finish_wechat(_bio(call), call.user, call.body.verify_id)
    return VerificationOut(ticket=result.ticket, expires_in=result.expires_in, purpose=result.purpose,
                           contract_ref=result.contract_ref)


# ---- operator review of reference photos ------------------------------------------------------------


@router.get("/api/v1/admin/biometrics/references", summary="待审核的人脸参考照片（平台运营）", tag=ADMIN_TAG,
            response=PendingReferenceList, errors=(403,))
async def list_pending_references(call: Call) -> PendingReferenceList:
    """Oldest first."""
    items = await enrollment.pending_references(_bio(call), call.user)
    return PendingReferenceList(items=[
        PendingReferenceOut(template=TemplateOut.of(p.template), user_id=p.user.id, display_name=p.user.display_name,
                            photo_available=p.photo_available)
        for p in items
    ])


@router.get("/api/v1/admin/biometrics/references/{template_id}/photo", summary="查看待审核参考照片（平台运营）",
            tag=ADMIN_TAG, binary_response="JPEG 照片（image/jpeg，已去除元数据）", errors=(403,))
async def reference_photo(call: Call) -> web.Response:
    """Kept at most 72 hours, encrypted; never cached by the client."""
    data = await enrollment.review_photo(_bio(call), call.user, call.ids["template_id"])
    return web.Response(body=data, content_type="image/jpeg",
                        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


@router.post("/api/v1/admin/biometrics/references/{template_id}/approve", summary="通过参考照片（平台运营）",
             tag=ADMIN_TAG, response=TemplateOut, errors=(403, 409))
async def approve_reference(call: Call) -> TemplateOut:
    """The photo becomes the person's active reference; the photo itself is deleted."""
    return TemplateOut.of(await enrollment.approve_reference(_bio(call), call.user, call.ids["template_id"]))


@router.post("/api/v1/admin/biometrics/references/{template_id}/reject", summary="驳回参考照片（平台运营）",
             tag=ADMIN_TAG, body=RejectIn, errors=(403, 409))
async def reject_reference(call: Call) -> None:
    """Encoding and photo are deleted."""
    await enrollment.reject_reference(_bio(call), call.user, call.ids["template_id"], call.body.reason)


@router.delete("/api/v1/admin/biometrics/people/{user_id}", summary="删除某人的人脸信息（平台运营）", tag=ADMIN_TAG,
               body=ErasureIn, response=ErasureOut, errors=(403,))
async def erase_person(call: Call) -> ErasureOut:
    """On the person's request through customer service, or after they left their enterprise: the same as their
    own withdrawal (consent closed, templates and pending photo deleted, unused tickets revoked), recorded in
    the ledger with the operator and the reason."""
    user_id = call.ids["user_id"]
    result = await consent.withdraw_for(_bio(call), call.user, user_id, call.body.reason)
    return ErasureOut(user_id=user_id, consent_withdrawn=result.consent_withdrawn,
                      templates_deleted=result.templates_deleted, tickets_revoked=result.tickets_revoked)


# ---- multipart with several frames ------------------------------------------------------------------


async def read_frames(request: web.Request, max_bytes: int, max_frames: int = MAX_FRAMES) -> tuple[dict[str, str], list[bytes]]:
    """Text fields and the `file` parts in upload order, each size-limited (kept in memory only)."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("请以 multipart/form-data 方式上传照片")
    if request.content_length is not None and request.content_length > max_frames * max_bytes + 64 * 1024:
        raise PayloadTooLarge(f"上传内容过大：最多 {max_frames} 张，每张不超过 {max_bytes / 1024 / 1024:.0f} MB")
    fields: dict[str, str] = {}
    frames: list[bytes] = []
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                if len(frames) >= max_frames:
                    raise InvalidInput(f"照片太多：最多 {max_frames} 张", code="too_many_frames")
                frames.append(await _read_limited(part, max_bytes))
            elif part.name:
                fields[part.name] = (await _read_limited(part, 4096)).decode("utf-8", "replace").strip()
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # framing, or part headers that do not parse
        raise DomainError("上传内容格式有误，请重新上传", code="malformed_multipart") from exc
    if not frames:
        raise InvalidInput("缺少照片（表单字段 file）", code="file_required")
    return fields, frames


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"单张照片不能超过 {limit / 1024 / 1024:.0f} MB")
        chunks.append(chunk)
    return b"".join(chunks)

