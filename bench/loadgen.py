"""The load generator: a separate process on loopback, `python -m bench.loadgen < spec.json`.

Modes (spec["mode"]):
- "streams": closed-loop request streams run side by side for `duration` seconds (after `warmup`) or for a
  fixed number of requests; each stream has its own concurrency and reports its latencies.
  Stream kinds: "get" (a JSON endpoint), "upload" (a multipart file POST), "wechat" (a signed, safe-mode
  encrypted text message, fresh MsgId per request), "wechat_retry" (one message re-sent as WeChat retries it).
- "lifecycle": echain.demo's driver (its own steps, not a copy) runs whole financing lifecycles at several
  concurrency levels, timing every HTTP request by action.
Prints one JSON line with the results.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import secrets
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from bench.report import summary

_msg_ids = itertools.count(6_000_000_000_000_000_000 + secrets.randbelow(10**15))


class WeChatMessages:
    """Builds what WeChat posts to /wechat in safe mode: signed URL, XML envelope around the AES ciphertext."""

    def __init__(self, token: str, aes_key: str, app_id: str, account: str = "gh_benchmark0001") -> None:
        from bot.crypto import MessageCrypto

        self.token = token
        self.crypto = MessageCrypto(aes_key, app_id)
        self.account = account

    def build(self, openid: str, content: str) -> tuple[dict[str, str], bytes]:
        """(query, body) of one text message with a fresh MsgId."""
        from bot import signing
        from bot.wirexml import cdata

        now = int(time.time())
        xml = (f"<xml><ToUserName>{cdata(self.account)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
               f"<CreateTime>{now}</CreateTime><MsgType>{cdata('text')}</MsgType><Content>{cdata(content)}</Content>"
               f"<MsgId>{next(_msg_ids)}</MsgId></xml>")
        encrypt = self.crypto.encrypt(xml)
        timestamp, nonce = str(now), str(secrets.randbelow(10**9))
        query = {"signature": signing.signature(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                 "encrypt_type": "aes", "msg_signature": signing.signature(self.token, timestamp, nonce, encrypt)}
        body = f"<xml><ToUserName>{cdata(self.account)}</ToUserName><Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        return query, body.encode()


class Stream:
    """One kind of request, sent by `concurrency` workers in a closed loop."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name = spec["name"]
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.bad_bodies = 0
        self.started = 0
        kind = spec["kind"]
        self.file = Path(spec["file"]).read_bytes() if kind == "upload" else b""
        self.messages = WeChatMessages(spec["token"], spec["aes_key"], spec["app_id"]) if kind.startswith("wechat") else None
        self.retries: dict[int, tuple[dict[str, str], bytes]] = {}

    def _request(self, worker: int) -> tuple[str, dict[str, Any]]:
        spec, kind = self.spec, self.spec["kind"]
        url = spec["url"] + spec.get("path", "")
        headers = dict(spec.get("headers", {}))
        if kind == "get":
            return "GET", {"url": url, "headers": headers}
        if kind == "upload":
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(self.file), filename=spec.get("filename", "photo.jpg"),
                           content_type="image/jpeg")
            return "POST", {"url": url, "headers": headers, "data": form}
        assert self.messages is not None
        openid = spec["followers"][worker % len(spec["followers"])]
        if kind == "wechat_retry":  # the very same signed URL and body, as WeChat re-sends an unanswered message
            query, body = self.retries.setdefault(worker, self.messages.build(openid, spec["text"]))
        else:
            query, body = self.messages.build(openid, spec["text"])
        headers["Content-Type"] = "text/xml"
        return "POST", {"url": url, "params": query, "data": body, "headers": headers}

    async def worker(self, session: aiohttp.ClientSession, n: int, clock: dict[str, float]) -> None:
        """Send requests until the stream is done; record latencies after the warm-up only."""
        expect = self.spec.get("expect", 200)
        body_prefix = self.spec.get("body_prefix", "").encode()
        while True:
            now = time.perf_counter()
            if now >= clock["end"] or ("count" in self.spec and self.started >= self.spec["count"]):
                return
            self.started += 1
            method, kw = self._request(n)
            t = time.perf_counter()
            try:
                async with session.request(method, **kw) as resp:
                    data = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1
                continue
            elapsed = (time.perf_counter() - t) * 1000
            if t >= clock["measure_from"]:
                self.statuses[status] += 1
                if status == expect and data.startswith(body_prefix):
                    self.latencies.append(elapsed)
                else:
                    self.bad_bodies += status == expect

    def result(self, seconds: float) -> dict[str, Any]:
        """Throughput and latency of the good answers; every status seen."""
        return {"name": self.name, "sent": self.started, "ok": len(self.latencies), "rps": round(len(self.latencies) / seconds, 1),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "errors": self.errors,
                "bad_bodies": self.bad_bodies, "latency_ms": summary(self.latencies), "seconds": round(seconds, 2)}


