"""Scale-out proof: two `echain serve` processes and one `echain worker` on one PostgreSQL and one Redis.

Several lifecycles run at once through both instances (every request of a lifecycle goes to the next
instance in turn), driven by the demo's own scenario (echain/demo.py), with the disbursement fired at both
instances at once under one Idempotency-Key (plus two rival keys). Afterwards: every financing is repaid, the
ledger verifies, each financing has one ledger entry per transition and one disbursement, and WeChat (one
standalone simulator for all processes) received each expected notice exactly once.

Expected notices are derived from the transition events: after each step, while the financing still sits at
the version that step produced, the people the transition table says are awaited (notify.targets.recipients)
are what the worker must tell, and the lifecycle waits until the worker has finished that event's jobs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from echain import db
from echain.demo import OPERATOR, Api, Demo, DemoError, Reply, WeChatSide, connect_wechat
from echain.samples import pdf_bytes
from models.financing import Disbursement, Financing
from models.ledger import LedgerEntry
from models.notifications import Notification
from models.people import User
from notify.jobs import event_job_id, notice_job_id
from notify.targets import recipients
from tests.conftest import TEST_SECRET
from tests.support.processes import clean_env, fleet, free_port, wait_http
from wechat.simulator import SIM_APP_ID, SIM_APP_SECRET, SIM_MINIAPP_ID, SIM_MINIAPP_SECRET

pytestmark = pytest.mark.skipif(
    not os.environ.get("ECHAIN_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="scale-out check needs PostgreSQL + Redis (CI's second run)",
)

LIFECYCLES = 4
# The demo scenario's transitions, in order: one ledger entry (and one financing version) each.
TRANSITIONS = ("submit", "claim", "approve", "approve", "allocate", "decline", "subscribe", "issue_contract",
               "sign", "sign", "sign", "disburse", "confirm_receipt", "report_repayment", "confirm_repayment")
JOB_WAIT_SECONDS = 60


class RoundRobinApi(Api):
    """The demo's HTTP client, sending each request to the next instance in turn."""

    def __init__(self, session: aiohttp.ClientSession, bases: list[str], start: int) -> None:
        self.bases = [b.rstrip("/") for b in bases]
        self._turn = itertools.count(start)
        self.sent: Counter[str] = Counter()
        super().__init__(session, self.bases[0])

    @property
    def base_url(self) -> str:  # type: ignore[override]
        base = self.bases[next(self._turn) % len(self.bases)]
        self.sent[base] += 1
        return base

    @base_url.setter
    def base_url(self, value: str) -> None:
        pass  # the instances are fixed at construction


@dataclass
class Notice:
    """One notice the worker must send: about which financing version, to whom, asking for which action."""

    financing_id: int
    version: int
    user_id: int
    action: str


