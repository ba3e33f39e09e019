"""Financing endpoints: apply, list, detail, one endpoint per action of the transition table, to-dos, live events."""

from __future__ import annotations

from aiohttp import web

from echain import live
from echain.api import ApiRouter, Call, Handler
from echain.keys import DEPS, REDIS
from miniapp_api.financing_schemas import (
    ActingQuery,
    FinancingDetailOut,
    FinancingListQuery,
    FinancingOut,
    FinancingPage,
    PolicyOut,
    TodoList,
    TodoOut,
    action_path,
)
from models.financing import Financing
from models.people import User
from workflow.financing import policy, queries, service
from workflow.financing.bodies import ACTION_BODIES, FinancingInput, PolicyInput
from workflow.financing.table import FINANCING, GUARDS, PARTY_LABELS

router = ApiRouter()
TAG = "融资"
ACTION_TAG = "融资操作"
_RELATED = ("supplier", "core", "funder")


async def detail_out(user: User, financing_id: int) -> FinancingDetailOut:
    """Everything the caller may see about one financing."""
    d = await queries.detail(user, financing_id)
    await d.financing.fetch_related(*_RELATED)
    return FinancingDetailOut.build(d, await queries.timeline(d.financing))


async def _replay(call: Call, subject: str) -> FinancingDetailOut:
    """The answer to a retry whose earlier attempt committed but lost its answer: the financing as it is now."""
    return await detail_out(call.user, int(subject.removeprefix("financing:")))


@router.post("/api/v1/financings", summary="发起融资", tag=TAG, body=FinancingInput, response=FinancingDetailOut,
             status=201, errors=(403, 409), idempotent=True, replay=_replay)
async def submit_financing(call: Call) -> FinancingDetailOut:
    """A supplier operator applies with the receivable and its materials (uploaded first as documents)."""
    financing = await service.submit(call.app[DEPS], call.user, call.body)
    return await detail_out(call.user, financing.id)


@router.get("/api/v1/financings", summary="融资查询（列表）", tag=TAG, query=FinancingListQuery, response=FinancingPage)
async def list_financings(call: Call) -> FinancingPage:
    """Only financings the caller's enterprises take part in; newest first; keyset pagination."""
    q = call.query
    page = await queries.list_financings(call.user, q.filters(), q.cursor, q.limit)
    await Financing.fetch_for_list(page.items, *_RELATED)
    return FinancingPage(items=[FinancingOut.of(f) for f in page.items], next_cursor=page.next_cursor)


@router.get("/api/v1/financings/{financing_id}", summary="融资详情（含时间线与可执行操作）", tag=TAG,
            response=FinancingDetailOut)
async def get_financing(call: Call) -> FinancingDetailOut:
    """Details, attachments, money figures, timeline from the ledger, and `next_actions` for the caller."""
    return await detail_out(call.user, call.ids["financing_id"])


@router.get("/api/v1/todos", summary="我的待办", tag=TAG, response=TodoList)
async def todos(call: Call) -> TodoList:
    """Across all the caller's enterprises and roles, what waits for them (derived from the transition table)."""
    items = await queries.todos(call.user)
    await Financing.fetch_for_list([t.financing for t in items], *_RELATED)
    return TodoList(items=[
        TodoOut(financing=FinancingOut.of(t.financing), action=t.action, label=t.label, enterprise_id=t.enterprise_id,
                party=t.party, party_label=t.party_label, path=action_path(t.financing.id, t.action))
        for t in items
    ])


@router.get("/api/v1/financings/{financing_id}/events", summary="实时进度（Server-Sent Events）", tag=TAG,
            binary_response="text/event-stream：先发送 snapshot 事件（当前状态），之后每次状态变化发送 transition 事件")
async def financing_events(call: Call) -> web.StreamResponse:
    """Live progress: the current state first, then each committed transition as it happens."""
    f = await queries.get_financing(call.user, call.ids["financing_id"])
    snapshot = {"subject": f"financing:{f.id}", "status": f.status, "status_label": FINANCING.state_labels[f.status],
                "version": f.version}
    return await live.stream(call.request, call.app[REDIS], f"financing:{f.id}", snapshot)


def _describe(action: str) -> str:
    t = FINANCING.transition(action)
    roles = "、".join(t.member_roles) or "—"
    rules = "；".join(GUARDS[g] for g in t.guards)
    text = f"{' / '.join(t.sources)} → {' / '.join(t.targets)}。执行方：{PARTY_LABELS[t.party]}（成员角色：{roles}）。"
    return text + (f"规则：{rules}。" if rules else "")


def _action_handler(action: str) -> Handler:
    async def handler(call: Call) -> FinancingDetailOut:
        financing = await service.act(call.app[DEPS], call.user, call.ids["financing_id"], action, call.body,
                                      enterprise_id=call.query.enterprise_id)
        return await detail_out(call.user, financing.id)

    handler.__name__ = f"financing_{action}"
    handler.__doc__ = _describe(action)
    return handler


# One endpoint per action of the table (submit creates, mark_overdue belongs to the scheduler).
for _t in FINANCING.transitions:
    if _t.action in ACTION_BODIES:
        router.post(f"/api/v1/financings/{{financing_id}}/actions/{_t.action}", summary=_t.label, tag=ACTION_TAG,
                    body=ACTION_BODIES[_t.action], query=ActingQuery, response=FinancingDetailOut,
                    errors=(403, 409), idempotent=True, replay=_replay)(_action_handler(_t.action))


@router.get("/api/v1/enterprises/{enterprise_id}/approval-policy", summary="确权审批策略", tag=TAG, response=PolicyOut)
async def get_policy(call: Call) -> PolicyOut:
    """The tiers in force (the default ones when none were set)."""
    tiers = await policy.view_policy(call.user, call.ids["enterprise_id"])
    return PolicyOut(enterprise_id=call.ids["enterprise_id"], tiers=tiers, description=policy.describe(tiers))


@router.put("/api/v1/enterprises/{enterprise_id}/approval-policy", summary="设置确权审批策略（核心企业管理员）", tag=TAG,
            body=PolicyInput, response=PolicyOut, errors=(403, 409))
async def set_policy(call: Call) -> PolicyOut:
    """Amount tiers → number of distinct approvers; financings already claimed keep their quorum."""
    saved = await policy.set_policy(call.user, call.ids["enterprise_id"], call.body)
    return PolicyOut(enterprise_id=saved.enterprise_id, tiers=saved.tiers, description=policy.describe(saved.tiers))
