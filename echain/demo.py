"""`echain demo`: a reference client that drives one financing through the whole lifecycle over HTTP.

By default it starts the server in this process (fresh temporary data directory, embedded defaults);
`--url` points it at a running server instead. Every party is a WeChat simulator login (`sim:<name>`),
every request goes over HTTP with a bearer token, and every POST carries an `Idempotency-Key`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp

from echain.samples import pdf_bytes, png_bytes
from workflow.identifiers import make_resident_id, make_uscc

if TYPE_CHECKING:
    from echain.settings import Settings

Out = Callable[[str], None]

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
OPERATOR = "platform-op"  # the simulator name `echain admin grant --sim` must have made a platform operator
FACE_AMOUNT = "1200000.00"
REQUESTED_AMOUNT = "1000000.00"
TERM_DAYS = 90
CONTRACT_TERMS = {"annual_rate": "0.065", "advance_rate": "0.85", "financing_amount": "1000000.00", "fee_rate": "0.003"}

# Who takes part: key → (simulator name, Chinese role label).
PEOPLE: dict[str, tuple[str, str]] = {
    "platform": (OPERATOR, "平台运营人员"),
    "supplier": ("supplier-admin", "供应商经办人"),
    "supplier_rep": ("supplier-rep", "供应商法定代表人"),
    "core": ("core-op", "核心企业经办人"),
    "approver1": ("core-approver-1", "核心企业审批人甲"),
    "approver2": ("core-approver-2", "核心企业审批人乙"),
    "core_rep": ("core-rep", "核心企业法定代表人"),
    "funder_a": ("funder-a-op", "资金方 A 经办人"),
    "funder_a_rep": ("funder-a-rep", "资金方 A 法定代表人"),
    "funder_b": ("funder-b-op", "资金方 B 经办人"),
}


@dataclass(frozen=True)
class EnterpriseSpec:
    """One enterprise the demo registers: who registers it, its name, roles and legal representative."""

    key: str
    admin: str
    name: str
    roles: tuple[str, ...]
    legal_rep_name: str


ENTERPRISES = (
    EnterpriseSpec("supplier", "supplier", "山东演示供货有限公司", ("supplier",), "王建国"),
    EnterpriseSpec("core", "core", "济南演示核心集团有限公司", ("core",), "刘志强"),
    EnterpriseSpec("funder_a", "funder_a", "齐鲁演示保理有限公司", ("funder",), "陈晓东"),
    EnterpriseSpec("funder_b", "funder_b", "泉城演示商业保理有限公司", ("funder",), "赵丽华"),
)

# Invitations: (enterprise key, person key, member roles).
INVITATIONS = (
    ("supplier", "supplier_rep", ["legal_rep"]),
    ("core", "approver1", ["approver"]),
    ("core", "approver2", ["approver"]),
    ("core", "core_rep", ["legal_rep"]),
    ("funder_a", "funder_a_rep", ["legal_rep"]),
)

ROLE_LABELS = {"legal_rep": "法定代表人", "approver": "审批人", "agent": "授权代理人", "operator": "经办人", "admin": "管理员"}


class DemoError(Exception):
    """A step failed; the message (Chinese) says what and why."""


def grant_hint(base_url: str) -> str:
    """How to make the demo's platform operator on a server the demo did not start."""
    return (f"请先用与 {base_url} 服务相同的 ECHAIN_* 环境变量（即同一数据库）执行："
            f"echain admin grant --sim {OPERATOR}，然后重新运行演示。")


# ---- small pure helpers -------------------------------------------------------------------------------------


def random_uscc() -> str:
    """A valid unified social credit code, random so repeated runs against one server never collide."""
    return make_uscc("91370100" + "".join(secrets.choice("0123456789") for _ in range(9)))


def random_resident_id() -> str:
    """A valid resident ID number (Jinan, born in the 1970s–80s), random per run."""
    born = date(1970, 1, 1) + timedelta(days=secrets.randbelow(7000))
    return make_resident_id(f"370102{born:%Y%m%d}{secrets.randbelow(1000):03d}")


def china_now() -> datetime:
    """The current time in China (UTC+8)."""
    return datetime.now(CHINA_TZ)


def percent(rate: str | None) -> str:
    """A decimal-fraction rate from the API as a percentage ("0.850000" → "85%")."""
    if rate is None:
        return "—"
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}%"


