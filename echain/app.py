"""The application factory: settings in, a wired aiohttp app out (each resource opened and closed in one place)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

import signing
from biometric import api as biometric_api
from bot.context import install as install_bot
from console import install as install_console
from echain import db, live, logs, metrics
from echain.api import ApiRouter
from echain.contract_ca import earlier_ca_pems, load_platform_ca
from echain.errors import error_middleware
from echain.keys import DEPS, HTTP, REDIS, SETTINGS, SIMULATOR, WECHAT_BASE
from echain.live import RedisEventSink
from echain.pii import PiiCipher
from echain.redis_conn import open_redis
from echain.settings import Settings
from echain.storage import LocalBlobStorage
from miniapp_api import (
    admin,
    attorneys,
    auth,
    contracts,
    documents,
    enterprises,
    financings,
    me,
    system,
    wechat_binding,
)
from notify import api as notify_api
from notify.outbox import drain_periodically
from notify.sink import JobQueueSink
from wechat import simulator
from wechat.client import RedisTokenCache, WeChatClient
from workflow.deps import Deps
from workflow.financing.esign import ContractServices
from workflow.kyc import FourElementProvider, HttpGatewayProvider, SandboxProvider

log = logging.getLogger("echain")

JSON_BODY_LIMIT = 1024 * 1024  # uploads stream through miniapp_api.uploads with their own limit


def api_router() -> ApiRouter:
    """Every declared API operation (the OpenAPI document is built from this)."""
    router = ApiRouter()
    for module in (system, auth, me, enterprises, documents, financings, admin, wechat_binding, notify_api,
                   biometric_api, attorneys, contracts):
        router.include(module.router)
    return router


def create_app(settings: Settings) -> web.Application:
    """Build the app; resources open on startup in the order listed and close in reverse."""
    settings = settings.with_dev_secret()
    # Outermost first: request id (every log line, every response), timing (sees the final status), errors.
    app = web.Application(middlewares=[logs.request_id_middleware, metrics.metrics_middleware, error_middleware],
                          client_max_size=JSON_BODY_LIMIT)
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([_http_session, _wechat_api, _redis, _database, _deps, biometric_api.biometrics_context,
                            _outbox])
    router = api_router()
    router.install(app, auth.authenticate)
    system.install_docs(app, router)
    install_bot(app)  # Official Account callback /wechat and its resources (after the shared ones)
    install_console(app)  # operator console /console (server-rendered pages, its own sessions)
    live.install(app)  # event streams end at shutdown
    logs.install(app)
    metrics.install(app)  # GET /metrics (bearer ECHAIN_METRICS_TOKEN outside dev)
    return app


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        app[HTTP] = session
        yield


async def _wechat_api(app: web.Application) -> AsyncIterator[None]:
    """The configured WeChat API, or the in-process simulator so the product works offline."""
    settings = app[SETTINGS]
    if not settings.uses_wechat_simulator:
        app[WECHAT_BASE] = settings.wechat_api_base
        yield
        return
    runner, base_url, state = await simulator.start_simulator()
    app[WECHAT_BASE], app[SIMULATOR] = base_url, state
    log.info("WeChat simulator running in-process at %s", base_url)
    try:
        yield
    finally:
        await runner.cleanup()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_redis(settings.redis_url, settings.data_dir) as client:
        app[REDIS] = client
        yield


async def _database(app: web.Application) -> AsyncIterator[None]:
    async with db.database(app[SETTINGS].database_url):
        yield


def _miniapp_credentials(settings: Settings) -> tuple[str, str]:
    if settings.uses_wechat_simulator:
        return (settings.miniapp_app_id or simulator.SIM_MINIAPP_ID, settings.miniapp_app_secret or simulator.SIM_MINIAPP_SECRET)
    return settings.miniapp_app_id, settings.miniapp_app_secret


def kyc_provider(settings: Settings, session: aiohttp.ClientSession) -> FourElementProvider:
    """The four-element provider the settings name."""
    if settings.kyc_provider == "http":
        return HttpGatewayProvider(session, settings.kyc_gateway_url, settings.kyc_key_id, settings.kyc_secret)
    return SandboxProvider()


async def _outbox(app: web.Application) -> AsyncIterator[None]:
    """Queue the notification jobs of transitions that committed while Redis was unreachable (notify/outbox.py)."""
    async for _ in drain_periodically(app[REDIS]):
        yield


async def _deps(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app_id, secret = _miniapp_credentials(settings)
    storage = LocalBlobStorage(settings.data_dir / "blobs")
    ca = await asyncio.to_thread(load_platform_ca, settings)
    earlier_cas = await asyncio.to_thread(earlier_ca_pems, settings)  # fail at start-up, not at the first check
    await asyncio.to_thread(signing.register_cjk_font, settings.contract_font)  # a bad font path fails here too
    app[DEPS] = Deps(
        redis=app[REDIS],
        pii=PiiCipher(settings.secret_key),
        storage=storage,
        kyc=kyc_provider(settings, app[HTTP]),
        miniapp=WeChatClient(app[HTTP], app[WECHAT_BASE], app_id, secret,
                             token_cache=RedisTokenCache.for_api(app[REDIS], app[WECHAT_BASE])),
        session_ttl=settings.session_ttl,
        events=[RedisEventSink(app[REDIS]), JobQueueSink.on(app[REDIS])],  # live pages; notifications (worker)
        contracts=ContractServices(storage=storage, redis=app[REDIS], ca=ca, secret=settings.secret_key,
                                   grace_days=settings.overdue_grace_days, earlier_cas=earlier_cas,
                                   font=settings.contract_font),
    )
    yield
