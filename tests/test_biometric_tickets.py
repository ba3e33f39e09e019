"""Signing tickets, lock-out and challenges against the real Redis (no face work here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from biometric import liveness, tickets
from biometric.errors import LivenessFailed, LockedOut, TicketRejected
from biometric.lockout import Lockout
from biometric.pipeline import FaceAnalysis
from workflow.errors import Conflict


@pytest.fixture
async def redis(redis_clean: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_clean)
    yield client
    await client.aclose()


async def test_ticket_is_single_use(redis: Redis) -> None:
    issued = await tickets.issue_ticket(redis, 7, "financing:42:v1", "sign_contract")
    assert issued.expires_in == 300 and len(issued.ticket) >= 40
    assert await tickets.consume_ticket(redis, issued.ticket, 7, "financing:42:v1", "sign_contract") is True
    with pytest.raises(TicketRejected) as used:
        await tickets.consume_ticket(redis, issued.ticket, 7, "financing:42:v1", "sign_contract")
    assert used.value.code == "face_ticket_used" and "已使用" in used.value.message


async def test_concurrent_consumers_get_exactly_one_success(redis: Redis) -> None:
    issued = await tickets.issue_ticket(redis, 7, "financing:42:v1", "sign_contract")
    results = await asyncio.gather(
        *(tickets.consume_ticket(redis, issued.ticket, 7, "financing:42:v1", "sign_contract") for _ in range(10)),
        return_exceptions=True,
    )
    assert results.count(True) == 1
    assert all(isinstance(r, TicketRejected) and r.code == "face_ticket_used" for r in results if r is not True)


async def test_ticket_expires(redis: Redis) -> None:
    issued = await tickets.issue_ticket(redis, 7, "financing:42:v1", "sign_contract", ttl=0.05)
    await asyncio.sleep(0.2)
    with pytest.raises(TicketRejected) as expired:
        await tickets.consume_ticket(redis, issued.ticket, 7, "financing:42:v1", "sign_contract")
    assert expired.value.code == "face_ticket_expired" and "过期" in expired.value.message
    # The real TTL is 5 minutes.
    fresh = await tickets.issue_ticket(redis, 7, "financing:42:v1", "sign_contract")
    ttls = [await redis.ttl(k) for k in await redis.keys("echain:bio:ticket:*") if b":" not in k[len("echain:bio:ticket:"):]]
    assert ttls and all(295 <= t <= 300 for t in ttls)
    assert await tickets.consume_ticket(redis, fresh.ticket, 7, "financing:42:v1", "sign_contract")


@pytest.mark.parametrize(("person", "contract", "purpose"), [
    (8, "financing:42:v1", "sign_contract"),  # another person
    (7, "financing:43:v1", "sign_contract"),  # another contract
    (7, "financing:42:v2", "sign_contract"),  # a revised contract version
    (7, "financing:42:v1", "sign_authorization"),  # another purpose
])
async def test_ticket_is_bound_to_person_contract_and_purpose(redis: Redis, person: int, contract: str,
                                                              purpose: str) -> None:
    issued = await tickets.issue_ticket(redis, 7, "financing:42:v1", "sign_contract")
    with pytest.raises(TicketRejected) as wrong:
        await tickets.consume_ticket(redis, issued.ticket, person, contract, purpose)
    assert wrong.value.code == "face_ticket_mismatch" and "不符" in wrong.value.message
    # A mismatch does not burn the ticket: its owner can still use it.
    assert await tickets.consume_ticket(redis, issued.ticket, 7, "financing:42:v1", "sign_contract")


async def test_unknown_ticket_and_revocation(redis: Redis) -> None:
    with pytest.raises(TicketRejected) as unknown:
        await tickets.consume_ticket(redis, "made-up", 7, "financing:42:v1", "sign_contract")
    assert unknown.value.code == "face_ticket_invalid"
    issued = await tickets.issue_ticket(redis, 7, "financing:42:v1", "sign_contract")
    assert await tickets.revoke_tickets(redis, 7) == 1
    with pytest.raises(TicketRejected):
        await tickets.consume_ticket(redis, issued.ticket, 7, "financing:42:v1", "sign_contract")
    # Redis holds only the ticket's digest, never the ticket itself.
    assert not [k for k in await redis.keys("*") if issued.ticket.encode() in k]


async def test_lockout_after_five_failures_within_the_window(redis: Redis) -> None:
    policy = Lockout(max_failures=5, window=3600)
    for expected in range(1, 5):
        assert await policy.record_failure(redis, 7) == expected
        await policy.check(redis, 7)  # still allowed
    await policy.record_failure(redis, 7)
    with pytest.raises(LockedOut) as locked:
        await policy.check(redis, 7)
    assert locked.value.status == 429 and "60 分钟" in locked.value.message
    assert 3590 <= await policy.remaining(redis, 7) <= 3600
    await policy.check(redis, 8)  # someone else is not affected
    await policy.clear(redis, 7)
    with pytest.raises(LockedOut):  # a success clears the count, never the lock itself
        await policy.check(redis, 7)


async def test_old_failures_fall_out_of_the_window(redis: Redis) -> None:
    policy = Lockout(max_failures=3, window=1)
    await policy.record_failure(redis, 7)
    await policy.record_failure(redis, 7)
    await asyncio.sleep(1.1)
    assert await policy.record_failure(redis, 7) == 1
    await policy.check(redis, 7)


async def test_challenge_is_random_single_use_and_personal(redis: Redis) -> None:
    seen = {(await liveness.issue_challenge(redis, 7)).sequence for _ in range(40)}
    assert seen == {("left", "right"), ("right", "left")}
    challenge = await liveness.issue_challenge(redis, 7)
    assert challenge.frames_required == 3 and "转头" in challenge.instructions
    assert 110 <= await redis.ttl("echain:bio:challenge:" + challenge.id) <= 120
    with pytest.raises(Conflict):
        await liveness.take_challenge(redis, challenge.id, 8)  # not yours (and now gone)
    mine = await liveness.issue_challenge(redis, 7)
    assert (await liveness.take_challenge(redis, mine.id, 7)).sequence == mine.sequence
    with pytest.raises(Conflict) as again:
        await liveness.take_challenge(redis, mine.id, 7)
    assert again.value.code == "challenge_expired"


def frame(yaw: float, face_hash: int, sha: str) -> FaceAnalysis:
    return FaceAnalysis(status="ok", faces=1, yaw=yaw, face_hash=face_hash, sha256=sha, encoding=(0.0,) * 128)


def test_liveness_rules_without_images() -> None:
    kw = {"min_yaw_delta": 0.12, "min_hash_distance": 6}
    good = [frame(0.0, 0x0, "a"), frame(0.2, 0xFFFF, "b"), frame(-0.1, 0xFFFF0000, "c")]
    report = liveness.check_liveness(good, ("left", "right"), **kw)
    assert report.deltas == [0.2, -0.3]
    with pytest.raises(LivenessFailed) as wrong_way:
        liveness.check_liveness(good, ("right", "left"), **kw)
    assert wrong_way.value.code == "liveness_direction" and "向右转头" in wrong_way.value.message
    # The same frames are fine for right-then-left when the client mirrors its frames.
    liveness.check_liveness(good, ("right", "left"), mirrored=True, **kw)
    too_small = [frame(0.0, 0x0, "a"), frame(0.08, 0xFFFF, "b"), frame(-0.1, 0xFFFF0000, "c")]
    with pytest.raises(LivenessFailed):
        liveness.check_liveness(too_small, ("left", "right"), **kw)
    copies = [frame(0.0, 0x0, "a"), frame(0.2, 0x3, "b"), frame(-0.1, 0xFFFF0000, "c")]  # 2 bits apart
    with pytest.raises(LivenessFailed) as copied:
        liveness.check_liveness(copies, ("left", "right"), **kw)
    assert copied.value.code == "static_photo"
    with pytest.raises(LivenessFailed):
        liveness.refuse_identical([b"x", b"y", b"x"])


def test_config_from_settings_and_bounds() -> None:
    from biometric.config import BiometricConfig
    from echain.settings import Settings

    dev = BiometricConfig.from_settings(Settings())
    assert (dev.match_threshold, dev.selfie_max_bytes, dev.warm_at_startup) == (0.5, 3 * 1024 * 1024, False)
    assert dev.pool_size >= 1
    assert BiometricConfig.from_settings(Settings(env="production")).warm_at_startup is True
    with pytest.raises(ValueError):
        BiometricConfig(match_threshold=0.7)  # looser than the model's own training radius
    with pytest.raises(ValueError):
        BiometricConfig(pool_size=0)
