"""Login, logout, and the bearer-token check every authenticated operation runs."""

from aiohttp import web

from echain.api import ApiRouter, Call
from echain.keys import DEPS
from miniapp_api.schemas import LoginIn, LoginOut, UserOut
from models.people import User
from workflow import accounts
from workflow.errors import Unauthenticated

router = ApiRouter()
TAG = "登录"


def bearer_token(request: web.Request) -> str:
    """The token from `Authorization: Bearer …` (empty when absent)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def authenticate(request: web.Request) -> User:
    """The logged-in person, or a 401 saying how to log in."""
    token = bearer_token(request)
    if not token:
        raise Unauthenticated("请先登录（缺少 Authorization: Bearer 令牌）", code="login_required")
    return await accounts.authenticate(request.app[DEPS], token)


@router.post("/api/v1/auth/login", summary="小程序登录（wx.login code 换取令牌）", tag=TAG, body=LoginIn, response=LoginOut, auth=False,
             errors=(401,))
async def login(call: Call) -> LoginOut:
    """Exchange a wx.login code through jscode2session; the session_key stays on the server."""
    result = await accounts.login(call.app[DEPS], call.body.code)
    return LoginOut(token=result.token, user=UserOut.of(result.user), created=result.created)


@router.post("/api/v1/auth/logout", summary="退出登录（令牌立即失效）", tag=TAG, status=204)
async def logout(call: Call) -> None:
    """Revoke the bearer token used for this request."""
    await accounts.logout(call.app[DEPS], bearer_token(call.request))
