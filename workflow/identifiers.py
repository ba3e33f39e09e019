"""Validation of Chinese identifiers: USCC, resident ID number, person name, mobile number.

Every validator normalises its input, returns the normalised value, and raises `IdentifierError`
with a Chinese message that tells the user exactly which character or part to fix.

Check characters: on a checksum failure we say *that* the check failed, never *what* the check
character should be. The check character exists to catch a typo anywhere in the code; telling the user
the "right" last character invites them to overwrite it and turn a typo into a well-formed wrong code.
The expected value is no secret (anyone can compute it from the first 17 characters), so this is about
keeping typo detection working, not about confidentiality.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone

__all__ = [
    "IdentifierError",
    "USCC_ALPHABET",
    "make_resident_id",
    "make_uscc",
    "mask_resident_id",
    "validate_mobile",
    "validate_person_name",
    "validate_resident_id",
    "validate_uscc",
]


class IdentifierError(ValueError):
    """An identifier failed validation; `.field` names the input, `.message` is Chinese for the user."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --------------------------------------------------------------------------------------------------
# Unified social credit code (统一社会信用代码), GB 32100-2015
# --------------------------------------------------------------------------------------------------

# GB 32100-2015 §4.1: digits and upper-case letters except I, O, Z, S, V (too easily confused with 1, 0, 2, 5, U).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
# GB 32100-2015 §5 (ISO 7064 MOD 31-3 style): weight of position i (0-based) is 3^i mod 31.
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_USCC_EXCLUDED_LETTERS = "IOZSV"

# Position 1 (登记管理部门代码) → allowed position 2 (机构类别代码). GB 32100-2015 itself lists 1, 5, 9 and Y;
# the other authorities were assigned later by the national code administration and appear on real
# certificates (e.g. 31… law firms, 81… trade unions, N2… village collectives), so rejecting them would
# block genuine organisations.
_USCC_AUTHORITIES: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"}),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": (
        "司法行政",
        {
            "1": "律师执业机构",
            "2": "公证处",
            "3": "基层法律服务所",
            "4": "司法鉴定机构",
            "5": "仲裁委员会",
            "9": "其他",
        },
    ),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": (
        "旅游",
        {"1": "外国旅游部门常驻代表机构", "2": "港澳台地区旅游部门常驻内地（大陆）代表机构", "9": "其他"},
    ),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": ("农业", {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"}),
    "Y": ("其他", {"1": "其他"}),
}

_USCC_LABEL = "统一社会信用代码"


def validate_uscc(code: str, *, field: str = "uscc") -> str:
    """Validate a unified social credit code (GB 32100-2015) and return it normalised."""
    value = _normalise(code, field, _USCC_LABEL)
    if len(value) != 18:
        raise IdentifierError(field, f"{_USCC_LABEL}应为18位，当前为{len(value)}位")
    _check_uscc_alphabet(value, field)
    _check_uscc_structure(value, field)
    if _uscc_check_char(value[:17]) != value[17]:
        raise IdentifierError(field, f"{_USCC_LABEL}校验位错误，请对照营业执照逐位核对，可能有字符输入错误")
    return value


def make_uscc(prefix17: str) -> str:
    """Append the GB 32100-2015 check character to 17 code characters (for tests and demo data)."""
    prefix = prefix17.strip().upper()
    if len(prefix) != 17 or any(ch not in _USCC_VALUE for ch in prefix):
        raise ValueError(f"make_uscc needs 17 characters from {USCC_ALPHABET!r}, got {prefix17!r}")
    return prefix + _uscc_check_char(prefix)


