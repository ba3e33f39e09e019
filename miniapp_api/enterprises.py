"""Enterprise onboarding endpoints: register, edit, confirm, verify, submit, review, members."""

from echain.api import ApiRouter, Call
from echain.keys import DEPS
from miniapp_api.schemas import (
    AcceptInvitationIn,
    EnterpriseDetail,
    EnterpriseList,
    EnterpriseOut,
    InvitationIn,
    InvitationOut,
    MemberList,
    MemberOut,
    MemberRolesIn,
    ReviewIn,
)
from models.enterprises import Enterprise
from workflow import members, onboarding
from workflow.access import enterprise_for_member
from workflow.onboarding import EnterpriseInput, EnterpriseUpdate

router = ApiRouter()
TAG = "企业入驻"


async def _detail(e: Enterprise) -> EnterpriseDetail:
    return EnterpriseDetail(**EnterpriseOut.of(e).model_dump(), missing_for_review=await onboarding.missing_for_review(e))


@router.post("/api/v1/enterprises", summary="注册企业（四要素核验）", tag=TAG, body=EnterpriseInput, response=EnterpriseDetail,
             status=201, errors=(409,), idempotent=True)
async def register(call: Call) -> EnterpriseDetail:
    """Create an enterprise in draft; the caller becomes its admin."""
    return await _detail(await onboarding.register(call.app[DEPS], call.user, call.body))


@router.get("/api/v1/enterprises/{enterprise_id}", summary="企业详情", tag=TAG, response=EnterpriseDetail)
async def get_enterprise(call: Call) -> EnterpriseDetail:
    """For members of the enterprise and platform operators."""
    enterprise, _ = await enterprise_for_member(call.user, call.ids["enterprise_id"], operator_may_read=True)
    return await _detail(enterprise)


@router.put("/api/v1/enterprises/{enterprise_id}", summary="修改企业信息（待提交或被驳回时）", tag=TAG,
            body=EnterpriseUpdate, response=EnterpriseDetail, errors=(403, 409))
async def update_enterprise(call: Call) -> EnterpriseDetail:
    """Changing any of the four elements re-runs the verification; the info must be confirmed again."""
    return await _detail(await onboarding.update(call.app[DEPS], call.user, call.ids["enterprise_id"], call.body))


@router.post("/api/v1/enterprises/{enterprise_id}/confirm", summary="确认企业信息", tag=TAG, response=EnterpriseDetail,
             errors=(403, 409))
async def confirm(call: Call) -> EnterpriseDetail:
    """The admin confirms the information on first entry."""
    return await _detail(await onboarding.confirm_info(call.user, call.ids["enterprise_id"]))


@router.post("/api/v1/enterprises/{enterprise_id}/verification", summary="重新进行四要素核验", tag=TAG,
             response=EnterpriseDetail, errors=(403, 409))
async def reverify(call: Call) -> EnterpriseDetail:
    """Run the four-element check again."""
    return await _detail(await onboarding.reverify(call.app[DEPS], call.user, call.ids["enterprise_id"]))


@router.post("/api/v1/enterprises/{enterprise_id}/submit", summary="提交平台审核", tag=TAG, response=EnterpriseDetail,
             errors=(403, 409), idempotent=True)
async def submit(call: Call) -> EnterpriseDetail:
    """Needs a matched four-element check, at least one business role, confirmed info and the documents."""
    return await _detail(await onboarding.submit(call.user, call.ids["enterprise_id"]))


@router.get("/api/v1/admin/enterprises/pending", summary="待审核企业（平台运营）", tag=TAG, response=EnterpriseList,
            errors=(403,))
async def pending(call: Call) -> EnterpriseList:
    """Oldest submission first."""
    return EnterpriseList(items=[EnterpriseOut.of(e) for e in await onboarding.pending_reviews(call.user)])


@router.post("/api/v1/admin/enterprises/{enterprise_id}/review", summary="审核企业（通过/驳回）", tag=TAG, body=ReviewIn,
             response=EnterpriseDetail, errors=(403, 409), idempotent=True)
async def review(call: Call) -> EnterpriseDetail:
    """A rejection needs a reason; the enterprise may edit and resubmit."""
    e = await onboarding.review(call.user, call.ids["enterprise_id"], call.body.decision, call.body.reason)
    return await _detail(e)


@router.post("/api/v1/enterprises/{enterprise_id}/invitations", summary="邀请成员（生成一次性邀请码）", tag=TAG,
             body=InvitationIn, response=InvitationOut, status=201, errors=(403,), idempotent=True)
async def invite(call: Call) -> InvitationOut:
    """The code is shown once; it expires after 7 days."""
    invitation, code = await members.invite(call.app[DEPS], call.user, call.ids["enterprise_id"], call.body.roles)
    return InvitationOut(code=code, roles=invitation.roles, expires_at=invitation.expires_at)


@router.post("/api/v1/invitations/accept", summary="使用邀请码加入企业", tag=TAG, body=AcceptInvitationIn,
             response=MemberOut, errors=(404, 409), idempotent=True)
async def accept_invitation(call: Call) -> MemberOut:
    """Each code works once."""
    member = await members.accept(call.app[DEPS], call.user, call.body.code)
    await member.fetch_related("user")
    return MemberOut.of(member)


@router.get("/api/v1/enterprises/{enterprise_id}/members", summary="企业成员", tag=TAG, response=MemberList)
async def list_members(call: Call) -> MemberList:
    """Members and their roles."""
    return MemberList(items=[MemberOut.of(m) for m in await members.members(call.user, call.ids["enterprise_id"])])


@router.put("/api/v1/enterprises/{enterprise_id}/members/{user_id}", summary="设置成员角色", tag=TAG, body=MemberRolesIn,
            response=MemberOut, errors=(403, 409))
async def set_member_roles(call: Call) -> MemberOut:
    """Admins only; the last admin keeps the admin role."""
    member = await members.set_roles(call.user, call.ids["enterprise_id"], call.ids["user_id"], call.body.roles)
    await member.fetch_related("user")
    return MemberOut.of(member)
