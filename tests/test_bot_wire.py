"""Bot wire format: WeChat's crypto vectors, signatures, the hardened parser, escaping, commands, field checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import signing, texts, wirexml
from bot.crypto import CryptoError, MessageCrypto
from bot.delivery import clip
from bot.fields import amount_text, date_text, validate_field
from bot.menu import CLICK_COMMANDS, click_keys, load_menu
from wechat.simulator import validate_menu

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = SHARED / "testdata" / "wechat" / "vectors.json"
needs_vectors = pytest.mark.skipif(not VECTORS.exists(), reason=f"WeChat vectors not found at {VECTORS} (../shared absent)")


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


@needs_vectors
def test_plain_signature_vector(vectors):
    v = vectors["plain_signature"]
    assert signing.signature(v["token"], v["timestamp"], v["nonce"]) == v["signature"]
    query = {k: v[k] for k in ("signature", "timestamp", "nonce")}
    assert signing.verify_query(v["token"], query, now=int(v["timestamp"]) + 5) is None
    assert signing.verify_query(v["token"], query, now=int(v["timestamp"]) + 301) == "stale timestamp"
    assert signing.verify_query("other", query, now=int(v["timestamp"])) == "bad signature"


@needs_vectors
def test_safe_mode_decrypt_vector(vectors):
    v = vectors["safe_mode"]
    crypto = MessageCrypto(v["encoding_aes_key"], v["app_id"])
    encrypt = wirexml.parse(v["decrypt"]["body"].encode())["Encrypt"]
    d = v["decrypt"]
    assert signing.signature(v["token"], d["timestamp"], d["nonce"], encrypt) == d["msg_signature"]
    assert crypto.decrypt(encrypt) == d["expected_plaintext"]


@needs_vectors
def test_safe_mode_encrypt_vector(vectors):
    v = vectors["safe_mode"]
    e = v["encrypt"]
    encrypt = MessageCrypto(v["encoding_aes_key"], v["app_id"]).encrypt(e["reply"], e["random_prefix"].encode())
    assert encrypt == e["expected_encrypt"]
    assert signing.signature(v["token"], e["timestamp"], e["nonce"], encrypt) == e["expected_msg_signature"]


@needs_vectors
def test_decrypt_refuses_other_app_and_garbage(vectors):
    v = vectors["safe_mode"]
    encrypt = wirexml.parse(v["decrypt"]["body"].encode())["Encrypt"]
    with pytest.raises(CryptoError, match="another app"):
        MessageCrypto(v["encoding_aes_key"], "wx0000000000000000").decrypt(encrypt)
    crypto = MessageCrypto(v["encoding_aes_key"], v["app_id"])
    for bad in ("not base64!!", "", "QUJD", encrypt[:-8] + "AAAAAAA="):
        with pytest.raises(CryptoError):
            crypto.decrypt(bad)


def test_roundtrip_and_bad_key():
    crypto = MessageCrypto("a" * 43, "wxapp")
    assert crypto.decrypt(crypto.encrypt("<xml>你好 ]]></xml>")) == "<xml>你好 ]]></xml>"
    with pytest.raises(CryptoError):
        MessageCrypto("short", "wxapp")


def test_signature_comparison_and_timestamps():
    assert signing.matches(signing.signature("t", "1", "2"), signing.signature("t", "1", "2").upper())
    assert not signing.matches(signing.signature("t", "1", "2"), "0" * 40)
    assert not signing.fresh("abc", 100) and not signing.fresh("-5", 100) and not signing.fresh("1" * 20, 100)
    assert signing.fresh("1000", 1299) and not signing.fresh("1000", 1301) and not signing.fresh("2000", 1000)
    assert signing.verify_query("t", {"timestamp": "1"}, 1) == "missing signature parameters"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType><Content>&lol3;</Content></xml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType><Content>&xxe;</Content></xml>"""


