"""Which documents a financing may carry, and who may download them through a financing."""

from __future__ import annotations

from models.financing import FinancingAttachment
from models.people import User
from workflow.financing.parties import load_context, viewer_for

# Supporting evidence a supplier may attach; identity documents are deliberately absent.
MATERIAL_KINDS = ("invoice", "trade_contract", "other")

PURPOSES = {"material": "融资材料", "contract": "保理合同", "voucher": "放款凭证", "repayment": "还款凭证"}


async def readable_via_financing(user: User, document_id: int) -> bool:
    """True when the person belongs to a party of a financing that references the document.

    Supplier, core enterprise and the winning funder read every attachment; funders that were merely
    allocated read the application material only (they need it to decide), not contracts or payments.
    """
    uses = await FinancingAttachment.filter(document_id=document_id).values_list("financing_id", "purpose")
    if not uses:
        return False
    mine = set((await viewer_for(user)).roles)
    if not mine:
        return False
    for financing_id, purpose in uses:
        ctx = await load_context(financing_id)
        f = ctx.financing
        if mine & {f.supplier_id, f.core_id, f.funder_id}:
            return True
        if purpose == "material" and mine & set(ctx.allocations):
            return True
    return False
