"""The worker process (`echain worker`): runs the jobs queued on Redis by the web process (arq).

Side effects that talk to the outside run here, after the change committed (DESIGN.md §1): the notifications
of notify/, and once an hour the time-driven transitions (`run_due`, what `echain jobs run-due` does). `arq echain.worker.WorkerSettings` works too when ECHAIN_REDIS_URL is set; `echain
worker` also joins the embedded Redis of the data dir when it is not.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
from arq import Worker
from arq.connections import ArqRedis, RedisSettings
from arq.cron import cron
from arq.worker import func

from echain import db
from echain.logs import bind_job_id
from echain.metrics import observed_job
from echain.redis_conn import EmbeddedRedis
from echain.settings import Settings
from notify.delivery import Notifier
from notify.jobs import MAX_TRIES, NOTIFY_TRANSITION, SEND_NOTICE, notify_transition, send_notice
from notify.messages import NotifyConfig
from wechat import simulator
from wechat.client import RedisTokenCache, WeChatClient

log = logging.getLogger("echain.worker")

JOB_TIMEOUT = 60  # seconds; one job makes a few database reads and at most two WeChat calls
KEEP_RESULT = 24 * 3600  # while a result is kept, enqueueing the same job id again is refused

FUNCTIONS = [  # observed_job: retries and failures counted in Redis for the app's /metrics
    func(observed_job(notify_transition), name=NOTIFY_TRANSITION, max_tries=MAX_TRIES),
    func(observed_job(send_notice), name=SEND_NOTICE, max_tries=MAX_TRIES),
]


def wechat_credentials(settings: Settings) -> tuple[tuple[str, str], tuple[str, str]]:
    """(mini-program appid, secret) and (Official Account appid, secret); the simulator's in dev."""
    if settings.uses_wechat_simulator:
        return ((settings.miniapp_app_id or simulator.SIM_MINIAPP_ID,
                 settings.miniapp_app_secret or simulator.SIM_MINIAPP_SECRET),
                (settings.wechat_app_id or simulator.SIM_APP_ID, settings.wechat_app_secret or simulator.SIM_APP_SECRET))
    return ((settings.miniapp_app_id, settings.miniapp_app_secret), (settings.wechat_app_id, settings.wechat_app_secret))


async def startup(ctx: dict[str, Any]) -> None:
    """Open the database, an HTTP session and the WeChat clients (skipped when ctx brings a notifier)."""
    if "notifier" in ctx:  # tests hand in their own (pointing at the app's simulator)
        return
    settings: Settings = ctx.setdefault("settings", Settings.from_env())
    stack = ctx["resources"] = AsyncExitStack()
    await db.connect(settings.database_url)
    stack.push_async_callback(db.disconnect)
    session = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)))
    base = settings.wechat_api_base
    if settings.uses_wechat_simulator:
        runner, base, ctx["simulator"] = await simulator.start_simulator()
        stack.push_async_callback(runner.cleanup)
        log.info("WECHAT_API_BASE unset: notifications go to an in-process WeChat simulator at %s", base)
    # One token holder per appid for every process (DESIGN.md §3): the cache and its refresh lock live in Redis.
    cache = RedisTokenCache.for_api(ctx["redis"], base)
    (mini_id, mini_secret), (oa_id, oa_secret) = wechat_credentials(settings)
    config = NotifyConfig.from_settings(settings)
    if not (config.subscribe_template_id or config.oa_template_id):
        log.warning("ECHAIN_SUBSCRIBE_TEMPLATE_ID and ECHAIN_OA_TEMPLATE_ID are empty: no notification can be sent")
    ctx["notifier"] = Notifier(
        redis=ctx["redis"],
        miniapp=WeChatClient(session, base, mini_id, mini_secret, token_cache=cache),
        oa=WeChatClient(session, base, oa_id, oa_secret, token_cache=cache),
        config=config,
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what startup opened."""
    stack: AsyncExitStack | None = ctx.pop("resources", None)
    if stack is not None:
        await stack.aclose()


async def run_due(ctx: dict[str, Any]) -> int:
    """The hourly time-driven transitions (`echain jobs run-due`): financings past due date + grace → overdue."""
    from workflow.financing.scheduler import mark_overdue_due
    from workflow.financing.transition import china_today

    settings: Settings = ctx["settings"]
    moved = await mark_overdue_due(china_today(), settings.overdue_grace_days)
    log.info("scheduled run: %d financing(s) marked overdue (grace %d days)", moved, settings.overdue_grace_days)
    return moved


# At minute 7 of every hour. unique: with several workers each tick still runs once (arq keys it by the tick's
# time); the transitions themselves are conditional updates, so even a second run would move nothing twice.
SCHEDULE = [cron(run_due, name="run_due", minute=7, unique=True, timeout=600)]


def worker_options(*, scheduled: bool = False) -> dict[str, Any]:
    """Keyword arguments for arq's Worker, shared by `echain worker`, WorkerSettings and the tests; `scheduled`
    adds the hourly run of due transitions (long-running workers only: a burst run should do just the queue)."""
    return {
        **({"cron_jobs": SCHEDULE} if scheduled else {}),
        "functions": FUNCTIONS,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "on_job_start": bind_job_id,
        "max_tries": MAX_TRIES,
        "job_timeout": JOB_TIMEOUT,
        "keep_result": KEEP_RESULT,
    }


class WorkerSettings:
    """For `arq echain.worker.WorkerSettings` (needs ECHAIN_REDIS_URL; `echain worker` does not)."""

    functions = FUNCTIONS
    cron_jobs = SCHEDULE
    on_startup = startup
    on_shutdown = shutdown
    on_job_start = bind_job_id
    max_tries = MAX_TRIES
    job_timeout = JOB_TIMEOUT
    keep_result = KEEP_RESULT
    redis_settings = RedisSettings.from_dsn(os.environ.get("ECHAIN_REDIS_URL") or "redis://localhost:6379/0")


async def run_worker(settings: Settings, *, burst: bool = False) -> int:
    """Run jobs until stopped (SIGINT/SIGTERM), or with `burst` until the queue is empty; 1 if a job failed."""
    url, embedded = settings.redis_url, None
    if not url:  # join (or start) the embedded Redis the web process of this data dir uses
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        url = await embedded.start()
    worker = Worker(**worker_options(scheduled=not burst), redis_pool=ArqRedis.from_url(url), burst=burst,
                    handle_signals=not burst,
                    ctx={"settings": settings})
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        log.info("worker stopped")  # a signal: arq cancelled its main task after letting jobs finish
    finally:
        await worker.close()
        if embedded is not None:
            await embedded.stop()
    return 1 if worker.jobs_failed else 0
