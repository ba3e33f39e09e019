"""A local stand-in for WeChat's server-side HTTP API (api.weixin.qq.com).

WeChat cannot be reached from development and CI machines, so this aiohttp app speaks the same
URLs, parameters and JSON shapes (errcode/errmsg) as the real API. ``wechat.client.WeChatClient``
talks to it exactly as it talks to WeChat in production; only the base URL differs.

Everything the simulator knows lives in one ``SimulatorState`` object. Tests may drive it
directly (``state.add_subscribe_quota(...)``, ``state.calls_to(path)``) or over HTTP through the
``/sim/...`` helper endpoints, which are not part of WeChat's API.

New WeChat endpoints (e.g. face verification) are added by appending ``ApiRoute`` entries to
``API_ROUTES`` or passing ``extra_routes`` to ``create_simulator_app``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

from aiohttp import BodyPartReader, web

logger = logging.getLogger(__name__)

# Default credentials used when the product runs without real WeChat credentials.
SIM_APP_ID = "wxsim0000000000oa"
SIM_APP_SECRET = "simsecret0000000000000000000oa00"
SIM_MINIAPP_ID = "wxsim00000000mini"
SIM_MINIAPP_SECRET = "simsecret00000000000000000mini00"

AppKind = Literal["official_account", "miniapp"]

# access_token lifetime; both token APIs document "有效期目前为 2 个小时" (7200 s).
TOKEN_TTL = 7200
# getStableAccessToken: "普通模式下平台会提前 5 分钟更新 access_token", so expires_in is always >= 300.
STABLE_EARLY_REFRESH = 300
# getStableAccessToken: "强制刷新模式每天限用 20 次且需间隔 30 秒" (otherwise "不会刷新").
FORCE_REFRESH_INTERVAL = 30
FORCE_REFRESH_DAILY_LIMIT = 20
# wx.login: "code 有效期为 5 分钟，且只能使用一次".
LOGIN_CODE_TTL = 300
# Dev convenience: js_code "sim:<name>" logs in as <name> any number of times.
SIM_CODE_PREFIX = "sim:"
# Mini-program customer-service rules: after the user sends a message, at most 5 messages within 48 h
# (the Official Account allowance used to be 20; we simulate the stricter mini-program one).
INTERACTION_WINDOW = 48 * 3600
CUSTOM_MESSAGES_PER_INTERACTION = 5
# Temporary media: "临时素材 media_id 是可复用的 ... 3 天内有效".
MEDIA_TTL = 3 * 86400

CUSTOM_MSG_TYPES = frozenset(
    {
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "mpnews",
        "mpnewsarticle",
        "msgmenu",
        "wxcard",
        "miniprogrampage",
        "link",
    }
)
MENU_BUTTON_TYPES = frozenset(
    {
        "click",
        "view",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
        "media_id",
        "article_id",
        "article_view_limited",
        "miniprogram",
    }
)


class ApiError(Exception):
    """A WeChat-style error: rendered as {"errcode", "errmsg"} with HTTP 200, as WeChat does."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    def body(self) -> dict[str, Any]:
        """Return the JSON body WeChat would send for this error."""
        return {"errcode": self.errcode, "errmsg": self.errmsg}


# Error constructors for codes used in several places (messages copied from WeChat's global return codes).
def _invalid_token() -> ApiError:
    return ApiError(40001, "invalid credential, access_token is invalid or not latest")


def _bad_json() -> ApiError:
    return ApiError(47001, "data format error")


def _unauthorized() -> ApiError:
    return ApiError(48001, "api unauthorized")


@dataclass
class AppCredential:
    """One registered WeChat account (Official Account or mini program)."""

    app_id: str
    secret: str
    kind: AppKind


@dataclass
class IssuedToken:
    """An access_token the simulator handed out."""

    token: str
    app_id: str
    expires_at: float
    stable: bool


@dataclass
class LoginCode:
    """A single-use wx.login code issued through /sim/wx-login."""

    name: str
    app_id: str
    expires_at: float
    used: bool = False


@dataclass
class Interaction:
    """The user's last customer-service interaction and how many replies it has allowed so far."""

    at: float
    sent: int = 0


@dataclass
class Media:
    """A stored temporary media file."""

    data: bytes
    content_type: str
    filename: str
    created_at: float


