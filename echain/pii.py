"""Personal-information protection: field encryption and keyed lookup hashes.

Face data is sensitive personal information under PIPL (个人信息保护法) §28, ID card numbers under
GB/T 35273-2020 Annex B, and PIPL §51 asks for encryption of such data. We encrypt each value with
AES-256-GCM and, where a column must be searchable (e.g. "is this ID number already registered?"), store a
keyed HMAC alongside the ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MIN_SECRET_BYTES", "PiiCipher", "PiiError"]

# HKDF cannot add entropy: the lookup hashes are only as hard to brute-force as this secret is to guess.
MIN_SECRET_BYTES = 32

_AEAD_INFO = b"echain pii aes-gcm v1"
_LOOKUP_INFO = b"echain pii lookup v1"
_TEXT_PREFIX = "v1:"
_BYTES_VERSION = b"\x01"
_NONCE_BYTES = 12  # 96-bit nonce: the size GCM is specified for (NIST SP 800-38D §5.2.1.1)
_TAG_BYTES = 16


class PiiError(Exception):
    """Encrypted personal data could not be decrypted (tampered, wrong key, wrong context, bad format)."""


class PiiCipher:
    """Encrypt personal data fields and compute keyed lookup hashes from one master secret.

    Token format (text): ``"v1:" + base64url(nonce[12] || ciphertext || tag[16])`` without padding;
    binary format: ``b"\\x01" || nonce || ciphertext || tag``. The associated data binds the format version
    and the caller's *context* (e.g. ``"enterprise.legal_rep_id"``), so a ciphertext copied into another
    column, or re-labelled with another version, fails to decrypt.

    Key rotation: the version prefix decides how the rest of a token is parsed. ``v1`` means "the single key
    derived from ECHAIN_SECRET_KEY". A future ``v2`` will carry a key id (``"v2:<kid>:<base64url>"``, binary
    ``b"\\x02" || kid_len || kid || …``) so old and new keys can coexist while rows are re-encrypted; ``v1``
    tokens stay readable as long as the old secret is configured.
    """

    def __init__(self, master_secret: str | bytes) -> None:
        secret = master_secret.encode("utf-8") if isinstance(master_secret, str) else bytes(master_secret)
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"ECHAIN_SECRET_KEY 太短：至少需要{MIN_SECRET_BYTES}字节，当前为{len(secret)}字节"
                "（可用 python -c 'import secrets; print(secrets.token_urlsafe(32))' 生成）"
            )
        # Two independent subkeys (HKDF, RFC 5869): a leak or misuse of one purpose does not expose the other.
        self._aead = AESGCM(_derive(secret, _AEAD_INFO))
        self._lookup_key = _derive(secret, _LOOKUP_INFO)

    def __repr__(self) -> str:
        return "PiiCipher(<secret hidden>)"

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Encrypt text bound to *context* and return a compact ``v1:`` token."""
        sealed = self._seal(plaintext.encode("utf-8"), _aad(_TEXT_PREFIX, context))
        return _TEXT_PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def decrypt(self, token: str, *, context: str) -> str:
        """Decrypt a token made by `encrypt` with the same *context*; raise `PiiError` otherwise."""
        if not isinstance(token, str) or not token.startswith(_TEXT_PREFIX):
            raise PiiError("个人信息密文格式无法识别（缺少版本前缀 v1:）")
        body = token[len(_TEXT_PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise PiiError("个人信息密文不是有效的 base64url 编码") from None
        return self._open(sealed, _aad(_TEXT_PREFIX, context)).decode("utf-8")

    def encrypt_bytes(self, data: bytes, *, context: str) -> bytes:
        """Encrypt a binary payload (e.g. a face template) bound to *context*."""
        return _BYTES_VERSION + self._seal(bytes(data), _aad("b1", context))

    def decrypt_bytes(self, blob: bytes, *, context: str) -> bytes:
        """Decrypt a payload made by `encrypt_bytes` with the same *context*; raise `PiiError` otherwise."""
        if not blob or blob[:1] != _BYTES_VERSION:
            raise PiiError("个人信息密文格式无法识别（版本字节不符）")
        return self._open(bytes(blob[1:]), _aad("b1", context))

    def lookup_hash(self, value: str, *, context: str) -> str:
        """Keyed HMAC-SHA256 (hex) of *value* for equality search without decrypting.

        Keyed because an 18-digit ID number has little entropy (region + birth date + 3-digit sequence):
        a plain SHA-256 of every possible number is enumerated in minutes. Without the key nothing can be
        enumerated. Hash the *normalised* value (e.g. `validate_resident_id` output) so "x" and "X" agree.
        """
        message = _context_bytes(context) + b"\x00" + value.encode("utf-8")
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()

    def _seal(self, plaintext: bytes, aad: bytes) -> bytes:
        # Random nonces are safe for well under 2^32 messages per key (NIST SP 800-38D §8.3).
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def _open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise PiiError("个人信息密文长度不足，数据已损坏")
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise PiiError("个人信息密文校验失败：数据被篡改、密钥不符或用途（context）不符") from None


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _aad(version: str, context: str) -> bytes:
    return b"echain-pii\x00" + version.encode("ascii") + b"\x00" + _context_bytes(context)


def _context_bytes(context: str) -> bytes:
    if not isinstance(context, str) or not context or "\x00" in context:
        raise ValueError("context must be a non-empty string without NUL, e.g. 'enterprise.legal_rep_id'")
    return context.encode("utf-8")
