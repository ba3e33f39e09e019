"""Tests for workflow.identifiers: USCC, resident ID, names and mobile numbers."""

from __future__ import annotations

from datetime import date

import pytest

from workflow.identifiers import (
    IdentifierError,
    make_resident_id,
    make_uscc,
    mask_resident_id,
    validate_mobile,
    validate_person_name,
    validate_resident_id,
    validate_uscc,
)

# --------------------------------------------------------------------------------------------------
# USCC
# --------------------------------------------------------------------------------------------------

# Published codes; each check character was verified by computing it.
REAL_USCCS = [
    "91350100M000100Y43",  # the example in GB 32100-2015
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "914403001922038216",  # 华为技术有限公司
    "91110000802100433B",  # 北京百度网讯科技有限公司
    "91110108551385082Q",  # 小米科技有限责任公司
    "11100000000013127D",  # authority 1 (机构编制), type 1 (机关)
    "31110000400834282L",  # authority 3 (司法行政), type 1 (律师执业机构)
]


def uscc_error(code: str) -> IdentifierError:
    with pytest.raises(IdentifierError) as info:
        validate_uscc(code)
    assert info.value.field == "uscc"
    return info.value


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_uscc_codes_are_accepted(code: str) -> None:
    assert validate_uscc(code) == code


def test_uscc_is_normalised_from_lowercase_spaces_and_full_width() -> None:
    assert validate_uscc("  91350100m000100y43 ") == "91350100M000100Y43"
    assert validate_uscc("９１３５０１００Ｍ０００１００Ｙ４３") == "91350100M000100Y43"


def test_make_uscc_appends_the_check_character_of_real_codes() -> None:
    for code in REAL_USCCS:
        assert make_uscc(code[:17]) == code


def test_make_uscc_handles_check_value_zero() -> None:
    # Find a prefix whose weighted sum is ≡ 0 mod 31: the standard maps "31" to check character "0".
    codes = (make_uscc(f"9111010800000{n:04d}") for n in range(200))
    assert any(code.endswith("0") for code in codes)
    assert all(validate_uscc(make_uscc(f"9111010800000{n:04d}")) for n in range(200))


def test_make_uscc_rejects_bad_prefix() -> None:
    with pytest.raises(ValueError):
        make_uscc("9135010")
    with pytest.raises(ValueError):
        make_uscc("91350100I00010OY4")


def test_uscc_empty() -> None:
    assert uscc_error("   ").message == "请填写统一社会信用代码"


def test_uscc_not_text() -> None:
    assert uscc_error(None).message == "统一社会信用代码格式错误，应为文本"  # type: ignore[arg-type]


@pytest.mark.parametrize(("code", "length"), [("91350100M000100Y4", 17), ("91350100M000100Y431", 19)])
def test_uscc_wrong_length(code: str, length: int) -> None:
    assert uscc_error(code).message == f"统一社会信用代码应为18位，当前为{length}位"


def test_uscc_excluded_letter_names_position_and_hint() -> None:
    assert uscc_error("9135I100M000100Y43").message == (
        "统一社会信用代码第5位含有不允许的字符“I”（统一社会信用代码不使用字母I、O、Z、S、V，请核对是否为数字）"
    )


def test_uscc_other_forbidden_character() -> None:
    assert uscc_error("91350100M000100Y4#").message == "统一社会信用代码第18位含有不允许的字符“#”"
    assert uscc_error("91350100M0 0100Y43").message == "统一社会信用代码第11位含有不允许的字符“空格”"


def test_uscc_unknown_registration_authority() -> None:
    code = make_uscc("B1350100M000100Y4")
    assert uscc_error(code).message == (
        "统一社会信用代码第1位（登记管理部门代码）“B”无效，应为1、2、3、4、5、6、7、8、9、A、N、Y之一"
    )


def test_uscc_type_code_must_fit_the_authority() -> None:
    code = make_uscc("94350100M000100Y4")
    assert uscc_error(code).message == (
        "统一社会信用代码第2位（机构类别代码）“4”无效：登记管理部门为9（工商）时，应为1、2、3之一"
    )
    assert uscc_error(make_uscc("Y2350100M000100Y4")).message.endswith("登记管理部门为Y（其他）时，应为1之一")


