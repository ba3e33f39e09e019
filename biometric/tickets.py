"""One-time signing tickets: proof that a person passed a face check for one contract and one purpose.

A ticket is 256 random bits handed to the client once. Redis keeps only its SHA-256 (a Redis dump reveals
no usable ticket) under a 5-minute TTL, with the binding "person|contract|purpose" as the value. Consuming
is one Lua script — atomic in Redis — that compares the binding and GETDELs the key, so a ticket can never
be used twice, even by two concurrent requests. A second key remembers, for a day, that a ticket was used
(and a third that it was ever issued), so the caller hears "already used" or "expired" rather than just
"invalid". A mismatched binding leaves the ticket alone: a leaked ticket cannot be burnt by someone else,
and it is useless to them.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from biometric.errors import TicketRejected
from workflow.errors import DomainError

TICKET_TTL = 300
_MEMORY_TTL = 24 * 3600
_PREFIX = "echain:bio:ticket:"

# Purposes a ticket may be issued for (the signing use cases name one when consuming).
PURPOSES = {
    "sign_contract": "签署保理合同",
    "sign_authorization": "签署授权委托书",
}

# KEYS[1] ticket, KEYS[2] used-marker; ARGV[1] expected binding, ARGV[2] memory TTL.
_CONSUME = """
local value = redis.call('GET', KEYS[1])
if value then
  if value ~= ARGV[1] then return {'mismatch'} end
  redis.call('GETDEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
  return {'ok'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'used'} end
return {'missing'}
"""


@dataclass(frozen=True)
class IssuedTicket:
    """A fresh ticket for the client, and how long it stays valid."""

    ticket: str
    expires_in: int


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8", "replace")).hexdigest()


def _binding(person_id: int, contract_ref: str, purpose: str) -> str:
    return f"{int(person_id)}|{contract_ref}|{purpose}"


def _keys(digest: str) -> tuple[str, str, str]:
    return _PREFIX + digest, _PREFIX + "used:" + digest, _PREFIX + "issued:" + digest


async def issue_ticket(redis: Redis, person_id: int, contract_ref: str, purpose: str, *,
                       ttl: float = TICKET_TTL) -> IssuedTicket:
    """Create a ticket bound to (person, contract, purpose), valid for `ttl` seconds."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown ticket purpose {purpose!r}")
    ticket = secrets.token_urlsafe(32)
    digest = _digest(ticket)
    key, _, issued = _keys(digest)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, _binding(person_id, contract_ref, purpose), px=max(1, int(ttl * 1000)))
        pipe.set(issued, "1", ex=_MEMORY_TTL)
        pipe.sadd(_person_set(person_id), digest)
        pipe.expire(_person_set(person_id), max(1, int(ttl)) + 60)
        await pipe.execute()
    return IssuedTicket(ticket, int(ttl))


async def consume_ticket(redis: Redis, ticket: str, person_id: int, contract_ref: str, purpose: str) -> bool:
    """Use a ticket up: True once; otherwise raise `TicketRejected` saying why (expired / used / mismatch)."""
    if not ticket or len(ticket) > 128:
        raise TicketRejected("人脸核验凭证无效，请重新进行人脸核验", code="face_ticket_invalid")
    digest = _digest(ticket)
    key, used, issued = _keys(digest)
    outcome = await redis.eval(_CONSUME, 2, key, used, _binding(person_id, contract_ref, purpose), _MEMORY_TTL)
    status = outcome[0].decode() if isinstance(outcome[0], bytes) else str(outcome[0])
    if status == "ok":
        await redis.srem(_person_set(person_id), digest)
        return True
    if status == "mismatch":
        raise TicketRejected("人脸核验凭证与当前签署人、合同或用途不符，请针对本次签署重新进行人脸核验",
                             code="face_ticket_mismatch")
    if status == "used":
        raise TicketRejected("人脸核验凭证已使用过，每次签署都需要重新进行人脸核验", code="face_ticket_used")
    if await redis.exists(issued):
        raise TicketRejected("人脸核验凭证已过期（签署须在核验后 5 分钟内完成），请重新进行人脸核验", code="face_ticket_expired")
    raise TicketRejected("人脸核验凭证无效，请重新进行人脸核验", code="face_ticket_invalid")


RESTORE_TTL = 120  # seconds a ticket given back after a failed attempt stays valid: long enough for a retry


async def restore_ticket(redis: Redis, ticket: str, person_id: int, contract_ref: str, purpose: str, *,
                         ttl: float = RESTORE_TTL) -> None:
    """Give back a ticket consumed by an attempt that then failed without signing (see `spending`)."""
    digest = _digest(ticket)
    key, used, _ = _keys(digest)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, _binding(person_id, contract_ref, purpose), px=max(1, int(ttl * 1000)), nx=True)
        pipe.delete(used)
        pipe.sadd(_person_set(person_id), digest)
        await pipe.execute()


@asynccontextmanager
async def spending(redis: Redis, ticket: str, person_id: int, contract_ref: str, purpose: str) -> AsyncIterator[None]:
    """Consume the ticket for the block; give it back when the block fails for a reason other than a refusal.

    A database or storage outage after the ticket was used up would otherwise burn it: the client's retry of
    the same request (same Idempotency-Key) would be refused and the person sent back to face verification.
    A refusal (DomainError) keeps it used: the attempt was judged, not interrupted.
    """
    await consume_ticket(redis, ticket, person_id, contract_ref, purpose)
    try:
        yield
    except DomainError:
        raise
    except Exception:
        with contextlib.suppress(Exception):  # Redis may be the thing that is down; the original error matters
            await restore_ticket(redis, ticket, person_id, contract_ref, purpose)
        raise


async def revoke_tickets(redis: Redis, person_id: int) -> int:
    """Invalidate every outstanding ticket of a person (consent withdrawn); returns how many were live."""
    members = await redis.smembers(_person_set(person_id))
    keys = [_keys(m.decode() if isinstance(m, bytes) else m)[0] for m in members]
    removed = await redis.delete(*keys) if keys else 0
    await redis.delete(_person_set(person_id))
    return int(removed)


def _person_set(person_id: int) -> str:
    return f"{_PREFIX}person:{int(person_id)}"
