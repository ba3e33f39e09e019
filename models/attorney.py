"""Powers of attorney: an enterprise authorises one agent member to act (sign) within a scope."""

from tortoise import fields
from tortoise.models import Model


class PowerOfAttorney(Model):
    """One 授权委托书: who may act for which enterprise, up to what amount, between which dates, for which actions.

    Status follows workflow.attorney.ATTORNEY (pending_review → approved / rejected; pending or approved →
    revoked). Expiry is not a state: it is read from `valid_to` on the day the authority is used.
    """

    id = fields.BigIntField(primary_key=True)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="powers_of_attorney", on_delete=fields.CASCADE)
    agent = fields.ForeignKeyField("models.User", related_name="powers_of_attorney_held", on_delete=fields.RESTRICT)
    document = fields.ForeignKeyField("models.Document", related_name="powers_of_attorney", on_delete=fields.RESTRICT)
    max_amount = fields.BigIntField()  # fen: the largest single financing amount the agent may sign for
    valid_from = fields.DateField()  # inclusive, China calendar date
    valid_to = fields.DateField()  # inclusive
    actions = fields.JSONField(default=list)  # financing action names (workflow.financing.table.FINANCING)
    status = fields.CharField(max_length=20, default="pending_review", db_index=True)
    version = fields.IntField(default=1)  # optimistic lock: every change bumps it
    created_by = fields.ForeignKeyField("models.User", related_name="powers_of_attorney_granted", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)
    reviewed_by = fields.ForeignKeyField("models.User", related_name="powers_of_attorney_reviewed", null=True,
                                         on_delete=fields.SET_NULL)
    reviewed_at = fields.DatetimeField(null=True)
    review_reason = fields.CharField(max_length=500, default="")
    revoked_by = fields.ForeignKeyField("models.User", related_name="powers_of_attorney_revoked", null=True,
                                        on_delete=fields.SET_NULL)
    revoked_at = fields.DatetimeField(null=True)
    revoke_reason = fields.CharField(max_length=500, default="")

    class Meta:
        table = "powers_of_attorney"
        indexes = (("enterprise", "agent", "status"),)
