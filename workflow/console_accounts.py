"""Operator console accounts: create an operator with a password, authenticate, lock out after repeated failures.

A console operator is an ordinary `User` with is_platform_operator=True (as `grant_operator` makes one), so every
use case authorises them exactly as it authorises the API's operator; `ConsoleAccount` only adds the username
and the argon2id hash (argon2-cffi's PasswordHasher defaults, RFC 9106's recommended parameters).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.console_accounts import ConsoleAccount
from models.people import User
from workflow import ledger
from workflow.errors import Conflict, DomainError, InvalidInput, NotFound, Unauthenticated

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; a cap keeps one request from hashing megabytes
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
OPENID_PREFIX = "console:"  # WeChat openids never contain ":", so a console person never collides with one

_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")
_HASHER = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("echain-console-dummy-password")

BAD_CREDENTIALS = "用户名或密码错误"


class LockedOut(DomainError):
    """Too many failed logins for this username; try again later."""

    status = 429
    code = "login_locked"


def normalise(username: str) -> str:
    """The stored form of a username (trimmed, lower case)."""
    return username.strip().lower()


def check_username(username: str) -> str:
    """A valid username in stored form, or a 422 saying what is allowed."""
    name = normalise(username)
    if not _USERNAME.fullmatch(name):
        raise InvalidInput("用户名须为 3–32 位小写字母、数字或 . _ -，且以字母或数字开头", code="invalid_username")
    return name


def check_password(password: str) -> None:
    """Refuse passwords shorter than 12 characters (or absurdly long)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符", code="password_too_short")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"密码不能超过 {MAX_PASSWORD_LENGTH} 个字符", code="password_too_long")


async def create_operator(username: str, password: str, display_name: str = "") -> ConsoleAccount:
    """A new platform operator who logs in to the console with `username` and `password`."""
    name = check_username(username)
    check_password(password)
    if await ConsoleAccount.exists(username=name):
        raise Conflict(f"用户名 {name} 已存在", code="username_taken")
    password_hash = await asyncio.to_thread(_HASHER.hash, password)  # ~50 ms of CPU: keep it off the loop
    try:
        async with in_transaction() as conn:
            user = await User.create(openid=OPENID_PREFIX + name, display_name=display_name or name,
                                     is_platform_operator=True, using_db=conn)
            account = await ConsoleAccount.create(username=name, password_hash=password_hash, user=user,
                                                  password_changed_at=datetime.now(UTC), using_db=conn)
            await ledger.append(conn, actor="cli", subject=f"user:{user.id}", action="create_console_operator",
                                payload={"username": name})
    except IntegrityError as exc:  # a concurrent creation of the same name won
        raise Conflict(f"用户名 {name} 已存在", code="username_taken") from exc
    return account


async def set_password(username: str, password: str) -> ConsoleAccount:
    """Give an operator a new password (forgotten, or suspected known to someone else); every console session
    that began before it ends (see `session_current`)."""
    name = normalise(username)
    check_password(password)
    account = await ConsoleAccount.get_or_none(username=name)
    if account is None:
        raise NotFound(f"没有用户名为 {name} 的运营人员", code="operator_not_found")
    password_hash = await asyncio.to_thread(_HASHER.hash, password)
    async with in_transaction() as conn:
        await ConsoleAccount.filter(id=account.id).using_db(conn).update(
            password_hash=password_hash, password_changed_at=datetime.now(UTC))
        await ledger.append(conn, actor="cli", subject=f"user:{account.user_id}", action="reset_console_password",
                            payload={"username": name})  # who and when, never the password or its hash
    return await ConsoleAccount.get(id=account.id)


async def session_current(user_id: int, started_at: float) -> bool:
    """Whether a console session that began at `started_at` (epoch seconds) may go on: its operator still has a
    console account whose password has not changed since."""
    changed = await ConsoleAccount.filter(user_id=user_id).values_list("password_changed_at", flat=True)
    return bool(changed) and changed[0].timestamp() <= started_at


def _failures_key(username: str) -> str:
    # A digest, so whatever someone types as a username never becomes part of a Redis key verbatim.
    return "echain:console:login-failures:" + hashlib.sha256(normalise(username).encode()).hexdigest()


async def _record_failure(redis: Redis, username: str) -> None:
    key = _failures_key(username)
    async with redis.pipeline(transaction=True) as pipe:
        # The window starts at the first failure; INCR keeps the TTL that SET ... NX gave the key.
        pipe.set(key, 0, ex=FAILURE_WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        await pipe.execute()


async def _locked(redis: Redis, username: str) -> bool:
    raw = await redis.get(_failures_key(username))
    return raw is not None and int(raw) >= MAX_FAILURES


async def authenticate(redis: Redis, username: str, password: str) -> User:
    """The operator behind a username and password, or one generic refusal; 5 failures in 15 minutes lock the
    username (known or not, so the lock reveals nothing) until the window ends."""
    if await _locked(redis, username):
        raise LockedOut(f"登录失败次数过多，请 {FAILURE_WINDOW_SECONDS // 60} 分钟后再试")
    name = normalise(username)
    account = await ConsoleAccount.get_or_none(username=name).prefetch_related("user") if name else None
    stored = account.password_hash if account is not None else _DUMMY_HASH
    ok = len(password) <= MAX_PASSWORD_LENGTH and await asyncio.to_thread(_verify, stored, password)
    if account is None or not ok or not account.user.is_platform_operator:
        await _record_failure(redis, username)
        raise Unauthenticated(BAD_CREDENTIALS, code="bad_credentials")
    await redis.delete(_failures_key(username))
    values: dict[str, object] = {"last_login_at": datetime.now(UTC)}
    if _HASHER.check_needs_rehash(stored):  # parameters were raised since this hash was made
        values["password_hash"] = await asyncio.to_thread(_HASHER.hash, password)
    await ConsoleAccount.filter(id=account.id).update(**values)
    return account.user


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
