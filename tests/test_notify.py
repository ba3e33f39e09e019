"""Notifications: after a committed transition the worker tells whoever must act next, through WeChat.

Runs the real app (web side: JobQueueSink on Deps.events) and the real arq worker in burst mode against the
test Redis and database; the in-process WeChat simulator receives the messages.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from arq import Retry, Worker
from arq.connections import ArqRedis

from bot.binding import link
from echain.keys import HTTP, REDIS, SETTINGS, SIMULATOR, WECHAT_BASE
from echain.worker import FUNCTIONS, WorkerSettings, wechat_credentials, worker_options
from models.financing import Financing
from models.notifications import Notification
from models.people import User
from notify.delivery import Notifier, marker_key
from notify.jobs import event_job_id, notice_job_id, send_notice
from notify.messages import NotifyConfig
from notify.sink import JobQueueSink
from wechat.client import RedisTokenCache, WeChatClient
from workflow.events import TransitionEvent

SUBSCRIBE = "/cgi-bin/message/subscribe/send"
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIPTIONS = "/api/v1/notifications/subscriptions"


def _path(fid: int, action: str) -> str:
    return f"/api/v1/financings/{fid}/actions/{action}"


def notifier_for(app, base: str | None = None) -> Notifier:  # noqa: ANN001 - the aiohttp app under test
    """What the worker builds at startup, pointed at the app's in-process simulator (or at `base`)."""
    settings, base = app[SETTINGS], base or app[WECHAT_BASE]
    (mini_id, mini_secret), (oa_id, oa_secret) = wechat_credentials(settings)
    cache = RedisTokenCache.for_api(app[REDIS], base)
    return Notifier(app[REDIS], WeChatClient(app[HTTP], base, mini_id, mini_secret, token_cache=cache),
                    WeChatClient(app[HTTP], base, oa_id, oa_secret, token_cache=cache), NotifyConfig.from_settings(settings))


async def run_worker(app) -> Worker:  # noqa: ANN001
    """Run every queued job with arq's real Worker (burst: stop when the queue is empty)."""
    worker = Worker(**worker_options(), redis_pool=ArqRedis.from_url(app[SETTINGS].redis_url), burst=True,
                    handle_signals=False, poll_delay=0.01, ctx={"notifier": notifier_for(app)})
    try:
        await asyncio.wait_for(worker.async_run(), 30)
    finally:
        await worker.close()
    assert worker.jobs_failed == 0
    return worker


async def version_of(financing_id: int) -> int:
    """The financing's current version (what the last transition's event carried)."""
    return (await Financing.get(id=financing_id)).version


async def user_of(api, token: str) -> User:  # noqa: ANN001
    """The person behind a token."""
    return await User.get(id=(await api.call("GET", "/api/v1/me", token, 200))["user"]["id"])


@pytest.fixture
async def world(api):
    """Operator, supplier, core (admin + one approver), and one submitted financing; its submit job done."""
    op = await api.operator()
    people = {"op": op}
    for key, roles in (("supplier", ["supplier"]), ("core", ["core"])):
        token = await api.login(f"{key}-admin")
        e = await api.onboard(token, op, business_roles=roles)
        people[key], people[f"{key}_id"] = token, e["id"]
    people["approver"] = await api.add_member(people["core"], people["core_id"], "core-approver", ["approver"])
    people["approver_user"] = await user_of(api, people["approver"])
    people["financing"] = await api.financing(people["supplier"], people["supplier_id"], people["core_id"])
    await run_worker(api.app)  # the submit's notice (core staff: claim) — nobody has a channel yet
    api.app[SIMULATOR].clear_calls()
    return people


def sim(api):  # noqa: ANN001, ANN201
    return api.app[SIMULATOR]


async def allow_subscribe(api, token: str, name: str) -> None:  # noqa: ANN001
    """The person taps “允许” in wx.requestSubscribeMessage: WeChat records it, the mini-program reports it."""
    template_id = api.app[SETTINGS].subscribe_template_id
    sim(api).add_subscribe_quota(sim(api).openid_for(name), template_id)
    body = await api.call("POST", SUBSCRIPTIONS, token, 200, json={"template_ids": [template_id], "accepted": [template_id]})
    assert body["quotas"] == [{"template_id": template_id, "remaining": 1}]


async def follow_official_account(api, name: str, user: User) -> str:  # noqa: ANN001
    """The person follows the Official Account and the bot links the follower to them; returns the OA openid."""
    oa_openid = sim(api).follow(name)
    await link(oa_openid, user, via="unionid")
    return oa_openid


