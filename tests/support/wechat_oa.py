"""Test helper: plays WeChat's side of the Official Account callback (signed, optionally encrypted pushes)."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot import signing, wirexml
from bot.crypto import MessageCrypto
from wechat.simulator import SIM_APP_ID, SimulatorState

ACCOUNT = "gh_0123456789ab"  # the OA's original id (ToUserName)
_msg_ids = itertools.count(7_000_000_000_000_000_000 + secrets.randbelow(10**15))
_times = itertools.count(int(time.time()))


def message_xml(fields: dict[str, Any]) -> str:
    """A flat WeChat XML message (numbers bare, text in CDATA, like WeChat sends)."""
    parts = []
    for tag, value in fields.items():
        body = str(value) if isinstance(value, int) else wirexml.cdata(str(value))
        parts.append(f"<{tag}>{body}</{tag}>")
    return "<xml>" + "".join(parts) + "</xml>"


def user_message(openid: str, msg_type: str, **extra: Any) -> dict[str, Any]:
    """A message of `msg_type` from `openid`, with a fresh MsgId and CreateTime."""
    return {"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": next(_times), "MsgType": msg_type,
            **extra, "MsgId": next(_msg_ids)}


def event_message(openid: str, event: str, **extra: Any) -> dict[str, Any]:
    """An event from `openid` (events have no MsgId; CreateTime keeps each one distinct)."""
    return {"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": next(_times), "MsgType": "event",
            "Event": event, **extra}


# One message of every kind WeChat pushes (接收普通消息 / 接收事件推送), for "handled without error" tests.
def every_kind(openid: str) -> dict[str, dict[str, Any]]:
    """Every standard message and event type, keyed by a readable name."""
    return {
        "voice": user_message(openid, "voice", MediaId="m1", Format="amr", Recognition=""),
        "video": user_message(openid, "video", MediaId="m2", ThumbMediaId="t2"),
        "shortvideo": user_message(openid, "shortvideo", MediaId="m3", ThumbMediaId="t3"),
        "location": user_message(openid, "location", Location_X="36.65", Location_Y="117.12", Scale=15, Label="济南"),
        "link": user_message(openid, "link", Title="标题", Description="描述", Url="https://example.com"),
        "future": user_message(openid, "hologram", Content="?"),
        "VIEW": event_message(openid, "VIEW", EventKey="https://example.com"),
        "LOCATION": event_message(openid, "LOCATION", Latitude="36.65", Longitude="117.12", Precision="30"),
        "TEMPLATESENDJOBFINISH": event_message(openid, "TEMPLATESENDJOBFINISH", Status="success"),
        "unsubscribe": event_message(openid, "unsubscribe"),
    }


class OfficialAccount:
    """Signs and posts messages to /wechat as WeChat would, and reads the replies."""

    def __init__(self, client: TestClient, token: str, *, aes_key: str = "", app_id: str = SIM_APP_ID,
                 sim: SimulatorState | None = None) -> None:
        self.client = client
        self.token = token
        self.crypto = MessageCrypto(aes_key, app_id) if aes_key else None
        self.sim = sim

    def signed_query(self, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
        """signature/timestamp/nonce for the callback URL."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or str(secrets.randbelow(10**9))
        return {"signature": signing.signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}

    async def post_raw(self, body: bytes | str, query: dict[str, str] | None = None) -> ClientResponse:
        """POST a body exactly as given (plain mode) with a freshly signed URL unless `query` is given."""
        return await self.client.post("/wechat", params=query or self.signed_query(), data=body,
                                      headers={"Content-Type": "text/xml"})

    async def push(self, fields: dict[str, Any], query: dict[str, str] | None = None) -> ClientResponse:
        """Post one message (encrypted in safe mode); records the interaction in the simulator like WeChat."""
        if self.sim is not None and fields.get("Event", "").upper() not in ("UNSUBSCRIBE", "VIEW", "LOCATION",
                                                                            "TEMPLATESENDJOBFINISH"):
            self.sim.record_interaction(fields["FromUserName"])
        plain = message_xml(fields)
        query = query or self.signed_query()
        if self.crypto is None:
            return await self.post_raw(plain, query)
        encrypt = self.crypto.encrypt(plain)
        envelope = f"<xml><ToUserName>{wirexml.cdata(ACCOUNT)}</ToUserName><Encrypt>{wirexml.cdata(encrypt)}</Encrypt></xml>"
        query = query | {"encrypt_type": "aes",
                         "msg_signature": signing.signature(self.token, query["timestamp"], query["nonce"], encrypt)}
        return await self.post_raw(envelope, query)

    async def reply_of(self, resp: ClientResponse) -> dict[str, str] | None:
        """The parsed reply (None for "success"); in safe mode its signature is checked and it is decrypted."""
        text = await resp.text()
        assert resp.status == 200, f"{resp.status} {text}"
        if text == "success":
            return None
        fields = wirexml.parse(text.encode())
        if self.crypto is not None:
            expected = signing.signature(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
            assert fields["MsgSignature"] == expected
            fields = wirexml.parse(self.crypto.decrypt(fields["Encrypt"]).encode())
        return fields

    async def send(self, fields: dict[str, Any]) -> str | None:
        """Push a message; the reply's text Content (None for "success")."""
        reply = await self.reply_of(await self.push(fields))
        if reply is None:
            return None
        assert reply["MsgType"] == "text" and reply["ToUserName"] == fields["FromUserName"]
        return reply["Content"]

    async def text(self, openid: str, content: str) -> str | None:
        """The follower types `content`."""
        return await self.send(user_message(openid, "text", Content=content))

    async def image(self, openid: str, media_id: str) -> str | None:
        """The follower sends a photo already uploaded to the simulator as `media_id`."""
        return await self.send(user_message(openid, "image", PicUrl="http://mmbiz.qpic.cn/x", MediaId=media_id))

    async def event(self, openid: str, event: str, key: str = "") -> str | None:
        """The follower follows, clicks a menu item, ..."""
        return await self.send(event_message(openid, event, **({"EventKey": key} if key else {})))
