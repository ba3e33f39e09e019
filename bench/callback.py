"""1. WeChat callback: a safe-mode text message through the whole /wechat path against a bare aiohttp handler.

Ours: signature + timestamp window, one-body-per-signed-URL check (Redis), safe-mode msg_signature and AES
decrypt, hardened XML parse, dedup claim (Redis), the follower's conversation step under their lock (the
text 帮助 from a *bound* follower: link lookup in the database, conversation load/save in Redis), then the
AES-encrypted, signed passive reply. Bare: one aiohttp handler reading the body and returning a fixed XML
reply. Both are served the same way (`python -m bench.server`), driven by the same load generator process
with the same concurrency and duration; every request carries a fresh MsgId, so dedup never short-cuts the
measured path. The retry path (WeChat re-sending the same message) is measured separately.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import loadgen, new_aes_key, prepare_backend, server, server_env
from bench.report import Result, ratio

NAME = "callback"
TEXT = "帮助"


async def bind_followers(url: str, token: str, aes_key: str, count: int) -> list[str]:
    """Followers linked to mini-program accounts with a binding code, as people do; their OA openids."""
    from bot import texts
    from echain.demo import Api, OfficialAccount
    from wechat.simulator import SIM_APP_ID, openid_of

    openids = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api, oa = Api(session, url), OfficialAccount(session, url, token, aes_key, SIM_APP_ID)
        for n in range(count):
            name = f"bench-follower-{n}"
            login = await api.post("/api/v1/auth/login", None, {"code": f"sim:{name}"})
            code = (await api.post("/api/v1/wechat/binding-code", login["token"], expect=201))["code"]
            openid = openid_of(name, SIM_APP_ID)
            reply = await oa.push(openid, "text", Content=f"绑定 {code}")
            if not reply or texts.BOUND not in reply:
                raise RuntimeError(f"binding a benchmark follower failed: {reply!r}")
            openids.append(openid)
        reply = await oa.push(openids[0], "text", Content=TEXT)  # the measured message answers with the help text
        if not reply or texts.HELP not in reply:
            raise RuntimeError(f"帮助 did not answer with the help text: {reply!r}")
    return openids


def _spec(url: str, kind: str, followers: list[str], token: str, aes_key: str, p: dict[str, Any]) -> dict[str, Any]:
    from wechat.simulator import SIM_APP_ID

    stream = {"name": kind, "kind": kind, "url": url, "path": "/wechat", "concurrency": p["concurrency"],
              "followers": followers, "token": token, "aes_key": aes_key, "app_id": SIM_APP_ID, "text": TEXT,
              "body_prefix": "<xml>"}
    return {"mode": "streams", "warmup": p["warmup"], "duration": p["duration"], "streams": [stream]}


async def run(quick: bool) -> Result:
    """Measure ours, our retry path, and the bare handler."""
    p = {"concurrency": 4, "duration": 2.0, "warmup": 0.5} if quick else {"concurrency": 16, "duration": 10.0, "warmup": 2.0}
    with tempfile.TemporaryDirectory(prefix="echain-bench-callback-", ignore_cleanup_errors=True) as tmp:
        backend = await prepare_backend(Path(tmp))
        token, aes_key = "bench-" + secrets.token_hex(8), new_aes_key()
        env = server_env(backend, Path(tmp) / "data", WECHAT_TOKEN=token, WECHAT_AES_KEY=aes_key)
        async with server("echain", env) as srv:
            followers = await bind_followers(srv.url, token, aes_key, p["concurrency"])
            ours = (await loadgen(_spec(srv.url, "wechat", followers, token, aes_key, p)))["streams"]["wechat"]
            retry = (await loadgen(_spec(srv.url, "wechat_retry", followers, token, aes_key, p)))["streams"]["wechat_retry"]
        async with server("bare", env) as srv:
            bare = (await loadgen(_spec(srv.url, "wechat", followers, token, aes_key, p)))["streams"]["wechat"]
    result = Result(NAME, "WeChat callback: safe-mode text message, ours vs a bare aiohttp handler",
                    database=backend.info, quick=quick)
    rows = []
    for label, r in (("echain /wechat: verify, decrypt, dedup, 帮助 step (bound follower), encrypted reply", ours),
                     ("echain /wechat retry (same MsgId re-sent: stored reply)", retry),
                     ("bare aiohttp handler, fixed reply", bare)):
        rows.append([label, r["rps"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["ok"], _failures(r)])
    rows.append(["**ours ÷ bare**", ratio(ours["rps"], bare["rps"]), ratio(ours["latency_ms"]["p50"], bare["latency_ms"]["p50"]),
                 ratio(ours["latency_ms"]["p99"], bare["latency_ms"]["p99"]), "", ""])
    result.table(["side", "requests/s", "p50 ms", "p99 ms", "requests", "failed"], rows)
    result.notes += [
        f"{p['concurrency']} concurrent connections, {p['duration']:g} s measured after {p['warmup']:g} s warm-up, per side; "
        "load generator: a separate Python process (aiohttp client) on loopback, building a signed, AES-encrypted "
        "message with a fresh MsgId for every request (the same work for both sides).",
        f"{p['concurrency']} followers, one per connection, each bound to a mini-program account; the server is the "
        "real app (`create_app`) in its own process, the bare handler likewise.",
    ]
    result.data = {"params": p, "ours": ours, "retry": retry, "bare": bare,
                   "ratio": {"rps": ratio(ours["rps"], bare["rps"]),
                             "p50": ratio(ours["latency_ms"]["p50"], bare["latency_ms"]["p50"]),
                             "p99": ratio(ours["latency_ms"]["p99"], bare["latency_ms"]["p99"])}}
    return result


def _failures(r: dict[str, Any]) -> int:
    return r["errors"] + r["bad_bodies"] + sum(v for k, v in r["statuses"].items() if k != "200")
