"""WeChat's own face verification (微信人脸核身 2.0) for mini-programs, as a provider.

Flow (https://developers.weixin.qq.com/miniprogram/dev/server/API/face/):
1. server: POST /cityservice/face/identify/getverifyid {out_seq_no, cert_info{cert_type, cert_name,
   cert_no}, openid} → {verify_id, expires_in (default 3600 s)};
2. mini-program: wx.requestFacialVerify({verifyId}) — WeChat compares the live face with the national ID
   photo of that name + number, with its own liveness detection;
3. server: POST /cityservice/face/identify/queryverifyinfo {verify_id, out_seq_no, cert_hash, openid}
   → {verify_ret}. Passed only when errcode == 0 and verify_ret == 10000; never trust the client's word.

cert_hash (documented with an example, checked in tests): standard Base64 of each of cert_type, cert_name,
cert_no; joined as "cert_type=…&cert_name=…&cert_no=…"; SHA-256, lower-case hex.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from wechat.client import WeChatClient

IDENTITY_CARD = "IDENTITY_CARD"
VERIFY_OK = 10000
OUT_SEQ_NO = re.compile(r"^[0-9A-Za-z_-]{5,32}$")  # "5-32个字符内，只能包含数字、大小写字母和_-字符"

# queryVerifyInfo verify_ret, in Chinese for the person (from the enum on the queryVerifyInfo page).
VERIFY_RET_MESSAGES = {
    10000: "人脸核身通过",
    10001: "人脸核身参数错误，请重试",
    10002: "未能检测到人脸特征，请在光线充足处正对镜头重试",
    10003: "身份证号与姓名不匹配",
    10004: "人脸与身份证照片比对不一致",
    90001: "设备不支持人脸检测",
    90002: "已取消人脸核身",
    90003: "已取消人脸核身",
    90004: "已取消人脸核身",
    90005: "已取消人脸核身",
    90006: "已取消人脸核身",
    90007: "网络错误，请重试",
    90008: "请允许微信使用相机后重试",
    90009: "请允许微信使用麦克风后重试",
    90010: "请允许微信使用相机和麦克风后重试",
    90017: "识别超时，请重试",
}
# Verdicts about the face or identity (count towards the lock-out); cancellations and device errors do not.
FAILURE_VERDICTS = frozenset({10002, 10003, 10004})


def cert_hash(cert_type: str, cert_name: str, cert_no: str) -> str:
    """The cert_hash queryVerifyInfo expects for the cert_info given to getVerifyId."""

    def b64(value: str) -> str:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")

    joined = f"cert_type={b64(cert_type)}&cert_name={b64(cert_name)}&cert_no={b64(cert_no)}"
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class VerifySession:
    """What getVerifyId returned."""

    verify_id: str
    expires_in: int


@dataclass(frozen=True)
class VerifyOutcome:
    """What queryVerifyInfo returned."""

    verify_ret: int

    @property
    def passed(self) -> bool:
        """Only verify_ret 10000 is a pass."""
        return self.verify_ret == VERIFY_OK

    @property
    def message(self) -> str:
        """Chinese text for the person."""
        return VERIFY_RET_MESSAGES.get(self.verify_ret, f"人脸核身未通过（{self.verify_ret}），请重试")


class FaceVerifyProvider(Protocol):
    """A remote face-verification service (WeChat today; a bank or CA later)."""

    async def start(self, out_seq_no: str, openid: str, cert_name: str, cert_no: str,
                    cert_type: str = IDENTITY_CARD) -> VerifySession:
        """Open a verification session for a real-name identity."""
        ...

    async def outcome(self, verify_id: str, out_seq_no: str, openid: str, cert_hash_: str) -> VerifyOutcome:
        """The server-side verdict of a finished session."""
        ...


class WeChatFaceProvider:
    """`FaceVerifyProvider` on the mini-program's WeChatClient (WeChatError propagates on errcode != 0)."""

    def __init__(self, client: WeChatClient) -> None:
        self.client = client

    async def start(self, out_seq_no: str, openid: str, cert_name: str, cert_no: str,
                    cert_type: str = IDENTITY_CARD) -> VerifySession:
        """getVerifyId."""
        if not OUT_SEQ_NO.match(out_seq_no):
            raise ValueError("out_seq_no must be 5–32 characters of [0-9A-Za-z_-]")
        result = await self.client.get_verify_id({
            "out_seq_no": out_seq_no,
            "cert_info": {"cert_type": cert_type, "cert_name": cert_name, "cert_no": cert_no},
            "openid": openid,
        })
        return VerifySession(str(result.get("verify_id", "")), int(result.get("expires_in") or 3600))

    async def outcome(self, verify_id: str, out_seq_no: str, openid: str, cert_hash_: str) -> VerifyOutcome:
        """queryVerifyInfo."""
        result: dict[str, Any] = await self.client.query_verify_info({
            "verify_id": verify_id, "out_seq_no": out_seq_no, "cert_hash": cert_hash_, "openid": openid,
        })
        return VerifyOutcome(int(result.get("verify_ret") or 0))