def show_time(iso: str) -> str:
    """An ISO timestamp from the API as China local time."""
    return datetime.fromisoformat(iso).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def error_text(status: int, body: Any, raw: str) -> str:
    """The Chinese message of an API error body, or the raw text when the body is not one."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        text = f"{err.get('message', '')}（{err.get('code', '')}）"
        missing = (err.get("details") or {}).get("missing")
        return text + (f"：{'；'.join(missing)}" if missing else "")
    return raw[:300] or f"HTTP {status}"


# ---- HTTP --------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP answer: status, parsed JSON body and headers."""

    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """The HTTP client: bearer tokens, an Idempotency-Key on every POST, Chinese errors for surprises."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    async def request(self, method: str, path: str, token: str | None = None, *, expect: int = 200,
                      body: Any = None, form: aiohttp.FormData | None = None, key: str | None = None) -> Reply:
        """Send one request; any status other than `expect` raises DemoError with the server's message."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data: Any = form
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body, ensure_ascii=False).encode(), "application/json"
        if method == "POST":
            headers["Idempotency-Key"] = key or str(uuid.uuid4())
        async with self.session.request(method, self.base_url + path, data=data, headers=headers) as resp:
            raw = await resp.text()
            parsed = json.loads(raw) if raw and resp.content_type == "application/json" else None
            reply = Reply(resp.status, parsed, dict(resp.headers))
        if reply.status != expect:
            raise DemoError(self._failure(method, path, reply, raw))
        return reply

    def _failure(self, method: str, path: str, reply: Reply, raw: str) -> str:
        """The message for an unexpected status (with the grant hint when operator rights are missing)."""
        text = f"{method} {path} 返回 HTTP {reply.status}：{error_text(reply.status, reply.body, raw)}"
        code = (reply.body or {}).get("error", {}).get("code") if isinstance(reply.body, dict) else None
        if reply.status == 403 and code == "platform_operator_required":
            text += "\n" + grant_hint(self.base_url)
        return text

    async def get(self, path: str, token: str | None = None) -> Any:
        """GET expecting 200; returns the JSON body."""
        return (await self.request("GET", path, token)).body

    async def post(self, path: str, token: str | None, body: Any = None, *, expect: int = 200) -> Any:
        """POST JSON (fresh Idempotency-Key); returns the JSON body."""
        return (await self.request("POST", path, token, expect=expect, body=body if body is not None else {})).body

    async def upload(self, token: str, enterprise_id: int, kind: str, data: bytes, filename: str) -> int:
        """Upload one document (multipart); returns its id."""
        form = aiohttp.FormData()
        form.add_field("kind", kind)
        form.add_field("file", io.BytesIO(data), filename=filename, content_type="application/octet-stream")
        reply = await self.request("POST", f"/api/v1/enterprises/{enterprise_id}/documents", token, expect=201,
                                   form=form)
        return reply.body["id"]


# ---- the scenario ------------------------------------------------------------------------------------------


@dataclass
class Person:
    """A logged-in simulator user."""

    key: str
    sim_name: str
    label: str
    token: str = ""
    user_id: int = 0


