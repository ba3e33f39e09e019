"""WeChat's XML on the wire: a hardened parser for what arrives, escaped rendering for what we send.

Messages are flat `<xml>` documents (接收普通消息 / 接收事件推送). Parsing goes through defusedxml with DTDs
forbidden, so entity expansion (billion laughs) and external entities can never run. Replies put text in
CDATA sections; "]]>" inside the text is split so it cannot close the section early.
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as StdET
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_FIELDS = 64  # real messages carry ~10 elements; anything wider is not from WeChat
# Characters XML 1.0 forbids (control characters other than tab/newline/return, surrogates, U+FFFE/U+FFFF).
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class BadXml(ValueError):
    """The body is not a flat WeChat XML message (or tried DTD/entity tricks)."""


def parse(body: bytes) -> dict[str, str]:
    """The top-level elements of an `<xml>` message as {tag: text}; nested elements keep `Parent.Child` keys."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, StdET.ParseError, ValueError) as exc:
        raise BadXml(f"unparseable or unsafe XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise BadXml("root element is not <xml>")
    fields: dict[str, str] = {}
    for child in root:
        fields[child.tag] = (child.text or "").strip()
        for grandchild in child:  # e.g. ScanCodeInfo/ScanResult of menu scan events
            fields[f"{child.tag}.{grandchild.tag}"] = (grandchild.text or "").strip()
        if len(fields) > MAX_FIELDS:
            raise BadXml("too many elements")
    return fields


def cdata(text: str) -> str:
    """Text as a CDATA section that cannot be broken out of, with XML-invalid characters dropped."""
    clean = _INVALID_XML_CHARS.sub("", text)
    return "<![CDATA[" + clean.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply (回复文本消息)."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content></xml>"
    )


def encrypted_reply(encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> str:
    """The safe-mode envelope around an encrypted reply."""
    return (
        f"<xml><Encrypt>{cdata(encrypt)}</Encrypt><MsgSignature>{cdata(msg_signature)}</MsgSignature>"
        f"<TimeStamp>{int(timestamp)}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
    )


@dataclass(frozen=True)
class Message:
    """One message or event pushed by WeChat, with the fields the bot reads."""

    fields: dict[str, str]

    def get(self, name: str) -> str:
        """A field's text, empty when absent."""
        return self.fields.get(name, "")

    @property
    def openid(self) -> str:
        """The sender (FromUserName): the follower's openid in this Official Account."""
        return self.get("FromUserName")

    @property
    def account(self) -> str:
        """The receiving account (ToUserName, the OA's original id gh_...)."""
        return self.get("ToUserName")

    @property
    def msg_type(self) -> str:
        """text, image, voice, video, shortvideo, location, link or event."""
        return self.get("MsgType").lower()

    @property
    def event(self) -> str:
        """For events: subscribe, unsubscribe, CLICK, VIEW, SCAN, LOCATION, ... (upper-cased)."""
        return self.get("Event").upper()

    def dedup_key(self) -> str:
        """Identity for retries: MsgId for messages, FromUserName + CreateTime for events (WeChat's advice)."""
        # 消息排重: "有msgid的消息推荐使用msgid排重。事件类型消息推荐使用FromUserName + CreateTime 排重。"
        msg_id = self.get("MsgId")
        return f"msg:{msg_id}" if msg_id else f"evt:{self.openid}:{self.get('CreateTime')}"
