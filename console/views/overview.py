"""The pipeline dashboard and the ledger's verification status."""

from __future__ import annotations

from aiohttp import web

from console.charts import Bar, bar_chart
from console.keys import USER
from console.render import page, yuan
from workflow import attorney, ledger, onboarding
from workflow.access import require_operator
from workflow.financing import pipeline


async def dashboard(request: web.Request) -> web.Response:
    """Counts and amounts per state (table and SVG charts), what waits for the platform, the overdue list."""
    user = request[USER]
    figures = await pipeline.summary(user)
    count_chart = bar_chart([Bar(s.label, s.count, f"{s.count} 笔") for s in figures], title="各状态融资笔数")
    amount_chart = bar_chart([Bar(s.label, s.face_amount, f"{yuan(s.face_amount)} 元") for s in figures],
                             title="各状态票面金额（元）")
    todo = {
        "registrations": len(await onboarding.pending_reviews(user)),
        "attorneys": len(await attorney.pending_reviews(user)),
        "allocate": len(await pipeline.awaiting_platform(user, "allocate")),
        "issue_contract": len(await pipeline.awaiting_platform(user, "issue_contract")),
    }
    return await page(request, "dashboard.html", figures=figures, count_chart=count_chart, amount_chart=amount_chart,
                      todo=todo, overdue=await pipeline.overdue(user),
                      total_count=sum(s.count for s in figures), total_face=sum(s.face_amount for s in figures))


async def ledger_status(request: web.Request) -> web.Response:
    """Recompute the whole hash chain now (as GET /api/v1/admin/ledger/verification)."""
    require_operator(request[USER])
    return await page(request, "ledger.html", result=await ledger.verify())
