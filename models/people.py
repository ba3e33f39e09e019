"""People: a login identity (mini-program openid) and the enterprises they belong to."""

from tortoise import fields
from tortoise.models import Model


class User(Model):
    """One person as WeChat knows them through the mini-program."""

    id = fields.BigIntField(primary_key=True)
    openid = fields.CharField(max_length=64, unique=True)
    unionid = fields.CharField(max_length=64, null=True, unique=True)
    display_name = fields.CharField(max_length=64, default="")
    is_platform_operator = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class Membership(Model):
    """A person's place in an enterprise, with their member roles there."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="memberships", on_delete=fields.CASCADE)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="memberships", on_delete=fields.CASCADE)
    roles = fields.JSONField(default=list)  # subset of workflow.roles.MEMBER_ROLES
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "memberships"
        unique_together = (("user", "enterprise"),)


class Invitation(Model):
    """A one-time code that lets a person join an enterprise with given member roles."""

    id = fields.BigIntField(primary_key=True)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="invitations", on_delete=fields.CASCADE)
    code_hash = fields.CharField(max_length=64, unique=True)  # keyed hash: the code itself is never stored
    roles = fields.JSONField(default=list)
    created_by = fields.ForeignKeyField("models.User", related_name="invitations_sent", on_delete=fields.CASCADE)
    expires_at = fields.DatetimeField()
    used_by = fields.ForeignKeyField("models.User", related_name="invitations_used", null=True, on_delete=fields.SET_NULL)
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invitations"
