"""Offering a confirmed asset to funders and the race to subscribe (seed step 4)."""

from __future__ import annotations

from models.enterprises import Enterprise
from models.financing import Allocation, Financing
from models.people import User
from workflow.errors import Conflict, InvalidInput
from workflow.financing.bodies import AllocateBody, DeclineBody
from workflow.financing.table import FINANCING
from workflow.financing.transition import begin, commit, now, retry_when_stale

_TAKEN = "该资产已被其他资金方认购"


def _require_open(allocation_status: str | None, declined_message: str) -> None:
    # The financing row and its allocations are read one after the other: a winner committing in between
    # shows up here as "lost" while the financing still looked open.
    if allocation_status == "declined":
        raise Conflict(declined_message, code="allocation_declined")
    if allocation_status != "allocated":
        raise Conflict(_TAKEN, code="already_subscribed")


async def _eligible_funders(financing: Financing, ids: list[int]) -> list[int]:
    wanted = list(dict.fromkeys(ids))
    found = {e.id: e for e in await Enterprise.filter(id__in=wanted)}
    bad = [i for i in wanted if i not in found or found[i].status != "approved" or not found[i].is_funder]
    if bad:
        raise InvalidInput(f"企业 {'、'.join(map(str, bad))} 不存在或不是已通过平台审核的资金方，请重新选择",
                           code="funder_not_eligible", details={"enterprise_ids": bad})
    own = [i for i in wanted if i in (financing.supplier_id, financing.core_id)]
    if own:
        raise InvalidInput(f"企业 {'、'.join(map(str, own))} 是本笔融资的资产方或核心企业，不能同时作为资金方",
                           code="funder_is_party", details={"enterprise_ids": own})
    return wanted


async def allocate(actor: User, financing_id: int, body: AllocateBody, *, enterprise_id: int | None = None) -> Financing:
    """The platform offers the asset to funders; again only after every funder offered so far declined."""
    acting = await begin(actor, financing_id, "allocate", enterprise_id)
    f, ctx = acting.financing, acting.ctx
    if f.status == "allocated" and ctx.open_funders:
        waiting = "、".join(map(str, ctx.open_funders))
        raise Conflict(f"资金方 {waiting} 尚未答复认购，全部谢绝后才能重新分配", code="allocation_open",
                       details={"enterprise_ids": ctx.open_funders})
    funders = await _eligible_funders(f, body.funder_ids)
    moment = now()

    async def offer(conn) -> None:  # noqa: ANN001
        for funder_id in funders:
            if funder_id in ctx.allocations:
                # A funder that declined before may be offered the asset again (terms may have been discussed).
                await Allocation.filter(financing_id=f.id, funder_id=funder_id).using_db(conn).update(
                    status="allocated", decline_reason="", allocated_by_id=actor.id, allocated_at=moment,
                    decided_at=None,
                )
            else:
                await Allocation.create(financing_id=f.id, funder_id=funder_id, allocated_by=actor,
                                        allocated_at=moment, using_db=conn)

    return await commit(acting, "allocated", side=offer, payload={"funders": funders},
                        duplicate="分配记录刚被其他运营人员修改，请刷新后重试")


async def subscribe(actor: User, financing_id: int, *, enterprise_id: int | None = None) -> Financing:
    """An allocated funder subscribes; exactly one wins, every other gets 409 "该资产已被其他资金方认购"."""
    acting = await begin(actor, financing_id, "subscribe", enterprise_id, check_state=False)
    f, funder_id = acting.financing, acting.enterprise_id
    if f.funder_id is not None and f.funder_id != funder_id:
        raise Conflict(_TAKEN, code="already_subscribed")
    FINANCING.check("subscribe", f.status)
    _require_open(acting.ctx.allocations.get(funder_id), "贵企业已谢绝认购该资产，不能再认购；如需认购请联系平台重新分配")
    moment = now()

    async def win(conn) -> None:  # noqa: ANN001
        won = await Allocation.filter(financing_id=f.id, funder_id=funder_id, status="allocated").using_db(conn).update(
            status="won", winner_of=f.id, decided_at=moment
        )
        if won != 1:
            raise Conflict("贵企业的认购资格已变化（可能已谢绝认购），请刷新后重试", code="allocation_changed")
        await Allocation.filter(financing_id=f.id, status="allocated").using_db(conn).update(
            status="lost", decided_at=moment
        )

    return await commit(acting, "subscribed", values={"funder_id": funder_id}, side=win, payload={"funder": funder_id},
                        duplicate=_TAKEN)


async def decline(actor: User, financing_id: int, body: DeclineBody | None = None, *,
                  enterprise_id: int | None = None) -> Financing:
    """An allocated funder passes; when all have passed the platform may allocate again."""
    return await retry_when_stale(lambda: _decline(actor, financing_id, body, enterprise_id))


async def _decline(actor: User, financing_id: int, body: DeclineBody | None, enterprise_id: int | None) -> Financing:
    acting = await begin(actor, financing_id, "decline", enterprise_id)
    f, funder_id = acting.financing, acting.enterprise_id
    _require_open(acting.ctx.allocations.get(funder_id), "贵企业已谢绝过该资产，无需重复操作")
    reason = body.reason if body else ""

    async def record(conn) -> None:  # noqa: ANN001
        done = await Allocation.filter(financing_id=f.id, funder_id=funder_id, status="allocated").using_db(conn).update(
            status="declined", decline_reason=reason, decided_at=now()
        )
        if done != 1:
            raise Conflict("贵企业的分配状态已变化，请刷新后重试", code="allocation_changed")

    return await commit(acting, "allocated", side=record, payload={"funder": funder_id, "reason": reason})