def messages_to(api, openid: str) -> list:  # noqa: ANN001
    return sim(api).messages_to(openid)


async def test_claim_sends_approver_a_subscribe_message_with_the_approve_page(api, world):
    await allow_subscribe(api, world["approver"], "core-approver")
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    await run_worker(api.app)

    calls = sim(api).calls_to(SUBSCRIBE)
    assert len(calls) == 1 and calls[0].errcode == 0
    body = calls[0].body
    assert body["touser"] == world["approver_user"].openid
    assert body["page"] == f"pages/financing/detail?id={fid}&action=approve"
    assert body["template_id"] == api.app[SETTINGS].subscribe_template_id
    data = {k: v["value"] for k, v in body["data"].items()}
    assert data["character_string1"] == str(fid) and data["amount2"] == "400000.00元"
    assert data["thing3"] == "确权审批中" and data["thing4"] == "请审批同意"
    assert "年" in data["time5"] and ":" in data["time5"]
    # Nobody else: the supplier (and the core operator who claimed) are not waited for.
    assert sim(api).calls_to(TEMPLATE) == []
    supplier = await User.get(openid=sim(api).openid_for("supplier-admin"))
    assert not await Notification.exists(user_id=supplier.id)
    row = await Notification.get(subject=f"financing:{fid}", user_id=world["approver_user"].id)
    assert (row.channel, row.status, row.action) == ("subscribe", "sent", "approve")
    # The acceptance was spent.
    left = await api.call("GET", SUBSCRIPTIONS, world["approver"], 200)
    assert left["quotas"][0]["remaining"] == 0


async def test_without_quota_the_official_account_template_is_used(api, world):
    oa_openid = await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    await run_worker(api.app)

    assert sim(api).calls_to(SUBSCRIBE) == []
    [message] = messages_to(api, oa_openid)
    assert message.kind == "template"
    assert message.payload["template_id"] == api.app[SETTINGS].oa_template_id
    assert message.payload["miniprogram"] == {"appid": sim(api).miniapp_id,
                                              "pagepath": f"pages/financing/detail?id={fid}&action=approve"}
    assert message.payload["data"]["thing4"]["value"] == "请审批同意"
    supplier_oa = await follow_official_account(api, "supplier-admin",
                                                await User.get(openid=sim(api).openid_for("supplier-admin")))
    assert messages_to(api, supplier_oa) == []


async def test_wechat_43101_falls_back_to_the_template_message(api, world):
    oa_openid = await follow_official_account(api, "core-approver", world["approver_user"])
    template_id = api.app[SETTINGS].subscribe_template_id
    # The mini-program reports an acceptance WeChat does not know about (e.g. used up elsewhere).
    await api.call("POST", SUBSCRIPTIONS, world["approver"], 200, json={"template_ids": [template_id], "accepted": [template_id]})
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    await run_worker(api.app)

    [refused] = sim(api).calls_to(SUBSCRIBE)
    assert refused.errcode == 43101
    [message] = messages_to(api, oa_openid)
    assert message.kind == "template"
    row = await Notification.get(subject=f"financing:{fid}", user_id=world["approver_user"].id)
    assert (row.channel, row.status) == ("template", "sent")
    left = await api.call("GET", SUBSCRIPTIONS, world["approver"], 200)
    assert left["quotas"][0]["remaining"] == 0  # WeChat's word wins over our count


async def test_a_retried_job_never_sends_twice(api, world):
    await allow_subscribe(api, world["approver"], "core-approver")
    sim(api).add_subscribe_quota(sim(api).openid_for("core-approver"), api.app[SETTINGS].subscribe_template_id, 5)
    oa_openid = await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    await run_worker(api.app)
    assert len(sim(api).calls_to(SUBSCRIBE)) == 1

    subject, version, uid = f"financing:{fid}", await version_of(fid), world["approver_user"].id
    ctx = {"notifier": notifier_for(api.app), "redis": api.app[REDIS], "job_try": 2}
    # The same job run again (arq retry after a lost acknowledgement): the marker stops it.
    assert await send_notice(ctx, subject, version, uid, "approve") == "already_sent:subscribe"
    # The same event emitted again: arq refuses the known job id while its result is kept.
    queue = ArqRedis(pool_or_conn=api.app[REDIS].connection_pool)
    assert await queue.enqueue_job("send_notice", subject, version, uid, "approve",
                                   _job_id=notice_job_id(subject, version, uid)) is None
    event = TransitionEvent(subject, "claim", "领用", "claimed", "确权审批中", version, "user:1")
    await JobQueueSink(queue).emit(event)
    await run_worker(api.app)
    assert len(sim(api).calls_to(SUBSCRIBE)) == 1 and messages_to(api, oa_openid) == []
    assert await api.app[REDIS].exists(f"arq:result:{event_job_id(subject, version)}")