@pytest.mark.parametrize(
    "prefix", ["92350100M000100Y4", "93350100M000100Y4", "52350100M000100Y4", "N2350100M000100Y4"]
)
def test_uscc_accepts_other_valid_authority_type_pairs(prefix: str) -> None:
    code = make_uscc(prefix)
    assert validate_uscc(code) == code


def test_uscc_division_code_must_be_digits() -> None:
    code = make_uscc("9135A100M000100Y4")
    assert uscc_error(code).message == "统一社会信用代码第3–8位（登记管理机关行政区划码）应为数字，第5位为“A”"


def test_uscc_wrong_check_character_does_not_reveal_the_right_one() -> None:
    error = uscc_error("91350100M000100Y44")
    assert error.message == "统一社会信用代码校验位错误，请对照营业执照逐位核对，可能有字符输入错误"


def test_uscc_single_typo_in_body_is_detected() -> None:
    # Transposing two characters is the classic typo the check character exists for.
    assert uscc_error("91350100M001000Y43").message.startswith("统一社会信用代码校验位错误")


def test_uscc_custom_field_name() -> None:
    with pytest.raises(IdentifierError) as info:
        validate_uscc("", field="enterprise.uscc")
    assert info.value.field == "enterprise.uscc"
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------------
# Resident ID
# --------------------------------------------------------------------------------------------------

TODAY = date(2025, 6, 1)


def id_error(number: str, today: date = TODAY) -> IdentifierError:
    with pytest.raises(IdentifierError) as info:
        validate_resident_id(number, today=today)
    assert info.value.field == "resident_id"
    return info.value


def test_gb11643_example_is_valid_and_has_check_x() -> None:
    # GB 11643-1999 Annex: 北京市朝阳区, born 1949-12-31, sequence 002 → check character X.
    assert make_resident_id("11010519491231002") == "11010519491231002X"
    assert validate_resident_id("11010519491231002X", today=TODAY) == "11010519491231002X"


