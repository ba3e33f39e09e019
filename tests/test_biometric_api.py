"""Face endpoints through the real app (HTTP, database, Redis, WeChat simulator) with a real process pool."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from typing import Any

import pytest
from aiohttp import FormData, web
from PIL import Image

from biometric import consent as consent_mod
from biometric import pipeline, tickets
from biometric.api import BIOMETRIC_CONFIG, BIOMETRICS, FACE_POOL, biometrics_context, router
from biometric.config import BiometricConfig
from biometric.enrollment import template_context
from biometric.errors import TicketRejected
from biometric.pipeline import WORKER_NICENESS
from biometric.pool import FacePool
from echain.app import create_app
from echain.keys import REDIS, SIMULATOR
from echain.pii import PiiError
from miniapp_api import auth
from models.biometrics import BiometricConsent, FaceAttempt, FaceTemplate
from models.ledger import LedgerEntry
from tests.support.api import ApiClient
from tests.test_biometric_support import (
    downsized,
    head_turn_frames,
    jpeg,
    mirrored,
    needs_faces,
    photo,
    rgb,
    shared_pool,
)
from wechat.simulator import face_cert_hash
from workflow.errors import ServiceUnavailable

pytestmark = needs_faces

CONTRACT = "financing:42:v1"
PURPOSE = "sign_contract"


def wire(app: web.Application) -> None:
    """What echain/app.py will do once the lead wires biometrics in (idempotent, so it still works then)."""
    if biometrics_context not in app.cleanup_ctx:
        app.cleanup_ctx.append(biometrics_context)
    if "biometric_status" not in app.router.named_resources():
        router.install(app, auth.authenticate)


@pytest.fixture(scope="session")
def face_pool() -> FacePool:
    return shared_pool()


@pytest.fixture
async def api(aiohttp_client, settings, face_pool) -> ApiClient:  # noqa: ANN001 - pytest fixtures
    app = create_app(settings)
    wire(app)
    app[FACE_POOL] = face_pool
    return ApiClient(await aiohttp_client(app))


class Person:
    """A logged-in person and shortcuts for the face endpoints."""

    def __init__(self, api: ApiClient, token: str) -> None:
        self.api, self.token = api, token

    async def call(self, method: str, path: str, expect: int | None = None, **kw: Any) -> Any:
        return await self.api.call(method, path, self.token, expect, **kw)

    async def consent(self) -> None:
        await self.call("POST", "/api/v1/biometrics/consent", 201, json={"version": consent_mod.CONSENT_VERSION})

    async def status(self) -> dict[str, Any]:
        return await self.call("GET", "/api/v1/biometrics/me", 200)

    async def challenge(self, expect: int = 201) -> dict[str, Any]:
        return await self.call("POST", "/api/v1/biometrics/liveness/challenges", expect)

    async def verify(self, frames: list[bytes], challenge_id: str, expect: int | None = None,
                     contract: str = CONTRACT) -> dict[str, Any]:
        form = FormData()
        form.add_field("challenge_id", challenge_id)
        form.add_field("purpose", PURPOSE)
        form.add_field("contract_ref", contract)
        for i, frame in enumerate(frames):
            form.add_field("file", io.BytesIO(frame), filename=f"frame{i}.jpg", content_type="image/jpeg")
        return await self.call("POST", "/api/v1/biometrics/verifications", expect, data=form)

    async def attempt(self, frames: list[bytes] | None = None, expect: int | None = None) -> dict[str, Any]:
        """Get a challenge and answer it (with the right synthetic frames unless `frames` is given)."""
        c = await self.challenge()
        return await self.verify(frames or head_turn_frames(tuple(c["sequence"])), c["challenge_id"], expect)


@pytest.fixture
async def world(api: ApiClient) -> dict[str, Any]:
    """An approved enterprise whose legal representative's ID-card image is a real photo of Obama."""
    operator = await api.operator()
    admin = await api.login("rep-admin")
    enterprise = await api.onboard(admin, operator)
    rep = await api.add_member(admin, enterprise["id"], "rep", ["legal_rep"])
    id_card = await api.upload(admin, enterprise["id"], "id_card_front", downsized(photo("obama/obama3.jpg"), 1000),
                               "id-front.jpg")
    return {"operator": operator, "admin": Person(api, admin), "rep": Person(api, rep), "enterprise": enterprise,
            "id_card": id_card}


