"""`echain demo`: the reference client drives one financing through the whole lifecycle over HTTP."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from echain.cli import build_parser
from echain.demo import (
    Api,
    Demo,
    DemoError,
    WeChatSide,
    cmd_demo,
    connect_wechat,
    local_app,
    local_server,
    notify_jobs,
    run_demo,
)
from echain.keys import SETTINGS, WECHAT_BASE
from tests.test_biometric_support import FACES, needs_faces


def _collector() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_demo_runs_the_whole_lifecycle_in_process():
    # No conftest fixtures: the demo starts its own server, database and Redis, and closes them again.
    lines, out = _collector()
    assert await run_demo(None, out=out) == 0, "\n".join(lines)
    text = "\n".join(lines)
    titles = [title for title, _ in Demo(api=None, out=out).steps()]  # type: ignore[arg-type]
    for number, title in enumerate(titles, start=1):
        assert f"[{number:2d}/{len(titles)}] {title} … " in text
    assert "核心企业领用 … 状态：确权审批中" in text
    assert "审批人甲同意确权 … 状态：确权审批中（已同意 1/2）" in text
    assert "审批人乙同意确权 … 状态：已确权待分配" in text
    assert "Idempotent-Replayed: true" in text and "未重复放款" in text
    assert "资金方 A 确认还款 … 状态：已结清" in text
    assert "账本校验通过" in text and "哈希链校验通过" in text
    # The summary: 1,000,000 × 6.5 % × 90 / 360 = 16,250.00; fee 0.3 % = 3,000.00.
    assert "利息：16250.00 元" in text and "手续费：3000.00 元" in text and "应还总额：1019250.00 元" in text
    assert "按实际天数/360 计息，计头不计尾" in text
    assert "当前状态：已结清" in text and "确认还款（资金方 A 经办人）→ 已结清" in text
    # Each legal representative passed WeChat's face verification (in the simulator) before signing.
    assert "资金方 A 法定代表人通过微信人脸核身，取得签署凭证（绑定 financing:1:v1" in text
    assert text.count("通过微信人脸核身，取得签署凭证") == 3
    # The signed contract was written out and verified: three signatures, intact, matching the platform's record.
    saved = re.search(r"已签署的保理合同：(\S+\.pdf)", text)
    assert saved and Path(saved.group(1)).read_bytes().startswith(b"%PDF")  # noqa: ASYNC240 - a small local file
    assert "（与平台记录一致）" in text and text.count("签名有效、内容未被修改") == 3
    # The notification jobs ran in-process after every step; WeChat's simulator received the notices.
    assert "10 人在小程序中各允许 3 次订阅消息" in text
    assert ("核心企业审批人甲 ← 小程序订阅消息（模板 echain-dev-todo）融资 #1「请审批同意」 "
            "页面 pages/financing/detail?id=1&action=approve") in text
    assert "供应商经办人 ← 小程序订阅消息（模板 echain-dev-todo）融资 #1「请确认收款」" in text


def _step_titles(chat: bool) -> list[str]:
    return [title for title, _ in Demo(api=None, out=print, chat=chat).steps()]  # type: ignore[arg-type]


def _chat_financing_id(text: str) -> int:
    return int(re.search(r"公众号对话发起的融资：编号 (\d+)", text).group(1))


def _assert_chat_path(text: str, *, every_notice: bool = True) -> int:
    """What the chat path prints, wherever the server runs; returns the chat financing's id.

    `every_notice`: the jobs ran after every step (in-process). A worker running beside the demo may find a
    financing already moved on and skip that (stale) notice; the approver's is awaited by the demo itself.
    """
    titles = _step_titles(chat=True)
    for number, title in enumerate(titles, start=1):
        assert f"[{number:2d}/{len(titles)}] {title} … " in text
    assert "供应商经办人关注公众号并用绑定码关联小程序账号 … 已关联小程序账号（公众号回调 /wechat，安全模式" in text
    assert re.search(r"显示绑定码 ([0-9A-Z]{8})（10 分钟内有效", text)
    assert "公众号：绑定成功！" in text
    assert "用户：[照片 发票照片.png]" in text and "用户：[照片 合同照片.png]" in text
    assert "公众号（客服消息）：已收到第 1 张材料照片（发票）" in text
    assert "公众号（客服消息）：已收到第 2 张材料照片（其他材料）" in text
    assert "7. 材料照片：2 张" in text and "公众号：融资申请已提交！" in text
    fid = _chat_financing_id(text)
    assert f"状态：待核心企业领用（融资编号 {fid}，附件：公众号照片-1（invoice）、公众号照片-2（other））" in text
    assert "核心企业领用对话发起的融资 … 状态：确权审批中（票面 500000.00 元，需 1 名审批人同意）" in text
    approve_page = f"pages/financing/detail?id={fid}&action=approve"
    assert f"核心企业审批人甲收到小程序订阅消息「请审批同意」，点开进入 {approve_page}" in text
    assert "审批人甲收到通知，打开确权页面同意确权 … 状态：已确权待分配" in text
    assert f"用户：查询 {fid}" in text and "公众号显示：已确权待分配" in text
    assert f"公众号：融资 #{fid}\n            状态：已确权待分配" in text
    # The API financing still goes all the way; the notices of both are listed at the end.
    assert "资金方 A 确认还款 … 状态：已结清" in text and "哈希链校验通过" in text
    assert "当前状态：已确权待分配" in text
    listing = text.split("======== 消息通知", 1)[1]
    assert f"核心企业审批人甲 ← 小程序订阅消息（模板 echain-dev-todo）融资 #{fid}「请审批同意」 页面 {approve_page}" in listing
    if not every_notice:
        return fid
    assert "9 人在小程序中各允许 3 次订阅消息" in text and "供应商经办人未允许订阅消息" in text
    assert f"核心企业经办人 ← 小程序订阅消息（模板 echain-dev-todo）融资 #{fid}「请领用」" in listing
    # The chat supplier allowed no subscribe messages: their notice went out as an OA template message.
    assert "供应商经办人（公众号） ← 公众号模板消息（模板 echain-dev-oa-todo）" in listing
    assert "action=confirm_receipt" in listing
    return fid


async def test_demo_chat_path_in_process():
    lines, out = _collector()
    assert await run_demo(None, out=out, chat=True) == 0, "\n".join(lines)
    text = "\n".join(lines)
    _assert_chat_path(text)
    assert "本进程内的通知作业（arq worker，burst 模式）在每一步之后发送" in text


async def test_demo_chat_against_a_running_server_with_its_simulator_and_worker():
    # A server the demo did not start: its callback credentials and simulator URL are passed like on the CLI,
    # and "its worker" runs in the background, sending notices while the demo goes on.
    lines, out = _collector()
    async with local_app() as local:
        settings, stop = local.app[SETTINGS], asyncio.Event()
        run_jobs = notify_jobs(local.app)

        async def worker() -> None:
            while not stop.is_set():
                await run_jobs()
                await asyncio.sleep(0.05)

        task = asyncio.create_task(worker())
        try:
            code = await run_demo(local.url, out=out, chat=True, wechat_token=settings.wechat_token,
                                  wechat_aes_key=settings.wechat_aes_key, wechat_sim=local.app[WECHAT_BASE])
        finally:
            stop.set()
            await task
    text = "\n".join(lines)
    assert code == 0, text
    _assert_chat_path(text, every_notice=False)
    assert "由该服务的 echain worker 发送" in text and "过时" in text


async def test_demo_against_a_server_without_its_simulator_skips_chat_and_cannot_sign():
    # Without the simulator there are no chat photos, no notices to list and no face verification (人脸核身)
    # before signing: the chat part is skipped up front, the signature step says what is missing.
    lines, out = _collector()
    async with local_server() as url:
        assert await run_demo(url, out=out, chat=True) == 1
    text = "\n".join(lines)
    assert "未指定微信接口模拟器（--wechat-sim）：跳过公众号对话部分" in text
    titles = _step_titles(chat=False)
    assert f"[ 3/{len(titles)}] 企业管理员邀请法定代表人和审批人加入" in text and "公众号" not in text.split("\n", 2)[2]
    assert lines[-1].startswith(f"演示失败：第 12/{len(titles)} 步（资金方 A 法定代表人签署）出错：签署前须通过人脸核验")
    assert "--wechat-sim" in lines[-1]


async def test_an_unreachable_simulator_is_named_and_chat_skipped():
    lines, out = _collector()
    sim_url = f"http://127.0.0.1:{_free_port()}"
    async with aiohttp.ClientSession() as session:
        demo = Demo(Api(session, "http://127.0.0.1:1"), out, chat=True)
        reason = await connect_wechat(demo, session, WeChatSide(simulator_url=sim_url))
    assert demo.sim is None and demo.oa is None and not demo.chat
    assert lines == [f"无法连接微信接口模拟器 {sim_url}：跳过公众号对话部分（对话中的照片要先放入模拟器，公众号才能经 media/get 下载）。"]
    assert reason.startswith(f"无法连接微信接口模拟器 {sim_url}，跳过通知列表。")


async def test_demo_chat_with_a_wrong_callback_token_names_the_option():
    lines, out = _collector()
    async with local_app() as local:
        code = await run_demo(local.url, out=out, chat=True, wechat_token="not-the-token",
                              wechat_aes_key=local.app[SETTINGS].wechat_aes_key, wechat_sim=local.app[WECHAT_BASE])
    assert code == 1
    assert lines[-1].startswith("演示失败：第 4/25 步（供应商经办人关注公众号并用绑定码关联小程序账号）出错")
    assert "HTTP 403" in lines[-1] and "--wechat-token" in lines[-1]


async def test_demo_against_nothing_listening_fails_fast_in_chinese():
    lines, out = _collector()
    started = time.monotonic()
    assert await run_demo(f"http://127.0.0.1:{_free_port()}", out=out, request_timeout=3) == 1
    assert time.monotonic() - started < 5
    assert "无法连接到 echain 服务" in lines[-1] and lines[-1].startswith("演示失败")


async def test_demo_against_a_server_without_the_operator_says_how_to_grant():
    lines, out = _collector()
    async with local_server(grant=False) as url:
        assert await run_demo(url, out=out) == 1
    assert "还不是平台运营人员" in lines[-1] and "echain admin grant --sim platform-op" in lines[-1]


async def test_a_403_from_an_operator_endpoint_names_the_grant_command(aiohttp_server):
    async def refuse(request: web.Request) -> web.Response:
        error = {"code": "platform_operator_required", "message": "仅平台运营人员可以执行此操作"}
        return web.json_response({"error": error}, status=403)

    app = web.Application()
    app.router.add_post("/api/v1/admin/enterprises/1/review", refuse)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        api = Api(session, str(server.make_url("")))
        try:
            await api.post("/api/v1/admin/enterprises/1/review", "token", {"decision": "approve"})
        except DemoError as exc:
            message = str(exc)
        else:  # pragma: no cover - the request must fail
            raise AssertionError("403 was not reported")
    assert "HTTP 403" in message and "仅平台运营人员可以执行此操作" in message
    assert "echain admin grant --sim platform-op" in message


def test_cli_registers_demo_with_url_and_chat_options():
    args = build_parser().parse_args(["demo", "--url", "http://127.0.0.1:8080"])
    assert args.func is cmd_demo and args.url == "http://127.0.0.1:8080"
    assert not args.chat and args.wechat_token is None and args.wechat_aes_key == "" and args.wechat_sim is None
    plain = build_parser().parse_args(["demo"])
    assert plain.faces is None
    assert build_parser().parse_args(["demo", "--faces", "/tmp/f"]).faces == Path("/tmp/f")
    assert plain.url is None and not plain.chat
    chat = build_parser().parse_args(["demo", "--url", "http://h:8080", "--chat", "--wechat-token", "t",
                                      "--wechat-aes-key", "k", "--wechat-sim", "http://127.0.0.1:8900"])
    assert (chat.chat, chat.wechat_token, chat.wechat_aes_key, chat.wechat_sim) == (True, "t", "k", "http://127.0.0.1:8900")


# ---- `--faces DIR`: our own face check with real photos instead of WeChat's ---------------------------------


@needs_faces
async def test_demo_signs_after_enrolling_and_verifying_real_photos_locally():
    lines, out = _collector()
    assert await run_demo(None, out=out, faces=FACES) == 0, "\n".join(lines)
    text = "\n".join(lines)
    # Each legal representative enrolled from an ID-card portrait and answered a head-turn challenge.
    assert text.count("作身份证人像面登记人脸（服务端只保存加密的 128 维特征）") == 3
    assert text.count("通过人脸核验，取得签署凭证（绑定 financing:1:v1") == 3
    assert "通过微信人脸核身" not in text
    distances = [float(d) for line in lines if "本机比对距离" in line
                 for d in re.search(r"本机比对距离 ([\d. /]+)（阈值 0.5）", line).group(1).split(" / ")]
    assert len(distances) == 9 and all(d < 0.5 for d in distances)
    # Someone else's face held up in the first signer's place was refused by the server.
    impostor = re.search(r"换成 (\S+) 的照片冒签：被拒绝（人脸与录入的本人照片不一致", text)
    assert impostor and impostor.group(1) != "obama"
    assert "资金方 A 法定代表人签署 … 状态：签署中" in text and "核心企业法定代表人签署 … 状态：已签署待放款" in text
    assert "（与平台记录一致）" in text and text.count("签名有效、内容未被修改") == 3


@needs_faces
def test_chosen_frames_turn_the_asked_way_and_are_never_copies():
    from biometric.config import DEFAULT_MIN_FRAME_HASH_DISTANCE, DEFAULT_MIN_YAW_DELTA
    from biometric.pipeline import hamming
    from echain.demo_faces import SEQUENCES, load_album

    album = load_album(FACES)
    assert [k.person for k in album.signers] == ["obama"]  # the only person whose photos turn far enough
    assert set(album.unusable) == {"multi_face", "no_face"}
    kit = album.signers[0]
    for sequence in SEQUENCES:
        frames = kit.frames(sequence)
        assert frames and len(frames) == 3 and all(f.data != kit.reference for f in frames)
        for direction, a, b in zip(sequence, frames, frames[1:], strict=False):
            assert (b.yaw - a.yaw) * (1 if direction == "left" else -1) >= DEFAULT_MIN_YAW_DELTA
        assert all(hamming(a.face_hash, b.face_hash) >= DEFAULT_MIN_FRAME_HASH_DISTANCE
                   for i, a in enumerate(frames) for b in frames[i + 1:])


@needs_faces
async def test_demo_with_a_photo_folder_nobody_can_sign_with_says_why(tmp_path: Path):
    (tmp_path / "coffee").mkdir()
    (tmp_path / "coffee" / "coffee.png").write_bytes((FACES / "no_face" / "coffee.png").read_bytes())  # noqa: ASYNC240
    lines, out = _collector()
    assert await run_demo(None, out=out, faces=tmp_path) == 1
    assert "没有可用于签署演示的人员照片" in lines[-1]
    lines.clear()
    assert await run_demo(None, out=out, faces=tmp_path / "missing") == 1
    assert lines == [f"演示失败：照片目录不存在：{tmp_path / 'missing'}"]
