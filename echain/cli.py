"""The `echain` command: serve, migrate, admin, ledger, contract (verify), jobs, wechat (menu), worker, wechat-sim, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from echain import db
from echain.settings import Settings, SettingsError


def _with_db(settings: Settings, work: Callable[[], Awaitable[int]]) -> int:
    async def run() -> int:
        async with db.database(settings.database_url):
            return await work()

    return asyncio.run(run())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Serve HTTP until interrupted."""
    from aiohttp import web

    from echain.app import create_app

    web.run_app(create_app(settings), host=args.host or settings.host, port=args.port or settings.port, access_log=None,
                print=lambda msg: logging.getLogger("echain").info(msg))
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Bring the database schema up to date."""

    async def work() -> int:
        await db.migrate()
        print(f"数据库已就绪：{_safe_url(settings.database_url)}")  # noqa: T201 - CLI output
        return 0

    return _with_db(settings, work)


def cmd_admin_grant(settings: Settings, args: argparse.Namespace) -> int:
    """Make a person a platform operator."""
    from wechat.simulator import SIM_MINIAPP_ID, openid_of
    from workflow.accounts import grant_operator

    openid = args.openid or openid_of(args.sim, settings.miniapp_app_id or SIM_MINIAPP_ID)

    async def work() -> int:
        user = await grant_operator(openid)
        print(f"已将用户 {user.id} 设为平台运营人员")  # noqa: T201
        return 0

    return _with_db(settings, work)


def cmd_ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Check the whole hash chain; exit 1 naming the first bad entry."""
    from workflow import ledger

    async def work() -> int:
        result = await ledger.verify()
        if result.ok:
            print(f"账本校验通过：共 {result.entries} 条记录")  # noqa: T201
            return 0
        print(f"账本校验失败：第 {result.bad_seq} 条记录有问题：{result.reason}", file=sys.stderr)  # noqa: T201
        return 1

    return _with_db(settings, work)


def cmd_contract_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Check a contract PDF's signatures against the platform CA: exit 0 when intact, 1 otherwise."""
    from pathlib import Path

    import signing
    from echain.contract_ca import ca_certificate_pem
    from workflow.financing.esign import report_dict

    try:
        ca_cert = Path(args.ca).read_bytes() if args.ca else ca_certificate_pem(settings)
        data = Path(args.file).read_bytes()
    except (OSError, SettingsError) as exc:
        print(f"无法读取：{exc}", file=sys.stderr)  # noqa: T201
        return 2
    report = signing.verify(data, ca_cert)
    if args.json:
        import json

        print(json.dumps(report_dict(report), ensure_ascii=False, indent=2))  # noqa: T201
    else:
        print(f"文件 {args.file}  SHA-256 {report.sha256}")  # noqa: T201
        for s in report.signatures:
            at = s.signed_at.isoformat() if s.signed_at else "未知时间"
            state = "完好" if s.ok else ("被篡改" if not s.intact or not s.valid else "未通过校验")
            print(f"  {s.field_name}: {s.signer_name or '?'}（{s.signer_organization or '?'}） {at}  {state}")  # noqa: T201
        if report.unsigned_fields:
            print(f"  未签署：{'、'.join(report.unsigned_fields)}")  # noqa: T201
        verdict = "完整" if report.intact else ("已被篡改" if report.tampered else "未通过校验")
        print(f"结论：{verdict}——{report.summary}")  # noqa: T201
    return 0 if report.intact else 1


