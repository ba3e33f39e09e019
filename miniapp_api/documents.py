"""Document upload and download."""

from urllib.parse import quote

from aiohttp import web

from echain.api import ApiRouter, Call
from echain.keys import DEPS, SETTINGS
from miniapp_api.schemas import DocumentList, DocumentOut
from miniapp_api.uploads import read_upload
from workflow import documents

router = ApiRouter()
TAG = "材料"


@router.post("/api/v1/enterprises/{enterprise_id}/documents", summary="上传企业材料", tag=TAG, response=DocumentOut,
             status=201, errors=(413, 415, 422),
             multipart={"kind": "材料类型：" + " / ".join(documents.DOCUMENT_KINDS),
                        "file": "JPEG、PNG 或 PDF，按内容识别类型"})
async def upload_document(call: Call) -> DocumentOut:
    """Size-limited; the type is read from the bytes, not the name; stored by SHA-256."""
    upload = await read_upload(call.request, call.app[SETTINGS].upload_max_bytes)
    doc = await documents.upload(call.app[DEPS], call.user, call.ids["enterprise_id"], upload.fields.get("kind", ""),
                                 upload.filename, upload.data)
    return DocumentOut.of(doc)


@router.get("/api/v1/enterprises/{enterprise_id}/documents", summary="企业材料列表", tag=TAG, response=DocumentList)
async def list_documents(call: Call) -> DocumentList:
    """Newest first."""
    return DocumentList(items=[DocumentOut.of(d) for d in await documents.list_for(call.user, call.ids["enterprise_id"])])


@router.get("/api/v1/documents/{document_id}", summary="下载材料", tag=TAG, binary_response="文件内容（image/jpeg、image/png 或 application/pdf）")
async def download_document(call: Call) -> web.Response:
    """Members of the enterprise and platform operators only."""
    content = await documents.fetch(call.app[DEPS], call.user, call.ids["document_id"])
    doc = content.document
    name = doc.filename or f"document-{doc.id}{documents.EXTENSIONS[doc.content_type]}"
    return web.Response(
        body=content.data, content_type=doc.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
