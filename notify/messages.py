"""What a notice says: the page to open and the template data (Chinese), for both WeChat channels.

The data keys are the keywords of the templates chosen in the WeChat consoles, in this order:
融资编号 character_string1, 融资金额 amount2, 当前状态 thing3, 待办事项 thing4, 更新时间 time5.
Subscribe-message limits: thing ≤ 20 characters, character_string ≤ 32, amount "数字+元".
https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/subscribe-message/sendMessage.html
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Template_Message_Interface.html
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from echain.settings import Settings
from models.financing import Financing
from wechat import simulator
from workflow.financing.money import format_yuan
from workflow.financing.table import FINANCING
from workflow.financing.transition import CHINA_TZ

THING_MAX = 20


@dataclass(frozen=True)
class NotifyConfig:
    """Template ids and the mini-program the notices open; an empty template id switches its channel off."""

    subscribe_template_id: str
    oa_template_id: str
    miniapp_app_id: str
    miniprogram_state: str = "formal"

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyConfig:
        """The configuration the settings name (the simulator's mini-program id in dev)."""
        app_id = settings.miniapp_app_id or (simulator.SIM_MINIAPP_ID if settings.uses_wechat_simulator else "")
        return cls(settings.subscribe_template_id, settings.oa_template_id, app_id, settings.miniprogram_state)


def page_path(financing_id: int, action: str) -> str:
    """The mini-program page where the action is taken, e.g. pages/financing/detail?id=42&action=approve."""
    return f"pages/financing/detail?{urlencode({'id': financing_id, 'action': action})}"


def _thing(text: str) -> str:
    return text if len(text) <= THING_MAX else text[: THING_MAX - 1] + "…"


def _china_time(at: datetime | None) -> str:
    at = at or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(CHINA_TZ).strftime("%Y年%m月%d日 %H:%M")


def notice_fields(financing: Financing, action: str) -> dict[str, str]:
    """Template values: financing number, amount, state, what to do, when the state was reached."""
    amount = financing.financing_amount if financing.financing_amount is not None else financing.requested_amount
    return {
        "character_string1": str(financing.id),
        "amount2": f"{format_yuan(amount)}元",
        "thing3": _thing(FINANCING.state_labels[financing.status]),
        "thing4": _thing(f"请{FINANCING.transition(action).label}"),
        "time5": _china_time(financing.updated_at),
    }


def _data(fields: dict[str, str]) -> dict[str, dict[str, str]]:
    return {key: {"value": value} for key, value in fields.items()}


def subscribe_payload(config: NotifyConfig, openid: str, page: str, fields: dict[str, str]) -> dict[str, Any]:
    """message/subscribe/send body (mini-program openid)."""
    return {"touser": openid, "template_id": config.subscribe_template_id, "page": page, "data": _data(fields),
            "miniprogram_state": config.miniprogram_state, "lang": "zh_CN"}


def template_payload(config: NotifyConfig, oa_openid: str, page: str, fields: dict[str, str],
                     client_msg_id: str) -> dict[str, Any]:
    """message/template/send body (Official Account openid), opening the same mini-program page.

    client_msg_id: WeChat sends one message per openid + client_msg_id within 10 minutes (防重入), which
    makes a retry after a lost answer safe.
    """
    payload: dict[str, Any] = {"touser": oa_openid, "template_id": config.oa_template_id, "data": _data(fields),
                               "client_msg_id": client_msg_id}
    if config.miniapp_app_id:
        payload["miniprogram"] = {"appid": config.miniapp_app_id, "pagepath": page}
    return payload
