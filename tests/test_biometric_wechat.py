"""The WeChat face-verification provider against the WeChat simulator over HTTP (no face photos needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from biometric.wechat_face import VERIFY_OK, WeChatFaceProvider, cert_hash
from wechat.client import WeChatClient, WeChatError
from wechat.simulator import (
    SIM_APP_ID,
    SIM_APP_SECRET,
    SIM_MINIAPP_ID,
    SIM_MINIAPP_SECRET,
    SimulatorState,
    face_cert_hash,
    start_simulator,
)

NAME, ID_NO = "张三", "310101199801011234"


@dataclass
class Sim:
    base_url: str
    state: SimulatorState
    http: aiohttp.ClientSession


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with aiohttp.ClientSession() as http:
        runner, base_url, state = await start_simulator()
        yield Sim(base_url, state, http)
        await runner.cleanup()


@pytest.fixture
def provider(sim: Sim) -> WeChatFaceProvider:
    return WeChatFaceProvider(WeChatClient(sim.http, sim.base_url, SIM_MINIAPP_ID, SIM_MINIAPP_SECRET))


def test_cert_hash_matches_the_documented_example() -> None:
    # queryVerifyInfo 注意事项: {"cert_type":"IDENTITY_CARD","cert_name":"张三","cert_no":"310101199801011234"}
    expected = "3c241f7ff324977aeb91f173bb2a7b06569e6fd784d5573db34a636d8671108b"
    assert cert_hash("IDENTITY_CARD", NAME, ID_NO) == expected
    assert face_cert_hash({"cert_type": "IDENTITY_CARD", "cert_name": NAME, "cert_no": ID_NO}) == expected


async def test_passed_verification_is_verify_ret_10000(sim: Sim, provider: WeChatFaceProvider) -> None:
    session = await provider.start("ec0001", "openid-1", NAME, ID_NO)
    assert session.expires_in == 3600 and len(session.verify_id) <= 256
    sent = sim.state.calls_to("/cityservice/face/identify/getverifyid")[0].body
    assert sent == {"out_seq_no": "ec0001", "openid": "openid-1",
                    "cert_info": {"cert_type": "IDENTITY_CARD", "cert_name": NAME, "cert_no": ID_NO}}
    digest = cert_hash("IDENTITY_CARD", NAME, ID_NO)
    unfinished = await provider.outcome(session.verify_id, "ec0001", "openid-1", digest)
    assert not unfinished.passed
    # The simulator's test helper: the person completed wx.requestFacialVerify.
    async with sim.http.post(sim.base_url + "/sim/face-verify", json={"verify_id": session.verify_id}) as resp:
        assert resp.status == 200 and (await resp.json())["verify_ret"] == VERIFY_OK
    outcome = await provider.outcome(session.verify_id, "ec0001", "openid-1", digest)
    assert outcome.passed and outcome.message == "人脸核身通过"


@pytest.mark.parametrize(("verify_ret", "text"), [(10004, "不一致"), (10003, "不匹配"), (90002, "取消"),
                                                  (90008, "相机"), (99999, "99999")])
async def test_other_verify_ret_values_fail_with_chinese_text(sim: Sim, provider: WeChatFaceProvider,
                                                              verify_ret: int, text: str) -> None:
    session = await provider.start("ec0002", "openid-1", NAME, ID_NO)
    sim.state.face_finish(session.verify_id, verify_ret)
    outcome = await provider.outcome(session.verify_id, "ec0002", "openid-1", cert_hash("IDENTITY_CARD", NAME, ID_NO))
    assert not outcome.passed and outcome.verify_ret == verify_ret and text in outcome.message


async def test_tampered_identity_gets_an_errcode_not_a_verify_ret(sim: Sim, provider: WeChatFaceProvider) -> None:
    session = await provider.start("ec0003", "openid-1", NAME, ID_NO)
    sim.state.face_finish(session.verify_id, 10000)
    good = cert_hash("IDENTITY_CARD", NAME, ID_NO)
    for verify_id, seq, openid, digest in [
        (session.verify_id, "ec0003", "openid-1", cert_hash("IDENTITY_CARD", "李四", ID_NO)),  # other person
        (session.verify_id, "ec0003", "openid-2", good),  # other user
        (session.verify_id, "ec9999", "openid-1", good),  # other out_seq_no
        ("no-such-id", "ec0003", "openid-1", good),
    ]:
        with pytest.raises(WeChatError) as err:
            await provider.outcome(verify_id, seq, openid, digest)
        assert err.value.errcode in (40097, 84001)


async def test_getverifyid_rules(sim: Sim, provider: WeChatFaceProvider) -> None:
    await provider.start("ec0004", "openid-1", NAME, ID_NO)
    with pytest.raises(WeChatError) as duplicate:  # out_seq_no is unique per appid
        await provider.start("ec0004", "openid-1", NAME, ID_NO)
    assert duplicate.value.errcode == 40097
    with pytest.raises(ValueError):  # 5–32 characters of [0-9A-Za-z_-], checked before calling WeChat
        await provider.start("bad seq!", "openid-1", NAME, ID_NO)
    # Face verification is a mini-program capability: the Official Account's token is refused.
    oa = WeChatFaceProvider(WeChatClient(sim.http, sim.base_url, SIM_APP_ID, SIM_APP_SECRET))
    with pytest.raises(WeChatError) as unauthorized:
        await oa.start("ec0005", "openid-1", NAME, ID_NO)
    assert unauthorized.value.errcode == 48001


async def test_an_expired_session_cannot_be_completed(sim: Sim, provider: WeChatFaceProvider) -> None:
    session = await provider.start("ec0006", "openid-1", NAME, ID_NO)
    sim.state.advance(3601)
    async with sim.http.post(sim.base_url + "/sim/face-verify",
                             json={"verify_id": session.verify_id, "verify_ret": 10000}) as resp:
        assert resp.status == 400
