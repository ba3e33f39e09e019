"""The `echain` command: serve, migrate, makemigrations, admin, ledger, contract (verify), jobs, wechat (menu),
rotate-secret, worker, wechat-sim, demo."""

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

    from echain import logs
    from echain.app import create_app

    logs.configure(settings.log_format)  # JSON lines with request ids in production (ECHAIN_LOG_FORMAT)
    web.run_app(create_app(settings), host=args.host or settings.host, port=args.port or settings.port, access_log=None,
                print=lambda msg: logging.getLogger("echain").info(msg))
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply the pending migrations (adopting a database built before migrations); --check: only compare files."""
    from echain import migrations

    if args.check:
        return asyncio.run(_check_migrations())

    async def work() -> int:
        try:
            outcome = await db.migrate()
        except migrations.MigrationError as exc:
            print(f"迁移失败：{exc}", file=sys.stderr)  # noqa: T201
            return 1
        for name in outcome.adopted:
            print(f"已接管现有数据库：结构与 {name} 一致，记为已执行")  # noqa: T201 - CLI output
        for name in outcome.applied:
            print(f"已执行迁移 {name}")  # noqa: T201
        if not outcome.adopted and not outcome.applied:
            print("没有待执行的迁移")  # noqa: T201
        if await migrations.pending_changes():
            print("警告：模型有改动尚无迁移文件，请运行 echain makemigrations", file=sys.stderr)  # noqa: T201
        print(f"数据库已就绪：{_safe_url(settings.database_url)}")  # noqa: T201
        return 0

    return _with_db(settings, work)


async def _check_migrations() -> int:
    from echain import migrations

    async with migrations.models_loaded():
        changes = await migrations.pending_changes()
    if not changes:
        print("模型与迁移文件一致")  # noqa: T201
        return 0
    print("模型有改动尚无迁移文件（请运行 echain makemigrations 并提交生成的文件）：", file=sys.stderr)  # noqa: T201
    for line in changes:
        print(f"  {line}", file=sys.stderr)  # noqa: T201
    return 1


def cmd_makemigrations(settings: Settings, args: argparse.Namespace) -> int:
    """Write the next migration file from the model changes (no database needed)."""
    from echain import migrations

    async def run() -> int:
        async with migrations.models_loaded():
            paths = await migrations.make_migrations(args.name)
        if not paths:
            print("没有模型改动，无需新迁移")  # noqa: T201
        for path in paths:
            print(f"已生成迁移文件：{path}")  # noqa: T201
        return 0

    return asyncio.run(run())


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


def _read_password(args: argparse.Namespace) -> str | None:
    """A console password from `--password-env VAR` or typed twice at a prompt; never from argv (None: refused)."""
    import getpass
    import os

    if args.password_env:
        password = os.environ.get(args.password_env, "")
        if not password:
            print(f"环境变量 {args.password_env} 未设置或为空", file=sys.stderr)  # noqa: T201
            return None
        return password
    password = getpass.getpass("密码（至少 12 个字符）：")
    if getpass.getpass("再次输入密码：") != password:
        print("两次输入的密码不一致", file=sys.stderr)  # noqa: T201
        return None
    return password


def _console_account(settings: Settings, args: argparse.Namespace, work: Callable[[str], Awaitable[str]],
                     refused: str) -> int:
    """Read the password, run `work(password)` with the database open; print its message or the refusal."""
    from workflow.errors import DomainError

    password = _read_password(args)
    if password is None:
        return 2

    async def run() -> int:
        try:
            message = await work(password)
        except DomainError as exc:
            print(f"{refused}：{exc.message}", file=sys.stderr)  # noqa: T201
            return 1
        print(message)  # noqa: T201
        return 0

    return _with_db(settings, run)


def cmd_admin_create_operator(settings: Settings, args: argparse.Namespace) -> int:
    """Create a console operator; the password comes from a prompt or an environment variable, never argv."""
    from workflow.console_accounts import create_operator

    async def work(password: str) -> str:
        account = await create_operator(args.username, password, args.name or "")
        return f"已创建运营人员 {account.username}（用户 {account.user_id}），可登录 /console"

    return _console_account(settings, args, work, "未能创建")


def cmd_admin_set_password(settings: Settings, args: argparse.Namespace) -> int:
    """Give a console operator a new password; their open console sessions end."""
    from workflow.console_accounts import set_password

    async def work(password: str) -> str:
        account = await set_password(args.username, password)
        return f"已重设运营人员 {account.username} 的密码，其已登录的控制台会话全部失效"

    return _console_account(settings, args, work, "未能重设")


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
    """Check a contract PDF's signatures against the platform CA (the current one and ECHAIN_CA_TRUSTED_CERTS, or
    only the --ca certificates): exit 0 when intact, 1 otherwise."""
    from pathlib import Path

    import signing
    from echain.contract_ca import trusted_ca_pems
    from signing.ca import CAError, load_ca_certificates
    from workflow.financing.esign import report_dict

    try:
        if args.ca:  # an explicit list replaces the configured trust roots
            roots = [cert for name in args.ca for cert in load_ca_certificates(Path(name).read_bytes())]
        else:
            roots = list(trusted_ca_pems(settings))
        data = Path(args.file).read_bytes()
    except (OSError, SettingsError, CAError) as exc:
        print(f"无法读取：{exc}", file=sys.stderr)  # noqa: T201
        return 2
    report = signing.verify(data, roots)
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


def cmd_rotate_secret(settings: Settings, args: argparse.Namespace) -> int:
    """Re-key everything derived from the old master secret (named by --old-secret-env) under ECHAIN_SECRET_KEY."""
    import os

    from echain.redis_conn import open_redis
    from echain.rotation import RotationError, rotate_secret

    old = os.environ.get(args.old_secret_env, "")
    if not old or not os.environ.get("ECHAIN_SECRET_KEY"):
        print(f"请在环境变量中提供旧密钥（{args.old_secret_env}）和新密钥（ECHAIN_SECRET_KEY）；"  # noqa: T201
              "密钥不得出现在命令行参数中", file=sys.stderr)
        return 2

    async def work() -> int:
        async with open_redis(settings.redis_url, settings.data_dir) as redis:
            try:
                report = await rotate_secret(settings, old, redis)
            except RotationError as exc:
                print(f"密钥轮换未开始：{exc}", file=sys.stderr)  # noqa: T201
                return 2
        for t in report.tallies:
            print(f"{t.label}：已轮换 {t.rotated}，已是新密钥 {t.current}，无法解密 {t.unreadable}"  # noqa: T201
                  + (f"（{t.note}）" if t.note else ""))
        if not report.ok:
            print("部分数据用新旧密钥都无法解密，已原样保留；请核对后重新运行", file=sys.stderr)  # noqa: T201
            return 1
        print(f"密钥轮换完成：共 {report.rotated} 项改用新密钥；请以新的 ECHAIN_SECRET_KEY 启动服务和 worker")  # noqa: T201
        return 0

    return _with_db(settings, work)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the job worker (notifications) until interrupted, or with --burst until the queue is empty."""
    from echain import logs
    from echain.worker import run_worker

    logs.configure(settings.log_format)  # each job's lines carry its job id as request_id
    return asyncio.run(run_worker(settings, burst=args.burst))


