"""The questions of 发起融资 that fill one FinancingInput field each, checked by that model's own rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from echain.validation import describe
from workflow.financing.bodies import FinancingInput


def title(name: str) -> str:
    """The field's Chinese title (as validation messages name it)."""
    return FinancingInput.model_fields[name].title or name


def _plain(text: str) -> str:
    return text.strip()


_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")


def amount_text(text: str) -> str:
    """Typing conveniences only ("500,000.00 元"); the amount rules stay in money.parse_yuan."""
    raw = text.strip().removesuffix("元").strip()
    return raw.replace(",", "") if _THOUSANDS.match(raw) else raw


_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def date_text(text: str) -> str:
    """2026/6/30, 2026.6.30, 2026年6月30日 and 20260630 as ISO; anything else goes to validation as typed."""
    raw = text.strip()
    if re.fullmatch(r"\d{8}", raw):
        return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    match = _DATE.match(raw)
    return f"{match[1]}-{int(match[2]):02d}-{int(match[3]):02d}" if match else raw


@dataclass(frozen=True)
class FieldStep:
    """A question whose answer is one FinancingInput field."""

    name: str
    prompt: str
    normalise: Callable[[str], str] = _plain

    @property
    def state(self) -> str:
        """The conversation state while this question is open."""
        return f"fin.{self.name}"


FIELD_STEPS = (
    FieldStep("invoice_no", "请输入发票号码（字母、数字或短横线，例如 INV-20260101）："),
    FieldStep("contract_no", "请输入贸易合同编号："),
    FieldStep("face_amount", "请输入票面金额（单位：元，最多两位小数，例如 500000.00）：", amount_text),
    FieldStep("due_date", "请输入应收账款到期日（例如 2026-06-30）：", date_text),
    FieldStep("requested_amount", "请输入申请融资金额（单位：元，最多两位小数）：", amount_text),
)


def validate_field(name: str, text: str) -> tuple[Any, str | None]:
    """(value, None) when FinancingInput accepts `text` for field `name`, else (None, Chinese reason)."""
    holder = FinancingInput.model_construct()
    try:
        FinancingInput.__pydantic_validator__.validate_assignment(holder, name, text)
    except ValidationError as exc:
        return None, describe(exc, FinancingInput)[0]
    return getattr(holder, name), None


def sentence(text: str) -> str:
    """A message ending with a full stop (domain messages usually come without one)."""
    return text if text.endswith(("。", "！", "？")) else text + "。"
