"""Request bodies of the financing actions, one pydantic model per action that takes input.

Amounts: yuan strings with at most two decimals ("1234.56"), parsed exactly into integer fen on validation
(so after validation every amount field holds fen). JSON numbers are refused for amounts: a float is inexact
and a bare integer is ambiguous between yuan and fen. Rates: decimal fractions a year ("0.065" = 6.5 %).
Every field has a Chinese title so validation messages and the OpenAPI schema name it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from workflow.financing.money import parse_yuan

_YUAN_PATTERN = r"^[0-9]+(\.[0-9]{1,2})?$"


class _YuanMarker:
    """Marks a field whose input is a yuan string to be parsed into fen."""


YUAN = _YuanMarker()
_YUAN_SCHEMA = {"type": "string", "pattern": _YUAN_PATTERN, "examples": ["1234.56"],
                "description": "金额，单位元，字符串，最多两位小数"}

Yuan = Annotated[int, YUAN, WithJsonSchema(_YUAN_SCHEMA)]
OptionalYuan = Annotated[int | None, YUAN, WithJsonSchema({"anyOf": [_YUAN_SCHEMA, {"type": "null"}]})]

AnnualRate = Annotated[Decimal, Field(gt=0, lt=1, max_digits=7, decimal_places=6)]
AdvanceRate = Annotated[Decimal, Field(gt=0, le=1, max_digits=7, decimal_places=6)]
FeeRate = Annotated[Decimal, Field(ge=0, lt=1, max_digits=7, decimal_places=6)]


class ActionBody(BaseModel):
    """Base of every body: unknown fields refused, text trimmed, yuan strings parsed into fen."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _yuan_to_fen(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields[info.field_name] if info.field_name else None
        if field is None or YUAN not in field.metadata or value is None:
            return value
        return parse_yuan(value, field.title or "金额")


class FinancingInput(ActionBody):
    """A new financing application (action submit)."""

    supplier_id: int = Field(title="资产方企业ID", gt=0)
    core_id: int = Field(title="核心企业ID", gt=0)
    invoice_no: str = Field(title="发票号码", min_length=1, max_length=64, pattern=r"^[0-9A-Za-z\-]+$")
    contract_no: str = Field(title="贸易合同编号", min_length=1, max_length=64)
    face_amount: Yuan = Field(title="票面金额（元）")
    requested_amount: Yuan = Field(title="申请融资金额（元）")
    due_date: date = Field(title="应收账款到期日")
    attachment_ids: list[int] = Field(title="附件材料ID", min_length=1, max_length=20)


class WithdrawBody(ActionBody):
    """Withdraw an application before it is confirmed."""

    reason: str = Field("", title="撤回原因", max_length=500)


class ApproveBody(ActionBody):
    """An approver agrees to confirm the receivable."""

    comment: str = Field("", title="审批意见", max_length=500)


class RejectBody(ActionBody):
    """The core enterprise refuses to confirm the receivable."""

    reason: str = Field(title="驳回原因", min_length=1, max_length=500)


class AllocateBody(ActionBody):
    """The platform offers the confirmed asset to funders."""

    funder_ids: list[int] = Field(title="资金方企业ID", min_length=1, max_length=50)


class DeclineBody(ActionBody):
    """An allocated funder passes on the asset."""

    reason: str = Field("", title="谢绝原因", max_length=500)


class IssueContractBody(ActionBody):
    """The final terms the platform writes into the contract."""

    annual_rate: AnnualRate = Field(title="最终年化利率（小数，如 0.065 表示 6.5%）")
    advance_rate: AdvanceRate = Field(title="融资比例（小数，如 0.8 表示 80%）")
    financing_amount: Yuan = Field(title="融资金额（元）")
    fee_rate: FeeRate = Field(title="手续费率（小数，如 0.005 表示 0.5%）")


class ReviseContractBody(ActionBody):
    """New terms (unchanged when left out) and why the contract is revised."""

    reason: str = Field(title="修订原因", min_length=1, max_length=500)
    annual_rate: AnnualRate | None = Field(None, title="最终年化利率（小数，如 0.065 表示 6.5%）")
    advance_rate: AdvanceRate | None = Field(None, title="融资比例（小数，如 0.8 表示 80%）")
    financing_amount: OptionalYuan = Field(None, title="融资金额（元）")
    fee_rate: FeeRate | None = Field(None, title="手续费率（小数，如 0.005 表示 0.5%）")


class SignBody(ActionBody):
    """The signer names the contract version they read, so a revised contract is never signed unseen, and hands
    in the one-time ticket from face verification bound to this contract version
    (contract_ref `financing:{id}:v{version}`, purpose sign_contract)."""

    contract_version: int = Field(title="合同版本号", ge=1)
    face_ticket: str = Field(title="人脸核验凭证（签署前人脸核验取得，5 分钟内有效，仅可使用一次）", min_length=1,
                             max_length=128)


class DisburseBody(ActionBody):
    """The funder's payment to the supplier."""

    amount: Yuan = Field(title="放款金额（元）")
    bank_reference: str = Field(title="银行流水号", min_length=1, max_length=64)
    disbursed_at: AwareDatetime = Field(title="放款时间")
    voucher_document_id: int = Field(title="放款凭证材料ID", gt=0)


class ReportRepaymentBody(ActionBody):
    """The core enterprise reports paying at maturity."""

    amount: Yuan = Field(title="还款金额（元）")
    paid_at: AwareDatetime = Field(title="还款时间")
    proof_document_id: int | None = Field(None, title="还款凭证材料ID", gt=0)


class PolicyTier(ActionBody):
    """One tier of an approval policy."""

    up_to: OptionalYuan = Field(None, title="票面金额上限（元，含）；最后一档留空表示不设上限")
    approvers: int = Field(title="所需审批人数", ge=1, le=10)


class PolicyInput(ActionBody):
    """A core enterprise's approval tiers, ascending by amount."""

    tiers: list[PolicyTier] = Field(title="审批档位", min_length=1, max_length=10)

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: list[PolicyTier]) -> list[PolicyTier]:
        if tiers[-1].up_to is not None:
            raise ValueError("最后一档的金额上限须留空（表示不设上限），以覆盖所有金额")
        bounds = [t.up_to for t in tiers[:-1]]
        if any(b is None for b in bounds):
            raise ValueError("只有最后一档的金额上限可以留空")
        if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):  # type: ignore[operator]
            raise ValueError("各档金额上限须从小到大排列且不能重复")
        return tiers


# Every action a person takes on an existing financing → its body model (None: no body). "submit" creates
# the financing (body FinancingInput, see create_financing); "mark_overdue" is the scheduler's alone.
ACTION_BODIES: dict[str, type[BaseModel] | None] = {
    "withdraw": WithdrawBody,
    "claim": None,
    "approve": ApproveBody,
    "reject": RejectBody,
    "allocate": AllocateBody,
    "subscribe": None,
    "decline": DeclineBody,
    "issue_contract": IssueContractBody,
    "revise_contract": ReviseContractBody,
    "sign": SignBody,
    "disburse": DisburseBody,
    "confirm_receipt": None,
    "report_repayment": ReportRepaymentBody,
    "confirm_repayment": None,
}
