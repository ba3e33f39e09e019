"""Every financing action as one use-case function, and `perform`, the dispatcher the entry points call.

Each use case takes the acting person, the financing id, its body model (if the action has one) and
`enterprise_id`, which picks the acting enterprise when the person belongs to several that could act.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from models.financing import Financing
from models.people import User
from workflow.errors import Forbidden, InvalidInput, NotFound
from workflow.financing.allocation import allocate, decline, subscribe
from workflow.financing.bodies import ACTION_BODIES, FinancingInput
from workflow.financing.confirmation import approve, claim, reject
from workflow.financing.contract import issue_contract, revise_contract, sign
from workflow.financing.esign import ContractServices
from workflow.financing.settlement import confirm_receipt, confirm_repayment, disburse, report_repayment
from workflow.financing.submission import create_financing, withdraw
from workflow.financing.table import FINANCING

__all__ = [
    "ACTION_BODIES", "CONTRACT_ACTIONS", "HANDLERS", "ContractServices", "FinancingInput", "allocate", "approve", "claim", "confirm_receipt",
    "confirm_repayment", "create_financing", "decline", "disburse", "issue_contract", "perform", "reject",
    "report_repayment", "revise_contract", "sign", "subscribe", "withdraw",
]

HANDLERS: dict[str, Callable[..., Awaitable[Financing]]] = {
    "withdraw": withdraw,
    "claim": claim,
    "approve": approve,
    "reject": reject,
    "allocate": allocate,
    "subscribe": subscribe,
    "decline": decline,
    "issue_contract": issue_contract,
    "revise_contract": revise_contract,
    "sign": sign,
    "disburse": disburse,
    "confirm_receipt": confirm_receipt,
    "report_repayment": report_repayment,
    "confirm_repayment": confirm_repayment,
}


# The actions that work on the contract PDF and need ContractServices (storage, tickets, CA).
CONTRACT_ACTIONS = frozenset({"issue_contract", "revise_contract", "sign"})


async def perform(actor: User, financing_id: int, action: str, body: BaseModel | None = None, *,
                  enterprise_id: int | None = None, services: ContractServices | None = None) -> Financing:
    """Run `action` on a financing as `actor`; the body must be an instance of ACTION_BODIES[action].

    `services` is handed to the contract actions (issue, revise, sign) and ignored by the others."""
    if action == "submit":
        raise InvalidInput("发起融资会新建一笔融资，请使用“发起融资”接口，而不是对已有融资操作", code="unknown_action")
    if action in FINANCING.actions and action not in HANDLERS:
        t = FINANCING.transition(action)
        raise Forbidden(f"“{t.label}”由系统定时任务自动执行，不能手工发起", code="system_action")
    if action not in HANDLERS:
        raise NotFound(f"不支持的融资操作：{action}", code="unknown_action")
    model = ACTION_BODIES[action]
    label = FINANCING.transition(action).label
    args: list[Any] = [actor, financing_id]
    if model is None:
        if body is not None:
            raise InvalidInput(f"“{label}”不需要填写内容", code="unexpected_body")
    else:
        if body is None and not any(f.is_required() for f in model.model_fields.values()):
            body = model()  # every field optional (a withdrawal reason, an approval comment)
        if not isinstance(body, model):
            raise InvalidInput(f"“{label}”需要填写内容，请按接口说明提交", code="body_required")
        args.append(body)
    extra: dict[str, Any] = {"services": services} if action in CONTRACT_ACTIONS else {}
    return await HANDLERS[action](*args, enterprise_id=enterprise_id, **extra)
