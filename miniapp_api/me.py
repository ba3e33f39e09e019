"""The caller's own page."""

from echain.api import ApiRouter, Call
from miniapp_api.schemas import EnterpriseOut, MeOut, MyEnterprise, PlatformCounts, UserOut
from workflow import profile

router = ApiRouter()


@router.get("/api/v1/me", summary="我的信息（企业、角色与待办计数）", tag="我的", response=MeOut)
async def me(call: Call) -> MeOut:
    """Every enterprise and role the caller holds, in one view."""
    view = await profile.overview(call.user)
    return MeOut(
        user=UserOut.of(view.user),
        enterprises=[MyEnterprise(enterprise=EnterpriseOut.of(v.enterprise), member_roles=v.member_roles, counts=v.counts,
                                  role_counts=v.role_counts)
                     for v in view.enterprises],
        platform=PlatformCounts(pending_reviews=view.pending_reviews) if view.pending_reviews is not None else None,
    )
