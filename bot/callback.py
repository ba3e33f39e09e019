"""The Official Account callback: `GET /wechat` (server verification) and `POST /wechat` (messages, events).

Order of checks on every request: signature (constant time) and timestamp window, then the size limit,
then the hardened parser; safe mode additionally checks msg_signature over Encrypt and the app id inside
the ciphertext. Only then is the message deduplicated and answered, within WeChat's 5 s.
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot import dispatch, signing, texts, wirexml
from bot.context import BOT, Bot
from bot.crypto import CryptoError
from bot.dedup import PENDING
from bot.delivery import clip
from echain import metrics

log = logging.getLogger("echain.bot.callback")

_ECHOSTR = re.compile(r"[0-9A-Za-z_\-]{1,128}")  # WeChat sends a random number; never reflect anything else
_QUERY_BODY_TTL = 2 * signing.MAX_SKEW_SECONDS + 60
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
REDIS_PROBE_SECONDS = 1.5


def _refuse(status: int, reason: str, request: web.Request) -> web.Response:
    log.warning("refused WeChat callback %s from %s: %s", request.method, request.remote, reason)
    metrics.wechat_refusal(status)
    return web.Response(status=status, text=reason)


def _bot(request: web.Request) -> Bot:
    bot = request.app[BOT]
    if not bot.token:  # without a token anybody could sign: the callback stays off
        raise web.HTTPNotFound()
    return bot


async def verify_server(request: web.Request) -> web.Response:
    """GET /wechat: answer WeChat's server check with the echostr when the signature is ours."""
    bot = _bot(request)
    reason = signing.verify_query(bot.token, dict(request.query), bot.clock())
    if reason:
        return _refuse(403, reason, request)
    echostr = request.query.get("echostr", "")
    if not _ECHOSTR.fullmatch(echostr):
        return _refuse(400, "bad echostr", request)
    return web.Response(text=echostr)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (checked while reading, not after)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


async def _bound_to_one_body(bot: Bot, query: dict[str, str], body: bytes) -> bool:
    """A signed URL may be retried with its body, never reused with another one (the plain-mode body is unsigned)."""
    url_key = hashlib.sha1(f"{query['signature']}:{query['timestamp']}:{query['nonce']}".encode()).hexdigest()
    key, digest = f"echain:bot:signed:{url_key}", hashlib.sha256(body).hexdigest()
    redis = bot.deps.redis
    if await redis.set(key, digest, nx=True, ex=_QUERY_BODY_TTL):
        return True
    stored = await redis.get(key)
    return stored is not None and (stored.decode() if isinstance(stored, bytes) else stored) == digest


async def receive(request: web.Request) -> web.Response:
    """POST /wechat: one message or event, plain or safe mode (`encrypt_type=aes`)."""
    bot = _bot(request)
    query = dict(request.query)
    reason = signing.verify_query(bot.token, query, bot.clock())
    if reason:
        return _refuse(403, reason, request)
    body = await _read_limited(request, bot.max_body)
    if body is None:
        return _refuse(413, "body too large", request)
    try:
        # The first Redis call also probes Redis: a hung server must not eat WeChat's 5 s (the socket timeout is
        # longer), so it gets a short budget of its own, after which the message is treated as Redis being down.
        bound: bool | None = await asyncio.wait_for(_bound_to_one_body(bot, query, body), REDIS_PROBE_SECONDS)
    except (*REDIS_DOWN, TimeoutError):
        bound = None  # cannot tell: below, the message is parsed for the reply's addressing but never acted on
    if bound is False:
        return _refuse(403, "signed URL replayed with another body", request)
    safe = query.get("encrypt_type", "raw").lower() == "aes"
    if bot.crypto is not None and not safe:
        return _refuse(400, "safe mode required", request)  # with an EncodingAESKey set, plain posts are refused
    try:
        if safe:
            body = _decrypt(bot, query, body)
        msg = wirexml.Message(wirexml.parse(body))
    except (wirexml.BadXml, CryptoError, PermissionError) as exc:
        return _refuse(403 if isinstance(exc, PermissionError) else 400, str(exc), request)
    if not msg.openid or not msg.msg_type:
        return _refuse(400, "not a WeChat message", request)
    try:
        if bound is None:
            raise RedisConnectionError("replay check unavailable")
        reply = await answer(bot, msg)
    except REDIS_DOWN as exc:
        # Without Redis (dedup, conversation state) nothing can be handled safely; still answer within WeChat's
        # 5 s with a clear text, rather than an error WeChat retries and then shows as "暂时无法提供服务".
        log.warning("Redis unavailable, answering the WeChat %s message with a fallback: %r", msg.msg_type, exc)
        reply = _render(bot, msg, texts.UNAVAILABLE)
        metrics.wechat_callback(msg.msg_type, "unavailable")
    if not reply:
        return web.Response(text="success")  # "直接回复success": WeChat shows nothing and does not retry
    if safe:
        reply = _encrypt(bot, reply, query["nonce"])
    return web.Response(text=reply, content_type="application/xml")


