"""The /wechat callback over HTTP: verification, safe mode with WeChat's vectors, every refusal, dedup, 5 s rule."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot import signing, texts
from bot.context import BOT
from bot.crypto import MessageCrypto
from echain.app import create_app
from echain.keys import REDIS, SIMULATOR
from tests.support.wechat_oa import OfficialAccount, event_message, every_kind, message_xml, user_message
from tests.test_bot_wire import BILLION_LAUGHS, EXTERNAL_ENTITY

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "wechat" / "vectors.json"
needs_vectors = pytest.mark.skipif(not VECTORS.exists(), reason=f"WeChat vectors not found at {VECTORS} (../shared absent)")
TOKEN = "test-oa-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CUSTOM = "/cgi-bin/message/custom/send"


@pytest.fixture
async def oa(aiohttp_client, settings) -> OfficialAccount:  # noqa: ANN001
    client = await aiohttp_client(create_app(settings.with_(wechat_token=TOKEN)))
    return OfficialAccount(client, TOKEN, sim=client.app[SIMULATOR])


@pytest.fixture
async def safe_oa(aiohttp_client, settings) -> OfficialAccount:  # noqa: ANN001
    client = await aiohttp_client(create_app(settings.with_(wechat_token=TOKEN, wechat_aes_key=AES_KEY)))
    return OfficialAccount(client, TOKEN, aes_key=AES_KEY, sim=client.app[SIMULATOR])


# --- GET: server verification ------------------------------------------------------------------------


@needs_vectors
async def test_server_verification_with_the_documented_vector(aiohttp_client, settings):
    v = json.loads(VECTORS.read_text())["plain_signature"]
    client = await aiohttp_client(create_app(settings.with_(wechat_token=v["token"])))
    bot = client.app[BOT]
    query = {k: v[k] for k in ("signature", "timestamp", "nonce", "echostr")}
    bot.clock = lambda: int(v["timestamp"]) + 10
    resp = await client.get("/wechat", params=query)
    assert resp.status == 200 and await resp.text() == v["echostr"]
    bot.clock = lambda: int(v["timestamp"]) + 301  # the same request five minutes later is a replay
    assert (await client.get("/wechat", params=query)).status == 403
    bot.clock = lambda: int(v["timestamp"])
    assert (await client.get("/wechat", params=query | {"signature": "0" * 40})).status == 403
    assert (await client.get("/wechat", params=query | {"nonce": "1"})).status == 403


async def test_echostr_is_never_reflected_unless_plain(oa):
    query = oa.signed_query() | {"echostr": "<script>alert(1)</script>"}
    assert (await oa.client.get("/wechat", params=query)).status == 400


async def test_callback_is_off_without_a_token(client):
    resp = await client.post("/wechat", data=b"<xml/>")
    assert resp.status == 404
    assert (await client.get("/wechat")).status == 404


# --- POST: signatures, timestamps, body checks -------------------------------------------------------------


async def test_bad_missing_or_stale_signatures_are_refused_before_parsing(oa):
    body = message_xml(user_message("o-x", "text", Content="帮助"))
    assert (await oa.post_raw(body, oa.signed_query() | {"signature": "f" * 40})).status == 403
    assert (await oa.post_raw(body, {"timestamp": str(int(time.time())), "nonce": "1"})).status == 403
    stale = oa.signed_query(timestamp=int(time.time()) - 301)
    resp = await oa.post_raw(body, stale)
    assert resp.status == 403 and "stale" in await resp.text()
    future = oa.signed_query(timestamp=int(time.time()) + 400)
    assert (await oa.post_raw(body, future)).status == 403
    # A refused body is never parsed: even garbage gets the same 403, not a 400.
    assert (await oa.post_raw(BILLION_LAUGHS, oa.signed_query() | {"signature": "f" * 40})).status == 403


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
async def test_entities_are_refused_never_expanded(oa, body):
    resp = await oa.post_raw(body)
    assert resp.status == 400
    text = await resp.text()
    assert "lol" not in text and "root:" not in text
    assert await oa.client.app[REDIS].keys("echain:bot:seen:*") == []  # nothing was handled


async def test_entities_inside_the_ciphertext_are_refused_too(safe_oa):
    crypto = safe_oa.crypto
    encrypt = crypto.encrypt(EXTERNAL_ENTITY.decode())
    query = safe_oa.signed_query()
    query |= {"encrypt_type": "aes", "msg_signature": signing.signature(TOKEN, query["timestamp"], query["nonce"], encrypt)}
    resp = await safe_oa.post_raw(f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>", query)
    assert resp.status == 400


async def test_oversize_bodies_are_refused(oa):
    padding = "x" * (70 * 1024)
    resp = await oa.post_raw(message_xml(user_message("o-x", "text", Content=padding)))
    assert resp.status == 413

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(80):
            yield b"<a>" + b"x" * 1024 + b"</a>"

    assert (await oa.client.post("/wechat", params=oa.signed_query(), data=chunks())).status == 413


async def test_a_signed_url_cannot_carry_another_body(oa):
    query = oa.signed_query()
    first = message_xml(user_message("o-x", "text", Content="帮助"))
    assert (await oa.post_raw(first, query)).status == 200
    assert (await oa.post_raw(first, query)).status == 200  # WeChat's own retry: same URL, same body
    forged = message_xml(user_message("o-victim", "text", Content="发起融资"))
    assert (await oa.post_raw(forged, query)).status == 403


async def test_messages_without_sender_are_refused(oa):
    assert (await oa.post_raw("<xml><MsgType>text</MsgType></xml>")).status == 400


# --- safe mode ----------------------------------------------------------------------------------------------


@needs_vectors
async def test_safe_mode_vector_message_is_decrypted_answered_encrypted_and_signed(aiohttp_client, settings):
    v = json.loads(VECTORS.read_text())["safe_mode"]
    d = v["decrypt"]
    client = await aiohttp_client(create_app(settings.with_(
        wechat_token=v["token"], wechat_aes_key=v["encoding_aes_key"], wechat_app_id=v["app_id"])))
    client.app[BOT].clock = lambda: int(d["timestamp"]) + 1
    query = {"timestamp": d["timestamp"], "nonce": d["nonce"], "encrypt_type": "aes",
             "signature": signing.signature(v["token"], d["timestamp"], d["nonce"]), "msg_signature": d["msg_signature"]}
    bad = await client.post("/wechat", params=query | {"msg_signature": "0" * 40}, data=d["body"])
    assert bad.status == 403
    resp = await client.post("/wechat", params=query, data=d["body"])
    assert resp.status == 200, await resp.text()
    oa = OfficialAccount(client, v["token"], aes_key=v["encoding_aes_key"], app_id=v["app_id"])
    reply = await oa.reply_of(resp)
    assert reply["ToUserName"] == "messense" and reply["FromUserName"] == "wx49f0ab532d5d035a"
    assert reply["Content"] == texts.NEED_BINDING  # "test" from a follower not linked to any account
    # A message encrypted for another app id is refused even with valid signatures.
    other = MessageCrypto(v["encoding_aes_key"], "wx0000000000000000").encrypt(d["expected_plaintext"])
    q2 = query | {"nonce": "999", "signature": signing.signature(v["token"], d["timestamp"], "999"),
                  "msg_signature": signing.signature(v["token"], d["timestamp"], "999", other)}
    assert (await client.post("/wechat", params=q2, data=f"<xml><Encrypt>{other}</Encrypt></xml>")).status == 400


async def test_safe_mode_round_trip_and_plain_posts_refused(safe_oa):
    assert await safe_oa.text("o-safe", "帮助") == texts.HELP
    plain = message_xml(user_message("o-safe", "text", Content="帮助"))
    resp = await safe_oa.post_raw(plain)
    assert resp.status == 400 and "safe mode" in await resp.text()


async def test_aes_posts_refused_when_safe_mode_is_not_configured(oa):
    query = oa.signed_query() | {"encrypt_type": "aes", "msg_signature": "0" * 40}
    assert (await oa.post_raw("<xml><Encrypt>AAAA</Encrypt></xml>", query)).status == 400


# --- dedup ---------------------------------------------------------------------------------------------------


async def test_a_retried_message_takes_effect_once_and_gets_the_same_reply(oa):
    openid = oa.sim.follow("retry-person")
    fields = user_message(openid, "text", Content="绑定 WRONGCDE")
    first = await (await oa.push(fields)).text()
    second = await (await oa.push(fields)).text()  # WeChat's retry: same MsgId, new signature
    assert first == second and "绑定码无效" in first
    redis = oa.client.app[REDIS]
    assert await redis.get(f"echain:bot:bind:fail:{openid}") == b"1"  # counted once
    event = event_message(openid, "subscribe")
    assert await oa.send(event) == await oa.send(event)  # events: FromUserName + CreateTime


# --- unknown types, ignored events ------------------------------------------------------------------------------


async def test_every_other_message_type_gets_a_polite_answer_and_events_are_acknowledged(oa):
    openid = oa.sim.follow("curious")
    for name, fields in every_kind(openid).items():
        reply = await oa.send(fields)
        if fields["MsgType"] == "event":
            assert reply is None, name
        else:
            assert reply == texts.UNSUPPORTED, name


async def test_unbound_followers_are_told_how_to_bind(oa):
    openid = oa.sim.follow("stranger")
    assert texts.NEED_BINDING in await oa.event(openid, "subscribe")
    assert await oa.text(openid, "发起融资") == texts.NEED_BINDING
    assert await oa.text(openid, "取消") == texts.NOTHING_TO_CANCEL
    assert await oa.image(openid, "media") == texts.NEED_BINDING


# --- the 5 s rule and customer-service replies ------------------------------------------------------------------


async def test_slow_answers_reply_success_and_arrive_as_customer_service_messages(oa):
    bot = oa.client.app[BOT]
    openid = oa.sim.follow("patient")
    bot.reply_budget = 0  # everything is "too slow"
    assert await oa.text(openid, "帮助") is None
    await bot.tasks.drain()
    sent = [m.payload for m in oa.sim.messages_to(openid) if m.kind == "custom"]
    assert sent == [{"touser": openid, "msgtype": "text", "text": {"content": texts.HELP}}]


async def test_45015_keeps_the_late_reply_for_the_next_answer(oa):
    bot = oa.client.app[BOT]
    openid = oa.sim.follow("away")
    sim, oa.sim = oa.sim, None  # the simulator does not see this interaction: WeChat will answer 45015
    bot.reply_budget = 0
    assert await oa.text(openid, "帮助") is None
    await bot.tasks.drain()
    assert [c.errcode for c in sim.calls_to(CUSTOM)] == [45015]
    assert sim.messages_to(openid) == []
    oa.sim, bot.reply_budget = sim, 4.0
    reply = await oa.text(openid, "取消")
    assert reply.startswith(texts.KEPT_HEADER) and texts.HELP in reply and reply.endswith(texts.NOTHING_TO_CANCEL)
    assert texts.KEPT_HEADER not in (await oa.text(openid, "取消"))  # delivered once


async def test_no_customer_service_call_outside_our_own_48h_window(oa):
    bot = oa.client.app[BOT]
    openid = oa.sim.follow("long-gone")
    await oa.text(openid, "帮助")
    bot.delivery.clock = lambda: time.time() + 49 * 3600
    assert await bot.delivery.send(openid, "稍后的答复") is False
    assert oa.sim.calls_to(CUSTOM) == []
    assert await bot.delivery.take_kept(openid) == ["稍后的答复"]