async def run_streams(spec: dict[str, Any]) -> dict[str, Any]:
    """All streams at once; a stream with `count` stops after that many requests (then the duration is moot)."""
    streams = [Stream(s) for s in spec["streams"]]
    warmup, duration = spec.get("warmup", 0.0), spec.get("duration", 3600.0)
    start = time.perf_counter()
    clock = {"measure_from": start + warmup, "end": start + warmup + duration}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        measured, background = [], []
        for s in streams:
            tasks = [asyncio.create_task(s.worker(session, n, clock)) for n in range(s.spec["concurrency"])]
            (measured if s.spec.get("measure", True) else background).extend(tasks)
        await asyncio.gather(*measured)
        seconds = time.perf_counter() - clock["measure_from"]
        clock["end"] = 0  # background streams stop with the measured ones
        await asyncio.gather(*background)
    return {"streams": {s.name: s.result(seconds) for s in streams}}


# ---- lifecycles ------------------------------------------------------------------------------------------

_ID = re.compile(r"/\d+(?=/|$)")


def action_label(method: str, path: str) -> str:
    """A request's name in the per-action table: the financing action, or method + path with ids elided."""
    path = path.split("?", 1)[0]
    if method == "POST" and path == "/api/v1/financings":
        return "submit"
    found = re.search(r"/actions/([a-z_]+)$", path)
    if found:
        return found.group(1)
    return f"{method} {_ID.sub('/{id}', path)}"


async def run_lifecycles(spec: dict[str, Any]) -> dict[str, Any]:
    """Onboard the demo's cast once, then run whole lifecycles at each concurrency level."""
    from echain.demo import Api, Demo, DemoError, Simulator

    timings: dict[str, list[float]] = defaultdict(list)

    class TimedApi(Api):
        async def request(self, method: str, path: str, *args: Any, **kw: Any) -> Any:
            # Concurrent lifecycles share the demo's signers, and one person's face checks run one at a time
            # (biometric/verification.py): a signer busy in another lifecycle waits and tries again, as a person
            # would; only the successful attempt is timed.
            for _ in range(200):
                t = time.perf_counter()
                try:
                    reply = await super().request(method, path, *args, **kw)
                except DemoError as exc:
                    if "verification_in_progress" not in str(exc):
                        raise
                    await asyncio.sleep(0.05)
                    continue
                timings[action_label(method, path)].append((time.perf_counter() - t) * 1000)
                return reply
            raise RuntimeError(f"{method} {path}: the signer stayed busy")

    def quiet(_: str) -> None:
        return None

    levels = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        api = TimedApi(session, spec["url"])
        cast = Demo(api, quiet, sim=Simulator(session, spec["wechat_base"]))
        for step in (cast.log_in_everyone, cast.onboard_enterprises, cast.invite_members):
            await step()
        run_tag = secrets.token_hex(2)
        serial = itertools.count()

        async def lifecycle() -> float:
            demo = Demo(api, quiet, tag=f"{run_tag}{next(serial):05d}", people=cast.people,
                        enterprises=cast.enterprises, sim=cast.sim)
            steps = [fn for _, fn in lifecycle_steps(demo)]
            t = time.perf_counter()
            for step in steps:
                await step()
            return (time.perf_counter() - t) * 1000

        for concurrency, count in spec["levels"]:
            timings.clear()
            queue = iter(range(count))
            durations: list[float] = []

            async def client(queue=queue, durations=durations) -> None:  # noqa: B008
                for _ in queue:
                    durations.append(await lifecycle())

            t = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            elapsed = time.perf_counter() - t
            levels.append({"concurrency": concurrency, "lifecycles": len(durations), "seconds": round(elapsed, 2),
                           "per_second": round(len(durations) / elapsed, 2), "lifecycle_ms": summary(durations),
                           "actions": {k: summary(v) for k, v in timings.items()}})
    supplier = cast.person("supplier")
    return {"levels": levels, "steps_per_lifecycle": len(lifecycle_steps(cast)),
            "cast": {"supplier_token": supplier.token, "supplier_user_id": supplier.user_id,
                     "supplier_id": cast.enterprises["supplier"]["id"], "core_id": cast.enterprises["core"]["id"]}}


def lifecycle_steps(demo: Any) -> list[tuple[str, Any]]:
    """The demo's steps of one financing: without the one-off set-up (log-in, onboarding, invitations), the
    replayed disbursement (a check, not a step) and the ledger verification (an O(ledger) operator check)."""
    skip = (demo.log_in_everyone, demo.onboard_enterprises, demo.invite_members, demo.replay_disburse,
            demo.verify_ledger)
    return [(title, fn) for title, fn in demo.steps() if fn not in skip]


async def main_async(spec: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on the mode."""
    if spec["mode"] == "lifecycle":
        return await run_lifecycles(spec)
    return await run_streams(spec)


def main() -> int:
    """Read the spec from stdin, print the result as one JSON line."""
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(main_async(spec))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
