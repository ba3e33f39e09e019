"""`echain demo`: a reference client that drives one financing through the whole lifecycle over HTTP.

By default it starts the server in this process (fresh temporary data directory, embedded defaults);
`--url` points it at a running server instead. Every party is a WeChat simulator login (`sim:<name>`),
every request goes over HTTP with a bearer token, and every POST carries an `Idempotency-Key`.

`--chat` adds a second financing that the supplier's staff member applies for in the Official Account chat:
the demo plays WeChat's side of the callback `/wechat` (signed pushes, AES-encrypted in safe mode), puts the
material photos into the WeChat simulator for `media/get`, and the core enterprise confirms it through the
API after being notified. Whenever the simulator is reachable the demo ends with the notifications WeChat
received (subscribe and template messages); in-process it runs the notification jobs itself (arq, burst).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import itertools
import json
import re
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from echain.samples import pdf_bytes, png_bytes
from workflow.identifiers import make_resident_id, make_uscc

if TYPE_CHECKING:
    from aiohttp import web

    from echain.demo_faces import Album, Shot
    from echain.settings import Settings

Out = Callable[[str], None]

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
OPERATOR = "platform-op"  # the simulator name `echain admin grant --sim` must have made a platform operator
FACE_AMOUNT = "1200000.00"
REQUESTED_AMOUNT = "1000000.00"
TERM_DAYS = 90
CONTRACT_TERMS = {"annual_rate": "0.065", "advance_rate": "0.85", "financing_amount": "1000000.00", "fee_rate": "0.003"}
# The financing applied for in chat: at most 1,000,000 yuan face, so one approver confirms it.
CHAT_FACE_AMOUNT = "500,000.00"  # typed the way people type it; the bot accepts thousands separators
CHAT_REQUESTED_AMOUNT = "400000"
CHAT_TERM_DAYS = 60

DEV_WECHAT_TOKEN = "echain-dev-token"  # what a dev server uses when WECHAT_TOKEN is unset
OA_ACCOUNT = "gh_echaindemo01"  # the Official Account's original id (ToUserName of every push)
SUBSCRIBE_ACCEPTANCES = 3  # each person taps “允许” this often: enough for every notice the demo causes
PHOTO_WAIT_SECONDS = 15  # how long to keep answering “完成” while the bot still downloads photos
NOTICE_WAIT_SECONDS = 6  # --url: how long to wait for that server's worker to send a notice
CHANNELS = {"subscribe": "小程序订阅消息", "template": "公众号模板消息"}

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

# The signers in the contract's order (funder → supplier → core); with `--faces` the n-th takes the n-th person.
SIGNERS = ("funder_a_rep", "supplier_rep", "core_rep")
FACE_THRESHOLD = 0.5  # the server's default ECHAIN_FACE_MATCH_THRESHOLD, shown next to the local distances

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

    async def download(self, path: str, token: str) -> bytes:
        """GET a file (e.g. the signed contract PDF) expecting 200; returns its bytes."""
        async with self.session.get(self.base_url + path, headers={"Authorization": f"Bearer {token}"}) as resp:
            data = await resp.read()
            if resp.status != 200:
                raise DemoError(f"GET {path} 返回 HTTP {resp.status}：{data[:300].decode('utf-8', 'replace')}")
        return data

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


# ---- WeChat's side: the Official Account callback and the simulator ----------------------------------------


def plain_chat(text: str) -> str:
    """A chat reply for the console: mini-program text links shown as “text［page path］”."""
    return re.sub(r'<a [^>]*data-miniprogram-path="([^"]*)"[^>]*>(.*?)</a>', r"\2［\1］", text)


class OfficialAccount:
    """Pushes to the callback `/wechat` exactly as WeChat does: signed URL, XML body, AES-encrypted in safe mode."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str, aes_key: str = "",
                 app_id: str = "") -> None:
        from bot import crypto

        self.session = session
        self.url = base_url.rstrip("/") + "/wechat"
        self.token = token
        self.app_id = app_id
        self.crypto = crypto.MessageCrypto(aes_key, app_id) if aes_key else None
        self._msg_ids = itertools.count(7_000_000_000_000_000_000 + secrets.randbelow(10**15))
        self._created = 0

    @property
    def safe_mode(self) -> bool:
        """True when pushes are encrypted (the server has an EncodingAESKey)."""
        return self.crypto is not None

    def _message(self, openid: str, msg_type: str, fields: dict[str, Any]) -> str:
        from bot.wirexml import cdata

        # Events are deduplicated by sender + CreateTime, so two events of one person never share a second.
        self._created = max(int(time.time()), self._created + 1)
        message = {"ToUserName": OA_ACCOUNT, "FromUserName": openid, "CreateTime": self._created,
                   "MsgType": msg_type, **fields}
        if msg_type != "event":
            message["MsgId"] = next(self._msg_ids)
        body = "".join(f"<{k}>{v if isinstance(v, int) else cdata(str(v))}</{k}>" for k, v in message.items())
        return f"<xml>{body}</xml>"

    async def push(self, openid: str, msg_type: str, **fields: Any) -> str | None:
        """Post one message or event; the text of the passive reply, None when the server answered "success"."""
        from bot import signing, wirexml

        xml = self._message(openid, msg_type, fields)
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        query = {"signature": signing.signature(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        if self.crypto is not None:
            encrypt = self.crypto.encrypt(xml)
            xml = (f"<xml><ToUserName>{wirexml.cdata(OA_ACCOUNT)}</ToUserName>"
                   f"<Encrypt>{wirexml.cdata(encrypt)}</Encrypt></xml>")
            query |= {"encrypt_type": "aes", "msg_signature": signing.signature(self.token, timestamp, nonce, encrypt)}
        async with self.session.post(self.url, params=query, data=xml.encode(),
                                     headers={"Content-Type": "text/xml"}) as resp:
            status, text = resp.status, await resp.text()
        if status != 200:
            raise DemoError(self._refused(status, text))
        if text == "success":
            return None
        reply = wirexml.parse(text.encode())
        if self.crypto is not None:
            expected = signing.signature(self.token, reply.get("TimeStamp", ""), reply.get("Nonce", ""),
                                         reply.get("Encrypt", ""))
            if not signing.matches(expected, reply.get("MsgSignature", "")):
                raise DemoError("公众号回调的加密回复签名不正确")
            reply = wirexml.parse(self.crypto.decrypt(reply["Encrypt"]).encode())
        return reply.get("Content", "")

    def _refused(self, status: int, text: str) -> str:
        """Why the callback refused a push, with what to pass the demo."""
        hint = {
            404: "该服务的公众号回调未开启（WECHAT_TOKEN 为空）",
            403: "签名校验未通过：请用 --wechat-token 传入该服务的 WECHAT_TOKEN",
            400: ("该服务启用了安全模式，请用 --wechat-aes-key 传入其 WECHAT_AES_KEY" if "safe mode" in text
                  else "消息格式不被接受"),
        }.get(status, "")
        return f"POST /wechat 返回 HTTP {status}：{text[:200]}" + (f"（{hint}）" if hint else "")


class Simulator:
    """The WeChat API simulator's `/sim/*` helpers (not part of WeChat's API): media, quotas, delivered messages."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        async with self.session.request(method, self.base_url + path, **kw) as resp:
            raw = await resp.text()
            if resp.status != 200:
                raise DemoError(f"微信接口模拟器 {method} {path} 返回 HTTP {resp.status}：{raw[:200]}")
            return json.loads(raw)

    async def reachable(self) -> bool:
        """True when a simulator answers at the base URL."""
        try:
            body = await self._call("GET", "/sim/openid", params={"name": "echain-demo-probe"})
        except (DemoError, ValueError, TimeoutError, aiohttp.ClientError):
            return False
        return isinstance(body, dict) and "openid" in body

    async def openid(self, name: str) -> str:
        """The mini-program openid of simulator person `name`."""
        return (await self._call("GET", "/sim/openid", params={"name": name}))["openid"]

    async def add_media(self, data: bytes, content_type: str, filename: str) -> str:
        """Store a photo as WeChat does when a follower sends one; returns its media_id."""
        params = {"content_type": content_type, "filename": filename}
        return (await self._call("POST", "/sim/media", params=params, data=data))["media_id"]

    async def interacted(self, openid: str) -> None:
        """The follower wrote to the Official Account: WeChat opens its 48 h customer-service window."""
        await self._call("POST", "/sim/user-interaction", json={"openid": openid})

    async def accept_subscribe(self, openid: str, template_id: str, count: int) -> None:
        """The person tapped “允许” `count` times in wx.requestSubscribeMessage (WeChat's side of the count)."""
        await self._call("POST", "/sim/subscribe-accept",
                         json={"openid": openid, "template_id": template_id, "count": count})

    async def face_verify(self, verify_id: str, verify_ret: int = 10000) -> None:
        """The person finished wx.requestFacialVerify with `verify_ret` (10000: passed)."""
        await self._call("POST", "/sim/face-verify", json={"verify_id": verify_id, "verify_ret": verify_ret})

    async def messages(self, openid: str | None = None) -> list[dict[str, Any]]:
        """Messages WeChat accepted (all, or those to `openid`), oldest first."""
        params = {"openid": openid} if openid else {}
        return (await self._call("GET", "/sim/messages", params=params))["messages"]


@dataclass
class WeChatSide:
    """How the demo reaches WeChat's side of a server: callback credentials, simulator, notification jobs."""

    token: str = DEV_WECHAT_TOKEN
    aes_key: str = ""
    app_id: str = ""  # the Official Account's AppID (part of every safe-mode ciphertext)
    simulator_url: str | None = None
    run_jobs: Callable[[], Awaitable[None]] | None = None  # in-process: run the queued notification jobs


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
    chat: bool = False  # add the financing applied for in the Official Account chat
    oa: OfficialAccount | None = None  # set when `chat`
    sim: Simulator | None = None  # the WeChat simulator, when reachable
    run_jobs: Callable[[], Awaitable[None]] | None = None  # in-process: the notification jobs, after every step
    chat_financing: dict[str, Any] = field(default_factory=dict)
    oa_openid: str = ""
    recipients: dict[str, str] = field(default_factory=dict)  # openid → the person's label
    sim_mark: int = 0  # messages the simulator held before the demo began
    faces: Album | None = None  # `--faces DIR`: signers enroll and pass the head-turn check with real photos

    def steps(self) -> list[tuple[str, Callable[[], Any]]]:
        """The scenario in order: (progress title, step)."""
        chat: list[tuple[str, Callable[[], Any]]] = [
            ("供应商经办人关注公众号并用绑定码关联小程序账号", self.chat_bind),
            ("供应商经办人在公众号对话中发起融资（两张材料照片）", self.chat_submit),
            ("核心企业领用对话发起的融资", lambda: self.chat_act("core", "claim", expect="claimed")),
            ("审批人甲收到通知，打开确权页面同意确权", self.chat_approve),
            ("供应商经办人在公众号查询进度", self.chat_query),
        ]
        return [
            ("各方通过微信模拟器登录", self.log_in_everyone),
            ("四家企业注册入驻并通过平台审核", self.onboard_enterprises),
            ("企业管理员邀请法定代表人和审批人加入", self.invite_members),
            *(chat if self.chat else []),
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
                if self.run_jobs is not None:  # what `echain worker` does next to a real server
                    await self.run_jobs()
            except DemoError as exc:
                raise DemoError(f"第 {number}/{len(steps)} 步（{title}）出错：{exc}") from exc
            self.out(f"[{number:2d}/{len(steps)}] {title} … {tail}")
            for note in self.notes:
                self.out(note)
            self.notes.clear()

    def detail(self, text: str) -> None:
        """An indented detail line printed under the current step's progress line."""
        self.notes.append(f"        · {text}")

    def detail_block(self, first: str, text: str) -> None:
        """A detail whose text spans several lines (a chat reply), continuation lines indented under it."""
        head, *rest = text.splitlines() or [""]
        self.detail(first + head)
        self.notes.extend(f"            {line}" for line in rest)

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
        if self.sim is not None:
            await self.allow_notifications()
        return f"{len(self.people)} 人已登录（平台运营、供应商 2 人、核心企业 4 人、资金方 3 人）"

    async def allow_notifications(self) -> None:
        """Everyone taps “允许” on the mini-program's subscribe request (the chat supplier relies on the OA)."""
        assert self.sim is not None
        self.sim_mark = len(await self.sim.messages())
        for p in self.people.values():
            self.recipients[await self.sim.openid(p.sim_name)] = p.label
        templates = (await self.api.get("/api/v1/notifications/subscriptions", self.person("platform").token))
        if not templates["template_ids"]:
            self.detail("该服务未配置订阅消息模板（ECHAIN_SUBSCRIBE_TEMPLATE_ID）：通知只能经公众号模板消息发送")
            return
        template_id = templates["template_ids"][0]
        allowing = [p for p in self.people.values() if not (self.chat and p.key == "supplier")]
        for p in allowing:
            await self.sim.accept_subscribe(await self.sim.openid(p.sim_name), template_id, SUBSCRIBE_ACCEPTANCES)
            for _ in range(SUBSCRIBE_ACCEPTANCES):  # the mini-program reports each wx.requestSubscribeMessage
                await self.api.post("/api/v1/notifications/subscriptions", p.token,
                                    {"template_ids": [template_id], "accepted": [template_id]})
        self.detail(f"{len(allowing)} 人在小程序中各允许 {SUBSCRIBE_ACCEPTANCES} 次订阅消息（模板 {template_id}）")
        if self.chat:
            self.detail(f"{self.person('supplier').label}未允许订阅消息：绑定公众号后，通知改经公众号模板消息送达")

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

    # -- the chat path -------------------------------------------------------------------------------------

    async def say(self, text: str, *, full: bool = False) -> str:
        """The supplier's staff member types `text` in the Official Account; returns (and shows) the reply."""
        reply = await self.push("text", Content=text)
        self.detail(f"用户：{text}")
        self.show_reply(reply, full=full)
        if reply is None:
            raise DemoError(f"公众号没有回复“{text}”")
        return reply

    async def push(self, msg_type: str, **fields: Any) -> str | None:
        """One push from the follower; WeChat opens the 48 h customer-service window on every interaction."""
        assert self.oa is not None and self.sim is not None
        await self.sim.interacted(self.oa_openid)
        return await self.oa.push(self.oa_openid, msg_type, **fields)

    def show_reply(self, reply: str | None, *, full: bool = False, source: str = "公众号") -> None:
        """A reply as detail lines: all of it when short or `full`, else its first line."""
        if reply is None:
            self.detail(f"{source}：success（不回复，稍后处理）")
            return
        text = plain_chat(reply)
        if full or text.count("\n") < 3:
            self.detail_block(f"{source}：", text)
        else:
            head, _, rest = text.partition("\n")
            self.detail(f"{source}：{head}{' …' if rest else ''}")

    def expect_reply(self, reply: str, wanted: str) -> None:
        """Fail when the bot's reply does not contain `wanted`."""
        if wanted not in reply:
            raise DemoError(f"公众号的回复中没有“{wanted}”：{plain_chat(reply)[:300]}")

    async def chat_bind(self) -> str:
        """Follow the Official Account, then link it to the mini-program account with a one-time code."""
        from wechat.simulator import SIM_APP_ID, openid_of

        supplier = self.person("supplier")
        self.oa_openid = openid_of(supplier.sim_name, (self.oa.app_id if self.oa else "") or SIM_APP_ID)
        self.recipients[self.oa_openid] = f"{supplier.label}（公众号）"
        welcome = await self.push("event", Event="subscribe")
        self.detail("用户：关注公众号")
        self.show_reply(welcome)
        if welcome is None or "已关联您的小程序账号" not in welcome:
            code = (await self.api.post("/api/v1/wechat/binding-code", supplier.token, expect=201))["code"]
            self.detail(f"小程序“我的 → 绑定公众号”显示绑定码 {code}（10 分钟内有效，仅可使用一次）")
            self.expect_reply(await self.say(f"绑定 {code}"), "绑定成功")
        mode = "安全模式：消息经 AES 加密" if self.oa is not None and self.oa.safe_mode else "明文模式"
        return f"已关联小程序账号（公众号回调 /wechat，{mode}）"

    async def chat_submit(self) -> str:
        """发起融资 by chat: core enterprise, invoice, contract, amounts, due date, two photos, review, confirm."""
        assert self.sim is not None
        reply = await self.say("发起融资")
        core_name = self.enterprises["core"]["name"]
        number = self.choice_number(reply, core_name)
        if number is None:  # a long list on a shared server: narrow it by name
            number = self.choice_number(await self.say(core_name), core_name)
        if number is None:
            raise DemoError(f"公众号给出的核心企业列表中没有 {core_name}")
        self.expect_reply(await self.say(number), "发票号码")
        due = (china_now().date() + timedelta(days=CHAT_TERM_DAYS)).isoformat()
        answers = ((f"INV-{self.tag.upper()}-0002", "贸易合同编号"), (f"HT-{self.tag.upper()}-2024-027", "票面金额"),
                   (CHAT_FACE_AMOUNT, "到期日"), (due, "申请融资金额"), (CHAT_REQUESTED_AMOUNT, "材料照片"))
        for answer, asks in answers:
            self.expect_reply(await self.say(answer), asks)
        before = len(await self.sim.messages(self.oa_openid))
        for seq, (filename, data) in enumerate((("发票照片.png", png_bytes(3, 2)), ("合同照片.png", png_bytes(2, 3))), 1):
            media_id = await self.sim.add_media(data, "image/png", filename)
            reply = await self.push("image", PicUrl=f"http://mmbiz.qpic.cn/demo/{seq}", MediaId=media_id)
            self.detail(f"用户：[照片 {filename}]（media_id {media_id[:12]}…，公众号经 media/get 下载）")
            self.show_reply(reply)
        review = await self.finish_photos()
        for message in (await self.sim.messages(self.oa_openid))[before:]:
            if message["kind"] == "custom":
                self.show_reply(message["payload"]["text"]["content"], source="公众号（客服消息）")
        self.detail("用户：完成")
        self.show_reply(review, full=True)
        self.expect_reply(review, "材料照片：2 张")
        done = await self.say("确认", full=True)
        found = re.search(r"编号：(\d+)", done)
        if found is None:
            raise DemoError(f"融资申请未提交：{plain_chat(done)[:300]}")
        f = await self.api.get(f"/api/v1/financings/{found.group(1)}", self.person("supplier").token)
        self.keep_chat(f, "submitted")
        files = "、".join(f"{a['filename']}（{a['kind']}）" for a in f["attachments"])
        return f"状态：{f['status_label']}（融资编号 {f['id']}，附件：{files}）"

    @staticmethod
    def choice_number(reply: str, name: str) -> str | None:
        """The number the bot's list gives `name`, if listed."""
        found = re.search(rf"^(\d+)\. {re.escape(name)}$", reply, re.MULTILINE)
        return found.group(1) if found else None

    async def finish_photos(self) -> str:
        """Answer “完成” until the bot has stored every photo (it downloads them after answering)."""
        deadline = time.monotonic() + PHOTO_WAIT_SECONDS
        while True:
            reply = await self.push("text", Content="完成")
            if reply is None or "正在接收" not in reply or time.monotonic() > deadline:
                if reply is None:
                    raise DemoError("公众号没有回复“完成”")
                return reply
            await asyncio.sleep(0.2)

    def keep_chat(self, f: dict[str, Any], expect: str) -> None:
        """Keep the latest view of the chat financing; fail when it is not in the expected status."""
        self.chat_financing = f
        self.labels[f["status"]] = f["status_label"]
        if f["status"] != expect:
            raise DemoError(f"融资 {f['id']} 的状态应为 {self.labels.get(expect, expect)}，实际为 {f['status_label']}")

    async def chat_act(self, who: str, action: str, body: dict[str, Any] | None = None, *, expect: str) -> str:
        """One action on the chat financing, through the API (what the mini-program page does)."""
        path = f"/api/v1/financings/{self.chat_financing['id']}/actions/{action}"
        f = await self.api.post(path, self.person(who).token, body)
        self.keep_chat(f, expect)
        if action == "claim":
            return f"状态：{f['status_label']}（票面 {f['face_amount']} 元，需 {f['approvals_required']} 名审批人同意）"
        return f"状态：{f['status_label']}"

    async def chat_approve(self) -> str:
        """The approver opens the page the notice links to and confirms the receivable."""
        fid = self.chat_financing["id"]
        page = f"pages/financing/detail?id={fid}&action=approve"
        notice = await self.notice_to("approver1", page)
        approver = self.person("approver1")
        if notice is not None:
            channel, data = CHANNELS[notice["kind"]], notice["payload"].get("data", {})
            todo = data.get("thing4", {}).get("value", "")
            self.detail(f"{approver.label}收到{channel}「{todo}」，点开进入 {page}")
        elif self.run_jobs is not None:
            raise DemoError(f"{approver.label}没有收到打开 {page} 的通知")
        else:
            self.detail(f"{NOTICE_WAIT_SECONDS} 秒内未在模拟器中看到给{approver.label}的通知（该服务的 echain worker 是否在运行？）")
        view = await self.api.get(f"/api/v1/financings/{fid}", approver.token)
        offered = [a for a in view["next_actions"] if a["action"] == "approve"]
        if not offered:
            raise DemoError(f"确权页面没有为{approver.label}提供“审批同意”")
        self.detail(f"页面显示：{view['status_label']}，可办理“{offered[0]['label']}”")
        return await self.chat_act("approver1", "approve", {"comment": "贸易背景真实"}, expect="confirmed")

    async def notice_to(self, who: str, page: str) -> dict[str, Any] | None:
        """The subscribe or template message that reached the person opening `page` (waits for a remote worker)."""
        assert self.sim is not None
        openids = {openid for openid, label in self.recipients.items() if label == self.person(who).label}
        deadline = time.monotonic() + (0 if self.run_jobs is not None else NOTICE_WAIT_SECONDS)
        while True:
            for message in (await self.sim.messages())[self.sim_mark:]:
                if message["touser"] in openids and notice_page(message) == page:
                    return message
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.3)

    async def chat_query(self) -> str:
        """查询 <编号> in chat shows the state the API just reached."""
        fid = self.chat_financing["id"]
        reply = await self.say(f"查询 {fid}", full=True)
        self.expect_reply(reply, f"状态：{self.chat_financing['status_label']}")
        return f"公众号显示：{self.chat_financing['status_label']}"

    # -- the API path ---------------------------------------------------------------------------------------

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
        """A legal representative passes a face check for the current contract version, then signs it."""
        version = self.financing["contract"]["version"]
        ref = f"financing:{self.financing['id']}:v{version}"
        ticket = await (self.photo_face_ticket(who, ref) if self.faces else self.face_ticket(who, ref))
        return await self.act(who, "sign", {"contract_version": version, "face_ticket": ticket}, expect=expect)

    async def face_ticket(self, who: str, contract_ref: str) -> str:
        """WeChat's face verification (人脸核身) as the mini-program runs it: consent, session, the person's
        wx.requestFacialVerify (the simulator passes it), the server's verdict → a one-time signing ticket."""
        p = self.person(who)
        if self.sim is None:
            raise DemoError("签署前须通过人脸核验，演示用微信人脸核身完成，需要能连接该服务所用的微信接口模拟器"
                            "（--wechat-sim），或用 --faces 指定照片目录在本机比对")
        enterprise_id = self.enterprises[self.enterprise_of(who)]["id"]
        await self.face_consent(p)
        session = await self.api.post("/api/v1/biometrics/wechat/sessions", p.token,
                                      {"enterprise_id": enterprise_id, "purpose": "sign_contract",
                                       "contract_ref": contract_ref}, expect=201)
        await self.sim.face_verify(session["verify_id"])
        result = await self.api.post("/api/v1/biometrics/wechat/verifications", p.token,
                                     {"verify_id": session["verify_id"]}, expect=201)
        self.detail(f"{p.label}通过微信人脸核身，取得签署凭证（绑定 {result['contract_ref']}，{result['expires_in']} 秒内有效，仅可使用一次）")
        return result["ticket"]

    async def face_consent(self, p: Person) -> dict[str, Any]:
        """The separate consent to face processing (PIPL), given before the first check; the person's standing."""
        status = await self.api.get("/api/v1/biometrics/me", p.token)
        if status["consent"] is None:
            await self.api.post("/api/v1/biometrics/consent", p.token, {"version": status["consent_version"]},
                                expect=201)
        return status

    async def photo_face_ticket(self, who: str, contract_ref: str) -> str:
        """Our own face check with real photos (`--faces`): enrollment from the ID-card portrait, then the
        server's random head-turn challenge answered with the person's photos; the first signer is also shown
        being refused when someone else's face is held up."""
        assert self.faces is not None
        p, kit = self.person(who), self.faces.signer(SIGNERS.index(who))
        status = await self.face_consent(p)
        if status["template"] is None:
            enterprise = self.enterprise_of(who)
            admin = self.person(self.admin_of(enterprise))
            card = await self.api.upload(admin.token, self.enterprises[enterprise]["id"], "id_card_front",
                                         kit.reference, "身份证人像面.jpg")
            await self.api.post("/api/v1/biometrics/enrollment", p.token, {"document_id": card}, expect=201)
            self.detail(f"{p.label}以 {kit.reference_label} 作身份证人像面登记人脸（服务端只保存加密的 128 维特征）")
        impostor = self.faces.impostor_for(kit, 3) if who == SIGNERS[0] else None
        if impostor is not None:
            refused = await self.answer_challenge(p, impostor.any_frames(3) or [], contract_ref, expect=403)
            self.detail(f"换成 {impostor.person} 的照片冒签：被拒绝（{refused['error']['message']}）")
        challenge = await self.api.post("/api/v1/biometrics/liveness/challenges", p.token, expect=201)
        frames = kit.frames(challenge["sequence"])
        if frames is None:
            raise DemoError(f"{kit.person} 的照片组不成动作指令 {challenge['sequence']} 要求的转头序列")
        result = await self.answer_challenge(p, frames, contract_ref, challenge=challenge, expect=201)
        self.detail(f"活体动作「{challenge['instructions']}」：依次提交 {'、'.join(f.label for f in frames)}；"
                    f"本机比对距离 {' / '.join(f'{f.distance:.3f}' for f in frames)}（阈值 {FACE_THRESHOLD}）")
        self.detail(f"{p.label}通过人脸核验，取得签署凭证（绑定 {result['contract_ref']}，{result['expires_in']} 秒内有效，仅可使用一次）")
        return result["ticket"]

    async def answer_challenge(self, p: Person, frames: list[Shot], contract_ref: str, *,
                               challenge: dict[str, Any] | None = None, expect: int) -> Any:
        """Upload frames for a (new unless given) head-turn challenge; the verification's JSON body."""
        challenge = challenge or await self.api.post("/api/v1/biometrics/liveness/challenges", p.token, expect=201)
        form = aiohttp.FormData()
        for name, value in (("challenge_id", challenge["challenge_id"]), ("purpose", "sign_contract"),
                            ("contract_ref", contract_ref)):
            form.add_field(name, value)
        for i, frame in enumerate(frames):
            form.add_field("file", io.BytesIO(frame.data), filename=f"frame{i}.jpg", content_type="image/jpeg")
        return (await self.api.request("POST", "/api/v1/biometrics/verifications", p.token, expect=expect,
                                       form=form)).body

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

    @staticmethod
    def enterprise_of(person_key: str) -> str:
        """The enterprise an invited member joined."""
        return next(e for e, key, _ in INVITATIONS if key == person_key)

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
            *await self.contract_lines(f["contract"]),
        ]
        if self.chat_financing:
            c = self.chat_financing
            lines.append(f"公众号对话发起的融资：编号 {c['id']}，票面 {c['face_amount']} 元，申请 {c['requested_amount']} 元，"
                         f"当前状态：{c['status_label']}")
        for line in lines:
            self.out(line)

    async def contract_lines(self, contract: dict[str, Any]) -> list[str]:
        """Save the signed contract PDF and report its verification (each signature, the file's integrity)."""
        token = self.person("supplier").token
        pdf = await self.api.download(contract["pdf_path"], token)
        path = Path(tempfile.gettempdir()) / f"echain-demo-contract-{self.financing['id']}-v{contract['version']}.pdf"
        await asyncio.to_thread(path.write_bytes, pdf)
        report = await self.api.get(contract["verification_path"], token)
        lines = [f"已签署的保理合同：{path}（{len(pdf)} 字节，SHA-256 {report['sha256'][:16]}…）",
                 f"合同验签：{report['summary']}（与平台记录{'一致' if report['matches_record'] else '不一致'}）"]
        lines += [f"  · {s['field']}：{s['signer']}（{s['organization']}），{s['signed_at']}，"
                  f"{'签名有效、内容未被修改' if s['ok'] else '；'.join(s['problems']) or s['summary']}"
                  for s in report["signatures"]]
        return lines

    async def list_notifications(self, unavailable: str = "") -> None:
        """The subscribe and template messages WeChat accepted during the demo: to whom, template, page."""
        self.out("")
        self.out("======== 消息通知（微信接口模拟器收到的订阅消息与模板消息）========")
        if self.sim is None:
            self.out(unavailable)
            return
        if self.run_jobs is None:  # another process (that server's `echain worker`) sends them: let it catch up
            await self.settle()
        notices = [m for m in (await self.sim.messages())[self.sim_mark:] if m["kind"] in CHANNELS]
        if not notices:
            self.out("没有发出通知。" + ("" if self.run_jobs is not None else
                                        "请确认该服务的 echain worker 正在运行，且与服务使用同一个 WECHAT_API_BASE。"))
            return
        for number, m in enumerate(notices, start=1):
            data = {k: v.get("value", "") for k, v in (m["payload"].get("data") or {}).items()}
            who = self.recipients.get(m["touser"], f"其他用户（{m['touser'][:10]}…）")
            self.out(f"  {number:2d}. {who} ← {CHANNELS[m['kind']]}（模板 {m['payload'].get('template_id', '')}）"
                     f"融资 #{data.get('character_string1', '?')}「{data.get('thing4', '')}」 页面 {notice_page(m)}")
        by_channel = "，".join(f"{label} {sum(m['kind'] == kind for m in notices)} 条" for kind, label in CHANNELS.items())
        if self.run_jobs is not None:
            self.out(f"共 {len(notices)} 条（{by_channel}），本进程内的通知作业（arq worker，burst 模式）在每一步之后发送。")
            return
        self.out(f"共 {len(notices)} 条（{by_channel}），由该服务的 echain worker 发送。worker 只提醒当前该办的人："
                 "若它处理某次变化时融资已进入下一状态，这条过时的通知就不再发送，所以演示快速推进时会少于每步一条。")

    async def settle(self) -> None:
        """Wait until the simulator has received nothing new for a second (at most NOTICE_WAIT_SECONDS)."""
        assert self.sim is not None
        deadline, count, quiet_since = time.monotonic() + NOTICE_WAIT_SECONDS, -1, time.monotonic()
        while time.monotonic() < deadline:
            now_count = len(await self.sim.messages())
            if now_count != count:
                count, quiet_since = now_count, time.monotonic()
            elif time.monotonic() - quiet_since >= 1:
                return
            await asyncio.sleep(0.25)

    def timeline_line(self, t: dict[str, Any]) -> str:
        """One timeline entry: local time, label, who acted, resulting status."""
        to = self.labels.get(t["to_state"] or "", t["to_state"] or "—")
        return f"  {show_time(t['at'])}  {t['label']}（{self.actor_label(t['actor'])}）→ {to}"

    def actor_label(self, actor: str) -> str:
        """A ledger actor ("user:7") as the demo participant's role label."""
        by_id = {f"user:{p.user_id}": p.label for p in self.people.values()}
        return by_id.get(actor, "系统" if actor == "system" else actor)


def notice_page(message: dict[str, Any]) -> str:
    """The mini-program page a delivered subscribe or template message opens."""
    payload = message["payload"]
    return payload.get("page") or (payload.get("miniprogram") or {}).get("pagepath", "")


# ---- running ------------------------------------------------------------------------------------------------


@dataclass
class LocalServer:
    """The in-process server: its URL and the running app (settings, Redis, the simulator)."""

    url: str
    app: web.Application


@asynccontextmanager
async def local_app(*, grant: bool = True) -> AsyncIterator[LocalServer]:
    """The server in this process on a free port, with a fresh temporary data directory.

    The Official Account callback runs in safe mode (a fresh EncodingAESKey), as production should.
    """
    from aiohttp import web

    from echain import db
    from echain.app import create_app
    from echain.settings import Settings
    from wechat.simulator import SIM_MINIAPP_ID, openid_of
    from workflow.accounts import grant_operator

    with tempfile.TemporaryDirectory(prefix="echain-demo-", ignore_cleanup_errors=True) as tmp:
        aes_key = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")  # 43 characters, like the console's
        settings = Settings.from_env({"ECHAIN_DATA_DIR": tmp, "WECHAT_AES_KEY": aes_key}).with_dev_secret()
        async with db.database(settings.database_url):
            await db.migrate()
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()  # runs the app's startup: the ORM, Redis and the WeChat simulator are open after this
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            if grant:  # what `echain admin grant --sim platform-op` does, straight through the open ORM
                await grant_operator(openid_of(OPERATOR, settings.miniapp_app_id or SIM_MINIAPP_ID))
            yield LocalServer(f"http://127.0.0.1:{port}", app)
        finally:
            await runner.cleanup()


@asynccontextmanager
async def local_server(*, grant: bool = True) -> AsyncIterator[str]:
    """The in-process server (see `local_app`); yields its URL."""
    async with local_app(grant=grant) as local:
        yield local.url


def notify_jobs(app: web.Application) -> Callable[[], Awaitable[None]]:
    """Runs every queued notification job once, as `echain worker --burst` would, on the app's Redis and simulator."""
    from arq import Worker
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    from echain.keys import HTTP, REDIS, SETTINGS, WECHAT_BASE
    from echain.worker import wechat_credentials, worker_options
    from notify.delivery import Notifier
    from notify.messages import NotifyConfig
    from wechat.client import RedisTokenCache, WeChatClient

    settings, base, redis = app[SETTINGS], app[WECHAT_BASE], app[REDIS]
    (mini_id, mini_secret), (oa_id, oa_secret) = wechat_credentials(settings)
    cache = RedisTokenCache.for_api(redis, base)
    notifier = Notifier(redis, WeChatClient(app[HTTP], base, mini_id, mini_secret, token_cache=cache),
                        WeChatClient(app[HTTP], base, oa_id, oa_secret, token_cache=cache),
                        NotifyConfig.from_settings(settings))

    async def run() -> None:
        # A pool of its own: the worker closes its pool when it stops, the app keeps using its client.
        pool = redis.connection_pool
        queue = ArqRedis(pool_or_conn=ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs))
        worker = Worker(**worker_options(), redis_pool=queue, burst=True, handle_signals=False, poll_delay=0.01,
                        ctx={"notifier": notifier})
        try:
            await asyncio.wait_for(worker.async_run(), 60)
        finally:
            await worker.close()
        if worker.jobs_failed:
            raise DemoError(f"{worker.jobs_failed} 个通知作业失败")

    return run


async def check_reachable(api: Api) -> None:
    """Fail early, in Chinese, when no echain server answers at the URL."""
    try:
        await api.request("GET", "/healthz")
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise DemoError(f"无法连接到 echain 服务 {api.base_url}：{exc or type(exc).__name__}。"
                        "请确认服务已启动（echain serve）且地址正确。") from exc


async def connect_wechat(demo: Demo, session: aiohttp.ClientSession, wechat: WeChatSide) -> str:
    """Give the demo the simulator and the callback it can use; returns why notifications cannot be listed."""
    if wechat.simulator_url:
        sim = Simulator(session, wechat.simulator_url)
        demo.sim = sim if await sim.reachable() else None
    if demo.sim is None:
        reason = (f"无法连接微信接口模拟器 {wechat.simulator_url}" if wechat.simulator_url
                  else "未指定微信接口模拟器（--wechat-sim）")
        if demo.chat:
            demo.out(f"{reason}：跳过公众号对话部分（对话中的照片要先放入模拟器，公众号才能经 media/get 下载）。")
            demo.chat = False
        return (f"{reason}，跳过通知列表。通知由该服务的 echain worker 发往它的 WECHAT_API_BASE；"
                "若那是 echain wechat-sim，用 --wechat-sim 传入同一地址即可在此列出。")
    if demo.chat:
        from wechat.simulator import SIM_APP_ID

        demo.oa = OfficialAccount(session, demo.api.base_url, wechat.token, wechat.aes_key, wechat.app_id or SIM_APP_ID)
    return ""


async def drive(base_url: str, out: Out, request_timeout: float, *, chat: bool = False,
                wechat: WeChatSide | None = None, faces: Album | None = None) -> int:
    """Run the scenario against a server; 0 on success, 1 (after a Chinese message) on any failure."""
    wechat = wechat or WeChatSide()
    client_timeout = aiohttp.ClientTimeout(total=request_timeout, connect=min(request_timeout, 5))
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        api = Api(session, base_url)
        demo = Demo(api, out, chat=chat, run_jobs=wechat.run_jobs, faces=faces)
        try:
            await check_reachable(api)
            unavailable = await connect_wechat(demo, session, wechat)
            await demo.run()
            await demo.summary()
            await demo.list_notifications(unavailable)
        except DemoError as exc:
            out(f"演示失败：{exc}")
            return 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            out(f"演示失败：与服务 {base_url} 的通信中断：{exc or type(exc).__name__}")
            return 1
    return 0


async def load_faces(folder: Path, out: Out) -> Album | None:
    """Analyse the `--faces` photo folder (in a thread: dlib) and say who will sign with which photos."""
    from echain.demo_faces import FacesError, load_album

    try:
        album = await asyncio.to_thread(load_album, folder, FACE_THRESHOLD)
    except FacesError as exc:
        out(f"演示失败：{exc}")
        return None
    people = "、".join(album.signer(i).person for i in range(len(SIGNERS)))
    out(f"人脸照片目录 {folder}：{len(album.signers)} 人的照片可组成转头动作序列，三位法定代表人依次使用 {people} "
        f"的照片（在本机与服务端比对，不经微信人脸核身）")
    if len(album.signers) < len(SIGNERS):
        out("  · 可用人数少于签署人数，部分法定代表人沿用同一人的照片（各自独立登记，互不影响）")
    if album.others:
        out(f"  · 照片组不成转头动作序列的人员（用作冒签者）：{'、'.join(k.person for k in album.others)}")
    if album.unusable:
        out(f"  · 没有单人正脸照、无法登记的目录：{'、'.join(album.unusable)}")
    return album


async def run_demo(base_url: str | None, out: Out = print, *, request_timeout: float = 30, chat: bool = False,
                   wechat_token: str | None = None, wechat_aes_key: str = "", wechat_sim: str | None = None,
                   faces: Path | None = None) -> int:
    """Drive one financing through the whole lifecycle (and with `chat` a second one applied for by chat);
    in-process server unless `base_url` is given; with `faces`, signers verify with real photos locally."""
    album = await load_faces(faces, out) if faces else None
    if faces and album is None:
        return 1
    if base_url:
        out(f"连接已运行的服务：{base_url}（平台运营人员须已通过 echain admin grant --sim {OPERATOR} 授权）")
        wechat = WeChatSide(token=wechat_token or DEV_WECHAT_TOKEN, aes_key=wechat_aes_key, simulator_url=wechat_sim)
        return await drive(base_url, out, request_timeout, chat=chat, wechat=wechat, faces=album)
    from bot.context import oa_credentials
    from echain.keys import SETTINGS, WECHAT_BASE

    async with local_app() as local:
        settings = local.app[SETTINGS]
        wechat = WeChatSide(token=settings.wechat_token, aes_key=settings.wechat_aes_key,
                            app_id=oa_credentials(settings)[0], simulator_url=local.app[WECHAT_BASE],
                            run_jobs=notify_jobs(local.app))
        out(f"已在本进程内启动临时服务：{local.url}（临时数据目录，嵌入式 SQLite 与 Redis，"
            f"微信接口模拟器 {wechat.simulator_url}）")
        return await drive(local.url, out, request_timeout, chat=chat, wechat=wechat, faces=album)


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `echain demo`."""
    parser.add_argument("--url", help="已运行服务的地址（默认在本进程内启动临时服务）")
    parser.add_argument("--chat", action="store_true",
                        help="另演示一笔由供应商经办人在公众号对话中发起的融资（经 /wechat 回调，照片经模拟器 media/get）")
    parser.add_argument("--wechat-token", help=f"仅 --url：该服务的 WECHAT_TOKEN（默认开发值 {DEV_WECHAT_TOKEN}）")
    parser.add_argument("--wechat-aes-key", default="", help="仅 --url：该服务的 WECHAT_AES_KEY（安全模式时必需）")
    parser.add_argument("--wechat-sim", help="仅 --url：该服务 WECHAT_API_BASE 所指的微信接口模拟器地址"
                                             "（echain wechat-sim，默认端口 8900）；用于对话照片和列出通知")
    parser.add_argument("--faces", type=Path, metavar="DIR",
                        help="人脸照片目录（每人一个子目录）：签署人用真实照片登记并通过转头活体核验，"
                             "在本机比对，不经微信人脸核身")


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """`echain demo [--url URL] [--chat] …`: exit code 0 when everything went through."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # keep the demo's own lines readable
    return asyncio.run(run_demo(args.url, chat=args.chat, wechat_token=args.wechat_token,
                                wechat_aes_key=args.wechat_aes_key, wechat_sim=args.wechat_sim, faces=args.faces))