@dataclass
class Demo:
    """The scenario's state and its steps, each returning the tail of its progress line."""

    api: Api
    out: Out
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    people: dict[str, Person] = field(default_factory=dict)
    enterprises: dict[str, dict[str, Any]] = field(default_factory=dict)
    financing: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    disbursement_key: str = ""
    disbursement_request: dict[str, Any] = field(default_factory=dict)

    def steps(self) -> list[tuple[str, Callable[[], Any]]]:
        """The scenario in order: (progress title, step)."""
        return [
            ("各方通过微信模拟器登录", self.log_in_everyone),
            ("四家企业注册入驻并通过平台审核", self.onboard_enterprises),
            ("企业管理员邀请法定代表人和审批人加入", self.invite_members),
            ("供应商上传发票与贸易合同并发起融资", self.submit_financing),
            ("核心企业领用", lambda: self.act("core", "claim", expect="claimed")),
            ("审批人甲同意确权", lambda: self.act("approver1", "approve", {"comment": "贸易背景真实"}, expect="claimed")),
            ("审批人乙同意确权", lambda: self.act("approver2", "approve", {"comment": "同意"}, expect="confirmed")),
            ("平台将资产分配给资金方 A、B", self.allocate),
            ("资金方 B 谢绝认购", lambda: self.act("funder_b", "decline", {"reason": "本月额度已满"}, expect="allocated")),
            ("资金方 A 认购", lambda: self.act("funder_a", "subscribe", expect="subscribed")),
            ("平台出具保理合同", self.issue_contract),
            ("资金方 A 法定代表人签署", lambda: self.sign("funder_a_rep", expect="signing")),
            ("供应商法定代表人签署", lambda: self.sign("supplier_rep", expect="signing")),
            ("核心企业法定代表人签署", lambda: self.sign("core_rep", expect="signed")),
            ("资金方 A 上传放款凭证并放款", self.disburse),
            ("重复提交同一放款请求（相同 Idempotency-Key）", self.replay_disburse),
            ("供应商确认收款", lambda: self.act("supplier", "confirm_receipt", expect="received")),
            ("核心企业到期登记还款", self.report_repayment),
            ("资金方 A 确认还款", lambda: self.act("funder_a", "confirm_repayment", expect="repaid")),
            ("平台运营人员校验账本哈希链", self.verify_ledger),
        ]

    async def run(self) -> None:
        """Run every step, printing one numbered progress line each."""
        steps = self.steps()
        for number, (title, step) in enumerate(steps, start=1):
            try:
                tail = await step()
            except DemoError as exc:
                raise DemoError(f"第 {number}/{len(steps)} 步（{title}）出错：{exc}") from exc
            self.out(f"[{number:2d}/{len(steps)}] {title} … {tail}")
            for note in self.notes:
                self.out(f"        · {note}")
            self.notes.clear()

    def detail(self, text: str) -> None:
        """An indented detail line printed under the current step's progress line."""
        self.notes.append(text)

    def person(self, key: str) -> Person:
        """A participant by key."""
        return self.people[key]

    # -- steps ---------------------------------------------------------------------------------------------

    async def log_in_everyone(self) -> str:
        """Log every participant in with a simulator code; check the operator really is one."""
        for key, (name, label) in PEOPLE.items():
            sim_name = name if key == "platform" else f"demo-{self.tag}-{name}"
            body = await self.api.post("/api/v1/auth/login", None, {"code": f"sim:{sim_name}"})
            self.people[key] = Person(key, sim_name, label, body["token"], body["user"]["id"])
        me = await self.api.get("/api/v1/me", self.person("platform").token)
        if not me["user"]["is_platform_operator"]:
            raise DemoError(f"“sim:{OPERATOR}”还不是平台运营人员。\n{grant_hint(self.api.base_url)}")
        return f"{len(self.people)} 人已登录（平台运营、供应商 2 人、核心企业 4 人、资金方 3 人）"

    async def onboard_enterprises(self) -> str:
        """Register, document, confirm and submit each enterprise; the operator approves it."""
        for spec in ENTERPRISES:
            e = await self.onboard(spec)
            self.enterprises[spec.key] = e
            self.detail(f"{e['name']}（ID {e['id']}，统一社会信用代码 {e['uscc']}）：{e['status_label']}")
        return "状态：4 家均已审核通过"

    async def onboard(self, spec: EnterpriseSpec) -> dict[str, Any]:
        """One enterprise from registration to approval."""
        token, op = self.person(spec.admin).token, self.person("platform").token
        body = {"name": f"{spec.name}（{self.tag}）", "uscc": random_uscc(), "legal_rep_name": spec.legal_rep_name,
                "legal_rep_id": random_resident_id(), "contact_name": "李四", "contact_phone": "13800138000",
                "business_roles": list(spec.roles)}
        e = await self.api.post("/api/v1/enterprises", token, body, expect=201)
        if e["kyc_outcome"] != "match":
            raise DemoError(f"{e['name']} 四要素核验未通过（{e['kyc_outcome']}）")
        for kind in ("business_license", "id_card_front", "id_card_back"):
            await self.api.upload(token, e["id"], kind, png_bytes(), f"{kind}.png")
        await self.api.post(f"/api/v1/enterprises/{e['id']}/confirm", token)
        e = await self.api.post(f"/api/v1/enterprises/{e['id']}/submit", token)
        self.expect_enterprise(e, "pending_review")
        e = await self.api.post(f"/api/v1/admin/enterprises/{e['id']}/review", op, {"decision": "approve"})
        self.expect_enterprise(e, "approved")
        return e

    async def invite_members(self) -> str:
        """Each enterprise admin issues invitation codes; the invited people accept them."""
        for enterprise_key, person_key, roles in INVITATIONS:
            e, admin = self.enterprises[enterprise_key], self.person(self.admin_of(enterprise_key))
            invitation = await self.api.post(f"/api/v1/enterprises/{e['id']}/invitations", admin.token,
                                             {"roles": roles}, expect=201)
            invitee = self.person(person_key)
            member = await self.api.post("/api/v1/invitations/accept", invitee.token, {"code": invitation["code"]})
            role_text = "、".join(ROLE_LABELS.get(r, r) for r in member["roles"])
            self.detail(f"{invitee.label} 凭邀请码加入 {e['name']}，角色：{role_text}")
        return f"状态：{len(INVITATIONS)} 名成员已加入"

    async def submit_financing(self) -> str:
        """The supplier uploads the invoice and trade contract and applies for financing."""
        supplier = self.person("supplier")
        sid = self.enterprises["supplier"]["id"]
        invoice = await self.api.upload(supplier.token, sid, "invoice", pdf_bytes("invoice"), "发票.pdf")
        contract = await self.api.upload(supplier.token, sid, "trade_contract", pdf_bytes("trade contract"), "贸易合同.pdf")
        body = {"supplier_id": sid, "core_id": self.enterprises["core"]["id"],
                "invoice_no": f"INV-{self.tag.upper()}-0001", "contract_no": f"HT-{self.tag.upper()}-2024-018",
                "face_amount": FACE_AMOUNT, "requested_amount": REQUESTED_AMOUNT,
                "due_date": (china_now().date() + timedelta(days=TERM_DAYS)).isoformat(),
                "attachment_ids": [invoice, contract]}
        f = await self.api.post("/api/v1/financings", supplier.token, body, expect=201)
        self.record(f, "submitted")
        self.detail(f"融资编号 {f['id']}：票面 {f['face_amount']} 元，申请 {f['requested_amount']} 元，到期日 {f['due_date']}")
        return self.state()

    async def act(self, who: str, action: str, body: dict[str, Any] | None = None, *, expect: str) -> str:
        """One financing action by one person; checks the resulting status."""
        f = await self.api.post(self.action_path(action), self.person(who).token, body)
        self.record(f, expect)
        if action == "claim":
            return f"{self.state()}（票面 {f['face_amount']} 元，需 {f['approvals_required']} 名不同审批人同意）"
        if action == "approve":
            return f"{self.state()}（已同意 {f['approval_count']}/{f['approvals_required']}）"
        return self.state()

    async def allocate(self) -> str:
        """The platform offers the confirmed asset to both funders."""
        ids = [self.enterprises["funder_a"]["id"], self.enterprises["funder_b"]["id"]]
        return await self.act("platform", "allocate", {"funder_ids": ids}, expect="allocated")

    async def issue_contract(self) -> str:
        """The platform writes the final terms into contract version 1."""
        tail = await self.act("platform", "issue_contract", CONTRACT_TERMS, expect="contract_issued")
        f = self.financing
        self.detail(f"合同第 {f['contract']['version']} 版：融资金额 {f['financing_amount']} 元，年化利率 "
                    f"{percent(CONTRACT_TERMS['annual_rate'])}，融资比例 {percent(CONTRACT_TERMS['advance_rate'])}，"
                    f"手续费率 {percent(CONTRACT_TERMS['fee_rate'])}")
        return tail

    async def sign(self, who: str, *, expect: str) -> str:
        """A legal representative signs the current contract version."""
        version = self.financing["contract"]["version"]
        return await self.act(who, "sign", {"contract_version": version}, expect=expect)

    def disburse_body(self, voucher_id: int) -> dict[str, Any]:
        """The disbursement: exactly the financed amount, with the voucher, a moment ago."""
        return {"amount": self.financing["financing_amount"], "bank_reference": f"BANK{self.tag.upper()}000123",
                "disbursed_at": (china_now() - timedelta(seconds=2)).isoformat(), "voucher_document_id": voucher_id}

    async def disburse(self) -> str:
        """The funder uploads the bank voucher and records the payment (the key is kept for the replay)."""
        funder = self.person("funder_a")
        voucher = await self.api.upload(funder.token, self.enterprises["funder_a"]["id"], "voucher",
                                        pdf_bytes("bank voucher"), "放款回单.pdf")
        self.disbursement_key, self.disbursement_request = str(uuid.uuid4()), self.disburse_body(voucher)
        reply = await self.api.request("POST", self.action_path("disburse"), funder.token,
                                       body=self.disbursement_request, key=self.disbursement_key)
        self.record(reply.body, "disbursed")
        m = self.financing["money"]
        self.detail(f"放款 {self.financing['disbursement']['amount']} 元，计息 {m['days']} 天，利息 {m['interest']} 元")
        return self.state()

    async def replay_disburse(self) -> str:
        """Send the disbursement again with the same key: the answer is replayed, nothing is paid twice."""
        reply = await self.api.request("POST", self.action_path("disburse"), self.person("funder_a").token,
                                       body=self.disbursement_request, key=self.disbursement_key)
        if reply.headers.get("Idempotent-Replayed") != "true":
            raise DemoError("重复的放款请求没有被识别为重放（缺少响应头 Idempotent-Replayed: true）")
        f = await self.api.get(f"/api/v1/financings/{self.financing['id']}", self.person("funder_a").token)
        payments = [t for t in f["timeline"] if t["action"] == "disburse"]
        if len(payments) != 1 or f["status"] != "disbursed":
            raise DemoError(f"重复请求后放款记录有 {len(payments)} 条、状态为 {f['status_label']}，应为 1 条且未变")
        self.record(f, "disbursed")
        return (f"响应头 Idempotent-Replayed: true，返回首次结果；放款记录仍为 1 条"
                f"（{f['disbursement']['amount']} 元），未重复放款")

    async def report_repayment(self) -> str:
        """At maturity the core enterprise reports paying the total due."""
        total = self.financing["money"]["total_due"]
        body = {"amount": total, "paid_at": (china_now() - timedelta(seconds=1)).isoformat()}
        tail = await self.act("core", "report_repayment", body, expect="repayment_reported")
        return f"{tail}（还款 {total} 元）"

    async def verify_ledger(self) -> str:
        """The operator recomputes the whole hash chain."""
        result = await self.api.get("/api/v1/admin/ledger/verification", self.person("platform").token)
        self.ledger = result
        if not result["ok"]:
            raise DemoError(f"账本校验失败：第 {result['bad_seq']} 条记录有问题：{result['reason']}")
        return f"账本校验通过：共 {result['entries']} 条记录"

    # -- helpers -------------------------------------------------------------------------------------------

    def admin_of(self, enterprise_key: str) -> str:
        """The person who registered (and administers) an enterprise."""
        return next(spec.admin for spec in ENTERPRISES if spec.key == enterprise_key)

    def action_path(self, action: str) -> str:
        """The endpoint of an action on the demo's financing."""
        return f"/api/v1/financings/{self.financing['id']}/actions/{action}"

    def record(self, f: dict[str, Any], expect: str) -> None:
        """Keep the latest financing view; fail when it is not in the expected status."""
        self.financing = f
        self.labels[f["status"]] = f["status_label"]
        if f["status"] != expect:
            raise DemoError(f"融资 {f['id']} 的状态应为 {self.labels.get(expect, expect)}，实际为 {f['status_label']}")

    def expect_enterprise(self, e: dict[str, Any], status: str) -> None:
        """Fail when an enterprise is not in the expected onboarding status."""
        if e["status"] != status:
            missing = "；".join(e.get("missing_for_review") or [])
            raise DemoError(f"{e['name']} 的状态应为 {status}，实际为 {e['status_label']}{'：' + missing if missing else ''}")

    def state(self) -> str:
        """The progress line's tail: the financing's current status."""
        return f"状态：{self.financing['status_label']}"

    # -- summary -------------------------------------------------------------------------------------------

    async def summary(self) -> None:
        """Print the final figures, the timeline and the ledger result."""
        f = await self.api.get(f"/api/v1/financings/{self.financing['id']}", self.person("supplier").token)
        m = f["money"]
        lines = [
            "",
            "======== 演示完成：一笔融资走完全流程 ========",
            f"融资编号：{f['id']}    当前状态：{f['status_label']}",
            f"资产方：{f['supplier']['name']}  核心企业：{f['core']['name']}  资金方：{f['funder']['name']}",
            f"票面金额：{f['face_amount']} 元    申请金额：{f['requested_amount']} 元    融资金额：{f['financing_amount']} 元",
            f"年化利率：{percent(m['annual_rate'])}    融资比例：{percent(m['advance_rate'])}",
            f"计息期间：{m['disbursed_on']} 至 {m['due_date']}，共 {m['days']} 天    利息：{m['interest']} 元",
            f"手续费：{m['fee']} 元（费率 {percent(m['fee_rate'])}）    应还总额：{m['total_due']} 元",
            f"计息规则：{m['convention']}",
            "时间线：",
            *(self.timeline_line(t) for t in f["timeline"]),
            f"账本：共 {self.ledger['entries']} 条记录，哈希链{'校验通过' if self.ledger['ok'] else '校验失败'}",
        ]
        for line in lines:
            self.out(line)

    def timeline_line(self, t: dict[str, Any]) -> str:
        """One timeline entry: local time, label, who acted, resulting status."""
        to = self.labels.get(t["to_state"] or "", t["to_state"] or "—")
        return f"  {show_time(t['at'])}  {t['label']}（{self.actor_label(t['actor'])}）→ {to}"

    def actor_label(self, actor: str) -> str:
        """A ledger actor ("user:7") as the demo participant's role label."""
        by_id = {f"user:{p.user_id}": p.label for p in self.people.values()}
        return by_id.get(actor, "系统" if actor == "system" else actor)


