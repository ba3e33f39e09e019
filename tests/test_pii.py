"""Tests for echain.pii: AES-GCM field encryption and keyed lookup hashes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from echain.pii import PiiCipher, PiiError

SECRET = "test-secret-key-0123456789abcdefghijkl"
OTHER_SECRET = "another-secret-key-0123456789abcdefghij"
ID_NUMBER = "11010519491231002X"
CONTEXT = "enterprise.legal_rep_id"


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher(SECRET)


def _flip_byte(token: str, index: int) -> str:
    """Flip one bit of the decoded token payload and re-encode it."""
    body = token[3:]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[index] ^= 0x01
    return "v1:" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, context=CONTEXT)
    assert cipher.decrypt(token, context=CONTEXT) == ID_NUMBER


def test_round_trip_unicode_and_empty(cipher: PiiCipher) -> None:
    for text in ("阿卜杜热合曼·买买提", ""):
        assert cipher.decrypt(cipher.encrypt(text, context="user.name"), context="user.name") == text


def test_token_format_is_versioned_compact_and_hides_plaintext(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, context=CONTEXT)
    assert token.startswith("v1:")
    assert "=" not in token and "+" not in token and "/" not in token
    raw = base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4))
    assert len(raw) == 12 + len(ID_NUMBER) + 16  # nonce + ciphertext + tag
    assert ID_NUMBER not in token
    assert ID_NUMBER.encode() not in raw


def test_same_plaintext_encrypts_differently_each_time(cipher: PiiCipher) -> None:
    # A fresh random nonce per call: equal values must not be linkable through equal ciphertexts.
    assert cipher.encrypt(ID_NUMBER, context=CONTEXT) != cipher.encrypt(ID_NUMBER, context=CONTEXT)


@pytest.mark.parametrize("index", [0, 12, 20, -1])
def test_tampering_any_byte_is_detected(cipher: PiiCipher, index: int) -> None:
    token = cipher.encrypt(ID_NUMBER, context=CONTEXT)
    with pytest.raises(PiiError, match="数据被篡改"):
        cipher.decrypt(_flip_byte(token, index), context=CONTEXT)


def test_wrong_context_is_rejected(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, context=CONTEXT)
    with pytest.raises(PiiError, match="用途（context）不符"):
        cipher.decrypt(token, context="user.id_number")


def test_wrong_secret_is_rejected(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, context=CONTEXT)
    with pytest.raises(PiiError):
        PiiCipher(OTHER_SECRET).decrypt(token, context=CONTEXT)


def test_same_secret_in_another_instance_decrypts(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, context=CONTEXT)
    assert PiiCipher(SECRET.encode()).decrypt(token, context=CONTEXT) == ID_NUMBER


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("v2:abcd", "缺少版本前缀 v1:"),
        ("not a token", "缺少版本前缀 v1:"),
        ("v1:a", "不是有效的 base64url 编码"),
        ("v1:AAAA", "长度不足"),
    ],
)
def test_malformed_tokens_raise_pii_error(cipher: PiiCipher, token: str, message: str) -> None:
    with pytest.raises(PiiError, match=message):
        cipher.decrypt(token, context=CONTEXT)


def test_bytes_round_trip_and_tamper(cipher: PiiCipher) -> None:
    template = bytes(range(256)) * 2  # stands in for a 128-float face encoding
    blob = cipher.encrypt_bytes(template, context="face.template")
    assert blob[0] == 1
    assert template not in blob
    assert cipher.decrypt_bytes(blob, context="face.template") == template
    tampered = bytearray(blob)
    tampered[40] ^= 0x80
    with pytest.raises(PiiError):
        cipher.decrypt_bytes(bytes(tampered), context="face.template")
    with pytest.raises(PiiError):
        cipher.decrypt_bytes(blob, context="face.other")
    with pytest.raises(PiiError, match="版本字节不符"):
        cipher.decrypt_bytes(b"\x02" + blob[1:], context="face.template")


def test_text_and_bytes_tokens_are_not_interchangeable(cipher: PiiCipher) -> None:
    # The format version is part of the associated data, so a binary payload cannot pass as a v1 text token.
    blob = cipher.encrypt_bytes(ID_NUMBER.encode(), context=CONTEXT)
    token = "v1:" + base64.urlsafe_b64encode(blob[1:]).rstrip(b"=").decode()
    with pytest.raises(PiiError):
        cipher.decrypt(token, context=CONTEXT)


def test_lookup_hash_is_deterministic_keyed_and_context_separated(cipher: PiiCipher) -> None:
    digest = cipher.lookup_hash(ID_NUMBER, context="resident_id")
    assert digest == PiiCipher(SECRET).lookup_hash(ID_NUMBER, context="resident_id")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest != PiiCipher(OTHER_SECRET).lookup_hash(ID_NUMBER, context="resident_id")
    assert digest != cipher.lookup_hash(ID_NUMBER, context="mobile")
    assert digest != cipher.lookup_hash("11010519491231003X", context="resident_id")
    # Not a plain hash: an attacker enumerating ID numbers with SHA-256 finds nothing.
    assert digest != hashlib.sha256(ID_NUMBER.encode()).hexdigest()


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="ECHAIN_SECRET_KEY 太短：至少需要32字节，当前为5字节"):
        PiiCipher("short")


def test_context_must_be_non_empty(cipher: PiiCipher) -> None:
    with pytest.raises(ValueError):
        cipher.encrypt(ID_NUMBER, context="")
    with pytest.raises(ValueError):
        cipher.lookup_hash(ID_NUMBER, context="a\x00b")


def test_repr_hides_secret(cipher: PiiCipher) -> None:
    assert SECRET not in repr(cipher)
