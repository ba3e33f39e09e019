"""Enterprise onboarding (seed step 1): register, verify four elements, confirm, choose roles, review."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.documents import Document
from models.enterprises import Enterprise, FourElementCheck
from models.people import Membership, User
from workflow import identifiers, ledger
from workflow.access import enterprise_for_member, load_enterprise, require_operator
from workflow.deps import Deps
from workflow.errors import Conflict, InvalidInput
from workflow.kyc import FourElementRequest, FourElementResult
from workflow.machine import Machine, Transition

ONBOARDING = Machine(
    name="onboarding",
    state_labels={"draft": "待提交", "pending_review": "待平台审核", "approved": "审核通过", "rejected": "审核驳回"},
    transitions=[
        Transition("submit", "提交审核", ("draft", "rejected"), "pending_review", "enterprise", ("admin",)),
        Transition("approve", "审核通过", ("pending_review",), "approved", "platform"),
        Transition("reject", "审核驳回", ("pending_review",), "rejected", "platform"),
    ],
)

# Documents the platform needs before it can review an enterprise.
REQUIRED_DOCUMENTS = {"business_license": "营业执照", "id_card_front": "法定代表人身份证人像面", "id_card_back": "法定代表人身份证国徽面"}
EDITABLE_STATES = ("draft", "rejected")
ID_CONTEXT = "enterprise.legal_rep_id"

BusinessRole = Literal["core", "supplier", "funder"]


class EnterpriseInput(BaseModel):
    """Registration data: the four elements plus a contact."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(title="企业名称", min_length=2, max_length=100)
    uscc: str = Field(title="统一社会信用代码")
    legal_rep_name: str = Field(title="法定代表人姓名")
    legal_rep_id: str = Field(title="法定代表人身份证号码")
    contact_name: str = Field(title="联系人姓名")
    contact_phone: str = Field(title="联系人手机号")
    business_roles: list[BusinessRole] = Field(default_factory=list, title="业务角色", max_length=3)

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, v: str) -> str:
        return identifiers.validate_uscc(v, field="uscc")

    @field_validator("legal_rep_id")
    @classmethod
    def _legal_rep_id(cls, v: str) -> str:
        return identifiers.validate_resident_id(v, field="legal_rep_id")

    @field_validator("legal_rep_name", "contact_name")
    @classmethod
    def _person(cls, v: str) -> str:
        return identifiers.validate_person_name(v)

    @field_validator("contact_phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        return identifiers.validate_mobile(v)


class EnterpriseUpdate(EnterpriseInput):
    """Changes to a draft or rejected enterprise; every field optional."""

    name: str | None = Field(None, title="企业名称", min_length=2, max_length=100)  # type: ignore[assignment]
    uscc: str | None = Field(None, title="统一社会信用代码")  # type: ignore[assignment]
    legal_rep_name: str | None = Field(None, title="法定代表人姓名")  # type: ignore[assignment]
    legal_rep_id: str | None = Field(None, title="法定代表人身份证号码")  # type: ignore[assignment]
    contact_name: str | None = Field(None, title="联系人姓名")  # type: ignore[assignment]
    contact_phone: str | None = Field(None, title="联系人手机号")  # type: ignore[assignment]
    business_roles: list[BusinessRole] | None = Field(None, title="业务角色", max_length=3)  # type: ignore[assignment]


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(user: User) -> str:
    return f"user:{user.id}"


def _subject(enterprise_id: int) -> str:
    return f"enterprise:{enterprise_id}"


async def _four_elements(deps: Deps, name: str, uscc: str, rep_name: str, rep_id: str) -> FourElementResult:
    # Called outside any transaction: a slow gateway must not hold database locks.
    request = FourElementRequest(name, uscc, rep_name, rep_id, uuid.uuid4().hex)
    return await deps.kyc.verify(request)


async def register(deps: Deps, actor: User, data: EnterpriseInput) -> Enterprise:
    """Create an enterprise in draft, run the four-element check, make the creator its admin."""
    if await Enterprise.exists(uscc=data.uscc):
        raise Conflict("该统一社会信用代码已注册，请联系该企业管理员邀请您加入", code="uscc_taken")
    result = await _four_elements(deps, data.name, data.uscc, data.legal_rep_name, data.legal_rep_id)
    roles = set(data.business_roles)
    try:
        async with in_transaction() as conn:
            enterprise = await Enterprise.create(
                name=data.name,
                uscc=data.uscc,
                legal_rep_name=data.legal_rep_name,
                legal_rep_id_enc=deps.pii.encrypt(data.legal_rep_id, context=ID_CONTEXT),
                legal_rep_id_hash=deps.pii.lookup_hash(data.legal_rep_id, context=ID_CONTEXT),
                legal_rep_id_masked=identifiers.mask_resident_id(data.legal_rep_id),
                contact_name=data.contact_name,
                contact_phone=data.contact_phone,
                is_core="core" in roles,
                is_supplier="supplier" in roles,
                is_funder="funder" in roles,
                kyc_outcome=result.outcome,
                created_by=actor,
                using_db=conn,
            )
            await Membership.create(user=actor, enterprise=enterprise, roles=["admin"], using_db=conn)
            await _record_check(conn, enterprise, result)
            await ledger.append(
                conn, actor=_actor(actor), subject=_subject(enterprise.id), action="register",
                payload={"name": data.name, "uscc": data.uscc, "roles": sorted(roles), "kyc": result.outcome},
            )
    except IntegrityError as exc:  # a concurrent registration of the same code won the race
        raise Conflict("该统一社会信用代码已注册，请联系该企业管理员邀请您加入", code="uscc_taken") from exc
    return enterprise


async def _record_check(conn, enterprise: Enterprise, result: FourElementResult) -> None:  # noqa: ANN001
    await FourElementCheck.create(
        enterprise=enterprise, provider=result.provider, reference=result.reference,
        outcome=result.outcome, detail=result.detail[:500], checked_at=result.checked_at, using_db=conn,
    )
    await ledger.append(
        conn, actor="system", subject=_subject(enterprise.id), action="four_element_check",
        payload={"provider": result.provider, "reference": result.reference, "outcome": result.outcome},
    )


async def update(deps: Deps, actor: User, enterprise_id: int, changes: EnterpriseUpdate) -> Enterprise:
    """Edit a draft or rejected enterprise; changing any of the four elements re-runs the check."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ("admin",))
    _require_editable(enterprise)
    fields = changes.model_dump(exclude_none=True)
    if not fields:
        raise InvalidInput("没有需要修改的内容", code="nothing_to_change")
    if "uscc" in fields and fields["uscc"] != enterprise.uscc and await Enterprise.exists(uscc=fields["uscc"]):
        raise Conflict("该统一社会信用代码已注册", code="uscc_taken")
    elements_changed = bool({"name", "uscc", "legal_rep_name", "legal_rep_id"} & fields.keys())
    current_id = deps.pii.decrypt(enterprise.legal_rep_id_enc, context=ID_CONTEXT)
    result = None
    if elements_changed:
        result = await _four_elements(
            deps, fields.get("name", enterprise.name), fields.get("uscc", enterprise.uscc),
            fields.get("legal_rep_name", enterprise.legal_rep_name), fields.get("legal_rep_id", current_id),
        )
    values = _column_values(deps, fields)
    if result is not None:
        values["kyc_outcome"] = result.outcome
    values["info_confirmed_at"] = None  # what was confirmed has changed: confirm again
    values["version"] = enterprise.version + 1
    async with in_transaction() as conn:
        moved = await Enterprise.filter(id=enterprise.id, version=enterprise.version, status__in=EDITABLE_STATES).using_db(conn).update(**values)
        if moved != 1:
            raise Conflict("企业信息已被他人修改或状态已变化，请刷新后重试", code="stale_enterprise")
        if result is not None:
            await _record_check(conn, enterprise, result)
        await ledger.append(conn, actor=_actor(actor), subject=_subject(enterprise.id), action="update",
                            payload={"fields": sorted(fields)})
    return await load_enterprise(enterprise.id)


def _column_values(deps: Deps, fields: dict) -> dict:
    values = {k: v for k, v in fields.items() if k in ("name", "uscc", "legal_rep_name", "contact_name", "contact_phone")}
    if "legal_rep_id" in fields:
        rep_id = fields["legal_rep_id"]
        values["legal_rep_id_enc"] = deps.pii.encrypt(rep_id, context=ID_CONTEXT)
        values["legal_rep_id_hash"] = deps.pii.lookup_hash(rep_id, context=ID_CONTEXT)
        values["legal_rep_id_masked"] = identifiers.mask_resident_id(rep_id)
    if "business_roles" in fields:
        roles = set(fields["business_roles"])
        values.update(is_core="core" in roles, is_supplier="supplier" in roles, is_funder="funder" in roles)
    return values


def _require_editable(enterprise: Enterprise) -> None:
    if enterprise.status not in EDITABLE_STATES:
        raise Conflict(
            f"当前状态为“{ONBOARDING.state_labels[enterprise.status]}”，企业信息不能修改",
            code="invalid_state", details={"state": enterprise.status},
        )


async def reverify(deps: Deps, actor: User, enterprise_id: int) -> Enterprise:
    """Run the four-element check again (e.g. after a gateway error)."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ("admin",))
    _require_editable(enterprise)
    rep_id = deps.pii.decrypt(enterprise.legal_rep_id_enc, context=ID_CONTEXT)
    result = await _four_elements(deps, enterprise.name, enterprise.uscc, enterprise.legal_rep_name, rep_id)
    async with in_transaction() as conn:
        await Enterprise.filter(id=enterprise.id).using_db(conn).update(kyc_outcome=result.outcome)
        await _record_check(conn, enterprise, result)
    return await load_enterprise(enterprise.id)


async def confirm_info(actor: User, enterprise_id: int) -> Enterprise:
    """The admin confirms the registered information is correct (first entry)."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ("admin",))
    _require_editable(enterprise)
    async with in_transaction() as conn:
        moved = await Enterprise.filter(id=enterprise.id, version=enterprise.version).using_db(conn).update(
            info_confirmed_at=_now(), version=enterprise.version + 1
        )
        if moved != 1:
            raise Conflict("企业信息已被他人修改，请刷新后重新确认", code="stale_enterprise")
        await ledger.append(conn, actor=_actor(actor), subject=_subject(enterprise.id), action="confirm_info",
                            payload={"version": enterprise.version})
    return await load_enterprise(enterprise.id)


async def missing_for_review(enterprise: Enterprise) -> list[str]:
    """What still stops submission, each as a Chinese sentence (empty when ready)."""
    problems = []
    if enterprise.kyc_outcome != "match":
        problems.append("四要素核验未通过，请核对企业名称、统一社会信用代码、法定代表人姓名及身份证号码")
    if not enterprise.business_roles:
        problems.append("请至少选择一个业务角色（核心企业、资产方、资金方）")
    if enterprise.info_confirmed_at is None:
        problems.append("请先确认企业信息")
    kinds = set(await Document.filter(enterprise_id=enterprise.id).values_list("kind", flat=True))
    problems += [f"请上传{label}" for kind, label in REQUIRED_DOCUMENTS.items() if kind not in kinds]
    return problems


async def submit(actor: User, enterprise_id: int) -> Enterprise:
    """Send a complete enterprise to the platform for review."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ONBOARDING.transition("submit").member_roles)
    return await _transition(actor, enterprise, "submit", {}, submitted_at=_now())


async def review(actor: User, enterprise_id: int, decision: Literal["approve", "reject"], reason: str = "") -> Enterprise:
    """A platform operator approves or rejects (a rejection needs a reason)."""
    require_operator(actor)
    enterprise = await load_enterprise(enterprise_id)
    if decision == "reject" and not reason.strip():
        raise InvalidInput("驳回时必须填写原因，以便企业修改后重新提交", code="reason_required")
    return await _transition(
        actor, enterprise, decision, {"reason": reason.strip()},
        reviewed_at=_now(), reviewed_by_id=actor.id, review_reason=reason.strip(),
    )


async def _transition(actor: User, enterprise: Enterprise, action: str, payload: dict, **values: object) -> Enterprise:
    t = ONBOARDING.check(action, enterprise.status)
    if action == "submit":
        problems = await missing_for_review(enterprise)
        if problems:
            raise Conflict("；".join(problems), code="incomplete_enterprise", details={"missing": problems})
    async with in_transaction() as conn:
        moved = await Enterprise.filter(id=enterprise.id, status=enterprise.status, version=enterprise.version).using_db(
            conn
        ).update(status=t.target, version=enterprise.version + 1, **values)
        if moved != 1:
            raise Conflict("企业状态已变化，请刷新后重试", code="stale_enterprise")
        await ledger.append(conn, actor=_actor(actor), subject=_subject(enterprise.id), action=action,
                            payload={"from": enterprise.status, "to": t.target, **payload})
    return await load_enterprise(enterprise.id)


async def pending_reviews(actor: User) -> list[Enterprise]:
    """Enterprises awaiting the platform, oldest first."""
    require_operator(actor)
    return await Enterprise.filter(status="pending_review").order_by("submitted_at", "id")
