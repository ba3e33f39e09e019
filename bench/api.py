"""3. API on PostgreSQL: per-action latency and lifecycles/s at 1, 8 and 32 clients; the financing list at
1,000 and 100,000 financings (latency and SQL statements per request).

Needs BENCH_DATABASE_URL (postgres://…, WIPED) and preferably BENCH_REDIS_URL (a Redis db of its own, FLUSHDB'd);
without a PostgreSQL URL the benchmark is skipped. The app runs in its own process (`bench.server`) with a
statement counter on its asyncpg connections; the load generator (another process) drives whole lifecycles
with echain.demo's own steps: submit with two uploads, claim, two approvals, allocation, a decline and a
subscription, the contract, three signatures each after WeChat face verification (simulator), disbursement
with a voucher upload, receipt, repayment and its confirmation. Financings for the list are bulk-inserted
with COPY, all visible to the demo supplier's operator, who lists the first page (default limit 20).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import loadgen, prepare_backend, server, server_env
from bench.report import Result, ratio

NAME = "api"
LIST_SIZES = (1_000, 100_000)
STATUSES = ("submitted", "claimed", "confirmed", "withdrawn", "rejected")


async def grant_operator(database_url: str) -> None:
    """What `echain admin grant --sim platform-op` does, against the benchmark's database."""
    from echain import db
    from echain.demo import OPERATOR
    from wechat.simulator import SIM_MINIAPP_ID, openid_of
    from workflow.accounts import grant_operator as grant

    async with db.database(database_url):
        await grant(openid_of(OPERATOR, SIM_MINIAPP_ID))


async def seed(database_url: str, cast: dict[str, Any], total: int) -> int:
    """Bulk-insert (COPY) financings until `total` exist, all of the cast's supplier; returns how many exist."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        have = await conn.fetchval("SELECT count(*) FROM financings")
        now = datetime.now(UTC)
        today = now.date()
        records = []
        for n in range(have, total):
            status = STATUSES[n % len(STATUSES)]
            face = 100_000_00 + (n * 7919) % 5_000_000_00  # 100,000–5,100,000 yuan, in fen
            approvals = 1 if face <= 1_000_000_00 else 2
            records.append((
                cast["supplier_id"], cast["core_id"], status, 1, f"SEED-INV-{n:07d}", f"SEED-HT-{n // 10:06d}", face,
                face * 8 // 10, today + timedelta(days=30 + n % 150),
                approvals if status in ("claimed", "confirmed") else None,
                approvals if status == "confirmed" else 0, "贸易背景不实" if status == "rejected" else "",
                "重复申请" if status == "withdrawn" else "", 0, 0, cast["supplier_user_id"],
                now + timedelta(microseconds=n), now + timedelta(microseconds=n),
            ))
        await conn.copy_records_to_table("financings", records=records, columns=[
            "supplier_id", "core_id", "status", "version", "invoice_no", "contract_no", "face_amount",
            "requested_amount", "due_date", "approvals_required", "approval_count", "rejection_reason",
            "withdrawal_reason", "contract_version", "signature_count", "created_by_id", "created_at", "updated_at"])
        await conn.execute("ANALYZE financings")
        return await conn.fetchval("SELECT count(*) FROM financings")
    finally:
        await conn.close()


async def sql_total(url: str) -> dict[str, int]:
    """The server's statement counts so far."""
    async with aiohttp.ClientSession() as session, session.get(url + "/__bench/sql") as resp:
        return await resp.json()


async def measure_list(url: str, token: str, duration: float) -> dict[str, Any]:
    """First page of GET /api/v1/financings, one client; latency and statements per request."""
    before = await sql_total(url)
    stream = {"name": "list", "kind": "get", "url": url, "path": "/api/v1/financings", "concurrency": 1,
              "headers": {"Authorization": f"Bearer {token}"}, "body_prefix": '{"items":[{'}
    out = (await loadgen({"mode": "streams", "warmup": 1.0, "duration": duration, "streams": [stream]}))["streams"]["list"]
    after = await sql_total(url)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    sent = out["sent"]
    out["sql_per_request"] = round(sum(delta.values()) / sent, 2)
    out["sql_by_kind"] = {k: round(v / sent, 2) for k, v in sorted(delta.items()) if v}
    return out


