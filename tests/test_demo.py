"""`echain demo`: the reference client drives one financing through the whole lifecycle over HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from echain.cli import build_parser
from echain.demo import Api, Demo, DemoError, cmd_demo, local_server, run_demo


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


def test_cli_registers_demo_with_url_option():
    args = build_parser().parse_args(["demo", "--url", "http://127.0.0.1:8080"])
    assert args.func is cmd_demo and args.url == "http://127.0.0.1:8080"
    assert build_parser().parse_args(["demo"]).url is None
