"""Supplier staff in chat, end to end: follow, bind, 发起融资 with photos, 查询, 待办, 取消, corrections."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from bot import texts
from bot.context import BOT
from bot.menu import publish
from echain.app import create_app
from echain.keys import OA_WECHAT, SIMULATOR
from tests.support.api import ApiClient, pdf_bytes, png_bytes
from tests.support.wechat_oa import OfficialAccount
from workflow.financing.transition import china_today

TOKEN = "test-oa-token"


@pytest.fixture
async def oa(aiohttp_client, settings) -> OfficialAccount:  # noqa: ANN001
    client = await aiohttp_client(create_app(settings.with_(wechat_token=TOKEN)))
    return OfficialAccount(client, TOKEN, sim=client.app[SIMULATOR])


@pytest.fixture
def api(oa) -> ApiClient:  # noqa: ANN001 - the same app serves the mini-program API and the callback
    return ApiClient(oa.client)


@pytest.fixture
async def world(api):
    """An operator, an approved supplier (person "sup") and two approved core enterprises."""
    op = await api.operator()
    sup = await api.login("sup")
    supplier = await api.onboard(sup, op, name="山东供货有限公司", business_roles=["supplier"])
    core = await api.login("core")
    core_e = await api.onboard(core, op, name="青岛核心制造集团", business_roles=["core"])
    other = await api.login("other-core")
    await api.onboard(other, op, name="烟台港务集团", business_roles=["core"])
    approver = await api.add_member(core, core_e["id"], "core-approver", ["approver"])
    return {"op": op, "sup": sup, "supplier_id": supplier["id"], "core": core, "core_id": core_e["id"],
            "approver": approver}


def _core_number(reply: str, name: str) -> str:
    return re.search(rf"(\d+)\. {name}", reply).group(1)


async def _photo(oa: OfficialAccount, data: bytes, content_type: str = "image/png") -> str:
    return oa.sim.add_media(data, content_type, "photo")


async def _custom_texts(oa: OfficialAccount, openid: str) -> list[str]:
    await oa.client.app[BOT].tasks.drain()
    return [m.payload["text"]["content"] for m in oa.sim.messages_to(openid) if m.kind == "custom"]


async def _bound_follower(oa: OfficialAccount, name: str) -> str:
    """A follower linked through unionid (the mini-program login stored it)."""
    openid = oa.sim.follow(name)
    assert texts.BOUND_AS in await oa.event(openid, "subscribe")
    return openid


async def test_supplier_follows_binds_submits_by_chat_and_follows_the_state(oa, api, world):
    oa.sim.unionid_enabled = False  # no unionid from WeChat: the binding code path
    openid = oa.sim.follow("sup2")
    sup2 = await api.add_member(world["sup"], world["supplier_id"], "sup2", ["operator"])
    assert texts.NEED_BINDING in await oa.event(openid, "subscribe")

    code = (await api.call("POST", "/api/v1/wechat/binding-code", sup2, 201))["code"]
    assert await oa.text(openid, f"绑定 {code.lower()}") == texts.BOUND
    assert "绑定码无效" in await oa.text(openid, f"绑定 {code}")  # single use

    reply = await oa.text(openid, "发起融资")
    assert "山东供货有限公司" in reply and "青岛核心制造集团" in reply and "烟台港务集团" in reply
    reply = await oa.text(openid, _core_number(reply, "青岛核心制造集团"))
    assert "发票号码" in reply
    assert "贸易合同编号" in await oa.text(openid, "INV-2026-0001")
    assert "票面金额" in await oa.text(openid, "HT-2026-009")
    reply = await oa.text(openid, "五十万")
    assert "格式不正确" in reply and "请输入票面金额" in reply
    assert "到期日" in await oa.text(openid, "500,000.00")
    due = (china_today() + timedelta(days=90)).isoformat()
    assert "申请融资金额" in await oa.text(openid, due)
    reply = await oa.text(openid, "400000.001")
    assert "最多保留两位小数" in reply and "请输入申请融资金额" in reply
    reply = await oa.text(openid, "400000")
    assert "材料照片" in reply and "完成" in reply
    assert "至少发送一张" in await oa.text(openid, "完成")

    assert await oa.image(openid, await _photo(oa, png_bytes())) is None  # "success" now, stored afterwards
    assert await oa.image(openid, await _photo(oa, png_bytes(3, 3))) is None
    sent = await _custom_texts(oa, openid)
    assert any("第 1 张材料照片（发票）" in t for t in sent) and any("第 2 张材料照片（其他材料）" in t for t in sent)

    review = await oa.text(openid, "完成")
    assert "请核对融资申请" in review and "500,000.00 元" in review and "400,000.00 元" in review
    assert "材料照片：2 张" in review and "INV-2026-0001" in review
    done = await oa.text(openid, "确认")
    assert "融资申请已提交" in done
    fid = int(re.search(r"编号：(\d+)", done).group(1))
    assert f"pages/financing/detail?id={fid}" in done

    # The same financing the API shows, with both photos attached as the supplier's documents.
    f = await api.call("GET", f"/api/v1/financings/{fid}", sup2, 200)
    assert f["status"] == "submitted" and f["face_amount"] == "500000.00" and f["requested_amount"] == "400000.00"
    assert f["core"]["id"] == world["core_id"] and f["invoice_no"] == "INV-2026-0001" and f["due_date"] == due
    assert sorted(a["kind"] for a in f["attachments"]) == ["invoice", "other"]
    assert [t["action"] for t in f["timeline"]] == ["submit"]

    reply = await oa.text(openid, f"查询 {fid}")
    assert "状态：待核心企业领用" in reply and "票面金额：500,000.00 元" in reply and "发起融资" in reply
    assert "下一步：核心企业领用" in reply
    assert f"#{fid} 待核心企业领用" in await oa.text(openid, "我的融资")

    # The confirmation side acts through the mini-program API; the chat shows the new state and timeline.
    await api.call("POST", f"/api/v1/financings/{fid}/actions/claim", world["core"], 200)
    await api.call("POST", f"/api/v1/financings/{fid}/actions/approve", world["approver"], 200, json={})
    reply = await oa.text(openid, f"查询 {fid}")
    assert "状态：已确权待分配" in reply and "领用" in reply and "审批同意" in reply
    assert "融资不存在" in await oa.text(openid, f"查询 {fid + 1000}")


async def test_unionid_links_on_follow(oa, api, world):
    openid = await _bound_follower(oa, "sup")
    assert "您还没有可查看的融资" in await oa.text(openid, "我的融资")
    assert "待办" in await oa.event(openid, "CLICK", "HELP")


async def test_cancel_mid_flow_from_any_state(oa, world, monkeypatch):
    bot = oa.client.app[BOT]
    openid = await _bound_follower(oa, "sup")
    await oa.text(openid, "发起融资")
    await oa.text(openid, "1")
    assert await oa.text(openid, "取消") == texts.CANCELLED
    assert await oa.text(openid, "INV-1") == texts.NOT_UNDERSTOOD  # the flow is gone
    assert await oa.text(openid, "取消") == texts.NOTHING_TO_CANCEL
    # Cancel during the photo step, while a photo is still on its way: it is kept as a document only.
    for answer in ("发起融资", "1", "INV-2", "HT-2", "1000", (china_today() + timedelta(days=30)).isoformat(), "800"):
        await oa.text(openid, answer)
    gate, download = asyncio.Event(), bot.oa.get_media

    async def slow_download(media_id: str) -> tuple[bytes, str]:
        await gate.wait()
        return await download(media_id)

    monkeypatch.setattr(bot.oa, "get_media", slow_download)
    assert await oa.image(openid, await _photo(oa, png_bytes())) is None
    assert await oa.text(openid, "取 消") == texts.CANCELLED
    gate.set()
    sent = await _custom_texts(oa, openid)
    assert any("未作为附件" in t for t in sent)


async def test_menu_clicks_run_the_same_flows(oa, world):
    openid = await _bound_follower(oa, "sup")
    assert "青岛核心制造集团" in await oa.event(openid, "CLICK", "FINANCING_START")
    reply = await oa.event(openid, "CLICK", "FINANCING_MINE")  # a query in the middle of a flow keeps the flow
    assert "您还没有可查看的融资" in reply and "您正在发起融资" in reply
    assert "发票号码" in await oa.text(openid, "1")
    assert "没有待办" in await oa.event(openid, "CLICK", "TODOS")
    assert texts.HELP in await oa.event(openid, "CLICK", "UNKNOWN_KEY")


async def test_cross_field_rules_come_from_the_use_case_and_lead_back_to_the_question(oa, world):
    openid = await _bound_follower(oa, "sup")
    for answer in ("发起融资", "1", "INV-3", "HT-3", "1000.00", (china_today() + timedelta(days=30)).isoformat(),
                   "2000.00"):
        await oa.text(openid, answer)
    await oa.image(openid, await _photo(oa, png_bytes()))
    await _custom_texts(oa, openid)
    assert "请核对" in await oa.text(openid, "完成")
    reply = await oa.text(openid, "确认")
    assert "不能超过票面金额" in reply and "请输入申请融资金额" in reply
    review = await oa.text(openid, "900")  # corrected: straight back to the review
    assert "请核对" in review and "900.00 元" in review
    assert "贸易合同编号" in await oa.text(openid, "3")  # edit one item from the review
    assert "HT-4" in await oa.text(openid, "HT-4")
    assert "融资申请已提交" in await oa.text(openid, "确认")


async def test_several_supplier_enterprises_ask_which(oa, api, world):
    openid = await _bound_follower(oa, "sup")
    await api.onboard(world["sup"], world["op"], name="济南第二供货公司", business_roles=["supplier"])
    reply = await oa.text(openid, "发起融资")
    assert "多家资产方企业" in reply and "济南第二供货公司" in reply
    assert "请回复列表中的序号" in await oa.text(openid, "9")
    number = re.search(r"(\d+)\. 济南第二供货公司", reply).group(1)
    assert "济南第二供货公司" in await oa.text(openid, number)


async def test_people_without_a_supplier_role_are_told_why(oa, api, world):
    openid = await _bound_follower(oa, "core")
    assert "资产方（供应商）企业的经办人或管理员" in await oa.text(openid, "发起融资")


async def test_todos_link_to_mini_program_pages(oa, api, world):
    f = await api.financing(world["sup"], world["supplier_id"], world["core_id"])
    openid = await _bound_follower(oa, "core")
    reply = await oa.text(openid, "待办")
    assert f"#{f['id']} 领用" in reply
    assert f'data-miniprogram-path="pages/financing/detail?id={f["id"]}&action=claim"' in reply
    assert "data-miniprogram-appid=" in reply


async def test_photos_that_cannot_be_used_are_explained(oa, world):
    openid = await _bound_follower(oa, "sup")
    for answer in ("发起融资", "1", "INV-5", "HT-5", "1000", (china_today() + timedelta(days=30)).isoformat(), "800"):
        await oa.text(openid, answer)
    await oa.image(openid, "expired-media-id")
    await oa.image(openid, await _photo(oa, b"GIF89a not accepted", "image/gif"))
    await oa.image(openid, await _photo(oa, pdf_bytes(), "application/pdf"))
    sent = await _custom_texts(oa, openid)
    assert any("已无法下载" in t for t in sent) and any("只接受 JPEG、PNG" in t for t in sent)
    assert "材料照片：1 张" in await oa.text(openid, "完成")


async def test_menu_is_published_through_menu_create(oa):
    body = await publish(oa.client.app[OA_WECHAT])
    assert oa.sim.menu == body
    assert oa.sim.calls_to("/cgi-bin/menu/create")[0].errcode == 0


async def test_a_photo_lost_on_its_way_does_not_block_the_flow_forever(oa, world):
    bot = oa.client.app[BOT]
    openid = await _bound_follower(oa, "sup")
    for answer in ("发起融资", "1", "INV-6", "HT-6", "1000", (china_today() + timedelta(days=30)).isoformat(), "800"):
        await oa.text(openid, answer)
    await oa.image(openid, await _photo(oa, png_bytes()))
    await _custom_texts(oa, openid)
    async with bot.conversations.session(openid) as conv:  # a second photo whose download never finished
        conv.data["photo_seq"] += 1
    assert "还有 1 张照片正在接收" in await oa.text(openid, "完成")
    real_clock = bot.clock
    bot.clock = lambda: real_clock() + 121
    assert "材料照片：1 张" in await oa.text(openid, "完成")
