"""JSON logs with request ids, redaction of personal data, and Prometheus /metrics moved by real traffic."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from arq import Retry, Worker
from arq.connections import ArqRedis
from arq.worker import func
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from biometric.api import FACE_POOL
from biometric.pool import FacePool
from echain import logs, metrics
from echain.app import create_app
from echain.keys import SIMULATOR
from echain.settings import Settings, SettingsError
from tests.support.api import ApiClient
from tests.support.wechat_oa import OfficialAccount, user_message
from tests.test_biometric_support import downsized, needs_faces, photo, shared_pool
from tests.test_notify import run_worker
from wechat.simulator import SIM_APP_ID, openid_of

TOKEN = "test-oa-token"
ID_NUMBER = "11010519491231002X"  # GB 11643's own example (valid check character)
REAL_STYLE_OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@contextmanager
def json_log_lines() -> Iterator[list[dict[str, Any]]]:
    """Everything logged (INFO and up) inside the block, as parsed JSON lines, through the production handler."""
    buf, lines = io.StringIO(), []
    root, handler = logging.getLogger(), logs.handler("json", buf)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json.loads(line) for line in buf.getvalue().splitlines() if line)


async def scrape(api: ApiClient, token: str | None = None) -> Series:
    """GET /metrics and index every sample by (name, sorted labels)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await api.client.get("/metrics", headers=headers)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(series: Series, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 180, 160)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
async def api(aiohttp_client, settings) -> ApiClient:  # noqa: ANN001 - pytest fixtures
    """The real app with the Official Account callback switched on."""
    return ApiClient(await aiohttp_client(create_app(settings.with_(wechat_token=TOKEN))))


# ---- request ids -------------------------------------------------------------------------------------------


async def test_every_log_line_of_a_request_carries_its_id_which_the_response_returns(api: ApiClient) -> None:
    oa = OfficialAccount(api.client, TOKEN)
    body = "<xml><MsgType>text</MsgType></xml>"
    with json_log_lines() as lines:  # a forged signature: the callback logs the refusal inside the handler
        resp = await oa.post_raw(body, oa.signed_query() | {"signature": "f" * 40})
    assert resp.status == 403
    rid = resp.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    # aiohttp's own access log writes after the request; `echain serve` switches it off (ours replaces it).
    lines = [line for line in lines if line["logger"] != "aiohttp.access"]
    assert {line["logger"] for line in lines} >= {"echain.bot.callback", "echain.access"}
    assert all(line["request_id"] == rid for line in lines), lines
    refusal = next(line for line in lines if line["logger"] == "echain.bot.callback")
    assert refusal["level"] == "WARNING" and "refused WeChat callback" in refusal["message"]
    assert refusal["ts"].endswith("+00:00")
    access = next(line for line in lines if line["logger"] == "echain.access")
    assert access["status"] == 403 and access["duration_ms"] >= 0 and access["message"] == "POST /wechat 403"


async def test_a_sane_incoming_request_id_is_kept_and_any_other_replaced(api: ApiClient) -> None:
    with json_log_lines() as lines:
        resp = await api.client.get("/api/v1/nothing-here", headers={"X-Request-Id": "edge-7f3a.b_9-Z"})
    assert resp.status == 404  # an error response from the error middleware: it carries the id too
    assert resp.headers["X-Request-Id"] == "edge-7f3a.b_9-Z"
    assert [line["request_id"] for line in lines if line["logger"] != "aiohttp.access"] == ["edge-7f3a.b_9-Z"]
    for bad in ("x" * 65, "a b", "<script>", "id\u00e9"):
        resp = await api.client.delete("/api/v1/me", headers={"X-Request-Id": bad})
        assert resp.status == 405
        assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Request-Id"]), bad
    first = (await api.client.get("/healthz")).headers["X-Request-Id"]
    assert first != (await api.client.get("/healthz")).headers["X-Request-Id"]


async def test_worker_jobs_log_with_their_job_id_and_count_retries_and_failures(api: ApiClient, settings) -> None:
    job_log = logging.getLogger("echain.test.job")
    tries: dict[str, int] = {}

    async def flaky(ctx: dict[str, Any], n: int) -> int:
        tries["flaky"] = tries.get("flaky", 0) + 1
        job_log.info("flaky try %s", tries["flaky"])
        if tries["flaky"] == 1:
            raise Retry(defer=0)
        return n

    async def explode(ctx: dict[str, Any]) -> None:
        job_log.warning("about to fail")
        raise RuntimeError("boom")

    queue = ArqRedis.from_url(settings.redis_url)
    worker = Worker(functions=[func(metrics.observed_job(flaky), name="flaky", max_tries=3),
                               func(metrics.observed_job(explode), name="explode", max_tries=1)],
                    on_job_start=logs.bind_job_id, redis_pool=queue, burst=True, handle_signals=False,
                    poll_delay=0.01)
    try:
        await queue.enqueue_job("flaky", 7, _job_id="obs:flaky:1")
        await queue.enqueue_job("explode", _job_id="obs:explode:1")
        with json_log_lines() as lines:
            await asyncio.wait_for(worker.async_run(), 30)
    finally:
        await worker.close()
    mine = [line for line in lines if line["logger"] == "echain.test.job"]
    # The jobs run concurrently, their lines interleaved: each line still names its own job.
    assert sorted((line["message"], line["request_id"]) for line in mine) == [
        ("about to fail", "obs:explode:1"), ("flaky try 1", "obs:flaky:1"), ("flaky try 2", "obs:flaky:1")]
    arq_lines = [line for line in lines if line["logger"] == "arq.worker" and "obs:explode:1" in line["message"]]
    assert arq_lines and all(line["request_id"] == "obs:explode:1" for line in arq_lines)
    series = await scrape(api)
    assert value(series, "echain_jobs_retried_total", function="flaky") == 1
    assert value(series, "echain_jobs_failed_total", function="flaky") == 0
    assert value(series, "echain_jobs_failed_total", function="explode") == 1


