"""Linking the caller's Official Account follower to their mini-program account: the one-time binding code."""

from pydantic import BaseModel, Field

from bot import binding
from echain.api import ApiRouter, Call
from echain.keys import DEPS

router = ApiRouter()
TAG = "公众号"


class BindingCodeOut(BaseModel):
    """A code to send to the Official Account as "绑定 <code>"."""

    code: str = Field(description="一次性绑定码，8 位字母数字")
    expires_in: int = Field(description="有效期（秒）")
    instruction: str = Field(description="给用户的操作说明")


@router.post("/api/v1/wechat/binding-code", summary="获取公众号绑定码", tag=TAG, response=BindingCodeOut, status=201)
async def create_binding_code(call: Call) -> BindingCodeOut:
    """Valid 10 minutes and once; a new code replaces the previous one. Needed only when WeChat gives no unionid."""
    code = await binding.issue_code(call.app[DEPS].redis, call.user)
    return BindingCodeOut(code=code, expires_in=binding.CODE_TTL,
                          instruction=f"请在 10 分钟内到 echain 公众号发送：绑定 {code}")
