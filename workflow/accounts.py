"""Login through the mini-program (jscode2session), revocable bearer sessions in Redis."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.people import User
from wechat.client import WeChatError
from workflow import ledger
from workflow.deps import Deps
from workflow.errors import ServiceUnavailable, Unauthenticated

# jscode2session errors that mean "this code is no good" (WeChat mini-program login docs):
# 40029 invalid code, 40163 code been used, 40226 high-risk user blocked.
_BAD_CODE = {40029: "登录凭证无效，请重新打开小程序登录", 40163: "登录凭证已被使用，请重新登录", 40226: "该微信账号存在风险，登录被拦截"}


@dataclass
class LoginResult:
    """A new session for a person."""

    token: str
    user: User
    created: bool


def _session_key(token: str) -> str:
    # Only a digest of the token is a Redis key: a leaked key list cannot be replayed as tokens.
    return "echain:session:" + hashlib.sha256(token.encode()).hexdigest()


async def login(deps: Deps, code: str) -> LoginResult:
    """Exchange a wx.login code for a bearer token; creates the person on first login."""
    try:
        session = await deps.miniapp.code_to_session(code)
    except WeChatError as exc:
        if exc.errcode in _BAD_CODE:
            raise Unauthenticated(_BAD_CODE[exc.errcode], code="invalid_login_code") from exc
        if exc.errcode == -1:
            raise ServiceUnavailable("微信登录服务暂时无法访问，请稍后重试") from exc
        raise Unauthenticated(f"微信登录失败（{exc.errcode}），请重新登录", code="login_failed") from exc
    user, created = await _user_for(session["openid"], session.get("unionid"))
    token = secrets.token_urlsafe(32)
    # session_key stays on the server (never sent to the client) and is encrypted even in Redis.
    record = {"uid": user.id, "sk": deps.pii.encrypt(session["session_key"], context="wechat.session_key")}
    await deps.redis.set(_session_key(token), json.dumps(record), ex=deps.session_ttl)
    return LoginResult(token, user, created)


async def _user_for(openid: str, unionid: str | None) -> tuple[User, bool]:
    user = await User.get_or_none(openid=openid)
    if user is not None:
        if unionid and user.unionid != unionid:
            user.unionid = unionid
            await user.save(update_fields=["unionid"])
        return user, False
    try:
        return await User.create(openid=openid, unionid=unionid), True
    except IntegrityError:  # two first logins raced: the other one created the row
        return await User.get(openid=openid), False


async def authenticate(deps: Deps, token: str) -> User:
    """The person behind a bearer token, or a 401."""
    raw = await deps.redis.get(_session_key(token)) if token else None
    if raw is None:
        raise Unauthenticated("登录已失效，请重新登录", code="session_expired")
    user = await User.get_or_none(id=json.loads(raw)["uid"])
    if user is None:
        raise Unauthenticated("账号不存在，请重新登录", code="session_expired")
    return user


async def logout(deps: Deps, token: str) -> None:
    """Revoke the session at once."""
    await deps.redis.delete(_session_key(token))


async def grant_operator(openid: str) -> User:
    """Make a person a platform operator (creates the person if they never logged in)."""
    async with in_transaction() as conn:
        user, _ = await User.get_or_create(openid=openid, using_db=conn)
        await User.filter(id=user.id).using_db(conn).update(is_platform_operator=True)
        await ledger.append(conn, actor="cli", subject=f"user:{user.id}", action="grant_operator", payload={})
    return await User.get(id=user.id)