async def enrolled_rep(world: dict[str, Any]) -> Person:
    rep = world["rep"]
    await rep.consent()
    await rep.call("POST", "/api/v1/biometrics/enrollment", 201, json={"document_id": world["id_card"]["id"]})
    return rep


def bio(api: ApiClient):  # noqa: ANN201
    return api.app[BIOMETRICS]


# ---- consent --------------------------------------------------------------------------------------


async def test_consent_comes_first_and_is_separate(api: ApiClient, world: dict[str, Any]) -> None:
    rep = world["rep"]
    status = await rep.status()
    assert status["consent"] is None and "人脸信息处理单独同意书" in status["consent_text"]
    refused = await rep.call("POST", "/api/v1/biometrics/enrollment", 403, json={"document_id": world["id_card"]["id"]})
    assert refused["error"]["code"] == "biometric_consent_required"
    assert (await rep.challenge(403))["error"]["code"] == "biometric_consent_required"
    stale = await rep.call("POST", "/api/v1/biometrics/consent", 409, json={"version": "face-v0"})
    assert stale["error"]["code"] == "consent_version_mismatch"
    await rep.consent()
    await rep.consent()  # idempotent
    assert await BiometricConsent.all().count() == 1
    status = await rep.status()
    assert status["consent"]["version"] == consent_mod.CONSENT_VERSION
    assert await LedgerEntry.filter(action="biometric_consent_granted").count() == 1


# ---- enrollment -----------------------------------------------------------------------------------


async def test_enrollment_from_the_id_card_stores_only_an_encrypted_encoding(api: ApiClient, world) -> None:
    rep = await enrolled_rep(world)
    status = await rep.status()
    assert status["template"]["source"] == "id_card" and status["template"]["approved"] is True
    template = await FaceTemplate.get()
    raw = bytes(template.encoding_enc)
    assert len(raw) == 1 + 12 + 128 * 8 + 16  # version, nonce, float64[128], GCM tag: nothing else
    with pytest.raises(PiiError):  # bound to its owner: unreadable as anyone else's template
        bio(api).pii.decrypt_bytes(raw, context=template_context(template.user_id + 1))
    assert bio(api).pii.decrypt_bytes(raw, context=template_context(template.user_id))


async def test_enrollment_rules(api: ApiClient, world: dict[str, Any]) -> None:
    admin = world["admin"]
    await admin.consent()
    # The enterprise admin is neither legal representative nor agent.
    refused = await admin.call("POST", "/api/v1/biometrics/enrollment", 403, json={"document_id": world["id_card"]["id"]})
    assert refused["error"]["code"] == "member_role_required"
    stranger = Person(api, await api.login("stranger"))
    await stranger.consent()
    await stranger.call("POST", "/api/v1/biometrics/enrollment", 404, json={"document_id": world["id_card"]["id"]})
    rep = world["rep"]
    await rep.consent()
    docs = await rep.call("GET", f"/api/v1/enterprises/{world['enterprise']['id']}/documents", 200)
    licence = next(d for d in docs["items"] if d["kind"] == "business_license")
    wrong = await rep.call("POST", "/api/v1/biometrics/enrollment", 422, json={"document_id": licence["id"]})
    assert wrong["error"]["code"] == "not_an_id_card"
    # The ID-card image uploaded during onboarding is a 2×2 PNG: no face in it.
    tiny = next(d for d in docs["items"] if d["kind"] == "id_card_front" and d["id"] != world["id_card"]["id"])
    no_face = await rep.call("POST", "/api/v1/biometrics/enrollment", 422, json={"document_id": tiny["id"]})
    assert no_face["error"]["code"] == "face_no_face" and "未检测到人脸" in no_face["error"]["message"]


async def upload_reference(person: Person, data: bytes, expect: int) -> dict[str, Any]:
    form = FormData()
    form.add_field("file", io.BytesIO(data), filename="me.jpg", content_type="image/jpeg")
    return await person.call("POST", "/api/v1/biometrics/enrollment/photo", expect, data=form)