def _uscc_check_char(prefix17: str) -> str:
    """GB 32100-2015 §5: C18 = 31 - (Σ Ci·Wi mod 31), where a result of 31 becomes 0."""
    total = sum(_USCC_VALUE[ch] * weight for ch, weight in zip(prefix17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def _check_uscc_alphabet(value: str, field: str) -> None:
    for position, ch in enumerate(value, start=1):
        if ch in _USCC_VALUE:
            continue
        message = f"{_USCC_LABEL}第{position}位含有不允许的字符“{_show(ch)}”"
        if ch in _USCC_EXCLUDED_LETTERS:
            message += "（统一社会信用代码不使用字母I、O、Z、S、V，请核对是否为数字）"
        raise IdentifierError(field, message)


def _check_uscc_structure(value: str, field: str) -> None:
    authority = _USCC_AUTHORITIES.get(value[0])
    if authority is None:
        allowed = "、".join(_USCC_AUTHORITIES)
        raise IdentifierError(
            field, f"{_USCC_LABEL}第1位（登记管理部门代码）“{value[0]}”无效，应为{allowed}之一"
        )
    authority_name, types = authority
    if value[1] not in types:
        allowed = "、".join(types)
        raise IdentifierError(
            field,
            f"{_USCC_LABEL}第2位（机构类别代码）“{value[1]}”无效：登记管理部门为{value[0]}（{authority_name}）时，"
            f"应为{allowed}之一",
        )
    # Positions 3–8: the registering authority's administrative division code (GB/T 2260), all digits.
    for position in range(3, 9):
        if not value[position - 1].isdigit():
            raise IdentifierError(
                field,
                f"{_USCC_LABEL}第3–8位（登记管理机关行政区划码）应为数字，第{position}位为“{value[position - 1]}”",
            )


# --------------------------------------------------------------------------------------------------
# Resident identity card number (公民身份号码), GB 11643-1999
# --------------------------------------------------------------------------------------------------

# GB 11643-1999 §7.2 (ISO 7064 MOD 11-2): weight of position i is 2^(17-i) mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
# First two digits: province-level division (GB/T 2260). 71 is Taiwan's GB/T 2260 code; 81, 82, 83 are the
# address codes of residence-permit numbers for Hong Kong, Macao and Taiwan residents
# (《港澳台居民居住证申领发放办法》, 2018), which follow the same 18-digit format and checksum.
_PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)
_EARLIEST_BIRTH = date(1900, 1, 1)
# China has used a single UTC+8 offset without DST since 1991; "today" for a birth date is the local date.
_CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
_ID_LABEL = "身份证号码"


def validate_resident_id(number: str, *, field: str = "resident_id", today: date | None = None) -> str:
    """Validate an 18-digit resident ID number (GB 11643-1999) and return it with an upper-case X."""
    value = _normalise(number, field, _ID_LABEL)
    _check_id_format(value, field)
    if value[:2] not in _PROVINCE_CODES:
        raise IdentifierError(field, f"{_ID_LABEL}前2位（省级行政区划代码）“{value[:2]}”无效，请核对号码开头")
    _check_birth_date(value[6:14], field, today or datetime.now(_CHINA_TZ).date())
    if _resident_id_check_char(value[:17]) != value[17]:
        raise IdentifierError(field, f"{_ID_LABEL}校验位错误，请对照身份证逐位核对，可能有数字输入错误")
    return value


def make_resident_id(prefix17: str) -> str:
    """Append the GB 11643-1999 check character to 17 digits (for tests and demo data)."""
    prefix = prefix17.strip()
    if len(prefix) != 17 or not prefix.isascii() or not prefix.isdigit():
        raise ValueError(f"make_resident_id needs 17 ASCII digits, got {prefix17!r}")
    return prefix + _resident_id_check_char(prefix)


def mask_resident_id(number: str) -> str:
    """Mask an ID number for display: first 3 and last 4 characters kept, e.g. 110***********123X."""
    # First 3 + last 4 is the common display mask in Chinese finance apps: it hides the birth date
    # (positions 7–14) and the county/sequence digits, yet lets the holder recognise their own number.
    value = number.strip().upper()
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def _resident_id_check_char(prefix17: str) -> str:
    total = sum(int(ch) * weight for ch, weight in zip(prefix17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def _check_id_format(value: str, field: str) -> None:
    if len(value) != 18:
        message = f"{_ID_LABEL}应为18位，当前为{len(value)}位"
        if len(value) == 15:
            message += "（15位旧号码已停止使用，请填写身份证上的18位号码）"
        raise IdentifierError(field, message)
    for position, ch in enumerate(value[:17], start=1):
        if not ("0" <= ch <= "9"):
            raise IdentifierError(field, f"{_ID_LABEL}前17位应为数字，第{position}位为“{_show(ch)}”")
    if not ("0" <= value[17] <= "9" or value[17] == "X"):
        raise IdentifierError(field, f"{_ID_LABEL}第18位应为数字或X，当前为“{_show(value[17])}”")


def _check_birth_date(digits: str, field: str, today: date) -> None:
    prefix = f"{_ID_LABEL}中的出生日期无效：第7–14位为“{digits}”"
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise IdentifierError(field, f"{prefix}，不是真实存在的日期") from None
    if born < _EARLIEST_BIRTH:
        raise IdentifierError(field, f"{prefix}，早于1900年")
    if born > today:
        raise IdentifierError(field, f"{prefix}，晚于今天")


# --------------------------------------------------------------------------------------------------
# Person name and mobile number
# --------------------------------------------------------------------------------------------------

# The ID card prints ethnic-minority names with U+00B7 "·"; people type look-alikes from various keyboards.
# (NFKC has already folded the full-width "．" to "."; an ASCII "." only counts as a separator in a Chinese name.)
_NAME_DOTS = str.maketrans({"•": "·", "・": "·", "‧": "·", "∙": "·", "⋅": "·"})
_NAME_SEPARATOR = "·"
_NAME_MIN, _NAME_MAX = 2, 30
_NAME_ALLOWED_HINT = "姓名只能包含汉字、间隔号“·”、英文字母和空格"


def validate_person_name(name: str, *, field: str = "name") -> str:
    """Validate a person's name as printed on an ID card or passport and return it normalised."""
    value = _normalise(name, field, "姓名", upper=False).translate(_NAME_DOTS)
    if any(_is_cjk(ch) for ch in value):
        value = value.replace(".", _NAME_SEPARATOR)
    value = re.sub(r" {2,}", " ", value)
    if not _NAME_MIN <= len(value) <= _NAME_MAX:
        raise IdentifierError(field, f"姓名应为{_NAME_MIN}–{_NAME_MAX}个字符，当前为{len(value)}个")
    for position, ch in enumerate(value, start=1):
        if not (_is_cjk(ch) or ch == _NAME_SEPARATOR or ch == " " or (ch.isascii() and ch.isalpha())):
            raise IdentifierError(field, f"姓名第{position}个字符“{_show(ch)}”不允许，{_NAME_ALLOWED_HINT}")
    _check_name_separators(value, field)
    return value


def _check_name_separators(value: str, field: str) -> None:
    if value[0] == _NAME_SEPARATOR or value[-1] == _NAME_SEPARATOR:
        raise IdentifierError(field, "姓名的开头和结尾不能是间隔号“·”")
    if _NAME_SEPARATOR * 2 in value:
        raise IdentifierError(field, "姓名中不能连续使用两个间隔号“·”")
    # A Chinese name on the ID card never contains a space; a stray space makes the four-element check fail.
    if " " in value and any(_is_cjk(ch) for ch in value):
        raise IdentifierError(field, "中文姓名中不能有空格，请按身份证上的姓名填写")


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= cp <= 0x4DBF  # Extension A
        or 0x20000 <= cp <= 0x323AF  # Extensions B–H: rare characters (生僻字) do occur in names
        or cp == 0x3007  # 〇
    )


_MOBILE_RE = re.compile(r"1[3-9]\d{9}")


def validate_mobile(phone: str, *, field: str = "mobile") -> str:
    """Validate a mainland China mobile number and return its 11 digits (separators and +86 removed)."""
    value = re.sub(r"[\s\-()（）]", "", _normalise(phone, field, "手机号码", upper=False))
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086"):
        value = value[4:]
    for position, ch in enumerate(value, start=1):
        if not ("0" <= ch <= "9"):
            raise IdentifierError(field, f"手机号码只能包含数字，第{position}位为“{_show(ch)}”")
    if len(value) != 11:
        raise IdentifierError(field, f"手机号码应为11位数字，当前为{len(value)}位")
    if not _MOBILE_RE.fullmatch(value):
        raise IdentifierError(field, f"手机号码应以13–19开头（中国大陆手机号码），当前以“{value[:2]}”开头")
    return value


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _normalise(raw: object, field: str, label: str, *, upper: bool = True) -> str:
    """NFKC folds full-width input from Chinese IMEs (e.g. "９１３５") to ASCII; then strip (and upper-case)."""
    if not isinstance(raw, str):
        raise IdentifierError(field, f"{label}格式错误，应为文本")
    value = unicodedata.normalize("NFKC", raw).strip()
    if not value:
        raise IdentifierError(field, f"请填写{label}")
    return value.upper() if upper else value


def _show(ch: str) -> str:
    """Render a character so that invisible ones are still identifiable in a message."""
    if ch == " ":
        return "空格"
    if not ch.isprintable():
        return f"U+{ord(ch):04X}"
    return ch
