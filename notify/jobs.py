"""The worker's notification jobs (arq). Jobs carry ids only; everything else is read after commit.

Job ids are deterministic, so the same event or notice is never queued twice while arq still knows it
(queued, running or its result kept), and a retry reuses the id: notify:<subject>:<version> for the
fan-out, notify:<subject>:<version>:<user id> for one person's notice.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from echain import metrics
from notify.delivery import Notifier, Outcome, TryLater, record, told_key
from notify.targets import current_financing, recipients

log = logging.getLogger("echain.notify")

MAX_TRIES = 5
# Seconds before tries 2…5: 5+15+45+120 s in all, inside the 10 minutes in which WeChat drops a repeated
# template message with the same client_msg_id (see notify/delivery.py).
BACKOFF = (5, 15, 45, 120)

NOTIFY_TRANSITION = "notify_transition"
SEND_NOTICE = "send_notice"


def event_job_id(subject: str, version: int) -> str:
    """Job id of the fan-out for one committed transition."""
    return f"notify:{subject}:{version}"


def notice_job_id(subject: str, version: int, user_id: int) -> str:
    """Job id of one person's notice about one committed transition."""
    return f"notify:{subject}:{version}:{user_id}"


def backoff(job_try: int) -> int:
    """Seconds to wait before the next try after try `job_try` failed."""
    return BACKOFF[min(job_try, len(BACKOFF)) - 1]


def _retry(ctx: dict[str, Any]) -> Retry:
    return Retry(defer=backoff(ctx.get("job_try", 1)))


def _last_try(ctx: dict[str, Any]) -> bool:
    return ctx.get("job_try", 1) >= MAX_TRIES


async def notify_transition(ctx: dict[str, Any], subject: str, version: int, action: str) -> list[int]:
    """Queue one notice per person awaited after the transition; returns their user ids."""
    try:
        financing = await current_financing(subject, version)
        if financing is None:
            return []  # stale: a newer transition's job tells whoever is awaited now
        queue = ctx["redis"]
        queued = []
        for r in await recipients(financing, action):
            if r.repeat and await queue.exists(told_key(subject, r.step.action, r.user_id)):
                continue
            job = await queue.enqueue_job(SEND_NOTICE, subject, version, r.user_id, r.step.action,
                                          _job_id=notice_job_id(subject, version, r.user_id))
            await metrics.job_queued(queue, job, SEND_NOTICE)
            queued.append(r.user_id)
        return queued
    except Exception as exc:  # noqa: BLE001 - database or Redis trouble: arq retries only on Retry
        if _last_try(ctx):
            raise
        log.warning("notification fan-out for %s v%s failed (%s); retrying", subject, version, exc)
        raise _retry(ctx) from exc


async def send_notice(ctx: dict[str, Any], subject: str, version: int, user_id: int, action: str) -> str:
    """Deliver one person's notice; returns the outcome ("sent:subscribe", "no_channel", …)."""
    notifier: Notifier = ctx["notifier"]
    try:
        outcome = await notifier.deliver(subject, version, user_id, action)
    except TryLater as exc:
        if _last_try(ctx):
            outcome = Outcome("failed", errcode=exc.errcode)
            await record(subject, version, user_id, action, outcome)
            log.warning("giving up notice %s v%s for user %s: %s", subject, version, user_id, exc)
            await metrics.count_job(ctx["redis"], "failed", SEND_NOTICE)  # given up: returns, so arq calls it done
        else:
            raise _retry(ctx) from exc
    except Exception as exc:  # noqa: BLE001 - database or Redis trouble before anything was sent
        if _last_try(ctx):
            raise
        log.warning("notice %s v%s for user %s failed (%s); retrying", subject, version, user_id, exc)
        raise _retry(ctx) from exc
    return f"{outcome.status}:{outcome.channel}" if outcome.channel else outcome.status