def _decrypt(bot: Bot, query: dict[str, str], body: bytes) -> bytes:
    if bot.crypto is None:
        raise CryptoError("safe mode is not configured (no EncodingAESKey)")
    envelope = wirexml.parse(body)
    encrypt = envelope.get("Encrypt", "")
    expected = signing.signature(bot.token, query["timestamp"], query["nonce"], encrypt)
    if not encrypt or not signing.matches(expected, query.get("msg_signature", "")):
        raise PermissionError("bad msg_signature")
    return bot.crypto.decrypt(encrypt).encode()


def _encrypt(bot: Bot, reply: str, nonce: str) -> str:
    assert bot.crypto is not None
    timestamp = str(int(bot.clock()))
    encrypt = bot.crypto.encrypt(reply)
    return wirexml.encrypted_reply(encrypt, signing.signature(bot.token, timestamp, nonce, encrypt), timestamp, nonce)


async def answer(bot: Bot, msg: wirexml.Message) -> str:
    """The plaintext reply XML ("" for success); a retried message gets the first answer again."""
    key = bot.dedup.key(msg.account, msg.dedup_key())
    stored = await bot.dedup.claim(key)
    if stored is not None:
        metrics.wechat_callback(msg.msg_type, "dedup")
        if stored == PENDING:
            stored = await bot.dedup.wait_for_reply(key, bot.reply_budget) or ""
        return stored
    try:
        text = await _within_budget(bot, msg)
    except Exception:
        log.exception("handling a WeChat %s message failed", msg.msg_type)
        metrics.wechat_callback(msg.msg_type, "failed")
        await bot.dedup.release(key)
        return _render(bot, msg, texts.FAILED)
    reply = _render(bot, msg, text) if text else ""
    await bot.dedup.complete(key, reply)
    metrics.wechat_callback(msg.msg_type, "replied" if reply else "acknowledged")  # acknowledged: "success"
    return reply


def _render(bot: Bot, msg: wirexml.Message, text: str) -> str:
    return wirexml.text_reply(msg.openid, msg.account, clip(text), int(bot.clock()))


async def _within_budget(bot: Bot, msg: wirexml.Message) -> str | None:
    """The answer if ready within the budget; otherwise None now and a customer-service message later."""
    late = asyncio.Event()

    async def work() -> str | None:
        try:
            outcome = await dispatch.handle(bot, msg)
        except Exception:
            if late.is_set():
                await bot.delivery.send(msg.openid, texts.FAILED)
            raise
        if late.is_set() and outcome.text:
            await bot.delivery.send(msg.openid, outcome.text)
        return outcome.text

    task = bot.tasks.spawn(work(), name=f"bot-message:{msg.dedup_key()}")
    try:
        return await asyncio.wait_for(asyncio.shield(task), bot.reply_budget)
    except TimeoutError:
        if task.done():  # finished while the timeout was being delivered
            return task.result()
        late.set()
        return None