async def test_a_crash_between_send_and_acknowledgement_is_not_resent(api, world):
    oa_openid = await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    subject, version, uid = f"financing:{fid}", await version_of(fid), world["approver_user"].id
    # A worker died after claiming the send (WeChat may have delivered it): at most once, so no second try.
    await api.app[REDIS].set(marker_key(subject, version, uid, "template"), b"pending")
    ctx = {"notifier": notifier_for(api.app), "redis": api.app[REDIS], "job_try": 2}
    assert await send_notice(ctx, subject, version, uid, "approve") == "maybe_sent:template"
    assert messages_to(api, oa_openid) == []


async def test_wechat_busy_is_retried_with_back_off_then_sent_once(api, world):
    oa_openid = await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    subject, version, uid = f"financing:{fid}", await version_of(fid), world["approver_user"].id
    sim(api).fail_next(TEMPLATE, -1, "system error")
    ctx = {"notifier": notifier_for(api.app), "redis": api.app[REDIS], "job_try": 1}
    with pytest.raises(Retry) as retry:
        await send_notice(ctx, subject, version, uid, "approve")
    assert retry.value.defer_score == 5000
    assert await send_notice(ctx | {"job_try": 2}, subject, version, uid, "approve") == "sent:template"
    assert await send_notice(ctx | {"job_try": 3}, subject, version, uid, "approve") == "already_sent:template"
    assert len(messages_to(api, oa_openid)) == 1


async def test_no_answer_from_wechat(api, world):
    """Token fetch fails: nothing sent, retried. Send without answer: maybe delivered, so never sent again."""
    await allow_subscribe(api, world["approver"], "core-approver")
    await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    subject, version, uid = f"financing:{fid}", await version_of(fid), world["approver_user"].id
    dead = notifier_for(api.app, "http://127.0.0.1:9")  # nothing listens there
    ctx = {"notifier": dead, "redis": api.app[REDIS], "job_try": 1}
    with pytest.raises(Retry):
        await send_notice(ctx, subject, version, uid, "approve")
    assert not await api.app[REDIS].exists(marker_key(subject, version, uid, "subscribe"))
    assert (await api.call("GET", SUBSCRIPTIONS, world["approver"], 200))["quotas"][0]["remaining"] == 1

    await dead.miniapp._cache.set(dead.miniapp.token_cache_key, "a-token", time.time() + 7200)
    assert await send_notice(ctx, subject, version, uid, "approve") == "maybe_sent:subscribe"
    assert await api.app[REDIS].get(marker_key(subject, version, uid, "subscribe")) == b"unknown"
    live = {"notifier": notifier_for(api.app), "redis": api.app[REDIS], "job_try": 2}
    assert await send_notice(live, subject, version, uid, "approve") == "maybe_sent:subscribe"
    assert sim(api).calls_to(SUBSCRIBE) == [] and sim(api).calls_to(TEMPLATE) == []
    row = await Notification.get(subject=subject, user_id=uid)
    assert (row.channel, row.status) == ("subscribe", "maybe_sent")


async def test_stale_events_are_not_sent(api, world):
    oa_openid = await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    await api.call("POST", _path(fid, "approve"), world["approver"], 200, json={"comment": "同意"})
    await run_worker(api.app)  # the claim's job sees a newer version: the approver already acted
    assert messages_to(api, oa_openid) == []


