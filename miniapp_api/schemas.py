"""Response and request models of the mini-program API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.documents import Document
from models.enterprises import Enterprise
from models.people import Membership, User
from workflow.onboarding import ONBOARDING

MemberRole = Literal["admin", "operator", "approver", "legal_rep", "agent"]


class Strict(BaseModel):
    """Request bodies reject unknown fields, so typos are reported instead of ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginIn(Strict):
    """A wx.login code."""

    code: str = Field(title="登录凭证 code", min_length=1, max_length=128)


class UserOut(BaseModel):
    """A person as the API shows them."""

    id: int
    display_name: str
    is_platform_operator: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        """From the model."""
        return cls(id=user.id, display_name=user.display_name, is_platform_operator=user.is_platform_operator)


class LoginOut(BaseModel):
    """A bearer token for the Authorization header."""

    token: str
    user: UserOut
    created: bool = Field(description="首次登录时为 true")


class EnterpriseOut(BaseModel):
    """An enterprise; the ID number only ever appears masked."""

    id: int
    name: str
    uscc: str
    legal_rep_name: str
    legal_rep_id_masked: str
    contact_name: str
    contact_phone: str
    business_roles: list[str]
    status: str
    status_label: str
    kyc_outcome: str
    info_confirmed: bool
    review_reason: str
    submitted_at: datetime | None
    reviewed_at: datetime | None
    version: int

    @classmethod
    def of(cls, e: Enterprise) -> EnterpriseOut:
        """From the model."""
        return cls(
            id=e.id, name=e.name, uscc=e.uscc, legal_rep_name=e.legal_rep_name, legal_rep_id_masked=e.legal_rep_id_masked,
            contact_name=e.contact_name, contact_phone=e.contact_phone, business_roles=e.business_roles,
            status=e.status, status_label=ONBOARDING.state_labels[e.status], kyc_outcome=e.kyc_outcome,
            info_confirmed=e.info_confirmed_at is not None, review_reason=e.review_reason,
            submitted_at=e.submitted_at, reviewed_at=e.reviewed_at, version=e.version,
        )


class EnterpriseDetail(EnterpriseOut):
    """An enterprise with what still blocks its submission."""

    missing_for_review: list[str]


class EnterpriseList(BaseModel):
    """Several enterprises."""

    items: list[EnterpriseOut]


class ReviewIn(Strict):
    """A platform operator's decision."""

    decision: Literal["approve", "reject"] = Field(title="审核结论")
    reason: str = Field("", title="驳回原因", max_length=500)


class DocumentOut(BaseModel):
    """Metadata of an uploaded document."""

    id: int
    enterprise_id: int
    kind: str
    content_type: str
    size: int
    filename: str
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        """From the model."""
        return cls(id=d.id, enterprise_id=d.enterprise_id, kind=d.kind, content_type=d.content_type, size=d.size,
                   filename=d.filename, sha256=d.sha256, created_at=d.created_at)


class DocumentList(BaseModel):
    """An enterprise's documents."""

    items: list[DocumentOut]


class InvitationIn(Strict):
    """Member roles the invited person will get."""

    roles: list[MemberRole] = Field(title="成员角色", min_length=1, max_length=5)


class InvitationOut(BaseModel):
    """The one-time code (shown once) and when it expires."""

    code: str
    roles: list[str]
    expires_at: datetime


class AcceptInvitationIn(Strict):
    """A one-time invitation code."""

    code: str = Field(title="邀请码", min_length=4, max_length=64)


class MemberRolesIn(Strict):
    """New member roles for a member."""

    roles: list[MemberRole] = Field(title="成员角色", min_length=1, max_length=5)


class MemberOut(BaseModel):
    """A member of an enterprise."""

    user_id: int
    display_name: str
    roles: list[str]

    @classmethod
    def of(cls, m: Membership) -> MemberOut:
        """From the model (user prefetched)."""
        return cls(user_id=m.user_id, display_name=m.user.display_name, roles=m.roles)


class MemberList(BaseModel):
    """An enterprise's members."""

    items: list[MemberOut]


class MyEnterprise(BaseModel):
    """One of the caller's enterprises, with their roles there and dashboard counts."""

    enterprise: EnterpriseOut
    member_roles: list[str]
    counts: dict[str, int]
    role_counts: dict[str, dict[str, int]] = Field(
        description="按业务角色：active 为进行中的融资笔数，todos 为待我处理的笔数")


class PlatformCounts(BaseModel):
    """What a platform operator's dashboard shows."""

    pending_reviews: int


class MeOut(BaseModel):
    """The caller, every enterprise and role they hold, and the counts a dashboard needs."""

    user: UserOut
    enterprises: list[MyEnterprise]
    platform: PlatformCounts | None


class HealthOut(BaseModel):
    """State of each backing service."""

    status: Literal["ok", "degraded"]
    database: str
    redis: str
