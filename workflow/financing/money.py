"""Money math in integer fen and exact decimals (never float): parsing, limits, interest, fees, quotes.

Conventions (stated to every user through `CONVENTION`):
- amounts are integer fen; user input is a yuan string with at most two decimals ("1234.56");
- rates are decimal fractions a year (0.065 = 6.5 %);
- interest = principal × annual rate × days / 360, days counted from the disbursement date to the due date,
  the first day counted and the last not (计头不计尾), so days = due_date − disbursement date;
- interest and fee are each rounded half-up to the fen; the advance limit is rounded down (a limit must
  never exceed the agreed rate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Protocol

CONVENTION = "按实际天数/360 计息，计头不计尾"
DAY_BASIS = 360
FEN_PER_YUAN = 100
# 1000 亿元: far above any single receivable, far below BigInt; catches a mistyped extra digit group.
MAX_FEN = 100_000_000_000 * FEN_PER_YUAN
_YUAN = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_ONE_FEN = Decimal(1)


class AmountError(ValueError):
    """An amount or rate the user typed is malformed; the message is a complete Chinese sentence."""


def parse_yuan(text: object, label: str = "金额") -> int:
    """Parse a yuan string such as "1234.56" into fen exactly; refuse floats, >2 decimals, ≤ 0."""
    if isinstance(text, bool) or not isinstance(text, str):
        # JSON numbers arrive as floats or ints whose unit is ambiguous; only text is exact and unambiguous.
        raise AmountError(f"{label}请以字符串形式填写，单位为元，例如 \"1234.56\"")
    raw = text.strip()
    if raw.startswith("-"):
        raise AmountError(f"{label}不能为负数")
    if not _YUAN.fullmatch(raw):
        raise AmountError(f"{label}格式不正确：应为以元为单位的数字，最多两位小数，例如 1234.56")
    whole, _, decimals = raw.partition(".")
    if len(decimals) > 2:
        raise AmountError(f"{label}最多保留两位小数（精确到分）")
    fen = int(whole) * FEN_PER_YUAN + int(decimals.ljust(2, "0"))
    if fen == 0:
        raise AmountError(f"{label}必须大于 0")
    if fen > MAX_FEN:
        raise AmountError(f"{label}过大，单笔不能超过 1000 亿元")
    return fen


def format_yuan(fen: int) -> str:
    """Fen as a yuan string with exactly two decimals ("1234.56")."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{cents:02d}"


def _to_fen(value: Decimal, rounding: str) -> int:
    return int(value.quantize(_ONE_FEN, rounding=rounding))


def advance_limit(face_amount: int, advance_rate: Decimal) -> int:
    """The most that may be financed against a face amount: face × advance rate, rounded down to the fen."""
    return _to_fen(Decimal(face_amount) * advance_rate, ROUND_DOWN)


def fee(amount: int, fee_rate: Decimal) -> int:
    """Fee on the financed amount: amount × fee rate, rounded half-up to the fen."""
    return _to_fen(Decimal(amount) * fee_rate, ROUND_HALF_UP)


def interest_days(start: date, end: date) -> int:
    """Days from start to end counting the first day and not the last (计头不计尾)."""
    return (end - start).days


def interest(principal: int, annual_rate: Decimal, days: int) -> int:
    """principal × annual rate × days / 360, rounded half-up to the fen."""
    return _to_fen(Decimal(principal) * annual_rate * days / DAY_BASIS, ROUND_HALF_UP)


class QuoteTerms(Protocol):
    """Anything carrying the terms a quote needs (a Financing, or `Terms`)."""

    financing_amount: int | None
    annual_rate: Decimal | None
    fee_rate: Decimal | None
    due_date: date


@dataclass(frozen=True)
class Terms:
    """Terms given directly, e.g. to preview a quote before the contract exists."""

    financing_amount: int
    annual_rate: Decimal
    fee_rate: Decimal
    due_date: date


@dataclass(frozen=True)
class Quote:
    """What a financing costs if disbursed on a given day, all amounts in fen."""

    principal: int
    interest: int
    fee: int
    total_due: int
    days: int
    disbursed_on: date
    due_date: date
    annual_rate: Decimal
    fee_rate: Decimal
    convention: str = CONVENTION


def quote(terms: QuoteTerms, disbursed_on: date) -> Quote:
    """Principal, interest, fee and total due for a disbursement on `disbursed_on`."""
    if terms.financing_amount is None or terms.annual_rate is None or terms.fee_rate is None:
        raise AmountError("合同条款尚未确定（融资金额、年化利率、手续费率），无法试算")
    days = interest_days(disbursed_on, terms.due_date)
    if days <= 0:
        raise AmountError(f"放款日（{disbursed_on.isoformat()}）须早于到期日（{terms.due_date.isoformat()}）")
    principal = terms.financing_amount
    charged = interest(principal, terms.annual_rate, days)
    charged_fee = fee(principal, terms.fee_rate)
    return Quote(
        principal=principal, interest=charged, fee=charged_fee, total_due=principal + charged + charged_fee,
        days=days, disbursed_on=disbursed_on, due_date=terms.due_date,
        annual_rate=terms.annual_rate, fee_rate=terms.fee_rate,
    )


def rate_text(rate: Decimal) -> str:
    """A rate fraction as a percentage for people ("6.5%")."""
    percent = (rate * 100).normalize()
    return f"{percent:f}%"