def cmd_jobs_run_due(settings: Settings, args: argparse.Namespace) -> int:
    """Run the time-driven transitions that are due (marking overdue financings)."""
    from workflow.financing.scheduler import mark_overdue_due
    from workflow.financing.transition import china_today

    async def work() -> int:
        moved = await mark_overdue_due(china_today(), settings.overdue_grace_days)
        print(f"定时任务完成：{moved} 笔融资标记为逾期（宽限期 {settings.overdue_grace_days} 天）")  # noqa: T201
        return 0

    return _with_db(settings, work)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the job worker (notifications) until interrupted, or with --burst until the queue is empty."""
    from echain.worker import run_worker

    return asyncio.run(run_worker(settings, burst=args.burst))


def cmd_wechat_sim(settings: Settings, args: argparse.Namespace) -> int:
    """Run the WeChat API simulator standalone."""
    from wechat.simulator import run_simulator

    run_simulator(host=args.host, port=args.port)
    return 0


def cmd_wechat_menu(settings: Settings, args: argparse.Namespace) -> int:
    """Publish wechat/menu.json (or --file) as the Official Account menu through menu/create."""
    from pathlib import Path

    import aiohttp

    from bot.context import oa_credentials
    from bot.menu import MENU_FILE, load_menu, publish
    from wechat import simulator
    from wechat.client import WeChatClient, WeChatError

    async def run() -> int:
        menu = load_menu(Path(args.file) if args.file else MENU_FILE)
        runner, base = None, settings.wechat_api_base
        if settings.uses_wechat_simulator:  # dev: nothing to publish to but the in-process simulator
            runner, base, _ = await simulator.start_simulator()
        try:
            async with aiohttp.ClientSession() as session:
                await publish(WeChatClient(session, base, *oa_credentials(settings)), menu)
        except WeChatError as exc:
            print(f"菜单发布失败：{exc.errcode} {exc.errmsg}", file=sys.stderr)  # noqa: T201
            return 1
        finally:
            if runner is not None:
                await runner.cleanup()
        where = "微信接口模拟器（未配置 WECHAT_API_BASE）" if runner is not None else "公众号"
        print(f"已发布菜单到{where}：{len(menu['button'])} 个一级菜单")  # noqa: T201
        return 0

    return asyncio.run(run())


def _safe_url(url: str) -> str:
    # Never print a password that may sit in the URL.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="echain", description="echain 供应链金融平台后端")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="启动 HTTP 服务")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="创建或升级数据库结构").set_defaults(func=cmd_migrate)
    admin = sub.add_parser("admin", help="管理命令").add_subparsers(dest="admin_command", required=True)
    grant = admin.add_parser("grant", help="将用户设为平台运营人员")
    who = grant.add_mutually_exclusive_group(required=True)
    who.add_argument("openid", nargs="?", help="小程序 openid")
    who.add_argument("--sim", metavar="NAME", help="模拟器登录名（开发环境：sim:NAME 登录的那个人）")
    grant.set_defaults(func=cmd_admin_grant)
    led = sub.add_parser("ledger", help="账本命令").add_subparsers(dest="ledger_command", required=True)
    led.add_parser("verify", help="校验哈希链").set_defaults(func=cmd_ledger_verify)
    contract = sub.add_parser("contract", help="合同命令").add_subparsers(dest="contract_command", required=True)
    cverify = contract.add_parser("verify", help="验证合同 PDF 的电子签名与完整性（完好退出码 0，否则 1）")
    cverify.add_argument("file", help="合同 PDF 文件")
    cverify.add_argument("--ca", help="平台 CA 证书 PEM（默认：ECHAIN_CA_CERT_FILE 或 <data dir>/ca/ca_cert.pem）")
    cverify.add_argument("--json", action="store_true", help="以 JSON 输出报告")
    cverify.set_defaults(func=cmd_contract_verify)
    jobs = sub.add_parser("jobs", help="定时任务").add_subparsers(dest="jobs_command", required=True)
    jobs.add_parser("run-due", help="执行到期的定时任务（逾期标记）；可由 cron 每小时调用").set_defaults(func=cmd_jobs_run_due)
    wechat = sub.add_parser("wechat", help="公众号命令").add_subparsers(dest="wechat_command", required=True)
    menu = wechat.add_parser("menu", help="发布 wechat/menu.json 中定义的公众号菜单（menu/create）")
    menu.add_argument("--file", help="菜单 JSON 文件（默认 wechat/menu.json）")
    menu.set_defaults(func=cmd_wechat_menu)
    worker = sub.add_parser("worker", help="运行后台任务进程（消息通知），从 Redis 队列取任务")
    worker.add_argument("--burst", action="store_true", help="队列清空后即退出")
    worker.set_defaults(func=cmd_worker)
    sim = sub.add_parser("wechat-sim", help="独立运行微信接口模拟器")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8900)
    sim.set_defaults(func=cmd_wechat_sim)
    from echain.demo import cmd_demo, demo_arguments  # light module: the server loads on demand

    demo = sub.add_parser("demo", help="演示：以各方身份通过 HTTP 走完一笔融资的全流程（--chat：另一笔经公众号对话发起）")
    demo_arguments(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `echain` command."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"配置错误：{exc}", file=sys.stderr)  # noqa: T201
        return 2
    return args.func(settings, args)


if __name__ == "__main__":
    sys.exit(main())