TOO_WIDE = b"<xml>" + b"".join(b"<f%d>x</f%d>" % (i, i) for i in range(70)) + b"</xml>"


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, b"<xml><a>", b"<notxml/>", b"", TOO_WIDE])
def test_parser_refuses_dtds_entities_and_junk(body):
    with pytest.raises(wirexml.BadXml):
        wirexml.parse(body)


def test_parser_reads_flat_and_nested_fields():
    fields = wirexml.parse(b"<xml><MsgType><![CDATA[event]]></MsgType><Event>scancode_push</Event>"
                           b"<ScanCodeInfo><ScanResult>abc</ScanResult></ScanCodeInfo><CreateTime>1</CreateTime></xml>")
    msg = wirexml.Message(fields)
    assert msg.event == "SCANCODE_PUSH" and fields["ScanCodeInfo.ScanResult"] == "abc"
    assert wirexml.Message({"MsgId": "9", "FromUserName": "o"}).dedup_key() == "msg:9"
    assert wirexml.Message({"FromUserName": "o", "CreateTime": "5"}).dedup_key() == "evt:o:5"


def test_cdata_cannot_be_broken_out_of():
    hostile = "a]]></Content><MsgType>news</MsgType><Content><![CDATA[b\x00\x07"
    xml = wirexml.text_reply("o1", "gh", hostile, 1)
    fields = wirexml.parse(xml.encode())
    assert fields["Content"] == "a]]></Content><MsgType>news</MsgType><Content><![CDATA[b"
    assert fields["MsgType"] == "text"


def test_commands():
    assert texts.command(" 帮助 ") == ("help", "")
    assert texts.command("？") == ("help", "")
    assert texts.command("发起 融资") == ("start", "")
    assert texts.command("查询 42") == ("detail", "42")
    assert texts.command("查询#42") == ("detail", "42")
    assert texts.command("绑定：abcd2345") == ("bind", "abcd2345")
    assert texts.command("ＩＮＶ－００１") == (None, "INV-001")  # full-width input folded


def test_amount_and_date_conveniences_then_the_models_rules():
    assert amount_text("500,000.00 元") == "500000.00"
    assert amount_text("1,5") == "1,5"  # not a thousands grouping: left for validation to refuse
    assert date_text("2026/6/30") == "2026-06-30" and date_text("2026年6月30日") == "2026-06-30"
    assert date_text("20260630") == "2026-06-30"
    assert validate_field("face_amount", "1234.5") == (123450, None)
    value, error = validate_field("face_amount", "12.345")
    assert value is None and "最多保留两位小数" in error
    assert "不能为负数" in validate_field("requested_amount", "-1")[1]
    assert "必须大于 0" in validate_field("face_amount", "0")[1]
    assert "格式不正确" in validate_field("face_amount", "五十万")[1]
    assert "发票号码" in validate_field("invoice_no", "发票一")[1]
    assert "应收账款到期日" in validate_field("due_date", "2026-02-30")[1]


def test_clip_keeps_text_under_wechats_limit():
    assert clip("短") == "短"
    long = clip("融" * 2000)
    assert len(long.encode()) <= 2000 and long.endswith("请在小程序中查看完整信息）")


def test_menu_file_is_valid_and_every_click_key_is_handled():
    menu = load_menu()
    validate_menu(menu)  # the simulator applies WeChat's menu/create rules
    keys = click_keys(menu)
    assert keys and set(keys) <= set(CLICK_COMMANDS)
    assert all(texts.command(CLICK_COMMANDS[k])[0] is not None for k in keys)


def test_cli_publishes_the_menu(monkeypatch, capsys, tmp_path):
    from echain.cli import main

    monkeypatch.delenv("WECHAT_API_BASE", raising=False)
    monkeypatch.setenv("ECHAIN_DATA_DIR", str(tmp_path))
    assert main(["wechat", "menu"]) == 0
    assert "已发布菜单" in capsys.readouterr().out
    bad = tmp_path / "menu.json"
    bad.write_text(json.dumps({"button": []}))
    assert main(["wechat", "menu", "--file", str(bad)]) == 1
    assert "40016" in capsys.readouterr().err
