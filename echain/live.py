"""Live progress: transitions are published on Redis pub/sub and streamed to pages as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from echain.keys import LIVE_STREAMS

KEEPALIVE_SECONDS = 15.0


def install(app: web.Application) -> None:
    """Track open streams so a shutdown ends them at once instead of waiting for their next keep-alive."""
    app[LIVE_STREAMS] = set()
    app.on_shutdown.append(_close_streams)


async def _close_streams(app: web.Application) -> None:
    for task in list(app[LIVE_STREAMS]):
        task.cancel()  # `stream` treats it like the client leaving


def channel(subject: str) -> str:
    """The pub/sub channel of one subject, e.g. "financing:42"."""
    return f"echain:events:{subject}"


async def publish(redis: Redis, subject: str, event: dict[str, Any]) -> None:
    """Announce an event to every open stream of the subject (after the change committed)."""
    await redis.publish(channel(subject), json.dumps(event, ensure_ascii=False, default=str))


def _frame(event: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


async def stream(request: web.Request, redis: Redis, subject: str, snapshot: dict[str, Any],
                 *, max_seconds: float | None = None) -> web.StreamResponse:
    """Send the current state, then each published event, until the client leaves."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx must not buffer the stream
    })
    pubsub = redis.pubsub()
    # Subscribe before sending the snapshot, so no transition falls between the two.
    await pubsub.subscribe(channel(subject))
    open_streams = request.config_dict.get(LIVE_STREAMS, set())
    task = asyncio.current_task()
    open_streams.add(task)
    try:
        await response.prepare(request)
        await response.write(_frame("snapshot", json.dumps(snapshot, ensure_ascii=False, default=str)))
        await _relay(response, pubsub, max_seconds)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        open_streams.discard(task)
        await pubsub.aclose()  # closing the connection ends the subscription too
    return response


async def _relay(response: web.StreamResponse, pubsub: Any, max_seconds: float | None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds if max_seconds else None
    while deadline is None or loop.time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=KEEPALIVE_SECONDS)
        if message is None:
            await response.write(b": keepalive\n\n")
            continue
        data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
        version = str(json.loads(data).get("version", "")) or None
        await response.write(_frame("transition", data, version))


class RedisEventSink:
    """Publishes committed transitions for the live-progress streams."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def emit(self, event) -> None:  # noqa: ANN001 - workflow.events.TransitionEvent
        """Publish on the subject's channel."""
        await publish(self.redis, event.subject, event.as_dict())
