"""Registrations awaiting review, powers of attorney awaiting approval, and the documents behind them."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from console.forms import perform
from console.keys import USER
from console.render import page
from echain.api import parse_model
from echain.keys import DEPS
from miniapp_api.schemas import ReviewIn  # the API's own review body: identical validation
from workflow import attorney, documents, onboarding, registration_review
from workflow.attorney import ATTORNEY
from workflow.documents import DOCUMENT_KINDS
from workflow.errors import NotFound
from workflow.onboarding import ONBOARDING


def path_id(request: web.Request, name: str) -> int:
    """A numeric path parameter, or a 404 page."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("请求的记录不存在", code="not_found")
    return int(raw)


async def _review_body(request: web.Request) -> ReviewIn:
    form = await request.post()
    return parse_model(ReviewIn, {"decision": form.get("decision", ""), "reason": form.get("reason", "")})


async def registrations(request: web.Request) -> web.Response:
    """Enterprises awaiting the platform's review, oldest submission first."""
    items = await onboarding.pending_reviews(request[USER])
    return await page(request, "registrations.html", items=items)


async def registration(request: web.Request) -> web.Response:
    """One enterprise: data with the masked ID number, documents, four-element checks, and the decision form."""
    sheet = await registration_review.review_sheet(request[USER], path_id(request, "enterprise_id"))
    return await page(request, "registration.html", sheet=sheet, e=sheet.enterprise,
                      status_label=ONBOARDING.state_labels[sheet.enterprise.status], kinds=DOCUMENT_KINDS)


async def review_registration(request: web.Request) -> web.Response:
    """Approve, or reject with a reason (onboarding.review, as POST /api/v1/admin/enterprises/{id}/review)."""
    enterprise_id = path_id(request, "enterprise_id")

    async def work() -> str:
        body = await _review_body(request)
        e = await onboarding.review(request[USER], enterprise_id, body.decision, body.reason)
        return f"已审核通过：{e.name}" if body.decision == "approve" else f"已驳回：{e.name}（原因：{e.review_reason}）"

    return await perform(request, work, done="/console/registrations", back=f"/console/registrations/{enterprise_id}")


async def attorneys(request: web.Request) -> web.Response:
    """Powers of attorney awaiting approval, oldest first."""
    items = await attorney.pending_reviews(request[USER])
    for poa in items:
        await poa.fetch_related("enterprise", "agent")
    return await page(request, "attorneys.html", items=items, action_label=attorney.action_label,
                      state_labels=ATTORNEY.state_labels)


async def review_attorney(request: web.Request) -> web.Response:
    """Approve, or reject with a reason (attorney.review, as POST /api/v1/admin/powers-of-attorney/{id}/review)."""
    poa_id = path_id(request, "poa_id")

    async def work() -> str:
        body = await _review_body(request)
        poa = await attorney.review(request[USER], poa_id, body.decision, body.reason)
        verdict = "已通过" if body.decision == "approve" else "已驳回"
        return f"授权委托书 {poa.id} {verdict}"

    return await perform(request, work, done="/console/attorneys", back="/console/attorneys")


async def document(request: web.Request) -> web.Response:
    """A stored document for the operator: images shown inline, PDFs downloaded (documents.fetch decides access)."""
    content = await documents.fetch(request.config_dict[DEPS], request[USER], path_id(request, "document_id"))
    doc = content.document
    name = doc.filename or f"document-{doc.id}{documents.EXTENSIONS[doc.content_type]}"
    disposition = "inline" if doc.content_type.startswith("image/") else "attachment"
    return web.Response(body=content.data, content_type=doc.content_type, headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "private, no-store",
        # The bytes were sniffed on upload; still, never let a browser run anything inside them.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })
