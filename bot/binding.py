"""Linking an Official Account follower to their mini-program account: by unionid, or by a one-time code.

openids are per account, so the follower's OA openid says nothing about who they are in the mini-program.
WeChat's unionid is shared by all accounts of one 开放平台 owner: when OA `user/info` returns one and a
mini-program login stored the same `User.unionid`, the link is proved. Otherwise the person shows a code
from the mini-program (valid 10 minutes, single use) and sends "绑定 <code>" to the OA.
https://developers.weixin.qq.com/doc/offiaccount/User_Management/Get_users_basic_information_UnionID.html
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from redis.asyncio import Redis
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models.people import User
from models.wechat_links import WeChatLink
from wechat.client import WeChatClient, WeChatError
from workflow import ledger

log = logging.getLogger("echain.bot.binding")

CODE_TTL = 600
CODE_LENGTH = 8
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I/L to misread
MAX_FAILURES = 5  # wrong codes per follower per CODE_TTL: guessing 32^8 codes is hopeless at this rate
NO_UNIONID_TTL = 300  # after a lookup without result, ask WeChat again at most every 5 minutes


class BindingError(Exception):
    """The code could not be used; the message is Chinese for the follower."""


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_code(text: str) -> str:
    """What the person typed, without spaces or dashes, upper-cased."""
    return "".join(ch for ch in text.upper() if ch not in " -\u3000")


async def issue_code(redis: Redis, user: User) -> str:
    """A fresh one-time binding code for `user`; any earlier code of theirs stops working."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    user_key = f"echain:bot:bind:user:{user.id}"
    previous = await redis.get(user_key)
    async with redis.pipeline(transaction=True) as pipe:
        if previous:
            pipe.delete(f"echain:bot:bind:code:{previous.decode() if isinstance(previous, bytes) else previous}")
        # Only a digest is a key: whoever lists Redis keys cannot read usable codes.
        pipe.set(f"echain:bot:bind:code:{_digest(code)}", str(user.id), ex=CODE_TTL)
        pipe.set(user_key, _digest(code), ex=CODE_TTL)
        await pipe.execute()
    return code


async def redeem_code(redis: Redis, oa_openid: str, text: str) -> User:
    """Use a binding code sent by follower `oa_openid`: link them to the code's owner, or BindingError."""
    failures_key = f"echain:bot:bind:fail:{oa_openid}"
    failures = await redis.get(failures_key)
    if failures is not None and int(failures) >= MAX_FAILURES:
        raise BindingError("绑定码错误次数过多，请 10 分钟后再试。")
    code = normalise_code(text)
    user_id = None
    if len(code) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in code):
        user_id = await redis.getdel(f"echain:bot:bind:code:{_digest(code)}")  # single use
    user = await User.get_or_none(id=int(user_id)) if user_id else None
    if user is None:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures_key)
            pipe.expire(failures_key, CODE_TTL)
            await pipe.execute()
        raise BindingError("绑定码无效或已过期。请在小程序“我的 → 绑定公众号”中重新获取绑定码（10 分钟内有效），"
                           "然后发送：绑定 绑定码")
    await redis.delete(f"echain:bot:bind:user:{user.id}", failures_key)
    await link(oa_openid, user, via="code")
    return user


async def link(oa_openid: str, user: User, *, via: str) -> WeChatLink:
    """Link the follower to the person (replacing any earlier link of either) and record it in the ledger."""
    async with in_transaction() as conn:
        await WeChatLink.filter(Q(oa_openid=oa_openid) | Q(user_id=user.id)).using_db(conn).delete()
        row = await WeChatLink.create(oa_openid=oa_openid, user=user, via=via, using_db=conn)
        # The openid stays out of the ledger (append-only, and personal data); how the link was proved goes in.
        await ledger.append(conn, actor=f"user:{user.id}", subject=f"user:{user.id}", action="link_official_account",
                            payload={"via": via})
    return row


async def linked_user(oa_openid: str) -> User | None:
    """The person a follower is linked to, if any."""
    row = await WeChatLink.get_or_none(oa_openid=oa_openid).prefetch_related("user")
    return row.user if row is not None else None


async def link_by_unionid(redis: Redis, oa: WeChatClient, oa_openid: str) -> User | None:
    """Link the follower through WeChat's unionid when WeChat gives one and a mini-program user has it."""
    skip_key = f"echain:bot:bind:nounion:{oa_openid}"
    if await redis.exists(skip_key):
        return None
    try:
        info = await oa.user_info(oa_openid)
    except WeChatError as exc:
        log.info("user/info gave no answer for a follower: %s", exc)
        info = {}
    unionid = info.get("unionid")
    user = await User.get_or_none(unionid=unionid) if isinstance(unionid, str) and unionid else None
    if user is None:
        await redis.set(skip_key, "1", ex=NO_UNIONID_TTL)
        return None
    await link(oa_openid, user, via="unionid")
    return user


async def forget_lookup(redis: Redis, oa_openid: str) -> None:
    """Allow an immediate unionid lookup again (e.g. when the follower re-follows)."""
    await redis.delete(f"echain:bot:bind:nounion:{oa_openid}")
