"""End to end: a supplier's staff member applies for financing by chat; the core enterprise confirms it in the
mini-program after a notification; the chat shows the new state.

One real app (safe-mode Official Account callback, mini-program API, in-process WeChat simulator), the real
database and Redis, and arq's real worker running the notification jobs in burst mode.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from arq import Worker
from arq.connections import ArqRedis

from bot import texts
from bot.context import BOT
from echain.app import create_app
from echain.keys import HTTP, REDIS, SETTINGS, SIMULATOR, WECHAT_BASE
from echain.worker import wechat_credentials, worker_options
from models.notifications import Notification
from models.people import User
from notify.delivery import Notifier
from notify.messages import NotifyConfig
from tests.support.api import ApiClient, png_bytes
from tests.support.wechat_oa import OfficialAccount
from wechat.client import RedisTokenCache, WeChatClient
from workflow.financing.transition import china_today

TOKEN = "e2e-oa-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"  # 43 characters, as the OA console shows it
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
TEMPLATE = "/cgi-bin/message/template/send"
MEDIA_GET = "/cgi-bin/media/get"


@pytest.fixture
async def oa(aiohttp_client, settings) -> OfficialAccount:  # noqa: ANN001
    # Safe mode, as production should run: every push is encrypted and every reply checked and decrypted.
    client = await aiohttp_client(create_app(settings.with_(wechat_token=TOKEN, wechat_aes_key=AES_KEY)))
    return OfficialAccount(client, TOKEN, aes_key=AES_KEY, sim=client.app[SIMULATOR])


@pytest.fixture
def api(oa) -> ApiClient:  # noqa: ANN001 - one app serves the mini-program API and the callback
    return ApiClient(oa.client)


async def run_notify_jobs(app) -> None:  # noqa: ANN001 - the aiohttp app under test
    """Run every queued notification job with arq's Worker (burst), sending to the app's simulator."""
    settings, base = app[SETTINGS], app[WECHAT_BASE]
    (mini_id, mini_secret), (oa_id, oa_secret) = wechat_credentials(settings)
    cache = RedisTokenCache.for_api(app[REDIS], base)
    notifier = Notifier(app[REDIS], WeChatClient(app[HTTP], base, mini_id, mini_secret, token_cache=cache),
                        WeChatClient(app[HTTP], base, oa_id, oa_secret, token_cache=cache),
                        NotifyConfig.from_settings(settings))
    worker = Worker(**worker_options(), redis_pool=ArqRedis.from_url(settings.redis_url), burst=True,
                    handle_signals=False, poll_delay=0.01, ctx={"notifier": notifier})
    try:
        await asyncio.wait_for(worker.async_run(), 30)
    finally:
        await worker.close()
    assert worker.jobs_failed == 0


async def allow_subscribe(api: ApiClient, token: str, name: str) -> None:
    """The person taps “允许” on wx.requestSubscribeMessage: WeChat counts it, the mini-program reports it."""
    template_id = api.app[SETTINGS].subscribe_template_id
    api.app[SIMULATOR].add_subscribe_quota(api.app[SIMULATOR].openid_for(name), template_id)
    await api.call("POST", "/api/v1/notifications/subscriptions", token, 200,
                   json={"template_ids": [template_id], "accepted": [template_id]})


async def test_financing_by_chat_is_confirmed_after_a_notification_and_the_chat_shows_it(oa, api):
    sim, bot = api.app[SIMULATOR], api.app[BOT]
    sim.unionid_enabled = False  # WeChat gives no unionid: the follower proves who they are with a binding code

    # The parties: an approved supplier with a staff member, an approved core enterprise with an operator and
    # an approver; the core side allowed subscribe messages in the mini-program.
    op = await api.operator()
    sup_admin = await api.login("sup-admin")
    supplier = await api.onboard(sup_admin, op, name="山东链上供货有限公司", business_roles=["supplier"])
    staff = await api.add_member(sup_admin, supplier["id"], "sup-staff", ["operator"])
    core_admin = await api.login("core-admin")
    core = await api.onboard(core_admin, op, name="济南链上核心集团", business_roles=["core"])
    core_op = await api.add_member(core_admin, core["id"], "core-op", ["operator"])
    approver = await api.add_member(core_admin, core["id"], "core-approver", ["approver"])
    await allow_subscribe(api, core_op, "core-op")
    await allow_subscribe(api, approver, "core-approver")

    # 1. The staff member follows the Official Account and binds it to their mini-program account.
    openid = sim.follow("sup-staff")
    assert texts.NEED_BINDING in await oa.event(openid, "subscribe")
    code = (await api.call("POST", "/api/v1/wechat/binding-code", staff, 201))["code"]
    assert await oa.text(openid, f"绑定 {code}") == texts.BOUND

    # 2. 发起融资 in chat, with two photos sent as image messages (fetched through media/get).
    reply = await oa.text(openid, "发起融资")
    assert "山东链上供货有限公司" in reply
    number = re.search(r"(\d+)\. 济南链上核心集团", reply).group(1)
    assert "发票号码" in await oa.text(openid, number)
    due = (china_today() + timedelta(days=60)).isoformat()
    for answer, asks in (("INV-E2E-0001", "贸易合同编号"), ("HT-E2E-2026-07", "票面金额"), ("500000", "到期日"),
                         (due, "申请融资金额"), ("450,000.00", "材料照片")):
        assert asks in await oa.text(openid, answer)
    sim.clear_calls()
    invoice = sim.add_media(png_bytes(), "image/png", "invoice.png")
    contract = sim.add_media(png_bytes(4, 4), "image/png", "contract.png")
    assert await oa.image(openid, invoice) is None  # "success" within WeChat's 5 s; stored in the background
    assert await oa.image(openid, contract) is None
    await bot.tasks.drain()
    assert sorted(c.query["media_id"] for c in sim.calls_to(MEDIA_GET)) == sorted([invoice, contract])
    receipts = [m.payload["text"]["content"] for m in sim.messages_to(openid) if m.kind == "custom"]
    assert any("第 1 张材料照片（发票）" in t for t in receipts)
    assert any("第 2 张材料照片（其他材料）" in t for t in receipts)
    review = await oa.text(openid, "完成")
    assert "材料照片：2 张" in review and "450,000.00 元" in review
    done = await oa.text(openid, "确认")
    fid = int(re.search(r"编号：(\d+)", done).group(1))
    assert "融资申请已提交" in done and "状态：待核心企业领用" in done

    submitted = await api.call("GET", f"/api/v1/financings/{fid}", staff, 200)
    assert submitted["status"] == "submitted" and submitted["requested_amount"] == "450000.00"
    assert sorted(a["kind"] for a in submitted["attachments"]) == ["invoice", "other"]

    # 3. The worker tells the core staff to claim; the core operator claims through the API.
    await run_notify_jobs(api.app)
    core_op_user = await User.get(openid=sim.openid_for("core-op"))
    [claim_notice] = [c.body for c in sim.calls_to(SUBSCRIBE) if c.body["touser"] == core_op_user.openid]
    assert claim_notice["page"] == f"pages/financing/detail?id={fid}&action=claim"
    sim.clear_calls()
    claimed = await api.call("POST", f"/api/v1/financings/{fid}/actions/claim", core_op, 200)
    assert claimed["status"] == "claimed" and claimed["approvals_required"] == 1

    # 4. The approver is notified; the notice opens the confirmation page of this financing.
    await run_notify_jobs(api.app)
    approver_user = await User.get(openid=sim.openid_for("core-approver"))
    [call] = sim.calls_to(SUBSCRIBE)
    assert call.errcode == 0 and call.body["touser"] == approver_user.openid
    assert call.body["page"] == f"pages/financing/detail?id={fid}&action=approve"
    assert call.body["data"]["character_string1"]["value"] == str(fid)
    assert call.body["data"]["thing4"]["value"] == "请审批同意"
    assert sim.calls_to(TEMPLATE) == []  # the approver allowed subscribe messages: no fallback needed
    row = await Notification.get(subject=f"financing:{fid}", user_id=approver_user.id, action="approve")
    assert (row.channel, row.status, row.page) == ("subscribe", "sent", call.body["page"])

    # 5. The page the notice opens offers the approver exactly that action; confirming goes through the API.
    page = await api.call("GET", f"/api/v1/financings/{fid}", approver, 200)
    assert "approve" in [a["action"] for a in page["next_actions"]]
    confirmed = await api.call("POST", f"/api/v1/financings/{fid}/actions/approve", approver, 200,
                               json={"comment": "贸易背景真实"})
    assert confirmed["status"] == "confirmed" and confirmed["status_label"] == "已确权待分配"

    # 6. Back in chat, 查询 <编号> shows the new state and the steps taken.
    reply = await oa.text(openid, f"查询 {fid}")
    assert f"融资 #{fid}" in reply and "状态：已确权待分配" in reply
    assert "领用" in reply and "审批同意" in reply and "下一步：平台运营分配资产" in reply
    assert f"#{fid} 已确权待分配" in await oa.text(openid, "我的融资")
