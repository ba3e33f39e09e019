"""The server side of a benchmark, in its own process: `python -m bench.server echain|bare`.

`echain` serves the real app (`create_app(Settings.from_env())`, after `migrate`), exactly what `echain serve`
builds, plus — only with BENCH_COUNT_SQL=1 — a counter of SQL statements at the asyncpg connection and a
`GET /__bench/sql` route to read it. `bare` is a bare aiohttp app answering `POST /wechat` with a fixed reply.
Both print one line `READY {"url": ..., "wechat_base": ...}` once listening on a free loopback port, and
stop cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter

from aiohttp import web

FIXED_REPLY = ("<xml><ToUserName><![CDATA[o]]></ToUserName><FromUserName><![CDATA[gh]]></FromUserName>"
               "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               "<Content><![CDATA[ok]]></Content></xml>")
SQL_COUNTS: Counter[str] = Counter()


def count_sql() -> None:
    """Count every statement sent through asyncpg (tortoise's PostgreSQL driver), keyed by its first word."""
    import asyncpg.connection

    conn = asyncpg.connection.Connection
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        original = getattr(conn, name)

        def wrapped(self, query, *args, __original=original, **kwargs):  # noqa: ANN001, ANN202
            SQL_COUNTS[_kind(query)] += 1
            return __original(self, query, *args, **kwargs)

        setattr(conn, name, wrapped)


def _kind(query: str) -> str:
    if "RESET ALL" in query:  # asyncpg's pool resets a connection on release
        return "RESET"
    return query.lstrip().split(None, 1)[0].upper() if query.strip() else "?"


async def sql_counts(request: web.Request) -> web.Response:
    """Statements counted so far, by first keyword."""
    return web.json_response(dict(SQL_COUNTS))


def bare_app() -> web.Application:
    """The baseline: one handler, a fixed reply, nothing checked."""

    async def wechat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=FIXED_REPLY, content_type="application/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/wechat", wechat)
    app.router.add_get("/healthz", healthz)
    return app


async def echain_app() -> web.Application:
    """The real app, schema migrated first (as `echain migrate && echain serve`)."""
    from echain import db
    from echain.app import create_app
    from echain.settings import Settings

    settings = Settings.from_env()
    async with db.database(settings.database_url):
        await db.migrate()
    if os.environ.get("BENCH_COUNT_SQL") == "1":
        count_sql()
    app = create_app(settings)
    app.router.add_get("/__bench/sql", sql_counts)
    return app


async def serve(kind: str) -> None:
    """Serve until a stop signal, announcing the URL on stdout."""
    app = await echain_app() if kind == "echain" else bare_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        wechat_base = ""
        if kind == "echain":
            from echain.keys import WECHAT_BASE

            wechat_base = app[WECHAT_BASE]
        line = json.dumps({"url": f"http://127.0.0.1:{port}", "wechat_base": wechat_base, "pid": os.getpid()})
        sys.stdout.write(f"READY {line}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    kind = sys.argv[1] if len(sys.argv) > 1 else "echain"
    if kind not in ("echain", "bare"):
        sys.stderr.write("usage: python -m bench.server echain|bare\n")
        return 2
    asyncio.run(serve(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
