"""Sending one notice to one person: subscribe message when they allowed one, else an OA template message.

Delivery semantics — at most once per (event, person, channel):

- A Redis marker per (event, person, channel) is written with SET NX *before* WeChat is called ("pending")
  and becomes "sent:<msgid>" once WeChat accepted. A job that finds any marker for the (event, person) does
  not send again, so neither an arq retry, nor a job re-enqueued after its result expired, nor a worker that
  crashed between WeChat's answer and the acknowledgement can produce a second message. The price: a crash in
  that small window loses the notice — acceptable because it is a nudge; the person's 待办 list (read from
  the same transition table) still shows the task. We chose this over at-least-once because every subscribe
  message spends one of the person's scarce acceptances and a duplicate "请审批" looks like a second request.
- WeChat answered with an error: nothing was delivered, so the marker is removed. 43101 (no subscribe quota)
  falls back to the OA template message at once; busy/limit codes are retried by the job with back-off.
- No answer at all (timeout, connection or HTTP error: the message may or may not have gone out):
  subscribe → marked "unknown", never resent (at most once); OA template → retried, because the request
  carries client_msg_id and WeChat itself drops a repeat of it within 10 minutes (the back-off schedule in
  notify/jobs.py stays inside that window).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from models.financing import Financing
from models.notifications import Notification
from models.people import User
from notify import quota
from notify.links import oa_openid_for
from notify.messages import NotifyConfig, notice_fields, page_path, subscribe_payload, template_payload
from notify.targets import current_financing
from wechat.client import BAD_RESPONSE_MESSAGE, UNAVAILABLE_MESSAGE, WeChatClient, WeChatError

log = logging.getLogger("echain.notify")

MARKER_TTL = 30 * 86400  # far longer than any retry or re-enqueue of the same event
NO_QUOTA = 43101  # "user refuse to accept the msg": no subscribe acceptance left
# Worth trying again later: system busy (-1), API call limits (45009 daily, 45011 per minute).
RETRY_LATER = frozenset({-1, 45009, 45011})
PENDING, UNKNOWN = b"pending", b"unknown"


class TryLater(Exception):
    """WeChat could not take the message now; the job retries with back-off."""

    def __init__(self, error: WeChatError) -> None:
        super().__init__(str(error))
        self.errcode = error.errcode


@dataclass(frozen=True)
class Outcome:
    """What happened to one notice."""

    status: str  # sent / no_channel / failed / maybe_sent / already_sent / stale / gone
    channel: str = ""  # subscribe / template
    msgid: str | None = None
    errcode: int | None = None


def no_answer(error: WeChatError) -> bool:
    """True when WeChat never answered (our client's -1 for transport failures), so delivery is unknown."""
    return error.errcode == -1 and error.errmsg in (UNAVAILABLE_MESSAGE, BAD_RESPONSE_MESSAGE)


def marker_key(subject: str, version: int, user_id: int, channel: str) -> str:
    """Redis key of the at-most-once marker of one (event, person, channel)."""
    return f"echain:notify:sent:{subject}:{version}:{user_id}:{channel}"


def told_key(subject: str, action: str, user_id: int) -> str:
    """Redis key saying the person was told to take `action` on the subject (see targets.Recipient.repeat)."""
    return f"echain:notify:told:{subject}:{action}:{user_id}"


@dataclass
class Notifier:
    """Sends notices through the mini-program and Official Account clients."""

    redis: Redis
    miniapp: WeChatClient
    oa: WeChatClient
    config: NotifyConfig

    async def deliver(self, subject: str, version: int, user_id: int, action: str) -> Outcome:
        """Tell one person to take `action` on the subject as of `version` (see the module doc for retries)."""
        financing = await current_financing(subject, version)
        if financing is None:
            return Outcome("stale")
        user = await User.get_or_none(id=user_id)
        if user is None:
            return Outcome("gone")
        channels = ("subscribe", "template")
        marks = await self.redis.mget([marker_key(subject, version, user_id, c) for c in channels])
        for channel, mark in zip(channels, marks, strict=True):
            if mark is not None:
                return Outcome("already_sent" if mark.startswith(b"sent:") else "maybe_sent", channel)
        page = page_path(financing.id, action)
        outcome = await self._subscribe(subject, version, user, financing, action, page)
        if outcome is None:
            outcome = await self._template(subject, version, user, financing, action, page)
        await record(subject, version, user_id, action, outcome, page)
        if outcome.status == "sent":
            await self.redis.set(told_key(subject, action, user_id), b"1", ex=MARKER_TTL)
        return outcome

    @staticmethod
    async def _token(client: WeChatClient) -> None:
        """Have an access token before anything is marked: failing to get one means nothing was sent."""
        try:
            await client.access_token()
        except WeChatError as exc:
            raise TryLater(exc) from exc

    async def _claim(self, key: str) -> bool:
        return bool(await self.redis.set(key, PENDING, nx=True, ex=MARKER_TTL))

    async def _sent(self, key: str, result: dict) -> str | None:
        msgid = str(result["msgid"]) if result.get("msgid") is not None else None
        await self.redis.set(key, f"sent:{msgid or ''}".encode(), ex=MARKER_TTL)
        return msgid

    async def _subscribe(self, subject: str, version: int, user: User, financing: Financing, action: str,
                         page: str) -> Outcome | None:
        """Outcome of the subscribe channel, or None to fall back to the OA template."""
        template_id = self.config.subscribe_template_id
        if not template_id or not await quota.remaining(user.id, template_id):
            return None
        await self._token(self.miniapp)
        if not await quota.take(user.id, template_id):
            return None
        key = marker_key(subject, version, user.id, "subscribe")
        if not await self._claim(key):  # another run of this notice got here first
            await quota.give_back(user.id, template_id)
            return Outcome("maybe_sent", "subscribe")
        payload = subscribe_payload(self.config, user.openid, page, notice_fields(financing, action))
        try:
            result = await self.miniapp.send_subscribe(payload)
        except WeChatError as exc:
            if no_answer(exc):
                await self.redis.set(key, UNKNOWN, ex=MARKER_TTL)
                log.warning("no answer to subscribe message for %s v%s user %s: not resent", subject, version, user.id)
                return Outcome("maybe_sent", "subscribe", errcode=exc.errcode)
            await self.redis.delete(key)
            if exc.errcode == NO_QUOTA:
                await quota.exhausted(user.id, template_id)
                return None
            await quota.give_back(user.id, template_id)
            if exc.errcode in RETRY_LATER:
                raise TryLater(exc) from exc
            log.warning("subscribe message refused for user %s (%s); trying the OA template", user.id, exc)
            return None
        return Outcome("sent", "subscribe", await self._sent(key, result))

    async def _template(self, subject: str, version: int, user: User, financing: Financing, action: str,
                        page: str) -> Outcome:
        """Outcome of the Official Account template channel."""
        oa_openid = await oa_openid_for(user.id) if self.config.oa_template_id else None
        if not oa_openid:
            return Outcome("no_channel")
        await self._token(self.oa)
        key = marker_key(subject, version, user.id, "template")
        if not await self._claim(key):
            return Outcome("maybe_sent", "template")
        payload = template_payload(self.config, oa_openid, page, notice_fields(financing, action),
                                   client_msg_id=f"{subject}:{version}")
        try:
            result = await self.oa.send_template(payload)
        except WeChatError as exc:
            await self.redis.delete(key)
            if exc.errcode in RETRY_LATER:  # includes no answer: client_msg_id makes the retry safe
                raise TryLater(exc) from exc
            log.warning("template message refused for user %s: %s", user.id, exc)
            return Outcome("failed", "template", errcode=exc.errcode)
        return Outcome("sent", "template", await self._sent(key, result))



async def record(subject: str, version: int, user_id: int, action: str, outcome: Outcome, page: str = "") -> None:
    """Keep the outcome (one row per event and person; a later attempt's outcome replaces an earlier one)."""
    await Notification.update_or_create(
        defaults={"action": action, "channel": outcome.channel, "status": outcome.status, "msgid": outcome.msgid,
                  "errcode": outcome.errcode, "page": page},
        subject=subject, version=version, user_id=user_id,
    )
