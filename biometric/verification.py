"""Face verification use cases: selfie frames against the enrolled reference, or WeChat's own 人脸核身.

Both end the same way: a one-time signing ticket bound to (person, contract, purpose), valid 5 minutes
(biometric.tickets), and a `FaceAttempt` row whatever happened (who, when, distance, outcome; no image).
The uploaded frames live only in this request's memory. See biometric.config for the threshold numbers and
biometric.liveness for what the head-turn check does and does not prove.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tortoise.transactions import in_transaction

from biometric import liveness, quality, tickets
from biometric.consent import require_consent
from biometric.enrollment import active_template, load_encoding
from biometric.errors import FaceMismatch, LivenessFailed, LockedOut
from biometric.liveness import Challenge
from biometric.pipeline import FaceAnalysis, distance
from biometric.service import Biometrics
from biometric.wechat_face import FAILURE_VERDICTS, IDENTITY_CARD, FaceVerifyProvider, cert_hash
from echain import metrics
from models.biometrics import FaceAttempt
from models.people import Membership, User
from wechat.client import WeChatError
from workflow import ledger
from workflow.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, ServiceUnavailable
from workflow.onboarding import ID_CONTEXT

CONTRACT_REF = re.compile(r"^[0-9A-Za-z:_.\-]{1,64}$")
_BUSY_PREFIX = "echain:bio:busy:"
_WECHAT_PREFIX = "echain:bio:wechat:"


@dataclass
class Verified:
    """A passed face check: the ticket to hand to the signing call."""

    ticket: str
    expires_in: int
    attempt_id: int
    purpose: str
    contract_ref: str
    distance: float | None = None


@dataclass
class _Attempt:
    """What will be written to FaceAttempt."""

    user: User
    method: str
    purpose: str
    contract_ref: str
    frames: int = 0
    distance: float | None = None
    threshold: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def check_request(purpose: str, contract_ref: str) -> None:
    """Purpose must be a known one; contract_ref a short token such as "financing:42:v2"."""
    if purpose not in tickets.PURPOSES:
        raise InvalidInput(f"核验用途无效，可选：{'、'.join(tickets.PURPOSES)}", code="invalid_purpose")
    if not CONTRACT_REF.match(contract_ref or ""):
        raise InvalidInput("合同标识无效（1–64 个字母、数字或 :_.- 字符）", code="invalid_contract_ref")


# ---- selfie challenge ------------------------------------------------------------------------------


async def start_challenge(bio: Biometrics, user: User) -> Challenge:
    """Issue a head-turn challenge (consent, an active template and no lock-out are checked first)."""
    await require_consent(user)
    await bio.lockout.check(bio.redis, user.id)
    if await active_template(user) is None:
        raise Conflict("尚未录入人脸（或参考照片仍在审核中），请先完成人脸录入", code="face_not_enrolled")
    return await liveness.issue_challenge(bio.redis, user.id, steps=bio.config.challenge_steps,
                                          ttl=bio.config.challenge_ttl)


async def verify_selfies(bio: Biometrics, user: User, challenge_id: str, frames: list[bytes], purpose: str,
                         contract_ref: str) -> Verified:
    """Check the challenge frames against the reference; on success issue a signing ticket."""
    check_request(purpose, contract_ref)
    attempt = _Attempt(user, "selfie", purpose, contract_ref, frames=len(frames),
                       threshold=bio.config.match_threshold)
    try:
        await require_consent(user)
        await bio.lockout.check(bio.redis, user.id)
        template = await active_template(user)
        if template is None:
            raise Conflict("尚未录入人脸（或参考照片仍在审核中），请先完成人脸录入", code="face_not_enrolled")
    except DomainError as exc:  # refused before looking at the photos: recorded all the same
        await _record(attempt, "locked_out" if isinstance(exc, LockedOut) else exc.code)
        raise
    async with _one_at_a_time(bio, attempt):
        try:
            # Again inside: an attempt that checked before the previous one locked the person must not go on.
            await bio.lockout.check(bio.redis, user.id)
            challenge = await liveness.take_challenge(bio.redis, challenge_id, user.id)
        except DomainError as exc:
            await _record(attempt, "locked_out" if isinstance(exc, LockedOut) else exc.code)
            raise
        attempt.detail["sequence"] = list(challenge.sequence)
        try:
            result = await _judge(bio, attempt, challenge, frames, load_encoding(bio, template))
        except DomainError as exc:
            await _fail(bio, attempt, exc)
            raise
        return await _succeed(bio, attempt, result)


async def _judge(bio: Biometrics, attempt: _Attempt, challenge: Challenge, frames: list[bytes],
                 reference: np.ndarray) -> float:
    cfg = bio.config
    if len(frames) != challenge.frames_required:
        raise InvalidInput(f"请按动作指令上传 {challenge.frames_required} 张照片（收到 {len(frames)} 张）",
                           code="frame_count")
    for i, frame in enumerate(frames, start=1):
        if len(frame) > cfg.selfie_max_bytes:
            raise InvalidInput(f"第 {i} 张照片过大，单张不能超过 {cfg.selfie_max_bytes / 1024 / 1024:.0f} MB",
                               code="frame_too_large")
    liveness.refuse_identical(frames)  # before any dlib work: one photo uploaded N times
    analyses = await bio.pool.analyse_many(frames)
    attempt.detail["timings_ms"] = [a.timings_ms for a in analyses]
    for i, analysis in enumerate(analyses, start=1):
        quality.raise_for_status(analysis, frame=i)
    distances = [distance(a.encoding or (), reference) for a in analyses]
    attempt.distance = round(max(distances), 4)
    attempt.detail["distances"] = [round(d, 4) for d in distances]
    between = _max_between(analyses)
    attempt.detail["max_between_frames"] = round(between, 4)
    if attempt.distance > cfg.match_threshold:
        raise FaceMismatch("人脸与录入的本人照片不一致，核验未通过", details={"frames": len(frames)})
    if between > cfg.match_threshold:
        raise FaceMismatch("各张照片中不是同一个人，核验未通过", code="face_frames_differ")
    report = liveness.check_liveness(analyses, challenge.sequence, min_yaw_delta=cfg.min_yaw_delta,
                                     min_hash_distance=cfg.min_frame_hash_distance, mirrored=cfg.mirrored_selfies)
    attempt.detail.update(yaws=[round(y, 4) for y in report.yaws], yaw_deltas=report.deltas,
                          min_hash_distance=report.min_hash_distance)
    return attempt.distance


def _max_between(analyses: list[FaceAnalysis]) -> float:
    vectors = [a.encoding or () for a in analyses]
    return max((distance(a, b) for i, a in enumerate(vectors) for b in vectors[i + 1:]), default=0.0)


# ---- WeChat 人脸核身 ---------------------------------------------------------------------------------


@dataclass
class WeChatSession:
    """What the mini-program needs for wx.requestFacialVerify."""

    verify_id: str
    expires_in: int


async def start_wechat(bio: Biometrics, user: User, enterprise_id: int, purpose: str,
                       contract_ref: str) -> WeChatSession:
    """Open a WeChat face verification for the enterprise's legal representative (name + ID on file)."""
    check_request(purpose, contract_ref)
    provider = _provider(bio)
    await bio.lockout.check(bio.redis, user.id)
    member = await Membership.get_or_none(user_id=user.id, enterprise_id=enterprise_id).prefetch_related("enterprise")
    if member is None:
        raise NotFound("企业不存在", code="enterprise_not_found")
    if "legal_rep" not in member.roles:
        raise Forbidden("微信人脸核身按企业登记的法定代表人身份核验，仅法定代表人本人可以使用", code="member_role_required")
    enterprise = member.enterprise
    cert_name, cert_no = enterprise.legal_rep_name, bio.pii.decrypt(enterprise.legal_rep_id_enc, context=ID_CONTEXT)
    out_seq_no = "ec" + secrets.token_hex(14)  # 30 characters of [0-9a-f]: unique per appid
    try:
        session = await provider.start(out_seq_no, user.openid, cert_name, cert_no)
    except WeChatError as exc:
        raise ServiceUnavailable(exc.user_message, code="wechat_face_unavailable") from exc
    record = {"user": user.id, "out_seq_no": out_seq_no, "purpose": purpose, "contract_ref": contract_ref,
              "cert_hash": cert_hash(IDENTITY_CARD, cert_name, cert_no), "enterprise": enterprise.id}
    await bio.redis.set(_wechat_key(session.verify_id), json.dumps(record), ex=max(60, session.expires_in))
    return WeChatSession(session.verify_id, session.expires_in)


