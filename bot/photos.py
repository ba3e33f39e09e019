"""Material photos sent in chat: downloaded through media/get and stored like any upload (workflow.documents)."""

from __future__ import annotations

import logging

from bot.context import Bot
from models.documents import Document
from models.people import User
from wechat.client import WeChatError
from workflow import documents
from workflow.errors import DomainError

log = logging.getLogger("echain.bot.photos")

# media/get errors worth telling the person about in their own words (全局返回码说明).
_MEDIA_ERRORS = {40007: "这张照片已无法下载（可能已过期），请重新发送。"}


async def fetch_and_store(bot: Bot, user: User, enterprise_id: int, media_id: str, seq: int,
                          kind: str) -> Document | str:
    """The stored document, or a Chinese sentence saying why the photo could not be used."""
    try:
        # 获取临时素材: media_id stays valid 3 days; the bytes come back as the response body.
        data, _ = await bot.oa.get_media(media_id)
    except WeChatError as exc:
        log.info("media/get failed: %s", exc)
        return _MEDIA_ERRORS.get(exc.errcode, f"照片下载失败（{exc.user_message}），请重新发送。")
    if len(data) > bot.upload_max_bytes:
        return f"照片过大（超过 {bot.upload_max_bytes / 1048576:.3g} MB），请压缩后重新发送。"
    try:
        return await documents.upload(bot.deps, user, enterprise_id, kind, f"公众号照片-{seq}", data)
    except DomainError as exc:
        return f"照片未能保存：{exc.message}"
