"""Safe-mode message crypto: AES-256-CBC with WeChat's framing, checked strictly on the way in.

Framing (消息加解密说明): random(16) + msg_len(4, network order) + msg + appid, PKCS#7 padded to 32-byte
blocks, key = Base64(EncodingAESKey + "="), IV = first 16 key bytes. wechatpy implements the same, but does not
check the padding or the length field, so malformed ciphertexts raise arbitrary errors; here they raise
`CryptoError`.
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


class CryptoError(ValueError):
    """The ciphertext or key is malformed, or the message is for another app."""


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key behind a 43-character EncodingAESKey."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("EncodingAESKey is not Base64") from exc
    if len(key) != 32:
        raise CryptoError("EncodingAESKey must decode to 32 bytes")
    return key


class MessageCrypto:
    """Encrypts replies and decrypts messages for one Official Account."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        self._key = aes_key(encoding_aes_key)
        self.app_id = app_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, plaintext: str, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of a reply; `random_prefix` (16 bytes) only for reproducible tests."""
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise CryptoError("random prefix must be 16 bytes")
        body = plaintext.encode()
        framed = prefix + struct.pack(">I", len(body)) + body + self.app_id.encode()
        pad = BLOCK - len(framed) % BLOCK
        framed += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(framed) + encryptor.finalize()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext XML of an Encrypt element; CryptoError unless well-formed and for our app id."""
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoError("ciphertext is not Base64") from exc
        if not raw or len(raw) % 16:
            raise CryptoError("ciphertext length is not a multiple of the AES block")
        decryptor = self._cipher().decryptor()
        framed = decryptor.update(raw) + decryptor.finalize()
        pad = framed[-1]
        if not 1 <= pad <= BLOCK or framed[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding")
        content = framed[16:-pad]
        if len(content) < 4:
            raise CryptoError("message too short")
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise CryptoError("length field exceeds the message")
        message, from_app = content[4:4 + length], content[4 + length:]
        if not hmac.compare_digest(from_app, self.app_id.encode()):
            raise CryptoError("message is for another app id")
        try:
            return message.decode()
        except UnicodeDecodeError as exc:
            raise CryptoError("message is not UTF-8") from exc