def cmd_wechat_sim(settings: Settings, args: argparse.Namespace) -> int:
    """Run the WeChat API simulator standalone."""
    from echain import logs
    from wechat.simulator import run_simulator

    logs.configure(settings.log_format)  # same log lines as serve and worker (the compose file runs all three)
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
    mig = sub.add_parser("migrate", help="按顺序执行待执行的迁移文件（旧库自动接管）")
    mig.add_argument("--check", action="store_true", help="只检查模型是否有改动尚无迁移文件（有则退出码 1），不连数据库")
    mig.set_defaults(func=cmd_migrate)
    makemig = sub.add_parser("makemigrations", help="根据模型改动生成下一个迁移文件")
    makemig.add_argument("--name", help="迁移名（默认按时间生成），如 add_console_accounts")
    makemig.set_defaults(func=cmd_makemigrations)
    admin = sub.add_parser("admin", help="管理命令").add_subparsers(dest="admin_command", required=True)
    grant = admin.add_parser("grant", help="将用户设为平台运营人员")
    who = grant.add_mutually_exclusive_group(required=True)
    who.add_argument("openid", nargs="?", help="小程序 openid")
    who.add_argument("--sim", metavar="NAME", help="模拟器登录名（开发环境：sim:NAME 登录的那个人）")
    grant.set_defaults(func=cmd_admin_grant)
    create_op = admin.add_parser("create-operator", help="创建运营控制台账号（密码从提示输入或 --password-env 读取）")
    create_op.add_argument("username", help="登录用户名（3–32 位小写字母、数字或 . _ -）")
    create_op.add_argument("--password-env", metavar="VAR", help="从该环境变量读取密码（密码不走命令行参数）")
    create_op.add_argument("--name", help="显示名称（默认同用户名）")
    create_op.set_defaults(func=cmd_admin_create_operator)
    set_pw = admin.add_parser("set-password", help="重设运营控制台账号的密码（已登录的会话随之失效）")
    set_pw.add_argument("username", help="登录用户名")
    set_pw.add_argument("--password-env", metavar="VAR", help="从该环境变量读取新密码（密码不走命令行参数）")
    set_pw.set_defaults(func=cmd_admin_set_password)
    led = sub.add_parser("ledger", help="账本命令").add_subparsers(dest="ledger_command", required=True)
    led.add_parser("verify", help="校验哈希链").set_defaults(func=cmd_ledger_verify)
    contract = sub.add_parser("contract", help="合同命令").add_subparsers(dest="contract_command", required=True)
    cverify = contract.add_parser("verify", help="验证合同 PDF 的电子签名与完整性（完好退出码 0，否则 1）")
    cverify.add_argument("file", help="合同 PDF 文件")
    cverify.add_argument("--ca", action="append", metavar="PEM",
                         help="信任的平台 CA 证书 PEM，可重复指定；指定后只信任这些证书（默认：ECHAIN_CA_CERT_FILE 或 "
                              "<data dir>/ca/ca_cert.pem，外加 ECHAIN_CA_TRUSTED_CERTS 列出的原 CA 证书）")
    cverify.add_argument("--json", action="store_true", help="以 JSON 输出报告")
    cverify.set_defaults(func=cmd_contract_verify)
    jobs = sub.add_parser("jobs", help="定时任务").add_subparsers(dest="jobs_command", required=True)
    jobs.add_parser("run-due", help="执行到期的定时任务（逾期标记）；可由 cron 每小时调用").set_defaults(func=cmd_jobs_run_due)
    wechat = sub.add_parser("wechat", help="公众号命令").add_subparsers(dest="wechat_command", required=True)
    menu = wechat.add_parser("menu", help="发布 wechat/menu.json 中定义的公众号菜单（menu/create）")
    menu.add_argument("--file", help="菜单 JSON 文件（默认 wechat/menu.json）")
    menu.set_defaults(func=cmd_wechat_menu)
    rotate = sub.add_parser("rotate-secret", help="轮换 ECHAIN_SECRET_KEY：把旧密钥保护的数据改用新密钥（可重复运行）")
    rotate.add_argument("--old-secret-env", required=True, metavar="VAR",
                        help="存放旧密钥的环境变量名（新密钥取自 ECHAIN_SECRET_KEY；密钥不走命令行参数）")
    rotate.set_defaults(func=cmd_rotate_secret)
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