async def test_reference_photo_waits_for_an_operator(api: ApiClient, world: dict[str, Any]) -> None:
    person = Person(api, await api.login("no-id-card"))
    await person.consent()
    two = await upload_reference(person, photo("multi_face/two_people.jpg"), 422)
    assert two["error"]["code"] == "face_multiple_faces"
    pending = await upload_reference(person, photo("obama/obama.jpg"), 201)
    assert pending["approved"] is False and pending["source"] == "reference_photo"
    assert (await person.challenge(409))["error"]["code"] == "face_not_enrolled"
    operator = world["operator"]
    listed = await api.call("GET", "/api/v1/admin/biometrics/references", operator, 200)
    assert [i["template"]["id"] for i in listed["items"]] == [pending["id"]] and listed["items"][0]["photo_available"]
    await api.call("GET", "/api/v1/admin/biometrics/references", person.token, 403)
    resp = await api.client.get(f"/api/v1/admin/biometrics/references/{pending['id']}/photo",
                                headers=api.auth(operator))
    assert resp.status == 200 and resp.headers["Cache-Control"] == "private, no-store"
    shown = Image.open(io.BytesIO(await resp.read()))
    assert shown.format == "JPEG" and max(shown.size) <= 1280 and not shown.getexif()
    approved = await api.call("POST", f"/api/v1/admin/biometrics/references/{pending['id']}/approve", operator, 200)
    assert approved["approved"] is True
    # The photo is gone the moment the operator decided.
    assert not await api.app[REDIS].keys("echain:bio:review:*")
    await api.call("GET", f"/api/v1/admin/biometrics/references/{pending['id']}/photo", operator, 404)
    await person.challenge(201)
    # A rejected photo is deleted too.
    second = await upload_reference(person, photo("obama/obama2.jpg"), 201)
    await api.call("POST", f"/api/v1/admin/biometrics/references/{second['id']}/reject", operator, 204,
                   json={"reason": "照片不清晰"})
    assert await FaceTemplate.filter(id=second["id"]).count() == 0 and await FaceTemplate.filter(id=pending["id"]).exists()


# ---- verification ---------------------------------------------------------------------------------


async def test_same_person_gets_a_single_use_ticket(api: ApiClient, world: dict[str, Any], settings) -> None:
    rep = await enrolled_rep(world)
    blobs = settings.data_dir / "blobs"
    stored_before = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    c = await rep.challenge()
    assert c["frames_required"] == 3 and set(c["sequence"]) == {"left", "right"}
    result = await rep.verify(head_turn_frames(tuple(c["sequence"]), rgba=True), c["challenge_id"], 201)
    assert result["purpose"] == PURPOSE and result["contract_ref"] == CONTRACT and result["expires_in"] == 300
    # Selfies are never stored: no new blob, and the attempt row holds numbers only.
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == stored_before
    attempt = await FaceAttempt.get(outcome="success")
    assert attempt.method == "selfie" and attempt.frames == 3 and attempt.distance < 0.5 and attempt.threshold == 0.5
    assert len(json.dumps(attempt.detail)) < 2000 and set(attempt.detail) >= {"distances", "yaws", "yaw_deltas"}
    # The ticket works once, for this person, contract and purpose.
    person_id = attempt.user_id
    redis = api.app[REDIS]
    with pytest.raises(TicketRejected):
        await tickets.consume_ticket(redis, result["ticket"], person_id, "financing:43:v1", PURPOSE)
    assert await tickets.consume_ticket(redis, result["ticket"], person_id, CONTRACT, PURPOSE) is True
    with pytest.raises(TicketRejected):
        await tickets.consume_ticket(redis, result["ticket"], person_id, CONTRACT, PURPOSE)
    assert await LedgerEntry.filter(action="face_verified").count() == 1
    # The challenge was single use.
    again = await rep.verify(head_turn_frames(tuple(c["sequence"])), c["challenge_id"], 409)
    assert again["error"]["code"] == "challenge_expired"


