"""Faults with servers the test owns: Redis stops mid-lifecycle; the database connection is cut mid-request.

Never the shared services: Redis is a redis-server process of this test's own; the database is reached through
a TCP proxy the test cuts and restores (the database itself is the test's own database).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from biometric import tickets
from bot import signing, texts
from echain import idempotency
from echain.keys import DEPS, REDIS, SIMULATOR
from echain.settings import Settings
from models.financing import Disbursement, Financing, Repayment
from models.ledger import LedgerEntry
from models.notifications import Notification
from models.outbox import OutboxEvent
from tests.reliability.harness import (
    LiveApp,
    OwnRedis,
    TokenCast,
    application,
    careful_body,
    login_cast,
    memberships,
    next_step,
    say,
    size,
)
from tests.support.factories import advance
from tests.support.tcp_proxy import TcpProxy, proxy_to
from tests.support.wechat_oa import message_xml, user_message
from tests.test_notify import run_worker
from workflow import ledger, outbox
from workflow.errors import Conflict
from workflow.financing import service
from workflow.financing.bodies import ACTION_BODIES
from workflow.financing.scheduler import mark_overdue_due
from workflow.financing.transition import china_today

SCENARIO = "faults"
WECHAT_TOKEN = "reliability-token"


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@contextlib.contextmanager
def _serving(settings: Settings) -> Iterator[LiveApp]:
    live = LiveApp(settings).start()
    try:
        yield live
    finally:
        live.stop()


def _act(live: LiveApp, people: TokenCast, fid: int, action: str, who: str, *, tries: int = 1) -> Any:
    """POST one action with an Idempotency-Key, retried with the same key and body up to `tries` times."""
    body = careful_body(people, fid, action, who)
    key = uuid.uuid4().hex
    for _ in range(tries):
        resp = live.call("POST", f"/api/v1/financings/{fid}/actions/{action}", people.tokens[who], json=body,
                         headers={"Idempotency-Key": key})
        if resp.status_code != 503:
            return resp
    return resp


def _wechat_post(live: LiveApp, content: str) -> tuple[int, str, float]:
    """The Official Account pushes a signed text message; returns status, body and seconds taken."""
    ts, nonce = str(int(time.time())), str(random.randrange(10**9))
    query = {"signature": signing.signature(WECHAT_TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
    started = time.monotonic()
    resp = live.http.post(f"{live.url}/wechat", params=query, timeout=10, headers={"Content-Type": "text/xml"},
                          data=message_xml(user_message("o-reliability", "text", Content=content)).encode())
    return resp.status_code, resp.text, time.monotonic() - started


async def _notified() -> Counter:
    """(subject, version) → notification rows recorded for it."""
    return Counter(await Notification.all().values_list("subject", "version"))


async def _overdue_candidate(people: TokenCast) -> int:
    """A received financing whose due date lies past the grace period (for the scheduler)."""
    f = await advance(people.cast, "received")
    await Financing.filter(id=f.id).update(due_date=china_today() - timedelta(days=10))
    return f.id


def test_redis_stops_mid_lifecycle(settings: Settings, tmp_path: Path) -> None:
    redis = OwnRedis(tmp_path / "own-redis").start()
    try:
        # The app reaches our server through our proxy: the server stops while connections are open.
        with proxy_to("127.0.0.1", redis.port) as proxy, \
                _serving(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                                             wechat_token=WECHAT_TOKEN)) as live:
            _redis_outage(live, redis)
            assert proxy.connections > 0
    finally:
        redis.stop()


def _redis_outage(live: LiveApp, redis: OwnRedis) -> None:
    people = login_cast(live)
    roles = live.run(memberships(people))
    fid = live.call("POST", "/api/v1/financings", people.tokens["supplier_op"], json=application(people)).json()["id"]
    assert _act(live, people, fid, "claim", "core_op").status_code == 200
    overdue_id = live.run(_overdue_candidate(people))

    redis.stop()
    say(SCENARIO, "redis: stopped our own redis-server after submit + claim (financing in 'claimed')")
    timings = {}
    started = time.monotonic()
    me = live.call("GET", "/api/v1/me", people.tokens["supplier_op"])
    timings["GET /api/v1/me"] = time.monotonic() - started
    assert me.status_code == 503 and me.json()["error"]["code"] == "service_unavailable"
    assert _chinese(me.json()["error"]["message"])
    started = time.monotonic()
    action = _act(live, people, fid, "approve", "core_approver")
    timings["POST approve"] = time.monotonic() - started
    assert action.status_code == 503 and action.json()["error"]["code"] == "service_unavailable"
    login = live.call("POST", "/api/v1/auth/login", json={"code": "sim:latecomer"})
    assert login.status_code == 503 and _chinese(login.json()["error"]["message"])
    health = live.call("GET", "/healthz")
    assert health.status_code == 503 and health.json()["redis"].startswith("down") and health.json()["database"] == "ok"
    assert live.call("GET", "/api/openapi.json").status_code == 200  # needs no Redis
    status, text, took = _wechat_post(live, "帮助")
    assert status == 200 and took < 5 and texts.UNAVAILABLE in text, (status, text, took)
    timings["POST /wechat"] = took
    say(SCENARIO, "redis: held: /api/v1/me, an action and login answer 503 service_unavailable in Chinese "
                  f"({', '.join(f'{k} {v * 1000:.0f} ms' for k, v in timings.items())}); /healthz 503 naming redis; "
                  f"/api/openapi.json still 200; /wechat answered {status} in {took * 1000:.0f} ms ({text[:30]!r})")

    # Transitions that commit while Redis is down: a request already past authentication when Redis died (the
    # same use case the endpoint calls) and the scheduler, which never needs Redis.
    approver = people.users["core_approver"]
    blind = live.run(service.act(live.app[DEPS], approver, fid, "approve", ACTION_BODIES["approve"]())).version
    assert live.run(mark_overdue_due(china_today(), 3)) >= 1
    pending = live.run(OutboxEvent.filter(queued_at=None).values_list("subject", "version", "action"))
    assert (f"financing:{fid}", blind, "approve") in pending and any(p[2] == "mark_overdue" for p in pending)
    say(SCENARIO, f"redis: tried: approve (in-flight request) and the overdue scheduler committed during the outage; "
                  f"{len(pending)} transition(s) waiting in the outbox for their notification job")

    redis.start()
    deadline = time.monotonic() + 10
    while live.call("GET", "/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the app did not see Redis come back"
        time.sleep(0.1)
    assert live.call("GET", "/api/v1/me", people.tokens["supplier_op"]).status_code == 200  # sessions survived
    deadline = time.monotonic() + 20
    while live.run(OutboxEvent.filter(queued_at=None).count()):
        assert time.monotonic() < deadline, "the outbox was not drained after Redis came back"
        time.sleep(0.2)
    live.run(run_worker(live.app))
    notified = live.run(_notified())
    assert notified[f"financing:{fid}", blind] >= 1, notified  # the approve committed blind was announced
    overdue_version = live.run(Financing.get(id=overdue_id)).version
    assert notified[f"financing:{overdue_id}", overdue_version] >= 1, notified
    messages = len(live.app[SIMULATOR].calls)
    live.run(live.app[DEPS].redis.ping())
    live.run(run_worker(live.app))  # again: nothing is sent twice
    assert live.run(_notified()) == notified and len(live.app[SIMULATOR].calls) == messages
    say(SCENARIO, "redis: held: after restart the same tokens work, the outbox drained by itself, the worker "
                  "announced the blind approve and the overdue mark; a second worker run sent nothing more")

    finished = _finish(live, people, roles, fid)
    _ledger_holds(live, [fid, overdue_id])
    say(SCENARIO, f"redis: held: the run completed over HTTP ({finished} more transitions, now 'repaid'); "
                  "ledger verifies with one entry per transition, one disbursement, one repayment")


def _finish(live: LiveApp, people: TokenCast, roles: dict, fid: int, tries: int = 1) -> int:
    done = 0
    while (step := next_step(people, roles, fid)) is not None:
        action, who = step
        resp = _act(live, people, fid, action, who, tries=tries)
        assert resp.status_code == 200, f"{action} by {who}: {resp.status_code} {resp.text}"
        done += 1
    assert live.run(Financing.get(id=fid)).status == "repaid"
    return done


def _ledger_holds(live: LiveApp, fids: list[int]) -> None:
    result = live.run(ledger.verify())
    assert result.ok, result
    for fid in fids:
        entries = live.run(LedgerEntry.filter(subject=f"financing:{fid}").values_list("action", flat=True))
        version = live.run(Financing.get(id=fid)).version
        assert len(entries) == version, (fid, entries, version)  # submit is version 1, each transition adds one
        assert entries.count("disburse") <= 1 and entries.count("confirm_repayment") <= 1
        assert live.run(Disbursement.filter(financing_id=fid).count()) <= 1
        assert live.run(Repayment.filter(financing_id=fid).count()) <= 1


# ---- the database connection cut mid-request ----------------------------------------------------------------


def _proxied(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))


class Chaos:
    """Cuts the proxy at random moments for a few tens of milliseconds, from its own thread."""

    def __init__(self, proxy: TcpProxy, seed: int) -> None:
        self.proxy, self.random, self.cuts = proxy, random.Random(seed), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.proxy.restore()

    def _run(self) -> None:
        while not self._stop.wait(self.random.uniform(0.02, 0.25)):
            self.proxy.cut()
            self.cuts += 1
            time.sleep(self.random.uniform(0.01, 0.08))
            self.proxy.restore()


def test_database_cut_mid_lifecycle(settings: Settings, tmp_path: Path) -> None:
    if not settings.database_url.startswith("postgres"):
        pytest.skip("cutting the database connection needs PostgreSQL over TCP (SQLite is a local file); "
                    "run with ECHAIN_TEST_DATABASE_URL=postgres://…")
    target = urlsplit(settings.database_url)
    rounds = size(1, 5)
    with proxy_to(target.hostname or "127.0.0.1", target.port or 5432) as proxy, \
            _serving(dataclasses.replace(settings, database_url=_proxied(settings.database_url, proxy.port))) as live:
        people = login_cast(live)
        roles = live.run(memberships(people))
        say(SCENARIO, f"database: tried: {rounds} financing(s) driven to 'repaid' over HTTP while a chaos thread "
                      "cuts every database connection at random moments; clients retry with the same "
                      "Idempotency-Key until they get an answer that is not 503")
        fids, answers = [], Counter()
        with Chaos(proxy, seed=6) as chaos:
            for _ in range(rounds):
                fid = _submit_retrying(live, people, answers)
                fids.append(fid)
                while (step := _retrying(lambda fid=fid: next_step(people, roles, fid))) is not None:
                    action, who = step
                    body = _retrying(lambda a=action, w=who, fid=fid: careful_body(people, fid, a, w))
                    _post_retrying(live, people.tokens[who], f"/api/v1/financings/{fid}/actions/{action}", body,
                                   answers)
        _ledger_holds(live, fids)
        states = live.run(Financing.filter(id__in=fids).values_list("status", flat=True))
        assert set(states) == {"repaid"}
        say(SCENARIO, f"database: held: {chaos.cuts} cuts; answers {dict(answers)}; every financing 'repaid' with "
                      "exactly one ledger entry per transition, one disbursement and one repayment; ledger verifies")


def _retrying(fn, within: float = 30):  # noqa: ANN001, ANN202 - the test's own ORM reads go through the proxy too
    deadline = time.monotonic() + within
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _post_retrying(live: LiveApp, token: str, path: str, body: Any, answers: Counter, within: float = 60) -> Any:
    """POST with one Idempotency-Key until the answer is not a 503; that answer must be a success.

    When an attempt committed but its answer was lost with the connection, the retry is answered from the
    committed transition (Idempotent-Replayed), never by performing it again or by a misleading refusal.
    """
    key, deadline = uuid.uuid4().hex, time.monotonic() + within
    while True:
        resp = live.call("POST", path, token, json=body, headers={"Idempotency-Key": key})
        answers[resp.status_code] += 1
        if resp.status_code != 503:
            break
        assert time.monotonic() < deadline, f"{path}: still 503 after {within} s"
        time.sleep(0.02)
    assert resp.status_code in (200, 201), f"{path}: {resp.status_code} {resp.text}"
    if resp.headers.get("Idempotent-Replayed") and answers[503]:
        answers["replayed after a lost answer"] += 1
    return resp.json()


def _submit_retrying(live: LiveApp, people: TokenCast, answers: Counter) -> int:
    body = _retrying(lambda: application(people))
    return _post_retrying(live, people.tokens["supplier_op"], "/api/v1/financings", body, answers)["id"]


# ---- the two recoveries the cut exercises, made deterministic (they run on SQLite too) --------------------------


def test_a_retry_after_a_lost_answer_is_replayed_not_redone(live: LiveApp) -> None:
    people = login_cast(live)
    fid = live.call("POST", "/api/v1/financings", people.tokens["supplier_op"], json=application(people)).json()["id"]
    key, path = "claim-once", f"/api/v1/financings/{fid}/actions/claim"
    # The first attempt commits; its answer is lost with the connection (the 503 released the key in Redis).
    guard = idempotency.IdempotencyGuard(live.app[REDIS], f"{people.users['core_op'].id}:POST:{path}", key, b"")

    async def first_attempt() -> None:
        token = outbox.request_key.set(guard.redis_key)
        try:
            await service.act(live.app[DEPS], people.users["core_op"], fid, "claim")
        finally:
            outbox.request_key.reset(token)

    live.run(first_attempt())
    retry = live.call("POST", path, people.tokens["core_op"], headers={"Idempotency-Key": key})
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true", retry.text
    assert retry.json()["status"] == "claimed"
    again = live.call("POST", path, people.tokens["core_op"], headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json() == retry.json()
    other = live.call("POST", path, people.tokens["core_op"], headers={"Idempotency-Key": "another"})
    assert other.status_code == 409  # a new request is judged afresh
    actions = live.run(LedgerEntry.filter(subject=f"financing:{fid}").values_list("action", flat=True))
    assert actions == ["submit", "claim"]
    say(SCENARIO, "lost answer: held: the retry of a committed claim is answered from the committed transition "
                  "(200, Idempotent-Replayed), nothing done twice; a new key gets the honest 409")


async def test_a_face_ticket_survives_an_outage_inside_the_signature(redis_clean: str) -> None:
    redis = Redis.from_url(redis_clean)
    ref, purpose = "financing:1:v1", "sign_contract"
    try:
        issued = await tickets.issue_ticket(redis, 7, ref, purpose)
        with pytest.raises(ConnectionError):
            async with tickets.spending(redis, issued.ticket, 7, ref, purpose):
                raise ConnectionError("database connection lost")  # an outage, not a refusal
        async with tickets.spending(redis, issued.ticket, 7, ref, purpose):
            pass  # the retry signs with the same ticket
        with pytest.raises(tickets.TicketRejected):  # used now, and only once
            await tickets.consume_ticket(redis, issued.ticket, 7, ref, purpose)
        refused = await tickets.issue_ticket(redis, 7, ref, purpose)
        with pytest.raises(Conflict):
            async with tickets.spending(redis, refused.ticket, 7, ref, purpose):
                raise Conflict("合同文本刚被他人签署或修订，请刷新后重试", code="stale_contract")
        with pytest.raises(tickets.TicketRejected):  # a refusal keeps it used
            await tickets.consume_ticket(redis, refused.ticket, 7, ref, purpose)
    finally:
        await redis.aclose()


def test_a_hung_redis_gives_503s_in_time_not_stuck_requests(settings: Settings, tmp_path: Path) -> None:
    from echain.redis_conn import SOCKET_TIMEOUT

    redis = OwnRedis(tmp_path / "own-redis").start()
    try:
        # The server stays up but answers nothing: the proxy holds every byte (a hung server, a black hole).
        with proxy_to("127.0.0.1", redis.port) as proxy, \
                _serving(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                                             wechat_token=WECHAT_TOKEN)) as live:
            token = live.call("POST", "/api/v1/auth/login", json={"code": "sim:hung-redis"}).json()["token"]
            proxy.stall()
            started = time.monotonic()
            me = live.call("GET", "/api/v1/me", token)
            took = time.monotonic() - started
            assert me.status_code == 503 and me.json()["error"]["code"] == "service_unavailable", me.text
            assert _chinese(me.json()["error"]["message"]) and took < SOCKET_TIMEOUT + 3, took
            status, text, wechat_took = _wechat_post(live, "帮助")
            assert status == 200 and wechat_took < 5, (status, text, wechat_took)
            say(SCENARIO, f"hung redis: GET /api/v1/me answered 503 in {took * 1000:.0f} ms (socket timeout "
                          f"{SOCKET_TIMEOUT:.0f} s); /wechat answered {status} in {wechat_took * 1000:.0f} ms")
            proxy.restore()
            deadline = time.monotonic() + 15
            while live.call("GET", "/api/v1/me", token).status_code != 200:
                assert time.monotonic() < deadline, "the app did not recover after the hang ended"
                time.sleep(0.2)
    finally:
        redis.stop()
