"""Money for contracts: Chinese capital amounts (大写金额), yuan/percent display, interest.

Capital amounts follow 《支付结算办法》附件《正确填写票据和结算凭证的基本规定》:
- 壹贰叁肆伍陆柒捌玖 with 拾佰仟万亿, and 壹拾 (never a bare 拾) for tens;
- zeros inside the number are written once as 零 (1,000,001 → 壹佰万零壹元; 107,000 → 壹拾万柒仟元);
- an amount in whole yuan ends in 元整; an amount ending in 角 ends there (壹佰万零壹元壹角);
- a zero 角 before a non-zero 分 is written 零 (壹元零伍分); below one yuan only 角/分 are written (伍分);
- zero is 零元整.
Where the rules allow either form, the shorter one is used consistently (壹仟陆佰捌拾元叁角贰分, without 零
before 叁角).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_IN_GROUP = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")
MAX_FEN = 10 ** 16 * 100 - 1  # below 一亿亿元 (10^16 yuan), the last group above
DAY_BASIS = 360
INTEREST_CONVENTION = "按实际天数/360 计息，计头不计尾"


def _check_fen(fen: int) -> None:
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("amounts are integer fen")
    if fen < 0:
        raise ValueError("amount must not be negative")
    if fen > MAX_FEN:
        raise ValueError("amount too large")


def _group_text(value: int) -> str:
    """0 < value < 10000 as capital digits, inner zeros collapsed to one 零, trailing zeros dropped."""
    out: list[str] = []
    zero_pending = False
    for position in range(3, -1, -1):
        digit = value // 10 ** position % 10
        if digit == 0:
            zero_pending = bool(out)
            continue
        if zero_pending:
            out.append("零")
            zero_pending = False
        out.append(DIGITS[digit] + _IN_GROUP[position])
    return "".join(out)


def _yuan_text(yuan: int) -> str:
    groups: list[int] = []
    while yuan:
        yuan, rest = divmod(yuan, 10000)
        groups.append(rest)
    out: list[str] = []
    zero_pending = False
    for index in range(len(groups) - 1, -1, -1):
        value = groups[index]
        if value == 0:
            zero_pending = bool(out)
            continue
        if out and (zero_pending or value < 1000):
            out.append("零")
        zero_pending = False
        out.append(_group_text(value) + _GROUPS[index])
    return "".join(out)


def amount_in_chinese_capital(fen: int) -> str:
    """Integer fen as the capital amount written on contracts and vouchers (without the 人民币 prefix)."""
    _check_fen(fen)
    yuan, cents = divmod(fen, 100)
    jiao, fen_digit = divmod(cents, 10)
    if fen == 0:
        return "零元整"
    text = _yuan_text(yuan) + "元" if yuan else ""
    if jiao == 0 and fen_digit == 0:
        return text + "整"
    if jiao:
        text += DIGITS[jiao] + "角"
    elif yuan:
        text += "零"
    if fen_digit:
        text += DIGITS[fen_digit] + "分"
    return text


def format_yuan(fen: int) -> str:
    """Fen as yuan with thousands separators and two decimals: 120000000 → "1,200,000.00"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("amounts are integer fen")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def format_percent(rate: Decimal) -> str:
    """A rate fraction as a percentage with at least two decimals: Decimal("0.065") → "6.50%"."""
    percent = rate * 100
    text = f"{percent.normalize():f}"
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}%"


def interest_days(start: date, end: date) -> int:
    """Days counting the first and not the last (计头不计尾)."""
    return (end - start).days


def interest(principal: int, annual_rate: Decimal, days: int) -> int:
    """principal × annual rate × days / 360, rounded half-up to the fen."""
    value = Decimal(principal) * annual_rate * days / DAY_BASIS
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
