"""Platform-operator endpoints that are not about one enterprise."""

from pydantic import BaseModel

from echain.api import ApiRouter, Call
from workflow import ledger
from workflow.access import require_operator

router = ApiRouter()


class LedgerVerificationOut(BaseModel):
    """The result of recomputing the whole hash chain."""

    ok: bool
    entries: int
    bad_seq: int | None
    reason: str


@router.get("/api/v1/admin/ledger/verification", summary="账本校验（平台运营）", tag="平台运营",
            response=LedgerVerificationOut, errors=(403,))
async def verify_ledger(call: Call) -> LedgerVerificationOut:
    """Recompute every link of the chain; names the first bad entry."""
    require_operator(call.user)
    result = await ledger.verify()
    return LedgerVerificationOut(ok=result.ok, entries=result.entries, bad_seq=result.bad_seq, reason=result.reason)
