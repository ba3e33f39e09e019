"""Fixed Chinese texts of the bot, and the commands people type (or menu clicks send)."""

from __future__ import annotations

import re
import unicodedata

HELP = (
    "您好，我是 echain 供应链金融助手。可用指令：\n"
    "• 发起融资：按提示填写并上传材料照片，提交保理融资申请\n"
    "• 我的融资：查看最近的融资及状态\n"
    "• 查询 编号：查看一笔融资的详情与进度，例如“查询 42”\n"
    "• 待办：需要您处理的事项（可直接打开小程序办理）\n"
    "• 绑定 绑定码：关联小程序账号（绑定码在小程序“我的 → 绑定公众号”中获取）\n"
    "• 取消：随时退出当前操作\n"
    "• 帮助：显示本说明"
)
WELCOME = "感谢关注 echain 供应链金融！"
BOUND_AS = "已关联您的小程序账号，可以直接使用下列功能。"
NEED_BINDING = (
    "您的公众号尚未关联小程序账号。请打开 echain 小程序，在“我的 → 绑定公众号”中获取绑定码（10 分钟内有效），"
    "然后在这里发送：绑定 绑定码（例如：绑定 ABCD2345）。"
)
BIND_USAGE = "请在“绑定”后面加上小程序中显示的绑定码，例如：绑定 ABCD2345。\n" + NEED_BINDING
BOUND = "绑定成功！您的公众号已关联小程序账号。回复“帮助”查看可用功能。"
CANCELLED = "已取消当前操作，已填写的内容不会提交。需要时回复“发起融资”重新开始，或回复“帮助”查看可用功能。"
NOTHING_TO_CANCEL = "当前没有进行中的操作。回复“帮助”查看可用功能。"
NOT_UNDERSTOOD = "抱歉，没有理解您的意思。回复“帮助”查看可用功能。"
UNAVAILABLE = "系统暂时无法处理消息（服务维护中），您发送的内容未被处理，请几分钟后再发一次。"
UNSUPPORTED = "抱歉，暂不支持此类消息。请发送文字指令，或回复“帮助”查看可用功能。"
NO_IMAGE_EXPECTED = "当前不需要上传图片。发起融资时，在提示上传材料后再发送照片即可；回复“帮助”查看可用功能。"
BUSY = "您的上一条消息还在处理中，请稍候再发。"
FAILED = "抱歉，系统暂时无法处理您的消息，请稍后再试。"
QUERY_USAGE = "请在“查询”后面加上融资编号，例如：查询 42。回复“我的融资”可查看编号。"
KEPT_HEADER = "【此前未能送达的消息】"

# Typed command → command name. Spaces inside the text are ignored ("发起 融资").
_COMMANDS = {
    "帮助": "help", "help": "help", "?": "help", "菜单": "help", "功能": "help",
    "取消": "cancel", "退出": "cancel", "cancel": "cancel",
    "发起融资": "start", "申请融资": "start",
    "我的融资": "list", "融资列表": "list",
    "待办": "todos", "我的待办": "todos",
    "绑定": "bind", "查询": "detail",
}
_WITH_ARGUMENT = re.compile(r"^(绑定|查询)\s*[:：#＃]?\s*(.+)$")


def normalise(text: str) -> str:
    """Full-width letters, digits and punctuation folded to ASCII (NFKC), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def command(text: str) -> tuple[str | None, str]:
    """(command name, argument) for a typed text; (None, text) when it is not a command."""
    clean = normalise(text)
    bare = re.sub(r"\s+", "", clean).lower()
    if bare in _COMMANDS:
        return _COMMANDS[bare], ""
    match = _WITH_ARGUMENT.match(clean)
    if match:
        return _COMMANDS[match.group(1)], match.group(2).strip()
    return None, clean