async def run(quick: bool) -> Result:
    """Lifecycles at each concurrency, then the list at each size."""
    result = Result(NAME, "API on PostgreSQL: per-action latency, lifecycles/s, financing list at 1k and 100k",
                    quick=quick)
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        result.skipped = ("set BENCH_DATABASE_URL=postgres://… (a database of its own: it is wiped) and "
                          "BENCH_REDIS_URL=redis://…/<db> to run it")
        return result
    levels = [(1, 1), (8, 8), (32, 32)] if quick else [(1, 4), (8, 16), (32, 64)]
    list_seconds = 2.0 if quick else 8.0
    with tempfile.TemporaryDirectory(prefix="echain-bench-api-", ignore_cleanup_errors=True) as tmp:
        backend = await prepare_backend(Path(tmp))
        result.database = backend.info
        env = server_env(backend, Path(tmp) / "data", BENCH_COUNT_SQL="1")
        async with server("echain", env) as srv:
            await grant_operator(backend.database_url)
            life = await loadgen({"mode": "lifecycle", "url": srv.url, "wechat_base": srv.wechat_base,
                                  "levels": levels})
            lists = {}
            for size in LIST_SIZES:
                present = await seed(backend.database_url, life["cast"], size)
                lists[size] = await measure_list(srv.url, life["cast"]["supplier_token"], list_seconds) | {"rows": present}
    _tables(result, life, lists)
    result.notes += [
        f"Lifecycle = {life['steps_per_lifecycle']} steps of echain.demo (everything from 发起融资 to 确认还款, without "
        "the demo's replayed disbursement and ledger verification); each client runs whole lifecycles one after "
        "another; every request has a bearer token and every POST an Idempotency-Key. Face verification is WeChat's "
        "(in-process simulator), so no dlib work here.",
        "SQL statements per request are counted at the server's asyncpg connections (BEGIN/COMMIT and the pool's "
        f"RESET included; by kind at 100k: {lists[LIST_SIZES[-1]]['sql_by_kind']}).",
    ]
    return result


def _tables(result: Result, life: dict[str, Any], lists: dict[int, dict[str, Any]]) -> None:
    levels = life["levels"]
    actions = list(dict.fromkeys(itertools.chain.from_iterable(lv["actions"] for lv in levels)))
    columns = ["request"] + [f"{c} @{lv['concurrency']}" for lv in levels for c in ("p50", "p99")]
    rows = [[a] + [v for lv in levels for v in (lv["actions"].get(a, {}).get("p50", ""), lv["actions"].get(a, {}).get("p99", ""))]
            for a in actions]
    result.table(columns, rows, title="Per request, ms, at 1 / 8 / 32 concurrent clients (financing actions by name)")
    first, last = levels[0], levels[-1]
    lrows = [[lv["concurrency"], lv["lifecycles"], lv["per_second"], round(lv["lifecycle_ms"]["p50"] / 1000, 2),
              round(lv["lifecycle_ms"]["p99"] / 1000, 2)] for lv in levels]
    lrows.append([f"**{last['concurrency']} ÷ {first['concurrency']}**", "", ratio(last["per_second"], first["per_second"]),
                  ratio(last["lifecycle_ms"]["p50"], first["lifecycle_ms"]["p50"]), ""])
    result.table(["clients", "lifecycles", "lifecycles/s", "lifecycle p50 s", "lifecycle p99 s"], lrows,
                 title="Complete lifecycles")
    small, big = lists[LIST_SIZES[0]], lists[LIST_SIZES[-1]]
    frows = [[f"{lists[s]['rows']:,}", lists[s]["latency_ms"]["p50"], lists[s]["latency_ms"]["p99"],
              lists[s]["sql_per_request"], lists[s]["ok"]] for s in LIST_SIZES]
    frows.append([f"**{LIST_SIZES[-1]:,} ÷ {LIST_SIZES[0]:,}**", ratio(big["latency_ms"]["p50"], small["latency_ms"]["p50"]),
                  ratio(big["latency_ms"]["p99"], small["latency_ms"]["p99"]),
                  ratio(big["sql_per_request"], small["sql_per_request"]), ""])
    result.table(["financings in database", "p50 ms", "p99 ms", "SQL statements / request", "requests"], frows,
                 title="GET /api/v1/financings (first page, one client)")
    result.data = {"levels": levels, "list": {str(k): v for k, v in lists.items()},
                   "ratio": {"lifecycles_per_s_32_over_1": ratio(last["per_second"], first["per_second"]),
                             "list_p50_100k_over_1k": ratio(big["latency_ms"]["p50"], small["latency_ms"]["p50"]),
                             "list_sql_100k_over_1k": ratio(big["sql_per_request"], small["sql_per_request"])}}
