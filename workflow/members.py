"""Members of an enterprise: one-time invitations and member roles."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from models.people import Invitation, Membership, User
from workflow import ledger
from workflow.access import enterprise_for_member
from workflow.deps import Deps
from workflow.errors import Conflict, InvalidInput, NotFound

INVITATION_TTL = timedelta(days=7)
_CODE_CONTEXT = "invitation.code"


async def invite(deps: Deps, actor: User, enterprise_id: int, roles: list[str]) -> tuple[Invitation, str]:
    """An admin creates a one-time code; the code is returned once and only its keyed hash is kept."""
    enterprise, _ = await enterprise_for_member(actor, enterprise_id, ("admin",))
    code = secrets.token_urlsafe(12)
    async with in_transaction() as conn:
        invitation = await Invitation.create(
            enterprise=enterprise, code_hash=deps.pii.lookup_hash(code, context=_CODE_CONTEXT), roles=sorted(set(roles)),
            created_by=actor, expires_at=datetime.now(UTC) + INVITATION_TTL, using_db=conn,
        )
        await ledger.append(conn, actor=f"user:{actor.id}", subject=f"enterprise:{enterprise.id}", action="invite",
                            payload={"invitation": invitation.id, "roles": invitation.roles})
    return invitation, code


async def accept(deps: Deps, actor: User, code: str) -> Membership:
    """Join the enterprise behind a code; a code works once, before it expires."""
    invitation = await Invitation.get_or_none(code_hash=deps.pii.lookup_hash(code.strip(), context=_CODE_CONTEXT))
    if invitation is None:
        raise NotFound("邀请码无效，请向企业管理员索取新的邀请码", code="invitation_not_found")
    if invitation.used_at is not None:
        raise Conflict("该邀请码已被使用", code="invitation_used")
    if invitation.expires_at < datetime.now(UTC):
        raise Conflict("该邀请码已过期，请向企业管理员索取新的邀请码", code="invitation_expired")
    async with in_transaction() as conn:
        # Conditional update: of two people racing for one code, exactly one gets it.
        taken = await Invitation.filter(id=invitation.id, used_at=None).using_db(conn).update(
            used_at=datetime.now(UTC), used_by_id=actor.id
        )
        if taken != 1:
            raise Conflict("该邀请码已被使用", code="invitation_used")
        member = await _add_roles(conn, actor, invitation.enterprise_id, invitation.roles)
        await ledger.append(conn, actor=f"user:{actor.id}", subject=f"enterprise:{invitation.enterprise_id}",
                            action="join", payload={"invitation": invitation.id, "roles": member.roles})
    return member


async def _add_roles(conn, user: User, enterprise_id: int, roles: list[str]) -> Membership:  # noqa: ANN001
    member = await Membership.get_or_none(user_id=user.id, enterprise_id=enterprise_id).using_db(conn)
    if member is None:
        return await Membership.create(user=user, enterprise_id=enterprise_id, roles=sorted(set(roles)), using_db=conn)
    member.roles = sorted(set(member.roles) | set(roles))
    await member.save(update_fields=["roles"], using_db=conn)
    return member


async def members(actor: User, enterprise_id: int) -> list[Membership]:
    """The enterprise's members (visible to its members and operators)."""
    await enterprise_for_member(actor, enterprise_id, operator_may_read=True)
    return await Membership.filter(enterprise_id=enterprise_id).prefetch_related("user").order_by("id")


async def set_roles(actor: User, enterprise_id: int, user_id: int, roles: list[str]) -> Membership:
    """An admin changes a member's roles; the last admin cannot be removed."""
    await enterprise_for_member(actor, enterprise_id, ("admin",))
    if not roles:
        raise InvalidInput("成员至少需要一个角色", code="roles_required")
    async with in_transaction() as conn:
        member = await Membership.get_or_none(user_id=user_id, enterprise_id=enterprise_id).using_db(conn)
        if member is None:
            raise NotFound("该成员不存在", code="member_not_found")
        if "admin" in member.roles and "admin" not in roles:
            admins = await Membership.filter(enterprise_id=enterprise_id).using_db(conn).values_list("roles", flat=True)
            if sum("admin" in r for r in admins) <= 1:
                raise Conflict("企业至少需要保留一名管理员", code="last_admin")
        member.roles = sorted(set(roles))
        await member.save(update_fields=["roles"], using_db=conn)
        await ledger.append(conn, actor=f"user:{actor.id}", subject=f"enterprise:{enterprise_id}", action="set_member_roles",
                            payload={"user": user_id, "roles": member.roles})
    return member
