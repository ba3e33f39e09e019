"""Callback signatures and the replay window, checked before the body is looked at.

WeChat signs every callback: signature = SHA1 of token, timestamp and nonce sorted and joined; in safe mode
msg_signature also covers the Encrypt element (消息加解密说明, "msg_signature: 对消息体字段的签名").
https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
"""

from __future__ import annotations

import hashlib
import hmac

# WeChat gives no replay window of its own; five minutes covers its 3 attempts (5 s apart) and clock skew.
MAX_SKEW_SECONDS = 300


def signature(*parts: str) -> str:
    """SHA1 hex of the parts sorted lexicographically and concatenated (WeChat's signing rule)."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def matches(expected: str, given: str) -> bool:
    """Constant-time comparison of a computed and a received signature."""
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("ascii", "replace"))


def fresh(timestamp: str, now: float, skew: int = MAX_SKEW_SECONDS) -> bool:
    """True when `timestamp` (epoch seconds as sent) is within `skew` seconds of `now`."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= skew


def verify_query(token: str, query: dict[str, str], now: float) -> str | None:
    """Check signature + timestamp of a callback URL; return None when good, else why it is refused."""
    timestamp, nonce, sig = query.get("timestamp", ""), query.get("nonce", ""), query.get("signature", "")
    if not (timestamp and nonce and sig):
        return "missing signature parameters"
    # Signature first, so an unsigned request learns nothing, not even whether its timestamp was stale.
    if not matches(signature(token, timestamp, nonce), sig):
        return "bad signature"
    if not fresh(timestamp, now):
        return "stale timestamp"
    return None
