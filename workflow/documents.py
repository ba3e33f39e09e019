"""Enterprise documents: type sniffed from the bytes, stored by digest, readable by members and operators."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from tortoise.transactions import in_transaction

from models.documents import Document
from models.people import User
from workflow import ledger
from workflow.access import enterprise_for_member
from workflow.deps import Deps
from workflow.errors import InvalidInput, NotFound, UnsupportedMediaType
from workflow.financing.attachments import readable_via_financing

DOCUMENT_KINDS = {
    "business_license": "营业执照",
    "id_card_front": "身份证人像面",
    "id_card_back": "身份证国徽面",
    "invoice": "发票",
    "trade_contract": "贸易合同",
    "factoring_contract": "保理合同",
    "voucher": "放款凭证",
    "repayment_proof": "还款凭证",
    "power_of_attorney": "授权委托书",
    "other": "其他材料",
}

# Magic numbers: the declared Content-Type and file name are never trusted.
_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"%PDF-", "application/pdf"))
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}


def sniff_type(data: bytes) -> str | None:
    """The content type read from the first bytes, or None when not JPEG, PNG or PDF."""
    for magic, content_type in _SIGNATURES:
        if data.startswith(magic):
            return content_type
    return None


def clean_filename(name: str) -> str:
    """Only the last path component, without control characters (never used as a path)."""
    # Some clients percent-encode non-ASCII names in Content-Disposition; decode before splitting.
    base = unquote(name).replace("\\", "/").rsplit("/", 1)[-1]
    # No leading dots: "..", "..." or a hidden-file name must not reach a client that saves under this name.
    return "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".").strip()[:200]


async def upload(deps: Deps, actor: User, enterprise_id: int, kind: str, filename: str, data: bytes) -> Document:
    """Store one document for an enterprise the actor belongs to."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id)
    if kind not in DOCUMENT_KINDS:
        raise InvalidInput(f"材料类型无效，可选：{'、'.join(DOCUMENT_KINDS)}", code="invalid_document_kind")
    if not data:
        raise InvalidInput("上传的文件是空的", code="empty_file")
    content_type = sniff_type(data)
    if content_type is None:
        raise UnsupportedMediaType("只接受 JPEG、PNG 图片或 PDF 文件", code="unsupported_file_type")
    sha = await deps.storage.put(data)
    async with in_transaction() as conn:
        doc = await Document.create(
            enterprise=enterprise, kind=kind, sha256=sha, content_type=content_type, size=len(data),
            filename=clean_filename(filename), uploaded_by=actor, using_db=conn,
        )
        await ledger.append(conn, actor=f"user:{actor.id}", subject=f"enterprise:{enterprise.id}", action="upload_document",
                            payload={"document": doc.id, "kind": kind, "sha256": sha})
    return doc


@dataclass
class DocumentContent:
    """A document's metadata and bytes, for download."""

    document: Document
    data: bytes


async def fetch(deps: Deps, actor: User, document_id: int) -> DocumentContent:
    """A document's bytes, for members of its enterprise, platform operators, and parties of a financing
    that references it (see workflow.financing.attachments.readable_via_financing)."""
    doc = await Document.get_or_none(id=document_id)
    if doc is None:
        raise NotFound("文件不存在", code="document_not_found")
    try:
        await enterprise_for_member(actor, doc.enterprise_id, operator_may_read=True)
    except NotFound as exc:
        if not await readable_via_financing(actor, doc.id):
            raise NotFound("文件不存在", code="document_not_found") from exc
    try:
        data = await deps.storage.get(doc.sha256)
    except KeyError as exc:
        raise NotFound("文件内容已丢失，请重新上传", code="document_missing") from exc
    return DocumentContent(doc, data)


async def list_for(actor: User, enterprise_id: int) -> list[Document]:
    """An enterprise's documents, newest first."""
    await enterprise_for_member(actor, enterprise_id, operator_may_read=True)
    return await Document.filter(enterprise_id=enterprise_id).order_by("-id")