@dataclass
class ScaleDemo(Demo):
    """The demo scenario, with the disbursement raced against both instances."""

    bases: list[str] = field(default_factory=list)
    race: list[tuple[str, int, bool]] = field(default_factory=list)  # (key role, status, replayed)

    async def post_to(self, base: str, path: str, token: str, body: dict[str, Any], key: str) -> Reply:
        """One POST to one chosen instance, with the given Idempotency-Key."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key}
        async with self.api.session.post(base + path, data=json.dumps(body), headers=headers) as resp:
            text = await resp.text()
            return Reply(resp.status, json.loads(text) if text else None, dict(resp.headers))

    async def disburse(self) -> str:
        """The same disbursement (one key) to both instances at once, plus two rival keys: exactly one pays."""
        funder = self.person("funder_a")
        voucher = await self.api.upload(funder.token, self.enterprises["funder_a"]["id"], "voucher",
                                        pdf_bytes(f"bank voucher {self.tag}"), "放款回单.pdf")
        body, shared = self.disburse_body(voucher), str(uuid.uuid4())
        attempts = [(shared, self.bases[0]), (shared, self.bases[1]),
                    (str(uuid.uuid4()), self.bases[0]), (str(uuid.uuid4()), self.bases[1])]
        replies = await asyncio.gather(*(self.post_to(base, self.action_path("disburse"), funder.token, body, key)
                                         for key, base in attempts))
        fresh = [(key, r) for (key, _), r in zip(attempts, replies, strict=True)
                 if r.status == 200 and r.headers.get("Idempotent-Replayed") != "true"]
        self.race = [("shared" if key == shared else "rival", r.status, r.headers.get("Idempotent-Replayed") == "true")
                     for (key, _), r in zip(attempts, replies, strict=True)]
        if len(fresh) != 1:
            raise DemoError(f"并发放款应恰好成功一次，实际：{self.race}")
        winner_key, winner = fresh[0]
        for (key, _), r in zip(attempts, replies, strict=True):
            if r is winner:
                continue
            replay_of_winner = r.status == 200 and key == winner_key and r.body == winner.body
            if not (r.status == 409 or replay_of_winner):
                raise DemoError(f"并发放款的其他请求应为 409 或首次结果的重放，实际：HTTP {r.status} {r.body}")
        self.disbursement_key, self.disbursement_request = winner_key, body
        self.record(winner.body, "disbursed")
        return self.state()


def settle_notices(demo: Demo, queue: ArqRedis, expected: list[Notice]) -> Callable[[], Awaitable[None]]:
    """After each step: note who the new state awaits, and wait until the worker has told them."""
    seen = {"version": 0}

    async def settle() -> None:
        if not demo.financing:
            return
        fid = demo.financing["id"]
        financing = await Financing.get(id=fid)
        if financing.version == seen["version"]:
            return  # the step changed nothing (a replay, a read)
        assert financing.version == seen["version"] + 1, "each step of the scenario makes one transition"
        seen["version"] = version = financing.version
        subject = f"financing:{fid}"
        entry = await LedgerEntry.filter(subject=subject).order_by("-seq").first()
        assert entry is not None
        awaited = await recipients(financing, entry.action)
        told = {(n.user_id, n.action) for n in expected if n.financing_id == fid}
        for r in awaited:
            if r.repeat:  # still waiting since an earlier event, whose notice must already have reached them
                assert (r.user_id, r.step.action) in told, f"{subject} v{version}: user {r.user_id} never told"
        fresh = [Notice(fid, version, r.user_id, r.step.action) for r in awaited if not r.repeat]
        expected.extend(fresh)
        queued = await job_result(queue, event_job_id(subject, version))
        assert sorted(queued) == sorted(n.user_id for n in fresh), f"{subject} v{version} fan-out"
        for n in fresh:
            outcome = await job_result(queue, notice_job_id(subject, version, n.user_id))
            assert outcome == "sent:subscribe", f"{subject} v{version} user {n.user_id}: {outcome}"

    return settle


async def job_result(queue: ArqRedis, job_id: str) -> Any:
    """The result of a finished arq job (waits for the worker; fails when the job failed)."""
    job = Job(job_id, queue)
    for _ in range(JOB_WAIT_SECONDS * 10):
        info = await job.result_info()
        if info is not None:
            assert info.success, f"job {job_id} failed: {info.result!r}"
            return info.result
        await asyncio.sleep(0.1)
    raise AssertionError(f"the worker did not finish job {job_id} within {JOB_WAIT_SECONDS} s")


def message_key(message: dict[str, Any], users: dict[str, int]) -> tuple[str, int, int, str]:
    """(channel, user id, financing id, action) of a delivered subscribe or template message."""
    payload = message["payload"]
    page = payload.get("page") or (payload.get("miniprogram") or {}).get("pagepath", "")
    query = parse_qs(urlsplit(page).query)
    fid = int(payload["data"]["character_string1"]["value"])
    assert query["id"] == [str(fid)], page
    return message["kind"], users[message["touser"]], fid, query["action"][0]


async def test_two_instances_and_a_worker_lose_and_double_nothing(tmp_path: Path, database_url: str,
                                                                  redis_clean: str) -> None:
    """Four lifecycles at once through two app processes and one worker: nothing lost, nothing doubled."""
    sim_port, ports = free_port(), [free_port(), free_port()]
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = clean_env(
        ECHAIN_DATABASE_URL=database_url, ECHAIN_REDIS_URL=redis_clean, ECHAIN_SECRET_KEY=TEST_SECRET,
        ECHAIN_DATA_DIR=str(tmp_path / "data"),  # shared: uploaded documents and the CA, as on a shared volume
        ECHAIN_FACE_POOL_SIZE="1", WECHAT_API_BASE=sim_url, WECHAT_APP_ID=SIM_APP_ID,
        WECHAT_APP_SECRET=SIM_APP_SECRET, MINIAPP_APP_ID=SIM_MINIAPP_ID, MINIAPP_APP_SECRET=SIM_MINIAPP_SECRET,
    )
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    async with fleet(tmp_path / "logs", env) as group, db.database(database_url):
        sim = group.start("wechat-sim", "wechat-sim", "--port", str(sim_port))
        await wait_http(f"{sim_url}/sim/openid?name=probe", sim)
        for args in (("migrate",), ("admin", "grant", "--sim", OPERATOR)):
            done = await asyncio.to_thread(group.run, *args)
            assert done.returncode == 0, done.stderr
        apps = [group.start(f"app{i}", "serve", "--port", str(port)) for i, port in enumerate(ports)]
        for app, base in zip(apps, bases, strict=True):
            await wait_http(f"{base}/healthz", app)
        group.start("worker", "worker")

        expected: list[Notice] = []
        queue = ArqRedis.from_url(redis_clean)
        timeout = aiohttp.ClientTimeout(total=60, connect=5)
        outputs: list[list[str]] = [[] for _ in range(LIFECYCLES)]
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                demos = []
                for i in range(LIFECYCLES):
                    demo = ScaleDemo(RoundRobinApi(session, bases, start=i), outputs[i].append, bases=bases)
                    assert await connect_wechat(demo, session, WeChatSide(simulator_url=sim_url)) == ""
                    demo.run_jobs = settle_notices(demo, queue, expected)
                    demos.append(demo)
                results = await asyncio.gather(*(d.run() for d in demos), return_exceptions=True)
                failures = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
                assert not failures, f"{failures}\n" + "\n".join("\n".join(o) for o in outputs) + group.logs()
                async with session.get(f"{sim_url}/sim/messages") as resp:
                    messages = (await resp.json())["messages"]
                async with session.get(f"{sim_url}/sim/calls") as resp:
                    calls = (await resp.json())["calls"]
        finally:
            await queue.aclose()

        # Both instances served every lifecycle.
        for d in demos:
            assert all(d.api.sent[b] > 10 for b in bases), d.api.sent
        # Every lifecycle is repaid, one ledger entry per transition, one disbursement each.
        fids = [d.financing["id"] for d in demos]
        assert len(set(fids)) == LIFECYCLES
        for d, fid in zip(demos, fids, strict=True):
            assert d.financing["status"] == "repaid"
            actions = await LedgerEntry.filter(subject=f"financing:{fid}").order_by("seq").values_list("action", flat=True)
            assert tuple(actions) == TRANSITIONS
            assert (await Financing.get(id=fid)).version == len(TRANSITIONS)
            assert await Disbursement.filter(financing_id=fid).count() == 1
            assert Counter((role, status) for role, status, _ in d.race)[("rival", 200)] <= 1
        verified = await asyncio.to_thread(group.run, "ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # Notices: each expected one delivered exactly once, nothing else.
        assert expected, "the scenario awaits people after its transitions"
        users = dict(await User.all().values_list("openid", "id"))
        delivered = Counter(message_key(m, users) for m in messages if m["kind"] in ("subscribe", "template"))
        doubled = [key for key, count in delivered.items() if count > 1]
        assert not doubled, f"delivered more than once: {doubled}"
        wanted = Counter(("subscribe", n.user_id, n.financing_id, n.action) for n in expected)
        assert delivered == wanted, f"missing {wanted - delivered}, unexpected {delivered - wanted}"
        rows = await Notification.filter(subject__in=[f"financing:{fid}" for fid in fids]).values_list(
            "subject", "version", "user_id", "status")
        assert sorted(rows) == sorted((f"financing:{n.financing_id}", n.version, n.user_id, "sent") for n in expected)
        # One token per app for all four processes: the refresher lock in Redis held.
        token_calls = Counter(c["query"].get("appid") or (c["body"] or {}).get("appid")
                              for c in calls if c["path"] in ("/cgi-bin/token", "/cgi-bin/stable_token"))
        assert all(count == 1 for count in token_calls.values()), token_calls
