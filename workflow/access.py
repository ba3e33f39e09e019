"""Who may touch which enterprise: the checks every use case runs before acting."""

from __future__ import annotations

from collections.abc import Iterable

from models.enterprises import Enterprise
from models.people import Membership, User
from workflow.errors import Forbidden, NotFound
from workflow.roles import MEMBER_ROLES


def require_operator(user: User) -> None:
    """Only platform operators pass."""
    if not user.is_platform_operator:
        raise Forbidden("仅平台运营人员可以执行此操作", code="platform_operator_required")


async def load_enterprise(enterprise_id: int) -> Enterprise:
    """The enterprise or a 404."""
    enterprise = await Enterprise.get_or_none(id=enterprise_id)
    if enterprise is None:
        raise NotFound("企业不存在", code="enterprise_not_found")
    return enterprise


async def membership_of(user: User, enterprise_id: int) -> Membership | None:
    """The person's membership in the enterprise, if any."""
    return await Membership.get_or_none(user_id=user.id, enterprise_id=enterprise_id)


async def enterprise_for_member(
    user: User, enterprise_id: int, roles: Iterable[str] = (), *, operator_may_read: bool = False
) -> tuple[Enterprise, Membership | None]:
    """Load an enterprise the user belongs to (with one of `roles` if given).

    Non-members get a 404, not a 403, so nobody can probe which enterprise ids exist.
    """
    enterprise = await load_enterprise(enterprise_id)
    member = await membership_of(user, enterprise_id)
    if member is None:
        if operator_may_read and user.is_platform_operator:
            return enterprise, None
        raise NotFound("企业不存在", code="enterprise_not_found")
    wanted = tuple(roles)
    if wanted and not set(wanted) & set(member.roles):
        names = "、".join(MEMBER_ROLES[r] for r in wanted)
        raise Forbidden(f"需要以下成员角色之一：{names}", code="member_role_required")
    return enterprise, member