# ---- running ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def local_server(*, grant: bool = True) -> AsyncIterator[str]:
    """The server in this process on a free port, with a fresh temporary data directory; yields its URL."""
    from aiohttp import web

    from echain import db
    from echain.app import create_app
    from echain.settings import Settings
    from wechat.simulator import SIM_MINIAPP_ID, openid_of
    from workflow.accounts import grant_operator

    with tempfile.TemporaryDirectory(prefix="echain-demo-", ignore_cleanup_errors=True) as tmp:
        settings = Settings.from_env({"ECHAIN_DATA_DIR": tmp}).with_dev_secret()
        async with db.database(settings.database_url):
            await db.migrate()
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()  # runs the app's startup: the ORM, Redis and the WeChat simulator are open after this
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            if grant:  # what `echain admin grant --sim platform-op` does, straight through the open ORM
                await grant_operator(openid_of(OPERATOR, settings.miniapp_app_id or SIM_MINIAPP_ID))
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def check_reachable(api: Api) -> None:
    """Fail early, in Chinese, when no echain server answers at the URL."""
    try:
        await api.request("GET", "/healthz")
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise DemoError(f"无法连接到 echain 服务 {api.base_url}：{exc or type(exc).__name__}。"
                        "请确认服务已启动（echain serve）且地址正确。") from exc