async def test_second_approver_is_not_told_twice_and_the_platform_follows(api, world):
    await api.call("PUT", f"/api/v1/enterprises/{world['core_id']}/approval-policy", world["core"], 200,
                   json={"tiers": [{"up_to": None, "approvers": 2}]})
    second = await api.add_member(world["core"], world["core_id"], "core-approver-2", ["approver"])
    first_oa = await follow_official_account(api, "core-approver", world["approver_user"])
    second_oa = await follow_official_account(api, "core-approver-2", await user_of(api, second))
    op_oa = await follow_official_account(api, "operator", await user_of(api, world["op"]))
    f = await api.financing(world["supplier"], world["supplier_id"], world["core_id"])
    await api.call("POST", _path(f["id"], "claim"), world["core"], 200)
    await run_worker(api.app)
    assert len(messages_to(api, first_oa)) == len(messages_to(api, second_oa)) == 1

    await api.call("POST", _path(f["id"], "approve"), world["approver"], 200, json={})
    await run_worker(api.app)  # still "claimed": the second approver was already told, the first has acted
    assert len(messages_to(api, first_oa)) == len(messages_to(api, second_oa)) == 1
    assert messages_to(api, op_oa) == []

    await api.call("POST", _path(f["id"], "approve"), second, 200, json={})
    await run_worker(api.app)
    [allocate] = messages_to(api, op_oa)
    assert allocate.payload["miniprogram"]["pagepath"] == f"pages/financing/detail?id={f['id']}&action=allocate"
    assert allocate.payload["data"]["thing3"]["value"] == "已确权待分配"


async def test_subscription_report_is_validated(api, world):
    body = await api.call("GET", SUBSCRIPTIONS, world["approver"], 200)
    template_id = body["template_ids"][0]
    assert body["quotas"] == [{"template_id": template_id, "remaining": 0}]
    bad = await api.call("POST", SUBSCRIPTIONS, world["approver"], 422,
                         json={"template_ids": ["someone-elses"], "accepted": ["someone-elses"]})
    assert "未知的订阅消息模板" in bad["error"]["message"]
    await api.call("POST", SUBSCRIPTIONS, world["approver"], 422, json={"template_ids": [template_id], "accepted": ["x"]})
    await api.call("POST", SUBSCRIPTIONS, world["approver"], 422, json={"template_ids": []})
    # Rejections add nothing; each acceptance adds one.
    rejected = await api.call("POST", SUBSCRIPTIONS, world["approver"], 200, json={"template_ids": [template_id]})
    assert rejected["quotas"][0]["remaining"] == 0
    for expected in (1, 2):
        body = await api.call("POST", SUBSCRIPTIONS, world["approver"], 200,
                              json={"template_ids": [template_id], "accepted": [template_id]})
        assert body["quotas"][0]["remaining"] == expected


async def test_ten_concurrent_token_requests_make_one_stable_token_call(api, redis_clean):
    """Ten "processes" (own client, own Redis connection, own process-local lock) share one refresher."""
    from redis.asyncio import Redis

    state, base = sim(api), api.app[WECHAT_BASE]
    (mini_id, mini_secret), _ = wechat_credentials(api.app[SETTINGS])
    await api.app[REDIS].flushdb()
    state.clear_calls()
    connections = [Redis.from_url(redis_clean) for _ in range(10)]
    try:
        clients = [WeChatClient(api.app[HTTP], base, mini_id, mini_secret, token_cache=RedisTokenCache.for_api(r, base))
                   for r in connections]
        tokens = await asyncio.gather(*(c.access_token() for c in clients))
    finally:
        for r in connections:
            await r.aclose()
    assert len(set(tokens)) == 1
    assert len(state.calls_to("/cgi-bin/stable_token")) == 1
    assert state.calls_to("/cgi-bin/token") == []


def test_worker_settings_for_arq():
    assert {f.name for f in FUNCTIONS} == {"notify_transition", "send_notice"}
    assert WorkerSettings.functions is FUNCTIONS and WorkerSettings.max_tries == 5
    assert callable(WorkerSettings.on_startup) and callable(WorkerSettings.on_shutdown)


async def test_echain_worker_burst_runs_the_queue(api, world, settings):
    await follow_official_account(api, "core-approver", world["approver_user"])
    fid = world["financing"]["id"]
    await api.call("POST", _path(fid, "claim"), world["core"], 200)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECHAIN_", "WECHAT_", "MINIAPP_"))}
    env |= {"ECHAIN_DATA_DIR": str(settings.data_dir), "ECHAIN_DATABASE_URL": settings.database_url,
            "ECHAIN_REDIS_URL": settings.redis_url}
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "echain.cli", "worker", "--burst"],
                                     env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # The worker's own in-process simulator took the template message.
    row = await Notification.get(subject=f"financing:{fid}", version=await version_of(fid),
                                 user_id=world["approver_user"].id)
    assert (row.channel, row.status, row.action) == ("template", "sent", "approve")
    assert row.page == f"pages/financing/detail?id={fid}&action=approve"