def test_lowercase_x_is_normalised() -> None:
    assert validate_resident_id(" 11010519491231002x ", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize(
    "prefix", ["44030419900307123", "81000019850101002", "83000020000229001", "65010220250601001"]
)
def test_made_ids_validate(prefix: str) -> None:
    number = make_resident_id(prefix)
    assert validate_resident_id(number, today=TODAY) == number


def test_default_today_accepts_a_past_birth_date() -> None:
    number = make_resident_id("11010519800101001")
    assert validate_resident_id(number) == number


def test_make_resident_id_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        make_resident_id("1101051949123100X")
    with pytest.raises(ValueError):
        make_resident_id("1101051949")


def test_id_wrong_check_digit() -> None:
    good = make_resident_id("44030419900307123")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    assert id_error(bad).message == "身份证号码校验位错误，请对照身份证逐位核对，可能有数字输入错误"


def test_id_wrong_length_and_old_15_digit_number() -> None:
    assert id_error("1101051949123100").message == "身份证号码应为18位，当前为16位"
    assert id_error("110105491231002").message == (
        "身份证号码应为18位，当前为15位（15位旧号码已停止使用，请填写身份证上的18位号码）"
    )


def test_id_non_digit_in_body() -> None:
    assert id_error("1101A519491231002X").message == "身份证号码前17位应为数字，第5位为“A”"


def test_id_bad_last_character() -> None:
    assert id_error("11010519491231002Y").message == "身份证号码第18位应为数字或X，当前为“Y”"


def test_id_unknown_province() -> None:
    number = make_resident_id("99010519491231002")
    assert id_error(number).message == "身份证号码前2位（省级行政区划代码）“99”无效，请核对号码开头"


def test_id_feb_29_on_non_leap_year() -> None:
    number = make_resident_id("11010519990229001")
    assert id_error(number).message == "身份证号码中的出生日期无效：第7–14位为“19990229”，不是真实存在的日期"


def test_id_feb_29_on_leap_year_is_fine() -> None:
    number = make_resident_id("11010520000229001")
    assert validate_resident_id(number, today=TODAY) == number


def test_id_month_13() -> None:
    number = make_resident_id("11010519901301001")
    assert id_error(number).message.endswith("第7–14位为“19901301”，不是真实存在的日期")


def test_id_birth_in_the_future() -> None:
    number = make_resident_id("11010520250602001")
    assert id_error(number).message == "身份证号码中的出生日期无效：第7–14位为“20250602”，晚于今天"


def test_id_birth_before_1900_even_with_valid_checksum() -> None:
    # Another GB 11643-1999 example (born 1880): checksum fine, but no living legal representative.
    assert make_resident_id("44052418800101001") == "440524188001010014"
    assert (
        id_error("440524188001010014").message
        == "身份证号码中的出生日期无效：第7–14位为“18800101”，早于1900年"
    )


def test_id_empty() -> None:
    assert id_error("").message == "请填写身份证号码"


def test_mask_resident_id_keeps_first_three_and_last_four() -> None:
    masked = mask_resident_id("11010519491231002x")
    assert masked == "110***********002X"
    assert len(masked) == 18
    assert "19491231" not in masked


def test_mask_resident_id_short_input_is_fully_hidden() -> None:
    assert mask_resident_id("1234567") == "*******"


# --------------------------------------------------------------------------------------------------
# Names and mobile numbers
# --------------------------------------------------------------------------------------------------


def name_error(name: str) -> str:
    with pytest.raises(IdentifierError) as info:
        validate_person_name(name)
    assert info.value.field == "name"
    return info.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张三", "张三"),
        (" 欧阳娜娜 ", "欧阳娜娜"),
        ("阿卜杜热合曼·买买提", "阿卜杜热合曼·买买提"),
        ("阿卜杜热合曼•买买提", "阿卜杜热合曼·买买提"),  # bullet typed instead of the middle dot
        ("阿卜杜热合曼.买买提", "阿卜杜热合曼·买买提"),
        ("John  Smith", "John Smith"),
        ("𠮷野家", "𠮷野家"),  # rare character from CJK Extension B
    ],
)
def test_valid_names_are_normalised(raw: str, expected: str) -> None:
    assert validate_person_name(raw) == expected


def test_name_length() -> None:
    assert name_error("张") == "姓名应为2–30个字符，当前为1个"
    assert name_error("A" * 31) == "姓名应为2–30个字符，当前为31个"
    assert name_error("  ") == "请填写姓名"


def test_name_forbidden_character() -> None:
    assert name_error("张三3") == "姓名第3个字符“3”不允许，姓名只能包含汉字、间隔号“·”、英文字母和空格"
    assert name_error("O'Brien").startswith("姓名第2个字符“'”不允许")


def test_name_separator_placement() -> None:
    assert name_error("·买买提") == "姓名的开头和结尾不能是间隔号“·”"
    assert name_error("阿卜杜··买买提") == "姓名中不能连续使用两个间隔号“·”"


def test_chinese_name_with_space() -> None:
    assert name_error("张 三") == "中文姓名中不能有空格，请按身份证上的姓名填写"


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138 0013 8000",
        "008613800138000",
        "１３８００１３８０００",
    ],
)
def test_valid_mobile_numbers_are_normalised(raw: str) -> None:
    assert validate_mobile(raw) == "13800138000"


def mobile_error(phone: str) -> str:
    with pytest.raises(IdentifierError) as info:
        validate_mobile(phone)
    assert info.value.field == "mobile"
    return info.value.message


def test_mobile_errors() -> None:
    assert mobile_error("") == "请填写手机号码"
    assert mobile_error("1380013800") == "手机号码应为11位数字，当前为10位"
    assert mobile_error("138a0138000") == "手机号码只能包含数字，第4位为“a”"
    assert mobile_error("12800138000") == "手机号码应以13–19开头（中国大陆手机号码），当前以“12”开头"
    assert mobile_error("23800138000") == "手机号码应以13–19开头（中国大陆手机号码），当前以“23”开头"