async def drive(base_url: str, out: Out, request_timeout: float) -> int:
    """Run the scenario against a server; 0 on success, 1 (after a Chinese message) on any failure."""
    client_timeout = aiohttp.ClientTimeout(total=request_timeout, connect=min(request_timeout, 5))
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        api = Api(session, base_url)
        demo = Demo(api, out)
        try:
            await check_reachable(api)
            await demo.run()
            await demo.summary()
        except DemoError as exc:
            out(f"演示失败：{exc}")
            return 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            out(f"演示失败：与服务 {base_url} 的通信中断：{exc or type(exc).__name__}")
            return 1
    return 0


async def run_demo(base_url: str | None, out: Out = print, *, request_timeout: float = 30) -> int:
    """Drive one financing through the whole lifecycle; in-process server unless `base_url` is given."""
    if base_url:
        out(f"连接已运行的服务：{base_url}（平台运营人员须已通过 echain admin grant --sim {OPERATOR} 授权）")
        return await drive(base_url, out, request_timeout)
    async with local_server() as url:
        out(f"已在本进程内启动临时服务：{url}（临时数据目录，嵌入式 SQLite 与 Redis，微信接口模拟器）")
        return await drive(url, out, request_timeout)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """`echain demo [--url URL]`: exit code 0 when the whole lifecycle went through."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # keep the demo's own lines readable
    return asyncio.run(run_demo(args.url))
