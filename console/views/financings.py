"""Financings: the platform's work lists, one financing with its timeline and live updates, actions, contracts."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

from aiohttp import web

from console.forms import parse_form, perform
from console.keys import USER
from console.render import page, yuan
from console.views.reviews import path_id
from echain import live
from echain.api import parse_model
from echain.keys import DEPS, REDIS
from models.enterprises import Enterprise
from models.people import User
from workflow.errors import NotFound
from workflow.financing import esign, money, pipeline, queries, service
from workflow.financing.bodies import ACTION_BODIES
from workflow.financing.table import FINANCING

DEFAULT_ADVANCE_RATE = Decimal("0.8")  # DESIGN.md §2: 80 % is the common default; the operator may change it
PAGE_SIZE = 50


async def _worklist(request: web.Request, action: str, title: str, hint: str) -> web.Response:
    items = await pipeline.awaiting_platform(request[USER], action)
    return await page(request, "worklist.html", items=items, title=title, hint=hint,
                      action_label=FINANCING.transition(action).label)


async def allocations(request: web.Request) -> web.Response:
    """Confirmed assets waiting to be offered to funders (and assets every offered funder declined)."""
    return await _worklist(request, "allocate", "待分配资产", "核心企业已确权，请选择资金方进行分配。")


async def pricing(request: web.Request) -> web.Response:
    """Subscribed assets waiting for the final rate and the contract."""
    return await _worklist(request, "issue_contract", "待定价资产",
                           "资金方已认购，请确定最终利率、融资比例与融资金额并出具合同。")


async def financings(request: web.Request) -> web.Response:
    """Every financing, newest first, optionally of one state; keyset pages."""
    status = request.query.get("status", "")
    filters = parse_model(queries.FinancingFilters, {"status": [status] if status else None})
    result = await queries.list_financings(request[USER], filters, request.query.get("cursor") or None, PAGE_SIZE)
    await _with_parties(result.items)
    return await page(request, "financings.html", items=result.items, next_cursor=result.next_cursor,
                      status=status, states=FINANCING.state_labels)


async def _with_parties(items: list) -> None:
    for f in items:
        await f.fetch_related("supplier", "core", "funder")


async def financing(request: web.Request) -> web.Response:
    """One financing: parties, amounts, allocations, contract, timeline, and the platform's forms."""
    user = request[USER]
    d = await queries.detail(user, path_id(request, "financing_id"))
    f = d.financing
    await f.fetch_related("supplier", "core", "funder")
    mine = {a.action: a for a in d.next_actions if a.party == "platform"}
    funders = await pipeline.funder_candidates(user, f) if "allocate" in mine else []
    offered = {e.id: e.name for e in await Enterprise.filter(id__in=[a.funder_id for a in d.allocations] or [-1])}
    timeline = await queries.timeline(f)
    suggested = min(f.requested_amount, money.advance_limit(f.face_amount, DEFAULT_ADVANCE_RATE))
    return await page(
        request, "financing.html", d=d, f=f, timeline=timeline, actors=await _actor_names(timeline), actions=mine,
        funders=funders,
        offered=offered, default_advance_rate=DEFAULT_ADVANCE_RATE, suggested_amount=money.format_yuan(suggested),
        suggested_text=yuan(suggested), waiting=d.waiting_for,
    )


async def _actor_names(timeline: list[queries.TimelineEntry]) -> dict[str, str]:
    """Ledger actors ("user:12", "system") as people read them."""
    ids = {int(t.actor[5:]) for t in timeline if t.actor.startswith("user:") and t.actor[5:].isdigit()}
    names = {f"user:{u.id}": u.display_name or f"用户 {u.id}" for u in await User.filter(id__in=ids or [-1])}
    return names | {"system": "系统", "cli": "命令行"}


async def act(request: web.Request) -> web.Response:
    """Any action of the table, through the same use case and body model as
    POST /api/v1/financings/{id}/actions/{action}; the use case decides whether the operator may."""
    financing_id = path_id(request, "financing_id")
    action = request.match_info["action"]
    if action not in ACTION_BODIES:
        raise NotFound(f"不支持的融资操作：{action}", code="unknown_action")
    back = f"/console/financings/{financing_id}"

    async def work() -> str:
        body = parse_form(ACTION_BODIES[action], await request.post())
        f = await service.act(request.config_dict[DEPS], request[USER], financing_id, action, body)
        return f"已{FINANCING.transition(action).label}：融资 {f.id} 现为“{FINANCING.state_labels[f.status]}”"

    return await perform(request, work, done=back, back=back)


async def events(request: web.Request) -> web.StreamResponse:
    """Live progress of one financing for the console page (echain.live, as the API's events endpoint)."""
    f = await queries.get_financing(request[USER], path_id(request, "financing_id"))
    snapshot = {"subject": f"financing:{f.id}", "status": f.status, "status_label": FINANCING.state_labels[f.status],
                "version": f.version}
    return await live.stream(request, request.config_dict[REDIS], f"financing:{f.id}", snapshot)


def _services(request: web.Request) -> esign.ContractServices:
    services = request.config_dict[DEPS].contracts
    assert services is not None, "Deps.contracts is wired in echain/app.py"
    return services


async def contract_verification(request: web.Request) -> web.Response:
    """Each signature (signer, time, intact) and whether the contract changed after signing."""
    report = await esign.verification(_services(request), request[USER], path_id(request, "contract_id"))
    return await page(request, "contract.html", report=report)


async def contract_pdf(request: web.Request) -> web.Response:
    """The contract's current PDF revision, as a download."""
    pdf = await esign.readable_pdf(_services(request), request[USER], path_id(request, "contract_id"))
    name = esign.pdf_filename(pdf.financing, pdf.contract.version)
    return web.Response(body=pdf.data, content_type="application/pdf", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "private, no-store", "Content-Security-Policy": "default-src 'none'; sandbox",
    })
