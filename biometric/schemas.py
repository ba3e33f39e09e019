"""Request and response models of the face endpoints (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from biometric import tickets
from biometric.liveness import Challenge
from models.biometrics import BiometricConsent, FaceTemplate

Purpose = Literal[tuple(tickets.PURPOSES)]  # type: ignore[valid-type]


class Strict(BaseModel):
    """Request bodies reject unknown fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConsentIn(Strict):
    """Consent to exactly the text version the person was shown."""

    version: str = Field(title="同意书版本（取自 GET /api/v1/biometrics/me 的 consent_version）", min_length=1,
                         max_length=32)


class ConsentOut(BaseModel):
    """A recorded consent."""

    version: str
    granted_at: datetime
    text_sha256: str

    @classmethod
    def of(cls, consent: BiometricConsent) -> ConsentOut:
        """From the model."""
        return cls(version=consent.version, granted_at=consent.granted_at, text_sha256=consent.text_sha256)


class TemplateOut(BaseModel):
    """A reference face (never the encoding itself)."""

    id: int
    source: Literal["id_card", "reference_photo"]
    approved: bool
    document_id: int | None
    created_at: datetime
    approved_at: datetime | None

    @classmethod
    def of(cls, t: FaceTemplate) -> TemplateOut:
        """From the model."""
        return cls(id=t.id, source=t.source, approved=t.approved, document_id=t.document_id,  # type: ignore[arg-type]
                   created_at=t.created_at, approved_at=t.approved_at)


class StatusOut(BaseModel):
    """The caller's face-check standing."""

    consent_version: str = Field(description="当前同意书版本")
    consent_text: str = Field(description="当前同意书全文，须单独展示并由用户主动同意")
    consent: ConsentOut | None = Field(description="有效的同意记录；未同意或已撤回时为 null")
    template: TemplateOut | None = Field(description="正在使用的人脸参考（已审核）")
    pending_reference: TemplateOut | None = Field(description="待平台审核的参考照片")
    locked_seconds: int = Field(description="人脸核验暂停的剩余秒数（0 表示未暂停）")
    recent_failures: int = Field(description="最近一小时内的核验失败次数")


class WithdrawalOut(BaseModel):
    """What withdrawing consent removed."""

    consent_withdrawn: bool
    templates_deleted: int
    tickets_revoked: int


class ErasureIn(Strict):
    """Why an operator deletes a person's face data (kept in the ledger)."""

    reason: str = Field(title="删除原因（如：用户通过客服申请删除；已离职）", min_length=1, max_length=200)


class ErasureOut(WithdrawalOut):
    """What an operator's deletion removed; all zero when nothing was left (repeating it is not an error)."""

    user_id: int


class EnrollFromDocumentIn(Strict):
    """Enroll from the ID-card portrait an enterprise uploaded."""

    document_id: int = Field(title="身份证人像面材料 ID", gt=0)


class ChallengeOut(BaseModel):
    """A head-turn challenge: take frames_required photos in this order within expires_in seconds."""

    challenge_id: str
    sequence: list[Literal["left", "right"]]
    instructions: str
    frames_required: int
    expires_in: int

    @classmethod
    def of(cls, c: Challenge) -> ChallengeOut:
        """From the challenge."""
        return cls(challenge_id=c.id, sequence=list(c.sequence), instructions=c.instructions,  # type: ignore[arg-type]
                   frames_required=c.frames_required, expires_in=c.expires_in)


class VerificationOut(BaseModel):
    """A passed face check: send `ticket` with the signing request within `expires_in` seconds."""

    ticket: str = Field(description="一次性签署凭证，绑定本人、合同与用途，5 分钟内有效，只能使用一次")
    expires_in: int
    purpose: str
    contract_ref: str


class WeChatSessionIn(Strict):
    """Start WeChat's face verification as an enterprise's legal representative."""

    enterprise_id: int = Field(title="以哪家企业的法定代表人身份核验", gt=0)
    purpose: Purpose = Field(title="核验用途")  # type: ignore[valid-type]
    contract_ref: str = Field(title="合同标识，如 financing:42:v2", min_length=1, max_length=64)


class WeChatSessionOut(BaseModel):
    """Pass verify_id to wx.requestFacialVerify."""

    verify_id: str
    expires_in: int


class WeChatResultIn(Strict):
    """Ask for the server-side verdict after wx.requestFacialVerify returned."""

    verify_id: str = Field(title="人脸核身会话 verify_id", min_length=1, max_length=256)


class PendingReferenceOut(BaseModel):
    """A reference photo waiting for an operator."""

    template: TemplateOut
    user_id: int
    display_name: str
    photo_available: bool = Field(description="照片仍在审核保存期内（72 小时）")


class PendingReferenceList(BaseModel):
    """Oldest first."""

    items: list[PendingReferenceOut]


class RejectIn(Strict):
    """Why a reference photo is refused (shown to the person)."""

    reason: str = Field(title="驳回原因", min_length=1, max_length=200)