async def finish_wechat(bio: Biometrics, user: User, verify_id: str) -> Verified:
    """Ask WeChat for the verdict (never trust the client's); verify_ret 10000 yields a signing ticket."""
    provider = _provider(bio)
    key = _wechat_key(verify_id)
    raw = await bio.redis.get(key)
    record = json.loads(raw) if raw else None
    if record is None or record["user"] != user.id:
        raise Conflict("人脸核身会话不存在或已过期，请重新发起", code="wechat_face_session_expired")
    attempt = _Attempt(user, "wechat", record["purpose"], record["contract_ref"])
    # One verdict per person at a time, the lock-out checked inside: parallel finishes cannot exceed the limit.
    async with _one_at_a_time(bio, attempt):
        try:
            await bio.lockout.check(bio.redis, user.id)
        except DomainError:
            await _record(attempt, "locked_out")
            raise
        try:
            outcome = await provider.outcome(verify_id, record["out_seq_no"], user.openid, record["cert_hash"])
        except WeChatError as exc:
            attempt.detail["errcode"] = exc.errcode
            await _record(attempt, "provider_error")
            raise ServiceUnavailable(exc.user_message, code="wechat_face_unavailable") from exc
        attempt.detail["verify_ret"] = outcome.verify_ret
        if outcome.passed:
            await bio.redis.delete(key)
            return await _succeed(bio, attempt, None)
        refusal = FaceMismatch(outcome.message, code="wechat_face_failed", details={"verify_ret": outcome.verify_ret})
        if outcome.verify_ret in FAILURE_VERDICTS:
            await bio.redis.delete(key)
            await _fail(bio, attempt, refusal)
        else:  # cancelled, device error, or not finished yet: the session stays for another try
            await _record(attempt, "not_passed")
        raise refusal