# ---- redaction ---------------------------------------------------------------------------------------------


def test_openids_and_id_numbers_never_leave_in_clear() -> None:
    buf = io.StringIO()
    log = logging.getLogger("echain.test.redaction")
    handler = logs.handler("json", buf)
    log.addHandler(handler)
    log.propagate, log.level = False, logging.INFO
    sim_openid = openid_of("alice", SIM_APP_ID)
    try:
        log.info("follower %s bound, legal rep id %s", sim_openid, ID_NUMBER)
        log.warning("inline " + REAL_STYLE_OPENID + " and " + ID_NUMBER.lower())
        log.info("with an extra", extra={"openid": sim_openid})
        try:
            raise ValueError(f"bad openid {sim_openid} for {ID_NUMBER}")
        except ValueError:
            log.exception("failed")
        log.info("msg id %s, amount %s, uscc %s", 7_000_000_000_000_000_123, "400000.00", "91350100M000100Y43")
    finally:
        log.removeHandler(handler)
    out = buf.getvalue()
    for secret in (sim_openid, REAL_STYLE_OPENID, ID_NUMBER, ID_NUMBER.lower()):
        assert secret not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["message"] == f"follower {logs.mask_openid(sim_openid)} bound, legal rep id 110***********002X"
    assert logs.mask_openid(REAL_STYLE_OPENID) in lines[1]["message"]
    assert lines[2]["openid"] == logs.mask_openid(sim_openid)
    assert "ValueError: bad openid o…" in lines[3]["exc"] and "110***********002X" in lines[3]["exc"]
    # Not personal data, not masked: a WeChat MsgId (19 digits), an amount, a credit code.
    assert lines[4]["message"] == "msg id 7000000000000000123, amount 400000.00, uscc 91350100M000100Y43"
    # The same openid always gives the same tag, so a person's lines can still be followed.
    assert logs.mask_openid(sim_openid) == logs.mask_openid(openid_of("alice", SIM_APP_ID))


def test_text_format_names_the_request_id() -> None:
    buf = io.StringIO()
    log = logging.getLogger("echain.test.text")
    log.addHandler(logs.handler("text", buf))
    log.propagate, log.level = False, logging.INFO
    token = logs.request_id_var.set("req-42")
    try:
        log.info("hello %s", ID_NUMBER)
    finally:
        logs.request_id_var.reset(token)
    assert buf.getvalue().rstrip().endswith("INFO echain.test.text [req-42] hello 110***********002X")
    with pytest.raises(ValueError, match="log format"):
        logs.handler("xml")


def test_log_format_defaults_json_in_production_and_text_in_dev(tmp_path: Path) -> None:
    base = {"ECHAIN_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).log_format == "text"
    production = base | {"ECHAIN_ENV": "production", "ECHAIN_SECRET_KEY": "k" * 40}
    assert Settings.from_env(production).log_format == "json"
    assert Settings.from_env(production | {"ECHAIN_LOG_FORMAT": "text"}).log_format == "text"
    with pytest.raises(SettingsError, match="ECHAIN_LOG_FORMAT"):
        Settings.from_env(base | {"ECHAIN_LOG_FORMAT": "xml"})


# ---- /metrics ------------------------------------------------------------------------------------------------


async def test_metrics_access(aiohttp_client, settings) -> None:
    dev = ApiClient(await aiohttp_client(create_app(settings)))
    assert (await dev.client.get("/metrics")).status == 200  # dev: open
    production = settings.with_(env="production", face_pool_warm=False)
    closed = ApiClient(await aiohttp_client(create_app(production)))
    refused = await closed.call("GET", "/metrics", expect=403)
    assert refused["error"]["code"] == "metrics_token_not_configured" and "ECHAIN_METRICS_TOKEN" in refused["error"]["message"]
    guarded = ApiClient(await aiohttp_client(create_app(production.with_(metrics_token="s3cret-scrape-token"))))
    for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-scrape-token"},
                   {"Authorization": "Bearer s3cret-scrape-token-and-more"}):
        resp = await guarded.client.get("/metrics", headers=header)
        assert resp.status == 401, header
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"]["message"] == "监控令牌无效"
    series = await scrape(guarded, "s3cret-scrape-token")
    assert value(series, "echain_jobs_queue_depth") == 0