async def test_a_different_person_is_rejected(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    biden = [photo("biden/biden2.jpg"), mirrored(photo("biden/biden2.jpg")), photo("biden/biden.jpg")]
    refused = await rep.attempt(biden, 403)
    assert refused["error"]["code"] == "face_mismatch" and "不一致" in refused["error"]["message"]
    attempt = await FaceAttempt.get()
    assert attempt.outcome == "mismatch" and attempt.distance > 0.7
    assert (await rep.status())["recent_failures"] == 1


async def test_photo_problems_are_explained_and_do_not_count(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    good = head_turn_frames(("left", "right"))
    no_face = await rep.attempt([photo("no_face/coffee.png"), *good[1:]], 422)
    assert no_face["error"]["code"] == "face_no_face" and no_face["error"]["message"].startswith("第 1 张照片")
    two = await rep.attempt([good[0], photo("multi_face/two_people.jpg"), good[2]], 422)
    assert two["error"]["code"] == "face_multiple_faces" and "第 2 张" in two["error"]["message"]
    small = await rep.attempt([*good[:2], photo("kit_harington/john1.jpeg")], 422)
    assert small["error"]["code"] == "face_too_small"
    short = await rep.attempt(good[:2], 422)
    assert short["error"]["code"] == "frame_count"
    gif = io.BytesIO()
    rgb(good[0]).save(gif, "GIF")
    assert (await rep.attempt([gif.getvalue(), *good[1:]], 415))["error"]["code"] == "unsupported_image"
    assert (await rep.status())["recent_failures"] == 0
    assert sorted(await FaceAttempt.all().values_list("outcome", flat=True)) == sorted(
        ["face_no_face", "face_multiple_faces", "face_too_small", "frame_count", "unsupported_image"])


async def test_a_static_photo_is_refused(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    same = photo("obama/obama.jpg")
    refused = await rep.attempt([same, same, same], 403)
    assert refused["error"]["code"] == "static_photo"
    # Re-encoded copies (different bytes, same picture) are caught by the face-crop hash.
    image = rgb(same)
    copies = [jpeg(image, 95), jpeg(image, 85), jpeg(image, 75)]
    assert len(set(copies)) == 3
    refused = await rep.attempt(copies, 403)
    assert refused["error"]["code"] == "static_photo"


async def test_turning_the_wrong_way_is_refused(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    c = await rep.challenge()
    other = ("right", "left") if tuple(c["sequence"]) == ("left", "right") else ("left", "right")
    refused = await rep.verify(head_turn_frames(other), c["challenge_id"], 403)
    assert refused["error"]["code"] == "liveness_direction" and "转头" in refused["error"]["message"]
    assert (await FaceAttempt.get()).outcome == "liveness_failed"


async def test_five_failures_in_an_hour_lock_the_person_out(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    same = photo("obama/obama.jpg")
    for i in range(1, 6):
        refused = await rep.attempt([same, same, same], 403)
        assert refused["error"]["details"]["failures"] == i
    assert "暂停" in refused["error"]["message"]
    locked = await rep.challenge(429)
    assert locked["error"]["code"] == "face_locked_out" and "60 分钟后再试" in locked["error"]["message"]
    status = await rep.status()
    assert 3500 < status["locked_seconds"] <= 3600
    # Even a correct verification is refused while locked, and the refusal is recorded.
    c_id = "any"
    refused = await rep.verify(head_turn_frames(("left", "right")), c_id, 429)
    assert refused["error"]["code"] == "face_locked_out"
    outcomes = await FaceAttempt.all().order_by("id").values_list("outcome", flat=True)
    assert outcomes == ["liveness_failed"] * 5 + ["locked_out"]


async def test_withdrawing_consent_deletes_the_template_and_refuses_verification(api: ApiClient, world) -> None:
    rep = await enrolled_rep(world)
    unused = await rep.attempt(expect=201)
    gone = await rep.call("DELETE", "/api/v1/biometrics/me", 200)
    assert gone == {"consent_withdrawn": True, "templates_deleted": 1, "tickets_revoked": 1}
    assert await FaceTemplate.all().count() == 0
    status = await rep.status()
    assert status["consent"] is None and status["template"] is None
    assert (await rep.challenge(403))["error"]["code"] == "biometric_consent_required"
    refused = await rep.verify(head_turn_frames(("left", "right")), "whatever", 403)
    assert refused["error"]["code"] == "biometric_consent_required"
    person_id = (await FaceAttempt.get(outcome="success")).user_id
    with pytest.raises(TicketRejected):
        await tickets.consume_ticket(api.app[REDIS], unused["ticket"], person_id, CONTRACT, PURPOSE)
    assert await LedgerEntry.filter(action="biometric_consent_withdrawn").count() == 1
    # Consenting again does not bring the template back: the person must enroll again.
    await rep.consent()
    assert (await rep.challenge(409))["error"]["code"] == "face_not_enrolled"


async def test_wiring_starts_workers_lazily_in_dev_and_at_start_up_in_production(aiohttp_client, settings) -> None:  # noqa: ANN001
    app = create_app(settings)
    wire(app)
    client = await aiohttp_client(app)
    assert not app[FACE_POOL].running  # ECHAIN_ENV=dev: no dlib process until the first face job
    token = (await (await client.post("/api/v1/auth/login", json={"code": "sim:lazy"})).json())["token"]
    resp = await client.get("/api/v1/biometrics/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    warm = create_app(settings)
    wire(warm)
    warm[BIOMETRIC_CONFIG] = BiometricConfig(warm_at_startup=True, pool_size=1)
    await aiohttp_client(warm)
    assert warm[FACE_POOL].running and len(warm[FACE_POOL].worker_pids) == 1


# ---- the event loop stays free -----------------------------------------------------------------------


async def heartbeat(stop: asyncio.Event, gaps: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def test_face_work_runs_off_the_event_loop(api: ApiClient, world: dict[str, Any]) -> None:
    rep = await enrolled_rep(world)
    c = await rep.challenge()
    frames = head_turn_frames(tuple(c["sequence"]))
    # Control: one analysis run on the loop itself stalls a 5-ms heartbeat for its whole duration.
    pipeline.warm()  # load the models in this process first: the stall below is the analysis alone
    stop, blocked = asyncio.Event(), []
    ticker = asyncio.create_task(heartbeat(stop, blocked))
    await asyncio.sleep(0.02)
    pipeline.analyse(frames[0])  # blocking, on purpose
    await asyncio.sleep(0.02)
    stop.set()
    await ticker
    stall = max(blocked)
    assert stall > 0.05
    # The real thing: a whole 3-frame verification over HTTP, with the heartbeat in the same loop.
    stop, gaps = asyncio.Event(), []
    ticker = asyncio.create_task(heartbeat(stop, gaps))
    started = time.perf_counter()
    await rep.verify(frames, c["challenge_id"], 201)
    took = time.perf_counter() - started
    stop.set()
    await ticker
    assert took > 2 * stall * 0.8  # three detections + encodings really happened (in a worker) …
    assert max(gaps) < min(0.2, stall / 2), (took, stall, max(gaps))  # … while the loop kept ticking


async def test_pool_warms_every_worker_and_survives_a_dead_worker() -> None:
    pool = FacePool(2, timeout=60.0)
    await pool.start()
    try:
        assert len(pool.worker_pids) == 2
        # Face work yields the CPU to the web process: every worker runs at a lower priority than this process.
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert all(os.getpriority(os.PRIO_PROCESS, pid) == min(mine + WORKER_NICENESS, 19) for pid in pool.worker_pids)
        assert (await pool.analyse(photo("obama/obama.jpg"))).ok
        os.kill(pool.worker_pids[0], signal.SIGKILL)
        await asyncio.sleep(0.2)
        with pytest.raises(ServiceUnavailable) as broken:
            await pool.analyse(photo("obama/obama.jpg"))
        assert broken.value.code == "face_service_unavailable"
        assert (await pool.analyse(photo("obama/obama.jpg"))).ok  # a fresh executor took over
    finally:
        await pool.close()
    with pytest.raises(ServiceUnavailable):
        await pool.analyse(photo("obama/obama.jpg"))


async def test_a_lazy_pool_starts_on_first_use() -> None:
    pool = FacePool(1, lazy=True, timeout=60.0)
    assert not pool.running
    try:
        first, second = await asyncio.gather(pool.analyse(photo("obama/obama.jpg")),
                                             pool.analyse(photo("biden/biden2.jpg")))
        assert first.ok and second.ok and len(pool.worker_pids) == 1
    finally:
        await pool.close()


# ---- WeChat's own face verification, through the simulator ------------------------------------------------


async def test_wechat_face_verification(api: ApiClient, world: dict[str, Any]) -> None:
    rep, sim = world["rep"], api.app[SIMULATOR]
    body = {"enterprise_id": world["enterprise"]["id"], "purpose": PURPOSE, "contract_ref": CONTRACT}
    session = await rep.call("POST", "/api/v1/biometrics/wechat/sessions", 201, json=body)
    assert session["expires_in"] == 3600
    opened = sim.face_sessions[session["verify_id"]]
    assert opened.cert_info["cert_name"] == "张三" and opened.cert_info["cert_type"] == "IDENTITY_CARD"
    assert len(opened.cert_info["cert_no"]) == 18  # the decrypted legal-representative ID number
    # Not finished yet (or cancelled): refused, not counted, and the session stays usable.
    pending = await rep.call("POST", "/api/v1/biometrics/wechat/verifications", 403,
                             json={"verify_id": session["verify_id"]})
    assert pending["error"]["code"] == "wechat_face_failed"
    sim.face_finish(session["verify_id"], 90002)
    cancelled = await rep.call("POST", "/api/v1/biometrics/wechat/verifications", 403,
                               json={"verify_id": session["verify_id"]})
    assert "取消" in cancelled["error"]["message"]
    assert (await rep.status())["recent_failures"] == 0
    sim.face_finish(session["verify_id"], 10000)
    passed = await rep.call("POST", "/api/v1/biometrics/wechat/verifications", 201,
                            json={"verify_id": session["verify_id"]})
    assert passed["contract_ref"] == CONTRACT and passed["purpose"] == PURPOSE
    query = sim.calls_to("/cityservice/face/identify/queryverifyinfo")[-1].body
    assert query["cert_hash"] == face_cert_hash(opened.cert_info) and query["openid"] == opened.openid
    user_id = (await FaceAttempt.get(outcome="success")).user_id
    assert await tickets.consume_ticket(api.app[REDIS], passed["ticket"], user_id, CONTRACT, PURPOSE)
    # The session is finished: it cannot yield a second ticket.
    await rep.call("POST", "/api/v1/biometrics/wechat/verifications", 409, json={"verify_id": session["verify_id"]})


async def test_wechat_face_mismatch_counts_and_only_the_legal_rep_may_start(api: ApiClient, world) -> None:
    rep, sim = world["rep"], api.app[SIMULATOR]
    body = {"enterprise_id": world["enterprise"]["id"], "purpose": PURPOSE, "contract_ref": CONTRACT}
    session = await rep.call("POST", "/api/v1/biometrics/wechat/sessions", 201, json=body)
    sim.face_finish(session["verify_id"], 10004)
    refused = await rep.call("POST", "/api/v1/biometrics/wechat/verifications", 403,
                             json={"verify_id": session["verify_id"]})
    assert refused["error"]["details"]["verify_ret"] == 10004 and "不一致" in refused["error"]["message"]
    assert (await rep.status())["recent_failures"] == 1
    assert (await FaceAttempt.get()).outcome == "mismatch"
    admin = world["admin"]
    await admin.call("POST", "/api/v1/biometrics/wechat/sessions", 403, json=body)
    # Someone else cannot query the rep's session.
    other = await rep.call("POST", "/api/v1/biometrics/wechat/sessions", 201, json=body)
    await admin.call("POST", "/api/v1/biometrics/wechat/verifications", 409, json={"verify_id": other["verify_id"]})


def test_openapi_describes_the_face_endpoints() -> None:
    from echain.api import openapi_document

    doc = openapi_document(router, title="echain", version="test")
    verify = doc["paths"]["/api/v1/biometrics/verifications"]["post"]
    assert "multipart/form-data" in verify["requestBody"]["content"] and "429" in verify["responses"]
    assert "/api/v1/admin/biometrics/references/{template_id}/approve" in doc["paths"]
