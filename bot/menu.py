"""The Official Account menu: defined in wechat/menu.json, published through menu/create, clicks → commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wechat.client import WeChatClient

MENU_FILE = Path(__file__).resolve().parents[1] / "wechat" / "menu.json"

# CLICK keys of menu.json → the typed command they stand for (点击菜单拉取消息时的事件推送: EventKey).
CLICK_COMMANDS = {
    "FINANCING_START": "发起融资",
    "FINANCING_MINE": "我的融资",
    "TODOS": "待办",
    "BIND": "绑定",
    "HELP": "帮助",
}


def load_menu(path: Path = MENU_FILE) -> dict[str, Any]:
    """The menu/create body kept in the repository."""
    return json.loads(path.read_text(encoding="utf-8"))


def click_keys(menu: dict[str, Any]) -> list[str]:
    """Every CLICK key the menu sends."""
    buttons = [b for top in menu["button"] for b in (top.get("sub_button") or [top])]
    return [b["key"] for b in buttons if b.get("type") == "click"]


async def publish(client: WeChatClient, menu: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replace the Official Account's menu (自定义菜单创建接口); returns what was sent."""
    body = menu if menu is not None else load_menu()
    await client.create_menu(body)
    return body