def _provider(bio: Biometrics) -> FaceVerifyProvider:
    if bio.wechat is None:
        raise ServiceUnavailable("微信人脸核身未启用", code="wechat_face_disabled")
    return bio.wechat


def _wechat_key(verify_id: str) -> str:
    return _WECHAT_PREFIX + hashlib.sha256(verify_id.encode("utf-8", "replace")).hexdigest()


# ---- shared endings --------------------------------------------------------------------------------


async def _succeed(bio: Biometrics, attempt: _Attempt, dist: float | None) -> Verified:
    async with in_transaction() as conn:
        row = await _record(attempt, "success", conn=conn)
        await ledger.append(conn, actor=f"user:{attempt.user.id}", subject=f"user:{attempt.user.id}",
                            action="face_verified",
                            payload={"attempt": row.id, "method": attempt.method, "purpose": attempt.purpose,
                                     "contract_ref": attempt.contract_ref})
    await bio.lockout.clear(bio.redis, attempt.user.id)
    issued = await tickets.issue_ticket(bio.redis, attempt.user.id, attempt.contract_ref, attempt.purpose,
                                        ttl=bio.config.ticket_ttl)
    return Verified(issued.ticket, issued.expires_in, row.id, attempt.purpose, attempt.contract_ref, dist)


async def _fail(bio: Biometrics, attempt: _Attempt, exc: DomainError) -> None:
    """Record the failure; only verdicts (face mismatch, failed liveness) count towards the lock-out,
    not photo-quality problems or an unavailable service."""
    attempt.detail["reason"] = exc.code
    if not isinstance(exc, FaceMismatch | LivenessFailed):
        await _record(attempt, exc.code)
        return
    await _record(attempt, "mismatch" if isinstance(exc, FaceMismatch) else "liveness_failed")
    count = await bio.lockout.record_failure(bio.redis, attempt.user.id)
    left = bio.config.max_failures - count
    exc.details["failures"] = count
    if left > 0:
        exc.message += f"（再失败 {left} 次将暂停核验 {bio.config.failure_window // 60} 分钟）"
    else:
        exc.message += f"；已连续失败 {count} 次，人脸核验暂停 {bio.config.failure_window // 60} 分钟"


async def _record(attempt: _Attempt, outcome: str, conn: Any = None) -> FaceAttempt:
    metrics.face_verification(attempt.method, outcome[:32], time.monotonic() - attempt.started)  # once per attempt
    return await FaceAttempt.create(
        user_id=attempt.user.id, method=attempt.method, purpose=attempt.purpose,
        contract_ref=attempt.contract_ref, outcome=outcome[:32], distance=attempt.distance,
        threshold=attempt.threshold, frames=attempt.frames, detail=attempt.detail, using_db=conn,
    )


class _one_at_a_time:  # noqa: N801 - used as `async with _one_at_a_time(...)`
    """One verification per person at a time, so the lock-out cannot be raced with parallel uploads."""

    def __init__(self, bio: Biometrics, attempt: _Attempt) -> None:
        self.attempt = attempt
        self.redis, self.token = bio.redis, secrets.token_hex(8)
        self.key = f"{_BUSY_PREFIX}{attempt.user.id}"

    async def __aenter__(self) -> None:
        if not await self.redis.set(self.key, self.token, nx=True, ex=60):
            await _record(self.attempt, "verification_in_progress")
            raise Conflict("上一次人脸核验尚未结束，请稍候", code="verification_in_progress")

    async def __aexit__(self, *exc: object) -> None:
        if (await self.redis.get(self.key) or b"").decode() == self.token:
            await self.redis.delete(self.key)
