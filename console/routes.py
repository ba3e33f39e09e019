"""Every console page and form target (paths under /console)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from console.middleware import redirect
from console.views import auth, financings, overview, reviews
from workflow.errors import NotFound

STATIC = Path(__file__).parent / "static"


async def not_found(request: web.Request) -> web.Response:
    """Anything else under /console: a Chinese 404 page (bare /console goes to the dashboard)."""
    if request.path == "/console":
        return redirect("/console/")
    raise NotFound("页面不存在", code="not_found")


def add_routes(app: web.Application) -> None:
    """Register the console's routes on its sub-application."""
    r = app.router
    r.add_get("/login", auth.login_form, name="login")
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout, name="logout")
    r.add_get("/", overview.dashboard, name="dashboard")
    r.add_get("/ledger", overview.ledger_status, name="ledger")
    r.add_get("/registrations", reviews.registrations, name="registrations")
    r.add_get("/registrations/{enterprise_id}", reviews.registration)
    r.add_post("/registrations/{enterprise_id}/review", reviews.review_registration)
    r.add_get("/attorneys", reviews.attorneys, name="attorneys")
    r.add_post("/attorneys/{poa_id}/review", reviews.review_attorney)
    r.add_get("/documents/{document_id}", reviews.document)
    r.add_get("/allocations", financings.allocations, name="allocations")
    r.add_get("/pricing", financings.pricing, name="pricing")
    r.add_get("/financings", financings.financings, name="financings")
    r.add_get("/financings/{financing_id}", financings.financing)
    r.add_post("/financings/{financing_id}/actions/{action}", financings.act)
    r.add_get("/financings/{financing_id}/events", financings.events)
    r.add_get("/contracts/{contract_id}/verification", financings.contract_verification)
    r.add_get("/contracts/{contract_id}/pdf", financings.contract_pdf)
    r.add_static("/static", STATIC, name="static")
    r.add_route("*", "/{tail:.*}", not_found)