async def test_metrics_move_with_real_traffic(api: ApiClient) -> None:
    before = await scrape(api)
    # A transition (submit) through the API, then a read of it by its route.
    op = await api.operator()
    supplier = await api.login("obs-supplier")
    core = await api.login("obs-core")
    supplier_e = await api.onboard(supplier, op, business_roles=["supplier"])
    core_e = await api.onboard(core, op, business_roles=["core"])
    financing = await api.financing(supplier, supplier_e["id"], core_e["id"])
    await api.call("GET", f"/api/v1/financings/{financing['id']}", supplier, 200)
    # A stream (SSE) sends its headers before the handler ends: the request id is among them all the same.
    stream = await api.client.get(f"/api/v1/financings/{financing['id']}/events",
                                  headers=api.auth(supplier) | {"X-Request-Id": "sse-1"})
    assert stream.status == 200 and stream.headers["X-Request-Id"] == "sse-1"
    stream.close()
    # WeChat callbacks: answered, retried by WeChat (dedup), forged.
    oa = OfficialAccount(api.client, TOKEN, sim=api.app[SIMULATOR])
    message = user_message(api.app[SIMULATOR].follow("obs-follower"), "text", Content="帮助")
    assert "帮助" in (await oa.send(message) or "")
    assert "帮助" in (await oa.send(message) or "")
    assert (await oa.post_raw("<xml/>", oa.signed_query() | {"signature": "0" * 40})).status == 403
    # A face verification refused before any face work (no consent yet): recorded, so measured.
    form = FormData()
    for name, field_value in (("challenge_id", "c1"), ("purpose", "sign_contract"), ("contract_ref", "financing:1:v1")):
        form.add_field(name, field_value)
    form.add_field("file", io.BytesIO(tiny_jpeg()), filename="f.jpg", content_type="image/jpeg")
    refused = await api.call("POST", "/api/v1/biometrics/verifications", supplier, 403, data=form)
    assert refused["error"]["code"] == "biometric_consent_required"

    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    detail = "/api/v1/financings/{financing_id}"
    assert moved("echain_http_request_duration_seconds_count", method="GET", route=detail, status="200") == 1
    assert moved("echain_http_request_duration_seconds_count", method="POST", route="/api/v1/financings",
                 status="201") == 1
    routes = {dict(labels).get("route") for (name, labels) in after if name.startswith("echain_http_request")}
    assert not any(re.search(r"/\d+(/|$)", route or "") for route in routes), routes  # templates, never raw ids
    assert moved("echain_transitions_total", action="submit") == 1
    assert moved("echain_wechat_callbacks_total", msg_type="text", outcome="replied") == 1
    assert moved("echain_wechat_callbacks_total", msg_type="text", outcome="dedup") == 1
    assert moved("echain_wechat_callbacks_total", msg_type="unknown", outcome="rejected_signature") == 1
    assert moved("echain_face_verifications_total", method="selfie", outcome="biometric_consent_required") == 1
    assert moved("echain_face_verification_seconds_count", method="selfie") == 1
    # Jobs: counted in Redis (emptied for each test), so the values are absolute.
    assert value(after, "echain_jobs_queued_total", function="notify_transition") == 1
    assert value(after, "echain_jobs_queue_depth") == 1
    assert value(after, "process_resident_memory_bytes") > 0
    # The worker runs the fan-out, which queues one notice per person awaited (the core enterprise's staff).
    await run_worker(api.app)
    done = await scrape(api)
    assert value(done, "echain_jobs_queue_depth") == 0
    assert value(done, "echain_jobs_queued_total", function="send_notice") >= 1
    assert value(done, "echain_jobs_failed_total", function="send_notice") == 0


@pytest.fixture(scope="session")
def face_pool() -> FacePool:
    """The session's warm face pool (started outside any event loop)."""
    return shared_pool()


@needs_faces
async def test_a_real_face_verification_is_timed(aiohttp_client, settings, face_pool: FacePool) -> None:
    from tests.test_biometric_api import Person, enrolled_rep

    app = create_app(settings)
    app[FACE_POOL] = face_pool
    api = ApiClient(await aiohttp_client(app))
    operator = await api.operator()
    admin = await api.login("obs-rep-admin")
    enterprise = await api.onboard(admin, operator)
    rep = await api.add_member(admin, enterprise["id"], "obs-rep", ["legal_rep"])
    id_card = await api.upload(admin, enterprise["id"], "id_card_front", downsized(photo("obama/obama3.jpg"), 1000),
                               "id-front.jpg")
    person: Person = await enrolled_rep({"rep": Person(api, rep), "id_card": id_card})
    before = await scrape(api)
    passed = await person.attempt(expect=201)
    assert passed["ticket"]
    after = await scrape(api)
    assert (value(after, "echain_face_verifications_total", method="selfie", outcome="success")
            - value(before, "echain_face_verifications_total", method="selfie", outcome="success")) == 1
    timed = (value(after, "echain_face_verification_seconds_sum", method="selfie")
             - value(before, "echain_face_verification_seconds_sum", method="selfie"))
    assert timed > 0.01  # dlib detection and encoding of three frames, not a refusal
