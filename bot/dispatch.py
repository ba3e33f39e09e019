"""One WeChat message or event in, one answer out: routing by type, command and conversation state."""

from __future__ import annotations

import logging

from bot import binding, financing_flow, texts, views
from bot.context import Bot
from bot.menu import CLICK_COMMANDS
from bot.state import IDLE, Busy
from bot.turn import Outcome, Turn
from bot.wirexml import Message

log = logging.getLogger("echain.bot")

# Interactions that open the 48 h customer-service window (客服消息: 用户发送信息、点击自定义菜单、关注公众号、
# 扫描二维码 …); other events (VIEW, LOCATION, TEMPLATESENDJOBFINISH …) are acknowledged and ignored.
_INTERACTIVE_EVENTS = {"SUBSCRIBE", "CLICK", "SCAN", "SCANCODE_PUSH", "SCANCODE_WAITMSG"}
_HANDLED_TYPES = {"text", "image", "event"}


async def handle(bot: Bot, msg: Message) -> Outcome:
    """Answer one message; background jobs are started here, after the person's lock is released."""
    openid = msg.openid
    if msg.msg_type == "event" and msg.event == "UNSUBSCRIBE":
        await bot.conversations.clear(openid)  # the link stays: a follower who comes back keeps their account
        return Outcome(None)
    if msg.msg_type == "event" and msg.event not in _INTERACTIVE_EVENTS:
        return Outcome(None)
    await bot.delivery.interacted(openid)
    try:
        async with bot.conversations.session(openid) as conv:
            if msg.msg_type == "event" and msg.event == "SUBSCRIBE":
                await binding.forget_lookup(bot.deps.redis, openid)
            user = await binding.linked_user(openid) or await binding.link_by_unionid(bot.deps.redis, bot.oa, openid)
            outcome = await _route(Turn(bot, openid, conv, user), msg)
    except Busy:
        return Outcome(texts.BUSY)
    for job in outcome.jobs:
        bot.tasks.spawn(job(), name=f"bot-job:{msg.dedup_key()}")
    kept = await bot.delivery.take_kept(openid)
    if kept:
        if outcome.text is None:  # nothing to answer now: the window is open again, send them
            bot.tasks.spawn(_resend(bot, openid, kept), name="bot-resend")
        else:
            outcome.text = "\n\n".join([texts.KEPT_HEADER, *kept, "——", outcome.text])
    return outcome


async def _resend(bot: Bot, openid: str, kept: list[str]) -> None:
    await bot.delivery.send(openid, "\n\n".join([texts.KEPT_HEADER, *kept]))


async def _route(turn: Turn, msg: Message) -> Outcome:
    if msg.msg_type not in _HANDLED_TYPES:
        return Outcome(texts.UNSUPPORTED)  # voice, video, location, link …: polite, nothing else happens
    if msg.msg_type == "image":
        if turn.user is None:
            return Outcome(texts.NEED_BINDING)
        outcome = financing_flow.on_photo(turn, msg.get("MediaId"))
        return outcome if outcome.text or outcome.jobs else Outcome(texts.NO_IMAGE_EXPECTED)
    if msg.msg_type == "event":
        if msg.event == "CLICK":
            command = CLICK_COMMANDS.get(msg.get("EventKey"))
            return Outcome(await on_text(turn, command) if command else texts.HELP)
        return Outcome(_welcome(turn))
    return Outcome(await on_text(turn, msg.get("Content")))


def _welcome(turn: Turn) -> str:
    if turn.user is None:
        return f"{texts.WELCOME}\n{texts.NEED_BINDING}"
    return f"{texts.WELCOME}{texts.BOUND_AS}\n\n{texts.HELP}"


def _reminder(turn: Turn) -> str:
    """When a query interrupts a flow: where the person was."""
    if turn.conv.state == IDLE:
        return ""
    return "\n\n（您正在发起融资，可继续回答：" + financing_flow.prompt(turn.conv.state, turn.conv.data) + "）"


async def on_text(turn: Turn, text: str) -> str:
    """A typed text (or the command a menu click stands for)."""
    name, arg = texts.command(text)
    if name == "cancel":
        if turn.conv.state == IDLE:
            return texts.NOTHING_TO_CANCEL
        turn.conv.reset()
        return texts.CANCELLED
    if name == "help":
        return texts.HELP + _reminder(turn)
    if name == "bind":
        return await _bind(turn, arg)
    if turn.user is None:
        return texts.NEED_BINDING
    user, app_id = turn.user, turn.bot.miniapp_app_id
    if name == "start":
        return await financing_flow.start(turn)
    if name == "list":
        return await views.my_financings(user) + _reminder(turn)
    if name == "todos":
        return await views.my_todos(user, app_id) + _reminder(turn)
    if name == "detail":
        number = arg.lstrip("#")
        if not number.isdigit() or len(number) > 18:
            return texts.QUERY_USAGE
        return await views.financing_detail(user, int(number), app_id) + _reminder(turn)
    if financing_flow.in_flow(turn.conv.state):
        return await financing_flow.on_text(turn, arg)
    return texts.NOT_UNDERSTOOD


async def _bind(turn: Turn, code: str) -> str:
    if not code:
        return texts.BIND_USAGE
    try:
        turn.user = await binding.redeem_code(turn.bot.deps.redis, turn.openid, code)
    except binding.BindingError as exc:
        return str(exc)
    return texts.BOUND
