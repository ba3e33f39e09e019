"""The bot's services, built from the settings once per app and reached through `BOT`."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.crypto import MessageCrypto
from bot.dedup import Dedup
from bot.delivery import Delivery
from bot.state import ConversationStore
from bot.tasks import BackgroundTasks
from echain.keys import DEPS, HTTP, OA_WECHAT, REDIS, SETTINGS, WECHAT_BASE
from echain.settings import Settings
from wechat import simulator
from wechat.client import RedisTokenCache, WeChatClient
from workflow.deps import Deps

log = logging.getLogger("echain.bot")

MAX_BODY_BYTES = 64 * 1024  # WeChat messages are a few hundred bytes; anything near this is not WeChat
REPLY_BUDGET = 4.0  # WeChat gives up after 5 s; answer passively only what is ready by then


@dataclass
class Bot:
    """Everything the callback and the flows use."""

    token: str
    app_id: str
    crypto: MessageCrypto | None  # None: plain mode (no EncodingAESKey configured)
    miniapp_app_id: str
    deps: Deps
    oa: WeChatClient
    tasks: BackgroundTasks
    conversations: ConversationStore
    dedup: Dedup
    delivery: Delivery
    upload_max_bytes: int
    clock: Callable[[], float] = time.time
    reply_budget: float = REPLY_BUDGET
    max_body: int = MAX_BODY_BYTES


BOT = web.AppKey("bot", Bot)


def oa_credentials(settings: Settings) -> tuple[str, str]:
    """The Official Account's app id and secret (the simulator's when no WeChat endpoint is configured)."""
    if settings.uses_wechat_simulator:
        return settings.wechat_app_id or simulator.SIM_APP_ID, settings.wechat_app_secret or simulator.SIM_APP_SECRET
    return settings.wechat_app_id, settings.wechat_app_secret


def miniapp_app_id(settings: Settings) -> str:
    """The mini-program app id that page links in chat open."""
    return settings.miniapp_app_id or (simulator.SIM_MINIAPP_ID if settings.uses_wechat_simulator else "")


async def bot_context(app: web.Application) -> AsyncIterator[None]:
    """Open the OA client and the bot (after the shared services); drain background work on shutdown."""
    settings = app[SETTINGS]
    app_id, secret = oa_credentials(settings)
    # One shared token cache and refresher for every process: each refresh invalidates the old token.
    oa = WeChatClient(app[HTTP], app[WECHAT_BASE], app_id, secret,
                      token_cache=RedisTokenCache.for_api(app[REDIS], app[WECHAT_BASE]))
    app[OA_WECHAT] = oa
    if not settings.wechat_token:
        log.warning("WECHAT_TOKEN is not set: the Official Account callback /wechat is switched off")
    tasks = BackgroundTasks()
    app[BOT] = Bot(
        token=settings.wechat_token,
        app_id=app_id,
        crypto=MessageCrypto(settings.wechat_aes_key, app_id) if settings.wechat_aes_key else None,
        miniapp_app_id=miniapp_app_id(settings),
        deps=app[DEPS],
        oa=oa,
        tasks=tasks,
        conversations=ConversationStore(app[REDIS]),
        dedup=Dedup(app[REDIS]),
        delivery=Delivery(app[REDIS], oa),
        upload_max_bytes=settings.upload_max_bytes,
    )
    try:
        yield
    finally:
        await tasks.close()


def install(app: web.Application) -> None:
    """Add the callback routes and the bot's resources to the app (call after the shared services)."""
    from bot import callback  # the handlers import the flows, which import the domain

    app.router.add_get("/wechat", callback.verify_server)
    app.router.add_post("/wechat", callback.receive)
    app.cleanup_ctx.append(bot_context)