@dataclass
class CallRecord:
    """One request to a WeChat API endpoint, as the simulator received it."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    body: Any
    size: int
    errcode: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


@dataclass
class DeliveredMessage:
    """A message WeChat accepted and would have shown to the user."""

    kind: Literal["template", "subscribe", "custom"]
    app_id: str
    touser: str
    payload: dict[str, Any]
    at: float


@dataclass
class Fault:
    """An injected error returned by the next calls to a path."""

    errcode: int
    errmsg: str
    remaining: int


def _digest_id(prefix: str, seed: str) -> str:
    # Real openids/unionids are 28 URL-safe characters; one prefix char + 27 of a hash matches that.
    digest = base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()
    return prefix + digest[:27]


def openid_of(name: str, app_id: str = SIM_MINIAPP_ID) -> str:
    """The openid the simulator gives person `name` in `app_id` (lets the CLI grant roles by name)."""
    return _digest_id("o", f"{app_id}:{name}")


# 人脸核身 (getVerifyId): "verify_id 有效期，过期后无法发起核身，默认值3600".
FACE_VERIFY_TTL = 3600
# out_seq_no: "要求5-32个字符内，只能包含数字、大小写字母和_-字符，且在同一个appid下唯一".
FACE_OUT_SEQ_NO = re.compile(r"^[0-9A-Za-z_-]{5,32}$")
# queryVerifyInfo before the user finished wx.requestFacialVerify: WeChat does not document the answer;
# the simulator reports 90000 ("人脸错误码起始值"), which callers must treat as "not passed".
FACE_NOT_FINISHED = 90000


@dataclass
class FaceVerifySession:
    """One 人脸核身 session opened with getVerifyId; `verify_ret` is set when the user finishes it."""

    verify_id: str
    app_id: str
    out_seq_no: str
    openid: str
    cert_info: dict[str, str]
    cert_hash: str
    expires_at: float
    verify_ret: int | None = None


def face_cert_hash(cert_info: Mapping[str, str]) -> str:
    """cert_hash as queryVerifyInfo documents it: Base64 each field, join "cert_type=…&cert_name=…&cert_no=…",
    SHA-256, lower-case hex."""
    parts = [f"{k}={base64.b64encode(str(cert_info[k]).encode()).decode()}" for k in ("cert_type", "cert_name", "cert_no")]
    return hashlib.sha256("&".join(parts).encode()).hexdigest()


class SimulatorState:
    """All simulator state plus the WeChat business rules; methods raise ApiError like WeChat would."""

    def __init__(
        self,
        *,
        app_id: str = SIM_APP_ID,
        app_secret: str = SIM_APP_SECRET,
        miniapp_id: str = SIM_MINIAPP_ID,
        miniapp_secret: str = SIM_MINIAPP_SECRET,
        unionid: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.apps: dict[str, AppCredential] = {}
        self.register_app(app_id, app_secret, "official_account")
        self.register_app(miniapp_id, miniapp_secret, "miniapp")
        self.miniapp_id = miniapp_id
        self.unionid_enabled = unionid
        self.clock = clock
        self.time_offset = 0.0
        self.tokens: dict[str, IssuedToken] = {}
        self._latest_token: dict[tuple[str, bool], str] = {}
        self._force_refreshes: dict[str, list[float]] = {}
        self.login_codes: dict[str, LoginCode] = {}
        self.subscribe_quota: dict[tuple[str, str], int] = {}
        self.interactions: dict[str, Interaction] = {}
        self.media: dict[str, Media] = {}
        self.menu: dict[str, Any] | None = None
        self.followers: dict[str, str] = {}  # Official Account openid → simulated person name
        self.calls: list[CallRecord] = []
        self.messages: list[DeliveredMessage] = []
        self._faults: dict[str, Fault] = {}
        self._msgids = itertools.count(2_000_000_000 + secrets.randbelow(1_000_000_000))
        self.face_sessions: dict[str, FaceVerifySession] = {}  # verify_id -> session (人脸核身)

    # --- time -------------------------------------------------------------------------------------

    def now(self) -> float:
        """Return the simulator's current epoch time (wall clock plus any advance())."""
        return self.clock() + self.time_offset

    def advance(self, seconds: float) -> None:
        """Move simulated time forward, e.g. to expire tokens, codes or interaction windows."""
        self.time_offset += seconds

    # --- credentials and access tokens ---------------------------------------------------------------

    def register_app(self, app_id: str, secret: str, kind: AppKind) -> None:
        """Register (or replace) an account the simulator accepts."""
        self.apps[app_id] = AppCredential(app_id, secret, kind)

    def _authenticate(self, app_id: str, secret: str, *, bad_secret: ApiError) -> AppCredential:
        if not app_id:
            raise ApiError(41002, "appid missing")
        if not secret:
            raise ApiError(41004, "appsecret missing")
        app = self.apps.get(app_id)
        if app is None:
            raise ApiError(40013, "invalid appid")
        if not hmac.compare_digest(secret.encode(), app.secret.encode()):
            raise bad_secret
        return app

    def _new_token(self, app_id: str, *, stable: bool) -> IssuedToken:
        # Real tokens are opaque and can be up to 512 characters ("存储空间至少保留 512 字符").
        issued = IssuedToken(secrets.token_urlsafe(96), app_id, self.now() + TOKEN_TTL, stable)
        self.tokens[issued.token] = issued
        self._latest_token[(app_id, stable)] = issued.token
        return issued

    def _revoke_latest(self, app_id: str, *, stable: bool) -> None:
        old = self._latest_token.pop((app_id, stable), None)
        if old is not None:
            self.tokens.pop(old, None)

    def issue_token(self, app_id: str, secret: str) -> IssuedToken:
        """cgi-bin/token: always a new token; the previous one from this API stops working at once."""
        # getAccessToken documents a 5-minute overlap for the old token; we invalidate immediately
        # (simpler, and stricter for callers). It is isolated from stable_token tokens.
        self._authenticate(app_id, secret, bad_secret=_invalid_token())
        self._revoke_latest(app_id, stable=False)
        return self._new_token(app_id, stable=False)

    def stable_token(self, app_id: str, secret: str, *, force_refresh: bool = False) -> IssuedToken:
        """cgi-bin/stable_token: the same token while valid; force_refresh replaces it."""
        # The stable_token error table lists 40125 "invalid appsecret" for a wrong secret.
        self._authenticate(app_id, secret, bad_secret=ApiError(40125, "invalid appsecret"))
        current = self._live_token(app_id, stable=True)
        if force_refresh:
            return self._force_refresh(app_id, current)
        if current is not None and current.expires_at - self.now() > STABLE_EARLY_REFRESH:
            return current
        # Within the last 5 minutes a new token is issued; the old one stays valid until it expires.
        return self._new_token(app_id, stable=True)

    def _live_token(self, app_id: str, *, stable: bool) -> IssuedToken | None:
        issued = self.tokens.get(self._latest_token.get((app_id, stable), ""))
        return issued if issued is not None and issued.expires_at > self.now() else None

    def _force_refresh(self, app_id: str, current: IssuedToken | None) -> IssuedToken:
        now = self.now()
        # Daily quota bucketed by UTC day (WeChat resets at Beijing midnight; close enough offline).
        history = [t for t in self._force_refreshes.get(app_id, []) if int(t // 86400) == int(now // 86400)]
        self._force_refreshes[app_id] = history
        if current is not None and history and now - history[-1] < FORCE_REFRESH_INTERVAL:
            return current  # "连续使用该模式时，请保证调用时间隔至少为 30s，否则不会刷新"
        if len(history) >= FORCE_REFRESH_DAILY_LIMIT:
            raise ApiError(45009, "reach max api daily quota limit")
        history.append(now)
        self._revoke_latest(app_id, stable=True)
        return self._new_token(app_id, stable=True)

    def expires_in(self, issued: IssuedToken) -> int:
        """Seconds until the token expires, as reported in the "expires_in" field."""
        return max(0, round(issued.expires_at - self.now()))

    def check_token(self, token: str | None) -> AppCredential:
        """Return the account owning a valid access_token, or raise 41001/40001/42001."""
        if not token:
            raise ApiError(41001, "access_token missing")
        issued = self.tokens.get(token)
        if issued is None:
            raise _invalid_token()
        if issued.expires_at <= self.now():
            raise ApiError(42001, "access_token expired")
        return self.apps[issued.app_id]

    # --- mini-program login ------------------------------------------------------------------------

    def openid_for(self, name: str, app_id: str | None = None) -> str:
        """The deterministic openid of simulated user `name` in `app_id` (default: the mini program)."""
        # openids are per account, so the same person has different openids in the OA and the mini program.
        return openid_of(name, app_id or self.miniapp_id)

    def unionid_for(self, name: str) -> str:
        """The deterministic unionid of simulated user `name` (shared by all accounts, like WeChat's)."""
        return _digest_id("u", f"unionid:{name}")

    def issue_login_code(self, name: str, app_id: str | None = None) -> str:
        """Issue a wx.login-style code: single use, valid for 5 minutes."""
        code = secrets.token_hex(16)
        self.login_codes[code] = LoginCode(name, app_id or self.miniapp_id, self.now() + LOGIN_CODE_TTL)
        return code

    def code_to_session(self, app_id: str, secret: str, js_code: str) -> dict[str, Any]:
        """sns/jscode2session: exchange a login code for openid, session_key and (optionally) unionid."""
        app = self._authenticate(app_id, secret, bad_secret=ApiError(40125, "invalid appsecret"))
        if app.kind != "miniapp":
            raise ApiError(40013, "invalid appid")
        if not js_code:
            raise ApiError(41008, "missing code")
        name = self._resolve_code(app_id, js_code)
        session = {
            "openid": self.openid_for(name, app_id),
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
        }
        if self.unionid_enabled:
            session["unionid"] = self.unionid_for(name)
        return session

    def _resolve_code(self, app_id: str, js_code: str) -> str:
        if js_code.startswith(SIM_CODE_PREFIX) and len(js_code) > len(SIM_CODE_PREFIX):
            return js_code[len(SIM_CODE_PREFIX) :]
        login = self.login_codes.get(js_code)
        if login is None or login.app_id != app_id:
            raise ApiError(40029, "invalid code")
        if login.used:
            raise ApiError(40163, "code been used")
        if login.expires_at <= self.now():
            raise ApiError(40029, "invalid code")
        login.used = True
        return login.name

    # --- messages ---------------------------------------------------------------------------------

    def add_subscribe_quota(self, openid: str, template_id: str, count: int = 1) -> int:
        """Record that the user accepted `count` more subscribe messages (wx.requestSubscribeMessage)."""
        key = (openid, template_id)
        self.subscribe_quota[key] = self.subscribe_quota.get(key, 0) + count
        return self.subscribe_quota[key]

    def record_interaction(self, openid: str, when: float | datetime | None = None) -> None:
        """Record that the user messaged us, opening a 48 h customer-service window."""
        at = when.timestamp() if isinstance(when, datetime) else when
        self.interactions[openid] = Interaction(self.now() if at is None else at)

    def send_template(self, app: AppCredential, body: dict[str, Any]) -> int:
        """message/template/send (Official Account only); return the msgid."""
        if app.kind != "official_account":
            raise _unauthorized()
        touser, _ = _require_recipient(body)
        return self._deliver("template", app, touser, body)

    def send_subscribe(self, app: AppCredential, body: dict[str, Any]) -> int:
        """message/subscribe/send (mini program only): consumes one accepted quota; return the msgid."""
        if app.kind != "miniapp":
            raise _unauthorized()
        touser, template_id = _require_recipient(body)
        key = (touser, template_id)
        if self.subscribe_quota.get(key, 0) <= 0:
            raise ApiError(43101, "user refuse to accept the msg")
        self.subscribe_quota[key] -= 1
        return self._deliver("subscribe", app, touser, body)

    def send_custom(self, app: AppCredential, body: dict[str, Any]) -> None:
        """message/custom/send: only inside the user's 48 h window, at most 5 per interaction."""
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser:
            raise ApiError(40003, "invalid openid")
        msgtype = body.get("msgtype")
        if msgtype not in CUSTOM_MSG_TYPES:
            raise ApiError(40008, "invalid message type")
        if not isinstance(body.get(msgtype), dict):
            raise _bad_json()
        self._use_interaction(touser)
        self._deliver("custom", app, touser, body)

    def _use_interaction(self, openid: str) -> None:
        interaction = self.interactions.get(openid)
        if interaction is None or self.now() - interaction.at > INTERACTION_WINDOW:
            raise ApiError(45015, "response out of time limit or subscription is canceled")
        if interaction.sent >= CUSTOM_MESSAGES_PER_INTERACTION:
            raise ApiError(45047, "out of response count limit")
        interaction.sent += 1

    def _deliver(
        self,
        kind: Literal["template", "subscribe", "custom"],
        app: AppCredential,
        touser: str,
        body: dict[str, Any],
    ) -> int:
        self.messages.append(DeliveredMessage(kind, app.app_id, touser, body, self.now()))
        return next(self._msgids)

    def messages_to(self, openid: str) -> list[DeliveredMessage]:
        """Messages actually delivered to `openid`, oldest first."""
        return [m for m in self.messages if m.touser == openid]

    # --- media --------------------------------------------------------------------------------------

    def add_media(self, data: bytes, content_type: str, filename: str | None = None) -> str:
        """Store a temporary media file and return its media_id."""
        media_id = secrets.token_urlsafe(48)
        self.media[media_id] = Media(data, content_type, filename or media_id, self.now())
        return media_id

    def get_media(self, media_id: str) -> Media:
        """Return stored media or raise 40007 (unknown or older than 3 days)."""
        media = self.media.get(media_id)
        if media is None or self.now() - media.created_at > MEDIA_TTL:
            raise ApiError(40007, "invalid media_id")
        return media

    # --- Official Account followers ----------------------------------------------------------------

    def follow(self, name: str) -> str:
        """Person `name` follows the Official Account; return their OA openid (differs from the mini-program one)."""
        oa_app = next(a.app_id for a in self.apps.values() if a.kind == "official_account")
        openid = self.openid_for(name, oa_app)
        self.followers[openid] = name
        return openid

    def user_info(self, app: AppCredential, openid: str) -> dict[str, Any]:
        """cgi-bin/user/info: subscribe flag, openid and (when the account is bound to 开放平台) unionid."""
        if app.kind != "official_account":
            raise _unauthorized()
        name = self.followers.get(openid)
        if name is None or self.openid_for(name, app.app_id) != openid:
            raise ApiError(40003, "invalid openid")
        info: dict[str, Any] = {"subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": int(self.now())}
        if self.unionid_enabled:
            info["unionid"] = self.unionid_for(name)
        return info

    # --- menu ---------------------------------------------------------------------------------------

    def create_menu(self, app: AppCredential, menu: dict[str, Any]) -> None:
        """menu/create (Official Account only): validate and store the menu."""
        if app.kind != "official_account":
            raise _unauthorized()
        validate_menu(menu)
        self.menu = menu

    # --- face verification (人脸核身 2.0) ---------------------------------------------------------------

    def face_get_verify_id(self, app: AppCredential, body: dict[str, Any]) -> FaceVerifySession:
        """cityservice/face/identify/getverifyid (mini program only)."""
        if app.kind != "miniapp":
            raise _unauthorized()
        out_seq_no, cert, openid = body.get("out_seq_no"), body.get("cert_info"), body.get("openid")
        if not isinstance(openid, str) or not openid:
            raise ApiError(40003, "invalid openid")
        # WeChat does not document these error codes; 40097 is its global "invalid args".
        if not isinstance(out_seq_no, str) or not FACE_OUT_SEQ_NO.match(out_seq_no):
            raise ApiError(40097, "invalid args: out_seq_no")
        if any(s.app_id == app.app_id and s.out_seq_no == out_seq_no for s in self.face_sessions.values()):
            raise ApiError(40097, "invalid args: out_seq_no already used")
        fields_ = ("cert_type", "cert_name", "cert_no")
        if not isinstance(cert, dict) or not all(isinstance(cert.get(k), str) and cert[k] for k in fields_):
            raise ApiError(40097, "invalid args: cert_info")
        if cert["cert_type"] != "IDENTITY_CARD":
            raise ApiError(40097, "invalid args: cert_type")
        info = {k: cert[k] for k in fields_}
        session = FaceVerifySession(secrets.token_urlsafe(48), app.app_id, out_seq_no, openid, info,
                                    face_cert_hash(info), self.now() + FACE_VERIFY_TTL)
        self.face_sessions[session.verify_id] = session
        return session

    def face_query(self, app: AppCredential, body: dict[str, Any]) -> int:
        """cityservice/face/identify/queryverifyinfo: the verify_ret; identity fields must match the session."""
        if app.kind != "miniapp":
            raise _unauthorized()
        session = self.face_sessions.get(str(body.get("verify_id") or ""))
        if session is None or session.app_id != app.app_id:
            raise ApiError(84001, "invalid verify_id")
        # "微信后台校验 cert_info、openid，不一致则返回对应的errcode而不是verify_ret" (code undocumented).
        for name, expected in (("out_seq_no", session.out_seq_no), ("cert_hash", session.cert_hash),
                               ("openid", session.openid)):
            if body.get(name) != expected:
                raise ApiError(40097, f"invalid args: {name} mismatch")
        return FACE_NOT_FINISHED if session.verify_ret is None else session.verify_ret

    def face_finish(self, verify_id: str, verify_ret: int = 10000) -> FaceVerifySession:
        """Test helper: the user finished wx.requestFacialVerify with this result (10000 = passed)."""
        session = self.face_sessions.get(verify_id)
        if session is None:
            raise KeyError(verify_id)
        if session.expires_at <= self.now():
            raise ValueError("verify_id expired")
        session.verify_ret = verify_ret
        return session

    # --- call log and fault injection ---------------------------------------------------------------

    def record_call(self, method: str, path: str, query: Mapping[str, str], raw: bytes, errcode: int) -> None:
        """Append a call to the log (bodies are kept parsed when they are JSON)."""
        self.calls.append(
            CallRecord(self.now(), method, path, dict(query), _try_json(raw), len(raw), errcode)
        )

    def calls_to(self, path: str, method: str | None = None) -> list[CallRecord]:
        """Calls made to `path` (optionally only with `method`), oldest first."""
        return [c for c in self.calls if c.path == path and (method is None or c.method == method)]

    def clear_calls(self) -> int:
        """Forget all recorded calls; return how many there were."""
        count = len(self.calls)
        self.calls.clear()
        return count

    def fail_next(self, path: str, errcode: int, errmsg: str = "system error", times: int = 1) -> None:
        """Make the next `times` calls to `path` fail with the given WeChat error (e.g. -1 system busy)."""
        self._faults[path] = Fault(errcode, errmsg, times)

    def raise_injected_fault(self, path: str) -> None:
        """Raise the pending injected error for `path`, if any."""
        fault = self._faults.get(path)
        if fault is None:
            return
        fault.remaining -= 1
        if fault.remaining <= 0:
            del self._faults[path]
        raise ApiError(fault.errcode, fault.errmsg)


def _try_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _require_recipient(body: dict[str, Any]) -> tuple[str, str]:
    touser, template_id = body.get("touser"), body.get("template_id")
    if not isinstance(touser, str) or not touser:
        raise ApiError(40003, "invalid openid")
    if not isinstance(template_id, str) or not template_id:
        raise ApiError(40037, "invalid template_id")
    if "data" in body and not isinstance(body["data"], dict):
        raise _bad_json()
    return touser, template_id


# --- menu validation (codes from the Official Account global return-code table) ------------------------


def validate_menu(menu: Any) -> None:
    """Raise ApiError unless `menu` is a valid menu/create body: 1-3 buttons, each with up to 5 sub-buttons."""
    buttons = menu.get("button") if isinstance(menu, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise ApiError(40016, "invalid button size")
    for button in buttons:
        _validate_top_button(button)


def _validate_top_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise ApiError(40017, "invalid button type")
    _check_len(button.get("name"), 16, ApiError(40018, "invalid button name size"))
    subs = button.get("sub_button")
    if subs:  # a parent button ignores its own type; an empty sub_button list is allowed on a leaf
        if not isinstance(subs, list) or len(subs) > 5:
            raise ApiError(40023, "invalid sub button size")
        for sub in subs:
            _validate_sub_button(sub)
        return
    _validate_action(button, sub=False)


def _validate_sub_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise ApiError(40024, "invalid sub button type")
    _check_len(button.get("name"), 60, ApiError(40025, "invalid sub button name size"))
    _validate_action(button, sub=True)


# (type, key, url) error codes for top-level buttons and for sub-buttons.
_ACTION_ERRORS = {
    False: (
        (40017, "invalid button type"),
        (40019, "invalid button key size"),
        (40020, "invalid button url size"),
    ),
    True: (
        (40024, "invalid sub button type"),
        (40026, "invalid sub button key size"),
        (40027, "invalid sub button url size"),
    ),
}
# Event-style buttons push their "key" to our server; view/miniprogram buttons need a "url"
# (for miniprogram it is the fallback page for old clients).
_KEYED_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)


def _validate_action(button: dict[str, Any], *, sub: bool) -> None:
    type_error, key_error, url_error = _ACTION_ERRORS[sub]
    if button.get("type") not in MENU_BUTTON_TYPES:
        raise ApiError(*type_error)
    if button["type"] in _KEYED_TYPES:
        _check_len(button.get("key"), 128, ApiError(*key_error))
    if button["type"] in ("view", "miniprogram"):
        _check_len(button.get("url"), 1024, ApiError(*url_error))


def _check_len(value: Any, max_bytes: int, error: ApiError) -> None:
    # WeChat counts bytes of the UTF-8 text (a Chinese character is 3 bytes).
    if not isinstance(value, str) or not 1 <= len(value.encode()) <= max_bytes:
        raise error


# --- HTTP layer -------------------------------------------------------------------------------------

ApiResult = dict[str, Any] | web.StreamResponse


@dataclass
class SimRequest:
    """What an API handler needs: the state, the query, the raw body and the caller's account."""

    state: SimulatorState
    request: web.Request
    raw: bytes
    app: AppCredential | None = None

    @property
    def query(self) -> Mapping[str, str]:
        """The URL query parameters."""
        return self.request.query

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; WeChat parses it whatever the Content-Type says."""
        if not self.raw:
            raise ApiError(44002, "empty post data")
        body = _try_json(self.raw)
        if not isinstance(body, dict):
            raise _bad_json()
        return body

    def caller(self) -> AppCredential:
        """The account owning the request's access_token (token routes only)."""
        assert self.app is not None, "route was registered without needs_token"
        return self.app


ApiHandler = Callable[[SimRequest], Awaitable[ApiResult]]


@dataclass(frozen=True)
class ApiRoute:
    """One WeChat API endpoint; needs_token routes get the access_token checked before the handler runs."""

    method: str
    path: str
    handler: ApiHandler
    needs_token: bool = True


def _ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def _token_body(state: SimulatorState, issued: IssuedToken) -> dict[str, Any]:
    # Token APIs answer {"access_token", "expires_in"} without errcode on success.
    return {"access_token": issued.token, "expires_in": state.expires_in(issued)}


def _check_grant(grant_type: Any, expected: str) -> None:
    if grant_type != expected:
        raise ApiError(40002, "invalid grant_type")


async def handle_token(req: SimRequest) -> ApiResult:
    """GET /cgi-bin/token."""
    q = req.query
    _check_grant(q.get("grant_type"), "client_credential")
    return _token_body(req.state, req.state.issue_token(q.get("appid", ""), q.get("secret", "")))


async def handle_stable_token(req: SimRequest) -> ApiResult:
    """POST /cgi-bin/stable_token (JSON body)."""
    body = req.json()
    _check_grant(body.get("grant_type"), "client_credential")
    force = body.get("force_refresh", False)
    if not isinstance(force, bool):
        raise _bad_json()
    issued = req.state.stable_token(
        str(body.get("appid") or ""), str(body.get("secret") or ""), force_refresh=force
    )
    return _token_body(req.state, issued)


async def handle_jscode2session(req: SimRequest) -> ApiResult:
    """GET /sns/jscode2session (success carries no errcode, like the real API)."""
    q = req.query
    _check_grant(q.get("grant_type"), "authorization_code")
    return req.state.code_to_session(q.get("appid", ""), q.get("secret", ""), q.get("js_code", ""))


async def handle_template_send(req: SimRequest) -> ApiResult:
    """POST /cgi-bin/message/template/send."""
    return _ok(msgid=req.state.send_template(req.caller(), req.json()))


async def handle_subscribe_send(req: SimRequest) -> ApiResult:
    """POST /cgi-bin/message/subscribe/send."""
    return _ok(msgid=req.state.send_subscribe(req.caller(), req.json()))


async def handle_custom_send(req: SimRequest) -> ApiResult:
    """POST /cgi-bin/message/custom/send."""
    req.state.send_custom(req.caller(), req.json())
    return _ok()


async def handle_media_get(req: SimRequest) -> ApiResult:
    """GET /cgi-bin/media/get: the raw file on success, JSON errcode on failure."""
    media = req.state.get_media(req.query.get("media_id", ""))
    headers = {
        "Content-Type": media.content_type,
        "Content-Disposition": f'attachment; filename="{media.filename}"',
    }
    return web.Response(body=media.data, headers=headers)


async def handle_user_info(req: SimRequest) -> ApiResult:
    """GET /cgi-bin/user/info (success carries no errcode, like the real API)."""
    return req.state.user_info(req.caller(), req.query.get("openid", ""))


async def handle_menu_create(req: SimRequest) -> ApiResult:
    """POST /cgi-bin/menu/create."""
    req.state.create_menu(req.caller(), req.json())
    return _ok()


async def handle_face_getverifyid(req: SimRequest) -> ApiResult:
    """POST /cityservice/face/identify/getverifyid."""
    session = req.state.face_get_verify_id(req.caller(), req.json())
    return _ok(verify_id=session.verify_id, expires_in=max(0, round(session.expires_at - req.state.now())))


async def handle_face_queryverifyinfo(req: SimRequest) -> ApiResult:
    """POST /cityservice/face/identify/queryverifyinfo."""
    return _ok(verify_ret=req.state.face_query(req.caller(), req.json()))


API_ROUTES: list[ApiRoute] = [
    ApiRoute("GET", "/cgi-bin/token", handle_token, needs_token=False),
    ApiRoute("POST", "/cgi-bin/stable_token", handle_stable_token, needs_token=False),
    ApiRoute("GET", "/sns/jscode2session", handle_jscode2session, needs_token=False),
    ApiRoute("POST", "/cgi-bin/message/template/send", handle_template_send),
    ApiRoute("POST", "/cgi-bin/message/subscribe/send", handle_subscribe_send),
    ApiRoute("POST", "/cgi-bin/message/custom/send", handle_custom_send),
    ApiRoute("GET", "/cgi-bin/media/get", handle_media_get),
    ApiRoute("POST", "/cgi-bin/menu/create", handle_menu_create),
    ApiRoute("GET", "/cgi-bin/user/info", handle_user_info),
    ApiRoute("POST", "/cityservice/face/identify/getverifyid", handle_face_getverifyid),
    ApiRoute("POST", "/cityservice/face/identify/queryverifyinfo", handle_face_queryverifyinfo),
]

STATE_KEY: web.AppKey[SimulatorState] = web.AppKey("wechat_simulator_state", SimulatorState)

_dumps = partial(json.dumps, ensure_ascii=False)


async def _run_route(routes: Mapping[str, ApiRoute], req: SimRequest) -> ApiResult:
    route = routes.get(req.request.method)
    try:
        if route is None:
            raise (
                ApiError(43002, "require POST method")
                if "POST" in routes
                else ApiError(43001, "require GET method")
            )
        req.state.raise_injected_fault(req.request.path)
        if route.needs_token:
            req.app = req.state.check_token(req.query.get("access_token"))
        return await route.handler(req)
    except ApiError as exc:
        return exc.body()


def _dispatcher(routes: Mapping[str, ApiRoute]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        raw = await request.read()
        result = await _run_route(routes, SimRequest(state, request, raw))
        errcode = int(result.get("errcode", 0)) if isinstance(result, dict) else 0
        state.record_call(request.method, request.path, request.query, raw, errcode)
        return web.json_response(result, dumps=_dumps) if isinstance(result, dict) else result

    return handle


# --- /sim/* test helpers (not part of WeChat's API, not recorded in the call log) ---------------------


def _helper_error(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _helper_json(request: web.Request, *required: str) -> dict[str, Any]:
    body = _try_json(await request.read())
    if not isinstance(body, dict):
        raise _helper_error("body must be a JSON object")
    missing = [name for name in required if not body.get(name)]
    if missing:
        raise _helper_error(f"missing fields: {', '.join(missing)}")
    return body


async def sim_wx_login(request: web.Request) -> web.Response:
    """POST /sim/wx-login {"name", "appid"?} -> {"code"} (what wx.login would give the mini program)."""
    body = await _helper_json(request, "name")
    code = request.app[STATE_KEY].issue_login_code(str(body["name"]), body.get("appid"))
    return web.json_response({"code": code, "expires_in": LOGIN_CODE_TTL})


async def sim_openid(request: web.Request) -> web.Response:
    """GET /sim/openid?name=&appid= -> the openid/unionid a simulated user has."""
    state, name = request.app[STATE_KEY], request.query.get("name")
    if not name:
        raise _helper_error("missing query parameter: name")
    appid = request.query.get("appid")
    return web.json_response({"openid": state.openid_for(name, appid), "unionid": state.unionid_for(name)})


async def sim_subscribe_accept(request: web.Request) -> web.Response:
    """POST /sim/subscribe-accept {"openid", "template_id", "count"?} -> {"quota"}."""
    body = await _helper_json(request, "openid", "template_id")
    count = body.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise _helper_error("count must be a positive integer")
    quota = request.app[STATE_KEY].add_subscribe_quota(body["openid"], body["template_id"], count)
    return web.json_response({"openid": body["openid"], "template_id": body["template_id"], "quota": quota})


async def sim_user_interaction(request: web.Request) -> web.Response:
    """POST /sim/user-interaction {"openid", "at"?} opens the 48 h customer-service window."""
    body = await _helper_json(request, "openid")
    at = body.get("at")
    if at is not None and not isinstance(at, int | float):
        raise _helper_error("at must be an epoch timestamp")
    state = request.app[STATE_KEY]
    state.record_interaction(body["openid"], at)
    return web.json_response({"openid": body["openid"], "at": state.interactions[body["openid"]].at})


async def sim_media(request: web.Request) -> web.Response:
    """POST /sim/media: multipart field "media" (like media/upload) or a raw body with ?content_type=."""
    if request.content_type.startswith("multipart/"):
        data, content_type, filename = await _read_multipart_media(request)
    else:
        data = await request.read()
        content_type = request.query.get("content_type") or request.content_type
        filename = request.query.get("filename")
    if not data:
        raise _helper_error("empty media")
    state = request.app[STATE_KEY]
    media_id = state.add_media(data, content_type, filename)
    return web.json_response({"media_id": media_id, "created_at": int(state.media[media_id].created_at)})


async def _read_multipart_media(request: web.Request) -> tuple[bytes, str, str | None]:
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name == "media":
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            return await part.read(decode=True), content_type, part.filename
    raise _helper_error('multipart body has no "media" field')


async def sim_calls(request: web.Request) -> web.Response:
    """GET /sim/calls -> {"calls": [...]}; DELETE /sim/calls clears them."""
    state = request.app[STATE_KEY]
    if request.method == "DELETE":
        return web.json_response({"cleared": state.clear_calls()})
    return web.json_response({"calls": [c.to_json() for c in state.calls]}, dumps=_dumps)


async def sim_messages(request: web.Request) -> web.Response:
    """GET /sim/messages?openid= -> delivered messages."""
    state, openid = request.app[STATE_KEY], request.query.get("openid")
    messages = state.messages_to(openid) if openid else state.messages
    return web.json_response({"messages": [asdict(m) for m in messages]}, dumps=_dumps)


async def sim_fault(request: web.Request) -> web.Response:
    """POST /sim/fault {"path", "errcode", "errmsg"?, "times"?} injects errors into the next calls."""
    body = await _helper_json(request, "path", "errcode")
    request.app[STATE_KEY].fail_next(
        body["path"], int(body["errcode"]), body.get("errmsg", "system error"), int(body.get("times", 1))
    )
    return web.json_response({"ok": True})


async def sim_face_verify(request: web.Request) -> web.Response:
    """POST /sim/face-verify {"verify_id", "verify_ret"?} -> the user finished wx.requestFacialVerify
    (verify_ret 10000 = passed, the default; e.g. 10004 = face does not match the ID photo)."""
    body = await _helper_json(request, "verify_id")
    verify_ret = body.get("verify_ret", 10000)
    if not isinstance(verify_ret, int):
        raise _helper_error("verify_ret must be an integer")
    try:
        session = request.app[STATE_KEY].face_finish(str(body["verify_id"]), verify_ret)
    except KeyError:
        raise _helper_error("unknown verify_id") from None
    except ValueError as exc:
        raise _helper_error(str(exc)) from None
    return web.json_response({"verify_id": session.verify_id, "verify_ret": session.verify_ret})


def _add_helper_routes(app: web.Application) -> None:
    app.router.add_post("/sim/wx-login", sim_wx_login)
    app.router.add_get("/sim/openid", sim_openid)
    app.router.add_post("/sim/subscribe-accept", sim_subscribe_accept)
    app.router.add_post("/sim/user-interaction", sim_user_interaction)
    app.router.add_post("/sim/media", sim_media)
    app.router.add_route("GET", "/sim/calls", sim_calls)
    app.router.add_route("DELETE", "/sim/calls", sim_calls)
    app.router.add_get("/sim/messages", sim_messages)
    app.router.add_post("/sim/fault", sim_fault)
    app.router.add_post("/sim/face-verify", sim_face_verify)


# --- app construction and running ------------------------------------------------------------------


def create_simulator_app(
    state: SimulatorState | None = None,
    *,
    app_id: str | None = None,
    app_secret: str | None = None,
    miniapp_id: str | None = None,
    miniapp_secret: str | None = None,
    unionid: bool = True,
    extra_routes: Iterable[ApiRoute] = (),
) -> web.Application:
    """Build the simulator app (credentials default to the SIM_* constants; extra accounts join a given state)."""
    if state is None:
        state = SimulatorState(
            app_id=app_id or SIM_APP_ID,
            app_secret=app_secret or SIM_APP_SECRET,
            miniapp_id=miniapp_id or SIM_MINIAPP_ID,
            miniapp_secret=miniapp_secret or SIM_MINIAPP_SECRET,
            unionid=unionid,
        )
    else:
        _register_extra(state, app_id, app_secret, "official_account")
        _register_extra(state, miniapp_id, miniapp_secret, "miniapp")
    app = web.Application(client_max_size=20 * 1024 * 1024)
    app[STATE_KEY] = state
    by_path: dict[str, dict[str, ApiRoute]] = {}
    for route in [*API_ROUTES, *extra_routes]:
        by_path.setdefault(route.path, {})[route.method] = route
    for path, routes in by_path.items():
        # "*" so a wrong method gets WeChat's 43001/43002 JSON instead of aiohttp's 405 page.
        app.router.add_route("*", path, _dispatcher(routes))
    _add_helper_routes(app)
    return app


def _register_extra(state: SimulatorState, app_id: str | None, secret: str | None, kind: AppKind) -> None:
    if app_id and secret:
        state.register_app(app_id, secret, kind)


async def start_simulator(
    host: str = "127.0.0.1", port: int = 0, **kw: Any
) -> tuple[web.AppRunner, str, SimulatorState]:
    """Run the simulator inside the current event loop; return (runner, base_url, state). Port 0 = any free port."""
    app = create_simulator_app(**kw)
    runner = web.AppRunner(app, access_log=None)  # calls are recorded in state; keep the host app's log quiet
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    return runner, f"http://{url_host}:{bound_port}", app[STATE_KEY]


def run_simulator(host: str = "127.0.0.1", port: int = 8900, **kw: Any) -> None:
    """Serve the simulator until interrupted (used by `echain wechat-sim`)."""
    app = create_simulator_app(**kw)
    state = app[STATE_KEY]
    for cred in state.apps.values():
        logger.info("WeChat simulator account %s: appid=%s secret=%s", cred.kind, cred.app_id, cred.secret)
    web.run_app(app, host=host, port=port, print=logger.info)
