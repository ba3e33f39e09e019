"""Prometheus metrics: what the process counts, the HTTP middleware that times requests, and `/metrics`.

One registry per process (`REGISTRY`, not prometheus_client's global one): the counters are called from the
domain (transitions), the bot and the face checks, which have no app at hand, and a process is what Prometheus
scrapes. Several apps in one process (the tests) share it, so tests compare values before and after.

Job counters are different: jobs are queued by the web processes and the worker's own jobs, and run by `echain
worker`, which may be a separate container, a `--burst` run from cron or the demo's in-process worker — none of
which lives long enough, or listens anywhere, to be scraped. So they are kept in Redis (HINCRBY on one hash) and
every app's `/metrics` reports the shared totals: aggregate them across app replicas with max(), not sum().
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.exceptions import RedisError

log = logging.getLogger("echain.metrics")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_DURATION = Histogram(
    "echain_http_request_duration_seconds", "HTTP request duration by method, route template and status",
    ["method", "route", "status"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WECHAT_CALLBACKS = Counter(
    "echain_wechat_callbacks", "Official Account callback requests by message type and outcome",
    ["msg_type", "outcome"], registry=REGISTRY,
)
FACE_SECONDS = Histogram(
    "echain_face_verification_seconds", "Face verification duration (every recorded attempt) by method",
    ["method"], registry=REGISTRY, buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
)
FACE_OUTCOMES = Counter(
    "echain_face_verifications", "Face verification attempts by method and recorded outcome",
    ["method", "outcome"], registry=REGISTRY,
)
TRANSITIONS = Counter(
    "echain_transitions", "Committed financing transitions by action", ["action"], registry=REGISTRY,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Label values come from requests: anything outside these sets is folded, so nobody can grow the series count.
_MSG_TYPES = frozenset({"text", "image", "voice", "video", "shortvideo", "location", "link", "file", "event"})


def route_of(request: web.Request) -> str:
    """The matched route's template ("/api/v1/financings/{financing_id}"), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Time every request into echain_http_request_duration_seconds."""
    started, status = time.perf_counter(), 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        method = request.method if request.method in _METHODS else "OTHER"
        HTTP_DURATION.labels(method, route_of(request), str(status)).observe(time.perf_counter() - started)


def wechat_callback(msg_type: str, outcome: str) -> None:
    """Count one Official Account callback (outcome: replied, acknowledged, dedup, failed, rejected_signature…)."""
    WECHAT_CALLBACKS.labels(msg_type if msg_type in _MSG_TYPES else "other", outcome).inc()


def wechat_refusal(status: int) -> None:
    """Count a callback refused before its message was read (403: signature, 413: size, else malformed)."""
    WECHAT_CALLBACKS.labels("unknown", {403: "rejected_signature", 413: "too_large"}.get(status, "malformed")).inc()


def face_verification(method: str, outcome: str, seconds: float) -> None:
    """Record one face verification attempt (outcome as stored in FaceAttempt.outcome)."""
    FACE_SECONDS.labels(method).observe(seconds)
    FACE_OUTCOMES.labels(method, outcome).inc()


def transition(action: str) -> None:
    """Count one committed financing transition."""
    TRANSITIONS.labels(action).inc()


# ---- jobs (shared through Redis) ------------------------------------------------------------------------

JOBS_KEY = "echain:metrics:jobs"
ARQ_QUEUE = "arq:queue"  # arq's default queue (a sorted set of job ids)
JOB_EVENTS = ("queued", "retried", "failed")


async def count_job(redis: Any, event: str, function: str) -> None:
    """Add one to the shared counter of `event` for `function`; a Redis hiccup costs a count, never the job."""
    try:
        await redis.hincrby(JOBS_KEY, f"{event}:{function}", 1)
    except (RedisError, OSError) as exc:
        log.warning("could not count job %s %s: %r", event, function, exc)


async def job_queued(redis: Any, job: object | None, function: str) -> None:
    """Count an enqueue that queued something (arq returns None when the job id is already known)."""
    if job is not None:
        await count_job(redis, "queued", function)


def observed_job(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap an arq job function so a retry or a failure is counted (arq's own counters die with the worker)."""
    from arq import Retry

    @functools.wraps(fn)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(ctx, *args, **kwargs)
        except Retry:
            await count_job(ctx["redis"], "retried", fn.__name__)
            raise
        except Exception:
            await count_job(ctx["redis"], "failed", fn.__name__)
            raise

    return run


class _Snapshot:
    """A collector over job counts read from Redis just before the scrape."""

    def __init__(self, counts: dict[str, int], depth: int | None) -> None:
        self.counts, self.depth = counts, depth

    def collect(self) -> Iterator[Metric]:
        for event in JOB_EVENTS:
            family = CounterMetricFamily(f"echain_jobs_{event}", f"Worker jobs {event}, all processes (Redis)",
                                         labels=["function"])
            for key, value in sorted(self.counts.items()):
                kind, _, function = key.partition(":")
                if kind == event:
                    family.add_metric([function], value)
            yield family
        if self.depth is not None:
            yield GaugeMetricFamily("echain_jobs_queue_depth", "Jobs waiting in the arq queue", value=self.depth)


async def _job_snapshot(redis: Any) -> _Snapshot:
    try:
        raw = await redis.hgetall(JOBS_KEY)
        depth = await redis.zcard(ARQ_QUEUE)
    except (RedisError, OSError) as exc:  # the scrape still answers; job series are missing this time
        log.warning("job metrics unavailable: %r", exc)
        return _Snapshot({}, None)
    counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    return _Snapshot(counts, int(depth))


# ---- the /metrics endpoint ------------------------------------------------------------------------------


def _refusal(token: str, dev: bool, authorization: str) -> web.Response | None:
    from echain.api import error_response

    if not token:
        if dev:
            return None
        return error_response(403, "metrics_token_not_configured", "生产环境需配置 ECHAIN_METRICS_TOKEN 后才能读取监控指标")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return None
    refused = error_response(401, "metrics_token_invalid", "监控令牌无效")
    refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return refused


async def metrics_endpoint(request: web.Request) -> web.Response:
    """GET /metrics: open in dev; otherwise only with `Authorization: Bearer <ECHAIN_METRICS_TOKEN>`."""
    from echain.keys import REDIS, SETTINGS

    settings = request.app[SETTINGS]
    refusal = _refusal(settings.metrics_token, settings.dev, request.headers.get("Authorization", ""))
    if refusal is not None:
        return refusal
    jobs = CollectorRegistry()
    jobs.register(await _job_snapshot(request.app[REDIS]))
    body = generate_latest(REGISTRY) + generate_latest(jobs)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application) -> None:
    """Serve /metrics (the timing middleware is in create_app's list)."""
    app.router.add_get("/metrics", metrics_endpoint, name="metrics")
