"""Turn pydantic validation errors into one precise Chinese message per field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

# pydantic error type → Chinese template; {label} is the field's Chinese title, ctx values fill the rest.
_TEMPLATES: dict[str, str] = {
    "missing": "{label}为必填项",
    "string_type": "{label}应为文本",
    "string_too_short": "{label}长度不能少于{min_length}个字符",
    "string_too_long": "{label}长度不能超过{max_length}个字符",
    "string_pattern_mismatch": "{label}格式不正确",
    "int_type": "{label}应为整数",
    "int_parsing": "{label}应为整数",
    "int_from_float": "{label}应为整数",
    "float_type": "{label}应为数字",
    "float_parsing": "{label}应为数字",
    "decimal_parsing": "{label}应为数字",
    "decimal_type": "{label}应为数字",
    "decimal_max_places": "{label}最多保留{decimal_places}位小数",
    "decimal_max_digits": "{label}数字位数过多",
    "bool_type": "{label}应为 true 或 false",
    "bool_parsing": "{label}应为 true 或 false",
    "greater_than": "{label}必须大于{gt}",
    "greater_than_equal": "{label}不能小于{ge}",
    "less_than": "{label}必须小于{lt}",
    "less_than_equal": "{label}不能大于{le}",
    "literal_error": "{label}取值无效，可选：{expected}",
    "enum": "{label}取值无效，可选：{expected}",
    "list_type": "{label}应为列表",
    "too_short": "{label}至少需要{min_length}项",
    "too_long": "{label}最多{max_length}项",
    "dict_type": "{label}应为 JSON 对象",
    "model_type": "{label}应为 JSON 对象",
    "model_attributes_type": "{label}应为 JSON 对象",
    "date_type": "{label}应为日期（YYYY-MM-DD）",
    "date_parsing": "{label}应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "{label}应为日期（YYYY-MM-DD）",
    "datetime_type": "{label}应为时间（ISO 8601）",
    "datetime_parsing": "{label}应为时间（ISO 8601）",
    "datetime_from_date_parsing": "{label}应为时间（ISO 8601）",
    "extra_forbidden": "不支持的字段：{label}",
    "uuid_parsing": "{label}格式不正确",
}


def field_label(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The Chinese title of the field at `loc` (falls back to the dotted path)."""
    current: Any = model
    labels: list[str] = []
    for part in loc:
        if isinstance(part, int):
            labels.append(f"第{part + 1}项")
            continue
        info = getattr(current, "model_fields", {}).get(part) if isinstance(current, type) else None
        if info is None:
            labels.append(str(part))
            current = None
            continue
        labels.append(info.title or str(part))
        current = info.annotation
    return "·".join(labels) if labels else "请求内容"


def describe(exc: ValidationError, model: type[BaseModel]) -> tuple[str, list[dict[str, Any]]]:
    """A joined Chinese message and a per-field list for clients that highlight fields."""
    items = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        label = field_label(model, loc)
        items.append({"field": ".".join(str(p) for p in loc), "message": _message(err, label)})
    return "；".join(i["message"] for i in items), items


def _message(err: dict[str, Any], label: str) -> str:
    ctx = dict(err.get("ctx") or {})
    if err["type"] == "value_error" and "error" in ctx:
        # Our own validators raise ValueError with a complete Chinese sentence.
        return str(ctx["error"])
    if err["type"] == "assertion_error" and "error" in ctx:
        return str(ctx["error"])
    template = _TEMPLATES.get(err["type"])
    if template is None:
        return f"{label}无效"
    try:
        return template.format(label=label, **ctx)
    except (KeyError, IndexError):
        return f"{label}无效"
