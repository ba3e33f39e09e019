"""Reading a multipart upload with a hard size limit (aiohttp's client_max_size does not cover streaming)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from workflow.errors import DomainError, InvalidInput, PayloadTooLarge, UnsupportedMediaType


@dataclass
class Upload:
    """One uploaded file and the plain form fields sent with it."""

    fields: dict[str, str]
    filename: str
    data: bytes


async def read_upload(request: web.Request, max_bytes: int) -> Upload:
    """Parse `multipart/form-data` with text fields and exactly one `file` part."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("请以 multipart/form-data 方式上传文件")
    if request.content_length is not None and request.content_length > max_bytes + 64 * 1024:
        raise PayloadTooLarge(_too_large(max_bytes))
    try:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        filename, data = "", None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                filename, data = part.filename or "", await _read_limited(part, max_bytes)
            elif part.name:
                fields[part.name] = (await _read_limited(part, 4096)).decode("utf-8", "replace").strip()
    # Malformed framing; HttpProcessingError: a part's headers do not parse (e.g. raw non-ASCII bytes in a name).
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        raise DomainError("上传内容格式有误，请重新上传", code="malformed_multipart") from exc
    if data is None:
        raise InvalidInput("缺少文件（表单字段 file）", code="file_required")
    return Upload(fields, filename, data)


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"文件过大，单个文件不能超过 {limit / 1024 / 1024:.0f} MB"
